"""The .xnn model file: a graph header and one aligned weight section, loaded without copying.

Layout (all integers little-endian):

    offset  size  field
         0     4  magic b"XNNF"
         4     4  uint32 format version (FORMAT_VERSION)
         8     4  uint32 header_nbytes: length of the stored header
        12     4  uint32 CRC-32 of the stored header bytes
        16     8  uint64 weights_offset = align64(PREFIX + header_nbytes)
        24     8  uint64 weights_nbytes
        32     4  uint32 CRC-32 of the weight section (all weights_nbytes bytes)
        36     4  uint32 flags: bit 0 (FLAG_HEADER_ZLIB) = the stored header is compressed; any other
                  bit is a feature this reader does not know
        40     h  header: the JSON header, UTF-8; with FLAG_HEADER_ZLIB: uint32 length of the JSON
                  text, then a zlib stream that inflates to exactly that many bytes
      40+h     .  zero bytes up to weights_offset
    w_off  w_len  weight section; the file ends exactly at weights_offset + weights_nbytes

The JSON header is one object:
    {"producer": str, "description": str, "inputs": [int], "outputs": [int],
     "tensors": [{"name": str, "shape": [int], "dtype": str, "variable": bool,
                  "quant": {"scale": base64, "zero_point": [int], "axis": int},
                  "data": [offset, nbytes], "enc": {...}}],
     "nodes": [{"op": str, "version": int, "name": str, "inputs": [int], "outputs": [int],
                "intermediates": [int], "options": {str: JSON value}}]}
Fields at their defaults are left out: variable false, quant and data absent (no quantization, not a
constant), enc absent (stored as is), version 1, intermediates [], options {}. Tensors that no node
and no graph input or output refers to (left behind by folding and fusions) are not stored; the
others keep their order. A constant without "enc" is its C-order little-endian array at
weights_offset + offset, offset a multiple of 64; the weight section starts at a multiple of 64 too,
so in a memory-mapped file every such constant is 64-byte aligned and read without a copy.
Quantization scales are their float32 little-endian bytes in base64 (bit-exact, 5.3 characters per
scale); options keep JSON's types (bool, int, float, str, list, object), and a float is written as
the shortest decimal that reads back to the same double, so options round-trip exactly as the
reader produced them.

Encoded constants (format version 2; written by xnn/converter/compress.py). "enc" describes how
the `nbytes` stored bytes at `offset` (any offset: an encoded tensor is decoded into a new array,
so it is neither aligned nor memory-mapped) expand to the tensor's array. Keys (all others are an
error; each is allowed only where it has a meaning):
    "entropy": "zlib" | "lzma"   the stored bytes are a zlib stream / a raw LZMA2 stream (dictionary
                                 size clamp(next power of two >= size, 4 KiB, 8 MiB)) that inflates
                                 to exactly "size" bytes, the payload; absent: the stored bytes are
                                 the payload; "ans": see format version 6
    "size": int                  the payload length; required with "entropy", and equal to the
                                 length the keys below imply (checked before anything is inflated)
    "layout": "dense" | "mask" | "channels"   which elements are stored (default "dense": all)
    "values": "raw" | "palette" | "affine" | "lowrank" | "bfloat16"   how they are stored (default "raw")
    "axis": int                  the channel axis, for "channels" and for per-channel parameters
    "count": int                 "mask": stored (nonzero) elements; "channels": kept channels
    "bits": int in 1..8          index width of "palette" / "affine"
    "shared": true               "palette" / "affine": one parameter set for the whole tensor
    "rank": int                  "lowrank": the inner dimension R
    "params": "int8"             "affine" on an int8 tensor (format version 4): int8 (lo, hi) pairs;
             | "bfloat16"        on a float tensor (format version 5): bfloat16 (lo, step) pairs
The payload is the selection, then the values, with no padding between them. n = elements, C =
shape[axis]. Bit strings are packed least-significant bit first; unused trailing bits are zero.
  selection  "dense": nothing, every element is stored. "mask": ceil(n/8) bytes, bit i set when
             element i (C order) is stored; "count" bits set. "channels": ceil(C/8) bytes, bit c
             set when channel c is kept; "count" bits set; all elements of a kept channel are
             stored. Elements not stored are zero (pruned).
  values     for the m stored elements in C order:
    "raw"     m values of the tensor's dtype.
    "palette" G codebooks of K = 2^bits entries of the tensor's dtype (int8, float16 or float32),
              then m indices of `bits` bits: value = codebook[g][index], g = the element's group.
    "affine"  G pairs (lo, step) of float32, then m indices q of `bits` bits: value =
              float32(lo + step·q) (float32 arithmetic), for int8 tensors then rounded half to
              even and clipped to [-128, 127].
              With "params": "int8" (int8 tensors only): G pairs (lo, hi) of int8, lo <= hi, then
              the indices; value = lo + floor((2·(hi - lo)·q + K - 1) / (2·(K - 1))), i.e. the
              K levels spread evenly over [lo, hi], rounded half up, in exact integer arithmetic
              (2 bytes per group instead of 8).
              G = 1 with "shared"; otherwise one group per channel: G = C, or "count" for the
              "channels" layout (a group per kept channel, in channel order).
    "lowrank" (layout "dense", a 2-D tensor [M, N], 1 <= R <= min(M, N)) W = U·V:
              float16/float32 tensors: U float32 [M, R], V float32 [R, N], W = float32 product
              cast to the dtype (a BLAS product: float models carry a documented tolerance);
              int8 tensors: U int8 [M, R], V int8 [R, N], su float32 [M], sv float32 [N];
              P = U·V summed exactly in int64, W = clip(round_half_even((su_i·sv_j)·P_ij in
              float64), -127, 127) (TFLite's symmetric int8 weight range): integer sums and
              elementwise IEEE operations, the same on every machine.
Decoding checks every length against the descriptor before numpy reads the bytes, inflates at
most "size" bytes, expands no tensor beyond MAX_DECODED_NBYTES (1 GiB), and checks set-bit counts,
zero padding bits and finite int8 parameters; any defect is an XnnError naming the tensor.

Format version 3 (the scale section; written by default):
  - header key "scales": {"count": N, "data": [offset, nbytes], "entropy"?: "zlib"|"lzma", "size"?: 4N}:
    N float32 quantization scales at weights_offset + offset, stored byte-plane shuffled (byte 0 of
    every value little-endian, then byte 1, 2, 3), optionally entropy-coded like an "enc" payload
    (then "size" = 4N). A quantization's "scale" may be [start, count]: scales start..start+count-1
    of the section (1 <= count, start + count <= N); base64 strings are still read.
  - "quant": {"product": [a, b], "zero_point", "axis"} instead of "scale": the scales are
    float32(scale_a · scale_b) (the exact float64 product rounded once), tensor a with one stored
    scale, b with one or C stored scales (neither itself a "product"). The writer uses it for int32
    biases whose stored scales are bit-exactly that product of two other inputs of a node that
    reads them (s_x·s_w), so the loaded graph is identical to the source's.
  - "zero_point" may be one integer: the same zero point for every scale.
  - flags bit 1 (FLAG_HEADER_LZMA): the stored header is a uint32 length and a raw LZMA2 stream
    (the dictionary as for "enc"); at most one of bits 0 and 1 is set.
Format version 5 (bfloat16; written by `xnn convert --coarse-params`):
  - "values": "bfloat16" for float32 and int32 tensors (any layout): m uint16 values, each the upper
    16 bits of a float32 (bfloat16: 8 significant bits, float32's exponent range); the value is that
    float32, for int32 tensors converted exactly (it must be an integer in the int32 range).
  - "params": "bfloat16" for "affine" values of float16/float32 tensors: G pairs (lo, step) of
    bfloat16 (4 bytes per group), widened to float32 and then used exactly as float32 pairs.
  These keys in a file of an older version are an error.
Format version 6 (`xnn convert --entropy ans`):
  - "entropy": "ans" for "palette" / "affine" values only: the payload (the same bytes "lzma" would
    inflate to, so "size" and every layout check are unchanged) is stored as uint32 P, an LZMA2
    stream of P bytes holding the payload before the packed indices (selection and code parameters;
    P = 0 when that part is empty), then the m indices coded with order-0 rANS: 2^bits uint16 symbol
    frequencies summing to 2^14, the uint32 final coder state, the byte stream. The coder, its
    checks and why: xnn/converter/ans.py. The header and the scale section keep zlib/lzma.
Versions 1-2 files still load (version 1: no "enc", no flags; version 2: no format-3 feature);
a file of a higher version than FORMAT_VERSION is refused with a message to upgrade xnn.

Reading validates everything before use: magic, version, flags, both CRCs, section bounds, the
JSON's shape and types, dtype names (from an allowlist), shapes, every (offset, nbytes) against the
section and the tensor's shape or encoding, quantization lengths and axes, and every tensor index.
Any defect is an XnnError; nothing is unpickled or evaluated. Version 1 files (no "enc", no flags)
still load.

The graph stored is the one the interpreter runs: after constant folding and the load-time passes,
so xnn-only ops (CHANNEL_SHUFFLE, BIDI_SEQUENCE_LSTM) appear in it. Exception: a float16 constant
feeding a DEQUANTIZE stays float16 with its DEQUANTIZE node (half the bytes); folding at load widens
it exactly as it would for the .tflite.
"""
from __future__ import annotations

