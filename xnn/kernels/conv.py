"""Convolutions: CONV_2D (incl. grouped), DEPTHWISE_CONV_2D, TRANSPOSE_CONV; int8 and float32.

Int8 semantics (TFLite reference kernels, per-channel form; a per-tensor filter scale is the same
with one scale broadcast over channels):
    acc[c]  = bias[c] + Σ_taps inside the image (x - zp_x)·w[c]        (int32; padding adds nothing)
    y[c]    = clamp(MBQM(acc[c], M[c]) + zp_y, act_lo, act_hi),   M[c] = s_x·s_w[c] / s_y  (double)
Float32: y = clamp(bias + Σ x·w, act_lo, act_hi).

Geometry (TFLite ComputePaddingHeightWidth): SAME -> OH = ceil(H/s), VALID -> OH = ceil((H-dk+1)/s),
dk = (k-1)·d + 1; leading padding = max((OH-1)·s + dk - H, 0) // 2 (the odd remainder goes after).
TRANSPOSE_CONV computes the same padding with the roles of its input and output sizes swapped:
    y[n, iy·s - pad + ky, ix·s - pad + kx, oc] += x[n, iy, ix, ic]·w[oc, ky, kx, ic]  (kept if inside)

Hybrid (float32 input and output, int8 filter; TFLite EvalHybridPerChannel / EvalHybrid): each image
n is quantized on the fly as a whole (H·W·C values, see gemm.quantize_rows), asymmetrically (sf[n],
off[n]) for DEPTHWISE_CONV_2D and for a CONV_2D filter whose scales differ per channel, symmetrically
(off = 0) for an ungrouped CONV_2D whose filter has one scale, then
    acc[c] = Σ_taps inside the image (xq - off[n])·w[c]                    (exact integer)
    y[c]   = clamp(float(acc)·s_w[c]·sf[n] + bias[c], act_lo, act_hi)      (float32)

Unlike LiteRT (whose CONV_2D insists on a bias tensor), an absent bias (input index -1) is taken as 0.

Fast paths. Tile path (default where gemm.tiles_wanted says so; see gemm.py): one Numba call per
node stages x - zp_x (int16; float32 as is) into a zero-bordered padded buffer and runs SIMD tiles of
8 output pixels × 16 output channels with the requantization fused. CONV_2D reduces over the taps'
runs of contiguous input (a kernel row of KW·C values when dw = 1), each 16-channel block over the
input channels of the groups it covers; DEPTHWISE reads one 16-channel vector per tap.
BLAS path: CONV_2D = im2col + exact float32 GEMM (see gemm.py) over cache-sized blocks of output
rows; raw int8 operands, padding filled with zp_x and the zero-point term folded into the bias at
load: Σ(x - zp)w = Σ x·w - zp·Σ w. 1x1 stride-1 convolutions skip im2col.
DEPTHWISE = direct loops over a zero-padded, stride-phase-split copy of (x - zp_x) so every tap reads
a contiguous run of (pixel, channel) values; float32 accumulation is exact while
taps·255·max|w| <= 2^24, else the buffers are float64.
TRANSPOSE_CONV = GEMM (x - zp_x)[M, IC] @ W[IC, KH·KW·OC] then col2im scatter-add (int32 for int8).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..ir import PADDINGS
from . import gemm
from .quant import (activation_name, activation_range_float, activation_range_quantized,
                    mbqm_ref, quantize_multipliers)

INT8_MIN, INT8_MAX = -128, 127


# ---- shared validation ------------------------------------------------------------------------

def _act(ctx) -> str:
    try:
        return activation_name(ctx.opt.get("fused_activation_function", 0))
    except ValueError as e:
        ctx.fail(str(e))


def _padding(ctx) -> str:
    p = int(ctx.opt.get("padding", 0))
    if not 0 <= p < len(PADDINGS):
        ctx.fail(f"unknown padding code {p}")
    return PADDINGS[p]


def _opt(ctx, *keys, default):
    """First present option among `keys`."""
    for k in keys:
        if k in ctx.opt:
            return int(ctx.opt[k])
    return default


def _strides(ctx, dilation=True):
    sh, sw = int(ctx.opt.get("stride_h", 1)), int(ctx.opt.get("stride_w", 1))
    dh = _opt(ctx, "dilation_h_factor", default=1) if dilation else 1
    dw = _opt(ctx, "dilation_w_factor", default=1) if dilation else 1
    if sh < 1 or sw < 1:
        ctx.fail(f"strides must be >= 1, got ({sh}, {sw})")
    if dh < 1 or dw < 1:
        ctx.fail(f"dilation factors must be >= 1, got ({dh}, {dw})")
    return sh, sw, dh, dw


def _const(ctx, k, what):
    t = ctx.ins[k] if k < len(ctx.ins) else None
    if t is None:
        return None
    if t.data is None:
        ctx.fail(f"{what} must be a constant tensor (runtime {what} is not supported)")
    return t


def _kind(ctx, x, w, y, bias, hybrid_ok=False):
    """'int8', 'float32' or 'hybrid' (float32 input/output, int8 filter); fails for anything else."""
    if len(x.shape) != 4:
        ctx.fail(f"input must be 4-D NHWC, got shape {x.shape}")
    if len(w.shape) != 4:
        ctx.fail(f"filter must be 4-D, got shape {w.shape}")
    dt = (x.dtype, w.dtype, y.dtype)
    if dt == (np.float32,) * 3:
        if bias is not None and bias.dtype != np.float32:
            ctx.fail(f"float32 op needs a float32 bias, got {bias.dtype}")
        return "float32"
    if dt == (np.int8,) * 3:
        if bias is not None and bias.dtype != np.int32:
            ctx.fail(f"int8 op needs an int32 bias, got {bias.dtype}")
        if x.quant is None or w.quant is None or y.quant is None:
            ctx.fail("int8 tensors must carry quantization parameters")
        if x.quant.per_channel or y.quant.per_channel:
            ctx.fail("per-channel quantized activations are not supported")
        return "int8"
    if dt == (np.float32, np.int8, np.float32):
        if not hybrid_ok:
            ctx.fail("hybrid (float32 input, int8 filter) form of this op is not supported; "
                     "convert the model with full-integer or float quantization")
        if bias is not None and bias.dtype != np.float32:
            ctx.fail(f"hybrid op needs a float32 bias, got {bias.dtype}")
        if w.quant is None:
            ctx.fail("hybrid int8 filter must carry quantization scales")
        return "hybrid"
    ctx.fail(f"unsupported dtypes input={x.dtype}, filter={w.dtype}, output={y.dtype} "
             "(supported: all int8 with int32 bias, all float32, or float32 with an int8 filter)")


def _filter_scales(ctx, w, channels, axis):
    """Per-output-channel filter scales (float64) after checking symmetry and the quantized axis."""
    q = w.quant
    if np.any(q.zero_point != 0):
        ctx.fail("int8 filter must be symmetric (zero point 0)")
    if q.scale.size == 1:
        return np.full(channels, float(q.scale[0]), np.float64)
    if q.scale.size != channels or q.axis != axis:
        ctx.fail(f"filter has {q.scale.size} scales on axis {q.axis}; expected 1 or {channels} "
                 f"on axis {axis}")
    return q.scale.astype(np.float64)


def _absmax(w) -> int:
    return int(np.abs(np.asarray(w, np.int64)).max(initial=0))


def _bias_values(ctx, bias, channels, dtype):
    if bias is None:
        return np.zeros(channels, dtype)
    if bias.size != channels:
        ctx.fail(f"bias has {bias.size} elements, expected {channels}")
    return np.asarray(bias.data, dtype).reshape(channels)


def _quant_out(ctx, x, y, fscales, act):
    """Real multipliers s_x·s_w[c]/s_y (double, as TFLite) and the activation clamp."""
    if not (x.quant.s > 0 and y.quant.s > 0):
        ctx.fail(f"input and output scales must be positive, got {x.quant.s} and {y.quant.s}")
    mult = float(x.quant.s) * fscales / float(y.quant.s)
    if not np.all(np.isfinite(mult)):
        ctx.fail("requantization multiplier is not finite")
    try:
        lo, hi = activation_range_quantized(act, y.quant.s, y.quant.zp, INT8_MIN, INT8_MAX)
    except ValueError as e:
        ctx.fail(str(e))
    return mult, int(lo), int(hi)


def _float_range(ctx, act):
    try:
        lo, hi = activation_range_float(act)
    except ValueError as e:
        ctx.fail(str(e))
    return np.float32(lo), np.float32(hi)


def _out_hw(ctx, padding, H, W, KH, KW, sh, sw, dh, dw):
    OH = gemm.out_size(padding, H, KH, sh, dh)
    OW = gemm.out_size(padding, W, KW, sw, dw)
    if OH <= 0 or OW <= 0:
        ctx.fail(f"filter {KH}x{KW} (dilation {dh}x{dw}) does not fit input {H}x{W} with VALID padding")
    pt = gemm.pad_before(H, KH, sh, dh, OH)
    pl = gemm.pad_before(W, KW, sw, dw, OW)
    return OH, OW, pt, pl


def _requant_ref(acc, mult, zp_out, lo, hi):
    q, shift = quantize_multipliers(mult)
    y = mbqm_ref(acc, q.astype(np.int64), shift.astype(np.int64)) + zp_out
    return np.clip(y, lo, hi).astype(np.int8)


def _padded(x, pt, pl, Hp, Wp):
    N, H, W, C = x.shape
    xp = np.zeros((N, max(Hp, pt + H), max(Wp, pl + W), C), x.dtype)
    xp[:, pt:pt + H, pl:pl + W, :] = x
    return xp


def _hybrid_setup(ctx, p, axis, per_channel_asym):
    """Filter scales (float32 per channel), bias, clamp and the quantization mode of a hybrid op."""
    q = p["w"].quant
    OC = p["OC"]
    if np.any(q.zero_point != 0):
        ctx.fail("hybrid int8 filter must be symmetric (zero point 0)")
    if q.scale.size != OC or q.axis != axis:  # LiteRT rejects a single scale here too
        ctx.fail(f"hybrid filter has {q.scale.size} scales on axis {q.axis}; expected one per output "
                 f"channel ({OC}) on axis {axis}")
    pcs = q.scale.astype(np.float32)
    # TFLite takes its per-channel (asymmetric) path when the scales differ, and for grouped conv
    asym = (not per_channel_asym or p.get("G", 1) != 1
            or bool(q.scale.size > 1 and np.any(q.scale != q.scale[0])))
    bias = _bias_values(ctx, p["bias"], OC, np.float32)
    lo, hi = _float_range(ctx, p["act"])
    return pcs, asym, bias, lo, hi


def _hybrid_ref_quantize(x, asym):
    """Per-image quantization (NumPy spec): (xq - off) as int64 NHWC, and sf per image."""
    N = x.shape[0]
    xq, sf, off = gemm.quantize_rows_ref(x.reshape(N, -1), asym)
    return (xq - off[:, None]).reshape(x.shape), sf


def _hybrid_ref_out(acc, pcs, sf, bias, act):
    y = acc.astype(np.float32) * pcs * sf.reshape(-1, 1, 1, 1) + bias
    lo, hi = activation_range_float(act)
    return np.clip(y, lo, hi).astype(np.float32)


@njit(cache=True)
def _hybrid_out(P, colsum, off, pcs, sf, bias, per_image, m0, lo, hi, out):
    """out[m, c] = clamp(float32(P[m, c] - off[n]·colsum[c])·pcs[c]·sf[n] + bias[c]) for the rows
    of pixels m0.., image n = (m0 + m) // per_image."""
    M, C = P.shape
    for m in range(M):
        n = (m0 + m) // per_image
        o = np.int64(off[n])
        s = sf[n]
        p = P[m]
        r = out[m]
        for c in range(C):
            acc = np.int64(p[c]) - o * colsum[c]
            v = np.float32(acc) * pcs[c] * s + bias[c]
            v = lo if v < lo else v
            r[c] = hi if v > hi else v


