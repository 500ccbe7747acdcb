"""The TFLite reader and writer round-trip every option of the ops xnn writes."""
import importlib
import re

import numpy as np
import pytest

from xnn.converter import read_tflite
from xnn.converter.tflite_reader import _snake
from xnn.converter.tflite_writer import OP_OPTIONS, _camel
from oracle import one_op_model, spec


@pytest.mark.parametrize("cls", sorted(set(OP_OPTIONS.values())))
def test_option_names_round_trip(cls):
    mod = importlib.import_module(f"tflite.{cls}")
    fields = [a[len(cls) + 3:] for a in dir(mod) if a.startswith(f"{cls}Add")]
    for f in fields:  # (some option tables have no fields)
        assert _camel(_snake(f)) == f


def test_dilation_option_survives_a_round_trip():
    m = one_op_model("CONV_2D", [spec("x", (1, 9, 9, 1), np.float32),
                                 spec("w", None, np.float32, data=np.ones((1, 3, 3, 1), np.float32)),
                                 spec("b", None, np.float32, data=np.zeros(1, np.float32))],
                     [spec("y", (1, 5, 5, 1), np.float32)],
                     options={"padding": 1, "stride_w": 1, "stride_h": 1, "dilation_w_factor": 2,
                              "dilation_h_factor": 2})
    opts = read_tflite(m).nodes[0].options
    assert opts["dilation_w_factor"] == 2 and opts["dilation_h_factor"] == 2
    assert re.fullmatch(r"[a-z0-9_]+", "".join(opts))
