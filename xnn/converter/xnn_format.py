"""The .xnn model file: a graph header and one aligned weight section, loaded without copying.

Layout (all integers little-endian):

    offset  size  field
         0     4  magic b"XNNF"
         4     4  uint32 format version (FORMAT_VERSION)
         8     4  uint32 header_nbytes: length of the JSON header
        12     4  uint32 CRC-32 of the JSON header bytes
        16     8  uint64 weights_offset = align64(PREFIX + header_nbytes)
        24     8  uint64 weights_nbytes
        32     4  uint32 CRC-32 of the weight section (all weights_nbytes bytes)
        36     4  uint32 flags, 0 (a nonzero flag is a feature this reader does not know)
        40     h  JSON header, UTF-8
      40+h     .  zero bytes up to weights_offset
    w_off  w_len  weight section; the file ends exactly at weights_offset + weights_nbytes

The JSON header is one object:
    {"producer": str, "description": str, "inputs": [int], "outputs": [int],
     "tensors": [{"name": str, "shape": [int], "dtype": str, "variable": bool,
                  "quant": {"scale": base64, "zero_point": [int], "axis": int},
                  "data": [offset, nbytes]}],
     "nodes": [{"op": str, "version": int, "name": str, "inputs": [int], "outputs": [int],
                "intermediates": [int], "options": {str: JSON value}}]}
Fields at their defaults are left out: variable false, quant and data absent (no quantization, not a
constant), version 1, intermediates [], options {}. Tensors that no node and no graph input or
output refers to (left behind by folding and fusions) are not stored; the others keep their order.
A constant's bytes are its C-order little-endian array at weights_offset + offset, offset a
multiple of 64; the weight section starts at a multiple of 64 too, so in a memory-mapped file every
constant is 64-byte aligned. Quantization scales are their float32 little-endian bytes in base64
(bit-exact, 5.3 characters per scale); options keep JSON's types (bool, int, float, str, list,
object), and a float is written as the shortest decimal that reads back to the same double, so
options round-trip exactly as the reader produced them.

Reading validates everything before use: magic, version, flags, both CRCs, section bounds, the
JSON's shape and types, dtype names (from an allowlist), shapes, every (offset, nbytes) against the
section and the tensor's shape, quantization lengths and axes, and every tensor index. Any defect is
an XnnError; nothing is unpickled or evaluated.

The graph stored is the one the interpreter runs: after constant folding and the load-time passes,
so xnn-only ops (CHANNEL_SHUFFLE, BIDI_SEQUENCE_LSTM) appear in it. Exception: a float16 constant
feeding a DEQUANTIZE stays float16 with its DEQUANTIZE node (half the bytes); folding at load widens
it exactly as it would for the .tflite.
"""
from __future__ import annotations

import base64
import binascii
import json
import mmap
import struct
import zlib

import numpy as np

from ..errors import XnnError
from ..ir import Graph, Node, QuantParams, TensorSpec, frozen_options

MAGIC = b"XNNF"
FORMAT_VERSION = 1
ALIGN = 64
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


def pack(header, weights=b"") -> bytes:
    """Assemble a file from a header (a dict, or raw JSON bytes) and the weight section bytes."""
    try:
        raw = header if isinstance(header, (bytes, bytearray)) else \
            json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError) as e:
        raise XnnError(f"cannot encode the .xnn header: {type(e).__name__}: {e}") from None
    weights = bytes(weights)
    w_off = _align(PREFIX_NBYTES + len(raw))
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw), zlib.crc32(raw), w_off, len(weights),
                          zlib.crc32(weights), 0)
    return b"".join((prefix, raw, bytes(w_off - PREFIX_NBYTES - len(raw)), weights))


