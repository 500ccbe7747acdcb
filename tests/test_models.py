"""End-to-end: the committed fixture models (tests/fixtures/make_fixtures.py) run in xnn exactly as
in LiteRT's reference kernels: int8 outputs identical, float within tolerance."""
import glob
import os

import numpy as np
import pytest

import xnn
from oracle import run_litert

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "*.tflite")) +
                  glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "seq", "*.tflite")))
# whole-model float tolerances: float32 kernels sum in a different order than LiteRT's; hybrid
# (dynamic-range) models quantize activations on the fly, so one rounding flip moves an output by a
# quantization step of the weights.
TOL = {"float": (1e-4, 1e-5), "fp16": (1e-4, 1e-5), "int8_fio": (0, 0), "int8": (0, 0),
       "dynamic": (2e-2, 2e-3)}


def _inputs(it, seed):
    rng = np.random.default_rng(seed)
    feeds = []
    for d in it.get_input_details():
        if d["dtype"] == np.int8:
            feeds.append(rng.integers(-128, 128, d["shape"], dtype=np.int8))
        else:
            feeds.append(rng.uniform(0, 1, d["shape"]).astype(np.float32))
    return feeds


def test_fixtures_exist():
    assert len(FIXTURES) >= 20, "run tests/fixtures/make_fixtures.py"


@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p)[:-7] for p in FIXTURES])
def test_model_matches_litert(path):
    name = os.path.basename(path)[:-7]
    kind = next(k for k in TOL if name.endswith("_" + k))
    it = xnn.Interpreter(model_path=path)
    content = open(path, "rb").read()
    for seed in range(3):
        feeds = _inputs(it, seed)
        it.reset_all_variables()  # LSTM state persists across invokes; LiteRT below starts fresh
        got = it(feeds)
        exp = run_litert(content, feeds)
        for g, e in zip(got, exp):
            assert g.dtype == e.dtype and g.shape == e.shape
            rtol, atol = TOL[kind]
            if rtol == 0:
                np.testing.assert_array_equal(g, e)
            else:
                np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("path", [p for p in FIXTURES if p.endswith("_int8.tflite")])
def test_tflite_api_surface(path):
    """The tf.lite-style calls give the same answer as the plain call, and detail dicts are complete."""
    it = xnn.Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    ind = it.get_input_details()
    outd = it.get_output_details()
    for d in ind + outd:
        assert {"name", "index", "shape", "dtype", "quantization", "quantization_parameters"} <= set(d)
        assert d["quantization"][0] > 0  # int8 model: quantized I/O
    feeds = _inputs(it, 7)
    for d, x in zip(ind, feeds):
        it.set_tensor(d["index"], x)
    it.invoke()
    a = [it.get_tensor(d["index"]) for d in outd]
    it.reset_all_variables()  # recurrent models carry state from one invoke to the next
    b = it(feeds)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_resize_tensor_input_matches_litert():
    """resize_tensor_input (batch and spatial) then allocate_tensors: same outputs as LiteRT resized
    the same way, on a conv whose weights do not depend on the input size."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType
    from oracle import one_op_model, spec

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    m = one_op_model("CONV_2D", [spec("x", (1, 5, 5, 2), np.float32), spec("w", None, np.float32, data=w),
                                 spec("b", None, np.float32, data=np.zeros(4, np.float32))],
                     [spec("y", (1, 3, 3, 4), np.float32)],
                     options={"padding": 0, "stride_w": 2, "stride_h": 2, "fused_activation_function": 1})
    x = rng.normal(size=(3, 9, 7, 2)).astype(np.float32)
    it = xnn.Interpreter(model_content=m)
    it.resize_tensor_input(0, x.shape)
    it.allocate_tensors()
    got = it([x])[0]
    lt = LiteRT(model_content=m, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lt.resize_tensor_input(0, x.shape)
    lt.allocate_tensors()
    lt.set_tensor(lt.get_input_details()[0]["index"], x)
    lt.invoke()
    exp = lt.get_tensor(lt.get_output_details()[0]["index"])
    assert got.shape == exp.shape == (3, 5, 4, 4)
    np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-5)


def test_validate_mode_runs_reference(monkeypatch):
    """XNN_VALIDATE=1 checks every kernel against its NumPy reference during invoke."""
    monkeypatch.setenv("XNN_VALIDATE", "1")
    path = [p for p in FIXTURES if p.endswith("detector_int8.tflite")][0]
    it = xnn.Interpreter(model_path=path)
    it(_inputs(it, 3))
