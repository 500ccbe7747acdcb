"""Graph passes: each takes a Graph and returns a new Graph (nodes are frozen; nothing is mutated).

- `remove_dead_nodes`: drop nodes whose outputs never reach a graph output.
- `fuse_channel_shuffle`: RESHAPE [..., C] -> [..., g, C/g], TRANSPOSE swapping the last two dims,
  RESHAPE back to [..., C] becomes one CHANNEL_SHUFFLE node (options {"groups": g}), which computes
  out[..., i·g + j] = in[..., j·(C/g) + i] for i < C/g, j < g.
- `expand_channel_shuffle`: the inverse, for writing a graph back as a plain TFLite model.
- `fuse_bidirectional_lstm`: tf_keras' Bidirectional(LSTM), converted as
      fw = LSTM_f(x); bw = LSTM_b(REVERSE_V2(x, time)); y = CONCATENATION([fw, REVERSE_V2(bw, time)], -1)
  becomes one BIDI_SEQUENCE_LSTM node (xnn/kernels/lstm.py) that runs the backward LSTM over time
  in reverse directly on x and writes both directions into their halves of y.
- `expand_bidirectional_lstm`: the inverse.
- `eliminate_quantize_pairs`: QUANTIZE(DEQUANTIZE(x)) with identical parameters, and an int→int
  QUANTIZE with identical parameters, are the identity on x; their readers read x instead.
- `fuse_activations`: a RELU / RELU6 / RELU_N1_TO_1 node after an op with a fused activation slot
  becomes that slot (exact: float clamps compose; int8 only where the activation does not rescale).

XNN_NO_FUSE=1 in the environment leaves the fusions out of `default_passes()` (dead-node removal
stays), e.g. to run a model exactly as its file spells it.
"""
from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np

from ..ir import Graph, Node, TensorSpec, frozen_options


def default_passes():
    """Passes applied at load, in order (no fusions when XNN_NO_FUSE is set to anything but 0)."""
    if os.environ.get("XNN_NO_FUSE", "") not in ("", "0"):
        return [remove_dead_nodes]
    return [remove_dead_nodes, fuse_channel_shuffle, fuse_bidirectional_lstm, eliminate_quantize_pairs,
            fuse_activations]


# ---- dead nodes --------------------------------------------------------------------------------

def _has_side_effects(g: Graph, node: Node) -> bool:
    """Nodes kept regardless of their outputs: no outputs at all, or touching variable (state) tensors."""
    if not node.outputs:
        return True
    return any(t >= 0 and g.tensors[t].is_variable for t in tuple(node.inputs) + tuple(node.outputs))


def remove_dead_nodes(g: Graph) -> Graph:
    """Keep only nodes that (transitively) produce a graph output or have side effects."""
    live = set(g.outputs)
    keep = []
    for node in reversed(g.nodes):
        if _has_side_effects(g, node) or any(t in live for t in node.outputs):
            keep.append(node)
            live.update(t for t in node.inputs if t >= 0)
            live.update(t for t in node.intermediates if t >= 0)
    if len(keep) == len(g.nodes):
        return g
    return g.replace(nodes=tuple(reversed(keep)))


# ---- channel shuffle ---------------------------------------------------------------------------

def _same_quant(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (a.scale.size == b.scale.size and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point) and a.axis == b.axis)


def _reshape_ok(g: Graph, node: Node, want: tuple) -> bool:
    """A RESHAPE whose declared output shape is `want` and whose shape input (if any) agrees."""
    if node.op != "RESHAPE" or len(node.outputs) != 1 or not node.inputs:
        return False
    if tuple(g.tensors[node.outputs[0]].shape) != want:
        return False
    target = None
    if len(node.inputs) > 1 and node.inputs[1] >= 0:
        s = g.tensors[node.inputs[1]]
        if s.data is None:
            return False
        target = [int(d) for d in np.asarray(s.data).ravel()]
    elif node.options.get("new_shape"):
        target = [int(d) for d in node.options["new_shape"]]
    if target is None:
        return True
    if len(target) != len(want) or target.count(-1) > 1:
        return False
    return all(t == w or t == -1 for t, w in zip(target, want))


