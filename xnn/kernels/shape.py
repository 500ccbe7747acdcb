"""Shape and data-movement ops: pure indexing, dtype-agnostic, int8 and float alike.

RESHAPE SQUEEZE EXPAND_DIMS TRANSPOSE PAD PADV2 SLICE STRIDED_SLICE SPLIT SPLIT_V PACK UNPACK
REVERSE_V2 GATHER CONCATENATION, and the xnn op CHANNEL_SHUFFLE.

Every op here moves elements without arithmetic, except CONCATENATION of 8-bit inputs whose
quantization differs from the output's (requantized in float32, see `_concat_requant`). Prepare
turns each configuration into NumPy slice views (C-speed strided copies, no allocation of data)
or into Numba loop nests over raw bits (`_permute_run`: TRANSPOSE, CHANNEL_SHUFFLE) whose extents
and strides are computed once; the Numba kernels see arrays reinterpreted as unsigned integers of
the element's size, so one compiled specialization serves int8/uint8/bool, another int32/float32.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..errors import XnnError
from .quant import activation_name

_RAW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT_INDEX = (np.dtype(np.int32), np.dtype(np.int64))
_MAX_TRANSPOSE_RANK = 6


# ---- shared helpers ----------------------------------------------------------------------------

def _prod(dims) -> int:
    return int(np.prod([int(d) for d in dims], dtype=np.int64))


def _raw(a: np.ndarray) -> np.ndarray:
    """1-D view of a C-contiguous array's bits as unsigned integers of the same item size."""
    return a.reshape(-1).view(_RAW[a.dtype.itemsize])


def _const_ints(ctx, k: int, what: str, dtypes=_INT_INDEX) -> np.ndarray:
    """Constant integer input k as an int64 array (its shape kept)."""
    if k >= len(ctx.ins) or ctx.ins[k] is None:
        ctx.fail(f"missing {what} input")
    t = ctx.ins[k]
    if t.data is None:
        ctx.fail(f"{what} must be a constant tensor (computed {what} is not supported)")
    if np.dtype(t.dtype) not in dtypes:
        ctx.fail(f"{what} must be {'/'.join(d.name for d in dtypes)}, got {np.dtype(t.dtype).name}")
    return np.asarray(t.data).astype(np.int64)


def _input(ctx, k: int = 0):
    if k >= len(ctx.ins) or ctx.ins[k] is None:
        ctx.fail(f"missing input {k}")
    return ctx.ins[k]


def _same_dtype(ctx, x):
    for o in ctx.outs:
        if np.dtype(o.dtype) != np.dtype(x.dtype):
            ctx.fail(f"output dtype {np.dtype(o.dtype).name} differs from input dtype {np.dtype(x.dtype).name}")


def _same_quant(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (a.scale.size == b.scale.size and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point))


