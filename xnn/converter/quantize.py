"""Post-training int8 quantization of a float graph (TFLite's full-integer scheme, done by xnn).

Calibration: the float graph runs in xnn over the calibration feeds with every float activation
kept as a graph output; each tensor's [min, max] over all feeds is recorded. The integer LSTM also
needs the range of its cell state and (with projection) of its hidden o·tanh(c) over all time
steps, which a small NumPy float LSTM recomputes from the recorded LSTM input.

Parameters (TFLite's int8 spec):
  activations  asymmetric per tensor: the range is widened to hold 0, s = (max - min) / 255,
               zp = clamp(round(-128 - min / s), -128, 127), so real 0 is exactly representable.
  weights      symmetric (zp 0) per output channel for CONV_2D (axis 0), DEPTHWISE_CONV_2D
               (axis 3) and FULLY_CONNECTED (axis 0): s_c = max|w_c| / 127, q = round(w / s_c).
  biases       int32, s_b[c] = s_x · s_w[c] (float32 product, as the kernels compute it), zp 0.
  fixed        SOFTMAX and LOGISTIC output 1/256 zp -128 (range [0, 1)); TANH 1/128 zp 0.
  shared       ops that move bytes without rescaling (reshape, transpose, pools, concat, pad,
               resize, reverse, slices, min/max) must have identical input and output parameters:
               those tensors form one group (union-find) quantized with the union of their ranges
               (a fixed output in a group wins).
  LSTM         8x8→16 integer form (no CIFG, peephole or layer norm; projection optional):
               int8 weights per tensor symmetric (projection weights too); gate biases int32 at
               s_x · s_w(gate); hidden state/output share one int8 quantization (the output's
               calibrated range: the projected output with projection); cell state int16 with
               scale 2^cs, cs = ceil(log2 max|c|) - 15 clamped to -15..-9 (LiteRT's integer tanh
               handles only those); intermediates: four float placeholders (used only with layer
               norm) and intermediate 4, the hidden m = o·tanh(c): without projection the output's
               quantization; with projection m's own calibrated range, s_m = (max - min) / 255, with
               the zero point negated (hidden_params: LiteRT stores m - zp, not m + zp) and the
               projection bias int32 at s_Wp · s_m. max|c| and m's range come from a NumPy float
               LSTM run on the recorded LSTM input (_lstm_float_stats).
Float graph inputs get a QUANTIZE node, float outputs a DEQUANTIZE node (int8_io=True instead
makes the model's inputs/outputs int8 themselves).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import XnnError
from ..ir import Graph, Node, QuantParams, TensorSpec, frozen_options

F32 = np.dtype(np.float32)
I8, I16, I32 = np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32)
LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"

# output parameters LiteRT requires (scale, zero point)
FIXED_OUTPUT = {"SOFTMAX": (1.0 / 256, -128), "LOGISTIC": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}
# ops whose float inputs and outputs must share one quantization
SHARED = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD",
          "PADV2", "REVERSE_V2", "CONCATENATION", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
          "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER", "MAXIMUM", "MINIMUM", "PACK",
          "UNPACK", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH"}
# ops that rescale freely: their output takes its own calibrated range
FREE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "MEAN", "SUM",
        "LEAKY_RELU", "HARD_SWISH", "RELU", "RELU6", "RELU_N1_TO_1", "PRELU", LSTM} | set(FIXED_OUTPUT)
# weight slot -> per-channel axis (None: per tensor), bias slot
WEIGHTED = {"CONV_2D": (1, 0, 2), "DEPTHWISE_CONV_2D": (1, 3, 2), "FULLY_CONNECTED": (1, 0, 2)}
# int8 op versions as TensorFlow's converter writes them (LiteRT resolves kernels by version)
VERSIONS = {"QUANTIZE": 1, "CONV_2D": 6, "DEPTHWISE_CONV_2D": 3, "RESHAPE": 1, "TRANSPOSE": 4,
            "RESIZE_BILINEAR": 3, "CONCATENATION": 2, "RESIZE_NEAREST_NEIGHBOR": 3, "ADD": 2,
            "DEQUANTIZE": 2, "LOGISTIC": 2, "MEAN": 2, "FULLY_CONNECTED": 5, "MUL": 2,
            "MAX_POOL_2D": 2, "LEAKY_RELU": 1, "AVERAGE_POOL_2D": 2, "TANH": 2, "SOFTMAX": 2,
            "REVERSE_V2": 3, LSTM: 1, "SUB": 2, "PAD": 2, "PADV2": 2, "SLICE": 2,
            "STRIDED_SLICE": 2, "SPLIT": 2, "SPLIT_V": 2, "GATHER": 2, "MAXIMUM": 2, "MINIMUM": 2,
            "PACK": 2, "UNPACK": 2, "RELU": 2, "RELU6": 2, "SQUEEZE": 1, "EXPAND_DIMS": 1,
            "HARD_SWISH": 1, "SUM": 2, "PRELU": 1}
MIN_RANGE = 1e-6  # narrower calibrated ranges are widened to this (keeps multipliers representable)


def _qp(scale, zp=0, axis=0) -> QuantParams:
    return QuantParams(scale=np.atleast_1d(np.asarray(scale, np.float32)),
                       zero_point=np.atleast_1d(np.asarray(zp, np.int64)), axis=int(axis))


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def affine_params(lo: float, hi: float) -> tuple:
    """int8 asymmetric (scale, zp) for the real range [lo, hi] widened to hold 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < MIN_RANGE:
        hi = lo + MIN_RANGE
    s = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / s), -128, 127))
    return float(np.float32(s)), zp


