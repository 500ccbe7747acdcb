"""The shipped card expiry/name recognizer reads a date where the date is. An earlier model pooled
its squeeze-excitation over the whole line and emitted a date's first characters at frames 0-4 from
that summary, before the date, guessing the month's second digit (models/README.md, --se-pool).
On expiry lines boxed together with the caption printed before them ("VALID THRU 05/31"), the
date's "/" must come out behind the caption, not at the start of the line. Needs Pillow and the
fonts of models/setup_data.sh."""
import os
import sys

import numpy as np
import pytest

pytest.importorskip("PIL")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models.data import render_lines  # noqa: E402
from xnn.kernels import ctc  # noqa: E402
from xnn.ocr.engine import Recognizer  # noqa: E402
from xnn.ocr.geometry import prepare_line  # noqa: E402

MODEL = os.environ.get("XNN_TEST_EXPIRY_MODEL", "card_expiry_name")   # a path checks another model


def slash_frames(rec, lines):
    out = []
    for img, text in lines:
        lp = rec.log_probs(prepare_line(img, rec.width))
        r = ctc.greedy_decode(lp, blank=rec.blank)
        got = rec.text(r.labels)
        if "/" in got:
            out.append((int(r.spans[got.index("/"), 0]), img.shape[1]))
    return out


def test_date_is_read_behind_its_caption():
    rec = Recognizer(MODEL)
    # expiry lines of held-out cards (seed 8), every one that has a caption boxed together with it
    lines = [(img, t) for img, t in render_lines("card", 60, seed=8, fields=("expiry",), merge_captions=1.0)
             if img.shape[1] >= 5 * 32]      # with its caption a date's line is >= 5 heights (alone ~3.5)
    assert len(lines) >= 15
    found = slash_frames(rec, lines)
    assert len(found) >= 0.8 * len(lines)
    # the caption takes the first >= 1.5 heights (>= 12 frames of 4 px at 32 rows), and the "/" is
    # ~1.4 heights into the date: it lies past frame 10 (the old model: frames 2-4)
    frames = np.array([f for f, _ in found])
    assert np.median(frames) >= 15 and np.mean(frames >= 10) >= 0.8, frames
