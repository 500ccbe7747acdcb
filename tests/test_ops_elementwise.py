"""ADD, SUB, MUL, QUANTIZE, DEQUANTIZE against LiteRT BUILTIN_REF and the NumPy references.

Integer outputs must be identical to LiteRT and to the reference; float32 within 1e-5 relative.
Strategies stay inside what LiteRT's reference kernels accept without aborting (e.g. ADD needs
2·max(s_in) / (2^20·s_out) < 1, checked by a TFLite CHECK that kills the process).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from oracle import check_op, one_op_model, qp, run_litert, spec
from xnn import Interpreter, XnnError
from xnn.converter.tflite_writer import write_tflite
from xnn.ir import Graph, Node, frozen_options

ACTS = [0, 1, 2, 3]  # NONE, RELU, RELU_N1_TO_1, RELU6
Q8 = {np.int8: (-128, 127), np.uint8: (0, 255)}


@st.composite
def broadcast_shapes(draw, max_rank=5, max_elems=1200):
    """Two numpy-broadcastable shapes (ranks 0..5, extents 1..7): equal, per-channel, scalar, or
    general broadcasts with leading dimensions dropped."""
    rank = draw(st.integers(1, max_rank))
    out = draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank))
    assume(int(np.prod(out)) <= max_elems)

    def one(allow_scalar):
        kind = draw(st.sampled_from(["full", "full", "bcast", "bcast", "channel", "scalar"]))
        if kind == "full":
            return tuple(out)
        if kind == "channel":
            return (out[-1],)
        if kind == "scalar":
            return () if allow_scalar else (1,)
        dims = [d if draw(st.booleans()) else 1 for d in out]
        return tuple(dims[draw(st.integers(0, rank - 1)):])

    a, b = one(False), one(True)
    if draw(st.booleans()):
        a, b = b, a
    return a, b


log_scale = st.floats(-3.0, 0.0).map(lambda e: float(np.float32(10.0 ** e)))


def rand_q(rng, shape, dtype):
    lo, hi = Q8[dtype]
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def zero_point(draw, dtype):
    lo, hi = Q8[dtype]
    return draw(st.integers(lo, hi))


@given(data=st.data(), op=st.sampled_from(["ADD", "SUB", "MUL"]), shapes=broadcast_shapes(),
       act=st.sampled_from(ACTS), const=st.sampled_from([None, 0, 1]),
       dtype=st.sampled_from([np.int8, np.int8, np.int8, np.uint8]))
def test_binary_quantized(data, op, shapes, act, const, dtype):
    sa, sb = shapes
    s1, s2 = data.draw(log_scale), data.draw(log_scale)
    if op == "MUL":
        so = float(np.float32(s1 * s2 * 10.0 ** data.draw(st.floats(-1.0, 2.5))))
    else:
        so = float(np.float32(max(s1, s2) * 10.0 ** data.draw(st.floats(-1.0, 1.0))))
    z1, z2, zo = (zero_point(data.draw, dtype) for _ in range(3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    a, b = rand_q(rng, sa, dtype), rand_q(rng, sb, dtype)
    ins = [spec("a", sa, dtype, qp(s1, z1), data=a if const == 0 else None),
           spec("b", sb, dtype, qp(s2, z2), data=b if const == 1 else None)]
    feeds = [x for x, k in ((a, 0), (b, 1)) if const != k]
    assume(feeds)
    check_op(op, ins, [spec("y", None, dtype, qp(so, zo))], feeds,
             options={"fused_activation_function": act})


@given(data=st.data(), op=st.sampled_from(["ADD", "SUB", "MUL"]), shapes=broadcast_shapes(),
       act=st.sampled_from(ACTS), const=st.sampled_from([None, 1]))
def test_binary_float(data, op, shapes, act, const):
    sa, sb = shapes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    a = (rng.standard_normal(sa) * 3).astype(np.float32)
    b = (rng.standard_normal(sb) * 3).astype(np.float32)
    ins = [spec("a", sa, np.float32), spec("b", sb, np.float32, data=b if const == 1 else None)]
    feeds = [a] if const == 1 else [a, b]
    check_op(op, ins, [spec("y", None, np.float32)], feeds, options={"fused_activation_function": act})


@given(data=st.data(), op=st.sampled_from(["ADD", "SUB"]), shapes=broadcast_shapes(max_rank=4),
       act=st.sampled_from([0, 1, 3]), pot=st.booleans())
def test_binary_int16(data, op, shapes, act, pot):
    """int16 ADD/SUB on TFLite's general-scale path (zero points 0, left shift 15)."""
    sa, sb = shapes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    s1, s2, so = (float(np.float32(10.0 ** data.draw(st.floats(-5.0, -2.0)))) for _ in range(3))
    if not pot and data.draw(st.booleans()):  # power-of-two scales, general path forced by the option
        s1, s2, so = 2.0 ** -12, 2.0 ** -10, 2.0 ** -9
    a = rng.integers(-32768, 32768, size=sa).astype(np.int16)
    b = rng.integers(-32768, 32768, size=sb).astype(np.int16)
    check_op(op, [spec("a", sa, np.int16, qp(s1, 0)), spec("b", sb, np.int16, qp(s2, 0))],
             [spec("y", None, np.int16, qp(so, 0))], [a, b],
             options={"fused_activation_function": act, "pot_scale_int16": pot})