import base64
import binascii
import json
import lzma
import mmap
import struct
import zlib
from typing import NamedTuple

import numpy as np

from ..errors import XnnError
from ..ir import Graph, Node, QuantParams, TensorSpec, frozen_options

MAGIC = b"XNNF"
FORMAT_VERSION = 6  # 2: encoded constants ("enc") and the compressed-header flag; 3: the scale section,
#                    derived ("product") scales, a scalar zero point, the lzma header flag;
#                    4: int8 affine parameters ("params": "int8"); 5: bfloat16 values and affine
#                    parameters; 6: "ans" entropy coding of weight codes
ALIGN = 64
FLAG_HEADER_ZLIB = 1
FLAG_HEADER_LZMA = 2  # format version 3
KNOWN_FLAGS = {1: 0, 2: FLAG_HEADER_ZLIB, 3: FLAG_HEADER_ZLIB | FLAG_HEADER_LZMA,
               4: FLAG_HEADER_ZLIB | FLAG_HEADER_LZMA, 5: FLAG_HEADER_ZLIB | FLAG_HEADER_LZMA,
               6: FLAG_HEADER_ZLIB | FLAG_HEADER_LZMA}  # per format version
_PREFIX = struct.Struct("<4sIIIQQII")  # magic, version, header_nbytes, header_crc, w_off, w_len, w_crc, flags
PREFIX_NBYTES = _PREFIX.size  # 40

