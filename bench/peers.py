"""Engines and key-field extraction for bench/bench_peers.py (xnn vs Tesseract vs PP-OCRv4).

Every engine has the same surface:

    eng.prepare(domain)   load / configure for a domain (model load time is not benchmarked);
                          raises Unavailable(reason) when the engine cannot run that domain
    eng.read(image)       one full read of an RGB uint8 image -> Output (the call that is timed)
    eng.model_bytes(domain), eng.model_files(domain)   what the read needs on disk
    eng.close()

Free-text engines (Tesseract, RapidOCR) return text segments with boxes; `extract(domain, out)` turns
them into the key field with the per-domain normalizers below, the same code for every such engine.
xnn returns fields directly; its text only goes through `norm(domain, text)`, which is also applied
to the ground truth.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field

import numpy as np

DOMAINS = ("card", "meter", "plate", "vin", "idcard")
KEY_FIELD = {"card": "number", "meter": "reading", "plate": "plate", "vin": "vin", "idcard": "id_number"}

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_SPECIAL = "警学"
DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VIN_CHARS = DIGITS + "ABCDEFGHJKLMNPRSTUVWXYZ"


class Unavailable(Exception):
    """The engine cannot run (not installed, no model for the domain, ...); str() is the reason."""


# ---------------------------------------------------------------------------------------------------
# normalization and checksums


def norm(domain: str, text: str) -> str:
    """Canonical form of a key field, applied to the truth and to every prediction alike."""
    t = unicodedata.normalize("NFKC", text or "").upper()
    if domain in ("card", "meter"):
        return re.sub(r"\D", "", t)
    t = re.sub(r"[\s·•・.\-_:：,，'\"|]", "", t)
    if domain == "vin":
        return t.translate(str.maketrans("OIQ", "010"))
    return t


def luhn_ok(number: str) -> bool:
    if len(number) < 2 or not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = 2 * d - 9 if d > 4 else 2 * d
        total += d
    return total % 10 == 0


_VIN_VALUE = {**{c: int(c) for c in DIGITS},
              **dict(zip("ABCDEFGH", range(1, 9))), **dict(zip("JKLMN", range(1, 6))), "P": 7, "R": 9,
              **dict(zip("STUVWXYZ", range(2, 10)))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_ok(vin: str) -> bool:
    """49 CFR 565 check digit (position 9)."""
    if len(vin) != 17 or any(c not in _VIN_VALUE for c in vin):
        return False
    r = sum(_VIN_VALUE[c] * w for c, w in zip(vin, _VIN_WEIGHTS)) % 11
    return vin[8] == ("X" if r == 10 else str(r))


def id_ok(num: str) -> bool:
    """GB 11643 (ISO 7064 MOD 11-2) check character of an 18-char Chinese ID number."""
    if len(num) != 18 or not num[:17].isdigit() or num[17] not in DIGITS + "X":
        return False
    s = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(num[:17]))
    return "10X98765432"[s % 11] == num[17]


def edit_distance(a: str, b: str) -> int:
    from models.rec_spec import edit_distance as ed

    return ed(a, b)


# ---------------------------------------------------------------------------------------------------
# engine output and key-field extraction


@dataclass
class Segment:
    text: str
    box: tuple                       # x0, y0, x1, y1 in input-image pixels
    conf: float = 1.0
    quad: np.ndarray | None = None   # (4, 2) TL, TR, BR, BL when the engine gives one
    row_height: float | None = None  # set on merged rows: their tallest segment

    @property
    def height(self) -> float:
        if self.row_height is not None:
            return self.row_height
        if self.quad is not None:
            q = self.quad
            return 0.5 * float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
        return float(self.box[3] - self.box[1])

    def angle(self) -> float | None:
        """Text direction (radians, image y down) from the quad's top edge, None when unknown."""
        if self.quad is None:
            return None
        d = (self.quad[1] + self.quad[2] - self.quad[0] - self.quad[3]) / 2
        return float(np.arctan2(d[1], d[0])) if np.hypot(*d) > self.height else None