def test_binary_quantized_all_byte_pairs():
    """Every (a, b) byte pair through ADD, SUB and MUL, for a few scale configurations."""
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256).reshape(256, 256)
    b = np.tile(np.arange(-128, 128, dtype=np.int8), 256).reshape(256, 256)
    for (s1, z1), (s2, z2), (so, zo), act in [((0.05, 3), (0.02, -7), (0.06, 5), 0),
                                               ((0.1, -128), (0.1, 127), (0.2, 0), 1),
                                               ((0.003, 10), (0.7, -3), (0.5, -20), 3)]:
        for op in ("ADD", "SUB", "MUL"):
            so_op = so if op != "MUL" else s1 * s2 * 60
            check_op(op, [spec("a", a.shape, np.int8, qp(s1, z1)), spec("b", b.shape, np.int8, qp(s2, z2))],
                     [spec("y", None, np.int8, qp(so_op, zo))], [a, b],
                     options={"fused_activation_function": act})


def test_binary_float_specials():
    a = np.array([np.inf, -np.inf, 3e38, -3e38, 0.0, -0.0, 1.5, np.nan], np.float32)
    b = np.array([1.0, 1.0, 3e38, -3e38, -0.0, 0.0, -2.5, 1.0], np.float32)
    for op in ("ADD", "SUB", "MUL"):
        for act in ACTS:
            check_op(op, [spec("a", a.shape, np.float32), spec("b", b.shape, np.float32)],
                     [spec("y", None, np.float32)], [a, b], options={"fused_activation_function": act})


# ---- QUANTIZE / DEQUANTIZE ---------------------------------------------------------------------

small_shapes = st.lists(st.integers(1, 9), min_size=1, max_size=4).filter(lambda s: np.prod(s) <= 1500)


@given(data=st.data(), shape=small_shapes, dtype=st.sampled_from([np.int8, np.uint8, np.int16]))
def test_quantize_float(data, shape, dtype):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    s = data.draw(log_scale)
    zp = 0 if dtype == np.int16 else zero_point(data.draw, dtype)
    x = (rng.standard_normal(shape) * s * 100).astype(np.float32)
    ties = np.float32(s) * np.array([0.5, -1.5, 2.5, -0.5], np.float32)  # exact halves of the scale
    x.flat[: min(4, x.size)] = ties[: min(4, x.size)]
    check_op("QUANTIZE", [spec("x", shape, np.float32)], [spec("y", None, dtype, qp(s, zp))], [x])


@given(data=st.data(), shape=small_shapes, dtype=st.sampled_from([np.int8, np.uint8]))
def test_quantize_per_channel(data, shape, dtype):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    axis = data.draw(st.integers(0, len(shape) - 1))
    c = shape[axis]
    scales = (10.0 ** rng.uniform(-3, 0, c)).astype(np.float32)
    zps = rng.integers(*Q8[dtype], size=c) if dtype == np.uint8 else rng.integers(-20, 20, size=c)
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    check_op("QUANTIZE", [spec("x", shape, np.float32)],
             [spec("y", shape, dtype, qp(scales, zps, axis=axis))], [x])


@given(data=st.data(), shape=small_shapes, din=st.sampled_from([np.int8, np.uint8]),
       dout=st.sampled_from([np.int8, np.uint8]))
def test_requantize_8bit(data, shape, din, dout):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    s_in = data.draw(log_scale)
    s_out = float(np.float32(s_in * 10.0 ** data.draw(st.floats(-1.5, 1.5))))
    x = rand_q(rng, shape, din)
    check_op("QUANTIZE", [spec("x", shape, din, qp(s_in, zero_point(data.draw, din)))],
             [spec("y", None, dout, qp(s_out, zero_point(data.draw, dout)))], [x])


@given(data=st.data(), shape=small_shapes, dout=st.sampled_from([np.int8, np.int16]))
def test_requantize_int16(data, shape, dout):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    s_in = data.draw(st.floats(-5.0, -2.0).map(lambda e: float(np.float32(10.0 ** e))))
    zo = 0 if dout == np.int16 else data.draw(st.integers(-128, 127))
    s_out = float(np.float32(s_in * 10.0 ** data.draw(st.floats(-1.0, 3.0 if dout == np.int8 else 1.0))))
    x = rng.integers(-32768, 32768, size=shape).astype(np.int16)
    check_op("QUANTIZE", [spec("x", shape, np.int16, qp(s_in, 0))], [spec("y", None, dout, qp(s_out, zo))],
             [x])


@given(data=st.data(), shape=small_shapes, dtype=st.sampled_from([np.int8, np.uint8, np.int16]),
       per_channel=st.booleans())
