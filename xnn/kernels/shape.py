"""Shape and data-movement ops: RESHAPE, ... (pure indexing; int8 and float alike)."""
from __future__ import annotations

import numpy as np


def _resolve_shape(ctx, total: int, new_shape) -> tuple:
    new_shape = [int(d) for d in new_shape]
    if new_shape.count(-1) > 1 or any(d < -1 for d in new_shape):
        ctx.fail(f"invalid target shape {new_shape}")
    known = int(np.prod([d for d in new_shape if d != -1], dtype=np.int64))
    if -1 in new_shape:
        if known == 0 or total % known:
            ctx.fail(f"cannot reshape {total} elements to {new_shape}")
        new_shape[new_shape.index(-1)] = total // known
    elif known != total:
        ctx.fail(f"cannot reshape {ctx.ins[0].shape} ({total} elements) to {new_shape}")
    return tuple(new_shape)


def _reshape_target(ctx) -> tuple:
    x = ctx.ins[0]
    total = int(np.prod(x.shape, dtype=np.int64))
    if len(ctx.ins) > 1 and ctx.ins[1] is not None:
        s = ctx.ins[1]
        if s.data is None:
            ctx.fail("RESHAPE with a computed (non-constant) shape tensor is not supported")
        return _resolve_shape(ctx, total, s.data.ravel())
    if ctx.opt.get("new_shape"):
        return _resolve_shape(ctx, total, ctx.opt["new_shape"])
    return _resolve_shape(ctx, total, ctx.outs[0].shape)


def reshape_ref(ctx, ins):
    return [np.asarray(ins[0]).reshape(_reshape_target(ctx)).copy()]


def prepare_reshape(ctx):
    out_shape = _reshape_target(ctx)

    def run(ins, outs):
        outs[0].reshape(-1)[:] = ins[0].reshape(-1)

    return run, [out_shape]


OPS = {
    "RESHAPE": (prepare_reshape, reshape_ref),
}
