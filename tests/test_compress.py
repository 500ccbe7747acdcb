"""Weight compression (xnn/converter/compress.py) and encoded constants in .xnn files: every codec
round-trips (lossless ones exactly, lossy ones to exactly what the encoder chose), the steps
compose, files shrink, compressed models run close to the uncompressed ones, corrupt encodings are
XnnErrors, and the `xnn convert` flags work end to end."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xnn
from xnn import XnnError
from xnn.converter.compress import (CompressOptions, _channel_rows, compress, kmeans_1d, load_calibration,
                                    output_error, random_feeds, weight_targets)
from xnn.converter.tflite_reader import read_tflite
from xnn.converter.xnn_format import (FLAG_HEADER_LZMA, FLAG_HEADER_ZLIB, FORMAT_VERSION, PREFIX_NBYTES, decode_tensor, graph_for_xnn,
                                      pack, pack_uint, read_header, read_xnn, unpack_uint, write_xnn)
from xnn.interpreter import load_graph

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
CLS_F = os.path.join(FIX, "classifier_float.tflite")
CLS_I = os.path.join(FIX, "classifier_int8.tflite")
DET_I = os.path.join(FIX, "detector_int8.tflite")
DET_F16 = os.path.join(FIX, "detector_fp16.tflite")
LSTM_F = os.path.join(FIX, "seq", "crnn_lstm_float.tflite")
LSTM_I = os.path.join(FIX, "seq", "crnn_lstm_int8.tflite")
BILSTM_I = os.path.join(FIX, "seq", "crnn_bilstm_int8.tflite")

_G: dict = {}


def stored(path):
    """The graph an .xnn stores for a fixture (cached)."""
    if path not in _G:
        with open(path, "rb") as f:
            _G[path] = graph_for_xnn(read_tflite(f.read()))
    return _G[path]


def run_pair(g, c, n=3):
    """Output errors of the compressed model against the uncompressed one on seeded random inputs."""
    ref = xnn.Interpreter(model_content=write_xnn(g))
    new = xnn.Interpreter(model_content=c.to_bytes())
    return output_error(ref, new, random_feeds(ref.get_input_details(), n))


def consts(g):
    return {t.name: t.data for t in g.tensors if t.data is not None}


def header_and_weights(data: bytes):
    h_len, w_off = struct.unpack_from("<I", data, 8)[0], struct.unpack_from("<Q", data, 16)[0]
    return read_header(data), data[w_off:]


def enc_entries(data: bytes):
    return [e for e in read_header(data)["tensors"] if "enc" in e]


# ---- codecs, checked against the format's own definition ----------------------------------------

def test_bit_packing_round_trip_and_padding():
    rng = np.random.default_rng(0)
    for bits in range(1, 9):
        v = rng.integers(0, 1 << bits, 37)
        buf = pack_uint(v, bits)
        assert len(buf) == (37 * bits + 7) // 8
        np.testing.assert_array_equal(unpack_uint(buf, 37, bits, "t"), v)
    # least-significant bit first: values 1, 2 at 2 bits -> bits 1,0 | 0,1 -> 0b1001
    assert pack_uint([1, 2], 2) == bytes([0b1001])
    with pytest.raises(XnnError, match="padding bits"):
        unpack_uint(bytes([0b10001001]), 2, 2, "t")


def test_mask_layout_decodes_as_specified():
    """A hand-built payload (bitmap LSB first + raw nonzeros in C order) decodes to the array."""
    w = np.array([[0, 3, 0], [-5, 0, 7]], np.int8)
    bits = [1 if x else 0 for x in w.ravel()]
    bitmap = bytes([sum(b << i for i, b in enumerate(bits))])
    payload = bitmap + np.array([3, -5, 7], np.int8).tobytes()
    got = decode_tensor({"layout": "mask", "count": 3}, payload, w.shape, np.int8, "t")
    np.testing.assert_array_equal(got, w)
    chan = decode_tensor({"layout": "channels", "axis": 1, "count": 2}, bytes([0b101]) +
                         np.array([1, 2, 3, 4], np.int8).tobytes(), (2, 3), np.int8, "t")
    np.testing.assert_array_equal(chan, [[1, 0, 2], [3, 0, 4]])


def test_palette_and_affine_decode_as_specified():
    book = np.array([[-4, 0, 2, 9], [1, 1, 1, 1]], np.int8)  # per channel along axis 0
    idx = [3, 0, 1, 2, 0, 3]
    payload = book.tobytes() + pack_uint(idx, 2)
    got = decode_tensor({"values": "palette", "bits": 2, "axis": 0}, payload, (2, 3), np.int8, "t")
    np.testing.assert_array_equal(got, [[9, -4, 0], [1, 1, 1]])
    params = np.array([[0.5, 0.25]], "<f4")  # shared (lo, step)
    got = decode_tensor({"values": "affine", "bits": 3, "shared": True}, params.tobytes() + pack_uint([0, 7, 4], 3),
                        (3,), np.float32, "t")
    np.testing.assert_array_equal(got, np.float32([0.5, 2.25, 1.5]))
    got = decode_tensor({"values": "affine", "bits": 3, "shared": True},
                        np.array([[-3.0, 2.5]], "<f4").tobytes() + pack_uint([0, 1, 7], 3), (3,), np.int8, "t")
    np.testing.assert_array_equal(got, [-3, np.rint(-0.5), np.rint(14.5)])  # half to even: -0, 14


def test_int8_affine_params_decode_as_specified():
    # (lo, hi) = (-7, 9) on axis 0 row 0, (5, 5) row 1; 2 bits: levels -7 + floor((2*16*q + 3) / 6)
    payload = np.array([[-7, 9], [5, 5]], np.int8).tobytes() + pack_uint([0, 1, 2, 3, 0, 3], 2)
    enc = {"values": "affine", "bits": 2, "axis": 0, "params": "int8"}
    got = decode_tensor(enc, payload, (2, 3), np.int8, "t")
    np.testing.assert_array_equal(got, [[-7, -2, 4], [5, 5, 5]])  # levels -7, -2, 4, 9; row 1 constant
    with pytest.raises(XnnError, match="lo <= hi"):
        decode_tensor(enc, np.array([[3, 2], [0, 0]], np.int8).tobytes() + pack_uint([0] * 6, 2), (2, 3), np.int8, "t")
    with pytest.raises(XnnError, match="affine values of an int8 tensor"):
        decode_tensor(enc, b"\0" * 4 + pack_uint([0] * 6, 2), (2, 3), np.float32, "t")
    with pytest.raises(XnnError, match="affine values of an int8 tensor"):
        decode_tensor({"values": "palette", "bits": 2, "axis": 0, "params": "int8"}, b"", (2, 3), np.int8, "t")


@settings(deadline=None)
@given(st.integers(1, 6), st.data())
def test_int8_uniform_codes_take_the_nearest_level(bits, data):
    """The int8 uniform encoder: per channel (min, max) as int8 params and each weight at its nearest
    level, against a brute-force search over all K levels."""
    from xnn.converter.compress import _affine
    from xnn.converter.xnn_format import affine_i8_levels

    C, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 12))
    w = np.array(data.draw(st.lists(st.integers(-128, 127), min_size=C * n, max_size=C * n)), np.int8).reshape(C, n)
    groups = np.repeat(np.arange(C), n)
    v = _affine(w.reshape(-1), groups, C, bits, np.dtype(np.int8))
    assert v.desc == {"values": "affine", "bits": bits, "params": "int8"}
    got = decode_tensor({**v.desc, "axis": 0}, v.payload, (C, n), np.int8, "t").astype(np.int64)
    K = 1 << bits
    for c in range(C):
        lo, hi = int(w[c].min()), int(w[c].max())
        levels = affine_i8_levels(lo, hi, np.arange(K), bits)
        assert levels[0] == lo and levels[-1] == hi
        best = np.abs(levels[None, :] - w[c].astype(np.int64)[:, None]).min(axis=1)
        np.testing.assert_array_equal(np.abs(got[c] - w[c]), best)


def test_lowrank_int8_decodes_as_specified():
    rng = np.random.default_rng(1)
    U = rng.integers(-127, 128, (5, 2)).astype(np.int8)
    V = rng.integers(-127, 128, (2, 4)).astype(np.int8)
    su, sv = np.float32([0.01] * 4 + [1.0]), np.float32([0.02, 0.005, 0.01, 0.03])  # the last row clips at ±127
    payload = U.tobytes() + V.tobytes() + su.tobytes() + sv.tobytes()
    got = decode_tensor({"values": "lowrank", "rank": 2}, payload, (5, 4), np.int8, "t")
    expect = np.zeros((5, 4), np.int64)
    for i in range(5):
        for j in range(4):
            p = sum(int(U[i, k]) * int(V[k, j]) for k in range(2))
            expect[i, j] = min(127, max(-127, round(float(su[i]) * float(sv[j]) * p)))
    assert np.abs(expect).max() == 127  # the clip is exercised
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("codec", ["zlib", "lzma"])
def test_entropy_coding_is_lossless(codec):
    g = stored(LSTM_I)
    c = compress(g, CompressOptions(entropy=codec))
    data = c.to_bytes()
    back = read_xnn(data)
    assert struct.unpack_from("<I", data, 36)[0] == {"zlib": FLAG_HEADER_ZLIB, "lzma": FLAG_HEADER_LZMA}[codec]
    assert enc_entries(data) and all(e["enc"]["entropy"] == codec for e in enc_entries(data))
    a, b = consts(g), consts(back)
    assert a.keys() >= b.keys()
    for name, arr in b.items():
        assert arr.dtype == a[name].dtype and arr.tobytes() == a[name].tobytes(), name
    assert len(data) < len(write_xnn(g))
    x = random_feeds(xnn.Interpreter(model_content=data).get_input_details(), 1)[0]
    for p, q in zip(xnn.Interpreter(model_path=LSTM_I)(x), xnn.Interpreter(model_content=data)(x)):
        np.testing.assert_array_equal(p, q)


def test_sparse_encoding_is_lossless_and_pruning_exact():
    g = stored(CLS_I)
    c = compress(g, CompressOptions(prune=0.5))
    back = read_xnn(c.to_bytes())
    b = consts(back)
    targets = weight_targets(g)
    for t in targets:
        name = g.tensors[t].name
        before, after = np.asarray(g.tensors[t].data), b[name]
        np.testing.assert_array_equal(after, np.asarray(c.graph.tensors[t].data))  # what the encoder chose
        zero = after == 0
        # the pruned weights are exactly the round(0.5 n) smallest |q·scale| (plus original zeros)
        assert zero.sum() >= round(0.5 * before.size)
        np.testing.assert_array_equal(after[~zero], before[~zero])
        scale = np.asarray(g.tensors[t].quant.scale, np.float64)
        shape = [1] * before.ndim
        if scale.size > 1:
            shape[g.tensors[t].quant.axis] = scale.size
        mag = np.abs(before * scale.reshape(shape))
        if (~zero).any() and (zero & (before != 0)).any():
            assert mag[zero & (before != 0)].max() <= mag[~zero].min()
    biases = [n.inputs[2] for n in g.nodes if n.op in ("CONV_2D", "FULLY_CONNECTED") and len(n.inputs) > 2
              and n.inputs[2] >= 0]
    assert biases
    for t in biases:
        np.testing.assert_array_equal(b[g.tensors[t].name], g.tensors[t].data)  # biases stay


def test_channel_pruning_zeroes_whole_channels():
    g = stored(DET_I)
    c = compress(g, CompressOptions(prune=0.5, prune_channels=True))
    back = consts(read_xnn(c.to_bytes()))
    for t, tg in weight_targets(g).items():
        w = back[g.tensors[t].name]
        per = np.moveaxis(w, tg.axis, 0).reshape(w.shape[tg.axis], -1)
        dead = ~per.any(axis=1)
        if "feeds an output" in c.notes.get(t, ""):  # output heads keep their channels
            np.testing.assert_array_equal(w, g.tensors[t].data)
            continue
        assert dead.sum() >= round(0.5 * w.shape[tg.axis])
        orig = np.moveaxis(np.asarray(g.tensors[t].data), tg.axis, 0).reshape(per.shape)
        np.testing.assert_array_equal(per[~dead], orig[~dead])
    assert any(e["enc"].get("layout") == "channels" for e in enc_entries(c.to_bytes()))


def test_int8_kmeans_weights_are_their_nearest_int8_centroids():
    g = stored(CLS_I)
    c = compress(g, CompressOptions(weight_bits=4, codebook="channel"))
    data = c.to_bytes()
    back = consts(read_xnn(data))
    palette = {e["name"] for e in enc_entries(data) if e["enc"].get("values") == "palette"}
    coded = 0
    for t, tg in weight_targets(g).items():
        if g.tensors[t].name not in palette:  # coding would not have been smaller: stored exactly
            np.testing.assert_array_equal(back[g.tensors[t].name], g.tensors[t].data)
            continue
        w0 = np.moveaxis(np.asarray(g.tensors[t].data), tg.axis, 0)
        w1 = np.moveaxis(back[g.tensors[t].name], tg.axis, 0)
        assert w1.dtype == np.int8
        for orig, dec in zip(w0.reshape(len(w0), -1), w1.reshape(len(w1), -1)):
            levels = np.unique(dec)
            assert levels.size <= 16
            # every weight took the nearest level of its channel's codebook
            dist = np.abs(orig[:, None].astype(np.int64) - levels[None, :].astype(np.int64))
            assert np.all(np.abs(orig.astype(np.int64) - dec) == dist.min(axis=1))
            if np.unique(orig).size <= 16:
                np.testing.assert_array_equal(dec, orig)  # few distinct values: exact
        coded += 1
    assert coded >= 2


def test_float_kmeans_and_uniform_codes():
    g = stored(CLS_F)
    for codec in ("kmeans", "uniform"):
        c = compress(g, CompressOptions(weight_bits=3, codec=codec))
        back = consts(read_xnn(c.to_bytes()))
        for t, tg in weight_targets(g).items():
            w0 = np.asarray(g.tensors[t].data)
            w1 = back[g.tensors[t].name]
            assert w1.dtype == np.float32
            np.testing.assert_array_equal(w1, c.graph.tensors[t].data)
            if w1.tobytes() == w0.tobytes():
                continue  # coding would not have been smaller: kept exact
            if codec == "uniform":  # per channel: at most 8 levels, each weight within step/2
                for o, d in zip(np.moveaxis(w0, tg.axis, 0).reshape(w0.shape[tg.axis], -1),
                                np.moveaxis(w1, tg.axis, 0).reshape(w1.shape[tg.axis], -1)):
                    assert np.unique(d).size <= 8
                    step = (o.max() - o.min()) / 7
                    assert np.abs(o - d).max() <= step / 2 * (1 + 1e-4) + 1e-7


def test_kmeans_1d_properties():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 500)
    a = kmeans_1d(x, 8, np.random.default_rng(5))
    b = kmeans_1d(x, 8, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)  # seeded: deterministic
    assert np.all(np.diff(a) >= 0) and a.size == 8
    # Lloyd converged: each centroid is the mean of the points nearest to it
    near = np.abs(x[:, None] - a[None]).argmin(axis=1)
    for j in range(8):
        if (near == j).any():
            assert abs(x[near == j].mean() - a[j]) < 1e-9
    # better than uniform levels over the range
    lv = np.linspace(x.min(), x.max(), 8)
    assert (np.abs(x[:, None] - a[None]).min(1) ** 2).mean() < (np.abs(x[:, None] - lv[None]).min(1) ** 2).mean()
    np.testing.assert_array_equal(kmeans_1d(np.array([3.0, 1.0, 3.0]), 4, np.random.default_rng(0)), [1, 3, 3, 3])


def test_int8_8bit_codes_are_lossless_and_bit_exact():
    g = stored(DET_I)
    c = compress(g, CompressOptions(weight_bits=8, codebook="tensor"))
    assert all(r["max_abs"] == 0 for r in run_pair(g, c, 2))


# ---- low rank ----------------------------------------------------------------------------------

def test_float_fc_split_into_two_fcs():
    g = stored(CLS_F)
    c = compress(g, CompressOptions(low_rank=4))
    fcs = [n for n in c.graph.nodes if n.op == "FULLY_CONNECTED"]
    split = [n for n in fcs if "/lowrank." in n.name]
    assert len(split) >= 2 and len(c.graph.nodes) == len(g.nodes) + len(split) // 2
    errs = run_pair(g, c)
    assert all(np.isfinite(r["rel_l2"]) for r in errs)
    # the pair computes x·B^T·A^T with A·B the rank-4 SVD of W: check against numpy
    first = next(n for n in split if n.name.endswith(".0"))
    second = next(n for n in split if n.name == first.name[:-1] + "1")
    orig = next(n for n in g.nodes if n.name == first.name.split("/lowrank.")[0])
    W = np.asarray(g.tensors[orig.inputs[1]].data, np.float64)
    AB = np.asarray(c.graph.tensors[second.inputs[1]].data, np.float64) @ \
        np.asarray(c.graph.tensors[first.inputs[1]].data, np.float64)
    s = np.linalg.svd(W, compute_uv=False)
    assert abs(np.linalg.norm(W - AB) - np.sqrt((s[4:] ** 2).sum())) < 1e-4 * np.linalg.norm(W)
    assert dict(first.options)["fused_activation_function"] == 0
    assert dict(second.options) == dict(orig.options)


def test_int8_fc_and_lstm_low_rank_is_storage_only():
    for path in (CLS_I, LSTM_F):
        g = stored(path)
        c = compress(g, CompressOptions(low_rank=2))
        assert [n.op for n in c.graph.nodes if n.op != "FULLY_CONNECTED"] == \
            [n.op for n in g.nodes if n.op != "FULLY_CONNECTED"]  # the LSTM stays one op
        if path == CLS_I:  # int8 FCs are not split
            assert len(c.graph.nodes) == len(g.nodes)
        data = c.to_bytes()
        lr = [e for e in enc_entries(data) if e["enc"].get("values") == "lowrank"]
        assert lr, path
        back = consts(read_xnn(data))
        for e in lr:
            w = back[e["name"]]
            if w.dtype != np.int8:  # int8: rounded after the product, so only approximately rank 2
                s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
                assert s[2:].max() < 1e-5 * s[0]
            assert w.dtype == np.dtype(e["dtype"])
        assert all(np.isfinite(r["rel_l2"]) for r in run_pair(g, c, 2))


def test_energy_fraction_picks_enough_rank():
    g = stored(LSTM_F)
    c = compress(g, CompressOptions(low_rank=0.999))
    for e in enc_entries(c.to_bytes()):
        assert e["enc"].get("values") != "lowrank" or e["enc"]["rank"] >= 1


# ---- composition, sizes, accuracy --------------------------------------------------------------

def test_prune_4bit_entropy_compose():
    g = stored(CLS_F)
    opts = CompressOptions(prune=0.5, weight_bits=4, entropy="zlib")
    c = compress(g, opts)
    data = c.to_bytes()
    encs = enc_entries(data)
    assert any(e["enc"].get("layout") == "mask" and e["enc"].get("values") == "palette" for e in encs)
    assert any(e["enc"].get("entropy") == "zlib" for e in encs)
    back = consts(read_xnn(data))
    for t in weight_targets(g):
        w = back[g.tensors[t].name]
        np.testing.assert_array_equal(w, c.graph.tensors[t].data)
        assert (w == 0).mean() >= 0.5 - 1e-9
    assert compress(g, opts).to_bytes() == data  # deterministic
    plain = len(write_xnn(g))
    bits4 = len(compress(g, CompressOptions(weight_bits=4)).to_bytes())
    assert len(data) < bits4 < plain / 4
    assert os.path.getsize(CLS_F) / len(data) > 8


def test_sizes_shrink_as_expected():
    g = stored(LSTM_I)
    n_w = sum(g.tensors[t].size for t in weight_targets(g))
    plain = len(write_xnn(g))
    pruned = len(compress(g, CompressOptions(prune=0.75)).to_bytes())
    # int8 weights: n bytes -> about n/8 (mask) + n/4 (nonzeros) + descriptors
    assert plain - pruned > 0.55 * n_w
    sizes = [len(compress(g, CompressOptions(weight_bits=b, codebook="tensor")).to_bytes()) for b in (2, 4, 6)]
    assert sizes[0] < sizes[1] < sizes[2] < plain
    assert plain - sizes[1] > 0.4 * n_w  # 4-bit indices: about half the weight bytes saved


def test_error_shrinks_with_more_bits_and_models_stay_close():
    g = stored(CLS_F)
    errs = {b: run_pair(g, compress(g, CompressOptions(weight_bits=b, codec="uniform")), 2)[0]["rel_l2"]
            for b in (2, 4, 7)}
    assert errs[7] < errs[4] < errs[2]
    assert errs[4] < 0.05  # measured about 2e-4 on this untrained fixture's near-uniform softmax
    g = stored(LSTM_F)
    e = run_pair(g, compress(g, CompressOptions(prune=0.3, weight_bits=5, entropy="lzma")), 2)[0]
    assert e["rel_l2"] < 0.1


def test_fp16_weights_compress_through_dequantize():
    g = stored(DET_F16)
    c = compress(g, CompressOptions(prune=0.25, weight_bits=4))
    data = c.to_bytes()
    half = [e for e in enc_entries(data) if e["dtype"] == "float16"]
    assert half and any(e["enc"].get("values") == "palette" for e in half)
    assert not any(n.op == "DEQUANTIZE" for n in load_graph(model_content=data).nodes)
    assert all(np.isfinite(r["rel_l2"]) for r in run_pair(g, c, 1))


def test_bidirectional_lstm_compresses_and_runs():
    g = stored(BILSTM_I)
    c = compress(g, CompressOptions(weight_bits=6, entropy="zlib"))
    assert len(c.to_bytes()) < len(write_xnn(g))
    assert all(np.isfinite(r["rel_l2"]) for r in run_pair(g, c, 1))


def test_options_are_checked():
    for bad in (dict(prune=1.0), dict(prune=-0.1), dict(weight_bits=9), dict(weight_bits=0),
                dict(codec="huffman"), dict(low_rank=0), dict(low_rank=2.5), dict(entropy="gzip"),
                dict(prune_channels=True), dict(codebook="row")):
        with pytest.raises(XnnError):
            compress(stored(DET_I), CompressOptions(**bad))


# ---- corrupt encodings -------------------------------------------------------------------------

def _compressed_parts(opts=CompressOptions(prune=0.5, weight_bits=4, entropy="zlib"), path=DET_I):
    data = compress(stored(path), opts).to_bytes()
    return header_and_weights(data)


def _first_enc(h, pred=lambda e: True):
    return next(e for e in h["tensors"] if "enc" in e and pred(e["enc"]))


BAD_ENCODINGS = [
    ("codec_name", lambda h: _first_enc(h).__setitem__("enc", {**_first_enc(h)["enc"], "entropy": "brotli"}),
     "entropy codec 'brotli'"),
    ("values_name", lambda h: _first_enc(h)["enc"].__setitem__("values", "huffman"), "values codec"),
    ("layout_name", lambda h: _first_enc(h)["enc"].__setitem__("layout", "csr"), "layout 'csr'"),
    ("unknown_key", lambda h: _first_enc(h)["enc"].__setitem__("level", 9), "unknown encoding key"),
    ("enc_not_object", lambda h: _first_enc(h).__setitem__("enc", [1]), "'enc' must be an object"),
    ("size_mismatch", lambda h: _first_enc(h, lambda e: "size" in e)["enc"].__setitem__(
        "size", _first_enc(h, lambda e: "size" in e)["enc"]["size"] + 1), "enc size"),
    ("size_missing", lambda h: _first_enc(h, lambda e: "size" in e)["enc"].pop("size"), "lacks 'size'"),
    ("size_without_entropy", lambda h: _first_enc(h, lambda e: "size" not in e)["enc"].__setitem__("size", 3),
     "only for entropy"),
    ("rank_on_palette", lambda h: _first_enc(h, lambda e: "bits" in e)["enc"].__setitem__("rank", 1), "'rank'"),
    ("bits_range", lambda h: _first_enc(h, lambda e: "bits" in e)["enc"].__setitem__("bits", 9), "bits"),
    ("bits_str", lambda h: _first_enc(h, lambda e: "bits" in e)["enc"].__setitem__("bits", "4"), "bits"),
    ("count_range", lambda h: _first_enc(h, lambda e: "count" in e)["enc"].__setitem__("count", 10 ** 9), "count"),
    ("count_missing", lambda h: _first_enc(h, lambda e: "count" in e)["enc"].pop("count"), "'count' is required"),
    ("axis_range", lambda h: _first_enc(h, lambda e: "axis" in e)["enc"].__setitem__("axis", 7), "axis"),
    ("axis_negative", lambda h: _first_enc(h, lambda e: "axis" in e)["enc"].__setitem__("axis", -1), "axis"),
    ("shared_int", lambda h: _first_enc(h, lambda e: "bits" in e)["enc"].__setitem__("shared", 1), "'shared'"),
    ("dtype_int32_palette", lambda h: _first_enc(h, lambda e: "bits" in e).__setitem__("dtype", "int32"),
     "need a dtype"),
    ("shape_changed", lambda h: _first_enc(h, lambda e: "bits" in e and "size" not in e)["shape"].__setitem__(1, 9),
     "encoding needs"),
    ("scalar", lambda h: _first_enc(h).__setitem__("shape", []), "scalar"),
    ("huge", lambda h: _first_enc(h, lambda e: "bits" not in e).__setitem__("shape", [1 << 16, 1 << 15]),
     "above the"),
    ("nbytes_past_end", lambda h: _first_enc(h)["data"].__setitem__(1, 1 << 40), "data size"),
]


@pytest.mark.parametrize("mutate,match", [b[1:] for b in BAD_ENCODINGS], ids=[b[0] for b in BAD_ENCODINGS])
def test_malformed_encoding_is_xnn_error(mutate, match):
    h, w = _compressed_parts()
    mutate(h)
    with pytest.raises(XnnError, match=match):
        xnn.Interpreter(model_content=pack(h, w))


def _replace_payload(h, w, entry, payload):
    """Header and weights with `entry`'s stored bytes replaced (appended at the end)."""
    w = bytes(w)
    entry["data"] = [len(w), len(payload)]
    return h, w + payload


