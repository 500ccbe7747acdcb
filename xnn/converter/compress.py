"""Weight compression for .xnn files: low-rank factorization, magnitude pruning, sub-8-bit weights,
coarse (bfloat16) parameters and entropy coding, each optional, applied in that order and composable.

`compress(g, CompressOptions(...))` takes the graph an .xnn stores (after `graph_for_xnn`) and
returns a `Compressed`: the graph whose constants hold exactly the values the file will decode to,
plus per-tensor `Encoded` forms (descriptor + bytes, the layouts are specified in xnn_format.py).
`write_xnn(c.graph, c.encodings, compress_header=...)` writes it; at load every encoded constant is
expanded back to a dense array of its original dtype, so the kernels (and int8 bit-exactness
against LiteRT on those weights) are unchanged.

Weights compressed ("targets"): input 1 of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED /
TRANSPOSE_CONV and every 2-D constant input of the LSTM ops, stored as int8 (symmetric: zero point
0), float16 (through the DEQUANTIZE a float16 model keeps) or float32. The channel axis is the
output channel: 0, or 3 for DEPTHWISE_CONV_2D ([1, kh, kw, C]), or the quantization axis of
per-channel int8 weights. Biases and other constants are only entropy-coded.

1. Low-rank (`low_rank`: an int R >= 1 is the rank; a float f in (0, 1) picks per matrix the
   smallest r with sum_{i<r} s_i^2 >= f · sum_i s_i^2, s the singular values). W [M, N] ≈ A·B with
   A = U_r·diag(sqrt(s_r)), B = diag(sqrt(s_r))·V_r^T (truncated SVD: the best rank-r
   approximation in Frobenius norm).
   - float32 FULLY_CONNECTED with float32 activations: the node becomes two, y = act((x·B^T)·A^T
     + bias): FC(x, B [r, K], no bias) then FC(h, A [N, r], bias, act), when r·(N + K) < N·K.
     The graph changes (fewer MACs too). Not done for int8 FCs: the intermediate h would need its
     own int8 scale, an extra rounding step that LiteRT's int8 FC on the original weights does
     not have, so the result could not stay bit-exact with any single-FC int8 model.
   - LSTM weight matrices, and FC weights that cannot be split (int8, float16), are stored
     factored and multiplied back at load to the original shape ("lowrank" values): a
     storage-only compression; the op and its kernel are unchanged. int8 factors are int8 with a
     float32 scale per row of A and per column of B, so the product at load is an exact integer
     sum followed by one rounding (the same on every machine). Used only when the factors take
     fewer bytes than the matrix (and, with weight_bits B, than B bits per element). Such
     tensors are not pruned or palette-coded afterwards.
2. Pruning (`prune` = fraction S in [0, 1)). Unstructured: the round(S·n) elements of smallest
   |real value| (real = q·scale for int8: per-channel scales differ) become 0 (stable order on
   ties). Channel-structured (`prune_channels`): the round(S·C) output channels of smallest L2 norm
   of real values become 0. For int8 weights zero is exact in the quantized domain (zero point 0);
   for float weights it is value zeroing. Biases are kept. Tensors with fewer than
   `prune_min_size` elements are left unpruned (small early layers are the most sensitive, and
   pruning them saves few bytes). Stored with an element mask (1 bit per
   element) or a channel mask plus the stored values, when that is smaller than the dense array.
3. Sub-8-bit values (`weight_bits` B): the stored (nonzero, when pruned) values of each group get
   K = 2^B levels, indices bit-packed:
   - "kmeans": 1-D k-means per group, k-means++ initialization from a seeded generator, Lloyd
     iterations (in 1-D every cluster is an interval of the sorted values, so an iteration is a
     search for the midpoints plus interval means). Centroids are rounded to the tensor's dtype
     (int8: to integers, so the runtime still runs its exact int8 kernels on the expanded
     weights), then every value takes its nearest rounded centroid. A group with <= K distinct
     values keeps them exactly. Codebooks are per output channel, or one per tensor where
     per-channel codebooks would cost more than 1 bit per stored weight (`codebook="auto"`).
   - "uniform": per channel, lo = min, step = (max - lo)/(K - 1), q = round((w - lo)/step) and the
     value float32(lo + step·q), stored as (lo, step) per channel; int8 tensors store int8 (lo, hi)
     and K integer levels between them (each weight takes its nearest level).
   With `rounding` "gptq" (and calibration feeds) each channel keeps these levels but its weights
   are assigned to them with error feedback on the layer's calibration inputs (xnn.converter.gptq)
   instead of each taking its nearest level.
   A coded tensor keeps its original (lossless) form where coding would not make it smaller.
   Per tensor (`bits_for`): tensors with fewer than `weight_bits_min_size` elements keep exact
   values; `weight_bits_for` ((regex, B), ...) overrides the width for tensors whose name matches
   (re.search; the last match wins; B = 0: exact), with or without a global `weight_bits`.
   `weight_bits_fit`: a tensor whose codes of some width B <= 7 reproduce it (k-means: at most 2^B
   distinct values per group; uniform: every value within half a level step of float rounding, or
   one integer for int8, of its level) gets the smallest such B, unless the options above give it
   fewer bits. Float uniform codes also fit channels that do not reach both ends of their grid:
   lo = the smallest value, step = the largest that puts every value on lo + k·step
   (models.train --qat-grid-from keeps the float model's grids, which post-training gptq codes
   need not fill). This is how a model trained on those grids (models.train --qat-bits) is stored
   without choosing the widths again: a QAT'd int8 model's channels sit on their uniform grids up
   to TensorFlow's int8 rounding. With coarse parameters a float tensor's width is found on exact
   code parameters and then coded with the bfloat16 ones (which cannot reproduce a grid exactly).
   With `prune_channels`, layers whose output reaches a model output through weight-free ops only
   (class logits, detector maps) are not pruned.
4. Coarse parameters (`coarse_params`; lossy, format version 5): the per-channel numbers around the
   weights keep 8 significant bits (bfloat16, relative change <= 2^-8 each) instead of 24 or 32.
   int8 weights of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV keep their int8
   values and get their scales rounded to bfloat16 (which the entropy-coded scale section then
   stores in about half the bytes: their low two byte planes are zero); each int32 bias of such a
   node is re-quantized to the new product scale s_x·s_w' (the same real bias, rounded to an integer
   and then to 8 significant bits) and stored as bfloat16 values. float32 biases of those ops are
   rounded to bfloat16 and stored so; float uniform codes (step 3) round (lo, step) to bfloat16
   before choosing the levels and store the pairs in 4 bytes instead of 8. Skipped where a weight
   or bias is shared in a way one rounding cannot serve (a weight read by other ops, a bias read by
   nodes with inputs of different scales). A float LSTM's gate and projection biases are rounded and
   stored as bfloat16 as well; LSTM weights and int8 LSTM biases are left exact (their int8 scales
   are per tensor: nothing to save). The int8 model is still run by the same exact integer
   kernels; it is a slightly different int8 model, so check it (`--report` with `--calib`).
5. Entropy coding (`entropy` = "zlib" or "lzma", standard library): every constant's stored bytes
   are deflated when that makes them smaller, and the JSON header is stored compressed. "ans":
   lzma, except that the B-bit indices of palette/affine weights get an order-0 rANS coder with the
   tensor's own symbol frequencies (xnn/converter/ans.py) wherever that is smaller: LZMA reads
   bytes and stays ~10% above the entropy of 3-, 5-, 6- or 7-bit codes that straddle them.
   Such a tensor is inflated into a new array at load: it is no longer memory-mapped zero-copy.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from ..errors import XnnError
from ..ir import Graph, Node, QuantParams, TensorSpec, frozen_options
from .xnn_format import (ENC_ENTROPY, Encoded, _channel_of, affine_i8_levels, byte_codec, decode_tensor, deflate,
                         deflate_ans, enc_layout, f32_to_bf16, pack_uint, product_scale, round_bf16, write_xnn)

CONV_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}
LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "BIDI_SEQUENCE_LSTM")
CODECS = ("kmeans", "uniform")
CODEBOOKS = ("auto", "channel", "tensor")
ROUNDINGS = ("nearest", "gptq")


@dataclass(frozen=True)
class CompressOptions:
    prune: float = 0.0  # fraction of each weight tensor's elements (or channels) set to zero
    prune_channels: bool = False  # prune whole output channels (smallest L2 norm)
    prune_min_size: int = 0  # weight tensors with fewer elements are not pruned
    weight_bits: int | None = None  # 1..8: palette/uniform codes of this many bits
    codec: str = "kmeans"  # "kmeans" | "uniform"
    codebook: str = "auto"  # kmeans codebooks: "channel" | "tensor" | "auto"
    low_rank: float | None = None  # rank (int >= 1) or retained energy fraction in (0, 1)
    entropy: str | None = None  # "zlib" | "lzma" | "ans"
    kmeans_iters: int = 30
    seed: int = 0
    weight_bits_min_size: int = 0  # weight tensors with fewer elements keep their exact values
    weight_bits_for: tuple = ()  # ((regex, bits), ...): per-tensor bits by tensor name, 0 = exact
    weight_bits_fit: bool = False  # the fewest bits whose codes reproduce a tensor (module doc, step 3)
    coarse_params: bool = False  # bfloat16 weight scales, code parameters and biases (module doc, step 4)
    rounding: str = "nearest"  # sub-8-bit codes: "nearest" level, or "gptq" (error feedback, xnn.converter.gptq)
    bias_correction: bool = False  # biases absorb each coded/pruned weight's mean output shift (--calib)

    def bits_for(self, name: str, size: int):
        """The code width for a weight tensor (None: exact values): the last --weight-bits-for pattern
        that matches (re.search) the tensor's name, else --weight-bits unless the tensor has fewer
        than weight_bits_min_size elements."""
        import re

        bits = None if size < self.weight_bits_min_size else self.weight_bits
        for pat, b in self.weight_bits_for:
            if re.search(pat, name):
                bits = b
        return bits or None

    def check(self) -> "CompressOptions":
        if not (isinstance(self.prune, (int, float)) and 0.0 <= self.prune < 1.0):
            raise XnnError(f"--prune must be a fraction in [0, 1), got {self.prune!r}")
        if not (isinstance(self.prune_min_size, int) and self.prune_min_size >= 0):
            raise XnnError(f"--prune-min-size must be a non-negative integer, got {self.prune_min_size!r}")
        if self.prune_channels and not self.prune:
            raise XnnError("--prune-channels needs --prune S (the fraction of channels to remove)")
        if self.weight_bits is not None and not (isinstance(self.weight_bits, int) and 1 <= self.weight_bits <= 8):
            raise XnnError(f"--weight-bits must be an integer in 1..8, got {self.weight_bits!r}")
        if self.codec not in CODECS:
            raise XnnError(f"--weight-codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if self.codebook not in CODEBOOKS:
            raise XnnError(f"codebook must be one of {', '.join(CODEBOOKS)}, got {self.codebook!r}")
        if self.low_rank is not None:
            r = self.low_rank
            if not isinstance(r, (int, float)) or not (0 < r < 1 or (r >= 1 and float(r).is_integer())):
                raise XnnError(f"--low-rank must be a rank (integer >= 1) or an energy fraction in (0, 1), got {r!r}")
        if self.entropy is not None and self.entropy not in ENC_ENTROPY:
            raise XnnError(f"--entropy must be one of {', '.join(ENC_ENTROPY)}, got {self.entropy!r}")
        if self.rounding not in ROUNDINGS:
            raise XnnError(f"--weight-rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}")
        if self.rounding == "gptq":
            if not (self.weight_bits or any(b for _, b in self.weight_bits_for)):
                raise XnnError("--weight-rounding gptq rounds sub-8-bit codes: give --weight-bits B "
                               "or --weight-bits-for REGEX=B")
            if self.weight_bits_fit:
                raise XnnError("--weight-rounding gptq chooses new codes after training; --weight-bits-fit "
                               "stores the codes a model was trained on: use one of them")
            if self.prune:
                raise XnnError("--weight-rounding gptq does not combine with --prune (pruned weights are "
                               "stored apart from their zeros); use one of them")
        if self.bias_correction and not (self.coded or self.prune):
            raise XnnError("--bias-correction corrects the shift that lossy weights make: give --weight-bits, "
                           "--weight-bits-for, --weight-bits-fit or --prune")
        if not (isinstance(self.kmeans_iters, int) and self.kmeans_iters >= 0):
            raise XnnError("kmeans_iters must be a non-negative integer")
        if not (isinstance(self.weight_bits_min_size, int) and self.weight_bits_min_size >= 0):
            raise XnnError(f"--weight-bits-min-size must be a non-negative integer, got {self.weight_bits_min_size!r}")
        import re

        for item in self.weight_bits_for:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise XnnError(f"--weight-bits-for entries must be (REGEX, BITS), got {item!r}")
            pat, b = item
            if not (isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 8):
                raise XnnError(f"--weight-bits-for {pat}={b!r}: bits must be an integer in 0..8 (0: exact)")
            try:
                re.compile(pat)
            except re.error as e:
                raise XnnError(f"--weight-bits-for {pat!r}: not a regular expression ({e})") from None
        return self

    @property
    def coded(self) -> bool:
        """Whether any weight tensor may get sub-8-bit codes."""
        return bool(self.weight_bits or self.weight_bits_fit or any(b for _, b in self.weight_bits_for))

    @property
    def active(self) -> bool:
        return bool(self.prune or self.coded or self.low_rank is not None or self.entropy or self.coarse_params)


class Compressed(NamedTuple):
    graph: Graph  # constants hold the values the file decodes to
    encodings: dict  # tensor index -> Encoded
    notes: dict  # tensor index -> short description of how it is stored ("mask 50% kmeans4/ch zlib")
    header_compressed: object  # False, True ("zlib") or the codec name: header and scale section

    def to_bytes(self) -> bytes:
        codec = "zlib" if self.header_compressed is True else (self.header_compressed or None)
        return write_xnn(self.graph, self.encodings, compress_header=codec or False, scales_entropy=codec)


@dataclass
class Target:
    """A weight tensor to compress: its channel axis and what reads it."""

    axis: int
    kind: str  # "conv" | "fc" | "lstm"
    readers: list = field(default_factory=list)  # node positions


def _progress(fn, msg):
    if fn is not None:
        fn(msg)


# ---- finding the weights -----------------------------------------------------------------------

def _source(g: Graph, t: int, producers: dict):
    """The stored constant behind input t: t itself, or the float16 constant a DEQUANTIZE widens."""
    spec = g.tensors[t]
    if spec.is_variable:
        return None
    if spec.data is not None:
        return t
    p = producers.get(t)
    if p is not None:
        node = g.nodes[p]
        if node.op == "DEQUANTIZE" and len(node.inputs) == 1 and node.inputs[0] >= 0:
            s = g.tensors[node.inputs[0]]
            if s.data is not None and not s.is_variable and np.dtype(s.dtype) == np.float16:
                return node.inputs[0]
    return None


def weight_targets(g: Graph) -> dict:
    """tensor index -> Target for the weights this module compresses (see the module docstring)."""
    producers = g.producers()
    found: dict = {}
    bad = set()
    for pos, node in enumerate(g.nodes):
        cands = []
        if node.op in CONV_AXIS and len(node.inputs) > 1 and node.inputs[1] >= 0:
            cands.append((node.inputs[1], CONV_AXIS[node.op], "fc" if node.op == "FULLY_CONNECTED" else "conv"))
        elif node.op in LSTM_OPS:
            for t in node.inputs[1:]:
                if t >= 0 and len(g.tensors[t].shape) == 2:
                    cands.append((t, 0, "lstm"))
        for t, axis, kind in cands:
            src = _source(g, t, producers)
            if src is None:
                continue
            spec = g.tensors[src]
            dt = np.dtype(spec.dtype).name
            if dt not in ("int8", "float16", "float32") or spec.size == 0 or len(spec.shape) <= axis:
                continue
            if dt == "int8":
                q = spec.quant
                if q is None or np.any(np.asarray(q.zero_point) != 0):
                    continue  # asymmetric or unquantized int8: zero is not 0
                if q.per_channel:
                    axis = q.axis
            if src in found and (found[src].axis != axis or found[src].kind != kind):
                bad.add(src)
            found.setdefault(src, Target(axis, kind)).readers.append(pos)
    return {t: v for t, v in found.items() if t not in bad}


def _real_scale(spec: TensorSpec, axis: int) -> np.ndarray:
    """Per-element factor from stored values to real values, broadcastable to the tensor."""
    if np.dtype(spec.dtype) != np.int8:
        return np.ones(1)
    q = spec.quant
    s = np.asarray(q.scale, np.float64)
    if s.size == 1:
        return s.reshape((1,) * len(spec.shape))
    shape = [1] * len(spec.shape)
    shape[q.axis] = s.size
    return s.reshape(shape)


# ---- low-rank ----------------------------------------------------------------------------------

def _rank_for(s: np.ndarray, spec: float) -> int:
    """The rank asked for: an integer rank (capped), or the smallest one keeping `spec` of the energy."""
    if spec >= 1:
        return max(1, min(int(spec), s.size))
    e = np.cumsum(s.astype(np.float64) ** 2)
    if e[-1] <= 0:
        return 1
    return int(min(s.size, np.searchsorted(e / e[-1], spec) + 1))


def _svd_factors(w: np.ndarray, spec: float):
    """(A [M, r], B [r, N], r) with A·B the truncated SVD of w (float64), or None for a matrix with
    non-finite values."""
    w = np.asarray(w, np.float64)
    if not np.all(np.isfinite(w)):
        return None
    try:
        u, s, vt = np.linalg.svd(w, full_matrices=False)
    except np.linalg.LinAlgError:
        return None
    r = _rank_for(s, spec)
    root = np.sqrt(s[:r])
    return u[:, :r] * root, root[:, None] * vt[:r], r


def _split_fc(g: Graph, pos: int, spec: float, progress) -> Graph | None:
    """Replace a float32 FC at node position `pos` by two FCs through rank r, if that saves bytes."""
    node = g.nodes[pos]
    x, w_t = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else -1
    w, xs, ys = g.tensors[w_t], g.tensors[x], g.tensors[node.outputs[0]]
    if int(node.options.get("weights_format", 0)) != 0 or len(node.outputs) != 1:
        return None
    if any(np.dtype(s.dtype) != np.float32 for s in (w, xs, ys)) or w.data is None:
        return None
    if bias >= 0 and (g.tensors[bias].data is None or np.dtype(g.tensors[bias].dtype) != np.float32):
        return None
    N, K = w.shape
    got = _svd_factors(w.data, spec)
    if got is None:
        return None
    a, b, r = got
    if r * (N + K) >= N * K:
        return None
    keep = bool(node.options.get("keep_num_dims", False))
    total = int(np.prod(xs.shape, dtype=np.int64))
    if total % K:
        return None
    h_shape = tuple(xs.shape[:-1]) + (r,) if keep else (total // K, r)
    n = len(g.tensors)
    new_t = (TensorSpec(f"{w.name}/lowrank_in", (r, K), np.dtype(np.float32), data=_ro(b.astype(np.float32))),
             TensorSpec(f"{w.name}/lowrank_out", (N, r), np.dtype(np.float32), data=_ro(a.astype(np.float32))),
             TensorSpec(f"{ys.name}/lowrank_h", h_shape, np.dtype(np.float32)))
    first = Node("FULLY_CONNECTED", (x, n, -1), (n + 2,),
                 frozen_options({**node.options, "fused_activation_function": 0}),
                 version=node.version, name=f"{node.name}/lowrank.0")
    second = Node("FULLY_CONNECTED", (n + 2, n + 1, bias), node.outputs, node.options,
                  version=node.version, name=f"{node.name}/lowrank.1")
    _progress(progress, f"  low-rank {node.name}: [{N}, {K}] -> [{r}, {K}] + [{N}, {r}] (two FCs)")
    return g.replace(tensors=g.tensors + new_t,
                     nodes=g.nodes[:pos] + (first, second) + g.nodes[pos + 1:])


def _lowrank_encoding(spec: TensorSpec, rank_spec: float):
    """Stored factors of a 2-D weight (see xnn_format "lowrank"), or None when not smaller."""
    w = np.asarray(spec.data)
    dt = np.dtype(spec.dtype)
    M, N = w.shape
    got = _svd_factors(w, rank_spec)
    if got is None:
        return None
    a, b, r = got
    if dt == np.int8:
        if r * (M + N) + 4 * (M + N) >= M * N:
            return None
        # int8 factors: A_i = su_i·Aq_i, B_:j = sv_j·Bq_:j with |Aq|, |Bq| <= 127
        su = np.abs(a).max(axis=1) / 127.0
        sv = np.abs(b).max(axis=0) / 127.0
        su[su == 0] = 1.0
        sv[sv == 0] = 1.0
        su, sv = su.astype(np.float32), sv.astype(np.float32)
        aq = np.clip(np.rint(a / su[:, None]), -127, 127).astype(np.int8)
        bq = np.clip(np.rint(b / sv[None, :]), -127, 127).astype(np.int8)
        payload = aq.tobytes() + bq.tobytes() + su.astype("<f4").tobytes() + sv.astype("<f4").tobytes()
    else:
        if 4 * r * (M + N) >= dt.itemsize * M * N:
            return None
        payload = a.astype("<f4").tobytes() + b.astype("<f4").tobytes()
    return {"values": "lowrank", "rank": int(r)}, payload, r


# ---- pruning -----------------------------------------------------------------------------------

def prune_weights(spec: TensorSpec, axis: int, frac: float, channels: bool):
    """(pruned array, kept-channel mask or None) for one weight tensor (module docstring, step 2)."""
    w = np.asarray(spec.data)
    real = np.abs(w.astype(np.float64) * _real_scale(spec, axis))
    out = w.copy()
    if channels:
        C = w.shape[axis]
        k = int(round(frac * C))
        norms = np.sqrt((np.moveaxis(real, axis, 0).reshape(C, -1) ** 2).sum(axis=1))
        kept = np.ones(C, bool)
        kept[np.argsort(norms, kind="stable")[:k]] = False
        idx = [slice(None)] * w.ndim
        idx[axis] = ~kept
        out[tuple(idx)] = 0
        return out, kept
    k = int(round(frac * w.size))
    flat = out.reshape(-1)
    flat[np.argsort(real.reshape(-1), kind="stable")[:k]] = 0
    return out, None


# ---- palette and uniform codes -----------------------------------------------------------------

def kmeans_1d(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """k sorted centroids of the values x (float64) by k-means++ seeding and Lloyd iterations.

    With <= k distinct values the centroids are those values (the last repeated): exact. In 1-D,
    the points nearest each of sorted centroids c_0 <= ... <= c_{k-1} are the sorted values between
    consecutive midpoints (c_j + c_{j+1})/2, so one Lloyd step is k-1 binary searches and k interval
    means from a prefix sum; an empty cluster keeps its centroid.
    """
    x = np.sort(np.asarray(x, np.float64).ravel())
    uniq = np.unique(x)
    if uniq.size <= k:
        return np.concatenate([uniq, np.full(k - uniq.size, uniq[-1] if uniq.size else 0.0)])
    n = x.size
    # k-means++: the first centre uniformly, each next with probability proportional to D(x)^2,
    # the squared distance to the nearest centre chosen so far
    centres = [x[int(rng.integers(n))]]
    d2 = (x - centres[0]) ** 2
    for _ in range(1, k):
        cum = np.cumsum(d2)
        i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
        centres.append(x[min(i, n - 1)])
        d2 = np.minimum(d2, (x - centres[-1]) ** 2)
    c = np.sort(np.array(centres))
    prefix = np.concatenate([[0.0], np.cumsum(x)])
    for _ in range(iters):
        cut = np.searchsorted(x, (c[1:] + c[:-1]) / 2, side="right")
        lo = np.concatenate([[0], cut])
        hi = np.concatenate([cut, [n]])
        cnt = hi - lo
        new = np.where(cnt > 0, (prefix[hi] - prefix[lo]) / np.maximum(cnt, 1), c)
        new = np.sort(new)
        if np.array_equal(new, c):
            break
        c = new
    return c


def _cast_levels(c: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Centroids as values of the tensor's dtype (int8: rounded half to even, clipped)."""
    if dtype == np.int8:
        return np.clip(np.rint(c), -128, 127).astype(np.int8)
    return c.astype(dtype)


