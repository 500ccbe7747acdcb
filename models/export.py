"""Export a trained recognizer (float32 and full-int8 .tflite with a fused projected LSTM) or detector.

    python -m models.export runs/det                       # detector run (its spec.json has "fpn")
    python -m models.export runs/det_tiny --fixture tests/fixtures/det

Detector: writes detector_float.tflite, detector_int8.tflite (int8 input and output) and
detector.json (models.det_targets.DetSpec), checks float LiteRT against Keras and reports
precision/recall/F at IoU 0.5 of both models on held-out pages (CALIB_SEED pages calibrate, TEST_SEED
pages check).

    python -m models.export runs/card_rec                  # -> runs/card_rec/export/
    python -m models.export runs/card_rec --calib 300 --check 200

Writes <name>_float.tflite, <name>_int8.tflite (int8 input and output) and <name>.json (the spec:
charset, width, blank, preprocessing in models.rec_spec), then checks that LiteRT runs both: the
float model against Keras (max |Δp| <= 1e-4) and the greedy texts of float vs int8 on held-out lines.

Why a graft: the TF converter fuses an LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM only for tf_keras'
own LSTM layer (its `tf.api_implements = "lstm_*"` composite function, legalized by
PrepareCompositeFunctions/ConvertKerasLSTMLayer, which always passes "none" for the projection
weights and bias). The other LSTM annotation it knows, `tf._implements = "LSTMCellSimple"`, becomes
the single-step LSTM op with constant zero state, which cannot carry a sequence. So the network is
converted with a tf_keras LSTM(proj) in the projected LSTM's place (recognizer.build(rnn=
"placeholder")): that node has the right input (F) and output (P) sizes, and `graft_lstm` then
rewrites it in the flatbuffer: the trained (N, F) / (N, P) / (N,) gate tensors, a new (P, N)
projection tensor in input slot 16 and an (1, N) cell state.
For int8, the graft is applied to the float model that the converter hands to its calibrator
(TFLiteConverter._quantize), so the calibrator measures the real projected LSTM (including the
hidden-state intermediate that sets the projection's input scale) and the quantizer emits the
8x8->16 integer LSTM with int8 projection weights.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from . import rec_spec as rs  # noqa: E402

LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"


# ---- flatbuffer surgery -------------------------------------------------------------------------

def graft_lstm(model_bytes: bytes, tensors: dict) -> bytes:
    """Replace the weights of the (only) UNIDIRECTIONAL_SEQUENCE_LSTM in a float .tflite.
    tensors: input slot -> float32 array (recognizer.lstm_tensors): gate weights and biases and the
    projection (slot 16). Each replaced tensor gets a buffer of its own (the converter deduplicates
    equal constant buffers, so a buffer may be shared with another tensor)."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    m = fbu.convert_bytearray_to_object(bytearray(model_bytes))
    code = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    ops = [(sg, op) for sg in m.subgraphs for op in sg.operators
           if max(m.operatorCodes[op.opcodeIndex].builtinCode,
                  m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode) == code]
    if len(ops) != 1:
        raise ValueError(f"expected one {LSTM_OP} node, found {len(ops)}")
    sg, op = ops[0]
    inputs = list(op.inputs) + [-1] * (24 - len(op.inputs))

    def new_tensor(slot, arr, name, variable=False):
        """A fresh tensor for `slot` (the converter shares equal constants between slots)."""
        arr = np.ascontiguousarray(arr, np.float32)
        if inputs[slot] >= 0:
            old = sg.tensors[inputs[slot]]
            if old.type != fb.TensorType.FLOAT32 or old.quantization is not None and old.quantization.scale:
                raise ValueError(f"LSTM input {slot} is not a float tensor: graft before quantizing")
        t = fb.TensorT()
        t.type = fb.TensorType.FLOAT32
        t.name = name.encode()
        t.shape = list(arr.shape)
        t.isVariable = variable
        buf = fb.BufferT()
        if not variable:
            buf.data = np.frombuffer(arr.tobytes(), np.uint8)
        m.buffers.append(buf)
        t.buffer = len(m.buffers) - 1
        sg.tensors.append(t)
        inputs[slot] = len(sg.tensors) - 1

    n_cell, n_out = tensors[5].shape
    n_in = tensors[1].shape[1]
    x_shape = sg.tensors[inputs[0]].shape
    out_state = sg.tensors[inputs[18]]
    if x_shape[-1] != n_in:
        raise ValueError(f"LSTM input size {x_shape[-1]} != trained {n_in}")
    if list(out_state.shape)[-1] != n_out:
        raise ValueError(f"placeholder LSTM output size {list(out_state.shape)} != projection {n_out}")
    names = {1: "input_to_input", 2: "input_to_forget", 3: "input_to_cell", 4: "input_to_output",
             5: "recurrent_to_input", 6: "recurrent_to_forget", 7: "recurrent_to_cell",
             8: "recurrent_to_output", 12: "input_gate_bias", 13: "forget_gate_bias",
             14: "cell_gate_bias", 15: "output_gate_bias", 16: "projection_weights"}
    for slot, nm in names.items():
        new_tensor(slot, tensors[slot], f"lstm/{nm}")
    batch = int(out_state.shape[0])
    new_tensor(19, np.zeros((batch, n_cell), np.float32), "lstm/cell_state", variable=True)
    op.inputs = inputs
    _drop_unused(m)
    return bytes(fbu.convert_object_to_bytearray(m))


