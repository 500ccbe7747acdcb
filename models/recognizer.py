"""The xNN-OCR line recognizer (tf_keras): DenseNet-style CNN with squeeze-excitation and multi-scale
features -> projected LSTM -> softmax over charset + blank, trained with CTC.

    image (32, W, 1)
    stem     3x3 conv, BN, ReLU                     32 x W     stem ch
             max-pool 2x2                           16 x W/2
    block A  dense block (separable 3x3 layers)     16 x W/2   + blocks[0]·growth ch
             transition 1x1 conv, SE, avg-pool 2x2   8 x W/4   trans[0] ch   ──► "mid"
    block B  dense block, transition, SE,
             max-pool 2x1                            4 x W/4   trans[1] ch
    block C  dense block, transition, SE             4 x W/4   trans[2] ch   ──► "top"
    collapse top: depthwise 4x1 conv, BN, ReLU      1 x W/4   trans[2] ch
             mid: average over its 8 rows           1 x W/4   trans[0] ch
             concat (multi-scale) -> (T = W/4, trans[0] + trans[2])
    ProjLSTM c_t = f⊙c_{t-1} + i⊙g (clipped to ±cell_clip), h_t = W_p (o ⊙ tanh c_t)
    Dense    C + 1 logits -> softmax (blank = last class); with spec.logits_rank R two Dense layers,
             proj -> R (no bias, "logits_lr") -> C + 1 (a rank-R factorization of the logits matrix)

A dense layer is depthwise 3x3 -> pointwise 1x1 (growth ch) -> BN -> ReLU, concatenated to its input.
Every BN follows a linear conv, so the converter folds it into that conv's weights and bias.

Export (models.export): the converter cannot emit a projected UNIDIRECTIONAL_SEQUENCE_LSTM, so
`build(..., rnn="placeholder")` puts a plain tf_keras LSTM(proj) where the projected LSTM goes: it
converts to a fused LSTM node with the right input and output shapes, whose weights models.export then
replaces by the trained ones plus a projection tensor (`lstm_tensors` gives them in TFLite layout).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras import layers as L  # noqa: E402

from .rec_spec import HEIGHT, RecSpec  # noqa: E402

RNN_NAME = "lstm"


@keras.utils.register_keras_serializable("xnn")
class ProjLSTMCell(L.Layer):
    """LSTM cell with a projection (no peepholes, no CIFG), gate order i, f, g, o as tf_keras:
        z = x K + h_{t-1} R + b,  [i, f, g, o] = [σ, σ, tanh, σ](split(z, 4))
        c_t = clip(f ⊙ c_{t-1} + i ⊙ g, ±cell_clip)        (cell_clip 0: no clipping)
        h_t = (o ⊙ tanh c_t) W_p
    K: (F, 4N), R: (P, 4N), b: (4N,) (forget part starts at 1), W_p: (N, P). State: [h (P), c (N)].
    This is TFLite's LSTM with projection weights W_p^T and no projection bias."""

    def __init__(self, units: int, proj: int, cell_clip: float = 0.0, **kw):
        super().__init__(**kw)
        self.units, self.proj, self.cell_clip = int(units), int(proj), float(cell_clip)
        self.state_size = [self.proj, self.units]
        self.output_size = self.proj

    def build(self, input_shape):
        n, p, f = self.units, self.proj, int(input_shape[-1])
        self.kernel = self.add_weight("kernel", (f, 4 * n), initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (p, 4 * n), initializer="orthogonal")

        def bias_init(shape, dtype=None):
            b = np.zeros(shape, np.float32)
            b[n:2 * n] = 1.0
            return tf.constant(b, dtype=dtype)

        self.bias = self.add_weight("bias", (4 * n,), initializer=bias_init)
        self.projection = self.add_weight("projection", (n, p), initializer="glorot_uniform")
        self.built = True

    def call(self, inputs, states):
        h, c = states
        z = tf.matmul(inputs, self.kernel) + tf.matmul(h, self.recurrent_kernel) + self.bias
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        if self.cell_clip > 0:
            c = tf.clip_by_value(c, -self.cell_clip, self.cell_clip)
        h = tf.matmul(tf.sigmoid(o) * tf.tanh(c), self.projection)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "proj": self.proj,
                "cell_clip": self.cell_clip}


def _conv_bn_relu(x, ch, k, name):
    x = L.Conv2D(ch, k, padding="same", use_bias=False, name=name + "_conv")(x)
    x = L.BatchNormalization(name=name + "_bn")(x)
    return L.ReLU(name=name + "_relu")(x)


def _dense_block(x, n, growth, name):
    for k in range(n):
        y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_{k}_dw")(x)
        y = L.Conv2D(growth, 1, use_bias=False, name=f"{name}_{k}_pw")(y)
        y = L.BatchNormalization(name=f"{name}_{k}_bn")(y)
        y = L.ReLU(name=f"{name}_{k}_relu")(y)
        x = L.Concatenate(name=f"{name}_{k}_cat")([x, y])
    return x