def nearest(book: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of the ascending `book` for each x (ties go to the lower entry)."""
    b = book.astype(np.float64)
    return np.searchsorted((b[1:] + b[:-1]) / 2, np.asarray(x, np.float64), side="left")


class _Values(NamedTuple):
    desc: dict
    payload: bytes  # the value part of the payload
    note: str


def _palette_books(vals, groups, G, bits, dtype, opts, seed) -> np.ndarray:
    """k-means codebooks [G, 2^bits] (ascending, in the tensor's dtype) for G groups of the values."""
    K = 1 << bits
    books = np.zeros((G, K), dtype)
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(G + 1))
    x64 = vals.astype(np.float64)
    for gi in range(G):
        sel = order[bounds[gi]:bounds[gi + 1]]
        if sel.size == 0:
            continue
        rng = np.random.default_rng(list(seed) + [gi])
        books[gi] = np.sort(_cast_levels(kmeans_1d(x64[sel], K, rng, opts.kmeans_iters), dtype))
    return books


def _palette(vals, groups, G, bits, dtype, opts, seed, books=None) -> _Values:
    """k-means codebooks for G groups of the stored values (step 3); `books`: use these."""
    if books is None:
        books = _palette_books(vals, groups, G, bits, dtype, opts, seed)
    idx = np.zeros(vals.size, np.uint16)
    x64 = vals.astype(np.float64)
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(G + 1))
    for gi in range(G):
        sel = order[bounds[gi]:bounds[gi + 1]]
        if sel.size:
            idx[sel] = nearest(books[gi], x64[sel])
    return _Values({"values": "palette", "bits": bits}, books.astype(dtype.newbyteorder("<")).tobytes()
                   + pack_uint(idx, bits), f"kmeans{bits}")


