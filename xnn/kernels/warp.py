"""Perspective warp with bilinear sampling, the text-line rectifier's inner loop (xnn.ocr.geometry).

Semantics (the recognizers were trained on lines cut by Pillow's Image.transform(PERSPECTIVE,
BILINEAR), so these reproduce it value for value; tests compare against Pillow itself):
- output pixel (x, y) samples the source region at (xin, yin) = ((m0 X + m1 Y + m2) / D,
  (m3 X + m4 Y + m5) / D), D = m6 X + m7 Y + 1, with X = x + 0.5, Y = y + 0.5 (pixel centres),
  in double precision;
- a sample point outside [0, rw) x [0, rh) of the region takes the fill colour;
- otherwise, with u = xin - 0.5, v = yin - 0.5, i = floor(u), j = floor(v), du = u - i, dv = v - j
  and neighbours i, i + 1 (j, j + 1) clamped into the region, per channel
  top = p(i, j) + (p(i + 1, j) - p(i, j)) du, bottom likewise on row j + 1,
  value = top + (bottom - top) dv, stored truncated toward zero (values are >= 0);
- the region is the rectangle [rx0, rx0 + rw) x [ry0, ry0 + rh) of the source; region pixels
  outside the source array read as the fill colour (a crop padded with it).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def warp_bilinear_kernel(src, rx0, ry0, rw, rh, fill, m, out):
    """Fill out (h, w, C) uint8 from src (H, W, C) uint8 through the region and matrix m (8,)."""
    oh, ow, nb = out.shape
    H, W = src.shape[0], src.shape[1]
    m0, m1, m2, m3, m4, m5, m6, m7 = m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]
    for y in range(oh):
        yo = y + 0.5
        for x in range(ow):
            xo = x + 0.5
            d = m6 * xo + m7 * yo + 1.0
            xin = (m0 * xo + m1 * yo + m2) / d
            yin = (m3 * xo + m4 * yo + m5) / d
            if not (xin >= 0.0 and xin < rw and yin >= 0.0 and yin < rh):   # (NaN: fill)
                for b in range(nb):
                    out[y, x, b] = fill[b]
                continue
            u = xin - 0.5
            v = yin - 0.5
            i = int(math.floor(u))
            j = int(math.floor(v))
            du = u - i
            dv = v - j
            if 0 <= i and i + 1 < rw and 0 <= j and j + 1 < rh and 0 <= i + rx0 and i + 1 + rx0 < W \
                    and 0 <= j + ry0 and j + 1 + ry0 < H:
                # all four taps inside the region and the source (nearly every pixel of a line crop)
                xa = i + rx0
                ya = j + ry0
                for b in range(nb):
                    p00 = np.float64(src[ya, xa, b])
                    p01 = np.float64(src[ya, xa + 1, b])
                    p10 = np.float64(src[ya + 1, xa, b])
                    p11 = np.float64(src[ya + 1, xa + 1, b])
                    top = p00 + (p01 - p00) * du
                    bot = p10 + (p11 - p10) * du
                    out[y, x, b] = np.uint8(int(top + (bot - top) * dv))
                continue
            x0 = min(max(i, 0), rw - 1) + rx0
            x1 = min(max(i + 1, 0), rw - 1) + rx0
            y0 = min(max(j, 0), rh - 1) + ry0
            y1 = min(max(j + 1, 0), rh - 1) + ry0
            # (taps read inline: a helper taking the arrays costs a refcount pair per call, 10x the work)
            in_x0 = 0 <= x0 < W
            in_x1 = 0 <= x1 < W
            in_y0 = 0 <= y0 < H
            in_y1 = 0 <= y1 < H
            for b in range(nb):
                fb = np.float64(fill[b])
                p00 = np.float64(src[y0, x0, b]) if in_y0 and in_x0 else fb
                p01 = np.float64(src[y0, x1, b]) if in_y0 and in_x1 else fb
                p10 = np.float64(src[y1, x0, b]) if in_y1 and in_x0 else fb
                p11 = np.float64(src[y1, x1, b]) if in_y1 and in_x1 else fb
                top = p00 + (p01 - p00) * du
                bot = p10 + (p11 - p10) * du
                out[y, x, b] = np.uint8(int(top + (bot - top) * dv))


def _check(src, region, fill, m, size):
    src = np.ascontiguousarray(src, np.uint8)
    if src.ndim != 3 or src.shape[0] < 1 or src.shape[1] < 1 or src.shape[2] < 1:
        raise ValueError(f"warp source must be (H, W, C) uint8, got shape {src.shape}")
    rx0, ry0, rw, rh = (int(v) for v in region)
    if rw < 1 or rh < 1:
        raise ValueError(f"warp region must be non-empty, got {rw} x {rh}")
    fill = np.asarray(fill, np.int64).reshape(-1)
    if fill.shape != (src.shape[2],) or fill.min() < 0 or fill.max() > 255:
        raise ValueError(f"fill must be {src.shape[2]} values in 0..255")
    m = np.asarray(m, np.float64).reshape(-1)
    if m.shape != (8,):
        raise ValueError("warp matrix must have 8 coefficients")
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"warp output must be non-empty, got {w} x {h}")
    return src, (rx0, ry0, rw, rh), fill, m, (w, h)


def warp_bilinear(src, region, fill, m, size) -> np.ndarray:
    """(h, w, C) uint8 warp of src's region (x0, y0, width, height) by the 8-coefficient inverse
    perspective matrix m (output -> region coordinates, Pillow's PERSPECTIVE data); size = (w, h)."""
    src, (rx0, ry0, rw, rh), fill, m, (w, h) = _check(src, region, fill, m, size)
    out = np.empty((h, w, src.shape[2]), np.uint8)
    warp_bilinear_kernel(src, rx0, ry0, rw, rh, fill, m, out)
    return out


def warp_bilinear_ref(src, region, fill, m, size) -> np.ndarray:
    """NumPy reference of warp_bilinear (the spec in the module docstring, vectorized)."""
    src, (rx0, ry0, rw, rh), fill, m, (w, h) = _check(src, region, fill, m, size)
    X, Y = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d = m[6] * X + m[7] * Y + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        xin = (m[0] * X + m[1] * Y + m[2]) / d
        yin = (m[3] * X + m[4] * Y + m[5]) / d
    inside = (xin >= 0) & (xin < rw) & (yin >= 0) & (yin < rh)
    u = np.where(inside, xin, 0.5) - 0.5
    v = np.where(inside, yin, 0.5) - 0.5
    i, j = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    du, dv = (u - i)[..., None], (v - j)[..., None]
    # the region padded by one fill pixel on every side covers every clamped neighbour
    H, W = src.shape[:2]
    ys, xs = np.arange(ry0, ry0 + rh), np.arange(rx0, rx0 + rw)
    ok = ((ys >= 0) & (ys < H))[:, None] & ((xs >= 0) & (xs < W))[None, :]
    reg = np.where(ok[..., None], src[np.clip(ys, 0, H - 1)][:, np.clip(xs, 0, W - 1)], fill).astype(np.float64)

    def p(a, b):
        return reg[np.clip(b, 0, rh - 1), np.clip(a, 0, rw - 1)]
    top = p(i, j) + (p(i + 1, j) - p(i, j)) * du
    bot = p(i, j + 1) + (p(i + 1, j + 1) - p(i, j + 1)) * du
    val = (top + (bot - top) * dv).astype(np.int64).astype(np.uint8)
    return np.where(inside[..., None], val, fill.astype(np.uint8))


# ---- sheared row profiles (xnn.ocr.geometry.tighten_quad) -----------------------------------------

@njit(cache=True)
def shear_profiles_kernel(g, ys, shifts, out):
    """out[a, i] = mean over columns c of g[clip(ys[i] + shifts[a, c], 0, rows - 1), c] (float64
    sums): the row profile of g sheared by each candidate angle a."""
    rows, cols = g.shape
    for a in range(shifts.shape[0]):
        for i in range(ys.shape[0]):
            s = 0.0
            for c in range(cols):
                r = min(max(ys[i] + shifts[a, c], 0), rows - 1)
                s += g[r, c]
            out[a, i] = s / cols


def shear_profiles(g, ys, shifts) -> np.ndarray:
    """(angles, len(ys)) sheared row means of the 2-D array g; shifts (angles, columns) int rows."""
    g = np.ascontiguousarray(g, np.float32)
    ys = np.ascontiguousarray(ys, np.int64)
    shifts = np.ascontiguousarray(shifts, np.int64)
    if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] < 1 or ys.ndim != 1 or shifts.ndim != 2 \
            or shifts.shape[1] != g.shape[1]:
        raise ValueError(f"shear_profiles: g (rows, cols), ys (n,), shifts (angles, cols); got "
                         f"{g.shape}, {ys.shape}, {shifts.shape}")
    out = np.empty((shifts.shape[0], ys.shape[0]), np.float64)
    shear_profiles_kernel(g, ys, shifts, out)
    return out


def shear_profiles_ref(g, ys, shifts) -> np.ndarray:
    """NumPy reference of shear_profiles."""
    g = np.asarray(g, np.float64)
    cols = np.arange(g.shape[1])
    idx = np.clip(np.asarray(ys)[None, :, None] + np.asarray(shifts)[:, None, :], 0, g.shape[0] - 1)
    return g[idx, cols[None, None, :]].mean(2)