# ---- CONV_2D ------------------------------------------------------------------------------------

def _filter_node_inputs(ctx):
    """(x, filter, y, bias, kind) of a CONV_2D / DEPTHWISE_CONV_2D node; filter and bias constant."""
    x, w, y = ctx.ins[0], _const(ctx, 1, "filter"), ctx.outs[0]
    if w is None:
        ctx.fail("missing filter input")
    bias = _const(ctx, 2, "bias")
    return x, w, y, bias, _kind(ctx, x, w, y, bias, hybrid_ok=True)


def _conv_setup(ctx):
    x, w, y, bias, kind = _filter_node_inputs(ctx)
    N, H, W, C = x.shape
    OC, KH, KW, Cg = w.shape
    if min(N, H, W, C, OC, KH, KW, Cg) <= 0:
        ctx.fail(f"empty tensor: input {x.shape}, filter {w.shape}")
    if C % Cg:
        ctx.fail(f"input channels {C} are not a multiple of filter input channels {Cg}")
    G = C // Cg
    if OC % G:
        ctx.fail(f"output channels {OC} are not divisible by groups {G}")
    sh, sw, dh, dw = _strides(ctx)
    padding = _padding(ctx)
    act = _act(ctx)
    OH, OW, pt, pl = _out_hw(ctx, padding, H, W, KH, KW, sh, sw, dh, dw)
    return dict(x=x, w=w, y=y, bias=bias, kind=kind, N=N, H=H, W=W, C=C, OC=OC, KH=KH, KW=KW,
                Cg=Cg, G=G, sh=sh, sw=sw, dh=dh, dw=dw, OH=OH, OW=OW, pt=pt, pl=pl, act=act)


