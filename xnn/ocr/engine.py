"""The two networks of the OCR pipeline on the xnn runtime: the text detector and the line recognizers.

A shipped model is a .tflite (or .xnn) file plus a JSON spec in xnn/zoo (models/README.md says how each
was trained). Detector spec: input height/width, output stride and d0 (xnn.ocr.detect). Recognizer
spec: charset (class i is charset[i], the CTC blank is the last class), input width, fields it reads.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .. import zoo
from ..errors import XnnError
from ..interpreter import Interpreter
from ..kernels import ctc
from . import detect as post
from .geometry import HEIGHT, crop_line, prepare_line

FLOOR = 1e-6  # probability floor of the recognizers' outputs (see Recognizer.log_probs)


def _load_spec(model_path: str, spec_path: str | None) -> dict:
    if spec_path is None:
        base = os.path.basename(model_path)
        for suffix in ("_int8.tflite", "_float.tflite", ".tflite", "_int8.xnn", ".xnn"):
            if base.endswith(suffix):
                spec_path = os.path.join(os.path.dirname(model_path), base[: -len(suffix)] + ".json")
                break
    if spec_path is None or not os.path.exists(spec_path):
        raise XnnError(f"no JSON spec found for model {model_path!r} (expected {spec_path!r})")
    try:
        with open(spec_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise XnnError(f"cannot read model spec {spec_path!r}: {e}") from None


def _resolve(name_or_path: str) -> str:
    """A zoo model name ('card_number') or a file path -> the model file path."""
    if os.path.sep in name_or_path or name_or_path.endswith((".tflite", ".xnn")):
        if not os.path.exists(name_or_path):
            raise XnnError(f"model file not found: {name_or_path}")
        return name_or_path
    for suffix in ("_int8.xnn", "_int8.tflite", ".xnn", ".tflite"):
        p = os.path.join(zoo.ZOO, name_or_path + suffix)
        if os.path.exists(p):
            return p
    raise XnnError(f"no shipped model named {name_or_path!r}; available: {sorted(zoo.available())}")


class _Net:
    def __init__(self, name_or_path: str, spec_path: str | None, num_threads: int):
        self.path = _resolve(name_or_path)
        self.spec = _load_spec(self.path, spec_path)
        self.it = Interpreter(model_path=self.path, num_threads=num_threads)
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        self.model_bytes = os.path.getsize(self.path)

    def _quantize(self, x01: np.ndarray) -> np.ndarray:
        """[0, 1] float input -> the model's input dtype."""
        if self.inp["dtype"] == np.int8:
            s, z = self.inp["quantization"]
            return np.clip(np.round(x01 / s) + z, -128, 127).astype(np.int8)
        return x01.astype(np.float32)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if np.issubdtype(y.dtype, np.integer):
            s, z = self.out["quantization"]
            return (y.astype(np.float32) - z) * np.float32(s)
        return y.astype(np.float32)


class Detector(_Net):
    """Text-line detector: page (RGB or gray uint8) -> oriented line quads in page pixels."""

    def __init__(self, name_or_path: str = "detector", spec_path: str | None = None, num_threads: int = 1,
                 threshold: float = 0.5):
        super().__init__(name_or_path, spec_path, num_threads)
        for k in ("height", "width", "stride", "d0"):
            if k not in self.spec:
                raise XnnError(f"detector spec lacks {k!r}")
        self.height, self.width = int(self.spec["height"]), int(self.spec["width"])
        self.stride, self.d0 = int(self.spec["stride"]), float(self.spec["d0"])
        want = (1, self.height, self.width, 1)
        if tuple(self.inp["shape"]) != want:
            raise XnnError(f"detector input shape {tuple(self.inp['shape'])} disagrees with its spec {want}")
        self.threshold = threshold

    def score_map(self, image: np.ndarray):
        """(float output map (H/s, W/s, 6), letterbox scale)."""
        x, scale = post.letterbox(image, self.height, self.width)
        y = self.it(self._quantize(x[None, :, :, None].astype(np.float32) / 255.0))[0][0]
        return self._dequantize(y), scale

    def __call__(self, image: np.ndarray):
        """(quads (n, 4, 2) float32 page pixels, scores (n,)): one quad per connected text kernel
        (xnn.ocr.detect.detect_lines; 10-20x faster than EAST's per-pixel NMS at equal F)."""
        y, scale = self.score_map(image)
        return post.detect_lines(y, scale, self.stride, self.d0, self.threshold)


class Recognizer(_Net):
    """CTC line recognizer: a rectified line -> per-frame log-probabilities -> text."""

    def __init__(self, name_or_path: str, spec_path: str | None = None, num_threads: int = 1):
        super().__init__(name_or_path, spec_path, num_threads)
        try:
            self.charset = str(self.spec["charset"])
            self.width = int(self.spec["width"])
            self.fields = tuple(self.spec.get("fields", ()))
            self.name = str(self.spec.get("name", os.path.basename(self.path)))
        except (KeyError, TypeError, ValueError) as e:
            raise XnnError(f"recognizer spec of {self.path} is incomplete: {e}") from None
        self.blank = len(self.charset)
        want = (1, HEIGHT, self.width, 1)
        if tuple(self.inp["shape"]) != want:
            raise XnnError(f"recognizer input shape {tuple(self.inp['shape'])} disagrees with its spec {want}")
        if self.out["shape"][-1] != self.blank + 1:
            raise XnnError(f"recognizer has {self.out['shape'][-1]} classes, its charset needs {self.blank + 1}")

    def crop(self, image: np.ndarray, quad, fill=None) -> np.ndarray:
        """Rectified, normalized (32, width) uint8 line for this recognizer (fill: see crop_line)."""
        return prepare_line(crop_line(image, quad, HEIGHT, max_width=self.width, fill=fill), self.width)

    def log_probs(self, line_u8: np.ndarray) -> np.ndarray:
        """(32, width) uint8 prepared line -> (T, C) float64 log-probabilities (blank last)."""
        if line_u8.shape != (HEIGHT, self.width):
            raise XnnError(f"line must be ({HEIGHT}, {self.width}) uint8, got {line_u8.shape}")
        self.it.reset_all_variables()
        y = self.it(self._quantize(line_u8[None, :, :, None].astype(np.float32) / 255.0))[0][0]
        # an int8 softmax rounds small probabilities to exactly 0, which would make every path through
        # them impossible (log 0) and leave a constrained search nothing to choose: floor them at 1e-6
        # (a floor near the quantization step, 1/512, would add (C-1)/512 of mass per frame and, after
        # renormalization, deflate every reading's probability by that factor per frame)
        return ctc.to_log_probs(np.maximum(self._dequantize(y), FLOOR), "probs")

    def text(self, labels) -> str:
        return "".join(self.charset[int(k)] for k in labels)

    def decode(self, lp: np.ndarray, dfa=None, beam_width: int = 8, top_k: int = 1, width: int = 256) -> list:
        """CTCResults best first, [] when no reading satisfies the DFA. Unconstrained: greedy
        (beam_width 1) or prefix beam search. With a DFA: beam Viterbi over (DFA state, last label)
        keeping `width` hypotheses per frame (xnn.ctc.dfa_decode)."""
        if dfa is None:
            if beam_width <= 1:
                return [ctc.greedy_decode(lp, blank=self.blank)]
            return ctc.beam_search(lp, beam_width=beam_width, blank=self.blank, top_k=top_k)
        return ctc.dfa_decode(lp, dfa, blank=self.blank, width=width, top_k=top_k)
