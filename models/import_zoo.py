"""Turn a shipped model (an int8 or float .tflite, or a .xnn) back into a training run, so that it can
be fine-tuned (`models.train ... --init RUN`, e.g. quantization-aware training) without first
retraining it from scratch.

    python -m models.import_zoo xnn/zoo/plate_plate_int8.tflite --out runs/plate_zoo
    python -m models.import_zoo xnn/zoo/detector_int8.tflite --out runs/det_zoo
    python -m models.import_zoo xnn/zoo/idcard_name_address.xnn --out runs/idzh_zoo

The model's spec is the .json beside it (<name>.json for <name>_int8.tflite, <name>.xnn, ...) or
--spec. Every weight kernel of the Keras model (models.recognizer / models.detector) is taken from
the file, dequantized (int8 codes times their scales), in graph order, each shape checked. TFLite
folded each batch normalization into the conv before it, so a BN gets back the folded bias and an
identity that matches the data: its statistics (mean mu, variance v) are measured on --calib lines
or pages rendered from the calibration seed (never the held-out test seed), and it is set to
gamma = sqrt(v + eps), beta = mu + bias. In inference mode it then adds the bias exactly; in
training mode its batch statistics are close to (mu, v), so fine-tuning starts from the shipped
model's function instead of renormalizing every channel at the first step.

--logits-rank R (recognizers) writes the run with its logits factored into two Dense layers of rank
R (the truncated SVD of the file's matrix; spec logits_rank), for large charsets whose logits are
most of the model (the Chinese ID-card recognizer: 96 x 3,783), to be fine-tuned afterwards.
--lstm-units N keeps the N LSTM cells with the largest mean |o tanh(c)| on the calibration lines
times the norm of their projection row (channel-structured pruning of the LSTM; spec units N).

Writes OUT/spec.json, OUT/ckpt (epoch 0, no optimizer state) and OUT/final.weights.h5 (so
`models.export OUT` works as for a trained run), and reports the Keras model's accuracy on --check
validation lines (pages) next to that of the source file run on xnn.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from . import rec_spec as rs

KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM")


def read_graph(path: str):
    """The file's graph (xnn IR): a .xnn or a .tflite."""
    from xnn.converter.tflite_reader import read_tflite
    from xnn.converter.xnn_format import is_xnn, read_xnn

    content = open(path, "rb").read()
    return read_xnn(content) if is_xnn(content) else read_tflite(content)


def dequantize(t) -> np.ndarray:
    """A constant tensor's real values (float32)."""
    if t.data is None:
        raise ValueError(f"tensor {t.name!r} is not a constant")
    d = np.asarray(t.data)
    if t.quant is None or d.dtype.kind == "f":
        return d.astype(np.float32)
    q = t.quant
    shape = [1] * d.ndim
    if q.per_channel:
        shape[q.axis] = -1
    s = np.asarray(q.scale, np.float64).reshape(shape)
    z = np.asarray(q.zero_point, np.float64).reshape(shape)
    return ((d.astype(np.float64) - z) * s).astype(np.float32)


def kernel_ops(g) -> list:
    """[(op, {input slot: float array})] for every op with weights, in graph order."""
    out = []
    for n in g.nodes:
        if n.op not in KERNEL_OPS:
            continue
        w = {}
        for slot, i in enumerate(n.inputs):
            if i >= 0 and g.tensors[i].is_const:
                w[slot] = dequantize(g.tensors[i])
        out.append((n.op, w))
    return out


def _keras_kernel(op: str, w: np.ndarray, layer) -> np.ndarray:
    """A TFLite weight tensor in the layer's Keras layout."""
    cls = type(layer).__name__
    if cls == "Conv2D" and op == "CONV_2D":        # (O, kh, kw, I/g) -> (kh, kw, I/g, O)
        return w.transpose(1, 2, 3, 0)
    if cls == "DepthwiseConv2D" and op == "DEPTHWISE_CONV_2D":   # (1, kh, kw, C) -> (kh, kw, C, 1)
        return w[0][..., None]
    if cls == "Dense" and op == "FULLY_CONNECTED":  # (O, I) -> (I, O)
        return w.T
    raise ValueError(f"layer {layer.name} ({cls}) meets a {op}")


def _kernel_var(layer):
    return layer.depthwise_kernel if type(layer).__name__ == "DepthwiseConv2D" else layer.kernel


