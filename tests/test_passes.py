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