def compact_tensors(g: Graph) -> Graph:
    """Drop tensors that no node (input, output, intermediate) and no graph input/output refers to,
    renumbering the rest in their original order."""
    used = set(g.inputs) | set(g.outputs)
    for n in g.nodes:
        used.update(t for t in tuple(n.inputs) + tuple(n.outputs) + tuple(n.intermediates) if t >= 0)
    if len(used) == len(g.tensors):
        return g
    keep = sorted(t for t in used if 0 <= t < len(g.tensors))
    new = {t: k for k, t in enumerate(keep)}
    new[-1] = -1

    def m(ts):
        if any(t not in new for t in ts):
            raise XnnError(f"graph refers to a tensor index out of range ({len(g.tensors)} tensors)")
        return tuple(new[t] for t in ts)

    nodes = tuple(Node(op=n.op, inputs=m(n.inputs), outputs=m(n.outputs), options=n.options,
                       version=n.version, name=n.name, intermediates=m(n.intermediates)) for n in g.nodes)
    return Graph(tensors=tuple(g.tensors[t] for t in keep), nodes=nodes, inputs=m(g.inputs),
                 outputs=m(g.outputs), description=g.description)


def write_xnn(g: Graph) -> bytes:
    """Serialize a Graph (typically after load-time passes) as .xnn bytes; unreferenced tensors
    are left out (`compact_tensors`)."""
    from .. import __version__

    g = compact_tensors(g)
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
            scale = np.ascontiguousarray(np.asarray(t.quant.scale).ravel(), dtype="<f4").tobytes()
            entry["quant"] = {"scale": base64.b64encode(scale).decode("ascii"),
                              "zero_point": [int(z) for z in np.asarray(t.quant.zero_point).ravel()],
                              "axis": int(t.quant.axis)}
        if t.data is not None:
            data = np.asarray(t.data)
            count = int(np.prod(shape, dtype=np.int64))
            if data.size != count:
                raise XnnError(f"tensor {i} '{t.name}': data has {data.size} elements, shape {tuple(shape)} "
                               f"needs {count}")
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
    return pack(header, b"".join(chunks))


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

    Constant tensors are read-only numpy views into `content` (no copy); they keep it alive.
    Raises XnnError for anything that is not a valid .xnn file of a version this xnn reads.
    """
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
    if flags != 0:
        _fail(f"unknown flags {flags:#x} (written by a newer xnn? upgrade xnn)")
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
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(f"header is not valid UTF-8 JSON: {type(e).__name__}: {e}")
    try:
        return _graph(header, weights)
    except XnnError:
        raise
    except RecursionError:
        _fail("header nested too deeply")
    except (ValueError, TypeError, OverflowError) as e:  # numpy conversions of odd values
        _fail(f"{type(e).__name__}: {e}")


def _quant(q, what: str, shape: tuple):
    if q is None:
        return None
    if not isinstance(q, dict):
        _fail(f"{what} quantization must be an object or null")
    b64 = _get(q, "scale", str, f"{what} quantization")
    zp = _get(q, "zero_point", list, f"{what} quantization")
    axis = _get(q, "axis", int, f"{what} quantization")
    try:
        raw = base64.b64decode(b64.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        _fail(f"{what}: quantization scale is not base64")
    if len(raw) % 4:
        _fail(f"{what}: quantization scale of {len(raw)} bytes is not float32 values")
    scale = np.frombuffer(raw, "<f4").astype(np.float32)
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
    elif not -(1 << 31) <= axis < (1 << 31):  # unused for one scale; kept as the model had it
        _fail(f"{what}: quantized axis {axis} out of range")
    return QuantParams(scale=scale, zero_point=np.array(zp, np.int64), axis=axis)


def _tensor(i: int, e, weights: memoryview) -> TensorSpec:
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
    quant = _quant(e.get("quant"), what, shape)
    variable = _get(e, "variable", bool, what, False)
    loc = e.get("data")
    data = None
    if loc is not None:
        if not isinstance(loc, list) or len(loc) != 2:
            _fail(f"{what}: data must be [offset, nbytes] or null")
        off = _int(loc[0], f"{what} data offset", 0, len(weights))
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


def _graph(h, weights: memoryview) -> Graph:
    if not isinstance(h, dict):
        _fail(f"header must be a JSON object, got {type(h).__name__}")
    tlist = _get(h, "tensors", list, "header")
    nlist = _get(h, "nodes", list, "header")
    tensors = tuple(_tensor(i, e, weights) for i, e in enumerate(tlist))
    n = len(tensors)
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