def _norm_axis(ctx, axis: int, rank: int, what: str = "axis") -> int:
    axis = int(axis)
    if not -rank <= axis < rank:
        ctx.fail(f"{what} {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _copy(a) -> np.ndarray:
    """A C-contiguous copy that keeps 0-d arrays 0-d."""
    return np.array(a, copy=True, order="C")


def _flat_copy(ins, outs):
    np.copyto(outs[0].reshape(-1), ins[0].reshape(-1))


def _check_outputs(ctx, n: int):
    if len(ctx.outs) != n:
        ctx.fail(f"expects {n} outputs, the model declares {len(ctx.outs)}")


# ---- permuted copies (TRANSPOSE, CHANNEL_SHUFFLE) -----------------------------------------------
#
# After fusing dims, a permuted copy is a loop nest over the output in which one dim (b, extent B)
# is contiguous in the output (stride 1) and one dim (a, extent A) is contiguous in the input. When
# they coincide the copy moves contiguous runs of A elements (`_perm_rows`); otherwise every output
# position (a, b) of a tile takes input position (b, a): dst[q + a·D + b] = src[p + b·S + a], with
# p, q advanced by up to four outer dims (`_perm_tiles`, and `_perm_tiles8` for bytes when every
# stride is a multiple of 8: 8×8 byte blocks transposed inside uint64 words).
# Loop bounds and strides are copied into locals first: LLVM cannot prove that stores to dst leave
# the bound/stride arrays unchanged, and reloading them after each store blocks vectorization.
# Slicing views and indexing them with range variables keeps Numba's negative-index wraparound
# out of the inner loops.

@njit(cache=True)
def _perm_rows(src, dst, n, ss, ds, run):
    """dst[q : q+run] = src[p : p+run] for p = Σ i_k·ss_k, q = Σ i_k·ds_k over 5 outer dims."""
    n0, n1, n2, n3, n4 = n[0], n[1], n[2], n[3], n[4]
    a0, a1, a2, a3, a4 = ss[0], ss[1], ss[2], ss[3], ss[4]
    b0, b1, b2, b3, b4 = ds[0], ds[1], ds[2], ds[3], ds[4]
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    for i4 in range(n4):
                        p = i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3 + i4 * a4
                        q = i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3 + i4 * b4
                        d = dst[q:q + run]
                        s = src[p:p + run]
                        for i in range(run):
                            d[i] = s[i]


@njit(cache=True, inline="always")
def _tile(src, dst, p, q, A, B, S, D, TB):
    """dst[q + a·D + b] = src[p + b·S + a] for a < A, b < B; b in chunks of TB (one cache line)."""
    if B < 8:  # few long input rows: contiguous reads, strided writes
        for b in range(B):
            d = dst[q + b:q + b + (A - 1) * D + 1:D]
            s = src[p + b * S:p + b * S + A]
            for a in range(A):
                d[a] = s[a]
        return
    for b0 in range(0, B, TB):
        nb = min(TB, B - b0)
        for a in range(A):
            d = dst[q + a * D + b0:q + a * D + b0 + nb]
            s = src[p + b0 * S + a:p + (b0 + nb - 1) * S + a + 1:S]
            for b in range(nb):
                d[b] = s[b]


@njit(cache=True)
def _perm_tiles(src, dst, n, ss, ds, A, B, S, D, TB):
    """`_tile` at p = Σ i_k·ss_k, q = Σ i_k·ds_k over 4 outer dims."""
    n0, n1, n2, n3 = n[0], n[1], n[2], n[3]
    a0, a1, a2, a3 = ss[0], ss[1], ss[2], ss[3]
    b0, b1, b2, b3 = ds[0], ds[1], ds[2], ds[3]
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    p = i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3
                    q = i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3
                    _tile(src, dst, p, q, A, B, S, D, TB)


@njit(cache=True, inline="always")
def _transpose8x8(x0, x1, x2, x3, x4, x5, x6, x7):
    """Rows x_r (byte c of x_r = element (r, c), little-endian) -> columns: byte r of y_c = (r, c).

    Three exchange stages swap the off-diagonal 1×1 blocks of each 2×2 block, then 2×2 blocks of
    each 4×4, then 4×4 blocks: t = ((x_r >> w) ^ x_{r+k}) & m; x_{r+k} ^= t; x_r ^= t << w.
    """
    m = np.uint64(0x00FF00FF00FF00FF)
    w = np.uint64(8)
    t = ((x0 >> w) ^ x1) & m
    x1 ^= t
    x0 ^= t << w
    t = ((x2 >> w) ^ x3) & m
    x3 ^= t
    x2 ^= t << w
    t = ((x4 >> w) ^ x5) & m
    x5 ^= t
    x4 ^= t << w
    t = ((x6 >> w) ^ x7) & m
    x7 ^= t
    x6 ^= t << w
    m = np.uint64(0x0000FFFF0000FFFF)
    w = np.uint64(16)
    t = ((x0 >> w) ^ x2) & m
    x2 ^= t
    x0 ^= t << w
    t = ((x1 >> w) ^ x3) & m
    x3 ^= t
    x1 ^= t << w
    t = ((x4 >> w) ^ x6) & m
    x6 ^= t
    x4 ^= t << w
    t = ((x5 >> w) ^ x7) & m
    x7 ^= t
    x5 ^= t << w
    m = np.uint64(0x00000000FFFFFFFF)
    w = np.uint64(32)
    t = ((x0 >> w) ^ x4) & m
    x4 ^= t
    x0 ^= t << w
    t = ((x1 >> w) ^ x5) & m
    x5 ^= t
    x1 ^= t << w
    t = ((x2 >> w) ^ x6) & m
    x6 ^= t
    x2 ^= t << w
    t = ((x3 >> w) ^ x7) & m
    x7 ^= t
    x3 ^= t << w
    return x0, x1, x2, x3, x4, x5, x6, x7


@njit(cache=True)
def _perm_tiles8(src, dst, s64, d64, n, ss, ds, A, B, S, D):
    """`_perm_tiles` for bytes with every stride and offset a multiple of 8 and A, B >= 8.

    s64/d64 view src/dst as uint64 words. Full 8×8 blocks go through `_transpose8x8`; the last
    A mod 8 columns and B mod 8 rows go through `_tile`.
    """
    n0, n1, n2, n3 = n[0], n[1], n[2], n[3]
    a0, a1, a2, a3 = ss[0], ss[1], ss[2], ss[3]
    b0, b1, b2, b3 = ds[0], ds[1], ds[2], ds[3]
    A8 = A - A % 8
    B8 = B - B % 8
    SW = S // 8
    DW = D // 8
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                for i3 in range(n3):
                    p = i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3
                    q = i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3
                    for a in range(0, A8, 8):
                        drow = d64[(q + a * D) // 8:]
                        for k in range(B8 // 8):
                            w0 = (p + k * 8 * S + a) // 8
                            s = s64[w0:w0 + 7 * SW + 1:SW]
                            y0, y1, y2, y3, y4, y5, y6, y7 = _transpose8x8(s[0], s[1], s[2], s[3],
                                                                           s[4], s[5], s[6], s[7])
                            drow[k] = y0
                            drow[DW + k] = y1
                            drow[2 * DW + k] = y2
                            drow[3 * DW + k] = y3
                            drow[4 * DW + k] = y4
                            drow[5 * DW + k] = y5
                            drow[6 * DW + k] = y6
                            drow[7 * DW + k] = y7
                    if B8 < B:
                        _tile(src, dst, p + B8 * S, q + B8, A, B - B8, S, D, 8)
                    if A8 < A:
                        _tile(src, dst, p + A8, q + A8 * D, A - A8, B8, S, D, 8)


def _words(a: np.ndarray) -> np.ndarray:
    """The whole 8-byte words of a 1-D byte array, as uint64."""
    return a[:a.size - a.size % 8].view(np.uint64)


def _permute_run(in_shape, perm, itemsize: int):
    """run(ins, outs) writing outs[0] = transpose(ins[0], perm), all index math done here."""
    in_shape = [int(d) for d in in_shape]
    in_strides = [1] * len(in_shape)
    for d in range(len(in_shape) - 2, -1, -1):
        in_strides[d] = in_strides[d + 1] * in_shape[d + 1]
    # fuse output dims that read adjacent input dims (size-1 dims dropped first)
    fused = []  # [extent, last input dim]
    for p in perm:
        if in_shape[p] == 1:
            continue
        if fused and fused[-1][1] < p and all(in_shape[q] == 1 for q in range(fused[-1][1] + 1, p)):
            fused[-1][0] *= in_shape[p]
            fused[-1][1] = p
        else:
            fused.append([in_shape[p], p])
    if len(fused) <= 1 or 0 in in_shape:
        return _flat_copy
    ext = [f[0] for f in fused]
    src = [in_strides[f[1]] for f in fused]
    dst = [1] * len(ext)
    for k in range(len(ext) - 2, -1, -1):
        dst[k] = dst[k + 1] * ext[k + 1]
    kb = len(ext) - 1  # output-contiguous dim
    ka = src.index(1)  # input-contiguous dim
    raw = _RAW[itemsize]
    if ka == kb:
        outer = list(range(kb))
        pad = 5 - len(outer)
        n = np.array([1] * pad + [ext[k] for k in outer], np.int64)
        ss = np.array([0] * pad + [src[k] for k in outer], np.int64)
        ds = np.array([0] * pad + [dst[k] for k in outer], np.int64)
        length = ext[kb]

        def run(ins, outs):
            _perm_rows(ins[0].reshape(-1).view(raw), outs[0].reshape(-1).view(raw), n, ss, ds, length)
        return run
    outer = [k for k in range(len(ext)) if k not in (ka, kb)]
    pad = 4 - len(outer)
    n = np.array([1] * pad + [ext[k] for k in outer], np.int64)
    ss = np.array([0] * pad + [src[k] for k in outer], np.int64)
    ds = np.array([0] * pad + [dst[k] for k in outer], np.int64)
    A, B, S, D = ext[ka], ext[kb], src[kb], dst[ka]
    if itemsize == 1 and A >= 8 and B >= 8 and all(v % 8 == 0 for v in [S, D] + ss.tolist() + ds.tolist()):
        def run(ins, outs):
            s, d = ins[0].reshape(-1).view(raw), outs[0].reshape(-1).view(raw)
            _perm_tiles8(s, d, _words(s), _words(d), n, ss, ds, A, B, S, D)
        return run
    tb = 16 if itemsize <= 4 else 8

    def run(ins, outs):
        _perm_tiles(ins[0].reshape(-1).view(raw), outs[0].reshape(-1).view(raw), n, ss, ds, A, B, S, D, tb)
    return run


# ---- RESHAPE / SQUEEZE / EXPAND_DIMS -----------------------------------------------------------

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
    _same_dtype(ctx, ctx.ins[0])
    return _flat_copy, [out_shape]


def _squeeze_shape(ctx) -> tuple:
    x = _input(ctx)
    rank = len(x.shape)
    dims = ctx.opt.get("squeeze_dims") or []
    if not dims:
        return tuple(d for d in x.shape if d != 1)
    drop = set()
    for d in dims:
        a = _norm_axis(ctx, d, rank, "squeeze dim")
        if x.shape[a] != 1:
            ctx.fail(f"cannot squeeze dim {d} of size {x.shape[a]} (shape {tuple(x.shape)})")
        drop.add(a)
    return tuple(s for i, s in enumerate(x.shape) if i not in drop)


def squeeze_ref(ctx, ins):
    return [np.asarray(ins[0]).reshape(_squeeze_shape(ctx)).copy()]


def prepare_squeeze(ctx):
    shape = _squeeze_shape(ctx)
    _same_dtype(ctx, ctx.ins[0])
    return _flat_copy, [shape]


def _expand_dims_shape(ctx) -> tuple:
    x = _input(ctx)
    a = _const_ints(ctx, 1, "axis").ravel()
    if a.size != 1:
        ctx.fail(f"axis must hold exactly one value, got {a.size}")
    rank = len(x.shape)
    axis = _norm_axis(ctx, int(a[0]), rank + 1)
    return tuple(x.shape[:axis]) + (1,) + tuple(x.shape[axis:])


def expand_dims_ref(ctx, ins):
    return [np.asarray(ins[0]).reshape(_expand_dims_shape(ctx)).copy()]


def prepare_expand_dims(ctx):
    shape = _expand_dims_shape(ctx)
    _same_dtype(ctx, ctx.ins[0])
    return _flat_copy, [shape]


# ---- TRANSPOSE / CHANNEL_SHUFFLE ---------------------------------------------------------------

def _transpose_perm(ctx) -> tuple:
    x = _input(ctx)
    rank = len(x.shape)
    if rank > _MAX_TRANSPOSE_RANK:
        ctx.fail(f"TRANSPOSE supports up to {_MAX_TRANSPOSE_RANK}-D tensors, got {rank}-D")
    perm = _const_ints(ctx, 1, "perm", (np.dtype(np.int32),)).ravel()
    if perm.size != rank or sorted(perm.tolist()) != list(range(rank)):
        ctx.fail(f"perm {perm.tolist()} is not a permutation of 0..{rank - 1}")
    return tuple(int(p) for p in perm)


def transpose_ref(ctx, ins):
    return [_copy(np.transpose(np.asarray(ins[0]), _transpose_perm(ctx)))]


def prepare_transpose(ctx):
    perm = _transpose_perm(ctx)
    x = ctx.ins[0]
    _same_dtype(ctx, x)
    out_shape = tuple(x.shape[p] for p in perm)
    return _permute_run(x.shape, perm, np.dtype(x.dtype).itemsize), [out_shape]


def _shuffle_groups(ctx) -> int:
    x = _input(ctx)
    if len(x.shape) < 1:
        ctx.fail("CHANNEL_SHUFFLE needs a tensor with a channel (last) dimension")
    g = ctx.opt.get("groups")
    if g is None or int(g) < 1:
        ctx.fail(f"CHANNEL_SHUFFLE needs groups >= 1, got {g}")
    g = int(g)
    c = int(x.shape[-1])
    if c % g:
        ctx.fail(f"CHANNEL_SHUFFLE: {c} channels do not split into {g} groups")
    return g


def channel_shuffle_ref(ctx, ins):
    """out[..., i·g + j] = in[..., j·(C/g) + i] for i < C/g, j < g (groups g, C channels)."""
    g = _shuffle_groups(ctx)
    x = np.asarray(ins[0])
    c = x.shape[-1]
    m = c // g
    src = np.array([j * m + i for i in range(m) for j in range(g)], np.int64)
    return [_copy(x[..., src])]


def prepare_channel_shuffle(ctx):
    g = _shuffle_groups(ctx)
    x = ctx.ins[0]
    _same_dtype(ctx, x)
    if not _same_quant(x.quant, ctx.outs[0].quant):
        ctx.fail("CHANNEL_SHUFFLE needs equal input and output quantization")
    c = int(x.shape[-1])
    pixels = _prod(x.shape[:-1])
    # viewed as [P, g, C/g] -> [P, C/g, g]: a transpose with perm (0, 2, 1)
    return _permute_run((pixels, g, c // g), (0, 2, 1), np.dtype(x.dtype).itemsize), [tuple(x.shape)]


# ---- PAD / PADV2 -------------------------------------------------------------------------------

def _pad_params(ctx):
    """(paddings [(before, after)] per dim, pad value, True when the value is read at run time).

    Quantized 8/16-bit PAD pads with the output zero point; PADV2 pads with its constant value
    as stored (which must be quantized like the output); float and plain integer PAD pad with 0.
    """
    x = _input(ctx)
    out = ctx.outs[0]
    rank = len(x.shape)
    p = _const_ints(ctx, 1, "paddings")
    if p.shape != (rank, 2):
        ctx.fail(f"paddings must have shape [{rank}, 2], got {list(p.shape)}")
    if (p < 0).any():
        ctx.fail(f"negative paddings {p.tolist()} are not supported")
    pads = [(int(a), int(b)) for a, b in p]
    dt = np.dtype(x.dtype)
    cv = ctx.ins[2] if len(ctx.ins) > 2 else None
    if cv is not None:
        if np.dtype(cv.dtype) != dt:
            ctx.fail(f"constant value dtype {np.dtype(cv.dtype).name} differs from input {dt.name}")
        if _prod(cv.shape) != 1:
            ctx.fail(f"constant value must hold one element, shape {tuple(cv.shape)}")
        if dt.kind in "iu" and dt.itemsize <= 2 and x.quant is not None:
            if not _same_quant(cv.quant, out.quant):
                ctx.fail("quantized PADV2 needs the constant value quantized like the output")
        value = None if cv.data is None else np.asarray(cv.data).reshape(-1)[0]
        return pads, value, cv.data is None
    if dt.kind in "iu" and dt.itemsize <= 2 and x.quant is not None:
        if out.quant is None:
            ctx.fail("quantized PAD needs a quantized output")
        zp = out.quant.zp
        info = np.iinfo(dt)
        if not info.min <= zp <= info.max:
            ctx.fail(f"output zero point {zp} is not representable in {dt.name}")
        return pads, np.array(zp, dt), False
    return pads, np.zeros((), dt), False


def pad_ref(ctx, ins):
    pads, value, runtime = _pad_params(ctx)
    if runtime:
        value = np.asarray(ins[2]).reshape(-1)[0]
    x = np.asarray(ins[0])
    return [np.pad(x, pads, mode="constant", constant_values=value).astype(x.dtype)]


def prepare_pad(ctx):
    pads, value, runtime = _pad_params(ctx)
    x = ctx.ins[0]
    _same_dtype(ctx, x)
    out_shape = tuple(int(d) + a + b for d, (a, b) in zip(x.shape, pads))
    rank = len(out_shape)
    inner = tuple(slice(a, a + int(d)) for d, (a, _) in zip(x.shape, pads))
    # border = disjoint slabs: for dim k, the before/after bands of k with dims < k restricted to
    # the interior and dims > k full
    slabs = []
    for k, (a, b) in enumerate(pads):
        for band in ((slice(0, a),) if a else ()) + ((slice(out_shape[k] - b, out_shape[k]),) if b else ()):
            slabs.append(inner[:k] + (band,) + (slice(None),) * (rank - k - 1))
    if _prod(x.shape) == 0:
        slabs, inner = [()], None
    fill = np.asarray(value, dtype=np.dtype(x.dtype)) if value is not None else None

    def run(ins, outs):
        o = outs[0]
        v = fill if fill is not None else ins[2].reshape(-1)[0]
        for s in slabs:
            o[s] = v
        if inner is not None:
            o[inner] = ins[0]

    return run, [out_shape]


# ---- SLICE / STRIDED_SLICE ---------------------------------------------------------------------

def _slice_params(ctx):
    x = _input(ctx)
    rank = len(x.shape)
    begin = _const_ints(ctx, 1, "begin").ravel()
    size = _const_ints(ctx, 2, "size").ravel()
    if begin.size != rank or size.size != rank:
        ctx.fail(f"begin/size must have {rank} entries, got {begin.size}/{size.size}")
    out = []
    for d, b, s in zip(x.shape, begin.tolist(), size.tolist()):
        if s == -1:
            s = d - b
        if b < 0 or s < 0 or b + s > d:
            ctx.fail(f"slice begin {begin.tolist()} size {size.tolist()} out of range for shape {tuple(x.shape)}")
        out.append((b, s))
    return out


def slice_ref(ctx, ins):
    x = np.asarray(ins[0])
    idx = np.ix_(*[np.arange(b, b + s) for b, s in _slice_params(ctx)]) if x.ndim else ()
    return [_copy(x[idx])]


def prepare_slice(ctx):
    params = _slice_params(ctx)
    _same_dtype(ctx, ctx.ins[0])
    view = tuple(slice(b, b + s) for b, s in params)

    def run(ins, outs):
        np.copyto(outs[0], ins[0][view])

    return run, [tuple(s for _, s in params)]


def _clamp(v, lo, hi):
    return hi if v > hi else (lo if v < lo else v)


def _strided_slice_params(ctx):
    """TFLite's StridedSlice semantics resolved at load.

    Returns (effective input shape (new axes inserted as 1), per effective dim (start, stop, stride,
    shrink), output shape). The spec (begin/end/strides, n entries) is expanded to the effective
    rank: an ellipsis covers the dims no other entry claims (begin/end masks set, stride 1), a
    new-axis entry adds a size-1 dim (ellipsis wins where both bits are set), dims past the spec are
    taken whole. Per dim, with size d and stride s != 0:
        start = begin_mask ? (s > 0 ? 0 : d-1) : clamp(begin + (begin < 0)·d, s > 0 ? [0, d] : [-1, d-1])
        stop  = shrink ? start + 1 : end_mask ? (s > 0 ? d : -1)
                : clamp(end' + (end' < 0)·d, same range), end' = end + (offset ? start : 0)
    and the elements are start, start+s, ... while short of stop (Python's range).
    """
    x = _input(ctx)
    _check_outputs(ctx, 1)
    opt = ctx.opt
    begin = _const_ints(ctx, 1, "begin", (np.dtype(np.int32),)).ravel()
    end = _const_ints(ctx, 2, "end", (np.dtype(np.int32),)).ravel()
    strides = _const_ints(ctx, 3, "strides", (np.dtype(np.int32),)).ravel()
    n = begin.size
    if end.size != n or strides.size != n:
        ctx.fail(f"begin/end/strides lengths differ: {n}/{end.size}/{strides.size}")
    bm, em = int(opt.get("begin_mask", 0)), int(opt.get("end_mask", 0))
    ellipsis, new_axis = int(opt.get("ellipsis_mask", 0)), int(opt.get("new_axis_mask", 0))
    shrink, offset = int(opt.get("shrink_axis_mask", 0)), bool(opt.get("offset", False))
    in_shape = [int(d) for d in x.shape]
    rank = len(in_shape)
    if rank > 5:
        ctx.fail(f"STRIDED_SLICE supports up to 5-D inputs, got {rank}-D")
    if ellipsis >> n or new_axis >> n:
        ctx.fail(f"ellipsis/new_axis mask bits beyond the {n} spec entries")
    if bin(ellipsis).count("1") > 1:
        ctx.fail("more than one ellipsis in ellipsis_mask")
    if (strides == 0).any():
        ctx.fail("strides must be non-zero")
    add = [i for i in range(n) if (new_axis >> i) & 1 and not (ellipsis >> i) & 1]
    eff_rank = rank + len(add)
    consumed = n - len(add) - (1 if ellipsis else 0)  # spec entries that index input dims
    if consumed > rank:
        ctx.fail(f"{consumed} slice entries for a {rank}-D input")
    if eff_rank > 5:
        ctx.fail("STRIDED_SLICE supports up to 5 dims including new axes")
    if ellipsis and eff_rank - n + 1 < 1:
        ctx.fail("an ellipsis that covers no dimension is not supported")
    if offset and (ellipsis or add or n != rank):
        ctx.fail("offset=True needs one spec entry per input dim and no ellipsis/new axis")
    # spec entry of each effective dim: ('ell',), ('new',), ('full',) or ('spec', i)
    kinds = []
    i = 0
    while i < n and len(kinds) < eff_rank:
        if (ellipsis >> i) & 1:
            span = max(1, eff_rank - n + 1)
            kinds += [("ell",)] * span
        elif (new_axis >> i) & 1:
            kinds.append(("new",))
        else:
            kinds.append(("spec", i))
        i += 1
    kinds += [("full",)] * (eff_rank - len(kinds))
    eff_shape, dims, out_shape = [], [], []
    src = 0
    for k, kind in enumerate(kinds):
        if kind[0] == "new":
            eff_shape.append(1)
            dims.append((0, 1, 1, False))
            out_shape.append(1)
            continue
        d = in_shape[src]
        src += 1
        eff_shape.append(d)
        if kind[0] != "spec":
            dims.append((0, d, 1, False))
            out_shape.append(d)
            continue
        j = kind[1]
        s = int(strides[j])
        lo, hi = (0, d) if s > 0 else (-1, d - 1)
        if (bm >> j) & 1:
            start = 0 if s > 0 else d - 1
        else:
            b = int(begin[j])
            start = _clamp(b + d if b < 0 else b, lo, hi)
        if (shrink >> j) & 1:
            if s < 0:
                ctx.fail("shrink_axis_mask with a negative stride is not supported")
            if not 0 <= start < d:
                ctx.fail(f"shrink index {int(begin[j])} out of range for dim {k} of size {d}")
            dims.append((start, start + 1, 1, True))
            continue
        if (em >> j) & 1:
            stop = d if s > 0 else -1
        else:
            e = int(end[j]) + (start if offset else 0)
            stop = _clamp(e + d if e < 0 else e, lo, hi)
        count = len(range(start, stop, s))
        if offset:
            declared = max(0, math.ceil(int(end[j]) / s))
            if declared != count:
                ctx.fail(f"offset slice on dim {k} runs out of range ({declared} elements asked, "
                         f"{count} available)")
        dims.append((start, stop, s, False))
        out_shape.append(count)
    return tuple(eff_shape), dims, tuple(out_shape)


def strided_slice_ref(ctx, ins):
    eff_shape, dims, out_shape = _strided_slice_params(ctx)
    x = np.asarray(ins[0]).reshape(eff_shape)
    if x.ndim:
        x = x[np.ix_(*[np.arange(a, b, s) for a, b, s, _ in dims])]
    return [_copy(x.reshape(out_shape))]


def prepare_strided_slice(ctx):
    eff_shape, dims, out_shape = _strided_slice_params(ctx)
    _same_dtype(ctx, ctx.ins[0])
    view = []
    view_shape = []
    for a, b, s, _ in dims:
        cnt = len(range(a, b, s))
        view_shape.append(cnt)
        stop = a + cnt * s  # one step past the last element; -1 (before 0) must become None
        view.append(slice(0, 0) if cnt == 0 else slice(a, stop if stop >= 0 else None, s))
    view, view_shape = tuple(view), tuple(view_shape)

    def run(ins, outs):
        np.copyto(outs[0].reshape(view_shape), ins[0].reshape(eff_shape)[view])

    return run, [out_shape]


# ---- SPLIT / SPLIT_V / UNPACK ------------------------------------------------------------------

def _split_axis(ctx, k: int, rank: int) -> int:
    a = _const_ints(ctx, k, "axis").ravel()
    if a.size != 1:
        ctx.fail(f"axis must hold exactly one value, got {a.size}")
    return _norm_axis(ctx, int(a[0]), rank)


def _split_params(ctx):
    """SPLIT: inputs (axis, x); num_splits equal parts along axis."""
    x = _input(ctx, 1)
    axis = _split_axis(ctx, 0, len(x.shape))
    num = int(ctx.opt.get("num_splits", len(ctx.outs)))
    if num < 1 or num != len(ctx.outs):
        ctx.fail(f"num_splits {num} does not match the {len(ctx.outs)} outputs")
    d = int(x.shape[axis])
    if d % num:
        ctx.fail(f"dim {axis} of size {d} does not split into {num} equal parts")
    return x, axis, [d // num] * num


def _split_v_params(ctx):
    """SPLIT_V: inputs (x, size_splits, axis); one size may be -1 (the remainder)."""
    x = _input(ctx, 0)
    axis = _split_axis(ctx, 2, len(x.shape))
    sizes = _const_ints(ctx, 1, "size_splits").ravel().tolist()
    num = int(ctx.opt.get("num_splits", len(sizes)))
    if not (num == len(sizes) == len(ctx.outs)) or num < 1:
        ctx.fail(f"num_splits {num}, {len(sizes)} sizes and {len(ctx.outs)} outputs disagree")
    d = int(x.shape[axis])
    if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        ctx.fail(f"invalid size_splits {sizes}")
    if -1 in sizes:
        rest = d - sum(s for s in sizes if s != -1)
        if rest < 0:
            ctx.fail(f"size_splits {sizes} exceed dim {axis} of size {d}")
        sizes[sizes.index(-1)] = rest
    if sum(sizes) != d:
        ctx.fail(f"size_splits {sizes} do not sum to dim {axis} of size {d}")
    return x, axis, sizes


def _split_ref(x, axis, sizes):
    x = np.asarray(x)
    bounds = np.cumsum([0] + list(sizes))
    return [_copy(np.take(x, np.arange(bounds[i], bounds[i + 1]), axis=axis))
            for i in range(len(sizes))]


def _split_run(x, axis, sizes, k_in: int):
    shape = [int(d) for d in x.shape]
    outer = _prod(shape[:axis])
    inner = _prod(shape[axis + 1:])
    d = shape[axis]
    bounds = np.cumsum([0] + list(sizes)).tolist()
    parts = [(slice(None), slice(bounds[i], bounds[i + 1]), slice(None)) for i in range(len(sizes))]
    view3 = (outer, d, inner)
    out3 = [(outer, s, inner) for s in sizes]

    def run(ins, outs):
        src = ins[k_in].reshape(view3)
        for o, part, sh in zip(outs, parts, out3):
            np.copyto(o.reshape(sh), src[part])

    return run, [tuple(shape[:axis]) + (s,) + tuple(shape[axis + 1:]) for s in sizes]


def split_ref(ctx, ins):
    _, axis, sizes = _split_params(ctx)
    return _split_ref(ins[1], axis, sizes)


def prepare_split(ctx):
    x, axis, sizes = _split_params(ctx)
    _same_dtype(ctx, x)
    return _split_run(x, axis, sizes, 1)


def split_v_ref(ctx, ins):
    _, axis, sizes = _split_v_params(ctx)
    return _split_ref(ins[0], axis, sizes)


def prepare_split_v(ctx):
    x, axis, sizes = _split_v_params(ctx)
    _same_dtype(ctx, x)
    return _split_run(x, axis, sizes, 0)


def _unpack_params(ctx):
    x = _input(ctx)
    rank = len(x.shape)
    if rank < 1:
        ctx.fail("UNPACK needs a tensor of rank >= 1")
    axis = _norm_axis(ctx, int(ctx.opt.get("axis", 0)), rank)
    num = int(ctx.opt.get("num", x.shape[axis]))
    if num != x.shape[axis] or num != len(ctx.outs):
        ctx.fail(f"num {num}, dim {axis} of size {x.shape[axis]} and {len(ctx.outs)} outputs disagree")
    return x, axis, num


def unpack_ref(ctx, ins):
    _, axis, num = _unpack_params(ctx)
    x = np.asarray(ins[0])
    return [_copy(np.take(x, i, axis=axis)) for i in range(num)]


def prepare_unpack(ctx):
    x, axis, num = _unpack_params(ctx)
    _same_dtype(ctx, x)
    run, _ = _split_run(x, axis, [1] * num, 0)
    shape = tuple(x.shape[:axis]) + tuple(x.shape[axis + 1:])
    return run, [shape] * num


# ---- PACK / CONCATENATION ----------------------------------------------------------------------

def _pack_params(ctx):
    xs = ctx.ins
    if not xs or any(x is None for x in xs):
        ctx.fail("PACK needs at least one input and no absent inputs")
    count = int(ctx.opt.get("values_count", len(xs)))
    if count != len(xs):
        ctx.fail(f"values_count {count} but {len(xs)} inputs")
    _check_outputs(ctx, 1)
    shape = tuple(xs[0].shape)
    rank = len(shape)
    axis = _norm_axis(ctx, int(ctx.opt.get("axis", 0)), rank + 1)
    out = ctx.outs[0]
    for x in xs:
        if tuple(x.shape) != shape:
            ctx.fail(f"PACK inputs must share one shape, got {tuple(x.shape)} and {shape}")
        if np.dtype(x.dtype) != np.dtype(out.dtype):
            ctx.fail(f"input dtype {np.dtype(x.dtype).name} differs from output {np.dtype(out.dtype).name}")
        if np.dtype(x.dtype).kind in "iu" and np.dtype(x.dtype).itemsize <= 2 and \
                not _same_quant(x.quant, out.quant):
            ctx.fail("quantized PACK needs every input quantized like the output (no rescaling)")
    return shape, axis


def pack_ref(ctx, ins):
    _, axis = _pack_params(ctx)
    return [np.stack([np.asarray(x) for x in ins], axis=axis)]


def prepare_pack(ctx):
    shape, axis = _pack_params(ctx)
    n = len(ctx.ins)
    outer = _prod(shape[:axis])
    inner = _prod(shape[axis:])
    out_shape = tuple(shape[:axis]) + (n,) + tuple(shape[axis:])
    view3 = (outer, n, inner)
    in2 = (outer, inner)

    def run(ins, outs):
        o = outs[0].reshape(view3)
        for k, x in enumerate(ins):
            np.copyto(o[:, k, :], x.reshape(in2))

    return run, [out_shape]


@njit(cache=True)
def _concat_requant(src, dst, outer, w, total, off, scale, bias, zp, lo, hi):
    """dst[r·total + off + j] = clamp(round(src[r·w + j]·scale + bias) + zp, lo, hi).

    scale = s_in·(1/s_out) and bias = -zp_in·scale are float32, the product and sum are float32
    operations (rounded each), round is half away from zero; all as TFLite's uint8 reference
    ConcatenationWithScaling.
    """
    for r in range(outer):
        for j in range(w):
            v = np.float64(np.float32(src[r * w + j]) * scale + bias)
            t = math.floor(abs(v) + 0.5)
            if v < 0:
                t = -t
            if t > 2147483647.0:
                t = 2147483647.0
            elif t < -2147483648.0:
                t = -2147483648.0
            q = np.int64(t) + zp
            if q < lo:
                q = lo
            elif q > hi:
                q = hi
            dst[r * total + off + j] = q


def _concat_params(ctx):
    xs = ctx.ins
    if not xs or any(x is None for x in xs):
        ctx.fail("CONCATENATION needs at least one input and no absent inputs")
    _check_outputs(ctx, 1)
    act = activation_name(ctx.opt.get("fused_activation_function", 0))
    if act != "NONE":
        ctx.fail(f"fused activation {act} on CONCATENATION is not supported")
    out = ctx.outs[0]
    dt = np.dtype(out.dtype)
    rank = len(xs[0].shape)
    if rank < 1:
        ctx.fail("CONCATENATION needs inputs of rank >= 1")
    axis = _norm_axis(ctx, int(ctx.opt.get("axis", 0)), rank)
    for x in xs:
        if np.dtype(x.dtype) != dt:
            ctx.fail(f"input dtype {np.dtype(x.dtype).name} differs from output {dt.name}")
        if len(x.shape) != rank or any(int(a) != int(b) for i, (a, b) in enumerate(zip(x.shape, xs[0].shape))
                                       if i != axis):
            ctx.fail(f"inputs {tuple(xs[0].shape)} and {tuple(x.shape)} differ outside axis {axis}")
    # per input: None = raw copy, (scale, bias) = requantize
    modes = []
    for x in xs:
        mode = None
        if dt.kind in "iu" and dt.itemsize <= 2 and (x.quant is not None or out.quant is not None):
            if x.quant is None or out.quant is None:
                ctx.fail("quantized CONCATENATION needs every input and the output quantized")
            if x.quant.per_channel or out.quant.per_channel:
                ctx.fail("per-channel quantized CONCATENATION is not supported")
            s_in, s_out = np.float32(x.quant.s), np.float32(out.quant.s)
            if s_in != s_out or x.quant.zp != out.quant.zp:
                if dt.itemsize != 1:
                    ctx.fail(f"{dt.name} CONCATENATION with rescaling is not supported")
                scale = np.float32(s_in * (np.float32(1.0) / s_out))
                bias = np.float32(np.float32(-x.quant.zp) * scale)
                mode = (scale, bias)
        modes.append(mode)
    out_shape = list(xs[0].shape)
    out_shape[axis] = sum(int(x.shape[axis]) for x in xs)
    return axis, modes, tuple(out_shape)


def _concat_requant_ref(q, scale, bias, zp, dt):
    v = (q.astype(np.float32) * scale + bias).astype(np.float64)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    info = np.iinfo(dt)
    return np.clip(np.clip(r, -2.0 ** 31, 2.0 ** 31 - 1).astype(np.int64) + zp, info.min, info.max).astype(dt)


def concatenation_ref(ctx, ins):
    axis, modes, _ = _concat_params(ctx)
    out = ctx.outs[0]
    parts = []
    for x, mode in zip(ins, modes):
        x = np.asarray(x)
        if mode is not None:
            x = _concat_requant_ref(x, mode[0], mode[1], out.quant.zp, np.dtype(out.dtype))
        parts.append(x)
    return [np.concatenate(parts, axis=axis)]


def prepare_concatenation(ctx):
    axis, modes, out_shape = _concat_params(ctx)
    xs = ctx.ins
    outer = _prod(out_shape[:axis])
    inner = _prod(out_shape[axis + 1:])
    total = out_shape[axis] * inner
    dt = np.dtype(ctx.outs[0].dtype)
    zp = ctx.outs[0].quant.zp if ctx.outs[0].quant is not None else 0
    lo, hi = (int(np.iinfo(dt).min), int(np.iinfo(dt).max)) if dt.kind in "iu" else (0, 0)
    steps = []
    off = 0
    for x, mode in zip(xs, modes):
        w = int(x.shape[axis]) * inner
        if mode is None:
            steps.append((None, slice(off, off + w), (outer, w)))
        else:
            steps.append(((outer, w, total, off, mode[0], mode[1], zp, lo, hi), None, None))
        off += w
    out2 = (outer, total)

    def run(ins, outs):
        o = outs[0]
        o2 = o.reshape(out2)
        for x, (rq, cols, sh) in zip(ins, steps):
            if rq is None:
                np.copyto(o2[:, cols], x.reshape(sh))
            else:
                _concat_requant(x.reshape(-1), o.reshape(-1), *rq)

    return run, [out_shape]


# ---- REVERSE_V2 --------------------------------------------------------------------------------

def _reverse_axes(ctx) -> tuple:
    x = _input(ctx)
    rank = len(x.shape)
    axes = _const_ints(ctx, 1, "axes", (np.dtype(np.int32),)).ravel().tolist()
    if not axes:
        ctx.fail("REVERSE_V2 needs at least one axis")
    norm = sorted(_norm_axis(ctx, a, rank) for a in axes)
    if norm != list(range(norm[0], norm[0] + len(norm))):
        ctx.fail(f"REVERSE_V2 axes {axes} must be distinct and contiguous")
    return tuple(norm)


def reverse_v2_ref(ctx, ins):
    return [_copy(np.flip(np.asarray(ins[0]), axis=_reverse_axes(ctx)))]


def prepare_reverse_v2(ctx):
    axes = _reverse_axes(ctx)
    x = ctx.ins[0]
    _same_dtype(ctx, x)
    view = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(len(x.shape)))

    def run(ins, outs):
        np.copyto(outs[0], ins[0][view])

    return run, [tuple(x.shape)]


# ---- GATHER ------------------------------------------------------------------------------------

@njit(cache=True)
def _gather(src, idx, dst, batch, outer, n, m, inner):
    """dst[b, o, j, :] = src[b, o, idx[b, j], :] (shapes [batch, outer, n|m, inner], flat).

    Returns -1, or the flat position of the first index outside [0, n) (nothing then written).
    """
    for i in range(idx.size):
        if idx[i] < 0 or idx[i] >= n:
            return i
    for b in range(batch):
        for o in range(outer):
            sbase = (b * outer + o) * n
            dbase = (b * outer + o) * m
            for j in range(m):
                s = (sbase + idx[b * m + j]) * inner
                d = (dbase + j) * inner
                dst[d:d + inner] = src[s:s + inner]
    return -1


def _gather_params(ctx):
    x = _input(ctx, 0)
    ind = _input(ctx, 1)
    _check_outputs(ctx, 1)
    if np.dtype(ind.dtype) not in (np.dtype(np.int16),) + _INT_INDEX:
        ctx.fail(f"indices must be int16/int32/int64, got {np.dtype(ind.dtype).name}")
    rank = len(x.shape)
    if rank < 1:
        ctx.fail("GATHER needs params of rank >= 1")
    axis = _norm_axis(ctx, int(ctx.opt.get("axis", 0)), rank)
    irank = len(ind.shape)
    bd = int(ctx.opt.get("batch_dims", 0))
    if bd < 0:
        bd += irank
    if not 0 <= bd <= min(axis, irank):
        ctx.fail(f"batch_dims {ctx.opt.get('batch_dims')} invalid for axis {axis} and indices rank {irank}")
    if tuple(x.shape[:bd]) != tuple(ind.shape[:bd]):
        ctx.fail(f"batch dims of params {tuple(x.shape)} and indices {tuple(ind.shape)} differ")
    out_shape = tuple(x.shape[:axis]) + tuple(ind.shape[bd:]) + tuple(x.shape[axis + 1:])
    return x, ind, axis, bd, out_shape


def gather_ref(ctx, ins):
    x, ind, axis, bd, out_shape = _gather_params(ctx)
    p = np.asarray(ins[0])
    idx = np.asarray(ins[1]).astype(np.int64)
    n = p.shape[axis]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise XnnError(f"node {ctx.node.name}: GATHER index out of range [0, {n})")
    batch = _prod(p.shape[:bd])
    pb = p.reshape((batch,) + p.shape[bd:])
    ib = idx.reshape((batch,) + idx.shape[bd:])
    res = [np.take(pb[b], ib[b], axis=axis - bd) for b in range(batch)]
    return [np.stack(res).reshape(out_shape) if batch else np.zeros(out_shape, p.dtype)]


def prepare_gather(ctx):
    x, ind, axis, bd, out_shape = _gather_params(ctx)
    _same_dtype(ctx, x)
    shape = [int(d) for d in x.shape]
    n = shape[axis]
    batch = _prod(shape[:bd])
    outer = _prod(shape[bd:axis])
    inner = _prod(shape[axis + 1:])
    m = _prod(ind.shape[bd:])
    name = ctx.node.name
    if ind.data is not None:
        bad = np.flatnonzero((ind.data < 0) | (ind.data >= n))
        if bad.size:
            ctx.fail(f"constant GATHER index {int(ind.data.ravel()[bad[0]])} out of range [0, {n})")

    def run(ins, outs):
        idx = ins[1].reshape(-1)
        bad = _gather(_raw(ins[0]), idx, _raw(outs[0]), batch, outer, n, m, inner)
        if bad >= 0:
            raise XnnError(f"node {name}: GATHER index {int(idx[bad])} at position {bad} out of "
                           f"range [0, {n})")

    return run, [out_shape]


OPS = {
    "RESHAPE": (prepare_reshape, reshape_ref),
    "SQUEEZE": (prepare_squeeze, squeeze_ref),
    "EXPAND_DIMS": (prepare_expand_dims, expand_dims_ref),
    "TRANSPOSE": (prepare_transpose, transpose_ref),
    "CHANNEL_SHUFFLE": (prepare_channel_shuffle, channel_shuffle_ref),
    "PAD": (prepare_pad, pad_ref),
    "PADV2": (prepare_pad, pad_ref),
    "SLICE": (prepare_slice, slice_ref),
    "STRIDED_SLICE": (prepare_strided_slice, strided_slice_ref),
    "SPLIT": (prepare_split, split_ref),
    "SPLIT_V": (prepare_split_v, split_v_ref),
    "PACK": (prepare_pack, pack_ref),
    "UNPACK": (prepare_unpack, unpack_ref),
    "CONCATENATION": (prepare_concatenation, concatenation_ref),
    "REVERSE_V2": (prepare_reverse_v2, reverse_v2_ref),
    "GATHER": (prepare_gather, gather_ref),
}
