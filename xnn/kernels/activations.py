"""Activations: RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU, PRELU, HARD_SWISH, LOGISTIC, TANH,
SOFTMAX (float32; int8 and uint8 except SOFTMAX, which is int8 -> int8).

Every 8-bit unary activation is a function of one byte, so prepare tabulates its spec over the 256
input values and the kernel is a 256-entry gather. The specs, from TFLite's reference kernels:
  RELU family: y = clamp(zp_y + mbqm(x - zp_x, M = fl32(s_x/s_y)), max(qmin, zp_y + round(lo/s_y)),
               min(qmax, zp_y + round(hi/s_y)))
  LEAKY_RELU:  x' = x - zp_x; y = zp_y + (x' >= 0 ? mbqm(x', fl32(s_x/s_y)) : mbqm(x', fl32(s_x·α/s_y)))
  HARD_SWISH:  TFLite's int16 fixed-point scheme (see `_hard_swish_q`).
  LOGISTIC, TANH: float32 round trip, as TFLite's LUTPopulate: y = clamp(int(roundf(f(fl32(s_x)·(x -
               zp_x))·fl32(1/s_y)) + zp_y)) with f evaluated by the C library's expf/tanhf.
PRELU runs on the elementwise module's broadcast kernels (exact integer arithmetic).
SOFTMAX int8 is TFLite's fixed-point reference: exp of Q5.26 differences by gemmlowp's
exp_on_negative_values, a Q12.19 sum, a Newton–Raphson reciprocal (see `_softmax_q`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np
from numba import njit

from .elementwise import (OP_PRELU, binary_f32, binary_q, broadcast_plan, broadcast_shape,
                          refresh_views,
                          mbqm_terms)
from .quant import (INT32_MAX, INT32_MIN, mbqm_ref, quantize_multiplier, quantize_value, rdbypot,
                    rdbypot_ref, srdhm, srdhm_ref)

_RANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}
_F32 = np.dtype(np.float32)

# ---- C library float functions (the ones LiteRT's std::exp / std::tanh on float resolve to) -----

def _load_libm():
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        lib = None
    if lib is None:
        return None, None
    fns = []
    for fn_name in ("expf", "tanhf"):
        fn = getattr(lib, fn_name)
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float]
        fns.append(fn)
    return fns


_EXPF, _TANHF = _load_libm()


def _vec_c(fn, np_fn, x):
    """Apply a C float function elementwise (float32 in and out); numpy's version if libm is absent."""
    x = np.asarray(x, np.float32)
    if fn is None:  # may differ from the C library in the last bit
        return np_fn(x).astype(np.float32)
    return np.array([fn(float(v)) for v in x.ravel()], np.float32).reshape(x.shape)


def expf(x):
    return _vec_c(_EXPF, np.exp, x)


def tanhf(x):
    return _vec_c(_TANHF, np.tanh, x)


# ---- kernels -----------------------------------------------------------------------------------

@njit(cache=True)
def unary_lut8(x, out, lut):
    """out[i] = lut[x[i]] on uint8 views."""
    for i in range(x.shape[0]):
        out[i] = lut[x[i]]


@njit(cache=True, inline="always")
def expf_fast(x):
    """exp(x) in float32, vectorizable: x = k·ln2 + r (Cody–Waite), Cephes' degree-6 polynomial for
    exp(r) on |r| ≤ ln2/2, 2^k from exponent bits. Max relative error 1e-7 on [-87, 88]; inputs are
    clamped there (exp(-87) ≈ 1.6e-38 stands in for smaller results, exp(88) ≈ 1.7e38 for larger)."""
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    k = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    r = x - k * np.float32(0.693359375) - k * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    return p * np.int32((np.int32(k) + np.int32(127)) * np.int32(1 << 23)).view(np.float32)