def _drop_unused(m):
    """Remove tensors no operator or signature uses, then buffers no tensor or metadata uses."""
    for sg in m.subgraphs:
        used = {int(i) for i in sg.inputs} | {int(i) for i in sg.outputs}
        for op in sg.operators:
            used |= {int(i) for i in op.inputs if i >= 0} | {int(i) for i in op.outputs}
            if op.intermediates is not None:
                used |= {int(i) for i in op.intermediates}
        keep = sorted(used)
        remap = {old: new for new, old in enumerate(keep)}
        sg.tensors = [sg.tensors[i] for i in keep]
        sg.inputs = [remap[i] for i in sg.inputs]
        sg.outputs = [remap[i] for i in sg.outputs]
        for op in sg.operators:
            op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [remap[i] for i in op.intermediates]
        k = m.subgraphs.index(sg)
        for sd in m.signatureDefs or []:
            if sd.subgraphIndex == k:
                for tm in list(sd.inputs or []) + list(sd.outputs or []):
                    tm.tensorIndex = remap[tm.tensorIndex]
    used_b = {0} | {t.buffer for sg in m.subgraphs for t in sg.tensors}
    used_b |= {md.buffer for md in m.metadata or []}
    if m.metadataBuffer is not None:
        used_b |= {int(b) for b in m.metadataBuffer}
    keep_b = sorted(used_b)
    bmap = {old: new for new, old in enumerate(keep_b)}
    m.buffers = [m.buffers[i] for i in keep_b]
    for sg in m.subgraphs:
        for t in sg.tensors:
            t.buffer = bmap[t.buffer]
    for md in m.metadata or []:
        md.buffer = bmap[md.buffer]
    if m.metadataBuffer is not None:
        m.metadataBuffer = [bmap[int(b)] for b in m.metadataBuffer]


# ---- conversion ---------------------------------------------------------------------------------

def _converter(keras_model):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(keras_model)


def _full_int8(conv, calib_x, to_input):
    """Configure a TFLite converter for full-integer int8 (int8 input and output), calibrated on
    the prepared uint8 samples calib_x (to_input makes one a model input)."""
    import tensorflow as tf

    def rep():
        for x in calib_x:
            yield [to_input(x[None])]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8


def convert(trained, spec: rs.RecSpec, calib_x=None) -> bytes:
    """trained: the Keras recognizer (rnn='proj'). calib_x None: float32 model; else (N, 32, W) uint8
    calibration lines -> full-int8 model (int8 input and output)."""
    from . import recognizer as rec

    skel = rec.build(spec, batch=1, rnn="placeholder")
    rec.copy_weights(trained, skel)
    tensors = rec.lstm_tensors(trained)
    conv = _converter(skel)
    if calib_x is None:
        return graft_lstm(conv.convert(), tensors)

    _full_int8(conv, calib_x, rs.to_input)
    quantize = conv._quantize  # the converter's calibrate-and-quantize step on the float flatbuffer

    def graft_then_quantize(result, *a, **kw):
        return quantize(graft_lstm(bytes(result), tensors), *a, **kw)

    conv._quantize = graft_then_quantize
    out = conv.convert()
    if LSTM_OP not in op_names(out):
        raise RuntimeError("int8 model lost its LSTM node")
    return fix_cell_scale(out)