@dataclass
class Output:
    segments: list | None = None                    # free-text engines
    fields: dict | None = None                      # xnn: field name -> text
    timings: dict = field(default_factory=dict)     # engine-reported stage times (s)

    def raw_text(self) -> str:
        if self.segments is not None:
            return " | ".join(s.text for s in self.segments)
        return " | ".join(f"{k}={v}" for k, v in (self.fields or {}).items())


def _row_members(segments: list) -> list:
    """Segments grouped into text rows: [(y0, y1, [(x, segment)])], in a frame rotated by the median
    text angle (photos are tilted); same row = vertical overlap >= half the smaller segment height."""
    angles = [a for a in (s.angle() for s in segments) if a is not None]
    a = float(np.median(angles)) if angles else 0.0
    c, sn = np.cos(a), np.sin(a)
    items = []
    for s in segments:
        cx, cy = 0.5 * (s.box[0] + s.box[2]), 0.5 * (s.box[1] + s.box[3])
        if s.quad is not None:
            cx, cy = (float(v) for v in s.quad.mean(axis=0))
        x, y = c * cx + sn * cy, -sn * cx + c * cy        # rotate by -a
        items.append((y - s.height / 2, y + s.height / 2, x, s))
    rows = []                                             # [y0, y1, [(x, segment)]]
    for y0, y1, x, s in sorted(items, key=lambda t: t[0] + t[1]):
        for r in rows:
            ov = min(r[1], y1) - max(r[0], y0)
            if ov > 0 and ov >= 0.5 * min(r[1] - r[0], y1 - y0):
                r[2].append((x, s))
                r[0], r[1] = min(r[0], y0), max(r[1], y1)
                break
        else:
            rows.append([y0, y1, [(x, s)]])
    return [(r[0], r[1], r[2]) for r in rows]


def group_rows(segments: list) -> list:
    """Merge segments that share a text row (_row_members) into one segment each, left to right,
    joined by spaces; rows of a single segment are left out."""
    if len(segments) < 2:
        return []
    out = []
    for _, _, members in _row_members(segments):
        if len(members) < 2:
            continue
        segs = [s for _, s in sorted(members, key=lambda t: t[0])]
        out.append(Segment(" ".join(s.text for s in segs),
                           (min(s.box[0] for s in segs), min(s.box[1] for s in segs),
                            max(s.box[2] for s in segs), max(s.box[3] for s in segs)),
                           min(s.conf for s in segs), row_height=max(s.height for s in segs)))
    return out


def _texts(segments: list) -> list:
    """(NFKC text, height) of every segment and of every multi-segment row."""
    out = []
    for s in list(segments) + group_rows(segments):
        out.append((unicodedata.normalize("NFKC", s.text), s.height))
    return out


# misreads of digits inside mostly-digit tokens (O->0, l->1, S->5, B->8, ...)
_DIGIT_FIX = str.maketrans("OoDQUIl|i!SsBZzGgT", "000001111155822697")


def _fix_digits(text: str, keep: str = "") -> str:
    def fix(m):
        tok = m.group(0)
        nd = sum(c.isdigit() for c in tok)
        if nd >= 2 and nd >= 0.5 * len(tok):
            return "".join(c if c in keep else c.translate(_DIGIT_FIX) for c in tok)
        return tok
    return re.sub(r"\S+", fix, text)


_GROUPS = re.compile(r"\d+(?:(?:\s+|\s*[.,·\-:;]\s*)\d+)*")


def _digit_runs(text: str) -> list:
    """Runs of digit groups separated by spaces or one of . , · - : ; (each run: its list of groups)."""
    return [re.findall(r"\d+", m.group(0)) for m in _GROUPS.finditer(text)]


def _subruns(groups: list, lo: int, hi: int):
    """Concatenations of consecutive groups with lo..hi digits."""
    for i in range(len(groups)):
        s = ""
        for j in range(i, len(groups)):
            s += groups[j]
            if len(s) > hi:
                break
            if len(s) >= lo:
                yield s


def _longest_digits(texts) -> str:
    runs = ["".join(g) for t, _ in texts for g in _digit_runs(t)]
    return max(runs, key=len, default="")


