"""Shared GEMM machinery for the convolution family and FULLY_CONNECTED: the SIMD tile kernels
(default) and the BLAS path.

Tile kernels (second half of this file): register-tiled micro-kernels written as LLVM IR through
numba intrinsics. One Numba call per node stages the input (x - zp_x as int16, or float32, into a
padded buffer) and runs tiles of MR output pixels × 16 output channels whose epilogue (bias,
requantization or float clamp) is fused, so a small layer costs one dispatch plus its arithmetic.
Int8 runs on exact int16 pair products with int32 accumulation (pmaddwd / vpdpwssd); `tiles_wanted`
picks them or the BLAS path per layer (calibration in its docstring).

BLAS path: exact int8 GEMM on float32 BLAS: integer operands with |a| <= A and |b| <= B give
products of at most A·B; a float32 sum of k such products is exact while k·A·B <= 2^24 (every partial
sum is then an integer of magnitude <= 2^24, all representable, whatever order or FMA use the BLAS
picks). `exact_chunk` gives that k; longer reductions are split into chunks whose float32 results
are summed in int64 by `sum_chunks`.

Layouts: activations are NHWC. Patch (im2col) matrices are [G, M, K] with M = N·OH·OW output pixels
and K = KH·KW·Cg ordered (ky, kx, c); packed weights are [G, K, Ng]; group g's product
[M, K] @ [K, Ng] is written straight into columns g·Ng .. g·Ng+Ng-1 of a [M, OC] result.

Requantization (TFLite MultiplyByQuantizedMultiplier, "double rounding"), with (q, shift) from
quantize_multiplier, left = max(shift, 0), right = max(-shift, 0):
    a  = acc · 2^left
    h  = trunc_toward_zero((a·q + nudge) / 2^31),  nudge = 2^30 if a·q >= 0 else 1 - 2^30
       = floor((a·q + 2^30) / 2^31)       (for either sign of a·q: the tile epilogues use this)
    y  = floor(h / 2^right) + [h mod 2^right > (2^right - 1)/2 + (h < 0)]   (round half away)
in int64, after a = acc·2^left wraps in int32 exactly as LiteRT's int32 multiply does (the NumPy
reference quant.mbqm_ref saturates there instead; the two agree whenever acc·2^left fits int32).
LiteRT's int8 FULLY_CONNECTED rounds once instead (ruy / TFLITE_SINGLE_ROUNDING form):
    y  = (acc·q + 2^(t-1)) >> t,   t = 31 - shift     (round half up; |acc·q| < 2^62)
"""
from __future__ import annotations

import math
import os

import numpy as np
from llvmlite import ir as _ir
from numba import njit
from numba import types as _nbt
from numba.extending import intrinsic as _intrinsic

from .quant import quantize_multiplier

F32_EXACT = 1 << 24


