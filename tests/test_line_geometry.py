"""The text-line rectifier's kernels against their oracles: the Numba perspective warp against
Pillow's Image.transform(PERSPECTIVE, BILINEAR) (what the recognizers were trained on) and the NumPy
reference; crop_line against a Pillow-only rectifier; prepare_line's one-partition order statistics
against np.percentile / np.median."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnn.kernels.warp import warp_bilinear, warp_bilinear_ref
from xnn.ocr import geometry

Image = pytest.importorskip("PIL.Image")


def _matrix(rng, scale):
    return np.array([rng.normal(1, .3), rng.normal(0, .2), rng.normal(0, scale), rng.normal(0, .2),
                     rng.normal(1, .3), rng.normal(0, scale), rng.normal(0, 2e-3), rng.normal(0, 2e-3)])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3]))
def test_warp_equals_pillow_transform(seed, ow, oh, ch):
    """Every output value equals Pillow's, including samples falling outside the source (fill) and
    taps clamped at its edges."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 50, 2))
    img = rng.integers(0, 256, (h, w, ch)).astype(np.uint8)
    m = _matrix(rng, 6.0)
    fill = tuple(int(v) for v in rng.integers(0, 256, ch))
    mode = {1: "L", 3: "RGB"}[ch]     # (Pillow warps RGBA premultiplied; lines are RGB)
    pim = Image.fromarray(img[..., 0] if ch == 1 else img, mode)
    ref = np.asarray(pim.transform((ow, oh), Image.PERSPECTIVE, tuple(m), Image.BILINEAR,
                                   fillcolor=fill[0] if ch == 1 else fill)).reshape(oh, ow, ch)
    got = warp_bilinear(img, (0, 0, w, h), fill, m, (ow, oh))
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(-30, 30), st.integers(-30, 30))
def test_warp_of_a_region_equals_reference_and_a_padded_cut(seed, rx0, ry0):
    """A region reaching past the source reads the fill colour there: the kernel equals the NumPy
    reference and Pillow's transform of the region cut out and padded with the fill colour."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 40, 2))
    img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    rw, rh = (int(v) for v in rng.integers(1, 50, 2))
    fill = tuple(int(v) for v in rng.integers(0, 256, 3))
    m = _matrix(rng, 4.0)
    size = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
    got = warp_bilinear(img, (rx0, ry0, rw, rh), fill, m, size)
    np.testing.assert_array_equal(got, warp_bilinear_ref(img, (rx0, ry0, rw, rh), fill, m, size))
    cut = np.empty((rh, rw, 3), np.uint8)
    cut[:] = fill
    for y in range(rh):
        for x in range(rw):
            if 0 <= y + ry0 < h and 0 <= x + rx0 < w:
                cut[y, x] = img[y + ry0, x + rx0]
    pil = np.asarray(Image.fromarray(cut).transform(size, Image.PERSPECTIVE, tuple(m), Image.BILINEAR,
                                                    fillcolor=fill))
    np.testing.assert_array_equal(got, pil)


def test_crop_line_refuses_a_degenerate_line_of_huge_width():
    img = np.zeros((50, 50, 3), np.uint8)
    sliver = np.array([[0, 0], [200, 0], [200, 0.01], [0, 0.01]])      # 0.01 px tall
    with pytest.raises(ValueError, match="max_width"):
        geometry.crop_line(img, sliver)
    assert geometry.crop_line(img, sliver, max_width=256).shape == (32, 256, 3)


def test_warp_rejects_bad_arguments():
    img = np.zeros((4, 4, 3), np.uint8)
    m = np.eye(3).ravel()[:8]
    for region, fill, mm, size in [((0, 0, 0, 4), (0, 0, 0), m, (2, 2)), ((0, 0, 4, 4), (0, 0), m, (2, 2)),
                                   ((0, 0, 4, 4), (0, 0, 300), m, (2, 2)), ((0, 0, 4, 4), (0, 0, 0), m[:6], (2, 2)),
                                   ((0, 0, 4, 4), (0, 0, 0), m, (0, 2))]:
        with pytest.raises(ValueError):
            warp_bilinear(img, region, fill, mm, size)
    # a NaN matrix samples nothing: the output is the fill colour, not a read out of bounds
    out = warp_bilinear(img, (0, 0, 4, 4), (7, 8, 9), np.full(8, np.nan), (3, 2))
    assert (out == [7, 8, 9]).all()


def _crop_line_pillow(image, quad, height=32, pad_x=0.15, pad_y=0.15, max_width=None, fill=None):
    """crop_line as it was before the Numba warp: the region cut out with the fill colour, box-shrunk
    when large, and rectified by Pillow's transform."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    g, gw, gh = geometry._padded(np.asarray(quad, np.float64).reshape(4, 2), pad_x, pad_y)
    out_w = max(1, int(round(height * gw / gh)))
    if max_width is not None:
        out_w = min(out_w, max_width)
    if fill is None:
        fill = geometry.fill_color(img)
    lo = np.floor(g.min(0)).astype(int) - 2
    hi = np.ceil(g.max(0)).astype(int) + 2
    if np.any(hi - lo > 4 * max(img.shape[:2]) + 64):
        raise ValueError("quad far larger than the image")
    buf = np.empty((int(hi[1] - lo[1]), int(hi[0] - lo[0]), 3), np.uint8)
    buf[:] = np.asarray(fill, np.uint8)
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(img.shape[1], hi[0]), min(img.shape[0], hi[1])
    if x1 > x0 and y1 > y0:
        buf[y0 - lo[1]:y1 - lo[1], x0 - lo[0]:x1 - lo[0]] = img[y0:y1, x0:x1]
    region = Image.fromarray(buf)
    g = g - lo
    shrink = gh / height
    if shrink > 1.5:
        nw, nh = max(1, int(region.width / shrink)), max(1, int(region.height / shrink))
        g = g * [nw / region.width, nh / region.height]
        region = region.resize((nw, nh), Image.BOX)
    hm = geometry.homography(geometry.box_quad(0, 0, out_w, height), g)
    hm = hm / hm[2, 2]
    return np.asarray(region.transform((out_w, height), Image.PERSPECTIVE, tuple(hm.ravel()[:8]),
                                       Image.BILINEAR, fillcolor=tuple(fill)))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.booleans(), st.booleans())
