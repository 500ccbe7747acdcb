"""Image resizing: RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR (NHWC, float32 and int8).

Source coordinates are computed once at prepare into per-row / per-column tables, exactly as
TFLite's reference kernels compute them:
- Bilinear float32: scale = in/out (align_corners and out > 1: (in-1)/(out-1)), in float32;
  src = o·scale, or (o + 0.5)·scale - 0.5 with half_pixel_centers; i0 = max(floor(src), 0),
  i1 = min(ceil(src), in-1), w1 = src - i0, w0 = 1 - w1 (all float32; w can fall outside [0, 1]
  at the borders, where i0 = i1 so the weights still sum to 1). The output is
  ((v00·wy0)·wx0 + (v10·wy1)·wx0) + (v01·wy0)·wx1 + (v11·wy1)·wx1, evaluated in that order.
- Bilinear int8 (the reference's integer path, no floating point): coordinates in 1/1024 units,
  scale10 = round_half_up(1024·in / out) (align_corners: 1024·(in-1) / (out-1)),
  src10 = o·scale10 (+ scale10/2 - 512 with half_pixel_centers), i0 = max(src10 / 1024, 0),
  i1 = min((src10 + 1023) / 1024, in-1) (C division, truncating), w1 = src10 - 1024·i0,
  w0 = 1024 - w1. acc = Σ v·wy·wx (|acc| ≤ 128·2048² < 2^31), out = round_half_away(acc / 2^20).
  Input and output share scale and zero point (values are interpolated, never rescaled).
- Nearest: scale as above in float32; src = floor((o + off)·scale), or round_half_away(...) with
  align_corners, off = 0.5 with half_pixel_centers; clamped to [0, in-1].
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .pool import _same_quant

f32 = np.float32


def _trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _plan(ctx, allow_both: bool):
    """Validated (n, ih, iw, c, oh, ow, align_corners, half_pixel_centers) of a resize node."""
    op = ctx.node.op
    if len(ctx.ins) != 2 or ctx.ins[0] is None or ctx.ins[1] is None or len(ctx.outs) != 1:
        ctx.fail(f"{op} takes an image and a size tensor and has one output")
    x, size, y = ctx.ins[0], ctx.ins[1], ctx.outs[0]
    if len(x.shape) != 4:
        ctx.fail(f"{op} needs a 4-D NHWC input, got shape {x.shape}")
    if x.dtype != y.dtype or x.dtype not in (np.float32, np.int8):
        ctx.fail(f"{op} supports float32 and int8 (same dtype in and out), got {x.dtype} -> {y.dtype}")
    if x.dtype == np.int8:
        _same_quant(ctx, x, y, op)
    if not size.is_const:
        ctx.fail(f"{op} with a computed (non-constant) size tensor is not supported")
    if size.dtype != np.int32 or tuple(size.shape) != (2,):
        ctx.fail(f"{op} size must be an int32 tensor of shape [2], got {size.dtype} {size.shape}")
    oh, ow = (int(v) for v in np.asarray(size.data).ravel())
    if oh < 1 or ow < 1:
        ctx.fail(f"{op} output size {oh}x{ow} must be positive")
    align = bool(ctx.opt.get("align_corners", False))
    half = bool(ctx.opt.get("half_pixel_centers", False))
    if align and half and not allow_both:
        ctx.fail(f"{op}: align_corners and half_pixel_centers cannot both be set")
    n, ih, iw, c = (int(d) for d in x.shape)
    if min(n, ih, iw, c) < 1:
        ctx.fail(f"{op} of an empty input {x.shape} is not supported")
    if max(ih, iw, oh, ow) > (1 << 16):
        ctx.fail(f"{op} sizes above 65536 are not supported")
    return n, ih, iw, c, oh, ow, align, half


def _float_scale(in_size: int, out_size: int, align: bool):
    if align and out_size > 1:
        return f32(in_size - 1) / f32(out_size - 1)
    return f32(in_size) / f32(out_size)


# ---- RESIZE_BILINEAR ----------------------------------------------------------------------------

def _bilinear_axis_f32(ctx, in_size, out_size, align, half):
    """Per output index: (i0, i1, w0, w1), float32 weights."""
    scale = _float_scale(in_size, out_size, align)
    i0 = np.empty(out_size, np.int64)
    i1 = np.empty(out_size, np.int64)
    w1 = np.empty(out_size, np.float32)
    for o in range(out_size):
        src = (f32(o) + f32(0.5)) * scale - f32(0.5) if half else f32(o) * scale
        i0[o] = max(int(math.floor(src)), 0)
        i1[o] = min(int(math.ceil(src)), in_size - 1)
        w1[o] = src - f32(i0[o])
    _check_bounds(ctx, i0, i1, in_size)
    return i0, i1, (f32(1) - w1).astype(np.float32), w1


def _bilinear_axis_i8(ctx, in_size, out_size, align, half):
    """Per output index: (i0, i1, w0, w1), weights in 1/1024 units."""
    if align and out_size > 1:
        scale10 = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale10 = ((1 << 10) * in_size + out_size // 2) // out_size
    i0 = np.empty(out_size, np.int64)
    i1 = np.empty(out_size, np.int64)
    w1 = np.empty(out_size, np.int64)
    for o in range(out_size):
        src = o * scale10 + (scale10 // 2 - (1 << 9) if half else 0)
        i0[o] = max(_trunc_div(src, 1 << 10), 0)
        i1[o] = min(_trunc_div(src + (1 << 10) - 1, 1 << 10), in_size - 1)
        w1[o] = src - (1 << 10) * i0[o]
    _check_bounds(ctx, i0, i1, in_size)
    w0 = (1 << 10) - w1
    if np.any(np.abs(w0) + np.abs(w1) > 2048):
        ctx.fail("internal: bilinear weights exceed the int32 accumulator bound")
    return i0, i1, w0, w1


def _check_bounds(ctx, i0, i1, in_size):
    if i0.max() > in_size - 1 or i1.min() < 0:
        ctx.fail(f"{ctx.node.op}: this upscaling factor makes TFLite's reference kernel sample "
                 f"outside the input (size {in_size}); not supported")


@njit(cache=True)
def _bilinear_i8(x, out, y0, y1, wy0, wy1, x0, x1, wx0, wx1):
    nb, nc = x.shape[0], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for b in range(nb):
        for oy in range(oh):
            ya, yb = y0[oy], y1[oy]
            for ox in range(ow):
                xa, xb = x0[ox], x1[ox]
                w00 = np.int32(wy0[oy] * wx0[ox])
                w10 = np.int32(wy1[oy] * wx0[ox])
                w01 = np.int32(wy0[oy] * wx1[ox])
                w11 = np.int32(wy1[oy] * wx1[ox])
                r00, r10, r01, r11 = x[b, ya, xa], x[b, yb, xa], x[b, ya, xb], x[b, yb, xb]
                dst = out[b, oy, ox]
                for ch in range(nc):
                    acc = (np.int32(r00[ch]) * w00 + np.int32(r10[ch]) * w10
                           + np.int32(r01[ch]) * w01 + np.int32(r11[ch]) * w11)
                    half = np.int32(1 << 19)
                    dst[ch] = (acc + half) >> 20 if acc > 0 else -((half - acc) >> 20)


@njit(cache=True)
def _bilinear_f32(x, out, y0, y1, wy0, wy1, x0, x1, wx0, wx1):
    nb, nc = x.shape[0], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for b in range(nb):
        for oy in range(oh):
            ya, yb = y0[oy], y1[oy]
            a0, a1 = wy0[oy], wy1[oy]
            for ox in range(ow):
                xa, xb = x0[ox], x1[ox]
                c0, c1 = wx0[ox], wx1[ox]
                r00, r10, r01, r11 = x[b, ya, xa], x[b, yb, xa], x[b, ya, xb], x[b, yb, xb]
                dst = out[b, oy, ox]
                for ch in range(nc):
                    dst[ch] = r00[ch] * a0 * c0 + r10[ch] * a1 * c0 + r01[ch] * a0 * c1 + r11[ch] * a1 * c1


def _bilinear_tables(ctx):
    n, ih, iw, c, oh, ow, align, half = _plan(ctx, allow_both=False)
    axis = _bilinear_axis_i8 if ctx.ins[0].dtype == np.int8 else _bilinear_axis_f32
    ty = axis(ctx, ih, oh, align, half)
    tx = axis(ctx, iw, ow, align, half)
    return (n, oh, ow, c), ty, tx


def prepare_resize_bilinear(ctx):
    out_shape, (y0, y1, wy0, wy1), (x0, x1, wx0, wx1) = _bilinear_tables(ctx)
    kernel = _bilinear_i8 if ctx.ins[0].dtype == np.int8 else _bilinear_f32

    def run(ins, outs):
        kernel(ins[0], outs[0], y0, y1, wy0, wy1, x0, x1, wx0, wx1)

    return run, [out_shape]


def resize_bilinear_ref(ctx, ins):
    out_shape, (y0, y1, wy0, wy1), (x0, x1, wx0, wx1) = _bilinear_tables(ctx)
    x = np.asarray(ins[0])
    if x.dtype == np.int8:
        v = x.astype(np.int64)
        wy0, wy1 = wy0[None, :, None, None], wy1[None, :, None, None]
        wx0, wx1 = wx0[None, None, :, None], wx1[None, None, :, None]
        acc = (v[:, y0][:, :, x0] * wy0 * wx0 + v[:, y1][:, :, x0] * wy1 * wx0
               + v[:, y0][:, :, x1] * wy0 * wx1 + v[:, y1][:, :, x1] * wy1 * wx1)
        r = np.sign(acc) * ((np.abs(acc) + (1 << 19)) >> 20)  # round half away from zero
        return [r.astype(np.int8)]
    v = x.astype(np.float64)
    wy0, wy1 = wy0[None, :, None, None].astype(np.float64), wy1[None, :, None, None].astype(np.float64)
    wx0, wx1 = wx0[None, None, :, None].astype(np.float64), wx1[None, None, :, None].astype(np.float64)
    r = (v[:, y0][:, :, x0] * wy0 * wx0 + v[:, y1][:, :, x0] * wy1 * wx0
         + v[:, y0][:, :, x1] * wy0 * wx1 + v[:, y1][:, :, x1] * wy1 * wx1)
    return [r.astype(np.float32)]


# ---- RESIZE_NEAREST_NEIGHBOR --------------------------------------------------------------------

def _nearest_axis(in_size, out_size, align, half):
    scale = _float_scale(in_size, out_size, align)
    off = f32(0.5) if half else f32(0.0)
    idx = np.empty(out_size, np.int64)
    for o in range(out_size):
        src = float((f32(o) + off) * scale)  # ≥ 0; float32 value, exact in float64
        i = int(math.floor(src + 0.5)) if align else int(math.floor(src))
        idx[o] = max(min(i, in_size - 1), 0)
    return idx


def _nearest_tables(ctx):
    n, ih, iw, c, oh, ow, align, half = _plan(ctx, allow_both=True)
    return (n, oh, ow, c), _nearest_axis(ih, oh, align, half), _nearest_axis(iw, ow, align, half)


@njit(cache=True)
def _nearest(x, out, iy, ix):
    nb, nc = x.shape[0], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    for b in range(nb):
        for oy in range(oh):
            sy = iy[oy]
            for ox in range(ow):
                src = x[b, sy, ix[ox]]
                dst = out[b, oy, ox]
                for ch in range(nc):
                    dst[ch] = src[ch]


def prepare_resize_nearest_neighbor(ctx):
    out_shape, iy, ix = _nearest_tables(ctx)

    def run(ins, outs):
        _nearest(ins[0], outs[0], iy, ix)

    return run, [out_shape]


def resize_nearest_neighbor_ref(ctx, ins):
    out_shape, iy, ix = _nearest_tables(ctx)
    return [np.asarray(ins[0])[:, iy][:, :, ix].copy()]


OPS = {
    "RESIZE_BILINEAR": (prepare_resize_bilinear, resize_bilinear_ref),
    "RESIZE_NEAREST_NEIGHBOR": (prepare_resize_nearest_neighbor, resize_nearest_neighbor_ref),
}