def _affine_i8_grid(vals, groups, G) -> tuple:
    """Per group int8 (lo, hi) = (min, max) of the values (0, 0 for an empty group), int64."""
    x = vals.astype(np.int64)
    lo = np.full(G, 127, np.int64)
    hi = np.full(G, -128, np.int64)
    np.minimum.at(lo, groups, x)
    np.maximum.at(hi, groups, x)
    empty = hi < lo
    lo[empty] = 0
    hi[empty] = 0
    return lo, hi


def _affine_i8(vals, groups, G, bits, grid=None) -> _Values:
    """Uniform codes of an int8 tensor: per group int8 lo = min, hi = max (or `grid` = (lo, hi)) and K
    integer levels between them (xnn_format.affine_i8_levels); each value takes its nearest level
    (ties: the lower)."""
    K = 1 << bits
    x = vals.astype(np.int64)
    lo, hi = grid if grid is not None else _affine_i8_grid(vals, groups, G)
    lg, hg = lo[groups], hi[groups]
    # level(q0) <= x <= level(q0 + 1): the nearest is one of the two
    q0 = np.clip(((x - lg) * (K - 1)) // np.maximum(hg - lg, 1), 0, K - 1)
    q1 = np.minimum(q0 + 1, K - 1)
    up = np.abs(affine_i8_levels(lg, hg, q1, bits) - x) < np.abs(affine_i8_levels(lg, hg, q0, bits) - x)
    best = np.where(up, q1, q0)
    params = np.stack([lo, hi], axis=1).astype(np.int8)
    return _Values({"values": "affine", "bits": bits, "params": "int8"},
                   params.tobytes() + pack_uint(best.astype(np.uint16), bits), f"uniform{bits}")


def _affine_grid(vals, groups, G, bits, coarse: bool = False) -> tuple:
    """Per group float32 (lo, step): lo = min, step = (max - lo)/(K - 1) (`coarse`: each rounded
    to bfloat16 before the next is derived)."""
    K = 1 << bits
    x = vals.astype(np.float64)
    lo = np.zeros(G, np.float64)
    hi = np.zeros(G, np.float64)
    has = np.bincount(groups, minlength=G) > 0
    lo[:] = np.inf
    hi[:] = -np.inf
    np.minimum.at(lo, groups, x)
    np.maximum.at(hi, groups, x)
    lo[~has] = 0
    hi[~has] = 0
    lo32 = lo.astype(np.float32)
    if coarse:
        lo32 = round_bf16(lo32)
    with np.errstate(over="ignore", invalid="ignore"):
        step32 = ((hi - lo32.astype(np.float64)) / (K - 1)).astype(np.float32)
    if coarse:
        step32 = round_bf16(step32)
    return lo32, step32


def _affine(vals, groups, G, bits, dtype, coarse: bool = False, grid=None) -> _Values:
    """Uniform codes: per group lo = min, step = (max - lo)/(K - 1), q = round((x - lo)/step)
    (int8 tensors: _affine_i8). `coarse`: lo and step rounded to bfloat16 first and stored as such.
    `grid`: these (lo, step) (int8: (lo, hi)) instead."""
    if dtype == np.int8:
        return _affine_i8(vals, groups, G, bits, grid)
    K = 1 << bits
    x = vals.astype(np.float64)
    lo32, step32 = grid if grid is not None else _affine_grid(vals, groups, G, bits, coarse)
    s = step32.astype(np.float64)[groups]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s > 0, np.rint((x - lo32.astype(np.float64)[groups]) / np.where(s > 0, s, 1)), 0)
    q = np.clip(q, 0, K - 1).astype(np.uint16)
    params = np.stack([lo32, step32], axis=1).astype("<f4")
    with np.errstate(over="ignore", invalid="ignore"):
        top = lo32 + step32 * np.float32(K - 1)  # the largest level, as the decoder computes it
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(top))):
        return None
    if coarse:
        return _Values({"values": "affine", "bits": bits, "params": "bfloat16"},
                       f32_to_bf16(params).astype("<u2").tobytes() + pack_uint(q, bits), f"uniform{bits}/bf16")
    return _Values({"values": "affine", "bits": bits}, params.tobytes() + pack_uint(q, bits), f"uniform{bits}")


