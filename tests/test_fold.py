"""Constant folding at load: fp16 weights become float32 constants; results are unchanged."""
import os

import numpy as np

import xnn
from xnn.converter import read_tflite
from xnn.converter.fold import fold_constants

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


def test_fp16_dequantize_nodes_fold_away():
    raw = read_tflite(open(os.path.join(FIX, "detector_fp16.tflite"), "rb").read())
    assert sum(n.op == "DEQUANTIZE" for n in raw.nodes) > 0
    g = fold_constants(raw)
    assert not any(n.op == "DEQUANTIZE" for n in g.nodes)
    assert len(g.nodes) == len(raw.nodes) - sum(n.op == "DEQUANTIZE" for n in raw.nodes)
    for n in g.nodes:
        if n.op == "CONV_2D":
            w = g.tensors[n.inputs[1]]
            assert w.dtype == np.float32 and w.data is not None and not w.data.flags.writeable


def test_folded_model_equals_float_model_within_fp16_rounding():
    f32 = xnn.Interpreter(model_path=os.path.join(FIX, "detector_float.tflite"))
    f16 = xnn.Interpreter(model_path=os.path.join(FIX, "detector_fp16.tflite"))
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    for a, b in zip(f32([x]), f16([x])):
        np.testing.assert_allclose(a, b, atol=2e-2)


def test_graph_without_constant_nodes_is_returned_unchanged():
    g = read_tflite(open(os.path.join(FIX, "detector_int8.tflite"), "rb").read())
    assert fold_constants(g) is g