def _conv_ref_core(xs, w, G, sh, sw, dh, dw, pt, pl, OH, OW):
    """Σ over taps of xs·w with out-of-image taps omitted; xs is already zero-point shifted."""
    N, H, W, C = xs.shape
    OC, KH, KW, Cg = w.shape
    Ng = OC // G
    xp = _padded(xs, pt, pl, (OH - 1) * sh + (KH - 1) * dh + 1, (OW - 1) * sw + (KW - 1) * dw + 1)
    out = np.zeros((N, OH, OW, OC), xs.dtype)
    for ky in range(KH):
        for kx in range(KW):
            patch = xp[:, ky * dh: ky * dh + (OH - 1) * sh + 1: sh,
                       kx * dw: kx * dw + (OW - 1) * sw + 1: sw, :]
            for g in range(G):
                out[..., g * Ng:(g + 1) * Ng] += (patch[..., g * Cg:(g + 1) * Cg]
                                                  @ w[g * Ng:(g + 1) * Ng, ky, kx, :].T)
    return out


def conv2d_ref(ctx, ins):
    p = _conv_setup(ctx)
    x = np.asarray(ins[0])
    w = np.asarray(ins[1])
    geo = (p["G"], p["sh"], p["sw"], p["dh"], p["dw"], p["pt"], p["pl"], p["OH"], p["OW"])
    if p["kind"] == "float32":
        b = np.zeros(p["OC"]) if p["bias"] is None else np.asarray(ins[2], np.float64)
        acc = _conv_ref_core(x.astype(np.float64), w.astype(np.float64), *geo) + b
        lo, hi = activation_range_float(p["act"])
        return [np.clip(acc, lo, hi).astype(np.float32)]
    if p["kind"] == "hybrid":
        pcs, asym, bias, _, _ = _hybrid_setup(ctx, p, 0, True)
        xs, sf = _hybrid_ref_quantize(x, asym)
        acc = _conv_ref_core(xs, w.astype(np.int64), *geo)
        return [_hybrid_ref_out(acc, pcs, sf, bias, p["act"])]
    xq, yq = p["x"].quant, p["y"].quant
    b = np.zeros(p["OC"], np.int64) if p["bias"] is None else np.asarray(ins[2], np.int64)
    acc = _conv_ref_core(x.astype(np.int64) - xq.zp, w.astype(np.int64), *geo) + b
    mult, lo, hi = _quant_out(ctx, p["x"], p["y"], _filter_scales(ctx, p["w"], p["OC"], 0), p["act"])
    return [_requant_ref(acc, mult, yq.zp, lo, hi)]


