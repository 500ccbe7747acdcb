"""Line geometry shared by training and inference: homographies, the line rectifier and the
recognizer's line preprocessing.

Coordinates are continuous pixel coordinates (pixel (i, j) covers [j, j+1) x [i, i+1)); a quad is
(4, 2) points TL, TR, BR, BL, clockwise on screen (y down). Pillow's PERSPECTIVE transform samples
its input at H^-1 of every output pixel centre, the same convention.

The recognizers of xnn/zoo were trained on lines cut by `crop_line` and normalized by
`prepare_line` (models/ imports both from here), so inference reproduces training's preprocessing
exactly. Both need Pillow (the `ocr` extra); the rest of this module is NumPy.
"""
from __future__ import annotations

import numpy as np

from ..kernels.warp import shear_profiles, warp_bilinear

HEIGHT = 32  # recognizer input rows
MAX_LINE_WIDTH = 16384  # crop_line refuses longer outputs (a degenerate quad, not a text line)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        from ..errors import XnnError

        raise XnnError("xnn.ocr needs Pillow to rectify text lines: pip install 'xnn[ocr]' (or pillow)") from None
    return Image


def homography(src, dst) -> np.ndarray:
    """3x3 H with dst ~ H @ src for 4 point pairs (direct linear transform with h33 = 1): each pair
    gives two rows of an 8x8 linear system. Singular when 3 of the 4 points are collinear."""
    p = np.asarray(src, np.float64).reshape(4, 2)
    q = np.asarray(dst, np.float64).reshape(4, 2)
    x, y, u, v = p[:, 0], p[:, 1], q[:, 0], q[:, 1]
    one, zero = np.ones(4), np.zeros(4)
    rows_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], 1)
    rows_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], 1)
    a = np.empty((8, 8))
    a[0::2], a[1::2] = rows_u, rows_v
    rhs = np.empty(8)
    rhs[0::2], rhs[1::2] = u, v
    return np.append(np.linalg.solve(a, rhs), 1.0).reshape(3, 3)


def box_quad(x0, y0, x1, y1) -> np.ndarray:
    """Axis-aligned box as a quad (TL, TR, BR, BL)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def quad_size(quad) -> tuple:
    """(width, height) of a quad: mean lengths of its top/bottom and left/right edges."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    w = 0.5 * (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3]))
    h = 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
    return float(w), float(h)


def quad_axis(quad) -> np.ndarray:
    """Unit reading direction of a quad (the mean of its top and bottom edges; (1, 0) if degenerate)."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    u = (q[1] - q[0]) + (q[2] - q[3])
    n = float(np.linalg.norm(u))
    return u / n if n > 1e-9 else np.array([1.0, 0.0])


def quad_angle(quad) -> float:
    """Reading direction of a quad in degrees (0 = left to right, positive = clockwise on screen)."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    dx, dy = (q[1] - q[0]) + (q[2] - q[3])
    return float(np.degrees(np.arctan2(dy, dx)))


def _padded(q: np.ndarray, pad_x: float, pad_y: float):
    """The quad grown by pad_x / pad_y line heights along its own edges, and its (width, height)."""
    w, h = quad_size(q)
    if h < 1e-3 or w < 1e-3:
        raise ValueError("degenerate quad")
    tl, tr, br, bl = q
    px, py = pad_x * h, pad_y * h

    def step(a, b, d):  # d pixels along a -> b
        v = b - a
        return d * v / max(1e-9, float(np.linalg.norm(v)))

    grown = np.array([tl - step(tl, tr, px) - step(tl, bl, py), tr + step(tl, tr, px) - step(tr, br, py),
                      br + step(bl, br, px) + step(tr, br, py), bl - step(bl, br, px) + step(tl, bl, py)])
    return grown, w + 2 * px, h + 2 * py


def fill_color(image: np.ndarray) -> tuple:
    """crop_line's fill for parts outside the image: the image's mean colour (integers)."""
    img = np.asarray(image)
    px = np.ascontiguousarray(img).reshape(-1, img.shape[-1] if img.ndim == 3 else 1)
    n, ch = px.shape
    if n == 0:
        raise ValueError("empty image")
    # exact integer channel sums, 16 pixels per row (numpy reduces a wide row far faster than
    # (n, 3) down axis 0); int(sum / n) is int() of the float64 mean, as the sums are exact
    m = n - n % 16
    s = px[:m].reshape(-1, 16 * ch).sum(0, dtype=np.uint64).reshape(16, ch).sum(0) + \
        px[m:].sum(0, dtype=np.uint64)
    return tuple(int(float(v) / n) for v in s[:3])


