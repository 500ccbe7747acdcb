"""Bidirectional LSTMs (xnn/kernels/lstm.py, xnn/converter/passes.py).

1. tf_keras' Bidirectional(LSTM) pattern (REVERSE_V2 → LSTM → REVERSE_V2, LSTM, CONCATENATION) is
   fused into one BIDI_SEQUENCE_LSTM node: the fixture models and random patterns in all three
   forms give the same outputs fused and unfused (XNN_NO_FUSE=1; int8 and hybrid identical, float
   within 1e-6) and as LiteRT BUILTIN_REF; near misses stay unfused.
2. The builtin BIDIRECTIONAL_SEQUENCE_LSTM (float32 and hybrid; LiteRT has no integer form) against
   LiteRT BUILTIN_REF and the NumPy reference, merged and separate outputs, both layouts.
Every model is invoked twice on one interpreter so the variable state is carried, as LiteRT does.
"""
from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracle import run_litert
from test_ops_lstm import (ACTS, FLOAT_TOL, HYBRID_MOSTLY_EXACT, HYBRID_TOL, Q_TF, build_parts,
                           feeds_for, qp)
from xnn import Interpreter, XnnError
from xnn.converter.passes import expand_bidirectional_lstm, fuse_bidirectional_lstm
from xnn.converter.tflite_writer import write_tflite
from xnn.ir import Graph, Node, TensorSpec, frozen_options
from xnn.ops import OPS

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
NATIVE = "BIDIRECTIONAL_SEQUENCE_LSTM"
FUSED = "BIDI_SEQUENCE_LSTM"
FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "seq",
                                         "crnn_bilstm_*.tflite")))
FUSE_TOL = dict(rtol=1e-6, atol=1e-6)  # float: fused vs unfused xnn (BLAS row order may differ)


@contextlib.contextmanager
def fusing(on: bool):
    """XNN_NO_FUSE set for the duration (read by converter.passes.default_passes at load)."""
    old = os.environ.get("XNN_NO_FUSE")
    os.environ["XNN_NO_FUSE"] = "0" if on else "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["XNN_NO_FUSE"]
        else:
            os.environ["XNN_NO_FUSE"] = old


def load(model, fuse=True):
    with fusing(fuse):
        return Interpreter(model_content=model)


def ops_of(it):
    return [n.op for n in it.graph.nodes]