def _se(x, name, ratio=4, pool="global"):
    """Squeeze-excitation: x · σ(W2 relu(W1 mean(x))), the mean over the whole map (pool "global")
    or over each column's rows (pool "column": channel weights per column, the same two Dense
    kernels applied at every column; no frame then sees the line's far end, see RecSpec.se_pool)."""
    c = x.shape[-1]
    if pool == "column":
        s = L.AveragePooling2D((x.shape[1], 1), name=name + "_gap")(x)          # (B, 1, W', C)
    elif pool == "global":
        s = L.GlobalAveragePooling2D(name=name + "_gap")(x)
    else:
        raise ValueError(f"se pool {pool!r}")
    s = L.Dense(max(8, c // ratio), activation="relu", name=name + "_fc1")(s)
    s = L.Dense(c, activation="sigmoid", name=name + "_fc2")(s)
    if pool == "global":
        s = L.Reshape((1, 1, c), name=name + "_rs")(s)
    return L.Multiply(name=name + "_mul")([x, s])


def build(spec: RecSpec, batch: int | None = None, rnn: str = "proj") -> keras.Model:
    """The recognizer: (B, 32, W, 1) float [0, 1] -> (B, T, C+1) softmax. rnn: 'proj' (the trained
    projected LSTM) or 'placeholder' (a tf_keras LSTM(proj) for the converter, see module doc)."""
    inp = keras.Input((HEIGHT, spec.width, 1), batch_size=batch, name="image")
    x = _conv_bn_relu(inp, spec.stem, 3, "stem")
    x = L.MaxPooling2D(2, name="pool0")(x)
    x = _dense_block(x, spec.blocks[0], spec.growth, "a")
    x = _conv_bn_relu(x, spec.trans[0], 1, "ta")
    x = _se(x, "sea", pool=spec.se_pool)
    mid = L.AveragePooling2D(2, name="pool1")(x)                     # 8 x W/4
    x = _dense_block(mid, spec.blocks[1], spec.growth, "b")
    x = _conv_bn_relu(x, spec.trans[1], 1, "tb")
    x = _se(x, "seb", pool=spec.se_pool)
    x = L.MaxPooling2D((2, 1), name="pool2")(x)                     # 4 x W/4
    x = _dense_block(x, spec.blocks[2], spec.growth, "c")
    x = _conv_bn_relu(x, spec.trans[2], 1, "tc")
    x = _se(x, "sec", pool=spec.se_pool)
    top = L.DepthwiseConv2D((x.shape[1], 1), padding="valid", use_bias=False, name="collapse_dw")(x)
    top = L.BatchNormalization(name="collapse_bn")(top)
    top = L.ReLU(name="collapse_relu")(top)                          # 1 x W/4
    low = L.AveragePooling2D((mid.shape[1], 1), name="collapse_mid")(mid)
    x = L.Concatenate(name="multiscale")([top, low])
    x = L.Reshape((spec.frames, x.shape[-1]), name="to_seq")(x)
    if rnn == "proj":
        x = L.RNN(ProjLSTMCell(spec.units, spec.proj, spec.cell_clip), return_sequences=True,
                  name=RNN_NAME)(x)
    elif rnn == "placeholder":
        x = L.LSTM(spec.proj, return_sequences=True, name=RNN_NAME)(x)
    else:
        raise ValueError(rnn)
    if spec.logits_rank:
        x = L.Dense(spec.logits_rank, use_bias=False, name="logits_lr")(x)
    x = L.Dense(spec.n_classes, name="logits")(x)
    out = L.Softmax(name="probs")(x)
    return keras.Model(inp, out, name=spec.name)


def logits_model(model: keras.Model) -> keras.Model:
    """The same network ending at the logits (training computes CTC on logits)."""
    return keras.Model(model.input, model.get_layer("logits").output)


def copy_weights(src: keras.Model, dst: keras.Model, skip=(RNN_NAME,)):
    """Copy weights layer by layer (by name) except `skip`."""
    for layer in dst.layers:
        if layer.name in skip or not layer.weights:
            continue
        layer.set_weights(src.get_layer(layer.name).get_weights())


def lstm_tensors(model: keras.Model) -> dict:
    """The projected LSTM's weights in TFLite UNIDIRECTIONAL_SEQUENCE_LSTM layout, keyed by input slot:
    1-4 input->gate (N, F), 5-8 recurrent->gate (N, P), 12-15 gate bias (N,), 16 projection (P, N);
    gates in TFLite order input, forget, cell, output (= tf_keras i, f, g, o)."""
    cell = model.get_layer(RNN_NAME).cell
    k, r, b, p = (np.asarray(w.numpy(), np.float32) for w in
                  (cell.kernel, cell.recurrent_kernel, cell.bias, cell.projection))
    n = cell.units
    out = {}
    for g in range(4):
        out[1 + g] = np.ascontiguousarray(k[:, g * n:(g + 1) * n].T)
        out[5 + g] = np.ascontiguousarray(r[:, g * n:(g + 1) * n].T)
        out[12 + g] = np.ascontiguousarray(b[g * n:(g + 1) * n])
    out[16] = np.ascontiguousarray(p.T)
    return out
