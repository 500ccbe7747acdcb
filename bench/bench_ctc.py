"""CTC decoding microbenchmark: Numba kernels vs the NumPy reference implementations.

    python bench/bench_ctc.py [--repeat 20]

Sequences are seeded, OCR-like (peaked per-frame distributions). Prints medians, the
reference/kernel ratio, and microseconds per time step.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_models import time_fn  # noqa: E402

from xnn.kernels import ctc  # noqa: E402


def make(T, C, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(C, 0.1), size=T)
    return ctc.to_log_probs(p)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    print(f"{'case':<34}{'numba us':>10}{'numpy us':>12}{'ratio':>8}{'us/step':>9}")
    for T, C, width in [(32, 11, 1), (32, 11, 8), (64, 37, 8), (48, 71, 10), (32, 3501, 5)]:
        lp = make(T, C)
        if width == 1:
            fast = lambda: ctc.greedy_kernel(lp, 0)  # noqa: E731
            ref = lambda: ctc.greedy_ref(lp)  # noqa: E731
            name = f"greedy T={T} C={C}"
        else:
            k = min(C, 16)
            fast = lambda: ctc.beam_search(lp, width, top_classes=k)  # noqa: E731
            ref = lambda: ctc.beam_search_ref(lp, width, top_classes=k)  # noqa: E731
            name = f"beam W={width} T={T} C={C} top{k}"
        tf_ = time_fn(fast, args.repeat)
        tr = time_fn(ref, max(3, args.repeat // 4), warmup=1)
        print(f"{name:<34}{tf_ * 1e6:>10.1f}{tr * 1e6:>12.1f}{tr / tf_:>7.1f}x{tf_ * 1e6 / T:>9.2f}")
    # rule-constrained decoding with the card-number grammar (Luhn, issuer lengths; 6,964 DFA
    # states): the recombining beam Viterbi vs its unpruned NumPy reference
    from xnn.ocr import rules

    charset = " 0123456789"
    dfa = rules.constraint(("card", "number"), charset)
    for T, width in [(64, 64), (64, 256)]:
        lp = make(T, len(charset) + 1, seed=3)
        blank = len(charset)
        fast = lambda: ctc.dfa_decode(lp, dfa, blank=blank, width=width)  # noqa: E731
        ref = lambda: ctc.dfa_viterbi_ref(lp, dfa[0], dfa[1], 0, blank)  # noqa: E731
        tf_ = time_fn(fast, args.repeat)
        tr = time_fn(ref, 1, warmup=0)
        name = f"dfa(card) W={width} T={T} C={len(charset) + 1}"
        print(f"{name:<34}{tf_ * 1e6:>10.1f}{tr * 1e6:>12.0f}{tr / tf_:>7.0f}x{tf_ * 1e6 / T:>9.2f}"
              "   (reference: exact, unpruned)")


if __name__ == "__main__":
    main()