def extract_card(texts) -> str:
    cands = []
    for t, h in texts:
        for groups in _digit_runs(_fix_digits(t)):
            for s in _subruns(groups, 13, 19):
                cands.append((luhn_ok(s), len(s), h, s))
    return max(cands)[3] if cands else _longest_digits(texts)


_SERIAL = re.compile(r"N\s*[O0o°º]\s*[.:]?\s*\d[\d ]*", re.I)


def extract_meter(texts) -> str:
    cands = []
    texts = [(_SERIAL.sub(" ", t), h) for t, h in texts]   # "No. 71423927" is the serial, not the reading
    for t, h in texts:
        for groups in _digit_runs(_fix_digits(t)):
            for s in _subruns(groups, 5, 8):
                cands.append((round(h, 0), len(s), s))   # the reading is the tallest text, then longest
    return max(cands)[2] if cands else _longest_digits(texts)


_PLATE = re.compile(f"([{PROVINCES}])([A-Z0-9])([A-Z0-9]{{4}}(?:[A-Z0-9]{{1,2}}|[{PLATE_SPECIAL}])?)")


def extract_plate(texts) -> str:
    cands, loose = [], []
    for t, h in texts:
        t = re.sub(r"[\s·•・.\-_:：,，'\"|*]", "", t.upper())
        for m in _PLATE.finditer(t):
            prov, city, rest = m.groups()
            city = {"0": "D", "1": "J", "8": "B"}.get(city, city)      # letters only at position 2
            rest = rest.translate(str.maketrans("OI", "01"))          # plates have no O or I
            cands.append((len(rest) >= 5, h, prov + city + rest))
        loose += re.findall(f"[{PROVINCES}A-Z0-9{PLATE_SPECIAL}]+", t)
    if cands:
        return max(cands)[2]
    return max(loose, key=len, default="")


def extract_vin(texts) -> str:
    cands, loose = [], []
    for t, h in texts:
        t = re.sub(r"[\s·•.\-_:：,，'\"|*]", "", t.upper()).translate(str.maketrans("OIQ", "010"))
        for run in re.findall(f"[{VIN_CHARS}]+", t):
            loose.append(run)
            for i in range(len(run) - 16):
                w = run[i:i + 17]
                # check-digit-valid first, then an exact 17-char run, then the window nearest the end
                cands.append((vin_ok(w), len(run) == 17, i, h, w))
    if cands:
        return max(cands)[4]
    return max(loose, key=len, default="")


def extract_idcard(texts) -> str:
    cands, loose = [], []
    for t, h in texts:
        t = _fix_digits(t.upper(), keep="X")
        for m in re.finditer(r"[\dX](?:\s*[\dX])*", t):
            run = re.sub(r"\s", "", m.group(0))
            loose.append(run)
            for i in range(len(run) - 17):
                w = run[i:i + 18]
                if w[:17].isdigit():
                    cands.append((id_ok(w), len(run) == 18, h, w))
    if cands:
        return max(cands)[3]
    return max(loose, key=len, default="")


EXTRACT = {"card": extract_card, "meter": extract_meter, "plate": extract_plate, "vin": extract_vin,
           "idcard": extract_idcard}


# Secondary fields, scored besides the key field (exact match and character accuracy): the ID card's
# holder name and address (truth: the printed name; the address rows joined).
MORE_FIELDS = {"card": ("expiry", "name"), "idcard": ("name", "address")}


def truth_key(domain: str, sample) -> str:
    """The key field's text in a generated sample (its line, else the sample's metadata)."""
    truth = next((ln.text for ln in sample.lines if ln.field == KEY_FIELD[domain]), None)
    if truth is None:
        truth = sample.meta.get(KEY_FIELD[domain], sample.meta.get("digits", sample.meta.get("text", "")))
    return str(truth)


def truth_more(domain: str, sample) -> dict:
    if domain == "card":
        return {f: next((ln.text for ln in sample.lines if ln.field == f), "") for f in ("expiry", "name")}
    if domain != "idcard":
        return {}
    rows = sorted((ln for ln in sample.lines if ln.field == "address"), key=lambda ln: ln.meta.get("row", 0))
    name = next((ln.text for ln in sample.lines if ln.field == "name"), "")
    return {"name": name, "address": "".join(ln.text for ln in rows)}


