"""UNIDIRECTIONAL_SEQUENCE_LSTM against LiteRT's BUILTIN_REF kernels and the NumPy reference.

Three forms: float32 (rtol 1e-5), hybrid (float32 activations, int8 weights; looser tolerance, see
HYBRID_TOL) and full integer 8x8->16 (bit-exact). Every model is invoked twice on one interpreter so
the variable state (output_state, cell_state) is carried across invokes, as LiteRT does.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from xnn import Interpreter, XnnError
from xnn.converter.tflite_writer import write_tflite
from xnn.ir import Graph, Node, QuantParams, TensorSpec, frozen_options
from xnn.ops import OPS

OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
ACTS = {"TANH": 4, "RELU": 1, "RELU6": 3, "RELU_N1_TO_1": 2}
# Hybrid: LiteRT re-quantizes x, h and m to int8 every step. xnn mirrors that float32 arithmetic
# operation by operation, but LiteRT's sigmoid/tanh are Eigen's vectorized approximations: a one-ulp
# difference that lands on a rounding boundary flips one quantized value by one step, moving a gate
# by (max|v|/127)·|w|. With realistic weights (|w| <= 0.8) that stays below 1e-2; almost all
# elements still agree to 1e-5 (HYBRID_MOSTLY_EXACT), which catches systematic errors.
HYBRID_TOL = dict(rtol=1e-2, atol=1e-2)
HYBRID_MOSTLY_EXACT = 0.8
# float32: 1e-5 relative; outputs are O(1) and a projection can cancel to near zero, so the absolute
# floor is 1e-5 as well (LiteRT's matmuls sum in another order, drift grows over long sequences)
FLOAT_TOL = dict(rtol=1e-5, atol=1e-5)


def qp(scale, zp=0):
    return QuantParams(np.atleast_1d(np.float32(scale)), np.atleast_1d(np.int64(zp)))


def const(name, data, quant=None):
    data = np.asarray(data)
    return TensorSpec(name, tuple(data.shape), data.dtype, quant, data)


def lstm_model(x, slots, y, options, intermediates=(), n_inputs=24) -> bytes:
    """A one-node .tflite: slots maps input position -> TensorSpec (absent positions get -1)."""
    tensors = [x]
    idx = [0] + [-1] * (n_inputs - 1)
    for k in sorted(slots):
        idx[k] = len(tensors)
        tensors.append(slots[k])
    out = len(tensors)
    tensors.append(y)
    inter = tuple(range(len(tensors), len(tensors) + len(intermediates)))
    tensors += list(intermediates)
    node = Node(op=OP, inputs=tuple(idx), outputs=(out,), options=frozen_options(options),
                name=f"#0 {OP}", intermediates=inter)
    return write_tflite(Graph(tensors=tuple(tensors), nodes=(node,), inputs=(0,), outputs=(out,)))


def build(rng, form, **kw):
    """Random one-node LSTM model of one form: (tflite bytes, input shape)."""
    p = build_parts(rng, form, **kw)
    return lstm_model(p["x"], p["slots"], p["y"], p["options"], p["inter"]), p["shape"]


def build_parts(rng, form, T=2, B=1, ni=3, nc=4, proj=None, proj_bias=False, cifg=False,
                peephole=False, time_major=False, act="TANH", cell_clip=0.0, proj_clip=0.0,
                asym=False, q=None):
    """The tensors and options of a random LSTM. q (int8 form): scales and zero points of x (s_x,
    zp_x), h and y (s_h, zp_h), the cell (2^cs), the hidden intermediate (s_m, zp_m) and
    optionally one weight scale (w_scale)."""
    no = proj if proj else nc
    gates = (1, 2, 3) if cifg else (0, 1, 2, 3)
    slots = {}
    q = q or {}

    def weight(name, shape):
        if form == "float":
            return const(name, rng.normal(0, 0.6, shape).astype(np.float32))
        scale = q.get("w_scale", rng.uniform(0.001, 0.006) if form == "hybrid" else
                      rng.uniform(0.004, 0.03))
        return const(name, rng.integers(-127, 128, shape).astype(np.int8), qp(scale))

    for g in gates:
        slots[1 + g] = weight(f"input_to_gate{g}", (nc, ni))
        slots[5 + g] = weight(f"recurrent_to_gate{g}", (nc, no))
        if form == "int8":
            bs = float(np.float32(slots[1 + g].quant.s) * np.float32(q["s_x"]))
            lim = int(min(2 ** 20, 2.0 / bs))
            bias = rng.integers(-lim, lim + 1, nc).astype(np.int32)
            slots[12 + g] = const(f"bias{g}", bias, qp(bs))
        else:
            slots[12 + g] = const(f"bias{g}", rng.normal(0, 0.6, nc).astype(np.float32))
    if peephole:
        for k in ((10, 11) if cifg else (9, 10, 11)):
            if form == "int8":  # int16 with a symmetric scale, real values within about ±2
                slots[k] = const(f"peephole{k}", rng.integers(-32767, 32768, nc).astype(np.int16),
                                 qp(rng.uniform(2e-5, 6e-5)))
            else:
                slots[k] = weight(f"peephole{k}", (nc,))
    if proj:
        slots[16] = weight("projection", (no, nc))
        if proj_bias:
            if form == "int8":
                slots[17] = const("projection_bias", rng.integers(-3000, 3000, no).astype(np.int32))
            else:
                slots[17] = const("projection_bias", rng.normal(0, 0.3, no).astype(np.float32))
    shape = (T, B, ni) if time_major else (B, T, ni)
    yshape = shape[:2] + (no,)
    inter = ()
    if form == "int8":
        slots[18] = TensorSpec("output_state", (B, no), np.dtype(np.int8), qp(q["s_h"], q["zp_h"]),
                               is_variable=True)
        slots[19] = TensorSpec("cell_state", (B, nc), np.dtype(np.int16), qp(2.0 ** q["cs"]),
                               is_variable=True)
        x = TensorSpec("x", shape, np.dtype(np.int8), qp(q["s_x"], q["zp_x"]))
        y = TensorSpec("y", yshape, np.dtype(np.int8), qp(q["s_h"], q["zp_h"]))
        # like the TF converter: gate intermediates are float placeholders (unused without layer
        # norm), the hidden one carries the quantization of o·tanh(c)
        hid = (q["s_m"], q["zp_m"]) if proj else (q["s_h"], q["zp_h"])
        inter = tuple(TensorSpec(f"inter{k}", (0,), np.dtype(np.float32)) for k in range(4)) + (
            TensorSpec("hidden", (0,), np.dtype(np.int8), qp(*hid)),)
    else:
        slots[18] = TensorSpec("output_state", (B, no), np.dtype(np.float32), is_variable=True)
        slots[19] = TensorSpec("cell_state", (B, nc), np.dtype(np.float32), is_variable=True)
        x = TensorSpec("x", shape, np.dtype(np.float32))
        y = TensorSpec("y", yshape, np.dtype(np.float32))
    opts = dict(fused_activation_function=ACTS[act], cell_clip=float(cell_clip),
                proj_clip=float(proj_clip), time_major=bool(time_major),
                asymmetric_quantize_inputs=bool(asym))
    return dict(x=x, slots=slots, y=y, options=opts, inter=list(inter), shape=shape)


def feeds_for(rng, form, shape, n=2):
    if form == "int8":
        return [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(n)]
    return [rng.normal(0, 1.5, shape).astype(np.float32) for _ in range(n)]


def run_litert_seq(model, feeds):
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    it = LiteRT(model_content=model, num_threads=1,
                experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    outs = []
    for f in feeds:
        it.set_tensor(i, f)
        it.invoke()
        outs.append(it.get_tensor(o))
    return outs


def check(model, feeds, form):
    expect = run_litert_seq(model, feeds)
    it = Interpreter(model_content=model)
    got = [it(f)[0] for f in feeds]
    tol = {"float": FLOAT_TOL, "hybrid": HYBRID_TOL}.get(form)
    for k, (g, e) in enumerate(zip(got, expect)):
        assert g.shape == e.shape and g.dtype == e.dtype
        if tol is None:
            np.testing.assert_array_equal(g, e, err_msg=f"invoke {k} vs LiteRT")
        else:
            np.testing.assert_allclose(g, e, err_msg=f"invoke {k} vs LiteRT", **tol)
            if form == "hybrid":
                close = np.isclose(g, e, **FLOAT_TOL).mean()
                assert close >= HYBRID_MOSTLY_EXACT, f"only {close:.0%} of elements within 1e-5"
    # the NumPy reference from the initial (absent) state reproduces the first invoke
    ctx = it.node_contexts[0]
    ins = [None if t < 0 else it.graph.tensors[t].data for t in ctx.node.inputs]
    ins[0] = feeds[0]
    ins[18] = ins[19] = None
    ref = OPS[OP].reference(ctx, ins)[0]
    if tol is None:
        np.testing.assert_array_equal(got[0], ref, err_msg="vs reference")
    else:
        np.testing.assert_allclose(got[0], ref, err_msg="vs reference", **tol)
    return got


# ---- property tests ---------------------------------------------------------------------------

def shapes(draw):
    proj = draw(st.one_of(st.none(), st.integers(1, 6)))
    return dict(T=draw(st.integers(1, 5)), B=draw(st.integers(1, 3)), ni=draw(st.integers(1, 9)),
                nc=draw(st.integers(1, 9)), proj=proj, proj_bias=bool(proj) and draw(st.booleans()),
                cifg=draw(st.booleans()), time_major=draw(st.booleans()))


@st.composite
def float_cases(draw, hybrid=False):
    kw = shapes(draw)
    kw.update(peephole=draw(st.booleans()), act=draw(st.sampled_from(sorted(ACTS))),
              cell_clip=draw(st.sampled_from([0.0, 0.5, 3.0])),
              proj_clip=draw(st.sampled_from([0.0, 0.25, 2.0])) if kw["proj"] else 0.0)
    if hybrid:
        kw["asym"] = draw(st.booleans())
    return kw, draw(st.integers(0, 2 ** 31 - 1))


@st.composite
def int8_cases(draw):
    kw = shapes(draw)
    q = dict(s_x=draw(st.floats(0.004, 0.1)), zp_x=draw(st.integers(-128, 127)),
             s_h=draw(st.floats(0.002, 0.05)), zp_h=draw(st.integers(-60, 60)),
             cs=draw(st.integers(-20, -7)), s_m=draw(st.floats(0.002, 0.02)),
             zp_m=draw(st.integers(-30, 30)))
    if not -15 <= q["cs"] <= -9:  # LiteRT's result is undefined for CIFG there
        kw["cifg"] = False
    kw.update(q=q, peephole=kw["proj"] in (None, kw["nc"]) and draw(st.booleans()),
              cell_clip=draw(st.sampled_from([0.0, 0.3, 1.5])),
              proj_clip=draw(st.sampled_from([0.0, 0.2, 1.0])) if kw["proj"] else 0.0)
    return kw, draw(st.integers(0, 2 ** 31 - 1))


@given(float_cases())
def test_float(case):
    kw, seed = case
    rng = np.random.default_rng(seed)
    model, shape = build(rng, "float", **kw)
    check(model, feeds_for(rng, "float", shape), "float")


@given(float_cases(hybrid=True))
def test_hybrid(case):
    kw, seed = case
    rng = np.random.default_rng(seed)
    model, shape = build(rng, "hybrid", **kw)
    check(model, feeds_for(rng, "hybrid", shape), "hybrid")


@given(int8_cases())
def test_int8(case):
    kw, seed = case
    rng = np.random.default_rng(seed)
    model, shape = build(rng, "int8", **kw)
    check(model, feeds_for(rng, "int8", shape), "int8")


# ---- fixed configurations -----------------------------------------------------------------------

Q_TF = dict(s_x=0.0263, zp_x=-1, s_h=0.00506, zp_h=-6, cs=-14, s_m=0.0051, zp_m=-6)


@pytest.mark.parametrize("form", ["float", "hybrid", "int8"])
def test_long_sequence(form):
    rng = np.random.default_rng(7)
    model, shape = build(rng, form, T=48, B=2, ni=12, nc=16, proj=10, proj_bias=True,
                         cell_clip=2.0, q=Q_TF)
    check(model, feeds_for(rng, form, shape), form)


@pytest.mark.parametrize("form", ["hybrid", "int8"])
def test_long_reductions(form):
    """Dot products longer than one exact float32 chunk (1024 int8 products)."""
    rng = np.random.default_rng(3)
    model, shape = build(rng, form, T=2, B=1, ni=1030, nc=3, proj=1100, q=Q_TF)
    check(model, feeds_for(rng, form, shape), form)


@pytest.mark.parametrize("time_major", [False, True])
def test_state_carries_across_invokes(time_major):
    """Two invokes on halves of a sequence equal one invoke on the whole; reset restores."""
    rng = np.random.default_rng(11)
    kw = dict(B=2, ni=5, nc=6, proj=4, proj_bias=True, time_major=time_major)
    whole, shape = build(np.random.default_rng(5), "float", T=6, **kw)
    half, _ = build(np.random.default_rng(5), "float", T=3, **kw)
    x = rng.normal(0, 1, shape).astype(np.float32)
    ax = 0 if time_major else 1
    a, b = np.split(x, 2, axis=ax)
    full = Interpreter(model_content=whole)(x)[0]
    it = Interpreter(model_content=half)
    ya, yb = it(a)[0], it(b)[0]
    np.testing.assert_allclose(np.concatenate([ya, yb], axis=ax), full, **FLOAT_TOL)
    it.reset_all_variables()
    np.testing.assert_array_equal(it(a)[0], ya)
    assert not np.allclose(it(a)[0], ya)  # the state moved on again


def test_int8_cell_scale_outside_tanh_range():
    """The TF converter emits 2^-18 cell scales for small calibrated cells: LiteRT then uses the
    input gate where tanh(c) belongs (its ApplyTanh leaves that buffer unwritten)."""
    rng = np.random.default_rng(4)
    model, shape = build(rng, "int8", T=16, B=1, ni=8, nc=6, cell_clip=10.0, q=dict(Q_TF, cs=-18))
    check(model, feeds_for(rng, "int8", shape), "int8")


def test_rejects_undefined_cifg_cell_scale():
    _fails(_rebuild("int8", lambda c: None, cifg=True, q=dict(Q_TF, cs=-18)), "cell_state", "CIFG")


def test_tf_converter_layout_int8():
    """The layout the TF converter emits for a tf_keras LSTM (no projection, hidden intermediate
    sharing the output's quantization, cell state 2^-14, cell_clip 10)."""
    rng = np.random.default_rng(2)
    model, shape = build(rng, "int8", T=7, B=1, ni=5, nc=6, cell_clip=10.0, q=Q_TF)
    check(model, feeds_for(rng, "int8", shape, n=3), "int8")


# ---- rejection ---------------------------------------------------------------------------------

def _rebuild(form, mutate, **kw):
    """A valid model's parts, broken by `mutate(parts)` (slots, options, inter, x, y), written."""
    kw.setdefault("q", Q_TF)
    c = build_parts(np.random.default_rng(0), form, **kw)
    mutate(c)
    return lstm_model(c["x"], c["slots"], c["y"], c["options"], c["inter"])


def _fails(model, *words):
    with pytest.raises(XnnError) as e:
        Interpreter(model_content=model)
    msg = str(e.value)
    for w in words:
        assert w in msg, msg


def test_rejects_weight_shape_mismatch():
    def m(c):
        w = c["slots"][3]
        c["slots"][3] = const(w.name, np.zeros((w.shape[0] + 1, w.shape[1]), np.float32))
    _fails(_rebuild("float", m), "input_to_cell_weights", "input_to_gate2")


def test_rejects_missing_quantization():
    def m(c):
        w = c["slots"][6]
        c["slots"][6] = const(w.name, w.data)
    _fails(_rebuild("int8", m), "recurrent_to_forget_weights", "needs quantization")


def test_rejects_int8_input_without_quantization():
    def m(c):
        c["x"] = TensorSpec("x", c["x"].shape, np.dtype(np.int8))
    _fails(_rebuild("int8", m), "input 'x'", "needs quantization")


def test_rejects_int8_peephole_with_resizing_projection():
    def m(c):
        for k in (9, 10, 11):
            c["slots"][k] = const(f"p{k}", np.ones(4, np.int16), qp(0.01))
    _fails(_rebuild("int8", m, proj=3), "peephole", "output size")


def test_rejects_layer_norm():
    def m(c):
        for k in (20, 21, 22, 23):
            c["slots"][k] = const(f"ln{k}", np.ones(4, np.float32))
    _fails(_rebuild("float", m), "layer-norm")


def test_rejects_activation_none():
    def m(c):
        c["options"]["fused_activation_function"] = 0
    _fails(_rebuild("float", m), "NONE")


def test_rejects_per_channel_weights():
    def m(c):
        w = c["slots"][2]
        c["slots"][2] = const(w.name, w.data, QuantParams(np.full(4, 0.01, np.float32),
                                                          np.zeros(4, np.int64), 0))
    _fails(_rebuild("hybrid", m), "input_to_forget_weights", "per-channel")


def test_rejects_cell_scale_not_power_of_two():
    def m(c):
        s = c["slots"][19]
        c["slots"][19] = TensorSpec(s.name, s.shape, s.dtype, qp(0.001), is_variable=True)
    _fails(_rebuild("int8", m), "cell_state", "power of two")


def test_rejects_missing_intermediates():
    def m(c):
        c["inter"] = []
    _fails(_rebuild("int8", m), "intermediate")


def test_rejects_non_variable_state():
    def m(c):
        s = c["slots"][18]
        c["slots"][18] = const(s.name, np.zeros(s.shape, np.float32))
    _fails(_rebuild("float", m), "output_state", "variable")


def test_rejects_state_size_mismatch():
    def m(c):
        s = c["slots"][19]
        c["slots"][19] = TensorSpec(s.name, (1, 5), s.dtype, is_variable=True)
    _fails(_rebuild("float", m), "cell_state", "elements")


def test_rejects_projection_bias_without_weights():
    def m(c):
        c["slots"][17] = const("pb", np.zeros(4, np.float32))
    _fails(_rebuild("float", m), "projection_bias")


def test_rejects_mixed_weight_types():
    def m(c):
        w = c["slots"][7]
        c["slots"][7] = const(w.name, w.data.astype(np.float32))
    _fails(_rebuild("hybrid", m), "recurrent_to_cell_weights", "float32")


@pytest.mark.parametrize("cifg", [False, True])
def test_int8_peephole(cifg):
    rng = np.random.default_rng(13)
    model, shape = build(rng, "int8", T=12, B=2, ni=6, nc=5, cifg=cifg, peephole=True,
                         cell_clip=1.0, q=dict(Q_TF, cs=-12))
    check(model, feeds_for(rng, "int8", shape), "int8")


def test_twenty_input_form():
    """The deprecated 20-input layout (no layer-norm slots) runs the same kernel."""
    rng = np.random.default_rng(8)
    c = build_parts(rng, "float", T=4, B=2, proj=3, proj_bias=True)
    model20 = lstm_model(c["x"], c["slots"], c["y"], c["options"], n_inputs=20)
    x = rng.normal(0, 1, c["x"].shape).astype(np.float32)
    check(model20, [x, x], "float")


def test_resize_sequence_length():
    rng = np.random.default_rng(9)
    short, _ = build(np.random.default_rng(1), "int8", T=3, B=2, ni=4, nc=5, q=Q_TF)
    long_, shape = build(np.random.default_rng(1), "int8", T=7, B=2, ni=4, nc=5, q=Q_TF)
    x = feeds_for(rng, "int8", shape, n=1)[0]
    it = Interpreter(model_content=short)
    it.resize_tensor_input(0, shape)
    it.allocate_tensors()
    np.testing.assert_array_equal(it(x)[0], run_litert_seq(long_, [x])[0])


def test_fixed_point_activation_tables():
    """gemmlowp's int16 logistic/tanh (Q(k).(15-k) -> Q0.15): exact at 0, tanh odd, within 13 LSB
    of the real functions (not monotone). Bit-exactness is what the LiteRT comparisons check."""
    from xnn.kernels.lstm import logistic16, tanh16

    raw = np.arange(-32768, 32768)
    s = logistic16(raw, 3)
    assert s[32768] == 16384
    np.testing.assert_allclose(s, 32768 / (1 + np.exp(-raw / 4096)), atol=13)
    for k in range(7):
        t = tanh16(raw, k)
        assert t[32768] == 0
        np.testing.assert_array_equal(t[1:][::-1], -t[1:])
        np.testing.assert_allclose(t, 32768 * np.tanh(raw / 2.0 ** (15 - k)), atol=13)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 2600), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_exact_dot_rows_is_the_integer_product(m, n, seed, extreme):
    """The recurrences' float32 matvec over int8-valued operands equals the int64 product, also past
    the 1024-term chunks (any summation order is exact below 2^24)."""
    from xnn.kernels.lstm import _exact_dot_rows

    rng = np.random.default_rng(seed)
    if extreme:   # the largest products, all one sign: partial sums reach 1024 * 2^14 = 2^24
        v = np.full(n, -128, np.float32)
        w = np.full((m, n), -127, np.float32)
    else:
        v = rng.integers(-128, 128, n).astype(np.float32)
        w = rng.integers(-127, 128, (m, n)).astype(np.float32)
    acc = np.zeros(m, np.int64)
    _exact_dot_rows(v, w, acc, np.empty(m, np.float32))
    np.testing.assert_array_equal(acc, w.astype(np.int64) @ v.astype(np.int64))
