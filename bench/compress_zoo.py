"""Compression of the zoo's models: file size, held-out accuracy and load time per setting.

    nice python bench/compress_zoo.py runs/card_rec/export runs/det_short/export \
        [--n 1000] [--det-n 200] [--settings default|quick|S1,S2,...] [--tol 0.005] \
        [--json runs/compress/zoo.json] [--out runs/compress]

For each export folder (<name>.json, <name>_float.tflite, <name>_int8.tflite, as models.export
writes them) and each compression setting, the model is converted in-process exactly as
`xnn convert SOURCE.tflite -o OUT.xnn FLAGS` does (read, graph_for_xnn, compress, write; the
equivalent command line is printed), then
  - size: the .xnn file's bytes, the ratio to the float32 .tflite (the issue's target: >= 10x,
    stretch 20x) and to the int8 .tflite, and how the bytes split between the (compressed) JSON
    header, the weight tensors and the other constants (biases);
  - accuracy on the held-out set of models.evaluate: recognizers: sequence and character accuracy on
    --n lines (TEST_SEED), and how many lines became right/wrong against the int8 model ("flips");
    detectors: P/R/F at IoU 0.5 on --det-n pages with xnn.ocr.detect.detect_lines (the app's
    decoder) for every variant, plus the per-pixel `detect` for the float/int8 baselines;
  - load time: medians over --load-repeat runs in this process (warm file cache, Numba kernels
    compiled) of xnn.interpreter.load_graph (read ms: parse, decode, fold, passes) and of
    xnn.Interpreter(model_path=...) (load ms: the same plus kernel preparation and planning), the
    first inference after construction and a second one, for the .xnn and both .tflite files.
The chosen setting per model is the smallest file whose primary metric (recognizer: sequence
accuracy, detector: F) is within --tol (0.5 points) of the uncompressed int8 .tflite. Markdown
tables go to stdout, progress to stderr, everything to --json.

A setting is '+'-joined tokens, optionally prefixed with the source model ("float:"; default int8):
    plain     no compression (an .xnn of the same weights)
    wB / uB   --weight-bits B with k-means (wB) or uniform (uB) codes
    ch / tensor   --codebook channel / tensor (default auto)
    pS / pcS  --prune S (pcS: --prune S --prune-channels)
    minN      --prune-min-size N
    lrR       --low-rank R (integer rank or energy fraction)
    zlib / lzma / ans   --entropy
    seedN     --seed N
    fit / ufit   --weight-bits-fit (ufit: and --weight-codec uniform): QAT'd models
    keepN     --weight-bits-min-size N: weight tensors with fewer than N elements keep exact values
    coarse    --coarse-params: bfloat16 weight scales, code parameters and biases
    gptqN     --weight-rounding gptq on N calibration lines/pages (CALIB_SEED, written to
              OUT/<model>/calib_N/x.npy for the printed command): post-training codes with error feedback
    bcN       --bias-correction on N calibration lines/pages (with gptqN: one set, the larger N)
    bits[REGEX]=B   --weight-bits-for 'REGEX=B' (B 0..8 or exact; repeatable, last match wins),
              e.g. "int8:w4+tensor+keep1024+bits[^lstm/]=2+lzma"
e.g. "int8:p0.5+w3+lzma" = `xnn convert NAME_int8.tflite --prune 0.5 --weight-bits 3 --entropy lzma`.
A float: setting runs on the float kernels (weights expanded to float32 at load).

    --sensitivity SETTING [--sens-n N]
applies SETTING to one weight tensor at a time (all others exact) and reports, per tensor, the
bytes it saves and the metric change on the first N held-out items: which layers limit a setting.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PRESETS = {
    "quick": ["int8:lzma", "int8:u4+lzma", "int8:u3+keep1024+lzma", "float:u6+lzma"],
    "default": [
        # int8 source: int8 kernels, bit-exact with LiteRT on the decoded weights
        "int8:plain", "int8:lzma", "int8:p0.1+lzma", "int8:p0.2+lzma",
        "int8:w6+lzma", "int8:w5+lzma", "int8:u5+lzma", "int8:w4+lzma", "int8:u4+lzma", "int8:w4+ch+lzma",
        "int8:w3+lzma", "int8:u3+lzma", "int8:w3+ch+lzma", "int8:w2+ch+lzma",
        "int8:p0.3+w4+lzma", "int8:p0.5+w3+lzma", "int8:pc0.3+w4+lzma", "int8:lr0.8+w4+lzma",
        # small tensors (first convs, heads, depthwise) kept exact: bench-only, see keepN
        "int8:p0.1+keep1024+lzma", "int8:w4+keep1024+lzma", "int8:u4+keep1024+lzma",
        "int8:u3+keep1024+lzma", "int8:w3+ch+keep1024+lzma",
        # float source: float kernels on weights decoded to float32
        "float:lzma", "float:u6+lzma", "float:w6+lzma", "float:w5+lzma", "float:u5+lzma", "float:w4+lzma",
        "float:u4+lzma", "float:w3+lzma", "float:w4+ch+lzma", "float:w3+ch+lzma", "float:p0.5+w3+lzma",
    ],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- settings ----------------------------------------------------------------------------------

def parse_setting(text: str):
    """'[float:|int8:]tok+tok...' -> (source, CompressOptions kwargs, xnn convert flags)."""
    source, _, body = text.rpartition(":")
    source = source or "int8"
    if source not in ("int8", "float"):
        raise SystemExit(f"setting {text!r}: source must be int8: or float:")
    kw, flags = {}, []
    for tok in [t for t in body.split("+") if t]:
        try:
            if tok == "plain":
                continue
            if tok in ("zlib", "lzma", "ans"):
                kw["entropy"] = tok
                flags += ["--entropy", tok]
            elif tok in ("fit", "ufit"):  # --weight-bits-fit (ufit: with uniform codes)
                kw["weight_bits_fit"] = True
                flags += ["--weight-bits-fit"]
                if tok == "ufit":
                    kw["codec"] = "uniform"
                    flags += ["--weight-codec", "uniform"]
            elif tok == "coarse":  # --coarse-params
                kw["coarse_params"] = True
                flags += ["--coarse-params"]
            elif tok.startswith("gptq"):  # --weight-rounding gptq on N calibration samples
                kw["rounding"], kw["calib_n"] = "gptq", max(int(tok[4:]), kw.get("calib_n", 0))
                flags += ["--weight-rounding", "gptq"]
            elif tok.startswith("bc"):  # --bias-correction on N calibration samples
                kw["bias_correction"], kw["calib_n"] = True, max(int(tok[2:]), kw.get("calib_n", 0))
                flags += ["--bias-correction"]
            elif tok in ("ch", "tensor"):
                kw["codebook"] = {"ch": "channel"}.get(tok, tok)
                flags += ["--codebook", kw["codebook"]]
            elif tok[0] in "wu" and tok[1:].isdigit():
                kw["weight_bits"] = int(tok[1:])
                flags += ["--weight-bits", tok[1:]]
                if tok[0] == "u":
                    kw["codec"] = "uniform"
                    flags += ["--weight-codec", "uniform"]
            elif tok.startswith("pc"):
                kw["prune"], kw["prune_channels"] = float(tok[2:]), True
                flags += ["--prune", tok[2:], "--prune-channels"]
            elif tok.startswith("p"):
                kw["prune"] = float(tok[1:])
                flags += ["--prune", tok[1:]]
            elif tok.startswith("min"):
                kw["prune_min_size"] = int(tok[3:])
                flags += ["--prune-min-size", tok[3:]]
            elif tok.startswith("lr"):
                r = float(tok[2:])
                kw["low_rank"] = int(r) if r >= 1 else r
                flags += ["--low-rank", tok[2:]]
            elif tok.startswith("keep"):  # = --weight-bits-min-size N (was bench-only)
                kw["weight_bits_min_size"] = int(tok[4:])
                flags += ["--weight-bits-min-size", tok[4:]]
            elif tok.startswith("bits[") and "]=" in tok:  # bits[REGEX]=B: --weight-bits-for REGEX=B
                pat, b = tok[5:].rsplit("]=", 1)
                b = 0 if b == "exact" else int(b)
                kw["weight_bits_for"] = kw.get("weight_bits_for", ()) + ((pat, b),)
                flags += ["--weight-bits-for", f"'{pat}={b}'"]
            elif tok.startswith("seed"):
                kw["seed"] = int(tok[4:])
                flags += ["--seed", tok[4:]]
            else:
                raise ValueError
        except ValueError:
            raise SystemExit(f"setting {text!r}: cannot read token {tok!r}") from None
    if kw.get("calib_n"):  # gptqN and bcN share one calibration set (the larger N)
        flags += ["--calib", "{calib}", "--calib-limit", str(kw["calib_n"])]
    return source, kw, flags


def expand_settings(spec: str) -> list:
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        for s in PRESETS.get(part, [part]):
            s = s if ":" in s else "int8:" + s
            if s not in out:
                out.append(s)
    return out


# ---- conversion and file anatomy ---------------------------------------------------------------

def _with_data(g, t: int, data):
    from xnn.ir import TensorSpec

    spec = g.tensors[t]
    data = np.ascontiguousarray(data)
    data.flags.writeable = False
    new = TensorSpec(spec.name, spec.shape, spec.dtype, spec.quant, data, spec.is_variable)
    return g.replace(tensors=g.tensors[:t] + (new,) + g.tensors[t + 1:])


def keep_exact(g, comp, tensors, entropy):
    """`comp` (a Compressed of graph g) with the weight tensors `tensors` restored to their values
    in g: stored raw, or entropy-coded when that is smaller (as compress does for other constants)."""
    from xnn.converter.compress import Compressed
    from xnn.converter.xnn_format import Encoded, byte_codec, deflate

    graph, enc, notes = comp.graph, dict(comp.encodings), dict(comp.notes)
    for t in tensors:
        orig = g.tensors[t]
        if np.array_equal(np.asarray(graph.tensors[t].data), np.asarray(orig.data)) and t not in enc:
            continue
        graph = _with_data(graph, t, orig.data)
        enc.pop(t, None)
        notes[t] = "kept exact"
        if entropy:
            codec = byte_codec(entropy)  # ans is for weight codes only
            payload = np.ascontiguousarray(orig.data, np.dtype(orig.dtype).newbyteorder("<")).tobytes()
            z = deflate(codec, payload)
            if len(z) < len(payload):
                enc[t] = Encoded({"entropy": codec, "size": len(payload)}, z)
                notes[t] += f" {codec}"
    return Compressed(graph, enc, notes, comp.header_compressed)


def compress_graph(g, kw: dict, only=None, feeds=None):
    """The bytes of g compressed with the setting `kw` (CompressOptions fields, plus keep_below);
    `only`: a set of weight tensors the lossy steps may touch (all others kept exact); `feeds`:
    calibration inputs for rounding gptq."""
    from xnn.converter.compress import CompressOptions, compress, weight_targets
    from xnn.converter.xnn_format import write_xnn
    from xnn.interpreter import check_graph

    kw = dict(kw)
    keep_below = kw.pop("keep_below", 0)
    kw.pop("calib_n", None)
    opts = CompressOptions(**kw).check()
    if not opts.active:
        return write_xnn(g)
    comp = compress(g, opts, feeds=feeds)
    check_graph(comp.graph)
    targets = weight_targets(g)
    keep = {t for t in targets if g.tensors[t].size < keep_below}
    if only is not None:
        keep |= set(targets) - set(only)
    live = set(weight_targets(comp.graph))  # a low-rank split FC's original weight is gone
    keep &= live
    if keep:
        comp = keep_exact(g, comp, sorted(keep), opts.entropy)
    return comp.to_bytes()


def convert(src: str, dst: str, kw: dict, feeds=None) -> dict:
    """What `xnn convert src -o dst FLAGS` writes, done in-process; returns timing and size."""
    from xnn.converter.xnn_format import read_xnn, write_file

    t0 = time.perf_counter()
    g = source_graph(src)
    data = compress_graph(g, kw, feeds=feeds)
    read_xnn(data)
    write_file(dst, data)
    return {"bytes": len(data), "convert_s": round(time.perf_counter() - t0, 2)}


def source_graph(src: str):
    """The graph `xnn convert` compresses: the .tflite read, folded and passed (graph_for_xnn)."""
    from xnn.converter.tflite_reader import read_tflite
    from xnn.converter.xnn_format import graph_for_xnn
    from xnn.interpreter import check_graph

    with open(src, "rb") as f:
        g = graph_for_xnn(read_tflite(f.read()))
    check_graph(g)
    return g


def anatomy(path: str) -> dict:
    """Where an .xnn file's bytes are: stored header, weight tensors (the ones compress.py codes),
    other constants (biases, shapes), quantization scales in the header."""
    from xnn.converter.compress import weight_targets
    from xnn.converter.xnn_format import _PREFIX, read_header, read_xnn

    with open(path, "rb") as f:
        data = f.read()
    _, _, h_len, _, w_off, w_len, _, _ = _PREFIX.unpack_from(data)
    header = read_header(data)
    g = read_xnn(data)
    targets = set(weight_targets(g))
    w = o = 0
    for i, t in enumerate(header["tensors"]):
        if "data" in t:
            if i in targets:
                w += t["data"][1]
            else:
                o += t["data"][1]
    scales = header.get("scales", {}).get("data", [0, 0])[1]  # format 3: the scale section's bytes
    return {"header": h_len, "weights": w, "other_const": o + scales, "scale_section": scales,
            "padding": len(data) - h_len - w - o - scales}


# ---- load time ---------------------------------------------------------------------------------

def load_times(path: str, x, repeat: int) -> dict:
    """Medians (ms) over `repeat` runs: load_graph (read, decode, fold, passes), Interpreter
    construction (the same plus kernel preparation), its first inference, a second inference."""
    import xnn

    from xnn.interpreter import load_graph

    read, load, first, steady = [], [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        load_graph(model_path=path)
        read.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        it = xnn.Interpreter(model_path=path, num_threads=1)
        t1 = time.perf_counter()
        it(x)
        t2 = time.perf_counter()
        it.reset_all_variables()
        it(x)
        t3 = time.perf_counter()
        load.append(t1 - t0)
        first.append(t2 - t1)
        steady.append(t3 - t2)
    med = lambda v: round(1000 * statistics.median(v), 2)  # noqa: E731
    return {"read_ms": med(read), "load_ms": med(load), "first_inference_ms": med(first), "inference_ms": med(steady)}


def model_input(path: str, x_float):
    """x (float, [0, 1]) as the model at `path` takes it (quantized for an int8 input)."""
    import xnn

    d = xnn.Interpreter(model_path=path).get_input_details()[0]
    if d["dtype"] == np.int8:
        s, z = d["quantization"]
        return np.clip(np.round(x_float / s) + z, -128, 127).astype(np.int8)
    return x_float.astype(np.float32)


# ---- per model ---------------------------------------------------------------------------------

class RecTask:
    kind = "recognizer"
    metric = "seq_acc"

    def __init__(self, folder, spec_path, args):
        from models import evaluate as ev
        from models import rec_spec as rs

        self.ev, self.rs = ev, rs
        self.spec = rs.RecSpec.from_json(open(spec_path, encoding="utf-8").read())
        t0 = time.time()
        x, truth = ev.test_set(self.spec, args.n, args.cache)
        self.x, self.truth = x[args.skip:], list(truth[args.skip:])
        log(f"  {len(self.truth)} held-out lines {args.skip}..{args.n - 1} ({time.time() - t0:.1f} s)")
        self.sample = rs.to_input(self.x[:1])
        self.ref_ok = None

    def calib(self, n):
        """n calibration lines (CALIB_SEED, never held out), as model input [n, 32, W, 1]."""
        return self.rs.to_input(self.rs.render_set(self.spec, n, self.rs.CALIB_SEED)[0])

    def score(self, path, baseline=False, limit=None):
        x, truth = self.x[:limit], self.truth[:limit]
        acc, preds, _, _ = self.ev.recognizer_accuracy(path, self.spec, x, truth)
        ok = np.array([p == t for p, t in zip(preds, truth)])
        r = {"seq_acc": acc["seq_acc"], "char_acc": acc["char_acc"], "ms_per_item": acc["ms_per_line"]}
        if self.ref_ok is not None and limit is None:
            r["fixed"] = int((ok & ~self.ref_ok).sum())
            r["broken"] = int((~ok & self.ref_ok).sum())
        return r, ok

    def fmt(self, r):
        return f"seq {r['seq_acc']:.4f} char {r['char_acc']:.4f}"


class DetTask:
    kind = "detector"
    metric = "f"

    def __init__(self, folder, spec_path, args):
        from models import det_targets as dt
        from models import evaluate as ev

        self.ev, self.dt = ev, dt
        self.spec = dt.DetSpec.from_json(open(spec_path, encoding="utf-8").read())
        t0 = time.time()
        self.pages = ev.det_test_set(self.spec, args.det_n, args.cache, log=log)[args.skip:]
        log(f"  {len(self.pages)} held-out pages {args.skip}..{args.det_n - 1} ({time.time() - t0:.1f} s)")
        self.sample = dt.to_input(self.pages[0][1][None])
        self.ref_ok = None

    def calib(self, n):
        """n calibration pages (CALIB_SEED, never held out), as model input [n, H, W, 1]."""
        return self.dt.to_input(self.dt.render_set(self.spec, n, self.dt.CALIB_SEED)[0])

    def score(self, path, baseline=False, limit=None):
        decs = ("lines", "detect") if baseline else ("lines",)
        res = self.ev.detector_accuracy(path, self.spec, self.pages[:limit], decs)
        lines = res["lines"]
        r = {"f": lines["f"], "precision": lines["precision"], "recall": lines["recall"],
             "per_domain_f": {d: round(v["f"], 4) for d, v in lines["per_domain"].items()},
             "ms_per_item": lines["ms_net"], "ms_post": lines["ms_post"]}
        if baseline:
            d = res["detect"]
            r["detect_f"], r["detect_ms_post"] = d["f"], d["ms_post"]
        return r, None

    def fmt(self, r):
        return f"F {r['f']:.4f} (P {r['precision']:.4f} R {r['recall']:.4f})"


_CALIB: set = set()  # calibration folders rendered in this process


def calibration(task, out_dir: str, n: int, model: str):
    """(feeds for `model`, the folder holding them as x.npy) for n calibration items of the task,
    rendered once per model folder and count."""
    from xnn.converter.compress import load_calibration

    cdir = os.path.join(out_dir, f"calib_{n}")
    if cdir not in _CALIB:
        os.makedirs(cdir, exist_ok=True)
        t0 = time.time()
        np.save(os.path.join(cdir, "x.npy"), task.calib(n))
        log(f"  {n} calibration items rendered to {os.path.relpath(cdir, ROOT)} ({time.time() - t0:.1f} s)")
        _CALIB.add(cdir)
    import xnn

    details = xnn.Interpreter(model_path=model).get_input_details()
    return load_calibration(cdir, details, limit=n), cdir


def run_model(folder: str, args, settings: list) -> dict:
    specs = glob.glob(os.path.join(folder, "*.json"))
    if len(specs) != 1:
        raise SystemExit(f"expected one <name>.json spec in {folder}, found {specs}")
    meta = json.load(open(specs[0], encoding="utf-8"))
    name = meta["name"]
    src = {k: os.path.join(folder, f"{name}_{k}.tflite") for k in ("float", "int8")}
    for k, p in src.items():
        if not os.path.exists(p):
            raise SystemExit(f"{folder}: {p} is missing")
    log(f"== {folder} ({name})")
    task = (DetTask if "fpn" in meta else RecTask)(folder, specs[0], args)
    out_dir = os.path.join(args.out, os.path.basename(os.path.dirname(os.path.abspath(folder))) + "_" + name)
    os.makedirs(out_dir, exist_ok=True)
    import xnn

    # warm the kernels of both graphs (Numba compilation) before anything is timed
    for p in src.values():
        xnn.Interpreter(model_path=p)(model_input(p, task.sample))
    float_bytes, int8_bytes = os.path.getsize(src["float"]), os.path.getsize(src["int8"])
    rows = []

    def add(label, source, path, flags, extra, baseline=False):
        x = model_input(path, task.sample)
        t0 = time.time()
        acc, ok = task.score(path, baseline)
        lt = load_times(path, x, args.load_repeat)
        size = os.path.getsize(path)
        row = {"setting": label, "source": source, "file": os.path.relpath(path, ROOT), "bytes": size,
               "ratio_vs_float": float_bytes / size, "ratio_vs_int8": int8_bytes / size, **acc, **lt, **extra}
        if flags is not None:
            row["command"] = " ".join(["xnn", "convert", os.path.relpath(src[source], ROOT), "-o",
                                       os.path.relpath(path, ROOT)] + flags)
        rows.append(row)
        log(f"  {label:34s} {size:>9,} B  {row['ratio_vs_float']:5.2f}x  {task.fmt(acc)}  "
            f"load {lt['load_ms']} ms  first {lt['first_inference_ms']} ms  ({time.time() - t0:.1f} s)")
        return row, ok

    base = {}
    for k in ("float", "int8"):
        base[k], ok = add(f"{k}.tflite", k, src[k], None, {}, baseline=True)
        if k == "int8":
            task.ref_ok = ok
    for s in settings:
        source, kw, flags = parse_setting(s)
        path = os.path.join(out_dir, re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:120] + ".xnn")
        feeds = None
        if kw.get("calib_n"):
            feeds, cdir = calibration(task, out_dir, kw["calib_n"], src[source])
            flags = [f.replace("{calib}", os.path.relpath(cdir, ROOT)) for f in flags]
        info = convert(src[source], path, kw, feeds)
        info["anatomy"] = anatomy(path)
        info["kw"] = kw
        add(s, source, path, flags, info)
    m = task.metric
    for r in rows:
        r["delta_vs_int8"] = r[m] - base["int8"][m]
        r["delta_vs_float"] = r[m] - base["float"][m]
    ok_rows = [r for r in rows if "command" in r and r["delta_vs_int8"] >= -args.tol - 1e-12]
    chosen = min(ok_rows, key=lambda r: r["bytes"]) if ok_rows else None
    res = {"folder": folder, "name": name, "kind": task.kind, "metric": m,
           "n": len(task.truth) if task.kind == "recognizer" else len(task.pages), "first_item": args.skip,
           "float_bytes": float_bytes, "int8_bytes": int8_bytes, "rows": rows,
           "chosen": chosen["setting"] if chosen else None, "tol": args.tol}
    for s in args.sensitivity or ():
        res.setdefault("sensitivity", []).append(sensitivity(task, src, s, out_dir, args.sens_n))
    return res


def sensitivity(task, src: dict, setting: str, out_dir: str, limit: int) -> dict:
    """SETTING applied to one weight tensor at a time (module docstring)."""
    from xnn.converter.compress import CompressOptions, compress, weight_targets
    from xnn.converter.xnn_format import write_file

    source, kw, _ = parse_setting(setting)
    kw.pop("keep_below", None)
    n = kw.pop("calib_n", 0)
    opts = CompressOptions(**kw).check()
    g = source_graph(src[source])
    comp = compress(g, opts, feeds=calibration(task, out_dir, n, src[source])[0] if n else None)
    targets = weight_targets(g)
    live = set(weight_targets(comp.graph))
    path = os.path.join(out_dir, "_sensitivity.xnn")
    m = task.metric

    def run(keep, evaluate=True):
        data = keep_exact(g, comp, sorted(set(keep) & live), opts.entropy).to_bytes()
        if not evaluate:
            return len(data), None
        write_file(path, data)
        return len(data), task.score(path, limit=limit)[0][m]

    log(f"  sensitivity of {setting} per weight tensor ({limit} items)")
    exact_size, base = run(set(targets))
    all_size, all_m = run(set())
    rows = []
    for t in sorted(targets, key=lambda t: targets[t].readers[0]):
        if t not in live:
            continue
        changed = not np.array_equal(np.asarray(comp.graph.tensors[t].data), np.asarray(g.tensors[t].data))
        size, val = run(set(targets) - {t}, evaluate=changed)
        node = g.nodes[targets[t].readers[0]]
        r = {"tensor": int(t), "name": g.tensors[t].name, "node": node.name, "op": node.op,
             "shape": [int(d) for d in g.tensors[t].shape], "elements": int(g.tensors[t].size),
             "bytes_saved": exact_size - size, "delta": None if val is None else val - base,
             "stored_as": comp.notes.get(t, "")}
        rows.append(r)
        log(f"    {r['node'][:40]:40s} {str(r['shape']):18s} saves {r['bytes_saved']:>7,} B  "
            + ("unchanged" if val is None else f"{m} {val:.4f} ({100 * r['delta']:+.1f})") + f"  {r['stored_as']}")
    return {"setting": setting, "metric": m, "n": limit, "exact_bytes": exact_size, "exact": base,
            "all_bytes": all_size, "all": all_m, "rows": rows}


def sens_table(sv: dict) -> str:
    lines = [f"#### Sensitivity of `{sv['setting']}` (one weight tensor at a time, {sv['metric']} on the first "
             f"{sv['n']} items): none {sv['exact']:.4f} at {sv['exact_bytes']:,} B, all {sv['all']:.4f} at "
             f"{sv['all_bytes']:,} B", "",
             "| node | tensor | shape | bytes saved | Δ points | stored as |", "|---|---|---|---|---|---|"]
    for r in sv["rows"]:
        d = "unchanged" if r["delta"] is None else f"{100 * r['delta']:+.1f}"
        lines.append(f"| {r['node']} | {r['name'][-40:]} | {'x'.join(map(str, r['shape']))} | {r['bytes_saved']:,} | {d} | "
                     f"{r['stored_as']} |")
    return "\n".join(lines)


# ---- output ------------------------------------------------------------------------------------

def table(res: dict) -> str:
    rec = res["kind"] == "recognizer"
    head = ["setting", "bytes", "vs float", "vs int8"]
    head += ["seq acc", "char acc", "Δseq int8", "Δseq float", "fixed/broken"] if rec else \
        ["F (lines)", "P", "R", "ΔF int8", "ΔF float"]
    head += ["header B", "weights B", "other B", "read ms", "load ms", "1st inf ms", "inf ms"]
    first = f" from item {res['first_item']}" if res.get("first_item") else ""
    lines = [f"### {res['name']} ({res['folder']}, {res['kind']}, n={res['n']}{first}; float {res['float_bytes']:,} B, "
             f"int8 {res['int8_bytes']:,} B)", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in res["rows"]:
        a = r.get("anatomy", {})
        mark = " **(chosen)**" if r["setting"] == res["chosen"] else ""
        cells = [f"`{r['setting']}`{mark}", f"{r['bytes']:,}", f"{r['ratio_vs_float']:.2f}x",
                 f"{r['ratio_vs_int8']:.2f}x"]
        if rec:
            fb = f"{r['fixed']}/{r['broken']}" if "fixed" in r else "-"
            cells += [f"{r['seq_acc']:.4f}", f"{r['char_acc']:.4f}", f"{100 * r['delta_vs_int8']:+.1f}",
                      f"{100 * r['delta_vs_float']:+.1f}", fb]
        else:
            f = f"{r['f']:.4f}" + (f" (detect {r['detect_f']:.4f})" if "detect_f" in r else "")
            cells += [f, f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{100 * r['delta_vs_int8']:+.1f}",
                      f"{100 * r['delta_vs_float']:+.1f}"]
        cells += [f"{a['header']:,}" if a else "-", f"{a['weights']:,}" if a else "-",
                  f"{a['other_const']:,}" if a else "-", f"{r['read_ms']:.1f}", f"{r['load_ms']:.1f}", f"{r['first_inference_ms']:.1f}",
                  f"{r['inference_ms']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    c = next((r for r in res["rows"] if r["setting"] == res["chosen"]), None)
    lines.append("")
    if c:
        lines.append(f"Chosen (smallest within {100 * res['tol']:.1f} points of int8 on {res['metric']}): "
                     f"`{c['setting']}` {c['bytes']:,} B = {c['ratio_vs_float']:.2f}x smaller than float "
                     f"({'meets' if c['ratio_vs_float'] >= 10 else 'misses'} the 10x target); "
                     f"`{c.get('command', '')}`")
    else:
        lines.append(f"No setting is within {100 * res['tol']:.1f} points of int8.")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", metavar="EXPORT_DIR")
    ap.add_argument("--n", type=int, default=1000, help="held-out lines per recognizer")
    ap.add_argument("--det-n", type=int, default=200, help="held-out pages per detector")
    ap.add_argument("--settings", default="default",
                    help="comma-separated settings and/or presets (" + ", ".join(PRESETS) + ")")
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first K held-out items (e.g. --n 3000 --skip 1000: lines not used "
                         "to choose the settings)")
    ap.add_argument("--tol", type=float, default=0.005, help="accuracy loss allowed vs int8 (0.005 = 0.5 points)")
    ap.add_argument("--load-repeat", type=int, default=7, help="Interpreter constructions per load-time median")
    ap.add_argument("--out", default=os.path.join("runs", "compress"), help="where the .xnn files go")
    ap.add_argument("--cache", default=os.path.join("runs", "cache"), help="held-out set cache")
    ap.add_argument("--json", help="write all results here")
    ap.add_argument("--sensitivity", action="append", metavar="SETTING",
                    help="also apply SETTING to one weight tensor at a time and report the metric change "
                         "per tensor (repeatable)")
    ap.add_argument("--sens-n", type=int, default=300, help="held-out items for --sensitivity")
    args = ap.parse_args(argv)
    settings = expand_settings(args.settings)
    for s in settings + (args.sensitivity or []):
        parse_setting(s)  # fail early on a typo
    results = []
    for folder in args.folders:
        res = run_model(folder, args, settings)
        results.append(res)
        print(table(res) + "\n", flush=True)
        for sv in res.get("sensitivity", ()):
            print(sens_table(sv) + "\n", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"settings": settings, "models": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