@njit(cache=True, error_model="numpy")  # float division without a zero-divisor check
def unary_f32(x, out, code, p):
    """Float32 activations: 0 clamp to [p0, p1], 1 leaky (α = p0), 2 hard swish, 3 logistic, 4 tanh.

    Float results are within 1e-5 relative (1e-6 absolute near 0) of TFLite's libm-based ones.
    LOGISTIC and TANH run in two passes (exp, then the rational step) so both loops vectorize.
    """
    n = x.shape[0]
    if code == 0:
        lo = p[0]
        hi = p[1]
        for i in range(n):
            v = x[i]
            out[i] = lo if v < lo else (hi if v > hi else v)
    elif code == 1:
        a = p[0]
        for i in range(n):
            v = x[i]
            out[i] = v if v > 0 else v * a
    elif code == 2:
        three = np.float32(3.0)
        six = np.float32(6.0)
        zero = np.float32(0.0)
        for i in range(n):
            v = x[i]
            r = v + three
            r = zero if r < zero else (six if r > six else r)
            out[i] = v * r / six
    elif code == 3:  # 1 / (1 + exp(-x))
        one = np.float32(1.0)
        for i in range(n):
            out[i] = expf_fast(-x[i])
        for i in range(n):
            out[i] = one / (one + out[i])
    else:  # tanh: odd polynomial for |x| < 0.625 (Cephes tanhf), else ±(1 - 2 / (exp(2|x|) + 1))
        one = np.float32(1.0)
        two = np.float32(2.0)
        for i in range(n):
            out[i] = expf_fast(two * abs(x[i]))
        for i in range(n):
            v = x[i]
            z = v * v
            small = ((((np.float32(-5.70498872745e-3) * z + np.float32(2.06390887954e-2)) * z
                       - np.float32(5.37397155531e-2)) * z + np.float32(1.33314422036e-1)) * z
                     - np.float32(3.33332819422e-1)) * z * v + v
            big = one - two / (out[i] + one)
            out[i] = small if abs(v) < np.float32(0.625) else (big if v > 0 else -big)


@njit(cache=True, fastmath={"reassoc"})
def _sum_f32(x, base, n):
    """Σ x[base:base+n] in float32, reassociated (vectorized) — float-only, never near int code."""
    s = np.float32(0.0)
    for c in range(n):
        s += x[base + c]
    return s


@njit(cache=True)
def _max_f32(x, base, n):
    """max of x[base:base+n] (n ≥ 1) with 8 independent running maxima (LLVM does not vectorize a
    float max reduction; the dependency chain of one accumulator is what costs)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[base]
    n8 = n - n % np.uint64(8)
    for c in range(np.uint64(0), n8, np.uint64(8)):
        j = base + c
        v = x[j]
        m0 = v if v > m0 else m0
        v = x[j + np.uint64(1)]
        m1 = v if v > m1 else m1
        v = x[j + np.uint64(2)]
        m2 = v if v > m2 else m2
        v = x[j + np.uint64(3)]
        m3 = v if v > m3 else m3
        v = x[j + np.uint64(4)]
        m4 = v if v > m4 else m4
        v = x[j + np.uint64(5)]
        m5 = v if v > m5 else m5
        v = x[j + np.uint64(6)]
        m6 = v if v > m6 else m6
        v = x[j + np.uint64(7)]
        m7 = v if v > m7 else m7
    for c in range(n8, n):
        v = x[base + c]
        m0 = v if v > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@njit(cache=True, error_model="numpy")  # float division without a zero-divisor check
def softmax_f32(x, out, depth, beta):
    """Rows of `depth` along the last axis: y = exp((x - max)·β) / Σ exp((x - max)·β), in float32.
    Offsets are uint64 so Numba emits no negative-index wraparound code and the loops vectorize."""
    d = np.uint64(depth)
    for r in range(x.shape[0] // depth):
        base = np.uint64(r) * d
        mx = _max_f32(x, base, d)
        for c in range(d):
            out[base + c] = expf_fast((x[base + c] - mx) * beta)
        s = _sum_f32(out, base, d)
        for c in range(d):
            out[base + c] = out[base + c] / s


@njit(cache=True, inline="always")
def _sat_shl32(x, e):
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0 on an int32 value."""
    thr = (np.int64(1) << (31 - e)) - 1
    if x > thr:
        return np.int64(INT32_MAX)
    if x < -thr:
        return np.int64(INT32_MIN)
    return x << e


@njit(cache=True)
def _one_over_one_plus_x(a):
    """1/(1 + a) for a ∈ [0, 1) in Q0.31, three Newton–Raphson steps in Q2.29 (gemmlowp)."""
    s = np.int64(a) + INT32_MAX
    half_den = (s + 1) // 2 if s >= 0 else -((-s + 1) // 2)  # RoundingHalfSum, C division
    x = 1515870810 + srdhm(half_den, -1010580540)
    for _ in range(3):
        hdx = srdhm(half_den, x)
        x = x + _sat_shl32(srdhm(x, (1 << 29) - hdx), 2)
    return _sat_shl32(x, 1)