def _code_levels(grid, codec: str, dtype: np.dtype, bits: int) -> np.ndarray:
    """[groups, 2^bits] float64: every value a group's codes can decode to, ascending, from the grid
    _palette_books / _affine_i8_grid / _affine_grid chose (what gptq rounding picks from)."""
    if codec == "kmeans":
        return np.asarray(grid, np.float64)
    k = np.arange(1 << bits)
    if dtype == np.int8:
        return affine_i8_levels(grid[0][:, None], grid[1][:, None], k, bits).astype(np.float64)
    return grid[0].astype(np.float64)[:, None] + grid[1].astype(np.float64)[:, None] * k


def _output_heads(g: Graph) -> set:
    """Positions of the weighted nodes (conv, FC, LSTM) whose output reaches a graph output through
    weight-free ops only: pruning their output channels would zero classes or output maps."""
    consumers = g.consumers()
    heads = set()
    weighted = set(CONV_AXIS) | set(LSTM_OPS)
    outs = set(g.outputs)
    for pos, node in enumerate(g.nodes):
        if node.op not in weighted:
            continue
        todo, seen = list(node.outputs), set()
        while todo:
            t = todo.pop()
            if t in seen or t < 0:
                continue
            seen.add(t)
            if t in outs:
                heads.add(pos)
                break
            for c in consumers.get(t, ()):
                if g.nodes[c].op not in weighted:
                    todo.extend(g.nodes[c].outputs)
    return heads


