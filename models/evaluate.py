"""Held-out accuracy of exported recognizers and detectors, run and decoded with xnn (no TensorFlow needed).

    python -m models.evaluate runs/det/export --n 500 --litert 20      # detector (detector.json)

Detector: renders --n pages from det_targets.TEST_SEED (all domains, round robin), runs the OCR
runtime's path (xnn.ocr.detect.letterbox -> xnn.Interpreter -> xnn.ocr.detect.detect, quads in page
pixels) and reports precision/recall/F at polygon IoU 0.5, overall and per domain, for the float and
int8 models; --litert K checks xnn against LiteRT's reference kernels on the first K pages (int8
identical, float within 1e-4).

    python -m models.evaluate runs/card_rec/export              # float and int8, 1000 lines
    python -m models.evaluate runs/card_rec/export --n 300 --litert 50

Renders --n lines from TEST_SEED (never used in training, validation or calibration; cached in
runs/cache), runs <name>_float.tflite and <name>_int8.tflite with xnn.Interpreter, decodes with
xnn.ctc.greedy_decode (blank = last class) and reports sequence accuracy (exact string) and character
accuracy (1 - edit distance / length) per model, and int8 minus float. --litert K also runs the
first K lines in LiteRT's reference kernels and checks xnn's outputs: int8 identical, float within
1e-5.
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


def test_set(spec: rs.RecSpec, n: int, cache: str = "runs/cache"):
    d = os.path.join(cache, spec.cache_name)
    path = os.path.join(d, f"test_{n}.npz")
    if os.path.exists(path):
        z = np.load(path)
        return z["x"], list(z["texts"])
    x, t = rs.render_set(spec, n, rs.TEST_SEED)
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


def evaluate(folder: str, n: int = 1000, litert: int = 0, cache: str = "runs/cache", log=print) -> dict:
    specs = glob.glob(os.path.join(folder, "*.json"))
    if len(specs) != 1:
        raise SystemExit(f"expected one <name>.json spec in {folder}, found {specs}")
    spec = rs.RecSpec.from_json(open(specs[0], encoding="utf-8").read())
    x, truth = test_set(spec, n, cache)
    res = {"name": spec.name, "n": len(truth)}
    for kind in ("float", "int8"):
        path = os.path.join(folder, f"{spec.name}_{kind}.tflite")
        if not os.path.exists(path):
            continue
        m = XnnRecognizer(path, spec)
        t0 = time.time()
        ys = [m.raw(xi) for xi in x]
        dt = (time.time() - t0) / len(x)
        preds = [m.text(y) for y in ys]
        acc = rs.accuracy(preds, truth)
        acc.update(bytes=os.path.getsize(path), ms_per_line=round(1000 * dt, 2))
        if litert:
            worst = 0.0
            for xi, y in zip(x[:litert], ys[:litert]):
                e = _litert(path, m.quantize_input(xi))
                d = float(np.abs(y.astype(np.float64) - e).max())
                worst = max(worst, d)
                if (kind == "int8" and d != 0) or d > 1e-5:
                    raise SystemExit(f"{kind}: xnn differs from LiteRT by {d:g}")
            acc["max_abs_vs_litert"] = worst
        res[kind] = acc
        errs = [(p, t) for p, t in zip(preds, truth) if p != t][:5]
        log(f"{kind:5s} seq {acc['seq_acc']:.4f}  char {acc['char_acc']:.4f}  {acc['bytes']:,} B  "
            f"{acc['ms_per_line']} ms/line" + (f"  vs LiteRT {acc['max_abs_vs_litert']:.1e}" if litert else "")
            + (f"  e.g. {errs}" if errs else ""))
    if "float" in res and "int8" in res:
        res["int8_minus_float_seq"] = res["int8"]["seq_acc"] - res["float"]["seq_acc"]
        log(f"int8 - float: seq {res['int8_minus_float_seq']:+.4f}")
    return res


# ---- detector -----------------------------------------------------------------------------------

def evaluate_detector(folder: str, spec_path: str, n: int = 500, litert: int = 0, threshold: float = 0.5,
                      log=print) -> dict:
    import xnn
    from xnn.ocr import detect as post

    from . import det_targets as dt
    from .data import generate

    spec = dt.DetSpec.from_json(open(spec_path, encoding="utf-8").read())
    pages = []
    for i in range(n):
        dom = spec.domains[i % len(spec.domains)]
        smp = generate(dom, dt.TEST_SEED, i)
        pages.append((dom, smp.image, np.stack([ln.quad for ln in smp.lines]).reshape(-1, 4, 2)))
    res = {"name": spec.name, "n": n}
    for kind in ("float", "int8"):
        path = os.path.join(folder, f"{spec.name}_{kind}.tflite")
        if not os.path.exists(path):
            continue
        it = xnn.Interpreter(model_path=path, num_threads=1)
        di, do = it.get_input_details()[0], it.get_output_details()[0]
        counts = {}
        t_net = t_post = worst = 0.0
        for k, (dom, img, gt) in enumerate(pages):
            x_u8, scale = post.letterbox(img, spec.height, spec.width)
            x = dt.to_input(x_u8[None])
            if di["dtype"] == np.int8:
                s, z = di["quantization"]
                x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
            t0 = time.time()
            y = it(x)[0][0]
            t1 = time.time()
            if k < litert:
                e = _litert(path, x)
                d = float(np.abs(y.astype(np.float64) - e).max())
                worst = max(worst, d)
                if (kind == "int8" and d != 0) or d > 1e-4:
                    raise SystemExit(f"{kind}: xnn differs from LiteRT by {d:g} on page {k}")
            if y.dtype == np.int8:
                s, z = do["quantization"]
                y = (y.astype(np.float32) - z) * s
            q, _ = post.detect(y, scale, spec.stride, spec.d0, threshold)
            t_post += time.time() - t1
            t_net += t1 - t0
            c = counts.setdefault(dom, [0, 0, 0])
            c[0] += post.match(q, gt)
            c[1] += len(q)
            c[2] += len(gt)
        tot = np.sum(list(counts.values()), 0)
        r = post.prf(int(tot[0]), int(tot[1]), int(tot[2]))
        r["per_domain"] = {d: post.prf(*c) for d, c in counts.items()}
        r.update(bytes=os.path.getsize(path), ms_net=round(1000 * t_net / n, 1), ms_post=round(1000 * t_post / n, 1))
        if litert:
            r["max_abs_vs_litert"] = worst
        res[kind] = r
        log(f"{kind:5s} P {r['precision']:.4f}  R {r['recall']:.4f}  F {r['f']:.4f}  {r['bytes']:,} B  "
            f"net {r['ms_net']} ms + post {r['ms_post']} ms/page"
            + (f"  vs LiteRT {worst:.1e}" if litert else "") + "  "
            + " ".join(f"{d}:F{v['f']:.3f}" for d, v in r["per_domain"].items()))
    if "float" in res and "int8" in res:
        res["int8_minus_float_f"] = res["int8"]["f"] - res["float"]["f"]
        log(f"int8 - float: F {res['int8_minus_float_f']:+.4f}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("folder", help="export folder (<name>.json, <name>_float.tflite, <name>_int8.tflite)")
    ap.add_argument("--n", type=int, default=1000, help="held-out lines (seed TEST_SEED)")
    ap.add_argument("--litert", type=int, default=0, help="check xnn == LiteRT on the first K lines")
    ap.add_argument("--cache", default="runs/cache")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--threshold", type=float, default=0.5, help="detector score threshold")
    a = ap.parse_args(argv)
    specs = glob.glob(os.path.join(a.folder, "*.json"))
    if len(specs) == 1 and "fpn" in json.load(open(specs[0], encoding="utf-8")):
        res = evaluate_detector(a.folder, specs[0], a.n, a.litert, a.threshold)
    else:
        res = evaluate(a.folder, a.n, a.litert, a.cache)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