@njit(cache=True)
def softmax_q8(x, out, depth, exp_tab, acc_tab, valid):
    """int8 softmax rows (output scale 1/256, zero point -128) from tables indexed by max - x."""
    dd = np.uint64(depth)
    for r in range(x.shape[0] // depth):
        base = np.uint64(r) * dd
        mx = np.int64(x[base])
        for c in range(dd):
            v = np.int64(x[base + c])
            mx = v if v > mx else mx
        total = np.int64(0)
        for c in range(dd):
            total += acc_tab[np.uint64(mx - np.int64(x[base + c]))]
        u = total & 0xFFFFFFFF  # the int32 accumulator wraps like TFLite's
        hpo = 32
        t = u
        while t != 0:
            t >>= 1
            hpo -= 1
        shifted = ((u << hpo) - (np.int64(1) << 31)) & 0xFFFFFFFF
        if shifted >= (np.int64(1) << 31):
            shifted -= np.int64(1) << 32
        scale = _one_over_one_plus_x(shifted)
        # TFLite aborts (TFLITE_CHECK) when this leaves [0, 31], i.e. when Σexp ≥ 512; clamp instead
        exponent = min(max(12 - hpo + 23, 0), 31)
        for c in range(dd):
            d = np.uint64(mx - np.int64(x[base + c]))
            y = rdbypot(srdhm(scale, exp_tab[d]), exponent) - 128
            y = -128 if y < -128 else (127 if y > 127 else y)
            out[base + c] = y if valid[d] else -128


# ---- shared glue -------------------------------------------------------------------------------

def _check_unary(ctx):
    if len(ctx.ins) < 1 or ctx.ins[0] is None or len(ctx.outs) != 1:
        ctx.fail(f"{ctx.node.op} takes 1 input and 1 output")
    x, y = ctx.ins[0], ctx.outs[0]
    dt = np.dtype(x.dtype)
    if dt != np.dtype(y.dtype):
        ctx.fail(f"{ctx.node.op}: input dtype {dt.name} != output dtype {np.dtype(y.dtype).name}")
    if dt != _F32 and dt not in _RANGE:
        ctx.fail(f"{ctx.node.op} on {dt.name} is not supported")
    if dt in _RANGE:
        for spec, what in ((x, "input"), (y, "output")):
            q = spec.quant
            if q is None:
                ctx.fail(f"{what} of dtype {dt.name} has no quantization parameters")
            if q.per_channel:
                ctx.fail(f"{what} is quantized per channel; {ctx.node.op} needs per-tensor")
            if not q.s > 0:
                ctx.fail(f"{what} has non-positive scale {q.s}")
            lo, hi = _RANGE[dt]
            if not lo <= q.zp <= hi:
                ctx.fail(f"{what} zero point {q.zp} outside [{lo}, {hi}]")
    return x, y, dt


def _byte_values(dt):
    """The 256 values of an 8-bit dtype in byte order (index = byte)."""
    return np.arange(256, dtype=np.uint8).view(dt).astype(np.int64)


def _make_lut(fn, p, dt):
    return np.ascontiguousarray(np.clip(fn(p, _byte_values(dt)), *_RANGE[dt]).astype(dt).view(np.uint8))


def _unary_lut_run(lut):
    m = [None] * 4

    def run(ins, outs):
        x, o = ins[0], outs[0]
        if x is not m[0] or o is not m[1]:
            refresh_views(m, (x, o), (-1, -1), u8=True)
        unary_lut8(m[2], m[3], lut)
    return run


def _unary_f32_run(code, p):
    p = np.asarray(p, np.float32)
    m = [None] * 4

    def run(ins, outs):
        x, o = ins[0], outs[0]
        if x is not m[0] or o is not m[1]:
            refresh_views(m, (x, o), (-1, -1))
        unary_f32(m[2], m[3], code, p)
    return run


def _f32_ratio(a, b) -> float:
    """a / b evaluated in float32, as C++ does with two float operands."""
    return float(np.float32(a) / np.float32(b))


def _qm(ctx, m, what, max_left=23):
    """quantize_multiplier, refusing left shifts that overflow int32 on 8-bit differences (|x| ≤ 255)."""
    q, sh = quantize_multiplier(m)
    if sh > max_left:
        ctx.fail(f"{what} rescale factor {m:.3g} too large (int32 overflow)")
    return q, sh


# ---- RELU family -------------------------------------------------------------------------------

_RELU_BOUNDS = {"RELU": (0.0, math.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
                "RELU_0_TO_1": (0.0, 1.0)}


def _relu_params(ctx, x, y, dt):
    act_lo, act_hi = _RELU_BOUNDS[ctx.node.op]
    qmin, qmax = _RANGE[dt]
    s_y, zp_y = y.quant.s, y.quant.zp
    lo = max(qmin, quantize_value(act_lo, s_y, zp_y))
    hi = qmax if math.isinf(act_hi) else min(qmax, quantize_value(act_hi, s_y, zp_y))
    q, sh = _qm(ctx, _f32_ratio(x.quant.s, s_y), "input/output")
    return x.quant.zp, q, sh, zp_y, lo, hi


def _relu_q(p, x):
    zp_x, q, sh, zp_y, lo, hi = p
    return np.clip(zp_y + mbqm_ref(np.asarray(x, np.int64) - zp_x, q, sh), lo, hi)


def relu_ref(ctx, ins):
    x, y, dt = _check_unary(ctx)
    v = np.asarray(ins[0])
    if dt == _F32:
        lo, hi = _RELU_BOUNDS[ctx.node.op]
        return [np.minimum(np.maximum(v, np.float32(lo)), np.float32(hi)).astype(np.float32)]
    return [_relu_q(_relu_params(ctx, x, y, dt), v).astype(dt)]


def prepare_relu(ctx):
    x, y, dt = _check_unary(ctx)
    if dt == _F32:
        lo, hi = _RELU_BOUNDS[ctx.node.op]
        return _unary_f32_run(0, (lo, hi)), [x.shape]
    return _unary_lut_run(_make_lut(_relu_q, _relu_params(ctx, x, y, dt), dt)), [x.shape]


# ---- LEAKY_RELU --------------------------------------------------------------------------------

def _alpha(ctx):
    a = ctx.opt.get("alpha", 0.0)
    if not np.isfinite(a):
        ctx.fail(f"LEAKY_RELU alpha {a} is not finite")
    return np.float32(a)


def _leaky_params(ctx, x, y):
    alpha = _alpha(ctx)
    s_x, s_y = np.float32(x.quant.s), np.float32(y.quant.s)
    q_id, sh_id = _qm(ctx, _f32_ratio(s_x, s_y), "identity")
    q_al, sh_al = _qm(ctx, float(np.float32(s_x * alpha) / s_y), "alpha")
    return x.quant.zp, q_id, sh_id, q_al, sh_al, y.quant.zp


def _leaky_q(p, x):
    zp_x, q_id, sh_id, q_al, sh_al, zp_y = p
    d = np.asarray(x, np.int64) - zp_x
    # a negative α multiplier is applied as -(mbqm with |M|), as TFLite does
    neg = -mbqm_ref(d, -q_al, sh_al) if q_al < 0 else mbqm_ref(d, q_al, sh_al)
    return zp_y + np.where(d >= 0, mbqm_ref(d, q_id, sh_id), neg)


def leaky_relu_ref(ctx, ins):
    x, y, dt = _check_unary(ctx)
    v = np.asarray(ins[0])
    if dt == _F32:
        return [np.where(v > 0, v, v * _alpha(ctx)).astype(np.float32)]
    return [np.clip(_leaky_q(_leaky_params(ctx, x, y), v), *_RANGE[dt]).astype(dt)]


def prepare_leaky_relu(ctx):
    x, y, dt = _check_unary(ctx)
    if dt == _F32:
        return _unary_f32_run(1, (_alpha(ctx), 0.0)), [x.shape]
    return _unary_lut_run(_make_lut(_leaky_q, _leaky_params(ctx, x, y), dt)), [x.shape]


# ---- HARD_SWISH --------------------------------------------------------------------------------
# int16 fixed point: x_hi = (x - zp_x)·2^7 (|x_hi| ≤ 32640); p = SRDHM16(x_hi, M_out) is x on the
# output scale before a final right shift by -e_out; r = x_hi·s_x/2^7 rescaled so that 3.0 ↦ 2^15
# (saturating), mapped from [-1, 1] to [0, 1] by (r + 2^15) >> 1; y = RDBPOT(SDHM16(r, p), -e_out) + zp_y.

def _wrap16(v):
    return ((np.asarray(v, np.int64) + (1 << 15)) & 0xFFFF) - (1 << 15)


def _srdhm16(a, b):
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    s = ab + nudge
    r = np.where(s >= 0, s >> 15, -((-s) >> 15))  # C division truncates toward zero
    return _wrap16(np.where((a == -32768) & (b == -32768), 32767, r))


def _sdhm16(a, b):
    """SaturatingDoublingHighMul: a·b/2^15 truncated toward zero (no rounding)."""
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    r = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return _wrap16(np.where((np.asarray(a) == -32768) & (np.asarray(b) == -32768), 32767, r))


def _rdbypot16(x, e):
    """gemmlowp RoundingDivideByPOT on int16 (mask computed in the int16 type, as C++ does)."""
    x = np.asarray(x, np.int64)
    mask = int(_wrap16((1 << e) - 1))
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return _wrap16((x >> e) + (rem > thr))


def _sat_shl16(x, e):
    return np.clip(np.asarray(x, np.int64) * (1 << e), -32768, 32767)


def _downscale16(q32):
    """DownScaleInt32ToInt16Multiplier: round a Q0.31 multiplier to Q0.15."""
    if q32 >= INT32_MAX - (1 << 15):
        return 32767
    return (q32 + (1 << 15)) >> 16


def _hard_swish_params(ctx, x, y):
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(x.quant.s))
    reluish_scale = np.float32(3.0 / 32768.0)
    out_m = float(np.float32(hires / np.float32(y.quant.s)))
    q_o, e_o = quantize_multiplier(out_m)
    if e_o > 0:
        ctx.fail(f"HARD_SWISH output multiplier {out_m:.3g} needs a left shift (TFLite requires "
                 "s_in / (128·s_out) < 1)")
    relu_m = float(np.float32(hires / reluish_scale))
    q_r, e_r = quantize_multiplier(relu_m)
    if not -31 <= e_r <= 30 or -e_o > 31:
        ctx.fail(f"HARD_SWISH scales out of range (s_in={x.quant.s}, s_out={y.quant.s})")
    return x.quant.zp, y.quant.zp, _downscale16(q_o), e_o, _downscale16(q_r), e_r


def _hard_swish_q(p, x):
    zp_x, zp_y, m_o, e_o, m_r, e_r = p
    x_hi = _wrap16((np.asarray(x, np.int64) - zp_x) * 128)
    pre_out = _srdhm16(x_hi, m_o)
    r = x_hi
    if e_r > 0:
        r = _sat_shl16(r, e_r - 1)
    r = _srdhm16(r, m_r)
    if e_r > 0:
        r = _sat_shl16(r, 1)
    if e_r < 0:
        r = _rdbypot16(r, -e_r)
    r = (r + (1 << 15)) >> 1
    y = _rdbypot16(_sdhm16(r, pre_out), -e_o)
    return _wrap16(y + zp_y)


def hard_swish_ref(ctx, ins):
    x, y, dt = _check_unary(ctx)
    v = np.asarray(ins[0])
    if dt == _F32:
        r = np.minimum(np.maximum(v + np.float32(3), np.float32(0)), np.float32(6))
        return [((v * r) / np.float32(6)).astype(np.float32)]
    return [np.clip(_hard_swish_q(_hard_swish_params(ctx, x, y), v), *_RANGE[dt]).astype(dt)]


def prepare_hard_swish(ctx):
    x, y, dt = _check_unary(ctx)
    if dt == _F32:
        return _unary_f32_run(2, (0.0, 0.0)), [x.shape]
    return _unary_lut_run(_make_lut(_hard_swish_q, _hard_swish_params(ctx, x, y), dt)), [x.shape]


# ---- LOGISTIC / TANH ---------------------------------------------------------------------------

def _logistic_f(v, exp=expf):
    one = np.float32(1.0)
    with np.errstate(over="ignore"):  # exp(-v) = inf gives 1 / (1 + inf) = 0, as in C
        return (one / (one + exp(-np.asarray(v, np.float32)))).astype(np.float32)


def _float_lut_params(ctx, x, y, dt):
    if ctx.node.op == "LOGISTIC" and float(np.float32(y.quant.s)) != 1.0 / 256:
        ctx.fail(f"LOGISTIC on {dt.name} needs output scale 1/256, got {y.quant.s}")
    fn = _logistic_f if ctx.node.op == "LOGISTIC" else tanhf
    return fn, np.float32(x.quant.s), x.quant.zp, np.float32(1.0) / np.float32(y.quant.s), y.quant.zp


def _float_lut_q(p, x):
    """TFLite LUTPopulate: the float function on the dequantized value, requantized in float32."""
    fn, s_x, zp_x, inv_s_y, zp_y = p
    x = np.asarray(x, np.int64)
    uniq, inv = np.unique(x, return_inverse=True)
    deq = s_x * (uniq - zp_x).astype(np.float32)
    scaled = (fn(deq) * inv_s_y).astype(np.float32)
    rounded = np.where(scaled >= 0, np.floor(scaled.astype(np.float64) + 0.5),
                       -np.floor(-scaled.astype(np.float64) + 0.5))
    q = np.trunc((rounded.astype(np.float32) + np.float32(zp_y)).astype(np.float64))
    return q.astype(np.int64)[inv.reshape(x.shape)]


def sigmoid_tanh_ref(ctx, ins):
    x, y, dt = _check_unary(ctx)
    v = np.asarray(ins[0])
    if dt == _F32:  # float: NumPy's exp/tanh, within the float tolerance of the C library's
        if ctx.node.op == "LOGISTIC":
            return [_logistic_f(np.clip(v, np.float32(-100), np.float32(100)), np.exp)]
        return [np.tanh(v).astype(np.float32)]
    return [np.clip(_float_lut_q(_float_lut_params(ctx, x, y, dt), v), *_RANGE[dt]).astype(dt)]


def prepare_sigmoid_tanh(ctx):
    x, y, dt = _check_unary(ctx)
    if dt == _F32:
        return _unary_f32_run(3 if ctx.node.op == "LOGISTIC" else 4, (0.0, 0.0)), [x.shape]
    return _unary_lut_run(_make_lut(_float_lut_q, _float_lut_params(ctx, x, y, dt), dt)), [x.shape]


# ---- PRELU -------------------------------------------------------------------------------------

def _check_prelu(ctx):
    if len(ctx.ins) != 2 or ctx.ins[0] is None or ctx.ins[1] is None or len(ctx.outs) != 1:
        ctx.fail("PRELU takes 2 inputs (x, alpha) and 1 output")
    x, a = ctx.ins
    y = ctx.outs[0]
    dt = np.dtype(x.dtype)
    if not dt == np.dtype(a.dtype) == np.dtype(y.dtype):
        ctx.fail(f"PRELU needs equal dtypes, got {dt.name}, {np.dtype(a.dtype).name} -> "
                 f"{np.dtype(y.dtype).name}")
    if dt != _F32 and dt not in _RANGE:
        ctx.fail(f"PRELU on {dt.name} is not supported")
    out_shape = broadcast_shape(ctx, x.shape, a.shape)
    if tuple(out_shape) != tuple(x.shape):
        ctx.fail(f"PRELU alpha {a.shape} must broadcast to the input shape {x.shape}")
    if dt in _RANGE:
        for spec, what in ((x, "input"), (a, "alpha"), (y, "output")):
            if spec.quant is None or spec.quant.per_channel or not spec.quant.s > 0:
                ctx.fail(f"PRELU {what} needs per-tensor quantization with a positive scale")
            lo, hi = _RANGE[dt]
            if not lo <= spec.quant.zp <= hi:
                ctx.fail(f"PRELU {what} zero point {spec.quant.zp} outside [{lo}, {hi}]")
    return x, a, y, dt, out_shape


def _prelu_params(ctx, x, a, y):
    s_x, s_a, s_y = (np.float32(t.quant.s) for t in (x, a, y))
    q1, sh1 = _qm(ctx, float(s_x / s_y), "identity")
    q2, sh2 = _qm(ctx, float(np.float32(s_x * s_a) / s_y), "alpha", max_left=15)
    return x.quant.zp, a.quant.zp, q1, sh1, q2, sh2, y.quant.zp


def _prelu_q(p, x, a):
    zp_x, zp_a, q1, sh1, q2, sh2, zp_y = p
    dx = np.asarray(x, np.int64) - zp_x
    da = np.asarray(a, np.int64) - zp_a
    return zp_y + np.where(dx >= 0, mbqm_ref(dx, q1, sh1), mbqm_ref(dx * da, q2, sh2))


def prelu_ref(ctx, ins):
    x, a, y, dt, _ = _check_prelu(ctx)
    v, al = np.asarray(ins[0]), np.asarray(ins[1])
    if dt == _F32:
        return [np.where(v >= 0, v, v * al).astype(np.float32)]
    return [np.clip(_prelu_q(_prelu_params(ctx, x, a, y), v, al), *_RANGE[dt]).astype(dt)]


def prepare_prelu(ctx):
    x, a, y, dt, out_shape = _check_prelu(ctx)
    shape, st_x, st_a = broadcast_plan(ctx, x.shape, a.shape, out_shape)
    if dt == _F32:
        lo, hi = np.float32(-np.inf), np.float32(np.inf)

        m = [None] * 6

        def run(ins, outs):
            a, b, o = ins[0], ins[1], outs[0]
            if a is not m[0] or b is not m[1] or o is not m[2]:
                refresh_views(m, (a, b, o), (-1, -1, -1))
            binary_f32(m[3], m[4], m[5], shape, st_x, st_a, OP_PRELU, lo, hi)

        return run, [out_shape]
    zx, za, q1, sh1, q2, sh2, zp_y = _prelu_params(ctx, x, a, y)
    lo, hi = _RANGE[dt]
    pv = np.array([zp_y, lo, hi, zx, za] + mbqm_terms(q1, sh1) + mbqm_terms(q2, sh2), np.int64)
    m = [None] * 6

    def run(ins, outs):
        a, b, o = ins[0], ins[1], outs[0]
        if a is not m[0] or b is not m[1] or o is not m[2]:
            refresh_views(m, (a, b, o), (-1, -1, -1))
        binary_q(m[3], m[4], m[5], shape, st_x, st_a, OP_PRELU, pv)

    return run, [out_shape]


# ---- SOFTMAX -----------------------------------------------------------------------------------
# int8: d = x - max(row) ∈ [-255, 0]. Differences below diff_min contribute 0 and give -128.
# Otherwise z = SRDHM(d·2^L, M) is d·β·s_x in Q5.26 (β·s_x·2^26 = M·2^(L-31), capped at 2^31-1),
# e = exp(z) in Q0.31 (gemmlowp exp_on_negative_values), S = Σ RDBPOT(e, 12) in Q12.19 (int32,
# wrapping like TFLite's accumulator), 1/S = recip(S·2^h - 1)·2^-(12-h) with h = clz(S), and
# y = RDBPOT(SRDHM(recip, e), 12 - h + 23) - 128, clamped to int8.

_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
               (3, 720401), (4, 242))