def prepare_conv2d(ctx):
    p = _conv_setup(ctx)
    if _conv_uses_tiles(p):
        return _prepare_conv2d_tiles(ctx, p), [(p["N"], p["OH"], p["OW"], p["OC"])]
    N, H, W, C, OC = p["N"], p["H"], p["W"], p["C"], p["OC"]
    KH, KW, Cg, G = p["KH"], p["KW"], p["Cg"], p["G"]
    OH, OW, sh, sw, dh, dw, pt, pl = (p[k] for k in ("OH", "OW", "sh", "sw", "dh", "dw", "pt", "pl"))
    M, K, Ng = N * OH * OW, KH * KW * Cg, OC // G
    out_shape = (N, OH, OW, OC)
    wdata = np.asarray(p["w"].data)
    # B[g, (ky, kx, c), j] = w[g·Ng + j, ky, kx, c]
    B = np.ascontiguousarray(wdata.reshape(G, Ng, K).transpose(0, 2, 1), dtype=np.float32)
    direct = G == 1 and KH == 1 and KW == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0
    Hp = max(pt + H, (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(pl + W, (OW - 1) * sw + (KW - 1) * dw + 1)
    geo = (OH, OW, KH, KW, sh, sw, dh, dw)
    blocks = gemm.row_blocks(N * OH, OW, K)
    rows_max = max(r1 - r0 for r0, r1 in blocks) * OW

    if p["kind"] == "float32":
        return _prepare_conv2d_float(ctx, p, B, direct, Hp, Wp, geo, blocks), [out_shape]
    if p["kind"] == "hybrid":
        return _prepare_conv2d_hybrid(ctx, p, B, direct, Hp, Wp, geo, blocks), [out_shape]

    # int8: raw x·w products in float32 (|x|, |w| <= 128); the padding holds zp_x so that
    # Σ (x - zp_x)·w = Σ x·w - zp_x·Σ w over every tap, and -zp_x·Σ w is folded into the bias.
    xq, yq = p["x"].quant, p["y"].quant
    fscales = _filter_scales(ctx, p["w"], OC, 0)
    mult, lo, hi = _quant_out(ctx, p["x"], p["y"], fscales, p["act"])
    q, left, right = gemm.requant_params(mult)
    colsum = wdata.reshape(OC, K).astype(np.int64).sum(axis=1)
    bias = _bias_values(ctx, p["bias"], OC, np.int64) - xq.zp * colsum
    chunks = gemm.chunk_bounds(K, gemm.exact_chunk(128, _absmax(wdata), K))
    nch = len(chunks)
    xp = np.full((N, Hp, Wp, C), xq.zp, np.float32)
    A = xp.reshape(1, M, C) if direct else np.empty((G, rows_max, K), np.float32)
    P = np.empty((nch, rows_max, OC), np.float32)
    Pi = np.empty((rows_max, OC), np.int32)
    plans = gemm.BlockedGemm(A, B, chunks, P, blocks, OW, absolute=direct).plans
    zp_out = yq.zp

    def run(ins, outs):
        out2 = outs[0].reshape(M, OC)
        gemm.pad_copy(ins[0], xp, pt, pl)
        for r0, r1, m0, m1, mb, views in plans:
            if not direct:
                gemm.im2col(xp, A, r0, r1, *geo)
            for a, b, c in views:
                np.matmul(a, b, out=c)
            if nch == 1:
                gemm.requant(P[0, :mb], bias, q, left, right, zp_out, lo, hi, out2[m0:m1])
            else:
                gemm.sum_chunks(P, mb, Pi)
                gemm.requant(Pi[:mb], bias, q, left, right, zp_out, lo, hi, out2[m0:m1])
    return run, [out_shape]


def _prepare_conv2d_float(ctx, p, B, direct, Hp, Wp, geo, blocks):
    N, H, W, C, OC, G = p["N"], p["H"], p["W"], p["C"], p["OC"], p["G"]
    OW, K, Ng = p["OW"], B.shape[1], B.shape[2]
    M = N * p["OH"] * OW
    pt, pl = p["pt"], p["pl"]
    bias = _bias_values(ctx, p["bias"], OC, np.float32)
    lo, hi = _float_range(ctx, p["act"])
    if direct:  # 1x1, stride 1, no padding: the input already is the patch matrix
        B0 = B[0]

        def run(ins, outs):
            out2 = outs[0].reshape(M, OC)
            np.matmul(ins[0].reshape(M, C), B0, out=out2)
            gemm.bias_act(out2, bias, lo, hi)
        return run
    rows_max = max(r1 - r0 for r0, r1 in blocks) * OW
    A = np.empty((G, rows_max, K), np.float32)
    padded = (Hp, Wp) != (H, W)
    xp = np.zeros((N, Hp, Wp, C), np.float32) if padded else None
    plans = [(r0, r1, r0 * OW, r1 * OW, [(A[g, :(r1 - r0) * OW], B[g], g * Ng) for g in range(G)])
             for r0, r1 in blocks]

    def run(ins, outs):
        out2 = outs[0].reshape(M, OC)
        if padded:
            gemm.pad_copy(ins[0], xp, pt, pl)
            src = xp
        else:
            src = ins[0]
        for r0, r1, m0, m1, views in plans:
            gemm.im2col(src, A, r0, r1, *geo)
            ob = out2[m0:m1]
            for a, b, c0 in views:
                np.matmul(a, b, out=ob[:, c0:c0 + Ng])
            gemm.bias_act(ob, bias, lo, hi)
    return run


def _prepare_conv2d_hybrid(ctx, p, B, direct, Hp, Wp, geo, blocks):
    N, H, W, C, OC = p["N"], p["H"], p["W"], p["C"], p["OC"]
    G, K = p["G"], B.shape[1]
    OW = p["OW"]
    M = N * p["OH"] * OW
    pt, pl = p["pt"], p["pl"]
    pcs, asym, bias, lo, hi = _hybrid_setup(ctx, p, 0, True)
    wdata = np.asarray(p["w"].data)
    colsum = wdata.reshape(OC, K).astype(np.int64).sum(axis=1)
    chunks = gemm.chunk_bounds(K, gemm.exact_chunk(128, _absmax(wdata), K))
    nch = len(chunks)
    rows_max = max(r1 - r0 for r0, r1 in blocks) * OW
    Xq = np.empty((N, H * W * C), np.float32)
    X4 = Xq.reshape(N, H, W, C)
    sf = np.empty(N, np.float32)
    off = np.empty(N, np.int32)
    xp = np.empty((N, Hp, Wp, C), np.float32)
    A = Xq.reshape(1, M, C) if direct else np.empty((G, rows_max, K), np.float32)
    P = np.empty((nch, rows_max, OC), np.float32)
    Pi = np.empty((rows_max, OC), np.int32)
    plans = gemm.BlockedGemm(A, B, chunks, P, blocks, OW, absolute=direct).plans
    per_image = p["OH"] * OW
    HWC = H * W * C

    def run(ins, outs):
        out2 = outs[0].reshape(M, OC)
        gemm.quantize_rows(ins[0].reshape(N, HWC), Xq, sf, off, asym)
        if not direct:
            gemm.pad_fill(X4, xp, pt, pl, off)  # padding = off[n]: adds nothing to Σ (xq - off)·w
        for r0, r1, m0, m1, mb, views in plans:
            if not direct:
                gemm.im2col(xp, A, r0, r1, *geo)
            for a, b, c in views:
                np.matmul(a, b, out=c)
            if nch == 1:
                _hybrid_out(P[0, :mb], colsum, off, pcs, sf, bias, per_image, m0, lo, hi, out2[m0:m1])
            else:
                gemm.sum_chunks(P, mb, Pi)
                _hybrid_out(Pi[:mb], colsum, off, pcs, sf, bias, per_image, m0, lo, hi, out2[m0:m1])
    return run


# ---- tile path (gemm.py SIMD kernels): one Numba call per node, epilogue fused -------------------

def _staged_hw(p):
    """Padded staged extent: every tap of every output pixel lands inside [0, Hp) x [0, Wp)."""
    Hp = max(p["pt"] + p["H"], (p["OH"] - 1) * p["sh"] + (p["KH"] - 1) * p["dh"] + 1)
    Wp = max(p["pl"] + p["W"], (p["OW"] - 1) * p["sw"] + (p["KW"] - 1) * p["dw"] + 1)
    return Hp, Wp


def _pix_offsets(p, Hs, Ws, Cs, es):
    """Byte offset of output pixel m's top-left tap in a [N, Hs, Ws, Cs] buffer of es-byte values."""
    n = np.arange(p["N"])[:, None, None]
    oy = np.arange(p["OH"])[None, :, None]
    ox = np.arange(p["OW"])[None, None, :]
    return (((n * Hs + oy * p["sh"]) * Ws + ox * p["sw"]) * Cs * es).reshape(-1).astype(np.int64)


def _tiles_fit(p, Hp, Wp, Cs):
    """The tile kernels address the staged buffer with int32 tap offsets."""
    return p["N"] * Hp * Wp * Cs * 4 < (1 << 31)


def _conv_uses_tiles(p) -> bool:
    Hp, Wp = _staged_hw(p)
    return _tiles_fit(p, Hp, Wp, p["C"]) and gemm.tiles_wanted(p["N"] * p["OH"] * p["OW"],
                                                          p["KH"] * p["KW"] * p["Cg"], p["OC"],
                                                          p["kind"])


def _conv_steps(KH, KW, dh, dw, Wp, C, c_lo, c_hi, pairs):
    """Reduction steps of one output-channel block over input channels [c_lo, c_hi): element
    offsets (relative to the pixel's top-left tap in a [.., Wp, C] buffer) and tap indices
    t = (ky·KW + kx)·C + c (pairs: the second tap of each pair, -1 past the end of a run).
    With all channels and dw = 1 a kernel row of taps is one contiguous run of KW·C values."""
    runs = []
    if c_lo == 0 and c_hi == C and dw == 1:
        for ky in range(KH):
            runs.append((ky * dh * Wp * C, ky * KW * C + np.arange(KW * C)))
    else:
        for ky in range(KH):
            for kx in range(KW):
                runs.append(((ky * dh * Wp + kx * dw) * C + c_lo,
                             (ky * KW + kx) * C + np.arange(c_lo, c_hi)))
    offs, t0, t1 = [], [], []
    for base, taps in runs:
        L = len(taps)
        step = 2 if pairs else 1
        for i in range(0, L, step):
            offs.append(base + i)
            t0.append(taps[i])
            t1.append(taps[i + 1] if pairs and i + 1 < L else -1)
    return offs, t0, t1


def _block_steps(p, Wp, pairs):
    """Per 16-channel block: padded step tables (offsets, tap0, tap1) [NB or 1, S] and counts."""
    OC, C, Cg, G = p["OC"], p["C"], p["Cg"], p["G"]
    Ng = OC // G
    NB = -(-OC // gemm.LANES)
    ranges = []
    for nb in range(NB):
        g0 = (nb * gemm.LANES) // Ng
        g1 = (min(OC, nb * gemm.LANES + gemm.LANES) - 1) // Ng
        ranges.append((g0 * Cg, (g1 + 1) * Cg))
    shared = len(set(ranges)) == 1
    tabs = [_conv_steps(p["KH"], p["KW"], p["dh"], p["dw"], Wp, C, lo, hi, pairs)
            for lo, hi in (ranges[:1] if shared else ranges)]
    S = max(len(t[0]) for t in tabs)
    offs = np.zeros((len(tabs), S), np.int64)
    t0 = np.full((len(tabs), S), -1, np.int64)
    t1 = np.full((len(tabs), S), -1, np.int64)
    for i, (o, a, b) in enumerate(tabs):
        offs[i, :len(o)], t0[i, :len(a)], t1[i, :len(b)] = o, a, b
    nks = [len(tabs[0 if shared else nb][0]) for nb in range(NB)]
    if shared:
        t0, t1 = np.repeat(t0, NB, axis=0), np.repeat(t1, NB, axis=0)
    return offs, t0, t1, nks


def _dense_filter(p, wdata):
    """[OC, KH·KW·C] filter with zeros where an output channel's group does not read channel c."""
    OC, KH, KW, C, Cg, G = p["OC"], p["KH"], p["KW"], p["C"], p["Cg"], p["G"]
    Ng = OC // G
    Wd = np.zeros((OC, KH, KW, C), wdata.dtype)
    for g in range(G):
        Wd[g * Ng:(g + 1) * Ng, :, :, g * Cg:(g + 1) * Cg] = wdata[g * Ng:(g + 1) * Ng]
    return Wd.reshape(OC, KH * KW * C)


def _tile_epilogue(ctx, p, axis, kernels, dw):
    """The tile plan for the node's form (kernels = (int8, float32, hybrid) kernel ids) and its
    epilogue parameters: requantization (int8), clamp (float32), or per-channel rescale (hybrid;
    filter scales on `axis`). Hybrid depthwise always quantizes each image asymmetrically; hybrid
    conv does so when the filter scales differ or groups > 1 (LiteRT's choice)."""
    kind, OC = p["kind"], p["OC"]
    if kind == "int8":
        mult, lo, hi = _quant_out(ctx, p["x"], p["y"], _filter_scales(ctx, p["w"], OC, axis), p["act"])
        prm = gemm.prm_conv_i8(_bias_values(ctx, p["bias"], OC, np.int64), mult, p["y"].quant.zp,
                               lo, hi)
        plan = gemm.TilePlan(kernels[0])
        plan.set(ZP=p["x"].quant.zp)
    elif kind == "float32":
        lo, hi = _float_range(ctx, p["act"])
        prm = gemm.prm_float([_bias_values(ctx, p["bias"], OC, np.float32)], lo, hi,
                             gemm._EpiF32.PRM)
        plan = gemm.TilePlan(kernels[1])
    else:
        pcs, asym, bias, lo, hi = _hybrid_setup(ctx, p, axis, not dw)
        prm = gemm.prm_float([pcs, bias], lo, hi, gemm._EpiHybConv.PRM)
        plan = gemm.TilePlan(kernels[2])
        plan.set(ASYM=1 if dw else asym, PERIMG=p["OH"] * p["OW"])
        plan.hdr[gemm.H_SF] = plan.region(nbytes=4 * p["N"])
    return plan, prm


def _prepare_conv2d_tiles(ctx, p):
    """CONV_2D on the tile kernels: plan (pixel offsets, per-block step tables, packed weights,
    epilogue parameters) and the staged buffer; float32 without padding reads x in place."""
    kind = p["kind"]
    N, H, W, C, OC = p["N"], p["H"], p["W"], p["C"], p["OC"]
    OH, OW = p["OH"], p["OW"]
    Hp, Wp = _staged_hw(p)
    staged = kind != "float32" or (Hp, Wp, p["pt"], p["pl"]) != (H, W, 0, 0)
    es = 4 if kind == "float32" else 2
    pairs = kind != "float32"
    Hs, Ws = (Hp, Wp) if staged else (H, W)
    offs, t0, t1, nks = _block_steps(p, Ws, pairs)
    Wd = _dense_filter(p, np.asarray(p["w"].data))
    if pairs:
        wpk = gemm.pack_steps(Wd.astype(np.int16), t0, t1)
    else:
        wpk = gemm.pack_steps(Wd.astype(np.float32), t0)
    oes = 4 if kind != "int8" else 1
    plan, prm = _tile_epilogue(ctx, p, 0, (gemm.K_CONV_I8, gemm.K_F32, gemm.K_HCONV), dw=False)
    plan.set(N=N, H=H, W_=W, C=C, HP=Hp, WP=Wp, PT=p["pt"], PL=p["pl"], MULT=1)
    plan.tiles(N * OH * OW, OC, oes, _pix_offsets(p, Hs, Ws, C, es), offs * es, nks, wpk, prm)
    plan.set(STAGED=staged)
    xp = gemm.aligned_empty(N * Hp * Wp * C + gemm.STAGE_SLACK if staged else 1,
                            np.float32 if es == 4 else np.int16)
    return gemm.runner(kind, xp, plan.build())


def _dw_uses_tiles(p) -> bool:
    Hp, Wp = _staged_hw(p)
    return _tiles_fit(p, Hp, Wp, p["OC"]) and gemm.tiles_wanted(p["N"] * p["OH"] * p["OW"],
                                                           p["KH"] * p["KW"], p["OC"], "dw")


def _prepare_dw_tiles(ctx, p):
    """DEPTHWISE_CONV_2D on the tile kernels: the staged buffer holds C·m channels (input channel c
    repeated m times) so output channel j reads staged channel j; one step per tap."""
    kind = p["kind"]
    N, H, W, C, OC, m = p["N"], p["H"], p["W"], p["C"], p["OC"], p["m"]
    KH, KW, OH, OW = p["KH"], p["KW"], p["OH"], p["OW"]
    Hp, Wp = _staged_hw(p)
    es = 4 if kind == "float32" else 2
    NB = -(-OC // gemm.LANES)
    T = KH * KW
    tab = np.array([[((ky * p["dh"]) * Wp + kx * p["dw"]) * OC * es
                     for ky in range(KH) for kx in range(KW)]], np.int64)
    wz = np.zeros((T, NB * gemm.LANES), np.float32 if es == 4 else np.int16)
    wz[:, :OC] = np.asarray(p["w"].data).reshape(T, OC)
    wpk = np.ascontiguousarray(wz.reshape(T, NB, gemm.LANES).transpose(1, 0, 2))
    oes = 4 if kind != "int8" else 1
    plan, prm = _tile_epilogue(ctx, p, 3, (gemm.K_DW_I8, gemm.K_DW_F32, gemm.K_DW_H), dw=True)
    plan.set(N=N, H=H, W_=W, C=C, HP=Hp, WP=Wp, PT=p["pt"], PL=p["pl"], MULT=m)
    plan.tiles(N * OH * OW, OC, oes, _pix_offsets(p, Hp, Wp, OC, es), tab, [T] * NB, wpk, prm,
               aoff_stride=gemm.LANES * es)
    plan.set(STAGED=1)
    xp = gemm.aligned_empty(N * Hp * Wp * OC + gemm.STAGE_SLACK, np.float32 if es == 4 else np.int16)
    return gemm.runner(kind, xp, plan.build())


# ---- DEPTHWISE_CONV_2D --------------------------------------------------------------------------

@njit(cache=True)
def _dw_pad(x, xs, zp, pt, pl, mult):
    """Phase-split padded copy: column X = pl + ix of the padded image goes to xs[n, pt + iy, X % S,
    X // S, c·mult + j] = x[n, iy, ix, c] - zp[n] (S = xs.shape[2], the horizontal stride; the
    border stays 0). Taps then read contiguous runs of output pixels for any stride."""
    N, H, W, C = x.shape
    S = xs.shape[2]
    for n in range(N):
        z = zp[n]
        for iy in range(H):
            for ix in range(W):
                X = pl + ix
                dst = xs[n, pt + iy, X % S, X // S]
                src = x[n, iy, ix]
                if mult == 1:
                    for c in range(C):
                        dst[c] = src[c] - z
                else:
                    for c in range(C):
                        v = src[c] - z
                        for j in range(mult):
                            dst[c * mult + j] = v


@njit(cache=True)
def _dw_core(xs, wt, init, sh, dh, dw, ob, lo, hi, acc):
    """acc[n, oy, ox, c] = clamp(init[c] + Σ_{ky,kx} xpad[n, oy·sh + ky·dh, ox·S + kx·dw, c]·w[ky, kx, c]).

    Works on blocks of `ob` output pixels: the block's ob·C accumulators form one contiguous run and
    so does each tap's input (phase (kx·dw) % S, offset (kx·dw) // S); wt[ky, kx] and init hold the
    per-channel weights / initial values tiled ob times.
    """
    N, OH, OW, C = acc.shape
    KH, KW = wt.shape[0], wt.shape[1]
    S = xs.shape[2]
    af = acc.reshape(-1)
    for n in range(N):
        for oy in range(OH):
            for ox0 in range(0, OW, ob):
                L = min(ob, OW - ox0) * C
                a0 = ((n * OH + oy) * OW + ox0) * C
                a = af[a0:a0 + L]  # views indexed from 0 keep the inner loops vectorizable
                for i in range(L):
                    a[i] = init[i]
                for ky in range(KH):
                    iy = oy * sh + ky * dh
                    for kx in range(KW):
                        off = kx * dw
                        s0 = (ox0 + off // S) * C
                        src = xs[n, iy, off % S].reshape(-1)[s0:s0 + L]
                        wv = wt[ky, kx]
                        for i in range(L):
                            a[i] += src[i] * wv[i]
                for i in range(L):
                    v = a[i]
                    v = lo if v < lo else v
                    a[i] = hi if v > hi else v


def _dw_setup(ctx):
    x, w, y, bias, kind = _filter_node_inputs(ctx)
    N, H, W, C = x.shape
    one, KH, KW, OC = w.shape
    if one != 1:
        ctx.fail(f"depthwise filter must have shape [1, KH, KW, C·m], got {w.shape}")
    if min(N, H, W, C, OC, KH, KW) <= 0:
        ctx.fail(f"empty tensor: input {x.shape}, filter {w.shape}")
    if OC % C:
        ctx.fail(f"filter channels {OC} are not a multiple of input channels {C}")
    m = OC // C  # TFLite derives the multiplier from the shapes; the option is not consulted
    sh, sw, dh, dw = _strides(ctx)
    padding = _padding(ctx)
    act = _act(ctx)
    OH, OW, pt, pl = _out_hw(ctx, padding, H, W, KH, KW, sh, sw, dh, dw)
    return dict(x=x, w=w, y=y, bias=bias, kind=kind, N=N, H=H, W=W, C=C, OC=OC, KH=KH, KW=KW, m=m,
                sh=sh, sw=sw, dh=dh, dw=dw, OH=OH, OW=OW, pt=pt, pl=pl, act=act)


def depthwise_ref(ctx, ins):
    p = _dw_setup(ctx)
    x, w = np.asarray(ins[0]), np.asarray(ins[1])
    OH, OW, sh, sw, dh, dw, m = p["OH"], p["OW"], p["sh"], p["sw"], p["dh"], p["dw"], p["m"]
    if p["kind"] == "float32":
        xs, wv, b = x.astype(np.float64), w.astype(np.float64), np.zeros(p["OC"])
        if p["bias"] is not None:
            b = np.asarray(ins[2], np.float64)
    elif p["kind"] == "hybrid":
        pcs, _, hbias, _, _ = _hybrid_setup(ctx, p, 3, False)
        xs, sf = _hybrid_ref_quantize(x, True)
        wv, b = w.astype(np.int64), np.zeros(p["OC"], np.int64)
    else:
        xs, wv = x.astype(np.int64) - p["x"].quant.zp, w.astype(np.int64)
        b = np.zeros(p["OC"], np.int64) if p["bias"] is None else np.asarray(ins[2], np.int64)
    xs = np.repeat(xs, m, axis=3)  # channel c·m + j reads input channel c
    xp = _padded(xs, p["pt"], p["pl"], (OH - 1) * sh + (p["KH"] - 1) * dh + 1,
                 (OW - 1) * sw + (p["KW"] - 1) * dw + 1)
    acc = np.zeros((p["N"], OH, OW, p["OC"]), xs.dtype) + b
    for ky in range(p["KH"]):
        for kx in range(p["KW"]):
            acc += xp[:, ky * dh: ky * dh + (OH - 1) * sh + 1: sh,
                      kx * dw: kx * dw + (OW - 1) * sw + 1: sw, :] * wv[0, ky, kx, :]
    if p["kind"] == "float32":
        lo, hi = activation_range_float(p["act"])
        return [np.clip(acc, lo, hi).astype(np.float32)]
    if p["kind"] == "hybrid":
        return [_hybrid_ref_out(acc, pcs, sf, hbias, p["act"])]
    mult, lo, hi = _quant_out(ctx, p["x"], p["y"], _filter_scales(ctx, p["w"], p["OC"], 3), p["act"])
    return [_requant_ref(acc, mult, p["y"].quant.zp, lo, hi)]


def prepare_depthwise(ctx):
    p = _dw_setup(ctx)
    if _dw_uses_tiles(p):
        return _prepare_dw_tiles(ctx, p), [(p["N"], p["OH"], p["OW"], p["OC"])]
    N, OC, KH, KW, m = p["N"], p["OC"], p["KH"], p["KW"], p["m"]
    OH, OW, sh, sw, dh, dw, pt, pl = (p[k] for k in ("OH", "OW", "sh", "sw", "dh", "dw", "pt", "pl"))
    M = N * OH * OW
    out_shape = (N, OH, OW, OC)
    Hp = max(pt + p["H"], (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(pl + p["W"], (OW - 1) * sw + (KW - 1) * dw + 1)
    # phase-split columns: every read index ox + (kx·dw)//sw and every written pl + ix fits Wq
    Wq = max((Wp + sw - 1) // sw, OW + ((KW - 1) * dw) // sw)
    ob = max(1, min(OW, 1024 // OC))  # output pixels per block: ~1024 accumulators
    wdata = np.asarray(p["w"].data).reshape(KH, KW, OC)

    wmax = _absmax(wdata) if wdata.dtype == np.int8 else 0
    # integer paths: |x - zp| <= 255, float32 tap sums are exact while KH·KW·255·max|w| <= 2^24
    ft = np.float32 if KH * KW * 255 * wmax <= gemm.F32_EXACT else np.float64
    xs = np.zeros((N, Hp, sw, Wq, OC), ft)
    wt = np.ascontiguousarray(np.tile(wdata.astype(ft), (1, 1, ob)))

    if p["kind"] == "float32":
        init = np.tile(_bias_values(ctx, p["bias"], OC, np.float32), ob)
        lo, hi = _float_range(ctx, p["act"])
        zeros = np.zeros(N, np.int32)

        def run(ins, outs):
            _dw_pad(ins[0], xs, zeros, pt, pl, m)
            _dw_core(xs, wt, init, sh, dh, dw, ob, lo, hi, outs[0])
        return run, [out_shape]

    init = np.zeros(ob * OC, ft)
    flo, fhi = ft(-np.inf), ft(np.inf)
    acc = np.empty((N, OH, OW, OC), ft)
    acc2 = acc.reshape(M, OC)

    if p["kind"] == "hybrid":
        pcs, _, bias, lo, hi = _hybrid_setup(ctx, p, 3, False)
        H, W, C = p["H"], p["W"], p["C"]
        Xq = np.empty((N, H * W * C), np.float32)
        X4 = Xq.reshape(N, H, W, C)
        sf = np.empty(N, np.float32)
        off = np.empty(N, np.int32)
        nocol = np.zeros(OC, np.int64)
        HWC = H * W * C

        def run(ins, outs):
            gemm.quantize_rows(ins[0].reshape(N, HWC), Xq, sf, off, True)
            _dw_pad(X4, xs, off, pt, pl, m)
            _dw_core(xs, wt, init, sh, dh, dw, ob, flo, fhi, acc)
            _hybrid_out(acc2, nocol, off, pcs, sf, bias, OH * OW, 0, lo, hi, outs[0].reshape(M, OC))
        return run, [out_shape]

    xq, yq = p["x"].quant, p["y"].quant
    fscales = _filter_scales(ctx, p["w"], OC, 3)
    mult, qlo, qhi = _quant_out(ctx, p["x"], p["y"], fscales, p["act"])
    q, left, right = gemm.requant_params(mult)
    bias = _bias_values(ctx, p["bias"], OC, np.int64)
    zp_in = np.full(N, xq.zp, np.int32)
    zp_out = yq.zp

    def run(ins, outs):
        _dw_pad(ins[0], xs, zp_in, pt, pl, m)
        _dw_core(xs, wt, init, sh, dh, dw, ob, flo, fhi, acc)
        gemm.requant(acc2, bias, q, left, right, zp_out, qlo, qhi, outs[0].reshape(M, OC))
    return run, [out_shape]


# ---- TRANSPOSE_CONV -----------------------------------------------------------------------------

@njit(cache=True)
def _col2im(cols, acc, init, H, W, KH, KW, sh, sw, pt, pl):
    """acc[n, iy·sh - pt + ky, ix·sw - pl + kx, oc] += Σ_ch cols[ch, m, (ky·KW + kx)·OC + oc]."""
    N, OH, OW, OC = acc.shape
    nch = cols.shape[0]
    for n in range(N):
        for oy in range(OH):
            for ox in range(OW):
                a = acc[n, oy, ox]
                for oc in range(OC):
                    a[oc] = init[oc]
    for n in range(N):
        for iy in range(H):
            for ix in range(W):
                m = (n * H + iy) * W + ix
                for ky in range(KH):
                    oy = iy * sh - pt + ky
                    if oy < 0 or oy >= OH:
                        continue
                    for kx in range(KW):
                        ox = ix * sw - pl + kx
                        if ox < 0 or ox >= OW:
                            continue
                        base = (ky * KW + kx) * OC
                        a = acc[n, oy, ox]
                        for ch in range(nch):
                            src = cols[ch, m, base:base + OC]
                            for oc in range(OC):
                                a[oc] += src[oc]


@njit(cache=True)
def _shift_to_f32(x, zp, out):
    """out[m, c] = x[m, c] - zp as float32 (exact for int8)."""
    M, C = x.shape
    for i in range(M):
        for c in range(C):
            out[i, c] = np.float32(x[i, c]) - zp


def _tconv_setup(ctx):
    if len(ctx.ins) < 3:
        ctx.fail("TRANSPOSE_CONV needs inputs (output_shape, weights, input[, bias])")
    oshape = _const(ctx, 0, "output_shape")
    w = _const(ctx, 1, "weights")
    x, y = ctx.ins[2], ctx.outs[0]
    if oshape is None or w is None or x is None:
        ctx.fail("missing output_shape, weights or input")
    bias = _const(ctx, 3, "bias")
    if oshape.dtype != np.int32 or oshape.size != 4:
        ctx.fail(f"output_shape must be an int32 vector of 4 values, got {oshape.dtype} {oshape.shape}")
    kind = _kind(ctx, x, w, y, bias)
    N, H, W, IC = x.shape
    OC, KH, KW, IC2 = w.shape
    on, OH, OW, oc = (int(v) for v in np.asarray(oshape.data).ravel())
    if IC2 != IC:
        ctx.fail(f"weights input channels {IC2} != input channels {IC}")
    if on != N or oc != OC or OH <= 0 or OW <= 0:
        ctx.fail(f"output_shape {[on, OH, OW, oc]} does not match batch {N} / weights {w.shape}")
    if min(N, H, W, IC, OC, KH, KW) <= 0:
        ctx.fail(f"empty tensor: input {x.shape}, weights {w.shape}")
    sh, sw, _, _ = _strides(ctx, dilation=False)
    padding = _padding(ctx)
    act = _act(ctx)
    ih, iw = gemm.out_size(padding, OH, KH, sh, 1), gemm.out_size(padding, OW, KW, sw, 1)
    if (ih, iw) != (H, W):
        ctx.fail(f"output_shape {OH}x{OW} with {padding} padding, stride {sh}x{sw} and a {KH}x{KW} "
                 f"filter implies a {ih}x{iw} input, got {H}x{W}")
    pt = gemm.pad_before(OH, KH, sh, 1, ih)
    pl = gemm.pad_before(OW, KW, sw, 1, iw)
    return dict(x=x, w=w, y=y, bias=bias, kind=kind, N=N, H=H, W=W, IC=IC, OC=OC, KH=KH, KW=KW,
                OH=OH, OW=OW, sh=sh, sw=sw, pt=pt, pl=pl, act=act)


def transpose_conv_ref(ctx, ins):
    p = _tconv_setup(ctx)
    w, x = np.asarray(ins[1]), np.asarray(ins[2])
    N, H, W, OC, KH, KW, sh, sw = (p[k] for k in ("N", "H", "W", "OC", "KH", "KW", "sh", "sw"))
    OH, OW, pt, pl = p["OH"], p["OW"], p["pt"], p["pl"]
    has_bias = p["bias"] is not None  # decided from the specs: callers may pass absent inputs oddly
    if p["kind"] == "float32":
        xs, wv = x.astype(np.float64), w.astype(np.float64)
        b = np.asarray(ins[3], np.float64) if has_bias else np.zeros(OC)
    else:
        xs, wv = x.astype(np.int64) - p["x"].quant.zp, w.astype(np.int64)
        b = np.asarray(ins[3], np.int64) if has_bias else np.zeros(OC, np.int64)
    FH = max((H - 1) * sh + KH, pt + OH)
    FW = max((W - 1) * sw + KW, pl + OW)
    full = np.zeros((N, FH, FW, OC), xs.dtype)
    for ky in range(KH):
        for kx in range(KW):
            full[:, ky: ky + (H - 1) * sh + 1: sh,
                 kx: kx + (W - 1) * sw + 1: sw, :] += xs @ wv[:, ky, kx, :].T
    acc = full[:, pt:pt + OH, pl:pl + OW, :] + b
    if p["kind"] == "float32":
        lo, hi = activation_range_float(p["act"])
        return [np.clip(acc, lo, hi).astype(np.float32)]
    mult, lo, hi = _quant_out(ctx, p["x"], p["y"], _filter_scales(ctx, p["w"], OC, 0), p["act"])
    return [_requant_ref(acc, mult, p["y"].quant.zp, lo, hi)]


def prepare_transpose_conv(ctx):
    p = _tconv_setup(ctx)
    N, H, W, IC, OC, KH, KW = (p[k] for k in ("N", "H", "W", "IC", "OC", "KH", "KW"))
    OH, OW, sh, sw, pt, pl = (p[k] for k in ("OH", "OW", "sh", "sw", "pt", "pl"))
    M, Mo, KKO = N * H * W, N * OH * OW, KH * KW * OC
    out_shape = (N, OH, OW, OC)
    wdata = np.asarray(p["w"].data)
    # Wt[ic, (ky·KW + kx)·OC + oc] = w[oc, ky, kx, ic]
    Wt = np.ascontiguousarray(wdata.transpose(3, 1, 2, 0).reshape(IC, KKO), np.float32)
    geo = (H, W, KH, KW, sh, sw, pt, pl)

    if p["kind"] == "float32":
        bias = _bias_values(ctx, p["bias"], OC, np.float32)
        lo, hi = _float_range(ctx, p["act"])
        cols = np.empty((1, M, KKO), np.float32)
        c2 = cols[0]
        has_act = p["act"] != "NONE"
        zeros = np.zeros(OC, np.float32)

        def run(ins, outs):
            np.matmul(ins[2].reshape(M, IC), Wt, out=c2)
            _col2im(cols, outs[0], bias, *geo)
            if has_act:
                o2 = outs[0].reshape(Mo, OC)
                gemm.bias_act(o2, zeros, lo, hi)
        return run, [out_shape]

    xq, yq = p["x"].quant, p["y"].quant
    fscales = _filter_scales(ctx, p["w"], OC, 0)
    mult, lo, hi = _quant_out(ctx, p["x"], p["y"], fscales, p["act"])
    q, left, right = gemm.requant_params(mult)
    bias = _bias_values(ctx, p["bias"], OC, np.int64)
    chunk = gemm.exact_chunk(255, _absmax(wdata), IC)
    chunks = gemm.chunk_bounds(IC, chunk)
    Xf = np.empty((M, IC), np.float32)
    cols = np.empty((len(chunks), M, KKO), np.float32)
    views = [(Xf[:, k0:k1], Wt[k0:k1], cols[ci]) for ci, (k0, k1) in enumerate(chunks)]
    acc = np.empty((N, OH, OW, OC), np.int32)
    init = np.zeros(OC, np.int32)
    acc2 = acc.reshape(Mo, OC)
    zp_in = np.float32(xq.zp)
    zp_out = yq.zp

    def run(ins, outs):
        _shift_to_f32(ins[2].reshape(M, IC), zp_in, Xf)
        for a, b, c in views:
            np.matmul(a, b, out=c)
        _col2im(cols, acc, init, *geo)
        gemm.requant(acc2, bias, q, left, right, zp_out, lo, hi, outs[0].reshape(Mo, OC))
    return run, [out_shape]


OPS = {
    "CONV_2D": (prepare_conv2d, conv2d_ref),
    "DEPTHWISE_CONV_2D": (prepare_depthwise, depthwise_ref),
    "TRANSPOSE_CONV": (prepare_transpose_conv, transpose_conv_ref),
}