def test_corrupt_streams_are_xnn_errors():
    h, w = _compressed_parts(CompressOptions(prune=0.5, entropy="zlib"), CLS_F)
    e = _first_enc(h, lambda d: "entropy" in d and d.get("layout") == "mask")
    off, n = e["data"]
    good = zlib.decompress(w[off:off + n])
    assert e["enc"]["size"] == len(good)
    cases = {
        "truncated": w[off:off + n - 3],
        "garbage": bytes(i % 251 for i in range(n)),
        "bomb": zlib.compress(good + bytes(1 << 20)),  # inflates far past the declared size
        "too_short": zlib.compress(good[:-1]),
        "trailing": w[off:off + n] + b"xyz",
        "empty": b"",
    }
    bad_mask = bytearray(good)
    bad_mask[0] ^= 1  # decodes, but the mask no longer has `count` bits set
    cases["mask_count"] = zlib.compress(bytes(bad_mask))
    for name, payload in cases.items():
        hh = json.loads(json.dumps(h))
        ent = next(x for x in hh["tensors"] if x["name"] == e["name"])
        hh, ww = _replace_payload(hh, w, ent, payload)
        with pytest.raises(XnnError, match="corrupt .xnn file: tensor"):
            read_xnn(pack(hh, ww))


def test_raw_payload_length_and_padding_checked():
    h, w = _compressed_parts(CompressOptions(prune=0.5, weight_bits=3))
    e = _first_enc(h, lambda d: d.get("layout") == "mask")
    off, n = e["data"]
    for payload, match in ((w[off:off + n - 1], "data bytes"), (w[off:off + n] + b"\0", "data bytes")):
        hh = json.loads(json.dumps(h))
        ent = next(x for x in hh["tensors"] if x["name"] == e["name"])
        hh, ww = _replace_payload(hh, w, ent, payload)
        with pytest.raises(XnnError, match=match):
            read_xnn(pack(hh, ww))
    count = e["enc"]["count"]
    nel = int(np.prod(e["shape"]))
    if nel % 8:  # a set bit past the last element
        p = bytearray(w[off:off + n])
        p[(nel + 7) // 8 - 1] |= 0x80
        hh = json.loads(json.dumps(h))
        ent = next(x for x in hh["tensors"] if x["name"] == e["name"])
        hh, ww = _replace_payload(hh, w, ent, bytes(p))
        with pytest.raises(XnnError, match="padding bits|bits set"):
            read_xnn(pack(hh, ww))
    assert count <= nel


def test_int8_nonfinite_parameters_rejected():
    with pytest.raises(XnnError, match="finite"):
        decode_tensor({"values": "affine", "bits": 2, "shared": True},
                      np.float32([np.nan, 1]).tobytes() + bytes(1), (4,), np.int8, "t")
    payload = bytes(2 + 2) + np.float32([np.inf, 1]).tobytes() + np.float32([1, 1]).tobytes()
    with pytest.raises(XnnError, match="finite"):
        decode_tensor({"values": "lowrank", "rank": 1}, payload, (2, 2), np.int8, "t")


def test_encodings_rejected_in_version_1_files():
    h, w = _compressed_parts()
    data = bytearray(pack(h, w))
    struct.pack_into("<I", data, 4, 1)
    with pytest.raises(XnnError, match="version 1"):
        read_xnn(bytes(data))


def test_compressed_header_corruption():
    data = compress(stored(DET_I), CompressOptions(entropy="zlib")).to_bytes()
    h_len = struct.unpack_from("<I", data, 8)[0]
    hdr = data[PREFIX_NBYTES:PREFIX_NBYTES + h_len]
    weights = data[struct.unpack_from("<Q", data, 16)[0]:]

    def with_header(raw):
        w_off = (PREFIX_NBYTES + len(raw) + 63) // 64 * 64
        prefix = struct.pack("<4sIIIQQII", b"XNNF", FORMAT_VERSION, len(raw), zlib.crc32(raw), w_off, len(weights),
                             zlib.crc32(weights), FLAG_HEADER_ZLIB)
        return prefix + raw + bytes(w_off - PREFIX_NBYTES - len(raw)) + weights

    assert with_header(hdr) == data
    for bad in (hdr[:3], struct.pack("<I", 1 << 30) + hdr[4:], struct.pack("<I", 10) + hdr[4:],
                hdr[:4] + b"junk" + hdr[8:], hdr[:-2], hdr + b"x"):
        with pytest.raises(XnnError, match="corrupt"):
            read_xnn(with_header(bad))


def test_fuzzed_compressed_weights_never_crash():
    """Flips in the weight section with the checksum recomputed: load works or raises XnnError."""
    h, w = _compressed_parts(CompressOptions(prune=0.5, weight_bits=3, entropy="zlib"))
    h2, w2 = _compressed_parts(CompressOptions(prune=0.4, prune_channels=True, weight_bits=5, codec="uniform"))
    rng = np.random.default_rng(5)
    seen = set()
    for hh, ww in ((h, w), (h2, w2)):
        for _ in range(40):
            b = bytearray(ww)
            for pos in rng.integers(0, len(b), size=int(rng.integers(1, 3))):
                b[pos] ^= 1 << int(rng.integers(0, 8))
            try:
                read_xnn(pack(hh, bytes(b)))
                seen.add("ok")
            except XnnError:
                seen.add("error")
    assert "error" in seen


# ---- calibration data --------------------------------------------------------------------------

def _details(path=CLS_I):
    return xnn.Interpreter(model_path=path).get_input_details()


def test_calibration_npy_npz_and_stacks(tmp_path):
    d = _details()  # int8 [1, 32, 32, 1]
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.uniform(0, 1, (32, 32, 1)).astype(np.float32))  # no batch, float: quantized
    np.save(tmp_path / "b.npy", rng.integers(-128, 128, (3, 32, 32, 1)).astype(np.int8))  # a stack of 3
    np.savez(tmp_path / "c.npz", **{d[0]["name"]: rng.integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)})
    (tmp_path / "README.txt").write_text("ignored")
    feeds = load_calibration(str(tmp_path), d)
    assert len(feeds) == 5 and all(f[0].dtype == np.int8 and f[0].shape == (1, 32, 32, 1) for f in feeds)
    s, z = d[0]["quantization"]
    np.testing.assert_array_equal(feeds[0][0], np.clip(np.rint(np.load(tmp_path / "a.npy") / s) + z,
                                                       -128, 127).astype(np.int8)[None])
    assert len(load_calibration(str(tmp_path), d, limit=2)) == 2