def _sat_shl32_ref(x, e):
    x = np.asarray(x, np.int64)
    thr = (1 << (31 - e)) - 1
    return np.where(x > thr, INT32_MAX, np.where(x < -thr, INT32_MIN, x << e))


def _exp_quarter(a):
    """exp(a) for a ∈ [-1/4, 0) in Q0.31: Taylor expansion around -1/8 (gemmlowp)."""
    x = a + (1 << 28)
    x2 = srdhm_ref(x, x)
    x3 = srdhm_ref(x2, x)
    x4 = srdhm_ref(x2, x2)
    poly = rdbypot_ref(srdhm_ref(rdbypot_ref(x4, 2) + x3, 715827883) + x2, 1)
    return 1895147668 + srdhm_ref(1895147668, x + poly)


def exp_on_negative_q5_26(a):
    """exp(a) for a ≤ 0 in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values<int32, 5>)."""
    a = np.asarray(a, np.int64)
    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(_sat_shl32_ref(a_mod, 5))
    remainder = a_mod - a
    for e, mult in _EXP_BARREL:
        result = np.where(remainder & (1 << (26 + e)), srdhm_ref(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_ref(a):
    """1/(1 + a), a ∈ [0, 1) in Q0.31 (gemmlowp one_over_one_plus_x_for_x_in_0_1)."""
    s = np.asarray(a, np.int64) + INT32_MAX
    half_den = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))
    x = 1515870810 + srdhm_ref(half_den, -1010580540)
    for _ in range(3):
        hdx = srdhm_ref(half_den, x)
        x = x + _sat_shl32_ref(srdhm_ref(x, (1 << 29) - hdx), 2)
    return _sat_shl32_ref(x, 1)


