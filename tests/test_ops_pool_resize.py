"""AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, ARG_MAX, RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR vs LiteRT.

int8 outputs must equal LiteRT BUILTIN_REF and the NumPy reference exactly; float32 within 1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracle import check_op, one_op_model, qp, spec
from xnn import Interpreter, XnnError

ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _feed(draw, shape, dtype, ties=False):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.int8:
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if ties:
        return rng.integers(-3, 4, size=shape).astype(np.float32)
    return rng.normal(0.0, 2.0, size=shape).astype(np.float32)


def _channels(draw):
    """Odd small counts and counts past the 32-lane int8 / 8-lane float vector widths."""
    return draw(st.one_of(st.integers(1, 19), st.integers(30, 70)))


def _qparams(draw):
    return float(np.float32(draw(st.floats(0.005, 0.2)))), draw(st.integers(-40, 40))


# ---- pooling ------------------------------------------------------------------------------------

@st.composite
def pool_cases(draw, dtype):
    n = draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    c = _channels(draw)
    padding = draw(st.sampled_from([0, 1]))
    fh, fw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if padding == 1:  # VALID needs the filter to fit
        fh, fw = min(fh, h), min(fw, w)
    opts = dict(padding=padding, stride_h=draw(st.integers(1, 3)), stride_w=draw(st.integers(1, 3)),
                filter_height=fh, filter_width=fw,
                fused_activation_function=ACTS[draw(st.sampled_from(sorted(ACTS)))])
    q = qp(*_qparams(draw)) if dtype == np.int8 else None
    x = _feed(draw, (n, h, w, c), dtype)
    return [spec("x", x.shape, dtype, q)], [spec("y", None, dtype, q)], [x], opts


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("dtype", [np.int8, np.float32], ids=["int8", "float32"])
@given(data=st.data())
def test_pool(op, dtype, data):
    ins, outs, feeds, opts = data.draw(pool_cases(dtype))
    check_op(op, ins, outs, feeds, options=opts)


def test_avg_pool_int8_rounds_half_away_from_zero():
    # 2x2 windows with sums ±2 and ±6 (exact halves) and a global 3x3 window.
    x = np.array([1, 1, 0, 0, -1, -1, 0, 0, 2, 1, 0, 0, -2, -1, 0, 0], np.int8).reshape(1, 4, 4, 1)
    q = qp(0.1, 3)
    for f, s in ((2, 2), (3, 1)):
        opts = dict(padding=0, stride_h=s, stride_w=s, filter_height=f, filter_width=f,
                    fused_activation_function=0)
        check_op("AVERAGE_POOL_2D", [spec("x", x.shape, np.int8, q)], [spec("y", None, np.int8, q)],
                 [x], options=opts)


def test_pool_float_infinities_clamp_to_flt_max():
    x = np.array([np.inf, -np.inf, 1.0, -np.inf], np.float32).reshape(1, 2, 2, 1)
    for op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        opts = dict(padding=1, stride_h=1, stride_w=1, filter_height=1, filter_width=1,
                    fused_activation_function=0)
        got = check_op(op, [spec("x", x.shape, np.float32)], [spec("y", None, np.float32)], [x],
                       options=opts)
        assert np.all(np.isfinite(got[0]))


# ---- MEAN ---------------------------------------------------------------------------------------

@st.composite
def mean_cases(draw, dtype):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank)))
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank + 1))
    keep = draw(st.booleans())
    if dtype == np.int8:
        qi = qp(*_qparams(draw))
        qo = qi if draw(st.booleans()) else qp(*_qparams(draw))
    else:
        qi = qo = None
    x = _feed(draw, shape, dtype)
    ins = [spec("x", shape, dtype, qi), spec("axis", None, np.int32, data=np.array(axes, np.int32))]
    return ins, [spec("y", None, dtype, qo)], [x], dict(keep_dims=keep)


@pytest.mark.parametrize("dtype", [np.int8, np.float32], ids=["int8", "float32"])
@given(data=st.data())
def test_mean(dtype, data):
    ins, outs, feeds, opts = data.draw(mean_cases(dtype))
    check_op("MEAN", ins, outs, feeds, options=opts)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("axes", [[1, 2], [2, 1], [-3, -2]])
@pytest.mark.parametrize("same_scale", [True, False])
def test_mean_spatial_int8(keep, axes, same_scale):
    """Global average pooling / squeeze-excitation: MEAN over H, W of an NHWC tensor."""
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(2, 9, 13, 24)).astype(np.int8)
    qi = qp(0.05, -7)
    qo = qi if same_scale else qp(0.0173, 11)
    ins = [spec("x", x.shape, np.int8, qi), spec("axis", None, np.int32, data=np.array(axes, np.int32))]
    check_op("MEAN", ins, [spec("y", None, np.int8, qo)], [x], options=dict(keep_dims=keep))


def test_mean_all_axes_scalar_output():
    x = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    ins = [spec("x", x.shape, np.float32), spec("axis", None, np.int32, data=np.array([0, 1], np.int32))]
    got = check_op("MEAN", ins, [spec("y", None, np.float32)], [x], options=dict(keep_dims=False))
    assert got[0].shape == ()


# ---- ARG_MAX ------------------------------------------------------------------------------------

@st.composite
def argmax_cases(draw):
    dtype = draw(st.sampled_from([np.int8, np.float32, np.uint8, np.int32]))
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    axis = draw(st.integers(-rank, rank - 1))
    axis_dtype = draw(st.sampled_from([np.int32, np.int64]))
    out_dtype, code = draw(st.sampled_from([(np.int32, 2), (np.int64, 4)]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        x = _feed(draw, shape, dtype, ties=draw(st.booleans()))
    else:
        lo, hi = (-3, 3) if draw(st.booleans()) else {np.int8: (-128, 127), np.uint8: (0, 255),
                                                    np.int32: (-10**9, 10**9)}[dtype]
        x = rng.integers(max(lo, 0) if dtype == np.uint8 else lo, hi + 1, size=shape).astype(dtype)
    q = qp(0.1, 2) if dtype in (np.int8, np.uint8) else None
    ins = [spec("x", shape, dtype, q), spec("axis", (1,), axis_dtype, data=np.array([axis], axis_dtype))]
    return ins, [spec("y", None, out_dtype)], [x], dict(output_type=code)


@given(case=argmax_cases())
def test_arg_max(case):
    ins, outs, feeds, opts = case
    check_op("ARG_MAX", ins, outs, feeds, options=opts)


def test_arg_max_ties_pick_first():
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32)
    ins = [spec("x", x.shape, np.float32), spec("axis", (1,), np.int32, data=np.array([1], np.int32))]
    got = check_op("ARG_MAX", ins, [spec("y", None, np.int64)], [x], options=dict(output_type=4))
    assert got[0].tolist() == [1, 0]


def test_arg_max_nan_never_wins():
    nan, inf = np.nan, np.inf
    rows = np.array([[nan, nan, 1, 0], [nan, -inf, -inf, -inf], [-inf, nan, -inf, -inf], [nan] * 4,
                     [3, nan, 2, 5], [1, 2, nan, 2], [-inf] * 4], np.float32)
    for axis, x in ((0, rows.T.copy()), (1, rows[2:].copy())):  # LiteRT's last-axis path differs
        ins = [spec("x", x.shape, np.float32), spec("axis", (1,), np.int32, data=np.array([axis], np.int32))]
        check_op("ARG_MAX", ins, [spec("y", None, np.int32)], [x], options=dict(output_type=2))


# ---- resize -------------------------------------------------------------------------------------

@st.composite
def resize_cases(draw, op, dtype):
    n = draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    c = _channels(draw)
    oh, ow = draw(st.integers(1, 19)), draw(st.integers(1, 19))
    mode = draw(st.sampled_from(["plain", "align", "half"] + (["both"] if op != "RESIZE_BILINEAR" else [])))
    opts = dict(align_corners=mode in ("align", "both"), half_pixel_centers=mode in ("half", "both"))
    q = qp(*_qparams(draw)) if dtype == np.int8 else None
    x = _feed(draw, (n, h, w, c), dtype)
    ins = [spec("x", x.shape, dtype, q), spec("size", (2,), np.int32, data=np.array([oh, ow], np.int32))]
    return ins, [spec("y", None, dtype, q)], [x], opts


@pytest.mark.parametrize("op", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
@pytest.mark.parametrize("dtype", [np.int8, np.float32], ids=["int8", "float32"])
@given(data=st.data())
def test_resize(op, dtype, data):
    ins, outs, feeds, opts = data.draw(resize_cases(op, dtype))
    check_op(op, ins, outs, feeds, options=opts)


@pytest.mark.parametrize("mode", ["plain", "align", "half"])
def test_resize_bilinear_int8_2x_and_odd(mode):
    """The detector's FPN upsampling (2x) plus an odd downscale, int8, bit-exact."""
    rng = np.random.default_rng(3)
    q = qp(0.031, -5)
    opts = dict(align_corners=mode == "align", half_pixel_centers=mode == "half")
    for (h, w), (oh, ow) in (((8, 10), (16, 20)), ((13, 7), (5, 3))):
        x = rng.integers(-128, 128, size=(1, h, w, 16)).astype(np.int8)
        ins = [spec("x", x.shape, np.int8, q), spec("size", (2,), np.int32, data=np.array([oh, ow], np.int32))]
        check_op("RESIZE_BILINEAR", ins, [spec("y", None, np.int8, q)], [x], options=opts)


