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
