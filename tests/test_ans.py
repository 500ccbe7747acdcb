"""rANS coding of weight codes (xnn/converter/ans.py, `--entropy ans`, .xnn format 6): the Numba
coder against a plain-Python rANS written from the definition in the module doc, lossless round
trips, a size within a hair of the codes' entropy, corrupt streams as XnnErrors, and files that
decode to exactly what the lzma files decode to."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xnn
from xnn import XnnError
from xnn.converter import ans
from xnn.converter.compress import CompressOptions, _with_data, compress, random_feeds, weight_targets
from xnn.converter.tflite_reader import read_tflite
from xnn.converter.xnn_format import (FORMAT_VERSION, _fail, deflate, graph_for_xnn, pack, pack_uint, read_header,
                                      read_xnn, write_xnn)

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
LSTM_F = os.path.join(FIX, "seq", "crnn_lstm_float.tflite")
DET_I = os.path.join(FIX, "detector_int8.tflite")


# ---- a plain-Python reference (unbounded integers, no NumPy in the loops) -------------------------

def ref_encode(sym, freq):
    cum = [0]
    for f in freq[:-1]:
        cum.append(cum[-1] + f)
    x, out = ans.RANS_L, []
    for s in reversed([int(v) for v in sym]):
        while x >= (ans.RANS_L // ans.M) * 256 * freq[s]:
            out.append(x % 256)
            x //= 256
        x = (x // freq[s]) * ans.M + x % freq[s] + cum[s]
    return x, bytes(reversed(out))


def ref_decode(x, stream, freq, count):
    cum = [0]
    for f in freq[:-1]:
        cum.append(cum[-1] + f)
    out, pos = [], 0
    for _ in range(count):
        slot = x % ans.M
        s = max(i for i in range(len(freq)) if cum[i] <= slot and freq[i] > 0)
        out.append(s)
        x = freq[s] * (x // ans.M) + slot - cum[s]
        while x < ans.RANS_L:
            x = x * 256 + stream[pos]
            pos += 1
    assert pos == len(stream) and x == ans.RANS_L
    return out


def split(blob, bits):
    K = 1 << bits
    freq = [int(v) for v in np.frombuffer(blob[:2 * K], "<u2")]
    return freq, struct.unpack_from("<I", blob, 2 * K)[0], blob[2 * K + 4:]


def decode(blob, count, bits):
    return ans.decode_symbols(blob, count, bits, "t", _fail)


@st.composite
def symbols(draw):
    bits = draw(st.integers(1, 8))
    K = 1 << bits
    n = draw(st.integers(0, 400))
    # skewed distributions (a peaked weight-code histogram) and uniform ones
    w = np.array(draw(st.lists(st.floats(0, 1), min_size=K, max_size=K))) ** draw(st.sampled_from([1, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    p = w / w.sum() if w.sum() > 0 else np.full(K, 1.0 / K)
    return bits, rng.choice(K, size=n, p=p).astype(np.uint8)


# ---- the coder -----------------------------------------------------------------------------------

@settings(deadline=None)
@given(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=256).filter(lambda c: sum(c) > 0))
def test_normalized_frequencies(counts):
    f = ans.normalize_freqs(counts)
    assert int(f.sum()) == ans.M
    assert all((fi > 0) == (c > 0) for fi, c in zip(f, counts))


@settings(deadline=None)
@given(symbols())
def test_numba_coder_matches_the_python_reference(case):
    bits, sym = case
    blob = ans.encode_symbols(sym, bits)
    freq, x, stream = split(blob, bits)
    assert (x, stream) == ref_encode(sym, freq)
    assert ref_decode(x, stream, freq, sym.size) == sym.tolist()
    np.testing.assert_array_equal(decode(blob, sym.size, bits), sym)


def test_size_is_close_to_the_entropy():
    rng = np.random.default_rng(0)
    for bits in (2, 3, 4, 5):
        K = 1 << bits
        # quantized Gaussian weights on a K-level grid over +-2.5 sigma
        sym = np.clip(np.round((rng.normal(size=100_000) / 5 + 0.5) * (K - 1)), 0, K - 1).astype(np.uint8)
        p = np.bincount(sym, minlength=K) / sym.size
        h = -(p[p > 0] * np.log2(p[p > 0])).sum() * sym.size / 8
        n = len(ans.encode_symbols(sym, bits))
        assert n < h * 1.005 + 2 * K + 16, (bits, n, h)
        assert n < sym.size * bits / 8 * 0.97  # below the packed size
        if bits in (3, 5):  # widths that straddle bytes: lzma stays well above the entropy
            assert n < 0.95 * len(deflate("lzma", pack_uint(sym, bits)))


@settings(deadline=None)
@given(symbols(), st.data())
def test_corrupt_streams_fail_cleanly(case, data):
    bits, sym = case
    blob = bytearray(ans.encode_symbols(sym, bits))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "freq"]))
    if kind == "flip":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "extend":
        blob += b"\x00"
    else:
        struct.pack_into("<H", blob, 0, (struct.unpack_from("<H", blob, 0)[0] + 1) % 65536)
    try:
        out = decode(bytes(blob), sym.size, bits)
    except XnnError:
        return
    # a flipped bit may still decode to some symbols; they are in range and the count is right
    assert kind == "flip" and out.size == sym.size and (out.size == 0 or int(out.max()) < (1 << bits))


# ---- files ---------------------------------------------------------------------------------------

def _graph(path):
    with open(path, "rb") as f:
        return graph_for_xnn(read_tflite(f.read()))


def _gaussian(g, seed=0):
    """g with its float conv/FC/LSTM weights replaced by Gaussian ones of the same shapes (trained
    weights are peaked like this; the fixtures' random weights are near uniform)."""
    rng = np.random.default_rng(seed)
    for t in weight_targets(g):
        spec = g.tensors[t]
        if spec.dtype == "float32":
            g = _with_data(g, t, rng.normal(0, 0.1, spec.shape).astype(np.float32))
    return g


def _code_bytes(data):
    return sum(t["data"][1] for t in read_header(data)["tensors"] if "bits" in t.get("enc", {}))


@pytest.mark.parametrize("path,bits,gauss", [(LSTM_F, 3, True), (LSTM_F, 5, False), (LSTM_F, 3, False),
                                             (DET_I, 3, False)])
def test_ans_files_decode_like_lzma_files_and_are_smaller(path, bits, gauss):
    g = _gaussian(_graph(path)) if gauss else _graph(path)
    opts = dict(weight_bits=bits, codec="uniform", weight_bits_min_size=0)
    a = compress(g, CompressOptions(**opts, entropy="ans")).to_bytes()
    z = compress(g, CompressOptions(**opts, entropy="lzma")).to_bytes()
    h = read_header(a)
    used = [e["enc"]["entropy"] for e in h["tensors"] if "enc" in e and "entropy" in e["enc"]]
    assert struct.unpack_from("<I", a, 4)[0] == FORMAT_VERSION >= 6
    assert "ans" in used or not gauss  # tiny near-uniform tensors may all keep lzma
    ga, gz = read_xnn(a), read_xnn(z)
    for x, y in zip(ga.tensors, gz.tensors):
        if y.data is not None:
            assert x.data.dtype == y.data.dtype and x.data.tobytes() == y.data.tobytes(), x.name
    if gauss:  # peaked codes: below lzma (small tensors: ~2% here; see the size test for big ones)
        assert _code_bytes(a) < _code_bytes(z)
    else:  # never worse: each tensor keeps the smaller of the two
        assert _code_bytes(a) <= _code_bytes(z)
    feed = random_feeds(xnn.Interpreter(model_content=a).get_input_details(), 1)[0]
    for p, q in zip(xnn.Interpreter(model_content=a)(feed), xnn.Interpreter(model_content=z)(feed)):
        np.testing.assert_array_equal(p, q)


def _ans_parts():
    data = compress(_graph(LSTM_F), CompressOptions(weight_bits=3, codec="uniform", entropy="ans")).to_bytes()
    w_off = struct.unpack_from("<Q", data, 16)[0]
    h = read_header(data)
    e = next(t for t in h["tensors"] if t.get("enc", {}).get("entropy") == "ans")
    return data, h, data[w_off:], e


def test_ans_rejected_where_it_has_no_meaning():
    data, h, w, e = _ans_parts()
    ver = bytearray(data)
    struct.pack_into("<I", ver, 4, 5)
    with pytest.raises(XnnError, match="ans entropy coding in a format version 5 file"):
        read_xnn(bytes(ver))
    hh = json.loads(json.dumps(h))
    raw = next(t for t in hh["tensors"] if t.get("enc", {}).get("entropy") == "lzma"
               and "bits" not in t["enc"])  # an lzma-coded bias or raw constant
    raw["enc"]["entropy"] = "ans"
    with pytest.raises(XnnError, match="ans entropy coding is only for palette/affine values"):
        read_xnn(pack(hh, w))


@pytest.mark.parametrize("cut", ["prefix_len", "stream", "model"])
def test_corrupt_ans_tensor_is_an_xnn_error(cut):
    data, h, w, e = _ans_parts()
    off, n = e["data"]
    blob = bytearray(w[off:off + n])
    if cut == "prefix_len":
        struct.pack_into("<I", blob, 0, n)  # longer than what is stored
    elif cut == "stream":
        blob = blob[:-2]
    else:
        plen = struct.unpack_from("<I", blob, 0)[0]
        struct.pack_into("<H", blob, 4 + plen, 0)  # frequencies no longer sum to M
    hh = json.loads(json.dumps(h))
    ent = next(t for t in hh["tensors"] if t["name"] == e["name"])
    ent["data"] = [len(w), len(blob)]
    with pytest.raises(XnnError, match="corrupt .xnn file: tensor"):
        read_xnn(pack(hh, bytes(w) + bytes(blob)))


def test_cli_entropy_ans(tmp_path):
    out = tmp_path / "a.xnn"
    r = subprocess.run([sys.executable, "-m", "xnn.cli", "convert", LSTM_F, "-o", str(out), "--weight-bits", "3",
                        "--weight-codec", "uniform", "--entropy", "ans", "--report"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert " ans" in r.stdout
    g = read_xnn(out.read_bytes())
    assert any(t.data is not None for t in g.tensors)
    assert write_xnn(g)  # the decoded graph writes again
