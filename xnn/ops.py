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

from .kernels import activations, conv, elementwise, fc, pool, quantize, resize, shape


@dataclass(frozen=True)
class OpDef:
    prepare: Callable
    reference: Callable


OPS: dict[str, OpDef] = {}
for _module in (activations, conv, elementwise, fc, pool, quantize, resize, shape):
    for _name, (_prepare, _reference) in _module.OPS.items():
        if _name in OPS:
            raise RuntimeError(f"op {_name} registered twice")
        OPS[_name] = OpDef(_prepare, _reference)

# Highest op version (TFLite OperatorCode.version) each op's kernels implement; a newer version in
# a file is rejected at load.
MAX_VERSION = {name: 12 for name in OPS}