def _shuffle_at(g: Graph, i: int, consumers: dict):
    """(groups, node positions) if nodes starting at position i form a channel shuffle, else None."""
    r1 = g.nodes[i]
    if r1.op != "RESHAPE" or len(r1.outputs) != 1 or not r1.inputs or r1.inputs[0] < 0:
        return None
    x_t, t1 = r1.inputs[0], r1.outputs[0]
    x, s1 = g.tensors[x_t], g.tensors[t1]
    xs, s1s = tuple(x.shape), tuple(s1.shape)
    if len(xs) < 1 or len(s1s) != len(xs) + 1 or s1s[:-2] != xs[:-1]:
        return None
    groups, per = s1s[-2], s1s[-1]
    if groups * per != xs[-1] or not _reshape_ok(g, r1, s1s):
        return None
    chain = [i]
    tensors = [t1]
    for op in ("TRANSPOSE", "RESHAPE"):
        users = consumers.get(tensors[-1], [])
        if len(users) != 1 or tensors[-1] in g.outputs:
            return None
        j = users[0]
        node = g.nodes[j]
        if node.op != op or not node.inputs or node.inputs[0] != tensors[-1] or len(node.outputs) != 1 \
                or tensors[-1] in node.inputs[1:]:
            return None
        chain.append(j)
        tensors.append(node.outputs[0])
    tr, r2 = g.nodes[chain[1]], g.nodes[chain[2]]
    rank = len(s1s)
    if len(tr.inputs) != 2 or tr.inputs[1] < 0:
        return None
    perm_t = g.tensors[tr.inputs[1]]
    if perm_t.data is None:
        return None
    perm = [int(p) for p in np.asarray(perm_t.data).ravel()]
    if perm != list(range(rank - 2)) + [rank - 1, rank - 2]:
        return None
    t2, y_t = tensors[1], tensors[2]
    if tuple(g.tensors[t2].shape) != s1s[:-2] + (per, groups) or not _reshape_ok(g, r2, xs):
        return None
    specs = [x, s1, g.tensors[t2], g.tensors[y_t]]
    if any(np.dtype(s.dtype) != np.dtype(x.dtype) for s in specs):
        return None
    if not all(_same_quant(specs[0].quant, s.quant) for s in specs[1:]):
        return None
    if any(s.is_variable or s.data is not None for s in specs[1:]):
        return None
    return groups, chain


def fuse_channel_shuffle(g: Graph) -> Graph:
    """Replace each RESHAPE -> TRANSPOSE(last two dims) -> RESHAPE channel shuffle by one node.

    Applies only when the two intermediate tensors have no other reader and are not graph outputs,
    and dtype and quantization are identical along the chain. The new node reads the first
    RESHAPE's input, writes the last RESHAPE's output and sits at the last RESHAPE's position.
    """
    consumers = g.consumers()
    replace_at = {}  # position of the last RESHAPE -> new node
    drop = set()
    for i, node in enumerate(g.nodes):
        if node.op != "RESHAPE" or i in drop:
            continue
        found = _shuffle_at(g, i, consumers)
        if found is None:
            continue
        groups, chain = found
        if any(p in drop or p in replace_at for p in chain):
            continue
        r1, r2 = g.nodes[chain[0]], g.nodes[chain[2]]
        label = r1.name.split(" ")[0] if r1.name else f"#{chain[0]}"
        replace_at[chain[2]] = Node(op="CHANNEL_SHUFFLE", inputs=(r1.inputs[0],), outputs=(r2.outputs[0],),
                                    options=frozen_options({"groups": int(groups)}), version=1,
                                    name=f"{label} CHANNEL_SHUFFLE")
        drop.update(chain[:2])
    if not replace_at:
        return g
    nodes = []
    for i, node in enumerate(g.nodes):
        if i in drop:
            continue
        nodes.append(replace_at.get(i, node))
    return g.replace(nodes=tuple(nodes))


def _const_i32(name: str, values) -> TensorSpec:
    data = np.asarray(values, np.int32)
    data.flags.writeable = False
    return TensorSpec(name=name, shape=data.shape, dtype=np.dtype(np.int32), data=data)


