"""models.import_zoo turns a shipped model back into a training run. Its Keras half needs TensorFlow
(not installed for the tests); what it reads from the files does not: the dequantized weights and the
list of ops with weights that it pairs with the Keras layers."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models.import_zoo import dequantize, kernel_ops, lstm_unit_importance, read_graph  # noqa: E402
from xnn.ir import QuantParams, TensorSpec  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "xnn", "zoo")


def _tensor(data, scale, zp, axis=0):
    q = QuantParams(np.asarray(scale, np.float32), np.asarray(zp, np.int64), axis)
    data = np.asarray(data)
    data.flags.writeable = False
    return TensorSpec("w", data.shape, data.dtype, q, data)


def test_dequantize_per_channel_on_any_axis():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, size=(3, 4, 5)).astype(np.int8)
    for axis in range(3):
        n = q.shape[axis]
        scale = rng.uniform(0.001, 0.1, n).astype(np.float32)
        zp = rng.integers(-3, 4, n)
        got = dequantize(_tensor(q, scale, zp, axis))
        want = np.empty(q.shape, np.float64)
        for idx in np.ndindex(*q.shape):
            c = idx[axis]
            want[idx] = (int(q[idx]) - int(zp[c])) * float(scale[c])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_dequantize_per_tensor_int32_bias_and_float_passthrough():
    b = np.array([-70000, 0, 12345], np.int32)
    np.testing.assert_allclose(dequantize(_tensor(b, [0.5e-4], [0])), b * 0.5e-4, rtol=1e-6)
    f = np.array([1.5, -2.25], np.float32)
    t = TensorSpec("f", f.shape, f.dtype, None, f)
    np.testing.assert_array_equal(dequantize(t), f)
    with pytest.raises(ValueError, match="not a constant"):
        dequantize(TensorSpec("act", (2,), np.dtype(np.float32)))


def _recognizer_layers(spec: dict) -> int:
    """Layers with weights in models.recognizer.build: stem, dw + pw per dense layer, 3 transitions
    with 2 SE dense layers each, the collapse depthwise, the LSTM, the logits."""
    return 1 + 2 * sum(spec["blocks"]) + 3 * 3 + 1 + 1 + 1


@pytest.mark.parametrize("name", ["plate_plate_int8.tflite", "card_number_int8.tflite", "idcard_name_address.xnn"])
def test_shipped_recognizers_list_one_op_per_keras_layer(name):
    stem = name.split(".")[0].removesuffix("_int8")
    spec = json.load(open(os.path.join(ZOO, stem + ".json"), encoding="utf-8"))
    ops = kernel_ops(read_graph(os.path.join(ZOO, name)))
    assert len(ops) == _recognizer_layers(spec)
    lstm = [w for op, w in ops if op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert len(lstm) == 1
    w = lstm[0]
    n, p = spec["units"], spec["proj"]
    assert all(w[s].shape[0] == n for s in (1, 2, 3, 4, 5, 6, 7, 8))
    assert all(w[s].shape == (n, p) for s in (5, 6, 7, 8)) and w[16].shape == (p, n)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in w.values())
    logits = ops[-1]
    assert logits[0] == "FULLY_CONNECTED" and logits[1][1].shape == (len(spec["charset"]) + 1, p)


def test_shipped_int8_weights_dequantize_to_their_scale_times_code():
    g = read_graph(os.path.join(ZOO, "plate_plate_int8.tflite"))
    conv = next(n for n in g.nodes if n.op == "CONV_2D")
    t = g.tensors[conv.inputs[1]]
    assert t.dtype == np.int8 and t.quant.per_channel
    w = dequantize(t)
    np.testing.assert_allclose(w, t.data.astype(np.float32) * t.quant.scale.reshape(-1, 1, 1, 1), rtol=1e-6)
    # per-channel symmetric int8: each channel's largest weight sits near 127 steps
    assert np.allclose(np.abs(w).reshape(len(w), -1).max(1) / t.quant.scale, 127, atol=1)


class _Var:
    def __init__(self, a):
        self.a = np.asarray(a)

    def numpy(self):
        return self.a


class _Cell:
    """The attributes of models.recognizer.ProjLSTMCell that lstm_unit_importance reads."""

    def __init__(self, k, r, b, p, clip=10.0):
        self.kernel, self.recurrent_kernel, self.bias, self.projection = map(_Var, (k, r, b, p))
        self.units, self.cell_clip = p.shape[0], clip


def _reference_importance(k, r, b, p, seq, clip):
    n = p.shape[0]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    tot = np.zeros(n)
    for x in seq:
        h, c = np.zeros(p.shape[1]), np.zeros(n)
        for xt in x:
            z = xt @ k + h @ r + b
            c = np.clip(sig(z[n:2 * n]) * c + sig(z[:n]) * np.tanh(z[2 * n:3 * n]), -clip, clip)
            m = sig(z[3 * n:]) * np.tanh(c)
            tot += np.abs(m)
            h = m @ p
    return tot / (seq.shape[0] * seq.shape[1]) * np.linalg.norm(p, axis=1)


def test_lstm_unit_importance_is_mean_cell_output_times_projection_norm():
    rng = np.random.default_rng(1)
    f, n, p_ = 6, 5, 3
    k, r = rng.normal(0, 0.7, (f, 4 * n)), rng.normal(0, 0.7, (p_, 4 * n))
    b, p = rng.normal(0, 0.3, 4 * n), rng.normal(0, 0.7, (n, p_))
    seq = rng.normal(0, 1, (4, 7, f))
    got = lstm_unit_importance(_Cell(k, r, b, p, 0.5), seq)
    np.testing.assert_allclose(got, _reference_importance(k, r, b, p, seq, 0.5), rtol=1e-10)
    # a cell whose projection row is zero contributes nothing; without recurrence, a row twice as
    # long contributes twice as much
    p2 = p.copy()
    p2[1] = 0
    p2[3] *= 2
    r0 = np.zeros_like(r)
    base = lstm_unit_importance(_Cell(k, r0, b, p, 0.5), seq)
    got = lstm_unit_importance(_Cell(k, r0, b, p2, 0.5), seq)
    assert got[1] == 0 and np.isclose(got[3], 2 * base[3])
    np.testing.assert_allclose(got[[0, 2, 4]], base[[0, 2, 4]])
