"""Time xnn against LiteRT on the same models in one run, one thread each.

    python bench/bench_models.py [MODEL.tflite ...] [--repeat 50] [--resolver AUTO]

Default models: every tests/fixtures/**/*.tflite. Prints median latency per model for xnn and LiteRT
(AUTO = XNNPACK fast path unless --resolver says otherwise) and the xnn/LiteRT ratio (lower is
better for xnn). Inputs are seeded random data of each model's input shape and dtype.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _feeds(details, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for d in details:
        if np.issubdtype(d["dtype"], np.integer):
            out.append(rng.integers(-128, 128, d["shape"]).astype(d["dtype"]))
        else:
            out.append(rng.uniform(0, 1, d["shape"]).astype(d["dtype"]))
    return out


def time_fn(fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_model(path, repeat, resolver):
    import xnn
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    it = xnn.Interpreter(model_path=path)
    feeds = _feeds(it.get_input_details())
    for d, x in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], x)
    t_xnn = time_fn(it.invoke, repeat)

    lt = LiteRT(model_path=path, num_threads=1,
                experimental_op_resolver_type=getattr(OpResolverType, resolver))
    lt.allocate_tensors()
    for d, x in zip(lt.get_input_details(), feeds):
        lt.set_tensor(d["index"], x)
    t_lite = time_fn(lt.invoke, repeat)
    return t_xnn, t_lite


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--resolver", default="AUTO", choices=["AUTO", "BUILTIN", "BUILTIN_REF"])
    args = ap.parse_args(argv)
    models = args.models or sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "**", "*.tflite"),
                                              recursive=True))
    print(f"{'model':<28}{'xnn ms':>10}{'LiteRT ' + args.resolver + ' ms':>20}{'xnn/LiteRT':>12}")
    ratios = []
    for path in models:
        t_x, t_l = bench_model(path, args.repeat, args.resolver)  # LSTM state carries across runs in both
        ratios.append(t_x / t_l)
        print(f"{os.path.basename(path)[:-7]:<28}{t_x * 1e3:>10.3f}{t_l * 1e3:>20.3f}{t_x / t_l:>11.2f}x",
              flush=True)
    print(f"geometric mean ratio: {float(np.exp(np.mean(np.log(ratios)))):.2f}x  (median of {args.repeat} runs, 1 thread)")


if __name__ == "__main__":
    sys.exit(main())
