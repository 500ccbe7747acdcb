"""Graph passes (xnn/converter/passes.py): channel-shuffle fusion and dead-node removal."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracle import qp, run_litert, spec
from xnn import Interpreter
from xnn.converter.passes import (default_passes, expand_channel_shuffle, fuse_channel_shuffle,
                                  remove_dead_nodes)
from xnn.converter.tflite_writer import write_tflite
from xnn.ir import Graph, Node, frozen_options
from xnn.ops import OPS


class G:
    """A tiny graph builder over the IR (tensor list + nodes)."""

    def __init__(self):
        self.tensors, self.nodes = [], []

    def t(self, name, shape, dtype, quant=None, data=None) -> int:
        self.tensors.append(spec(name, shape, dtype, quant, data))
        return len(self.tensors) - 1

    def op(self, op, ins, outs, **options):
        self.nodes.append(Node(op=op, inputs=tuple(ins), outputs=tuple(outs), options=frozen_options(options),
                               name=f"#{len(self.nodes)} {op}"))

    def graph(self, inputs, outputs) -> Graph:
        return Graph(tensors=tuple(self.tensors), nodes=tuple(self.nodes), inputs=tuple(inputs),
                     outputs=tuple(outputs))


def shuffle_graph(shape, groups, dtype, quant=None, perm=None, mid_quant=None):
    """x -> RESHAPE [..., g, C/g] -> TRANSPOSE(perm) -> RESHAPE back: returns (builder, x, t1, t2, y)."""
    b = G()
    c = shape[-1]
    s1 = tuple(shape[:-1]) + (groups, c // groups)
    rank = len(s1)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2] if perm is None else list(perm)
    s2 = tuple(s1[p] for p in perm)
    mq = quant if mid_quant is None else mid_quant
    x = b.t("x", shape, dtype, quant)
    t1 = b.t("t1", s1, dtype, mq)
    t2 = b.t("t2", s2, dtype, mq)
    y = b.t("y", shape, dtype, quant)
    b.op("RESHAPE", [x, b.t("s1", None, np.int32, data=list(s1))], [t1])
    b.op("TRANSPOSE", [t1, b.t("perm", None, np.int32, data=perm)], [t2])
    b.op("RESHAPE", [t2, b.t("s2", None, np.int32, data=list(shape))], [y])
    return b, x, t1, t2, y


def run_both(g: Graph, feeds):
    model = write_tflite(g)
    expect = run_litert(model, feeds)
    it = Interpreter(model_content=model)
    got = it(list(feeds))
    for a, e in zip(got, expect):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_array_equal(a, e)
    return it, got


def rand(rng, shape, dtype):
    if np.dtype(dtype) == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.standard_normal(shape).astype(dtype)


def ops_of(it):
    return [n.op for n in it.graph.nodes]


# ---- channel shuffle ---------------------------------------------------------------------------

@given(st.data())
def test_channel_shuffle_fused_and_exact(data):
    draw = data.draw
    lead = draw(st.lists(st.integers(1, 6), min_size=0, max_size=3))
    groups = draw(st.integers(1, 5))
    per = draw(st.integers(1, 9))
    shape = tuple(lead) + (groups * per,)
    dtype = draw(st.sampled_from([np.int8, np.float32]))
    quant = qp(draw(st.sampled_from([0.02, 0.1])), draw(st.integers(-128, 127))) if dtype == np.int8 else None
    b, x, _, _, y = shuffle_graph(shape, groups, dtype, quant)
    x_val = rand(np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))), shape, dtype)
    it, got = run_both(b.graph([x], [y]), [x_val])
    assert ops_of(it) == ["CHANNEL_SHUFFLE"]
    node = it.graph.nodes[0]
    assert node.inputs == (x,) and node.outputs == (y,) and node.options["groups"] == groups
    ref = OPS["CHANNEL_SHUFFLE"].reference(it.node_contexts[0], [x_val])[0]
    np.testing.assert_array_equal(got[0], ref)


@pytest.mark.parametrize("shape,groups", [((1, 28, 28, 116), 2), ((1, 7, 7, 240), 3), ((2, 5, 3, 64), 8),
                                          ((1, 4, 4, 36), 4)])
def test_channel_shuffle_model_sizes(shape, groups):
    b, x, _, _, y = shuffle_graph(shape, groups, np.int8, qp(0.05, 4))
    it, _ = run_both(b.graph([x], [y]), [rand(np.random.default_rng(1), shape, np.int8)])
    assert ops_of(it) == ["CHANNEL_SHUFFLE"]


def test_channel_shuffle_definition():
    """out[c] for c = i·g + j takes in[j·(C/g) + i]."""
    g, m = 3, 4
    x = np.arange(g * m, dtype=np.float32).reshape(1, 1, 1, g * m)
    b, xt, _, _, y = shuffle_graph(x.shape, g, np.float32)
    _, got = run_both(b.graph([xt], [y]), [x])
    expect = [j * m + i for i in range(m) for j in range(g)]
    np.testing.assert_array_equal(got[0].ravel(), np.array(expect, np.float32))


@pytest.mark.parametrize("perm", [(0, 1, 2, 3, 4), (0, 1, 3, 2, 4), (0, 2, 1, 4, 3)])
def test_channel_shuffle_other_perms_left_alone(perm):
    shape = (1, 3, 3, 12)
    b, x, _, _, y = shuffle_graph(shape, 3, np.float32, perm=perm)
    it, _ = run_both(b.graph([x], [y]), [rand(np.random.default_rng(2), shape, np.float32)])
    assert ops_of(it) == ["RESHAPE", "TRANSPOSE", "RESHAPE"]


@pytest.mark.parametrize("where", ["t1_output", "t2_output", "t1_reader", "t2_reader"])
def test_channel_shuffle_extra_consumers_left_alone(where):
    shape = (1, 2, 3, 8)
    b, x, t1, t2, y = shuffle_graph(shape, 2, np.int8, qp(0.1, 0))
    outputs = [y]
    if where == "t1_output":
        outputs.append(t1)
    elif where == "t2_output":
        outputs.append(t2)
    else:
        src = t1 if where == "t1_reader" else t2
        z = b.t("z", b.tensors[src].shape, np.int8, qp(0.1, 0))
        b.op("REVERSE_V2", [src, b.t("ax", None, np.int32, data=[1])], [z])
        outputs.append(z)
    it, _ = run_both(b.graph([x], outputs), [rand(np.random.default_rng(3), shape, np.int8)])
    assert "CHANNEL_SHUFFLE" not in ops_of(it)
    assert ops_of(it)[:3] == ["RESHAPE", "TRANSPOSE", "RESHAPE"]


def test_channel_shuffle_quant_change_left_alone():
    shape = (1, 2, 2, 6)
    b, x, _, _, y = shuffle_graph(shape, 2, np.int8, qp(0.1, 0), mid_quant=qp(0.2, 0))
    it, _ = run_both(b.graph([x], [y]), [rand(np.random.default_rng(4), shape, np.int8)])
    assert ops_of(it) == ["RESHAPE", "TRANSPOSE", "RESHAPE"]


def test_two_shuffles_in_sequence():
    shape = (1, 4, 4, 24)
    b = G()
    x = b.t("x", shape, np.float32)
    cur = x
    for k, g in enumerate((2, 3)):
        s1 = shape[:-1] + (g, 24 // g)
        t1 = b.t(f"a{k}", s1, np.float32)
        t2 = b.t(f"b{k}", shape[:-1] + (24 // g, g), np.float32)
        y = b.t(f"y{k}", shape, np.float32)
        b.op("RESHAPE", [cur, b.t(f"s{k}", None, np.int32, data=list(s1))], [t1])
        b.op("TRANSPOSE", [t1, b.t(f"p{k}", None, np.int32, data=[0, 1, 2, 4, 3])], [t2])
        b.op("RESHAPE", [t2, b.t(f"r{k}", None, np.int32, data=list(shape))], [y])
        cur = y
    it, _ = run_both(b.graph([x], [cur]), [rand(np.random.default_rng(5), shape, np.float32)])
    assert ops_of(it) == ["CHANNEL_SHUFFLE", "CHANNEL_SHUFFLE"]
    assert [n.options["groups"] for n in it.graph.nodes] == [2, 3]


def test_expand_channel_shuffle_round_trip():
    shape = (2, 3, 5, 12)
    b, x, _, _, y = shuffle_graph(shape, 4, np.int8, qp(0.1, -3))
    fused = fuse_channel_shuffle(b.graph([x], [y]))
    assert [n.op for n in fused.nodes] == ["CHANNEL_SHUFFLE"]
    plain = expand_channel_shuffle(fused)
    assert [n.op for n in plain.nodes] == ["RESHAPE", "TRANSPOSE", "RESHAPE"]
    x_val = rand(np.random.default_rng(7), shape, np.int8)
    it, got = run_both(plain, [x_val])  # LiteRT runs the expanded model; xnn fuses it again
    assert ops_of(it) == ["CHANNEL_SHUFFLE"]
    it0, _ = run_both(b.graph([x], [y]), [x_val])
    np.testing.assert_array_equal(got[0], it0(x_val)[0])
    assert expand_channel_shuffle(plain) is plain


# ---- dead nodes --------------------------------------------------------------------------------

def test_dead_nodes_removed():
    b = G()
    x = b.t("x", (2, 3, 4), np.float32)
    y = b.t("y", (4, 3, 2), np.float32)
    d1 = b.t("d1", (2, 4, 3), np.float32)
    d2 = b.t("d2", (2, 4, 3), np.float32)
    b.op("TRANSPOSE", [x, b.t("p1", None, np.int32, data=[0, 2, 1])], [d1])      # dead
    b.op("TRANSPOSE", [x, b.t("p2", None, np.int32, data=[2, 1, 0])], [y])       # live
    b.op("REVERSE_V2", [d1, b.t("ax", None, np.int32, data=[0])], [d2])          # dead (reads dead)
    g = b.graph([x], [y])
    assert [n.op for n in remove_dead_nodes(g).nodes] == ["TRANSPOSE"]
    assert remove_dead_nodes(g).nodes[0].outputs == (y,)
    it, _ = run_both(g, [rand(np.random.default_rng(6), (2, 3, 4), np.float32)])
    assert ops_of(it) == ["TRANSPOSE"]


def test_dead_node_removal_keeps_live_chain_and_side_effects():
    b = G()
    x = b.t("x", (2, 3), np.float32)
    a = b.t("a", (3, 2), np.float32)
    y = b.t("y", (6,), np.float32)
    st_ = b.t("state", (2, 3), np.float32)
    b.tensors[st_] = replace(b.tensors[st_], is_variable=True)
    b.op("TRANSPOSE", [x, b.t("p", None, np.int32, data=[1, 0])], [a])
    b.op("RESHAPE", [a, b.t("s", None, np.int32, data=[6])], [y])
    b.op("ASSIGN_VARIABLE", [st_, x], [])           # no outputs: side effect, kept
    b.op("CUSTOM:stateful", [st_], [b.t("u", (2, 3), np.float32)])  # touches state: kept
    g = b.graph([x], [y])
    assert [n.op for n in remove_dead_nodes(g).nodes] == ["TRANSPOSE", "RESHAPE", "ASSIGN_VARIABLE",
                                                          "CUSTOM:stateful"]
    unchanged = G()
    ux = unchanged.t("x", (2,), np.float32)
    uy = unchanged.t("y", (2,), np.float32)
    unchanged.op("RESHAPE", [ux, unchanged.t("s", None, np.int32, data=[2])], [uy])
    ug = unchanged.graph([ux], [uy])
    assert remove_dead_nodes(ug) is ug and fuse_channel_shuffle(ug) is ug


def test_default_passes_listed():
    assert remove_dead_nodes in default_passes() and fuse_channel_shuffle in default_passes()


# ---- activation fusion -------------------------------------------------------------------------

from xnn.converter.passes import FUSABLE_PRODUCERS, eliminate_quantize_pairs, fuse_activations  # noqa: E402

ACT_CODES = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
_ACT_BOUNDS = {"RELU": (0.0, None), "RELU_N1_TO_1": (-1.0, 1.0), "RELU6": (0.0, 6.0)}


def producer_graph(op, dtype, act="RELU", prior_act=0, y_quant=None, extra=None):
    """x -> `op` (fused activation `prior_act`) -> mid -> `act` -> y; returns (builder, x, mid, y).

    int8: per-channel symmetric weights, int32 bias; mid and y share quantization unless `y_quant`
    says otherwise (pooling keeps the input's, as it must). `extra` adds a second reader of mid."""
    b = G()
    rng = np.random.default_rng(len(op) * 7 + (dtype == np.int8))
    hybrid = dtype == "hybrid"  # float32 activations, int8 weights (dynamic-range model)
    dtype = np.float32 if hybrid else dtype
    q8 = dtype == np.int8
    qx, qm = (qp(0.05, 3), qp(0.1, -10)) if q8 else (None, None)
    xshape = (2, 12) if op == "FULLY_CONNECTED" else (1, 6, 6, 3)
    x = b.t("x", xshape, dtype, qx)
    ins, opts = [x], {"fused_activation_function": prior_act}

    def weights(shape, axis):
        oc = shape[axis]
        if hybrid:
            sw = rng.uniform(0.005, 0.02, oc).astype(np.float32)
            w = b.t("w", None, np.int8, qp(sw, 0, axis), rng.integers(-127, 128, shape).astype(np.int8))
            return w, b.t("bias", None, np.float32, data=rng.normal(0, 0.5, oc).astype(np.float32))
        if not q8:
            w = b.t("w", None, np.float32, data=rng.normal(0, 0.5, shape).astype(np.float32))
            return w, b.t("bias", None, np.float32, data=rng.normal(0, 0.5, oc).astype(np.float32))
        sw = rng.uniform(0.005, 0.02, oc).astype(np.float32)
        w = b.t("w", None, np.int8, qp(sw, 0, axis), rng.integers(-127, 128, shape).astype(np.int8))
        bias = b.t("bias", None, np.int32, qp(sw * np.float32(0.05), 0),
                   rng.integers(-2000, 2000, oc).astype(np.int32))
        return w, bias

    if op == "CONV_2D":
        ins += weights((4, 3, 3, 3), 0)
        opts.update(padding=0, stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1)
        mshape = (1, 6, 6, 4)
    elif op == "DEPTHWISE_CONV_2D":
        ins += weights((1, 3, 3, 6), 3)
        opts.update(padding=0, stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1,
                    depth_multiplier=2)
        mshape = (1, 6, 6, 6)
    elif op == "FULLY_CONNECTED":
        ins += weights((5, 12), 0)
        opts.update(keep_num_dims=False)
        mshape = (2, 5)
    elif op in ("ADD", "SUB", "MUL"):
        other = rng.normal(0, 2, (1, 1, 1, 3)).astype(np.float32)
        if q8:
            ins.append(b.t("c", None, np.int8, qp(0.03, 1), rng.integers(-128, 128, (1, 1, 1, 3)).astype(np.int8)))
        else:
            ins.append(b.t("c", None, np.float32, data=other))
        mshape = xshape
    else:  # pooling
        opts.update(padding=1, stride_h=2, stride_w=2, filter_height=2, filter_width=2)
        qm = qx
        mshape = (1, 3, 3, 3)
    mid = b.t("mid", mshape, dtype, qm)
    y = b.t("y", mshape, dtype, qm if y_quant is None else y_quant)
    b.op(op, ins, [mid], **opts)
    b.op(act, [mid], [y])
    if extra == "reader":
        z = b.t("z", mshape, dtype, qm)
        b.op("RELU6" if act != "RELU6" else "RELU", [mid], [z])
        return b, x, mid, y, z
    return b, x, mid, y, None


def _feed(b, x, dtype, rng):
    shape = b.tensors[x].shape
    dtype = b.tensors[x].dtype
    if dtype == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return (rng.normal(0, 4, shape)).astype(np.float32)


def _unfused(model, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("XNN_NO_FUSE", "1")
        return Interpreter(model_content=model)


@pytest.mark.parametrize("op,dtype", [(op, dt) for op in sorted(FUSABLE_PRODUCERS) for dt in (np.int8, np.float32)]
                         + [(op, "hybrid") for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")],
                         ids=lambda v: v if isinstance(v, str) else np.dtype(v).name)
def test_activation_fused_into_producer_and_exact(op, dtype, monkeypatch):
    act = sorted(ACT_CODES)[(len(op) + (dtype == np.int8) + 2 * (dtype == "hybrid")) % 3]
    b, x, _, y, _ = producer_graph(op, dtype, act)
    g = b.graph([x], [y])
    fused = fuse_activations(g)
    assert [n.op for n in fused.nodes] == [op]
    assert fused.nodes[0].outputs == (y,) and fused.nodes[0].options["fused_activation_function"] == ACT_CODES[act]
    assert fuse_activations(fused) is fused
    model = write_tflite(g)
    feed = _feed(b, x, dtype, np.random.default_rng(11))
    it = Interpreter(model_content=model)
    assert ops_of(it) == [op]
    got = it(feed)[0]
    plain = _unfused(model, monkeypatch)
    assert ops_of(plain) == [op, act]
    np.testing.assert_array_equal(got, plain(feed)[0])  # same kernels, one clamp instead of two
    expect = run_litert(model, [feed])[0]
    if dtype == np.int8:
        np.testing.assert_array_equal(got, expect)
    else:
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-4)
        assert any(np.any(got == v) for v in _ACT_BOUNDS[act] if v is not None)  # the clamp did something


@pytest.mark.parametrize("prior,act,result", [(1, "RELU6", 3), (3, "RELU", 3), (0, "RELU_N1_TO_1", 2),
                                              (2, "RELU_N1_TO_1", 2), (1, "RELU_N1_TO_1", None),
                                              (3, "RELU_N1_TO_1", None), (4, "RELU", None)])
def test_activation_composition(prior, act, result):
    b, x, _, y, _ = producer_graph("CONV_2D", np.float32, act, prior_act=prior)
    fused = fuse_activations(b.graph([x], [y]))
    if result is None:
        assert [n.op for n in fused.nodes] == ["CONV_2D", act]
    else:
        assert [n.op for n in fused.nodes] == ["CONV_2D"]
        assert fused.nodes[0].options["fused_activation_function"] == result


def test_activation_chain_fuses_in_one_call(monkeypatch):
    b, x, mid, y, _ = producer_graph("CONV_2D", np.int8, "RELU")
    y2 = b.t("y2", b.tensors[y].shape, np.int8, b.tensors[y].quant)
    b.op("RELU6", [y], [y2])
    g = b.graph([x], [y2])
    fused = fuse_activations(g)
    assert [n.op for n in fused.nodes] == ["CONV_2D"] and fused.nodes[0].options["fused_activation_function"] == 3
    assert fused.nodes[0].outputs == (y2,)
    feed = _feed(b, x, np.int8, np.random.default_rng(3))
    it, _ = run_both(g, [feed])
    assert ops_of(it) == ["CONV_2D"]


@pytest.mark.parametrize("case", ["requantizing", "second_reader", "mid_is_output", "not_producer",
                                  "unknown_prior"])
def test_activation_left_alone(case, monkeypatch):
    if case == "requantizing":  # int8 RELU whose output scale differs: it rescales, not just clamps
        b, x, mid, y, _ = producer_graph("CONV_2D", np.int8, "RELU", y_quant=qp(0.05, -10))
        outputs = [y]
    elif case == "second_reader":
        b, x, mid, y, z = producer_graph("ADD", np.int8, "RELU", extra="reader")
        outputs = [y, z]
    elif case == "mid_is_output":
        b, x, mid, y, _ = producer_graph("FULLY_CONNECTED", np.float32, "RELU6")
        outputs = [y, mid]
    elif case == "not_producer":  # CONCATENATION's kernel takes no fused activation
        b = G()
        x = b.t("x", (1, 2, 3), np.float32)
        mid = b.t("mid", (1, 2, 6), np.float32)
        y = b.t("y", (1, 2, 6), np.float32)
        b.op("CONCATENATION", [x, x], [mid], axis=2, fused_activation_function=0)
        b.op("RELU", [mid], [y])
        outputs = [y]
    else:  # a fused TANH (code 4) does not compose with a clamp into one code
        b, x, mid, y, _ = producer_graph("MUL", np.float32, "RELU", prior_act=4)
        g = b.graph([x], [y])
        assert fuse_activations(g) is g
        return
    g = b.graph([x], outputs)
    assert fuse_activations(g) is g
    dtype = b.tensors[x].dtype
    feed = _feed(b, x, dtype, np.random.default_rng(5))
    model = write_tflite(g)
    it = Interpreter(model_content=model)
    assert len(it.graph.nodes) == len(g.nodes)
    if dtype == np.int8:
        for a, e in zip(it(feed), run_litert(model, [feed])):
            np.testing.assert_array_equal(a, e)


# ---- quantize / dequantize pairs ---------------------------------------------------------------

def qdq_graph(dtype=np.int8, q_in=None, q_out=None, dq_reader=False, q_is_output=False):
    """x (int) -> DEQUANTIZE -> f -> QUANTIZE -> y -> RELU -> z; optionally f also feeds a TANH."""
    q_in = q_in or qp(0.07, 5)
    q_out = q_out or q_in
    b = G()
    shape = (2, 3, 7)
    x = b.t("x", shape, dtype, q_in)
    f = b.t("f", shape, np.float32)
    y = b.t("y", shape, dtype, q_out)
    z = b.t("z", shape, dtype, q_out)
    b.op("DEQUANTIZE", [x], [f])
    b.op("QUANTIZE", [f], [y])
    b.op("RELU", [y], [z])
    outputs = [z]
    if dq_reader:
        u = b.t("u", shape, np.float32)
        b.op("TANH", [f], [u])
        outputs.append(u)
    if q_is_output:
        outputs.append(y)
    return b, x, b.graph([x], outputs)


def _int_feed(shape, dtype, seed=0):
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max + 1, shape).astype(dtype)


@pytest.mark.parametrize("dtype,quant", [(np.int8, qp(0.07, 5)), (np.int8, qp(1e-3, -128)),
                                         (np.uint8, qp(0.3, 200)), (np.int8, qp(123.0, 0))])
def test_dequantize_quantize_pair_removed_and_exact(dtype, quant):
    b, x, g = qdq_graph(dtype, quant)
    out = eliminate_quantize_pairs(g)
    assert [n.op for n in out.nodes] == ["RELU"] and out.nodes[0].inputs == (x,)
    assert eliminate_quantize_pairs(out) is out
    feed = _int_feed((2, 3, 7), dtype)
    it, _ = run_both(g, [feed])
    assert ops_of(it) == ["RELU"]


def test_pair_with_other_dequantize_reader_keeps_dequantize():
    b, x, g = qdq_graph(dq_reader=True)
    assert [n.op for n in eliminate_quantize_pairs(g).nodes] == ["DEQUANTIZE", "RELU", "TANH"]


@pytest.mark.parametrize("case", ["different_scale", "different_zero_point", "graph_output"])
def test_pair_left_alone(case):
    kw = {"different_scale": dict(q_out=qp(0.08, 5)), "different_zero_point": dict(q_out=qp(0.07, 4)),
          "graph_output": dict(q_is_output=True)}[case]
    b, x, g = qdq_graph(**kw)
    assert eliminate_quantize_pairs(g) is g
    run_both(g, [_int_feed((2, 3, 7), np.int8, 1)])


def test_quantize_dequantize_is_not_removed():
    """QUANTIZE then DEQUANTIZE rounds floats to the grid: not an identity, never removed."""
    b = G()
    x = b.t("x", (4,), np.float32)
    q = b.t("q", (4,), np.int8, qp(0.5, 0))
    y = b.t("y", (4,), np.float32)
    b.op("QUANTIZE", [x], [q])
    b.op("DEQUANTIZE", [q], [y])
    g = b.graph([x], [y])
    assert eliminate_quantize_pairs(g) is g
    _, got = run_both(g, [np.array([0.2, 0.3, -1.26, 100.0], np.float32)])
    np.testing.assert_array_equal(got[0], [0.0, 0.5, -1.5, 63.5])


def test_identity_requantize_removed():
    b = G()
    x = b.t("x", (3, 5), np.int8, qp(0.02, -7))
    y = b.t("y", (3, 5), np.int8, qp(0.02, -7))
    z = b.t("z", (3, 5), np.int8, qp(0.02, -7))
    b.op("QUANTIZE", [x], [y])
    b.op("RELU6", [y], [z])
    g = b.graph([x], [z])
    out = eliminate_quantize_pairs(g)
    assert [n.op for n in out.nodes] == ["RELU6"] and out.nodes[0].inputs == (x,)
    run_both(g, [_int_feed((3, 5), np.int8, 2)])


def test_new_passes_in_default_passes():
    assert eliminate_quantize_pairs in default_passes() and fuse_activations in default_passes()
