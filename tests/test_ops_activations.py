"""Activations against LiteRT BUILTIN_REF and the NumPy references.

8-bit unary activations are fed all 256 input values (every entry of the kernel's table), with
hypothesis drawing scales and zero points; float32 ones get random shapes and values.
Integer outputs must be identical to LiteRT and to the reference; float32 within 1e-5 relative.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from oracle import check_op, one_op_model, qp, spec
from xnn import Interpreter, XnnError

Q8 = {np.int8: (-128, 127), np.uint8: (0, 255)}
log_scale = st.floats(-3.0, 0.0).map(lambda e: float(np.float32(10.0 ** e)))
ALL_BYTES_SHAPES = [(256,), (4, 64), (2, 2, 64), (1, 16, 16), (2, 4, 4, 8), (1, 2, 2, 8, 8)]
float_shapes = st.lists(st.integers(1, 9), min_size=1, max_size=5).filter(lambda s: np.prod(s) <= 2000)


def all_bytes(dtype, shape):
    return np.arange(256, dtype=np.uint8).view(dtype).reshape(shape).copy()


def zero_point(draw, dtype):
    return draw(st.integers(*Q8[dtype]))


@given(data=st.data(), op=st.sampled_from(["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
                                           "HARD_SWISH", "TANH"]),
       dtype=st.sampled_from([np.int8, np.int8, np.uint8]), shape=st.sampled_from(ALL_BYTES_SHAPES))
def test_unary_quantized_all_inputs(data, op, dtype, shape):
    s_in = data.draw(log_scale)
    s_out = float(np.float32(s_in * 10.0 ** data.draw(st.floats(-1.5, 1.5))))
    if op == "HARD_SWISH":
        assume(s_in < 64 * s_out)  # TFLite requires s_in / (128·s_out) < 1 (output shift <= 0)
    if op == "TANH" and data.draw(st.booleans()):  # the usual int8 tanh output quantization
        s_out = 1.0 / 128
    options = None
    if op == "LEAKY_RELU":
        common = st.sampled_from([0.1, 0.2, 0.01, 0.5, 1.5, -0.5, -1.0])
        alpha = data.draw(common if data.draw(st.booleans()) else st.floats(-2.0, 2.0))
        options = {"alpha": float(np.float32(alpha))}
    z_in, z_out = zero_point(data.draw, dtype), zero_point(data.draw, dtype)
    if op == "TANH" and s_out == 1.0 / 128:
        z_out = 0 if dtype == np.int8 else 128
    x = all_bytes(dtype, shape)
    check_op(op, [spec("x", shape, dtype, qp(s_in, z_in))], [spec("y", None, dtype, qp(s_out, z_out))],
             [x], options=options)


@given(data=st.data(), dtype=st.sampled_from([np.int8, np.uint8]), shape=st.sampled_from(ALL_BYTES_SHAPES))
def test_logistic_quantized_all_inputs(data, dtype, shape):
    s_in = data.draw(st.floats(-3.0, 0.5).map(lambda e: float(np.float32(10.0 ** e))))
    z_out = -128 if dtype == np.int8 else 0
    if data.draw(st.booleans()):  # TFLite's reference accepts any output zero point with scale 1/256
        z_out = zero_point(data.draw, dtype)
    check_op("LOGISTIC", [spec("x", shape, dtype, qp(s_in, zero_point(data.draw, dtype)))],
             [spec("y", None, dtype, qp(1.0 / 256, z_out))], [all_bytes(dtype, shape)])


@given(data=st.data(), op=st.sampled_from(["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
                                           "HARD_SWISH", "LOGISTIC", "TANH"]), shape=float_shapes)
def test_unary_float(data, op, shape):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = (rng.standard_normal(shape) * data.draw(st.sampled_from([0.5, 3.0, 20.0]))).astype(np.float32)
    x.flat[: min(6, x.size)] = np.array([0.0, -3.0, 3.0, 1e-7, -90.0, 0.6], np.float32)[: min(6, x.size)]
    options = {"alpha": float(np.float32(data.draw(st.floats(-2.0, 2.0))))} if op == "LEAKY_RELU" else None
    check_op(op, [spec("x", shape, np.float32)], [spec("y", None, np.float32)], [x], options=options)


def test_logistic_tanh_float_dense():
    x = np.linspace(-110, 110, 40001, dtype=np.float32).reshape(1, -1)
    for op in ("LOGISTIC", "TANH"):
        check_op(op, [spec("x", x.shape, np.float32)], [spec("y", None, np.float32)], [x])


# ---- PRELU -------------------------------------------------------------------------------------

@st.composite
def prelu_shapes(draw):
    rank = draw(st.integers(1, 4))
    xs = tuple(draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank)))
    assume(np.prod(xs) <= 1500)
    kind = draw(st.sampled_from(["channel", "full", "bcast", "scalar"]))
    if kind == "channel":
        al = (xs[-1],)
    elif kind == "full":
        al = xs
    elif kind == "scalar":
        al = (1,)
    else:
        dims = [d if draw(st.booleans()) else 1 for d in xs]
        al = tuple(dims[draw(st.integers(0, rank - 1)):])
    return xs, al


@given(data=st.data(), shapes=prelu_shapes(), const=st.booleans(), dtype=st.sampled_from([np.int8, np.uint8]))
def test_prelu_quantized(data, shapes, const, dtype):
    xs, al = shapes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    lo, hi = Q8[dtype]
    x = rng.integers(lo, hi + 1, size=xs).astype(dtype)
    a = rng.integers(lo, hi + 1, size=al).astype(dtype)
    s_x, s_a = data.draw(log_scale), data.draw(log_scale)
    s_y = float(np.float32(s_x * 10.0 ** data.draw(st.floats(-1.0, 1.0))))
    ins = [spec("x", xs, dtype, qp(s_x, zero_point(data.draw, dtype))),
           spec("alpha", al, dtype, qp(s_a, zero_point(data.draw, dtype)), data=a if const else None)]
    check_op("PRELU", ins, [spec("y", None, dtype, qp(s_y, zero_point(data.draw, dtype)))],
             [x] if const else [x, a])


@given(data=st.data(), shapes=prelu_shapes(), const=st.booleans())
def test_prelu_float(data, shapes, const):
    xs, al = shapes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.standard_normal(xs).astype(np.float32)
    a = rng.standard_normal(al).astype(np.float32)
    ins = [spec("x", xs, np.float32), spec("alpha", al, np.float32, data=a if const else None)]
    check_op("PRELU", ins, [spec("y", None, np.float32)], [x] if const else [x, a])


# ---- SOFTMAX -----------------------------------------------------------------------------------

softmax_shapes = st.lists(st.integers(1, 40), min_size=1, max_size=4).filter(lambda s: np.prod(s) <= 3000)


@given(data=st.data(), shape=softmax_shapes,
       beta=st.sampled_from([1.0, 0.5, 2.0, 0.1, 10.0, 1.7]))
def test_softmax_quantized(data, shape, beta):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    s_in = data.draw(st.floats(-3.0, 0.7).map(lambda e: float(np.float32(10.0 ** e))))
    spread = data.draw(st.sampled_from([256, 32, 4]))
    x = rng.integers(-128, 128, size=shape)
    x = (x % spread - 128 + data.draw(st.integers(0, 256 - spread))).astype(np.int8)
    rows = x.reshape(-1, shape[-1]).astype(np.float64)
    # LiteRT aborts (TFLITE_CHECK) once a row's Σexp reaches 512; stay far below
    assume(np.exp((rows - rows.max(axis=1, keepdims=True)) * s_in * beta).sum(axis=1).max() < 300)
    check_op("SOFTMAX", [spec("x", shape, np.int8, qp(s_in, data.draw(st.integers(-128, 127))))],
             [spec("y", None, np.int8, qp(1.0 / 256, -128))], [x], options={"beta": beta})


def test_softmax_quantized_wide_rows():
    """Wide rows (an OCR alphabet) with a steep scale, so few terms matter."""
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, size=(3, 6625)).astype(np.int8)
    check_op("SOFTMAX", [spec("x", x.shape, np.int8, qp(0.2, 0))],
             [spec("y", None, np.int8, qp(1.0 / 256, -128))], [x], options={"beta": 1.0})


@given(data=st.data(), shape=float_shapes, beta=st.sampled_from([1.0, 0.5, 2.0, 0.1, 10.0]))
def test_softmax_float(data, shape, beta):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = (rng.standard_normal(shape) * data.draw(st.sampled_from([0.1, 1.0, 10.0]))).astype(np.float32)
    check_op("SOFTMAX", [spec("x", shape, np.float32)], [spec("y", None, np.float32)], [x],
             options={"beta": beta})


# ---- rejections --------------------------------------------------------------------------------

def _load(op, ins, outs, options=None):
    return Interpreter(model_content=one_op_model(op, ins, outs, options))


def test_rejects_unsupported_activation_configs():
    i8 = lambda n, s=0.1, z=0: spec(n, (2, 4), np.int8, qp(s, z))
    with pytest.raises(XnnError, match="1/256"):
        _load("LOGISTIC", [i8("x")], [i8("y", 1.0 / 128, -128)])
    with pytest.raises(XnnError, match="1/256"):
        _load("SOFTMAX", [i8("x")], [i8("y", 1.0 / 256, 0)], {"beta": 1.0})
    with pytest.raises(XnnError, match="uint8"):
        _load("SOFTMAX", [spec("x", (2, 4), np.uint8, qp(0.1, 3))],
              [spec("y", (2, 4), np.uint8, qp(1.0 / 256))], {"beta": 1.0})
    with pytest.raises(XnnError, match="HARD_SWISH"):
        _load("HARD_SWISH", [i8("x", 1.0)], [i8("y", 0.001)])
    with pytest.raises(XnnError, match="int16"):
        _load("RELU", [spec("x", (2, 4), np.int16, qp(0.1))], [spec("y", (2, 4), np.int16, qp(0.1))])
    with pytest.raises(XnnError, match="dtype"):
        _load("TANH", [i8("x")], [spec("y", (2, 4), np.float32)])
    with pytest.raises(XnnError, match="broadcast"):
        _load("PRELU", [i8("x"), spec("a", (2, 1, 4), np.int8, qp(0.1))],
              [spec("y", (2, 2, 4), np.int8, qp(0.1))])
    with pytest.raises(XnnError, match="quantiz"):
        _load("LEAKY_RELU", [spec("x", (2, 4), np.int8)], [i8("y")], {"alpha": 0.1})
    with pytest.raises(XnnError, match="per-tensor"):
        _load("RELU6", [spec("x", (2, 4), np.int8, qp([0.1] * 4, 0, axis=1))], [i8("y")])