def expand_channel_shuffle(g: Graph) -> Graph:
    """Rewrite every CHANNEL_SHUFFLE node as RESHAPE -> TRANSPOSE -> RESHAPE (TFLite builtins only)."""
    if not any(n.op == "CHANNEL_SHUFFLE" for n in g.nodes):
        return g
    tensors = list(g.tensors)
    nodes = []

    def add(spec: TensorSpec) -> int:
        tensors.append(spec)
        return len(tensors) - 1

    for node in g.nodes:
        if node.op != "CHANNEL_SHUFFLE":
            nodes.append(node)
            continue
        x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        groups = int(node.options["groups"])
        shape = tuple(int(d) for d in x.shape)
        lead, c = shape[:-1], shape[-1]
        s1, s2 = lead + (groups, c // groups), lead + (c // groups, groups)
        rank = len(s1)
        base = y.name or f"t{node.outputs[0]}"
        t1 = add(TensorSpec(name=f"{base}/shuffle_split", shape=s1, dtype=x.dtype, quant=x.quant))
        t2 = add(TensorSpec(name=f"{base}/shuffle_swap", shape=s2, dtype=x.dtype, quant=x.quant))
        shape1 = add(_const_i32(f"{base}/shuffle_shape1", s1))
        perm = add(_const_i32(f"{base}/shuffle_perm", list(range(rank - 2)) + [rank - 1, rank - 2]))
        shape2 = add(_const_i32(f"{base}/shuffle_shape2", shape))
        label = node.name.split(" ")[0] if node.name else "#?"
        nodes.append(Node(op="RESHAPE", inputs=(node.inputs[0], shape1), outputs=(t1,), name=f"{label} RESHAPE"))
        nodes.append(Node(op="TRANSPOSE", inputs=(t1, perm), outputs=(t2,), name=f"{label} TRANSPOSE"))
        nodes.append(Node(op="RESHAPE", inputs=(t2, shape2), outputs=node.outputs, name=f"{label} RESHAPE"))
    return g.replace(tensors=tuple(tensors), nodes=tuple(nodes))


# ---- bidirectional LSTM ------------------------------------------------------------------------

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
BIDI = "BIDI_SEQUENCE_LSTM"
LSTM_SLOTS = 24  # UNIDIRECTIONAL_SEQUENCE_LSTM inputs with layer-norm slots (20 without)


def _reverse_axis(g: Graph, node: Node):
    """The single axis (normalized, rank-3 input) a REVERSE_V2 node flips, else None."""
    if node.op != "REVERSE_V2" or len(node.inputs) != 2 or len(node.outputs) != 1 or node.inputs[1] < 0:
        return None
    a = g.tensors[node.inputs[1]]
    if a.data is None or a.is_variable:
        return None
    axes = np.asarray(a.data).ravel()
    if axes.size != 1:
        return None
    ax = int(axes[0])
    return ax + 3 if ax < 0 else ax


def _bidi_at(g: Graph, c: int, consumers: dict, producers: dict):
    """(fw, r1, bw, r2) node positions if the CONCATENATION at position c closes a bidirectional
    LSTM that can run fused without changing any result, else None."""
    cat = g.nodes[c]
    if cat.op != "CONCATENATION" or len(cat.inputs) != 2 or len(cat.outputs) != 1:
        return None
    if int(cat.options.get("fused_activation_function", 0)) != 0:
        return None
    y_t = cat.outputs[0]
    y = g.tensors[y_t]
    if len(y.shape) != 3 or int(cat.options.get("axis", 0)) not in (2, -1):
        return None
    fw_t, bwr_t = cat.inputs
    pos = {}
    for key, t, op in (("fw", fw_t, LSTM), ("r2", bwr_t, "REVERSE_V2")):
        p = producers.get(t)
        if p is None or g.nodes[p].op != op:
            return None
        pos[key] = p
    bw_t = g.nodes[pos["r2"]].inputs[0]
    pos["bw"] = producers.get(bw_t)
    if pos["bw"] is None or g.nodes[pos["bw"]].op != LSTM:
        return None
    xr_t = g.nodes[pos["bw"]].inputs[0]
    pos["r1"] = producers.get(xr_t)
    if pos["r1"] is None or g.nodes[pos["r1"]].op != "REVERSE_V2":
        return None
    fw, bw, r1, r2 = (g.nodes[pos[k]] for k in ("fw", "bw", "r1", "r2"))
    x_t = fw.inputs[0]
    if x_t < 0 or r1.inputs[0] != x_t or pos["fw"] == pos["bw"]:
        return None
    for n in (fw, bw):
        if len(n.outputs) != 1 or len(n.inputs) not in (20, LSTM_SLOTS):
            return None
    tm = bool(fw.options.get("time_major", False))
    if bool(bw.options.get("time_major", False)) != tm:
        return None
    ta = 0 if tm else 1
    if _reverse_axis(g, r1) != ta or _reverse_axis(g, r2) != ta:
        return None
    # the four intermediate tensors: one reader each (the next node of the pattern), not outputs
    for t, reader in ((xr_t, pos["bw"]), (bw_t, pos["r2"]), (bwr_t, c), (fw_t, c)):
        if consumers.get(t, []) != [reader] or t in g.outputs:
            return None
    # each LSTM's state tensors are read by it alone (the fused node runs forward, then backward)
    for p in (pos["fw"], pos["bw"]):
        n = g.nodes[p]
        for t in n.inputs:
            if t >= 0 and g.tensors[t].is_variable and consumers.get(t, []) != [p]:
                return None
    x, xr, f, b, br = (g.tensors[t] for t in (x_t, xr_t, fw_t, bw_t, bwr_t))
    specs = (x, xr, f, b, br, y)
    if any(np.dtype(s.dtype) != np.dtype(x.dtype) for s in specs):
        return None
    if any(s.is_variable or s.data is not None for s in specs[1:]):
        return None
    if len(x.shape) != 3 or tuple(xr.shape) != tuple(x.shape) or tuple(br.shape) != tuple(b.shape):
        return None
    if len(f.shape) != 3 or len(b.shape) != 3 or tuple(f.shape[:2]) != tuple(x.shape[:2]) \
            or tuple(b.shape[:2]) != tuple(x.shape[:2]) \
            or tuple(y.shape) != tuple(x.shape[:2]) + (f.shape[2] + b.shape[2],):
        return None
    # reversal moves raw bytes; the backward LSTM reads x with the reversed tensor's quantization
    # and the concatenation must not requantize either half
    if not (_same_quant(x.quant, xr.quant) and _same_quant(f.quant, y.quant)
            and _same_quant(br.quant, y.quant)):
        return None
    return pos["fw"], pos["r1"], pos["bw"], pos["r2"]


def _pad_slots(inputs) -> tuple:
    return tuple(inputs) + (-1,) * (LSTM_SLOTS - len(inputs))


def fuse_bidirectional_lstm(g: Graph) -> Graph:
    """Replace each REVERSE_V2/LSTM/REVERSE_V2/LSTM/CONCATENATION bidirectional LSTM by one node.

    Fires only when the result cannot change: both LSTMs read the same x, both reversals flip the
    time axis, the four intermediate tensors have no other reader and are not graph outputs, the
    concatenation joins [forward, reversed backward] on the last axis with no fused activation,
    and no requantization happens on the way (x and its reversal, both concatenation inputs and
    its output carry identical quantization). The new node sits at the concatenation's position.
    """
    consumers, producers = g.consumers(), g.producers()
    replace_at, drop = {}, set()
    for c, node in enumerate(g.nodes):
        if node.op != "CONCATENATION":
            continue
        found = _bidi_at(g, c, consumers, producers)
        if found is None or any(p in drop or p in replace_at for p in found):
            continue
        fw, bw = g.nodes[found[0]], g.nodes[found[2]]
        options = {f"fw_{k}": v for k, v in fw.options.items()}
        options.update({f"bw_{k}": v for k, v in bw.options.items()})
        options["n_fw_intermediates"] = len(fw.intermediates)
        label = node.name.split(" ")[0] if node.name else f"#{c}"
        inputs = _pad_slots(fw.inputs) + (fw.inputs[0],) + _pad_slots(bw.inputs)[1:]
        # the directions' own output tensors ride along as the last two intermediates: their
        # quantization is part of each LSTM's arithmetic (proj_clip is quantized with it)
        inter = tuple(fw.intermediates) + tuple(bw.intermediates) + (fw.outputs[0], bw.outputs[0])
        replace_at[c] = Node(op=BIDI, inputs=inputs, outputs=node.outputs,
                             options=frozen_options(options), version=1, name=f"{label} {BIDI}",
                             intermediates=inter)
        drop.update(found)
    if not replace_at:
        return g
    nodes = tuple(replace_at.get(i, n) for i, n in enumerate(g.nodes) if i not in drop)
    return g.replace(nodes=nodes)


def expand_bidirectional_lstm(g: Graph) -> Graph:
    """Rewrite every BIDI_SEQUENCE_LSTM node as the five TFLite builtins it was fused from."""
    if not any(n.op == BIDI for n in g.nodes):
        return g
    tensors = list(g.tensors)
    nodes = []

    def add(spec: TensorSpec) -> int:
        tensors.append(spec)
        return len(tensors) - 1

    for node in g.nodes:
        if node.op != BIDI:
            nodes.append(node)
            continue
        opt = dict(node.options)
        n_fw = int(opt.get("n_fw_intermediates", 0))
        fw_opt = {k[3:]: v for k, v in opt.items() if k.startswith("fw_")}
        bw_opt = {k[3:]: v for k, v in opt.items() if k.startswith("bw_")}
        x_t, y_t = node.inputs[0], node.outputs[0]
        x, y = g.tensors[x_t], g.tensors[y_t]
        f, b = node.intermediates[-2:]  # the directions' original outputs
        ta = 0 if fw_opt.get("time_major", False) else 1
        base = y.name or f"t{y_t}"
        label = node.name.split(" ")[0] if node.name else "#?"
        axis = add(_const_i32(f"{base}/bidi_time_axis", [ta]))
        xr = add(TensorSpec(name=f"{base}/bidi_x_reversed", shape=tuple(x.shape), dtype=x.dtype,
                            quant=x.quant))
        br = add(TensorSpec(name=f"{base}/bidi_backward_reversed", shape=tuple(g.tensors[b].shape),
                            dtype=y.dtype, quant=y.quant))
        fw_in = node.inputs[:LSTM_SLOTS]
        bw_in = (xr,) + tuple(node.inputs[LSTM_SLOTS + 1:])
        nodes.append(Node(op=LSTM, inputs=fw_in, outputs=(f,), options=frozen_options(fw_opt),
                          name=f"{label} {LSTM}", intermediates=tuple(node.intermediates[:n_fw])))
        nodes.append(Node(op="REVERSE_V2", inputs=(x_t, axis), outputs=(xr,), name=f"{label} REVERSE_V2"))
        nodes.append(Node(op=LSTM, inputs=bw_in, outputs=(b,), options=frozen_options(bw_opt),
                          name=f"{label} {LSTM}", intermediates=tuple(node.intermediates[n_fw:-2])))
        nodes.append(Node(op="REVERSE_V2", inputs=(b, axis), outputs=(br,), name=f"{label} REVERSE_V2"))
        nodes.append(Node(op="CONCATENATION", inputs=(f, br), outputs=(y_t,),
                          options=frozen_options({"axis": 2, "fused_activation_function": 0}),
                          name=f"{label} CONCATENATION"))
    return g.replace(tensors=tuple(tensors), nodes=tuple(nodes))


# ---- quantize / dequantize pairs ---------------------------------------------------------------
#
# DEQUANTIZE x -> f = fl32(s·(x - z)), then QUANTIZE f -> q = clamp(roundf(f / s) + z). With the same
# (s, z) and dtype on both ends q = x for every finite s > 0 of practical size, but float rounding
# makes this a claim about each (s, z), so it is checked, not assumed: the pass runs both ops'
# references over every representable value of x (256 for 8-bit, 65536 for int16) and fires only
# when the composition is the identity. The same check admits an int→int QUANTIZE whose input and
# output parameters are identical (multiplier 1: mbqm(x - z, 2^30, 1) + z = x).
# QUANTIZE -> DEQUANTIZE is never removed: it rounds f to the grid s·(k - z) and clamps, which
# changes every float value not already on the grid.

_QTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


def _all_values(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)


def _roundtrip_is_identity(x: TensorSpec, via: TensorSpec | None, y: TensorSpec) -> bool:
    """Whether QUANTIZE (after DEQUANTIZE into `via`, if given) maps every value of x's dtype to itself."""
    from ..errors import XnnError
    from ..ir import OpContext
    from ..ops import OPS

    values = _all_values(x.dtype)
    n = values.size
    flat = lambda spec, dt=None: TensorSpec(name=spec.name, shape=(n,), dtype=np.dtype(dt or spec.dtype),
                                            quant=spec.quant)
    try:
        v = values
        src = flat(x)
        if via is not None:
            mid = flat(via, np.float32)
            dq = Node(op="DEQUANTIZE", inputs=(0,), outputs=(1,), name="check DEQUANTIZE")
            v = OPS["DEQUANTIZE"].reference(OpContext(node=dq, ins=(src,), outs=(mid,)), [v])[0]
            src = mid
        q = Node(op="QUANTIZE", inputs=(0,), outputs=(1,), name="check QUANTIZE")
        out = OPS["QUANTIZE"].reference(OpContext(node=q, ins=(src,), outs=(flat(y),)), [v])[0]
    except (XnnError, ValueError, FloatingPointError, OverflowError):
        return False
    return np.asarray(out).dtype == values.dtype and np.array_equal(out, values)


def _plain_activation(spec: TensorSpec) -> bool:
    return spec.data is None and not spec.is_variable


def eliminate_quantize_pairs(g: Graph) -> Graph:
    """Bypass every QUANTIZE whose output provably equals an earlier integer tensor x, bit for bit:
    QUANTIZE(DEQUANTIZE(x)) and int→int QUANTIZE(x), with identical dtype, shape and per-tensor
    quantization at both ends and an identity round trip checked over all values of the dtype.
    Readers of the QUANTIZE output read x; the QUANTIZE (and a DEQUANTIZE left without readers)
    is dropped. A QUANTIZE whose output is a graph output stays (the output keeps its tensor)."""
    producers = g.producers()
    rename = {}
    for node in g.nodes:
        if node.op != "QUANTIZE" or len(node.inputs) != 1 or len(node.outputs) != 1 or node.inputs[0] < 0:
            continue
        y_t, src_t = node.outputs[0], node.inputs[0]
        if y_t in g.outputs or y_t in g.inputs:
            continue
        y, src = g.tensors[y_t], g.tensors[src_t]
        if np.dtype(src.dtype) in _QTYPES:
            x_t, via = src_t, None
        else:
            p = producers.get(src_t)
            dq = g.nodes[p] if p is not None else None
            if dq is None or dq.op != "DEQUANTIZE" or len(dq.inputs) != 1 or dq.inputs[0] < 0:
                continue
            x_t, via = dq.inputs[0], src
        x = g.tensors[x_t]
        if not (np.dtype(x.dtype) in _QTYPES and np.dtype(y.dtype) == np.dtype(x.dtype)
                and tuple(x.shape) == tuple(y.shape) and _plain_activation(y) and not x.is_variable
                and x.quant is not None and not x.quant.per_channel and _same_quant(x.quant, y.quant)
                and (via is None or (_plain_activation(via) and tuple(via.shape) == tuple(x.shape)))):
            continue
        if not _roundtrip_is_identity(x, via, y):
            continue
        rename[y_t] = rename.get(x_t, x_t)
    if not rename:
        return g
    nodes = []
    for node in g.nodes:
        if node.op == "QUANTIZE" and node.outputs[0] in rename:
            continue
        if any(t in rename for t in node.inputs):
            node = replace(node, inputs=tuple(rename.get(t, t) for t in node.inputs))
        nodes.append(node)
    # drop DEQUANTIZE nodes (only those) that lost their last reader
    read = {t for n in nodes for t in tuple(n.inputs) + tuple(n.intermediates)} | set(g.outputs)
    nodes = [n for n in nodes if not (n.op == "DEQUANTIZE" and len(n.outputs) == 1
                                      and n.outputs[0] not in read and not _has_side_effects(g, n))]
    return g.replace(nodes=tuple(nodes))


# ---- activation fusion -------------------------------------------------------------------------
#
# Ops whose kernels clamp their result to the interval of `fused_activation_function` as their last
# step, in float (clamp(v, lo, hi)) or in the output's quantized domain (clamp(q, qlo, qhi) with
# qlo = max(qmin, zp + round(lo / s)), qhi likewise: TFLite's CalculateActivationRangeQuantized).
FUSABLE_PRODUCERS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
                               "AVERAGE_POOL_2D", "MAX_POOL_2D"})