def hidden_params(lo: float, hi: float) -> tuple:
    """int8 (scale, zp) of a projected LSTM's hidden m = o·tanh(c) (intermediate 4) for its
    calibrated range [lo, hi]: the scale as for any activation, (hi - lo) / 255 over the range
    widened to hold 0. The zero point is negated with respect to the usual one: LiteRT's integer
    LSTM stores m as clamp(round(m / s) - zp) and gives the projection zp·ΣWp back through its bias
    (lstm_eval CwiseMul / PrecomputeZeroPointTimesWeightWithBias), so the representable range is
    [(-128 + zp)·s, (127 + zp)·s]; zp = 128 + lo / s puts [lo, hi] in it."""
    s, zp = affine_params(lo, hi)
    return s, int(np.clip(-zp, -128, 127))


def symmetric_weights(w: np.ndarray, axis):
    """int8 symmetric weights: per channel along `axis` (or per tensor when None)."""
    w = np.asarray(w, np.float64)
    if axis is None:
        m = np.array([np.abs(w).max(initial=0.0)])
    else:
        m = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1, initial=0.0)
    s = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)
    bshape = [1] * w.ndim
    if axis is not None:
        bshape[axis] = -1
    q = np.clip(np.rint(w / s.astype(np.float64).reshape(bshape)), -127, 127).astype(np.int8)
    return q, s


