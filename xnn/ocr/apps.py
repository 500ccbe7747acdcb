"""App readers: an image in, validated fields out (bank card, meter, plate, VIN, ID card, general text).

Pipeline per image (timings in OcrResult.timings, seconds):
    detect     letterbox the page, run the detector, turn its maps into line quads (xnn.ocr.detect)
    crop       rectify every line with a homography to 32 rows and normalize it (xnn.ocr.geometry)
    recognize  run the app's recognizers on every line: per-frame CTC log-probabilities
    decode     per field, a CTC prefix beam search constrained by the field's grammar (xnn.ocr.rules:
               Luhn, issuer lengths, MM/YY, VIN check digit, plate formats, ID MOD 11-2 and birth
               date) on every candidate line; the field takes the line whose best valid reading has
               the highest exact probability P(text | line) (the CTC forward sum).
A field that no line can satisfy is absent from `fields` and named in `missing`; the general `text`
app returns every line with its best unconstrained reading.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import XnnError
from ..kernels import ctc
from . import rules
from .engine import Detector, Recognizer
from .geometry import fill_color, quad_axis, quad_size, tighten_quad

APPS = ("card", "meter", "plate", "vin", "idcard", "text")


@dataclass
class Field:
    """One recognized field. text: the normalized value (card number digits without spaces); raw:
    the characters as read; confidence: the lowest per-character posterior (the model's belief in
    its least certain character: a character the rules forced against the model scores ~0);
    char_conf: per-character posteriors (max over each character's aligned frames); valid:
    satisfies the field's rules; quad: (4, 2) page pixels of its line; meta: extras (issuer,
    derived fields, a rolled meter digit, p_text = P(raw | line) by the CTC forward sum, …)."""
    name: str
    text: str
    raw: str
    confidence: float
    valid: bool
    quad: np.ndarray | None = None
    char_conf: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["quad"] = None if self.quad is None else np.round(np.asarray(self.quad, float), 1).tolist()
        d["confidence"] = round(float(self.confidence), 4)
        d["char_conf"] = [round(float(c), 3) for c in self.char_conf]
        return d


@dataclass
class LineRead:
    text: str
    confidence: float
    quad: np.ndarray
    score: float            # detector score
    model: str = ""

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(float(self.confidence), 4),
                "quad": np.round(np.asarray(self.quad, float), 1).tolist(), "score": round(float(self.score), 3),
                "model": self.model}


@dataclass
class OcrResult:
    app: str
    fields: dict
    lines: list
    missing: list
    timings: dict
    image_size: tuple = (0, 0)
    quality: object = None
    detections: np.ndarray | None = None   # every detected line quad (n, 4, 2), page pixels
    rejected: dict = field(default_factory=dict)  # valid readings below the reader's min_confidence

    @property
    def ok(self) -> bool:
        """Every field of the app was found and is valid."""
        return not self.missing and all(f.valid for f in self.fields.values())

    def to_dict(self) -> dict:
        d = {"app": self.app, "ok": self.ok, "fields": {k: f.to_dict() for k, f in self.fields.items()},
             "missing": list(self.missing), "lines": [ln.to_dict() for ln in self.lines],
             "timings_ms": {k: round(1000 * v, 2) for k, v in self.timings.items()},
             "image_size": list(self.image_size),
             "rejected": {k: f.to_dict() for k, f in self.rejected.items()}}
        if self.quality is not None:
            d["quality"] = self.quality.to_dict()
        return d


@dataclass(frozen=True)
class FieldRule:
    """How an app reads one field: which zoo recognizer, which grammar (xnn.ocr.rules key), how many
    characters of the greedy reading make a line worth a constrained search (a cheap pre-filter),
    and how the raw text is normalized and validated."""
    name: str
    model: str
    grammar: tuple
    min_chars: int = 1
    strip: str = ""          # characters removed by normalization (card number grouping spaces)
    tallest: bool = False    # the field is the page's most prominent text: among confidently valid
                             # lines take the tallest (a meter's register beside its serial number;
                             # refine only that line, or a sure serial number wins again)
    refine: int = 2          # uncertain readings: re-read the best `refine` lines from moved boxes
    stop_early: bool = False  # refine stops at the first sure reading on short lines too
    min_aspect: float = 0.25  # lines narrower than min_chars characters this many heights wide are not
                              # read (a card number's digits and group gaps: 0.6; forcing its grammar
                              # on short lines found wrong numbers and cost time)
    grow: tuple = ()         # refine also reads long lines with both ends moved out by these many
                             # heights (a card number's outer groups, spaced wide, fall outside the
                             # detector's box: a cut-off first digit is one to two heights away)
    below: tuple = ()        # (field, lo, hi, past_ends): once `field` is read, only lines lo..hi of its
                             # heights below it, overlapping its span grown by past_ends heights (_below)
    reject: object = None    # text -> True for valid readings that are not the field (card captions)


ID_TEXT_MODEL = "idcard_name_address"   # the Chinese recognizer of ID-card names and address rows
# An ID-card name or address line whose greedy reading has a character below ID_VIEW_GATE posterior is
# read again from its box moved up and down by ID_VIEW_SHIFTS box heights, and the per-frame
# posteriors of the three views are averaged (the moves keep the horizontal scale, so frames stay
# aligned). Held-out ID cards 400-599 (with the idzh_fresh2 model): names 150 -> 154, addresses
# 105 -> 114 of 200; ~55% of these lines are uncertain enough to be read three times.
ID_VIEW_SHIFTS = (-0.06, 0.06)
ID_VIEW_GATE = 0.9
# a value box above the ID number this many times as tall as the other value boxes (median) holds
# that many printed rows, merged by the detector (a short last address row under a full one): it is
# read as round(ratio) rows, the box cut across into equal bands
ID_SPLIT_RATIO = 1.5
# An uncertain ID line at least ID_TIGHTEN_ASPECT heights long is also read from the text band that
# tighten_quad finds inside its box (turned up to 3 degrees, cut to the text's height); when that
# band's best path is likelier, the band replaces the box (and its views). Detector boxes turned a
# few degrees off a long row cut its end characters. Held-out cards 200-399 / 400-599: addresses
# 140 -> 148 / 126 -> 141 of 200, names unchanged (on shorter lines, names, it helped as often as
# it hurt).
ID_TIGHTEN = True
ID_TIGHTEN_ASPECT = 5.0
# card layout (ISO/IEC 7810 ID-1, as the generator and real cards place them): expiry and holder name
# lie below the number, within the card: (least, most) centre offset across the number line, in
# number-line heights, and how far past the number's ends, in heights (the number runs nearly edge to
# edge; the card's bottom edge is ~5 heights below it)
CARD_BELOW_NUMBER = ("number", 0.6, 7.0, 2.0)
GROW = (0.8, 2.0, 3.5)   # card number: grown-box refine, in heights (a box may miss a whole outer group)
APP_FIELDS = {
    "card": (FieldRule("number", "card_number", ("card", "number"), 10, strip=" ", refine=3, grow=GROW,
                       min_aspect=0.6),
             FieldRule("expiry", "card_expiry_name", ("card", "expiry"), 4, refine=0, below=CARD_BELOW_NUMBER),
             FieldRule("name", "card_expiry_name", ("card", "name"), 3, refine=1, stop_early=True,
                       below=CARD_BELOW_NUMBER, reject=rules.card_caption)),
    "meter": (FieldRule("reading", "meter_reading", ("meter", "reading"), 4, tallest=True, refine=1),),
    "plate": (FieldRule("plate", "plate_plate", ("plate", "plate"), 5),),
    "vin": (FieldRule("vin", "vin_vin", ("vin", "vin"), 12, min_aspect=0.6),),
    "idcard": (FieldRule("id_number", "idcard_id_number", ("idcard", "id_number"), 12, min_aspect=0.6),
               FieldRule("name", ID_TEXT_MODEL, None, 2),
               FieldRule("address", ID_TEXT_MODEL, None, 4)),
}
TALLEST_MIN_SCORE = -3.0  # FieldRule.tallest: lines whose characters' summed log posteriors reach this
JOIN_MIN_CHARS = 10  # fields this long (card number, VIN, ID number) also try row_unions' joined boxes
REFINE_BELOW = 0.9   # a field whose least certain character is below this is re-read from nearby boxes
TURN_MIN_ASPECT = 8.0  # refine also tries turned boxes on lines at least this many heights long
# fields an app promises but whose recognizer is not shipped yet (reported in `missing`)
OPTIONAL_MODELS = {"card_expiry_name", ID_TEXT_MODEL}


def _zoo_has(name: str) -> bool:
    from .. import zoo

    return any(f.startswith(name + "_int8.") or f == name + ".xnn" for f in zoo.available())


class Reader:
    """Loads the detector and the app's recognizers once (from xnn/zoo, no network) and reads images.

        reader = xnn.ocr.Reader("card")
        result = reader.read(rgb_uint8)          # OcrResult
        result.fields["number"].text             # '4512345678901234'

    app: one of APPS. beam: hypotheses per frame of the constrained CTC search (xnn.ctc.dfa_decode;
    32 reads the same fields as 128 on 150-200 held-out images of every app, in 40-55 % of the
    decoding time).
    num_threads: runtime threads. min_confidence: a field whose best valid reading has a character
    with a lower posterior is not trusted: it goes to `missing`, and to `rejected` for inspection
    (the rules can force a reading the model does not believe). meter_digits: exact wheel count.
    refine: re-read uncertain fields from nearby boxes (Reader._refine).
    models: optional {zoo name: path} overrides (e.g. a compressed .xnn).
    fields: read only these of the app's fields (e.g. ("number",) for a card: half the time of a
    full card read; the models of the other fields are not loaded).
    The attributes refine_tight (re-read the band tighten_quad finds), join_rows (row_unions'
    joined boxes as candidates) and refine_stop (stop re-reading a long line once sure) switch those
    steps off for comparisons."""

    def __init__(self, app: str = "text", beam: int = 32, num_threads: int = 1, models: dict | None = None,
                 detector: str = "detector", det_threshold: float = 0.5, meter_digits: int | None = None,
                 min_confidence: float = 0.01, refine: bool = True, fields=None):
        if app not in APPS:
            raise XnnError(f"unknown app {app!r}; choose one of {', '.join(APPS)}")
        self.app = app
        if meter_digits is not None and not 1 <= int(meter_digits) <= 12:
            raise XnnError(f"meter_digits must be 1..12, got {meter_digits}")
        self.meter_digits = None if meter_digits is None else int(meter_digits)
        self.min_confidence = float(min_confidence)
        self.refine = bool(refine)
        self.refine_tight = True
        self.join_rows = True
        self.refine_stop = True
        if int(beam) < 1:
            raise XnnError(f"beam must be >= 1, got {beam}")
        self.beam = int(beam)
        models = dict(models or {})
        self.detector = Detector(models.get("detector", detector), num_threads=num_threads, threshold=det_threshold)
        self.rules = APP_FIELDS.get(app, ())
        if fields is not None:
            fields = [fields] if isinstance(fields, str) else list(fields)
            known = [r.name for r in self.rules]
            bad = [f for f in fields if f not in known]
            if bad or not fields:
                raise XnnError(f"app {app!r} has no field(s) {', '.join(map(repr, bad)) or '(none given)'}; "
                               f"choose from {', '.join(known) or '(the text app has no fields)'}")
            self.rules = tuple(r for r in self.rules if r.name in fields)
        names = {r.model for r in self.rules}
        if app == "text":
            from .. import zoo

            names = {f[: -len("_int8.tflite")] for f in zoo.available() if f.endswith("_int8.tflite")} - {"detector"}
        self.recognizers = {}
        self.unavailable = {}
        for n in sorted(names):
            if n not in models and not _zoo_has(n):
                if n in OPTIONAL_MODELS or app == "text":
                    self.unavailable[n] = "model not shipped yet"
                    continue
                raise XnnError(f"app {app!r} needs the recognizer {n!r}, which is not in xnn/zoo")
            self.recognizers[n] = Recognizer(models.get(n, n), num_threads=num_threads)
        self._dfas = {}

    @property
    def model_files(self) -> list:
        """Paths of the model files this reader loaded (detector first)."""
        return [self.detector.path] + [r.path for r in self.recognizers.values()]

    @property
    def model_bytes(self) -> int:
        return self.detector.model_bytes + sum(r.model_bytes for r in self.recognizers.values())

    def _dfa(self, rule: FieldRule, rec: Recognizer):
        key = (rule.grammar, rec.charset)
        if key not in self._dfas:
            if rule.grammar == ("meter", "reading") and self.meter_digits:
                d = rules.constraint(rules.meter_reading(self.meter_digits), rec.charset)
            else:
                d = rules.constraint(rule.grammar, rec.charset)
            self._dfas[key] = ctc.check_dfa(d, rec.blank + 1)       # validated once, not per decode
        return self._dfas[key]

    def _valid(self, rule: FieldRule, raw: str) -> bool:
        if rule.grammar == ("meter", "reading") and self.meter_digits:
            return rules.reading_ok(raw, self.meter_digits)
        return bool(rules.VALIDATORS[rule.grammar](raw))

    def warmup(self) -> float:
        """Run every model and decoder once on blank input, so that loading the compiled kernels
        (Numba's on-disk cache; a compile on the very first run) is not billed to the first image.
        Returns the seconds it took."""
        t0 = time.perf_counter()
        self.detector(np.zeros((self.detector.height, self.detector.width), np.uint8))
        for rule in self.rules or [FieldRule("", n, None) for n in self.recognizers]:
            rec = self.recognizers.get(rule.model)
            if rec is None:
                continue
            lp = rec.log_probs(np.zeros((32, rec.width), np.uint8))
            rec.decode(lp, beam_width=1)
            if rule.grammar is not None:
                rec.decode(lp, dfa=self._dfa(rule, rec), top_k=2, width=8)
        return time.perf_counter() - t0

    # ---- steps -------------------------------------------------------------------------------

    def detect(self, image: np.ndarray):
        return self.detector(image)

    def read(self, image: np.ndarray, quads=None) -> OcrResult:
        """Read one RGB (H, W, 3) or gray (H, W) uint8 image. quads: optional (n, 4, 2) line quads
        in page pixels to use instead of the detector's (e.g. a fixed capture frame)."""
        image = check_image(image)
        t = {"detect": 0.0, "crop": 0.0, "recognize": 0.0, "decode": 0.0}
        t0 = time.perf_counter()
        if quads is None:
            quads, scores = self.detect(image)
        else:
            quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
            scores = np.ones(len(quads))
        t["detect"] = time.perf_counter() - t0
        detections = np.asarray(quads, np.float32).reshape(-1, 4, 2)
        joined = {}
        if self.join_rows and self.app != "text" and any(r.min_chars >= JOIN_MIN_CHARS for r in self.rules):
            # a long field split by the detector at a wide gap (a card number's 6-13 grouping): the
            # boxes of one row, joined, are extra candidate lines for long fields only
            extra, joined = row_unions(detections)
            if len(extra):
                quads = np.concatenate([detections, extra])
                scores = np.concatenate([np.asarray(scores, np.float64),
                                         [min(float(scores[k]) for k in joined[i]) for i in sorted(joined)]])
        # log-probs per (recognizer, line), computed when a field first asks for them: a line already
        # taken by a field is not recognized again by the next field's model; crops are shared by
        # recognizers of one input width
        lps = _LineCache(self.recognizers, image, quads, t)
        t3 = time.perf_counter()
        if self.app == "text":
            lines = self._read_text(quads, scores, lps)
            fields, missing, rejected = {}, [], {}
        else:
            fields, missing, lines, rejected = self._read_fields(quads, scores, lps, joined)
        t["decode"] = time.perf_counter() - t3 - t["crop"] - t["recognize"]
        return OcrResult(self.app, fields, lines, missing, t, image_size=image.shape[:2],
                         detections=detections, rejected=rejected)

    def _read_text(self, quads, scores, lps):
        lines = []
        for i, q in enumerate(quads):
            best = None
            for name, rec in self.recognizers.items():
                lp = lps.get(name, i)
                if lp is None:
                    continue
                r = rec.decode(lp, beam_width=1)[0]
                conf = float(np.mean(r.char_conf)) if len(r.labels) else 0.0
                if len(r.labels) and (best is None or conf > best.confidence):
                    best = LineRead(rec.text(r.labels), conf, q, float(scores[i]), name)
            if best is not None:
                lines.append(best)
        return lines

    def _read_fields(self, quads, scores, lps, joined=None):
        """joined: {index of an extra line in quads: the detected lines it joins} (row_unions)."""
        fields, missing, used, rejected = {}, [], set(), {}
        joined = joined or {}
        lines = []
        for rule in self.rules:
            rec = self.recognizers.get(rule.model)
            if rec is None:
                missing.append(rule.name)
                continue
            if rule.grammar is None:        # found by the document's layout: _read_id_text
                continue
            dfa = self._dfa(rule, rec)
            # a line narrower than min_chars characters can hold (min_aspect line heights each) is skipped
            # before it is recognized
            fits = [i for i in range(len(quads))
                    if i not in used and _aspect(quads[i]) >= rule.min_aspect * rule.min_chars
                    and (i not in joined or (rule.min_chars >= JOIN_MIN_CHARS and not joined[i] & used))]
            if rule.below and rule.below[0] in fields:
                ref = fields[rule.below[0]].quad
                fits = [i for i in fits if _below(quads[i], ref, *rule.below[1:])]
            greedy = {i: lps.greedy_len(rule.model, i) for i in fits}
            greedy = {i: n for i, n in greedy.items() if n is not None}
            cand = [i for i, n in greedy.items() if n >= rule.min_chars]
            results = []
            # a wider search only when the first finds nothing, and only on the two longest readings
            for width, lines_ in ((self.beam, cand), (8 * self.beam, sorted(cand, key=lambda i: -greedy[i])[:2])):
                for i in lines_:
                    found = rec.decode(lps.get(rule.model, i), dfa=dfa, top_k=2, width=width)
                    if rule.reject is not None:
                        found = [g for g in found if not rule.reject(rec.text(g.labels))]
                    if found:
                        results.append((i, found))
                if results:
                    break
            results.sort(key=lambda t: -_score(t[1][0]))
            # lines without any valid reading: a box cut short may hold only part of the field (a
            # card number's outer groups); with `grow`, the longest such are re-read from grown boxes
            fragments = []
            if rule.grow and self.refine and rule.refine:
                got = {t[0] for t in results}
                fragments = [(i, []) for i in sorted(cand, key=lambda i: -greedy[i]) if i not in got][:2]
            if not results and not fragments:
                missing.append(rule.name)
                continue
            if rule.tallest:
                sure = [t for t in results if _score(t[1][0]) >= TALLEST_MIN_SCORE]
                if sure:
                    top = max(sure, key=lambda t: quad_size(quads[t[0]])[1])
                    results.remove(top)
                    results.insert(0, top)
            i, found = results[0] if results else (None, [])
            quad = None if i is None else quads[i]
            if self.refine and rule.refine and (not found or np.min(found[0].char_conf, initial=1.0) < REFINE_BELOW):
                # the best lines are read again from moved boxes (the right line may be the
                # runner-up when the detector cut its box short)
                best = None
                for j, fj in results[:rule.refine] + fragments:
                    qj, gj = self._refine(rule, rec, dfa, lps, j, quads[j], fj, grow_only=not fj)
                    if gj and (best is None or _score(gj[0]) > _score(best[2][0])):
                        best = (j, qj, gj)
                if best is None:
                    missing.append(rule.name)
                    continue
                i, quad, found = best
            f = self._field(rule, rec, found, quad)
            if f.confidence < self.min_confidence:
                rejected[rule.name] = f
                missing.append(rule.name)
                continue
            used.add(i)
            used.update(joined.get(i, ()))
            fields[rule.name] = f
            lines.append(LineRead(fields[rule.name].raw, fields[rule.name].confidence, quads[i], float(scores[i]),
                                  rule.model))
        if self.app == "idcard":
            fields.update(id_derived_fields(fields.get("id_number")))
            if ID_TEXT_MODEL in self.recognizers:
                self._read_id_text(quads, scores, lps, fields, missing, lines, rejected, used | set(joined))
        return fields, missing, lines, rejected

    def _read_id_text(self, quads, scores, lps, fields, missing, lines, rejected, used):
        """Name and address of a Chinese ID card, by the card's layout (GB 11643 cards print
        name / sex + ethnicity / birth / address rows top to bottom, captions in a left column, the
        number at the bottom): the lines above the number are grouped into rows in the number's
        frame; the first address row is the row whose reading best supports a start with the
        province the number encodes (decoded under that rule, xnn.ocr.rules.id_address_start), the
        rows below it down to the number continue the address, and the name is read from the row
        4.3-12 box heights above the address whose reading as a name (2-12 Chinese characters) scores
        best. Captions taken into a box ("姓名", "住址") are dropped from the text; meta p_text is
        P(raw | lines) by the CTC forward sum (for the address, the product over its rows)."""
        rec = self.recognizers[ID_TEXT_MODEL]
        num = fields.get("id_number")
        ref = None if num is None else num.quad
        rows = id_rows(quads, ref, used)
        merged = merged_row_boxes(rows, quads)
        if merged:                      # rows merged into one box: read as separate bands
            quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
            bands = [(b, float(scores[i])) for i, n in sorted(merged.items()) for b in split_quad(quads[i], n)]
            quads = np.concatenate([quads, np.asarray([b for b, _ in bands], np.float32)])
            scores = np.concatenate([np.asarray(scores, np.float64), [s for _, s in bands]])
            lps.quads = quads
            rows = id_rows(quads, ref, set(used) | set(merged))
        names = ("name", "address")
        if not rows:
            missing.extend(n for n in names if n not in missing)
            return
        prov = num.text[:2] if num is not None and num.valid else None

        def decode(i, dfa=None):
            """Readings of line i: the best two under `dfa`, or the greedy one ([] if none)."""
            lp = lps.views(ID_TEXT_MODEL, i, ID_VIEW_SHIFTS, ID_VIEW_GATE, ID_TIGHTEN)
            if lp is None:
                return []
            return rec.decode(lp, dfa=dfa, top_k=2, width=self.beam) if dfa is not None else \
                rec.decode(lp, beam_width=1)

        try:
            dfa = rules.id_text_constraint("address", rec.charset, prov)
            dfa_name = rules.id_text_constraint("name", rec.charset)
        except ValueError:             # a recognizer without Chinese characters cannot read these
            missing.extend(n for n in names if n not in missing)
            return
        # the first address row
        best = None
        for k, row in enumerate(rows):
            # the first row is a full printed row (11-13 characters) or a whole short address
            if not row.values or _aspect(quads[row.values[0]]) < 4.0:
                continue
            got = decode(row.values[0], dfa)
            if got and (best is None or _score(got[0]) > _score(best[1])):
                best = (k, got[0])
        out = {}   # field -> (Field, line index, log P(raw | lines))
        if best is not None:
            k, r = best
            reads = [r]

            def more(i):
                g = decode(i)
                if g and len(g[0].labels):
                    reads.append(g[0])
                    return True
                return False

            for i in rows[k].values[1:]:
                more(i)
            # continuation rows: close below the previous one (row pitch ~1.3-1.5 value heights),
            # starting under the first row's value: a box that ends left of it is the 住址 caption
            # (printed smaller, on the first row's baseline, its centre can fall in a row of its own)
            first = [rows[k].spans[i] for i in rows[k].values]
            left, right = min(sp[0] for sp in first), max(sp[1] for sp in first)
            conts, prev = [], rows[k]
            for row in rows[k + 1:]:
                if row.b - prev.b > 2.2 * max(prev.height, row.height):
                    break
                kept = [i for i in row.items if row.spans[i][1] > left + 0.5 * rows[k].height]
                if kept:
                    conts.append((kept, max(row.spans[i][1] for i in kept) - min(row.spans[i][0] for i in kept)))
                    prev = row
            # every printed row but the last is full (11-13 characters, as wide as the first): a
            # short box with more rows below it is a sliver of ink between rows (guilloche, parts
            # of two rows), not a row
            taken = len(rows[k].values)
            for j, (kept, span) in enumerate(conts):
                if j < len(conts) - 1 and span < 0.6 * (right - left):
                    continue
                if taken >= 12:
                    break
                taken += sum(more(i) for i in kept)
            parts = [rec.text(g.labels) for g in reads]
            confs = [float(c) for g in reads for c in g.char_conf]
            raw = "".join(parts)
            text = raw[2:] if raw.startswith("住址") else raw
            meta = {"rows": [t[2:] if j == 0 and t.startswith("住址") else t for j, t in enumerate(parts)]}
            if prov is not None:
                meta["province_matches_number"] = rules.id_address_ok(text, prov)
            out["address"] = (Field("address", text, raw, min(confs, default=0.0), rules.id_address_ok(text, prov),
                                    np.asarray(quads[rows[k].values[0]], np.float32), confs, meta),
                              rows[k].values[0], sum(g.log_prob for g in reads))
            # name row candidates: rows at the name's distance above the address (rows sit ~6.5 mm
            # apart, value boxes ~3 mm tall: name 5-8 box heights above, sex 3.5-5, birth ~2)
            h = float(np.median([row.height for row in rows[:k + 1]]))
            # a one-character first value (the sex row's 男/女) is not a name
            cand = [row for row in rows[:k] if row.values and 4.3 * h < (rows[k].b - row.b) < 12 * h
                    and _aspect(quads[row.values[0]]) >= 1.5]
        else:
            cand = [rows[0]] if rows[0].values else []
        best_name = None
        for row in cand:
            # the candidate row whose first value box reads best as a name (a spurious box or the
            # sex row's one-character value scores far lower)
            got = [g for g in decode(row.values[0], dfa_name) if rec.text(g.labels) not in rules.ID_LABELS]
            if got and (best_name is None or _score(got[0]) > _score(best_name[1])):
                best_name = (row, got[0])
        if best_name is not None:
            row, g = best_name
            raw = rec.text(g.labels)
            text, conf = raw, [float(c) for c in g.char_conf]
            if raw.startswith("姓名") and len(raw) >= 4:
                text, conf = raw[2:], conf[2:]
            out["name"] = (Field("name", text, raw, min(conf), rules.id_name_ok(text),
                                 np.asarray(quads[row.values[0]], np.float32), conf, {}), row.values[0], g.log_prob)
        for name in names:
            if name not in out:
                missing.append(name)
                continue
            f, i, log_p = out[name]
            f.meta["p_text"] = float(np.exp(log_p))
            if f.confidence < self.min_confidence:
                rejected[name] = f
                missing.append(name)
                continue
            used.add(i)
            fields[name] = f
            lines.append(LineRead(f.raw, f.confidence, quads[i], float(scores[i]), ID_TEXT_MODEL))

    def _refine(self, rule, rec, dfa, lps, i, quad, found, grow_only=False):
        """An uncertain field's line is read again from slightly different boxes (edges moved
        across the line by +-12 % of its height, ends by 0.3 heights and, for lines at least 8
        heights long, the box turned by +-2 degrees about its centre and its ends moved out by the
        rule's `grow` heights; on shorter lines a turn moves the ends less than the across moves
        already do), and first the text band that tighten_quad finds inside the box; the reading
        whose characters the model supports best wins (detector boxes are off by 0.1-0.35 line heights across, 0.3-0.6 along the line and 2-3
        degrees in angle). A long line stops at the first sure reading (every character >=
        REFINE_BELOW). grow_only: only the grown boxes (a line with no valid reading at all, whose
        box lost whole characters: moving it across cannot bring them back). Boxes whose greedy
        reading is shorter than the rule's min_chars are not decoded."""
        q = np.asarray(quad, np.float64)
        u = quad_axis(q)
        v = np.array([-u[1], u[0]])
        w, h = quad_size(q)
        grow, stop_early, min_chars = ((), False, 0) if rule is None else (rule.grow, rule.stop_early,
                                                                          rule.min_chars)
        long_line = h > 0 and w >= TURN_MIN_ASPECT * h
        # (left end, right end along u; top-left, top-right, bottom-right, bottom-left across, along v),
        # all in line heights
        grown = [(-g, g, 0, 0, 0, 0) for g in grow] if long_line else []
        if grow_only:
            moves = grown
        else:
            moves = [(0, 0, -0.12, -0.12, -0.12, -0.12), (0, 0, 0.12, 0.12, 0.12, 0.12),
                     (0, 0, 0.12, 0.12, -0.12, -0.12), (0, 0, -0.12, -0.12, 0.12, 0.12),
                     (0.3, -0.3, 0, 0, 0, 0), (-0.3, 0.3, 0, 0, 0, 0)] + grown
            if long_line:
                r = 0.5 * (w / h) * np.tan(np.radians(2.0))  # end shift of a 2-degree turn, in heights
                moves += [(0, 0, r, -r, -r, r), (0, 0, -r, r, r, -r)]
        cands = [q + np.outer([a0, a1, a1, a0], u) * h + np.outer(c, v) * h for a0, a1, *c in moves]
        if self.refine_tight and not grow_only:
            t = tighten_quad(lps.image, q, lps.fill)
            if t is not None:
                cands.insert(0, t)
        best_q, best = quad, found
        for cand in cands:
            lp = lps.read(rec, cand)
            if lp is None or len(rec.decode(lp, beam_width=1)[0].labels) < min_chars:
                continue
            got = rec.decode(lp, dfa=dfa, top_k=2, width=self.beam)
            if got and (not best or _score(got[0]) > _score(best[0])):
                best_q, best = cand.astype(np.float32), got
                if (long_line or stop_early) and self.refine_stop and \
                        np.min(best[0].char_conf, initial=1.0) >= REFINE_BELOW:
                    break       # a long line read surely now: the remaining boxes are not read (on
                                # short lines, meters, reading them all is as fast and more accurate)
        return best_q, best

    def _field(self, rule: FieldRule, rec: Recognizer, found: list, quad) -> Field:
        r = found[0]
        raw = rec.text(r.labels)
        meta = {}
        if rule.name == "reading" and len(found) > 1:
            raw, r, meta = _resolve_rolled(rec, found, raw, r)
        text = "".join(c for c in raw if c not in rule.strip)
        valid = self._valid(rule, raw)
        if rule.grammar == ("card", "number"):
            meta["issuer"] = rules.card_issuer(text)
        if rule.grammar == ("idcard", "id_number") and valid:
            # what the number encodes (GB 11643): region, birth date, sex; the card's printed birth
            # and sex fields must agree with these
            info = rules.id_info(text)
            meta.update({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in info.items()})
        meta["p_text"] = float(np.exp(r.log_prob))
        conf = float(np.min(r.char_conf)) if len(r.char_conf) else 0.0
        return Field(rule.name, text, raw, conf, bool(valid), np.asarray(quad, np.float32),
                     [float(c) for c in r.char_conf], meta)


def id_derived_fields(num) -> dict:
    """The fields sex and birth (ISO date) of an ID card, from its valid number Field (GB 11643: the
    printed ones must agree with what the number encodes); meta source "id_number". {} otherwise."""
    if num is None or not num.valid or not rules.id_ok(num.text):
        return {}
    info = rules.id_info(num.text)
    return {name: Field(name, val, val, num.confidence, True, num.quad, [], {"source": "id_number"})
            for name, val in (("sex", info["sex"]), ("birth", info["birth"].isoformat()))}


@dataclass
class _Row:
    b: float            # centre offset from the reference line across it, in reference heights
    height: float       # median box height, in reference heights
    items: list         # line indices, left to right
    values: list        # items without a leading caption box
    spans: dict = field(default_factory=dict)   # item -> (left, right, height) along the reference, in its heights


def id_rows(quads, ref_quad=None, skip=()) -> list:
    """Detected lines grouped into text rows of a document, top to bottom, in the frame of a
    reference line (the ID number: its direction is "along", its height the unit; only lines above it
    count) or, without one, of the lines' median direction and height; boxes more than ~30 degrees off
    that direction are left out, and two boxes join a row only when their directions agree within ~20
    degrees and their centres lie within half the smaller height across the longer box's line. A row
    of two or more boxes whose leftmost box is short (at most ~3.4 heights wide: a two-character
    caption) starts with its caption: `values` drops it."""
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    keep = [i for i in range(len(quads)) if i not in set(skip)]
    if not keep:
        return []

    if ref_quad is not None:
        ref = np.asarray(ref_quad, np.float64)
        u, h, origin = quad_axis(ref), max(quad_size(ref)[1], 1e-6), ref.mean(0)
    else:
        us = np.array([quad_axis(quads[i]) for i in keep])
        ang = float(np.median(np.arctan2(us[:, 1], us[:, 0])))
        u = np.array([np.cos(ang), np.sin(ang)])
        h = max(float(np.median([quad_size(quads[i])[1] for i in keep])), 1e-6)
        origin = quads[keep].reshape(-1, 2).mean(0)
    v = np.array([-u[1], u[0]])                     # across the line, pointing down the page
    items, geo = [], []      # per kept box: (b, left, right, height, index); (centre, axis, normal, h, w)
    for i in keep:
        q = quads[i]
        d = (q - origin) / h
        b = float(d.mean(0) @ v)
        if ref_quad is not None and b > -0.6:     # the reference row and anything below it
            continue
        uu = quad_axis(q)
        if abs(float(uu @ u)) < 0.87:            # not along the page's text direction (> ~30 degrees)
            continue
        proj = d @ u
        w_, h_ = quad_size(q)
        items.append((b, float(proj.min()), float(proj.max()), h_ / h, i))
        geo.append(_box_geo(q))
    # two boxes share a row when their directions agree within ~20 degrees and their centres lie
    # within half the smaller height across the longer box's line (perspective tilts rows far from
    # the reference)
    groups = [[items[a] for a in g]
              for g in _connected(len(items), lambda a, c: _row_frame(geo[a], geo[c], 0.94) is not None)]
    rows = sorted(groups, key=lambda r: float(np.mean([it[0] for it in r])))
    out = []
    for r in rows:
        r = sorted(r, key=lambda it: it[1])
        hh = float(np.median([it[3] for it in r]))
        vals = [it[4] for it in r]
        if len(r) >= 2 and (r[0][2] - r[0][1]) <= 3.4 * r[0][3]:
            vals = vals[1:]
        out.append(_Row(float(np.mean([it[0] for it in r])), hh, [it[4] for it in r], vals,
                        {it[4]: (it[1], it[2], it[3]) for it in r}))
    return out


def merged_row_boxes(rows, quads) -> dict:
    """{box index: n >= 2} for the value boxes of `rows` (id_rows) below the top row (the name,
    printed larger) and at least 3 heights long (text rows; two merged address rows are ~5) that are
    at least ID_SPLIT_RATIO times as tall as the median of the other value boxes at least 3 heights
    long (of all value boxes when fewer than two are): n rows, rows ~1.4 box heights apart (n boxes
    stacked are 1 + 1.4 (n - 1) heights tall), at most 3."""
    hs = [(row.spans[i][2], i, _aspect(quads[i]) >= 3.0) for row in rows for i in row.values]
    top = set(rows[0].values) if rows else set()
    out = {}
    for k, (h, i, long_box) in enumerate(hs):
        if not long_box or i in top:    # a caption, or the top row (the name, printed larger)
            continue
        others = [hh for j, (hh, _, long_) in enumerate(hs) if j != k and long_]
        if len(others) < 2:
            others = [hh for j, (hh, _, _) in enumerate(hs) if j != k]
        if len(others) < 2:
            continue
        med = float(np.median(others))
        if med > 0 and h >= ID_SPLIT_RATIO * med:
            out[i] = 3 if h >= 3.1 * med else 2
    return out


def split_quad(quad, n: int) -> list:
    """A quad (tl, tr, br, bl) cut across its height into n equal bands, top to bottom."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    left = [q[0] + (q[3] - q[0]) * k / n for k in range(n + 1)]
    right = [q[1] + (q[2] - q[1]) * k / n for k in range(n + 1)]
    return [np.array([left[k], right[k], right[k + 1], left[k + 1]], np.float32) for k in range(n)]


def _box_geo(q):
    """(centre, reading direction u, normal v, height (>= 1e-6), width) of a quad."""
    w, h = quad_size(q)
    u = quad_axis(q)
    return np.asarray(q, np.float64).reshape(4, 2).mean(0), u, np.array([-u[1], u[0]]), max(h, 1e-6), w


def _row_frame(ga, gb, min_cos: float):
    """The longer box's (centre, u, v) when two boxes (_box_geo) run along one text row: their
    directions' cosine is at least min_cos and their centres lie within half the smaller height
    across the longer box's line; else None."""
    ca, ua, va, ha, wa = ga
    cb, ub, vb, hb, wb = gb
    if abs(float(ua @ ub)) < min_cos:
        return None
    c, u, v = (ca, ua, va) if wa >= wb else (cb, ub, vb)
    return (c, u, v) if abs(float((cb - ca) @ v)) < 0.5 * min(ha, hb) else None


def _connected(n: int, linked) -> list:
    """The groups of 0..n-1 that linked(a, b) (a < b) joins, transitively (union-find): lists in
    ascending order, ordered by their smallest member."""
    parent = list(range(n))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(n):
        for b in range(a + 1, n):
            if root(a) != root(b) and linked(a, b):
                parent[root(b)] = root(a)
    groups = {}
    for a in range(n):
        groups.setdefault(root(a), []).append(a)
    return list(groups.values())


def row_unions(quads, max_gap: float = 3.0):
    """Boxes that continue one another along a text row, joined: two boxes chain when their
    directions agree within ~10 degrees, their heights within 1.6x, their centres lie within half the
    smaller height across the longer box's line and the gap between their ends is at most max_gap
    heights. Returns (quads (m, 4, 2) float32: one per chain of >= 2 boxes, spanning its boxes along
    the longest box's line, as tall as that box; {len(quads) + k: frozenset of the boxes joined})."""
    q = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    n = len(q)
    if n < 2:
        return np.zeros((0, 4, 2), np.float32), {}
    geo = [_box_geo(x) for x in q]

    def chained(a, b):
        ha, hb = geo[a][3], geo[b][3]
        frame = _row_frame(geo[a], geo[b], 0.985) if max(ha, hb) <= 1.6 * min(ha, hb) else None
        if frame is None:
            return False
        c, u, _ = frame
        pa, pb = (q[a] - c) @ u, (q[b] - c) @ u
        return max(pb.min() - pa.max(), pa.min() - pb.max()) <= max_gap * max(ha, hb)

    out, members = [], {}
    for g in _connected(n, chained):
        if len(g) < 2:
            continue
        k = max(g, key=lambda i: geo[i][4])
        c, u, v, h, _ = geo[k]
        along = np.concatenate([(q[i] - c) @ u for i in g])
        lo, hi = float(along.min()), float(along.max())
        out.append([c + lo * u - 0.5 * h * v, c + hi * u - 0.5 * h * v, c + hi * u + 0.5 * h * v,
                    c + lo * u + 0.5 * h * v])
        members[n + len(out) - 1] = frozenset(g)
    return np.asarray(out, np.float32).reshape(-1, 4, 2), members


def _below(quad, ref, lo: float, hi: float, past_ends: float) -> bool:
    """Whether a line's centre lies lo..hi reference-line heights below the reference line (across
    it, down the page in its frame) and its box overlaps the reference's span grown by past_ends
    heights at both ends."""
    ref = np.asarray(ref, np.float64).reshape(4, 2)
    q = np.asarray(quad, np.float64).reshape(4, 2)
    u = quad_axis(ref)
    v = np.array([-u[1], u[0]])
    w, h = quad_size(ref)
    h = max(h, 1e-6)
    d = (q - ref.mean(0)) / h
    along = d @ u
    return lo <= float(d.mean(0) @ v) <= hi and along.max() >= -0.5 * w / h - past_ends and \
        along.min() <= 0.5 * w / h + past_ends


def _aspect(quad) -> float:
    w, h = quad_size(quad)
    return w / max(h, 1e-6)


def _score(r) -> float:
    """How well a line supports a reading: the summed log posteriors of its characters over their
    aligned frames. Unlike log P(text | line) it does not punish characters the detector's box took
    in around the field (a frame edge, a "VIN" label) that the rules leave out of the reading; a
    character the rules forced against the model still costs its (tiny) posterior."""
    return float(np.sum(np.log(np.maximum(np.asarray(r.char_conf, np.float64), 1e-12))))


class _LineCache:
    """Lazily computed recognizer log-probs per (model, line); times crop and recognize into t."""

    def __init__(self, recognizers, image, quads, t):
        self.recs, self.image, self.quads, self.t = recognizers, image, quads, t
        self.fill = fill_color(image)
        self.crops, self.lps, self.greedy = {}, {}, {}

    def read(self, rec, quad, crop=None):
        """Log-probs of `rec` on one quad (crop: an already cut line); None for a degenerate quad.
        Times crop and recognize."""
        t1 = time.perf_counter()
        if crop is None:
            try:
                crop = rec.crop(self.image, quad, self.fill)
            except ValueError:
                return None
        t2 = time.perf_counter()
        lp = rec.log_probs(crop)
        self.t["crop"] += t2 - t1
        self.t["recognize"] += time.perf_counter() - t2
        return lp

    def get(self, name, k):
        """Log-probs of recognizer `name` on detected line k (crops shared by recognizers of one
        input width)."""
        if (name, k) not in self.lps:
            rec = self.recs[name]
            key = (k, rec.width)
            if key not in self.crops:
                t1 = time.perf_counter()
                try:
                    self.crops[key] = rec.crop(self.image, self.quads[k], self.fill)
                except ValueError:          # degenerate quad
                    self.crops[key] = None
                self.t["crop"] += time.perf_counter() - t1
            line = self.crops[key]
            self.lps[(name, k)] = None if line is None else self.read(rec, None, line)
        return self.lps[(name, k)]

    def views(self, name, k, shifts, gate, tighten=False):
        """Log-probs of line k by `name`, averaged (in probability) with its box moved across the
        line by each of `shifts` box heights when the greedy reading of the line as cut has a
        character whose posterior is below `gate`; computed once per line. `tighten`: such a line
        at least ID_TIGHTEN_ASPECT heights long is first read from tighten_quad's text band too, and
        the band replaces the box when its best path (sum of the frames' top log-probs) is likelier."""
        key = ("views", name, k)
        if key not in self.lps:
            lp = self.get(name, k)
            rec = self.recs[name]
            if lp is not None and shifts:
                g = rec.decode(lp, beam_width=1)[0]
                if len(g.labels) and float(np.min(g.char_conf)) < gate:
                    q = np.asarray(self.quads[k], np.float64).reshape(4, 2)
                    if tighten and _aspect(q) >= ID_TIGHTEN_ASPECT:
                        # the text band found inside the box (a box turned a few degrees off its text
                        # cuts the characters at its ends) replaces the box when its best path is likelier
                        tq = tighten_quad(self.image, q, self.fill)
                        lt = None if tq is None else self.read(rec, tq.astype(np.float32))
                        if lt is not None and float(lt.max(axis=1).sum()) > float(lp.max(axis=1).sum()):
                            q, lp = tq, lt
                    u = quad_axis(q)
                    v = np.array([-u[1], u[0]])
                    h = quad_size(q)[1]
                    probs = [np.exp(lp)]
                    for dv in shifts:
                        lq = self.read(rec, (q + dv * h * v).astype(np.float32))
                        if lq is not None:
                            probs.append(np.exp(lq))
                    lp = np.log(np.mean(probs, axis=0))
            self.lps[key] = lp
        return self.lps[key]

    def greedy_len(self, name, k):
        """Characters in the greedy reading of line k by `name` (None: no reading), computed once."""
        if (name, k) not in self.greedy:
            lp = self.get(name, k)
            self.greedy[(name, k)] = None if lp is None else len(self.recs[name].decode(lp, beam_width=1)[0].labels)
        return self.greedy[(name, k)]


def _resolve_rolled(rec, found, raw, r):
    """A meter's last wheel caught between two digits: when the two best valid readings differ only
    in the last digit and those digits are consecutive (d and d + 1 mod 10), a meter reader takes d,
    the value the wheel is leaving (the register has not reached d + 1 yet)."""
    alt = rec.text(found[1].labels)
    meta = {}
    if len(alt) == len(raw) and alt[:-1] == raw[:-1] and alt[-1] != raw[-1] and \
            found[1].log_prob > r.log_prob - np.log(20.0):
        a, b = int(raw[-1]), int(alt[-1])
        leaving = a if (a + 1) % 10 == b else b if (b + 1) % 10 == a else None
        if leaving is not None:
            meta = {"rolled": True, "alternatives": [raw, alt]}
            if leaving == b:
                return alt, found[1], meta
    return raw, r, meta


def check_image(image) -> np.ndarray:
    """Validate an image array: (H, W) or (H, W, 3|4) uint8, at least 8 x 8 pixels."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise XnnError(f"image must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3]
    elif a.ndim != 2:
        raise XnnError(f"image must be (H, W) gray or (H, W, 3) RGB, got shape {a.shape}")
    if a.shape[0] < 8 or a.shape[1] < 8:
        raise XnnError(f"image is too small ({a.shape[1]}x{a.shape[0]} pixels)")
    return np.ascontiguousarray(a)