def _beta(ctx):
    b = np.float32(ctx.opt.get("beta", 1.0))
    if not np.isfinite(b) or not b > 0:
        ctx.fail(f"SOFTMAX beta {b} must be positive and finite")
    return b


def _softmax_q_params(ctx, x, y):
    if y.quant.zp != -128 or abs(np.float32(y.quant.s) - np.float32(1 / 256)) > np.float32(0.001 / 256):
        ctx.fail(f"int8 SOFTMAX needs output scale 1/256 and zero point -128, got "
                 f"{y.quant.s}, {y.quant.zp}")
    real = min(float(_beta(ctx)) * float(np.float32(x.quant.s)) * float(1 << 26), float(INT32_MAX))
    if not real > 1.0:
        ctx.fail(f"SOFTMAX beta·input_scale = {real / (1 << 26):.3g} is too small (TFLite needs > 2^-26)")
    m, ls = quantize_multiplier(real)
    diff_min = -int(math.floor(31.0 * (1 << 26) / (1 << ls)))
    return m, ls, diff_min


def _softmax_tables(p):
    m, ls, diff_min = p
    d = -np.arange(256, dtype=np.int64)
    valid = d >= diff_min
    z = srdhm_ref(np.where(valid, d, 0) * (1 << ls), m)
    e = exp_on_negative_q5_26(z)
    acc = np.where(valid, rdbypot_ref(e, 12), 0)
    return e.astype(np.int64), acc.astype(np.int64), valid