def crop_line(image: np.ndarray, quad, height: int = HEIGHT, pad_x: float = 0.15, pad_y: float = 0.15,
              max_width: int | None = None, fill: tuple | None = None) -> np.ndarray:
    """Rectify a text line: the quad, grown by pad_x / pad_y line heights along its own edges, is
    mapped by a homography onto a `height`-row RGB image whose width keeps the grown quad's aspect
    ratio (at most max_width). Lines shrunk by more than 1.5x are box-filtered first (Pillow's
    transform point-samples). Parts outside the image take the image's mean colour (pass `fill`
    = fill_color(image) when cutting many lines from one image)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    g, gw, gh = _padded(np.asarray(quad, np.float64).reshape(4, 2), pad_x, pad_y)
    out_w = max(1, int(round(height * gw / gh)))
    if max_width is not None:
        out_w = min(out_w, max_width)
    if out_w > MAX_LINE_WIDTH:
        raise ValueError(f"line would be {out_w} pixels wide (a quad {gw / gh:.0f} heights long); pass max_width")
    if fill is None:
        fill = fill_color(img)
    # the quad's bounding region, 2 pixels wider each side; its pixels outside the image read as the
    # fill colour
    lo = np.floor(g.min(0)).astype(int) - 2
    hi = np.ceil(g.max(0)).astype(int) + 2
    if np.any(hi - lo > 4 * max(img.shape[:2]) + 64):
        raise ValueError("quad far larger than the image")
    g = g - lo
    shrink = gh / height
    src, region = img, (int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1]))
    if shrink > 1.5:
        Image = _pillow()
        buf = np.empty((region[3], region[2], 3), np.uint8)
        buf[:] = np.asarray(fill, np.uint8)
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        x1, y1 = min(img.shape[1], hi[0]), min(img.shape[0], hi[1])
        if x1 > x0 and y1 > y0:
            buf[y0 - lo[1]:y1 - lo[1], x0 - lo[0]:x1 - lo[0]] = img[y0:y1, x0:x1]
        rw, rh = region[2], region[3]
        nw, nh = max(1, int(rw / shrink)), max(1, int(rh / shrink))
        g = g * [nw / rw, nh / rh]
        src = np.asarray(Image.fromarray(buf).resize((nw, nh), Image.BOX))
        region = (0, 0, nw, nh)
    hm = homography(box_quad(0, 0, out_w, height), g)
    hm = hm / hm[2, 2]
    # Pillow's transform(PERSPECTIVE, BILINEAR) value for value (xnn.kernels.warp), without cutting
    # the region out and converting it to an Image first
    return warp_bilinear(src, region, fill[:3] if len(fill) >= 3 else tuple(fill) * 3, hm.ravel()[:8],
                         (out_w, height))


def tighten_quad(image: np.ndarray, quad, fill: tuple | None = None, grow: float = 0.3, max_turn: float = 3.0,
                 rows: int = 48) -> np.ndarray | None:
    """The text band inside a detector box. The box, grown across by `grow` heights each side (and by
    the end shift of a max_turn turn), is cut out once at `rows` rows; G = |dI/dx| (text is dense in
    vertical strokes). For each turn a in -max_turn..+max_turn (0.5-degree steps) the row profile
    E_a(y) = mean_x G(y + tan(a) (x - x_c), x) is taken (a shear: the small-angle turn), and the
    most peaked one wins (largest variance / mean^2: the text's rows line up). Its band is the run of
    rows around the peak with E >= 0.45 max E. Returns that band as a quad as long as the box, turned
    by a (None for a degenerate box or a flat profile)."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    w, h = quad_size(q)
    if h < 2 or w < 2:
        return None
    u = quad_axis(q)
    v = np.array([-u[1], u[0]])
    c = q.mean(0)
    hw, hh = 0.5 * w, 0.5 * h * (1 + 2 * grow)
    hb = hh + hw * np.tan(np.radians(max_turn))          # half height of the cut, covering every turn
    scale = 2 * hb / rows                                 # image pixels per crop pixel
    cols = int(min(1024, max(8, round(w / scale))))
    box = np.array([c - hw * u - hb * v, c + hw * u - hb * v, c + hw * u + hb * v, c - hw * u + hb * v])
    if fill is None:
        fill = fill_color(image)
    try:
        g = crop_line(image, box, height=rows, pad_x=0, pad_y=0, max_width=cols, fill=fill)
    except ValueError:
        return None
    g = g.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gx = np.abs(np.diff(g, axis=1))
    n_cols = gx.shape[1]
    # each gradient column's offset from the centre, in crop-row units (columns may be squeezed)
    xs = (np.arange(n_cols) + 1.0 - 0.5 * g.shape[1]) * (w / g.shape[1]) / scale
    half = int(hh / scale)                                 # profile rows: the grown box, not the margin
    ys = np.arange(rows // 2 - half, rows // 2 + half)
    best = None
    angles = np.arange(-max_turn, max_turn + 1e-9, 0.5)
    shifts = np.round(np.tan(np.radians(angles))[:, None] * xs[None, :]).astype(np.int64)
    for a, e in zip(angles, shear_profiles(gx, ys, shifts)):
        m = float(e.mean())
        if m < 1e-3:
            continue
        score = float(e.var()) / (m * m)
        if best is None or score > best[0]:
            best = (score, e, a)
    if best is None:
        return None
    _, e, a = best
    k = int(np.argmax(e))
    thr = 0.45 * float(e[k])
    y0 = k
    while y0 > 0 and e[y0 - 1] >= thr:
        y0 -= 1
    y1 = k
    while y1 < len(e) - 1 and e[y1 + 1] >= thr:
        y1 += 1
    top, bot = (ys[y0] - rows / 2) * scale, (ys[y1] + 1 - rows / 2) * scale
    t = np.radians(a)
    ua = np.cos(t) * u + np.sin(t) * v
    va = np.array([-ua[1], ua[0]])
    cc, half_h = c + 0.5 * (top + bot) * v, 0.5 * (bot - top)
    return np.array([cc - hw * ua - half_h * va, cc + hw * ua - half_h * va, cc + hw * ua + half_h * va,
                     cc - hw * ua + half_h * va])


def prepare_line(rgb: np.ndarray, width: int) -> np.ndarray:
    """A rectified line crop (h x w x 3 uint8, or h x w gray) -> the recognizer's (32, width) uint8:
    gray = 0.299 R + 0.587 G + 0.114 B; the line scaled to 32 rows keeping its aspect ratio and
    squashed to at most `width` columns (bilinear); contrast stretched so its 1st/99th percentiles
    map to 0/255 (skipped when they differ by < 16, an empty line); right-padded with its median."""
    Image = _pillow()

    a = np.asarray(rgb)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    a = a.astype(np.float32)
    h, w = a.shape
    new_w = max(1, min(width, int(round(w * HEIGHT / h))))
    if (h, w) != (HEIGHT, new_w):
        a = np.asarray(Image.fromarray(a).resize((new_w, HEIGHT), Image.BILINEAR))
    lo, hi, mid = _order_stats(a)
    if hi - lo >= 16:
        a = (a - lo) * (255.0 / (hi - lo))
        mid = (mid - lo) * (255.0 / (hi - lo))
    a = np.clip(a, 0, 255)
    # the median of the stretched, clipped line is the stretched, clipped middle of the original
    # (both maps are monotone); the mean of the two middle values, as np.median takes it
    mid = np.clip(mid, 0, 255)
    out = np.full((HEIGHT, width), (mid[0] + mid[1]) / 2, np.float32)
    out[:, :new_w] = a
    return np.round(out).astype(np.uint8)


_Q = np.array([1.0, 99.0]) / 100.0


def _order_stats(a: np.ndarray):
    """(np.percentile(a, 1), np.percentile(a, 99), the two middle values of a as a (2,) array of
    a's dtype: equal for odd sizes) from ONE partition (np.percentile and np.median partition
    separately, 3x the time). The percentiles follow NumPy's 'linear' method to the bit: virtual
    index (n - 1) q, neighbours floor and floor + 1 clamped to the ends, and its lerp
    (a + (b - a) g, or b - (b - a)(1 - g) when g >= 0.5) in float64."""
    v = a.ravel()
    n = v.size
    vi = (n - 1) * _Q
    prev = np.floor(vi).astype(np.int64)
    gamma = vi - prev
    prev = np.clip(prev, 0, n - 1)
    nxt = np.clip(prev + 1, 0, n - 1)
    half = n // 2
    mids = (half - 1, half) if n % 2 == 0 else (half, half)
    part = np.partition(v, np.unique(np.concatenate([prev, nxt, mids])))
    pa, pb = part[prev], part[nxt]
    d = pb - pa
    pct = np.where(gamma >= 0.5, pb - d * (1 - gamma), pa + d * gamma)
    return pct[0], pct[1], part[list(mids)]
