"""`xnn ocr`: bundled examples, JSON output, drawing, batch mode, frames, and bad input (a clear
message and a non-zero exit, never a traceback)."""
import json
import os
import struct
import zlib

import numpy as np
import pytest

from xnn.cli import main

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "xnn", "examples")


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_examples_are_bundled_with_their_truth():
    truth = json.load(open(os.path.join(EX, "truth.json"), encoding="utf-8"))
    for app in ("card", "meter", "plate", "vin", "idcard"):
        assert os.path.getsize(os.path.join(EX, f"{app}.jpg")) < 100_000
        assert truth[app]
    assert len(os.listdir(os.path.join(EX, "card_frames"))) >= 3


def test_ocr_json_on_the_card_example(capsys, tmp_path):
    draw = tmp_path / "out.png"
    rc, out, err = run(capsys, "ocr", os.path.join(EX, "card.jpg"), "--app", "card", "--json", "--draw", str(draw))
    d = json.loads(out)
    assert d["app"] == "card" and set(d["fields"]) | set(d["missing"]) == {"number", "expiry", "name"}
    assert set(d["timings_ms"]) == {"detect", "crop", "recognize", "decode"}
    assert "quality" in d and isinstance(d["quality"]["hints"], list)
    assert rc == (0 if d["fields"] else 1)
    with Image.open(draw) as im:
        assert im.size == Image.open(os.path.join(EX, "card.jpg")).size


def test_ocr_text_output_and_help(capsys):
    rc, out, err = run(capsys, "ocr", os.path.join(EX, "card.jpg"), "--app", "card")
    assert "card.jpg: card" in out and "time detect" in out
    with pytest.raises(SystemExit) as e:
        main(["ocr", "--help"])
    assert e.value.code == 0
    assert "--frames" in capsys.readouterr().out


def test_ocr_frames_fusion(capsys):
    rc, out, err = run(capsys, "ocr", "--frames", os.path.join(EX, "card_frames"), "--app", "card", "--json")
    d = json.loads(out)
    assert 1 <= d["frames_used"] <= d["frames_available"] == len(os.listdir(os.path.join(EX, "card_frames")))
    for f in d["fields"].values():
        assert f["meta"]["frames"] == d["frames_used"]


def _png_header_only(path, w, h):
    """A PNG whose IHDR claims w x h pixels (and no image data worth decoding)."""
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated", "huge", "tiny"])
def test_ocr_bad_images(capsys, tmp_path, kind):
    p = tmp_path / f"{kind}.png"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(os.urandom(3000))
    elif kind == "truncated":
        data = open(os.path.join(EX, "plate.jpg"), "rb").read()
        p = tmp_path / "truncated.jpg"
        p.write_bytes(data[: len(data) // 3])
    elif kind == "huge":
        _png_header_only(p, 60000, 60000)
    elif kind == "tiny":
        Image.new("RGB", (4, 4)).save(p)
    rc, out, err = run(capsys, "ocr", str(p), "--app", "card")
    assert rc != 0
    assert err.startswith("xnn: error: ") and str(p.name) in err   # before any model loads


def test_ocr_image_without_text(capsys, tmp_path):
    p = tmp_path / "gray.png"
    Image.fromarray(np.full((320, 480, 3), 127, np.uint8)).save(p)
    rc, out, err = run(capsys, "ocr", str(p), "--app", "card")
    assert rc == 1 and "no card fields found" in err


def test_ocr_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["ocr", os.path.join(EX, "card.jpg"), "--app", "passport"])
    assert e.value.code == 2
    capsys.readouterr()
    rc, out, err = run(capsys, "ocr")
    assert rc != 0 and "no input" in err
    rc, out, err = run(capsys, "ocr", str(tmp_path))
    assert rc != 0 and "no image files" in err


def test_ocr_batch_reports_bad_files_and_continues(capsys, tmp_path):
    for name in ("a_card.jpg", "c_card.jpg"):
        (tmp_path / name).write_bytes(open(os.path.join(EX, "card.jpg"), "rb").read())
    (tmp_path / "b_broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored")
    rc, out, err = run(capsys, "ocr", str(tmp_path), "--app", "card", "--json")
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [os.path.basename(d["file"]) for d in docs] == ["a_card.jpg", "c_card.jpg"]
    assert "b_broken.jpg" in err and "1 unreadable" in err and "3 files" in err
    assert rc == 1


def test_ocr_fields_option(capsys):
    rc, out, err = run(capsys, "ocr", os.path.join(EX, "card.jpg"), "--app", "card", "--fields", "number", "--json")
    d = json.loads(out)
    assert set(d["fields"]) | set(d["missing"]) == {"number"}
    rc, out, err = run(capsys, "ocr", os.path.join(EX, "card.jpg"), "--app", "card", "--fields", "pin")
    assert rc != 0 and "no field" in err and "number, expiry, name" in err
