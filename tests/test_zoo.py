"""The shipped models load from the package and run in xnn exactly as in LiteRT."""
import numpy as np
import pytest

import xnn
from oracle import run_litert
from xnn import zoo


RECOGNIZERS = ("card_number", "card_expiry_name", "meter_reading", "plate_plate", "vin_vin", "idcard_id_number")
LIMITS = {"plate_plate": 500 * 1024, "vin_vin": 500 * 1024}    # digit models: 300 KB


@pytest.mark.parametrize("name", RECOGNIZERS)
def test_recognizer_model_runs_and_matches_litert(name):
    """Every shipped int8 recognizer: the input/output shapes its spec names, the size target, and
    xnn's output equal to LiteRT's reference kernels (whatever ops its architecture uses, e.g. the
    per-column squeeze-excitation of RecSpec.se_pool)."""
    p = zoo.path(f"{name}_int8.tflite")
    s = zoo.spec(name)
    it = xnn.Interpreter(model_path=p)
    d = it.get_input_details()[0]
    assert list(d["shape"]) == [1, 32, s["width"], 1]
    out_shape = it.get_output_details()[0]["shape"]
    assert out_shape[-1] == len(s["charset"]) + 1 and out_shape[1] == s["frames"]
    x = np.random.default_rng(0).integers(-128, 128, d["shape"]).astype(np.int8)
    it.reset_all_variables()
    np.testing.assert_array_equal(it(x)[0], run_litert(open(p, "rb").read(), [x])[0])
    assert len(open(p, "rb").read()) <= LIMITS.get(name, 300 * 1024)


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


def test_an_int8_xnn_finds_its_spec(tmp_path):
    """A model shipped as NAME_int8.xnn (the engine prefers it over NAME_int8.tflite) reads NAME.json."""
    import shutil
    import subprocess
    import sys

    from xnn.ocr.engine import _load_spec

    out = tmp_path / "detector_int8.xnn"
    r = subprocess.run([sys.executable, "-m", "xnn.cli", "convert", zoo.path("detector_int8.tflite"), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(xnn.XnnError, match="no JSON spec"):
        _load_spec(str(out), None)
    shutil.copy(zoo.path("detector.json"), tmp_path / "detector.json")
    assert _load_spec(str(out), None) == zoo.spec("detector")
