"""Load time of a model as .tflite vs as .xnn (converted on the fly), and the file sizes.

    python bench/bench_load.py [MODEL.tflite ...] [--repeat N]

For each model: `load_graph` (read + constant folding + graph passes: what differs between the
formats) and a full `Interpreter(...)` construction (the same plus kernel preparation, which is
identical for both), each the minimum over N runs in this process (warm file cache, Numba kernels
already compiled). Also checks that both give identical outputs on one random input.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import xnn  # noqa: E402
from xnn.converter.tflite_reader import read_tflite  # noqa: E402
from xnn.converter.xnn_format import graph_for_xnn, write_file, write_xnn  # noqa: E402
from xnn.interpreter import load_graph  # noqa: E402


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def feeds(it):
    rng = np.random.default_rng(0)
    out = []
    for d in it.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            out.append(rng.integers(-128, 128, d["shape"]).astype(d["dtype"]))
        else:
            out.append(rng.uniform(0, 1, d["shape"]).astype(d["dtype"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    models = args.models or sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "*.tflite"))
                                   + glob.glob(os.path.join(ROOT, "tests", "fixtures", "seq", "*.tflite")))
    head = (f"{'model':<28} {'.tflite B':>10} {'.xnn B':>9}  {'load_graph ms: tflite':>21} {'xnn':>6} "
            f"{'x':>5}  {'Interpreter ms: tflite':>22} {'xnn':>6}  same")
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            with open(path, "rb") as f:
                content = f.read()
            out = os.path.join(tmp, os.path.basename(path) + ".xnn")
            size = write_file(out, write_xnn(graph_for_xnn(read_tflite(content))))
            xnn.Interpreter(model_path=out)  # compile / warm everything once
            lt = best(lambda: load_graph(model_path=path), args.repeat)
            lx = best(lambda: load_graph(model_path=out), args.repeat)
            it_t = best(lambda: xnn.Interpreter(model_path=path), max(3, args.repeat // 5))
            it_x = best(lambda: xnn.Interpreter(model_path=out), max(3, args.repeat // 5))
            a, b = xnn.Interpreter(model_path=path), xnn.Interpreter(model_path=out)
            x = feeds(a)
            same = all(np.array_equal(p, q) for p, q in zip(a(x), b(x)))
            print(f"{os.path.basename(path):<28} {len(content):>10,} {size:>9,}  {lt * 1e3:>21.2f} "
                  f"{lx * 1e3:>6.2f} {lt / lx:>5.1f}  {it_t * 1e3:>22.1f} {it_x * 1e3:>6.1f}  {same}")


if __name__ == "__main__":
    main()