def _encode_weight(t: int, spec: TensorSpec, target: Target, kept, pruned: bool, opts: CompressOptions,
                   progress, label: str, bits=None, hessian=None, grid=None):
    """(Encoded or None, decoded array, note) for one (possibly pruned) weight tensor: the smallest
    of dense, sparse (pruned: element or channel mask) and, with weight_bits, coded values; a lossy
    code only where it is smaller than both lossless forms. `hessian` (gptq.collect_hessians, for an
    unpruned tensor): the codes' levels are chosen with error feedback (gptq.gptq_round) instead of
    nearest rounding, on the levels plain rounding would have. `grid`: float uniform codes on these
    per-channel (lo, step) float64 arrays instead of min/max ones (_step_grid; unpruned tensors)."""
    w = np.asarray(spec.data)
    dt = np.dtype(spec.dtype)
    le = dt.newbyteorder("<")
    shape, n, axis = tuple(spec.shape), w.size, target.axis
    flat = w.reshape(-1)
    chan = _channel_of(shape, axis)
    sel_desc, sel_bytes, mask = {}, b"", None
    if kept is not None:
        sel_desc = {"layout": "channels", "axis": axis, "count": int(kept.sum())}
        sel_bytes = np.packbits(kept.astype(np.uint8), bitorder="little").tobytes()
        mask = kept[chan]
    elif pruned:
        mask = flat != 0
        sel_desc = {"layout": "mask", "count": int(mask.sum())}
        sel_bytes = np.packbits(mask.astype(np.uint8), bitorder="little").tobytes()
    vals = flat if mask is None else flat[mask]
    m = vals.size
    # lossless forms: (size, desc, payload, note)
    forms = [(n * dt.itemsize, None, None, "")]
    if sel_desc:
        forms.append((len(sel_bytes) + m * dt.itemsize, dict(sel_desc), sel_bytes + vals.astype(le).tobytes(), ""))
    best = min(forms, key=lambda f: f[0])  # min keeps the first (dense) on ties
    finite = dt.kind != "f" or bool(np.all(np.isfinite(vals)))
    if bits and not finite:
        best = best[:3] + ("non-finite values: kept exact",)
    elif bits:
        K = 1 << bits
        ch = chan if mask is None else chan[mask]
        if kept is not None:
            ch = (np.cumsum(kept) - 1)[ch]  # group = rank among kept channels
            G = int(kept.sum())
        else:
            G = shape[axis]
        if opts.codebook == "tensor":
            shared = True
        elif opts.codebook == "channel" or opts.codec == "uniform":
            shared = False
        else:  # auto: per-channel unless its codebooks cost more than 1 bit per stored weight
            shared = G * K * dt.itemsize * 8 > max(m, 1)
        groups = np.zeros(m, np.int64) if shared else ch.astype(np.int64)
        Gs = 1 if shared else G
        if opts.codec == "kmeans":
            _progress(progress, f"  k-means {label}: {Gs} codebook{'s' if Gs != 1 else ''} of {K}, "
                                f"{m:,} weights")
            grid = _palette_books(vals, groups, Gs, bits, dt, opts, [opts.seed, t])
        elif dt == np.int8:
            grid = _affine_i8_grid(vals, groups, Gs)
        elif grid is not None and mask is None and not shared:
            lo32 = grid[0].astype(np.float32)
            step32 = grid[1].astype(np.float32)
            if opts.coarse_params:
                lo32, step32 = round_bf16(lo32), round_bf16(step32)
            grid = (lo32, step32)
        else:
            grid = _affine_grid(vals, groups, Gs, bits, opts.coarse_params)
        rounding = ""
        C = shape[axis]
        if (hessian is not None and mask is None and hessian.shape[-1] == n // max(C, 1)
                and (hessian.ndim == 2 or hessian.shape[0] == C)):
            levels = _code_levels(grid, opts.codec, dt, bits)
            if np.all(np.isfinite(levels)):
                from .gptq import gptq_round

                _progress(progress, f"  gptq {label}: {C} x {n // C}")
                new = _from_channel_rows(gptq_round(_channel_rows(w, axis), hessian, levels), shape, axis)
                vals = (np.rint(new) if dt == np.int8 else new).astype(dt).reshape(-1)
                rounding = "gptq "
        if opts.codec == "kmeans":
            v = _palette(vals, groups, Gs, bits, dt, opts, [opts.seed, t], books=grid)
        else:
            v = _affine(vals, groups, Gs, bits, dt, opts.coarse_params, grid=grid)
        if v is not None and rounding:
            v = v._replace(note=rounding + v.note)
        if v is None:  # a range beyond float32
            v = _Values({}, b"", f"uniform{bits} overflows: kept exact")
        desc = {**sel_desc, **v.desc}
        if shared:
            desc["shared"] = True
        else:
            desc["axis"] = axis
        size = len(sel_bytes) + len(v.payload)
        if v.desc and size < best[0]:
            best = (size, desc, sel_bytes + v.payload, v.note + ("/tensor" if shared else "/ch"))
        else:
            best = best[:3] + (v.note if not v.desc else f"{v.note} not smaller: kept exact",)
    size, desc, payload, note = best
    if desc is not None:
        if desc.get("layout") == "mask":
            note = f"mask {100 * (1 - desc['count'] / n):.0f}% zero {note}".strip()
        elif desc.get("layout") == "channels":
            note = f"{shape[axis] - desc['count']}/{shape[axis]} channels zero {note}".strip()
    elif pruned and n:
        note = f"dense ({100 * np.count_nonzero(flat == 0) / n:.0f}% zero) {note}".strip()
    if desc is None:
        return None, w, note
    decoded = decode_tensor(desc, memoryview(payload), shape, dt, f"tensor {t} '{spec.name}'")
    return Encoded(desc, payload), decoded, note


# the bias slot of a weight slot: CONV/DEPTHWISE/FC, and the LSTM's gate and projection weights
_BIAS_SLOT = {"CONV_2D": {1: 2}, "DEPTHWISE_CONV_2D": {1: 2}, "FULLY_CONNECTED": {1: 2},
              "UNIDIRECTIONAL_SEQUENCE_LSTM": {1: 12, 2: 13, 3: 14, 4: 15, 5: 12, 6: 13, 7: 14, 8: 15, 16: 17}}


def _correct_bias(g: Graph, t: int, target: Target, before, after, mean, encodings) -> tuple:
    """Bias correction (step 3, --bias-correction): the layer reading float32 weight tensor t gets
    bias + (before - after)·E[x] per output channel, E[x] its mean input on the calibration data
    (gptq.collect_layer_stats), so that rounding or pruning t does not move the layer's output on
    average. (graph, True), or (graph, False) where it does not apply: int8 weights, several readers,
    no float32 bias of one value per channel read by this layer alone."""
    w0, w1 = np.asarray(before), np.asarray(after)
    if w0.dtype != np.float32 or len(target.readers) != 1:
        return g, False
    p = target.readers[0]
    node = g.nodes[p]
    slots = [s for s, i in enumerate(node.inputs) if i == t]
    table = _BIAS_SLOT.get(node.op, {})
    if len(slots) != 1 or slots[0] not in table or len(node.inputs) <= table[slots[0]]:
        return g, False
    slot = table[slots[0]]
    b = node.inputs[slot]
    C = w0.shape[target.axis]
    d = _channel_rows(w0, target.axis) - _channel_rows(w1, target.axis)  # [C, n]
    m = np.asarray(mean, np.float64)
    if m.shape not in ((d.shape[1],), d.shape):
        return g, False
    shift = d @ m if m.ndim == 1 else np.einsum("cn,cn->c", d, m)
    if b < 0:  # no bias (conv/FC): a zero one to correct
        if node.op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            return g, False
        old = np.zeros(C, np.float64)
    else:
        bspec = g.tensors[b]
        if (b in encodings or b in g.outputs or bspec.data is None or np.dtype(bspec.dtype) != np.float32
                or tuple(bspec.shape) != (C,)):
            return g, False
        old = np.asarray(bspec.data, np.float64)
    new = (old + shift).astype(np.float32)
    if not np.all(np.isfinite(new)):
        return g, False
    if b >= 0 and g.consumers().get(b, []) == [p] and list(node.inputs).count(b) == 1:
        return _with_data(g, b, new), True
    # absent, or shared with other layers (TFLite shares equal constants, e.g. zero biases): this
    # layer gets a bias tensor of its own
    name = f"{g.tensors[t].name}/bias_corrected"
    spec = TensorSpec(name, (C,), np.dtype(np.float32), None, _ro(new))
    ins = list(node.inputs) + [-1] * max(0, slot + 1 - len(node.inputs))
    ins[slot] = len(g.tensors)
    nodes = list(g.nodes)
    nodes[p] = replace(node, inputs=tuple(ins))
    return g.replace(tensors=g.tensors + (spec,), nodes=tuple(nodes)), True


def _channel_rows(w: np.ndarray, axis: int) -> np.ndarray:
    """w as (channels along `axis`, elements per channel), float64."""
    return np.moveaxis(np.asarray(w, np.float64), axis, 0).reshape(w.shape[axis], -1)


