"""Fused vs unfused bidirectional LSTM on the crnn_bilstm fixtures, and LiteRT on the same files.

    python bench/bench_bidi_lstm.py [--repeat 200] [--resolver AUTO]

xnn "fused" runs the default passes (one BIDI_SEQUENCE_LSTM node); "unfused" loads with
XNN_NO_FUSE=1 (two UNIDIRECTIONAL_SEQUENCE_LSTM + two REVERSE_V2 + CONCATENATION). LiteRT runs
with one thread. Also times the recurrent block alone (the nodes the fusion replaces). Medians.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_models import _feeds, time_fn  # noqa: E402

import xnn  # noqa: E402

FORMS = ("float", "fp16", "dynamic", "int8", "int8_fio")


def _load(path, fuse):
    old = os.environ.get("XNN_NO_FUSE")
    os.environ["XNN_NO_FUSE"] = "0" if fuse else "1"
    try:
        return xnn.Interpreter(model_path=path, num_threads=1)
    finally:
        if old is None:
            del os.environ["XNN_NO_FUSE"]
        else:
            os.environ["XNN_NO_FUSE"] = old


def _block_time(it, repeat):
    """Median time of the plan entries that belong to the bidirectional block."""
    ops = {"BIDI_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "REVERSE_V2", "CONCATENATION"}
    plan = [p for p, ctx in zip(it._plan, it._contexts) if ctx.node.op in ops]

    def block():
        for run, ins, outs in plan:
            run(ins, outs)
    return time_fn(block, repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--resolver", default="AUTO", choices=["AUTO", "BUILTIN", "BUILTIN_REF"])
    args = ap.parse_args(argv)
    from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType

    print(f"{'model':<22}{'fused us':>10}{'unfused us':>12}{'block fused':>13}{'block unfused':>15}"
          f"{'LiteRT ' + args.resolver + ' us':>18}{'fused/LiteRT':>14}")
    for form in FORMS:
        path = os.path.join(ROOT, "tests", "fixtures", "seq", f"crnn_bilstm_{form}.tflite")
        row = []
        its = [_load(path, True), _load(path, False)]
        feeds = _feeds(its[0].get_input_details())
        for it in its:
            for d, x in zip(it.get_input_details(), feeds):
                it.set_tensor(d["index"], x)
            row.append(time_fn(it.invoke, args.repeat))
        blocks = [_block_time(it, args.repeat) for it in its]
        lt = LiteRT(model_path=path, num_threads=1,
                    experimental_op_resolver_type=getattr(OpResolverType, args.resolver))
        lt.allocate_tensors()
        for d, x in zip(lt.get_input_details(), feeds):
            lt.set_tensor(d["index"], x)
        t_l = time_fn(lt.invoke, args.repeat)
        us = [v * 1e6 for v in row + blocks + [t_l]]
        print(f"crnn_bilstm_{form:<10}{us[0]:>10.1f}{us[1]:>12.1f}{us[2]:>13.1f}{us[3]:>15.1f}"
              f"{us[4]:>18.1f}{row[0] / t_l:>13.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
