"""models.train's --train-only selection of the variables a fine-tune updates (its TensorFlow half
is not installed for the tests; the selection only reads variable names and shapes)."""
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models.train import trained_variables  # noqa: E402


def _model():
    names = {"stem_conv/kernel:0": (3, 3, 1, 16), "stem_bn/gamma:0": (16,), "stem_bn/beta:0": (16,),
             "logits/kernel:0": (96, 40), "logits/bias:0": (40,), "lstm/proj_lstm_cell/bias:0": (768,)}
    return SimpleNamespace(trainable_variables=[SimpleNamespace(name=n, shape=s) for n, s in names.items()])


def test_all_variables_without_train_only():
    m = _model()
    assert trained_variables(m, SimpleNamespace(train_only=None), print) == m.trainable_variables


def test_train_only_keeps_the_matching_variables_and_logs_their_size():
    logged = []
    got = trained_variables(_model(), SimpleNamespace(train_only="gamma|beta|bias"), logged.append)
    assert [v.name for v in got] == ["stem_bn/gamma:0", "stem_bn/beta:0", "logits/bias:0",
                                     "lstm/proj_lstm_cell/bias:0"]
    assert "4 of 6 variables" in logged[0] and f"{16 + 16 + 40 + 768:,} parameters" in logged[0]
    assert int(np.prod(got[-1].shape)) == 768


@pytest.mark.parametrize("pattern, message", [("nothing_like_this", "matches none"),
                                              ("bias(", "not a regular expression")])
def test_train_only_errors(pattern, message):
    with pytest.raises(SystemExit, match=message):
        trained_variables(_model(), SimpleNamespace(train_only=pattern), print)


# ---- --qat-learn-grid: the straight-through (LSQ) gradients of a learned per-channel grid ----------

def _grid_grads_by_hand(w, lo, step, g, K1):
    """per channel (rows), one weight at a time: the rule grid_grads states"""
    d_lo, d_step, g_w = np.zeros((w.shape[0], 1)), np.zeros((w.shape[0], 1)), np.zeros_like(g)
    for c in range(w.shape[0]):
        for k in range(w.shape[1]):
            u = (w[c, k] - lo[c, 0]) / step[c, 0]
            if u < 0:
                d_lo[c] += g[c, k]
            elif u > K1:
                d_lo[c] += g[c, k]
                d_step[c] += g[c, k] * K1
            else:
                d_step[c] += g[c, k] * (np.round(u) - u)
                g_w[c, k] = g[c, k]
    return d_lo, d_step, g_w


def test_grid_grads_match_the_rule_weight_by_weight():
    from models.train import grid_grads

    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 40))
    lo = np.quantile(w, 0.1, axis=1, keepdims=True)           # a range that clips some weights each side
    step = (np.quantile(w, 0.9, axis=1, keepdims=True) - lo) / 7
    g = rng.normal(size=w.shape)
    got = grid_grads(np, w, lo, step, g, 7.0, (1,))
    want = _grid_grads_by_hand(w, lo, step, g, 7.0)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert (got[2] == 0).sum() > 0 and (got[2] != 0).sum() > 0   # both kinds of weights are present


def test_grid_grads_are_the_derivative_of_the_clipped_part():
    """Where every weight is clipped, w_q = lo (below) or lo + K1·step (above) exactly, so the
    straight-through gradient is the true one: check it against finite differences."""
    from models.train import grid_grads

    w = np.array([[-3.0, -2.5, 4.0, 5.0]])
    lo, step, K1 = np.array([[-1.0]]), np.array([[0.25]]), 7.0
    g = np.array([[0.3, -0.7, 1.1, 0.2]])

    def loss(lo_, st_):
        q = np.clip(np.round((w - lo_) / st_), 0, K1)
        return float((g * (lo_ + st_ * q)).sum())

    d_lo, d_step, g_w = grid_grads(np, w, lo, step, g, K1, (1,))
    e = 1e-6
    assert d_lo[0, 0] == pytest.approx((loss(lo + e, step) - loss(lo - e, step)) / (2 * e), rel=1e-6)
    assert d_step[0, 0] == pytest.approx((loss(lo, step + e) - loss(lo, step - e)) / (2 * e), rel=1e-6)
    assert not g_w.any()


@pytest.mark.parametrize("grid_from, message", [(None, "needs --qat-grid-from"), ("runs/x", "needs a QAT plan")])
def test_learn_grid_needs_a_start_grid_and_a_plan(tmp_path, grid_from, message):
    from models.train import qat_hooks

    a = SimpleNamespace(qat_bits=0, qat_bits_for=None, qat_min_size=0, out=str(tmp_path), qat_grid="float",
                        qat_grid_from=grid_from, qat_learn_grid=1e-4)
    with pytest.raises(SystemExit, match=message):
        qat_hooks(None, SimpleNamespace(layers=[]), a, lambda s: None)
