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


def test_chinese_id_text_model_is_a_compressed_xnn_under_1mb():
    """The ID-card name/address recognizer ships as a .xnn (float kernels, 8-bit weight codes,
    lzma): under 1 MB (the issue's sub-1 MB Chinese model), one softmax per frame over its
    3,700+ characters + blank."""
    p = zoo.path("idcard_name_address.xnn")
    s = zoo.spec("idcard_name_address")
    assert len(open(p, "rb").read()) <= 1_000_000
    assert len(s["charset"]) > 3500 and "京" in s["charset"] and "0" in s["charset"]
    it = xnn.Interpreter(model_path=p)
    d = it.get_input_details()[0]
    assert list(d["shape"]) == [1, 32, s["width"], 1] and d["dtype"] == np.float32
    x = np.random.default_rng(0).random(d["shape"]).astype(np.float32)
    it.reset_all_variables()
    y = it(x)[0][0]
    assert y.shape == (s["frames"], len(s["charset"]) + 1)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-4)
