"""UNIDIRECTIONAL_SEQUENCE_LSTM in the three forms LiteRT runs, and two bidirectional ops built
on it: the builtin BIDIRECTIONAL_SEQUENCE_LSTM (float32 and hybrid; LiteRT has no integer form)
and the xnn op BIDI_SEQUENCE_LSTM (tf_keras' Bidirectional(LSTM) pattern fused by
converter.passes.fuse_bidirectional_lstm; all three forms). See "bidirectional" below.

Inputs (24, or 20 without layer norm): 0 x; 1-4 input→{i,f,c,o} weights [nc, ni]; 5-8 recurrent→
{i,f,c,o} weights [nc, no]; 9-11 peephole c→{i,f,o} [nc]; 12-15 gate biases {i,f,c,o} [nc];
16 projection weights [no, nc]; 17 projection bias [no]; 18 output state h [B, no] and 19 cell state
c [B, nc] (variable tensors, updated in place); 20-23 layer-norm coefficients (rejected).
Absent input gate (1, 5, 12) = CIFG: i = 1 - f. x is [T, B, ni] (time_major) or [B, T, ni].

One step, per batch row (σ = logistic, g = the fused activation, ⊙ elementwise):
    i = σ(Wxi·x + Whi·h + pi⊙c + bi)      f = σ(Wxf·x + Whf·h + pf⊙c + bf)
    z = g(Wxc·x + Whc·h + bc)             c' = clip(f⊙c + i⊙z, cell_clip)
    o = σ(Wxo·x + Who·h + po⊙c' + bo)     m = o⊙g(c')
    h' = clip(Wp·m + bp, proj_clip)  (m itself without projection, which needs no = nc);  y_t = h'

float32: the above in float32 (tolerance 1e-5 relative vs LiteRT, whose matmuls sum in another order
and whose σ/tanh are Eigen's vectorized approximations; ours are the polynomial ones below).

hybrid (float32 x/h/c, int8 weights w with scale s_w): every matmul operand vector v (x, h, m) is
quantized per batch row on the fly, as LiteRT's BatchQuantizeFloats does in float32:
    symmetric:  r = max|v|; s_v = r/127; q = clamp(round(v·(127/r)), ±127); r = 0: q = 0, s_v = 1
    asymmetric: [lo, hi] = [min(0, min v), max(0, max v)] in double; s = (hi - lo)/255;
                zp = nudged(-128 - lo/s or 127 - hi/s, whichever errs less);
                q = clamp(round(zp + v/s))
and the gate accumulates  gate += float32(Σ q·w - zp·Σw) · float32(s_v·s_w)  in LiteRT's order
(bias, input part, recurrent part, peephole p·s_p).  A one-ulp float difference that lands on a
rounding boundary flips one quantized value by a step now and then, so this form agrees with LiteRT
to a documented looser tolerance (the integer dot products themselves are exact).

integer 8x8→16 (int8 x/h/y, int8 weights, int32 biases, int16 c with scale 2^cs, optional int16
peephole; bit-exact with LiteRT's EvalInteger8x8_16; MBQM = TFLite MultiplyByQuantizedMultiplier):
    gate pre-activations are Q3.12 (scale 2^-12; intermediates 0-3 matter only with layer norm):
        a_x = clamp16(MBQM(bx + Σ x·Wx, s_x·s_Wx/2^-12)),   bx = b - zp_x·ΣWx (folded at load)
        a   = clamp16(MBQM(-zp_h·ΣWh + Σ h·Wh, s_h·s_Wh/2^-12) + a_x)   (scales in float32)
        peephole: a = clamp16(a + MBQM(p·c, 2^cs·s_p/2^-12))  (c before the update for i and f,
        after it for o; LiteRT walks p with the output size, so it needs no = nc)
    i, f, o = logistic(a) and z = tanh(a) in gemmlowp int16 fixed point: Q3.12 → Q0.15
    c'  = sat16( wrap16(rdpot(f·c, 15)) + wrap16(rdpot(i·z, 30 + cs)) ),  CIFG: i = 32767 - f;
          clipped to ±trunc(cell_clip / s_c) when cell_clip > 0
    m   = clamp8(MBQM(o·tanh_{15+cs}(c'), 2^-30 / s_m) ± zp_m)   (s_m, zp_m: intermediate 4):
          + zp_m without projection (m is the output), - zp_m with projection, whose bias then
          gets + zp_m·ΣWp (LiteRT's convention, b/246629213)
    h'  = clamp8(MBQM(bp + zp_m·ΣWp + Σ m·Wp, s_Wp·s_m/s_h) + zp_h),
          clipped to ±trunc(proj_clip/s_y) (h' = m without projection);
    y_t = h' copied raw (y is expected to share h's quantization)
    LiteRT's tanh handles Q(k) for k = 15 + cs in 0..6 only; for other cell scales (the TF
    converter emits 2^-18 for small calibrated cells) its output buffer keeps the input gate, so
    m uses o·i instead of o·tanh(c') (undefined with CIFG: rejected).
    LiteRT starts (and resets) an int8 variable tensor at its zero point, the others at 0.
rdpot = round-half-away right shift; wrap16 = the int16 truncation LiteRT's CwiseMul performs.
The logistic/tanh tables (65536 entries per input format) are built once from a NumPy model of
gemmlowp's int16 fixed-point exp / Newton-Raphson reciprocal (also the reference).

Fast paths: the input-side matmul of every time step is one BLAS product before the recurrence
(int8 operands in float32 are exact while a chunk of ≤ 1024 products of magnitude ≤ 2^14 sums
below 2^24); the recurrence runs in one @njit function per form, every form with one weight row
per gate column, its products summed in float32 under fastmath reassociation (_row_sums_f32, the
only fastmath code; the integer forms' sums are exact in any order by the same bound); the int8
form's fixed-point steps (MBQM, rounding shifts) are branch-free so their loops vectorize; float
σ/tanh are vectorizable polynomials.
Each recurrence can walk time backwards and write into a column range of a wider output, which
is how a backward direction runs on x itself and both directions fill one merged output.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numba import njit

from ..ir import OpContext, frozen_options
from .quant import activation_name, mbqm_bf, mbqm_ref, mbqm_split, quantize_multiplier, rdbypot_bf

# input slots
X = 0
W_X = (1, 2, 3, 4)          # input-to-{input, forget, cell, output} weights
W_H = (5, 6, 7, 8)          # recurrent-to-{...} weights
PEEP = (9, 10, 11)          # cell-to-{input, forget, output} (peephole)
BIAS = (12, 13, 14, 15)
W_P, B_P = 16, 17
H_STATE, C_STATE = 18, 19
LAYER_NORM = (20, 21, 22, 23)
SLOT_NAMES = {
    0: "input", 1: "input_to_input_weights", 2: "input_to_forget_weights",
    3: "input_to_cell_weights", 4: "input_to_output_weights", 5: "recurrent_to_input_weights",
    6: "recurrent_to_forget_weights", 7: "recurrent_to_cell_weights",
    8: "recurrent_to_output_weights", 9: "cell_to_input_weights", 10: "cell_to_forget_weights",
    11: "cell_to_output_weights", 12: "input_gate_bias", 13: "forget_gate_bias",
    14: "cell_gate_bias", 15: "output_gate_bias", 16: "projection_weights", 17: "projection_bias",
    18: "output_state", 19: "cell_state", 20: "input_layer_norm_coefficients",
    21: "forget_layer_norm_coefficients", 22: "cell_layer_norm_coefficients",
    23: "output_layer_norm_coefficients",
}
ACT_CODES = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}
CHUNK = 1024  # float32 sums of ≤ 1024 int8·int8 products (|p| ≤ 2^14) stay exact (≤ 2^24)
GATE_SCALE = 2.0 ** -12   # Q3.12 gate pre-activations of the integer form (no layer norm)


# ---- configuration shared by prepare and reference ---------------------------------------------

class _Cfg:
    pass


def _name(ctx, k):
    t = ctx.ins[k]
    return f"{SLOT_NAMES[k]} '{t.name}'"


def _parse(ctx) -> _Cfg:
    ins = ctx.ins
    if len(ins) not in (20, 24):
        ctx.fail(f"UNIDIRECTIONAL_SEQUENCE_LSTM takes 20 or 24 inputs, got {len(ins)}")
    if len(ctx.outs) != 1:
        ctx.fail(f"UNIDIRECTIONAL_SEQUENCE_LSTM has one output, got {len(ctx.outs)}")
    get = lambda k: ins[k] if k < len(ins) else None  # noqa: E731
    for k in (X, 2, 3, 4, 6, 7, 8, 13, 14, 15, H_STATE, C_STATE):
        if get(k) is None:
            ctx.fail(f"required input {k} ({SLOT_NAMES[k]}) is absent")
    if any(get(k) is not None for k in LAYER_NORM):
        ctx.fail("layer-norm LSTM (inputs 20-23) is not supported")
    cfg = _Cfg()
    x = ins[X]
    if len(x.shape) != 3:
        ctx.fail(f"{_name(ctx, X)} must be 3-D [time, batch, features] or [batch, time, features], "
                 f"got shape {x.shape}")
    cfg.time_major = bool(ctx.opt.get("time_major", False))
    if cfg.time_major:
        cfg.T, cfg.B, cfg.ni = (int(d) for d in x.shape)
    else:
        cfg.B, cfg.T, cfg.ni = (int(d) for d in x.shape)
    if bool(ctx.opt.get("diagonal_recurrent_tensors", False)):
        ctx.fail("diagonal_recurrent_tensors=True is not supported")
    try:
        cfg.act = activation_name(ctx.opt.get("fused_activation_function", 0))
    except ValueError as e:
        ctx.fail(str(e))
    if cfg.act not in ACT_CODES:
        ctx.fail(f"cell activation {cfg.act} is not supported (LiteRT leaves NONE outputs "
                 f"unwritten); use one of {sorted(ACT_CODES)}")
    cfg.cell_clip = float(np.float32(ctx.opt.get("cell_clip", 0.0)))
    cfg.proj_clip = float(np.float32(ctx.opt.get("proj_clip", 0.0)))
    if not (cfg.cell_clip >= 0 and cfg.proj_clip >= 0):
        ctx.fail(f"cell_clip and proj_clip must be >= 0, got {cfg.cell_clip}, {cfg.proj_clip}")

    wo = ins[W_X[3]]
    if len(wo.shape) != 2 or wo.shape[1] != cfg.ni:
        ctx.fail(f"{_name(ctx, W_X[3])} must be [n_cell, {cfg.ni}], got {wo.shape}")
    cfg.nc = int(wo.shape[0])
    who = ins[W_H[3]]
    if len(who.shape) != 2 or who.shape[0] != cfg.nc:
        ctx.fail(f"{_name(ctx, W_H[3])} must be [{cfg.nc}, n_output], got {who.shape}")
    cfg.no = int(who.shape[1])
    if min(cfg.T, cfg.B, cfg.ni, cfg.nc, cfg.no) < 1:
        ctx.fail(f"empty dimension: time {cfg.T}, batch {cfg.B}, input {cfg.ni}, cell {cfg.nc}, "
                 f"output {cfg.no}")

    cfg.cifg = get(W_X[0]) is None
    if (get(W_H[0]) is None) != cfg.cifg or (get(BIAS[0]) is None) != cfg.cifg:
        ctx.fail("input gate tensors (1, 5, 12) must be all present or all absent (CIFG)")
    gates = (1, 2, 3) if cfg.cifg else (0, 1, 2, 3)
    cfg.gates = gates
    cfg.G = len(gates)

    def shape_is(k, shape):
        t = get(k)
        if tuple(t.shape) != tuple(shape):
            ctx.fail(f"{_name(ctx, k)} has shape {tuple(t.shape)}, expected {tuple(shape)}")
        if t.data is None:
            ctx.fail(f"{_name(ctx, k)} must be a constant tensor")

    for g in gates:
        shape_is(W_X[g], (cfg.nc, cfg.ni))
        shape_is(W_H[g], (cfg.nc, cfg.no))
        shape_is(BIAS[g], (cfg.nc,))
    peep = [get(k) is not None for k in PEEP]
    cfg.peephole = peep[2]
    bad_input_peep = peep[0] if cfg.cifg else peep[0] != cfg.peephole
    if cfg.peephole != peep[1] or bad_input_peep:
        ctx.fail("peephole weights (9-11) must be all present or all absent (9 absent with CIFG)")
    if cfg.peephole:
        for k in PEEP[(1 if cfg.cifg else 0):]:
            shape_is(k, (cfg.nc,))
    cfg.projection = get(W_P) is not None
    if get(B_P) is not None and not cfg.projection:
        ctx.fail(f"{_name(ctx, B_P)} given without projection weights")
    if cfg.projection:
        shape_is(W_P, (cfg.no, cfg.nc))
        if get(B_P) is not None:
            shape_is(B_P, (cfg.no,))
    elif cfg.no != cfg.nc:
        ctx.fail(f"without projection the output size ({cfg.no}) must equal the cell size "
                 f"({cfg.nc})")
    for k, n in ((H_STATE, cfg.B * cfg.no), (C_STATE, cfg.B * cfg.nc)):
        t = ins[k]
        if not t.is_variable:
            ctx.fail(f"{_name(ctx, k)} must be a variable tensor")
        if t.size != n:
            ctx.fail(f"{_name(ctx, k)} has {t.size} elements, expected batch·size = {n}")
    cfg.out_shape = tuple(x.shape[:2]) + (cfg.no,)

    # ---- dtype form
    y = ctx.outs[0]
    wdt = ins[W_X[3]].dtype
    weights = [W_X[g] for g in gates] + [W_H[g] for g in gates] + ([W_P] if cfg.projection else [])
    for k in weights:
        if ins[k].dtype != wdt:
            ctx.fail(f"{_name(ctx, k)} is {ins[k].dtype.name}, other weights are {wdt.name}")
    if x.dtype == np.float32 and wdt == np.float32:
        cfg.form = "float"
    elif x.dtype == np.float32 and wdt == np.int8:
        cfg.form = "hybrid"
    elif x.dtype == np.int8 and wdt == np.int8:
        cfg.form = "int8"
    else:
        ctx.fail(f"unsupported dtypes: input {x.dtype.name} with weights {wdt.name} (supported: "
                 "float32/float32, float32/int8 hybrid, int8/int8 integer)")
    if y.dtype != x.dtype:
        ctx.fail(f"output '{y.name}' is {y.dtype.name}, input is {x.dtype.name}")
    bias_dt = np.int32 if cfg.form == "int8" else np.float32
    for k in [BIAS[g] for g in gates] + ([B_P] if get(B_P) is not None else []):
        if ins[k].dtype != bias_dt:
            ctx.fail(f"{_name(ctx, k)} must be {np.dtype(bias_dt).name}, got {ins[k].dtype.name}")
    state_dt = {"float": (np.float32, np.float32), "hybrid": (np.float32, np.float32),
                "int8": (np.int8, np.int16)}[cfg.form]
    for k, dt in zip((H_STATE, C_STATE), state_dt):
        if ins[k].dtype != dt:
            ctx.fail(f"{_name(ctx, k)} must be {np.dtype(dt).name}, got {ins[k].dtype.name}")
    if cfg.peephole:
        pdt = {"float": np.float32, "hybrid": np.int8, "int8": np.int16}[cfg.form]
        for k in PEEP[(1 if cfg.cifg else 0):]:
            if ins[k].dtype != pdt:
                ctx.fail(f"{_name(ctx, k)} must be {np.dtype(pdt).name}, got {ins[k].dtype.name}")
    if cfg.form != "float":
        for k in weights + [k for k in PEEP if get(k) is not None]:
            _per_tensor_scale(ctx, k, symmetric=True)
    if cfg.form == "int8":
        _parse_int8(ctx, cfg)
    return cfg


def _per_tensor_scale(ctx, k, symmetric=False) -> float:
    t = ctx.ins[k]
    q = t.quant
    if q is None or q.scale.size == 0:
        ctx.fail(f"{_name(ctx, k)} needs quantization parameters")
    if q.scale.size != 1:
        ctx.fail(f"{_name(ctx, k)}: per-channel quantization is not supported (LiteRT's LSTM reads "
                 "one scale)")
    if not (np.isfinite(q.s) and q.s > 0):
        ctx.fail(f"{_name(ctx, k)} has invalid scale {q.s}")
    if symmetric and q.zp != 0:
        ctx.fail(f"{_name(ctx, k)} must be symmetric (zero point 0, got {q.zp})")
    return float(q.s)


def _log2_exact(s: float):
    """TFLite CheckedLog2: the rounded log2 if s is a power of two within 1e-3, else None."""
    lg = np.float32(math.log(np.float32(s))) * np.float32(1.0 / math.log(2.0))
    r = np.round(lg)
    return int(r) if abs(float(lg - r)) < 1e-3 else None


def _parse_int8(ctx, cfg):
    ins = ctx.ins
    f32 = np.float32
    cfg.s_x = _per_tensor_scale(ctx, X)
    cfg.zp_x = ins[X].quant.zp
    cfg.s_h = _per_tensor_scale(ctx, H_STATE)
    cfg.zp_h = ins[H_STATE].quant.zp
    s_c = _per_tensor_scale(ctx, C_STATE)
    cs = _log2_exact(s_c)
    if cs is None:
        ctx.fail(f"{_name(ctx, C_STATE)} scale {s_c} is not a power of two")
    if not -30 <= cs <= 1:
        ctx.fail(f"{_name(ctx, C_STATE)} scale 2^{cs} is out of range (the i·z product is shifted "
                 f"right by 30 + cs bits, which must be 0..31)")
    cfg.cs = cs
    # LiteRT's ApplyTanh handles Q(k) inputs for k = 15 + cs in 0..6 only; for any other cell scale
    # (the TF converter does emit 2^-18 for small calibrated cells) it leaves its output buffer
    # untouched, and that buffer still holds the input gate i: then m = o·i instead of o·tanh(c).
    # With CIFG the buffer holds nothing defined.
    cfg.tanh_is_input_gate = not -15 <= cs <= -9
    if cfg.tanh_is_input_gate and cfg.cifg:
        ctx.fail(f"{_name(ctx, C_STATE)} scale 2^{cs} is outside 2^-15..2^-9: LiteRT's result is "
                 "undefined for a CIFG LSTM")
    y = ctx.outs[0]
    if y.quant is None or y.quant.scale.size == 0:
        ctx.fail(f"output '{y.name}' needs quantization parameters")
    if len(ctx.inter) != 5:
        ctx.fail(f"the integer LSTM needs 5 intermediate tensors, got {len(ctx.inter)}")
    hid = ctx.inter[4]
    if hid.quant is None or hid.quant.scale.size == 0 or not hid.quant.s > 0:
        ctx.fail(f"intermediate 4 '{hid.name}' (hidden state) needs quantization parameters")
    cfg.s_m, cfg.zp_m = float(hid.quant.s), hid.quant.zp
    # LiteRT adds the hidden zero point without projection but subtracts it with projection (and
    # adds zp_m·ΣWp back through the projection bias)
    cfg.zp_m_signed = -cfg.zp_m if cfg.projection else cfg.zp_m
    gate = f32(GATE_SCALE)
    # effective scales as LiteRT computes them (float32 products and quotient)
    cfg.mx = [float(f32(f32(ins[W_X[g]].quant.s) * f32(cfg.s_x)) / gate) for g in cfg.gates]
    cfg.mh = [float(f32(f32(ins[W_H[g]].quant.s) * f32(cfg.s_h)) / gate) for g in cfg.gates]
    cfg.m_hidden = float(f32(2.0 ** -15 / float(f32(cfg.s_m)) * 2.0 ** -15))
    cfg.m_proj = (float(f32(f32(ins[W_P].quant.s) * f32(cfg.s_m)) / f32(cfg.s_h))
                  if cfg.projection else 1.0)
    if cfg.peephole and cfg.no != cfg.nc:
        ctx.fail(f"integer peephole needs output size == cell size (LiteRT walks the peephole "
                 f"vector with the output size {cfg.no}, not the cell size {cfg.nc})")
    # peephole: w·c is Q(cs)·s_w, rescaled to the Q3.12 gate (computed in double, stored float32)
    cfg.mp = [float(f32(2.0 ** cs * float(f32(ins[k].quant.s)) / GATE_SCALE))
              if cfg.peephole and ins[k] is not None else 1.0 for k in PEEP]
    cfg.q_cell_clip = (int(np.clip(f32(cfg.cell_clip) / f32(s_c), -32768.0, 32767.0))
                       if cfg.cell_clip > 0 else 0)
    cfg.q_proj_clip = (int(np.clip(f32(cfg.proj_clip) / f32(y.quant.s), -128.0, 127.0))
                       if cfg.proj_clip > 0 else 0)
    # zero points folded into the biases: Σ(x - zp)·w = Σ x·w - zp·Σ w (int32 in LiteRT)
    rowsum = lambda k: ins[k].data.astype(np.int64).sum(1)  # noqa: E731
    cfg.bx = [ins[BIAS[g]].data.astype(np.int64) - cfg.zp_x * rowsum(W_X[g]) for g in cfg.gates]
    cfg.bh = [(-cfg.zp_h * ins[W_H[g]].data.astype(np.int64).sum(1)) for g in cfg.gates]
    if cfg.projection:
        pb = (ins[B_P].data.astype(np.int64) if ins[B_P] is not None
              else np.zeros(cfg.no, np.int64))
        cfg.bp = pb + cfg.zp_m * ins[W_P].data.astype(np.int64).sum(1)
    else:
        cfg.bp = np.zeros(cfg.no, np.int64)
    for arr in cfg.bx + cfg.bh + [cfg.bp]:
        if np.abs(arr).max(initial=0) + 16384 * max(cfg.ni, cfg.no, cfg.nc) >= 2 ** 31:
            ctx.fail("integer LSTM accumulators could overflow int32 (bias or size too large)")


# ---- gemmlowp int16 fixed point (NumPy; the spec for the integer activations) -------------------
# Raw values are int16 held in int64 arrays; wrap16 reproduces C++'s truncation to int16 where
# gemmlowp's non-saturating Add/Sub/Neg/ShiftLeft overflow.

def _wrap16(v):
    return ((v + 32768) & 0xFFFF) - 32768


def _srdhm16(a, b):
    """SaturatingRoundingDoublingHighMul on int16: round(a·b / 2^15); -1·-1 saturates to 32767."""
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    r = np.where(s >= 0, s >> 15, -((-s) >> 15))  # C++ division truncates toward zero
    return np.where((a == -32768) & (b == -32768), 32767, _wrap16(r))


def _rdpot(x, e):
    """RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero."""
    if e == 0:
        return x
    mask = (1 << e) - 1
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + ((x & mask) > thr)


def _sat_pot16(x, e):
    """SaturatingRoundingMultiplyByPOT<e> on int16."""
    if e > 0:
        thr = (1 << (15 - e)) - 1
        return np.where(x > thr, 32767, np.where(x < -thr, -32768, _wrap16(x << e)))
    return _rdpot(x, -e)


def _const16(v, integer_bits=0):
    """Real constant v in Q(integer_bits) int16: gemmlowp stores it as int32 raw (31 - integer_bits
    fraction bits) and rounds that by 16 bits (half away from zero)."""
    raw32 = int(round(v * 2.0 ** (31 - integer_bits)))
    return int(_rdpot(np.int64(raw32), 16))


def _exp_quarter16(a):
    """exp(a) for a in [-1/4, 0), Q0.15 → Q0.15: with x = a + 1/8,
    exp(a) = e^(-1/8)·(1 + x + x²/2 + x³/6 + x⁴/24), the tail as ((x⁴/4 + x³)/3 + x²)/2.
    """
    ct = _const16(math.exp(-1 / 8))
    third = _const16(1 / 3)
    x = _wrap16(a + (1 << 12))
    x2 = _srdhm16(x, x)
    x3 = _srdhm16(x2, x)
    x4 = _srdhm16(x2, x2)
    t = _rdpot(_wrap16(_srdhm16(_wrap16(_rdpot(x4, 2) + x3), third) + x2), 1)
    return np.clip(ct + _srdhm16(ct, _wrap16(x + t)), -32768, 32767)


def _exp_neg16(a, k):
    """exp(a) for a <= 0 given in Q(k).(15-k), result Q0.15 (gemmlowp exp_on_negative_values)."""
    frac = 15 - k
    quarter = 1 << (frac - 2)
    amq = _wrap16((a & (quarter - 1)) - quarter)
    result = _exp_quarter16(_sat_pot16(amq, k))
    rem = _wrap16(amq - a)
    # exp(a) = exp(a mod 1/4 - 1/4) · Π exp(-2^e) over the bits 2^e set in the remainder
    for e in range(-2, 5):
        if k > e:
            mult = _const16(math.exp(-2.0 ** e))
            bit = (rem & (1 << (frac + e))) != 0
            result = np.where(bit, _srdhm16(result, mult), result)
    if k > 5:  # below -32 the result is 0
        result = np.where(a < _const16(-32.0, k), 0, result)
    return np.where(a == 0, 32767, result)


def _newton_recip16(a):
    """x ≈ 2/(1 + a) in Q2.13 for a in Q0.15 (0, 1): d = (1 + a)/2 (rounded half-sum), start
    x = 48/17 - 32/17·d, then three Newton-Raphson steps x += x·(1 - d·x)."""
    half_den = (a + 32767 + np.where(a + 32767 >= 0, 1, -1))
    half_den = np.where(half_den >= 0, half_den >> 1, -((-half_den) >> 1))  # (sum ± 1)/2 truncated
    x = _wrap16(_const16(48 / 17, 2) + _srdhm16(half_den, _const16(-32 / 17, 2)))
    for _ in range(3):
        one_minus = _wrap16((1 << 13) - _srdhm16(half_den, x))
        x = _wrap16(x + _sat_pot16(_srdhm16(x, one_minus), 2))
    return x


def logistic16(a, k=3):
    """gemmlowp logistic: int16 Q(k).(15-k) → Q0.15."""
    a = np.asarray(a, np.int64)
    pos = a > 0
    absx = np.where(pos, a, _wrap16(-a))
    rp = _sat_pot16(_newton_recip16(_exp_neg16(_wrap16(-absx), k)), 1)
    rn = _wrap16(32767 - rp)
    return np.where(a == 0, _const16(0.5), np.where(pos, rp, rn))


def tanh16(a, k):
    """gemmlowp tanh: int16 Q(k).(15-k) → Q0.15."""
    a = np.asarray(a, np.int64)
    neg = a < 0
    n = np.where(neg, a, _wrap16(-a))
    t = _sat_pot16(_wrap16(_newton_recip16(_exp_neg16(n, k + 1)) - (1 << 13)), 2)
    return np.where(a == 0, 0, np.where(neg, _wrap16(-t), t))


_LUTS: dict = {}


def _lut(kind: str, k: int) -> np.ndarray:
    """int16 table over all 65536 inputs (index = raw + 32768)."""
    key = (kind, k)
    if key not in _LUTS:
        raw = np.arange(-32768, 32768, dtype=np.int64)
        v = logistic16(raw, k) if kind == "logistic" else tanh16(raw, k)
        _LUTS[key] = np.ascontiguousarray(v.astype(np.int16))
    return _LUTS[key]


# ---- NumPy reference ----------------------------------------------------------------------------

def _time_view(cfg, a):
    """[T, B, ...] view of a sequence tensor in either layout."""
    return a if cfg.time_major else np.swapaxes(a, 0, 1)


def _float_act(name, v):
    if name == "TANH":
        return np.tanh(v)
    if name == "RELU":
        return np.maximum(v, 0)
    if name == "RELU6":
        return np.clip(v, 0, 6)
    return np.clip(v, -1, 1)


def _sigmoid(v):
    return (1 / (1 + np.exp(-v.astype(np.float64)))).astype(np.float32)


def _quantize_rows(v, asymmetric):
    """LiteRT BatchQuantizeFloats on each row of float32 v: (q int64, scale float32, zp int64)."""
    f32 = np.float32
    q = np.zeros(v.shape, np.int64)
    sf = np.ones(v.shape[0], np.float32)
    zp = np.zeros(v.shape[0], np.int64)
    for r in range(v.shape[0]):
        row = v[r]
        if asymmetric:
            lo, hi = min(0.0, float(row.min())), max(0.0, float(row.max()))
            if lo == hi:
                continue
            s = (hi - lo) / 255.0
            zmin, zmax = -128 - lo / s, 127 - hi / s
            z = zmin if 128 + abs(lo / s) < 127 + abs(hi / s) else zmax
            z = -128 if z <= -128 else 127 if z >= 127 else int(_round_away(z))
            sf[r], zp[r] = f32(s), z
            inv = f32(1.0 / float(f32(s)))
            q[r] = np.clip(_round_away(f32(z) + row * inv), -128, 127)
        else:
            rng = f32(max(abs(row.min()), abs(row.max())))
            if rng == 0:
                continue
            sf[r] = rng / f32(127)
            q[r] = np.clip(_round_away(row * (f32(127) / rng)), -127, 127)
    return q, sf, zp


def _round_away(v):
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _hybrid_matvec(q, sf, zp, w, s_w, acc):
    """acc += float32(Σ q·w - zp·Σ w) · float32(sf·s_w), row by row, as LiteRT accumulates."""
    dot = q @ w.astype(np.int64).T - zp[:, None] * w.astype(np.int64).sum(1)[None, :]
    return (acc + dot.astype(np.float32) * (sf * np.float32(s_w))[:, None]).astype(np.float32)


def lstm_ref(ctx, ins):
    cfg = _parse(ctx)
    x = _time_view(cfg, np.asarray(ins[X]))
    if cfg.form == "int8":
        y = _int8_ref(ctx, cfg, ins, x)
    else:
        y = _float_ref(ctx, cfg, ins, x)
    return [np.ascontiguousarray(_time_view(cfg, y))]


def _state(ins, k, shape, dt):
    return (np.zeros(shape, dt) if ins[k] is None else np.asarray(ins[k]).reshape(shape).astype(dt))


def _float_ref(ctx, cfg, ins, x):
    f32 = np.float32
    hybrid = cfg.form == "hybrid"
    asym = bool(ctx.opt.get("asymmetric_quantize_inputs", False))
    h = _state(ins, H_STATE, (cfg.B, cfg.no), f32)
    c = _state(ins, C_STATE, (cfg.B, cfg.nc), f32)
    scale = lambda k: ctx.ins[k].quant.s if hybrid else 1.0  # noqa: E731
    peep = {}
    if cfg.peephole:
        for g, k in zip((0, 1, 3), PEEP):
            if ins[k] is not None:
                peep[g] = (f32(scale(k)) * ins[k].astype(f32)) if hybrid else ins[k].astype(f32)
    y = np.zeros((cfg.T, cfg.B, cfg.no), f32)
    for t in range(cfg.T):
        xt = x[t].astype(f32)
        if hybrid:
            qx, sx, zx = _quantize_rows(xt, asym)
            qh, sh, zh = _quantize_rows(h, asym)
        pre = {}
        for g in cfg.gates:
            a = np.broadcast_to(ins[BIAS[g]].astype(f32), (cfg.B, cfg.nc)).astype(f32)
            if hybrid:
                a = _hybrid_matvec(qx, sx, zx, ins[W_X[g]], scale(W_X[g]), a)
                a = _hybrid_matvec(qh, sh, zh, ins[W_H[g]], scale(W_H[g]), a)
            else:
                a = a + xt @ ins[W_X[g]].astype(f32).T
                a = a + h @ ins[W_H[g]].astype(f32).T
            pre[g] = a.astype(f32)
        if 1 in peep:
            pre[1] = pre[1] + peep[1] * c
        f = _sigmoid(pre[1])
        if cfg.cifg:
            i = f32(1) - f
        else:
            i = _sigmoid(pre[0] + peep[0] * c if 0 in peep else pre[0])
        z = _float_act(cfg.act, pre[2]).astype(f32)
        c = (f * c + i * z).astype(f32)
        if cfg.cell_clip > 0:
            c = np.clip(c, -f32(cfg.cell_clip), f32(cfg.cell_clip))
        o = _sigmoid(pre[3] + peep[3] * c if 3 in peep else pre[3])
        m = (o * _float_act(cfg.act, c)).astype(f32)
        if cfg.projection:
            out = np.zeros((cfg.B, cfg.no), f32)
            if ins[B_P] is not None:
                out = out + ins[B_P].astype(f32)
            if hybrid:
                qm, sm, zm = _quantize_rows(m, asym)
                out = _hybrid_matvec(qm, sm, zm, ins[W_P], scale(W_P), out)
            else:
                out = out + m @ ins[W_P].astype(f32).T
            if cfg.proj_clip > 0:
                out = np.clip(out, -f32(cfg.proj_clip), f32(cfg.proj_clip))
            h = out.astype(f32)
        else:
            h = m
        y[t] = h
    return y


def _int8_ref(ctx, cfg, ins, x):
    def rq(acc, m):
        q, s = quantize_multiplier(m)
        return mbqm_ref(acc, q, s)

    # an absent int8 state starts at its zero point, as LiteRT's ResetVariableTensor fills it
    h = (np.full((cfg.B, cfg.no), cfg.zp_h, np.int64) if ins[H_STATE] is None
         else _state(ins, H_STATE, (cfg.B, cfg.no), np.int64))
    c = _state(ins, C_STATE, (cfg.B, cfg.nc), np.int64)
    y = np.zeros((cfg.T, cfg.B, cfg.no), np.int8)
    tanh_k = 15 + cfg.cs
    def peep(a, row, cell):  # a += MBQM(w·c, M_peep) saturating to int16 (peephole)
        k = PEEP[row]
        if not cfg.peephole or ins[k] is None:
            return a
        return np.clip(a + rq(ins[k].astype(np.int64) * cell, cfg.mp[row]), -32768, 32767)

    for t in range(cfg.T):
        xt = x[t].astype(np.int64)
        pre = {}
        for j, g in enumerate(cfg.gates):
            ax = np.clip(rq(cfg.bx[j] + xt @ ins[W_X[g]].astype(np.int64).T, cfg.mx[j]),
                         -32768, 32767)
            pre[g] = np.clip(rq(cfg.bh[j] + h @ ins[W_H[g]].astype(np.int64).T, cfg.mh[j]) + ax,
                             -32768, 32767)
        f = logistic16(peep(pre[1], 1, c), 3)
        i = 32767 - f if cfg.cifg else logistic16(peep(pre[0], 0, c), 3)
        z = tanh16(pre[2], 3)
        c = np.clip(_wrap16(_rdpot(f * c, 15)) + _wrap16(_rdpot(i * z, 30 + cfg.cs)),
                    -32768, 32767)
        if cfg.q_cell_clip > 0:
            c = np.clip(c, -cfg.q_cell_clip, cfg.q_cell_clip)
        o = logistic16(peep(pre[3], 2, c), 3)
        tc = i if cfg.tanh_is_input_gate else tanh16(c, tanh_k)
        m = np.clip(rq(o * tc, cfg.m_hidden) + cfg.zp_m_signed, -128, 127)
        if cfg.projection:
            h = np.clip(rq(cfg.bp + m @ ins[W_P].astype(np.int64).T, cfg.m_proj) + cfg.zp_h,
                        -128, 127)
            if cfg.q_proj_clip > 0:
                h = np.clip(h, -cfg.q_proj_clip, cfg.q_proj_clip)
        else:
            h = m
        y[t] = h
    return y


# ---- Numba kernels ------------------------------------------------------------------------------

# float32 exp for whole vectors (LLVM vectorizes these loops; libm calls would not be):
#   x = k·ln2 + r, k = floor(x·log2(e) + 1/2), |r| <= ln2/2 (ln2 split in two parts so that k·ln2
#   is exact);
#   e^r = Σ_{n<=7} r^n/n!  (truncation < 3e-9 relative);  2^k is built in the exponent bits.
# x is clamped to [-87, 88] so 2^k stays a normal float32 (measured |rel err| < 1e-7, ~2 ulp).
F_LOG2E = np.float32(1.4426950408889634)
F_LN2_HI = np.float32(0.693359375)
F_LN2_LO = np.float32(-2.12194440e-4)
F_EXP_LO = np.float32(-87.0)
F_EXP_HI = np.float32(88.0)
F_HALF = np.float32(0.5)
F_ONE = np.float32(1.0)
F_TWO = np.float32(2.0)
F_ZERO = np.float32(0.0)
F_SIX = np.float32(6.0)
F_INV = [np.float32(1.0 / math.factorial(n)) for n in range(8)]
F_C2, F_C3, F_C4, F_C5, F_C6, F_C7 = F_INV[2:]
# tanh(x) for |x| < 1/8 by its odd series x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 (error
# < 1e-12 relative); above it 1 - 2/(e^(2|x|) + 1), which loses at most ~3 bits to cancellation.
F_T3, F_T5, F_T7, F_T9 = (np.float32(-1 / 3), np.float32(2 / 15), np.float32(-17 / 315),
                          np.float32(62 / 2835))
F_TANH_SMALL = np.float32(0.125)


@njit(cache=True)
def _exp_vec(v, kbits):
    """v[:] = exp(v) in float32 (see above); kbits is int32 scratch of at least len(v)."""
    n = v.shape[0]
    for j in range(n):
        x = min(max(v[j], F_EXP_LO), F_EXP_HI)
        k = np.floor(x * F_LOG2E + F_HALF)
        r = (x - k * F_LN2_HI) - k * F_LN2_LO
        p = F_C7
        p = p * r + F_C6
        p = p * r + F_C5
        p = p * r + F_C4
        p = p * r + F_C3
        p = p * r + F_C2
        p = p * r + F_ONE
        v[j] = p * r + F_ONE
        kbits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    scale = kbits[:n].view(np.float32)
    for j in range(n):
        v[j] *= scale[j]


@njit(cache=True)
def _sigmoid_vec(v, kbits):
    """v[:] = 1 / (1 + e^-v)."""
    n = v.shape[0]
    for j in range(n):
        v[j] = -v[j]
    _exp_vec(v, kbits)
    for j in range(n):
        v[j] = F_ONE / (F_ONE + v[j])


@njit(cache=True)
def _act_vec(code, src, dst, kbits):
    """dst[:] = g(src) for the fused cell activation g (src and dst must not overlap)."""
    n = src.shape[0]
    if code == 4:
        for j in range(n):
            dst[j] = F_TWO * abs(src[j])
        _exp_vec(dst, kbits)
        for j in range(n):
            x = src[j]
            big = F_ONE - F_TWO / (dst[j] + F_ONE)
            if x < F_ZERO:
                big = -big
            x2 = x * x
            small = x + x * x2 * (F_T3 + x2 * (F_T5 + x2 * (F_T7 + x2 * F_T9)))
            dst[j] = small if abs(x) < F_TANH_SMALL else big
    elif code == 1:
        for j in range(n):
            dst[j] = max(src[j], F_ZERO)
    elif code == 3:
        for j in range(n):
            dst[j] = min(max(src[j], F_ZERO), F_SIX)
    else:
        for j in range(n):
            dst[j] = min(max(src[j], -F_ONE), F_ONE)


@njit(cache=True, inline="always")
def _store_output(src, clip, h, out2, b, r, col0, no):
    """h[b] = out2[r, col0:col0+no] = src clipped to ±clip (clip = 0: no clipping)."""
    for j in range(no):
        v = src[j]
        if clip > 0.0:
            v = min(max(v, -clip), clip)
        h[b, j] = v
        out2[r, col0 + j] = v


@njit(cache=True)
def _cell_step(g, c, peep, use_peep, cifg, act, cell_clip, m, z, kbits):
    """One float cell update on gate pre-activations g [G·nc] (blocks (i,) f, z, o):
    c ← clip(f⊙c + i⊙g(z)), m ← σ(o + po⊙c)⊙g(c), in LiteRT's order of float32 operations
    """
    nc = c.shape[0]
    of = 0 if cifg else nc
    oc = of + nc
    oo = oc + nc
    if use_peep:
        for j in range(nc):
            g[of + j] += peep[1, j] * c[j]
        if not cifg:
            for j in range(nc):
                g[j] += peep[0, j] * c[j]
    _sigmoid_vec(g[:oc], kbits)
    _act_vec(act, g[oc:oo], z, kbits)
    for j in range(nc):
        f = g[of + j]
        ig = F_ONE - f if cifg else g[j]
        cn = f * c[j] + z[j] * ig
        if cell_clip > F_ZERO:
            cn = min(max(cn, -cell_clip), cell_clip)
        c[j] = cn
    if use_peep:
        for j in range(nc):
            g[oo + j] += peep[2, j] * c[j]
    _sigmoid_vec(g[oo:oo + nc], kbits)
    _act_vec(act, c, m, kbits)
    for j in range(nc):
        m[j] *= g[oo + j]


@njit(cache=True, inline="always")
def _row(t, b, T, B, time_major):
    if time_major:
        return t * B + b
    return b * T + t


@njit(cache=True, fastmath={"reassoc"})
def _row_sums_f32(v, w, k0, k1, out):
    """out[j] = Σ_{k0 <= k < k1} v[k]·w[j, k] in float32 (w: one row per output), summed in the
    order LLVM vectorizes (the reassociation keeps each row's sum in vector registers). Pure float:
    the one kernel here compiled with fastmath; the integer callers only use sums that are exact in
    any order (_exact_dot_rows)."""
    for j in range(w.shape[0]):
        s = np.float32(0.0)
        for k in range(k0, k1):
            s += v[k] * w[j, k]
        out[j] = s


@njit(cache=True)
def _exact_dot_rows(v, w, acc, tmp):
    """acc[j] = Σ_k v[k]·w[j, k] for integer-valued float32 operands with |v·w| <= 2^14: each
    chunk of <= 1024 terms sums (_row_sums_f32, into tmp) to an integer below 2^24, which float32
    adds exactly in any order; the chunks add up in int64."""
    m, n = w.shape
    if n <= 1024:       # one chunk: a call outside the chunk loop (inside it the sum does not vectorize)
        _row_sums_f32(v, w, 0, n, tmp)
        for j in range(m):
            acc[j] = np.int64(tmp[j])
        return
    for j in range(m):
        acc[j] = 0
    for k0 in range(0, n, 1024):
        _row_sums_f32(v, w, k0, min(n, k0 + 1024), tmp)
        for j in range(m):
            acc[j] += np.int64(tmp[j])


@njit(cache=True)
def _lstm_float(xg, xoff, bias, wh, h, c, peep, use_peep, cifg, act, cell_clip, use_proj, wp,
                pb, proj_clip, out2, T, B, time_major, reverse, col0, gbuf, mbuf, obuf, zbuf,
                kbits):
    """Float32 recurrence. xg[row, xoff:xoff+G·nc] holds Wx·x_t for every step and a step's gates
    start from it + bias; gates are packed [(i,) f, c, o] × nc, one row per gate column, in wh
    [G·nc, no] (wp [no, nc] likewise); peep [3, nc] = (pi, pf, po).
    Steps run t = 0..T-1, or T-1..0 with `reverse`; step t writes out2[row(t, b), col0:col0+no]."""
    nc = c.shape[1]
    no = h.shape[1]
    GN = wh.shape[0]
    for step in range(T):
        t = T - 1 - step if reverse else step
        for b in range(B):
            r = _row(t, b, T, B, time_major)
            _row_sums_f32(h[b], wh, 0, no, gbuf)
            for j in range(GN):
                gbuf[j] += xg[r, xoff + j] + bias[j]
            _cell_step(gbuf, c[b], peep, use_peep, cifg, act, cell_clip, mbuf, zbuf, kbits)
            if use_proj:
                _row_sums_f32(mbuf, wp, 0, nc, obuf)
                for j in range(no):
                    obuf[j] += pb[j]
                _store_output(obuf, proj_clip, h, out2, b, r, col0, no)
            else:
                _store_output(mbuf, 0.0, h, out2, b, r, col0, no)


@njit(cache=True, inline="always")
def _round_away_nb(v):
    x = np.float64(v)
    if x >= 0:
        return math.floor(x + 0.5)
    return -math.floor(-x + 0.5)


@njit(cache=True)
def _quantize_row(v, q, asym):
    """LiteRT BatchQuantizeFloats on one float32 row into q (float32 holding the integers);
    returns (scale, zero point)."""
    n = v.shape[0]
    lo = v[0]
    hi = v[0]
    for k in range(1, n):
        lo = min(lo, v[k])
        hi = max(hi, v[k])
    if asym:
        rmin = min(0.0, np.float64(lo))
        rmax = max(0.0, np.float64(hi))
        if rmin == rmax:
            for k in range(n):
                q[k] = 0.0
            return np.float32(1.0), 0
        s = (rmax - rmin) / 255.0
        zmin = -128.0 - rmin / s
        zmax = 127.0 - rmax / s
        z = zmin if 128.0 + abs(rmin / s) < 127.0 + abs(rmax / s) else zmax
        if z <= -128.0:
            zp = -128
        elif z >= 127.0:
            zp = 127
        else:
            zp = int(_round_away_nb(z))
        sf = np.float32(s)
        # a range below ~2^-141 underflows the float32 scale to 0: LiteRT's 1.0f / 0 is +inf
        inv = np.float32(np.inf) if sf == 0 else np.float32(1.0 / np.float64(sf))
        zf = np.float32(zp)
        for k in range(n):
            r = _round_away_nb(zf + v[k] * inv)
            q[k] = min(max(r, -128.0), 127.0)
        return sf, zp
    rng = max(abs(lo), abs(hi))
    if rng == 0.0:
        for k in range(n):
            q[k] = 0.0
        return np.float32(1.0), 0
    inv = np.float32(127.0) / rng
    for k in range(n):
        r = _round_away_nb(v[k] * inv)
        q[k] = min(max(r, -127.0), 127.0)
    return rng / np.float32(127.0), 0


@njit(cache=True)
def _hybrid_prequant(x2, qx, sf, zp, asym):
    for r in range(x2.shape[0]):
        s, z = _quantize_row(x2[r], qx[r], asym)
        sf[r] = s
        zp[r] = z


@njit(cache=True)
def _hybrid_input_gates(P, sf, zp, rowsum, wscale, bias, xg):
    """xg[r, j] = bias[j] + float32(Σ_chunks P - zp·Σw) · float32(sf[r]·wscale[j]) (wscale: the
    scale of column j's weight tensor)."""
    nch, R, GN = P.shape
    for r in range(R):
        for j in range(GN):
            acc = np.int64(P[0, r, j])
            for ch in range(1, nch):
                acc += np.int64(P[ch, r, j])
            xg[r, j] = bias[j] + np.float32(acc - zp[r] * rowsum[j]) * (sf[r] * wscale[j])


@njit(cache=True)
def _lstm_hybrid(xg, xoff, wh, rs_h, ws_h, h, c, peep, use_peep, cifg, act, cell_clip, use_proj,
                 wp, rs_p, ws_p, pb, proj_clip, asym, out2, T, B, time_major, reverse, col0, gbuf,
                 mbuf, obuf, qv, iacc, tmp, zbuf, kbits):
    """Hybrid recurrence: _lstm_float with h and m quantized per row before each int8 matvec
    (wh [G·nc, no] and wp [no, nc]: one row per output)."""
    nc = c.shape[1]
    no = h.shape[1]
    GN = wh.shape[0]
    for step in range(T):
        t = T - 1 - step if reverse else step
        for b in range(B):
            r = _row(t, b, T, B, time_major)
            for j in range(GN):
                gbuf[j] = xg[r, xoff + j]
            nz = False
            for k in range(no):
                if h[b, k] != 0.0:
                    nz = True
                    break
            if nz:
                sfh, zph = _quantize_row(h[b], qv[:no], asym)
                _exact_dot_rows(qv[:no], wh, iacc, tmp)
                for g in range(GN // nc):
                    sg = sfh * ws_h[g]
                    for j in range(g * nc, (g + 1) * nc):
                        gbuf[j] += np.float32(iacc[j] - zph * rs_h[j]) * sg
            _cell_step(gbuf, c[b], peep, use_peep, cifg, act, cell_clip, mbuf, zbuf, kbits)
            if use_proj:
                for j in range(no):
                    obuf[j] = pb[j]
                nz = False
                for k in range(nc):
                    if mbuf[k] != 0.0:
                        nz = True
                        break
                if nz:
                    sfm, zpm = _quantize_row(mbuf, qv[:nc], asym)
                    _exact_dot_rows(qv[:nc], wp, iacc, tmp)
                    s = sfm * ws_p
                    for j in range(no):
                        obuf[j] += np.float32(iacc[j] - zpm * rs_p[j]) * s
                _store_output(obuf, proj_clip, h, out2, b, r, col0, no)
            else:
                _store_output(mbuf, 0.0, h, out2, b, r, col0, no)


@njit(cache=True)
def _int_input_gates(P, bx, mq, ms, gx):
    """gx[r, j] = clamp16(MBQM(bx[j] + Σ_chunks P[ch, r, j], M[j])) (M[j]: column j's gate
    multiplier), the part of every step that does not depend on the state."""
    nch, R, GN = P.shape
    for r in range(R):
        # loops over j innermost (LLVM vectorizes only innermost loops)
        for j in range(GN):
            gx[r, j] = bx[j] + np.int64(P[0, r, j])
        for ch in range(1, nch):
            for j in range(GN):
                gx[r, j] += np.int64(P[ch, r, j])
        for j in range(GN):
            left, right = mbqm_split(ms[j])
            v = mbqm_bf(gx[r, j], mq[j], left, right)
            gx[r, j] = min(max(v, -32768), 32767)


@njit(cache=True, inline="always")
def _wrap16_nb(v):
    return ((v + 32768) & 0xFFFF) - 32768


@njit(cache=True)
def _lstm_int8(gx, xoff, wh, bh, mq, ms, h, c, sig, tanh_g, tanh_c, tanh_is_i, cifg, use_peep, pw,
               ppq, pps, cshift, qcclip, hq, hs, zp_m, use_proj, wp, bp, pq, ps, zp_h, qpclip,
               out2, T, B, time_major, reverse, col0, hf, mf, iacc, tmp, pre):
    """Integer 8x8→16 recurrence (see the module docstring for the arithmetic); wh [G·nc, no]
    and wp [no, nc] hold one row per output."""
    nc = c.shape[1]
    no = h.shape[1]
    GN = wh.shape[0]
    of = 0 if cifg else nc
    oc = of + nc
    oo = oc + nc
    hl, hr = mbqm_split(hs)
    prl, prr = mbqm_split(ps)
    pl = np.empty(3, np.int64)
    pr = np.empty(3, np.int64)
    for k in range(3):
        pl[k], pr[k] = mbqm_split(pps[k])
    for step in range(T):
        t = T - 1 - step if reverse else step
        for b in range(B):
            r = _row(t, b, T, B, time_major)
            for k in range(no):
                hf[k] = np.float32(h[b, k])
            _exact_dot_rows(hf, wh, iacc, tmp)
            for g in range(GN // nc):
                q = mq[g]
                left, right = mbqm_split(ms[g])
                for j in range(g * nc, (g + 1) * nc):
                    v = mbqm_bf(bh[j] + iacc[j], q, left, right) + gx[r, xoff + j]
                    pre[j] = min(max(v, -32768), 32767)
            for j in range(nc):
                cj = np.int64(c[b, j])
                vf = pre[of + j]
                if use_peep:
                    vf = min(max(vf + mbqm_bf(pw[1, j] * cj, ppq[1], pl[1], pr[1]), -32768), 32767)
                f = np.int64(sig[vf + 32768])
                if cifg:
                    ig = 32767 - f
                else:
                    vi = pre[j]
                    if use_peep:
                        vi = min(max(vi + mbqm_bf(pw[0, j] * cj, ppq[0], pl[0], pr[0]), -32768), 32767)
                    ig = np.int64(sig[vi + 32768])
                z = np.int64(tanh_g[pre[oc + j] + 32768])
                a = _wrap16_nb(rdbypot_bf(f * cj, 15))
                s = _wrap16_nb(rdbypot_bf(ig * z, cshift))
                cn = min(max(a + s, -32768), 32767)
                if qcclip > 0:
                    cn = min(max(cn, -qcclip), qcclip)
                c[b, j] = cn
                vo = pre[oo + j]
                if use_peep:
                    vo = min(max(vo + mbqm_bf(pw[2, j] * cn, ppq[2], pl[2], pr[2]), -32768), 32767)
                o = np.int64(sig[vo + 32768])
                if tanh_is_i:
                    m = mbqm_bf(o * ig, hq, hl, hr) + zp_m
                else:
                    m = mbqm_bf(o * np.int64(tanh_c[cn + 32768]), hq, hl, hr) + zp_m
                m = min(max(m, -128), 127)
                mf[j] = np.float32(m)
            if use_proj:
                _exact_dot_rows(mf, wp, iacc, tmp)
                for j in range(no):
                    v = mbqm_bf(bp[j] + iacc[j], pq, prl, prr) + zp_h
                    v = min(max(v, -128), 127)
                    if qpclip > 0:
                        v = min(max(v, -qpclip), qpclip)
                    h[b, j] = v
                    out2[r, col0 + j] = v
            else:
                for j in range(no):
                    v = np.int64(mf[j])
                    h[b, j] = v
                    out2[r, col0 + j] = v


# ---- prepare ------------------------------------------------------------------------------------

def _packT(ctx, cfg, slots, dtype=np.float32):
    """Stack the gates' [nc, k] matrices and transpose: [k, G·nc] so j = gate·nc + cell."""
    return np.ascontiguousarray(np.concatenate([ctx.ins[slots[g]].data for g in cfg.gates], 0).T
                                .astype(dtype))


def _chunked_matmul(A, WT, P):
    """P[ch] = A[:, k0:k1] @ WT[k0:k1] for the exact-float32 chunks (all preallocated float32)."""
    K = A.shape[1]
    bounds = [(k0, min(K, k0 + CHUNK)) for k0 in range(0, K, CHUNK)]
    views = [(A[:, k0:k1], WT[k0:k1], P[i]) for i, (k0, k1) in enumerate(bounds)]

    def mm():
        for a, w, p in views:
            np.matmul(a, w, out=p)
    return mm


def _peep_matrix(ctx, cfg, scale=False):
    pm = np.zeros((3, cfg.nc), np.float32)
    if cfg.peephole:
        for row, k in enumerate(PEEP):
            t = ctx.ins[k]
            if t is not None:
                pm[row] = (np.float32(t.quant.s) * t.data.astype(np.float32)) if scale else t.data
    return pm


def prepare_lstm(ctx):
    cfg = _parse(ctx)
    run_dir = _prepare_direction(ctx, cfg)

    def run(ins, outs):
        run_dir(ins[X], ins[H_STATE], ins[C_STATE], outs[0])
    return run, [cfg.out_shape]


# Each direction is two stages: the x side (every step's input contribution to the gates, for all
# steps at once: BLAS, then a per-column finish) and the recurrence (one @njit call). Two
# directions reading the same x share one x-side stage: their packed input weights are
# concatenated along columns, and each recurrence reads its own column block of the result.

def _prepare_direction(ctx, cfg, reverse=False, col0=0, width=None):
    """One direction's runner `run(x, h, c, y)`: reads x, updates the state arrays h, c in place and
    writes its output into columns [col0, col0 + no) of y viewed as [rows, width] (width defaults
    to no); with `reverse` the recurrence walks time from T-1 down to 0, reading x[t] and writing
    y[t] in place (no reversed copies)."""
    stage, xg = _x_stage(cfg, [_x_side(ctx, cfg)], _asym(ctx))
    rec = _recurrence(ctx, cfg, reverse, col0, width)

    def run(x, h, c, y):
        stage(x)
        rec(xg, 0, h, c, y)
    return run


def _prepare_pair(fw, cf, bw, cb, col_bw, width_fw, width_bw, same_x):
    """Forward and backward runners as one `run(x_fw, x_bw, h_fw, c_fw, h_bw, c_bw, y_fw, y_bw)`;
    the backward one walks time in reverse and writes from column col_bw. With same_x (both read
    one array) and matching x-side arithmetic, one shared x-side stage feeds both: only in the
    hybrid and int8 forms, whose x-side sums are exact integers (a float32 BLAS product with more
    columns may sum in another order: results would drift from the separate directions')."""
    if same_x and cf.form == cb.form != "float" and _asym(fw) == _asym(bw) and (
            cf.T, cf.B, cf.ni) == (cb.T, cb.B, cb.ni):
        stage, xg = _x_stage(cf, [_x_side(fw, cf), _x_side(bw, cb)], _asym(fw))
        rec_fw = _recurrence(fw, cf, False, 0, width_fw)
        rec_bw = _recurrence(bw, cb, True, col_bw, width_bw)
        off = cf.G * cf.nc

        def run(x_fw, x_bw, h_fw, c_fw, h_bw, c_bw, y_fw, y_bw):
            stage(x_fw)
            rec_fw(xg, 0, h_fw, c_fw, y_fw)
            rec_bw(xg, off, h_bw, c_bw, y_bw)
        return run
    run_fw = _prepare_direction(fw, cf, False, 0, width_fw)
    run_bw = _prepare_direction(bw, cb, True, col_bw, width_bw)

    def run(x_fw, x_bw, h_fw, c_fw, h_bw, c_bw, y_fw, y_bw):
        run_fw(x_fw, h_fw, c_fw, y_fw)
        run_bw(x_bw, h_bw, c_bw, y_bw)
    return run


def _asym(ctx):
    return bool(ctx.opt.get("asymmetric_quantize_inputs", False))


def _x_side(ctx, cfg):
    """A direction's x-side constants: packed input weights [ni, G·nc] and per-column arrays."""
    ins = ctx.ins
    side = {"wxT": _packT(ctx, cfg, W_X)}
    gate_of_col = np.repeat(np.arange(cfg.G), cfg.nc)
    if cfg.form == "hybrid":
        side["rs"] = side["wxT"].sum(0).astype(np.int64)
        side["ws"] = np.array([ins[W_X[g]].quant.s for g in cfg.gates], np.float32)[gate_of_col]
        side["bias"] = np.concatenate([ins[BIAS[g]].data for g in cfg.gates]).astype(np.float32)
    elif cfg.form == "int8":
        side["bx"] = np.concatenate(cfg.bx).astype(np.int64)
        mq, ms = _multipliers(cfg.mx)
        side["mq"], side["ms"] = mq[gate_of_col], ms[gate_of_col]
    return side


def _x_stage(cfg, sides, asym):
    """`stage(x)` filling xg [T·B, Σ G·nc] with the x-side gate terms of every direction in
    `sides` (float: Wx·x; hybrid: bias + dequantized Wx·q(x); int8: clamp16(MBQM(bx + Wx·x)))."""
    R, ni = cfg.T * cfg.B, cfg.ni

    def cat(key):
        return np.ascontiguousarray(np.concatenate([s[key] for s in sides], -1))
    wxT = cat("wxT")
    GN = wxT.shape[1]
    if cfg.form == "float":
        xg = np.empty((R, GN), np.float32)

        def stage(x):
            np.matmul(x.reshape(R, ni), wxT, out=xg)
        return stage, xg
    nch = -(-ni // CHUNK)
    P = np.empty((nch, R, GN), np.float32)
    if cfg.form == "hybrid":
        rs, ws, bias = cat("rs"), cat("ws"), cat("bias")
        qx = np.empty((R, ni), np.float32)
        sfx = np.empty(R, np.float32)
        zpx = np.empty(R, np.int64)
        mm = _chunked_matmul(qx, wxT, P)
        xg = np.empty((R, GN), np.float32)

        def stage(x):
            _hybrid_prequant(x.reshape(R, ni), qx, sfx, zpx, asym)
            mm()
            _hybrid_input_gates(P, sfx, zpx, rs, ws, bias, xg)
        return stage, xg
    bx, mq, ms = cat("bx"), cat("mq"), cat("ms")
    xf = np.empty((R, ni), np.float32)
    mm = _chunked_matmul(xf, wxT, P)
    gx = np.empty((R, GN), np.int64)

    def stage(x):
        np.copyto(xf, x.reshape(R, ni))
        mm()
        _int_input_gates(P, bx, mq, ms, gx)
    return stage, gx


def _recurrence(ctx, cfg, reverse, col0, width):
    """`rec(xg, xoff, h, c, y)`: the recurrence on the x-side terms in columns xoff.. of xg."""
    width = cfg.no if width is None else int(width)
    if not 0 <= col0 <= width - cfg.no:
        ctx.fail(f"output columns {col0}..{col0 + cfg.no} exceed the output width {width}")
    prep = {"float": _rec_float, "hybrid": _rec_hybrid, "int8": _rec_int8}[cfg.form]
    return prep(ctx, cfg, bool(reverse), int(col0), width)


def _rec_float(ctx, cfg, reverse, col0, ow):
    ins = ctx.ins
    R, GN = _common_buffers(cfg)
    whT = _packT(ctx, cfg, W_H)
    bias = np.concatenate([ins[BIAS[g]].data for g in cfg.gates]).astype(np.float32)
    peep = _peep_matrix(ctx, cfg)
    wpT = (np.ascontiguousarray(ins[W_P].data.T.astype(np.float32)) if cfg.projection
           else np.zeros((1, 1), np.float32))
    pb = (ins[B_P].data.astype(np.float32) if cfg.projection and ins[B_P] is not None
          else np.zeros(cfg.no, np.float32))
    gbuf = np.empty(GN, np.float32)
    mbuf = np.empty(cfg.nc, np.float32)
    obuf = np.empty(cfg.no, np.float32)
    zbuf = np.empty(cfg.nc, np.float32)
    kbits = np.empty(GN, np.int32)
    act = ACT_CODES[cfg.act]
    cclip, pclip = np.float32(cfg.cell_clip), np.float32(cfg.proj_clip)
    T, B, nc, no, tm = cfg.T, cfg.B, cfg.nc, cfg.no, cfg.time_major
    cifg, use_peep, use_proj = cfg.cifg, cfg.peephole, cfg.projection

    wh, wp = np.ascontiguousarray(whT.T), np.ascontiguousarray(wpT.T)

    def rec(xg, xoff, h, c, y):
        _lstm_float(xg, xoff, bias, wh, h.reshape(B, no), c.reshape(B, nc), peep, use_peep, cifg,
                    act, cclip, use_proj, wp, pb, pclip, y.reshape(R, ow), T, B, tm, reverse,
                    col0, gbuf, mbuf, obuf, zbuf, kbits)
    return rec


def _common_buffers(cfg):
    R = cfg.T * cfg.B
    GN = cfg.G * cfg.nc
    return R, GN


def _rec_hybrid(ctx, cfg, reverse, col0, ow):
    ins = ctx.ins
    R, GN = _common_buffers(cfg)
    whT = _packT(ctx, cfg, W_H)
    rs_h = whT.sum(0).astype(np.int64)
    ws_h = np.array([ins[W_H[g]].quant.s for g in cfg.gates], np.float32)
    peep = _peep_matrix(ctx, cfg, scale=True)
    if cfg.projection:
        wpT = np.ascontiguousarray(ins[W_P].data.T.astype(np.float32))
        rs_p = wpT.sum(0).astype(np.int64)
        ws_p = np.float32(ins[W_P].quant.s)
    else:
        wpT, rs_p, ws_p = np.zeros((1, 1), np.float32), np.zeros(1, np.int64), np.float32(1)
    pb = (ins[B_P].data.astype(np.float32) if cfg.projection and ins[B_P] is not None
          else np.zeros(cfg.no, np.float32))
    asym = _asym(ctx)
    width = max(GN, cfg.no)
    gbuf = np.empty(GN, np.float32)
    mbuf = np.empty(cfg.nc, np.float32)
    obuf = np.empty(cfg.no, np.float32)
    qv = np.empty(max(cfg.nc, cfg.no), np.float32)
    iacc = np.empty(width, np.int64)
    tmp = np.empty(width, np.float32)
    zbuf = np.empty(cfg.nc, np.float32)
    kbits = np.empty(GN, np.int32)
    act = ACT_CODES[cfg.act]
    cclip, pclip = np.float32(cfg.cell_clip), np.float32(cfg.proj_clip)
    T, B, nc, no, tm = cfg.T, cfg.B, cfg.nc, cfg.no, cfg.time_major
    cifg, use_peep, use_proj = cfg.cifg, cfg.peephole, cfg.projection

    wh, wp = np.ascontiguousarray(whT.T), np.ascontiguousarray(wpT.T)

    def rec(xg, xoff, h, c, y):
        _lstm_hybrid(xg, xoff, wh, rs_h, ws_h, h.reshape(B, no), c.reshape(B, nc), peep, use_peep,
                     cifg, act, cclip, use_proj, wp, rs_p, ws_p, pb, pclip, asym,
                     y.reshape(R, ow), T, B, tm, reverse, col0, gbuf, mbuf, obuf, qv, iacc, tmp,
                     zbuf, kbits)
    return rec


def _multipliers(ms):
    pairs = [quantize_multiplier(m) for m in ms]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def _rec_int8(ctx, cfg, reverse, col0, ow):
    ins = ctx.ins
    R, GN = _common_buffers(cfg)
    whT = _packT(ctx, cfg, W_H)
    bh = np.concatenate(cfg.bh).astype(np.int64)
    mhq, mhs = _multipliers(cfg.mh)
    hq, hs = quantize_multiplier(cfg.m_hidden)
    pq, ps = quantize_multiplier(cfg.m_proj)
    wpT = (np.ascontiguousarray(ins[W_P].data.T.astype(np.float32)) if cfg.projection
           else np.zeros((1, 1), np.float32))
    bp = cfg.bp.astype(np.int64)
    sig = _lut("logistic", 3)
    tanh_g = _lut("tanh", 3)
    tanh_c = tanh_g if cfg.tanh_is_input_gate else _lut("tanh", 15 + cfg.cs)
    tanh_is_i = cfg.tanh_is_input_gate
    width = max(GN, cfg.no)
    hf = np.empty(cfg.no, np.float32)
    mf = np.empty(cfg.nc, np.float32)
    iacc = np.empty(width, np.int64)
    tmp = np.empty(width, np.float32)
    pre = np.empty(GN, np.int64)
    pw = np.zeros((3, cfg.nc), np.int64)
    if cfg.peephole:
        for row, k in enumerate(PEEP):
            if ins[k] is not None:
                pw[row] = ins[k].data
    ppq, pps = _multipliers(cfg.mp)
    T, B, nc, no, tm = cfg.T, cfg.B, cfg.nc, cfg.no, cfg.time_major
    cifg, use_proj, use_peep = cfg.cifg, cfg.projection, cfg.peephole
    cshift, qcclip, qpclip = 30 + cfg.cs, cfg.q_cell_clip, cfg.q_proj_clip
    zp_m, zp_h = cfg.zp_m_signed, cfg.zp_h

    wh, wp = np.ascontiguousarray(whT.T), np.ascontiguousarray(wpT.T)

    def rec(gx, xoff, h, c, y):
        _lstm_int8(gx, xoff, wh, bh, mhq, mhs, h.reshape(B, no), c.reshape(B, nc), sig, tanh_g,
                   tanh_c, tanh_is_i, cifg, use_peep, pw, ppq, pps, cshift, qcclip, hq, hs, zp_m,
                   use_proj, wp, bp, pq, ps, zp_h, qpclip, y.reshape(R, ow), T, B, tm, reverse,
                   col0, hf, mf, iacc, tmp, pre)
    return rec


# ---- bidirectional ------------------------------------------------------------------------------
# Both bidirectional forms run two unidirectional directions on sub-contexts (24 input slots each,
# numbered as UNIDIRECTIONAL_SEQUENCE_LSTM's) that write into one output: forward into columns
# [0, no_fw), backward walking time from T-1 down to 0 into [no_fw, no_fw + no_bw) (or into its
# own output when not merged). The spec is  y = [LSTM_fw(x), rev_t(LSTM_bw(rev_t(x)))]  on the
# last axis.

FW_H, FW_C, BW_H, BW_C = 35, 36, 37, 38   # the native op's state slots
AUX_INPUT = 39
AUX_WEIGHTS = tuple(range(40, 48))
NATIVE_OPTIONS = ("fused_activation_function", "cell_clip", "proj_clip",
                  "asymmetric_quantize_inputs")


def _sub_ctx(ctx, ins, out, options, inter, label):
    node = replace(ctx.node, options=frozen_options(options), name=f"{ctx.node.name} ({label})",
                   intermediates=())
    return OpContext(node=node, ins=tuple(ins), outs=(out,), inter=tuple(inter))


def _time_axis(cfg):
    return 0 if cfg.time_major else 1


def _bidi_ref(fw, bw, x_fw, x_bw, ins_fw, ins_bw):
    """(forward output, backward output) by the spec: the backward LSTM on the time-reversed input,
    its output reversed back."""
    y_fw = lstm_ref(fw, [x_fw] + list(ins_fw[1:]))[0]
    ax = _time_axis(_parse(bw))
    y_bw = lstm_ref(bw, [np.ascontiguousarray(np.flip(x_bw, ax))] + list(ins_bw[1:]))[0]
    return y_fw, np.ascontiguousarray(np.flip(y_bw, ax))


# BIDI_SEQUENCE_LSTM (xnn op, made by converter.passes.fuse_bidirectional_lstm from tf_keras'
# Bidirectional(LSTM) pattern): inputs 0-23 are the forward LSTM's slots, 24-47 the backward's
# (24 = x again); options are each direction's UNIDIRECTIONAL_SEQUENCE_LSTM options prefixed
# "fw_" / "bw_"; intermediates: the forward's n_fw_intermediates, the backward's, then the two
# directions' original output tensors (written by nobody now: their quantization is part of each
# direction's arithmetic, e.g. the int8 proj_clip). One output [..., no_fw + no_bw] =
# CONCATENATION(fw, REVERSE_V2(bw(REVERSE_V2(x)))) on the last axis.

def _fused_dirs(ctx):
    if len(ctx.ins) != 48:
        ctx.fail(f"BIDI_SEQUENCE_LSTM takes 48 inputs (two 24-slot LSTMs), got {len(ctx.ins)}")
    if len(ctx.outs) != 1:
        ctx.fail(f"BIDI_SEQUENCE_LSTM has one output, got {len(ctx.outs)}")
    n_fw = int(ctx.opt.get("n_fw_intermediates", 0))
    inter = ctx.inter
    if not 0 <= n_fw <= len(inter) - 2:
        ctx.fail(f"needs n_fw_intermediates ({n_fw}) + backward intermediates + the 2 direction "
                 f"outputs as intermediates, has {len(inter)}")
    opts = {d: {k[3:]: v for k, v in ctx.opt.items() if k.startswith(d + "_")}
            for d in ("fw", "bw")}
    y_fw, y_bw = inter[-2:]
    for d in (y_fw, y_bw):
        if d.dtype != ctx.outs[0].dtype:
            ctx.fail(f"direction output '{d.name}' is {d.dtype.name}, the output is "
                     f"{ctx.outs[0].dtype.name}")
    fw = _sub_ctx(ctx, ctx.ins[:24], y_fw, opts["fw"], inter[:n_fw], "forward")
    bw = _sub_ctx(ctx, ctx.ins[24:], y_bw, opts["bw"], inter[n_fw:-2], "backward")
    cf, cb = _parse(fw), _parse(bw)
    xf, xb = ctx.ins[0], ctx.ins[24]
    if tuple(xf.shape) != tuple(xb.shape) or xf.dtype != xb.dtype:
        ctx.fail(f"the directions read different inputs: {tuple(xf.shape)} {xf.dtype.name} and "
                 f"{tuple(xb.shape)} {xb.dtype.name}")
    if cf.time_major != cb.time_major:
        ctx.fail("the directions disagree on time_major")
    if cf.form != cb.form:
        ctx.fail(f"the directions run different forms ({cf.form} and {cb.form})")
    shape = tuple(int(d) for d in xf.shape[:2]) + (cf.no + cb.no,)
    return fw, bw, cf, cb, shape


def prepare_bidi_fused(ctx):
    fw, bw, cf, cb, shape = _fused_dirs(ctx)
    same_x = ctx.node.inputs[0] == ctx.node.inputs[24]
    pair = _prepare_pair(fw, cf, bw, cb, cf.no, shape[2], shape[2], same_x)

    def run(ins, outs):
        pair(ins[0], ins[24], ins[18], ins[19], ins[42], ins[43], outs[0], outs[0])
    return run, [shape]


def bidi_fused_ref(ctx, ins):
    fw, bw, _, _, _ = _fused_dirs(ctx)
    y_fw, y_bw = _bidi_ref(fw, bw, np.asarray(ins[0]), np.asarray(ins[24]), ins[:24], ins[24:])
    return [np.concatenate([y_fw, y_bw], axis=-1)]


# BIDIRECTIONAL_SEQUENCE_LSTM (TFLite builtin): 0 x; 1-17 forward and 18-34 backward weights,
# peepholes, biases and projection (slots 1-17 of the unidirectional op); 35/36 forward h/c,
# 37/38 backward h/c (variables); 39 aux input; 40-43 / 44-47 aux weights. Options are shared by
# both directions; time_major defaults to true. LiteRT runs float32 input only (float or hybrid
# weights). With an aux input and no aux weights the backward direction reads the aux input
# instead of x (LiteRT's stacking "without cross links"); aux weights are rejected.

def _native_dirs(ctx):
    ins = ctx.ins
    if len(ins) != 48:
        ctx.fail(f"BIDIRECTIONAL_SEQUENCE_LSTM takes 48 inputs, got {len(ins)}")
    merge = bool(ctx.opt.get("merge_outputs", False))
    if len(ctx.outs) != (1 if merge else 2):
        ctx.fail(f"merge_outputs={merge} needs {1 if merge else 2} outputs, got {len(ctx.outs)}")
    x = ins[X]
    if x is None:
        ctx.fail("input 0 is absent")
    if x.dtype != np.float32:
        ctx.fail(f"input '{x.name}' is {x.dtype.name}: LiteRT's BIDIRECTIONAL_SEQUENCE_LSTM has no "
                 "integer form (float32 input with float32 or int8 hybrid weights only)")
    if any(ins[k] is not None for k in AUX_WEIGHTS):
        ctx.fail("auxiliary input weights (inputs 40-47, stacking with cross links) are not "
                 "supported")
    x_bw = x
    aux = ins[AUX_INPUT]
    if aux is not None:
        if tuple(aux.shape) != tuple(x.shape) or aux.dtype != x.dtype:
            ctx.fail(f"aux input '{aux.name}' (read by the backward direction) must match the "
                     f"input: {tuple(aux.shape)} {aux.dtype.name} vs {tuple(x.shape)} "
                     f"{x.dtype.name}")
        x_bw = aux
    opts = {k: ctx.opt[k] for k in NATIVE_OPTIONS if k in ctx.opt}
    opts["time_major"] = bool(ctx.opt.get("time_major", True))
    y_fw, y_bw = ctx.outs[0], ctx.outs[0 if merge else 1]
    none4 = [None] * 4
    fw = _sub_ctx(ctx, [x] + list(ins[1:18]) + [ins[FW_H], ins[FW_C]] + none4, y_fw, opts, (),
                  "forward")
    bw = _sub_ctx(ctx, [x_bw] + list(ins[18:35]) + [ins[BW_H], ins[BW_C]] + none4, y_bw, opts, (),
                  "backward")
    cf, cb = _parse(fw), _parse(bw)
    if cf.form != cb.form:
        ctx.fail(f"forward weights are {cf.form}, backward weights {cb.form}")
    if (cf.nc, cf.no) != (cb.nc, cb.no):
        ctx.fail(f"forward (cell {cf.nc}, output {cf.no}) and backward (cell {cb.nc}, output "
                 f"{cb.no}) sizes differ: LiteRT checks each direction's tensors against both")
    if merge and not cf.time_major and cf.B > 1:
        ctx.fail("merge_outputs with batch-major input and batch > 1: LiteRT's kernel addresses "
                 "the state of batch row b at b·(merged width), past the end of the state "
                 "tensors (undefined); use time_major, batch 1, or separate outputs")
    return fw, bw, cf, cb, merge, aux is not None


def prepare_bidi_native(ctx):
    fw, bw, cf, cb, merge, use_aux = _native_dirs(ctx)
    lead = tuple(int(d) for d in ctx.ins[X].shape[:2])
    if merge:
        width = cf.no + cb.no
        shapes = [lead + (width,)]
        pair = _prepare_pair(fw, cf, bw, cb, cf.no, width, width, not use_aux)
    else:
        shapes = [lead + (cf.no,), lead + (cb.no,)]
        pair = _prepare_pair(fw, cf, bw, cb, 0, cf.no, cb.no, not use_aux)
    x_bw = AUX_INPUT if use_aux else X
    out_bw = 0 if merge else 1

    def run(ins, outs):
        pair(ins[X], ins[x_bw], ins[FW_H], ins[FW_C], ins[BW_H], ins[BW_C], outs[0], outs[out_bw])
    return run, shapes


def bidi_native_ref(ctx, ins):
    fw, bw, _, _, merge, use_aux = _native_dirs(ctx)
    ins = list(ins)
    none4 = [None] * 4
    ins_fw = [ins[X]] + ins[1:18] + [ins[FW_H], ins[FW_C]] + none4
    ins_bw = [ins[AUX_INPUT] if use_aux else ins[X]] + ins[18:35] + [ins[BW_H], ins[BW_C]] + none4
    y_fw, y_bw = _bidi_ref(fw, bw, np.asarray(ins_fw[0]), np.asarray(ins_bw[0]), ins_fw, ins_bw)
    return [np.concatenate([y_fw, y_bw], axis=-1)] if merge else [y_fw, y_bw]


OPS = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (prepare_lstm, lstm_ref),
    "BIDIRECTIONAL_SEQUENCE_LSTM": (prepare_bidi_native, bidi_native_ref),
    "BIDI_SEQUENCE_LSTM": (prepare_bidi_fused, bidi_fused_ref),
}
