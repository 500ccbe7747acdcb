"""The one op table: op name -> OpDef(prepare, reference), built from explicit imports.

Contract for every op (see xnn/kernels/*):
- `prepare(ctx: OpContext) -> (run, out_shapes)`. Called at load / allocate_tensors time with the
  node's options and tensor specs (input shapes are current). It validates the configuration
  (raising XnnError via `ctx.fail(...)` for anything unsupported), computes everything computable
  once (requant multipliers, packed weights, clamps, index tables) and returns:
    * `run(ins, outs)`: writes the node's outputs into the preallocated arrays `outs` given the input
      arrays `ins` (None for an absent optional input). It must not allocate per call where that can
      be avoided and must never write into `ins`;
    * `out_shapes`: a list of output shape tuples.
- `reference(ctx, ins) -> list[np.ndarray]`: the plain NumPy spec of the op, used by tests and by
  XNN_VALIDATE=1 to check `run`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .kernels import activations, conv, elementwise, fc, lstm, pool, quantize, resize, shape


@dataclass(frozen=True)
class OpDef:
    prepare: Callable
    reference: Callable


OPS: dict[str, OpDef] = {}
for _module in (activations, conv, elementwise, fc, lstm, pool, quantize, resize, shape):
    for _name, (_prepare, _reference) in _module.OPS.items():
        if _name in OPS:
            raise RuntimeError(f"op {_name} registered twice")
        OPS[_name] = OpDef(_prepare, _reference)

# Highest op version (TFLite OperatorCode.version) accepted per op: the highest LiteRT 2.x
# registers. Versions mostly encode operand types, which each op's prepare checks itself; a version
# above these is a feature xnn has never seen and is rejected at load. Ops absent here: version 1.
MAX_VERSION = {
    "CONV_2D": 8, "DEPTHWISE_CONV_2D": 7, "FULLY_CONNECTED": 13, "TRANSPOSE_CONV": 5,
    "AVERAGE_POOL_2D": 3, "MAX_POOL_2D": 3, "MEAN": 3, "SUM": 2, "REDUCE_MAX": 3,
    "ADD": 5, "SUB": 5, "MUL": 7, "CONCATENATION": 4, "RESHAPE": 2, "TRANSPOSE": 6,
    "PAD": 4, "PADV2": 4, "SLICE": 6, "STRIDED_SLICE": 8, "SPLIT": 4, "SPLIT_V": 2,
    "PACK": 4, "UNPACK": 4, "REVERSE_V2": 3, "GATHER": 7, "SQUEEZE": 2, "EXPAND_DIMS": 1,
    "RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 4, "SOFTMAX": 3, "LOGISTIC": 3,
    "TANH": 3, "RELU": 3, "RELU6": 3, "RELU_N1_TO_1": 1, "LEAKY_RELU": 2, "PRELU": 1,
    "HARD_SWISH": 1, "QUANTIZE": 3, "DEQUANTIZE": 6, "ARG_MAX": 3, "MAXIMUM": 4,
    "MINIMUM": 4, "UNIDIRECTIONAL_SEQUENCE_LSTM": 4, "BIDIRECTIONAL_SEQUENCE_LSTM": 3,
}