DTYPES = {name: np.dtype(name) for name in
          ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")}
MAX_RANK = 8
MAX_ELEMENTS = 1 << 31
MAX_HEADER_NBYTES = 1 << 28
MAX_JSON_DEPTH = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def is_xnn(content) -> bool:
    """Whether `content` (bytes-like or mmap) starts with the .xnn magic."""
    try:
        return bytes(memoryview(content)[:4]) == MAGIC
    except TypeError:
        return False


# ---- writing -----------------------------------------------------------------------------------

def _json_value(v, where: str):
    """An option value as a JSON value of the same meaning (numpy scalars/arrays become Python)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x, where) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise XnnError(f"{where}: option keys must be strings")
        return {k: _json_value(x, where) for k, x in v.items()}
    raise XnnError(f"{where}: option value of type {type(v).__name__} cannot be stored in .xnn")


def pack(header, weights=b"", compress_header=False, version: int = FORMAT_VERSION) -> bytes:
    """Assemble a file from a header (a dict, or raw JSON bytes) and the weight section bytes;
    with `compress_header` (True or "zlib": FLAG_HEADER_ZLIB, "lzma": FLAG_HEADER_LZMA) the header
    is stored compressed. `version` is the format version written in the prefix."""
    try:
        raw = header if isinstance(header, (bytes, bytearray)) else \
            json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError) as e:
        raise XnnError(f"cannot encode the .xnn header: {type(e).__name__}: {e}") from None
    flags = 0
    if compress_header:
        codec = "zlib" if compress_header is True else compress_header
        raw = struct.pack("<I", len(raw)) + deflate(codec, bytes(raw))
        flags |= FLAG_HEADER_ZLIB if codec == "zlib" else FLAG_HEADER_LZMA
    weights = bytes(weights)
    w_off = _align(PREFIX_NBYTES + len(raw))
    prefix = _PREFIX.pack(MAGIC, version, len(raw), zlib.crc32(raw), w_off, len(weights),
                          zlib.crc32(weights), flags)
    return b"".join((prefix, raw, bytes(w_off - PREFIX_NBYTES - len(raw)), weights))


def compact_tensors(g: Graph) -> Graph:
    """Drop tensors that no node (input, output, intermediate) and no graph input/output refers to,
    renumbering the rest in their original order."""
    return compact_tensors_map(g)[0]


def compact_tensors_map(g: Graph):
    """`compact_tensors` and the renumbering it applied: (graph, {old index: new index})."""
    used = set(g.inputs) | set(g.outputs)
    for n in g.nodes:
        used.update(t for t in tuple(n.inputs) + tuple(n.outputs) + tuple(n.intermediates) if t >= 0)
    if len(used) == len(g.tensors):
        return g, {t: t for t in range(len(g.tensors))}
    keep = sorted(t for t in used if 0 <= t < len(g.tensors))
    new = {t: k for k, t in enumerate(keep)}
    new[-1] = -1

    def m(ts):
        if any(t not in new for t in ts):
            raise XnnError(f"graph refers to a tensor index out of range ({len(g.tensors)} tensors)")
        return tuple(new[t] for t in ts)

    nodes = tuple(Node(op=n.op, inputs=m(n.inputs), outputs=m(n.outputs), options=n.options,
                       version=n.version, name=n.name, intermediates=m(n.intermediates)) for n in g.nodes)
    new.pop(-1)
    return Graph(tensors=tuple(g.tensors[t] for t in keep), nodes=nodes, inputs=m(g.inputs),
                 outputs=m(g.outputs), description=g.description), new


class Encoded(NamedTuple):
    """A constant's encoded form: the "enc" descriptor and the bytes stored for it."""

    desc: dict
    payload: bytes


def write_xnn(g: Graph, encodings=None, compress_header=False, scales: str = "section",
              scales_entropy: str | None = None) -> bytes:
    """Serialize a Graph (typically after load-time passes) as .xnn bytes; unreferenced tensors
    are left out (`compact_tensors`).

    `encodings` maps tensor indices of `g` to `Encoded` forms (xnn/converter/compress.py makes
    them); each is decoded here and must give the tensor's data exactly. `compress_header` stores
    the JSON header compressed (True/"zlib" or "lzma"). `scales`: "section" (format 3: scales in
    the weight section, a bias scale that is exactly float32(s_x·s_w) of two other tensors of a node
    stored as that "product") or "inline" (base64 in the header, as format 1-2 files have them);
    `scales_entropy` entropy-codes the scale section."""
    from .. import __version__

    if scales not in ("section", "inline"):
        raise XnnError(f"scales must be 'section' or 'inline', got {scales!r}")
    g, renumber = compact_tensors_map(g)
    products = _scale_products(g) if scales == "section" else {}
    scale_chunks, scale_count = [], 0
    enc_by_new = {}
    for t, e in (encodings or {}).items():
        if t in renumber:
            enc_by_new[renumber[t]] = e
    chunks, pos = [], 0
    tensors = []
    for i, t in enumerate(g.tensors):
        dt = np.dtype(t.dtype)
        if dt.name not in DTYPES or DTYPES[dt.name] != dt:
            raise XnnError(f"tensor {i} '{t.name}': dtype {dt} cannot be stored in .xnn")
        shape = [int(d) for d in t.shape]
        entry = {"name": str(t.name), "shape": shape, "dtype": dt.name}
        if t.is_variable:
            entry["variable"] = True
        if t.quant is not None:
            sc = np.ascontiguousarray(np.asarray(t.quant.scale).ravel(), dtype="<f4")
            zp = [int(z) for z in np.asarray(t.quant.zero_point).ravel()]
            q = {}
            if i in products:
                q["product"] = list(products[i])
            elif scales == "section":
                q["scale"] = [scale_count, int(sc.size)]
                scale_chunks.append(sc)
                scale_count += int(sc.size)
            else:
                q["scale"] = base64.b64encode(sc.tobytes()).decode("ascii")
            q["zero_point"] = zp[0] if scales == "section" and len(zp) == sc.size and len(set(zp)) == 1 else zp
            q["axis"] = int(t.quant.axis)
            entry["quant"] = q
        if t.data is not None:
            data = np.asarray(t.data)
            count = int(np.prod(shape, dtype=np.int64))
            if data.size != count:
                raise XnnError(f"tensor {i} '{t.name}': data has {data.size} elements, shape {tuple(shape)} "
                               f"needs {count}")
            if i in enc_by_new:
                desc, payload = enc_by_new[i]
                what = f"tensor {i} '{t.name}'"
                desc = _json_value(dict(desc), what)
                back = decode_tensor(desc, memoryview(bytes(payload)), tuple(shape), dt, what)
                if back.tobytes() != np.ascontiguousarray(data, dtype=dt).tobytes():
                    raise XnnError(f"{what}: its encoding does not decode to its data")
                entry["data"] = [pos, len(payload)]
                entry["enc"] = desc
                chunks.append(bytes(payload))
                pos += len(payload)
                tensors.append(entry)
                continue
            raw = np.ascontiguousarray(data, dtype=dt.newbyteorder("<")).tobytes()
            pad = _align(pos) - pos
            if pad:
                chunks.append(bytes(pad))
                pos += pad
            entry["data"] = [pos, len(raw)]
            chunks.append(raw)
            pos += len(raw)
        tensors.append(entry)
    nodes = []
    for k, n in enumerate(g.nodes):
        where = f"node {n.name or k}"
        e = {"op": str(n.op), "name": str(n.name), "inputs": [int(t) for t in n.inputs],
             "outputs": [int(t) for t in n.outputs]}
        if int(n.version) != 1:
            e["version"] = int(n.version)
        if n.intermediates:
            e["intermediates"] = [int(t) for t in n.intermediates]
        if n.options:
            e["options"] = _json_value(dict(n.options), where)
        nodes.append(e)
    header = {"producer": f"xnn {__version__}", "description": str(g.description or ""),
              "inputs": [int(t) for t in g.inputs], "outputs": [int(t) for t in g.outputs],
              "tensors": tensors, "nodes": nodes}
    if scale_count:
        payload = shuffle_f32(np.concatenate(scale_chunks))
        sec = {"count": scale_count}
        if scales_entropy:
            z = deflate(scales_entropy, payload)
            if len(z) < len(payload):
                sec.update(entropy=scales_entropy, size=len(payload))
                payload = z
        sec["data"] = [pos, len(payload)]
        chunks.append(payload)
        header["scales"] = sec
    return pack(header, b"".join(chunks), compress_header=compress_header)


def shuffle_f32(values) -> bytes:
    """float32 values as the scale section stores them: little-endian, byte planes one after the
    other (byte 0 of every value, then byte 1, ...), which entropy coders compress better."""
    b = np.ascontiguousarray(np.asarray(values, "<f4").ravel()).view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(b.T).tobytes()


def unshuffle_f32(buf, count: int) -> np.ndarray:
    """The inverse of `shuffle_f32`; `buf` holds exactly 4·count bytes."""
    b = np.frombuffer(buf, np.uint8, 4 * count).reshape(4, count)
    return np.ascontiguousarray(b.T).view("<f4").ravel().astype(np.float32)


def product_scale(sx: np.ndarray, sw: np.ndarray) -> np.ndarray:
    """float32(sx·sw) elementwise with broadcasting of a single scale (the product of two float32
    values is exact in float64, so this is IEEE float32 multiplication, the same everywhere)."""
    return (np.asarray(sx, np.float32).astype(np.float64) * np.asarray(sw, np.float32).astype(np.float64)
            ).astype(np.float32)


def _scale_products(g: Graph) -> dict:
    """{int32 tensor: (a, b)} for constant int32 tensors (biases) whose scales are exactly
    product_scale(scale[a], scale[b]) for two other non-int32 quantized inputs a, b of a node
    that reads them, a with a single scale."""
    out = {}
    for node in g.nodes:
        ins = [t for t in node.inputs if t >= 0]
        qs = [t for t in ins if g.tensors[t].quant is not None and np.dtype(g.tensors[t].dtype) != np.int32]
        for t in ins:
            spec = g.tensors[t]
            if t in out or spec.quant is None or np.dtype(spec.dtype) != np.int32 or spec.data is None:
                continue
            want = np.asarray(spec.quant.scale, np.float32).ravel()
            zp = np.asarray(spec.quant.zero_point).ravel()
            if zp.size != want.size:
                continue
            for a in qs:
                sa = np.asarray(g.tensors[a].quant.scale, np.float32).ravel()
                if sa.size != 1:
                    continue
                for b in qs:
                    if b == a:
                        continue
                    sb = np.asarray(g.tensors[b].quant.scale, np.float32).ravel()
                    if sb.size not in (1, want.size):
                        continue
                    got = product_scale(sa, sb)
                    if got.size == 1 and want.size != 1:
                        continue
                    if got.tobytes() == want.tobytes():
                        out[t] = (a, b)
                        break
                if t in out:
                    break
    return out


def write_file(path, data: bytes) -> int:
    """Write bytes atomically: a temporary file in the same directory renamed over `path`. A process
    that has the old file memory-mapped keeps valid pages (truncating a mapped file in place would
    fault its readers), and an interrupted write leaves no partial file. Returns len(data)."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".xnn-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the model from other users
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(data)


def save_xnn(g: Graph, path) -> int:
    """Write `g` as an .xnn file (atomically); returns the number of bytes written."""
    return write_file(path, write_xnn(g))


# ---- reading -----------------------------------------------------------------------------------

def _fail(msg: str):
    raise XnnError(f"corrupt .xnn file: {msg}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(v, what: str, lo: int, hi: int) -> int:
    if not _is_int(v) or not lo <= v <= hi:
        _fail(f"{what} must be an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _get(obj: dict, key: str, kind, what: str, default=...):
    if key not in obj:
        if default is not ...:
            return default
        _fail(f"{what} lacks '{key}'")
    v = obj[key]
    if kind is int:
        ok = _is_int(v)
    elif kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind)
    if not ok:
        _fail(f"{what} '{key}' must be {getattr(kind, '__name__', kind)}, got {type(v).__name__}")
    return v


def _indices(v, what: str, n: int, allow_absent: bool = False) -> tuple:
    if not isinstance(v, list):
        _fail(f"{what} must be a list of tensor indices")
    lo = -1 if allow_absent else 0
    for i in v:
        if not _is_int(i) or not lo <= i < n:
            _fail(f"{what}: tensor index {_short(i)} out of range (file has {n} tensors)")
    return tuple(v)


def _check_json_value(v, where: str, depth: int = 0):
    if depth > MAX_JSON_DEPTH:
        _fail(f"{where}: options nested too deeply")
    if isinstance(v, list):
        for x in v:
            _check_json_value(x, where, depth + 1)
    elif isinstance(v, dict):
        for x in v.values():
            _check_json_value(x, where, depth + 1)
    elif not (v is None or isinstance(v, (bool, int, float, str))):
        _fail(f"{where}: option value of type {type(v).__name__}")


def _view(content):
    """A read-only byte view of `content`; writable buffers are copied so weights cannot change."""
    if not isinstance(content, (bytes, bytearray, memoryview, mmap.mmap)):
        raise XnnError(f"model content must be bytes, got {type(content).__name__}")
    mv = memoryview(content)
    if mv.ndim != 1 or mv.itemsize != 1 or not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    if not mv.readonly:
        mv = memoryview(mv.tobytes())
    return mv


def read_xnn(content) -> Graph:
    """Parse .xnn bytes (bytes, memoryview or a read-only mmap) into a Graph.

    Constant tensors stored as they are are read-only numpy views into `content` (no copy); they
    keep it alive. Encoded constants are decoded into new read-only arrays.
    Raises XnnError for anything that is not a valid .xnn file of a version this xnn reads.
    """
    version, header, weights = _open(content)
    try:
        return _graph(header, weights, version)
    except XnnError:
        raise
    except RecursionError:
        _fail("header nested too deeply")
    except (ValueError, TypeError, OverflowError, MemoryError) as e:  # numpy conversions of odd values
        _fail(f"{type(e).__name__}: {e}")


def read_header(content) -> dict:
    """The validated prefix's JSON header of .xnn bytes, as a dict (inflated if compressed); the
    tensors and nodes in it are not checked (read_xnn does that)."""
    header = _open(content)[1]
    if not isinstance(header, dict):
        _fail(f"header must be a JSON object, got {type(header).__name__}")
    return header


def _open(content):
    """(format version, parsed JSON header, weight section view) after the prefix checks."""
    mv = _view(content)
    n = len(mv)
    if n < 8 or bytes(mv[:4]) != MAGIC:
        hint = ""
        if n >= 8 and bytes(mv[4:8]) == b"TFL3":
            hint = " (this is a TFLite model: load it as it is, or make an .xnn with `xnn convert`)"
        raise XnnError(f"not an .xnn file: missing the '{MAGIC.decode()}' magic{hint}")
    version = struct.unpack_from("<I", mv, 4)[0]
    if version > FORMAT_VERSION:
        from .. import __version__

        raise XnnError(f".xnn format version {version} was written by a newer xnn (xnn {__version__} reads "
                       f"format versions up to {FORMAT_VERSION}): upgrade xnn, or convert the .tflite again "
                       "with this xnn")
    if version < 1:
        _fail(f"format version {version}")
    if n < PREFIX_NBYTES:
        _fail(f"truncated: {n} bytes, shorter than the {PREFIX_NBYTES}-byte prefix")
    _, _, h_len, h_crc, w_off, w_len, w_crc, flags = _PREFIX.unpack_from(mv, 0)
    if flags & ~KNOWN_FLAGS[version]:
        _fail(f"unknown flags {flags:#x} (written by a newer xnn? upgrade xnn)")
    if flags & FLAG_HEADER_ZLIB and flags & FLAG_HEADER_LZMA:
        _fail("both header compression flags are set")
    if h_len > MAX_HEADER_NBYTES or PREFIX_NBYTES + h_len > n:
        _fail(f"header of {h_len} bytes does not fit a file of {n} bytes (truncated?)")
    if w_off != _align(PREFIX_NBYTES + h_len):
        _fail(f"weight section offset {w_off} is not {_align(PREFIX_NBYTES + h_len)}")
    if w_off + w_len != n:
        what = "truncated" if w_off + w_len > n else "trailing bytes"
        _fail(f"{what}: the file has {n} bytes, its prefix says {w_off + w_len}")
    raw = bytes(mv[PREFIX_NBYTES:PREFIX_NBYTES + h_len])
    if zlib.crc32(raw) != h_crc:
        _fail("header checksum mismatch")
    if any(mv[PREFIX_NBYTES + h_len:w_off]):
        _fail("nonzero padding before the weight section")
    weights = mv[w_off:w_off + w_len]
    if zlib.crc32(weights) != w_crc:
        _fail("weight section checksum mismatch")
    if flags & (FLAG_HEADER_ZLIB | FLAG_HEADER_LZMA):
        if len(raw) < 4:
            _fail("compressed header shorter than its length field")
        json_len = struct.unpack_from("<I", raw, 0)[0]
        if json_len > MAX_HEADER_NBYTES:
            _fail(f"compressed header claims {json_len} bytes, above {MAX_HEADER_NBYTES}")
        codec = "zlib" if flags & FLAG_HEADER_ZLIB else "lzma"
        raw = inflate(codec, memoryview(raw)[4:], json_len, "the header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(f"header is not valid UTF-8 JSON: {type(e).__name__}: {e}")
    return version, header, weights


class _Product(NamedTuple):
    """A quantization whose scales are product_scale(scale[a], scale[b]) (resolved in _graph)."""

    a: int
    b: int
    zero_point: object  # list of ints, or one int for all
    axis: int


def _quant(q, what: str, shape: tuple, version: int = FORMAT_VERSION, section=None):
    if q is None:
        return None
    if not isinstance(q, dict):
        _fail(f"{what} quantization must be an object or null")
    for k in q:
        if k not in ("scale", "zero_point", "axis", "product"):
            _fail(f"{what}: unknown quantization key '{str(k)[:20]}'")
    zp = q.get("zero_point")
    if version >= 3 and _is_int(zp):
        pass
    else:
        zp = _get(q, "zero_point", list, f"{what} quantization")
    axis = _get(q, "axis", int, f"{what} quantization")
    if not -(1 << 31) <= axis < (1 << 31):
        _fail(f"{what}: quantized axis {axis} out of range")
    if "product" in q:
        if version < 3:
            _fail(f"{what}: 'product' scales in a format version {version} file")
        if "scale" in q:
            _fail(f"{what}: quantization has both 'scale' and 'product'")
        ref = _get(q, "product", list, f"{what} quantization")
        if len(ref) != 2 or not all(_is_int(r) for r in ref):
            _fail(f"{what}: 'product' must be two tensor indices")
        return _Product(ref[0], ref[1], zp, axis)
    sv = q.get("scale")
    if isinstance(sv, list) and version >= 3:
        if section is None:
            _fail(f"{what}: quantization refers to the scale section, the file has none")
        if len(sv) != 2:
            _fail(f"{what}: quantization scale must be [start, count]")
        start = _int(sv[0], f"{what} scale start", 0, section.size)
        cnt = _int(sv[1], f"{what} scale count", 1, section.size - start)
        scale = section[start:start + cnt].copy()
    else:
        b64 = _get(q, "scale", str, f"{what} quantization")
        try:
            raw = base64.b64decode(b64.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            _fail(f"{what}: quantization scale is not base64")
        if len(raw) % 4:
            _fail(f"{what}: quantization scale of {len(raw)} bytes is not float32 values")
        scale = np.frombuffer(raw, "<f4").astype(np.float32)
    return _quant_params(scale, zp, axis, what, shape)


def _quant_params(scale: np.ndarray, zp, axis: int, what: str, shape: tuple) -> QuantParams:
    if _is_int(zp):
        zp = [zp] * scale.size
    if not scale.size or scale.size != len(zp):
        _fail(f"{what}: {scale.size} scales and {len(zp)} zero points")
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        _fail(f"{what}: scales must be finite and non-negative")
    if not all(_is_int(z) and -(1 << 31) <= z < (1 << 31) for z in zp):
        _fail(f"{what}: zero points must be 32-bit integers")
    if len(scale) > 1:
        if not 0 <= axis < len(shape):
            _fail(f"{what}: quantized axis {axis} out of range for rank {len(shape)}")
        if shape[axis] != len(scale):
            _fail(f"{what}: {len(scale)} per-channel scales for {shape[axis]} channels")
    return QuantParams(scale=scale, zero_point=np.array(zp, np.int64), axis=axis)


def _scale_section(h: dict, weights: memoryview, version: int):
    """The float32 scales of the header's "scales" section (format 3), or None."""
    sec = h.get("scales")
    if sec is None:
        return None
    if version < 3:
        _fail(f"a scale section in a format version {version} file")
    what = "scale section"
    if not isinstance(sec, dict):
        _fail(f"{what} must be an object")
    for k in sec:
        if k not in ("count", "data", "entropy", "size"):
            _fail(f"{what}: unknown key '{str(k)[:20]}'")
    count = _int(_get(sec, "count", int, what), f"{what} count", 1, MAX_ELEMENTS // 4)
    loc = _get(sec, "data", list, what)
    if len(loc) != 2:
        _fail(f"{what}: data must be [offset, nbytes]")
    off = _int(loc[0], f"{what} data offset", 0, len(weights))
    nbytes = _int(loc[1], f"{what} data size", 0, len(weights) - off)
    stored = weights[off:off + nbytes]
    codec = _get(sec, "entropy", str, what, None)
    if codec is not None:
        if codec not in BYTE_ENTROPY:
            _fail(f"{what}: entropy codec '{codec[:20]}' is not one of {', '.join(BYTE_ENTROPY)}")
        size = _int(_get(sec, "size", int, what), f"{what} size", 0, 1 << 62)
        if size != 4 * count:
            _fail(f"{what}: size {size} but {count} scales need {4 * count} bytes")
        if nbytes == 0:
            _fail(f"{what}: empty {codec} stream")
        stored = inflate(codec, stored, size, what)
    elif "size" in sec:
        _fail(f"{what}: 'size' is only for an entropy-coded section")
    elif nbytes != 4 * count:
        _fail(f"{what}: {nbytes} bytes, {count} scales need {4 * count}")
    return unshuffle_f32(stored, count)


def _tensor(i: int, e, weights: memoryview, version: int = FORMAT_VERSION, section=None) -> TensorSpec:
    what = f"tensor {i}"
    if not isinstance(e, dict):
        _fail(f"{what} must be an object")
    name = _get(e, "name", str, what)
    what = f"tensor {i} '{name[:40]}'"
    shape = _get(e, "shape", list, what)
    if len(shape) > MAX_RANK:
        _fail(f"{what}: rank {len(shape)} above {MAX_RANK}")
    shape = tuple(_int(d, f"{what} dimension", 0, MAX_ELEMENTS) for d in shape)
    count = 1
    for d in shape:
        count *= d
    if count > MAX_ELEMENTS:
        _fail(f"{what}: shape {shape} too large")
    dname = _get(e, "dtype", str, what)
    if dname not in DTYPES:
        _fail(f"{what}: dtype '{dname[:20]}' is not one of {', '.join(DTYPES)}")
    dtype = DTYPES[dname]
    quant = _quant(e.get("quant"), what, shape, version, section)
    variable = _get(e, "variable", bool, what, False)
    loc = e.get("data")
    enc = e.get("enc")
    data = None
    if enc is not None:
        if version < 2:
            _fail(f"{what}: 'enc' in a format version {version} file")
        if loc is None:
            _fail(f"{what}: 'enc' without data")
        if version < 5 and isinstance(enc, dict) and "bfloat16" in (enc.get("values"), enc.get("params")):
            _fail(f"{what}: bfloat16 encodings in a format version {version} file")
        if version < 6 and isinstance(enc, dict) and enc.get("entropy") == "ans":
            _fail(f"{what}: ans entropy coding in a format version {version} file")
    if loc is not None:
        if not isinstance(loc, list) or len(loc) != 2:
            _fail(f"{what}: data must be [offset, nbytes] or null")
        off = _int(loc[0], f"{what} data offset", 0, len(weights))
        if enc is not None:
            nbytes = _int(loc[1], f"{what} data size", 0, len(weights) - off)
            data = decode_tensor(enc, weights[off:off + nbytes], shape, dtype, what)
            data.flags.writeable = False
            return TensorSpec(name=name, shape=shape, dtype=dtype, quant=quant, data=data, is_variable=variable)
        if off % ALIGN:
            _fail(f"{what}: data offset {off} is not a multiple of {ALIGN}")
        nbytes = _int(loc[1], f"{what} data size", 0, len(weights) - off)
        if nbytes != count * dtype.itemsize:
            _fail(f"{what}: {nbytes} data bytes, shape {shape} {dname} needs {count * dtype.itemsize}")
        if count == 0:
            data = np.zeros(shape, dtype)
        else:
            le = dtype.newbyteorder("<")
            data = np.frombuffer(weights, dtype=le, count=count, offset=off).reshape(shape)
            if le != dtype:  # big-endian host: one converted copy
                data = data.astype(dtype)
            if dtype == np.bool_ and np.any(data.view(np.uint8) > 1):
                _fail(f"{what}: bool data holds bytes other than 0 and 1")
        data.flags.writeable = False
    return TensorSpec(name=name, shape=shape, dtype=dtype, quant=quant, data=data, is_variable=variable)


def _node(k: int, e, n_tensors: int) -> Node:
    what = f"node {k}"
    if not isinstance(e, dict):
        _fail(f"{what} must be an object")
    op = _get(e, "op", str, what)
    if not op or len(op) > 128:
        _fail(f"{what}: op name of length {len(op)}")
    name = _get(e, "name", str, what, f"#{k} {op}")
    what = f"node {k} ({name[:40]})"
    version = _int(_get(e, "version", int, what, 1), f"{what} version", 1, 1 << 20)
    ins = _indices(_get(e, "inputs", list, what), f"{what} inputs", n_tensors, allow_absent=True)
    outs = _indices(_get(e, "outputs", list, what), f"{what} outputs", n_tensors)
    inter = _indices(_get(e, "intermediates", list, what, []), f"{what} intermediates", n_tensors)
    options = _get(e, "options", dict, what, {})
    _check_json_value(options, what)
    return Node(op=op, inputs=ins, outputs=outs, options=frozen_options(options), version=version,
                name=name, intermediates=inter)


def _graph(h, weights: memoryview, version: int = FORMAT_VERSION) -> Graph:
    if not isinstance(h, dict):
        _fail(f"header must be a JSON object, got {type(h).__name__}")
    tlist = _get(h, "tensors", list, "header")
    nlist = _get(h, "nodes", list, "header")
    section = _scale_section(h, weights, version)
    tensors = [_tensor(i, e, weights, version, section) for i, e in enumerate(tlist)]
    n = len(tensors)
    for i, t in enumerate(tensors):
        if isinstance(t.quant, _Product):
            what = f"tensor {i} '{t.name[:40]}'"
            p = t.quant
            for r in (p.a, p.b):
                if not 0 <= r < n or r == i:
                    _fail(f"{what}: product scale refers to tensor {_short(r)} (file has {n} tensors)")
                if not isinstance(tensors[r].quant, QuantParams):
                    _fail(f"{what}: product scale refers to tensor {r} without stored scales")
            sa, sb = tensors[p.a].quant.scale, tensors[p.b].quant.scale
            if sa.size != 1:
                _fail(f"{what}: product scale: tensor {p.a} must have one scale, it has {sa.size}")
            scale = product_scale(sa, sb)
            tensors[i] = TensorSpec(name=t.name, shape=t.shape, dtype=t.dtype, data=t.data, is_variable=t.is_variable,
                                    quant=_quant_params(scale, p.zero_point, p.axis, what, t.shape))
    tensors = tuple(tensors)
    nodes = tuple(_node(k, e, n) for k, e in enumerate(nlist))
    inputs = _indices(_get(h, "inputs", list, "header"), "graph inputs", n)
    outputs = _indices(_get(h, "outputs", list, "header"), "graph outputs", n)
    desc = _get(h, "description", str, "header", "")
    return Graph(tensors=tensors, nodes=nodes, inputs=inputs, outputs=outputs, description=desc)


def map_file(f):
    """A read-only memory map of an open binary file (or its bytes where mapping is impossible)."""
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError):
        f.seek(0)
        return f.read()


# ---- encoded constants ------------------------------------------------------------------------

ENC_LAYOUTS = ("dense", "mask", "channels")
ENC_VALUES = ("raw", "palette", "affine", "lowrank", "bfloat16")
BF16_DTYPES = ("float32", "int32")  # dtypes "bfloat16" values expand to (format version 5)
ENC_ENTROPY = ("zlib", "lzma", "ans")
BYTE_ENTROPY = ("zlib", "lzma")  # the codecs for any bytes (header, scale section, any payload)
ENC_KEYS = ("entropy", "size", "layout", "values", "axis", "count", "bits", "shared", "rank", "params")
LOSSY_DTYPES = ("int8", "float16", "float32")  # dtypes "palette", "affine" and "lowrank" produce
MAX_DECODED_NBYTES = 1 << 30  # an encoded constant expands to at most 1 GiB (no decompression bombs)


def lzma_filters(size: int) -> list:
    """The raw LZMA2 filter chain for a payload of `size` bytes (encoder and decoder agree on it):
    dictionary = the next power of two >= size, clamped to [4 KiB, 8 MiB]."""
    d = 1 << max(12, min(23, (max(size, 1) - 1).bit_length()))
    return [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": d}]


def byte_codec(entropy):
    """The byte codec that stands in for `entropy` where ANS has no meaning (the header, the scale
    section, tensors other than weight codes): "ans" -> "lzma", any other value as it is."""
    return "lzma" if entropy == "ans" else entropy


def deflate(codec: str, data: bytes) -> bytes:
    """Entropy-code bytes with one of ENC_ENTROPY (the inverse of `inflate`)."""
    if codec == "zlib":
        return zlib.compress(data, 9)
    if codec == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_RAW, filters=lzma_filters(len(data)))
    raise XnnError(f"unknown byte entropy codec '{codec}' (known: {', '.join(BYTE_ENTROPY)})")


def inflate(codec: str, stored, size: int, what: str) -> bytes:
    """Inflate a complete zlib / raw LZMA2 stream that must give exactly `size` bytes; at most
    `size` (+1 to detect excess) bytes are ever produced, so a corrupt stream cannot exhaust memory."""
    stored = bytes(stored)
    try:
        if codec == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(stored, size)
            if not d.eof and len(out) == size:  # the end marker may follow the last output byte
                extra = d.decompress(d.unconsumed_tail, 1)
                if extra:
                    _fail(f"{what}: zlib stream inflates to more than {size} bytes")
            ok = d.eof and not d.unconsumed_tail and not d.unused_data
        elif codec == "lzma":
            d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=lzma_filters(size))
            out = d.decompress(stored, max_length=size)
            if not d.eof and len(out) == size:
                if d.decompress(b"", max_length=1):
                    _fail(f"{what}: LZMA stream inflates to more than {size} bytes")
            ok = d.eof and not d.unused_data
        else:
            _fail(f"{what}: unknown entropy codec")
    except (zlib.error, lzma.LZMAError, EOFError) as e:
        _fail(f"{what}: {codec} stream is corrupt ({e})")
    if len(out) != size or not ok:
        _fail(f"{what}: {codec} stream gives {len(out)}{'+' if len(out) == size else ''} bytes, "
              f"not a complete stream of {size}")
    return out