def norm_more(text: str) -> str:
    """Secondary fields: NFKC, spaces and punctuation dropped (Chinese text has no spaces)."""
    return re.sub(r"[\s·•・.\-_:：,，'\"|]", "", unicodedata.normalize("NFKC", text or "").upper())


def reading_rows(segments: list) -> list:
    """Every segment's text grouped into text rows (single-segment rows kept, _row_members), top to
    bottom, each row's texts joined left to right."""
    if not segments:
        return []
    rows = sorted(_row_members(segments), key=lambda r: r[0] + r[1])
    return ["".join(unicodedata.normalize("NFKC", s.text) for _, s in sorted(m, key=lambda t: t[0]))
            for _, _, m in rows]


def extract_idcard_more(segments: list) -> dict:
    """Name: the rest of the row that holds the 姓名 caption; address: the rest of the 住址 row and
    the rows after it up to the 公民身份号码 row (or an 18-character number). Only Chinese
    characters, digits and A-Z are kept (generous to free-text engines: captions are their anchors)."""
    rows = [re.sub(r"\s", "", r) for r in reading_rows(segments)]
    keep = (lambda t: "".join(ch for ch in t if "\u3400" <= ch <= "\u9fff" or ch.isascii() and ch.isalnum()))
    out = {"name": "", "address": ""}
    for r in rows:
        if "姓名" in r:
            out["name"] = "".join(ch for ch in r.split("姓名", 1)[1] if "\u3400" <= ch <= "\u9fff")
            break
    start = None
    for k, r in enumerate(rows):
        if "住址" in r:
            start, first = k, r.split("住址", 1)[1]
            break
    else:       # caption not read (Tesseract often misses the blue captions): a row starting with a province
        for k, r in enumerate(rows):
            m = re.search("|".join(PROVINCE_NAMES), keep(r)[:8])
            if m:
                start, first = k, keep(r)[m.start():]
                break
    if start is not None:
        parts = [first]
        for nxt in rows[start + 1:]:
            if "公民" in nxt or "身份" in nxt or re.search(r"\d{15}", nxt):
                break
            parts.append(nxt)
        out["address"] = keep("".join(parts))
    if not out["name"]:   # no 姓名 caption read: the top row's Chinese characters, when it has 2-5
        han = ["".join(ch for ch in r if "\u3400" <= ch <= "\u9fff") for r in rows[:start]]
        han = [h for h in han if 2 <= len(h) <= 5]
        out["name"] = han[0] if han else ""
    return out


# province-level names (GB/T 2260), the start of every address
PROVINCE_NAMES = ("北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏", "浙江", "安徽",
                  "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西", "海南", "重庆", "四川", "贵州",
                  "云南", "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆", "台湾", "香港", "澳门")


CARD_WORDS = {"VISA", "MASTERCARD", "UNIONPAY", "AMEX", "AMERICAN", "EXPRESS", "VALID", "THRU", "GOOD", "FROM",
              "EXPIRES", "END", "MONTH", "YEAR", "DEBIT", "CREDIT", "PLATINUM", "GOLD", "CLASSIC", "WORLD",
              "SIGNATURE", "BUSINESS", "INFINITE", "BANK", "CARD"}


def extract_card_more(segments: list) -> dict:
    """Expiry: the first MM/YY in the text rows; name: the lowest segment of A-Z (and '.') words,
    two or more or one of 5+ letters (engines drop spaces), that are not card vocabulary (brands,
    tiers, VALID THRU)."""
    out = {"expiry": "", "name": ""}
    for r in reading_rows(segments) + [s.text for s in segments]:
        m = re.search(r"(?<!\d)(0[1-9]|1[0-2])\s*/\s*(\d{2})(?!\d)", unicodedata.normalize("NFKC", r))
        if m:
            out["expiry"] = f"{m.group(1)}/{m.group(2)}"
            break
    best = None
    for sg in segments:
        t = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", sg.text).upper()).strip()
        words = t.split(" ")
        if (len(words) >= 2 or len(t) >= 5) and re.fullmatch(r"[A-Z. ]+", t) and not set(words) & CARD_WORDS:
            y = float(sg.quad.mean(axis=0)[1]) if sg.quad is not None else 0.5 * (sg.box[1] + sg.box[3])
            if best is None or y > best[0]:
                best = (y, t)
    out["name"] = best[1] if best else ""
    return out


