"""Detector post-processing without TensorFlow: RBOX targets round-trip through xnn.ocr.detect,
polygon IoU against closed-form values, NMS behaviour, and (when the fixture exists) a tiny trained
detector in xnn against LiteRT's reference kernels.

Fixture (tests/fixtures/det/: int8 .tflite + npz, < 100 KB), rebuilt with the [train] extra by
    python -m models.train detector --out runs/det_fixture --height 96 --width 160 \
        --widths 8,8,16,16,24 --fpn 8 --units 1,1,1 --pages 1000 --val 50 --epochs 8
    python -m models.export runs/det_fixture --fixture tests/fixtures/det
(a smoke run: the model barely detects; the test checks the runtime, not the accuracy).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models import det_targets as dt  # noqa: E402
from xnn.ocr import detect as det  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "det")


def rect(cx, cy, w, h, th):
    """Rotated rectangle TL, TR, BR, BL (clockwise on screen, y down), reading direction θ."""
    eu = np.array([np.cos(th), np.sin(th)])
    ev = np.array([-np.sin(th), np.cos(th)])
    c = np.array([cx, cy])
    return np.array([c - w / 2 * eu - h / 2 * ev, c + w / 2 * eu - h / 2 * ev,
                     c + w / 2 * eu + h / 2 * ev, c - w / 2 * eu + h / 2 * ev], np.float32)


def square(x0, y0, s):
    return np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]], np.float64)


# ---- polygon IoU --------------------------------------------------------------------------------

def test_area_orientation():
    assert det.poly_area(square(0, 0, 2)) == pytest.approx(4.0)
    assert det.poly_area(square(0, 0, 2)[::-1]) == pytest.approx(-4.0)


@pytest.mark.parametrize("dx,expect", [(0, 1.0), (1, 2 / 6), (2, 0.0), (3, 0.0), (0.5, 3 / 5)])
def test_iou_shifted_squares(dx, expect):
    # two 2x2 squares shifted by dx: intersection 2(2 - dx), union 8 - 2(2 - dx)
    assert det.poly_iou(square(0, 0, 2), square(dx, 0, 2)) == pytest.approx(expect)


def test_iou_known_values():
    # square inside square: 1/4
    assert det.poly_iou(square(0, 0, 2), square(0.5, 0.5, 1)) == pytest.approx(0.25)
    # unit square vs the same rotated by 45° about its centre: intersection = regular octagon
    # of area 2(√2 - 1), union = 2 - 2(√2 - 1)
    a = rect(0, 0, 1, 1, 0)
    b = rect(0, 0, 1, 1, np.pi / 4)
    o = 2 * (np.sqrt(2) - 1)
    assert det.poly_iou(a, b) == pytest.approx(o / (2 - o), rel=1e-6)
    # orientation does not matter
    assert det.poly_iou(a[::-1], b) == pytest.approx(det.poly_iou(a, b))
    # degenerate
    assert det.poly_iou(np.zeros((4, 2)), a) == 0.0


@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(2, 60), st.floats(2, 30), st.floats(-1.5, 1.5),
       st.floats(-20, 20), st.floats(-20, 20), st.floats(-1.5, 1.5))
def test_iou_symmetric_bounded(cx, cy, w, h, th, dx, dy, dth):
    a, b = rect(cx, cy, w, h, th), rect(cx + dx, cy + dy, w, h, th + dth)
    iab, iba = det.poly_iou(a, b), det.poly_iou(b, a)
    assert 0.0 <= iab <= 1.0 + 1e-9
    assert iab == pytest.approx(iba, abs=1e-6)
    assert det.poly_iou(a, a) == pytest.approx(1.0)


def test_match_and_prf():
    gt = [square(0, 0, 10), square(20, 0, 10), square(40, 0, 10)]
    pred = [square(1, 0, 10), square(20, 6, 10), square(100, 0, 10), square(0.5, 0, 10)]
    # pred0 and pred3 both overlap gt0 (one-to-one: one TP); pred1 IoU 4/16 < 0.5
    assert det.match(pred, gt) == 1
    r = det.prf(1, 4, 3)
    assert r["precision"] == 0.25 and r["recall"] == pytest.approx(1 / 3)
    assert det.match([], gt) == 0 and det.prf(0, 0, 0)["f"] == 1.0


# ---- NMS ----------------------------------------------------------------------------------------

def test_locality_merge_weighted():
    q = np.stack([square(0, 0, 10), square(1, 0, 10), square(50, 0, 10)])
    mq, ms, n = det.nms_locality(q, np.array([1.0, 3.0, 0.5]))
    assert list(n) == [2, 1]
    np.testing.assert_allclose(mq[0], square(0.75, 0, 10))  # (1·q0 + 3·q1) / 4
    np.testing.assert_allclose(ms, [2.0, 0.5])               # mean score per group


def test_nms_suppresses_overlaps_keeps_separate():
    q = np.stack([square(0, 0, 10), square(1, 1, 10), square(30, 0, 10)])
    kq, ks = det.nms(q, np.array([0.9, 0.8, 0.7]), iou=0.3)
    assert len(kq) == 2
    np.testing.assert_allclose(ks, [0.9, 0.7])
    # the kept quad is the weighted mean of its group, between the two inputs
    assert 0 < kq[0][0, 0] < 1
    # below the IoU threshold nothing is suppressed
    assert len(det.nms(q, np.array([0.9, 0.8, 0.7]), iou=0.9)[0]) == 3


def test_decode_threshold_empty():
    out = np.zeros((8, 8, 6), np.float32)
    q, s = det.detect(out)
    assert q.shape == (0, 4, 2) and s.shape == (0,)


# ---- targets round trip -------------------------------------------------------------------------

SPEC = dt.DetSpec(height=128, width=192)


@given(st.lists(st.tuples(st.floats(40, 150), st.floats(12, 22), st.floats(-0.5, 0.5)), min_size=1, max_size=3))
def test_targets_round_trip(lines):
    # lines stacked vertically 40 px apart so they never overlap
    quads = np.stack([rect(96, 20 + 40 * k, w, h, th * 0.3) for k, (w, h, th) in enumerate(lines)])
    out = dt.encode(quads, SPEC)
    q, s = det.detect(out, stride=SPEC.stride, d0=SPEC.d0)
    assert len(q) == len(quads)
    m = det.iou_matrix(q, quads)
    order = m.argmax(1)
    assert sorted(order) == list(range(len(quads)))
    for i, j in enumerate(order):
        assert np.abs(q[i] - quads[j]).max() < 1.0


def test_targets_kernel_and_mask():
    quads = rect(96, 64, 100, 20, 0.0)[None]
    score, mask, geo = dt.targets(quads, SPEC)
    ys, xs = np.nonzero(score)
    # kernel rows: |p_v - 64| <= max(0.2·20, 2) = 4 -> centres 62, 66 (rows 15, 16)
    assert sorted(set(ys)) == [15, 16]
    # kernel columns: |p_u - 96| <= 50 - 6 = 44 -> centres 54 .. 138
    assert xs.min() == 13 and xs.max() == 34
    # inside the box but outside the kernel: ignored; outside: negative
    assert mask[14, 20] == 0 and mask[0, 0] == 1 and score[0, 0] == 0
    # geometry at the pixel centred (58, 62): d = (62 - 54, 146 - 58, 74 - 62, 58 - 46)
    np.testing.assert_allclose(geo[15, 14, :4], np.log1p(np.array([8, 88, 12, 12]) / SPEC.d0), rtol=1e-5)


def test_rbox_of_rectangle():
    th, ul, ur, vt, vb = dt.rbox(rect(10, 20, 30, 8, 0.2))
    assert th == pytest.approx(0.2)
    assert ur - ul == pytest.approx(30, abs=1e-4) and vb - vt == pytest.approx(8, abs=1e-4)


def test_letterbox_scale_and_padding():
    img = np.full((100, 300, 3), 200, np.uint8)
    x, s = det.letterbox(img, 128, 192)
    assert s == pytest.approx(192 / 300) and x.shape == (128, 192)
    assert (x[:64] == 200).all() and (x[64:] == 0).all()


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(__file__), "..", "models", "data")),
                    reason="no generators")
def test_generated_pages_round_trip():
    pytest.importorskip("PIL")
    x, quads, owner, scales, doms = dt.render_set(dt.DetSpec(), 5, 123)
    for i in range(len(x)):
        g = quads[owner == i]
        # min_pixels=1: one-character lines (ID card) can have a one-pixel kernel
        q, _ = det.detect(dt.encode(g, dt.DetSpec()), min_pixels=1)
        tp = det.match(q, g)
        assert tp >= len(g) - 1, (doms[i], tp, len(g))


# ---- the tiny trained detector in xnn vs LiteRT -------------------------------------------------

def _fixture():
    path = os.path.join(FIX, "detector_tiny.npz")
    if not os.path.exists(path):
        pytest.skip("no detector fixture")
    z = np.load(path)
    return {k: z[k] for k in z.files}


@pytest.mark.parametrize("kind", ["int8"])
def test_fixture_xnn_matches_litert(kind):
    import xnn

    fx = _fixture()
    spec = dt.DetSpec.from_json(str(fx["spec"]))
    it = xnn.Interpreter(model_path=os.path.join(FIX, f"detector_tiny_{kind}.tflite"), num_threads=1)
    d = it.get_input_details()[0]
    for k, x_u8 in enumerate(fx["x"]):
        x = dt.to_input(x_u8[None])
        if d["dtype"] == np.int8:
            s, z = d["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        y = it(x)[0][0]
        ref = fx[f"litert_{kind}"][k]
        assert y.shape == tuple(spec.out_shape)
        if kind == "int8":
            np.testing.assert_array_equal(y, ref)
        else:
            np.testing.assert_allclose(y, ref, atol=1e-4)
