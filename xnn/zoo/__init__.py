"""Shipped models (package data): each is an int8 .tflite plus a JSON spec (recognizers: charset,
input width, blank index; detector: input size, stride). How each was trained, exported and
evaluated, and its held-out accuracy, is in models/README.md; xnn.ocr.Reader loads them by name.

- detector: text-line detector for all domains (320x480 gray page -> score, box and angle maps);
  since session 12 the narrower one (widths 16-96, FPN 32) distilled from the first detector.
- card_number: bank-card number lines (digits + space).
- meter_reading: gas/water meter registers (digits).
- plate_plate: mainland China licence plates (province characters, letters, digits, 警/学).
- vin_vin: VINs (17 characters, no I/O/Q).
- idcard_id_number: Chinese resident ID numbers (digits + X).
- idcard_name_address (.xnn): ID-card names and address rows, 3,772 Chinese characters (GB 2312
  level 1 plus the province/ethnic/region characters of level 2) + digits; shipped as a compressed
  .xnn (float kernels, 8-bit uniform weight codes, lzma), which reads as well as the float model
  where the full-int8 export lost several points.
Not shipped yet: card_expiry_name (card expiry and holder name); a card Reader lists those fields as
missing.
"""
import json
import os

ZOO = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    """Path of a shipped model file, e.g. path('card_number_int8.tflite')."""
    p = os.path.join(ZOO, name)
    if not os.path.exists(p):
        from ..errors import XnnError

        raise XnnError(f"no shipped model '{name}'; available: {sorted(available())}")
    return p


def spec(name: str) -> dict:
    """The JSON spec of a shipped model ('card_number')."""
    with open(path(name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def available():
    return [f for f in os.listdir(ZOO) if f.endswith((".tflite", ".xnn", ".json"))]