def _softmax_q(p, rows):
    """The int8 spec on a (rows, depth) int array."""
    m, ls, diff_min = p
    x = np.asarray(rows, np.int64)
    d = x - x.max(axis=1, keepdims=True)
    valid = d >= diff_min
    e = exp_on_negative_q5_26(srdhm_ref(np.where(valid, d, 0) * (1 << ls), m))
    total = np.sum(np.where(valid, rdbypot_ref(e, 12), 0), axis=1, keepdims=True)
    total = total & 0xFFFFFFFF
    hpo = 32 - sum((total >> k) > 0 for k in range(32))  # count of leading zeros of a uint32
    shifted = ((total << hpo) - (1 << 31)) & 0xFFFFFFFF
    shifted = np.where(shifted >= (1 << 31), shifted - (1 << 32), shifted)
    recip = one_over_one_plus_x_ref(shifted)
    exponent = np.clip(12 - hpo + 23, 0, 31)
    y = rdbypot_ref(srdhm_ref(recip, e), exponent) - 128
    return np.where(valid, np.clip(y, -128, 127), -128)


def _check_softmax(ctx):
    x, y, dt = _check_unary(ctx)
    if dt == np.uint8:
        ctx.fail("SOFTMAX on uint8 is not supported (float32 and int8 only)")
    if len(x.shape) < 1 or x.shape[-1] < 1:
        ctx.fail(f"SOFTMAX needs an input of rank >= 1 with a non-empty last axis, got {x.shape}")
    return x, y, dt


