""".xnn files (xnn/converter/xnn_format.py): round trips of every fixture with identical outputs,
exact options and quantization, zero-copy memory-mapped constants, and XnnError (never another
exception) for files that are truncated, bit-flipped, of another version or otherwise malformed."""
from __future__ import annotations

import base64
import glob
import json
import math
import mmap
import os
import struct

import numpy as np
import pytest

import xnn
from oracle import qp
from xnn import XnnError
from xnn.converter.fold import fold_constants
from xnn.converter.passes import default_passes
from xnn.converter.tflite_reader import read_tflite
from xnn.converter.xnn_format import (ALIGN, FORMAT_VERSION, MAGIC, PREFIX_NBYTES, compact_tensors,
                                      graph_for_xnn, pack, read_xnn, write_file, write_xnn)
from xnn.interpreter import load_graph
from xnn.ir import Graph, Node, TensorSpec, frozen_options

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
MODELS = sorted(glob.glob(os.path.join(FIX, "*.tflite")) + glob.glob(os.path.join(FIX, "seq", "*.tflite")))
SMALL = os.path.join(FIX, "detector_int8.tflite")


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


_CACHE: dict = {}


def converted(path, scales="section") -> bytes:
    """The .xnn of a .tflite; scales="inline": base64 scales in the header (as format 1-2 files)."""
    if (path, scales) not in _CACHE:
        _CACHE[path, scales] = write_xnn(graph_for_xnn(read_tflite(_read(path))), scales=scales)
    return _CACHE[path, scales]


def feeds_for(it, seed):
    rng = np.random.default_rng(seed)
    out = []
    for d in it.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            out.append(rng.integers(-128, 128, d["shape"]).astype(d["dtype"]))
        else:
            out.append(rng.uniform(0, 1, d["shape"]).astype(d["dtype"]))
    return out


# ---- structural equality -----------------------------------------------------------------------

