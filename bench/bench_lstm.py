"""LSTM microbenchmark: xnn vs LiteRT (same single-op models, one thread, same run).

    python bench/bench_lstm.py [--repeat 30] [--resolver AUTO]

Random UNIDIRECTIONAL_SEQUENCE_LSTM models of recognizer sizes in the three forms (float32,
hybrid int8-weight, integer 8x8->16), with and without projection. Prints medians, xnn/LiteRT,
and xnn microseconds per time step.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from bench_models import time_fn  # noqa: E402
from test_ops_lstm import Q_TF, build, feeds_for  # noqa: E402  (the test suite's model builder)

import xnn  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--resolver", default="AUTO", choices=["AUTO", "BUILTIN_REF"])
    args = ap.parse_args(argv)
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    print(f"{'case':<40}{'xnn us':>10}{'LiteRT us':>11}{'ratio':>8}{'us/step':>9}")
    for form in ("float", "hybrid", "int8"):
        for T, ni, nc, proj in [(32, 64, 64, None), (32, 128, 128, None), (32, 128, 128, 64), (48, 256, 128, 96)]:
            rng = np.random.default_rng(0)
            kw = dict(T=T, B=1, ni=ni, nc=nc, proj=proj)
            if form == "int8":
                kw["q"] = dict(Q_TF, cs=-11)
            model, shape = build(rng, form, **kw)
            x = feeds_for(rng, form, shape, 1)[0]
            it = xnn.Interpreter(model_content=model)
            it.set_tensor(it.get_input_details()[0]["index"], x)
            t_x = time_fn(it.invoke, args.repeat)
            lt = LiteRT(model_content=model, num_threads=1,
                        experimental_op_resolver_type=getattr(OpResolverType, args.resolver))
            lt.allocate_tensors()
            lt.set_tensor(lt.get_input_details()[0]["index"], x)
            t_l = time_fn(lt.invoke, args.repeat)
            name = f"{form} T={T} in={ni} cell={nc}" + (f" proj={proj}" if proj else "")
            print(f"{name:<40}{t_x * 1e6:>10.1f}{t_l * 1e6:>11.1f}{t_x / t_l:>7.2f}x{t_x * 1e6 / T:>9.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
