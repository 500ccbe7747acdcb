"""Shape and data-movement ops vs LiteRT BUILTIN_REF and the NumPy references (xnn/kernels/shape.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracle import check_op, one_op_model, qp, spec
from xnn import Interpreter, XnnError
from xnn.ops import OPS

DTYPES = [np.float32, np.int8, np.int32]


def shapes(min_rank=1, max_rank=4, max_side=5):
    return st.lists(st.integers(1, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


def rand(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    return rng.integers(lo, hi, shape, endpoint=True).astype(dtype)


def quant_for(draw, dtype):
    """A random per-tensor quantization for 8-bit types, None otherwise."""
    if np.dtype(dtype) == np.int8:
        return qp(draw(st.sampled_from([0.003, 0.02, 0.1, 0.5])), draw(st.integers(-128, 127)))
    if np.dtype(dtype) == np.uint8:
        return qp(draw(st.sampled_from([0.003, 0.02, 0.1, 0.5])), draw(st.integers(0, 255)))
    return None


def rng_of(draw):
    return np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))


def run_xnn(op, ins, outs, feeds, options=None):
    """xnn only (configs LiteRT refuses): outputs and the reference outputs."""
    it = Interpreter(model_content=one_op_model(op, ins, outs, options))
    got = it(list(feeds))
    it_feeds = iter(feeds)
    ref_in = [None if t is None else (t.data if t.data is not None else next(it_feeds)) for t in ins]
    ref = OPS[op].reference(it.node_contexts[0], ref_in)
    return got, ref


def expect_reject(op, ins, outs, options=None, match=None):
    with pytest.raises(XnnError, match=match):
        Interpreter(model_content=one_op_model(op, ins, outs, options))


# ---- CONCATENATION -----------------------------------------------------------------------------

@given(st.data())
def test_concatenation(data):
    draw = data.draw
    rng = rng_of(draw)
    base = draw(shapes(1, 5, 4))
    rank = len(base)
    axis = draw(st.integers(-rank, rank - 1))
    n = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    ins, feeds = [], []
    for k in range(n):
        sh = list(base)
        sh[axis] = draw(st.integers(1, 4))
        ins.append(spec(f"x{k}", sh, dtype, q))
        feeds.append(rand(rng, sh, dtype))
    check_op("CONCATENATION", ins, [spec("y", None, dtype, q)], feeds, {"axis": axis})


@given(st.data())
def test_concatenation_requant_uint8_matches_litert(data):
    """LiteRT rescales uint8 inputs (ConcatenationWithScaling); the int8 path uses the same math."""
    draw = data.draw
    rng = rng_of(draw)
    base = draw(shapes(1, 4, 4))
    axis = draw(st.integers(0, len(base) - 1))
    ins, feeds = [], []
    for k in range(draw(st.integers(2, 3))):
        sh = list(base)
        sh[axis] = draw(st.integers(1, 4))
        ins.append(spec(f"x{k}", sh, np.uint8, quant_for(draw, np.uint8)))
        feeds.append(rng.integers(0, 256, sh).astype(np.uint8))
    check_op("CONCATENATION", ins, [spec("y", None, np.uint8, quant_for(draw, np.uint8))], feeds,
             {"axis": axis})


@given(st.data())
def test_concatenation_requant_int8(data):
    """LiteRT refuses int8 inputs quantized unlike the output; xnn rescales them (vs the reference)."""
    draw = data.draw
    rng = rng_of(draw)
    base = draw(shapes(1, 4, 4))
    axis = draw(st.integers(-len(base), len(base) - 1))
    out_q = quant_for(draw, np.int8)
    ins, feeds = [], []
    for k in range(draw(st.integers(2, 3))):
        sh = list(base)
        sh[axis] = draw(st.integers(1, 4))
        ins.append(spec(f"x{k}", sh, np.int8, draw(st.sampled_from([out_q, quant_for(draw, np.int8)]))))
        feeds.append(rand(rng, sh, np.int8))
    out_shape = list(base)
    out_shape[axis] = sum(t.shape[axis] for t in ins)
    got, ref = run_xnn("CONCATENATION", ins, [spec("y", out_shape, np.int8, out_q)], feeds, {"axis": axis})
    np.testing.assert_array_equal(got[0], ref[0])


def test_concatenation_requant_known_values():
    """real = 0.1·(q-3) requantized to scale 0.07, zp 1; halves round away from zero."""
    x = np.array([[-128, -10, 3, 10, 127]], np.int8)
    ins = [spec("a", (1, 5), np.int8, qp(0.1, 3)), spec("b", (1, 5), np.int8, qp(0.07, 1))]
    got, ref = run_xnn("CONCATENATION", ins, [spec("y", (1, 10), np.int8, qp(0.07, 1))], [x, x], {"axis": 1})
    s = np.float32(np.float32(0.1) * (np.float32(1) / np.float32(0.07)))
    v = x[0].astype(np.float32) * s + np.float32(-3) * s
    expect = np.clip(np.sign(v) * np.floor(np.abs(v.astype(np.float64)) + 0.5) + 1, -128, 127)
    np.testing.assert_array_equal(got[0][0, :5], expect.astype(np.int8))
    np.testing.assert_array_equal(got[0][0, 5:], x[0])
    np.testing.assert_array_equal(got[0], ref[0])


# ---- RESHAPE / SQUEEZE / EXPAND_DIMS -----------------------------------------------------------

@given(st.data())
def test_reshape(data):
    draw = data.draw
    shape = draw(shapes(1, 5, 4))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    target = list(draw(st.permutations(shape)))[::-1] + [1] * draw(st.integers(0, 1))
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    x = rand(rng_of(draw), shape, dtype)
    check_op("RESHAPE", [spec("x", shape, dtype, q), spec("s", None, np.int32, data=target)],
             [spec("y", None, dtype, q)], [x], {"new_shape": target})


@given(st.data())
def test_squeeze(data):
    draw = data.draw
    shape = list(draw(shapes(1, 5, 3)))
    for _ in range(draw(st.integers(0, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    ones = [i for i, d in enumerate(shape) if d == 1]
    dims = draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    dims = [d - len(shape) if draw(st.booleans()) else d for d in dims]
    x = rand(rng_of(draw), shape, dtype)
    check_op("SQUEEZE", [spec("x", shape, dtype, q)], [spec("y", None, dtype, q)], [x], {"squeeze_dims": dims})


@given(st.data())
def test_expand_dims(data):
    draw = data.draw
    shape = draw(shapes(0, 4, 4))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    adt = draw(st.sampled_from([np.int32, np.int64]))
    x = rand(rng_of(draw), shape, dtype)
    check_op("EXPAND_DIMS", [spec("x", shape, dtype, q), spec("a", None, adt, data=[axis])],
             [spec("y", None, dtype, q)], [x])


# ---- TRANSPOSE ---------------------------------------------------------------------------------

@given(st.data())
def test_transpose(data):
    draw = data.draw
    shape = draw(shapes(1, 6, 5))
    perm = draw(st.permutations(range(len(shape))))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    x = rand(rng_of(draw), shape, dtype)
    check_op("TRANSPOSE", [spec("x", shape, dtype, q), spec("p", None, np.int32, data=perm)],
             [spec("y", None, dtype, q)], [x])


@given(st.data())
def test_transpose_byte_blocks(data):
    """int8 shapes with sides that are multiples of 8 (the 8x8-word path) mixed with ragged ones."""
    draw = data.draw
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 8, 9, 16, 24]), min_size=2, max_size=4)))
    perm = draw(st.permutations(range(len(shape))))
    x = rand(rng_of(draw), shape, np.int8)
    q = qp(0.1, 7)
    check_op("TRANSPOSE", [spec("x", shape, np.int8, q), spec("p", None, np.int32, data=perm)],
             [spec("y", None, np.int8, q)], [x])


@pytest.mark.parametrize("shape,perm", [((1, 7, 9, 33), (0, 3, 1, 2)), ((2, 3, 40), (0, 2, 1)),
                                        ((1, 16, 8, 24), (0, 3, 1, 2)), ((2, 8, 40), (0, 2, 1)),
                                        ((3, 16, 2, 8), (2, 0, 3, 1)), ((1, 56, 2, 58), (0, 1, 3, 2)),
                                        ((4, 1, 3, 1, 5), (4, 1, 2, 3, 0)), ((17, 2), (1, 0)),
                                        ((2, 3, 4, 5, 6, 7), (5, 4, 3, 2, 1, 0))])
@pytest.mark.parametrize("dtype", [np.int8, np.float32])
def test_transpose_boundaries(shape, perm, dtype):
    x = rand(np.random.default_rng(0), shape, dtype)
    q = qp(0.05, -3) if dtype == np.int8 else None
    check_op("TRANSPOSE", [spec("x", shape, dtype, q), spec("p", None, np.int32, data=perm)],
             [spec("y", None, dtype, q)], [x])


@pytest.mark.parametrize("A,B,S,D", [(13, 19, 24, 24), (8, 8, 8, 8), (17, 9, 32, 16), (9, 33, 16, 40)])
def test_byte_tile_transpose_remainders(A, B, S, D):
    """The 8x8-word byte transpose with ragged edges: dst[a*D + b] = src[b*S + a], a < A, b < B."""
    from xnn.kernels.shape import _perm_tiles8, _words
    rng = np.random.default_rng(A * B)
    src = rng.integers(0, 256, B * S + 8).astype(np.uint8)
    dst = np.zeros(A * D + 8, np.uint8)
    one = np.ones(4, np.int64)
    zero = np.zeros(4, np.int64)
    _perm_tiles8(src, dst, _words(src), _words(dst), one, zero, zero, A, B, S, D)
    expect = np.zeros_like(dst)
    for a in range(A):
        expect[a * D:a * D + B] = src[a:a + (B - 1) * S + 1:S]
    np.testing.assert_array_equal(dst, expect)


# ---- PAD / PADV2 -------------------------------------------------------------------------------

@given(st.data())
def test_pad(data):
    draw = data.draw
    shape = draw(shapes(1, 5, 4))
    pads = [[draw(st.integers(0, 3)), draw(st.integers(0, 3))] for _ in shape]
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    pdt = draw(st.sampled_from([np.int32, np.int64]))
    x = rand(rng_of(draw), shape, dtype)
    check_op("PAD", [spec("x", shape, dtype, q), spec("p", None, pdt, data=pads)],
             [spec("y", None, dtype, q)], [x])


@given(st.data())
def test_padv2(data):
    draw = data.draw
    rng = rng_of(draw)
    shape = draw(shapes(1, 5, 4))
    pads = [[draw(st.integers(0, 3)), draw(st.integers(0, 3))] for _ in shape]
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    value = rand(rng, (), dtype)
    ins = [spec("x", shape, dtype, q), spec("p", None, np.int32, data=pads)]
    feeds = [rand(rng, shape, dtype)]
    if draw(st.booleans()):
        ins.append(spec("c", (), dtype, q, data=value))
    else:
        ins.append(spec("c", (), dtype, q))
        feeds.append(value)
    check_op("PADV2", ins, [spec("y", None, dtype, q)], feeds)


def test_pad_int8_uses_output_zero_point():
    x = np.full((1, 2, 2, 1), 5, np.int8)
    ins = [spec("x", x.shape, np.int8, qp(0.1, -7)), spec("p", None, np.int32, data=[[0, 0], [1, 1], [1, 1], [0, 0]])]
    y = check_op("PAD", ins, [spec("y", None, np.int8, qp(0.1, -7))], [x])[0]
    assert y[0, 0, 0, 0] == -7 and y[0, 1, 1, 0] == 5


# ---- SLICE / STRIDED_SLICE ---------------------------------------------------------------------

@given(st.data())
def test_slice(data):
    draw = data.draw
    shape = draw(shapes(1, 5, 5))
    begin, size = [], []
    for d in shape:
        b = draw(st.integers(0, d - 1))
        begin.append(b)
        size.append(draw(st.sampled_from([-1, draw(st.integers(1, d - b))])))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    idt = draw(st.sampled_from([np.int32, np.int64]))
    x = rand(rng_of(draw), shape, dtype)
    check_op("SLICE", [spec("x", shape, dtype, q), spec("b", None, idt, data=begin), spec("s", None, idt, data=size)],
             [spec("y", None, dtype, q)], [x])


@st.composite
def strided_slice_configs(draw):
    shape = draw(shapes(1, 4, 6))
    rank = len(shape)
    ellipsis = draw(st.booleans()) and rank >= 2
    n_new = draw(st.integers(0, 1)) if rank <= 4 else 0
    offset = not ellipsis and not n_new and draw(st.integers(0, 4)) == 0
    n_idx = rank if offset else draw(st.integers(1, rank - 1 if ellipsis else rank))
    kinds = ["idx"] * n_idx + ["new"] * n_new + (["ell"] if ellipsis else [])
    kinds = draw(st.permutations(kinds))
    begin, end, strides = [], [], []
    masks = dict(begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0)
    # input dim of each idx entry (an ellipsis covers rank - n_idx dims)
    dim = 0
    for i, kind in enumerate(kinds):
        if kind == "ell":
            masks["ellipsis_mask"] |= 1 << i
            dim += rank - n_idx
            begin.append(0), end.append(0), strides.append(1)
            continue
        if kind == "new":
            masks["new_axis_mask"] |= 1 << i
            begin.append(draw(st.integers(-3, 3))), end.append(draw(st.integers(-3, 3))), strides.append(1)
            continue
        d = shape[dim]
        dim += 1
        if not offset and draw(st.integers(0, 4)) == 0:  # shrink: an in-range index, stride 1
            masks["shrink_axis_mask"] |= 1 << i
            begin.append(draw(st.integers(-d, d - 1))), end.append(draw(st.integers(-d, d))), strides.append(1)
            continue
        s = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
        if offset:
            # the end is relative to begin and must stay >= 0 (a negative one would wrap around)
            b = draw(st.integers(0, d - 1))
            cnt = draw(st.integers(0, -(-(d - b) // s) if s > 0 else b // -s))
            e = cnt * s if cnt else 0
            begin.append(b), end.append(e), strides.append(s)
            continue
        begin.append(draw(st.integers(-d - 2, d + 2))), end.append(draw(st.integers(-d - 2, d + 2)))
        strides.append(s)
        if draw(st.integers(0, 3)) == 0:
            masks["begin_mask"] |= 1 << i
        if draw(st.integers(0, 3)) == 0:
            masks["end_mask"] |= 1 << i
    if offset:
        masks["offset"] = 1
    return shape, begin, end, strides, masks


@given(strided_slice_configs(), st.sampled_from(DTYPES), st.integers(0, 2 ** 32 - 1))
def test_strided_slice(cfg, dtype, seed):
    shape, begin, end, strides, masks = cfg
    x = rand(np.random.default_rng(seed), shape, dtype)
    q = qp(0.05, 3) if dtype == np.int8 else None
    check_op("STRIDED_SLICE", [spec("x", shape, dtype, q), spec("b", None, np.int32, data=begin),
                               spec("e", None, np.int32, data=end), spec("s", None, np.int32, data=strides)],
             [spec("y", None, dtype, q)], [x], masks)


@pytest.mark.parametrize("begin,end,strides,masks", [
    ([0, -1], [0, 0], [1, 1], dict(shrink_axis_mask=2, begin_mask=1, end_mask=1)),   # x[:, -1]
    ([3], [0], [-1], {}),                                                             # x[3:0:-1]
    ([0, 0], [0, 0], [1, -1], dict(begin_mask=3, end_mask=3)),                         # x[:, ::-1]
    ([0, 1], [0, 3], [1, 1], dict(ellipsis_mask=1)),                                   # x[..., 1:3]
    ([0, 0, 1], [0, 0, 3], [1, 1, 1], dict(new_axis_mask=1, begin_mask=2, end_mask=2)),  # x[None, :, 1:3]
    ([1, 0], [2, 3], [1, 2], dict(offset=1)),
])
def test_strided_slice_cases(begin, end, strides, masks):
    x = np.arange(4 * 5, dtype=np.float32).reshape(4, 5)
    check_op("STRIDED_SLICE", [spec("x", x.shape, np.float32), spec("b", None, np.int32, data=begin),
                               spec("e", None, np.int32, data=end), spec("s", None, np.int32, data=strides)],
             [spec("y", None, np.float32)], [x], masks)


# ---- SPLIT / SPLIT_V / PACK / UNPACK -----------------------------------------------------------

@given(st.data())
def test_split(data):
    draw = data.draw
    shape = list(draw(shapes(1, 4, 4)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    num = draw(st.integers(1, 3))
    shape[axis] *= num
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    x = rand(rng_of(draw), shape, dtype)
    check_op("SPLIT", [spec("a", None, np.int32, data=axis), spec("x", shape, dtype, q)],
             [spec(f"y{k}", None, dtype, q) for k in range(num)], [x], {"num_splits": num})


@given(st.data())
def test_split_v(data):
    draw = data.draw
    shape = list(draw(shapes(1, 4, 4)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    if sum(sizes) == 0:
        sizes[0] = 1
    shape[axis] = sum(sizes)
    if draw(st.booleans()):
        sizes[draw(st.integers(0, len(sizes) - 1))] = -1
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    sdt = draw(st.sampled_from([np.int32, np.int64]))
    x = rand(rng_of(draw), shape, dtype)
    check_op("SPLIT_V", [spec("x", shape, dtype, q), spec("s", None, sdt, data=sizes),
                         spec("a", None, np.int32, data=axis)],
             [spec(f"y{k}", None, dtype, q) for k in range(len(sizes))], [x], {"num_splits": len(sizes)})


@given(st.data())
def test_pack(data):
    draw = data.draw
    rng = rng_of(draw)
    shape = draw(shapes(0, 4, 4))
    n = draw(st.integers(1, 4))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    check_op("PACK", [spec(f"x{k}", shape, dtype, q) for k in range(n)], [spec("y", None, dtype, q)],
             [rand(rng, shape, dtype) for _ in range(n)], {"values_count": n, "axis": axis})


@given(st.data())
def test_unpack(data):
    draw = data.draw
    shape = draw(shapes(1, 5, 4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    num = shape[axis]
    x = rand(rng_of(draw), shape, dtype)
    check_op("UNPACK", [spec("x", shape, dtype, q)], [spec(f"y{k}", None, dtype, q) for k in range(num)], [x],
             {"num": num, "axis": axis})


# ---- REVERSE_V2 / GATHER -----------------------------------------------------------------------

@given(st.data())
def test_reverse_v2(data):
    draw = data.draw
    shape = draw(shapes(1, 5, 4))
    rank = len(shape)
    first = draw(st.integers(0, rank - 1))
    count = draw(st.integers(1, rank - first))
    axes = [a - rank if draw(st.booleans()) else a for a in draw(st.permutations(range(first, first + count)))]
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    x = rand(rng_of(draw), shape, dtype)
    check_op("REVERSE_V2", [spec("x", shape, dtype, q), spec("a", None, np.int32, data=axes)],
             [spec("y", None, dtype, q)], [x])


@given(st.data())
def test_gather(data):
    draw = data.draw
    rng = rng_of(draw)
    shape = draw(shapes(1, 4, 5))
    rank = len(shape)
    axis = draw(st.integers(0, rank - 1))
    bd = draw(st.integers(0, min(axis, 2)))
    ishape = tuple(shape[:bd]) + draw(shapes(0, 2, 4))
    idt = draw(st.sampled_from([np.int16, np.int32, np.int64]))
    idx = rng.integers(0, shape[axis], ishape).astype(idt)
    dtype = draw(st.sampled_from(DTYPES))
    q = quant_for(draw, dtype)
    opts = {"axis": axis - rank if draw(st.booleans()) else axis, "batch_dims": bd}
    x = rand(rng, shape, dtype)
    if draw(st.booleans()):
        ins, feeds = [spec("x", shape, dtype, q), spec("i", None, idt, data=idx)], [x]
    else:
        ins, feeds = [spec("x", shape, dtype, q), spec("i", ishape, idt)], [x, idx]
    check_op("GATHER", ins, [spec("y", None, dtype, q)], feeds, opts)


@pytest.mark.parametrize("bad", [-1, 4, 100])
def test_gather_out_of_range_index_raises_at_run_time(bad):
    ins = [spec("x", (4, 3), np.float32), spec("i", (2,), np.int32)]
    it = Interpreter(model_content=one_op_model("GATHER", ins, [spec("y", (2, 3), np.float32)], {"axis": 0}))
    x = np.ones((4, 3), np.float32)
    it(x, np.array([1, 2], np.int32))
    with pytest.raises(XnnError, match="out of range"):
        it(x, np.array([1, bad], np.int32))


def test_gather_constant_out_of_range_index_rejected_at_load():
    ins = [spec("x", (4, 3), np.float32), spec("i", None, np.int32, data=[0, 4])]
    expect_reject("GATHER", ins, [spec("y", (2, 3), np.float32)], {"axis": 0}, "out of range")


# ---- rejection of unsupported configurations ---------------------------------------------------

def test_rejects_unsupported_configs():
    f = np.float32
    x23 = spec("x", (2, 3), f)
    expect_reject("CONCATENATION", [x23, x23], [spec("y", (2, 6), f)], {"axis": 1, "fused_activation_function": 1},
                  "fused activation")
    expect_reject("CONCATENATION", [x23, spec("z", (3, 3), f)], [spec("y", (2, 6), f)], {"axis": 1}, "differ")
    expect_reject("TRANSPOSE", [x23, spec("p", None, np.int32, data=[0, 0])], [spec("y", (2, 3), f)],
                  match="permutation")
    expect_reject("TRANSPOSE", [x23, spec("p", (2,), np.int32)], [spec("y", (3, 2), f)], match="constant")
    expect_reject("PAD", [x23, spec("p", None, np.int32, data=[[0, -1], [0, 0]])], [spec("y", (2, 3), f)],
                  match="negative")
    expect_reject("STRIDED_SLICE", [x23, spec("b", None, np.int32, data=[1]), spec("e", None, np.int32, data=[2]),
                                    spec("s", None, np.int32, data=[-1])], [spec("y", (3,), f)],
                  {"shrink_axis_mask": 1}, "shrink")
    expect_reject("STRIDED_SLICE", [x23, spec("b", None, np.int32, data=[0]), spec("e", None, np.int32, data=[1]),
                                    spec("s", None, np.int32, data=[0])], [spec("y", (0, 3), f)], match="non-zero")
    expect_reject("REVERSE_V2", [spec("x", (2, 3, 4), f), spec("a", None, np.int32, data=[0, 2])],
                  [spec("y", (2, 3, 4), f)], match="contiguous")
    q1, q2 = qp(0.1, 0), qp(0.2, 0)
    expect_reject("PACK", [spec("a", (2,), np.int8, q1), spec("b", (2,), np.int8, q2)],
                  [spec("y", (2, 2), np.int8, q1)],
                  {"values_count": 2, "axis": 0}, "quantized")
    expect_reject("SPLIT", [spec("a", None, np.int32, data=1), x23], [spec("y0", (2, 1), f), spec("y1", (2, 1), f)],
                  {"num_splits": 2}, "equal parts")
    expect_reject("SQUEEZE", [x23], [spec("y", (2, 3), f)], {"squeeze_dims": [0]}, "squeeze")
    expect_reject("SLICE", [x23, spec("b", None, np.int32, data=[1, 0]), spec("s", None, np.int32, data=[2, 1])],
                  [spec("y", (2, 1), f)], match="out of range")