# ---- rejections ---------------------------------------------------------------------------------

def _load(op, ins, outs, options=None):
    outs = [o if o.shape is not None else spec(o.name, (), o.dtype, o.quant) for o in outs]
    return Interpreter(model_content=one_op_model(op, ins, outs, options))


POOL_OPTS = dict(padding=1, stride_h=1, stride_w=1, filter_height=2, filter_width=2,
                 fused_activation_function=0)


def test_reject_pool_scale_mismatch():
    with pytest.raises(XnnError, match="share scale"):
        _load("AVERAGE_POOL_2D", [spec("x", (1, 4, 4, 2), np.int8, qp(0.1, 0))],
              [spec("y", (1, 3, 3, 2), np.int8, qp(0.2, 0))], POOL_OPTS)


def test_reject_pool_tanh_and_bad_geometry():
    with pytest.raises(XnnError, match="TANH"):
        _load("MAX_POOL_2D", [spec("x", (1, 4, 4, 2), np.float32)], [spec("y", (1, 3, 3, 2), np.float32)],
              dict(POOL_OPTS, fused_activation_function=4))
    with pytest.raises(XnnError, match="empty output"):
        _load("MAX_POOL_2D", [spec("x", (1, 2, 2, 2), np.float32)], [spec("y", (1, 1, 1, 2), np.float32)],
              dict(POOL_OPTS, filter_height=3))
    with pytest.raises(XnnError, match="strides"):
        _load("AVERAGE_POOL_2D", [spec("x", (1, 4, 4, 2), np.float32)], [spec("y", (1, 3, 3, 2), np.float32)],
              dict(POOL_OPTS, stride_w=0))
    with pytest.raises(XnnError, match="4-D"):
        _load("AVERAGE_POOL_2D", [spec("x", (4, 4, 2), np.float32)], [spec("y", (3, 3, 2), np.float32)],
              POOL_OPTS)


