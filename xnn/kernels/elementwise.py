"""Elementwise binary arithmetic: ADD, SUB, MUL with numpy broadcasting (float32, int8, uint8;
int16 ADD/SUB with TFLite's general-scale path).

Broadcasting: output shape follows numpy rules (what TFLite's CalculateShapeForBroadcast computes).
Prepare collapses the broadcast into at most MAX_GROUPS dimension groups, each with one stride per
input (0 where that input is broadcast, its element stride otherwise), so one 6-deep loop nest with
a contiguous innermost run serves every shape.

Quantized arithmetic (TFLite reference kernels, double-rounding MultiplyByQuantizedMultiplier):
  ADD/SUB, with a' = a - zp_a, b' = b - zp_b, L = 20 (8-bit) or 15 (int16, zero points 0):
      s_max2 = 2·max(s_a, s_b)
      A = mbqm(a'·2^L, M_a = s_a/s_max2),  B = mbqm(b'·2^L, ±M_b = s_b/s_max2)   (SUB negates the
      quantized multiplier of b, which is not the same as negating B: SRDHM rounds ties upward)
      y = clamp(mbqm(A + B, M_out = s_max2/(2^L·s_y)) + zp_y, act_lo, act_hi)
      Bounds: |a'|, |b'| ≤ 255, so |a'·2^20| < 2^28 and |A + B| < 2^29 (int16: |a'·2^15| ≤ 2^30,
      |A|, |B| ≤ 2^29): no int32 overflow.
  MUL: y = clamp(mbqm(a'·b', M = fl32(s_a·s_b)/s_y) + zp_y, act_lo, act_hi); |a'·b'| ≤ 65025.
The kernels evaluate these formulas exactly in int64 with a branch-free mbqm (quant.mbqm_bf_terms), which
vectorizes better than a 65536-entry table of all (a, b) byte pairs.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.core.options import DefaultOptions

from .quant import (activation_name, activation_range_float, activation_range_quantized,
                    mbqm_ref, quantize_multiplier)
from .quant import mbqm_bf_terms as _mbqm_bf

MAX_GROUPS = 6

# Kernels that never allocate are compiled without Numba's reference counting: when a loop body
# calls code with branches between loops, refcount pruning leaves an atomic incref/decref pair per
# call (measured ~30 ns per innermost run, 5x the work of a 64-element row).
NO_NRT = {"_nrt": False} if hasattr(DefaultOptions, "_nrt") else {}
FLT_MAX = float(np.finfo(np.float32).max)

OP_ADD, OP_SUB, OP_MUL, OP_PRELU = 0, 1, 2, 3

_INT_RANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
              np.dtype(np.int16): (-32768, 32767)}


# ---- broadcasting ------------------------------------------------------------------------------

def broadcast_shape(ctx, sa, sb) -> tuple:
    """numpy broadcast of two shapes; fails (XnnError) on incompatible extents."""
    n = max(len(sa), len(sb))
    pa = (1,) * (n - len(sa)) + tuple(sa)
    pb = (1,) * (n - len(sb)) + tuple(sb)
    out = []
    for x, y in zip(pa, pb):
        if x != y and x != 1 and y != 1:
            ctx.fail(f"shapes {tuple(sa)} and {tuple(sb)} are not broadcastable")
        out.append(y if x == 1 else x)
    return tuple(out)


def broadcast_plan(ctx, sa, sb, so):
    """Collapse a broadcast of shapes sa, sb to `so` into MAX_GROUPS groups.

    Returns int64 arrays (shape, stride_a, stride_b) of length MAX_GROUPS, leading groups padded with
    extent 1. Adjacent output dimensions merge when each input is either broadcast along all of them
    or along none, so the innermost group's strides are 0 or 1.
    """
    n = len(so)
    pa = (1,) * (n - len(sa)) + tuple(sa)
    pb = (1,) * (n - len(sb)) + tuple(sb)
    groups = []  # [extent, a_full, b_full]
    for d in range(n):
        if so[d] == 1:
            continue
        key = (pa[d] != 1, pb[d] != 1)
        if groups and (groups[-1][1], groups[-1][2]) == key:
            groups[-1][0] *= so[d]
        else:
            groups.append([so[d], key[0], key[1]])
    if len(groups) > MAX_GROUPS:
        ctx.fail(f"broadcast of {tuple(sa)} with {tuple(sb)} needs {len(groups)} loop levels "
                 f"(max {MAX_GROUPS})")
    shape = np.ones(MAX_GROUPS, np.int64)
    st_a = np.zeros(MAX_GROUPS, np.int64)
    st_b = np.zeros(MAX_GROUPS, np.int64)
    off = MAX_GROUPS - len(groups)
    ra = rb = 1
    for k in range(len(groups) - 1, -1, -1):
        ext, fa, fb = groups[k]
        shape[off + k] = ext
        if fa:
            st_a[off + k] = ra
            ra *= ext
        if fb:
            st_b[off + k] = rb
            rb *= ext
    return shape, st_a, st_b


# ---- kernels -----------------------------------------------------------------------------------
# Each driver walks the 5 outer loop levels and hands one innermost run (length shape[5], input
# strides 0 or 1) to an inlined row function whose loops have unit strides and no op switch inside,
# so LLVM vectorizes them. Offsets and counters are uint64: Numba emits no negative-index wraparound
# code for unsigned indices (that code blocks vectorization); slicing per row would instead cost a
# reference-count round trip per row.

@njit(cache=True, inline="always")
def _clampf(v, lo, hi):
    # NaN passes through, as std::min(std::max(v, lo), hi)
    return lo if v < lo else (hi if v > hi else v)


@njit(cache=True, inline="always")
def _row_f32(a, ia, ta, b, ib, tb, out, o, n, op, lo, hi):
    if ta == 1 and tb == 1:
        if op == OP_ADD:
            for i in range(n):
                out[o + i] = _clampf(a[ia + i] + b[ib + i], lo, hi)
        elif op == OP_SUB:
            for i in range(n):
                out[o + i] = _clampf(a[ia + i] - b[ib + i], lo, hi)
        elif op == OP_MUL:
            for i in range(n):
                out[o + i] = _clampf(a[ia + i] * b[ib + i], lo, hi)
        else:
            for i in range(n):
                x = a[ia + i]
                out[o + i] = x if x >= 0 else x * b[ib + i]
    elif ta == 1:
        y = b[ib]
        if op == OP_ADD:
            for i in range(n):
                out[o + i] = _clampf(a[ia + i] + y, lo, hi)
        elif op == OP_SUB:
            for i in range(n):
                out[o + i] = _clampf(a[ia + i] - y, lo, hi)
        elif op == OP_MUL:
            for i in range(n):
                out[o + i] = _clampf(a[ia + i] * y, lo, hi)
        else:
            for i in range(n):
                x = a[ia + i]
                out[o + i] = x if x >= 0 else x * y
    elif tb == 1:
        x = a[ia]
        if op == OP_ADD:
            for i in range(n):
                out[o + i] = _clampf(x + b[ib + i], lo, hi)
        elif op == OP_SUB:
            for i in range(n):
                out[o + i] = _clampf(x - b[ib + i], lo, hi)
        elif op == OP_MUL:
            for i in range(n):
                out[o + i] = _clampf(x * b[ib + i], lo, hi)
        else:
            for i in range(n):
                out[o + i] = x if x >= 0 else x * b[ib + i]
    else:
        x = a[ia]
        y = b[ib]
        if op == OP_ADD:
            v = _clampf(x + y, lo, hi)
        elif op == OP_SUB:
            v = _clampf(x - y, lo, hi)
        elif op == OP_MUL:
            v = _clampf(x * y, lo, hi)
        else:
            v = x if x >= 0 else x * y
        for i in range(n):
            out[o + i] = v


@njit(cache=True, **NO_NRT)
def binary_f32(a, b, out, shape, sa, sb, op, lo, hi):
    """out = clamp(a op b, lo, hi) in float32 over the broadcast loop nest (op: OP_* codes)."""
    n = np.uint64(shape[5])
    ta = np.uint64(sa[5])
    tb = np.uint64(sb[5])
    o = np.uint64(0)
    for i0 in range(shape[0]):
        for i1 in range(shape[1]):
            for i2 in range(shape[2]):
                for i3 in range(shape[3]):
                    for i4 in range(shape[4]):
                        ia = np.uint64(i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3] + i4 * sa[4])
                        ib = np.uint64(i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3] + i4 * sb[4])
                        _row_f32(a, ia, ta, b, ib, tb, out, o, n, op, lo, hi)
                        o += n


@njit(cache=True, inline="always")
def _clampi(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@njit(cache=True, inline="always")
def _row_q(a, ia, ta, b, ib, tb, out, o, n, op, p):
    """One run of an 8-bit (or int16 ADD/SUB) op; p holds the integer parameters (q*_vector)."""
    zp = p[0]
    lo = p[1]
    hi = p[2]
    if op == OP_ADD:  # ADD and SUB (SUB carries a negated multiplier for b)
        za, ma, ra, ha, ja = p[3], p[4], p[5], p[6], p[7]
        zb, mb, rb, hb, jb = p[8], p[9], p[10], p[11], p[12]
        mo, ro, ho, jo = p[13], p[14], p[15], p[16]
        ls = p[17]
        if ta == 1 and tb == 1:
            for i in range(n):
                sa_ = _mbqm_bf((np.int64(a[ia + i]) - za) << ls, ma, 0, ra, ha, ja)
                sb_ = _mbqm_bf((np.int64(b[ib + i]) - zb) << ls, mb, 0, rb, hb, jb)
                out[o + i] = _clampi(_mbqm_bf(sa_ + sb_, mo, 0, ro, ho, jo) + zp, lo, hi)
        elif ta == 1:
            sb_ = _mbqm_bf((np.int64(b[ib]) - zb) << ls, mb, 0, rb, hb, jb)
            for i in range(n):
                sa_ = _mbqm_bf((np.int64(a[ia + i]) - za) << ls, ma, 0, ra, ha, ja)
                out[o + i] = _clampi(_mbqm_bf(sa_ + sb_, mo, 0, ro, ho, jo) + zp, lo, hi)
        elif tb == 1:
            sa_ = _mbqm_bf((np.int64(a[ia]) - za) << ls, ma, 0, ra, ha, ja)
            for i in range(n):
                sb_ = _mbqm_bf((np.int64(b[ib + i]) - zb) << ls, mb, 0, rb, hb, jb)
                out[o + i] = _clampi(_mbqm_bf(sa_ + sb_, mo, 0, ro, ho, jo) + zp, lo, hi)
        else:
            sa_ = _mbqm_bf((np.int64(a[ia]) - za) << ls, ma, 0, ra, ha, ja)
            sb_ = _mbqm_bf((np.int64(b[ib]) - zb) << ls, mb, 0, rb, hb, jb)
            v = _clampi(_mbqm_bf(sa_ + sb_, mo, 0, ro, ho, jo) + zp, lo, hi)
            for i in range(n):
                out[o + i] = v
    elif op == OP_MUL:
        za, zb, m, lf, r, h, j = p[3], p[4], p[5], p[6], p[7], p[8], p[9]
        if ta == 1 and tb == 1:
            for i in range(n):
                x = (np.int64(a[ia + i]) - za) * (np.int64(b[ib + i]) - zb)
                out[o + i] = _clampi(_mbqm_bf(x, m, lf, r, h, j) + zp, lo, hi)
        elif ta == 1:
            y = np.int64(b[ib]) - zb
            for i in range(n):
                x = (np.int64(a[ia + i]) - za) * y
                out[o + i] = _clampi(_mbqm_bf(x, m, lf, r, h, j) + zp, lo, hi)
        elif tb == 1:
            y = np.int64(a[ia]) - za
            for i in range(n):
                x = y * (np.int64(b[ib + i]) - zb)
                out[o + i] = _clampi(_mbqm_bf(x, m, lf, r, h, j) + zp, lo, hi)
        else:
            x = (np.int64(a[ia]) - za) * (np.int64(b[ib]) - zb)
            v = _clampi(_mbqm_bf(x, m, lf, r, h, j) + zp, lo, hi)
            for i in range(n):
                out[o + i] = v
    else:  # PRELU: x' >= 0 ? mbqm(x', M1) : mbqm(x'·α', M2)
        zx, zal = p[3], p[4]
        m1, l1, r1, h1, j1 = p[5], p[6], p[7], p[8], p[9]
        m2, l2, r2, h2, j2 = p[10], p[11], p[12], p[13], p[14]
        if tb == 0:
            y = np.int64(b[ib]) - zal
            if ta == 1:
                for i in range(n):
                    x = np.int64(a[ia + i]) - zx
                    pos = _mbqm_bf(x, m1, l1, r1, h1, j1)
                    neg = _mbqm_bf(x * y, m2, l2, r2, h2, j2)
                    out[o + i] = _clampi((pos if x >= 0 else neg) + zp, lo, hi)
            else:
                x = np.int64(a[ia]) - zx
                v = _mbqm_bf(x, m1, l1, r1, h1, j1) if x >= 0 else _mbqm_bf(x * y, m2, l2, r2, h2, j2)
                v = _clampi(v + zp, lo, hi)
                for i in range(n):
                    out[o + i] = v
        else:
            for i in range(n):
                x = np.int64(a[ia + i * ta]) - zx
                pos = _mbqm_bf(x, m1, l1, r1, h1, j1)
                neg = _mbqm_bf(x * (np.int64(b[ib + i]) - zal), m2, l2, r2, h2, j2)
                out[o + i] = _clampi((pos if x >= 0 else neg) + zp, lo, hi)


@njit(cache=True, **NO_NRT)
def binary_q(a, b, out, shape, sa, sb, op, p):
    """8-bit ADD/SUB (op OP_ADD), MUL, PRELU, and int16 ADD/SUB, over the broadcast loop nest; exact
    TFLite arithmetic."""
    n = np.uint64(shape[5])
    ta = np.uint64(sa[5])
    tb = np.uint64(sb[5])
    o = np.uint64(0)
    for i0 in range(shape[0]):
        for i1 in range(shape[1]):
            for i2 in range(shape[2]):
                for i3 in range(shape[3]):
                    for i4 in range(shape[4]):
                        ia = np.uint64(i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3] + i4 * sa[4])
                        ib = np.uint64(i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3] + i4 * sb[4])
                        _row_q(a, ia, ta, b, ib, tb, out, o, n, op, p)
                        o += n


def mbqm_terms(q, shift):
    """(q, left, right, half, adj) for `_mbqm_bf` from a TFLite (multiplier, shift) pair."""
    left = max(shift, 0)
    right = max(-shift, 0)
    return [q, left, right, (1 << right) >> 1, 1 if right > 0 else 0]


# ---- quantized parameter derivation (load time) -------------------------------------------------

def _check_zp(ctx, spec, what):
    lo, hi = _INT_RANGE[np.dtype(spec.dtype)]
    if spec.quant is None:
        ctx.fail(f"{what} of dtype {np.dtype(spec.dtype).name} has no quantization parameters")
    if spec.quant.per_channel:
        ctx.fail(f"{what} is quantized per channel; {ctx.node.op} needs per-tensor quantization")
    if not lo <= spec.quant.zp <= hi:
        ctx.fail(f"{what} zero point {spec.quant.zp} outside [{lo}, {hi}]")
    if not spec.quant.s > 0:
        ctx.fail(f"{what} has non-positive scale {spec.quant.s}")
    return spec.quant.s, spec.quant.zp


def _act(ctx):
    try:
        return activation_name(ctx.opt.get("fused_activation_function", 0))
    except ValueError as e:
        ctx.fail(str(e))


def _float_range(ctx):
    """Float clamp of the fused activation; NONE clamps to ±FLT_MAX like TFLite (inf -> FLT_MAX)."""
    try:
        lo, hi = activation_range_float(_act(ctx))
    except ValueError as e:
        ctx.fail(str(e))
    return np.float32(max(lo, -FLT_MAX)), np.float32(min(hi, FLT_MAX))


def _checked_log2(x) -> bool:
    """TFLite CheckedLog2: is x a power of two (log2 within 1e-3 of an integer, in float32)?"""
    v = np.float32(np.log(np.float32(x))) * np.float32(1.0 / np.log(2.0))
    return bool(abs(v - np.float32(np.round(v))) < np.float32(1e-3))


def _add_params(ctx):
    """(zp_a, M_a, sh_a, zp_b, M_b, sh_b, M_out, sh_out, zp_y, lo, hi, L) of ADD/SUB, as TFLite's
    Prepare; L = 20 for 8-bit, 15 for int16 (|x|·2^15 ≤ 2^30 keeps A + B inside int32)."""
    a, b = ctx.ins[0], ctx.ins[1]
    y = ctx.outs[0]
    s_a, zp_a = _check_zp(ctx, a, "input 1")
    s_b, zp_b = _check_zp(ctx, b, "input 2")
    s_y, zp_y = _check_zp(ctx, y, "output")
    left = 20
    if np.dtype(y.dtype) == np.int16:
        left = 15
        if zp_a or zp_b or zp_y:
            ctx.fail("int16 ADD/SUB needs zero points of 0")
        if ctx.opt.get("pot_scale_int16", True) and all(_checked_log2(v) for v in (s_a, s_b, s_y)):
            ctx.fail("int16 ADD/SUB with power-of-two scales and pot_scale_int16 (TFLite's POT path) "
                     "is not supported")
    twice_max = 2.0 * float(max(np.float32(s_a), np.float32(s_b)))
    real_a = s_a / twice_max
    real_b = s_b / twice_max
    real_out = twice_max / (float(1 << left) * s_y)
    if not real_out < 1.0:
        ctx.fail(f"output scale {s_y} too small for input scales {s_a}, {s_b} "
                 f"(TFLite needs 2·max(s_in) / (2^{left}·s_out) < 1)")
    m_a, sh_a = quantize_multiplier(real_a)
    m_b, sh_b = quantize_multiplier(real_b)
    m_o, sh_o = quantize_multiplier(real_out)
    if ctx.node.op == "SUB":
        m_b = -m_b
    qmin, qmax = _INT_RANGE[np.dtype(y.dtype)]
    try:
        lo, hi = activation_range_quantized(_act(ctx), s_y, zp_y, qmin, qmax)
    except ValueError as e:
        ctx.fail(str(e))
    return zp_a, m_a, sh_a, zp_b, m_b, sh_b, m_o, sh_o, zp_y, lo, hi, left


def _mul_params(ctx):
    a, b = ctx.ins[0], ctx.ins[1]
    y = ctx.outs[0]
    s_a, zp_a = _check_zp(ctx, a, "input 1")
    s_b, zp_b = _check_zp(ctx, b, "input 2")
    s_y, zp_y = _check_zp(ctx, y, "output")
    real = float(np.float32(np.float32(s_a) * np.float32(s_b)) / np.float32(s_y))
    m, sh = quantize_multiplier(real)
    # mbqm left-shifts a'·b' (|a'·b'| ≤ 65025 < 2^16) by max(sh, 0): keep it inside int32.
    if sh > 15:
        ctx.fail(f"MUL rescale factor {real:.3g} too large (int32 overflow)")
    qmin, qmax = _INT_RANGE[np.dtype(y.dtype)]
    try:
        lo, hi = activation_range_quantized(_act(ctx), s_y, zp_y, qmin, qmax)
    except ValueError as e:
        ctx.fail(str(e))
    return zp_a, zp_b, m, sh, zp_y, lo, hi


def _quantized_add(p, a, b):
    """The ADD/SUB spec on int arrays (broadcasting); returns int64 values."""
    zp_a, m_a, sh_a, zp_b, m_b, sh_b, m_o, sh_o, zp_y, lo, hi, left = p
    xa = (np.asarray(a, np.int64) - zp_a) * (1 << left)
    xb = (np.asarray(b, np.int64) - zp_b) * (1 << left)
    raw = mbqm_ref(xa, m_a, sh_a) + mbqm_ref(xb, m_b, sh_b)
    return np.clip(mbqm_ref(raw, m_o, sh_o) + zp_y, lo, hi)


def _quantized_mul(p, a, b):
    zp_a, zp_b, m, sh, zp_y, lo, hi = p
    prod = (np.asarray(a, np.int64) - zp_a) * (np.asarray(b, np.int64) - zp_b)
    return np.clip(mbqm_ref(prod, m, sh) + zp_y, lo, hi)


def q_add_vector(params):
    """int64 parameter vector of `_row_q` for ADD/SUB."""
    zp_a, m_a, sh_a, zp_b, m_b, sh_b, m_o, sh_o, zp_y, lo, hi, left = params
    ta, tb, to = mbqm_terms(m_a, sh_a), mbqm_terms(m_b, sh_b), mbqm_terms(m_o, sh_o)
    assert ta[1] == tb[1] == to[1] == 0  # TFLite quantizes these multipliers below one
    v = [zp_y, lo, hi, zp_a, ta[0], ta[2], ta[3], ta[4], zp_b, tb[0], tb[2], tb[3], tb[4],
         to[0], to[2], to[3], to[4], left]
    return np.array(v, np.int64)


def q_mul_vector(params):
    zp_a, zp_b, m, sh, zp_y, lo, hi = params
    return np.array([zp_y, lo, hi, zp_a, zp_b] + mbqm_terms(m, sh), np.int64)


# ---- op glue -----------------------------------------------------------------------------------

_QUANT8 = (np.dtype(np.int8), np.dtype(np.uint8))


def _check_binary(ctx):
    if len(ctx.ins) != 2 or ctx.ins[0] is None or ctx.ins[1] is None or len(ctx.outs) != 1:
        ctx.fail(f"{ctx.node.op} takes 2 inputs and 1 output")
    a, b = ctx.ins
    y = ctx.outs[0]
    if not (np.dtype(a.dtype) == np.dtype(b.dtype) == np.dtype(y.dtype)):
        ctx.fail(f"{ctx.node.op} needs equal dtypes, got {np.dtype(a.dtype).name}, "
                 f"{np.dtype(b.dtype).name} -> {np.dtype(y.dtype).name}")
    dt = np.dtype(y.dtype)
    int16_ok = dt == np.int16 and ctx.node.op in ("ADD", "SUB")
    if dt != np.float32 and dt not in _QUANT8 and not int16_ok:
        ctx.fail(f"{ctx.node.op} on {dt.name} is not supported (float32, int8, uint8; int16 ADD/SUB)")
    if len(a.shape) > 6 or len(b.shape) > 6:
        ctx.fail(f"{ctx.node.op} supports up to 6-D inputs, got {a.shape} and {b.shape}")
    return a, b, y, dt


def _ref_binary(ctx, ins):
    a, b = (np.asarray(x) for x in ins[:2])
    op = ctx.node.op
    dt = np.dtype(ctx.outs[0].dtype)
    if dt == np.float32:
        lo, hi = _float_range(ctx)
        with np.errstate(all="ignore"):
            v = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}[op](a, b, dtype=np.float32)
        v = np.where(v < lo, lo, v)
        v = np.where(v > hi, hi, v)
        return [v.astype(np.float32)]
    if op == "MUL":
        r = _quantized_mul(_mul_params(ctx), a, b)
    else:
        r = _quantized_add(_add_params(ctx), a, b)
    return [r.astype(dt)]


def refresh_views(memo, arrays, shapes, u8=False):
    """Per-node view cache: memo <- the node's arrays followed by their reshaped views (`shapes`,
    one per array; byte views if u8). run() compares the arrays by identity and refreshes only when
    one changed: the interpreter passes the same array objects on every invoke, and a reshape costs
    ~0.15 µs. A non-contiguous array's reshape is a copy, so then nothing is remembered (every call
    refreshes), exactly as an unconditional reshape would behave."""
    views = [a.reshape(s) for a, s in zip(arrays, shapes)]
    if u8:
        views = [v.view(np.uint8) for v in views]
    keep = all(a.flags.c_contiguous for a in arrays)
    memo[:] = (list(arrays) if keep else [None] * len(arrays)) + views


def _prepare_binary(ctx):
    a, b, y, dt = _check_binary(ctx)
    out_shape = broadcast_shape(ctx, a.shape, b.shape)
    shape, st_a, st_b = broadcast_plan(ctx, a.shape, b.shape, out_shape)
    op = ctx.node.op
    if dt == np.float32:
        lo, hi = _float_range(ctx)
        code = {"ADD": OP_ADD, "SUB": OP_SUB, "MUL": OP_MUL}[op]

        m = [None] * 6

        def run(ins, outs):
            a, b, o = ins[0], ins[1], outs[0]
            if a is not m[0] or b is not m[1] or o is not m[2]:
                refresh_views(m, (a, b, o), (-1, -1, -1))
            binary_f32(m[3], m[4], m[5], shape, st_a, st_b, code, lo, hi)

        return run, [out_shape]
    if op == "MUL":
        code, pv = OP_MUL, q_mul_vector(_mul_params(ctx))
    else:
        code, pv = OP_ADD, q_add_vector(_add_params(ctx))
    m = [None] * 6

    def run(ins, outs):
        a, b, o = ins[0], ins[1], outs[0]
        if a is not m[0] or b is not m[1] or o is not m[2]:
            refresh_views(m, (a, b, o), (-1, -1, -1))
        binary_q(m[3], m[4], m[5], shape, st_a, st_b, code, pv)

    return run, [out_shape]


OPS = {
    "ADD": (_prepare_binary, _ref_binary),
    "SUB": (_prepare_binary, _ref_binary),
    "MUL": (_prepare_binary, _ref_binary),
}

__all__ = ["OPS", "NO_NRT", "broadcast_shape", "broadcast_plan", "binary_f32", "binary_q",
           "mbqm_terms", "refresh_views", "OP_ADD", "OP_SUB", "OP_MUL", "OP_PRELU"]
