"""The shipped models load from the package and run in xnn exactly as in LiteRT."""
import numpy as np
import pytest

import xnn
from oracle import run_litert
from xnn import zoo


def test_card_number_model_runs_and_matches_litert():
    p = zoo.path("card_number_int8.tflite")
    s = zoo.spec("card_number")
    it = xnn.Interpreter(model_path=p)
    d = it.get_input_details()[0]
    assert list(d["shape"]) == [1, 32, s["width"], 1]
    out_shape = it.get_output_details()[0]["shape"]
    assert out_shape[-1] == len(s["charset"]) + 1 and out_shape[1] == s["frames"]
    x = np.random.default_rng(0).integers(-128, 128, d["shape"]).astype(np.int8)
    it.reset_all_variables()
    np.testing.assert_array_equal(it(x)[0], run_litert(open(p, "rb").read(), [x])[0])
    assert len(open(p, "rb").read()) <= 300 * 1024


def test_missing_model_is_a_clear_error():
    with pytest.raises(xnn.XnnError, match="no shipped model"):
        zoo.path("nope.tflite")