def softmax_ref(ctx, ins):
    x, y, dt = _check_softmax(ctx)
    v = np.asarray(ins[0])
    rows = v.reshape(-1, v.shape[-1])
    if dt == _F32:
        beta = _beta(ctx)
        e = np.exp(((rows - rows.max(axis=1, keepdims=True)) * beta).astype(np.float32))
        return [(e / e.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32).reshape(v.shape)]
    return [_softmax_q(_softmax_q_params(ctx, x, y), rows).astype(np.int8).reshape(v.shape)]


def prepare_softmax(ctx):
    x, y, dt = _check_softmax(ctx)
    depth = int(x.shape[-1])
    if dt == _F32:
        beta = _beta(ctx)

        m = [None] * 4

        def run(ins, outs):
            a, o = ins[0], outs[0]
            if a is not m[0] or o is not m[1]:
                refresh_views(m, (a, o), (-1, -1))
            softmax_f32(m[2], m[3], depth, beta)

        return run, [x.shape]
    exp_tab, acc_tab, valid = _softmax_tables(_softmax_q_params(ctx, x, y))
    m = [None] * 4

    def run(ins, outs):
        a, o = ins[0], outs[0]
        if a is not m[0] or o is not m[1]:
            refresh_views(m, (a, o), (-1, -1))
        softmax_q8(m[2], m[3], depth, exp_tab, acc_tab, valid)

    return run, [x.shape]


OPS = {
    "RELU": (prepare_relu, relu_ref),
    "RELU6": (prepare_relu, relu_ref),
    "RELU_N1_TO_1": (prepare_relu, relu_ref),
    "RELU_0_TO_1": (prepare_relu, relu_ref),
    "LEAKY_RELU": (prepare_leaky_relu, leaky_relu_ref),
    "HARD_SWISH": (prepare_hard_swish, hard_swish_ref),
    "LOGISTIC": (prepare_sigmoid_tanh, sigmoid_tanh_ref),
    "TANH": (prepare_sigmoid_tanh, sigmoid_tanh_ref),
    "PRELU": (prepare_prelu, prelu_ref),
    "SOFTMAX": (prepare_softmax, softmax_ref),
}
