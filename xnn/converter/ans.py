"""Order-0 range asymmetric numeral system (rANS) coding of weight codes (format version 6).

`xnn convert --entropy ans` stores the B-bit indices of palette/affine weights (--weight-bits)
with one static symbol model per tensor instead of LZMA over the packed bits. LZMA sees bytes, and
3-, 5-, 6- or 7-bit codes straddle byte boundaries, so it stays ~10% above the codes' order-0
entropy; rANS with the tensor's own symbol frequencies gets within a fraction of a percent of it.

Coder (the classic byte-wise rANS of J. Duda's asymmetric numeral systems): the probability of
symbol s is f[s] / M with M = 2^PROB_BITS and the f[s] summing to M; the state x stays in
[L, 256 L), L = 2^23. The encoder walks the symbols backwards: while x >= (L / M) * 256 * f[s] it
emits x's low byte and shifts x right by 8, then x = (x // f[s]) * M + x % f[s] + c[s] (c = the
cumulative frequencies). The emitted bytes are stored in reverse, so the decoder reads forwards:
slot = x % M, s = the symbol whose [c[s], c[s] + f[s]) holds slot, x = f[s] * (x // M) + slot - c[s],
then while x < L it shifts in the next byte. It starts from the encoder's final state and must end
in the encoder's initial state L having read every byte: a corrupt stream fails that check.

Stored bytes of an "ans" tensor (the payload it inflates to is the one "lzma" would give, so the
layout checks are shared):
    uint32 P        length of the LZMA2 stream of the payload's prefix (selection bytes and code
                    parameters; 0 when the prefix is empty), then those P bytes
    uint16 f[K]     K = 2^bits symbol frequencies, summing to M
    uint32 x        the encoder's final state, in [L, 256 L)
    bytes           the rANS stream
The decoder hands the indices to the value expansion as they are (they are not packed again).
"""
from __future__ import annotations

import struct

import numpy as np
from numba import njit

PROB_BITS = 14
M = 1 << PROB_BITS
RANS_L = 1 << 23


def normalize_freqs(counts, total: int = M) -> np.ndarray:
    """Integer frequencies summing to `total`, proportional to `counts`, >= 1 wherever a count is
    positive and 0 where it is 0 (so every symbol that occurs can be coded)."""
    c = np.asarray(counts, np.int64)
    n = int(c.sum())
    if n <= 0:
        raise ValueError("no symbols to model")
    if int(np.count_nonzero(c)) > total:
        raise ValueError("more distinct symbols than frequency slots")
    f = np.where(c > 0, np.maximum(1, (c * total) // n), 0).astype(np.int64)
    # hand the remainder out (or take the excess back) by largest count, keeping every f >= 1
    diff = total - int(f.sum())
    order = np.argsort(-c, kind="stable")
    i = 0
    while diff != 0:
        s = order[i % len(order)]
        if c[s] > 0:
            if diff > 0:
                f[s] += 1
                diff -= 1
            elif f[s] > 1:
                f[s] -= 1
                diff += 1
        i += 1
    return f


@njit(cache=True)
def _encode(sym, freq, cum, out):
    """rANS-encode sym (uint8) into out (reverse order, from the end); returns (state, start)."""
    x = np.uint64(RANS_L)
    pos = out.shape[0]
    for i in range(sym.shape[0] - 1, -1, -1):
        s = sym[i]
        f = np.uint64(freq[s])
        x_max = np.uint64((RANS_L >> PROB_BITS) << 8) * f
        while x >= x_max:
            pos -= 1
            out[pos] = np.uint8(x & np.uint64(255))
            x >>= np.uint64(8)
        x = (x // f) * np.uint64(M) + (x % f) + np.uint64(cum[s])
    return x, pos


@njit(cache=True)
def _decode(buf, x0, freq, cum, slot_sym, out):
    """Decode out.shape[0] symbols from buf starting in state x0. Returns 0 when the stream is
    exactly consumed and ends in the initial state, 1 when it runs out of bytes, 2 otherwise.
    Every read of buf is bounds-checked (Numba does not check)."""
    x = np.uint64(x0)
    pos = 0
    n = buf.shape[0]
    mask = np.uint64(M - 1)
    for i in range(out.shape[0]):
        slot = x & mask
        s = slot_sym[slot]
        out[i] = s
        x = np.uint64(freq[s]) * (x >> np.uint64(PROB_BITS)) + slot - np.uint64(cum[s])
        while x < np.uint64(RANS_L):
            if pos >= n:
                return 1
            x = (x << np.uint64(8)) | np.uint64(buf[pos])
            pos += 1
    if pos != n or x != np.uint64(RANS_L):
        return 2
    return 0


def encode_symbols(sym: np.ndarray, bits: int) -> bytes:
    """The frequency table, final state and rANS stream (see the module doc) for symbols < 2^bits."""
    sym = np.ascontiguousarray(sym, np.uint8).ravel()
    K = 1 << bits
    if sym.size and int(sym.max()) >= K:
        raise ValueError(f"symbol {int(sym.max())} does not fit {bits} bits")
    freq = normalize_freqs(np.bincount(sym, minlength=K)) if sym.size else \
        np.array([M] + [0] * (K - 1), np.int64)
    cum = np.concatenate([[0], np.cumsum(freq)[:-1]]).astype(np.int64)
    # at most 2 bytes per symbol: x < 2^31 is renormalised below 2^17 f (f >= 1); generous bound
    out = np.empty(sym.size * 3 + 16, np.uint8)
    x, start = _encode(sym, freq, cum, out)
    return freq.astype("<u2").tobytes() + struct.pack("<I", int(x)) + out[start:].tobytes()


def decode_symbols(stored, count: int, bits: int, what: str, fail) -> np.ndarray:
    """The inverse of `encode_symbols`: `count` symbols (uint8) from `stored` (frequency table,
    state, stream). Every defect calls fail(message) (which raises)."""
    K = 1 << bits
    stored = memoryview(stored)
    if len(stored) < 2 * K + 4:
        fail(f"{what}: ans stream of {len(stored)} bytes is shorter than its {2 * K + 4}-byte model")
    freq = np.frombuffer(stored[:2 * K], "<u2").astype(np.int64)
    if int(freq.sum()) != M:
        fail(f"{what}: ans symbol frequencies sum to {int(freq.sum())}, not {M}")
    x0 = struct.unpack_from("<I", stored, 2 * K)[0]
    if not RANS_L <= x0 < RANS_L << 8:
        fail(f"{what}: ans state {x0} is out of range")
    cum = np.concatenate([[0], np.cumsum(freq)[:-1]]).astype(np.int64)
    slot_sym = np.repeat(np.arange(K, dtype=np.uint8), freq)  # length M: the sum was checked
    out = np.empty(count, np.uint8)
    buf = np.frombuffer(stored[2 * K + 4:], np.uint8)
    rc = _decode(buf, x0, freq, cum, slot_sym, out)
    if rc == 1:
        fail(f"{what}: ans stream ends before its {count} symbols")
    if rc == 2:
        fail(f"{what}: ans stream is corrupt (it does not end where its encoder started)")
    return out
