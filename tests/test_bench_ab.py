"""bench/ab_models.py: argument checks, the truths it scores against, and one real A/B run (the
shipped card reader against itself: both sides must agree image by image)."""
import os
import sys

import pytest

pytest.importorskip("PIL")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

import ab_models  # noqa: E402
from xnn import zoo  # noqa: E402


def test_model_arguments_are_checked(tmp_path):
    with pytest.raises(SystemExit, match="NAME=PATH"):
        ab_models.parse_models(["card_number"])
    with pytest.raises(SystemExit, match="does not exist"):
        ab_models.parse_models([f"card_number={tmp_path / 'none.tflite'}"])
    with pytest.raises(SystemExit, match="at least one"):
        ab_models.parse_models([])
    p = zoo.path("card_number_int8.tflite")
    assert ab_models.parse_models([f"card_number={p}"]) == {"card_number": p}


def test_truths_are_the_generators_fields_normalized():
    from models.data import generate

    s = generate("card", 8, 0)
    t = ab_models.truths("card", s)
    number = next(ln.text for ln in s.lines if ln.field == "number")
    assert t["number"] == number.replace(" ", "") and t["number"].isdigit()
    assert set(t) == {"number", "expiry", "name"} and "/" in t["expiry"] and " " not in t["name"]


def test_a_model_against_itself_scores_the_same(capsys):
    ab_models.main(["--app", "plate", "--n", "3", "--model", f"plate_plate={zoo.path('plate_plate_int8.tflite')}"])
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| plate |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == cells[2] and cells[3] == cells[4] == "0"