def _ans_split(d: dict) -> tuple:
    """(prefix bytes, index count) of an "enc" payload (see xnn/converter/ans.py): the selection and
    code parameters come first, the m packed `bits`-bit indices last."""
    return d["payload"] - _ceil8(d["m"] * d["bits"]), d["m"]


def deflate_ans(d: dict, payload: bytes) -> bytes:
    """The stored bytes of an "ans"-coded payload (d: enc_layout's result for its descriptor)."""
    from .ans import encode_symbols

    npre, m = _ans_split(d)
    pre = deflate("lzma", bytes(payload[:npre])) if npre else b""
    codes = unpack_uint(bytes(payload[npre:]), m, d["bits"], "ans payload")
    return struct.pack("<I", len(pre)) + pre + encode_symbols(codes.astype(np.uint8), d["bits"])


def _inflate_ans(d: dict, stored, what: str) -> tuple:
    """(the payload's prefix bytes, the m decoded indices as uint8) of an "ans"-coded tensor."""
    from .ans import decode_symbols

    npre, m = _ans_split(d)
    stored = memoryview(stored)
    if len(stored) < 4:
        _fail(f"{what}: ans data of {len(stored)} bytes")
    plen = struct.unpack_from("<I", stored, 0)[0]
    if plen > len(stored) - 4 or (plen == 0) != (npre == 0):
        _fail(f"{what}: ans prefix stream of {plen} bytes does not fit ({len(stored)} stored, "
              f"{npre}-byte prefix)")
    pre = inflate("lzma", stored[4:4 + plen], npre, what) if npre else b""
    return bytes(pre), decode_symbols(stored[4 + plen:], m, d["bits"], what, _fail)