def predict_more(domain: str, out: Output) -> dict:
    """The engine's secondary fields (MORE_FIELDS), normalized."""
    if domain not in MORE_FIELDS:
        return {}
    if out.fields is not None:
        got = {f: out.fields.get(f) or "" for f in MORE_FIELDS[domain]}
    elif domain == "card":
        got = extract_card_more(out.segments or [])
    else:
        got = extract_idcard_more(out.segments or [])
    return {f: norm_more(got.get(f, "")) for f in MORE_FIELDS[domain]}


def predict(domain: str, out: Output) -> str:
    """The engine's key field, normalized: xnn's field text, or extracted from free text."""
    if out.fields is not None:
        return norm(domain, out.fields.get(KEY_FIELD[domain]) or "")
    return norm(domain, EXTRACT[domain](_texts(out.segments or [])))


# ---------------------------------------------------------------------------------------------------
# Tesseract


# Per-domain settings, chosen with `bench_peers.py --tune-tesseract [--tune-invert]` on 30 images per
# domain of the validation seed (7): best field accuracy, then field CER, then speed.
# lang, page segmentation mode, character whitelist ("" = none), upscale factor before OCR, and
# invert: also read the inverted grey image (light-on-dark text) and pool both reads' lines.
PLATE_WHITELIST = PROVINCES + PLATE_SPECIAL + UPPER + DIGITS
TESS_CONFIG = {
    "card": dict(lang="eng", psm=6, whitelist=DIGITS, scale=1, invert=True),
    "meter": dict(lang="eng", psm=6, whitelist=DIGITS, scale=1, invert=False),
    "plate": dict(lang="chi_sim+eng", psm=11, whitelist=PLATE_WHITELIST, scale=2, invert=False),
    "vin": dict(lang="eng", psm=6, whitelist=UPPER + DIGITS, scale=2, invert=True),
    "idcard": dict(lang="chi_sim+eng", psm=6, whitelist="", scale=1, invert=False),
}
TESS_WHITELISTS = {"card": DIGITS, "meter": DIGITS, "plate": PLATE_WHITELIST, "vin": UPPER + DIGITS,
                   "idcard": DIGITS + "X"}


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1:
        return image
    from PIL import Image
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BICUBIC))


def _parse_tsv(tsv: str, scale: float) -> list:
    """Tesseract TSV (word level 5) -> one Segment per Tesseract text line."""
    lines = {}
    for row in tsv.splitlines()[1:]:
        c = row.split("\t")
        if len(c) < 12 or c[0] != "5" or not c[11].strip():
            continue
        key = (c[1], c[2], c[3], c[4])
        x, y, w, h = (int(v) / scale for v in c[6:10])
        lines.setdefault(key, []).append((c[11], (x, y, x + w, y + h), float(c[10])))
    segs = []
    for words in lines.values():
        segs.append(Segment(" ".join(w[0] for w in words),
                            (min(w[1][0] for w in words), min(w[1][1] for w in words),
                             max(w[1][2] for w in words), max(w[1][3] for w in words)),
                            min(w[2] for w in words) / 100.0))
    return segs


class _TessAPI:
    """libtesseract's C API through ctypes: the model stays loaded between images."""

    def __init__(self, lib, lang: str):
        self.lib = lib
        self.h = lib.TessBaseAPICreate()
        if lib.TessBaseAPIInit3(self.h, None, lang.encode()) != 0:
            lib.TessBaseAPIDelete(self.h)
            self.h = None
            raise Unavailable(f"tesseract cannot load language {lang!r} (install tesseract-ocr-{lang})")

    def configure(self, psm: int, whitelist: str):
        self.lib.TessBaseAPISetPageSegMode(self.h, psm)
        self.lib.TessBaseAPISetVariable(self.h, b"tessedit_char_whitelist", whitelist.encode())

    def tsv(self, image: np.ndarray) -> str:
        im = np.ascontiguousarray(image)
        lib = self.lib
        lib.TessBaseAPISetImage(self.h, im.ctypes.data, im.shape[1], im.shape[0], 3, im.strides[0])
        lib.TessBaseAPISetSourceResolution(self.h, 300)
        if lib.TessBaseAPIRecognize(self.h, None) != 0:
            return ""
        p = lib.TessBaseAPIGetTsvText(self.h, 0)
        try:
            return ctypes.string_at(p).decode("utf-8", "replace") if p else ""
        finally:
            if p:
                lib.TessDeleteText(p)

    def close(self):
        if self.h:
            self.lib.TessBaseAPIEnd(self.h)
            self.lib.TessBaseAPIDelete(self.h)
            self.h = None