def _from_channel_rows(rows: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """The inverse of _channel_rows for a tensor of `shape`."""
    moved = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    return np.moveaxis(rows.reshape(moved), 0, axis)


def _fitted(t, spec, target, kept, pruned, opts, label, cap):
    """The _encode_weight result for the fewest bits B <= 7 (and below `cap`, the width the other
    options give, None: 8) whose codes reproduce the tensor (CompressOptions.weight_bits_fit), or
    None."""
    w = np.asarray(spec.data)
    dt = np.dtype(spec.dtype)
    if w.size == 0 or (dt.kind == "f" and not np.all(np.isfinite(w))):
        return None
    rows = _channel_rows(w, target.axis)
    distinct = int(((np.diff(np.sort(rows, axis=1), axis=1) != 0).sum(axis=1) + 1).max())
    # allowed error per channel: none for k-means (it keeps <= 2^B distinct values exactly), one
    # integer for int8 uniform codes, float rounding of the channel's range for float uniform codes
    if opts.codec == "kmeans":
        tol = np.zeros((rows.shape[0], 1))
    elif dt == np.int8:
        tol = np.ones((rows.shape[0], 1))
    else:
        tol = 1e-5 * (rows.max(axis=1) - rows.min(axis=1))[:, None] + 1e-30
    # float uniform codes with coarse parameters cannot reproduce a grid exactly (lo and step are
    # rounded to bfloat16 before the levels are chosen): find the width on exact parameters, then
    # code at that width with the coarse ones
    probe = replace(opts, coarse_params=False) if opts.coarse_params and dt.kind == "f" else opts
    top = min(7, cap - 1) if cap else 7
    # float uniform codes whose channels need not reach both ends of their grid (e.g. trained with
    # models.train --qat-grid-from on post-training gptq codes): each channel's lo is its smallest
    # value, its step the largest that puts all its values on lo + k·step (_step_grid)
    grid, step_bits = None, None
    if opts.codec == "uniform" and dt.kind == "f" and kept is None and not pruned:
        fit = _step_grid(rows, tol)
        if fit is not None:
            grid, levels = fit[:2], fit[2]
            step_bits = max(1, math.ceil(math.log2(levels)))
            top = min(top, step_bits)
    for bits in range(max(1, math.ceil(math.log2(distinct))), top + 1):
        got = _encode_weight(t, spec, target, kept, pruned, probe, None, label, bits)
        if got[0] is None:
            return None  # coding is not smaller: nothing to fit
        if np.all(np.abs(_channel_rows(got[1], target.axis) - rows) <= tol):
            if probe is not opts:
                got = _encode_weight(t, spec, target, kept, pruned, opts, None, label, bits)
            return got if got[0] is not None else None
    if grid is None or step_bits > top:
        return None
    bits = step_bits
    got = _encode_weight(t, spec, target, kept, pruned, probe, None, label, bits, grid=grid)
    if got[0] is None or not np.all(np.abs(_channel_rows(got[1], target.axis) - rows) <= tol):
        return None
    if probe is not opts:
        got = _encode_weight(t, spec, target, kept, pruned, opts, None, label, bits,
                             grid=_bf16_step_grid(grid, rows, bits, tol))
    return got if got[0] is not None else None


def _bf16_step_grid(grid, rows: np.ndarray, bits: int, tol: np.ndarray) -> tuple:
    """A _step_grid for coarse (bfloat16) parameters: step rounded to bfloat16, and per row the
    first of the grid's levels at or below its smallest value, lo - j·step, that is a bfloat16
    number and leaves room for the row's largest value in 2^bits levels (the lo a grid trained on
    bfloat16 parameters had: models.train --qat-grid-from), else lo rounded to bfloat16."""
    lo, step = grid
    K = 1 << bits
    top = rows.max(axis=1)
    # the step itself: the fitted one is the largest that fits, a multiple of the trained one where a
    # row's values skip levels (gaps of 3 steps): the largest step / d that is a bfloat16 number
    sub = step.copy()  # rows no d serves keep the fitted step (rounded below)
    done = step <= 0
    for d in range(1, K):
        s = (step / d).astype(np.float32)
        ok = ((round_bf16(s) == s) & (np.abs(s - step / d) <= tol[:, 0] / K)
              & ((top - lo) <= (K - 1) * (step / d) + tol[:, 0]) & ~done)
        sub[ok] = s[ok]
        done |= ok
    step = sub
    out = round_bf16(lo.astype(np.float32)).astype(np.float64)
    found = step <= 0
    for j in range(K):
        cand = lo - j * step
        c32 = cand.astype(np.float32)
        ok = ((round_bf16(c32) == c32) & (np.abs(c32 - cand) <= tol[:, 0])
              & (top <= cand + (K - 1) * step + tol[:, 0]) & ~found)
        out[ok] = c32[ok]
        found |= ok
    return out, round_bf16(step.astype(np.float32)).astype(np.float64)


def _step_grid(rows: np.ndarray, tol: np.ndarray):
    """(lo, step, levels): per row lo and step float64 with every value within tol of lo + k·step
    for an integer 0 <= k < 128, and the number of levels the widest row spans (max k + 1). lo = the
    smallest value, step = the largest that fits, the smallest gap between distinct values (larger
    than tol) divided by the smallest integer d that makes every value fit (the gaps are multiples
    of the step: a row using levels 1, 3 and 6 has gaps 2 and 3); a constant row gets step 0. None
    when some row is on no such grid."""
    lo = rows.min(axis=1)
    step = np.zeros(rows.shape[0])
    levels = 1
    for c, r in enumerate(rows):
        u = np.unique(r)
        gaps = np.diff(u)
        gaps = gaps[gaps > tol[c, 0]]
        if gaps.size == 0:
            continue
        span = u[-1] - u[0]
        for d in range(1, 128):
            s = gaps.min() / d
            if span / s > 127.5:
                return None
            k = np.rint((u - lo[c]) / s)
            if np.abs(lo[c] + k * s - u).max() <= tol[c, 0]:
                step[c] = s
                levels = max(levels, int(k[-1]) + 1)
                break
        else:
            return None
    return lo, step, levels


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


# ---- the pipeline ------------------------------------------------------------------------------

def compress(g: Graph, opts: CompressOptions, progress=None, feeds=None) -> Compressed:
    """Apply the requested steps to the graph an .xnn stores (module docstring). `progress` gets
    one-line messages for long steps (the CLI prints them to stderr). `feeds`: calibration inputs
    (one list of arrays per sample), needed by rounding "gptq"."""
    opts.check()
    if opts.rounding == "gptq" and not feeds:
        raise XnnError("--weight-rounding gptq needs calibration data: --calib DIR")
    if opts.bias_correction and not feeds:
        raise XnnError("--bias-correction needs calibration data: --calib DIR")
    encodings: dict = {}
    notes: dict = {}
    lowrank_done = set()

    # 1. low rank
    if opts.low_rank is not None:
        pos = 0
        while pos < len(g.nodes):
            node = g.nodes[pos]
            if node.op == "FULLY_CONNECTED" and len(node.inputs) > 1 and node.inputs[1] >= 0:
                consumers = g.consumers().get(node.inputs[1], [])
                if len(consumers) == 1 and node.inputs[1] not in g.outputs:
                    new = _split_fc(g, pos, opts.low_rank, progress)
                    if new is not None:
                        g = new
                        pos += 2
                        continue
            pos += 1
        for t, tg in sorted(weight_targets(g).items()):
            spec = g.tensors[t]
            if tg.kind not in ("fc", "lstm") or len(spec.shape) != 2:
                continue
            if tg.kind == "fc" and np.dtype(spec.dtype) == np.float32 and spec.data is not None and all(
                    g.nodes[p].inputs[1] == t for p in tg.readers):
                continue  # a float32 FC that was not worth splitting is not worth factoring either
            got = _lowrank_encoding(spec, opts.low_rank)
            if got is None:
                continue
            desc, payload, r = got
            wb = opts.bits_for(spec.name, spec.size)
            if wb and len(payload) >= spec.size * wb / 8:
                _progress(progress, f"  low-rank {spec.name[:60]}: rank {r} factors are not smaller than "
                                    f"{wb}-bit codes: not factored")
                continue
            what = f"tensor {t} '{spec.name}'"
            decoded = decode_tensor(desc, memoryview(payload), tuple(spec.shape), np.dtype(spec.dtype), what)
            g = _with_data(g, t, decoded)
            encodings[t] = Encoded(desc, payload)
            notes[t] = f"lowrank r={r}"
            lowrank_done.add(t)
            _progress(progress, f"  low-rank {spec.name[:60]}: {list(spec.shape)} stored as rank {r} factors")

    # 2-3. pruning and sub-8-bit codes
    if opts.prune or opts.coded:
        targets = [(t, tg) for t, tg in sorted(weight_targets(g).items()) if t not in lowrank_done]
        hessians, means = {}, {}
        if opts.rounding == "gptq" or opts.bias_correction:
            from .gptq import collect_layer_stats

            coded = {t: tg for t, tg in targets if opts.bits_for(g.tensors[t].name, g.tensors[t].size)}
            gptq = opts.rounding == "gptq"
            # H only where gptq rounds; means (every lossy tensor) only for bias correction
            hessians, means = collect_layer_stats(g, dict(targets) if opts.bias_correction else coded, feeds,
                                                  progress, gram=coded if gptq else ())
            if not opts.bias_correction:
                means = {}
            if gptq:
                for t in coded:
                    if t not in hessians:
                        notes[t] = "no layer inputs for gptq: nearest rounding"
        corrected = 0
        heads = _output_heads(g) if opts.prune_channels else set()
        for k, (t, tg) in enumerate(targets):
            spec = g.tensors[t]
            label = f"{k + 1}/{len(targets)} {g.nodes[tg.readers[0]].name[:48]}"
            kept = None
            prune = bool(opts.prune) and spec.size >= opts.prune_min_size
            if prune and opts.prune_channels and any(p in heads for p in tg.readers):
                prune = False  # its channels are model outputs (classes, detector maps)
                notes[t] = "feeds an output: channels not pruned"
            if prune:
                pruned, kept = prune_weights(spec, tg.axis, opts.prune, opts.prune_channels)
                g = _with_data(g, t, pruned)
                spec = g.tensors[t]
            bits = opts.bits_for(spec.name, spec.size)
            got = _fitted(t, spec, tg, kept, prune, opts, label, bits) if opts.weight_bits_fit else None
            enc, decoded, note = got or _encode_weight(t, spec, tg, kept, prune, opts, progress, label, bits,
                                                       hessians.get(t))
            if note and t in notes:
                note = f"{notes[t]}; {note}"
            if decoded is not spec.data:
                if t in means:
                    g, done = _correct_bias(g, t, tg, g.tensors[t].data, decoded, means[t], encodings)
                    if done:
                        corrected += 1
                        note = f"{note}; bias corrected".lstrip("; ")
                g = _with_data(g, t, decoded)
            if enc is not None:
                encodings[t] = enc
            if note:
                notes[t] = note

        if opts.bias_correction:
            _progress(progress, f"  bias correction: {corrected} biases absorb their weights' mean shift "
                                f"on {len(feeds)} calibration samples")

    # 4. coarse (bfloat16) scales, code parameters and biases
    if opts.coarse_params:
        g, encodings, notes = _coarse_params(g, encodings, notes, progress)

    # 5. entropy coding of every constant's stored bytes
    codec0 = byte_codec(opts.entropy)  # header, scales, other tensors
    if opts.entropy:
        used = set()
        for node in g.nodes:
            used.update(node.inputs)
        for t, spec in enumerate(g.tensors):
            if t not in used or spec.data is None or spec.is_variable or spec.size == 0 or not spec.shape:
                continue
            dt = np.dtype(spec.dtype)
            if t in encodings:
                desc, payload = encodings[t]
            else:
                desc, payload = {}, np.ascontiguousarray(spec.data, dt.newbyteorder("<")).tobytes()
            codec = codec0
            z = deflate(codec0, payload)
            if opts.entropy == "ans" and "bits" in desc:  # weight codes: the smaller of ans and lzma
                za = deflate_ans(enc_layout(desc, tuple(spec.shape), dt, spec.name), payload)
                if len(za) < len(z):
                    codec, z = "ans", za
            if len(z) < len(payload):
                encodings[t] = Encoded({**desc, "entropy": codec, "size": len(payload)}, z)
                notes[t] = (notes.get(t, "") + f" {codec}").strip()
    return Compressed(g, encodings, notes, codec0 or False)


# (input, weights, bias) positions of the ops whose int8 bias scale is s_input·s_weights
_XWB = {"CONV_2D": (0, 1, 2), "DEPTHWISE_CONV_2D": (0, 1, 2), "FULLY_CONNECTED": (0, 1, 2),
        "TRANSPOSE_CONV": (2, 1, 3)}


# the float bias slots of an LSTM: input, forget, cell, output gate; projection (bidirectional: both)
_LSTM_BIAS_SLOTS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": (12, 13, 14, 15, 17),
                    "BIDIRECTIONAL_SEQUENCE_LSTM": (12, 13, 14, 15, 17, 29, 30, 31, 32, 34)}


