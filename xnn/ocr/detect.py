"""Text-detector pre- and post-processing in NumPy (connected components in Numba): the FCN of
models/detector.py maps a letterboxed gray page to a (H/s, W/s, 6) map per stride s:

    channel 0      score p in [0, 1]: the pixel lies in a line's shrunk text kernel
    channels 1..4  g_k = log(1 + d_k / d0), d_k >= 0 the distances in input pixels from the pixel
                   centre c to the top, right, bottom and left edges of the line's rotated box
    channel 5      θ, the box's reading direction (radians, image y axis pointing down)

A pixel with p > threshold decodes to the rectangle (e_u = (cos θ, sin θ), e_v = (-sin θ, cos θ))
    TL = c - d_l e_u - d_t e_v,  TR = c + d_r e_u - d_t e_v,
    BR = c + d_r e_u + d_b e_v,  BL = c - d_l e_u + d_b e_v,
pixel centre c = s·(j + 1/2, i + 1/2). Per-pixel quads are merged by locality-aware NMS (row-major
neighbours with IoU > merge_iou are averaged, weighted by score), then standard NMS; quads are
returned in the original image's pixel coordinates (divided by the letterbox scale).

Polygon IoU clips one convex polygon by another (Sutherland-Hodgman) and measures areas with the
shoelace formula; `match` counts true positives at an IoU threshold (greedy, one-to-one).
"""
from __future__ import annotations

import numpy as np

from ..kernels.label import label_kernel

__all__ = ["letterbox", "to_gray", "decode", "nms_locality", "nms", "detect", "poly_area", "poly_iou",
           "iou_matrix", "match", "prf", "components", "detect_lines"]


# ---- preprocessing ------------------------------------------------------------------------------

def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 -> (H, W) uint8, Y = 0.299 R + 0.587 G + 0.114 B (rounded)."""
    if image.ndim == 2:
        return image.astype(np.uint8)
    y = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _resize_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear resampling along `axis` with half-pixel centres: src = (dst + 1/2)·n_in/n_out - 1/2,
    clamped to [0, n_in - 1]."""
    n_in = x.shape[axis]
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (src - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - w) + np.take(x, i1, axis=axis) * w


def letterbox(image: np.ndarray, height: int, width: int):
    """Page (RGB or gray) -> ((height, width) uint8 gray, scale): resized by
    scale = min(height / h, width / w) (bilinear), placed top-left, zero padding elsewhere.
    A point (x, y) of the page is (scale·x, scale·y) in the result."""
    g = to_gray(image).astype(np.float32)
    h, w = g.shape
    s = min(height / h, width / w)
    nh, nw = min(height, max(1, int(round(h * s)))), min(width, max(1, int(round(w * s))))
    r = _resize_axis(_resize_axis(g, nh, 0), nw, 1)
    out = np.zeros((height, width), np.uint8)
    out[:nh, :nw] = np.clip(np.round(r), 0, 255).astype(np.uint8)
    return out, s


# ---- polygons -----------------------------------------------------------------------------------

def poly_area(p: np.ndarray) -> float:
    """Signed shoelace area ½ Σ (x_i y_{i+1} - x_{i+1} y_i); positive for clockwise-on-screen
    order (y down)."""
    p = np.asarray(p, np.float64)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _clip(subject: list, clip: np.ndarray) -> list:
    """Sutherland-Hodgman: subject polygon ∩ convex `clip` (positive orientation). A point q is
    inside edge a→b when cross(b - a, q - a) >= 0."""
    out = subject
    n = len(clip)
    for k in range(n):
        if not out:
            break
        ax, ay = clip[k]
        bx, by = clip[(k + 1) % n]
        ex, ey = bx - ax, by - ay
        inp, out = out, []
        sx, sy = inp[-1]
        s_in = ex * (sy - ay) - ey * (sx - ax)
        for px, py in inp:
            p_in = ex * (py - ay) - ey * (px - ax)
            if p_in >= 0:
                if s_in < 0:  # entering: intersection of s→p with the edge line at t = s_in/(s_in - p_in)
                    t = s_in / (s_in - p_in)
                    out.append((sx + t * (px - sx), sy + t * (py - sy)))
                out.append((px, py))
            elif s_in >= 0:
                if s_in > 0:
                    t = s_in / (s_in - p_in)
                    out.append((sx + t * (px - sx), sy + t * (py - sy)))
            sx, sy, s_in = px, py, p_in
    return out


def _oriented(p):
    p = np.asarray(p, np.float64)
    return p[::-1] if poly_area(p) < 0 else p


