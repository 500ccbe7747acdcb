"""Held-out accuracy of exported recognizers and detectors, run and decoded with xnn (no TensorFlow needed).

    python -m models.evaluate runs/det/export --n 500 --litert 20      # detector (detector.json)

Detector: renders --n pages from det_targets.TEST_SEED (all domains, round robin), runs the OCR
runtime's path (xnn.ocr.detect.letterbox -> xnn.Interpreter -> xnn.ocr.detect.detect, quads in page
pixels) and reports precision/recall/F at polygon IoU 0.5, overall and per domain, for the float and
int8 models; --litert K checks xnn against LiteRT's reference kernels on the first K pages (int8
identical, float within 1e-4). --decoder picks the post-processing: detect (per-pixel decode +
locality-aware NMS, the default), lines (detect_lines, one quad per text kernel: what the app
pipeline runs) or both. Rendered pages are cached (letterboxed) in runs/cache/det_<H>x<W>.

    python -m models.evaluate runs/card_rec/export              # float and int8, 1000 lines
    python -m models.evaluate runs/card_rec/export --n 300 --litert 50

Renders --n lines from TEST_SEED (never used in training, validation or calibration; cached in
runs/cache), runs <name>_float.tflite and <name>_int8.tflite with xnn.Interpreter, decodes with
xnn.ctc.greedy_decode (blank = last class) and reports sequence accuracy (exact string) and character
accuracy (1 - edit distance / length) per model, and int8 minus float. --litert K also runs the
first K lines in LiteRT's reference kernels and checks xnn's outputs: int8 identical, float within
1e-4 (summation order; the 3,782-class recognizer's softmax differs by ~1e-5).

    python -m models.evaluate runs/card_rec/export --model a.xnn --model b.tflite

--model PATH (repeatable) evaluates those files (.tflite or .xnn, e.g. compressed with
`xnn convert`) with the folder's spec instead of <name>_float/_int8.tflite, and reports each one's
difference from the folder's int8 model when that is evaluated too (--model int8 / float name the
folder's own files).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

from . import rec_spec as rs


def test_set(spec: rs.RecSpec, n: int, cache: str = "runs/cache", start: int = 0):
    """n held-out lines of TEST_SEED from sample `start` on (cached)."""
    d = os.path.join(cache, spec.cache_name)
    path = os.path.join(d, f"test_{n}.npz" if not start else f"test_{start}_{n}.npz")
    if os.path.exists(path):
        z = np.load(path)
        return z["x"], list(z["texts"])
    x, t = rs.render_set(spec, n, rs.TEST_SEED, start=start)
    os.makedirs(d, exist_ok=True)
    np.savez_compressed(path, x=x, texts=np.array(t, dtype=str))
    return x, t


class XnnRecognizer:
    """A recognizer .tflite on xnn: prepared (32, W) uint8 line -> (raw output, text)."""

    def __init__(self, path: str, spec: rs.RecSpec):
        import xnn

        self.xnn, self.spec = xnn, spec
        self.it = xnn.Interpreter(model_path=path, num_threads=1)
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def quantize_input(self, x_u8):
        x = rs.to_input(x_u8[None])
        if self.inp["dtype"] == np.int8:
            s, z = self.inp["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        return x

    def raw(self, x_u8):
        self.it.reset_all_variables()
        return self.it(self.quantize_input(x_u8))[0][0]

    def text(self, y):
        ctc = self.xnn.ctc
        if y.dtype == np.int8:
            s, z = self.out["quantization"]
            lp = ctc.to_log_probs(y, "probs", scale=s, zero_point=z)
        else:
            lp = ctc.to_log_probs(y, "probs")
        r = ctc.greedy_decode(lp, blank=self.spec.blank)
        return "".join(self.spec.charset[k] for k in r.labels)


def _litert(path, x):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0]


def _model_paths(folder: str, name: str, models=None) -> list:
    """[(label, path)]: the folder's <name>_float/_int8.tflite that exist, or the `models` given
    (file paths, labelled by file name; "float" / "int8" name the folder's own files)."""
    if not models:
        return [(k, p) for k in ("float", "int8")
                for p in [os.path.join(folder, f"{name}_{k}.tflite")] if os.path.exists(p)]
    out = []
    for m in models:
        label, path = (m, os.path.join(folder, f"{name}_{m}.tflite")) if m in ("float", "int8") \
            else (os.path.basename(m), m)
        if not os.path.exists(path):
            raise SystemExit(f"model file {path} does not exist")
        out.append((label, path))
    return out


def recognizer_accuracy(path: str, spec: rs.RecSpec, x, truth):
    """Run one recognizer file (.tflite or .xnn) on prepared lines x with xnn:
    (accuracy dict with bytes and ms_per_line, predicted texts, raw outputs, the XnnRecognizer)."""
    m = XnnRecognizer(path, spec)
    t0 = time.time()
    ys = [m.raw(xi) for xi in x]
    dt = (time.time() - t0) / max(1, len(x))
    preds = [m.text(y) for y in ys]
    acc = rs.accuracy(preds, truth)
    acc.update(bytes=os.path.getsize(path), ms_per_line=round(1000 * dt, 2))
    return acc, preds, ys, m


def _is_tflite(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


def evaluate(folder: str, n: int = 1000, litert: int = 0, cache: str = "runs/cache", log=print,
             models=None, start: int = 0) -> dict:
    specs = glob.glob(os.path.join(folder, "*.json"))
    if len(specs) != 1:
        raise SystemExit(f"expected one <name>.json spec in {folder}, found {specs}")
    spec = rs.RecSpec.from_json(open(specs[0], encoding="utf-8").read())
    x, truth = test_set(spec, n, cache, start)
    res = {"name": spec.name, "n": len(truth)}
    for kind, path in _model_paths(folder, spec.name, models):
        acc, preds, ys, m = recognizer_accuracy(path, spec, x, truth)
        exact = m.inp["dtype"] == np.int8  # int8 models must match LiteRT exactly
        check = litert and _is_tflite(path)
        if check:
            worst = 0.0
            for xi, y in zip(x[:litert], ys[:litert]):
                e = _litert(path, m.quantize_input(xi))
                d = float(np.abs(y.astype(np.float64) - e).max())
                worst = max(worst, d)
                if (exact and d != 0) or d > 1e-4:
                    raise SystemExit(f"{kind}: xnn differs from LiteRT by {d:g}")
            acc["max_abs_vs_litert"] = worst
        res[kind] = acc
        errs = [(p, t) for p, t in zip(preds, truth) if p != t][:5]
        log(f"{kind:5s} seq {acc['seq_acc']:.4f}  char {acc['char_acc']:.4f}  {acc['bytes']:,} B  "
            f"{acc['ms_per_line']} ms/line" + (f"  vs LiteRT {acc['max_abs_vs_litert']:.1e}" if check else "")
            + (f"  e.g. {errs}" if errs else ""))
    if "float" in res and "int8" in res:
        res["int8_minus_float_seq"] = res["int8"]["seq_acc"] - res["float"]["seq_acc"]
        log(f"int8 - float: seq {res['int8_minus_float_seq']:+.4f}")
    if "int8" in res:
        for kind, _ in _model_paths(folder, spec.name, models):
            if kind not in ("float", "int8"):
                r = res[kind]
                r["seq_minus_int8"] = r["seq_acc"] - res["int8"]["seq_acc"]
                r["char_minus_int8"] = r["char_acc"] - res["int8"]["char_acc"]
                log(f"{kind} - int8: seq {r['seq_minus_int8']:+.4f}  char {r['char_minus_int8']:+.4f}")
    return res


# ---- detector -----------------------------------------------------------------------------------

DECODERS = ("detect", "lines")


def det_test_set(spec, n: int, cache: str = "runs/cache", log=None) -> list:
    """The detector's held-out pages 0..n-1 (det_targets.TEST_SEED, domains round robin) as
    [(domain, letterboxed (H, W) uint8 page, letterbox scale, ground-truth quads (k, 4, 2) in page
    pixels)], cached in <cache>/det_<H>x<W>/test_pages_<n>.npz (a cached set of at least n pages
    with the same domains serves any smaller n: page i depends only on its index)."""
    from . import det_targets as dt
    from .data import generate
    from xnn.ocr import detect as post

    d = os.path.join(cache, f"det_{spec.height}x{spec.width}")
    doms = list(spec.domains)
    for f in sorted(glob.glob(os.path.join(d, "test_pages_*.npz")),
                    key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0])):
        if int(f.rsplit("_", 1)[1].split(".")[0]) < n:
            continue
        with np.load(f) as z:
            if list(z["domains"]) != doms:
                continue
            x, scale, quads = z["x"][:n].copy(), z["scale"], z["quads"]  # each z[...] reads the file
            cut = np.concatenate([[0], np.cumsum(z["counts"])])
        return [(doms[i % len(doms)], x[i], float(scale[i]), quads[cut[i]:cut[i + 1]]) for i in range(n)]
    pages = []
    t0 = time.time()
    for i in range(n):
        dom = doms[i % len(doms)]
        smp = generate(dom, dt.TEST_SEED, i)
        x_u8, scale = post.letterbox(smp.image, spec.height, spec.width)
        pages.append((dom, x_u8, scale, np.stack([ln.quad for ln in smp.lines]).reshape(-1, 4, 2).astype(np.float64)))
    if log:
        log(f"rendered {n} test pages in {time.time() - t0:.0f} s")
    os.makedirs(d, exist_ok=True)
    np.savez_compressed(os.path.join(d, f"test_pages_{n}.npz"), x=np.stack([p[1] for p in pages]),
                        scale=np.array([p[2] for p in pages]), counts=np.array([len(p[3]) for p in pages]),
                        quads=np.concatenate([p[3] for p in pages]), domains=np.array(doms, dtype=str))
    return pages