def test_calibration_images(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    d = _details(CLS_F)  # float [1, 32, 32, 1]
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    feeds = load_calibration(str(tmp_path), d)
    assert feeds[0][0].shape == (1, 32, 32, 1) and feeds[0][0].dtype == np.float32
    assert 0 <= feeds[0][0].min() and feeds[0][0].max() <= 1
    (tmp_path / "y.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(XnnError, match="cannot read calibration image"):
        load_calibration(str(tmp_path), d)


@pytest.mark.parametrize("setup,match", [
    (lambda p: None, "holds no"),
    (lambda p: np.save(p / "x.npy", np.zeros((1, 31, 32, 1), np.float32)), "does not match"),
    (lambda p: np.save(p / "x.npy", np.array(["a"] * 4)), "not numeric"),
    (lambda p: (p / "x.npy").write_bytes(b"\x93NUMPY garbage"), "cannot read calibration file"),
    (lambda p: (p / "x.npy").write_bytes(b"hello"), "not a .npy"),
    (lambda p: (p / "x.npz").write_bytes(b"PK garbage"), "cannot read calibration file"),
    (lambda p: np.save(p / "x.npy", np.full((1, 32, 32, 1), 300, np.int32)), "outside int8"),
])
def test_bad_calibration_data(tmp_path, setup, match):
    setup(tmp_path)
    with pytest.raises(XnnError, match=match):
        load_calibration(str(tmp_path), _details())


def test_missing_calibration_dir(tmp_path):
    with pytest.raises(XnnError, match="does not exist"):
        load_calibration(str(tmp_path / "nope"), _details())


# ---- the command line --------------------------------------------------------------------------

def cli(*args):
    return subprocess.run([sys.executable, "-m", "xnn.cli", *args], capture_output=True, text=True)


def test_cli_compress_report_random_inputs(tmp_path):
    out = tmp_path / "m.xnn"
    r = cli("convert", CLS_F, "-o", str(out), "--prune", "0.5", "--weight-bits", "4", "--entropy",
            "--low-rank", "8", "--report")
    assert r.returncode == 0, r.stderr
    assert "[3/4] compressed" in r.stderr and f"[4/4] wrote {out}" in r.stderr and "k-means" in r.stderr
    assert "stored as" in r.stdout and "kmeans4" in r.stdout and "zlib" in r.stdout and "low-rank" in r.stdout
    assert f"-> {out.stat().st_size:,} bytes (" in r.stdout
    assert "random inputs" in r.stdout and "relative L2" in r.stdout
    assert os.path.getsize(CLS_F) / out.stat().st_size > 10
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)
    y = xnn.Interpreter(model_path=str(out))(x)[0]
    assert y.shape == (1, 12) and np.isfinite(y).all()


def test_cli_compress_with_calibration(tmp_path):
    cal = tmp_path / "cal"
    cal.mkdir()
    for i in range(2):
        np.save(cal / f"{i}.npy", np.random.default_rng(i).uniform(0, 1, (1, 16, 32, 1)).astype(np.float32))
    out = tmp_path / "m.xnn"
    r = cli("convert", LSTM_I, "-o", str(out), "--weight-bits", "5", "--weight-codec", "uniform",
            "--prune", "0.3", "--prune-channels", "--entropy", "lzma", "--report", "--calib", str(cal))
    assert r.returncode == 0, r.stderr
    assert "2 calibration samples" in r.stdout and "random" not in r.stdout
    assert "uniform5" in r.stdout and "channels zero" in r.stdout


@pytest.mark.parametrize("args,match", [
    (("--prune", "1.5"), "--prune must be"),
    (("--low-rank", "0"), "--low-rank must be"),
    (("--prune-channels",), "needs --prune"),
    (("--weight-bits", "4", "--report", "--calib", "/nonexistent/dir"), "does not exist"),
])
def test_cli_bad_compression_args(tmp_path, args, match):
    r = cli("convert", DET_I, "-o", str(tmp_path / "o.xnn"), *args)
    assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("xnn: error:") and match in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o.xnn").exists()


def test_cli_bad_calibration_after_writing_reports_error(tmp_path):
    cal = tmp_path / "cal"
    cal.mkdir()
    np.save(cal / "x.npy", np.zeros((2, 2), np.float32))
    r = cli("convert", DET_I, "-o", str(tmp_path / "o.xnn"), "--weight-bits", "4", "--report", "--calib", str(cal))
    assert r.returncode == 1 and "does not match the model input" in r.stderr and "Traceback" not in r.stderr


# ---- format 3: scale section, derived bias scales; per-tensor bits; output heads -----------------

def _quants(g):
    return [(t.name, None if t.quant is None else (t.quant.scale.tobytes(), t.quant.zero_point.tolist(), t.quant.axis))
            for t in g.tensors]


@pytest.mark.parametrize("entropy", [None, "lzma"])
def test_scale_section_round_trip_and_smaller_header(entropy):
    g = stored(DET_I)
    c = compress(g, CompressOptions(entropy=entropy or "zlib"))
    data = write_xnn(c.graph, c.encodings, compress_header="zlib", scales_entropy=entropy)
    old = write_xnn(c.graph, c.encodings, compress_header="zlib", scales="inline")
    assert _quants(read_xnn(data)) == _quants(read_xnn(old)) == _quants(read_xnn(write_xnn(c.graph)))
    h = read_header(data)
    assert "scales" in h and (h["scales"].get("entropy") == entropy or entropy is None)
    products = [e for e in h["tensors"] if "product" in e.get("quant", {})]
    assert products and all(e["dtype"] == "int32" for e in products)  # biases: s_x·s_w
    assert len(data) < len(old)


def _section_file(mutate):
    g = stored(DET_I)
    h, w = header_and_weights(write_xnn(g, scales_entropy="lzma"))
    h = json.loads(json.dumps(h))
    w = mutate(h, bytearray(w))
    return pack(h, bytes(w))


def _prod(h):
    return next(e for e in h["tensors"] if "product" in e.get("quant", {}))


def _other_prod(h):
    return [i for i, e in enumerate(h["tensors"]) if "product" in e.get("quant", {})][1]


def _sect(h):
    return next(e for e in h["tensors"] if isinstance(e.get("quant", {}).get("scale"), list))


def _flip_section(h, w):
    off, n = h["scales"]["data"]
    w[off + n // 2] ^= 0x55
    return w


@pytest.mark.parametrize("mutate,match", [
    (lambda h, w: h["scales"].update(count=h["scales"]["count"] + 1) or w, "scale"),
    (lambda h, w: h["scales"].update(size=3) or w, "size 3"),
    (lambda h, w: h["scales"].update(data=[h["scales"]["data"][0], h["scales"]["data"][1] - 1]) or w, "lzma|stream"),
    (lambda h, w: h["scales"].update(data=[len(w), 5]) or w, "data size"),
    (lambda h, w: h["scales"].update(junk=1) or w, "unknown key"),
    (lambda h, w: h["scales"].update(entropy="bz2") or w, "entropy codec"),
    (lambda h, w: h.pop("scales") and w, "has none"),
    (_flip_section, "corrupt|lzma|stream|finite"),
    (lambda h, w: _sect(h)["quant"].update(scale=[h["scales"]["count"] - 1, 2]) or w, "scale count"),
    (lambda h, w: _sect(h)["quant"].update(scale=[0]) or w, r"\[start, count\]"),
    (lambda h, w: _prod(h)["quant"].update(product=[0, 10 ** 6]) or w, "product scale refers"),
    (lambda h, w: _prod(h)["quant"].update(product=[1]) or w, "two tensor indices"),
    (lambda h, w: _prod(h)["quant"].update(product=[h["tensors"].index(_prod(h)), 0]) or w, "product scale refers"),
    (lambda h, w: _prod(h)["quant"].update(product=[_other_prod(h), 0]) or w, "without stored scales"),
    (lambda h, w: _prod(h)["quant"].update(scale="AAAAAA==") or w, "both"),
    (lambda h, w: _prod(h)["quant"].update(zero_point=[]) or w, "zero points"),
    (lambda h, w: _sect(h)["quant"].update(zero_point=1.5) or w, "zero_point"),
    (lambda h, w: _sect(h)["quant"].update(extra=1) or w, "unknown quantization key"),
])
def test_bad_scale_section_is_xnn_error(mutate, match):
    with pytest.raises(XnnError, match=match):
        read_xnn(_section_file(mutate))


def test_format_3_features_rejected_in_version_2_files():
    data = bytearray(write_xnn(stored(DET_I)))
    struct.pack_into("<I", data, 4, 2)
    with pytest.raises(XnnError, match="version 2"):
        read_xnn(bytes(data))
    data = bytearray(write_xnn(stored(DET_I), compress_header="lzma", scales="inline"))
    struct.pack_into("<I", data, 4, 2)
    with pytest.raises(XnnError, match="unknown flags"):
        read_xnn(bytes(data))


def test_truncated_scale_section_file():
    data = write_xnn(stored(LSTM_I), compress_header="lzma", scales_entropy="lzma")
    for cut in (len(data) - 1, len(data) - 7):
        with pytest.raises(XnnError):
            read_xnn(data[:cut])


@pytest.mark.parametrize("codec,bits", [("uniform", 3), ("kmeans", 2)])
def test_weight_bits_fit_finds_the_grid_a_model_sits_on(codec, bits):
    """A model whose weights sit on B-bit codes (here: made so by a lossy pass) is stored with B-bit
    codes by --weight-bits-fit and decodes to the same weights; weights on no grid stay exact."""
    g = stored(LSTM_I)
    tg = weight_targets(g)
    on_grid = compress(g, CompressOptions(weight_bits=bits, codec=codec)).graph
    coded = [t for t in tg if not np.array_equal(on_grid.tensors[t].data, g.tensors[t].data)]
    assert coded
    c = compress(on_grid, CompressOptions(weight_bits_fit=True, codec=codec))
    for t in coded:
        assert f"{codec}{bits}" in c.notes[t] or any(f"{codec}{b}" in c.notes[t] for b in range(1, bits))
        np.testing.assert_array_equal(c.graph.tensors[t].data, on_grid.tensors[t].data)
    # the original weights (on no low-bit grid) keep their values
    c0 = compress(g, CompressOptions(weight_bits_fit=True, codec="uniform"))
    for t in tg:
        assert np.abs(c0.graph.tensors[t].data.astype(int) - g.tensors[t].data.astype(int)).max() <= 1
    assert sum(1 for t in tg if "uniform" in c0.notes.get(t, "")) < len(coded)
    # fit never widens what --weight-bits asks for
    c1 = compress(on_grid, CompressOptions(weight_bits_fit=True, weight_bits=1, codec=codec))
    assert all(f"{codec}1" in c1.notes[t] for t in coded if t in c1.encodings)
    read_xnn(c.to_bytes())


def test_weight_bits_fit_with_coarse_params_keeps_the_float_grid_width():
    """A float model on 3-bit uniform codes (a --qat-grid float model) keeps 3-bit codes under
    --weight-bits-fit --coarse-params: the width is found on exact code parameters, the bfloat16 ones
    then move each weight by at most about half a level."""
    g = stored(LSTM_F)
    tg = weight_targets(g)
    on_grid = compress(g, CompressOptions(weight_bits=3, codec="uniform")).graph
    coded = [t for t in tg if not np.array_equal(on_grid.tensors[t].data, g.tensors[t].data)]
    assert coded
    c = compress(on_grid, CompressOptions(weight_bits_fit=True, codec="uniform", coarse_params=True))
    for t in coded:
        assert any(f"uniform{b}/bf16" in c.notes[t] for b in (1, 2, 3)), c.notes[t]
        w = _channel_rows(on_grid.tensors[t].data, tg[t].axis)
        d = _channel_rows(c.graph.tensors[t].data, tg[t].axis)
        half = 0.5 * (w.max(axis=1) - w.min(axis=1))[:, None] / 7
        assert np.all(np.abs(d - w) <= half * 1.05 + 1e-7)
    read_xnn(c.to_bytes())


def _on_3bit_grids(g, rng, grid, inner):
    """g with every float weight tensor of >= 64 elements moved onto per-channel grids lo + k·step,
    k in 0..7 ((lo, step) = grid(channel rows)), every other channel using only k in `inner`
    (its end levels unused); values computed in float32, as a training graph does. (g, {t: array})."""
    from xnn.converter.compress import _from_channel_rows, _with_data

    made = {}
    for t, target in weight_targets(g).items():
        w = np.asarray(g.tensors[t].data)
        if w.dtype != np.float32 or w.size < 64:
            continue
        rows = _channel_rows(w, target.axis)
        lo, step = (np.asarray(a, np.float32) for a in grid(rows))
        k = rng.integers(0, 8, size=rows.shape).astype(np.float32)
        k[::2] = np.clip(k[::2], *inner)
        made[t] = _from_channel_rows(lo + k * step, w.shape, target.axis)
        g = _with_data(g, t, made[t])
    assert len(made) >= 3
    return g, made


def test_weight_bits_fit_finds_float_grids_whose_end_levels_are_unused():
    """Float weights on per-channel uniform grids lo + k·step, k in 0..7, where some channels use
    neither k = 0 nor k = 7 (what post-training gptq codes fine-tuned on their float model's grid,
    models.train --qat-grid-from, look like): --weight-bits-fit stores them as 3-bit codes exactly
    (the min/max grid of such a channel has another step); off-grid weights are not fitted."""
    from xnn.converter.compress import _from_channel_rows, _with_data

    def grid(rows):
        lo = rows.min(axis=1, keepdims=True)
        return lo, (rows.max(axis=1, keepdims=True) - lo) / 7

    g, made = _on_3bit_grids(stored(LSTM_F), np.random.default_rng(3), grid, (1, 6))
    tg = weight_targets(g)
    c = compress(g, CompressOptions(weight_bits_fit=True, codec="uniform"))
    for t, w in made.items():
        assert "uniform3" in c.notes[t], c.notes[t]
        span = np.ptp(w)
        assert np.abs(np.asarray(c.graph.tensors[t].data) - w).max() <= 1e-5 * span
    back = consts(read_xnn(c.to_bytes()))
    for t, w in made.items():
        assert np.abs(back[g.tensors[t].name] - w).max() <= 1e-5 * np.ptp(w)
    # one weight moved off its channel's grid (by 0.3701 of a step): the tensor is not fitted (nor on
    # a finer grid: the step would have to divide 0.3701)
    t0 = next(iter(made))
    w = made[t0].copy()
    rows = _channel_rows(w, tg[t0].axis)
    off = rows.copy()
    off[0, 1] += 0.3701 * (rows[0].max() - rows[0].min()) / 7
    g2 = _with_data(g, t0, _from_channel_rows(off, w.shape, tg[t0].axis).astype(np.float32))
    c2 = compress(g2, CompressOptions(weight_bits_fit=True, codec="uniform"))
    assert "uniform" not in c2.notes.get(t0, "")
    assert np.asarray(c2.graph.tensors[t0].data).tobytes() == np.asarray(g2.tensors[t0].data).tobytes()


def test_weight_bits_fit_with_coarse_params_keeps_bfloat16_grids_exactly():
    """Grids whose lo and step are bfloat16 numbers (models.train --qat-grid-from trains on them),
    end levels unused in every other channel: --weight-bits-fit --coarse-params stores them exactly
    (it finds the bfloat16 lo below each channel's smallest value), as bfloat16 parameters."""
    from xnn.converter.xnn_format import round_bf16

    def grid(rows):
        lo = round_bf16(rows.min(axis=1, keepdims=True).astype(np.float32))
        return lo, round_bf16(((rows.max(axis=1, keepdims=True) - lo) / 7).astype(np.float32))

    g, made = _on_3bit_grids(stored(LSTM_F), np.random.default_rng(4), grid, (2, 5))
    c = compress(g, CompressOptions(weight_bits_fit=True, codec="uniform", coarse_params=True))
    for t, w in made.items():
        assert "uniform3/bf16" in c.notes[t], c.notes[t]
        assert np.abs(np.asarray(c.graph.tensors[t].data) - w).max() <= 1e-5 * np.ptp(w)


def test_per_tensor_bits_and_min_size():
    g = stored(LSTM_I)
    tg = weight_targets(g)
    names = {g.tensors[t].name: t for t in tg}
    big = max(names, key=lambda n: g.tensors[names[n]].size)
    small = min(names, key=lambda n: g.tensors[names[n]].size)
    limit = g.tensors[names[small]].size + 1
    opts = CompressOptions(weight_bits=3, weight_bits_min_size=limit, weight_bits_for=((f"^{big}$", 2),))
    c = compress(g, opts)
    for name, t in names.items():
        vals = np.unique(np.asarray(c.graph.tensors[t].data))
        if name == big:
            assert "kmeans2" in c.notes[t]
        elif g.tensors[t].size < limit:
            assert t not in c.encodings or "kmeans" not in c.notes.get(t, "")
            np.testing.assert_array_equal(c.graph.tensors[t].data, g.tensors[t].data)
        else:
            assert "kmeans3" in c.notes.get(t, "") or len(vals) <= 8
    # only an override: every other weight exact; 0 = exact beats --weight-bits
    c2 = compress(g, CompressOptions(weight_bits_for=((f"^{big}$", 4),)))
    assert [t for t in tg if "kmeans" in c2.notes.get(t, "")] == [names[big]]
    c3 = compress(g, CompressOptions(weight_bits=2, weight_bits_for=((".", 0),)))
    assert not c3.encodings
    assert CompressOptions(weight_bits_for=(("x", 3),)).active
    read_xnn(c.to_bytes())


@pytest.mark.parametrize("bad,match", [((("(", 3),), "regular expression"), ((("x", 9),), "0..8"),
                                       ((("x", True),), "0..8"), (("x",), "REGEX, BITS")])
def test_per_tensor_bits_checked(bad, match):
    with pytest.raises(XnnError, match=match):
        CompressOptions(weight_bits_for=bad).check()
    with pytest.raises(XnnError, match="min-size"):
        CompressOptions(weight_bits_min_size=-1).check()


def test_channel_pruning_skips_output_heads():
    g = stored(DET_I)
    c = compress(g, CompressOptions(prune=0.5, prune_channels=True))
    heads = [t for t, n in c.notes.items() if "feeds an output" in n]
    assert heads
    for t in heads:
        np.testing.assert_array_equal(c.graph.tensors[t].data, g.tensors[t].data)
    assert any("channels zero" in n for n in c.notes.values())


def test_cli_per_tensor_bits(tmp_path):
    out = tmp_path / "m.xnn"
    g = stored(LSTM_I)
    name = g.tensors[max(weight_targets(g), key=lambda t: g.tensors[t].size)].name
    r = cli("convert", LSTM_I, "-o", str(out), "--weight-bits", "4", "--weight-bits-min-size", "1000",
            "--weight-bits-for", f"^{name}$=2", "--weight-bits-for", "nomatch=exact", "--entropy", "lzma")
    assert r.returncode == 0, r.stderr
    back = read_xnn(out.read_bytes())
    t = next(i for i, s in enumerate(back.tensors) if s.name == name)
    assert len(np.unique(back.tensors[t].data)) <= 4 * back.tensors[t].shape[0]
    for bad, match in ((("--weight-bits-for", "abc"), "REGEX=B"), (("--weight-bits-for", "a=x"), "integer"),
                       (("--weight-bits-for", "a=9"), "0..8")):
        r = cli("convert", LSTM_I, "-o", str(tmp_path / "o.xnn"), *bad)
        assert r.returncode == 1 and match in r.stderr and "Traceback" not in r.stderr, r.stderr


# ---- format 5: bfloat16 values and parameters; --coarse-params ----------------------------------

from xnn.converter.xnn_format import bf16_to_f32, f32_to_bf16, product_scale  # noqa: E402


def test_bfloat16_values_and_params_decode_as_specified():
    # 0x3F80 = 1.0, 0xC040 = -3.0, 0x4480 = 1024.0, 0x3F00 = 0.5, 0x3E80 = 0.25, 0x7F80 = inf
    u = np.array([0x3F80, 0xC040, 0x4480], "<u2").tobytes()
    np.testing.assert_array_equal(decode_tensor({"values": "bfloat16"}, u, (3,), np.float32, "t"), [1, -3, 1024])
    got = decode_tensor({"values": "bfloat16"}, u, (3,), np.int32, "t")
    assert got.dtype == np.int32 and got.tolist() == [1, -3, 1024]
    for bad in (0x3F00, 0x7F80, 0x4F00):  # 0.5, inf, 2^31: not int32 integers
        with pytest.raises(XnnError, match="integers in the int32 range"):
            decode_tensor({"values": "bfloat16"}, np.array([bad], "<u2").tobytes(), (1,), np.int32, "t")
    # with an element mask: the stored values fill the set bits, the rest are 0
    enc = {"layout": "mask", "count": 2, "values": "bfloat16"}
    got = decode_tensor(enc, bytes([0b101]) + np.array([0xC040, 0x3E80], "<u2").tobytes(), (3,), np.float32, "t")
    np.testing.assert_array_equal(got, [-3, 0, 0.25])
    # affine (lo, step) as bfloat16: (0.5, 0.25) -> levels 0.5 + 0.25 q
    payload = np.array([0x3F00, 0x3E80], "<u2").tobytes() + pack_uint([0, 7, 4], 3)
    got = decode_tensor({"values": "affine", "bits": 3, "shared": True, "params": "bfloat16"}, payload, (3,),
                        np.float32, "t")
    np.testing.assert_array_equal(got, np.float32([0.5, 2.25, 1.5]))
    with pytest.raises(XnnError, match="'params' must be"):
        decode_tensor({"values": "affine", "bits": 3, "shared": True, "params": "bfloat16"}, payload, (3,),
                      np.int8, "t")
    with pytest.raises(XnnError, match="'params' must be"):
        decode_tensor({"values": "affine", "bits": 3, "shared": True, "params": "float8"}, payload, (3,),
                      np.float32, "t")
    with pytest.raises(XnnError, match="bfloat16 values need a dtype"):
        decode_tensor({"values": "bfloat16"}, u, (3,), np.int8, "t")
    with pytest.raises(XnnError, match="needs 6"):
        decode_tensor({"values": "bfloat16"}, u[:4], (3,), np.float32, "t")


def test_bfloat16_rounding_ties_go_to_even():
    x = np.array([0x3F808000, 0x3F818000, 0xBF818000, 0x3F807FFF, 0x3F808001, 0x7F7FFFFF], np.uint32).view(np.float32)
    assert f32_to_bf16(x).tolist() == [0x3F80, 0x3F82, 0xBF82, 0x3F80, 0x3F81, 0x7F80]  # last: rounds to inf


@settings(deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_bfloat16_rounding_is_round_to_nearest_even(x):
    x = np.float32(x)
    r = bf16_to_f32(f32_to_bf16(np.array([x])))[0]
    bits = int(np.array([x]).view(np.uint32)[0])
    lo = np.array([bits & 0xFFFF0000], np.uint32).view(np.float32)[0]  # truncation toward zero
    hi = np.array([(bits & 0xFFFF0000) + 0x10000], np.uint32).view(np.float32)[0]  # next away from zero
    dl, dh = abs(float(x) - float(lo)), abs(float(hi) - float(x))
    if dl < dh:
        assert r == lo
    elif dh < dl:
        assert r == hi or (np.isinf(hi) and np.isinf(r))
    else:  # a tie: the even pattern
        assert int(np.array([r], np.float32).view(np.uint32)[0] >> 16) % 2 == 0


def _bf16_exact(a) -> bool:
    return not np.any(np.asarray(a, np.float32).view(np.uint32) & 0xFFFF)


def test_coarse_params_int8_model():
    from xnn import zoo

    g = stored(zoo.path("detector_int8.tflite"))  # trained: nonzero biases (the fixtures' are all zero)
    base = compress(g, CompressOptions(entropy="lzma"))
    c = compress(g, CompressOptions(coarse_params=True, entropy="lzma"))
    back = {t.name: t for t in read_xnn(c.to_bytes()).tensors}
    mem = {t.name: t for t in c.graph.tensors}
    for name, t in back.items():  # the file holds exactly the rounded graph
        assert (t.quant is None) == (mem[name].quant is None)
        if t.quant is not None:
            assert t.quant.scale.tobytes() == mem[name].quant.scale.tobytes()
        if t.data is not None:
            assert np.asarray(t.data).tobytes() == np.asarray(mem[name].data).tobytes()
    changed = 0
    for node in g.nodes:
        if node.op not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        x, w, b = (g.tensors[t].name for t in node.inputs[:3])
        w0, b0 = (next(t for t in g.tensors if t.name == n) for n in (w, b))
        w1, b1 = back[w], back[b]
        np.testing.assert_array_equal(w1.data, w0.data)  # the int8 weights are kept
        assert _bf16_exact(w1.quant.scale)
        assert np.all(np.abs(w1.quant.scale / w0.quant.scale - 1) <= 2.0 ** -8)
        want = product_scale(back[x].quant.scale, w1.quant.scale)
        assert b1.quant.scale.tobytes() == want.tobytes()  # biases follow the new product scale
        assert _bf16_exact(np.asarray(b1.data, np.float32))
        real0 = b0.data.astype(np.float64) * b0.quant.scale
        real1 = b1.data.astype(np.float64) * b1.quant.scale
        assert np.all(np.abs(real1 - real0) <= 2.0 ** -8 * np.abs(real0) + b1.quant.scale)
        # exactly: the real bias re-quantized to the new scale, then kept to 8 significant bits
        want_q = bf16_to_f32(f32_to_bf16(np.rint(real0 / b1.quant.scale).astype(np.float32)))
        np.testing.assert_array_equal(b1.data, want_q.astype(np.int32))
        changed += int(w1.quant.scale.tobytes() != w0.quant.scale.tobytes())
    assert changed >= 30
    sec = lambda comp: read_header(comp.to_bytes())["scales"]["data"][1]  # noqa: E731
    assert sec(c) < 0.7 * sec(base) and len(c.to_bytes()) < len(base.to_bytes())
    errs = run_pair(g, c, 2)
    assert all(r["rel_l2"] < 0.1 for r in errs), errs


def test_coarse_params_float_model():
    from xnn.converter.compress import _with_data

    g = stored(CLS_F)
    rng = np.random.default_rng(0)
    for node in g.nodes:  # the fixture's biases are all zero: give them values to round
        if node.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(node.inputs) > 2:
            b = node.inputs[2]
            if b >= 0 and g.tensors[b].data is not None:
                g = _with_data(g, b, rng.normal(0, 0.3, g.tensors[b].shape).astype(np.float32))
    fine = compress(g, CompressOptions(weight_bits=6, codec="uniform"))
    c = compress(g, CompressOptions(weight_bits=6, codec="uniform", coarse_params=True))
    data = c.to_bytes()
    h = read_header(data)
    params = [e for e in h["tensors"] if e.get("enc", {}).get("params") == "bfloat16"]
    biases = [e for e in h["tensors"] if e.get("enc", {}).get("values") == "bfloat16"]
    assert params and biases
    back = consts(read_xnn(data))
    for e in biases:
        assert _bf16_exact(back[e["name"]])
        orig = np.asarray(next(t.data for t in g.tensors if t.name == e["name"]), np.float64)
        assert np.all(np.abs(back[e["name"]] - orig) <= 2.0 ** -8 * np.abs(orig)) and np.any(orig != back[e["name"]])
    for t, tg in weight_targets(g).items():
        w0, w1 = np.asarray(g.tensors[t].data), back[g.tensors[t].name]
        if w1.tobytes() == w0.tobytes():
            continue
        for o, d in zip(np.moveaxis(w0, tg.axis, 0).reshape(w0.shape[tg.axis], -1),
                        np.moveaxis(w1, tg.axis, 0).reshape(w1.shape[tg.axis], -1)):
            assert np.unique(d).size <= 64
            step = (o.max() - o.min()) / 63
            assert np.abs(o - d).max() <= step * 0.51 + 1e-7  # nearest level, steps 2^-8 coarser at most
    assert len(data) < len(fine.to_bytes())
    ref = xnn.Interpreter(model_content=fine.to_bytes())
    assert all(r["rel_l2"] < 0.02 for r in output_error(ref, xnn.Interpreter(model_content=data),
                                                         random_feeds(ref.get_input_details(), 2)))


def test_coarse_params_float_lstm_biases():
    """A float LSTM's gate and projection biases become bfloat16 values (within 2^-8 of each, the
    weights untouched); the model's outputs stay close."""
    from xnn.converter.compress import _LSTM_BIAS_SLOTS, _with_data

    g = stored(LSTM_F)
    rng = np.random.default_rng(1)
    slots = set()
    for node in g.nodes:
        for s in _LSTM_BIAS_SLOTS.get(node.op, ()):
            b = node.inputs[s] if len(node.inputs) > s else -1
            if b >= 0 and g.tensors[b].data is not None:
                slots.add(b)
                g = _with_data(g, b, rng.normal(0, 0.5, g.tensors[b].shape).astype(np.float32))
    assert len(slots) >= 1
    data = compress(g, CompressOptions(coarse_params=True)).to_bytes()
    h = read_header(data)
    back = consts(read_xnn(data))
    names = {g.tensors[b].name for b in slots}
    stored_bf16 = {e["name"] for e in h["tensors"] if e.get("enc", {}).get("values") == "bfloat16"}
    assert names <= stored_bf16
    for b in slots:
        orig = np.asarray(g.tensors[b].data, np.float64)
        got = back[g.tensors[b].name]
        assert _bf16_exact(got) and np.any(got != orig)
        assert np.all(np.abs(got - orig) <= 2.0 ** -8 * np.abs(orig))
    for node in g.nodes:
        if node.op in _LSTM_BIAS_SLOTS:
            for s in (1, 2, 3, 4, 5, 6, 7, 8):
                t = node.inputs[s]
                assert back[g.tensors[t].name].tobytes() == np.asarray(g.tensors[t].data).tobytes()
    ref = xnn.Interpreter(model_content=compress(g, CompressOptions()).to_bytes())
    errs = output_error(ref, xnn.Interpreter(model_content=data), random_feeds(ref.get_input_details(), 2))
    assert all(r["rel_l2"] < 0.01 for r in errs), errs


def test_bfloat16_rejected_in_version_4_files():
    data = bytearray(compress(stored(CLS_F), CompressOptions(weight_bits=6, codec="uniform",
                                                             coarse_params=True)).to_bytes())
    struct.pack_into("<I", data, 4, 4)
    with pytest.raises(XnnError, match="bfloat16 encodings in a format version 4 file"):
        read_xnn(bytes(data))


def test_cli_coarse_params(tmp_path):
    out, plain = tmp_path / "c.xnn", tmp_path / "p.xnn"
    for path, extra in ((plain, ()), (out, ("--coarse-params",))):
        r = cli("convert", DET_I, "-o", str(path), "--weight-bits", "4", "--weight-codec", "uniform", "--entropy",
                "lzma", "--report", *extra)
        assert r.returncode == 0, r.stderr
    assert "coarse parameters:" in r.stderr and "bfloat16" in r.stdout
    assert out.stat().st_size < plain.stat().st_size
