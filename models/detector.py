"""The xNN-OCR text detector (tf_keras): a lightweight FCN with ShuffleNet-style units and a small
FPN, predicting at 1/4 resolution a text-kernel score and EAST RBOX geometry (models.det_targets).

    gray page (H, W, 1)
    stem    3x3 conv s2, BN, ReLU                           1/2   widths[0]
    down    depthwise 3x3 s2, BN -> 1x1 conv, BN, ReLU       1/4   widths[1]  ──► c2
    down + units[0] shuffle units                           1/8   widths[2]  ──► c3
    down + units[1] shuffle units                           1/16  widths[3]  ──► c4
    down + units[2] shuffle units                           1/32  widths[4]
    FPN     p = 1x1 conv(c5); p = 1x1 conv(concat(up2(p), c_k)) for k = 4, 3, 2 (fpn ch, ReLU)
    head    depthwise 3x3 + 1x1 conv (fpn ch, ReLU); 1x1 conv -> 1 logit -> sigmoid (score);
            1x1 conv -> 5 linear (4 log-distances, θ); concat -> (H/4, W/4, 6)

Shuffle unit (ShuffleNet v1, stride 1): y = ReLU(x + BN(1x1 gconv(DW3x3(shuffle(ReLU(BN(1x1 gconv(x)))))))),
group convs with `groups` groups; shuffle(x) = reshape (h, w, g, c/g) -> transpose the last two axes ->
reshape (h, w, c), which the converter emits as RESHAPE, TRANSPOSE, RESHAPE (xnn: CHANNEL_SHUFFLE).
Upsampling is nearest-neighbour x2 (UpSampling2D). Every BN follows a conv and folds into it.

Loss: (1 - dice) on the score, dice = 2 Σ m p y / (Σ m p + Σ m y + ε) with the ignore mask m, plus
geometry on kernel pixels: smooth-L1 of the 4 log-distances (a relative error of the distances) and
10 (1 - cos(θ - θ*)), averaged over kernel pixels.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras import layers as L  # noqa: E402

from .det_targets import DetSpec  # noqa: E402


def _bn(x):
    return L.BatchNormalization(momentum=0.95, epsilon=1e-3)(x)


def _shuffle(x, g):
    _, h, w, c = x.shape
    x = L.Reshape((h, w, g, c // g))(x)
    x = L.Permute((1, 2, 4, 3))(x)
    return L.Reshape((h, w, c))(x)


def _down(x, ch):
    x = _bn(L.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x))
    return L.ReLU()(_bn(L.Conv2D(ch, 1, use_bias=False)(x)))


def _unit(x, g):
    c = x.shape[-1]
    y = L.ReLU()(_bn(L.Conv2D(c, 1, groups=g, use_bias=False)(x)))
    y = _shuffle(y, g)
    y = _bn(L.DepthwiseConv2D(3, padding="same", use_bias=False)(y))
    y = _bn(L.Conv2D(c, 1, groups=g, use_bias=False)(y))
    return L.ReLU()(L.Add()([x, y]))


def build(spec: DetSpec, batch=None) -> keras.Model:
    inp = keras.Input((spec.height, spec.width, 1), batch_size=batch, name="image")
    w = spec.widths
    x = L.ReLU()(_bn(L.Conv2D(w[0], 3, strides=2, padding="same", use_bias=False)(inp)))
    feats = []
    x = _down(x, w[1])
    feats.append(x)
    for ch, n in zip(w[2:], spec.units):
        x = _down(x, ch)
        for _ in range(n):
            x = _unit(x, spec.groups)
        feats.append(x)
    p = L.ReLU()(_bn(L.Conv2D(spec.fpn, 1, use_bias=False)(feats[-1])))
    for c in reversed(feats[:-1]):
        p = L.Concatenate()([L.UpSampling2D(2, interpolation="nearest")(p), c])
        p = L.ReLU()(_bn(L.Conv2D(spec.fpn, 1, use_bias=False)(p)))
    p = _bn(L.DepthwiseConv2D(3, padding="same", use_bias=False)(p))
    p = L.ReLU()(_bn(L.Conv2D(spec.fpn, 1, use_bias=False)(p)))
    score = L.Conv2D(1, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(-2.0), name="score")(p)
    geo = L.Conv2D(5, 1, name="geo")(p)
    out = L.Concatenate(name="det")([score, geo])
    return keras.Model(inp, out, name=spec.name)


def loss_fn(out, score, mask, geo):
    """out (B, H', W', 6) model output; score, mask (B, H', W', 1), geo (B, H', W', 5) targets.
    Returns (total, dice loss, geometry loss)."""
    p = out[..., :1]
    inter = tf.reduce_sum(mask * p * score)
    dice = 1.0 - 2.0 * inter / (tf.reduce_sum(mask * p) + tf.reduce_sum(mask * score) + 1e-5)
    k = score[..., 0]
    n = tf.reduce_sum(k) + 1.0
    e = tf.abs(out[..., 1:5] - geo[..., :4])
    sl1 = tf.reduce_sum(tf.where(e < 1.0, 0.5 * e * e, e - 0.5), -1)
    ang = 1.0 - tf.cos(out[..., 5] - geo[..., 4])
    g = tf.reduce_sum(k * (sl1 + 10.0 * ang)) / n
    return dice + g, dice, g
