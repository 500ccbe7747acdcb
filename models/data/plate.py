"""Chinese mainland licence plates (GA 36-2018 look) and vehicle identification number (VIN) plates.

Plates (field "plate", text without the separator dot, e.g. "京A12345"):
  blue   small car, 440x140 mm, white characters: province + letter + 5 alphanumerics
  yellow large vehicle, black characters; 3% are driving-school plates ending in 学 (4 alnum + 学)
  white  police, black characters ending in a red 警 (province + letter + 4 alnum + 警)
  green  new energy, 480x140 mm, 8 characters:
         small car (white-to-green gradient): province + letter + D/F + letter-or-digit + 4 digits
         large vehicle (yellow | green halves): province + letter + 5 digits + D/F
Letters never include I or O (they read as 1 and 0); at most two letters among the 5 alnum.
Character cells are 45x90 mm, 12 mm apart (9 mm on green plates), with a 34 mm gap holding a dot
between the 2nd and 3rd; glyphs are stretched to the cell height (plates use tall narrow faces).
Double-row rear plates are not drawn.

VIN (field "vin"): 17 characters from 0-9 and A-Z without I, O, Q. Position 9 is the check digit of
49 CFR 565 / GB 16735 (ISO 3779 itself makes it optional): letters transliterate A-H -> 1-8,
J-N -> 1-5, P -> 7, R -> 9, S-Z -> 2-9; weights 8 7 6 5 4 3 2 10 0 9 8 7 6 5 4 3 2 by position; the
check is sum mod 11, 10 written X. Position 10 (model year) avoids U, Z and 0. Looks: printed
nameplate or sticker with extra label lines (field "label"), stamped (recessed) metal, dot-peen.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

from . import augment, fonts, vocab
from .base import Line, compose, emboss, ink, paste_ink, rounded_alpha

DOMAIN = "plate"
OUT_SIZE = (384, 192)
VIN_OUT_SIZE = (512, 192)
DIGITS = "0123456789"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"               # A-Z without I, O
VIN_CHARS = DIGITS + "ABCDEFGHJKLMNPRSTUVWXYZ"          # A-Z without I, O, Q
VIN_YEAR_CHARS = "ABCDEFGHJKLMNPRSTVWXY123456789"
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
ALPHABETS = {"plate": vocab.PROVINCES + PLATE_LETTERS + DIGITS + vocab.PLATE_SPECIAL}
VIN_ALPHABETS = {"vin": VIN_CHARS}
STYLES = ("blue", "yellow", "white", "green_small", "green_large", "yellow_school")


# ---------------------------------------------------------------------------------------------------
# texts


def vin_value(c: str) -> int:
    if c.isdigit():
        return int(c)
    # A..H -> 1..8, J..N -> 1..5, P -> 7, R -> 9, S..Z -> 2..9 (I, O, Q never occur)
    return {**{ch: i + 1 for i, ch in enumerate("ABCDEFGH")}, **{ch: i + 1 for i, ch in enumerate("JKLMN")},
            "P": 7, "R": 9, **{ch: i + 2 for i, ch in enumerate("STUVWXYZ")}}[c]


def vin_check_char(vin17: str) -> str:
    """Check character for position 9 (the value at index 8 is ignored: its weight is 0)."""
    r = sum(vin_value(c) * w for c, w in zip(vin17, VIN_WEIGHTS)) % 11
    return "X" if r == 10 else str(r)


def vin_valid(vin: str) -> bool:
    return len(vin) == 17 and all(c in VIN_CHARS for c in vin) and vin[8] == vin_check_char(vin)


def make_vin(rng) -> str:
    def pick(chars, n):
        return "".join(chars[int(i)] for i in rng.integers(0, len(chars), n))
    wmi = str(rng.choice(vocab.VIN_WMIS))
    vds = pick(VIN_CHARS, 5)
    year = pick(VIN_YEAR_CHARS, 1)
    plant = pick(VIN_CHARS, 1)
    serial = (pick(VIN_CHARS, 1) if rng.random() < 0.3 else pick(DIGITS, 1)) + pick(DIGITS, 5)
    v = wmi + vds + "0" + year + plant + serial
    return v[:8] + vin_check_char(v) + v[9:]


def plate_text(rng, style: str) -> str:
    prov = vocab.PROVINCES[int(rng.integers(len(vocab.PROVINCES)))]
    city = PLATE_LETTERS[int(rng.integers(len(PLATE_LETTERS)))]

    def alnum(n, max_letters=2):
        out = []
        letters = 0
        for _ in range(n):
            if letters < max_letters and rng.random() < 0.22:
                out.append(PLATE_LETTERS[int(rng.integers(len(PLATE_LETTERS)))])
                letters += 1
            else:
                out.append(str(int(rng.integers(10))))
        return "".join(out)

    def digits(n):
        return "".join(str(int(d)) for d in rng.integers(0, 10, n))

    if style in ("blue", "yellow"):
        return prov + city + alnum(5)
    if style == "white":
        return prov + city + alnum(4, 1) + "警"
    if style == "yellow_school":
        return prov + city + alnum(4, 1) + "学"
    if style == "green_small":
        second = PLATE_LETTERS[int(rng.integers(len(PLATE_LETTERS)))] if rng.random() < 0.4 else digits(1)
        return prov + city + str(rng.choice(["D", "F"])) + second + digits(4)
    if style == "green_large":
        return prov + city + digits(5) + str(rng.choice(["D", "F"]))
    raise ValueError(style)


# ---------------------------------------------------------------------------------------------------
# plate drawing


@functools.lru_cache(maxsize=2048)
def _glyph(face, ch: str) -> Image.Image:
    return ink(ch, face, 160).mask


def cell_glyph(face, ch: str, cw: int, chh: int, squeeze: float) -> Image.Image:
    """Glyph scaled to the cell height chh; its width is the natural width at that height times
    `squeeze` (plate faces are condensed), at most the cell width cw, at least 2 px."""
    g = _glyph(face, ch)
    w = min(cw, max(2, int(round(g.width * chh / g.height * squeeze))))
    return g.resize((w, chh), Image.LANCZOS)


STYLE_COLORS = {  # background, characters, rim line
    "blue": ((10, 60, 190), (245, 245, 245), (240, 240, 240)),
    "yellow": ((250, 190, 20), (15, 15, 15), (15, 15, 15)),
    "yellow_school": ((250, 190, 20), (15, 15, 15), (15, 15, 15)),
    "white": ((245, 245, 245), (15, 15, 15), (15, 15, 15)),
    "green_small": ((60, 190, 90), (15, 15, 15), (40, 40, 40)),
    "green_large": ((60, 190, 90), (15, 15, 15), (40, 40, 40)),
}


def _plate_bg(rng, style, w, h, split_x) -> np.ndarray:
    bg, _, _ = STYLE_COLORS[style]
    bg = np.array(bg, np.float32) * rng.uniform(0.85, 1.1, 3).astype(np.float32)
    if style == "green_small":  # white at the top fading to green at the bottom
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None] ** rng.uniform(0.8, 1.6)
        arr = augment.blend2(np.repeat(t, w, 1), np.array([245, 250, 245]), bg)
    elif style == "green_large":  # yellow left block (province + city) and green right block
        arr = np.empty((h, w, 3), np.float32)
        arr[:, :split_x] = np.array([250, 195, 30]) * rng.uniform(0.9, 1.05)
        arr[:, split_x:] = bg
    else:
        arr = np.broadcast_to(bg, (h, w, 3)).copy()
    return np.clip(arr * (0.92 + 0.16 * augment.value_noise(rng, w, h, (2, 5), 2)[..., None]), 0, 255)


def render_plate(rng, style: str | None = None):
    style = style or str(rng.choice(STYLES, p=[0.45, 0.15, 0.05, 0.22, 0.08, 0.05]))
    text = plate_text(rng, style)
    green = style.startswith("green")
    s = rng.uniform(0.6, 0.95)                            # px per mm
    pw_mm, gap_mm = (480, 9) if green else (440, 12)
    cw, chh = int(45 * s), int(90 * s)
    gap, big = gap_mm * s, 34 * s
    n = len(text)
    total = n * cw + (n - 2) * gap + big
    w, h = int(pw_mm * s), int(140 * s)
    x = (w - total) / 2
    y0 = (h - chh) / 2
    bg_c, fg_c, rim_c = STYLE_COLORS[style]
    split_x = int(x + 2 * cw + gap + big / 2)
    img = Image.fromarray(_plate_bg(rng, style, w, h, split_x).astype(np.uint8))
    d = ImageDraw.Draw(img)
    rim_in = max(2, int(s * rng.uniform(3, 6)))
    d.rounded_rectangle([rim_in, rim_in, w - 1 - rim_in, h - 1 - rim_in], radius=int(8 * s),
                        outline=rim_c, width=max(1, int(2 * s)))
    # screws in the top margin above the 2nd and 6th characters
    for k in (1, n - 2):
        sx = x + k * (cw + gap) + (big - gap if k >= 2 else 0) + cw / 2
        r = max(2, 5 * s)
        d.ellipse([sx - r, rim_in + 2 * r - r, sx + r, rim_in + 2 * r + r], fill=(190, 190, 195),
                  outline=(90, 90, 90))
    zh_face = fonts.pick(rng, "cjk_sans")
    lat_face = fonts.pick(rng, str(rng.choice(["road", "sans_bold"])))
    squeeze = rng.uniform(0.75, 1.0)
    embossed = rng.random() < 0.4
    boxes = []
    for i, ch in enumerate(text):
        g = cell_glyph(zh_face if ord(ch) > 127 else lat_face, ch, cw, chh, squeeze if ord(ch) < 128 else 1.0)
        gx = x + (cw - g.width) / 2
        col = (220, 20, 20) if ch == "警" else fg_c
        if embossed:
            emboss(img, g, gx, y0, col, depth=max(1, int(s * 1.5)), strength=0.35)
        else:
            paste_ink(img, g, gx, y0, col)
        boxes.append((int(round(gx)), int(round(y0)), int(round(gx)) + g.width, int(round(y0)) + g.height))
        x += cw + (big if i == 1 else gap)
        if i == 1 and (not green or rng.random() < 0.5):  # separator dot centred in the big gap
            r, cx, cy = 5 * s, x - big / 2, h / 2
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg_c)
    x0 = min(b[0] for b in boxes)
    x1 = max(b[2] for b in boxes)
    q = augment.rect_quad(x0, min(b[1] for b in boxes), x1, max(b[3] for b in boxes))
    doc = rounded_alpha(img, 6 * s)
    frame = int(rng.integers(0, 3))  # 0 none, 1 dark plastic holder, 2 chrome holder
    if frame:
        fpad = max(2, int(s * rng.uniform(6, 14)))
        col = (25, 25, 25) if frame == 1 else (200, 200, 205)
        holder = Image.new("RGBA", (w + 2 * fpad, h + 2 * fpad), (0, 0, 0, 0))
        ImageDraw.Draw(holder).rounded_rectangle([0, 0, holder.width - 1, holder.height - 1],
                                                 radius=int(10 * s), fill=col + (255,))
        holder.alpha_composite(doc, (fpad, fpad))
        doc = holder
        q = q + fpad
    return doc, [Line(text, q, "plate", {"style": style})], {"style": style, "text": text}


def generate(rng, out_size=OUT_SIZE):
    doc, lines, meta = render_plate(rng)
    return compose(rng, doc, lines, out_size, DOMAIN, meta,
                   view={"fill": (0.35, 0.95), "max_tilt": 30, "max_roll": 8}, bg_photo_p=0.5,
                   effects={"glare_p": 0.25, "glare_amp": (30, 100)})


# ---------------------------------------------------------------------------------------------------
# VIN plates


def _dot_peen(mask: Image.Image, pitch: float, r: float) -> Image.Image:
    """Dot-matrix marking: a dot of radius r wherever the glyph mask covers a grid point (pitch px)."""
    a = np.asarray(mask) > 127
    out = Image.new("L", mask.size, 0)
    d = ImageDraw.Draw(out)
    for yy in np.arange(pitch / 2, mask.height, pitch):
        for xx in np.arange(pitch / 2, mask.width, pitch):
            if a[int(yy), int(xx)]:
                d.ellipse([xx - r, yy - r, xx + r, yy + r], fill=255)
    bb = out.getbbox()
    return out.crop(bb) if bb else out


def _label_lines(rng):
    def code(n_letters, lo, hi):
        return "".join(VIN_CHARS[int(i)] for i in rng.integers(10, len(VIN_CHARS), n_letters)) + \
            str(int(rng.integers(lo, hi)))

    year, month = int(rng.integers(2005, 2025)), int(rng.integers(1, 13))
    pool = [f"制造年月 {year}年{month:02d}月", f"发动机排量 {int(rng.integers(998, 3500))} mL",
            f"最大允许总质量 {int(rng.integers(1200, 2600))} kg", f"乘坐人数 {int(rng.integers(2, 8))}",
            f"发动机型号 {code(3, 10, 99)}", "制造国 中国", f"整车型号 {code(2, 1000, 9999)}"]
    idx = rng.choice(len(pool), size=int(rng.integers(1, 4)), replace=False)
    return [pool[int(i)] for i in idx]


def render_vin(rng):
    vin = make_vin(rng)
    look = str(rng.choice(["nameplate", "stamped", "dotpeen"], p=[0.45, 0.35, 0.2]))
    ch = rng.uniform(22, 34)                               # character height, px
    face = fonts.pick(rng, str(rng.choice(["ocra", "mono", "ocrb", "sans_bold"] if look != "dotpeen"
                                          else ["ocrb", "mono", "sans_bold"])))
    size = ch / (_glyph(face, "H").height / 160)
    spacing = ch * rng.uniform(0.0, 0.25)
    vm = ink(vin, face, size, spacing)
    mask = vm.mask
    if look == "dotpeen":
        mask = _dot_peen(mask, max(2.0, ch / rng.uniform(7, 10)), max(0.8, ch / rng.uniform(16, 22)))
    extra = _label_lines(rng) if look == "nameplate" else []
    zh = fonts.pick(rng, "cjk_sans")
    lab_masks = [ink(t, zh, ch * rng.uniform(0.55, 0.75)) for t in extra]
    title, title_text = None, ""
    if look == "nameplate" and rng.random() < 0.7:
        title_text = str(rng.choice(["车辆识别代号", "VIN", "车辆识别代号 VIN"]))
        title = ink(title_text, zh, ch * 0.7)
    margin = ch * rng.uniform(0.5, 1.2)
    row_gap = ch * rng.uniform(0.35, 0.6)
    content_w = max([mask.width + (title.width + ch * 0.5 if title else 0)] + [m.width for m in lab_masks])
    w = int(content_w + 2 * margin)
    h = int(mask.height + sum(m.height + row_gap for m in lab_masks) + 2 * margin)
    if look == "nameplate":
        base = np.array(rng.choice([[225, 225, 228], [240, 240, 235], [200, 200, 205], [245, 230, 180]]), np.float32)
        fg = np.array([20, 20, 25], np.float32)
    else:
        base = np.array(rng.choice([[150, 150, 155], [120, 115, 110], [90, 95, 100], [170, 165, 150]]), np.float32)
        fg = base * 0.45
    streak = np.asarray(Image.fromarray((rng.random((h, 6)) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                        np.float32)[..., None] / 255.0
    arr = base * (0.9 + 0.15 * streak) * (0.85 + 0.3 * augment.gradient(rng, w, h, [0] * 3, [1] * 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    lines = []
    y = margin
    order = rng.permutation(len(lab_masks) + 1)           # the VIN row's position among the rows
    rows = [("vin", None)] + [("label", (t, m)) for t, m in zip(extra, lab_masks)]
    for k in order:
        kind, payload = rows[int(k)]
        if kind == "vin":
            x = margin
            if title is not None:
                tq = paste_ink(img, title.mask, x, y + (mask.height - title.height) / 2, fg)
                lines.append(Line(title_text, tq, "label"))
                x += title.width + ch * 0.5
            if look == "nameplate":
                q = paste_ink(img, mask, x, y, fg)
            else:  # recessed: highlight below-right, shade above-left
                q = emboss(img, mask, x, y, fg, depth=max(1, int(ch / 14)), highlight=(20, 20, 20),
                           shade=(255, 255, 255), strength=0.5)
            lines.append(Line(vin, q, "vin", {"look": look, "check_ok": vin_valid(vin)}))
            y += mask.height + row_gap
        else:
            t, m = payload
            lines.append(Line(t, paste_ink(img, m.mask, margin, y, fg), "label"))
            y += m.height + row_gap
    return rounded_alpha(img, ch * 0.3), lines, {"look": look, "vin": vin}


def generate_vin(rng, out_size=VIN_OUT_SIZE):
    doc, lines, meta = render_vin(rng)
    return compose(rng, doc, lines, out_size, "vin", meta,
                   view={"fill": (0.6, 0.98), "max_tilt": 25, "max_roll": 6},
                   effects={"glare_p": 0.35, "glare_amp": (30, 110)})
