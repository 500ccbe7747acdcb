"""Pooling and reductions: AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, ARG_MAX (float32 and int8).

Semantics follow TFLite's reference kernels (BUILTIN_REF):
- Pooling windows are clipped to the input; padding cells are neither read nor counted.
  int8 average: acc = Σ q over the n cells in the window (input and output share scale and zero point),
  out = round_half_away(acc / n) = (acc + n/2) / n for acc > 0, (acc - n/2) / n otherwise (C integer
  division, truncating). Float average: Σ x in window order (row, then column) / n in float32.
  Max starts from the dtype's lowest finite value. Fused activations clamp; NONE clamps floats to
  ±FLT_MAX (TFLite's CalculateActivationRange), so ±inf come out as ±FLT_MAX.
- MEAN float32: Σ x in input (row-major) order, in float32, then / N in float32.
  MEAN int8 (every axis set, keep_dims or not, equal scales or not): with M = s_in/s_out quantized as
  (q, e) (M ≈ q·2^(e-31)), k = min(floor(log2 N), 32, 31 + e), q' = floor(q·2^k / N), e' = e - k:
      out = clamp(MBQM(Σ q_in - z_in·N, q', e') + z_out, -128, 127)
  (exact for |Σ q_in - z_in·N| ≤ 256·N < 2^31, i.e. N < 2^23, checked at prepare).
- ARG_MAX: first index of the maximum of the non-NaN values along the axis, 0 if all are NaN
  (LiteRT's non-last-axis path; its last-axis path can differ when a row starts with NaN).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import quant
from .elementwise import refresh_views

FLT_MAX = float(np.finfo(np.float32).max)
SAME, VALID = 0, 1
_TENSOR_TYPE_INT32, _TENSOR_TYPE_INT64 = 2, 4  # TFLite TensorType codes (ArgMaxOptions.output_type)


# ---- shared prepare helpers ---------------------------------------------------------------------

def _same_quant(ctx, a, b, what):
    """int8 ops that move values without rescaling need identical input/output quantization."""
    if a.quant is None or b.quant is None:
        ctx.fail(f"{what}: int8 tensors need quantization parameters")
    if a.quant.per_channel or b.quant.per_channel:
        ctx.fail(f"{what}: per-channel quantization is not supported")
    if abs(a.quant.s - b.quant.s) > 1e-6 or a.quant.zp != b.quant.zp:
        ctx.fail(f"{what}: int8 input and output must share scale and zero point "
                 f"(got {a.quant.s:g}/{a.quant.zp} vs {b.quant.s:g}/{b.quant.zp})")


def _act_name(ctx):
    try:
        return quant.activation_name(ctx.opt.get("fused_activation_function", 0))
    except ValueError as e:
        ctx.fail(str(e))


def _float_clamp(ctx, act):
    try:
        lo, hi = quant.activation_range_float(act)
    except ValueError as e:
        ctx.fail(str(e))
    # TFLite's "no activation" range is [lowest, max] of float, not ±inf.
    return max(float(lo), -FLT_MAX), min(float(hi), FLT_MAX)


def _quant_clamp(ctx, act, out):
    try:
        return quant.activation_range_quantized(act, out.quant.s, out.quant.zp, -128, 127)
    except ValueError as e:
        ctx.fail(str(e))


# ---- AVERAGE_POOL_2D / MAX_POOL_2D ----------------------------------------------------------------

def _pool_geometry(ctx):
    """Validated (n, ih, iw, c, fh, fw, sh, sw, ph, pw, oh, ow) of a 2-D pooling node."""
    if len(ctx.ins) != 1 or ctx.ins[0] is None or len(ctx.outs) != 1:
        ctx.fail("pooling takes exactly one input and one output")
    x, y = ctx.ins[0], ctx.outs[0]
    if len(x.shape) != 4:
        ctx.fail(f"pooling needs a 4-D NHWC input, got shape {x.shape}")
    if x.dtype != y.dtype:
        ctx.fail(f"input dtype {x.dtype} and output dtype {y.dtype} differ")
    if x.dtype not in (np.float32, np.int8):
        ctx.fail(f"dtype {x.dtype} is not supported (float32 and int8 are)")
    o = ctx.opt
    fh, fw = int(o.get("filter_height", 0)), int(o.get("filter_width", 0))
    sh, sw = int(o.get("stride_h", 0)), int(o.get("stride_w", 0))
    pad = int(o.get("padding", SAME))
    if fh < 1 or fw < 1:
        ctx.fail(f"filter size {fh}x{fw} must be positive")
    if sh < 1 or sw < 1:
        ctx.fail(f"strides {sh}x{sw} must be positive")
    if pad not in (SAME, VALID):
        ctx.fail(f"unknown padding code {pad}")
    n, ih, iw, c = (int(d) for d in x.shape)

    def out_and_pad(size, f, s):
        out = (size + s - 1) // s if pad == SAME else (size - f + s) // s
        return out, max(0, ((out - 1) * s + f - size) // 2)

    oh, ph = out_and_pad(ih, fh, sh)
    ow, pw = out_and_pad(iw, fw, sw)
    if min(n, ih, iw, c) < 1 or oh < 1 or ow < 1:
        ctx.fail(f"input {x.shape} with filter {fh}x{fw}, strides {sh}x{sw} gives an empty output")
    if fh * fw > (1 << 23):
        ctx.fail(f"filter {fh}x{fw} is too large (the int32 window sum could overflow)")
    return n, ih, iw, c, fh, fw, sh, sw, ph, pw, oh, ow


def _window(o, s, p, f, size):
    """Clipped window [start, end) in input coordinates for output position o."""
    origin = o * s - p
    return max(origin, 0), min(origin + f, size)


# Kernel notes: every inner loop runs over a 1-D view indexed from 0 (no negative-index wraparound
# code, so LLVM vectorizes it). Max pooling and int8 average pooling are exact in any order, so they
# run separably: stage 1 reduces the window's rows into one input-width row (long contiguous loops),
# stage 2 reduces that row's columns per output pixel. Float average keeps TFLite's row-major order.

@njit(cache=True)
def _avg_pool_i8(x, out, fh, fw, sh, sw, ph, pw, qmin, qmax, row, acc):
    """round_half_away(Σ/n) as sign(Σ)·floor((|Σ| + n//2 + 0.5)·(1/n)) in float64.

    Exact: |Σ|/n ≤ 128.5, so the two float64 roundings move (|Σ| + n//2 + 0.5)/n by < 2^-44,
    while that value sits ≥ 0.5/n away from the integers (n < 2^23), so floor never changes.
    x: (nb, ih, iw·nc), out: (nb, oh, ow·nc), row: int32 (iw·nc,), acc: int32 (nc,).
    """
    nb, ih, n_row = x.shape
    oh = out.shape[1]
    nc = acc.shape[0]
    iw = n_row // nc
    ow = out.shape[2] // nc
    for b in range(nb):
        for oy in range(oh):
            y0 = oy * sh - ph
            ya, yb = max(y0, 0), min(y0 + fh, ih)
            for i in range(n_row):
                row[i] = 0
            for yy in range(ya, yb):
                src = x[b, yy]
                for i in range(n_row):
                    row[i] += src[i]
            dst_row = out[b, oy]
            for ox in range(ow):
                x0 = ox * sw - pw
                xa, xb = max(x0, 0), min(x0 + fw, iw)
                for ch in range(nc):
                    acc[ch] = 0
                for xx in range(xa, xb):
                    src = row[xx * nc:(xx + 1) * nc]
                    for ch in range(nc):
                        acc[ch] += src[ch]
                cnt = (yb - ya) * (xb - xa)
                bias = (cnt // 2) + 0.5
                inv = 1.0 / cnt
                dst = dst_row[ox * nc:(ox + 1) * nc]
                for ch in range(nc):
                    a = acc[ch]
                    m = np.int32(np.floor((abs(a) + bias) * inv))
                    v = m if a >= 0 else -m
                    v = qmin if v < qmin else v
                    dst[ch] = qmax if v > qmax else v


@njit(cache=True)
def _avg_pool_f32(x, out, fh, fw, sh, sw, ph, pw, lo, hi, acc):
    nb, ih, iw, nc = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for b in range(nb):
        for oy in range(oh):
            y0 = oy * sh - ph
            ya, yb = max(y0, 0), min(y0 + fh, ih)
            for ox in range(ow):
                x0 = ox * sw - pw
                xa, xb = max(x0, 0), min(x0 + fw, iw)
                for ch in range(nc):
                    acc[ch] = 0.0
                for yy in range(ya, yb):
                    for xx in range(xa, xb):
                        src = x[b, yy, xx]
                        for ch in range(nc):
                            acc[ch] += src[ch]
                cnt = np.float32((yb - ya) * (xb - xa))
                dst = out[b, oy, ox]
                for ch in range(nc):
                    v = acc[ch] / cnt
                    v = lo if v < lo else v
                    dst[ch] = hi if v > hi else v


@njit(cache=True)
def _max_pool(x, out, nc, fh, fw, sh, sw, ph, pw, lowest, lo, hi, clamp, row):
    """max(lowest, window values), then clamp. x: (nb, ih, iw·nc), out: (nb, oh, ow·nc).

    `v if v > m else m` is std::max(m, v): a NaN input never replaces the running maximum.
    row: scratch of iw·nc values (the window rows' maximum, viewed as (iw, nc)).
    """
    nb, ih, n_row = x.shape
    oh = out.shape[1]
    iw = n_row // nc
    ow = out.shape[2] // nc
    for b in range(nb):
        for oy in range(oh):
            y0 = oy * sh - ph
            ya, yb = max(y0, 0), min(y0 + fh, ih)
            for i in range(n_row):
                row[i] = lowest
            for yy in range(ya, yb):
                src = x[b, yy]
                for i in range(n_row):
                    v = src[i]
                    m = row[i]
                    row[i] = v if v > m else m
            dst_row = out[b, oy]
            for ox in range(ow):
                x0 = ox * sw - pw
                xa, xb = max(x0, 0), min(x0 + fw, iw)
                dst = dst_row[ox * nc:(ox + 1) * nc]
                src = row[xa * nc:(xa + 1) * nc]
                for ch in range(nc):
                    dst[ch] = src[ch]
                for xx in range(xa + 1, xb):
                    src = row[xx * nc:(xx + 1) * nc]
                    for ch in range(nc):
                        v = src[ch]
                        m = dst[ch]
                        dst[ch] = v if v > m else m
                if clamp:
                    for ch in range(nc):
                        v = dst[ch]
                        v = lo if v < lo else v
                        dst[ch] = hi if v > hi else v


def _pool_clamp(ctx):
    act = _act_name(ctx)
    x, y = ctx.ins[0], ctx.outs[0]
    if x.dtype == np.int8:
        _same_quant(ctx, x, y, ctx.node.op)
        return _quant_clamp(ctx, act, y)
    return _float_clamp(ctx, act)


def prepare_average_pool_2d(ctx):
    n, ih, iw, c, fh, fw, sh, sw, ph, pw, oh, ow = _pool_geometry(ctx)
    lo, hi = _pool_clamp(ctx)
    if ctx.ins[0].dtype == np.int8:
        row, acc = np.zeros(iw * c, np.int32), np.zeros(c, np.int32)
        lo, hi = int(lo), int(hi)
        xs, ys = (n, ih, iw * c), (n, oh, ow * c)

        m = [None] * 4

        def run(ins, outs):
            x, o = ins[0], outs[0]
            if x is not m[0] or o is not m[1]:
                refresh_views(m, (x, o), (xs, ys))
            _avg_pool_i8(m[2], m[3], fh, fw, sh, sw, ph, pw, lo, hi, row, acc)
    else:
        acc = np.zeros(c, np.float32)
        lo, hi = np.float32(lo), np.float32(hi)

        def run(ins, outs):
            _avg_pool_f32(ins[0], outs[0], fh, fw, sh, sw, ph, pw, lo, hi, acc)

    return run, [(n, oh, ow, c)]


def prepare_max_pool_2d(ctx):
    n, ih, iw, c, fh, fw, sh, sw, ph, pw, oh, ow = _pool_geometry(ctx)
    lo, hi = _pool_clamp(ctx)
    dt = ctx.ins[0].dtype
    row = np.zeros(iw * c, dt)
    lowest = dt.type(np.iinfo(dt).min if dt == np.int8 else -FLT_MAX)
    top = dt.type(np.iinfo(dt).max if dt == np.int8 else FLT_MAX)
    clamp = bool(dt != np.int8 or lo > lowest or hi < top)  # floats: +inf must become FLT_MAX
    lo, hi = dt.type(lo), dt.type(hi)
    xs, ys = (n, ih, iw * c), (n, oh, ow * c)

    m = [None] * 4

    def run(ins, outs):
        x, o = ins[0], outs[0]
        if x is not m[0] or o is not m[1]:
            refresh_views(m, (x, o), (xs, ys))
        _max_pool(m[2], m[3], c, fh, fw, sh, sw, ph, pw, lowest, lo, hi, clamp, row)

    return run, [(n, oh, ow, c)]


def _pool_ref(ctx, ins, kind):
    n, ih, iw, c, fh, fw, sh, sw, ph, pw, oh, ow = _pool_geometry(ctx)
    lo, hi = _pool_clamp(ctx)
    x = np.asarray(ins[0])
    out = np.empty((n, oh, ow, c), x.dtype)
    for oy in range(oh):
        ya, yb = _window(oy, sh, ph, fh, ih)
        for ox in range(ow):
            xa, xb = _window(ox, sw, pw, fw, iw)
            win = x[:, ya:yb, xa:xb, :]
            if kind == "max":  # NaN never wins (std::max); an all-NaN window gives the lowest float
                v = np.where(np.isnan(win), -FLT_MAX, win).max(axis=(1, 2)) if x.dtype == np.float32 \
                    else win.max(axis=(1, 2))
            elif x.dtype == np.int8:
                total = win.astype(np.int64).sum(axis=(1, 2))
                cnt = win.shape[1] * win.shape[2]
                mag = (np.abs(total) + cnt // 2) // cnt  # round half away from zero
                v = np.sign(total) * mag
            else:
                v = win.astype(np.float64).sum(axis=(1, 2)) / (win.shape[1] * win.shape[2])
            out[:, oy, ox, :] = np.clip(v, lo, hi).astype(x.dtype)
    return [out]


def average_pool_2d_ref(ctx, ins):
    return _pool_ref(ctx, ins, "avg")


def max_pool_2d_ref(ctx, ins):
    return _pool_ref(ctx, ins, "max")


# ---- MEAN ---------------------------------------------------------------------------------------

def _mean_plan(ctx):
    """Validated (input shape, sorted unique reduced axes, output shape, N) of a MEAN node."""
    if len(ctx.ins) != 2 or ctx.ins[0] is None or ctx.ins[1] is None or len(ctx.outs) != 1:
        ctx.fail("MEAN takes an input and an axis tensor and has one output")
    x, ax, y = ctx.ins[0], ctx.ins[1], ctx.outs[0]
    if not ax.is_const:
        ctx.fail("MEAN with a computed (non-constant) axis tensor is not supported")
    if ax.dtype != np.int32:
        ctx.fail(f"MEAN axis tensor must be int32, got {ax.dtype}")
    if x.dtype != y.dtype or x.dtype not in (np.float32, np.int8):
        ctx.fail(f"MEAN supports float32 and int8 (same dtype in and out), got {x.dtype} -> {y.dtype}")
    shape = tuple(int(d) for d in x.shape)
    rank = len(shape)
    axes = []
    for a in np.asarray(ax.data).ravel():
        a = int(a)
        if not -rank <= a < rank:
            ctx.fail(f"MEAN axis {a} out of range for rank {rank}")
        a %= rank
        if a not in axes:
            axes.append(a)
    axes = sorted(axes) if rank else []
    if ctx.opt.get("keep_dims", False):
        out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    else:
        out_shape = tuple(d for i, d in enumerate(shape) if i not in axes)
    if any(d < 1 for d in shape):
        ctx.fail(f"MEAN of an empty input {shape} is not supported")
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    if x.dtype == np.int8:
        if x.quant is None or y.quant is None or x.quant.per_channel or y.quant.per_channel:
            ctx.fail("int8 MEAN needs per-tensor quantization on input and output")
        if count >= (1 << 23):
            ctx.fail(f"int8 MEAN over {count} elements could overflow the int32 sum")
        ratio = float(np.float64(x.quant.s) / np.float64(y.quant.s)) if y.quant.s > 0 else 0.0
        if not 2.0 ** -31 <= ratio < 2.0 ** 31:
            ctx.fail(f"int8 MEAN scale ratio {ratio:g} (input/output) is out of the supported range")
    return shape, axes, out_shape, count


def _collapse(shape, axes):
    """Merge runs of adjacent dims that are all reduced or all kept; size-1 dims vanish.

    Returns (dims, out_strides) with out_strides[i] = 0 on reduced dims and the row-major output
    stride of the merged kept dim otherwise, so that walking the input in row-major order and adding
    element k into acc[Σ idx_i·out_strides_i] visits each output's terms in input order.
    """
    runs = []  # [size, reduced]
    for i, d in enumerate(shape):
        if d == 1:
            continue
        red = i in axes
        if runs and runs[-1][1] == red:
            runs[-1][0] *= d
        else:
            runs.append([d, red])
    if not runs:
        runs = [[1, False]]
    strides = []
    s = 1
    for size, red in reversed(runs):
        strides.append(0 if red else s)
        if not red:
            s *= size
    dims = np.array([r[0] for r in runs], np.int64)
    return dims, np.array(strides[::-1], np.int64)


@njit(cache=True)
def _reduce_sum(x, dims, ostr, idx, acc):
    """acc[o] = Σ x over the reduced dims, each output's terms added in input order."""
    for i in range(acc.shape[0]):
        acc[i] = 0
    nd = dims.shape[0]
    inner = dims[nd - 1]
    istr = ostr[nd - 1]
    rows = x.shape[0] // inner
    for d in range(nd):
        idx[d] = 0
    ob = 0
    p = 0
    for _ in range(rows):
        src = x[p:p + inner]
        if istr == 0:
            s = acc[ob]
            for i in range(inner):
                s += src[i]
            acc[ob] = s
        else:
            dst = acc[ob:ob + inner]
            for i in range(inner):
                dst[i] += src[i]
        p += inner
        d = nd - 2
        while d >= 0:
            idx[d] += 1
            ob += ostr[d]
            if idx[d] < dims[d]:
                break
            ob -= ostr[d] * dims[d]
            idx[d] = 0
            d -= 1


@njit(cache=True)
def _mean_finish_f32(acc, count, out):
    for i in range(out.shape[0]):
        out[i] = acc[i] / count


@njit(cache=True)
def _mean_finish_i8(acc, offset, q, shift, zo, out):
    for i in range(out.shape[0]):
        v = quant.mbqm(acc[i] - offset, q, shift) + zo
        if v < -128:
            v = -128
        if v > 127:
            v = 127
        out[i] = v


def _mean_multiplier(x, y, count):
    """(q', e') folding s_in/s_out and 1/count into one quantized multiplier (see module doc)."""
    q, e = quant.quantize_multiplier(float(np.float64(x.quant.s) / np.float64(y.quant.s)))
    k = min(count.bit_length() - 1, 32, 31 + e)
    return int((q << k) // count), e - k


def prepare_mean(ctx):
    shape, axes, out_shape, count = _mean_plan(ctx)
    x, y = ctx.ins[0], ctx.outs[0]
    dims, ostr = _collapse(shape, axes)
    idx = np.zeros(dims.shape[0], np.int64)
    n_out = int(np.prod(out_shape, dtype=np.int64))
    if x.dtype == np.float32:
        acc = np.zeros(n_out, np.float32)
        cnt = np.float32(count)

        m = [None] * 4

        def run(ins, outs):
            x, o = ins[0], outs[0]
            if x is not m[0] or o is not m[1]:
                refresh_views(m, (x, o), (-1, -1))
            _reduce_sum(m[2], dims, ostr, idx, acc)
            _mean_finish_f32(acc, cnt, m[3])
    else:
        acc = np.zeros(n_out, np.int32)
        q, e = _mean_multiplier(x, y, count)
        offset, zo = x.quant.zp * count, y.quant.zp

        m = [None] * 4

        def run(ins, outs):
            x, o = ins[0], outs[0]
            if x is not m[0] or o is not m[1]:
                refresh_views(m, (x, o), (-1, -1))
            _reduce_sum(m[2], dims, ostr, idx, acc)
            _mean_finish_i8(acc, offset, q, e, zo, m[3])

    return run, [out_shape]


def mean_ref(ctx, ins):
    shape, axes, out_shape, count = _mean_plan(ctx)
    x, y = ctx.ins[0], ctx.outs[0]
    v = np.asarray(ins[0])
    if x.dtype == np.float32:
        r = v.astype(np.float64).sum(axis=tuple(axes)) / count
        return [r.astype(np.float32).reshape(out_shape)]
    total = v.astype(np.int64).sum(axis=tuple(axes))
    q, e = _mean_multiplier(x, y, count)
    r = quant.mbqm_ref(total - x.quant.zp * count, q, e) + y.quant.zp
    return [np.clip(r, -128, 127).astype(np.int8).reshape(out_shape)]


# ---- ARG_MAX ------------------------------------------------------------------------------------

_ARGMAX_INPUTS = (np.float32, np.int8, np.uint8, np.int32)


def _argmax_plan(ctx):
    """Validated (input shape, axis, output shape, output dtype) of an ARG_MAX node."""
    if len(ctx.ins) != 2 or ctx.ins[0] is None or ctx.ins[1] is None or len(ctx.outs) != 1:
        ctx.fail("ARG_MAX takes an input and an axis tensor and has one output")
    x, ax, y = ctx.ins[0], ctx.ins[1], ctx.outs[0]
    if x.dtype not in _ARGMAX_INPUTS:
        ctx.fail(f"ARG_MAX input dtype {x.dtype} is not supported (float32, int8, uint8, int32 are)")
    if not ax.is_const:
        ctx.fail("ARG_MAX with a computed (non-constant) axis tensor is not supported")
    if ax.dtype not in (np.int32, np.int64) or np.asarray(ax.data).size != 1:
        ctx.fail("ARG_MAX axis must be a single int32 or int64 value")
    code = int(ctx.opt.get("output_type", _TENSOR_TYPE_INT64))
    odt = {_TENSOR_TYPE_INT32: np.dtype(np.int32), _TENSOR_TYPE_INT64: np.dtype(np.int64)}.get(code)
    if odt is None:
        ctx.fail(f"ARG_MAX output_type {code} is not supported (int32 or int64)")
    if y.dtype != odt:
        ctx.fail(f"ARG_MAX output tensor is {y.dtype} but output_type says {odt}")
    shape = tuple(int(d) for d in x.shape)
    rank = len(shape)
    if rank < 1:
        ctx.fail("ARG_MAX needs an input of rank >= 1")
    axis = int(np.asarray(ax.data).ravel()[0])
    if not -rank <= axis < rank:
        ctx.fail(f"ARG_MAX axis {axis} out of range for rank {rank}")
    axis %= rank
    if shape[axis] < 1 or any(d < 1 for d in shape):
        ctx.fail(f"ARG_MAX over an empty input {shape} is not supported")
    return shape, axis, shape[:axis] + shape[axis + 1:], odt


@njit(cache=True)
def _argmax(x, outer, n, inner, best, out):
    """First index of the maximum over the non-NaN values (0 when every value is NaN)."""
    for o in range(outer):
        base = o * n * inner
        ob = o * inner
        if inner == 1:
            # the maximum by a select reduction, then the first index holding it
            src = x[base:base + n]
            j0 = 0
            while j0 < n - 1 and src[j0] != src[j0]:  # skip leading NaNs
                j0 += 1
            m = src[j0]
            for j in range(j0 + 1, n):
                v = src[j]
                m = v if v > m else m
            k = 0
            while k < n and not src[k] == m:
                k += 1
            out[ob] = k if k < n else 0
        else:
            idx = out[ob:ob + inner]
            src = x[base:base + inner]
            for i in range(inner):
                best[i] = src[i]
                idx[i] = 0
            for j in range(1, n):
                src = x[base + j * inner:base + (j + 1) * inner]
                for i in range(inner):
                    v = src[i]
                    m = best[i]
                    if v > m or (m != m and v == v):
                        best[i] = v
                        idx[i] = j


def prepare_arg_max(ctx):
    shape, axis, out_shape, odt = _argmax_plan(ctx)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    n = shape[axis]
    best = np.zeros(inner, ctx.ins[0].dtype)

    def run(ins, outs):
        _argmax(ins[0].reshape(-1), outer, n, inner, best, outs[0].reshape(-1))

    return run, [out_shape]


def arg_max_ref(ctx, ins):
    shape, axis, out_shape, odt = _argmax_plan(ctx)
    x = np.asarray(ins[0])
    if x.dtype == np.float32:
        top = np.max(np.where(np.isnan(x), -np.inf, x), axis=axis, keepdims=True)
    else:
        top = np.max(x, axis=axis, keepdims=True)
    hit = x == top  # NaN never equals the maximum of the non-NaN values
    idx = np.where(hit.any(axis=axis), np.argmax(hit, axis=axis), 0)
    return [idx.astype(odt).reshape(out_shape)]


OPS = {
    "AVERAGE_POOL_2D": (prepare_average_pool_2d, average_pool_2d_ref),
    "MAX_POOL_2D": (prepare_max_pool_2d, max_pool_2d_ref),
    "MEAN": (prepare_mean, mean_ref),
    "ARG_MAX": (prepare_arg_max, arg_max_ref),
}
