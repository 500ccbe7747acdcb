"""The recognizer pipeline without TensorFlow: a small trained CRNN with a projected LSTM (exported by
models.export: converter + LSTM graft, see models/export.py) runs in xnn exactly as in LiteRT, and
the preprocessing / decoding helpers of models.rec_spec behave.

Fixture (tests/fixtures/rec/recognizer_projlstm_*; not in fixtures/seq, whose generic model tests
invoke twice without resetting the LSTM state, which this trained model carries), rebuilt with the
[train] extra by
    python -m models.train recognizer --domain meter --field reading --out runs/fixture_rec \\
        --width 96 --stem 8 --growth 8 --blocks 2,2,2 --trans 16,24,32 --units 32 --proj 16 \\
        --lines 3000 --val 200 --epochs 40
    python -m models.export runs/fixture_rec --fixture tests/fixtures/rec
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import xnn

pytest.importorskip("PIL")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models import rec_spec as rs  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "rec")
NAME = "recognizer_projlstm"
LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"


@pytest.fixture(scope="module")
def fx():
    z = np.load(os.path.join(FIX, NAME + ".npz"))
    return {k: z[k] for k in z.files}


def _spec(fx):
    return rs.RecSpec.from_json(str(fx["spec"]))


def _litert(path, x):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _feed(it, x_u8):
    d = it.get_input_details()[0]
    x = rs.to_input(x_u8[None])
    if d["dtype"] == np.int8:
        s, z = d["quantization"]
        x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
    return x


def test_projected_lstm_node(fx):
    """Both exports hold one fused LSTM with projection weights (P, N), P < N."""
    spec = _spec(fx)
    for kind, wdt in (("float", np.float32), ("int8", np.int8)):
        it = xnn.Interpreter(model_path=os.path.join(FIX, f"{NAME}_{kind}.tflite"))
        nodes = [n for n in it.graph.nodes if n.op == LSTM]
        assert len(nodes) == 1
        proj = it.graph.tensors[nodes[0].inputs[16]]
        assert proj.shape == (spec.proj, spec.units) and proj.dtype == wdt
        if kind == "int8":
            assert len(nodes[0].intermediates) == 5
            cell = it.graph.tensors[nodes[0].inputs[19]]
            assert -15 <= np.log2(cell.quant.s) <= -9  # models.export.fix_cell_scale


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_matches_litert_on_lines(fx, kind):
    """Real lines: xnn == LiteRT (int8 identical, float 1e-5), twice on one interpreter (the LSTM
    state is reset between lines), and equal to the outputs recorded at export."""
    path = os.path.join(FIX, f"{NAME}_{kind}.tflite")
    it = xnn.Interpreter(model_path=path)
    for k, x_u8 in enumerate(fx["x"]):
        x = _feed(it, x_u8)
        exp = _litert(path, x)
        for _ in range(2):
            it.reset_all_variables()
            got = it(x)[0]
            if kind == "int8":
                np.testing.assert_array_equal(got, exp)
                np.testing.assert_array_equal(got[0], fx["litert_int8"][k])
            else:
                np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(got[0], fx["litert_float"][k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_decodes_like_export(fx, kind):
    """xnn + xnn.ctc.greedy_decode give the texts LiteRT gave at export; the trained model reads
    most held-out meter lines."""
    spec = _spec(fx)
    it = xnn.Interpreter(model_path=os.path.join(FIX, f"{NAME}_{kind}.tflite"))
    out = it.get_output_details()[0]
    texts = []
    for x_u8 in fx["x"]:
        it.reset_all_variables()
        y = it(_feed(it, x_u8))[0][0]
        if y.dtype == np.int8:
            lp = xnn.ctc.to_log_probs(y, "probs", scale=out["quantization"][0], zero_point=out["quantization"][1])
        else:
            lp = xnn.ctc.to_log_probs(y, "probs")
        r = xnn.ctc.greedy_decode(lp, blank=spec.blank)
        texts.append("".join(spec.charset[k] for k in r.labels))
    assert texts == list(fx[f"text_{kind}"])
    assert rs.accuracy(texts, list(fx["truth"]))["char_acc"] >= 0.8


def test_int8_close_to_float(fx):
    """Int8 reads the recorded lines about as well as float (at most one line of eight differs)."""
    assert sum(a != b for a, b in zip(fx["text_int8"], fx["text_float"])) <= 1


# ---- rec_spec helpers ------------------------------------------------------------------------

def test_prepare_line_shapes_and_padding():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (48, 600, 3), dtype=np.uint8)
    out = rs.prepare_line(wide, 160)
    assert out.shape == (32, 160) and out.dtype == np.uint8
    narrow = np.full((32, 40), 200, np.uint8)
    narrow[8:24, 10:30] = 20
    out = rs.prepare_line(narrow, 128)
    assert out.shape == (32, 128)
    assert out[:, :40].min() == 0 and out[:, :40].max() == 255  # stretched to the full range
    assert np.all(out[:, 40:] == np.median(out[:, :40]))       # padded with the median
    flat = np.full((32, 50), 77, np.uint8)                       # no contrast: left as is
    assert np.all(rs.prepare_line(flat, 64) == 77)


def test_greedy_text_merges_repeats_and_drops_blank():
    cs = "0123456789"
    blank = len(cs)
    frames = [1, 1, blank, 1, 2, 2, blank, blank, 3]
    y = np.eye(len(cs) + 1)[frames]
    assert rs.greedy_text(y, cs) == "1123"
    lp = np.log(np.clip(y, 1e-9, 1))
    r = xnn.ctc.greedy_decode(lp, blank=blank)
    assert "".join(cs[k] for k in r.labels) == "1123"


def test_label_batch_and_accuracy():
    spec = rs.RecSpec(name="t", domain="card", fields=("number",), charset="0123456789 ", width=64,
                      max_label=6)
    lab, lens = rs.label_batch(["12 3", "9876543"], spec)
    assert lab.shape == (2, 6) and list(lens) == [4, 6]
    assert list(lab[0, :4]) == [1, 2, 10, 3]
    acc = rs.accuracy(["1234", "99"], ["1234", "98"])
    assert acc["seq_acc"] == 0.5 and acc["char_acc"] == pytest.approx(1 - 1 / 6)
    assert rs.edit_distance("kitten", "sitting") == 3


def test_spec_json_round_trip():
    spec = rs.RecSpec(name="t", domain="card", fields=("number",), charset="0123456789 ", width=256)
    back = rs.RecSpec.from_json(spec.to_json())
    assert back == spec and back.frames == 64 and back.blank == 11 and back.se_pool == "global"
    col = rs.make_spec("card", "expiry,name", se_pool="column")
    assert rs.RecSpec.from_json(col.to_json()).se_pool == "column"
    # the pooling is architecture, not data: the rendered-line cache is shared
    assert col.cache_name == rs.make_spec("card", "expiry,name").cache_name
