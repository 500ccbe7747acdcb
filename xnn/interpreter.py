"""Interpreter: load a model, plan it once, run the plan.

Load: read the file into a Graph, apply passes, check every op against the op table.
allocate_tensors(): propagate shapes, prepare every node (multipliers, packed weights, ...), plan
activation memory (tensors whose lifetimes do not overlap share one arena), bind every node to its
input/output arrays. invoke(): one loop over (run, ins, outs) triples.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from .errors import XnnError
from .ir import Graph, OpContext
from .ops import MAX_VERSION, OPS

ALIGN = 64


def load_graph(model_path=None, model_content=None) -> Graph:
    """Read a .tflite or .xnn model (told apart by content, not by file name) into a Graph.

    An .xnn file is memory-mapped: its constants are read-only views of the mapping. Both formats
    then go through constant folding and the default passes (no-ops on an .xnn graph, which was
    stored after them, apart from widening float16 constants kept compact in the file).
    """
    from .converter.xnn_format import is_xnn, map_file, read_xnn

    if (model_path is None) == (model_content is None):
        raise XnnError("give exactly one of model_path= or model_content=")
    if model_path is not None:
        try:
            with open(model_path, "rb") as f:
                head = f.read(8)
                model_content = map_file(f) if is_xnn(head) else head + f.read()
        except OSError as e:
            raise XnnError(f"cannot read model file '{model_path}': {e.strerror or e}") from None
    from .converter.fold import fold_constants
    from .converter.passes import default_passes

    if is_xnn(model_content):
        g = read_xnn(model_content)
    else:
        from .converter.tflite_reader import read_tflite

        g = read_tflite(model_content)
    g = fold_constants(g)
    for p in default_passes():
        g = p(g)
    return g


def check_graph(g: Graph) -> None:
    """Reject unsupported ops/versions and dangling tensors before anything runs."""
    n = len(g.tensors)
    if not g.outputs:
        raise XnnError("model declares no outputs")
    produced = set(g.inputs)
    for t, spec in enumerate(g.tensors):
        if spec.data is not None or spec.is_variable:
            produced.add(t)
    for node in g.nodes:
        if node.op not in OPS:
            kind = "custom op" if node.op.startswith("CUSTOM:") else "op"
            raise XnnError(f"node {node.name}: unsupported {kind} {node.op} (version {node.version}); "
                           f"xnn supports: {', '.join(sorted(OPS))}")
        if not 1 <= node.version <= MAX_VERSION.get(node.op, 1):
            raise XnnError(f"node {node.name}: {node.op} version {node.version} is not supported "
                           f"(xnn runs versions 1..{MAX_VERSION.get(node.op, 1)})")
        for t in node.inputs:
            if t >= 0 and t not in produced:
                raise XnnError(f"node {node.name}: reads tensor {t} '{g.tensors[t].name}' before "
                               "anything writes it")
        for t in node.outputs:
            if g.tensors[t].data is not None and not g.tensors[t].is_variable:
                raise XnnError(f"node {node.name}: writes constant tensor '{g.tensors[t].name}'")
            produced.add(t)
        if any(not -1 <= t < n for t in node.inputs):
            raise XnnError(f"node {node.name}: tensor index out of range")
    for t in g.outputs:
        if t not in produced:
            raise XnnError(f"model output '{g.tensors[t].name}' is never computed")


# Ops whose output is the input's bytes under another shape: with an activation input, the output
# becomes a view of the input's buffer and the node leaves the execution plan.
ALIAS_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


def find_aliases(g: Graph) -> dict:
    """output tensor -> root tensor whose buffer it views (chains resolve to the first root)."""
    alias = {}
    graph_inputs = set(g.inputs)
    for node in g.nodes:
        if node.op not in ALIAS_OPS or not node.inputs or len(node.outputs) != 1:
            continue
        src, dst = node.inputs[0], node.outputs[0]
        s, d = g.tensors[src], g.tensors[dst]
        if s.data is not None or s.is_variable or d.is_variable or dst in graph_inputs or s.dtype != d.dtype:
            continue
        alias[dst] = alias.get(src, src)
    return alias


def plan_memory(g: Graph, shapes: dict, alias: dict | None = None) -> tuple[dict, int]:
    """Greedy arena plan: tensor index -> byte offset, and the arena size.

    A tensor lives from the node that writes it to its last reader; graph inputs and outputs live
    for the whole run (an input set once stays valid across invokes); lifetimes are closed intervals, so a node's inputs and outputs
    never share bytes. A tensor in `alias` (a view of its root's buffer) extends its root's lifetime
    and gets no bytes of its own. Largest tensors are placed first at the lowest offset that fits.
    """
    alias = alias or {}
    end = len(g.nodes)
    first, last = {}, {}
    for t in g.inputs:  # inputs keep their bytes for the whole run: set once, invoke many times
        first[t] = -1
        last[t] = end
    for i, node in enumerate(g.nodes):
        for t in node.inputs:
            t = alias.get(t, t)
            if t >= 0 and t in first:
                last[t] = max(last[t], i)
        for t in node.outputs:
            t = alias.get(t, t)
            if t not in first:
                first[t] = i
                last[t] = i
    for t in g.outputs:
        t = alias.get(t, t)
        if t in first:
            last[t] = end
    items = []
    for t in first:
        spec = g.tensors[t]
        if spec.data is not None or spec.is_variable:
            continue
        nbytes = int(np.prod(shapes[t], dtype=np.int64)) * spec.dtype.itemsize
        items.append((-(nbytes), t, first[t], last[t], max(nbytes, 1)))
    items.sort()
    placed = []  # (offset, size, first, last)
    offsets = {}
    size = 0
    for _, t, a, b, nbytes in items:
        busy = sorted((o, s) for o, s, fa, fb in placed if not (fb < a or b < fa))
        off = 0
        for o, s in busy:
            if off + nbytes <= o:
                break
            off = max(off, (o + s + ALIGN - 1) // ALIGN * ALIGN)
        offsets[t] = off
        placed.append((off, nbytes, a, b))
        size = max(size, off + nbytes)
    return offsets, size


class Interpreter:
    """A drop-in for tf.lite.Interpreter over xnn's Numba kernels.

    >>> it = Interpreter(model_path="model.tflite")
    >>> it.allocate_tensors()
    >>> it.set_tensor(it.get_input_details()[0]["index"], x); it.invoke()
    >>> y = it.get_tensor(it.get_output_details()[0]["index"])
    or simply `outputs = it(x)`.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=None, *, graph=None, **_ignored):
        """`graph=` runs an in-memory Graph as it is (no file, no load-time passes): converter
        tools use it; applications pass model_path or model_content."""
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < -1):
            raise XnnError(f"num_threads must be a non-negative int or -1, got {num_threads!r}")
        # Kernels run on the calling thread; the GEMM-based ones use numpy's BLAS, whose thread pool
        # is set to num_threads (default 1, the xNN-OCR target; -1 or 0 leaves BLAS as it is).
        self.num_threads = 1 if num_threads is None else num_threads
        if self.num_threads >= 1:
            from ._blas import set_blas_threads

            set_blas_threads(self.num_threads)
        if graph is not None:
            if model_path is not None or model_content is not None:
                raise XnnError("give a model file/content or graph=, not both")
            self.graph = graph
        else:
            self.graph = load_graph(model_path, model_content)
        check_graph(self.graph)
        self._shapes = {i: tuple(t.shape) for i, t in enumerate(self.graph.tensors)}
        self._validate = os.environ.get("XNN_VALIDATE", "") not in ("", "0")
        self._trace = os.environ.get("XNN_TRACE", "") not in ("", "0")
        self._plan = None
        self._first_alloc = True
        self.allocate_tensors()

    # ---- planning ----------------------------------------------------------------------------
    def allocate_tensors(self):
        g = self.graph
        shapes = dict(self._shapes)
        specs = list(g.tensors)
        prepared = []
        for node in g.nodes:
            ins = tuple(None if t < 0 else replace(specs[t], shape=shapes[t]) for t in node.inputs)
            outs = tuple(specs[t] for t in node.outputs)
            inter = tuple(specs[t] for t in node.intermediates)
            ctx = OpContext(node=node, ins=ins, outs=outs, inter=inter)
            try:
                run, out_shapes = OPS[node.op].prepare(ctx)
            except XnnError:
                raise
            except Exception as e:
                raise XnnError(f"node {node.name}: cannot prepare {node.op}: {type(e).__name__}: {e}") from e
            if len(out_shapes) != len(node.outputs):
                raise XnnError(f"node {node.name}: op produced {len(out_shapes)} outputs, "
                               f"model declares {len(node.outputs)}")
            for t, s in zip(node.outputs, out_shapes):
                s = tuple(int(d) for d in s)
                declared = g.tensors[t].shape
                if self._first_alloc and declared and s != tuple(declared):
                    raise XnnError(f"node {node.name}: output '{g.tensors[t].name}' has shape {s} but "
                                   f"the model declares {tuple(declared)}")
                shapes[t] = s
            final_ctx = OpContext(node=node, ins=ins, inter=inter,
                                  outs=tuple(replace(specs[t], shape=shapes[t]) for t in node.outputs))
            prepared.append((run, final_ctx))
        alias = find_aliases(g)
        offsets, arena_size = plan_memory(g, shapes, alias)
        self._arena = np.zeros(arena_size + ALIGN, np.uint8)
        base = (-self._arena.ctypes.data) % ALIGN
        arrays = {}
        for t, off in offsets.items():
            spec = g.tensors[t]
            n = int(np.prod(shapes[t], dtype=np.int64)) * spec.dtype.itemsize
            arrays[t] = self._arena[base + off: base + off + n].view(spec.dtype).reshape(shapes[t])
        if not hasattr(self, "_variables") or self._first_alloc:
            self._variables = {}
        for t, spec in enumerate(g.tensors):
            if spec.is_variable:
                v = self._variables.get(t)
                if v is None or v.shape != shapes[t]:
                    v = np.empty(shapes[t], spec.dtype)
                    v[...] = self._variable_initial(t)
                    self._variables[t] = v
                arrays[t] = v
            elif spec.data is not None:
                arrays[t] = spec.data
        for t, root in alias.items():
            arrays[t] = arrays[root].reshape(shapes[t])
        self._arrays = arrays
        self._shapes = shapes
        self._arena_bytes = arena_size
        self.node_contexts = [ctx for _, ctx in prepared]  # per graph node, for tools and tests
        prepared = [(run, ctx) for run, ctx in prepared
                    if not (ctx.node.op in ALIAS_OPS and ctx.node.outputs[0] in alias)]
        self._plan = [(run, [None if t < 0 else arrays[t] for t in ctx.node.inputs],
                       [arrays[t] for t in ctx.node.outputs]) for run, ctx in prepared]
        self._contexts = [ctx for _, ctx in prepared]
        self._first_alloc = False

    def _variable_initial(self, t):
        """A variable's initial value: its buffer if it has one, else real 0 — which is the zero
        point for a quantized int8 tensor (LiteRT starts and resets int8 state at its zero point)."""
        spec = self.graph.tensors[t]
        if spec.data is not None:
            return np.asarray(spec.data).reshape(self._shapes[t])
        if spec.quant is not None and spec.dtype == np.int8:
            return spec.quant.zp
        return 0

    def reset_all_variables(self):
        """Reset variable tensors (LSTM state) to their initial values."""
        for t, v in self._variables.items():
            v[...] = self._variable_initial(t)

    # ---- running -----------------------------------------------------------------------------
    def invoke(self):
        if self._validate or self._trace:
            return self._invoke_checked()
        if self._plan is None:
            raise XnnError("input shapes changed: call allocate_tensors() before invoke()")
        i = 0
        try:
            for run, ins, outs in self._plan:
                run(ins, outs)
                i += 1
        except XnnError:
            raise
        except Exception as e:  # a kernel tripped on values it cannot handle (corrupt weights, ...)
            raise XnnError(f"node {self._contexts[i].node.name} failed at run time: "
                           f"{type(e).__name__}: {e}") from e

    def _invoke_checked(self):
        import time

        if self._plan is None:
            raise XnnError("input shapes changed: call allocate_tensors() before invoke()")
        for (run, ins, outs), ctx in zip(self._plan, self._contexts):
            expect = None
            if self._validate:
                expect = OPS[ctx.node.op].reference(ctx, [None if a is None else a.copy() for a in ins])
            t0 = time.perf_counter()
            run(ins, outs)
            dt = time.perf_counter() - t0
            if self._trace:
                shapes = ", ".join(f"{tuple(o.shape)}:{o.dtype}" for o in outs)
                print(f"[xnn] {ctx.node.name:<28} {dt * 1e6:9.1f} us  -> {shapes}")
            if expect is not None:
                for k, (got, ref) in enumerate(zip(outs, expect)):
                    if np.issubdtype(got.dtype, np.floating):
                        # float kernels sum in another order than the reference: allow rounding
                        # growth on long reductions, relative to the output's magnitude
                        scale = float(np.max(np.abs(ref))) if np.size(ref) else 0.0
                        ok = np.allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, scale))
                    else:
                        ok = np.array_equal(got, ref)
                    if not ok:
                        raise XnnError(f"XNN_VALIDATE: node {ctx.node.name} output {k} differs from the "
                                       f"reference (max abs diff "
                                       f"{np.max(np.abs(got.astype(np.float64) - ref)):.3g})")

    def __call__(self, *inputs):
        """Run on inputs given positionally, as one list, or as a dict name -> array; return outputs."""
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            by_name = {d["name"]: d["index"] for d in self.get_input_details()}
            for name, value in inputs[0].items():
                if name not in by_name:
                    raise XnnError(f"unknown input '{name}'; inputs are {sorted(by_name)}")
                self.set_tensor(by_name[name], value)
        else:
            if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
                inputs = tuple(inputs[0])
            if len(inputs) != len(self.graph.inputs):
                raise XnnError(f"model takes {len(self.graph.inputs)} inputs, got {len(inputs)}")
            for t, value in zip(self.graph.inputs, inputs):
                self.set_tensor(t, value)
        self.invoke()
        return [self.get_tensor(t) for t in self.graph.outputs]

    # ---- tf.lite-compatible tensor access ----------------------------------------------------
    def _details(self, t: int) -> dict:
        spec = self.graph.tensors[t]
        q = spec.quant
        return {
            "name": spec.name,
            "index": t,
            "shape": np.array(self._shapes[t], np.int32),
            "shape_signature": np.array(spec.shape, np.int32),
            "dtype": spec.dtype.type,
            "quantization": (q.s, q.zp) if q is not None else (0.0, 0),
            "quantization_parameters": {
                "scales": q.scale.copy() if q is not None else np.zeros(0, np.float32),
                "zero_points": q.zero_point.astype(np.int32) if q is not None else np.zeros(0, np.int32),
                "quantized_dimension": q.axis if q is not None else 0,
            },
            "sparsity_parameters": {},
        }

    def get_input_details(self):
        return [self._details(t) for t in self.graph.inputs]

    def get_output_details(self):
        return [self._details(t) for t in self.graph.outputs]

    def get_tensor_details(self):
        return [self._details(t) for t in range(len(self.graph.tensors))]

    def _check_index(self, index) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < len(self.graph.tensors):
            raise XnnError(f"tensor index {index!r} out of range (model has {len(self.graph.tensors)} tensors)")
        return int(index)

    def set_tensor(self, index, value):
        t = self._check_index(index)
        if t not in self.graph.inputs:
            raise XnnError(f"tensor {t} '{self.graph.tensors[t].name}' is not a model input")
        spec = self.graph.tensors[t]
        value = np.asarray(value)
        if value.dtype != spec.dtype:
            raise XnnError(f"input '{spec.name}' expects dtype {spec.dtype.name}, got {value.dtype.name}")
        if tuple(value.shape) != self._shapes[t]:
            raise XnnError(f"input '{spec.name}' expects shape {list(self._shapes[t])}, got "
                           f"{list(value.shape)} (use resize_tensor_input to change it)")
        self._arrays[t][...] = value

    def get_tensor(self, index):
        t = self._check_index(index)
        if t not in self._arrays:
            raise XnnError(f"tensor {t} '{self.graph.tensors[t].name}' has no storage")
        return np.array(self._arrays[t], copy=True)

    def resize_tensor_input(self, input_index, tensor_size, strict=False):
        t = self._check_index(input_index)
        if t not in self.graph.inputs:
            raise XnnError(f"tensor {t} is not a model input")
        new = tuple(int(d) for d in tensor_size)
        old = self.graph.tensors[t].shape
        if len(new) != len(old) or any(d <= 0 for d in new):
            raise XnnError(f"cannot resize input '{self.graph.tensors[t].name}' from {list(old)} to {list(new)}")
        if strict and any(a != b and a != -1 for a, b in zip(old, new)):
            raise XnnError(f"strict resize of '{self.graph.tensors[t].name}' changes a fixed dimension")
        self._shapes[t] = new
        self._plan = None

    @property
    def arena_bytes(self) -> int:
        """Bytes of the shared activation arena after memory planning."""
        return self._arena_bytes