def _bf16_ints(x: np.ndarray) -> np.ndarray:
    """Integers rounded to 8 significant bits (bfloat16-exact), within the int32 range."""
    return round_bf16(np.clip(np.asarray(x, np.float64), -2.0 ** 31, 2.0 ** 31 - 2.0 ** 23).astype(np.float32))


def _coarse_params(g: Graph, encodings: dict, notes: dict, progress=None):
    """Step 4: bfloat16 weight scales and biases of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED /
    TRANSPOSE_CONV (module docstring). Returns (graph, encodings, notes)."""
    consumers = g.consumers()
    tensors = list(g.tensors)
    uses = {}  # int8 weight tensor -> [(x, bias or None)]
    float_biases = set()
    for node in g.nodes:
        if node.op in _LSTM_BIAS_SLOTS:  # a float LSTM's gate and projection biases
            for s in _LSTM_BIAS_SLOTS[node.op]:
                b = node.inputs[s] if len(node.inputs) > s else -1
                if b >= 0 and g.tensors[b].is_const and np.dtype(g.tensors[b].dtype) == np.float32 \
                        and len(g.tensors[b].shape) == 1:
                    float_biases.add(b)
            continue
        if node.op not in _XWB:
            continue
        xi, wi, bi = _XWB[node.op]
        ins = node.inputs
        x = ins[xi] if len(ins) > xi else -1
        w = ins[wi] if len(ins) > wi else -1
        b = ins[bi] if len(ins) > bi else -1
        bspec = g.tensors[b] if b >= 0 else None
        if bspec is not None and bspec.is_const and np.dtype(bspec.dtype) == np.float32 and len(bspec.shape) == 1:
            float_biases.add(b)
        if w < 0 or x < 0:
            continue
        wspec, xspec = g.tensors[w], g.tensors[x]
        if not (wspec.is_const and np.dtype(wspec.dtype) == np.int8 and wspec.quant is not None
                and xspec.quant is not None and xspec.quant.scale.size == 1):
            continue
        if bspec is not None and not (bspec.is_const and np.dtype(bspec.dtype) == np.int32
                                      and bspec.quant is not None and len(bspec.shape) == 1):
            continue
        uses.setdefault(w, []).append((x, b if b >= 0 else None))
    # a weight qualifies when only such nodes read it and each of its biases is read only by nodes
    # of this weight with inputs of one scale (so one re-quantized bias serves all of them)
    new_bias_scale = {}
    done = 0
    for w, pairs in sorted(uses.items()):
        readers = consumers.get(w, [])
        if len(readers) != len(pairs) or w in g.outputs:
            continue
        sw = round_bf16(np.asarray(g.tensors[w].quant.scale, np.float32).ravel())
        plan, ok = {}, True
        for x, b in pairs:
            if b is None:
                continue
            sb = product_scale(g.tensors[x].quant.scale.ravel()[:1], sw)
            if sb.size != g.tensors[b].size and sb.size != 1:
                ok = False
            elif b in plan and plan[b].tobytes() != sb.tobytes():
                ok = False
            elif b in new_bias_scale or len(consumers.get(b, [])) != sum(1 for _, bb in pairs if bb == b):
                ok = False
            plan[b] = sb
        if not ok:
            continue
        q = g.tensors[w].quant
        tensors[w] = replace(tensors[w], quant=QuantParams(sw.astype(np.float32), q.zero_point, q.axis))
        for b, sb in plan.items():
            old = tensors[b]
            so = np.asarray(old.quant.scale, np.float64).ravel()
            real = np.asarray(old.data, np.float64) * so  # the bias in real units
            vals = _bf16_ints(np.rint(real / sb.astype(np.float64)))
            zp = np.zeros(sb.size, np.int64)
            tensors[b] = replace(old, quant=QuantParams(sb.astype(np.float32), zp, 0), data=_ro(vals.astype(np.int32)))
            new_bias_scale[b] = sb
        done += 1
    for b in float_biases:
        if b not in new_bias_scale:
            tensors[b] = replace(tensors[b], data=_ro(round_bf16(np.asarray(tensors[b].data, np.float32))))
    g = g.replace(tensors=tuple(tensors))
    encodings, notes = dict(encodings), dict(notes)
    for b in sorted(set(new_bias_scale) | float_biases):
        spec = g.tensors[b]
        payload = f32_to_bf16(np.asarray(spec.data, np.float32)).astype("<u2").tobytes()
        if len(payload) < spec.nbytes:
            encodings[b] = Encoded({"values": "bfloat16"}, payload)
            notes[b] = "bfloat16"
    _progress(progress, f"  coarse parameters: {done} int8 weight scales rounded to bfloat16, "
                        f"{len(new_bias_scale) + len(float_biases)} biases stored as bfloat16")
    return g, encodings, notes