# activation op -> (code in ACTIVATIONS, real interval)
_ACT_OPS = {"RELU": (1, (0.0, math.inf)), "RELU_N1_TO_1": (2, (-1.0, 1.0)), "RELU6": (3, (0.0, 6.0))}
_ACT_INTERVALS = {0: (-math.inf, math.inf), 1: (0.0, math.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def _composed_activation(first: int, then: int):
    """The fused-activation code equal to clamping to `first`'s interval, then to `then`'s: their
    intersection when one interval contains the other, else None (e.g. RELU ∘ RELU_N1_TO_1 = [0, 1]).

    clamp(clamp(v, a1, b1), a2, b2) = clamp(v, max(a1, a2), min(b1, b2)) whenever the intervals
    overlap; in the quantized domain the bounds are monotone in the real bounds, so the same
    nesting holds for the integer clamps of one output quantization."""
    if first not in _ACT_INTERVALS:
        return None
    (a1, b1), (a2, b2) = _ACT_INTERVALS[first], _ACT_INTERVALS[then]
    if a1 <= a2 and b2 <= b1:
        return then
    if a2 <= a1 and b1 <= b2:
        return first
    return None


def fuse_activations(g: Graph) -> Graph:
    """Fold a standalone RELU / RELU6 / RELU_N1_TO_1 into the fused activation of the node producing
    its input, when that cannot change any result:
    - the producer is one of FUSABLE_PRODUCERS with a single output, read by the activation alone
      and not a graph output;
    - float32: the activation reads and writes float32 (clamps compose exactly, see
      `_composed_activation`);
    - int8/uint8: the activation's input and output have identical per-tensor quantization, so it
      rescales by exactly 1 and is the clamp to the same integer bounds the fused slot computes;
    - the producer's current activation composes with this one into a single code.
    The producer then writes the activation's output tensor; the activation node disappears.
    Chains (CONV_2D -> RELU -> RELU6) fuse in one call, so the pass is idempotent."""
    while True:
        fused = _fuse_activations_once(g)
        if fused is g:
            return g
        g = fused


def _fuse_activations_once(g: Graph) -> Graph:
    consumers, producers = g.consumers(), g.producers()
    in_intermediates = {t for n in g.nodes for t in n.intermediates}
    new_at, drop = {}, set()
    for i, act in enumerate(g.nodes):
        if act.op not in _ACT_OPS or len(act.inputs) != 1 or len(act.outputs) != 1 or act.inputs[0] < 0:
            continue
        mid_t, y_t = act.inputs[0], act.outputs[0]
        p = producers.get(mid_t)
        if p is None or p in drop or p in new_at or p >= i:
            continue
        prod = g.nodes[p]
        if prod.op not in FUSABLE_PRODUCERS or len(prod.outputs) != 1:
            continue
        if consumers.get(mid_t, []) != [i] or mid_t in g.outputs or mid_t in g.inputs \
                or mid_t in in_intermediates:
            continue
        mid, y = g.tensors[mid_t], g.tensors[y_t]
        if not (_plain_activation(mid) and _plain_activation(y)) or y_t in g.inputs:
            continue
        dt = np.dtype(mid.dtype)
        if dt != np.dtype(y.dtype) or tuple(mid.shape) != tuple(y.shape):
            continue
        if dt == np.float32:
            if mid.quant is not None or y.quant is not None:
                continue
        elif dt in (np.dtype(np.int8), np.dtype(np.uint8)):
            if mid.quant is None or mid.quant.per_channel or not _same_quant(mid.quant, y.quant):
                continue
        else:
            continue
        try:
            current = int(prod.options.get("fused_activation_function", 0))
        except (TypeError, ValueError):
            continue
        code = _composed_activation(current, _ACT_OPS[act.op][0])
        if code is None:
            continue
        options = dict(prod.options)
        options["fused_activation_function"] = code
        new_at[p] = replace(prod, outputs=(y_t,), options=frozen_options(options))
        drop.add(i)
    if not new_at:
        return g
    nodes = tuple(new_at.get(k, n) for k, n in enumerate(g.nodes) if k not in drop)
    return g.replace(nodes=nodes)
