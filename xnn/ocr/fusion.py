"""Multi-frame fusion: read a field from several frames of a video or burst and vote.

Each frame's reading of a field votes for its text with weight = its confidence (the CTC forward
probability P(text | line)); only readings that satisfy the field's rules vote. When no single text
has won yet but several valid readings of the same length exist, a character-level vote (each
position takes the character with the largest summed weight) proposes a fused text, which counts
only if it also satisfies the rules. A field is *stable* once its leading text has at least
`min_votes` votes and at least `min_share` of the field's total weight; reading stops early when
every field of the app is stable (xNN-OCR reads ID cards from a few frames this way).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import rules


@dataclass
class _Votes:
    weight: dict = field(default_factory=dict)   # text -> summed confidence
    votes: dict = field(default_factory=dict)    # text -> number of frames
    best: dict = field(default_factory=dict)     # text -> the most confident Field with that text
    readings: list = field(default_factory=list)  # every valid Field, in order
    seen: int = 0                                 # frames where the field was read at all


class FrameFusion:
    """Accumulates OcrResults of one app. fields: the field names to fuse (default: those of the
    first result plus its missing ones); grammars: {field: xnn.ocr.rules grammar key} that a
    character-level vote must satisfy (a field without one never takes a character-level vote)."""

    def __init__(self, fields=None, grammars=None, min_votes: int = 2, min_share: float = 0.6):
        if min_votes < 1 or not 0.0 < min_share <= 1.0:
            raise ValueError("min_votes must be >= 1 and min_share in (0, 1]")
        self.fields = list(fields) if fields is not None else None
        self.min_votes, self.min_share = int(min_votes), float(min_share)
        self.frames = 0
        self.app = None
        self._v: dict = {}
        self._grammar = dict(grammars or {})

    def add(self, result) -> None:
        if self.fields is None:
            self.fields = list(result.fields) + [m for m in result.missing if m not in result.fields]
        self.app = self.app or result.app
        self.frames += 1
        for name in self.fields:
            f = result.fields.get(name)
            v = self._v.setdefault(name, _Votes())
            if f is None:
                continue
            v.seen += 1
            if not f.valid:
                continue
            v.readings.append(f)
            v.weight[f.text] = v.weight.get(f.text, 0.0) + max(f.confidence, 1e-6)
            v.votes[f.text] = v.votes.get(f.text, 0) + 1
            if f.text not in v.best or f.confidence > v.best[f.text].confidence:
                v.best[f.text] = f

    # ---- queries ------------------------------------------------------------------------------

    def _leader(self, name):
        v = self._v.get(name)
        if v is None or not v.weight:
            return None, 0.0
        text = max(v.weight, key=lambda k: (v.weight[k], v.votes[k]))
        return text, v.weight[text] / sum(v.weight.values())

    def _char_vote(self, name):
        """Position-wise weighted vote over the valid readings of the most common length."""
        v = self._v.get(name)
        if v is None or len(v.readings) < 2:
            return None
        lengths = [len(f.raw) for f in v.readings]
        n = max(set(lengths), key=lengths.count)
        same = [f for f in v.readings if len(f.raw) == n]
        if len(same) < 2:
            return None
        out = []
        for k in range(n):
            w = {}
            for f in same:
                c = f.char_conf[k] if k < len(f.char_conf) else f.confidence
                w[f.raw[k]] = w.get(f.raw[k], 0.0) + float(c)
            out.append(max(w, key=w.get))
        raw = "".join(out)
        g = self._grammar.get(name)
        if g is None or not rules.VALIDATORS[tuple(g)](raw):
            return None
        return raw

    def stable(self, name) -> bool:
        text, share = self._leader(name)
        return text is not None and self._v[name].votes[text] >= self.min_votes and share >= self.min_share

    @property
    def done(self) -> bool:
        return bool(self.fields) and all(self.stable(n) for n in self.fields)

    def result(self):
        """The fused OcrResult: per field the leading text (or the character-level vote when no text
        has two votes yet and the vote is valid), confidence = its share of the field's weight, meta
        with votes, frames and stability."""
        from .apps import OcrResult

        fields, missing = {}, []
        for name in self.fields or []:
            text, share = self._leader(name)
            v = self._v.get(name)
            if text is None:
                missing.append(name)
                continue
            f = v.best[text]
            votes = v.votes[text]
            if votes < self.min_votes:
                raw = self._char_vote(name)
                if raw is not None:
                    strip = " " if name == "number" else ""
                    fused = "".join(c for c in raw if c not in strip)
                    if fused != text:
                        agree = [r for r in v.readings if r.raw == raw]
                        f = dataclasses.replace(f, text=fused, raw=raw,
                                                confidence=max([r.confidence for r in agree], default=f.confidence))
                        text = fused
            meta = dict(f.meta, votes=votes, frames=self.frames, read_in=v.seen, stable=self.stable(name))
            fields[name] = dataclasses.replace(f, confidence=float(share) * min(1.0, votes / self.min_votes),
                                               meta=meta)
        return OcrResult(self.app or "", fields, [], missing, {}, image_size=(0, 0))


def read_frames(reader, frames, max_frames: int = 30, min_votes: int = 2, min_share: float = 0.6):
    """Read frames (an iterable of images) with `reader` until every field is stable or max_frames
    were read. Returns (fused OcrResult, frames used, per-frame OcrResults)."""
    readable = [r for r in reader.rules if r.model in reader.recognizers]   # fields without a model never settle
    fusion = FrameFusion([r.name for r in readable] or None, {r.name: r.grammar for r in readable},
                         min_votes, min_share)
    per = []
    for img in frames:
        res = reader.read(img)
        per.append(res)
        fusion.add(res)
        if fusion.done or len(per) >= max_frames:
            break
    if not per:
        raise ValueError("no frames to read")
    out = fusion.result()
    if reader.app == "idcard":            # sex and birth follow from the fused number
        from .apps import id_derived_fields

        out.fields.update(id_derived_fields(out.fields.get("id_number")))
    out.timings = {k: float(np.sum([r.timings.get(k, 0.0) for r in per])) for k in per[0].timings}
    out.image_size = per[-1].image_size
    return out, len(per), per
