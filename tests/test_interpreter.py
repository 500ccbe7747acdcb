"""Interpreter mechanics: memory plan, tensor access, trace output."""
import numpy as np
from hypothesis import given, strategies as st

import xnn
from oracle import one_op_model, spec
from xnn.interpreter import plan_memory
from xnn.ir import Graph, Node, TensorSpec


@st.composite
def dags(draw):
    """Random DAGs: each node reads 1-2 earlier tensors and writes one new tensor."""
    n_nodes = draw(st.integers(1, 12))
    tensors = [TensorSpec("in", (draw(st.integers(1, 64)),), np.dtype(np.float32))]
    nodes = []
    for i in range(n_nodes):
        k = draw(st.integers(1, min(2, len(tensors))))
        ins = tuple(sorted(set(draw(st.lists(st.integers(0, len(tensors) - 1), min_size=k, max_size=k)))))
        dtype = draw(st.sampled_from([np.int8, np.float32, np.int16]))
        tensors.append(TensorSpec(f"t{i}", (draw(st.integers(1, 64)),), np.dtype(dtype)))
        nodes.append(Node("X", ins, (len(tensors) - 1,)))
    outs = tuple(sorted(set(draw(st.lists(st.integers(1, len(tensors) - 1), min_size=1, max_size=2)))))
    return Graph(tuple(tensors), tuple(nodes), (0,), outs)


@given(dags())
def test_memory_plan_never_overlaps_live_tensors(g):
    shapes = {i: t.shape for i, t in enumerate(g.tensors)}
    offsets, size = plan_memory(g, shapes)
    end = len(g.nodes)
    life = {0: [-1, end]}
    for i, n in enumerate(g.nodes):
        for t in n.inputs:
            life[t][1] = max(life[t][1], i)
        for t in n.outputs:
            life[t] = [i, i]
    for t in g.outputs:
        life[t][1] = end
    assert set(offsets) == set(life)
    span = {t: (offsets[t], offsets[t] + g.tensors[t].nbytes) for t in offsets}
    for a in offsets:
        assert span[a][1] <= size
        for b in offsets:
            if a < b and not (life[a][1] < life[b][0] or life[b][1] < life[a][0]):
                assert span[a][1] <= span[b][0] or span[b][1] <= span[a][0], (a, b)
    assert size <= sum(g.tensors[t].nbytes + 64 for t in offsets)


def test_arena_reuses_memory_on_real_model():
    import os

    path = os.path.join(os.path.dirname(__file__), "fixtures", "detector_int8.tflite")
    it = xnn.Interpreter(model_path=path)
    total = sum(t.nbytes for t in it.graph.tensors if t.data is None)
    assert 0 < it.arena_bytes < total


def test_get_tensor_returns_a_copy():
    it = xnn.Interpreter(model_content=one_op_model(
        "RESHAPE", [spec("x", (2, 3), np.float32), spec("s", None, np.int32, data=[3, 2])],
        [spec("y", (3, 2), np.float32)]))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = it(x)[0]
    y[...] = -1
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]), x.reshape(3, 2))


def test_trace_prints_every_node(monkeypatch, capsys):
    monkeypatch.setenv("XNN_TRACE", "1")
    it = xnn.Interpreter(model_content=one_op_model(
        "TRANSPOSE", [spec("x", (2, 3), np.float32), spec("p", None, np.int32, data=[1, 0])],
        [spec("y", (3, 2), np.float32)]))
    it(np.zeros((2, 3), np.float32))
    assert "#0 TRANSPOSE" in capsys.readouterr().out


def test_reshape_becomes_a_view_and_leaves_the_plan():
    import os

    path = os.path.join(os.path.dirname(__file__), "fixtures", "classifier_int8.tflite")
    it = xnn.Interpreter(model_path=path)
    n_reshape = sum(n.op == "RESHAPE" for n in it.graph.nodes)
    assert n_reshape >= 1
    assert len(it._plan) == len(it.graph.nodes) - n_reshape
    for n in it.graph.nodes:
        if n.op == "RESHAPE":
            assert np.shares_memory(it._arrays[n.inputs[0]], it._arrays[n.outputs[0]])


def test_input_set_once_survives_repeated_invokes():
    """Arena reuse must never clobber a graph input: invoke twice on one set_tensor, same output."""
    import glob
    import os

    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "*.tflite"))):
        it = xnn.Interpreter(model_path=path)
        d = it.get_input_details()[0]
        rng = np.random.default_rng(0)
        x = (rng.integers(-128, 128, d["shape"]).astype(d["dtype"]) if d["dtype"] == np.int8
             else rng.uniform(0, 1, d["shape"]).astype(d["dtype"]))
        it.set_tensor(d["index"], x)
        it.invoke()
        first = [it.get_tensor(o["index"]) for o in it.get_output_details()]
        it.invoke()
        for a, o in zip(first, it.get_output_details()):
            np.testing.assert_array_equal(a, it.get_tensor(o["index"]), err_msg=path)