def _with_data(g: Graph, t: int, data: np.ndarray) -> Graph:
    new = replace(g.tensors[t], data=_ro(data))
    return g.replace(tensors=g.tensors[:t] + (new,) + g.tensors[t + 1:])


# ---- calibration data and output error ---------------------------------------------------------

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")


def _looks_like_image(d: dict) -> bool:
    s = [int(v) for v in d["shape"]]
    return len(s) == 4 and s[0] == 1 and s[3] in (1, 3) and s[1] >= 4 and s[2] >= 4


def _to_input(x: np.ndarray, d: dict, where: str) -> np.ndarray:
    """An array as the model input `d` takes it: batch dimension added if missing, real values
    quantized for an integer input with quantization (q = clip(round(x/scale) + zero_point))."""
    shape = tuple(int(v) for v in d["shape"])
    dt = np.dtype(d["dtype"])
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise XnnError(f"{where}: dtype {x.dtype} is not numeric")
    if x.shape != shape and x.shape == shape[1:] and shape[:1] == (1,):
        x = x[None]
    if x.shape != shape:
        raise XnnError(f"{where}: shape {list(x.shape)} does not match the model input "
                       f"'{d['name']}' {list(shape)}")
    if dt.kind in "iu" and x.dtype.kind == "f":
        scale, zp = d.get("quantization", (0.0, 0))
        if not scale:
            raise XnnError(f"{where}: float data for the unquantized integer input '{d['name']}'")
        info = np.iinfo(dt)
        x = np.clip(np.rint(x.astype(np.float64) / scale) + zp, info.min, info.max)
    elif dt.kind == "f" and x.dtype.kind not in "biuf":
        raise XnnError(f"{where}: dtype {x.dtype} for a float input")
    elif dt.kind in "iu" and x.dtype.kind in "iu":
        info = np.iinfo(dt)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise XnnError(f"{where}: values outside {dt.name} for input '{d['name']}'")
    return np.ascontiguousarray(x.astype(dt))


def _batch_split(x: np.ndarray, d: dict):
    """A stack of samples [N, ...] for a batch-1 input becomes N arrays; anything else one array."""
    shape = tuple(int(v) for v in d["shape"])
    if shape[:1] == (1,) and x.ndim == len(shape) and x.shape[1:] == shape[1:] and x.shape[0] > 1:
        return [x[i:i + 1] for i in range(x.shape[0])]
    return [x]


def _load_image(path: str, d: dict) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise XnnError("image calibration data needs Pillow (pip install pillow), or give .npy files") from None
    _, h, w, c = (int(v) for v in d["shape"])
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            x = np.asarray(im, np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as e:
        raise XnnError(f"cannot read calibration image '{path}': {e}") from None
    return x.reshape(1, h, w, c)


def load_calibration(directory: str, input_details: list, limit: int = 16) -> list:
    """Feeds (one list of input arrays per sample) from a directory of .npy files (one array per
    file, the input's shape with or without its batch dimension, or a stack [N, ...] of samples),
    .npz files (one array per input, by input name or in order) or, for an image-like input
    [1, H, W, 1|3], image files (Pillow: grayscale/RGB, resized to W×H, scaled to [0, 1]); float
    data for an integer input is quantized with the input's scale and zero point. At most `limit`
    samples, files in name order. Anything unusable is an XnnError."""
    if not os.path.isdir(directory):
        raise XnnError(f"calibration directory '{directory}' does not exist or is not a directory")
    names = sorted(os.listdir(directory))
    image_ok = len(input_details) == 1 and _looks_like_image(input_details[0])
    usable = [f for f in names if f.lower().endswith((".npy", ".npz"))
              or (image_ok and f.lower().endswith(IMAGE_EXTS))]
    if not usable:
        kinds = ".npy/.npz" + (" or image" if image_ok else "")
        raise XnnError(f"calibration directory '{directory}' holds no {kinds} files")
    feeds = []
    for f in usable:
        if len(feeds) >= limit:
            break
        path = os.path.join(directory, f)
        low = f.lower()
        if low.endswith(".npy"):
            if len(input_details) != 1:
                raise XnnError(f"'{path}': the model takes {len(input_details)} inputs: give .npz files "
                               "with one array per input")
            x = _load_npy(path)
            for part in _batch_split(x, input_details[0]):
                feeds.append([_to_input(part, input_details[0], path)])
        elif low.endswith(".npz"):
            arrays = _load_npz(path)
            by_name = [d["name"] for d in input_details]
            if all(n in arrays for n in by_name):
                xs = [arrays[n] for n in by_name]
            elif len(arrays) == len(input_details):
                xs = list(arrays.values())
            else:
                raise XnnError(f"'{path}': holds arrays {sorted(arrays)[:6]}, the model's inputs are {by_name}")
            feeds.append([_to_input(x, d, path) for x, d in zip(xs, input_details)])
        else:
            x = _load_image(path, input_details[0])
            feeds.append([_to_input(x, input_details[0], path)])
    return feeds[:limit]


def _load_npy(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise XnnError(f"calibration file '{path}' is not a .npy file")
        return np.load(path, allow_pickle=False)
    except XnnError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise XnnError(f"cannot read calibration file '{path}': {e}") from None


def _load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError) as e:
        raise XnnError(f"cannot read calibration file '{path}': {e}") from None
    except Exception as e:  # zipfile.BadZipFile and friends
        raise XnnError(f"cannot read calibration file '{path}': {type(e).__name__}: {e}") from None


def random_feeds(input_details: list, count: int = 8, seed: int = 0) -> list:
    """Seeded random inputs: uniform [0, 1) for float inputs, the full range for integer ones."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        one = []
        for d in input_details:
            dt = np.dtype(d["dtype"])
            shape = tuple(int(v) for v in d["shape"])
            if dt.kind in "iu":
                info = np.iinfo(dt)
                one.append(rng.integers(info.min, info.max + 1, shape).astype(dt))
            else:
                one.append(rng.uniform(0, 1, shape).astype(dt))
        feeds.append(one)
    return feeds


def output_error(reference, candidate, feeds: list) -> list:
    """Per model output, the difference of `candidate` from `reference` (two Interpreters) over
    the feeds, in real units (integer outputs dequantized): dict with max_abs, mean_abs,
    rel_l2 = ||y - y_ref|| / ||y_ref||, and argmax_agree (the fraction of positions whose argmax
    over the last axis agrees, for outputs with a last axis > 1; None otherwise). Variables (LSTM
    state) are reset before each sample."""
    outs = reference.get_output_details()
    acc = [{"name": d["name"], "max_abs": 0.0, "sum_abs": 0.0, "count": 0, "d2": 0.0, "r2": 0.0,
            "agree": 0, "pos": 0} for d in outs]

    def real(y, d):
        y = np.asarray(y, np.float64)
        scale, zp = d.get("quantization", (0.0, 0))
        return (y - zp) * scale if np.dtype(d["dtype"]).kind in "iu" and scale else y

    for feed in feeds:
        for it in (reference, candidate):  # each sample from the initial LSTM state
            if hasattr(it, "reset_all_variables"):
                it.reset_all_variables()
        ys = [np.array(y) for y in reference(list(feed))]
        zs = [np.array(z) for z in candidate(list(feed))]
        for a, d, y, z in zip(acc, outs, ys, zs):
            ry, rz = real(y, d), real(z, d)
            diff = np.abs(rz - ry)
            a["max_abs"] = max(a["max_abs"], float(diff.max(initial=0.0)))
            a["sum_abs"] += float(diff.sum())
            a["count"] += diff.size
            a["d2"] += float((diff ** 2).sum())
            a["r2"] += float((ry ** 2).sum())
            if ry.ndim >= 1 and ry.shape[-1] > 1:
                a["agree"] += int((ry.argmax(-1) == rz.argmax(-1)).sum())
                a["pos"] += int(np.prod(ry.shape[:-1], dtype=np.int64))
    res = []
    for a in acc:
        res.append({"name": a["name"], "max_abs": a["max_abs"],
                    "mean_abs": a["sum_abs"] / max(a["count"], 1),
                    "rel_l2": math.sqrt(a["d2"] / a["r2"]) if a["r2"] > 0 else (0.0 if a["d2"] == 0 else math.inf),
                    "argmax_agree": a["agree"] / a["pos"] if a["pos"] else None})
    return res


def stderr_progress(msg: str):
    print(msg, file=sys.stderr, flush=True)
