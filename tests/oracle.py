"""The checking helper: build a one-op .tflite, run it in LiteRT (BUILTIN_REF) and in xnn, compare.

    check_op("CONV_2D", ins=[x_spec, w_spec, b_spec], outs=[y_spec], options={...}, feeds=[x])

`ins`/`outs` are TensorSpecs (constants carry `data`; runtime inputs have data=None and get a value
from `feeds`, in order). An output spec may have shape=None: LiteRT's computed shape is used.
Int outputs must be identical to LiteRT and to the op's NumPy reference; float outputs must agree
within `rtol`. Returns the xnn outputs.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from xnn import Interpreter
from xnn.converter.tflite_writer import write_tflite
from xnn.ir import Graph, Node, OpContext, QuantParams, TensorSpec, frozen_options
from xnn.ops import OPS


def qp(scale, zero_point=0, axis=0) -> QuantParams:
    s = np.atleast_1d(np.asarray(scale, np.float32))
    z = np.atleast_1d(np.asarray(zero_point, np.int64))
    if z.size == 1 and s.size > 1:
        z = np.full(s.shape, z[0], np.int64)
    return QuantParams(scale=s, zero_point=z, axis=axis)


def spec(name, shape, dtype, quant=None, data=None) -> TensorSpec:
    if data is not None:
        data = np.asarray(data, dtype=dtype)
        shape = data.shape if shape is None else shape
    return TensorSpec(name=name, shape=None if shape is None else tuple(shape), dtype=np.dtype(dtype),
                      quant=quant, data=data)


def one_op_model(op, ins, outs, options=None, version=1) -> bytes:
    tensors = list(ins) + list(outs)
    tensors = [t if t is None or t.shape is not None else replace(t, shape=()) for t in tensors]
    idx_in = []
    real = []
    for t in ins:
        if t is None:
            idx_in.append(-1)
        else:
            idx_in.append(len(real))
            real.append(t)
    out_idx = list(range(len(real), len(real) + len(outs)))
    real += [t if t.shape is not None else replace(t, shape=()) for t in outs]
    graph_inputs = tuple(i for i, t in zip(idx_in, ins) if t is not None and t.data is None)
    node = Node(op=op, inputs=tuple(idx_in), outputs=tuple(out_idx), options=frozen_options(options),
                version=version, name=f"#0 {op}")
    return write_tflite(Graph(tensors=tuple(real), nodes=(node,), inputs=graph_inputs,
                              outputs=tuple(out_idx)))


def run_litert(model: bytes, feeds, resolver="BUILTIN_REF"):
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    it = LiteRT(model_content=model, experimental_op_resolver_type=getattr(OpResolverType, resolver),
                num_threads=1)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def check_op(op, ins, outs, feeds, options=None, version=1, rtol=1e-5, atol=1e-6, check_ref=True):
    model = one_op_model(op, ins, outs, options, version)
    expect = run_litert(model, feeds)
    if any(o.shape is None for o in outs):  # rebuild with LiteRT's output shapes
        outs = [replace(o, shape=tuple(e.shape)) for o, e in zip(outs, expect)]
        model = one_op_model(op, ins, outs, options, version)
    it = Interpreter(model_content=model)
    got = it(list(feeds))
    for k, (g, e) in enumerate(zip(got, expect)):
        _compare(f"{op} output {k} vs LiteRT", g, e, rtol, atol)
    if check_ref:
        ref = OPS[it.graph.nodes[0].op].reference(it.node_contexts[0], [np.asarray(f) for f in _ref_inputs(ins, feeds)])
        for k, (g, r) in enumerate(zip(got, ref)):
            _compare(f"{op} output {k} vs reference", g, np.asarray(r), rtol, atol)
    return got


def _ref_inputs(ins, feeds):
    it = iter(feeds)
    return [None if t is None else (t.data if t.data is not None else next(it)) for t in ins]


def _compare(what, got, exp, rtol, atol):
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != {exp.shape}"
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != {exp.dtype}"
    if np.issubdtype(exp.dtype, np.floating):
        np.testing.assert_allclose(got, exp, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, exp, err_msg=what)