def test_dequantize(data, shape, dtype, per_channel):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    if dtype == np.int16:
        per_channel = False
        x = rng.integers(-32768, 32768, size=shape).astype(np.int16)
        q = qp(data.draw(log_scale), 0)
    else:
        x = rand_q(rng, shape, dtype)
        if per_channel:
            axis = data.draw(st.integers(0, len(shape) - 1))
            c = shape[axis]
            scales = (10.0 ** rng.uniform(-3, 0, c)).astype(np.float32)
            q = qp(scales, rng.integers(*Q8[dtype], size=c), axis=axis)
        else:
            q = qp(data.draw(log_scale), zero_point(data.draw, dtype))
    check_op("DEQUANTIZE", [spec("x", shape, dtype, q)], [spec("y", None, np.float32)], [x])


def test_dequantize_float16():
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((3, 5, 7)) * 100).astype(np.float16)
    h.flat[:4] = [np.float16(6e-8), np.float16(65504), -np.float16(0.0), np.float16(1e-5)]
    check_op("DEQUANTIZE", [spec("x", h.shape, np.float16)], [spec("y", None, np.float32)], [h])


def test_dequantize_constant_fp16_weight():
    """The fp16-weight pattern: DEQUANTIZE of a constant float16 tensor feeding a float op."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3, 4)).astype(np.float16)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    tensors = (spec("w16", w.shape, np.float16, data=w), spec("w", w.shape, np.float32),
               spec("x", x.shape, np.float32), spec("y", x.shape, np.float32))
    nodes = (Node("DEQUANTIZE", (0,), (1,), name="#0 DEQUANTIZE"),
             Node("ADD", (2, 1), (3,), frozen_options({"fused_activation_function": 0}), name="#1 ADD"))
    model = write_tflite(Graph(tensors=tensors, nodes=nodes, inputs=(2,), outputs=(3,)))
    expect = run_litert(model, [x])[0]
    got = Interpreter(model_content=model)(x)[0]
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(got, x + w.astype(np.float32))


# ---- rejections --------------------------------------------------------------------------------

def _load(op, ins, outs, options=None):
    return Interpreter(model_content=one_op_model(op, ins, outs, options))


def test_rejects_unsupported_binary_configs():
    i8 = lambda n, s=(2, 3), z=0, sc=0.1: spec(n, s, np.int8, qp(sc, z))
    with pytest.raises(XnnError, match="dtype"):
        _load("ADD", [i8("a"), spec("b", (2, 3), np.float32)], [i8("y")])
    i16 = lambda n, sc=0.1, z=0: spec(n, (2, 3), np.int16, qp(sc, z))
    with pytest.raises(XnnError, match="int16"):
        _load("MUL", [i16("a"), i16("b")], [i16("y")], {"fused_activation_function": 0})
    with pytest.raises(XnnError, match="power-of-two"):
        _load("ADD", [i16("a", 0.5), i16("b", 0.25)], [i16("y", 0.5)], {"fused_activation_function": 0})
    with pytest.raises(XnnError, match="zero points of 0"):
        _load("SUB", [i16("a", z=3), i16("b")], [i16("y")], {"fused_activation_function": 0})
    with pytest.raises(XnnError, match="broadcast"):
        _load("MUL", [i8("a", (2, 3)), i8("b", (4,))], [i8("y", (2, 3))])
    with pytest.raises(XnnError, match="TANH"):
        _load("SUB", [i8("a"), i8("b")], [i8("y")], {"fused_activation_function": 4})
    with pytest.raises(XnnError, match="per channel"):
        _load("ADD", [spec("a", (2, 3), np.int8, qp([0.1, 0.2, 0.3], 0, axis=1)), i8("b")], [i8("y")])
    with pytest.raises(XnnError, match="too small"):
        _load("ADD", [i8("a", sc=1.0), i8("b")], [i8("y", sc=1e-7)])
    with pytest.raises(XnnError, match="quantization"):
        _load("ADD", [spec("a", (2, 3), np.int8), i8("b")], [i8("y")])


def test_rejects_unsupported_quantize_configs():
    with pytest.raises(XnnError, match="float32"):
        _load("QUANTIZE", [spec("x", (4,), np.float32)], [spec("y", (4,), np.float32)])
    with pytest.raises(XnnError, match="int32"):
        _load("QUANTIZE", [spec("x", (4,), np.int32, qp(0.1))], [spec("y", (4,), np.int8, qp(0.1))])
    with pytest.raises(XnnError, match="zero points of 0"):
        _load("QUANTIZE", [spec("x", (4,), np.int16, qp(0.1, 3))], [spec("y", (4,), np.int16, qp(0.1))])
    with pytest.raises(XnnError, match="not supported"):
        _load("DEQUANTIZE", [spec("x", (4,), np.int32, qp(0.1))], [spec("y", (4,), np.float32)])
    with pytest.raises(XnnError, match="per-channel"):
        _load("DEQUANTIZE", [spec("x", (2, 2), np.int16, qp([0.1, 0.2], 0, axis=1))],
              [spec("y", (2, 2), np.float32)])
