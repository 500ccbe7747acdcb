"""Bad models and bad inputs fail with xnn.XnnError and a clear message: never another exception,
a crash, or a silent wrong answer."""
import glob
import os

import numpy as np
import pytest

import xnn
from oracle import one_op_model, spec
from xnn import XnnError

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
GOOD = os.path.join(FIX, "classifier_int8.tflite")


def _bytes(path=GOOD):
    with open(path, "rb") as f:
        return f.read()


def _relu_model(**kw):
    return one_op_model("RELU", [spec("x", (1, 4), np.float32)], [spec("y", (1, 4), np.float32)], **kw)


@pytest.mark.parametrize("content,msg", [
    (b"", "only 0 bytes"),
    (b"\x00" * 3, "only 3 bytes"),
    (b"hello world, not a model at all", "TFL3"),
    (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "TFL3"),
])
def test_garbage(content, msg):
    with pytest.raises(XnnError, match=msg):
        xnn.Interpreter(model_content=content)


def test_not_bytes():
    with pytest.raises(XnnError, match="bytes"):
        xnn.Interpreter(model_content=12345)


def test_missing_file(tmp_path):
    with pytest.raises(XnnError, match="cannot read model file"):
        xnn.Interpreter(model_path=str(tmp_path / "nope.tflite"))


def test_both_or_neither_source():
    with pytest.raises(XnnError, match="exactly one"):
        xnn.Interpreter()


@pytest.mark.parametrize("cut", [8, 16, 64, 512, 4096, -100, -1])
def test_truncated(cut):
    data = _bytes()
    with pytest.raises(XnnError):
        xnn.Interpreter(model_content=data[:cut])


def test_custom_op_rejected_by_name():
    m = one_op_model("CUSTOM:MyFancyOp", [spec("x", (1, 4), np.float32)], [spec("y", (1, 4), np.float32)])
    with pytest.raises(XnnError, match=r"custom op CUSTOM:MyFancyOp.*version 1"):
        xnn.Interpreter(model_content=m)


def test_unsupported_builtin_rejected_by_name():
    m = one_op_model("COS", [spec("x", (1, 4), np.float32)], [spec("y", (1, 4), np.float32)])
    with pytest.raises(XnnError, match=r"#0 COS.*unsupported op COS \(version 1\)"):
        xnn.Interpreter(model_content=m)


def test_unsupported_version_rejected():
    m = _relu_model(version=99)
    with pytest.raises(XnnError, match="version 99"):
        xnn.Interpreter(model_content=m)


def _patch_graph(mutate):
    """Write the RELU model after letting `mutate` alter the IR graph (bypassing reader checks)."""
    from xnn.converter import read_tflite
    from xnn.converter.tflite_writer import write_tflite

    g = read_tflite(_relu_model())
    return write_tflite(mutate(g))


def test_tensor_index_out_of_range():
    from dataclasses import replace

    m = _patch_graph(lambda g: replace(g, nodes=(replace(g.nodes[0], inputs=(7,)),)))
    with pytest.raises(XnnError, match="tensor index 7 out of range"):
        xnn.Interpreter(model_content=m)


def test_graph_io_index_out_of_range():
    from dataclasses import replace

    m = _patch_graph(lambda g: replace(g, outputs=(42,)))
    with pytest.raises(XnnError, match="42 out of range"):
        xnn.Interpreter(model_content=m)


def test_buffer_size_mismatch():
    from dataclasses import replace

    def mutate(g):
        w = replace(g.tensors[0], shape=(2, 2), data=np.zeros(3, np.float32))  # 12 bytes for 4 floats
        return replace(g, tensors=(w,) + g.tensors[1:], inputs=())
    with pytest.raises(XnnError, match="holds 12 bytes"):
        xnn.Interpreter(model_content=_patch_graph(mutate))


def test_declared_shape_inconsistent_with_op():
    from dataclasses import replace

    m = _patch_graph(lambda g: replace(g, tensors=(g.tensors[0], replace(g.tensors[1], shape=(1, 5)))))
    with pytest.raises(XnnError, match=r"\(1, 4\) but the model declares \(1, 5\)"):
        xnn.Interpreter(model_content=m)


def test_wrong_input_dtype_and_shape():
    it = xnn.Interpreter(model_content=_relu_model())
    with pytest.raises(XnnError, match="dtype float32, got int8"):
        it(np.zeros((1, 4), np.int8))
    with pytest.raises(XnnError, match=r"shape \[1, 4\], got \[1, 5\]"):
        it(np.zeros((1, 5), np.float32))
    with pytest.raises(XnnError, match="takes 1 inputs, got 2"):
        it(np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32))
    with pytest.raises(XnnError, match="out of range"):
        it.set_tensor(99, np.zeros((1, 4), np.float32))
    with pytest.raises(XnnError, match="not a model input"):
        it.set_tensor(1, np.zeros((1, 4), np.float32))
    with pytest.raises(XnnError, match="unknown input"):
        it({"bogus": np.zeros((1, 4), np.float32)})


def test_invoke_after_resize_needs_allocate():
    it = xnn.Interpreter(model_content=_relu_model())
    it.resize_tensor_input(0, [2, 4])
    with pytest.raises(XnnError, match="allocate_tensors"):
        it.invoke()
    it.allocate_tensors()
    y = it(np.array([[-1, 2, -3, 4], [5, -6, 7, -8]], np.float32))[0]
    np.testing.assert_array_equal(y, [[0, 2, 0, 4], [5, 0, 7, 0]])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(FIX, "*_int8.tflite"))))
def test_fuzz_byte_flips(path):
    """Flip random bytes of a valid model: loading and running either works or raises XnnError."""
    data = bytearray(_bytes(path))
    rng = np.random.default_rng(1)
    outcomes = {"ok": 0, "error": 0}
    for trial in range(int(os.environ.get("XNN_FUZZ_TRIALS", 150))):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=int(rng.integers(1, 4))):
            bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            it = xnn.Interpreter(model_content=bytes(bad))
            feeds = [np.zeros(d["shape"], d["dtype"]) for d in it.get_input_details()]
            it(feeds)
            outcomes["ok"] += 1
        except XnnError:
            outcomes["error"] += 1
    assert outcomes["ok"] + outcomes["error"] > 0


def test_kernel_runtime_failure_becomes_xnn_error():
    """Whatever a kernel raises on values it cannot handle reaches the caller as XnnError + node."""
    it = xnn.Interpreter(model_content=_relu_model())

    def boom(ins, outs):
        raise ZeroDivisionError("division by zero")
    _, ins, outs = it._plan[0]
    it._plan[0] = (boom, ins, outs)
    with pytest.raises(XnnError, match=r"node #0 RELU failed at run time: ZeroDivisionError"):
        it(np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("offset,size", [(10**7, 16), (2, 10**9), (100, 2**40)])
def test_external_buffer_out_of_file(monkeypatch, offset, size):
    """A buffer stored outside the flatbuffer (offset/size fields) that points past the end of the
    file is rejected before anything reads it."""
    import tflite

    def add_external(builder, data):
        tflite.BufferAddOffset(builder, offset)
        tflite.BufferAddSize(builder, size)
    monkeypatch.setattr(tflite, "BufferAddData", add_external)
    m = one_op_model("RESHAPE", [spec("x", (2, 2), np.float32), spec("s", None, np.int32, data=[4])],
                     [spec("y", (4,), np.float32)])
    monkeypatch.undo()
    with pytest.raises(XnnError, match="beyond end of file"):
        xnn.Interpreter(model_content=m)
