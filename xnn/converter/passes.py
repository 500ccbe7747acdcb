"""Graph passes: each takes a Graph and returns a new Graph (nodes are frozen; nothing is mutated).

- `remove_dead_nodes`: drop nodes whose outputs never reach a graph output.
- `fuse_channel_shuffle`: RESHAPE [..., C] -> [..., g, C/g], TRANSPOSE swapping the last two dims,
  RESHAPE back to [..., C] becomes one CHANNEL_SHUFFLE node (options {"groups": g}), which computes
  out[..., i·g + j] = in[..., j·(C/g) + i] for i < C/g, j < g.
- `expand_channel_shuffle`: the inverse, for writing a graph back as a plain TFLite model.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorSpec, frozen_options


def default_passes():
    """Passes applied at load, in order."""
    return [remove_dead_nodes, fuse_channel_shuffle]


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