def _fitted(layer, op, w):
    """The op's kernel in the layer's layout if kind and shape fit the layer, else None (the LSTM:
    True for an LSTM op)."""
    from .recognizer import RNN_NAME

    if layer.name == RNN_NAME:
        return op == "UNIDIRECTIONAL_SEQUENCE_LSTM" or None
    try:
        k = _keras_kernel(op, w[1], layer)
    except (ValueError, KeyError):
        return None
    return k if tuple(_kernel_var(layer).shape) == k.shape else None


def _next_layer(layer):
    nodes = layer._outbound_nodes
    return nodes[0].outbound_layer if len(nodes) == 1 else None


def assign(model, ops) -> list:
    """Set the model's kernels from `ops` (kernel_ops, graph order); returns [(BN layer, folded bias)]
    for the BNs still to be set (see calibrate_bn)."""
    from .recognizer import RNN_NAME

    layers = [layer for layer in model.layers
              if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense") or layer.name == RNN_NAME]
    if len(layers) != len(ops):
        raise SystemExit(f"the file has {len(ops)} ops with weights, the model {len(layers)} layers with "
                         "kernels: not this architecture (check the spec)")
    pending = []
    left = list(range(len(ops)))
    for layer in layers:
        # the first op not yet taken whose kind and kernel shape fit (graph order and Keras layer
        # order agree up to the order of parallel branches, e.g. the detector's two heads)
        k = j = None
        for j in left:
            k = _fitted(layer, *ops[j])
            if k is not None:
                break
        if k is None:
            raise SystemExit(f"layer {layer.name}: no op of the file left with its kind and kernel shape")
        left.remove(j)
        w = ops[j][1]
        if layer.name == RNN_NAME:
            _assign_lstm(layer.cell, w)
            continue
        _kernel_var(layer).assign(k)
        n_out = k.shape[-1] if type(layer).__name__ != "DepthwiseConv2D" else k.shape[2] * k.shape[3]
        bias = w.get(2, np.zeros(n_out, np.float32))
        nxt = _next_layer(layer)
        if nxt is not None and type(nxt).__name__ == "BatchNormalization":
            pending.append((nxt, bias))
        elif getattr(layer, "use_bias", False):
            layer.bias.assign(bias)
        elif np.abs(bias).max() > 1e-6:
            raise SystemExit(f"layer {layer.name} has no bias and no BN after it, but the file's bias is "
                             f"non-zero (max |b| {np.abs(bias).max():.3g})")
    return pending


def _assign_lstm(cell, w):
    for slot in (1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 16):
        if slot not in w:
            raise SystemExit(f"the file's LSTM has no input {slot} (not a projected LSTM without peepholes)")
    k = np.concatenate([w[s].T for s in (1, 2, 3, 4)], axis=1)
    r = np.concatenate([w[s].T for s in (5, 6, 7, 8)], axis=1)
    b = np.concatenate([w[s] for s in (12, 13, 14, 15)])
    p = w[16].T
    for var, val, name in ((cell.kernel, k, "kernel"), (cell.recurrent_kernel, r, "recurrent kernel"),
                           (cell.bias, b, "bias"), (cell.projection, p, "projection")):
        if tuple(var.shape) != val.shape:
            raise SystemExit(f"LSTM {name}: {tuple(var.shape)} but the file has {val.shape}")
        var.assign(val)


def calibrate_bn(model, pending, x, batch=32):
    """Set each pending BN to add its folded bias, with statistics measured on x (see module doc)."""
    import tf_keras as keras

    for bn, bias in pending:
        eps = bn.epsilon
        bn.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1.0 - eps)])
    probe = keras.Model(model.input, [bn.input for bn, _ in pending])
    s1 = [0.0] * len(pending)
    s2 = [0.0] * len(pending)
    cnt = [0] * len(pending)
    for i in range(0, len(x), batch):
        outs = probe(x[i:i + batch], training=False)
        if len(pending) == 1:
            outs = [outs]
        for j, o in enumerate(outs):
            o = np.asarray(o, np.float64).reshape(-1, o.shape[-1])
            s1[j] = s1[j] + o.sum(0)
            s2[j] = s2[j] + (o * o).sum(0)
            cnt[j] += o.shape[0]
    for j, (bn, bias) in enumerate(pending):
        mu = s1[j] / cnt[j]
        var = np.maximum(s2[j] / cnt[j] - mu * mu, 0.0)
        eps = bn.epsilon
        bn.set_weights([np.sqrt(var + eps).astype(np.float32), (mu + bias).astype(np.float32),
                        mu.astype(np.float32), var.astype(np.float32)])