def same_value(a, b) -> bool:
    """Equal with identical Python types, recursively (1 != 1.0 != True here); NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    return a == b


def assert_same_graph(a: Graph, b: Graph):
    assert (a.inputs, a.outputs, a.description) == (b.inputs, b.outputs, b.description)
    assert len(a.tensors) == len(b.tensors)
    for k, (s, t) in enumerate(zip(a.tensors, b.tensors)):
        what = f"tensor {k} {s.name}"
        assert (s.name, tuple(s.shape), np.dtype(s.dtype), s.is_variable) == \
            (t.name, tuple(t.shape), np.dtype(t.dtype), t.is_variable), what
        assert (s.quant is None) == (t.quant is None), what
        if s.quant is not None:
            assert t.quant.scale.dtype == np.float32 and t.quant.zero_point.dtype == np.int64, what
            assert s.quant.scale.tobytes() == np.asarray(t.quant.scale, np.float32).tobytes(), what
            np.testing.assert_array_equal(s.quant.zero_point, t.quant.zero_point, err_msg=what)
            assert s.quant.axis == t.quant.axis, what
        assert (s.data is None) == (t.data is None), what
        if s.data is not None:
            assert s.data.dtype == t.data.dtype and s.data.shape == t.data.shape, what
            assert s.data.tobytes() == t.data.tobytes(), what
            assert not t.data.flags.writeable, what
    assert len(a.nodes) == len(b.nodes)
    for m, n in zip(a.nodes, b.nodes):
        assert (m.op, m.inputs, m.outputs, m.intermediates, m.version, m.name) == \
            (n.op, n.inputs, n.outputs, n.intermediates, n.version, n.name)
        assert same_value(dict(m.options), dict(n.options)), (m.name, dict(m.options), dict(n.options))


# ---- round trips of the fixtures ---------------------------------------------------------------

@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_fixture_round_trip_identical_outputs(path, tmp_path):
    data = converted(path)
    f = tmp_path / "m.xnn"
    f.write_bytes(data)
    ref = xnn.Interpreter(model_path=path)
    from_file = xnn.Interpreter(model_path=str(f))
    from_bytes = xnn.Interpreter(model_content=data)
    for it in (from_file, from_bytes):
        for d, e in zip(it.get_input_details() + it.get_output_details(),
                        ref.get_input_details() + ref.get_output_details()):
            assert d["name"] == e["name"] and d["dtype"] == e["dtype"]
            np.testing.assert_array_equal(d["shape"], e["shape"])
            assert d["quantization"] == e["quantization"]
    for seed in (0, 1):  # twice: LSTM state carries over between invokes
        x = feeds_for(ref, seed)
        expect = ref(x)
        for it in (from_file, from_bytes):
            for got, exp in zip(it(x), expect):
                assert got.dtype == exp.dtype
                np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_fixture_graph_preserved_and_passes_idempotent(path):
    stored = graph_for_xnn(read_tflite(_read(path)))
    data = write_xnn(stored)
    back = read_xnn(data)
    assert_same_graph(compact_tensors(stored), back)  # what was written is what is read
    assert write_xnn(back) == data  # and writing it again gives the same bytes
    # loading the .xnn runs fold + passes again: the result is the .tflite's graph
    from_xnn, from_tflite = load_graph(model_content=data), load_graph(model_path=path)
    assert_same_graph(compact_tensors(from_tflite), compact_tensors(from_xnn))
    for g in (from_tflite, from_xnn, back if not any(n.op == "DEQUANTIZE" for n in back.nodes) else None):
        if g is None:
            continue
        assert fold_constants(g) is g
        for p in default_passes():
            assert p(g) is g, p.__name__
    ops = {n.op for n in back.nodes}
    if "detector" in path or "classifier" in path:
        assert "CHANNEL_SHUFFLE" in ops
    if "bilstm" in path:
        assert "BIDI_SEQUENCE_LSTM" in ops


def test_fp16_weights_stay_half_size():
    path = os.path.join(FIX, "detector_fp16.tflite")
    data = converted(path)
    g = read_xnn(data)
    half = [t for t in g.tensors if t.data is not None and t.dtype == np.float16]
    assert half and all(any(n.op == "DEQUANTIZE" and n.inputs[0] == i for n in g.nodes)
                        for i, t in enumerate(g.tensors) if t.data is not None and t.dtype == np.float16)
    assert len(data) < 1.1 * os.path.getsize(path)
    assert not any(n.op == "DEQUANTIZE" for n in load_graph(model_content=data).nodes)


def test_file_constants_are_memory_mapped_read_only_and_aligned(tmp_path):
    f = tmp_path / "m.xnn"
    f.write_bytes(converted(os.path.join(FIX, "classifier_float.tflite")))
    g = load_graph(model_path=str(f))
    consts = [t.data for t in g.tensors if t.data is not None and t.data.size]
    assert consts
    for a in consts:
        assert not a.flags.writeable
        assert a.ctypes.data % ALIGN == 0
        base = a
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def test_content_bytes_are_not_copied_and_bytearrays_are():
    data = converted(SMALL)
    g = read_xnn(data)
    arrays = [t.data for t in g.tensors if t.data is not None and t.data.size]
    buf = np.frombuffer(data, np.uint8)
    assert all(np.shares_memory(a, buf) for a in arrays)
    mutable = bytearray(data)
    g2 = read_xnn(mutable)
    before = [a.copy() for a in (t.data for t in g2.tensors if t.data is not None)]
    mutable[-64:] = bytes(64)
    for a, b in zip(before, (t.data for t in g2.tensors if t.data is not None)):
        np.testing.assert_array_equal(a, b)


def test_model_file_replaced_or_removed_while_loaded(tmp_path):
    f = tmp_path / "m.xnn"
    f.write_bytes(converted(SMALL))
    it = xnn.Interpreter(model_path=str(f))
    x = feeds_for(it, 3)
    expect = it(x)
    write_file(str(f), converted(os.path.join(FIX, "detector_float.tflite")))  # atomic replace
    np.testing.assert_array_equal(it(x)[0], expect[0])
    os.remove(f)
    np.testing.assert_array_equal(it(x)[0], expect[0])


def test_written_file_has_umask_permissions(tmp_path):
    f = tmp_path / "m.xnn"
    old = os.umask(0o022)
    try:
        write_file(str(f), converted(SMALL))
    finally:
        os.umask(old)
    assert (os.stat(f).st_mode & 0o777) == 0o644  # not mkstemp's 0600


# ---- options, quantization and dtypes round trip exactly ----------------------------------------

def _synthetic_graph() -> Graph:
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (3, 2, 2, 5)).astype(np.int8)
    tensors = (
        TensorSpec("x", (1, 4, 4, 5), np.dtype(np.float32)),
        TensorSpec("w", w.shape, np.dtype(np.int8), qp(np.array([0.1, 1e-30, 3.4e38], np.float32), 0, 0), w),
        TensorSpec("empty", (0, 3), np.dtype(np.float32), data=np.zeros((0, 3), np.float32)),
        TensorSpec("scalar", (), np.dtype(np.int64), data=np.array(-(2 ** 62), np.int64)),
        TensorSpec("flags", (5,), np.dtype(np.bool_), data=np.array([1, 0, 1, 1, 0], np.bool_)),
        TensorSpec("h", (2, 3), np.dtype(np.float16), data=rng.normal(0, 1, (2, 3)).astype(np.float16)),
        TensorSpec("d", (2,), np.dtype(np.float64), data=np.array([np.pi, -0.0])),
        TensorSpec("state", (1, 7), np.dtype(np.int16), qp(2.0 ** -15, 0), None, True),
        TensorSpec("y", (1, 4, 4, 3), np.dtype(np.int8), qp(0.0123, -128)),
        TensorSpec("ünï", (1,), np.dtype(np.uint8), qp(1.0, 255)),
    )
    options = {"lst": [1, 2, 3], "f": 0.1, "tiny": 5e-324, "neg0": -0.0, "t": True, "fl": False, "i": 0,
               "big": 2 ** 62, "nested": [[1.5, False], [], {"k": [None]}], "s": "é\"\\", "none": None,
               "inf": math.inf, "nan": math.nan, "np_f": np.float32(0.25), "np_i": np.int64(-3),
               "np_arr": np.array([1, 2], np.int32), "tuple": (4, 5)}
    nodes = (Node("CONV_2D", (0, 1, -1), (8,), frozen_options(options), version=3, name="#0 CONV_2D"),
             Node("CUSTOM:thing", (8, 7), (9,), name="#1 thing", intermediates=(2, 3, 4, 5, 6)))
    return Graph(tensors=tensors, nodes=nodes, inputs=(0,), outputs=(9,), description="synthetic ✓")


def test_synthetic_graph_round_trip_exact():
    g = _synthetic_graph()
    back = read_xnn(write_xnn(g))
    expect_opts = dict(g.nodes[0].options, np_f=0.25, np_i=-3, np_arr=[1, 2], tuple=[4, 5])
    expected = g.replace(nodes=(Node(**{**g.nodes[0].__dict__, "options": frozen_options(expect_opts)}),
                                g.nodes[1]))
    assert_same_graph(expected, back)
    assert back.tensors[7].is_variable and back.tensors[7].data is None
    assert back.tensors[1].quant.scale.tobytes() == np.array([0.1, 1e-30, 3.4e38], np.float32).tobytes()


def test_unreferenced_tensors_are_not_stored():
    g = _synthetic_graph()
    extra = TensorSpec("orphan", (1000,), np.dtype(np.float32), data=np.ones(1000, np.float32))
    g2 = g.replace(tensors=g.tensors[:2] + (extra,) + g.tensors[2:],
                   nodes=tuple(Node(**{**n.__dict__, "inputs": tuple(t + (t >= 2) for t in n.inputs),
                                       "outputs": tuple(t + (t >= 2) for t in n.outputs),
                                       "intermediates": tuple(t + (t >= 2) for t in n.intermediates)})
                               for n in g.nodes),
                   inputs=(0,), outputs=(10,))
    assert write_xnn(g2) == write_xnn(g)


@pytest.mark.parametrize("bad,match", [
    (lambda g: g.replace(tensors=(TensorSpec("x", (1,), np.dtype(object)),) + g.tensors[1:]), "dtype"),
    (lambda g: g.replace(nodes=(Node("ADD", (0,), (8,), frozen_options({"o": object()})),) + g.nodes[1:]),
     "cannot be stored"),
    (lambda g: g.replace(tensors=g.tensors[:2] + (TensorSpec("e", (4,), np.dtype(np.float32),
                                                             data=np.zeros(3, np.float32)),) + g.tensors[3:]),
     "3 elements"),
    (lambda g: g.replace(outputs=(99,)), "out of range"),
])
def test_write_rejects_what_it_cannot_store(bad, match):
    with pytest.raises(XnnError, match=match):
        write_xnn(bad(_synthetic_graph()))


# ---- magic, version, prefix --------------------------------------------------------------------

def _with_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4:]


def test_tflite_is_not_xnn():
    with pytest.raises(XnnError, match=r"not an \.xnn file.*TFLite model"):
        read_xnn(_read(SMALL))
    with pytest.raises(XnnError, match=r"not an \.xnn file"):
        read_xnn(b"hello")
    with pytest.raises(XnnError, match="must be bytes"):
        read_xnn("XNNF")


def test_newer_version_asks_to_upgrade(tmp_path):
    data = _with_u32(converted(SMALL), 4, FORMAT_VERSION + 1)
    with pytest.raises(XnnError, match=rf"version {FORMAT_VERSION + 1} was written by a newer xnn.*upgrade xnn"):
        xnn.Interpreter(model_content=data)
    f = tmp_path / "new.xnn"
    f.write_bytes(data[:12])  # the version is read before anything else, even from a stub
    with pytest.raises(XnnError, match="newer xnn"):
        xnn.Interpreter(model_path=str(f))


def test_version_1_files_still_load():
    """A format-1 file (no encoded constants, no flags) reads as before; version 1 knows no flags."""
    data = _with_u32(converted(SMALL, "inline"), 4, 1)
    x = feeds_for(xnn.Interpreter(model_path=SMALL), 0)
    for a, b in zip(xnn.Interpreter(model_content=data)(x), xnn.Interpreter(model_path=SMALL)(x)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(XnnError, match="unknown flags"):
        read_xnn(_with_u32(data, 36, 1))


@pytest.mark.parametrize("offset,value,match", [(4, 0, "format version 0"), (36, 4, "unknown flags"), (36, 3, "both header"),
                                                (16, 128, "weight section offset"),
                                                (8, 1 << 30, "does not fit")])
def test_bad_prefix_fields(offset, value, match):
    with pytest.raises(XnnError, match=match):
        xnn.Interpreter(model_content=_with_u32(converted(SMALL), offset, value))


def test_checksums_catch_flips():
    data = bytearray(converted(SMALL))
    h = bytearray(data)
    h[PREFIX_NBYTES + 5] ^= 1
    with pytest.raises(XnnError, match="header checksum"):
        read_xnn(bytes(h))
    w = bytearray(data)
    w[-1] ^= 0x80
    with pytest.raises(XnnError, match="weight section checksum"):
        read_xnn(bytes(w))


def test_truncated_and_extended():
    data = converted(SMALL)
    h_len = struct.unpack_from("<I", data, 8)[0]
    cuts = list(range(0, PREFIX_NBYTES + 2)) + [PREFIX_NBYTES + h_len // 2, PREFIX_NBYTES + h_len,
                                               len(data) // 2, len(data) - 64, len(data) - 1]
    for cut in cuts:
        with pytest.raises(XnnError):
            load_graph(model_content=data[:cut])
    with pytest.raises(XnnError, match="trailing bytes"):
        read_xnn(data + b"\0")


def test_random_bit_flips_always_detected():
    data = converted(SMALL)
    rng = np.random.default_rng(7)
    for _ in range(300):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=int(rng.integers(1, 4))):
            bad[pos] ^= 1 << int(rng.integers(0, 8))
        if bytes(bad) == data:
            continue
        with pytest.raises(XnnError):
            load_graph(model_content=bytes(bad))


def _split(data: bytes):
    h_len, w_off = struct.unpack_from("<I", data, 8)[0], struct.unpack_from("<Q", data, 16)[0]
    return data[PREFIX_NBYTES:PREFIX_NBYTES + h_len], data[w_off:]


@pytest.mark.parametrize("region", ["header", "weights"])
def test_fuzz_with_valid_checksums(region):
    """Flips that the checksums cannot catch (recomputed): load and run work or raise XnnError."""
    header, weights = _split(converted(SMALL))
    rng = np.random.default_rng(11 if region == "header" else 12)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(int(os.environ.get("XNN_FUZZ_TRIALS", 60))):
        h, w = bytearray(header), bytearray(weights)
        target = h if region == "header" else w
        for pos in rng.integers(0, len(target), size=int(rng.integers(1, 4))):
            target[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            it = xnn.Interpreter(model_content=pack(bytes(h), bytes(w)))
            it(feeds_for(it, 0))
            outcomes["ok"] += 1
        except XnnError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0 if region == "header" else outcomes["ok"] > 0


# ---- malformed headers with valid checksums ----------------------------------------------------

def _header_of(path=SMALL):
    header, weights = _split(converted(path, "inline"))
    return json.loads(header), weights


def _first(h, pred):
    return next(e for e in h["tensors"] if pred(e))


def _const(h):
    return _first(h, lambda e: e.get("data") and e["dtype"] == "int8" and e.get("quant")
                  and len(base64.b64decode(e["quant"]["scale"])) > 4)


def _set(path, value):
    """Mutation setting h[path...] = value (path items: keys/indices, or callables picking an entry)."""
    def mutate(h):
        obj = h
        for k in path[:-1]:
            obj = k(obj) if callable(k) else obj[k]
        obj[path[-1]] = value
    return mutate


def _nan_scale(h):
    q = _const(h)["quant"]
    q["scale"] = base64.b64encode(np.full(len(q["zero_point"]), np.nan, "<f4").tobytes()).decode()


def _wrong_axis(h):
    e = _const(h)
    n = len(e["quant"]["zero_point"])
    e["quant"]["axis"] = next(k for k, d in enumerate(e["shape"]) if d != n)


class New:
    """A mutation that returns a new header instead of changing it in place."""

    def __init__(self, fn):
        self.fn = fn


BAD_HEADERS = [
    ("top_list", New(lambda h: [h]), "must be a JSON object"),
    ("top_number", New(lambda h: 3), "must be a JSON object"),
    ("no_tensors", New(lambda h: {k: v for k, v in h.items() if k != "tensors"}), "lacks 'tensors'"),
    ("tensors_dict", _set(["tensors"], {}), "'tensors' must be list"),
    ("tensor_str", _set(["tensors", 0], "x"), "tensor 0 must be an object"),
    ("dtype_object", _set(["tensors", 0, "dtype"], "object"), "dtype 'object' is not one of"),
    ("dtype_missing", lambda h: h["tensors"][0].pop("dtype"), "lacks 'dtype'"),
    ("shape_negative", _set(["tensors", 0, "shape", 0], -1), "dimension must be an integer"),
    ("shape_float", _set(["tensors", 0, "shape", 0], 1.0), "dimension must be an integer"),
    ("shape_bool", _set(["tensors", 0, "shape", 0], True), "dimension must be an integer"),
    ("shape_rank", _set(["tensors", 0, "shape"], [1] * 9), "rank 9"),
    ("shape_huge", _set(["tensors", 0, "shape"], [1 << 20, 1 << 20]), "too large"),
    ("name_int", _set(["tensors", 0, "name"], 5), "'name' must be str"),
    ("variable_int", _set(["tensors", 0, "variable"], 1), "'variable' must be bool"),
    ("data_past_end", _set([_const, "data", 0], 1 << 20), "data offset must be"),
    ("data_negative", _set([_const, "data", 0], -64), "data offset must be"),
    ("data_misaligned", lambda h: _const(h)["data"].__setitem__(0, _const(h)["data"][0] + 1), "multiple of 64"),
    ("data_size", lambda h: _const(h)["data"].__setitem__(1, _const(h)["data"][1] - 1), "data bytes"),
    ("data_size_overflow", _set([_const, "data", 1], 1 << 40), "data size must be"),
    ("data_short", _set([_const, "data"], [0]), r"\[offset, nbytes\]"),
    ("data_str", _set([_const, "data"], "0,4"), r"\[offset, nbytes\]"),
    ("quant_str", _set([_const, "quant"], "q"), "quantization must be an object"),
    ("scale_not_b64", _set([_const, "quant", "scale"], "!!"), "not base64"),
    ("scale_list", _set([_const, "quant", "scale"], [0.1]), "the file has none"),
    ("scale_nan", _nan_scale, "finite"),
    ("scale_odd_bytes", _set([_const, "quant", "scale"], base64.b64encode(b"12345").decode()), "not float32"),
    ("zp_count", lambda h: _const(h)["quant"]["zero_point"].append(0), "zero points"),
    ("zp_huge", _set([_const, "quant", "zero_point", 0], 1 << 40), "32-bit"),
    ("axis_range", _set([_const, "quant", "axis"], 7), "axis 7 out of range"),
    ("axis_wrong_dim", _wrong_axis, "per-channel scales"),
    ("nodes_missing", lambda h: h.pop("nodes"), "lacks 'nodes'"),
    ("node_list", _set(["nodes", 0], []), "node 0 must be an object"),
    ("op_int", _set(["nodes", 0, "op"], 5), "'op' must be str"),
    ("op_empty", _set(["nodes", 0, "op"], ""), "op name of length 0"),
    ("input_range", lambda h: h["nodes"][0]["inputs"].__setitem__(0, len(h["tensors"])), "out of range"),
    ("input_minus2", _set(["nodes", 0, "inputs", 0], -2), "out of range"),
    ("input_float", _set(["nodes", 0, "inputs", 0], 0.0), "out of range"),
    ("output_absent", _set(["nodes", 0, "outputs", 0], -1), "out of range"),
    ("intermediate_range", _set(["nodes", 0, "intermediates"], [10 ** 6]), "out of range"),
    ("version_zero", _set(["nodes", 0, "version"], 0), "version must be"),
    ("version_str", _set(["nodes", 0, "version"], "1"), "'version' must be int"),
    ("options_list", _set(["nodes", 0, "options"], [1]), "'options' must be dict"),
    ("graph_input_range", _set(["inputs"], [99999]), "graph inputs"),
    ("graph_outputs_int", _set(["outputs"], 0), "'outputs' must be list"),
    ("description_int", _set(["description"], 1), "'description' must be str"),
]


@pytest.mark.parametrize("mutate,match", [b[1:] for b in BAD_HEADERS], ids=[b[0] for b in BAD_HEADERS])
def test_malformed_header_is_xnn_error(mutate, match):
    h, weights = _header_of()
    if isinstance(mutate, New):
        h = mutate.fn(h)
    else:
        mutate(h)
    with pytest.raises(XnnError, match=match):
        xnn.Interpreter(model_content=pack(h, weights))


@pytest.mark.parametrize("raw,match", [(b"\xff\xfe{}", "UTF-8 JSON"), (b"{oops", "UTF-8 JSON"),
                                       (b"[" * 200000, "JSON|nested"), (b"", "UTF-8 JSON"),
                                       (b'{"tensors": [], "nodes": [], "inputs": [], "outputs": [0]}',
                                        "out of range")])
def test_header_not_json_object(raw, match):
    with pytest.raises(XnnError, match=match):
        load_graph(model_content=pack(raw))


def test_semantic_errors_reach_the_interpreter_checks():
    h, weights = _header_of()
    h["nodes"][0]["op"] = "NOT_AN_OP"
    with pytest.raises(XnnError, match="unsupported op NOT_AN_OP"):
        xnn.Interpreter(model_content=pack(h, weights))
    h, weights = _header_of()
    h["nodes"] = h["nodes"][1:]  # the first node's output is never written
    with pytest.raises(XnnError, match="before anything writes it"):
        xnn.Interpreter(model_content=pack(h, weights))


def test_file_starts_with_magic_and_version():
    data = converted(SMALL)
    assert data[:4] == MAGIC and struct.unpack_from("<I", data, 4)[0] == FORMAT_VERSION
    assert struct.unpack_from("<Q", data, 16)[0] % ALIGN == 0


def test_public_convert_api(tmp_path):
    import xnn

    src = os.path.join(os.path.dirname(__file__), "fixtures", "detector_int8.tflite")
    dst = tmp_path / "d.xnn"
    n = xnn.convert(src, str(dst))
    assert n == dst.stat().st_size > 0
    x = np.random.default_rng(0).integers(-128, 128, (1, 64, 64, 3)).astype(np.int8)
    for a, b in zip(xnn.load(src)(x), xnn.load(str(dst))(x)):
        np.testing.assert_array_equal(a, b)
