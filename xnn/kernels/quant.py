"""Fixed-point requantization shared by every int8 kernel (TFLite's gemmlowp-style arithmetic).

A real multiplier M > 0 is stored as (q, shift) with M ≈ q · 2^(shift-31), q ∈ [2^30, 2^31).
`mbqm(x, q, shift)` computes round(x · M) the way TFLite's MultiplyByQuantizedMultiplier does
(double rounding: a rounding doubling high multiply, then a rounding right shift), exactly, for
any int32 x. Load-time helpers are plain Python; the `@njit` ones run inside kernels.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ir import ACTIVATIONS

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real m -> (q int32, shift) with m ≈ q·2^(shift-31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)  # m = frac·2^shift, frac ∈ [0.5, 1)
    q = _round_half_away(frac * (1 << 31))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        shift, q = 0, 0
    return int(q), int(shift)


def quantize_multipliers(ms) -> tuple[np.ndarray, np.ndarray]:
    """Vector form of quantize_multiplier: (int32 multipliers, int32 shifts)."""
    pairs = [quantize_multiplier(float(m)) for m in np.asarray(ms, dtype=np.float64).ravel()]
    return (np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32))


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_value(f: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize(): zero_point + round(f / scale) in float32, half away from zero."""
    return int(zero_point) + _round_half_away(float(np.float32(f) / np.float32(scale)))


def activation_range_quantized(act: str, scale: float, zero_point: int, qmin: int, qmax: int):
    """CalculateActivationRangeQuantized: fused activation -> clamp bounds in the quantized domain."""
    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, quantize_value(0.0, scale, zero_point)), qmax
    if act == "RELU6":
        return (max(qmin, quantize_value(0.0, scale, zero_point)),
                min(qmax, quantize_value(6.0, scale, zero_point)))
    if act == "RELU_N1_TO_1":
        return (max(qmin, quantize_value(-1.0, scale, zero_point)),
                min(qmax, quantize_value(1.0, scale, zero_point)))
    raise ValueError(f"fused activation {act} is not supported on quantized tensors")


def activation_range_float(act: str):
    """Fused activation -> float clamp bounds. TFLite clamps "no activation" to ±FLT_MAX, so an
    infinite input comes out as ±FLT_MAX, not ±inf."""
    big = float(np.finfo(np.float32).max)
    return {"NONE": (-big, big), "RELU": (0.0, big), "RELU6": (0.0, 6.0),
            "RELU_N1_TO_1": (-1.0, 1.0)}.get(act) or _bad_act(act)


def _bad_act(act):
    raise ValueError(f"fused activation {act} is not supported")


def activation_name(code) -> str:
    code = int(code)
    if not 0 <= code < len(ACTIVATIONS):
        raise ValueError(f"unknown fused activation code {code}")
    return ACTIVATIONS[code]


# ---- exact fixed-point primitives (NumPy, vectorized; the spec) -------------------------------

def srdhm_ref(a, b):
    """SaturatingRoundingDoublingHighMul on int64 arrays holding int32 values."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero
    r = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, r)


def rdbypot_ref(x, exponent):
    """RoundingDivideByPOT: x / 2^exponent rounded half away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> exponent) + (rem > thr)


def mbqm_ref(x, q, shift):
    """MultiplyByQuantizedMultiplier on arrays (broadcasting): int32 result as int64."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    xs = np.asarray(x, np.int64) * (np.int64(1) << left)
    xs = ((xs - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN  # the int32 product wraps, as in LiteRT
    return rdbypot_ref(srdhm_ref(xs, q), right)


# ---- the same primitives for Numba kernels ---------------------------------------------------

@njit(cache=True, inline="always")
def srdhm(a, b):
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = np.int64(a) * np.int64(b)
    if ab >= 0:
        s = ab + (1 << 30)
        return s >> 31
    s = ab + (1 - (1 << 30))
    return -((-s) >> 31)


@njit(cache=True, inline="always")
def rdbypot(x, exponent):
    mask = (np.int64(1) << exponent) - 1
    rem = x & mask
    thr = mask >> 1
    if x < 0:
        thr += 1
    r = x >> exponent
    if rem > thr:
        r += 1
    return r


@njit(cache=True, inline="always")
def mbqm(x, q, shift):
    """round(x · q·2^(shift-31)) exactly as TFLite's MultiplyByQuantizedMultiplier (int64 out)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    xs = ((np.int64(x) * (np.int64(1) << left) - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN  # int32 wrap
    return rdbypot(srdhm(xs, q), right)


@njit(cache=True, inline="always")
def mbqm_split(shift):
    """(left, right) shifts of a TFLite multiplier exponent, for mbqm_bf."""
    return (shift if shift > 0 else 0), (-shift if shift < 0 else 0)


@njit(cache=True, inline="always")
def rdbypot_terms(v, right, half, adj):
    """RoundingDivideByPOT without branches: floor((v + 2^(e-1) - [v < 0]) / 2^e) for e = right >= 1;
    `half` = 2^(right-1) or 0 and `adj` = [right > 0] select the e = 0 identity."""
    return (v + half - (v < 0) * adj) >> right


@njit(cache=True, inline="always")
def rdbypot_bf(v, e):
    """RoundingDivideByPOT(v, e) without branches (rdbypot_terms with its terms from e)."""
    return rdbypot_terms(v, e, (np.int64(1) << e) >> 1, np.int64(e > 0))


@njit(cache=True, inline="always")
def mbqm_bf_terms(x, q, left, right, half, adj):
    """Branch-free mbqm for |x·2^left| < 2^31 and q > INT32_MIN, with rdbypot_terms' half/adj
    precomputed: SRDHM(v, q) = floor((v·q + 2^30) / 2^31) for every product (TFLite's nudge
    1 - 2^30 with truncation toward zero is that floor for v·q < 0), then RDBPOT."""
    v = ((x << left) * q + (1 << 30)) >> 31
    return rdbypot_terms(v, right, half, adj)


@njit(cache=True, inline="always")
def mbqm_bf(x, q, left, right):
    """mbqm without branches (LLVM vectorizes loops of it), for 0 <= q < 2^31 and any int64 x: x·2^left
    wraps to int32 as in mbqm, then mbqm_bf_terms (left, right from mbqm_split)."""
    xs = (((np.int64(x) << left) - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN
    return mbqm_bf_terms(xs, q, 0, right, (np.int64(1) << right) >> 1, np.int64(right > 0))