def _bias(b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """int32 bias q = round(b / (s_x·s_w)), clipped to int32."""
    q = np.rint(np.asarray(b, np.float64) / scale.astype(np.float64))
    return np.clip(q, -2 ** 31 + 1, 2 ** 31 - 1).astype(np.int32)


# ---- calibration -------------------------------------------------------------------------------

def _float_activations(g: Graph) -> list:
    out = [t for t in g.inputs if g.tensors[t].dtype == F32]
    for n in g.nodes:
        out += [t for t in n.outputs if g.tensors[t].dtype == F32 and t not in out]
    return out


def _interpreter_for(g: Graph):
    """An xnn Interpreter over an in-memory graph (no file, no passes)."""
    from ..interpreter import Interpreter

    return Interpreter(graph=g, num_threads=1)


def run_feed(it, g: Graph, k: int, feed) -> None:
    """Run calibration sample k (one array per graph input, shapes checked) through `it`, an
    Interpreter over g, from reset state."""
    if len(feed) != len(g.inputs):
        raise XnnError(f"calibration sample {k} has {len(feed)} inputs, the model takes {len(g.inputs)}")
    it.reset_all_variables()
    for t, x in zip(g.inputs, feed):
        x = np.asarray(x)
        spec = g.tensors[t]
        if tuple(x.shape) != tuple(spec.shape):
            raise XnnError(f"calibration sample {k}: input '{spec.name}' has shape {list(x.shape)}, "
                           f"the model takes {list(spec.shape)}")
        it.set_tensor(t, x.astype(spec.dtype))
    it.invoke()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_float_stats(g: Graph, node: Node, x: np.ndarray, outputs: bool = False):
    """The ranges the integer LSTM needs that no graph tensor holds, from a float64 NumPy LSTM run
    on its recorded input x: {"c": max |c_t|, "m": [min, max] of the hidden m_t = o·tanh(c_t)}
    over all steps (lstm_float_run). outputs=True: (stats, the output sequence [batch, time, n_output])."""
    w = [None if t < 0 else (None if g.tensors[t].data is None else np.asarray(g.tensors[t].data, np.float64))
         for t in node.inputs]
    stats, seq = lstm_float_run(w, node.options, x, sequences=outputs)
    return (stats, seq["h"]) if outputs else stats


def lstm_float_run(w: list, opt: dict, x: np.ndarray, sequences: bool = False):
    """A float64 NumPy run of UNIDIRECTIONAL_SEQUENCE_LSTM with real-valued weights w (by input slot,
    None where absent) on its input x (gates i, f, g, o; c = f·c + i·g clipped to cell_clip; with
    projection the state fed back (and output) is h_t = clip(Wp·m_t + bp, proj_clip), without it
    h_t = m_t). Returns (stats, seq): stats {"c": max |c_t|, "m": [min, max] of m_t} over all steps;
    with `sequences` seq = {"h": outputs, "h_prev": the state each step reads (zeros first), "m": the
    hidden m_t}, each [batch, time, n] (time-major when the op is), else None."""
    w = list(w) + [None] * (24 - len(w))
    tm = bool(opt.get("time_major", False))
    x = np.asarray(np.swapaxes(x, 0, 1) if tm else x, np.float64)  # -> [batch, time, features]
    B, T = x.shape[:2]
    nc = w[2].shape[0]
    h = np.zeros((B, w[6].shape[1]))
    c = np.zeros((B, nc))
    clip = float(opt.get("cell_clip", 0.0) or 0.0)
    pclip = float(opt.get("proj_clip", 0.0) or 0.0)
    wp, bp = w[16], w[17]
    cmax, mlo, mhi = 0.0, math.inf, -math.inf
    hs, hp, ms = [], [], []
    for t in range(T):
        if sequences:
            hp.append(h)
        a = [x[:, t] @ w[1 + k].T + h @ w[5 + k].T + (w[12 + k] if w[12 + k] is not None else 0.0)
             for k in range(4)]
        i, f, gg, o = _sigmoid(a[0]), _sigmoid(a[1]), np.tanh(a[2]), _sigmoid(a[3])
        c = f * c + i * gg
        if clip > 0:
            c = np.clip(c, -clip, clip)
        cmax = max(cmax, float(np.abs(c).max(initial=0.0)))
        m = o * np.tanh(c)
        mlo, mhi = min(mlo, float(m.min(initial=math.inf))), max(mhi, float(m.max(initial=-math.inf)))
        if wp is None:
            h = m
        else:
            h = m @ wp.T + (bp if bp is not None else 0.0)
            if pclip > 0:
                h = np.clip(h, -pclip, pclip)
        if sequences:
            hs.append(h)
            ms.append(m)
    stats = {"c": cmax, "m": [mlo, mhi] if T else [0.0, 0.0]}
    if not sequences:
        return stats, None

    def stack(v, n):
        y = np.stack(v, axis=1) if v else np.zeros((B, 0, n))
        return np.swapaxes(y, 0, 1) if tm else y

    return stats, {"h": stack(hs, h.shape[1]), "h_prev": stack(hp, h.shape[1]), "m": stack(ms, nc)}


def _merge_lstm_stats(acc: dict, s: dict) -> dict:
    if not acc:
        return {"c": s["c"], "m": list(s["m"])}
    return {"c": max(acc["c"], s["c"]), "m": [min(acc["m"][0], s["m"][0]), max(acc["m"][1], s["m"][1])]}


def calibrate(g: Graph, feeds: list, progress=None) -> tuple:
    """Run the float graph over the feeds: ({tensor: [min, max]}, {lstm node position: stats}),
    stats = {"c": max |cell state|, "m": [min, max] of the hidden o·tanh(c)} (_lstm_float_stats)."""
    acts = _float_activations(g)
    cal = g.replace(outputs=tuple(acts))
    it = _interpreter_for(cal)
    ranges = {}
    cells = {}
    lstms = [(p, n) for p, n in enumerate(g.nodes) if n.op == LSTM]
    for k, feed in enumerate(feeds):
        run_feed(it, g, k, feed)
        for t in acts:
            y = it._arrays[t]
            if y.size == 0:
                continue
            if not np.all(np.isfinite(y)):
                raise XnnError(f"calibration sample {k}: tensor '{g.tensors[t].name}' is not finite")
            lo, hi = float(y.min()), float(y.max())
            r = ranges.setdefault(t, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
        for p, n in lstms:
            cells[p] = _merge_lstm_stats(cells.get(p), _lstm_float_stats(g, n, it._arrays[n.inputs[0]]))
        if progress is not None:
            progress(f"  calibration {k + 1}/{len(feeds)}")
    return ranges, cells


# ---- parameter choice --------------------------------------------------------------------------

class _Groups:
    """Union-find over tensor indices."""

    def __init__(self):
        self.parent = {}

    def find(self, t):
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


def _check_supported(g: Graph):
    for n in g.nodes:
        floats = [t for t in list(n.inputs) + list(n.outputs) if t >= 0 and g.tensors[t].dtype == F32]
        if not floats:
            continue
        if n.op not in SHARED and n.op not in FREE:
            raise XnnError(f"node {n.name or n.op}: int8 quantization of {n.op} is not supported")
        if n.op == LSTM:
            ins = list(n.inputs) + [-1] * (24 - len(n.inputs))
            if any(ins[k] >= 0 for k in (9, 10, 11, 20, 21, 22, 23)) or ins[1] < 0:
                raise XnnError(f"node {n.name or n.op}: int8 quantization supports LSTMs without "
                               "CIFG, peephole or layer norm (projection is supported)")
            if ins[17] >= 0 and ins[16] < 0:
                raise XnnError(f"node {n.name or n.op}: LSTM projection bias without projection weights")
            act = n.options.get("fused_activation_function", 0)
            if act not in (4, "TANH"):
                raise XnnError(f"node {n.name or n.op}: int8 quantization needs the LSTM's cell activation "
                               f"to be TANH (LiteRT's integer LSTM always uses tanh), got {act}")
        slots = [WEIGHTED[n.op][0]] if n.op in WEIGHTED else []
        if n.op == LSTM:  # gate weights, and the projection weights and bias where present
            slots = list(range(1, 9)) + [k for k in (16, 17) if k < len(n.inputs) and n.inputs[k] >= 0]
        for k in slots:
            w = g.tensors[n.inputs[k]] if k < len(n.inputs) and n.inputs[k] >= 0 else None
            if w is None or w.data is None or w.dtype != F32:
                raise XnnError(f"node {n.name or n.op}: weights must be float32 constants to quantize "
                               f"(got {'none' if w is None else w.dtype.name}; is the model already "
                               "quantized?)")


def choose_params(g: Graph, ranges: dict) -> dict:
    """tensor -> (scale, zp) for every float activation (and shared float constants)."""
    groups = _Groups()
    fixed = {}
    for n in g.nodes:
        if n.op in SHARED:
            fl = [t for t in list(n.inputs) + list(n.outputs) if t >= 0 and g.tensors[t].dtype == F32]
            for t in fl[1:]:
                groups.union(fl[0], t)
        if n.op in FIXED_OUTPUT:
            fixed[n.outputs[0]] = FIXED_OUTPUT[n.op]
    for t, spec in enumerate(g.tensors):  # float constants feeding activation slots
        if spec.dtype == F32 and spec.data is not None and t not in ranges and spec.size:
            ranges[t] = [float(np.min(spec.data)), float(np.max(spec.data))]
    merged, gfixed = {}, {}
    for t, (lo, hi) in ranges.items():
        r = groups.find(t)
        m = merged.setdefault(r, [lo, hi])
        m[0], m[1] = min(m[0], lo), max(m[1], hi)
        if t in fixed:
            gfixed[r] = fixed[t]
    params = {}
    for t in ranges:
        r = groups.find(t)
        params[t] = gfixed.get(r) or affine_params(*merged[r])
    return params


# ---- graph rewrite -----------------------------------------------------------------------------

def quantize_graph(g: Graph, calibration_inputs: list, int8_io: bool = False, progress=None) -> Graph:
    """A full-integer int8 graph from float graph `g`, calibrated on `calibration_inputs` (a list of
    feeds, each a list of input arrays). Float inputs/outputs stay float behind QUANTIZE /
    DEQUANTIZE nodes unless int8_io."""
    from .fold import fold_constants
    from .passes import expand_bidirectional_lstm, expand_channel_shuffle

    if not calibration_inputs:
        raise XnnError("quantization needs at least one calibration sample")
    g = expand_bidirectional_lstm(expand_channel_shuffle(fold_constants(g)))
    for t in g.inputs:
        if g.tensors[t].dtype != F32:
            raise XnnError(f"input '{g.tensors[t].name}' is {g.tensors[t].dtype.name}: quantization takes a "
                           "float model")
    _check_supported(g)
    ranges, cells = calibrate(g, calibration_inputs, progress)
    handled = set()  # constants rewritten by their op (weights, biases)
    for n in g.nodes:
        if n.op in WEIGHTED:
            handled.update(t for t in n.inputs[1:3] if t >= 0)
        if n.op == LSTM:
            handled.update(t for t in n.inputs[1:] if t >= 0)
    params = choose_params(g, {t: r for t, r in ranges.items()})
    for t in handled:
        params.pop(t, None)

    tensors = list(g.tensors)
    # activations and plain float constants -> int8 with their parameters
    for t, (s, zp) in params.items():
        spec = tensors[t]
        if spec.dtype != F32:
            continue
        data = None
        if spec.data is not None:
            data = _ro(np.clip(np.rint(np.asarray(spec.data, np.float64) / s) + zp, -128, 127).astype(np.int8))
        tensors[t] = replace(spec, dtype=I8, quant=_qp(s, zp), data=data)
    for t, spec in enumerate(tensors):  # float activations no node ever wrote or read
        if spec.dtype == F32 and spec.data is None and t not in handled and not spec.is_variable:
            tensors[t] = replace(spec, dtype=I8, quant=_qp(*affine_params(0.0, 0.0)))

    nodes = []
    for p, n in enumerate(g.nodes):
        n = replace(n, version=VERSIONS.get(n.op, n.version))
        if n.op in WEIGHTED and tensors[n.inputs[1]].dtype == F32:
            wslot, axis, bslot = WEIGHTED[n.op]
            s_x = float(tensors[n.inputs[0]].quant.s)
            wt = n.inputs[wslot]
            q, s_w = symmetric_weights(g.tensors[wt].data, axis)
            per_tensor = s_w.size == 1
            tensors[wt] = replace(g.tensors[wt], dtype=I8, data=_ro(q),
                                  quant=_qp(s_w, np.zeros(s_w.size), 0 if per_tensor else axis))
            if len(n.inputs) > bslot and n.inputs[bslot] >= 0:
                bt = n.inputs[bslot]
                s_b = (np.float32(s_x) * s_w).astype(np.float32)
                tensors[bt] = replace(g.tensors[bt], dtype=I32, data=_ro(_bias(g.tensors[bt].data, s_b)),
                                      quant=_qp(s_b, np.zeros(s_b.size), 0))
        elif n.op == LSTM:
            n = _quantize_lstm(g, n, p, tensors, cells)
        nodes.append(n)

    # graph I/O
    inputs, outputs, pre, post = [], [], [], []
    for t in g.inputs:
        if g.tensors[t].dtype == F32:
            f = len(tensors)
            tensors.append(replace(g.tensors[t], name=g.tensors[t].name, quant=None))
            tensors[t] = replace(tensors[t], name=tensors[t].name + "_int8")
            pre.append(Node("QUANTIZE", (f,), (t,), frozen_options(), VERSIONS["QUANTIZE"], "QUANTIZE"))
            inputs.append(f)
        else:
            inputs.append(t)
    for t in g.outputs:
        if g.tensors[t].dtype == F32:
            f = len(tensors)
            tensors.append(replace(g.tensors[t], quant=None))
            tensors[t] = replace(tensors[t], name=tensors[t].name + "_int8")
            post.append(Node("DEQUANTIZE", (t,), (f,), frozen_options(), VERSIONS["DEQUANTIZE"], "DEQUANTIZE"))
            outputs.append(f)
        else:
            outputs.append(t)
    all_nodes = pre + nodes + post
    all_nodes = [replace(n, name=f"#{i} {n.op}") for i, n in enumerate(all_nodes)]
    q = Graph(tensors=tuple(tensors), nodes=tuple(all_nodes), inputs=tuple(inputs),
              outputs=tuple(outputs), description=(g.description or "") + " (xnn int8 PTQ)")
    return int8_io_graph(q) if int8_io else q


def int8_io_graph(q: Graph) -> Graph:
    """The same int8 graph with its QUANTIZE (float input → int8) and DEQUANTIZE (int8 → float
    output) boundary nodes removed: the int8 tensors become the model's inputs and outputs."""
    swap_in = {n.inputs[0]: n.outputs[0] for n in q.nodes
               if n.op == "QUANTIZE" and n.inputs[0] in q.inputs and q.tensors[n.inputs[0]].dtype == F32}
    swap_out = {n.outputs[0]: n.inputs[0] for n in q.nodes
                if n.op == "DEQUANTIZE" and n.outputs[0] in q.outputs and q.tensors[n.inputs[0]].dtype == I8}
    nodes = [n for n in q.nodes if not (n.op == "QUANTIZE" and n.inputs[0] in swap_in)
             and not (n.op == "DEQUANTIZE" and n.outputs[0] in swap_out)]
    nodes = [replace(n, name=f"#{i} {n.op}") for i, n in enumerate(nodes)]
    tensors = list(q.tensors)
    for f, t in list(swap_in.items()) + [(f, t) for t, f in swap_out.items()]:
        tensors[t] = replace(tensors[t], name=q.tensors[f].name)  # the int8 tensor takes the I/O name
    return q.replace(tensors=tuple(tensors), nodes=tuple(nodes), inputs=tuple(swap_in.get(t, t) for t in q.inputs),
                     outputs=tuple(swap_out.get(t, t) for t in q.outputs))


def _quantize_lstm(g: Graph, n: Node, p: int, tensors: list, cells: dict) -> Node:
    """Rewrite one float LSTM node in `tensors` to the integer 8x8→16 form; returns the new node."""
    ins = list(n.inputs) + [-1] * (20 - len(n.inputs))
    x, y = tensors[ins[0]], tensors[n.outputs[0]]
    s_x = float(x.quant.s)
    s_y, zp_y = float(y.quant.s), int(y.quant.zp)
    stats = cells.get(p) or {"c": 0.0, "m": [0.0, 0.0]}
    projection = ins[16] >= 0
    s_w = {}
    for k in list(range(1, 9)) + ([16] if projection else []):
        q, s = symmetric_weights(g.tensors[ins[k]].data, None)
        s_w[k] = s
        tensors[ins[k]] = replace(g.tensors[ins[k]], dtype=I8, data=_ro(q), quant=_qp(s))
    for gate in range(4):
        bt = ins[12 + gate]
        s_b = (np.float32(s_x) * s_w[1 + gate]).astype(np.float32)
        b = g.tensors[bt].data if bt >= 0 else None
        if b is None:
            raise XnnError(f"node {n.name}: LSTM gate {gate} has no bias")
        tensors[bt] = replace(g.tensors[bt], dtype=I32, data=_ro(_bias(b, s_b)), quant=_qp(s_b))
    # cell: int16 with scale 2^cs holding max|c|: 2^cs · 32767 >= max|c| -> cs = ceil(log2 max|c|) - 15
    cmax = max(stats["c"], 1e-6)
    cs = int(np.clip(math.ceil(math.log2(cmax)) - 15, -15, -9))
    # hidden m = o·tanh(c) (intermediate 4): without projection it is the output itself; with
    # projection it is the projection's input and takes its own calibrated range
    s_m, zp_m = (hidden_params(*stats["m"]) if projection else (s_y, zp_y))
    if projection and ins[17] >= 0:  # projection bias: int32 at s_Wp·s_m (added before the rescale)
        bt = ins[17]
        s_b = (np.float32(s_w[16]) * np.float32(s_m)).astype(np.float32)
        tensors[bt] = replace(g.tensors[bt], dtype=I32, data=_ro(_bias(g.tensors[bt].data, s_b)),
                              quant=_qp(s_b))
    h, c = ins[18], ins[19]
    tensors[h] = replace(g.tensors[h], dtype=I8, quant=_qp(s_y, zp_y), data=None)
    tensors[c] = replace(g.tensors[c], dtype=I16, quant=_qp(2.0 ** cs), data=None)
    inter = []
    for name in ("input_to_input", "input_to_forget", "input_to_cell", "input_to_output"):
        inter.append(len(tensors))
        tensors.append(TensorSpec(f"{y.name}/{name}_intermediate", (0,), F32))
    inter.append(len(tensors))
    tensors.append(TensorSpec(f"{y.name}/effective_hidden_scale_intermediate", (0,), I8, _qp(s_m, zp_m)))
    return replace(n, intermediates=tuple(inter))