def lstm_unit_importance(cell, seq) -> np.ndarray:
    """Per LSTM cell j: mean |o_j tanh(c_j)| over the sequences seq (N, T, F) (NumPy forward of
    models.recognizer.ProjLSTMCell) times the norm of its projection row: how much of the output
    goes through it."""
    k, r, b, p = (np.asarray(v.numpy(), np.float64) for v in
                  (cell.kernel, cell.recurrent_kernel, cell.bias, cell.projection))
    n = cell.units
    sig = (lambda v: 1.0 / (1.0 + np.exp(-v)))
    h = np.zeros((len(seq), p.shape[1]))
    c = np.zeros((len(seq), n))
    acc = np.zeros(n)
    for t in range(seq.shape[1]):
        z = seq[:, t] @ k + h @ r + b
        i, f, g, o = (z[:, q * n:(q + 1) * n] for q in range(4))
        c = sig(f) * c + sig(i) * np.tanh(g)
        if cell.cell_clip > 0:
            c = np.clip(c, -cell.cell_clip, cell.cell_clip)
        m = sig(o) * np.tanh(c)
        acc += np.abs(m).sum(0)
        h = m @ p
    return acc / (len(seq) * seq.shape[1]) * np.linalg.norm(p, axis=1)


def prune_lstm_units(spec, model, units: int, x):
    """(spec, model) with only the `units` most important LSTM cells (lstm_unit_importance on x)."""
    import dataclasses

    import tf_keras as keras

    from . import recognizer as rec

    cell = model.get_layer(rec.RNN_NAME).cell
    if not 0 < units < cell.units:
        raise SystemExit(f"--lstm-units {units}: the LSTM has {cell.units} cells")
    seq = keras.Model(model.input, model.get_layer(rec.RNN_NAME).input).predict(x, batch_size=32, verbose=0)
    imp = lstm_unit_importance(cell, np.asarray(seq, np.float64))
    keep = np.sort(np.argsort(-imp, kind="stable")[:units])
    cols = np.concatenate([g * cell.units + keep for g in range(4)])
    spec2 = dataclasses.replace(spec, units=units)
    model2 = rec.build(spec2)
    rec.copy_weights(model, model2)
    c2 = model2.get_layer(rec.RNN_NAME).cell
    c2.kernel.assign(cell.kernel.numpy()[:, cols])
    c2.recurrent_kernel.assign(cell.recurrent_kernel.numpy()[:, cols])
    c2.bias.assign(cell.bias.numpy()[cols])
    c2.projection.assign(cell.projection.numpy()[keep])
    share = float(imp[keep].sum() / imp.sum())
    print(f"LSTM {cell.units} -> {units} cells ({share:.1%} of the importance kept)")
    return spec2, model2


