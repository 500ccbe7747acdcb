"""Constant folding: evaluate nodes whose inputs are all constants once, at load.

This is what turns fp16-weight models (constant float16 weights -> DEQUANTIZE -> CONV_2D) into plain
float32 weights, and removes shape arithmetic on constants. Nodes are evaluated with the op's NumPy
reference (the spec), so folding cannot change results.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import XnnError
from ..ir import Graph, OpContext

# ops with state or side effects are never folded
_NEVER = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM"}


def fold_constants(g: Graph) -> Graph:
    from ..ops import OPS

    tensors = list(g.tensors)
    keep = []
    for node in g.nodes:
        ins = [None if t < 0 else tensors[t] for t in node.inputs]
        foldable = (node.op in OPS and node.op not in _NEVER and node.inputs
                    and all(s is None or (s.data is not None and not s.is_variable) for s in ins)
                    and not any(t in g.outputs for t in node.outputs))
        if not foldable:
            keep.append(node)
            continue
        ctx = OpContext(node=node, ins=tuple(ins), outs=tuple(tensors[t] for t in node.outputs),
                        inter=tuple(tensors[t] for t in node.intermediates))
        try:
            values = OPS[node.op].reference(ctx, [None if s is None else s.data for s in ins])
        except XnnError:
            raise
        except Exception as e:
            raise XnnError(f"node {node.name}: cannot evaluate on constants: {type(e).__name__}: {e}") from e
        for t, v in zip(node.outputs, values):
            v = np.array(v, dtype=tensors[t].dtype)
            if tensors[t].shape and tuple(v.shape) != tuple(tensors[t].shape):
                raise XnnError(f"node {node.name}: constant output '{tensors[t].name}' has shape "
                               f"{v.shape}, the model declares {tensors[t].shape}")
            v.flags.writeable = False
            tensors[t] = replace(tensors[t], data=v, shape=tuple(v.shape))
    if len(keep) == len(g.nodes):
        return g
    return replace(g, tensors=tuple(tensors), nodes=tuple(keep))
