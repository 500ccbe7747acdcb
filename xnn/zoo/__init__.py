"""Shipped models (package data). Each model is an int8 .tflite plus a JSON spec (charset, input
width, blank index); how each was trained, exported and evaluated is in models/README.md.

- card_number: bank-card number line recognizer (digits + space; 32x256 gray line; CTC blank last).
  Held-out synthetic sequence accuracy 94.9 % int8 (char 99.54 %), below the zoo target of 99 %:
  a first version from a 12-epoch run, to be replaced by the full training run.
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
