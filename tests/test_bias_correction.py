"""`xnn convert --bias-correction`: after lossy weights (codes, pruning), a layer's float bias
absorbs (W - Q)·E[x], E[x] its mean input on the calibration data, so that its outputs keep their
calibration mean. Checked against the layer outputs the interpreter computes, and the means against
the inputs the layers see."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import xnn
from xnn import XnnError
from xnn.converter.compress import CompressOptions, _channel_rows, compress, weight_targets
from xnn.converter.gptq import collect_layer_stats, patches
from xnn.converter.xnn_format import read_xnn

from test_gptq import _inputs_seen, feeds_for, stored

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
CLS_F = os.path.join(FIX, "classifier_float.tflite")
DET_I = os.path.join(FIX, "detector_int8.tflite")
LSTM_F = os.path.join(FIX, "seq", "crnn_lstm_float.tflite")


def only(name, bits):
    return ((re.escape(name) + "$", bits),)


def linear_layers(g):
    """Positions of the conv/depthwise/FC nodes without a fused activation (outputs W x + b; a
    float32 bias or none)."""
    return [i for i, n in enumerate(g.nodes)
            if n.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
            and n.options.get("fused_activation_function", 0) == 0
            and (len(n.inputs) < 3 or n.inputs[2] < 0 or np.dtype(g.tensors[n.inputs[2]].dtype) == np.float32)]


@pytest.mark.parametrize("path,k", [(CLS_F, 0), (CLS_F, 1), (CLS_F, 2), (CLS_F, 3), (CLS_F, 4), (LSTM_F, 0)])
def test_corrected_layer_keeps_its_mean_output(path, k):
    g = stored(path)
    layers = linear_layers(g)
    assert len(layers) == {CLS_F: 5, LSTM_F: 1}[path]
    node = g.nodes[layers[k]]
    w = node.inputs[1]
    feeds = feeds_for(g, 6, 21)
    kw = dict(weight_bits_for=only(g.tensors[w].name, 2), codec="uniform")
    plain = compress(g, CompressOptions(**kw))
    fixed = compress(g, CompressOptions(**kw, bias_correction=True), feeds=feeds)
    assert "bias corrected" in fixed.notes[w] and "bias corrected" not in plain.notes.get(w, "")
    np.testing.assert_array_equal(plain.graph.tensors[w].data, fixed.graph.tensors[w].data)  # same codes
    out = node.outputs[0]

    def mean_output(graph):  # per channel (last axis), over every position and feed
        return np.concatenate([y.reshape(-1, y.shape[-1]) for y in _inputs_seen(graph, feeds, [out])[out]]).mean(0)

    ref, m_plain, m_fixed = mean_output(g), mean_output(plain.graph), mean_output(fixed.graph)
    scale = np.abs(ref).max() + 1e-6
    err_plain, err_fixed = np.abs(m_plain - ref).max(), np.abs(m_fixed - ref).max()
    assert err_fixed <= 1e-4 * scale, (err_fixed, scale)
    assert err_plain > 20 * err_fixed, (err_plain, err_fixed)
    # the file decodes to the corrected bias (a new tensor where the layer had none or shared it)
    b = fixed.graph.nodes[layers[k]].inputs[2]
    back = {t.name: t.data for t in read_xnn(fixed.to_bytes()).tensors if t.data is not None}
    np.testing.assert_array_equal(back[fixed.graph.tensors[b].name], fixed.graph.tensors[b].data)


@pytest.mark.parametrize("path", [CLS_F, LSTM_F])
def test_means_are_the_layer_inputs_means(path):
    g = stored(path)
    feeds = feeds_for(g, 3, 8)
    targets = weight_targets(g)
    _, means = collect_layer_stats(g, targets, feeds)
    checked = 0
    for t, tg in targets.items():
        node = g.nodes[tg.readers[0]]
        x = np.concatenate(_inputs_seen(g, feeds, [node.inputs[0]])[node.inputs[0]])
        if node.op == "FULLY_CONNECTED":
            np.testing.assert_allclose(means[t], x.reshape(-1, g.tensors[t].shape[1]).mean(0), rtol=1e-6, atol=1e-9)
        elif node.op == "CONV_2D":
            O, kh, kw, c = g.tensors[t].shape
            r = patches(x, kh, kw, node.options)
            groups = x.shape[3] // c
            if groups == 1:
                want = r.reshape(-1, kh * kw * c).mean(0)
            else:  # a group conv: output channel o reads input group o // (O / groups)
                r = r.reshape(len(r), kh * kw, groups, c)
                want = np.repeat(np.stack([r[:, :, i].reshape(len(r), -1).mean(0) for i in range(groups)]),
                                 O // groups, axis=0)
            np.testing.assert_allclose(means[t], want, rtol=1e-6, atol=1e-9)
        elif node.op == "DEPTHWISE_CONV_2D":
            _, kh, kw, C = g.tensors[t].shape
            want = patches(x, kh, kw, node.options).mean(0).T  # [C, kh·kw]
            np.testing.assert_allclose(means[t], want, rtol=1e-6, atol=1e-9)
        elif node.op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and node.inputs[1] == t:
            np.testing.assert_allclose(means[t], x.reshape(-1, x.shape[-1]).mean(0), rtol=1e-6, atol=1e-9)
        else:
            continue
        checked += 1
    assert checked >= 3


def test_lstm_gate_biases_absorb_their_weights_shift():
    g = stored(LSTM_F)
    node = next(n for n in g.nodes if n.op == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    feeds = feeds_for(g, 4, 3)
    fixed = compress(g, CompressOptions(weight_bits=2, codec="uniform", bias_correction=True), feeds=feeds)
    after = next(n for n in fixed.graph.nodes if n.op == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    # this model's gates share zero-bias constants (TFLite dedups them): each gate now has its own
    assert len({node.inputs[12 + k] for k in range(4)}) < 4 and len({after.inputs[12 + k] for k in range(4)}) == 4
    x = np.concatenate(_inputs_seen(g, feeds, [node.inputs[0]])[node.inputs[0]])
    mean_x = x.reshape(-1, x.shape[-1]).mean(0)
    for k in range(4):  # input-to-gate weights k read x; their gate bias is input 12 + k
        w, b = node.inputs[1 + k], node.inputs[12 + k]
        d = _channel_rows(g.tensors[w].data, 0) - _channel_rows(fixed.graph.tensors[w].data, 0)
        assert np.abs(d).max() > 0
        # the bias also absorbs the recurrent weights' shift (on the state's mean), so subtract that
        r = node.inputs[5 + k]
        _, means = collect_layer_stats(g, {t: tg for t, tg in weight_targets(g).items() if t == r}, feeds)
        dr = _channel_rows(g.tensors[r].data, 0) - _channel_rows(fixed.graph.tensors[r].data, 0)
        want = g.tensors[b].data.astype(np.float64) + d @ mean_x + dr @ means[r]
        np.testing.assert_allclose(fixed.graph.tensors[after.inputs[12 + k]].data, want, rtol=1e-5, atol=1e-6)


def test_int8_weights_are_left_alone():
    g = stored(DET_I)
    comp = compress(g, CompressOptions(weight_bits=3, codec="uniform", bias_correction=True),
                    feeds=feeds_for(g, 2, 1))
    assert comp.encodings and not any("bias corrected" in n for n in comp.notes.values())
    for a, b in zip(g.tensors, comp.graph.tensors):
        if a.data is not None and len(a.shape) == 1 and np.dtype(a.dtype) == np.int32:
            np.testing.assert_array_equal(a.data, b.data)


def test_option_errors(tmp_path):
    g = stored(CLS_F)
    with pytest.raises(XnnError, match="calibration"):
        compress(g, CompressOptions(weight_bits=4, bias_correction=True))
    with pytest.raises(XnnError, match="lossy weights"):
        CompressOptions(bias_correction=True, entropy="lzma").check()
    base = [sys.executable, "-m", "xnn.cli", "convert", CLS_F, "-o", str(tmp_path / "a.xnn"), "--weight-bits", "3",
            "--bias-correction"]
    r = subprocess.run(base, capture_output=True, text=True)
    assert r.returncode == 1 and "needs calibration data" in r.stderr.splitlines()[-1], r.stderr
    x = np.stack([f[0][0] for f in feeds_for(g, 4, 2)])
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "x.npy", x)
    r = subprocess.run(base + ["--calib", str(tmp_path / "calib")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "bias correction: layer inputs from 4 calibration samples" in r.stderr
    assert re.search(r"bias correction: [1-9]\d* biases absorb", r.stderr), r.stderr
    assert xnn.Interpreter(model_path=str(tmp_path / "a.xnn")).get_output_details()