def detector_accuracy(path: str, spec, pages: list, decoders=("detect",), threshold: float = 0.5,
                      litert: int = 0) -> dict:
    """Run one detector file (.tflite or .xnn) on det_test_set pages with xnn and score each
    decoder ("detect": per-pixel decode + NMS; "lines": detect_lines): {decoder: P/R/F dict with
    per_domain, bytes, ms_net, ms_post (that decoder's time), max_abs_vs_litert (with litert K > 0
    on a .tflite: xnn checked against LiteRT's reference kernels on the first K pages)}."""
    import xnn
    from xnn.ocr import detect as post

    from . import det_targets as dt

    it = xnn.Interpreter(model_path=path, num_threads=1)
    di, do = it.get_input_details()[0], it.get_output_details()[0]
    fns = {"detect": post.detect, "lines": post.detect_lines}
    counts = {k: {} for k in decoders}
    t_post = dict.fromkeys(decoders, 0.0)
    t_net = worst = 0.0
    check = litert and _is_tflite(path)
    for k, (dom, x_u8, scale, gt) in enumerate(pages):
        x = dt.to_input(x_u8[None])
        if di["dtype"] == np.int8:
            s, z = di["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        t0 = time.time()
        y = it(x)[0][0]
        t_net += time.time() - t0
        if check and k < litert:
            e = _litert(path, x)
            d = float(np.abs(y.astype(np.float64) - e).max())
            worst = max(worst, d)
            if (y.dtype == np.int8 and d != 0) or d > 1e-4:
                raise SystemExit(f"{path}: xnn differs from LiteRT by {d:g} on page {k}")
        if y.dtype == np.int8:
            s, z = do["quantization"]
            y = (y.astype(np.float32) - z) * s
        for dec in decoders:
            t1 = time.time()
            q, _ = fns[dec](y, scale, spec.stride, spec.d0, threshold)
            t_post[dec] += time.time() - t1
            c = counts[dec].setdefault(dom, [0, 0, 0])
            c[0] += post.match(q, gt)
            c[1] += len(q)
            c[2] += len(gt)
    n = max(1, len(pages))
    out = {}
    for dec in decoders:
        tot = np.sum(list(counts[dec].values()), 0)
        r = post.prf(int(tot[0]), int(tot[1]), int(tot[2]))
        r["per_domain"] = {d: post.prf(*c) for d, c in counts[dec].items()}
        r.update(decoder=dec, bytes=os.path.getsize(path), ms_net=round(1000 * t_net / n, 1),
                 ms_post=round(1000 * t_post[dec] / n, 1))
        if check:
            r["max_abs_vs_litert"] = worst
        out[dec] = r
    return out


def evaluate_detector(folder: str, spec_path: str, n: int = 500, litert: int = 0, threshold: float = 0.5,
                      log=print, decoder: str = "detect", cache: str = "runs/cache", models=None) -> dict:
    """P/R/F of the folder's detectors (or `models`) on n held-out pages. decoder "detect" or
    "lines" fills res[kind] with that decoder's scores; "both" gives detect's scores in res[kind]
    and detect_lines' in res[kind]["lines"]."""
    from . import det_targets as dt

    decs = DECODERS if decoder == "both" else (decoder,)
    if any(d not in DECODERS for d in decs):
        raise SystemExit(f"--decoder must be detect, lines or both, got {decoder!r}")
    spec = dt.DetSpec.from_json(open(spec_path, encoding="utf-8").read())
    pages = det_test_set(spec, n, cache, log=log)
    res = {"name": spec.name, "n": n}
    for kind, path in _model_paths(folder, spec.name, models):
        rs_ = detector_accuracy(path, spec, pages, decs, threshold, litert)
        for dec in decs:
            r = rs_[dec]
            tag = "" if decoder == "detect" else f" [{dec}]"
            log(f"{kind:5s}{tag} P {r['precision']:.4f}  R {r['recall']:.4f}  F {r['f']:.4f}  {r['bytes']:,} B  "
                f"net {r['ms_net']} ms + post {r['ms_post']} ms/page"
                + (f"  vs LiteRT {r['max_abs_vs_litert']:.1e}" if "max_abs_vs_litert" in r else "") + "  "
                + " ".join(f"{d}:F{v['f']:.3f}" for d, v in r["per_domain"].items()))
        res[kind] = rs_[decs[0]]
        if len(decs) > 1:
            res[kind]["lines"] = rs_["lines"]
    if "float" in res and "int8" in res:
        res["int8_minus_float_f"] = res["int8"]["f"] - res["float"]["f"]
        log(f"int8 - float: F {res['int8_minus_float_f']:+.4f}")
    if "int8" in res:
        for kind, _ in _model_paths(folder, spec.name, models):
            if kind not in ("float", "int8"):
                res[kind]["f_minus_int8"] = res[kind]["f"] - res["int8"]["f"]
                log(f"{kind} - int8: F {res[kind]['f_minus_int8']:+.4f}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("folder", help="export folder (<name>.json, <name>_float.tflite, <name>_int8.tflite)")
    ap.add_argument("--n", type=int, default=1000, help="held-out lines (seed TEST_SEED)")
    ap.add_argument("--litert", type=int, default=0, help="check xnn == LiteRT on the first K lines")
    ap.add_argument("--start", type=int, default=0, metavar="S",
                    help="recognizers: held-out lines from sample S of TEST_SEED on (a set apart from the usual "
                         "first --n lines, e.g. to check a model chosen on those)")
    ap.add_argument("--cache", default="runs/cache")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--threshold", type=float, default=0.5, help="detector score threshold")
    ap.add_argument("--decoder", default="detect", choices=("detect", "lines", "both"),
                    help="detector post-processing: detect (per-pixel + NMS), lines (detect_lines) or both")
    ap.add_argument("--model", action="append", metavar="PATH",
                    help="evaluate this .tflite/.xnn file (repeatable; 'float'/'int8': the folder's own) "
                         "instead of the folder's float and int8 models")
    a = ap.parse_args(argv)
    specs = glob.glob(os.path.join(a.folder, "*.json"))
    if len(specs) == 1 and "fpn" in json.load(open(specs[0], encoding="utf-8")):
        res = evaluate_detector(a.folder, specs[0], a.n, a.litert, a.threshold, decoder=a.decoder,
                                cache=a.cache, models=a.model)
    else:
        res = evaluate(a.folder, a.n, a.litert, a.cache, models=a.model, start=a.start)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