def factor_logits(spec, model, rank: int):
    """(spec, model) with the logits as two Dense layers of rank `rank`: the truncated SVD
    W ~ (U_r sqrt(s_r)) (sqrt(s_r) V_r^T) of the (proj, classes) kernel, other weights copied."""
    import dataclasses

    from . import recognizer as rec

    w, b = model.get_layer("logits").get_weights()
    if not 0 < rank < min(w.shape):
        raise SystemExit(f"--logits-rank {rank}: the logits matrix is {w.shape[0]} x {w.shape[1]}")
    spec2 = dataclasses.replace(spec, logits_rank=rank)
    model2 = rec.build(spec2)
    rec.copy_weights(model, model2, skip=("logits", "logits_lr"))
    u, sv, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    r = np.sqrt(sv[:rank])
    model2.get_layer("logits_lr").set_weights([(u[:, :rank] * r).astype(np.float32)])
    model2.get_layer("logits").set_weights([(r[:, None] * vt[:rank]).astype(np.float32), b])
    kept = float((sv[:rank] ** 2).sum() / (sv ** 2).sum())
    print(f"logits {w.shape[0]}x{w.shape[1]} -> rank {rank} ({kept:.1%} of the squared singular values)")
    return spec2, model2


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m models.import_zoo", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a shipped model: .tflite (int8 or float) or .xnn")
    ap.add_argument("--out", required=True, help="run folder to write (spec.json, ckpt, final.weights.h5)")
    ap.add_argument("--spec", help="the model's spec .json (default: <name>.json beside the model)")
    ap.add_argument("--calib", type=int, default=256, help="lines (pages: a quarter) to measure BN statistics on")
    ap.add_argument("--check", type=int, default=200, help="validation lines (pages: a quarter) to compare on")
    ap.add_argument("--logits-rank", type=int, default=0, metavar="R",
                    help="recognizer: write the run with rank-R logits (spec logits_rank), the two factors from "
                         "the truncated SVD of the file's logits matrix (fine-tune it afterwards)")
    ap.add_argument("--lstm-units", type=int, default=0, metavar="N",
                    help="recognizer: keep the N LSTM cells that contribute most to its output on the "
                         "calibration lines (spec units N; channel-structured pruning, fine-tune it afterwards)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    spec_path = a.spec
    if not spec_path:
        stem = os.path.splitext(os.path.basename(a.model))[0]
        for suffix in ("_int8", "_float"):
            if stem.endswith(suffix):
                stem = stem[:-len(suffix)]
        spec_path = os.path.join(os.path.dirname(a.model), stem + ".json")
    if not os.path.exists(spec_path):
        raise SystemExit(f"no spec {spec_path}; name it with --spec")
    spec_text = open(spec_path, encoding="utf-8").read()
    detector = "charset" not in json.loads(spec_text)
    if (a.logits_rank or a.lstm_units) and detector:
        raise SystemExit("--logits-rank and --lstm-units are for recognizers")

    from .train import _checkpoints, _tensorflow

    tf, keras = _tensorflow(a.threads)
    g = read_graph(a.model)
    ops = kernel_ops(g)
    t0 = time.time()
    if detector:
        from . import det_targets as dt
        from . import detector as det

        spec = dt.DetSpec.from_json(spec_text)
        model = det.build(spec)
        xc = dt.to_input(dt.render_set(spec, max(8, a.calib // 4), dt.CALIB_SEED)[0])
        xv, qv, ov, _, _ = dt.render_set(spec, max(8, a.check // 4), dt.VAL_SEED)
    else:
        from . import recognizer as rec

        spec = rs.RecSpec.from_json(spec_text)
        model = rec.build(spec)
        xc = rs.to_input(rs.render_set(spec, a.calib, rs.CALIB_SEED)[0])
        xv, tv = rs.render_set(spec, a.check, rs.VAL_SEED)
    print(f"{spec.name}: {len(ops)} ops with weights from {a.model}; rendered in {time.time() - t0:.0f}s",
          flush=True)
    pending = assign(model, ops)
    calibrate_bn(model, pending, xc, batch=8 if detector else 32)
    if a.lstm_units:
        spec, model = prune_lstm_units(spec, model, a.lstm_units, xc)
    if a.logits_rank:
        spec, model = factor_logits(spec, model, a.logits_rank)

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "spec.json"), "w", encoding="utf-8") as f:
        f.write(spec.to_json())
    opt = keras.optimizers.Adam(1e-3)
    epoch_var, mgr = _checkpoints(tf, model, opt, a.out, True, print)
    mgr.save(checkpoint_number=0)
    model.save_weights(os.path.join(a.out, "final.weights.h5"))

    import xnn

    it = xnn.Interpreter(model_path=a.model, num_threads=1)
    inp, outd = it.get_input_details()[0], it.get_output_details()[0]

    def run_file(x_u8):
        x = (rs.to_input(x_u8[None]) if not detector else dt.to_input(x_u8[None]))
        if inp["dtype"] == np.int8:
            s, z = inp["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        it.reset_all_variables()
        y = it(x)[0][0]
        if y.dtype == np.int8:
            s, z = outd["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y

    yk = model.predict(dt.to_input(xv) if detector else rs.to_input(xv), batch_size=8, verbose=0)
    yf = np.stack([run_file(x) for x in xv])
    res = {"max_abs_vs_file": float(np.abs(yk - yf).max()), "mean_abs_vs_file": float(np.abs(yk - yf).mean())}
    if detector:
        from .train import det_scores

        res["keras_f"] = det_scores(yk, qv, ov, spec)["f"]
        res["file_f"] = det_scores(yf, qv, ov, spec)["f"]
    else:
        res["keras_seq_acc"] = rs.accuracy([rs.greedy_text(p, spec.charset) for p in yk], tv)["seq_acc"]
        res["file_seq_acc"] = rs.accuracy([rs.greedy_text(p, spec.charset) for p in yf], tv)["seq_acc"]
    print(json.dumps(res), flush=True)
    print(f"wrote {a.out} (spec.json, ckpt epoch 0, final.weights.h5)")
    return res


if __name__ == "__main__":
    main()