def exact_chunk(max_a: int, max_b: int, k: int) -> int:
    """Largest reduction length (<= k) whose float32 dot products of |a|<=max_a, |b|<=max_b are exact."""
    p = int(max_a) * int(max_b)
    if p == 0:
        return max(k, 1)
    return max(1, min(k, F32_EXACT // p))


def chunk_bounds(k: int, chunk: int) -> list:
    return [(k0, min(k, k0 + chunk)) for k0 in range(0, k, chunk)] or [(0, 0)]


def requant_params(real_multipliers):
    """Per-channel (q, left shift, right shift) int64 arrays for `requant`."""
    qs, ls, rs = [], [], []
    for m in np.asarray(real_multipliers, np.float64).ravel():
        q, s = quantize_multiplier(float(m))
        qs.append(q)
        ls.append(max(s, 0))
        rs.append(max(-s, 0))
    return (np.array(qs, np.int64), np.array(ls, np.int64), np.array(rs, np.int64))


def requant_params_single(real_multipliers):
    """Per-channel (q, total right shift t = 31 - shift) int64 arrays for `requant_single`."""
    qs, ts = [], []
    for m in np.asarray(real_multipliers, np.float64).ravel():
        q, s = quantize_multiplier(float(m))
        qs.append(q)
        ts.append(31 - s)
    return np.array(qs, np.int64), np.array(ts, np.int64)


def out_size(padding: str, size: int, k: int, stride: int, dilation: int) -> int:
    """TFLite ComputeOutSize: SAME -> ceil(size/stride); VALID -> ceil((size - dk + 1)/stride)."""
    dk = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size + stride - dk) // stride


def pad_before(size: int, k: int, stride: int, dilation: int, out: int) -> int:
    """TFLite ComputePaddingWithOffset, leading part: max((out-1)·s + dk - size, 0) // 2."""
    dk = (k - 1) * dilation + 1
    return max((out - 1) * stride + dk - size, 0) // 2


# ---- Numba kernels ------------------------------------------------------------------------------

@njit(cache=True)
def pad_copy(x, xp, pt, pl):
    """xp[n, pt + y, pl + x, c] = x[n, y, x, c] converted to xp's dtype (the border is untouched)."""
    N, H, W, C = x.shape
    for n in range(N):
        for iy in range(H):
            for ix in range(W):
                for c in range(C):
                    xp[n, pt + iy, pl + ix, c] = x[n, iy, ix, c]


@njit(cache=True)
def pad_fill(x, xp, pt, pl, fill):
    """xp[n] = x[n] placed at (pt, pl) with every other position set to fill[n] (whole xp written)."""
    N, H, W, C = x.shape
    Hp, Wp = xp.shape[1], xp.shape[2]
    for n in range(N):
        f = fill[n]
        for y in range(Hp):
            iy = y - pt
            for xx in range(Wp):
                ix = xx - pl
                dst = xp[n, y, xx]
                if iy >= 0 and iy < H and ix >= 0 and ix < W:
                    src = x[n, iy, ix]
                    for c in range(C):
                        dst[c] = src[c]
                else:
                    for c in range(C):
                        dst[c] = f


@njit(cache=True)
def im2col(xp, A, r0, r1, OH, OW, KH, KW, sh, sw, dh, dw):
    """For output rows r = n·OH + oy in [r0, r1): A[g, (r - r0)·OW + ox, (ky·KW + kx)·Cg + c] =
    xp[n, oy·sh + ky·dh, ox·sw + kx·dw, g·Cg + c] (xp is the padded input)."""
    N, Hp, Wp, C = xp.shape
    G, _, K = A.shape
    Cg = C // G
    if G == 1 and dw == 1:
        # one kernel row of taps is a contiguous run of KW·C values in xp
        run = KW * C
        xf = xp.reshape(-1)
        af = A.reshape(-1)
        for r in range(r0, r1):
            n = r // OH
            oy = r - n * OH
            for ox in range(OW):
                d = ((r - r0) * OW + ox) * K
                for ky in range(KH):
                    s = ((n * Hp + oy * sh + ky * dh) * Wp + ox * sw) * C
                    dst = af[d:d + run]  # views indexed from 0 keep the copy vectorizable
                    src = xf[s:s + run]
                    for i in range(run):
                        dst[i] = src[i]
                    d += run
        return
    for r in range(r0, r1):
        n = r // OH
        oy = r - n * OH
        for ox in range(OW):
            m = (r - r0) * OW + ox
            for ky in range(KH):
                iy = oy * sh + ky * dh
                for kx in range(KW):
                    ix = ox * sw + kx * dw
                    base = (ky * KW + kx) * Cg
                    for g in range(G):
                        c0 = g * Cg
                        for c in range(Cg):
                            A[g, m, base + c] = xp[n, iy, ix, c0 + c]


@njit(cache=True)
def sum_chunks(P, mb, out):
    """out[m, c] = Σ_ch P[ch, m, c] for m < mb, exactly (P holds integer-valued float32 partial sums)."""
    nch, _, C = P.shape
    for m in range(mb):
        o = out[m]
        p0 = P[0, m]
        for c in range(C):
            o[c] = np.int32(p0[c])
        for ch in range(1, nch):
            pc = P[ch, m]
            for c in range(C):
                o[c] += np.int32(pc[c])


@njit(cache=True)
def requant(P, bias, q, left, right, zp_out, lo, hi, out):
    """out[m, c] = clamp(MBQM(P[m, c] + bias[c]) + zp_out, lo, hi); P integer-valued (float or int).
    acc·2^left wraps in int32 as in LiteRT (its int32 multiply)."""
    M, C = P.shape
    for m in range(M):
        p = P[m]
        o = out[m]
        for c in range(C):
            a = np.int64(np.int32((np.int64(p[c]) + bias[c]) << left[c]))
            ab = a * q[c]
            s = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
            s = s + (((1 << 31) - 1) if s < 0 else 0)  # makes >> 31 truncate toward zero
            h = s >> 31
            mask = (np.int64(1) << right[c]) - 1
            thr = (mask >> 1) + (1 if h < 0 else 0)
            r = (h >> right[c]) + (1 if (h & mask) > thr else 0)
            v = r + zp_out
            v = lo if v < lo else v
            o[c] = hi if v > hi else v


@njit(cache=True)
def requant_single(P, bias, q, t, zp_out, lo, hi, out):
    """out[m, c] = clamp(((P[m, c] + bias[c])·q + 2^(t-1)) >> t + zp_out, lo, hi)."""
    M, C = P.shape
    for m in range(M):
        p = P[m]
        o = out[m]
        for c in range(C):
            a = np.int64(p[c]) + bias[c]
            v = ((a * q[c] + (np.int64(1) << (t[c] - 1))) >> t[c]) + zp_out
            v = lo if v < lo else v
            o[c] = hi if v > hi else v


@njit(cache=True)
def bias_act(out, bias, lo, hi):
    """In place: out[m, c] = clamp(out[m, c] + bias[c], lo, hi) (one array: no aliasing checks)."""
    M, C = out.shape
    for m in range(M):
        r = out[m]
        for c in range(C):
            v = r[c] + bias[c]
            v = lo if v < lo else v
            r[c] = hi if v > hi else v


def row_blocks(rows: int, pixels_per_row: int, k: int, target_bytes: int = 1 << 20) -> list:
    """Split `rows` output rows into blocks whose float32 patch matrix stays near `target_bytes`
    (cache-sized blocks: the im2col writes are still in cache when the GEMM reads them)."""
    per = max(1, target_bytes // max(1, 4 * k * pixels_per_row))
    return [(r0, min(rows, r0 + per)) for r0 in range(0, rows, per)]


class BlockedGemm:
    """Per row block: P[ch][:mb, g·Ng:(g+1)·Ng] = A[g][rows, k0:k1] @ B[g][k0:k1] for every chunk/group.

    A [G, MA, K], B [G, K, Ng], P [nch, MP, G·Ng] float32. With `absolute` the block's A rows are
    its own pixel range m0:m1 of A (A holds the whole input); otherwise rows 0:mb (A is reused).
    `blocks` are (r0, r1) output-row ranges of `pixels_per_row` pixels each.
    """

    def __init__(self, A, B, chunks, P, blocks, pixels_per_row, absolute=False):
        G, Ng = B.shape[0], B.shape[2]
        self.plans = []
        for r0, r1 in blocks:
            m0, m1 = r0 * pixels_per_row, r1 * pixels_per_row
            mb = m1 - m0
            a0, a1 = (m0, m1) if absolute else (0, mb)
            views = [(A[g, a0:a1, k0:k1], B[g, k0:k1, :], P[ci, :mb, g * Ng:(g + 1) * Ng])
                     for ci, (k0, k1) in enumerate(chunks) for g in range(G)]
            self.plans.append((r0, r1, m0, m1, mb, views))

    @staticmethod
    def run(views):
        for a, b, p in views:
            np.matmul(a, b, out=p)


# ---- on-the-fly input quantization of the hybrid (float input, int8 weight) kernels -------------
# Per row of values, as LiteRT 2.3 computes it (measured bit-exactly against its BUILTIN_REF output;
# round = half away from zero, products in float32):
#   symmetric:  r = max|x|; sf = r/127; xq = clamp(round(x·(127/r)), -127, 127); off = 0
#   asymmetric: rmin = min(0, min x), rmax = max(0, max x); sf = (rmax - rmin)/255 in FLOAT32 (not
#               double, unlike the older portable source); with s = sf in double the zero point is
#               z = -128 - rmin/s if 128 + |rmin/s| < 127 + |rmax/s| else 127 - rmax/s, clamped to
#               [-128, 127] and rounded; xq = clamp(round(x·(1/sf)) + off, -128, 127)
#               (the product is rounded BEFORE the offset is added).
#   r == 0 or rmin == rmax: xq = 0, sf = 1, off = 0.

def _round_away(v):
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def quantize_rows_ref(x2, asym):
    """Row-wise on-the-fly int8 quantization (NumPy spec): (xq int64, sf float32, off int64) per row."""
    B, K = x2.shape
    xq = np.zeros((B, K), np.int64)
    sf = np.ones(B, np.float32)
    off = np.zeros(B, np.int64)
    f32 = np.float32
    for b in range(B):
        row = x2[b].astype(f32)
        mn, mx = f32(row.min()), f32(row.max())
        if not asym:
            r = max(abs(mn), abs(mx))
            if r == 0:
                continue
            sf[b] = f32(r / f32(127))
            xq[b] = np.clip(_round_away(row * f32(f32(127) / r)), -127, 127)
            continue
        rmin, rmax = min(f32(0), mn), max(f32(0), mx)
        if rmin == rmax:
            continue
        sf[b] = f32((rmax - rmin) / f32(255))
        s, lo, hi = float(sf[b]), float(rmin), float(rmax)
        zd = -128.0 - lo / s if 128.0 + abs(lo / s) < 127.0 + abs(hi / s) else 127.0 - hi / s
        off[b] = -128 if zd <= -128.0 else 127 if zd >= 127.0 else int(_round_away(zd))
        xq[b] = np.clip(_round_away(row * f32(f32(1) / sf[b])) + off[b], -128, 127)
    return xq, sf, off


def quantize_rows(x2, xq, sf, off, asym):
    """Row-wise on-the-fly int8 quantization into xq (integers stored as float32), sf, off."""
    _quantize_rows(x2, xq, sf, off, asym)


# ---- SIMD micro-kernels: register-tiled GEMM / depthwise tiles with fused epilogues ---------------
# Numba's loop vectorizer cannot keep an output tile in registers (no SLP, no restrict), so the
# tile kernels below are written directly as LLVM IR through numba intrinsics. One call computes a
# tile of MR output rows (pixels) × 16 output channels and stores it finished (requantized int8
# or clamped float32): no im2col, no GEMM call, no separate requantization pass.
#
# Int8 (and hybrid) GEMM tiles read int16 operands in PAIRS of consecutive reduction elements:
#   acc[i, j] += a[i, e]·w[e, j] + a[i, e+1]·w[e+1, j]        (one 32-bit broadcast of (a_e, a_e+1))
# which is exactly one pmaddwd lane (vpdpwssd with VNNI). a = x - zp_x ∈ [-255, 255] and
# w ∈ [-255, 255] (FULLY_CONNECTED subtracts its weight zero point) are int16; the pair sum is at
# most 2·255² < 2^31 and acc is int32 like TFLite's accumulator. A run of odd length reads one
# element past its end, paired with a zero weight (buffers carry slack so the read stays inside).
# Float32 tiles broadcast one a per step and use fmuladd (FMA where the target has it).
#
# Layout: `rows` holds MR byte addresses (one per output row; a partial last tile repeats its last
# valid address), `tab` one int32 byte offset per reduction step (relative to a row address), `w`
# the packed weights of one 16-channel block, 64 bytes per step, `prm` the block's epilogue
# parameters, `rt` per-row float32 scales (hybrid). Output rows are `ldo` bytes apart; only the
# first `mr` rows and the first `nvalid` channels are stored.

def _simd_level() -> str:
    env = os.environ.get("XNN_SIMD", "")
    if env in ("avx512", "avx2", "generic"):
        return env
    from numba.core import config
    if config.CPU_NAME:  # Numba compiles for a named CPU: trust only its explicit feature list
        f = {t[1:]: t[0] == "+" for t in (config.CPU_FEATURES or "").split(",") if t and t[0] in "+-"}
    else:
        try:
            import llvmlite.binding as llb
            f = llb.get_host_cpu_features()
        except Exception:
            return "generic"
    if f.get("avx512f") and f.get("avx512bw"):
        return "avx512"
    if f.get("avx2"):
        return "avx2"
    return "generic"


SIMD = _simd_level()
# A forced level (tests) must not reuse or pollute the on-disk cache of the host level.
_CACHE = "XNN_SIMD" not in os.environ
LANES = 16

_I1, _I8, _I16, _I32, _I64 = (_ir.IntType(b) for b in (1, 8, 16, 32, 64))
_F32 = _ir.FloatType()


def _V(t, n=LANES):
    return _ir.VectorType(t, n)


def _c64(v):
    return _ir.Constant(_I64, v)


def _c32(v):
    return _ir.Constant(_I32, v)


def _vc(t, v, n=LANES):
    return _ir.Constant(_V(t, n), [v] * n)


def _ptr(b, addr, ty):
    return b.inttoptr(addr, ty.as_pointer())


def _splat(b, s, n=LANES):
    v = b.insert_element(_ir.Constant(_V(s.type, n), None), s, _c32(0))
    return b.shuffle_vector(v, v, _ir.Constant(_V(_I32, n), [0] * n))


def _pmadd(b, w, x):
    """<32 x i16> w, x -> <16 x i32>: r[j] = w[2j]·x[2j] + w[2j+1]·x[2j+1] (no saturation here)."""
    if SIMD == "avx512":
        fn = b.module.declare_intrinsic("llvm.x86.avx512.pmaddw.d.512",
                                        fnty=_ir.FunctionType(_V(_I32), [_V(_I16, 32)] * 2))
        return b.call(fn, [w, x])
    if SIMD == "avx2":
        fn = b.module.declare_intrinsic("llvm.x86.avx2.pmadd.wd",
                                        fnty=_ir.FunctionType(_V(_I32, 8), [_V(_I16, 16)] * 2))
        lo = _ir.Constant(_V(_I32, 16), list(range(16)))
        hi = _ir.Constant(_V(_I32, 16), list(range(16, 32)))
        r0 = b.call(fn, [b.shuffle_vector(w, w, lo), b.shuffle_vector(x, x, lo)])
        r1 = b.call(fn, [b.shuffle_vector(w, w, hi), b.shuffle_vector(x, x, hi)])
        return b.shuffle_vector(r0, r1, _ir.Constant(_V(_I32, 16), list(range(16))))
    ev = _ir.Constant(_V(_I32, 16), list(range(0, 32, 2)))
    od = _ir.Constant(_V(_I32, 16), list(range(1, 32, 2)))
    we, wo = (b.sext(b.shuffle_vector(w, w, s), _V(_I32)) for s in (ev, od))
    xe, xo = (b.sext(b.shuffle_vector(x, x, s), _V(_I32)) for s in (ev, od))
    return b.add(b.mul(we, xe), b.mul(wo, xo))


def _fmuladd(b, x, y, z):
    fn = b.module.declare_intrinsic("llvm.fmuladd.v16f32",
                                    fnty=_ir.FunctionType(_V(_F32), [_V(_F32)] * 3))
    return b.call(fn, [x, y, z])


def _clamp(b, v, lo, hi, fp):
    """v = lo if v < lo else v; hi if v > hi else v (a NaN passes through, as in bias_act)."""
    lt = b.fcmp_ordered("<", v, lo) if fp else b.icmp_signed("<", v, lo)
    v = b.select(lt, lo, v)
    gt = b.fcmp_ordered(">", v, hi) if fp else b.icmp_signed(">", v, hi)
    return b.select(gt, hi, v)


def _store_lanes(b, val, addr, nvalid):
    """Store the first nvalid lanes of a 16-lane vector at byte address addr."""
    vt = val.type
    if isinstance(vt.element, _ir.FloatType):
        name, es = "v16f32", 4
    else:
        name, es = f"v16i{vt.element.width}", vt.element.width // 8
    fn = b.module.declare_intrinsic(f"llvm.masked.store.{name}.p0",
                                    fnty=_ir.FunctionType(_ir.VoidType(),
                                                          [vt, vt.as_pointer(), _I32, _V(_I1)]))
    lanes = _ir.Constant(_V(_I64), list(range(LANES)))
    mask = b.icmp_signed("<", lanes, _splat(b, nvalid))
    b.call(fn, [val, _ptr(b, addr, vt), _c32(es), mask])


def _ld(b, base, index, ty, n=LANES):
    """n elements of ty at element index `index` of the block at byte address base."""
    size = 4 if isinstance(ty, _ir.FloatType) else ty.width // 8
    return b.load(_ptr(b, b.add(base, _c64(index * size)), _V(ty, n)), align=size)


def _lds(b, base, index, ty):
    size = 4 if isinstance(ty, _ir.FloatType) else ty.width // 8
    return b.load(_ptr(b, b.add(base, _c64(index * size)), ty), align=size)


class _EpiConvI8:
    """Conv int8 (TFLite double rounding). prm int64: bias[16] q[16] left[16] right[16] mask[16]
    halfm[16] zp lo hi, with mask = 2^right - 1, halfm = mask >> 1. Per lane, as LiteRT computes:
        a = acc·2^left                         (int32, wrapping like LiteRT's int32 multiply)
        h = floor((a·q + 2^30) / 2^31)         (= SaturatingRoundingDoublingHighMul(a, q): its
                                                nudge then truncation toward zero is this floor)
        r = (h >> right) + [(h & mask) > halfm + (h < 0)]     (RoundingDivideByPOT)
        y = clamp(r + zp, lo, hi)              (int32 steps: |h| < 2^31)"""
    fp = False
    PRM = 104
    rowscale = False

    def init(self, b, prm):
        return b.trunc(_ld(b, prm, 0, _I64), _V(_I32))

    def params(self, b, prm):
        g = dict(q=_ld(b, prm, 16, _I64))
        for k, i in (("left", 32), ("right", 48), ("mask", 64), ("halfm", 80)):
            g[k] = b.trunc(_ld(b, prm, i, _I64), _V(_I32))
        for k, i in (("zp", 96), ("lo", 97), ("hi", 98)):
            g[k] = _splat(b, b.trunc(_lds(b, prm, i, _I64), _I32))
        return g

    def row(self, b, acc, g, sf):
        a = b.sext(b.shl(acc, g["left"]), _V(_I64))
        h = b.trunc(b.ashr(b.add(b.mul(a, g["q"]), _vc(_I64, 1 << 30)), _vc(_I64, 31)), _V(_I32))
        thr = b.add(g["halfm"], b.lshr(h, _vc(_I32, 31)))
        up = b.zext(b.icmp_signed(">", b.and_(h, g["mask"]), thr), _V(_I32))
        v = b.add(b.add(b.ashr(h, g["right"]), up), g["zp"])
        return b.trunc(_clamp(b, v, g["lo"], g["hi"], False), _V(_I8))


class _EpiFcI8:
    """FULLY_CONNECTED int8 (single rounding). prm int64: bias[16] q[16] t[16] rnd[16] zp lo hi,
    rnd = 2^(t-1), 1 <= t <= 62:  y = clamp(((acc·q + rnd) >> t) + zp, lo, hi), |acc·q| < 2^62."""
    fp = False
    PRM = 72
    rowscale = False

    def init(self, b, prm):
        return b.trunc(_ld(b, prm, 0, _I64), _V(_I32))

    def params(self, b, prm):
        g = dict(q=_ld(b, prm, 16, _I64), t=_ld(b, prm, 32, _I64), rnd=_ld(b, prm, 48, _I64))
        for k, i in (("zp", 64), ("lo", 65), ("hi", 66)):
            g[k] = _splat(b, b.trunc(_lds(b, prm, i, _I64), _I32))
        return g

    def row(self, b, acc, g, sf):
        v = b.ashr(b.add(b.mul(b.sext(acc, _V(_I64)), g["q"]), g["rnd"]), g["t"])
        v = b.add(b.trunc(v, _V(_I32)), g["zp"])
        return b.trunc(_clamp(b, v, g["lo"], g["hi"], False), _V(_I8))


class _EpiF32:
    """float32: prm float32: bias[16] lo hi; acc starts at the bias, y = clamp(acc, lo, hi)."""
    fp = True
    PRM = 32
    rowscale = False

    def init(self, b, prm):
        return _ld(b, prm, 0, _F32)

    def params(self, b, prm):
        return dict(lo=_splat(b, _lds(b, prm, 16, _F32)), hi=_splat(b, _lds(b, prm, 17, _F32)))

    def row(self, b, acc, g, sf):
        return _clamp(b, acc, g["lo"], g["hi"], True)


class _EpiHybConv:
    """Hybrid conv: prm float32: pcs[16] bias[16] lo hi; per-row sf:
    y = clamp(float32(acc)·pcs·sf + bias, lo, hi) in that float32 order (as TFLite)."""
    fp = False
    PRM = 48
    rowscale = True

    def init(self, b, prm):
        return _vc(_I32, 0)

    def params(self, b, prm):
        return dict(scale=_ld(b, prm, 0, _F32), bias=_ld(b, prm, 16, _F32),
                    lo=_splat(b, _lds(b, prm, 32, _F32)), hi=_splat(b, _lds(b, prm, 33, _F32)))

    def row(self, b, acc, g, sf):
        v = b.fmul(b.fmul(b.sitofp(acc, _V(_F32)), g["scale"]), _splat(b, sf))
        return _clamp(b, b.fadd(v, g["bias"]), g["lo"], g["hi"], True)


class _EpiHybFc(_EpiHybConv):
    """Hybrid FULLY_CONNECTED: the same parameters (scale = the weight scales ws); only the float32
    order differs: y = clamp(bias + float32(acc)·(sf·ws), lo, hi) (as TFLite)."""

    def row(self, b, acc, g, sf):
        s = b.fmul(_splat(b, sf), g["scale"])
        v = b.fadd(g["bias"], b.fmul(b.sitofp(acc, _V(_F32)), s))
        return _clamp(b, v, g["lo"], g["hi"], True)


def _counted_loop(b, lo, hi, stride, accs0, body):
    """for j in range(lo, hi, stride): accs = body(j, accs)  (hi - lo a multiple of stride);
    returns the accumulators after the loop."""
    fn = b.function
    pre = b.basic_block
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("loop_done")
    b.cbranch(b.icmp_signed("<", lo, hi), loop, done)
    b.position_at_end(loop)
    j = b.phi(_I64)
    phis = [b.phi(a.type) for a in accs0]
    new = body(j, phis)
    j1 = b.add(j, _c64(stride))
    end = b.basic_block
    b.cbranch(b.icmp_signed("<", j1, hi), loop, done)
    j.add_incoming(lo, pre)
    j.add_incoming(j1, end)
    outs = []
    for ph, a0, nv in zip(phis, accs0, new):
        ph.add_incoming(a0, pre)
        ph.add_incoming(nv, end)
    b.position_at_end(done)
    for a0, nv in zip(accs0, new):
        ph = b.phi(a0.type)
        ph.add_incoming(a0, pre)
        ph.add_incoming(nv, end)
        outs.append(ph)
    return outs


def _step(b, mode, tab, w, j, rows, accs):
    """One reduction step j for every row: accs[i] += a(row i, step j) ⊗ w(step j)."""
    off = b.sext(b.load(_ptr(b, b.add(tab, b.mul(j, _c64(4))), _I32), align=4), _I64)
    new = []
    if mode == "pairs":
        wv = b.load(_ptr(b, b.add(w, b.mul(j, _c64(64))), _V(_I16, 32)), align=2)
        for r, a in zip(rows, accs):
            xp = b.load(_ptr(b, b.add(r, off), _I32), align=2)
            new.append(b.add(a, _pmadd(b, wv, b.bitcast(_splat(b, xp), _V(_I16, 32)))))
    elif mode == "f32":
        wv = b.load(_ptr(b, b.add(w, b.mul(j, _c64(64))), _V(_F32)), align=4)
        for r, a in zip(rows, accs):
            xs = b.load(_ptr(b, b.add(r, off), _F32), align=4)
            new.append(_fmuladd(b, _splat(b, xs), wv, a))
    elif mode == "dw16":
        wv = b.sext(b.load(_ptr(b, b.add(w, b.mul(j, _c64(32))), _V(_I16)), align=2), _V(_I32))
        for r, a in zip(rows, accs):
            xv = b.load(_ptr(b, b.add(r, off), _V(_I16)), align=2)
            new.append(b.add(a, b.mul(b.sext(xv, _V(_I32)), wv)))
    else:  # dwf32
        wv = b.load(_ptr(b, b.add(w, b.mul(j, _c64(64))), _V(_F32)), align=4)
        for r, a in zip(rows, accs):
            xv = b.load(_ptr(b, b.add(r, off), _V(_F32)), align=4)
            new.append(_fmuladd(b, xv, wv, a))
    return new


GEMV_CHAINS = 4  # single-row tiles: independent accumulator chains hide the FMA / dot latency


def _tile_codegen(mode, epi, MR):
    """IR of one tile. mode: 'pairs' (int16 pairs GEMM), 'f32' (float GEMM), 'dw16' / 'dwf32'
    (depthwise: per step a 16-channel vector of the row times a 16-channel weight vector).
    MR = 1: steps round-robin over GEMV_CHAINS accumulators, summed at the end."""

    def codegen(context, b, signature, args):
        rows, aoff, tab, nk, w, prm, out, ldo, mr, nvalid, rt = args
        rp = _ptr(b, rows, _I64)
        r = [b.add(b.load(b.gep(rp, [_c64(i)]), align=8), aoff) for i in range(MR)]
        acc0 = epi.init(b, prm)
        if MR > 1:
            fin = _counted_loop(b, _c64(0), nk, 1, [acc0] * MR,
                                lambda j, accs: _step(b, mode, tab, w, j, r, accs))
        else:
            U = GEMV_CHAINS
            zero = _ir.Constant(acc0.type, None)
            nmain = b.mul(b.sdiv(nk, _c64(U)), _c64(U))
            chains = _counted_loop(
                b, _c64(0), nmain, U, [acc0] + [zero] * (U - 1),
                lambda j, accs: [_step(b, mode, tab, w, b.add(j, _c64(u)), r, [accs[u]])[0]
                                 for u in range(U)])
            last = _counted_loop(b, nmain, nk, 1, chains[:1],
                                 lambda j, accs: _step(b, mode, tab, w, j, r, accs))
            add = b.fadd if isinstance(acc0.type.element, _ir.FloatType) else b.add
            tot = last[0]
            for u in range(1, U):
                tot = add(tot, chains[u])
            fin = [tot]
        g = epi.params(b, prm)
        fn = b.function
        done = fn.append_basic_block("rows_done")
        for i in range(MR):
            st = fn.append_basic_block(f"row{i}")
            b.cbranch(b.icmp_signed(">", mr, _c64(i)), st, done)
            b.position_at_end(st)
            sf = _lds(b, rt, i, _F32) if epi.rowscale else None
            _store_lanes(b, epi.row(b, fin[i], g, sf), b.add(out, b.mul(ldo, _c64(i))), nvalid)
        b.branch(done)
        b.position_at_end(done)
        return context.get_dummy_value()
    return codegen


def _make_tile(mode, epi, MR):
    def impl(typingctx, rows, aoff, tab, nk, w, prm, out, ldo, mr, nvalid, rt):
        return _nbt.void(*([_nbt.intp] * 11)), _tile_codegen(mode, epi, MR)
    impl.__name__ = f"_tile_{mode}_{type(epi).__name__}_{MR}"
    return _intrinsic(impl)


MR_TILE = 8 if SIMD == "avx512" else 4  # accumulators: MR·16 lanes must fit the register file
_EPI_CONV_I8, _EPI_FC_I8, _EPI_F32 = _EpiConvI8(), _EpiFcI8(), _EpiF32()
_EPI_HCONV, _EPI_HFC = _EpiHybConv(), _EpiHybFc()
# kernel ids (header slot H_KERN); *_1 are single-row variants for GEMMs with very few rows
K_CONV_I8, K_FC_I8, K_F32, K_HCONV, K_HFC, K_DW_I8, K_DW_F32, K_DW_H = range(8)
K_FC_I8_1, K_F32_1, K_HFC_1 = 8, 9, 10
_t_conv_i8 = _make_tile("pairs", _EPI_CONV_I8, MR_TILE)
_t_fc_i8 = _make_tile("pairs", _EPI_FC_I8, MR_TILE)
_t_f32 = _make_tile("f32", _EPI_F32, MR_TILE)
_t_hconv = _make_tile("pairs", _EPI_HCONV, MR_TILE)
_t_hfc = _make_tile("pairs", _EPI_HFC, MR_TILE)
_t_dw_i8 = _make_tile("dw16", _EPI_CONV_I8, MR_TILE)
_t_dw_f32 = _make_tile("dwf32", _EPI_F32, MR_TILE)
_t_dw_h = _make_tile("dw16", _EPI_HCONV, MR_TILE)
_t_fc_i8_1 = _make_tile("pairs", _EPI_FC_I8, 1)
_t_f32_1 = _make_tile("f32", _EPI_F32, 1)
_t_hfc_1 = _make_tile("pairs", _EPI_HFC, 1)

# Plan header: int64 slots at the start of the plan array `ws`. Tiling: kernel id, tile height, M
# rows, NB channel blocks, OC, output row / element bytes, region indices (int64 elements into ws)
# and per-block strides (bytes) of the pixel, step-table, step-count, weight, parameter, row-address
# and row-scale regions, per-image scales (hybrid: SF region, PERIMG rows per image), the per-block
# operand offset (depthwise). Staging: N, H, W, C of the input, the staged Hp, Wp, pt, pl, zp_x,
# channel multiplier, asymmetric input quantization (hybrid), whether x is staged at all (float32).
(H_KERN, H_MR, H_M, H_NB, H_OC, H_LDO, H_OES, H_PIX, H_TAB, H_TABS, H_NK, H_W, H_WS, H_PRM, H_PRMS,
 H_ROWS, H_RT, H_SF, H_PERIMG, H_AOFFS, H_N, H_H, H_W_, H_C, H_HP, H_WP, H_PT, H_PL, H_ZP,
 H_MULT, H_ASYM, H_STAGED) = range(32)
HDR = 32


FAM_I8, FAM_F32, FAM_H = range(3)  # kernel families: one runner each


@njit(inline="always")
def _tiles(ws, xa, oa, fam):
    """Run every tile of the plan: M output rows in tiles of MR, 16-channel blocks. Inlined into
    each runner with a constant `fam`, so a runner compiles only its own family's kernels."""
    kern, MR, M, NB, OC = ws[H_KERN], ws[H_MR], ws[H_M], ws[H_NB], ws[H_OC]
    ldo, oes = ws[H_LDO], ws[H_OES]
    base = np.int64(ws.ctypes.data)
    pix = ws[ws[H_PIX]:ws[H_PIX] + M]
    nks = ws[ws[H_NK]:ws[H_NK] + NB]
    rows = ws[ws[H_ROWS]:ws[H_ROWS] + MR]
    ra = base + 8 * ws[H_ROWS]
    rta = base + 8 * ws[H_RT]
    rt = ws[ws[H_RT]:ws[H_RT] + MR].view(np.float32)
    per_img = ws[H_PERIMG]
    n_img = (M + per_img - 1) // per_img if per_img > 0 else 0
    sf = ws[ws[H_SF]:ws[H_SF] + n_img // 2 + 1].view(np.float32)
    ta, tstr = base + 8 * ws[H_TAB], ws[H_TABS]
    wa, wstr = base + 8 * ws[H_W], ws[H_WS]
    pa, pstr = base + 8 * ws[H_PRM], ws[H_PRMS]
    astr = ws[H_AOFFS]
    for m0 in range(0, M, MR):
        mr = min(MR, M - m0)
        for i in range(MR):
            rows[i] = xa + pix[m0 + min(i, mr - 1)]
        if per_img > 0:
            for i in range(mr):
                rt[i] = sf[(m0 + i) // per_img]
        ob = oa + m0 * ldo
        for nb in range(NB):
            ao, t, nk, wb, pb = nb * astr, ta + nb * tstr, nks[nb], wa + nb * wstr, pa + nb * pstr
            o, nv = ob + nb * LANES * oes, min(LANES, OC - nb * LANES)
            if fam == FAM_I8:
                if kern == K_CONV_I8:
                    _t_conv_i8(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                elif kern == K_DW_I8:
                    _t_dw_i8(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                elif kern == K_FC_I8:
                    _t_fc_i8(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                else:
                    _t_fc_i8_1(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
            elif fam == FAM_F32:
                if kern == K_F32:
                    _t_f32(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                elif kern == K_F32_1:
                    _t_f32_1(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                else:
                    _t_dw_f32(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
            else:
                if kern == K_HCONV:
                    _t_hconv(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                elif kern == K_DW_H:
                    _t_dw_h(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                elif kern == K_HFC:
                    _t_hfc(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)
                else:
                    _t_hfc_1(ra, ao, t, nk, wb, pb, o, ldo, mr, nv, rta)


def _minmax_codegen(context, b, signature, args):
    addr, n = args
    first = b.load(_ptr(b, addr, _F32), align=4)
    nv = b.mul(b.sdiv(n, _c64(LANES)), _c64(LANES))

    def upd(v, m, op):  # the scalar rule `if v < m: m = v`, lane-wise (NaN never replaces)
        return b.select(b.fcmp_ordered(op, v, m), v, m)

    def vec_body(j, acc):
        v = b.load(_ptr(b, b.add(addr, b.mul(j, _c64(4))), _V(_F32)), align=4)
        return [upd(v, acc[0], "<"), upd(v, acc[1], ">")]

    vm = _counted_loop(b, _c64(0), nv, LANES, [_splat(b, first)] * 2, vec_body)
    mn, mx = first, first
    for lane in range(LANES):
        mn = upd(b.extract_element(vm[0], _c32(lane)), mn, "<")
        mx = upd(b.extract_element(vm[1], _c32(lane)), mx, ">")

    def tail_body(j, acc):
        v = b.load(_ptr(b, b.add(addr, b.mul(j, _c64(4))), _F32), align=4)
        return [upd(v, acc[0], "<"), upd(v, acc[1], ">")]

    mn, mx = _counted_loop(b, nv, n, 1, [mn, mx], tail_body)
    return context.make_tuple(b, signature.return_type, [mn, mx])


@_intrinsic
def _minmax_f32(typingctx, addr, n):
    """(min, max) of n >= 1 float32 values at byte address addr (NaNs are skipped unless first)."""
    return _nbt.UniTuple(_nbt.float32, 2)(_nbt.intp, _nbt.intp), _minmax_codegen


# ---- staging: input -> padded operand buffer xp -------------------------------------------------
# The staged layout is [N, Hp, Wp, C·mult] (flat, plus slack): xp[n, pt + iy, pl + ix, c·mult + j]
# = x[n, iy, ix, c] - zp for every j < mult; the border is never written (0 from allocation), so
# padded taps add nothing. FULLY_CONNECTED stages its B rows as N = B images of 1 × 1 × K.

@njit(cache=_CACHE)
def _stage(xf, xp, ws):
    """xp (int16 or float32) <- x - zp at the staged positions (geometry from the plan header);
    xf is the flat input."""
    N, H, W, C = ws[H_N], ws[H_H], ws[H_W_], ws[H_C]
    Hp, Wp, pt, pl, m = ws[H_HP], ws[H_WP], ws[H_PT], ws[H_PL], ws[H_MULT]
    zp = np.int16(ws[H_ZP])  # int8 - int16 stays integer, float32 - int16 stays float32
    run = W * C
    for n in range(N):
        for iy in range(H):
            s0 = (n * H + iy) * run
            src = xf[s0:s0 + run]
            o = ((n * Hp + pt + iy) * Wp + pl) * C * m
            dst = xp[o:o + run * m]
            if m == 1:
                for i in range(run):
                    dst[i] = src[i] - zp
            else:
                for i in range(run):
                    v = src[i] - zp
                    for j in range(m):
                        dst[i * m + j] = v


@njit(cache=_CACHE)
def _row_qparams(row, asym):
    """On-the-fly int8 quantization parameters of one row (rules at quantize_rows_ref):
    (sf, off, inv, lo, hi) with xq = clamp(round(x·inv) + off, lo, hi); inv = 0 for a row that
    quantizes to all zeros (sf = 1, off = 0)."""
    mn, mx = _minmax_f32(np.int64(row.ctypes.data), row.shape[0])
    if not asym:
        r = max(abs(mn), abs(mx))
        if r == 0:
            return np.float32(1.0), 0, np.float32(0.0), -127.0, 127.0
        return r / np.float32(127.0), 0, np.float32(127.0) / r, -127.0, 127.0
    rmin = min(np.float32(0.0), mn)
    rmax = max(np.float32(0.0), mx)
    if rmin == rmax:
        return np.float32(1.0), 0, np.float32(0.0), -128.0, 127.0
    scale = (rmax - rmin) / np.float32(255.0)  # float32, as LiteRT
    s = np.float64(scale)
    emin = 128.0 + abs(rmin / s)
    emax = 127.0 + abs(rmax / s)
    zd = (-128.0 - rmin / s) if emin < emax else (127.0 - rmax / s)
    if zd <= -128.0:
        nz = -128
    elif zd >= 127.0:
        nz = 127
    else:
        nz = int(math.floor(abs(zd) + 0.5))
        if zd < 0:
            nz = -nz
    return scale, nz, np.float32(1.0) / scale, -128.0, 127.0


@njit(cache=_CACHE, inline="always")
def _q16(x, inv, lo, hi, off):
    """clamp(round_half_away(x·inv) + off, lo, hi) - off as int16 (float32 product, exact double
    rounding; branch-free so the staging loops vectorize)."""
    t = np.float64(x * inv)
    q = math.copysign(math.floor(abs(t) + 0.5), t)
    return np.int16(min(hi, max(lo, q + off)) - off)


@njit(cache=_CACHE)
def _quantize_rows(x2, xq, sf, off, asym):
    B, K = x2.shape
    for b in range(B):
        row = np.ascontiguousarray(x2[b])
        s, o, inv, lo, hi = _row_qparams(row, asym)
        sf[b] = s
        off[b] = o
        of = np.float64(o)
        dst = xq[b]
        for k in range(K):
            dst[k] = _q16(row[k], inv, lo, hi, of) + o


@njit(cache=_CACHE)
def _stage_hybrid(xf, xp, ws):
    """Per image n (all of its H·W·C values of the flat input xf): int8 quantization (sf[n],
    off[n]) and xp <- xq - off[n] (int16) at the staged positions; sf[n] goes to the SF region."""
    N, H, W, C = ws[H_N], ws[H_H], ws[H_W_], ws[H_C]
    Hp, Wp, pt, pl, m = ws[H_HP], ws[H_WP], ws[H_PT], ws[H_PL], ws[H_MULT]
    asym = ws[H_ASYM] != 0
    sf = ws[ws[H_SF]:ws[H_SF] + N // 2 + 1].view(np.float32)
    run = W * C
    size = H * run
    for n in range(N):
        s, off, inv, lo, hi = _row_qparams(xf[n * size:(n + 1) * size], asym)
        sf[n] = s
        o_add = np.float64(off)
        for iy in range(H):
            s0 = n * size + iy * run
            src = xf[s0:s0 + run]
            o = ((n * Hp + pt + iy) * Wp + pl) * C * m
            if m == 1:
                dst = xp[o:o + run]
                for i in range(run):
                    dst[i] = _q16(src[i], inv, lo, hi, o_add)
            else:
                dst = xp[o:o + run * m]
                for i in range(run):
                    v = _q16(src[i], inv, lo, hi, o_add)
                    for j in range(m):
                        dst[i * m + j] = v


# Runners: one Numba call per node. x, out are flat (1-D) views so that each runner has one
# specialization per dtype; see `runner` for how the views are made.

@njit(cache=_CACHE)
def run_i8(x, out, xp, ws):
    """int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: stage x - zp into xp, every tile."""
    _stage(x, xp, ws)
    _tiles(ws, np.int64(xp.ctypes.data), np.int64(out.ctypes.data), FAM_I8)


@njit(cache=_CACHE)
def run_f32(x, out, xp, ws):
    """float32: stage x into xp when the plan needs padding (or is depthwise), every tile."""
    if ws[H_STAGED]:
        _stage(x, xp, ws)
        xa = np.int64(xp.ctypes.data)
    else:
        xa = np.int64(x.ctypes.data)
    _tiles(ws, xa, np.int64(out.ctypes.data), FAM_F32)


@njit(cache=_CACHE)
def run_hybrid(x, out, xp, ws):
    """Hybrid (float32 in, int8 weights): quantize each image / row of x into xp, every tile."""
    _stage_hybrid(x, xp, ws)
    _tiles(ws, np.int64(xp.ctypes.data), np.int64(out.ctypes.data), FAM_H)


def runner(kind, xp, ws):
    """run(ins, outs) for a tile plan: the flat views of the node's (contiguous) input and output
    arrays are made once per array object (the interpreter passes the same objects every time)."""
    fn = {"int8": run_i8, "float32": run_f32, "hybrid": run_hybrid}[kind]
    memo = [None, None, None, None]

    def run(ins, outs):
        x, o = ins[0], outs[0]
        if x is not memo[0] or o is not memo[1]:
            if not o.flags.c_contiguous:
                raise ValueError("tile kernels write a C-contiguous output array")
            if not x.flags.c_contiguous:  # a copy: flatten again on every call
                return fn(np.ascontiguousarray(x).reshape(-1), o.reshape(-1), xp, ws)
            memo[:] = x, o, x.reshape(-1), o.reshape(-1)
        fn(memo[2], memo[3], xp, ws)
    return run


# ---- plan construction (prepare time) -----------------------------------------------------------

# XNN_TILES=1 / 0 forces the tile path / the BLAS path (tests set FORCE_TILES directly).
FORCE_TILES = {"1": True, "0": False}.get(os.environ.get("XNN_TILES", ""))


def tiles_wanted(M, K, OC, kind) -> bool:
    """Tile kernels (one call, fused epilogue) or the BLAS path for an M x K x OC product
    (kind: 'int8', 'float32', 'hybrid' or 'dw'). Calibrated with bench-style one-op timings
    (1 thread, OpenBLAS Haswell kernels for the BLAS path), layers from 0.03 to 151 M MACs:
      AVX-512 tiles: every kind and size faster than BLAS (int8 3.4-4.8x, float32 1.6-2.4x,
                     hybrid 1.7-4.9x, depthwise 1.8-4.4x, FC 1.3-5x);
      AVX2 tiles:    int8 / hybrid / depthwise 1.5-3.3x faster everywhere; float32 GEMMs tie
                     BLAS from ~4 M MACs and lose by up to 6% once K >= 128, OC >= 128 and
                     M·K·OC >= 2^24 (BLAS there);
      generic LLVM vectors (no x86 intrinsics, e.g. NUMBA_CPU_NAME=generic): 1.5-6x slower than
                     BLAS, so never."""
    if FORCE_TILES is not None:
        return FORCE_TILES
    if SIMD == "generic":
        return False
    if SIMD == "avx2" and kind == "float32" and K >= 128 and OC >= 128 and M * K * OC >= 1 << 24:
        return False
    return True


STAGE_SLACK = 64  # elements after the staged buffer: pair over-reads and 16-lane depthwise reads


class TilePlan:
    """Builds the plan array `ws`: HDR header slots, then 64-byte aligned regions."""

    def __init__(self, kern):
        self.hdr = np.zeros(HDR, np.int64)
        self.parts = []
        self.size = HDR
        self.hdr[H_KERN] = kern
        self.hdr[H_MR] = 1 if kern in (K_FC_I8_1, K_F32_1, K_HFC_1) else MR_TILE

    def region(self, arr=None, nbytes=0) -> int:
        raw = None
        if arr is not None:
            raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
            nbytes = raw.size
        idx = -(-self.size // 8) * 8
        self.parts.append((idx, raw))
        self.size = idx + max(1, -(-nbytes // 8))
        return idx

    def set(self, **slots):
        for k, v in slots.items():
            self.hdr[globals()["H_" + k]] = int(v)

    def tiles(self, M, OC, oes, pix, tab, nks, wpk, prm, aoff_stride=0):
        """Tile geometry: M rows (pix: byte offset of each row's operand), OC channels of oes bytes,
        per 16-channel block: tab (int32 byte offsets, shared when tab has one row), step count,
        packed weights and epilogue parameters."""
        NB = -(-OC // LANES)
        tab = np.ascontiguousarray(tab, np.int32)
        wpk = np.ascontiguousarray(wpk)
        prm = np.ascontiguousarray(prm)
        assert wpk.shape[0] == NB and prm.shape[0] == NB and len(nks) == NB
        self.set(M=M, NB=NB, OC=OC, LDO=OC * oes, OES=oes, AOFFS=aoff_stride,
                 TABS=0 if tab.shape[0] == 1 else tab[0].nbytes, WS=wpk[0].nbytes,
                 PRMS=prm[0].nbytes)
        self.hdr[H_PIX] = self.region(np.asarray(pix, np.int64))
        self.hdr[H_TAB] = self.region(tab)
        self.hdr[H_NK] = self.region(np.asarray(nks, np.int64))
        self.hdr[H_W] = self.region(wpk)
        self.hdr[H_PRM] = self.region(prm)
        self.hdr[H_ROWS] = self.region(nbytes=8 * MR_TILE)
        self.hdr[H_RT] = self.region(nbytes=4 * MR_TILE)

    def build(self):
        full = np.zeros(self.size + 8, np.int64)
        sh = (-full.ctypes.data % 64) // 8
        ws = full[sh:sh + self.size]
        ws[:HDR] = self.hdr
        u8 = ws.view(np.uint8)
        for idx, raw in self.parts:
            if raw is not None:
                u8[idx * 8: idx * 8 + raw.size] = raw
        return ws


def aligned_empty(n, dtype):
    """Zeroed 1-D array of n elements starting on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    full = np.zeros(n * dtype.itemsize + 64, np.uint8)
    sh = -full.ctypes.data % 64
    return full[sh:sh + n * dtype.itemsize].view(dtype)


def prm_conv_i8(bias, mult, zp, lo, hi):
    """Per-block epilogue parameters of _EpiConvI8 (double rounding), int64 [NB, PRM]."""
    OC = len(bias)
    NB = -(-OC // LANES)
    q, left, right = requant_params(mult)
    P = np.zeros((NB, _EpiConvI8.PRM), np.int64)
    for nb in range(NB):
        c = slice(nb * LANES, min(OC, nb * LANES + LANES))
        n = c.stop - c.start
        P[nb, 0:n] = bias[c]
        P[nb, 16:16 + n] = q[c]
        P[nb, 32:32 + n] = left[c]
        P[nb, 48:48 + n] = right[c]
        P[nb, 64:64 + n] = (np.int64(1) << right[c]) - 1
        P[nb, 80:80 + n] = ((np.int64(1) << right[c]) - 1) >> 1
        P[nb, 96:99] = (zp, lo, hi)
    return P


def prm_fc_i8(bias, mult, zp, lo, hi):
    """Per-block epilogue parameters of _EpiFcI8 (single rounding), int64 [NB, PRM]."""
    OC = len(bias)
    NB = -(-OC // LANES)
    q, t = requant_params_single(mult)
    tiny = t > 62  # |acc·q| < 2^62 <= 2^(t-1): the result is 0, as with q = 0
    q = np.where(tiny, 0, q)
    t = np.minimum(t, 62)
    P = np.zeros((NB, _EpiFcI8.PRM), np.int64)
    for nb in range(NB):
        c = slice(nb * LANES, min(OC, nb * LANES + LANES))
        n = c.stop - c.start
        P[nb, 0:n] = bias[c]
        P[nb, 16:16 + n] = q[c]
        P[nb, 32:32 + n] = t[c]
        P[nb, 48:48 + n] = np.int64(1) << (t[c] - 1)
        P[nb, 64:67] = (zp, lo, hi)
        P[nb, 32 + n:48] = 1  # unused lanes: a valid shift
    return P


def prm_float(vectors, lo, hi, size):
    """Per-block float32 epilogue parameters: the given per-channel vectors (16 lanes each, in
    order) followed by lo, hi."""
    OC = len(vectors[0])
    NB = -(-OC // LANES)
    P = np.zeros((NB, size), np.float32)
    for nb in range(NB):
        c = slice(nb * LANES, min(OC, nb * LANES + LANES))
        n = c.stop - c.start
        for i, v in enumerate(vectors):
            P[nb, 16 * i:16 * i + n] = np.asarray(v, np.float32)[c]
        P[nb, 16 * len(vectors)] = lo
        P[nb, 16 * len(vectors) + 1] = hi
    return P


def pack_steps(Wd, steps0, steps1=None):
    """Packed weights of a GEMM: Wd [OC, T] (dense, reduction index t), steps0 [NB, S] tap index of
    each step (-1: none; one row: shared by all blocks), steps1 the pair's second tap (int16
    pairs) or None (float32). Returns [NB, S, 16, 2] (pairs) or [NB, S, 16] (float32), zero for
    missing taps / channels."""
    OC, T = Wd.shape
    NB = -(-OC // LANES)
    steps0 = np.broadcast_to(steps0, (NB, steps0.shape[1]))
    if steps1 is not None:
        steps1 = np.broadcast_to(steps1, steps0.shape)
    Wz = np.zeros((NB * LANES, T + 1), Wd.dtype)
    Wz[:OC, :T] = Wd
    Wb = Wz.reshape(NB, LANES, T + 1)
    out = []
    for steps in (steps0, steps1) if steps1 is not None else (steps0,):
        idx = np.where(steps < 0, T, steps)  # column T is all zero
        out.append(np.stack([Wb[nb][:, idx[nb]].T for nb in range(NB)]))  # [NB, S, 16]
    return np.stack(out, axis=-1) if steps1 is not None else out[0]
