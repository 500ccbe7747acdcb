"""Write the example images bundled with the package (xnn/examples/), so that `xnn ocr` runs on a
fresh install:

    python -m models.make_examples            # -> xnn/examples/{card,meter,plate,vin,idcard}.jpg,
                                              #    xnn/examples/card_frames/frame_*.jpg, truth.json

Each example is page `--index` of the held-out seed (models.det_targets.TEST_SEED, never trained on).
The default, 3, is the first page the shipped models read correctly in all five domains (pages 0-2
each have one domain misread): the examples demonstrate, they do not measure; accuracy is measured
by bench/bench_peers.py. card_frames/ holds --frames camera views of one card (models.data
.generate_frames, page --index + 1) for multi-frame fusion. truth.json records every example's text.
"""
from __future__ import annotations

import argparse
import json
import os

from PIL import Image

from .data import generate, generate_frames
from .det_targets import TEST_SEED

KEY_FIELDS = {"card": "number", "meter": "reading", "plate": "plate", "vin": "vin", "idcard": "id_number"}
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "xnn", "examples")


def _truth(sample) -> dict:
    """Every field's text; a field printed on several rows (an ID card address) is its rows joined."""
    out = {}
    for ln in sample.lines:
        if ln.field != "label":
            out[ln.field] = out.get(ln.field, "") + ln.text
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m models.make_examples", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT, help="output folder (default: xnn/examples)")
    ap.add_argument("--index", type=int, default=3, help="page index of the held-out seed")
    ap.add_argument("--frames", type=int, default=4, help="camera views in card_frames/")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    truth = {}
    for dom in KEY_FIELDS:
        s = generate(dom, TEST_SEED, a.index)
        path = os.path.join(a.out, f"{dom}.jpg")
        Image.fromarray(s.image).save(path, quality=a.quality)
        truth[dom] = _truth(s)
        print(f"{path}: {truth[dom][KEY_FIELDS[dom]]!r}")
    fdir = os.path.join(a.out, "card_frames")
    os.makedirs(fdir, exist_ok=True)
    frames = generate_frames("card", a.frames, TEST_SEED, a.index + 1)
    for k, s in enumerate(frames):
        Image.fromarray(s.image).save(os.path.join(fdir, f"frame_{k:02d}.jpg"), quality=a.quality)
    truth["card_frames"] = _truth(frames[0])
    print(f"{fdir}: {len(frames)} frames of {truth['card_frames']['number']!r}")
    with open(os.path.join(a.out, "truth.json"), "w", encoding="utf-8") as f:
        json.dump(truth, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