def test_reject_mean_configs():
    x = spec("x", (1, 4, 4, 2), np.float32)
    with pytest.raises(XnnError, match="non-constant"):
        _load("MEAN", [x, spec("axis", (2,), np.int32)], [spec("y", (1, 1, 1, 2), np.float32)],
              dict(keep_dims=True))
    with pytest.raises(XnnError, match="out of range"):
        _load("MEAN", [x, spec("axis", None, np.int32, data=np.array([4], np.int32))],
              [spec("y", (1, 4, 4, 2), np.float32)], dict(keep_dims=True))
    with pytest.raises(XnnError, match="int16|supports"):
        _load("MEAN", [spec("x", (1, 4, 4, 2), np.int16, qp(0.1)),
                       spec("axis", None, np.int32, data=np.array([1], np.int32))],
              [spec("y", (1, 1, 4, 2), np.int16, qp(0.1))], dict(keep_dims=True))


def test_reject_resize_configs():
    x = spec("x", (1, 4, 4, 2), np.float32)
    size = spec("size", (2,), np.int32, data=np.array([8, 8], np.int32))
    with pytest.raises(XnnError, match="cannot both"):
        _load("RESIZE_BILINEAR", [x, size], [spec("y", (1, 8, 8, 2), np.float32)],
              dict(align_corners=True, half_pixel_centers=True))
    with pytest.raises(XnnError, match="non-constant"):
        _load("RESIZE_NEAREST_NEIGHBOR", [x, spec("size", (2,), np.int32)],
              [spec("y", (1, 8, 8, 2), np.float32)], dict(align_corners=False, half_pixel_centers=False))
    with pytest.raises(XnnError, match="share scale"):
        _load("RESIZE_BILINEAR", [spec("x", (1, 4, 4, 2), np.int8, qp(0.1, 1)), size],
              [spec("y", (1, 8, 8, 2), np.int8, qp(0.1, 2))], dict(align_corners=False, half_pixel_centers=False))


def test_reject_arg_max_configs():
    x = spec("x", (2, 5), np.float32)
    with pytest.raises(XnnError, match="non-constant"):
        _load("ARG_MAX", [x, spec("axis", (1,), np.int32)], [spec("y", (2,), np.int64)], dict(output_type=4))
    with pytest.raises(XnnError, match="output_type"):
        _load("ARG_MAX", [x, spec("axis", (1,), np.int32, data=np.array([1], np.int32))],
              [spec("y", (2,), np.int16)], dict(output_type=7))
    with pytest.raises(XnnError, match="out of range"):
        _load("ARG_MAX", [x, spec("axis", (1,), np.int32, data=np.array([2], np.int32))],
              [spec("y", (2,), np.int64)], dict(output_type=4))
