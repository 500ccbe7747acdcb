"""Shared GEMM machinery for the convolution family and FULLY_CONNECTED.

Exact int8 GEMM on float32 BLAS: integer operands with |a| <= A and |b| <= B give products of at most
A·B; a float32 sum of k such products is exact while k·A·B <= 2^24 (every partial sum is then an
integer of magnitude <= 2^24, all representable, whatever order or FMA use the BLAS picks).
`exact_chunk` gives that k; longer reductions are split into chunks whose float32 results are
summed in int64 by `sum_chunks`.

Layouts: activations are NHWC. Patch (im2col) matrices are [G, M, K] with M = N·OH·OW output pixels
and K = KH·KW·Cg ordered (ky, kx, c); packed weights are [G, K, Ng]; group g's product
[M, K] @ [K, Ng] is written straight into columns g·Ng .. g·Ng+Ng-1 of a [M, OC] result.

Requantization (TFLite MultiplyByQuantizedMultiplier, "double rounding"), with (q, shift) from
quantize_multiplier, left = max(shift, 0), right = max(-shift, 0):
    a  = acc · 2^left
    h  = trunc_toward_zero((a·q + nudge) / 2^31),  nudge = 2^30 if a·q >= 0 else 1 - 2^30
    y  = floor(h / 2^right) + [h mod 2^right > (2^right - 1)/2 + (h < 0)]   (round half away)
in int64: exact for |acc| < 2^31 with acc·2^left inside int32 (TFLite's own domain; there the
int32 shift would wrap, here it does not).
LiteRT's int8 FULLY_CONNECTED rounds once instead (ruy / TFLITE_SINGLE_ROUNDING form):
    y  = (acc·q + 2^(t-1)) >> t,   t = 31 - shift     (round half up; |acc·q| < 2^62)
"""
from __future__ import annotations

import numpy as np
from numba import njit

import math

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
    """out[m, c] = clamp(MBQM(P[m, c] + bias[c]) + zp_out, lo, hi); P integer-valued (float or int)."""
    M, C = P.shape
    for m in range(M):
        p = P[m]
        o = out[m]
        for c in range(C):
            a = (np.int64(p[c]) + bias[c]) << left[c]
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


@njit(cache=True)
def quantize_rows(x2, xq, sf, off, asym):
    """Row-wise on-the-fly int8 quantization into xq (integers stored as float32), sf, off."""
    B, K = x2.shape
    for b in range(B):
        mn = x2[b, 0]
        mx = x2[b, 0]
        for k in range(1, K):
            v = x2[b, k]
            if v < mn:
                mn = v
            if v > mx:
                mx = v
        sf[b] = np.float32(1.0)
        off[b] = 0
        if not asym:
            r = max(abs(mn), abs(mx))
            if r == 0:
                for k in range(K):
                    xq[b, k] = 0
                continue
            sf[b] = r / np.float32(127.0)
            inv = np.float32(127.0) / r
            lo, hi = -127.0, 127.0
            o = 0.0
        else:
            rmin = min(np.float32(0.0), mn)
            rmax = max(np.float32(0.0), mx)
            if rmin == rmax:
                for k in range(K):
                    xq[b, k] = 0
                continue
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
            sf[b] = scale
            off[b] = nz
            inv = np.float32(1.0) / scale
            lo, hi = -128.0, 127.0
            o = np.float64(nz)
        for k in range(K):
            t = np.float64(x2[b, k] * inv)  # float32 product, then exact rounding in double
            q = math.floor(abs(t) + 0.5)
            if t < 0:
                q = -q
            xq[b, k] = min(hi, max(lo, q + o))