def _load_libtesseract():
    name = ctypes.util.find_library("tesseract") or "libtesseract.so.5"
    lib = ctypes.CDLL(name)
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    sigs = {"TessVersion": ([], cp), "TessBaseAPICreate": ([], vp), "TessBaseAPIInit3": ([vp, cp, cp], i),
            "TessBaseAPISetPageSegMode": ([vp, i], None), "TessBaseAPISetVariable": ([vp, cp, cp], i),
            "TessBaseAPISetImage": ([vp, vp, i, i, i, i], None),
            "TessBaseAPISetSourceResolution": ([vp, i], None), "TessBaseAPIRecognize": ([vp, vp], i),
            "TessBaseAPIGetTsvText": ([vp, i], vp), "TessDeleteText": ([vp], None),
            "TessBaseAPIGetDatapath": ([vp], cp), "TessBaseAPIEnd": ([vp], None),
            "TessBaseAPIDelete": ([vp], None)}
    for fn, (args, res) in sigs.items():
        f = getattr(lib, fn)
        f.argtypes, f.restype = args, res
    return lib


class Tesseract:
    """Tesseract 5 (LSTM), one thread (OMP_THREAD_LIMIT=1, set before the library loads). Uses
    libtesseract in-process when it can be loaded (model loaded once, like the other engines), else
    the `tesseract` command per image (then latency includes process start and model load)."""

    name = "tesseract"

    def __init__(self, config: dict | None = None):
        os.environ["OMP_THREAD_LIMIT"] = "1"
        self.config = dict(TESS_CONFIG if config is None else config)
        self.apis = {}
        self.lib = None
        self.cfg = None
        self.mode = None
        try:
            self.lib = _load_libtesseract()
            self.mode = "api"
            self.version = self.lib.TessVersion().decode()
        except (OSError, AttributeError) as e:
            if shutil.which("tesseract") is None:
                raise Unavailable(f"tesseract not installed ({e}); apt-get install -y tesseract-ocr "
                                  "tesseract-ocr-chi-sim") from None
            self.mode = "cli"
            out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
            self.version = (out.stdout or out.stderr).split("\n")[0].split()[-1]
        self.datapath = self._datapath()

    def _datapath(self) -> str:
        if self.mode == "api":
            api = _TessAPI(self.lib, "eng")
            try:
                return self.lib.TessBaseAPIGetDatapath(api.h).decode()
            finally:
                api.close()
        out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout
        m = re.search(r'"(.+?)"', out)
        return m.group(1) if m else ""

    def set_config(self, cfg: dict):
        self.cfg = dict(cfg)
        if self.mode == "api":
            if cfg["lang"] not in self.apis:
                self.apis[cfg["lang"]] = _TessAPI(self.lib, cfg["lang"])
            self.apis[cfg["lang"]].configure(cfg["psm"], cfg["whitelist"])
        else:
            for lang in cfg["lang"].split("+"):
                if not os.path.exists(os.path.join(self.datapath, f"{lang}.traineddata")):
                    raise Unavailable(f"no {lang}.traineddata in {self.datapath}")

    def prepare(self, domain: str):
        self.set_config(self.config[domain])

    def describe(self, domain: str) -> str:
        c = self.config[domain]
        wl = {"": "none", DIGITS: "digits", DIGITS + "X": "digits+X", UPPER + DIGITS: "A-Z0-9",
              PLATE_WHITELIST: "provinces+A-Z0-9+警学"}.get(c["whitelist"], repr(c["whitelist"]))
        inv = " +inverted" if c.get("invert") else ""
        return f"-l {c['lang']} --psm {c['psm']} whitelist={wl} scale={c['scale']}{inv}"

    def read(self, image: np.ndarray) -> Output:
        c = self.cfg
        im = _resize(image, c["scale"])
        segs = self._read(im)
        if c.get("invert"):        # light-on-dark text (plates, embossed cards): also read the negative
            g = (255 - im.mean(axis=2, dtype=np.float32)).astype(np.uint8)
            segs += self._read(np.repeat(g[:, :, None], 3, axis=2))
        return Output(segments=segs)

    def _read(self, im: np.ndarray) -> list:
        c = self.cfg
        if self.mode == "api":
            tsv = self.apis[c["lang"]].tsv(im)
        else:
            from PIL import Image
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG")
            cmd = ["tesseract", "-", "stdout", "-l", c["lang"], "--psm", str(c["psm"]), "--dpi", "300"]
            if c["whitelist"]:
                cmd += ["-c", f"tessedit_char_whitelist={c['whitelist']}"]
            tsv = subprocess.run(cmd + ["tsv"], input=buf.getvalue(), capture_output=True,
                                 env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout.decode("utf-8", "replace")
        return _parse_tsv(tsv, c["scale"])

    def model_files(self, domain: str) -> list:
        return [os.path.join(self.datapath, f"{lang}.traineddata") for lang in self.config[domain]["lang"].split("+")]

    def model_bytes(self, domain: str) -> int:
        return sum(os.path.getsize(p) for p in self.model_files(domain) if os.path.exists(p))

    def close(self):
        for api in self.apis.values():
            api.close()
        self.apis = {}


# ---------------------------------------------------------------------------------------------------
# RapidOCR (PP-OCRv4 det + PP-OCR mobile v2 cls + PP-OCRv4 rec on onnxruntime)


class RapidOCR:
    """rapidocr-onnxruntime with its bundled config, except one onnxruntime thread (intra_op and
    inter_op = 1, via the package's own Global.intra_op_num_threads / inter_op_num_threads keys) and
    one OpenCV thread. `det_limit_side_len` overrides Det.limit_side_len (default: the package's,
    736 with limit_type "min", i.e. images are upscaled so that their short side is 736);
    use_cls=False skips the 0/180 degree line classifier (on by default in the package)."""

    name = "rapidocr"

    def __init__(self, det_limit_side_len: int | None = None, use_cls: bool = True):
        self.use_cls = use_cls
        try:
            import cv2
            import onnxruntime
            import rapidocr_onnxruntime
            from rapidocr_onnxruntime import RapidOCR as _Rapid
        except Exception as e:       # ImportError, or a broken cv2/onnxruntime install
            raise Unavailable(f"rapidocr-onnxruntime not importable ({type(e).__name__}: {e}); "
                              "pip install rapidocr-onnxruntime") from None
        cv2.setNumThreads(1)
        kw = dict(intra_op_num_threads=1, inter_op_num_threads=1)
        if det_limit_side_len:
            kw["det_limit_side_len"] = det_limit_side_len
        self.engine = _Rapid(**kw)
        self.version = f"rapidocr-onnxruntime {getattr(rapidocr_onnxruntime, '__version__', _dist_version('rapidocr-onnxruntime'))}, onnxruntime {onnxruntime.__version__}"
        self._files = self._find_models(rapidocr_onnxruntime)
        if not use_cls:
            self._files = [self._files[0], self._files[2]]
        self._check_threads()

    @staticmethod
    def _find_models(pkg) -> list:
        from rapidocr_onnxruntime.utils import read_yaml, update_model_path
        root = os.path.dirname(pkg.__file__)
        cfg = update_model_path(read_yaml(os.path.join(root, "config.yaml")))
        files = []
        for part in ("Det", "Cls", "Rec"):
            p = str(cfg[part]["model_path"])
            files.append(p if os.path.isabs(p) else os.path.join(root, p))
        return files

    def _check_threads(self):
        for part in ("text_det", "text_cls", "text_rec"):
            obj = getattr(self.engine, part, None)
            sess = getattr(getattr(obj, "infer", None), "session", None) or getattr(obj, "session", None)
            sess = getattr(sess, "session", sess)
            if sess is not None and hasattr(sess, "get_session_options"):
                n = sess.get_session_options().intra_op_num_threads
                if n != 1:
                    raise Unavailable(f"could not limit onnxruntime to one thread ({part}: {n})")

    def prepare(self, domain: str):
        pass

    def describe(self, domain: str) -> str:
        cls = "mobile v2 cls" if self.use_cls else "no cls"
        det = self.engine.text_det
        side = f"{getattr(det, 'limit_side_len', '?')} ({getattr(det, 'limit_type', '?')})"
        return f"PP-OCRv4 det+rec, {cls}, det limit_side_len {side}, 1 thread"

    def read(self, image: np.ndarray) -> Output:
        bgr = np.ascontiguousarray(image[..., ::-1])    # RapidOCR takes numpy arrays as BGR (OpenCV)
        res, elapse = self.engine(bgr, use_cls=self.use_cls)
        segs = []
        for quad, text, score in res or []:
            q = np.asarray(quad, np.float32)
            segs.append(Segment(str(text), (float(q[:, 0].min()), float(q[:, 1].min()),
                                            float(q[:, 0].max()), float(q[:, 1].max())), float(score), q))
        t = dict(zip(("detect", "classify", "recognize"), elapse)) if elapse and len(elapse) == 3 else {}
        return Output(segments=segs, timings=t)

    def model_files(self, domain: str) -> list:
        return list(self._files)

    def model_bytes(self, domain: str) -> int:
        return sum(os.path.getsize(p) for p in self._files)

    def close(self):
        pass


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "?"


# ---------------------------------------------------------------------------------------------------
# xnn


class Xnn:
    """xnn.ocr.Reader(app): shipped models, one thread."""

    name = "xnn"

    def __init__(self, key_only: bool = False, beam: int | None = None, models: dict | None = None):
        """key_only: read only each domain's key field; beam: the constrained search's width; models:
        {zoo name: path} replacing shipped models (bench/ab_models.py)."""
        self.key_only = key_only
        self.kw = {k: v for k, v in (("beam", beam), ("models", models)) if v is not None}
        try:
            import xnn
            import xnn.ocr
        except Exception as e:
            raise Unavailable(f"xnn not importable ({type(e).__name__}: {e})") from None
        if not hasattr(xnn.ocr, "Reader"):
            raise Unavailable("xnn.ocr.Reader does not exist yet")
        self.version = f"xnn {getattr(xnn, '__version__', '?')}"
        self.readers = {}
        self.reader = None

    def prepare(self, domain: str):
        import xnn.ocr
        if domain not in self.readers:
            try:
                self.readers[domain] = xnn.ocr.Reader(domain, fields=[KEY_FIELD[domain]] if self.key_only else None,
                                                      **self.kw)
            except Exception as e:
                raise Unavailable(f"xnn.ocr.Reader({domain!r}) failed: {type(e).__name__}: {e}") from None
        self.reader = self.readers[domain]

    def describe(self, domain: str) -> str:
        args = ([f"fields=[{KEY_FIELD[domain]!r}]"] if self.key_only else []) + [f"{k}={v!r}" for k, v in self.kw.items()]
        return f"xnn.ocr.Reader({', '.join([repr(domain)] + args)})" if args else "xnn.ocr.Reader defaults"

    def read(self, image: np.ndarray) -> Output:
        res = self.reader.read(image)
        fields = {k: getattr(v, "text", v) for k, v in (getattr(res, "fields", None) or {}).items()}
        return Output(fields=fields, timings=dict(getattr(res, "timings", None) or {}))

    def model_files(self, domain: str) -> list:
        r = self.readers.get(domain)
        for attr in ("model_files", "model_paths"):
            v = getattr(r, attr, None)
            if v:
                return [str(p) for p in v]
        return []

    def model_bytes(self, domain: str) -> int:
        r = self.readers.get(domain)
        return int(getattr(r, "model_bytes", 0) or 0)

    def close(self):
        pass


ENGINES = {"xnn": Xnn, "tesseract": Tesseract, "rapidocr": RapidOCR}
