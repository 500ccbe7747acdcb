"""Recognizer specs, line preprocessing, label coding, greedy decoding and metrics (NumPy + Pillow only).

Shared by training (TensorFlow), export and evaluation (xnn): nothing here imports TensorFlow.

Model input: one text line as a (1, 32, W, 1) float32 image with values in [0, 1] (the int8 model's
input is the same image quantized with the scale and zero point in its input details; the export
calibrates on these images, so the scale is 1/255 and the zero point -128 in practice). The line is
the detector's (or the generator's) rectified crop: 32 rows, its width scaled with its height and
squashed to at most W columns, then
    gray  = 0.299 R + 0.587 G + 0.114 B
    gray  = (gray - p1) · 255 / (p99 - p1), clipped to [0, 255]   (p1, p99: percentiles of the line;
            skipped when p99 - p1 < 16, i.e. an empty line)
    right-padded to W columns with the line's median gray.
Output: (1, T, C + 1) softmax over the charset plus the CTC blank, which is the LAST class
(index C), T = W / 4.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from xnn.ocr.geometry import HEIGHT, prepare_line  # noqa: F401  (inference preprocesses lines the same way)

DOWNSAMPLE = 4  # input columns per output frame

# seeds: training shards use TRAIN_SEED_BASE + shard index; the others are never used in training
TRAIN_SEED_BASE = 1_000_000
VAL_SEED = 7          # per-epoch validation during training
TEST_SEED = 8         # models.evaluate
CALIB_SEED = 9        # int8 calibration in models.export


@dataclass(frozen=True)
class RecSpec:
    """One recognizer: what it reads and its architecture knobs (see models.recognizer.build)."""
    name: str
    domain: str
    fields: tuple
    charset: str
    width: int
    max_label: int = 32       # longest label the training step accepts (longer lines are dropped)
    stem: int = 16            # stem conv channels
    growth: int = 12          # dense-block growth rate
    blocks: tuple = (3, 4, 4)  # dense layers per block
    trans: tuple = (48, 80, 128)  # transition (1x1 conv) widths
    units: int = 128          # LSTM cells
    proj: int = 64            # LSTM projection (output) size
    cell_clip: float = 10.0   # the TF converter's fused LSTM clips the cell state at 10
    jitter: float = 0.05      # training crops: quad corners moved by up to jitter x line height
    box_jitter: float = 0.0   # training crops: box ends/edges moved like the detector's (render_lines)
    merge_captions: float = 0.0  # training crops: share of lines boxed together with a caption before them
    # squeeze-excitation pooling: "global" (the whole map) or "column" (each column's rows). With
    # "global" every frame sees a summary of the whole line, and a model may learn to emit a line's
    # first characters at frame 0, before the LSTM has seen them (card expiry dates: the month's
    # second digit guessed from that summary); "column" keeps each frame's view local. The weights
    # have the same shapes either way, so a fine-tune (--init) may switch it.
    se_pool: str = "global"
    # low-rank logits: 0 = one Dense (proj -> classes); R > 0 = Dense (proj -> R, no bias) then Dense
    # (R -> classes), R (proj + classes) weights instead of proj x classes (for large charsets)
    logits_rank: int = 0

    @property
    def cache_name(self) -> str:
        """Folder name of this spec's rendered lines under the cache root."""
        return (f"{self.name}_w{self.width}" + ("" if self.jitter == 0.05 else f"_j{self.jitter:g}")
                + (f"_b{self.box_jitter:g}" if self.box_jitter else "")
                + (f"_m{self.merge_captions:g}" if self.merge_captions else ""))

    @property
    def frames(self) -> int:
        return self.width // DOWNSAMPLE

    @property
    def n_classes(self) -> int:
        return len(self.charset) + 1

    @property
    def blank(self) -> int:
        return len(self.charset)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["frames"], d["blank"] = self.frames, self.blank
        return json.dumps(d, ensure_ascii=False, indent=1)

    @staticmethod
    def from_json(text: str) -> "RecSpec":
        d = json.loads(text)
        names = {f.name for f in dataclasses.fields(RecSpec)}
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return RecSpec(**d)