def pack_uint(values, bits: int) -> bytes:
    """Unsigned integers < 2^bits as a bit string, least-significant bit first, zero-padded to a byte."""
    v = np.asarray(values, np.uint16).ravel()
    b = ((v[:, None] >> np.arange(bits, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(b.ravel(), bitorder="little").tobytes()


def unpack_uint(buf, count: int, bits: int, what: str) -> np.ndarray:
    """The inverse of `pack_uint` for `count` values; `buf` holds exactly ceil(count·bits/8) bytes
    and its unused trailing bits must be zero."""
    b = np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")
    if b[count * bits:].any():
        _fail(f"{what}: nonzero padding bits after the packed values")
    b = b[:count * bits].reshape(count, bits).astype(np.uint16)
    return (b << np.arange(bits, dtype=np.uint16)).sum(axis=1, dtype=np.uint16)


def _ceil8(nbits: int) -> int:
    return (nbits + 7) // 8


def enc_layout(enc, shape: tuple, dtype: np.dtype, what: str) -> dict:
    """Validate an "enc" descriptor for a tensor of `shape` and `dtype` and return it normalized
    (defaults filled) with the derived sizes: n, C, m (stored elements), groups, sel_nbytes,
    val_nbytes and payload (their sum). Nothing here reads the stored bytes."""
    if not isinstance(enc, dict):
        _fail(f"{what}: 'enc' must be an object")
    for k in enc:
        if k not in ENC_KEYS:
            _fail(f"{what}: unknown encoding key '{str(k)[:20]}' (known: {', '.join(ENC_KEYS)})")
    d = {"layout": _get(enc, "layout", str, f"{what} enc", "dense"),
         "values": _get(enc, "values", str, f"{what} enc", "raw"),
         "entropy": _get(enc, "entropy", str, f"{what} enc", None)}
    if d["layout"] not in ENC_LAYOUTS:
        _fail(f"{what}: layout '{d['layout'][:20]}' is not one of {', '.join(ENC_LAYOUTS)}")
    if d["values"] not in ENC_VALUES:
        _fail(f"{what}: values codec '{d['values'][:20]}' is not one of {', '.join(ENC_VALUES)}")
    if d["entropy"] is not None and d["entropy"] not in ENC_ENTROPY:
        _fail(f"{what}: entropy codec '{d['entropy'][:20]}' is not one of {', '.join(ENC_ENTROPY)}")
    n = 1
    for s in shape:
        n *= s
    if n == 0 or not shape:
        _fail(f"{what}: an empty or scalar tensor cannot be encoded")
    if n * dtype.itemsize > MAX_DECODED_NBYTES:
        _fail(f"{what}: an encoded tensor of {n * dtype.itemsize:,} bytes is above the "
              f"{MAX_DECODED_NBYTES:,}-byte limit")
    layout, values = d["layout"], d["values"]
    coded = values in ("palette", "affine")
    shared = _get(enc, "shared", bool, f"{what} enc", False)
    if shared and not coded:
        _fail(f"{what}: 'shared' is only for palette/affine values")
    needs_axis = layout == "channels" or (coded and not shared)
    if "axis" in enc and not needs_axis:
        _fail(f"{what}: 'axis' has no meaning here")
    axis = None
    if needs_axis:
        axis = _int(_get(enc, "axis", int, f"{what} enc"), f"{what} enc axis", 0, len(shape) - 1)
    C = shape[axis] if axis is not None else 1
    if ("count" in enc) != (layout != "dense"):
        _fail(f"{what}: 'count' is required with layout mask/channels and only there")
    if layout == "mask":
        count = _int(enc["count"], f"{what} enc count", 0, n)
        sel_nbytes, m = _ceil8(n), count
    elif layout == "channels":
        count = _int(enc["count"], f"{what} enc count", 0, C)
        sel_nbytes, m = _ceil8(C), count * (n // C)
    else:
        count, sel_nbytes, m = None, 0, n
    if ("bits" in enc) != coded:
        _fail(f"{what}: 'bits' is required with palette/affine values and only there")
    if ("rank" in enc) != (values == "lowrank"):
        _fail(f"{what}: 'rank' is required with lowrank values and only there")
    if values == "bfloat16":
        if dtype.name not in BF16_DTYPES:
            _fail(f"{what}: bfloat16 values need a dtype among {', '.join(BF16_DTYPES)}, not {dtype.name}")
    elif values != "raw" and dtype.name not in LOSSY_DTYPES:
        _fail(f"{what}: {values} values need a dtype among {', '.join(LOSSY_DTYPES)}, not {dtype.name}")
    groups = 1 if shared else (count if layout == "channels" else C)
    pkind = _get(enc, "params", str, f"{what} enc", None)
    params_i8 = pkind == "int8"
    params_bf16 = pkind == "bfloat16"
    if pkind is not None and not ((params_i8 and values == "affine" and dtype.name == "int8") or
                                  (params_bf16 and values == "affine" and dtype.name in ("float16", "float32"))):
        _fail(f"{what}: 'params' must be \"int8\" (affine values of an int8 tensor) or \"bfloat16\" (affine "
              f"values of a float16/float32 tensor)")
    bits = rank = None
    if values == "raw":
        val_nbytes = m * dtype.itemsize
    elif values == "bfloat16":
        val_nbytes = 2 * m
    elif coded:
        bits = _int(enc["bits"], f"{what} enc bits", 1, 8)
        if values == "affine":
            # (lo, hi) int8, (lo, step) bfloat16 or (lo, step) float32 per group
            params = groups * (2 if params_i8 else 4 if params_bf16 else 8)
        else:
            params = groups * (1 << bits) * dtype.itemsize
        val_nbytes = params + _ceil8(m * bits)
    else:  # lowrank
        if layout != "dense" or len(shape) != 2:
            _fail(f"{what}: lowrank values need layout dense and a 2-D tensor, not shape {shape}")
        M, N = shape
        rank = _int(enc["rank"], f"{what} enc rank", 1, min(M, N))
        val_nbytes = rank * (M + N) * (1 if dtype.name == "int8" else 4)
        if dtype.name == "int8":
            val_nbytes += 4 * (M + N)
    payload = sel_nbytes + val_nbytes
    if d["entropy"] == "ans" and not coded:
        _fail(f"{what}: ans entropy coding is only for palette/affine values")
    if d["entropy"] is not None:
        size = _int(_get(enc, "size", int, f"{what} enc"), f"{what} enc size", 0, 1 << 62)
        if size != payload:
            _fail(f"{what}: enc size {size} but the encoding needs a {payload}-byte payload")
    elif "size" in enc:
        _fail(f"{what}: 'size' is only for entropy-coded payloads")
    d.update(n=n, C=C, axis=axis, count=count, m=m, bits=bits, rank=rank, shared=shared, params_i8=params_i8,
             params_bf16=params_bf16, groups=groups, sel_nbytes=sel_nbytes, val_nbytes=val_nbytes, payload=payload)
    return d


def bf16_to_f32(u16) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as float32: the pattern is the upper half of the float32's bits."""
    return (np.asarray(u16, np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16(x) -> np.ndarray:
    """float32 values rounded to bfloat16 (8 significant bits; round to nearest, ties to even), as
    their uint16 bit patterns. NaN stays NaN; values that round past the largest finite bfloat16
    become infinite (IEEE rounding)."""
    u = np.ascontiguousarray(np.asarray(x, np.float32)).view(np.uint32).astype(np.uint64)
    nan = np.isnan(np.asarray(x, np.float32))
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(nan, (u >> 16).astype(np.uint16) | np.uint16(0x40), r)


def round_bf16(x) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (as float32)."""
    return bf16_to_f32(f32_to_bf16(x)).reshape(np.shape(x))


def affine_i8_levels(lo, hi, q, bits: int) -> np.ndarray:
    """The int8 affine code's values (see "params": "int8"): K = 2^bits levels from lo to hi,
    lo + floor((2 (hi - lo) q + K - 1) / (2 (K - 1))), exact in int64."""
    k1 = (1 << bits) - 1
    lo = np.asarray(lo, np.int64)
    return lo + (2 * (np.asarray(hi, np.int64) - lo) * np.asarray(q, np.int64) + k1) // (2 * k1)


def _channel_of(shape: tuple, axis: int) -> np.ndarray:
    """For each element in C order, its index along `axis`."""
    inner = 1
    for s in shape[axis + 1:]:
        inner *= s
    return (np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64) // inner) % shape[axis]


def decode_tensor(enc, stored, shape: tuple, dtype, what: str) -> np.ndarray:
    """Expand an encoded constant (descriptor `enc`, stored bytes `stored`) to its array (a new,
    writable C-contiguous array of `shape` and `dtype`)."""
    dtype = np.dtype(dtype)
    d = enc_layout(enc, tuple(shape), dtype, what)
    stored = memoryview(stored)
    codes = None
    if d["entropy"] is not None:
        if len(stored) == 0:
            _fail(f"{what}: empty {d['entropy']} stream")
        if d["entropy"] == "ans":  # the payload's prefix, and the indices already decoded
            pre, codes = _inflate_ans(d, stored, what)
            payload = memoryview(pre)
        else:
            payload = memoryview(inflate(d["entropy"], stored, d["payload"], what))
    else:
        if len(stored) != d["payload"]:
            _fail(f"{what}: {len(stored)} data bytes, its encoding needs {d['payload']}")
        payload = stored
    n, m, C, axis = d["n"], d["m"], d["C"], d["axis"]
    sel_buf = payload[:d["sel_nbytes"]]
    val_buf = payload[d["sel_nbytes"]:]
    le = dtype.newbyteorder("<")
    # which elements are stored (None: all) and, for per-channel parameters, each one's group
    selected = None
    group_of_channel = None
    if d["layout"] == "mask":
        bits = np.unpackbits(np.frombuffer(sel_buf, np.uint8), bitorder="little")
        if bits[n:].any():
            _fail(f"{what}: nonzero padding bits after the element mask")
        selected = bits[:n].astype(bool)
        if int(np.count_nonzero(selected)) != d["count"]:
            _fail(f"{what}: element mask has {int(np.count_nonzero(selected))} bits set, enc count {d['count']}")
    elif d["layout"] == "channels":
        bits = np.unpackbits(np.frombuffer(sel_buf, np.uint8), bitorder="little")
        if bits[C:].any():
            _fail(f"{what}: nonzero padding bits after the channel mask")
        kept = bits[:C].astype(bool)
        if int(np.count_nonzero(kept)) != d["count"]:
            _fail(f"{what}: channel mask has {int(np.count_nonzero(kept))} bits set, enc count {d['count']}")
        chan = _channel_of(shape, axis)
        selected = kept[chan]
        group_of_channel = np.cumsum(kept) - 1
    if d["values"] in ("palette", "affine"):
        G, bits = d["groups"], d["bits"]
        if d["shared"]:
            group = np.zeros(m, np.int64)
        else:
            chan = _channel_of(shape, axis)
            if selected is not None:
                chan = chan[selected]
            group = chan if group_of_channel is None else group_of_channel[chan]
        pbytes = d["val_nbytes"] - _ceil8(m * bits)
        idx = (unpack_uint(val_buf[pbytes:], m, bits, what) if codes is None else codes).astype(np.int64)
        if d["values"] == "palette":
            book = np.frombuffer(val_buf[:pbytes], le).reshape(G, 1 << bits)
            vals = book[group, idx].astype(dtype)
        elif d["params_i8"]:
            lohi = np.frombuffer(val_buf[:pbytes], np.int8).reshape(G, 2).astype(np.int64)
            if np.any(lohi[:, 1] < lohi[:, 0]):
                _fail(f"{what}: int8 affine parameters need lo <= hi")
            vals = affine_i8_levels(lohi[group, 0], lohi[group, 1], idx, bits).astype(np.int8)
        else:
            if d["params_bf16"]:
                params = bf16_to_f32(np.frombuffer(val_buf[:pbytes], "<u2")).reshape(G, 2)
            else:
                params = np.frombuffer(val_buf[:pbytes], "<f4").reshape(G, 2).astype(np.float32)
            if dtype == np.int8 and not np.all(np.isfinite(params)):
                _fail(f"{what}: affine parameters of an int8 tensor must be finite")
            with np.errstate(over="ignore", invalid="ignore"):  # IEEE: overflow gives ±inf
                v = params[group, 0] + params[group, 1] * idx.astype(np.float32)  # float32 arithmetic
            if dtype == np.int8:
                vals = np.clip(np.rint(v), -128, 127).astype(np.int8)
            else:
                vals = v.astype(dtype)
    elif d["values"] == "lowrank":
        (M, N), R = shape, d["rank"]
        if dtype == np.int8:
            o = 0
            U = np.frombuffer(val_buf, np.int8, M * R, o).reshape(M, R)
            o += M * R
            V = np.frombuffer(val_buf, np.int8, R * N, o).reshape(R, N)
            o += R * N
            su = np.frombuffer(val_buf, "<f4", M, o).astype(np.float64)
            o += 4 * M
            sv = np.frombuffer(val_buf, "<f4", N, o).astype(np.float64)
            if not (np.all(np.isfinite(su)) and np.all(np.isfinite(sv))):
                _fail(f"{what}: lowrank scales of an int8 tensor must be finite")
            P = U.astype(np.int64) @ V.astype(np.int64)  # exact integer sums
            with np.errstate(over="ignore", invalid="ignore"):
                w = (su[:, None] * sv[None, :]) * P.astype(np.float64)
            vals = np.clip(np.rint(w), -127, 127).astype(np.int8)
        else:
            U = np.frombuffer(val_buf, "<f4", M * R, 0).reshape(M, R).astype(np.float32)
            V = np.frombuffer(val_buf, "<f4", R * N, 4 * M * R).reshape(R, N).astype(np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                vals = np.matmul(U, V).astype(dtype)
        return np.ascontiguousarray(vals.reshape(shape))
    elif d["values"] == "bfloat16":
        f = bf16_to_f32(np.frombuffer(val_buf, "<u2", m))
        if dtype == np.int32:
            ok = np.isfinite(f) & (f == np.floor(f)) & (f >= -2.0 ** 31) & (f < 2.0 ** 31)
            if not np.all(ok):
                _fail(f"{what}: bfloat16 values of an int32 tensor must be integers in the int32 range")
        vals = f.astype(dtype)
    else:  # raw
        raw = np.frombuffer(val_buf, le, m)
        if dtype == np.bool_ and np.any(raw.view(np.uint8) > 1):
            _fail(f"{what}: bool data holds bytes other than 0 and 1")
        vals = raw.astype(dtype)
    if selected is None:
        return np.ascontiguousarray(vals.reshape(shape))
    out = np.zeros(n, dtype)
    out[selected] = vals
    return out.reshape(shape)


# ---- the graph to store ------------------------------------------------------------------------

def _is_storage_expansion(g: Graph, node: Node) -> bool:
    """DEQUANTIZE of a constant float16 tensor: kept in the file, folded at load (exact widening)."""
    if node.op != "DEQUANTIZE" or len(node.inputs) != 1 or len(node.outputs) != 1 or node.inputs[0] < 0:
        return False
    x = g.tensors[node.inputs[0]]
    return x.data is not None and not x.is_variable and np.dtype(x.dtype) == np.float16


def graph_for_xnn(raw: Graph) -> Graph:
    """The graph an .xnn stores for a freshly read model: constant folding and the default passes
    applied, except that float16 constants keep their DEQUANTIZE nodes (moved to the front: they
    read constants only), which `load_graph` folds again at load. The graph `load_graph` produces
    from the stored one equals the one it produces from the original model."""
    from .fold import fold_constants
    from .passes import default_passes

    expand = [n for n in raw.nodes if _is_storage_expansion(raw, n)]
    rest = [n for n in raw.nodes if not _is_storage_expansion(raw, n)]
    g = fold_constants(raw.replace(nodes=tuple(rest)))
    g = g.replace(nodes=tuple(expand) + tuple(g.nodes))
    for p in default_passes():
        g = p(g)
    return g
