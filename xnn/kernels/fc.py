"""FULLY_CONNECTED: int8 (per-tensor or per-channel filter), float32, and hybrid (float32 activations
with int8 weights, the dynamic-range form).

Input [..., K] is read as B = size/K rows; weights are [U, K]; output is [B, U] or, with keep_num_dims,
the input shape with its last dimension replaced by U.

Int8 (TFLite reference FullyConnected / FullyConnectedPerChannel):
    acc[b, u] = bias[u] + Σ_k (x[b, k] - zp_x)·(w[u, k] - zp_w)             (int32)
    y[b, u]   = clamp(R(acc, M[u]) + zp_y, act_lo, act_hi),   M[u] = s_x·s_w[u] / s_y  (double)
where R is the SINGLE-rounding fixed-point multiply (acc·q + 2^(t-1)) >> t, t = 31 - shift: measured
against LiteRT 2.3 BUILTIN_REF, whose int8 FULLY_CONNECTED rounds once (the conv kernels round twice).

Hybrid (TFLite EvalHybrid), per input row b: on-the-fly int8 quantization (xq, sf, off) of the row
(symmetric, or asymmetric with asymmetric_quantize_inputs; exact rules in gemm.py), then
  y[b, u] = clamp(bias[u] + float(Σ_k xq·w[u, k] - off·Σ_k w[u, k]) · (sf·s_w[u]), act_lo, act_hi)
The integer dot is exact; the float steps follow TFLite's order, so results agree to float rounding.

Fast paths: the SIMD tile kernels of gemm.py (the B rows as one-pixel images: int16 pairs of
x - zp_x and w - zp_w with int32 accumulation and the rounding fused, float32 read in place;
single-row tiles for B < 4), or one exact float32 BLAS GEMM [B, K] @ [K, U] (chunked over K, see
gemm.py) and a Numba requantization / rescaling pass, as gemm.tiles_wanted picks.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import gemm
from .quant import (activation_name, activation_range_float, activation_range_quantized,
                    quantize_multipliers)

INT8_MIN, INT8_MAX = -128, 127


def _setup(ctx):
    if len(ctx.ins) < 2 or ctx.ins[0] is None or ctx.ins[1] is None:
        ctx.fail("FULLY_CONNECTED needs inputs (input, weights[, bias])")
    x, w, y = ctx.ins[0], ctx.ins[1], ctx.outs[0]
    if w.data is None:
        ctx.fail("weights must be a constant tensor (runtime weights are not supported)")
    bias = ctx.ins[2] if len(ctx.ins) > 2 else None
    if bias is not None and bias.data is None:
        ctx.fail("bias must be a constant tensor (runtime bias is not supported)")
    if len(w.shape) != 2:
        ctx.fail(f"weights must be 2-D [units, depth], got shape {w.shape}")
    U, K = w.shape
    if U <= 0 or K <= 0:
        ctx.fail(f"empty weights {w.shape}")
    if int(ctx.opt.get("weights_format", 0)) != 0:
        ctx.fail("shuffled weights format is not supported")
    total = int(np.prod(x.shape, dtype=np.int64)) if len(x.shape) else 1
    if total % K:
        ctx.fail(f"input {x.shape} ({total} elements) is not a whole number of rows of depth {K}")
    B = total // K
    keep = bool(ctx.opt.get("keep_num_dims", False))
    if keep:
        if not len(x.shape) or x.shape[-1] != K:
            ctx.fail(f"keep_num_dims needs the input's last dimension ({x.shape}) to equal depth {K}")
        out_shape = tuple(x.shape[:-1]) + (U,)
    else:
        out_shape = (B, U)
    try:
        act = activation_name(ctx.opt.get("fused_activation_function", 0))
    except ValueError as e:
        ctx.fail(str(e))
    if bias is not None and bias.size != U:
        ctx.fail(f"bias has {bias.size} elements, expected {U}")

    dt = (x.dtype, w.dtype, y.dtype)
    if dt == (np.float32,) * 3:
        kind = "float32"
        if bias is not None and bias.dtype != np.float32:
            ctx.fail(f"float32 op needs a float32 bias, got {bias.dtype}")
    elif dt == (np.int8,) * 3:
        kind = "int8"
        if bias is not None and bias.dtype != np.int32:
            ctx.fail(f"int8 op needs an int32 bias, got {bias.dtype}")
        if x.quant is None or w.quant is None or y.quant is None:
            ctx.fail("int8 tensors must carry quantization parameters")
        if x.quant.per_channel or y.quant.per_channel:
            ctx.fail("per-channel quantized activations are not supported")
    elif dt == (np.float32, np.int8, np.float32):
        kind = "hybrid"
        if bias is not None and bias.dtype != np.float32:
            ctx.fail(f"hybrid op needs a float32 bias, got {bias.dtype}")
        if w.quant is None:
            ctx.fail("hybrid int8 weights must carry a quantization scale")
        if np.any(w.quant.zero_point != 0):
            ctx.fail("hybrid int8 weights must be symmetric (zero point 0)")
    else:
        ctx.fail(f"unsupported dtypes input={x.dtype}, weights={w.dtype}, output={y.dtype} "
                 "(supported: int8/int8/int8, float32/float32/float32, float32/int8/float32)")
    wscales = None
    if kind != "float32":
        q = w.quant
        if q.scale.size == 1:
            wscales = np.full(U, q.scale[0], np.float32)
        elif q.scale.size == U and q.axis == 0:
            wscales = q.scale.astype(np.float32)
        else:
            ctx.fail(f"weights have {q.scale.size} scales on axis {q.axis}; expected 1 or {U} on axis 0")
        if kind == "int8" and q.per_channel and np.any(q.zero_point != 0):
            ctx.fail("per-channel int8 weights must be symmetric (zero point 0)")
    try:
        lo, hi = (activation_range_quantized(act, y.quant.s, y.quant.zp, INT8_MIN, INT8_MAX)
                  if kind == "int8" else activation_range_float(act))
    except ValueError as e:
        ctx.fail(str(e))
    return dict(x=x, w=w, y=y, bias=bias, kind=kind, U=U, K=K, B=B, out_shape=out_shape, act=act,
                lo=lo, hi=hi, wscales=wscales, asym=bool(ctx.opt.get("asymmetric_quantize_inputs", False)))


def _multipliers(ctx, p):
    sx, sy = p["x"].quant.s, p["y"].quant.s
    if not (sx > 0 and sy > 0):
        ctx.fail(f"input and output scales must be positive, got {sx} and {sy}")
    m = float(sx) * p["wscales"].astype(np.float64) / float(sy)
    if not np.all(np.isfinite(m)):
        ctx.fail("requantization multiplier is not finite")
    return m


def _single_rounding_ref(acc, mult):
    """(acc·q + 2^(t-1)) >> t with (q, shift) = QuantizeMultiplier(M), t = 31 - shift."""
    q, shift = quantize_multipliers(mult)
    t = 31 - shift.astype(np.int64)
    return (np.asarray(acc, np.int64) * q.astype(np.int64) + (np.int64(1) << (t - 1))) >> t


@njit(cache=True)
def _hybrid_post(P, rowsum, sf, off, wscale, bias, lo, hi, out):
    """out[b, u] = clamp(bias[u] + float32(dot - off[b]·rowsum[u])·(sf[b]·wscale[u]), lo, hi)."""
    nch, B, U = P.shape
    for b in range(B):
        s = sf[b]
        o = np.int64(off[b])
        for u in range(U):
            dot = np.int64(0)
            for ch in range(nch):
                dot += np.int64(P[ch, b, u])
            dot -= o * rowsum[u]
            v = bias[u] + np.float32(dot) * (s * wscale[u])
            v = lo if v < lo else v
            out[b, u] = hi if v > hi else v


# ---- reference ----------------------------------------------------------------------------------

def fully_connected_ref(ctx, ins):
    p = _setup(ctx)
    B, U, K = p["B"], p["U"], p["K"]
    x = np.asarray(ins[0]).reshape(B, K)
    w = np.asarray(ins[1])
    b_in = ins[2] if p["bias"] is not None else None  # presence from the specs, not the array
    if p["kind"] == "float32":
        acc = x.astype(np.float64) @ w.astype(np.float64).T
        if b_in is not None:
            acc = acc + np.asarray(b_in, np.float64)
        return [np.clip(acc, p["lo"], p["hi"]).astype(np.float32).reshape(p["out_shape"])]
    if p["kind"] == "hybrid":
        xq, sf, off = gemm.quantize_rows_ref(x, p["asym"])
        wi = w.astype(np.int64)
        dot = xq @ wi.T - off[:, None] * wi.sum(axis=1)[None, :]
        scale = (sf[:, None] * p["wscales"][None, :]).astype(np.float32)
        bias = np.zeros(U, np.float32) if b_in is None else np.asarray(b_in, np.float32)
        y = bias[None, :] + dot.astype(np.float32) * scale
        return [np.clip(y, p["lo"], p["hi"]).astype(np.float32).reshape(p["out_shape"])]
    xq, wq, yq = p["x"].quant, p["w"].quant, p["y"].quant
    acc = (x.astype(np.int64) - xq.zp) @ (w.astype(np.int64) - wq.zp).T
    if b_in is not None:
        acc = acc + np.asarray(b_in, np.int64)
    y = _single_rounding_ref(acc, _multipliers(ctx, p)) + yq.zp
    return [np.clip(y, p["lo"], p["hi"]).astype(np.int8).reshape(p["out_shape"])]


# ---- prepare ------------------------------------------------------------------------------------

def _fc_uses_tiles(p) -> bool:
    return p["B"] * p["K"] * 4 < (1 << 31) and gemm.tiles_wanted(p["B"], p["K"], p["U"], p["kind"])


def _prepare_fc_tiles(ctx, p):
    """B rows of depth K as B one-pixel images: int16 pairs (x - zp_x, w - zp_w) for int8 and
    hybrid, float32 steps read straight from the input for float32."""
    B, U, K, kind = p["B"], p["U"], p["K"], p["kind"]
    single = B < 4  # few rows: single-row tiles waste nothing
    wdata = np.asarray(p["w"].data)
    has_bias = p["bias"] is not None
    if kind == "float32":
        steps = np.arange(K)[None, :]
        wpk = gemm.pack_steps(wdata.astype(np.float32), steps)
        tab, es = steps * 4, 4
        bias = (np.asarray(p["bias"].data, np.float32).reshape(U) if has_bias
                else np.zeros(U, np.float32))
        prm = gemm.prm_float([bias], p["lo"], p["hi"], gemm._EpiF32.PRM)
        plan = gemm.TilePlan(gemm.K_F32_1 if single else gemm.K_F32)
    else:
        wz = 0 if kind == "hybrid" else p["w"].quant.zp
        t0 = np.arange(0, K, 2)[None, :]
        t1 = np.where(t0 + 1 < K, t0 + 1, -1)
        wpk = gemm.pack_steps((wdata.astype(np.int64) - wz).astype(np.int16), t0, t1)
        tab, es = t0 * 2, 2
        if kind == "int8":
            bias = (np.asarray(p["bias"].data, np.int64).reshape(U) if has_bias
                    else np.zeros(U, np.int64))
            prm = gemm.prm_fc_i8(bias, _multipliers(ctx, p), p["y"].quant.zp, int(p["lo"]),
                                 int(p["hi"]))
            plan = gemm.TilePlan(gemm.K_FC_I8_1 if single else gemm.K_FC_I8)
            plan.set(ZP=p["x"].quant.zp)
        else:
            bias = (np.asarray(p["bias"].data, np.float32).reshape(U) if has_bias
                    else np.zeros(U, np.float32))
            prm = gemm.prm_float([p["wscales"], bias], p["lo"], p["hi"], gemm._EpiHybFc.PRM)
            plan = gemm.TilePlan(gemm.K_HFC_1 if single else gemm.K_HFC)
            plan.set(ASYM=p["asym"], PERIMG=1)
            plan.hdr[gemm.H_SF] = plan.region(nbytes=4 * B)
    plan.set(N=B, H=1, W_=1, C=K, HP=1, WP=1, PT=0, PL=0, MULT=1)
    NB = wpk.shape[0]
    plan.tiles(B, U, 4 if kind != "int8" else 1, np.arange(B, dtype=np.int64) * K * es, tab,
               [tab.shape[1]] * NB, wpk, prm)
    plan.set(STAGED=kind != "float32")
    xp = gemm.aligned_empty(B * K + gemm.STAGE_SLACK if kind != "float32" else 1,
                            np.float32 if kind == "float32" else np.int16)
    return gemm.runner(kind, xp, plan.build())


def prepare_fully_connected(ctx):
    p = _setup(ctx)
    if _fc_uses_tiles(p):
        return _prepare_fc_tiles(ctx, p), [p["out_shape"]]
    B, U, K = p["B"], p["U"], p["K"]
    wdata = np.asarray(p["w"].data)
    has_bias = p["bias"] is not None

    if p["kind"] == "float32":
        Wt = np.ascontiguousarray(wdata.T, np.float32)
        bias = (np.asarray(p["bias"].data, np.float32).reshape(U) if has_bias
                else np.zeros(U, np.float32))
        lo, hi = np.float32(p["lo"]), np.float32(p["hi"])
        has_post = has_bias or p["act"] != "NONE"

        def run(ins, outs):
            o2 = outs[0].reshape(B, U)
            np.matmul(ins[0].reshape(B, K), Wt, out=o2)
            if has_post:
                gemm.bias_act(o2, bias, lo, hi)
        return run, [p["out_shape"]]

    wz = 0 if p["kind"] == "hybrid" else p["w"].quant.zp
    wi = wdata.astype(np.int64) - wz
    Wt = np.ascontiguousarray(wi.T, np.float32)[None]  # [1, K, U]
    chunk = gemm.exact_chunk(128, int(np.abs(wi).max(initial=0)), K)
    chunks = gemm.chunk_bounds(K, chunk)
    Xf = np.empty((1, B, K), np.float32)
    P = np.empty((len(chunks), B, U), np.float32)
    views = gemm.BlockedGemm(Xf, Wt, chunks, P, [(0, B)], 1).plans[0][-1]
    X2 = Xf[0]

    def mm():
        for a, b, c in views:
            np.matmul(a, b, out=c)

    if p["kind"] == "hybrid":
        rowsum = wi.sum(axis=1).astype(np.int64)
        bias = (np.asarray(p["bias"].data, np.float32).reshape(U) if has_bias
                else np.zeros(U, np.float32))
        wscale = p["wscales"]
        sf = np.empty(B, np.float32)
        off = np.empty(B, np.int32)
        lo, hi = np.float32(p["lo"]), np.float32(p["hi"])
        asym = p["asym"]

        def run(ins, outs):
            gemm.quantize_rows(ins[0].reshape(B, K), X2, sf, off, asym)
            mm()
            _hybrid_post(P, rowsum, sf, off, wscale, bias, lo, hi, outs[0].reshape(B, U))
        return run, [p["out_shape"]]

    xq, yq = p["x"].quant, p["y"].quant
    q, t = gemm.requant_params_single(_multipliers(ctx, p))
    bias = (np.asarray(p["bias"].data, np.int64).reshape(U) if has_bias else np.zeros(U, np.int64))
    bias = bias - xq.zp * wi.sum(axis=1)  # Σ(x - zp_x)w' = Σ x·w' - zp_x·Σ w'
    zp_out, lo, hi = yq.zp, int(p["lo"]), int(p["hi"])
    if len(chunks) == 1:
        Pacc = P[0]

        def reduce():
            pass
    else:
        Pacc = np.empty((B, U), np.int32)

        def reduce():
            gemm.sum_chunks(P, B, Pacc)

    def run(ins, outs):
        np.copyto(X2, ins[0].reshape(B, K))
        mm()
        reduce()
        gemm.requant_single(Pacc, bias, q, t, zp_out, lo, hi, outs[0].reshape(B, U))
    return run, [p["out_shape"]]


OPS = {
    "FULLY_CONNECTED": (prepare_fully_connected, fully_connected_ref),
}