def _charset(domain: str, fields) -> str:
    from .data import alphabet

    chars = set()
    for f in fields:
        chars |= set(alphabet(domain, f))
    return "".join(sorted(chars))


# width: wide enough that T = W/4 frames hold the longest label with a blank between repeats, and
# the typical line is squashed by at most ~2x (card numbers at 32 rows are 350-530 px wide).
PRESETS = {
    ("card", "expiry,name"): dict(width=256),
    ("card", "number"): dict(width=256),
    ("meter", "reading"): dict(width=160),
    ("plate", "plate"): dict(width=160, units=160, proj=80),
    ("vin", "vin"): dict(width=320, units=160, proj=80),
    ("idcard", "id_number"): dict(width=320),
    # Chinese name + address rows (<= 13 characters, ~30 px each at 32 rows); 3,772 classes need a
    # wider CNN top and LSTM than the digit models (int8 size ~0.8 MB, target <= 1 MB)
    ("idcard", "name,address"): dict(width=384, max_label=16, growth=16, trans=(64, 112, 160),
                                     units=192, proj=96),
}


def make_spec(domain: str, field: str, **overrides) -> RecSpec:
    kw = dict(PRESETS.get((domain, field), dict(width=256)))
    kw.update({k: v for k, v in overrides.items() if v is not None})
    fields = tuple(f.strip() for f in field.split(",") if f.strip())   # "number,expiry,name": one model
    return RecSpec(name=f"{domain}_{'_'.join(fields)}", domain=domain, fields=fields,
                   charset=kw.pop("charset", None) or _charset(domain, fields), **kw)


# ---- preprocessing ----------------------------------------------------------------------------


def to_input(batch_u8: np.ndarray) -> np.ndarray:
    """(N, 32, W) uint8 -> (N, 32, W, 1) float32 in [0, 1]."""
    return (np.asarray(batch_u8, np.float32) / 255.0)[..., None]


def render_set(spec: RecSpec, n: int, seed: int, start: int = 0):
    """n prepared lines of the spec's domain/fields from `seed`: (x uint8 (n, 32, W), texts)."""
    from .data import render_lines

    lines = render_lines(spec.domain, n, seed=seed, fields=spec.fields, max_width=spec.width,
                         start=start, jitter=spec.jitter, box_jitter=spec.box_jitter,
                         merge_captions=spec.merge_captions)
    x = np.stack([prepare_line(im, spec.width) for im, _ in lines])
    return x, [t for _, t in lines]


# ---- labels, decoding, metrics ----------------------------------------------------------------

def encode(text: str, charset: str) -> list:
    idx = {c: i for i, c in enumerate(charset)}
    return [idx[c] for c in text]


def label_batch(texts, spec: RecSpec):
    """Dense (N, max_label) int32 labels (padded with 0) and (N,) lengths."""
    lab = np.zeros((len(texts), spec.max_label), np.int32)
    lens = np.zeros(len(texts), np.int32)
    for i, t in enumerate(texts):
        e = encode(t, spec.charset)[: spec.max_label]
        lab[i, : len(e)] = e
        lens[i] = len(e)
    return lab, lens


def greedy_text(scores: np.ndarray, charset: str) -> str:
    """(T, C+1) scores (any monotone form: probs, logits, int8) -> text: argmax per frame, merge
    repeats, drop the blank (last class)."""
    best = np.asarray(scores).argmax(-1)
    blank = len(charset)
    out, prev = [], -1
    for k in best:
        if k != prev and k != blank:
            out.append(charset[k])
        prev = k
    return "".join(out)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def accuracy(preds, truths) -> dict:
    """Sequence accuracy (exact match) and character accuracy 1 - Σ edit distance / Σ |truth|."""
    n = len(truths)
    seq = sum(p == t for p, t in zip(preds, truths)) / max(1, n)
    errs = sum(edit_distance(p, t) for p, t in zip(preds, truths))
    chars = sum(len(t) for t in truths)
    return {"seq_acc": seq, "char_acc": 1.0 - errs / max(1, chars), "n": n}