def run_litert_seq(model, feeds):
    """LiteRT BUILTIN_REF on one interpreter: list (per invoke) of output lists."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    it = LiteRT(model_content=model, num_threads=1,
                experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    outs = []
    for f in feeds:
        for d, v in zip(it.get_input_details(), f if isinstance(f, list) else [f]):
            it.set_tensor(d["index"], v)
        it.invoke()
        outs.append([it.get_tensor(d["index"]) for d in it.get_output_details()])
    return outs


def compare(got, exp, form, what):
    assert got.shape == exp.shape and got.dtype == exp.dtype, what
    if form == "int8":
        np.testing.assert_array_equal(got, exp, err_msg=what)
    elif form == "float":
        np.testing.assert_allclose(got, exp, err_msg=what, **FLOAT_TOL)
    else:
        np.testing.assert_allclose(got, exp, err_msg=what, **HYBRID_TOL)
        close = np.isclose(got, exp, **FLOAT_TOL).mean()
        assert close >= HYBRID_MOSTLY_EXACT, f"{what}: only {close:.0%} of elements within 1e-5"


# ---- 1. the tf_keras pattern, fused ------------------------------------------------------------

@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p)[:-7] for p in FIXTURES])
def test_fixture_fused_matches_unfused(path):
    model = open(path, "rb").read()
    fused, plain = load(model), load(model, fuse=False)
    assert ops_of(fused).count(FUSED) == 1
    assert not {"REVERSE_V2", "CONCATENATION", LSTM} & set(ops_of(fused))
    assert ops_of(plain).count(LSTM) == 2 and FUSED not in ops_of(plain)
    # each direction's state stays a variable tensor of the fused node
    node = next(n for n in fused.graph.nodes if n.op == FUSED)
    states = [node.inputs[k] for k in (18, 19, 42, 43)]
    assert all(fused.graph.tensors[t].is_variable for t in states)
    before = [fused.get_tensor(t) for t in states]
    int8 = fused.get_output_details()[0]["dtype"] == np.int8
    rng = np.random.default_rng(0)
    d = fused.get_input_details()[0]
    xs = [rng.integers(-128, 128, d["shape"]).astype(np.int8) if d["dtype"] == np.int8
          else rng.uniform(0, 1, d["shape"]).astype(np.float32) for _ in range(2)]
    got = [fused(x)[0] for x in xs]  # the second invoke starts from the first one's state
    exp = [plain(x)[0] for x in xs]
    for g, e in zip(got, exp):
        if int8 or "dynamic" in path:
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, **FUSE_TOL)
    after = [fused.get_tensor(t) for t in states]
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))  # every state moved on
    fused.reset_all_variables()
    for t, b in zip(states, before):
        np.testing.assert_array_equal(fused.get_tensor(t), b)
    np.testing.assert_array_equal(fused(xs[0])[0], got[0])
    lite = run_litert(model, [xs[0]])[0]
    if int8:
        np.testing.assert_array_equal(got[0], lite)
    else:
        rtol = 2e-2 if "dynamic" in path else 1e-4  # whole-model tolerances of test_models.py
        np.testing.assert_allclose(got[0], lite, rtol=rtol, atol=1e-5)


def keras_bidi_graph(rng, form, *, nc_bw=None, variant=None, bw_out_scale=1.0, **kw):
    """The converter's Bidirectional(LSTM) subgraph as a Graph, optionally spoiled by `variant`.
    bw_out_scale (int8) rescales the backward LSTM's own output tensor, as the TF converter does
    (its REVERSE_V2 then passes the raw bytes on under the concatenation's quantization).

    Returns (graph, x shape)."""
    tm = kw.get("time_major", False)
    fw = build_parts(rng, form, **kw)
    bkw = dict(kw)
    if nc_bw is not None:
        bkw["nc"] = nc_bw
        bkw["proj"] = None
    bw = build_parts(rng, form, **bkw)
    tensors = []

    def add(spec, name=None):
        tensors.append(spec if name is None else replace(spec, name=name))
        return len(tensors) - 1

    x = add(fw["x"])
    x_other = add(replace(fw["x"], name="x_other")) if variant == "different_inputs" else x
    ta = 0 if tm else 1
    axis = add(TensorSpec("time_axis", (1,), np.dtype(np.int32),
                          data=np.array([2 if variant == "feature_axis" else ta], np.int32)))
    xr_spec = fw["x"]
    if variant == "x_requant":
        xr_spec = replace(xr_spec, quant=qp(xr_spec.quant.s * 2, xr_spec.quant.zp))
    xr = add(xr_spec, "x_reversed")

    def lstm(parts, inp, tag, out_scale=1.0):
        idx = [inp] + [-1] * 23
        for k, spec in parts["slots"].items():
            idx[k] = add(spec, f"{tag}_{spec.name}")
        y = parts["y"]
        if out_scale != 1.0:
            y = replace(y, quant=qp(y.quant.s * out_scale, y.quant.zp - 3))
        out = add(y, f"{tag}_out")
        inter = tuple(add(s, f"{tag}_{s.name}") for s in parts["inter"])
        node = Node(op=LSTM, inputs=tuple(idx), outputs=(out,),
                    options=frozen_options(parts["options"]), name=f"{tag} {LSTM}",
                    intermediates=inter)
        return node, out

    bw_node, bw_out = lstm(bw, xr, "bw", bw_out_scale)
    bwr = add(bw["y"], "bw_reversed")
    fw_node, fw_out = lstm(fw, x_other, "fw")
    y = fw["y"]
    width = fw["y"].shape[2] + bw["y"].shape[2]
    y = replace(y, name="y", shape=tuple(y.shape[:2]) + (width,))
    if variant == "concat_requant":
        y = replace(y, quant=qp(y.quant.s * 1.5, y.quant.zp))
    y = add(y)
    cat_in = (bwr, fw_out) if variant == "swapped" else (fw_out, bwr)
    nodes = [Node(op="REVERSE_V2", inputs=(x, axis), outputs=(xr,), name="r1 REVERSE_V2"), bw_node,
             Node(op="REVERSE_V2", inputs=(bw_out, axis), outputs=(bwr,), name="r2 REVERSE_V2"),
             fw_node,
             Node(op="CONCATENATION", inputs=cat_in, outputs=(y,),
                  options=frozen_options({"axis": -1 if variant == "axis_minus_1" else 2,
                                          "fused_activation_function": 0}), name="c CONCATENATION")]
    inputs = (x, x_other) if x_other != x else (x,)
    outputs = (y,)
    if variant == "extra_output":
        outputs = (y, bwr)
    if variant == "extra_reader":
        extra = add(replace(fw["x"], name="x_reversed_copy"))
        nodes.append(Node(op="REVERSE_V2", inputs=(xr, axis), outputs=(extra,),
                          name="r3 REVERSE_V2"))
        outputs = (y, extra)
    graph = Graph(tensors=tuple(tensors), nodes=tuple(nodes), inputs=inputs, outputs=outputs)
    return graph, fw["x"].shape


def q_for(form):
    return dict(Q_TF, cs=-12) if form == "int8" else None


def check_fused(graph, shape, form, rng, expect_fused=True, litert=True):
    """Fused xnn == unfused xnn (exact except float: 1e-6) and both match LiteRT, over 2 invokes."""
    model = write_tflite(graph)
    fused, plain = load(model), load(model, fuse=False)
    assert (FUSED in ops_of(fused)) == expect_fused, ops_of(fused)
    if expect_fused:
        assert ops_of(fused) == [FUSED]
    n_in = len(graph.inputs)
    feeds = [feeds_for(rng, form, shape, n=n_in) for _ in range(2)]
    got = [fused(f) for f in feeds]
    exp = [plain(f) for f in feeds]
    lite = run_litert_seq(model, feeds) if litert else exp
    for k in range(2):
        for g, e, l in zip(got[k], exp[k], lite[k]):
            if form == "float":
                np.testing.assert_allclose(g, e, err_msg=f"invoke {k} fused vs unfused", **FUSE_TOL)
            else:
                np.testing.assert_array_equal(g, e, err_msg=f"invoke {k} fused vs unfused")
            compare(g, l, form, f"invoke {k} vs LiteRT")
    if expect_fused:  # the reference of the fused node reproduces the first invoke
        ctx = fused.node_contexts[0]
        ins = [None if t < 0 else fused.graph.tensors[t].data for t in ctx.node.inputs]
        ins[0] = ins[24] = feeds[0][0]
        ref = OPS[FUSED].reference(ctx, ins)[0]
        if form == "float":
            np.testing.assert_allclose(got[0][0], ref, **FLOAT_TOL)
        elif form == "hybrid":
            np.testing.assert_allclose(got[0][0], ref, **HYBRID_TOL)
        else:
            np.testing.assert_array_equal(got[0][0], ref)
    return fused


def shapes(draw):
    proj = draw(st.one_of(st.none(), st.integers(1, 6)))
    return dict(T=draw(st.integers(1, 5)), B=draw(st.integers(1, 3)), ni=draw(st.integers(1, 9)),
                nc=draw(st.integers(1, 9)), proj=proj, proj_bias=bool(proj) and draw(st.booleans()),
                cifg=draw(st.booleans()), time_major=draw(st.booleans()))


@given(st.data())
def test_fused_pattern_random(data):
    draw = data.draw
    form = draw(st.sampled_from(["float", "hybrid", "int8"]))
    kw = shapes(draw)
    kw.update(act=draw(st.sampled_from(sorted(ACTS))) if form != "int8" else "TANH",
              cell_clip=draw(st.sampled_from([0.0, 1.0, 3.0])))
    if form == "hybrid":
        kw["asym"] = draw(st.booleans())
    bw_out_scale = 1.0
    if form == "int8":
        kw["q"] = q_for(form)
        bw_out_scale = draw(st.sampled_from([1.0, 0.6]))
    if kw["proj"]:
        kw["proj_clip"] = draw(st.sampled_from([0.0, 0.2, 1.0]))
    nc_bw = draw(st.one_of(st.none(), st.integers(1, 7)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31 - 1)))
    graph, shape = keras_bidi_graph(rng, form, nc_bw=nc_bw, bw_out_scale=bw_out_scale, **kw)
    check_fused(graph, shape, form, rng)


@pytest.mark.parametrize("form", ["float", "hybrid", "int8"])
def test_fused_long_sequence(form):
    rng = np.random.default_rng(3)
    graph, shape = keras_bidi_graph(rng, form, T=24, B=2, ni=12, nc=16, proj=10, proj_bias=True,
                                    cell_clip=2.0, proj_clip=0.3, q=q_for(form), time_major=True,
                                    bw_out_scale=0.5 if form == "int8" else 1.0)
    check_fused(graph, shape, form, rng)


@pytest.mark.parametrize("variant", ["swapped", "extra_output", "extra_reader", "concat_requant",
                                     "x_requant", "feature_axis", "different_inputs"])
def test_near_misses_stay_unfused(variant):
    form = "int8" if variant in ("concat_requant", "x_requant") else "float"
    rng = np.random.default_rng(5)
    graph, shape = keras_bidi_graph(rng, form, variant=variant, T=3, B=2, ni=4, nc=5, q=q_for(form))
    assert fuse_bidirectional_lstm(graph) is graph
    # LiteRT's int8 CONCATENATION refuses inputs whose scale differs from the output's
    check_fused(graph, shape, form, rng, expect_fused=False, litert=variant != "concat_requant")


def test_concat_axis_minus_one_fuses():
    rng = np.random.default_rng(6)
    graph, shape = keras_bidi_graph(rng, "float", variant="axis_minus_1", T=3, B=1, ni=4, nc=5)
    check_fused(graph, shape, "float", rng)


@pytest.mark.parametrize("form", ["float", "int8"])
def test_expand_round_trip(form):
    """expand(fuse(g)) is plain TFLite again and runs in LiteRT exactly like g."""
    rng = np.random.default_rng(7)
    graph, shape = keras_bidi_graph(rng, form, T=4, B=2, ni=3, nc=4, q=q_for(form))
    fused = fuse_bidirectional_lstm(graph)
    assert [n.op for n in fused.nodes] == [FUSED]
    plain = expand_bidirectional_lstm(fused)
    assert sorted(n.op for n in plain.nodes) == sorted(n.op for n in graph.nodes)
    assert fuse_bidirectional_lstm(plain).nodes[0].op == FUSED
    x = feeds_for(rng, form, shape, n=1)[0]
    a = run_litert(write_tflite(graph), [x])[0]
    b = run_litert(write_tflite(plain), [x])[0]
    np.testing.assert_array_equal(a, b)


def test_no_fuse_env_var():
    from xnn.converter.passes import default_passes, remove_dead_nodes

    with fusing(True):
        assert fuse_bidirectional_lstm in default_passes()
    with fusing(False):
        assert default_passes() == [remove_dead_nodes]
    rng = np.random.default_rng(8)
    graph, _ = keras_bidi_graph(rng, "float", T=2, B=1, ni=3, nc=4)
    model = write_tflite(graph)
    assert ops_of(load(model)) == [FUSED]
    assert ops_of(load(model, fuse=False)).count(LSTM) == 2


# ---- 2. the builtin BIDIRECTIONAL_SEQUENCE_LSTM ------------------------------------------------

def native_model(rng, form, merge=True, time_major=True, aux=False, options=None, bw_kw=None,
                 drop_time_major=False, **kw):
    """A one-node BIDIRECTIONAL_SEQUENCE_LSTM (48 inputs): (tflite bytes, input shape)."""
    kw["time_major"] = time_major
    fw = build_parts(rng, form, **kw)
    bw = build_parts(rng, form, **dict(kw, **(bw_kw or {})))
    tensors = [fw["x"]]
    idx = [0] + [-1] * 47

    def add(spec, name):
        tensors.append(replace(spec, name=name))
        return len(tensors) - 1

    for k in range(1, 18):
        if k in fw["slots"]:
            idx[k] = add(fw["slots"][k], "fw_" + fw["slots"][k].name)
        if k in bw["slots"]:
            idx[17 + k] = add(bw["slots"][k], "bw_" + bw["slots"][k].name)
    for k, (parts, slot) in zip((35, 36, 37, 38), ((fw, 18), (fw, 19), (bw, 18), (bw, 19))):
        tag = "fw_" if parts is fw else "bw_"
        idx[k] = add(parts["slots"][slot], tag + parts["slots"][slot].name)
    inputs = (0,)
    if aux:
        idx[39] = add(fw["x"], "aux_input")
        inputs = (0, idx[39])
    yf, yb = fw["y"], bw["y"]
    if merge:
        outs = (add(replace(yf, shape=tuple(yf.shape[:2]) + (yf.shape[2] + yb.shape[2],)), "y"),)
    else:
        outs = (add(yf, "y_fw"), add(yb, "y_bw"))
    o = fw["options"]
    opts = dict(fused_activation_function=o["fused_activation_function"], cell_clip=o["cell_clip"],
                proj_clip=o["proj_clip"], merge_outputs=merge, time_major=time_major,
                asymmetric_quantize_inputs=o["asymmetric_quantize_inputs"])
    if drop_time_major:
        del opts["time_major"]
    opts.update(options or {})
    node = Node(op=NATIVE, inputs=tuple(idx), outputs=outs, options=frozen_options(opts),
                name=f"#0 {NATIVE}")
    g = Graph(tensors=tuple(tensors), nodes=(node,), inputs=inputs, outputs=outs)
    return write_tflite(g), fw["x"].shape


def check_native(model, shape, form, rng, n_inputs=1):
    feeds = [feeds_for(rng, form, shape, n=n_inputs) for _ in range(2)]
    expect = run_litert_seq(model, feeds)
    it = Interpreter(model_content=model)
    assert ops_of(it) == [NATIVE]
    got = [it(f) for f in feeds]
    for k in range(2):
        assert len(got[k]) == len(expect[k])
        for j, (g, e) in enumerate(zip(got[k], expect[k])):
            compare(g, e, form, f"invoke {k} output {j} vs LiteRT")
    ctx = it.node_contexts[0]  # the reference from the initial state reproduces the first invoke
    ins = [None if t < 0 else it.graph.tensors[t].data for t in ctx.node.inputs]
    ins[0] = feeds[0][0]
    if n_inputs > 1:
        ins[39] = feeds[0][1]
    ref = OPS[NATIVE].reference(ctx, ins)
    for j, (g, r) in enumerate(zip(got[0], ref)):
        tol = FLOAT_TOL if form == "float" else HYBRID_TOL
        np.testing.assert_allclose(g, r, err_msg=f"output {j} vs reference", **tol)
    return it


@st.composite
def native_cases(draw, hybrid=False):
    kw = shapes(draw)
    kw.update(peephole=draw(st.booleans()), act=draw(st.sampled_from(sorted(ACTS))),
              cell_clip=draw(st.sampled_from([0.0, 0.5, 3.0])),
              proj_clip=draw(st.sampled_from([0.0, 0.25, 2.0])) if kw["proj"] else 0.0,
              merge=draw(st.booleans()))
    if kw["merge"] and not kw["time_major"]:
        kw["B"] = 1  # LiteRT's merged batch-major kernel is undefined for batch > 1
    if hybrid:
        kw["asym"] = draw(st.booleans())
    return kw, draw(st.integers(0, 2 ** 31 - 1))


@given(native_cases())
def test_native_float(case):
    kw, seed = case
    rng = np.random.default_rng(seed)
    model, shape = native_model(rng, "float", **kw)
    check_native(model, shape, "float", rng)


@given(native_cases(hybrid=True))
def test_native_hybrid(case):
    kw, seed = case
    rng = np.random.default_rng(seed)
    model, shape = native_model(rng, "hybrid", **kw)
    check_native(model, shape, "hybrid", rng)


@pytest.mark.parametrize("form", ["float", "hybrid"])
@pytest.mark.parametrize("merge", [False, True])
def test_native_aux_input_feeds_backward(form, merge):
    """An aux input without aux weights is what the backward direction reads (LiteRT's stacking
    without cross links)."""
    rng = np.random.default_rng(9)
    model, shape = native_model(rng, form, merge=merge, aux=True, T=5, B=2, ni=4, nc=3)
    check_native(model, shape, form, rng, n_inputs=2)


def test_native_time_major_defaults_to_true():
    rng = np.random.default_rng(10)
    model, shape = native_model(rng, "float", drop_time_major=True, T=4, B=2, ni=3, nc=5)
    it = check_native(model, shape, "float", rng)
    assert "time_major" not in it.graph.nodes[0].options or it.graph.nodes[0].options["time_major"]
    assert it.get_output_details()[0]["shape"].tolist() == [4, 2, 10]


def test_native_long_sequence():
    rng = np.random.default_rng(11)
    model, shape = native_model(rng, "hybrid", merge=True, T=40, B=2, ni=16, nc=12, proj=8,
                                proj_bias=True, cell_clip=2.0, peephole=True, asym=True)
    check_native(model, shape, "hybrid", rng)


# ---- rejection ---------------------------------------------------------------------------------

def _fails(model, *words):
    with pytest.raises(XnnError) as e:
        Interpreter(model_content=model)
    msg = str(e.value)
    for w in words:
        assert w in msg, msg


def test_native_rejects_integer_form_like_litert():
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    model, _ = native_model(np.random.default_rng(0), "int8", T=2, B=1, ni=3, nc=4, q=Q_TF)
    _fails(model, "no integer form")
    with pytest.raises(Exception):  # LiteRT's Prepare requires a float32 input too
        it = LiteRT(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()


def test_native_rejects_aux_weights():
    model, shape = native_model(np.random.default_rng(0), "float", T=2, B=1, ni=3, nc=4)
    from xnn.converter.tflite_reader import read_tflite

    g = read_tflite(model)
    w = TensorSpec("aux_w", (4, 3), np.dtype(np.float32), data=np.zeros((4, 3), np.float32))
    tensors = g.tensors + (w,)
    ins = list(g.nodes[0].inputs)
    for k in (41, 42, 43, 45, 46, 47):
        ins[k] = len(tensors) - 1
    g = g.replace(tensors=tensors, nodes=(replace(g.nodes[0], inputs=tuple(ins)),))
    _fails(write_tflite(g), "auxiliary input weights")


def test_native_rejects_direction_size_mismatch():
    model, _ = native_model(np.random.default_rng(0), "float", bw_kw=dict(nc=5), T=2, B=1, ni=3,
                            nc=4)
    _fails(model, "sizes differ")


def test_native_rejects_merged_batch_major_batches():
    model, _ = native_model(np.random.default_rng(0), "float", merge=True, time_major=False, T=3,
                            B=2, ni=3, nc=4)
    _fails(model, "merge_outputs", "batch")


def test_native_rejects_output_count():
    rng = np.random.default_rng(0)
    model, _ = native_model(rng, "float", merge=False, options=dict(merge_outputs=True), T=2, B=1,
                            ni=3, nc=4)
    _fails(model, "merge_outputs=True needs 1 outputs")


@pytest.mark.parametrize("form", ["float", "int8"])
def test_fused_resize_sequence_length(form):
    """resize_tensor_input on a fused model: same as the unfused model resized the same way."""
    rng = np.random.default_rng(12)
    graph, shape = keras_bidi_graph(rng, form, T=3, B=2, ni=4, nc=5, q=q_for(form))
    model = write_tflite(graph)
    longer = (shape[0], 7, shape[2])
    x = feeds_for(rng, form, longer, n=1)[0]
    outs = []
    for fuse in (True, False):
        it = load(model, fuse)
        it.resize_tensor_input(0, longer)
        it.allocate_tensors()
        outs.append(it(x)[0])
    assert outs[0].shape == (2, 7, 10)
    if form == "float":
        np.testing.assert_allclose(outs[0], outs[1], **FUSE_TOL)
    else:
        np.testing.assert_array_equal(outs[0], outs[1])