def poly_iou(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two convex polygons (any orientation); 0 for degenerate ones."""
    a, b = _oriented(a), _oriented(b)
    aa, ab = poly_area(a), poly_area(b)
    if aa <= 0 or ab <= 0:
        return 0.0
    inter = _clip([tuple(v) for v in a], b)
    ai = max(0.0, poly_area(np.array(inter))) if len(inter) >= 3 else 0.0
    return ai / (aa + ab - ai)


def iou_matrix(a, b) -> np.ndarray:
    """(len(a), len(b)) polygon IoUs; pairs whose axis-aligned bounds are disjoint are 0."""
    m = np.zeros((len(a), len(b)))
    if len(a) == 0 or len(b) == 0:
        return m
    a = [np.asarray(p, np.float64) for p in a]
    b = [np.asarray(p, np.float64) for p in b]
    lo_b, hi_b = np.array([p.min(0) for p in b]), np.array([p.max(0) for p in b])
    for i, p in enumerate(a):
        lo, hi = p.min(0), p.max(0)
        near = np.nonzero(np.all((lo_b <= hi) & (hi_b >= lo), axis=1))[0]
        for j in near:
            m[i, j] = poly_iou(p, b[j])
    return m


# ---- decoding and NMS ---------------------------------------------------------------------------

def decode(out: np.ndarray, stride: int = 4, d0: float = 4.0, threshold: float = 0.5):
    """(H', W', 6) float map -> (quads (n, 4, 2) in input pixels, scores (n,)), row-major order."""
    out = np.asarray(out, np.float32)
    ii, jj = np.nonzero(out[..., 0] > threshold)
    v = out[ii, jj].astype(np.float64)
    d = d0 * np.expm1(np.maximum(v[:, 1:5], 0.0))            # d_t, d_r, d_b, d_l
    th = v[:, 5]
    eu = np.stack([np.cos(th), np.sin(th)], -1)
    ev = np.stack([-np.sin(th), np.cos(th)], -1)
    c = np.stack([stride * (jj + 0.5), stride * (ii + 0.5)], -1)
    dt, dr, db, dl = (d[:, k:k + 1] for k in range(4))
    q = np.stack([c - dl * eu - dt * ev, c + dr * eu - dt * ev, c + dr * eu + db * ev, c - dl * eu + db * ev], 1)
    return q, v[:, 0]


def nms_locality(quads, scores, merge_iou: float = 0.5):
    """EAST's locality-aware merge: walking the candidates in row-major order, a quad whose IoU with
    the last merged quad exceeds merge_iou is folded into it, q ← (w q + s q') / (w + s), w ← w + s.
    Returns (quads, mean scores, pixel counts)."""
    out_q, out_w, out_n = [], [], []
    for q, s in zip(quads, scores):
        if out_q and poly_iou(out_q[-1], q) > merge_iou:
            w = out_w[-1]
            out_q[-1] = (w * out_q[-1] + s * q) / (w + s)
            out_w[-1] = w + s
            out_n[-1] += 1
        else:
            out_q.append(np.asarray(q, np.float64))
            out_w.append(float(s))
            out_n.append(1)
    n = np.array(out_n, np.int64)
    return (np.array(out_q).reshape(-1, 4, 2), np.array(out_w) / np.maximum(n, 1), n)


def nms(quads, scores, iou: float = 0.3, weights=None):
    """Standard NMS by descending `weights` (default scores); a kept quad absorbs the quads it
    suppresses as a weighted average (weights = pixel support), which steadies multi-row merges."""
    w = np.asarray(scores if weights is None else weights, np.float64)
    order = list(np.argsort(-w, kind="stable"))
    q = np.asarray(quads, np.float64)
    lo, hi = (q.min(1), q.max(1)) if len(q) else (np.zeros((0, 2)), np.zeros((0, 2)))
    keep_q, keep_s = [], []
    while order:
        i = order.pop(0)
        # quads whose axis-aligned bounds are disjoint overlap nowhere (IoU 0): no polygon clipping
        near = np.all((lo[order] <= hi[i]) & (hi[order] >= lo[i]), axis=1)
        group = [i] + [j for j, nb in zip(order, near) if nb and poly_iou(q[i], q[j]) > iou]
        order = [j for j in order if j not in group]
        ww = w[group][:, None, None]
        keep_q.append((ww * q[group]).sum(0) / ww.sum())
        keep_s.append(float(np.max(np.asarray(scores)[group])))
    return np.array(keep_q).reshape(-1, 4, 2), np.array(keep_s)


def detect(out, scale: float = 1.0, stride: int = 4, d0: float = 4.0, threshold: float = 0.5,
           merge_iou: float = 0.5, nms_iou: float = 0.1, min_pixels: int = 2):
    """Model output (H', W', 6) float -> (quads (n, 4, 2) in page pixels, scores): decode, locality
    merge, drop groups of fewer than min_pixels pixels, NMS, divide by the letterbox scale."""
    q, s = decode(out, stride, d0, threshold)
    q, s, n = nms_locality(q, s, merge_iou)
    k = n >= min_pixels
    q, s = nms(q[k], s[k], nms_iou, weights=(s * n)[k])
    return (q / scale).astype(np.float32), s


def components(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels of a boolean map (0 = background, 1.. = components, numbered
    in row-major order of their first pixel): union-find in one Numba pass (xnn.kernels.label)."""
    mask = np.ascontiguousarray(np.asarray(mask, bool))
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    out = np.zeros(mask.shape, np.int64)
    if mask.size:
        label_kernel(mask, out)
    return out


def detect_lines(out, scale: float = 1.0, stride: int = 4, d0: float = 4.0, threshold: float = 0.5,
                 end_frac: float = 0.5, min_pixels: int = 2, nms_iou: float = 0.3, shrink: float | None = 0.15):
    """Model output (H', W', 6) -> (quads in page pixels, scores), one quad per connected component
    of the score map (a line's text kernel). Each kernel pixel regresses the distances to the four
    edges of its line's box, but a pixel far from an edge predicts it poorly (long lines exceed the
    receptive field), so each edge is taken from the pixels nearest to it: the box angle is the
    score-weighted circular mean of θ; in that frame the left (right) edge is the median estimate
    p_u - d_l (p_u + d_r) of the end_frac of pixels with the smallest (largest) p_u, the top and
    bottom edges the medians of p_v - d_t and p_v + d_b over all pixels; the box always contains its
    kernel, grown at each end by `shrink` box heights (None: not grown; the training kernels are
    shrunk by 0.3: regressed ends of long lines fall short, the kernel's do not). Quads are divided
    by the letterbox scale. On 100 held-out pages with the shipped detector: F 0.933 (EAST's
    per-pixel NMS, `detect`: 0.929) in ~2 ms instead of ~50 ms."""
    out = np.asarray(out, np.float32)
    lab = components(out[..., 0] > threshold)
    quads, scores = [], []
    # each component's pixels in row-major order, from one stable sort of the labelled pixels
    ii_all, jj_all = np.nonzero(lab)
    labels = lab[ii_all, jj_all]
    by = np.argsort(labels, kind="stable")
    ii_all, jj_all = ii_all[by], jj_all[by]
    n_comp = int(labels.max(initial=0))
    ends = np.cumsum(np.bincount(labels, minlength=n_comp + 1))
    for k in range(1, n_comp + 1):
        ii, jj = ii_all[ends[k - 1]:ends[k]], jj_all[ends[k - 1]:ends[k]]
        if len(ii) < min_pixels:
            continue
        v = out[ii, jj].astype(np.float64)
        d = d0 * np.expm1(np.maximum(v[:, 1:5], 0.0))
        p = v[:, 0]
        th = float(np.arctan2(np.sum(p * np.sin(v[:, 5])), np.sum(p * np.cos(v[:, 5]))))
        cs, sn = np.cos(th), np.sin(th)
        cx, cy = stride * (jj + 0.5), stride * (ii + 0.5)
        pu, pv = cx * cs + cy * sn, -cx * sn + cy * cs
        m = max(1, int(np.ceil(end_frac * len(pu))))
        order = np.argsort(pu, kind="stable")
        half = stride / 2.0
        vt = min(float(np.median(pv - d[:, 0])), float(pv.min()) - half)
        vb = max(float(np.median(pv + d[:, 2])), float(pv.max()) + half)
        if shrink is None:
            ul = min(float(np.median(pu[order[:m]] - d[order[:m], 3])), float(pu.min()) - half)
            ur = max(float(np.median(pu[order[-m:]] + d[order[-m:], 1])), float(pu.max()) + half)
        else:   # the wider of the regressed ends and the kernel's ends grown back by the training shrink
            ul = min(float(np.median(pu[order[:m]] - d[order[:m], 3])), float(pu.min()) - half - shrink * (vb - vt))
            ur = max(float(np.median(pu[order[-m:]] + d[order[-m:], 1])), float(pu.max()) + half + shrink * (vb - vt))
        eu, ev = np.array([cs, sn]), np.array([-sn, cs])
        quads.append(np.array([ul * eu + vt * ev, ur * eu + vt * ev, ur * eu + vb * ev, ul * eu + vb * ev]))
        scores.append(float(p.mean()))
    if not quads:
        return np.zeros((0, 4, 2), np.float32), np.zeros(0)
    q, s = nms(np.array(quads), np.array(scores), nms_iou)
    return (q / scale).astype(np.float32), s


# ---- evaluation ---------------------------------------------------------------------------------

def match(pred, gt, iou: float = 0.5) -> int:
    """True positives: greedy one-to-one matching by descending IoU among pairs with IoU >= iou."""
    m = iou_matrix(pred, gt)
    tp = 0
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        tp += 1
        m[i, :] = -1
        m[:, j] = -1
    return tp


def prf(tp: int, n_pred: int, n_gt: int) -> dict:
    p = tp / n_pred if n_pred else 1.0
    r = tp / n_gt if n_gt else 1.0
    return {"precision": p, "recall": r, "f": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp,
            "pred": n_pred, "gt": n_gt}
