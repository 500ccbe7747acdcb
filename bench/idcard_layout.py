"""The ID-card reader's name and address on held-out cards: right lines, exact texts, characters.

    python bench/idcard_layout.py [--n 100] [--true-boxes] [--model PATH]

Renders --n ID cards of the held-out seed (8, pages 0..n-1), reads each with xnn.ocr.Reader("idcard")
(detector boxes, or with --true-boxes the generator's line boxes, captions included) and reports, for
name and address: exact matches, fields taken from the wrong line (quad centre more than 20 / 25 px
from the true line's: a layout error rather than a misread), fields missing, and the address's
character accuracy (1 - edit distance capped at the truth's length / truth characters).
--model overrides the Chinese recognizer (e.g. an export's .tflite or another .xnn).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python bench/idcard_layout.py", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="held-out cards (default 100)")
    ap.add_argument("--true-boxes", action="store_true", help="give the reader the generator's line boxes")
    ap.add_argument("--model", help="Chinese recognizer to use instead of the shipped one")
    a = ap.parse_args(argv)

    from models.data import generate
    from models.rec_spec import TEST_SEED, edit_distance
    from xnn.ocr import Reader
    from xnn.ocr.apps import ID_TEXT_MODEL

    reader = Reader("idcard", models={ID_TEXT_MODEL: a.model} if a.model else None)
    reader.warmup()
    st = {k: 0 for k in ("name", "address", "name_wrong_line", "address_wrong_line", "name_missing",
                         "address_missing")}
    errs = chars = 0
    for i in range(a.n):
        s = generate("idcard", TEST_SEED, i)
        res = reader.read(s.image, quads=[ln.quad for ln in s.lines] if a.true_boxes else None)
        rows = sorted((ln for ln in s.lines if ln.field == "address"), key=lambda ln: ln.meta.get("row", 0))
        truth = {"name": next(ln for ln in s.lines if ln.field == "name"), "address": rows[0]}
        texts = {"name": truth["name"].text, "address": "".join(ln.text for ln in rows)}
        for f, tol in (("name", 20.0), ("address", 25.0)):
            got = res.fields.get(f)
            if got is None:
                st[f + "_missing"] += 1
                continue
            st[f] += got.text == texts[f]
            st[f + "_wrong_line"] += float(np.linalg.norm(got.quad.mean(0) - truth[f].quad.mean(0))) > tol
        got = res.fields["address"].text if "address" in res.fields else ""
        errs += min(len(texts["address"]), edit_distance(got, texts["address"]))
        chars += len(texts["address"])
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{a.n}", file=sys.stderr, flush=True)
    boxes = "true line boxes" if a.true_boxes else "detector boxes"
    print(f"{a.n} held-out ID cards (seed {TEST_SEED}, {boxes}):")
    for f in ("name", "address"):
        print(f"  {f:8s} exact {st[f]}/{a.n}  wrong line {st[f + '_wrong_line']}  missing {st[f + '_missing']}")
    print(f"  address character accuracy {1.0 - errs / max(1, chars):.3f}")


if __name__ == "__main__":
    main()