def test_crop_line_equals_the_pillow_rectifier(seed, gray, given_fill):
    """Lines of every size (shrunk ones too), turned, partly or wholly off the image."""
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(20, 300)), int(rng.integers(20, 400))
    img = rng.integers(0, 256, (H, W) if gray else (H, W, 3)).astype(np.uint8)
    cx, cy = rng.uniform(-0.3 * W, 1.3 * W), rng.uniform(-0.3 * H, 1.3 * H)
    w, h = rng.uniform(4, 300), rng.uniform(3, 110)
    a = rng.normal(0, 0.3)
    u = np.array([np.cos(a), np.sin(a)])
    v = np.array([-u[1], u[0]])
    q = np.array([[0, 0], w * u, w * u + h * v, h * v]) + [cx, cy] + rng.normal(0, 0.05 * h, (4, 2))
    kw = {"max_width": int(rng.choice([64, 160, 256, 384]))}
    if given_fill:
        kw["fill"] = tuple(int(x) for x in rng.integers(0, 256, 3))
    try:
        ref = _crop_line_pillow(img, q, **kw)
    except ValueError:
        with pytest.raises(ValueError):
            geometry.crop_line(img, q, **kw)
        return
    np.testing.assert_array_equal(geometry.crop_line(img, q, **kw), ref)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 2000), st.integers(0, 2 ** 32 - 1), st.sampled_from(["uniform", "flat", "ties", "normal"]))
def test_order_stats_equal_numpy_percentile_and_median(n, seed, kind):
    rng = np.random.default_rng(seed)
    a = {"uniform": rng.uniform(0, 255, n), "flat": np.full(n, 17.25), "ties": rng.integers(0, 4, n) * 30.0,
         "normal": rng.normal(100, 50, n)}[kind].astype(np.float32)
    lo, hi, mid = geometry._order_stats(a.copy())
    ref = np.percentile(a, [1, 99])
    assert (lo, hi) == (ref[0], ref[1]) and type(lo) is type(ref[0])
    assert np.float32((mid[0] + mid[1]) / 2) == np.float32(np.median(a))


def _prepare_line_numpy(rgb, width):
    """prepare_line with np.percentile and np.median (how the recognizers' training lines were
    normalized before the one-partition order statistics)."""
    a = np.asarray(rgb)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    a = a.astype(np.float32)
    h, w = a.shape
    new_w = max(1, min(width, int(round(w * 32 / h))))
    if (h, w) != (32, new_w):
        a = np.asarray(Image.fromarray(a).resize((new_w, 32), Image.BILINEAR))
    lo, hi = np.percentile(a, [1, 99])
    if hi - lo >= 16:
        a = (a - lo) * (255.0 / (hi - lo))
    a = np.clip(a, 0, 255)
    out = np.full((32, width), np.median(a), np.float32)
    out[:, :new_w] = a
    return np.round(out).astype(np.uint8)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.sampled_from([32, 20, 48, 7]), st.integers(1, 400),
       st.sampled_from(["rgb", "gray", "flat", "normal"]), st.sampled_from([64, 160, 256, 384]))
def test_prepare_line_equals_the_numpy_statistics_version(seed, h, w, kind, width):
    rng = np.random.default_rng(seed)
    a = {"rgb": lambda: rng.integers(0, 256, (h, w, 3)), "gray": lambda: rng.integers(0, 256, (h, w)),
         "flat": lambda: rng.integers(100, 110, (h, w, 3)),
         "normal": lambda: np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255)}[kind]().astype(np.uint8)
    np.testing.assert_array_equal(geometry.prepare_line(a, width), _prepare_line_numpy(a, width))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 50), st.integers(1, 300), st.integers(1, 13))
def test_shear_profiles_equal_the_numpy_reference(seed, rows, cols, n_angles):
    """tighten_quad's sheared row means, shifts reaching far outside the rows (clamped)."""
    from xnn.kernels.warp import shear_profiles, shear_profiles_ref

    rng = np.random.default_rng(seed)
    g = rng.uniform(0, 255, (rows, cols)).astype(np.float32)
    ys = rng.integers(-5, rows + 5, int(rng.integers(1, 40)))
    shifts = rng.integers(-2 * rows, 2 * rows + 1, (n_angles, cols))
    np.testing.assert_allclose(shear_profiles(g, ys, shifts), shear_profiles_ref(g, ys, shifts), rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError):
        shear_profiles(g, ys, shifts[:, :-1] if cols > 1 else np.zeros((1, 2), np.int64))
