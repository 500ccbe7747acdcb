"""The xnn command line: info, run, errors without tracebacks."""
import os
import subprocess
import sys

import numpy as np

FIX = os.path.join(os.path.dirname(__file__), "fixtures")


def xnn(*args):
    return subprocess.run([sys.executable, "-m", "xnn.cli", *args], capture_output=True, text=True)


def test_info_prints_op_table_and_totals():
    r = xnn("info", os.path.join(FIX, "detector_int8.tflite"))
    assert r.returncode == 0, r.stderr
    assert "CONV_2D" in r.stdout and "CHANNEL_SHUFFLE" in r.stdout and "MACs:" in r.stdout
    assert "activation arena:" in r.stdout


def test_run_saves_outputs_equal_to_the_api(tmp_path):
    import xnn as x

    inp = tmp_path / "x.npy"
    data = np.random.default_rng(0).integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
    np.save(inp, data)
    out = tmp_path / "y.npz"
    r = xnn("run", os.path.join(FIX, "classifier_int8.tflite"), "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    saved = np.load(out)
    expect = x.Interpreter(model_path=os.path.join(FIX, "classifier_int8.tflite"))(data)[0]
    np.testing.assert_array_equal(list(saved.values())[0], expect)


def test_errors_are_one_line_and_nonzero(tmp_path):
    bad = tmp_path / "not.npy"
    bad.write_text("hello")
    for args in (("run", str(tmp_path / "missing.tflite")),
                 ("run", os.path.join(FIX, "classifier_int8.tflite"), "--input", str(bad)),
                 ("info", str(bad))):
        r = xnn(*args)
        assert r.returncode == 1
        assert r.stderr.startswith("xnn: error:") and "Traceback" not in r.stderr


def test_help_lists_commands():
    r = xnn("--help")
    assert r.returncode == 0 and "info" in r.stdout and "run" in r.stdout and "convert" in r.stdout


def test_convert_report_then_info_and_run_the_xnn(tmp_path):
    import xnn as x

    src = os.path.join(FIX, "classifier_int8.tflite")
    out = tmp_path / "model.xnn"
    r = xnn("convert", src, "-o", str(out), "--report")
    assert r.returncode == 0, r.stderr
    assert "[1/3] read" in r.stderr and f"[3/3] wrote {out}" in r.stderr
    assert out.read_bytes()[:4] == b"XNNF"
    assert "weights before" in r.stdout and "weights after" in r.stdout and "CONV_2D" in r.stdout
    assert "weight bytes:" in r.stdout and f"-> {out.stat().st_size:,} bytes (" in r.stdout

    r = xnn("info", str(out))
    assert r.returncode == 0, r.stderr
    assert ".xnn format" in r.stdout and "CHANNEL_SHUFFLE" in r.stdout and "activation arena:" in r.stdout

    inp = tmp_path / "x.npy"
    data = np.random.default_rng(1).integers(-128, 128, (1, 32, 32, 1)).astype(np.int8)
    np.save(inp, data)
    r = xnn("run", str(out), "--input", str(inp), "--output", str(tmp_path / "y.npz"))
    assert r.returncode == 0, r.stderr
    expect = x.Interpreter(model_path=src)(data)[0]
    np.testing.assert_array_equal(list(np.load(tmp_path / "y.npz").values())[0], expect)


def test_convert_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    for args, msg in ((("convert", str(bad), "-o", str(tmp_path / "o.xnn")), "TFL3"),
                      (("convert", os.path.join(FIX, "detector_int8.tflite"), "-o",
                        str(tmp_path / "no" / "dir" / "o.xnn")), "cannot write")):
        r = xnn(*args)
        last = r.stderr.splitlines()[-1]
        assert r.returncode == 1 and last.startswith("xnn: error:") and msg in last, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.xnn").exists()