def fix_cell_scale(model_bytes: bytes, lo: int = -15) -> bytes:
    """Coarsen an int16 LSTM cell-state scale below 2^lo to 2^lo.
    The quantizer picks the cell scale 2^k from the calibrated cell range; LiteRT's integer LSTM
    computes tanh(c) only for k in -15..-9 (for other k its tanh buffer keeps the input gate, so
    m = o·i: see xnn/kernels/lstm.py), and small calibrated cells (|c| < 0.5) give k <= -16. A
    coarser power of two only rounds c more coarsely: the kernel derives every cell-related
    multiplier and the quantized cell clip from this scale when it prepares the node."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    m = fbu.convert_bytearray_to_object(bytearray(model_bytes))
    changed = False
    for sg in m.subgraphs:
        for op in sg.operators:
            oc = m.operatorCodes[op.opcodeIndex]
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) != fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
                continue
            t = sg.tensors[op.inputs[19]]
            if t.type != fb.TensorType.INT16 or t.quantization is None:
                continue
            k = int(np.round(np.log2(float(t.quantization.scale[0]))))
            if k < lo:
                t.quantization.scale = np.array([2.0 ** lo], np.float32)
                changed = True
            elif k > -9:
                raise ValueError(f"LSTM cell scale 2^{k} > 2^-9: LiteRT cannot compute tanh(c)")
    return bytes(fbu.convert_object_to_bytearray(m)) if changed else model_bytes


def op_names(model_bytes: bytes) -> list:
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    m = fbu.convert_bytearray_to_object(bytearray(model_bytes))
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    return [names[max(m.operatorCodes[op.opcodeIndex].builtinCode,
                      m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
            for op in m.subgraphs[0].operators]


# ---- running -----------------------------------------------------------------------------------

class LiteRTRunner:
    """Run a recognizer .tflite on prepared lines with LiteRT (reference kernels by default)."""

    def __init__(self, model_bytes: bytes, ref: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kind = OpResolverType.BUILTIN_REF if ref else OpResolverType.AUTO
        self.it = Interpreter(model_content=model_bytes, num_threads=1,
                              experimental_op_resolver_type=kind)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def raw(self, x_u8: np.ndarray) -> np.ndarray:
        """One (32, W) uint8 line -> the raw (T, C+1) output (float32 or int8)."""
        x = rs.to_input(x_u8[None])
        if self.inp["dtype"] == np.int8:
            s, z = self.inp["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        self.it.reset_all_variables()
        self.it.set_tensor(self.inp["index"], x)
        self.it.invoke()
        return self.it.get_tensor(self.out["index"])[0]

    def probs(self, x_u8):
        y = self.raw(x_u8)
        if y.dtype == np.int8:
            s, z = self.out["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y


# ---- detector -----------------------------------------------------------------------------------

def is_detector_run(run_dir: str) -> bool:
    return "fpn" in json.loads(open(os.path.join(run_dir, "spec.json"), encoding="utf-8").read())


def load_detector(run_dir: str):
    from . import det_targets as dt
    from . import detector as det

    spec = dt.DetSpec.from_json(open(os.path.join(run_dir, "spec.json"), encoding="utf-8").read())
    model = det.build(spec)
    model.load_weights(os.path.join(run_dir, "final.weights.h5"))
    return spec, model


def convert_detector(trained, spec, calib_x=None) -> bytes:
    """calib_x None: float32 model; else (N, H, W) uint8 prepared pages -> full-int8 (int8 in/out)."""
    from . import det_targets as dt
    from . import detector as det

    skel = det.build(spec, batch=1)
    skel.set_weights(trained.get_weights())
    conv = _converter(skel)
    if calib_x is not None:
        _full_int8(conv, calib_x, dt.to_input)
    return conv.convert()


def det_outputs(blob: bytes, x_u8) -> tuple:
    """LiteRT (reference kernels) on prepared pages: (raw outputs, dequantized float outputs)."""
    from . import det_targets as dt

    r = LiteRTRunner(blob)
    raw, deq = [], []
    for x in x_u8:
        xi = dt.to_input(x[None])
        if r.inp["dtype"] == np.int8:
            s, z = r.inp["quantization"]
            xi = np.clip(np.round(xi / s) + z, -128, 127).astype(np.int8)
        r.it.set_tensor(r.inp["index"], xi)
        r.it.invoke()
        y = r.it.get_tensor(r.out["index"])[0]
        raw.append(y)
        if y.dtype == np.int8:
            s, z = r.out["quantization"]
            y = (y.astype(np.float32) - z) * s
        deq.append(y)
    return np.stack(raw), np.stack(deq)


def det_prf(outputs, quads, owner, spec) -> dict:
    from .det_targets import post

    tp = n_pred = 0
    for i, y in enumerate(outputs):
        q, _ = post.detect(y, 1.0, spec.stride, spec.d0)
        tp += post.match(q, quads[owner == i])
        n_pred += len(q)
    return post.prf(tp, n_pred, len(quads))


def export_detector(spec, model, out_dir, n_calib=200, n_check=100, log=print) -> dict:
    from . import det_targets as dt

    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    xc = dt.render_set(spec, n_calib, dt.CALIB_SEED)[0]
    xt, qt, ot, _, _ = dt.render_set(spec, n_check, dt.TEST_SEED)
    log(f"rendered {n_calib} calibration + {n_check} check pages in {time.time() - t0:.0f}s")
    models = {"float": convert_detector(model, spec), "int8": convert_detector(model, spec, xc)}
    res = {"bytes": {}}
    for kind, blob in models.items():
        path = os.path.join(out_dir, f"{spec.name}_{kind}.tflite")
        with open(path, "wb") as f:
            f.write(blob)
        res["bytes"][kind] = len(blob)
        log(f"{path}: {len(blob):,} bytes; ops {sorted(set(op_names(blob)))}")
    with open(os.path.join(out_dir, f"{spec.name}.json"), "w", encoding="utf-8") as f:
        f.write(spec.to_json())
    ref = model.predict(dt.to_input(xt), batch_size=8, verbose=0)
    _, yf = det_outputs(models["float"], xt)
    _, yq = det_outputs(models["int8"], xt)
    res["float_vs_keras_max_abs"] = float(np.abs(yf - ref).max())
    res["float"], res["int8"] = det_prf(yf, qt, ot, spec), det_prf(yq, qt, ot, spec)
    log(json.dumps(res))
    if res["float_vs_keras_max_abs"] > 1e-3:
        raise RuntimeError(f"float .tflite differs from Keras by {res['float_vs_keras_max_abs']:.2e}")
    return res


DET_FIXTURE = "detector_tiny"


def write_detector_fixture(spec, model, out_dir, n_pages=2, n_calib=100, log=print):
    """tests/test_detect_post.py's fixture (kept < 100 KB): the int8 .tflite and an npz with n held-out
    prepared pages, their quads, the spec and LiteRT's raw int8 outputs. (xnn's float path is
    checked against LiteRT by `models.evaluate --litert`.)"""
    from . import det_targets as dt

    os.makedirs(out_dir, exist_ok=True)
    xc = dt.render_set(spec, n_calib, dt.CALIB_SEED)[0]
    xt, qt, ot, _, _ = dt.render_set(spec, n_pages, dt.TEST_SEED)
    arrays = {"x": xt, "quads": qt, "owner": ot, "spec": np.array(spec.to_json())}
    for kind, blob in (("int8", convert_detector(model, spec, xc)),):
        path = os.path.join(out_dir, f"{DET_FIXTURE}_{kind}.tflite")
        with open(path, "wb") as f:
            f.write(blob)
        arrays[f"litert_{kind}"], deq = det_outputs(blob, xt)
        log(f"{path}: {len(blob):,} bytes; ops {sorted(set(op_names(blob)))}; {det_prf(deq, qt, ot, spec)}")
    np.savez_compressed(os.path.join(out_dir, f"{DET_FIXTURE}.npz"), **arrays)


# ---- command line ------------------------------------------------------------------------------

def load_trained(run_dir: str):
    from . import recognizer as rec

    spec = rs.RecSpec.from_json(open(os.path.join(run_dir, "spec.json"), encoding="utf-8").read())
    model = rec.build(spec)
    model.load_weights(os.path.join(run_dir, "final.weights.h5"))
    return spec, model


def export(spec, model, out_dir, n_calib=300, n_check=100, log=print) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    xc, _ = rs.render_set(spec, n_calib, rs.CALIB_SEED)
    xt, tt = rs.render_set(spec, n_check, rs.TEST_SEED)
    log(f"rendered {n_calib} calibration + {n_check} check lines in {time.time() - t0:.0f}s")
    models = {"float": convert(model, spec), "int8": convert(model, spec, xc)}
    paths = {}
    for kind, blob in models.items():
        paths[kind] = os.path.join(out_dir, f"{spec.name}_{kind}.tflite")
        with open(paths[kind], "wb") as f:
            f.write(blob)
        log(f"{paths[kind]}: {len(blob):,} bytes; ops {sorted(set(op_names(blob)))}")
    with open(os.path.join(out_dir, f"{spec.name}.json"), "w", encoding="utf-8") as f:
        f.write(spec.to_json())
    # checks: float vs Keras, float vs int8 greedy texts
    ref = model.predict(rs.to_input(xt), batch_size=32, verbose=0)
    fl, q8 = LiteRTRunner(models["float"]), LiteRTRunner(models["int8"])
    pf = np.stack([fl.probs(x) for x in xt])
    pq = [q8.probs(x) for x in xt]
    dmax = float(np.abs(pf - ref).max())
    tf_, tq = [rs.greedy_text(p, spec.charset) for p in pf], [rs.greedy_text(p, spec.charset) for p in pq]
    res = {"float_vs_keras_max_abs": dmax, "float": rs.accuracy(tf_, tt), "int8": rs.accuracy(tq, tt),
           "int8_agrees_float": float(np.mean([a == b for a, b in zip(tf_, tq)])),
           "bytes": {k: len(v) for k, v in models.items()}}
    log(json.dumps(res))
    if dmax > 1e-4:
        raise RuntimeError(f"float .tflite differs from Keras by {dmax:.2e}")
    return res


FIXTURE = "recognizer_projlstm"


def write_fixture(spec, model, out_dir, n_lines=8, n_calib=200, log=print):
    """The test fixture (tests/test_recognizer.py): a small trained recognizer as float and int8
    .tflite, and npz with n held-out prepared lines, their truth, the spec and LiteRT's outputs."""
    xc, _ = rs.render_set(spec, n_calib, rs.CALIB_SEED)
    xt, tt = rs.render_set(spec, n_lines, rs.TEST_SEED)
    arrays = {"x": xt, "truth": np.array(tt, dtype=str), "spec": np.array(spec.to_json())}
    for kind, blob in (("float", convert(model, spec)), ("int8", convert(model, spec, xc))):
        path = os.path.join(out_dir, f"{FIXTURE}_{kind}.tflite")
        with open(path, "wb") as f:
            f.write(blob)
        r = LiteRTRunner(blob)
        arrays[f"litert_{kind}"] = np.stack([r.raw(x) for x in xt])
        arrays[f"text_{kind}"] = np.array([rs.greedy_text(y, spec.charset) for y in arrays[f"litert_{kind}"]],
                                          dtype=str)
        log(f"{path}: {len(blob):,} bytes; texts {list(arrays[f'text_{kind}'])}")
    np.savez_compressed(os.path.join(out_dir, f"{FIXTURE}.npz"), **arrays)
    log(f"truth {tt}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m models.export", description=__doc__.split("\n")[0])
    ap.add_argument("run", help="training run folder (spec.json, final.weights.h5): recognizer or detector")
    ap.add_argument("--out", help="output folder (default RUN/export)")
    ap.add_argument("--calib", type=int, default=300, help="int8 calibration lines")
    ap.add_argument("--check", type=int, default=100, help="held-out lines for the LiteRT checks")
    ap.add_argument("--fixture", metavar="DIR", help="write the test fixture (recognizer_projlstm_*) instead")
    a = ap.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if is_detector_run(a.run):
        spec, model = load_detector(a.run)
        if a.fixture:
            return write_detector_fixture(spec, model, a.fixture)
        export_detector(spec, model, a.out or os.path.join(a.run, "export"), a.calib, a.check)
        return 0
    spec, model = load_trained(a.run)
    if a.fixture:
        return write_fixture(spec, model, a.fixture)
    export(spec, model, a.out or os.path.join(a.run, "export"), a.calib, a.check)


if __name__ == "__main__":
    sys.exit(main())
