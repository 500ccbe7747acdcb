"""Error-compensating rounding of weight codes (xnn.converter.gptq, `xnn convert --weight-rounding gptq`):
the greedy rounding against a direct Optimal-Brain-Surgeon reference, the layer inputs it collects
against LiteRT's conv and the interpreter's tensors, and the compressed files it writes."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xnn
from xnn import XnnError
from xnn.converter.compress import (CompressOptions, _channel_rows, compress, output_error, random_feeds,
                                    weight_targets)
from xnn.converter.gptq import DAMP, _bands, collect_hessians, gptq_round, patches
from xnn.converter.quantize import lstm_float_run
from xnn.converter.tflite_reader import read_tflite
from xnn.converter.xnn_format import graph_for_xnn, read_header, read_xnn, write_xnn

from oracle import one_op_model, run_litert, spec

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
CLS_F = os.path.join(FIX, "classifier_float.tflite")
DET_I = os.path.join(FIX, "detector_int8.tflite")
LSTM_F = os.path.join(FIX, "seq", "crnn_lstm_float.tflite")
LSTM_I = os.path.join(FIX, "seq", "crnn_lstm_int8.tflite")


def stored(path):
    with open(path, "rb") as f:
        return graph_for_xnn(read_tflite(f.read()))


def feeds_for(g, n, seed):
    return random_feeds(xnn.Interpreter(model_content=write_xnn(g)).get_input_details(), n, seed)


# ---- the rounding itself ------------------------------------------------------------------------

def obs_reference(W, H, levels, damp=DAMP):
    """The textbook form: per row, round the features in order of decreasing H_jj; after each, move
    the other unrounded weights by -e_j·Hinv[:, j]/Hinv[j, j] and remove j from the inverse
    (Schur complement). No Cholesky factor."""
    W = np.array(W, np.float64)
    H = np.array(H, np.float64)
    n = H.shape[0]
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0
    H[np.diag_indices(n)] += damp * np.mean(np.diag(H))
    order = np.argsort(-np.diag(H), kind="stable")
    out = np.empty_like(W)
    for r in range(W.shape[0]):
        w = W[r].copy()
        Hinv = np.linalg.inv(H)
        lv = levels[r if levels.shape[0] > 1 else 0]
        for j in order:
            q = lv[np.argmin(np.abs(lv - w[j]))]
            e = w[j] - q
            w -= e * Hinv[:, j] / Hinv[j, j]
            w[j] = q
            Hinv = Hinv - np.outer(Hinv[:, j], Hinv[j, :]) / Hinv[j, j]
            Hinv[j, :] = 0
            Hinv[:, j] = 0
            out[r, j] = q
    return out


def uniform_levels(W, bits):
    lo, hi = W.min(axis=1, keepdims=True), W.max(axis=1, keepdims=True)
    return lo + (hi - lo) / ((1 << bits) - 1) * np.arange(1 << bits)


def nearest(W, levels):
    return np.take_along_axis(levels, np.abs(W[:, :, None] - levels[:, None, :]).argmin(axis=2), axis=1)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(2, 4), st.integers(0, 2 ** 31 - 1))
def test_rounding_matches_the_direct_obs_reference(rows, n, bits, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, n)) @ rng.normal(size=(n, n))  # correlated inputs
    H = X.T @ X
    W = rng.normal(size=(rows, n))
    lv = uniform_levels(W, bits)
    got = gptq_round(W, H, lv)
    np.testing.assert_allclose(got, obs_reference(W, H, lv), rtol=0, atol=1e-9)
    assert all(np.isin(got[r], lv[r]).all() for r in range(rows))  # every weight on its row's levels


def test_uncorrelated_inputs_give_nearest_rounding():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(5, 9))
    lv = uniform_levels(W, 3)
    H = np.diag(rng.uniform(0.5, 2.0, 9))  # no off-diagonal terms: no error feedback
    np.testing.assert_array_equal(gptq_round(W, H, lv), nearest(W, lv))
    shared = lv[:1]  # one codebook for all rows
    np.testing.assert_array_equal(gptq_round(W, H, shared), nearest(W, np.repeat(shared, 5, axis=0)))


def test_rounding_lowers_the_layer_output_error():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))
        W = rng.normal(size=(16, 32))
        lv = uniform_levels(W, 3)
        err = {name: np.linalg.norm(X @ (W - Q).T) for name, Q in
               (("gptq", gptq_round(W, X.T @ X, lv)), ("nearest", nearest(W, lv)))}
        assert err["gptq"] < 0.8 * err["nearest"], err


def test_per_row_hessians_and_dead_inputs():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(3, 9))
    lv = uniform_levels(W, 2)
    Hs = []
    for _ in range(3):
        X = rng.normal(size=(30, 9)) @ rng.normal(size=(9, 9))
        X[:, 4] = 0  # an input that never fires
        Hs.append(X.T @ X)
    got = gptq_round(W, np.stack(Hs), lv)
    for c in range(3):
        np.testing.assert_array_equal(got[c], gptq_round(W[c:c + 1], Hs[c], lv[c:c + 1])[0])
    assert np.all(np.isfinite(got))


# ---- layer inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("padding,stride,dil", [(0, 1, 1), (0, 2, 1), (1, 2, 1), (0, 1, 2), (1, 1, 2)])
def test_patches_times_the_kernel_is_litert_conv(padding, stride, dil):
    rng = np.random.default_rng(stride * 10 + dil + padding)
    x = rng.normal(size=(1, 9, 11, 3)).astype(np.float32)
    w = rng.normal(size=(4, 3, 2, 3)).astype(np.float32)
    opts = {"padding": padding, "stride_h": stride, "stride_w": stride, "dilation_h_factor": dil,
            "dilation_w_factor": dil, "fused_activation_function": 0}
    p = patches(x.astype(np.float64), 3, 2, opts)
    got = p.reshape(len(p), -1) @ w.reshape(4, -1).T.astype(np.float64)
    oh = -(-9 // stride) if padding == 0 else (9 - 2 * dil - 1) // stride + 1
    ow = -(-11 // stride) if padding == 0 else (11 - dil - 1) // stride + 1
    model = one_op_model("CONV_2D", [spec("x", (1, 9, 11, 3), np.float32), spec("w", w.shape, np.float32, data=w),
                                     spec("b", (4,), np.float32, data=np.zeros(4, np.float32))],
                         [spec("y", (1, oh, ow, 4), np.float32)], opts)
    (y,) = run_litert(model, [x])
    np.testing.assert_allclose(got.reshape(y.shape), y, rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.sampled_from([0, 1]), st.integers(1, 3), st.integers(1, 2),
       st.integers(1, 400))
def test_bands_cover_the_patches_once(h, w, padding, stride, dil, budget):
    x = np.random.default_rng(h * 31 + w).normal(size=(2, h, w, 2))
    opts = {"padding": padding, "stride_h": stride, "stride_w": stride, "dilation_h_factor": dil,
            "dilation_w_factor": dil}
    full = patches(x, 3, 2, opts)
    bands = list(_bands(x, 3, 2, opts, budget=budget))
    got = np.concatenate(bands) if bands else np.zeros((0, 6, 2))
    assert got.shape == full.shape
    g2, f2 = got.reshape(len(got), 12), full.reshape(len(full), 12)
    np.testing.assert_allclose(g2.T @ g2, f2.T @ f2, atol=1e-9)  # the same rows, in another order


def _inputs_seen(g, feeds, tensors):
    tensors = list(dict.fromkeys(tensors))
    it = xnn.Interpreter(model_content=write_xnn(g.replace(outputs=tuple(tensors))))
    out = {t: [] for t in tensors}
    for f in feeds:
        it.reset_all_variables()
        for d, x in zip(it.get_input_details(), f):
            it.set_tensor(d["index"], x)
        it.invoke()
        for d, t in zip(it.get_output_details(), tensors):
            y = it.get_tensor(d["index"])
            q = g.tensors[t].quant
            out[t].append(y.astype(np.float64) if q is None else
                          (y.astype(np.float64) - float(q.zero_point[0])) * float(q.scale[0]))
    return out


@pytest.mark.parametrize("path", [CLS_F, LSTM_F, LSTM_I])
def test_hessians_are_the_layer_inputs_gram_matrices(path):
    g = stored(path)
    feeds = feeds_for(g, 3, 5)
    targets = weight_targets(g)
    H = collect_hessians(g, targets, feeds)
    fcs = {g.nodes[tg.readers[0]].inputs[0]: t for t, tg in targets.items()
           if g.nodes[tg.readers[0]].op == "FULLY_CONNECTED"}
    lstm = [n for n in g.nodes if n.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    seen = _inputs_seen(g, feeds, list(fcs) + [n.inputs[0] for n in lstm] + [n.outputs[0] for n in lstm])
    assert fcs or lstm
    for a, t in fcs.items():
        X = np.concatenate([x.reshape(-1, g.tensors[t].shape[1]) for x in seen[a]])
        np.testing.assert_allclose(H[t], X.T @ X, rtol=1e-6, atol=1e-6)
    for n in lstm:
        X = np.concatenate([x.reshape(-1, x.shape[-1]) for x in seen[n.inputs[0]]])
        for s in (1, 2, 3, 4):
            np.testing.assert_allclose(H[n.inputs[s]], X.T @ X, rtol=1e-6, atol=1e-6)
        if g.tensors[n.outputs[0]].quant is not None:
            continue  # an integer cell: its states come from a float run of the dequantized weights
        # the recurrent weights read the state the op output one step earlier (zeros first)
        Y = [y.reshape(-1, y.shape[-1]) for y in seen[n.outputs[0]]]
        P = np.concatenate([np.vstack([np.zeros((1, y.shape[1])), y[:-1]]) for y in Y])
        np.testing.assert_allclose(H[n.inputs[5]], P.T @ P, rtol=1e-5, atol=1e-6)


def test_float_lstm_run_sequences_agree():
    rng = np.random.default_rng(3)
    F, N, P, B, T = 5, 6, 4, 2, 7
    w = [None] * 24
    for k in range(4):
        w[1 + k] = rng.normal(size=(N, F)) * 0.5
        w[5 + k] = rng.normal(size=(N, P)) * 0.5
        w[12 + k] = rng.normal(size=N) * 0.1
    w[16] = rng.normal(size=(P, N)) * 0.5
    x = rng.normal(size=(B, T, F))
    stats, seq = lstm_float_run(w, {"cell_clip": 3.0}, x, sequences=True)
    np.testing.assert_array_equal(seq["h_prev"][:, 0], 0)
    np.testing.assert_allclose(seq["h_prev"][:, 1:], seq["h"][:, :-1])
    np.testing.assert_allclose(seq["h"], seq["m"] @ w[16].T)
    assert seq["m"].min() >= stats["m"][0] and seq["m"].max() <= stats["m"][1]
    assert lstm_float_run(w, {"cell_clip": 3.0}, x)[1] is None


# ---- compression with it ------------------------------------------------------------------------

@pytest.mark.parametrize("path,codec", [(CLS_F, "uniform"), (CLS_F, "kmeans"), (DET_I, "uniform"),
                                        (LSTM_I, "uniform"), (LSTM_F, "uniform")])
def test_gptq_codes_keep_the_grid_and_lower_the_output_error(path, codec):
    g = stored(path)
    calib = feeds_for(g, 4, 11)
    opts = CompressOptions(weight_bits=3, codec=codec, seed=0)
    near = compress(g, opts)
    gq = compress(g, CompressOptions(weight_bits=3, codec=codec, seed=0, rounding="gptq"), feeds=calib)
    back = {t.name: t.data for t in read_xnn(gq.to_bytes()).tensors if t.data is not None}
    changed = 0
    for t, tg in weight_targets(g).items():
        a, b = near.graph.tensors[t].data, gq.graph.tensors[t].data
        np.testing.assert_array_equal(back[g.tensors[t].name], b)  # the file decodes to the graph's values
        if t not in near.encodings:
            continue
        if codec == "uniform" and np.dtype(a.dtype) == np.int8:
            # the same (lo, hi) per channel: only which level each weight takes differs
            assert near.encodings[t].payload[:2 * a.shape[tg.axis]] == gq.encodings[t].payload[:2 * a.shape[tg.axis]]
        assert all(len(set(r)) <= 8 for r in _channel_rows(b, tg.axis))
        changed += int(not np.array_equal(a, b))
        assert "gptq" in gq.notes[t]
    assert changed > 0
    ref = xnn.Interpreter(model_content=write_xnn(g))
    held_out = feeds_for(g, 4, 12)  # not the calibration samples
    e_near = output_error(ref, xnn.Interpreter(model_content=near.to_bytes()), held_out)
    e_gq = output_error(ref, xnn.Interpreter(model_content=gq.to_bytes()), held_out)
    assert sum(e["rel_l2"] for e in e_gq) < sum(e["rel_l2"] for e in e_near), (e_gq, e_near)


def test_gptq_option_errors():
    g = stored(CLS_F)
    with pytest.raises(XnnError, match="calibration"):
        compress(g, CompressOptions(weight_bits=4, rounding="gptq"))
    for kw, msg in (({"rounding": "gptq"}, "--weight-bits"),
                    ({"rounding": "gptq", "weight_bits": 4, "weight_bits_fit": True}, "weight-bits-fit"),
                    ({"rounding": "gptq", "weight_bits": 4, "prune": 0.5}, "prune"),
                    ({"rounding": "best", "weight_bits": 4}, "weight-rounding")):
        with pytest.raises(XnnError, match=msg):
            CompressOptions(**kw).check()


def test_cli_gptq(tmp_path):
    g = stored(LSTM_I)
    x = np.stack([f[0][0] for f in feeds_for(g, 6, 4)])
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "x.npy", x)
    base = [sys.executable, "-m", "xnn.cli", "convert", LSTM_I, "--weight-bits", "3", "--weight-codec", "uniform"]
    r = subprocess.run(base + ["-o", str(tmp_path / "a.xnn"), "--weight-rounding", "gptq"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "needs calibration data" in r.stderr.splitlines()[-1], r.stderr
    r = subprocess.run(base + ["-o", str(tmp_path / "a.xnn"), "--weight-rounding", "gptq", "--calib",
                               str(tmp_path / "calib")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "gptq rounding: layer inputs from 6 calibration samples" in r.stderr
    notes = [e for e in read_header(open(tmp_path / "a.xnn", "rb").read())["tensors"] if "enc" in e]
    assert notes
    y = xnn.Interpreter(model_path=str(tmp_path / "a.xnn"))
    assert y.get_input_details()[0]["shape"].tolist() == list(g.tensors[g.inputs[0]].shape)


def test_bench_setting_token():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(root, "bench")]
    try:
        import compress_zoo
    finally:
        sys.path.pop(0)
    source, kw, flags = compress_zoo.parse_setting("int8:u4+coarse+gptq64+lzma")
    assert source == "int8" and kw["rounding"] == "gptq" and kw["calib_n"] == 64
    cmd = " ".join(flags)
    assert cmd.count("--weight-rounding gptq") == 1 and cmd.count("--calib {calib} --calib-limit 64") == 1
    # bias correction shares the calibration set: one --calib, the larger N
    _, kw, flags = compress_zoo.parse_setting("float:u4+gptq32+bc128+ans")
    assert kw["bias_correction"] and kw["rounding"] == "gptq" and kw["calib_n"] == 128
    cmd = " ".join(flags)
    assert cmd.count("--calib ") == 1 and cmd.endswith("--calib {calib} --calib-limit 128")
    assert "--bias-correction" in flags
    with pytest.raises(SystemExit, match="gptqx"):
        compress_zoo.parse_setting("int8:u4+gptqx")
