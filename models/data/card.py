"""Bank card fronts (ISO/IEC 7810 ID-1, 85.60 x 53.98 mm) with Luhn-valid numbers.

Issuer rules drawn here (prefix, length, printed grouping):
  Visa        4                      16      4-4-4-4
  Mastercard  51-55 or 2221-2720     16      4-4-4-4
  UnionPay    62                     16-19   4-4-4-4 (16); 6-rest or 4-4-4-4-rest (17-19)
  Amex        34, 37                 15      4-6-5
The last digit is the Luhn check digit (ISO/IEC 7812-1). Geometry follows ISO/IEC 7811 loosely: the
embossed number's baseline 21.42 mm above the bottom edge, name and expiry below it, the chip's
contacts ~10 x 19 mm from the top-left corner; a "compact" layout with a smaller printed number
lower on the card stands for modern flat designs.

Lines (field): number ("4512 3456 7890 1234", one space between groups), expiry ("MM/YY"),
name (Latin capitals), bank, brand, label (VALID THRU, tier), bin (small first-4 digits).
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from xnn.ocr.rules import group_digits

from . import augment, fonts, vocab
from .base import Line, compose, contrast_color, emboss, ink, paste_ink, rounded_alpha

DOMAIN = "card"
OUT_SIZE = (512, 320)
CARD_MM = (85.60, 53.98)
DIGITS = "0123456789"
ALPHABETS = {
    "number": DIGITS + " ",
    "expiry": DIGITS + "/",
    "bin": DIGITS,
    "name": "ABCDEFGHIJKLMNOPQRSTUVWXYZ .",
}
ISSUERS = ("visa", "mastercard", "unionpay", "amex")


# ---------------------------------------------------------------------------------------------------
# numbers


def luhn_check_digit(payload: str) -> str:
    """Check digit c such that payload + c passes Luhn: from the right of the full number every second
    digit (so the payload's last digit first) is doubled, 2d - 9 if 2d > 9; c = (10 - sum mod 10) mod 10."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d = 2 * d
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return len(number) > 1 and number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def issuer_prefix(rng, issuer: str) -> tuple[str, int]:
    if issuer == "visa":
        return "4", 16
    if issuer == "mastercard":
        if rng.random() < 0.7:
            return str(int(rng.integers(51, 56))), 16
        return str(int(rng.integers(2221, 2721))), 16
    if issuer == "unionpay":
        return "62", int(rng.choice([16, 16, 16, 17, 18, 19, 19]))
    if issuer == "amex":
        return str(rng.choice(["34", "37"])), 15
    raise ValueError(issuer)


def groups_for(rng, issuer: str, n: int) -> tuple[int, ...]:
    if issuer == "amex":
        return (4, 6, 5)
    if n == 16:
        return (4, 4, 4, 4)
    return (6, n - 6) if rng.random() < 0.5 else (4, 4, 4, 4, n - 16)


def card_number(rng, issuer: str) -> tuple[str, tuple[int, ...]]:
    prefix, n = issuer_prefix(rng, issuer)
    body = prefix + "".join(str(d) for d in rng.integers(0, 10, n - 1 - len(prefix)))
    return body + luhn_check_digit(body), groups_for(rng, issuer, n)


def group(number: str, groups) -> str:
    return group_digits(number, groups)


def holder_name(rng) -> str:
    if rng.random() < 0.6:
        sur = str(rng.choice(vocab.PINYIN_SURNAMES))
        given = "".join(str(rng.choice(vocab.PINYIN_GIVEN)) for _ in range(int(rng.integers(1, 3))))
        return f"{sur} {given}" if rng.random() < 0.5 else f"{given} {sur}"
    first, last = str(rng.choice(vocab.WESTERN_FIRST)), str(rng.choice(vocab.WESTERN_LAST))
    if rng.random() < 0.3:
        return f"{first} {chr(65 + int(rng.integers(26)))} {last}"
    return f"{first} {last}"


# ---------------------------------------------------------------------------------------------------
# card face


@functools.lru_cache(maxsize=256)
def digit_height_ratio(face) -> float:
    """Ink height of the digits per unit font size (cap-height ratio of the face)."""
    return ink("0123456789", face, 100).mask.height / 100.0


def _overlay(rng, w, h) -> Image.Image:
    """Translucent decoration: guilloche curves, waves, concentric circles or polygons."""
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    kind = int(rng.integers(4))
    col = augment.rand_color(rng)
    alpha = int(rng.integers(40, 140))
    c = tuple(int(v) for v in col) + (alpha,)
    if kind == 0:  # guilloche: r(t) = R + a sin(k t) around a centre, several phase-shifted copies
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        big_r, a, k = rng.uniform(0.2, 0.8) * w, rng.uniform(0.03, 0.15) * w, int(rng.integers(8, 40))
        t = np.linspace(0, 2 * np.pi, 720)
        for ph in np.linspace(0, 2 * np.pi / k, int(rng.integers(3, 10)), endpoint=False):
            r = big_r + a * np.sin(k * t + ph)
            d.line(list(zip(cx + r * np.cos(t), cy + r * np.sin(t))), fill=c, width=1)
    elif kind == 1:  # waves
        x = np.linspace(0, w, 200)
        amp, fr = rng.uniform(0.02, 0.2) * h, rng.uniform(1, 6) * 2 * np.pi / w
        for y0 in np.linspace(-0.2 * h, 1.2 * h, int(rng.integers(5, 40))):
            ph = rng.uniform(0, 0.6)
            d.line(list(zip(x, y0 + amp * np.sin(fr * x + ph))), fill=c, width=int(rng.integers(1, 4)))
    elif kind == 2:  # concentric circles
        cx, cy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
        step = rng.uniform(3, 25)
        for r in np.arange(step, 1.5 * w, step):
            d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=c, width=1)
    else:  # translucent polygons
        for _ in range(int(rng.integers(3, 9))):
            pts = [(rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h) for _ in range(3)]
            cc = tuple(int(v) for v in augment.rand_color(rng)) + (int(rng.integers(30, 110)),)
            d.polygon(pts, fill=cc)
    return layer


def card_face(rng, w, h) -> Image.Image:
    kind = int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15]))
    if kind == 0:
        base = augment.gradient(rng, w, h)
    elif kind == 1:
        photo = augment.photo_crop(rng, w, h)
        g = augment.gradient(rng, w, h)
        base = g if photo is None else photo * (k := rng.uniform(0.4, 1.0)) + g * (1 - k)
    elif kind == 2:  # brushed metal: horizontal streak noise over a metallic tone
        tone = np.array(rng.choice([[200, 200, 205], [212, 175, 55], [40, 40, 45], [180, 150, 120]]), np.float32)
        streak = np.asarray(Image.fromarray((rng.random((h, 8)) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                            np.float32) / 255.0
        base = tone * (0.85 + 0.3 * streak[..., None]) * (0.8 + 0.4 * augment.gradient(rng, w, h, [0] * 3, [1] * 3))
    else:
        base = augment.texture(rng, w, h)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).convert("RGBA")
    for _ in range(int(rng.integers(0, 3))):
        im = Image.alpha_composite(im, _overlay(rng, w, h))
    return im.convert("RGB")


def draw_chip(rng, img: Image.Image, x, y, w, h):
    d = ImageDraw.Draw(img)
    gold = np.array(rng.choice([[212, 175, 90], [200, 200, 200], [230, 190, 110]]), np.float32)
    gold = gold * rng.uniform(0.85, 1.1)
    g = tuple(int(min(255, v)) for v in gold)
    dark = tuple(int(v * 0.6) for v in gold)
    d.rounded_rectangle([x, y, x + w, y + h], radius=h * 0.15, fill=g, outline=dark, width=max(1, int(h / 25)))
    lw = max(1, int(h / 30))
    d.line([x + w * 0.33, y, x + w * 0.33, y + h], fill=dark, width=lw)
    d.line([x + w * 0.67, y, x + w * 0.67, y + h], fill=dark, width=lw)
    for fy in (0.33, 0.67):
        d.line([x, y + h * fy, x + w * 0.33, y + h * fy], fill=dark, width=lw)
        d.line([x + w * 0.67, y + h * fy, x + w, y + h * fy], fill=dark, width=lw)
    d.rounded_rectangle([x + w * 0.33, y + h * 0.25, x + w * 0.67, y + h * 0.75], radius=h * 0.08,
                        outline=dark, width=lw)


def draw_contactless(img: Image.Image, x, y, size, color):
    d = ImageDraw.Draw(img)
    for k in range(1, 5):
        r = size * k / 4
        d.arc([x - r, y - r, x + r, y + r], -45, 45, fill=tuple(int(c) for c in color), width=max(1, int(size / 10)))


def draw_brand(rng, img: Image.Image, issuer: str, x1, y1, s) -> tuple[list[Line], tuple]:
    """Issuer mark ending at (x1, y1) (its bottom-right), s = px per mm. Wordmarks become lines.
    Returns the lines and the mark's bounding box (x0, y0, x1, y1)."""
    d = ImageDraw.Draw(img)
    lines = []
    box = (x1, y1, x1, y1)
    if issuer == "mastercard":
        r = s * rng.uniform(4.0, 5.5)
        cx, cy = x1 - 3.2 * r, y1 - r
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(235, 0, 27))
        d.ellipse([cx + 0.9 * r, cy - r, cx + 2.9 * r, cy + r], fill=(247, 158, 27))
        lens = Image.new("L", img.size, 0)
        ImageDraw.Draw(lens).ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        m2 = Image.new("L", img.size, 0)
        ImageDraw.Draw(m2).ellipse([cx + 0.9 * r, cy - r, cx + 2.9 * r, cy + r], fill=255)
        from PIL import ImageChops
        img.paste((255, 95, 0), (0, 0), ImageChops.multiply(lens, m2))
        box = (cx - r, cy - r, cx + 2.9 * r, cy + r)
    elif issuer == "unionpay":
        ww, hh = s * rng.uniform(14, 18), s * rng.uniform(9, 11)
        x0, y0 = x1 - ww, y1 - hh
        sk = hh * 0.25
        for i, col in enumerate([(221, 0, 40), (0, 70, 150), (0, 130, 130)]):
            bx = x0 + i * ww * 0.3
            d.polygon([(bx + sk, y0), (bx + ww * 0.4 + sk, y0), (bx + ww * 0.4 - sk, y1), (bx - sk, y1)], fill=col)
        box = (x0 - sk, y0, x1 + sk, y1)
    elif issuer == "visa":
        face = fonts.pick(rng, "italic_bold")
        m = ink("VISA", face, 10 * s)
        m = ink("VISA", face, 10 * s * rng.uniform(15, 21) * s / m.mask.width)
        col = (255, 255, 255) if rng.random() < 0.5 else (26, 31, 113)
        lines.append(Line("VISA", paste_ink(img, m.mask, x1 - m.mask.width, y1 - m.mask.height, col), "brand"))
        box = (x1 - m.mask.width, y1 - m.mask.height, x1, y1)
    elif issuer == "amex":  # blue square with the two-word mark stacked
        face = fonts.pick(rng, "sans_bold")
        side = rng.uniform(13, 16) * s
        d.rectangle([x1 - side, y1 - side, x1, y1], fill=(0, 111, 207))
        for k, word in enumerate(("AMERICAN", "EXPRESS")):
            m = ink(word, face, 10 * s)
            m = ink(word, face, 10 * s * 0.84 * side / m.mask.width)
            yy = y1 - side / 2 - m.mask.height - 0.05 * side if k == 0 else y1 - side / 2 + 0.05 * side
            q = paste_ink(img, m.mask, x1 - side + 0.08 * side, yy, (255, 255, 255))
            lines.append(Line(word, q, "brand"))
        box = (x1 - side, y1 - side, x1, y1)
    return lines, box


def region_mean(img: Image.Image, box) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    a = np.asarray(img.crop((max(0, x0), max(0, y0), max(x0 + 1, x1), max(y0 + 1, y1))), np.float32)
    return a.reshape(-1, 3).mean(0)


def render_card(rng, issuer: str | None = None) -> tuple[Image.Image, list[Line], dict]:
    s = rng.uniform(5.0, 7.0)                                  # px per mm
    w, h = int(CARD_MM[0] * s), int(CARD_MM[1] * s)
    issuer = issuer or str(rng.choice(ISSUERS, p=[0.3, 0.25, 0.35, 0.1]))
    number, groups = card_number(rng, issuer)
    style = str(rng.choice(["embossed", "printed", "ocrb"], p=[0.4, 0.3, 0.3]))
    layout = "compact" if style != "embossed" and rng.random() < 0.35 else "classic"
    img = card_face(rng, w, h)
    lines: list[Line] = []

    # bank name (top-left) and optional tier (top-right)
    bank_zh = rng.random() < 0.5
    bank = str(rng.choice(vocab.CARD_BANKS_ZH if bank_zh else vocab.CARD_BANKS_EN))
    bface = fonts.pick(rng, "cjk_sans" if bank_zh else "sans_bold")
    bm = ink(bank, bface, rng.uniform(3.0, 4.5) * s)
    bx, by = rng.uniform(4, 8) * s, rng.uniform(3.5, 6.5) * s
    bcol = contrast_color(rng, region_mean(img, (bx, by, bx + bm.width, by + bm.height)))
    if rng.random() < 0.6:  # a simple logo disc/square before the name
        r = bm.height * 0.6
        shape = [bx, by + bm.height / 2 - r, bx + 2 * r, by + bm.height / 2 + r]
        col = tuple(int(c) for c in bcol)
        ImageDraw.Draw(img).ellipse(shape, fill=col) if rng.random() < 0.5 else \
            ImageDraw.Draw(img).rectangle(shape, outline=col, width=max(1, int(r / 4)))
        bx += 2.6 * r
    lines.append(Line(bank, paste_ink(img, bm.mask, bx, by, bcol), "bank"))
    if rng.random() < 0.4:
        tier = str(rng.choice(vocab.CARD_TIERS))
        tm = ink(tier, fonts.pick(rng, "sans"), rng.uniform(2.0, 2.8) * s / 0.72)
        tx, ty = w - tm.width - rng.uniform(4, 7) * s, rng.uniform(4, 7) * s
        tcol = contrast_color(rng, region_mean(img, (tx, ty, tx + tm.width, ty + tm.height)))
        lines.append(Line(tier, paste_ink(img, tm.mask, tx, ty, tcol), "label"))

    # chip and contactless mark
    if rng.random() < 0.9:
        cx, cy = rng.uniform(9, 12) * s, rng.uniform(16.5, 20) * s
        draw_chip(rng, img, cx, cy, rng.uniform(10, 12) * s, rng.uniform(8, 9.5) * s)
        if rng.random() < 0.5:
            under = region_mean(img, (cx, cy, cx + 20 * s, cy + 9 * s))
            draw_contactless(img, cx + 16 * s, cy + 4.5 * s, 4 * s, contrast_color(rng, under, 60))

    lines_brand, brand_box = draw_brand(rng, img, issuer, w - rng.uniform(4, 6.5) * s,
                                        h - rng.uniform(3.5, 5.5) * s, s)
    lines += lines_brand

    def right_limit(y0, y1):
        """Rightmost x for text spanning rows y0..y1: 4 mm from the edge, or 1.5 mm before the mark."""
        if y1 < brand_box[1] - s or y0 > brand_box[3] + s:
            return w - 4 * s
        return brand_box[0] - 1.5 * s

    # number
    face = fonts.pick(rng, {"embossed": "ocrb", "printed": "mono", "ocrb": "ocrb"}[style])
    if style == "embossed" and rng.random() < 0.3:
        face = fonts.pick(rng, "ocra")
    dh = (rng.uniform(4.0, 4.7) if layout == "classic" else rng.uniform(3.0, 4.0)) * s
    size = dh / digit_height_ratio(face)
    f = fonts.font(face, round(size))
    pitch = dh * rng.uniform(0.78, 1.0)
    tracking = pitch - f.getlength("0")
    text = group(number, groups)
    gap = pitch * rng.uniform(-0.2, 0.6)                  # one extra group gap per card
    gaps = {i: gap for i, c in enumerate(text) if c == " "}
    nm = ink(text, face, size, tracking, gaps)
    baseline = (CARD_MM[1] - 21.42 + rng.uniform(-1.5, 1.5)) * s if layout == "classic" else \
        rng.uniform(34, 39) * s
    x_min = (4 if layout == "compact" else 6.5) * s
    x_max = right_limit(baseline - 1.3 * dh, baseline + 0.3 * dh)
    if nm.mask.width > x_max - x_min:                     # long numbers: shrink to fit
        k = (x_max - x_min) / nm.mask.width
        nm = ink(text, face, size * k, tracking * k, {i: g * k for i, g in gaps.items()})
    hi = x_max - nm.mask.width if layout == "compact" else min(12 * s, x_max - nm.mask.width)
    nx = rng.uniform(x_min, max(x_min, hi))
    ny = baseline - nm.baseline
    under = region_mean(img, (nx, ny, nx + nm.mask.width, ny + nm.mask.height))
    if style == "embossed":
        tipped = rng.random() < 0.75
        colr = np.array(rng.choice([[222, 190, 90], [215, 215, 220], [250, 250, 250], [20, 20, 20]]),
                        np.float32) if tipped else np.clip(under * rng.uniform(1.05, 1.3), 0, 255)
        if tipped and abs(augment.luminance(colr) - augment.luminance(under)) < 60:
            colr = contrast_color(rng, under, 80)
        depth = max(1, int(round(s / 4)))
        emb = dict(depth=depth, strength=0.55 if tipped else 0.85)
        q = emboss(img, nm.mask, nx, ny, colr, **emb)
    else:
        colr = contrast_color(rng, under, 90)
        emb = None
        if rng.random() < 0.25:  # drop shadow
            paste_ink(img, nm.mask, nx + max(1, s / 5), ny + max(1, s / 5), (0, 0, 0), 0.5)
        q = paste_ink(img, nm.mask, nx, ny, colr)
    lines.append(Line(text, q, "number", {"digits": number, "issuer": issuer, "groups": list(groups),
                                           "style": style, "luhn": luhn_valid(number)}))

    def put(txt, fld, x, y, hmm, fface=None):
        fface = fface or face
        m = ink(txt, fface, hmm * s / digit_height_ratio(fface))
        lim = right_limit(y, y + m.mask.height)
        if x + m.mask.width > lim:                        # shrink to stay clear of the mark / edge
            m = ink(txt, fface, hmm * s / digit_height_ratio(fface) * (lim - x) / m.mask.width)
        if emb is not None:
            qq = emboss(img, m.mask, x, y, colr, **emb)
        else:
            qq = paste_ink(img, m.mask, x, y, colr if fld != "label" else contrast_color(
                rng, region_mean(img, (x, y, x + m.mask.width, y + m.mask.height)), 70))
        lines.append(Line(txt, qq, fld))
        return m

    # small BIN digits under the first group
    if rng.random() < 0.3 and layout == "classic":
        put(number[:4], "bin", nx, q[2, 1] + 0.8 * s, rng.uniform(1.6, 2.0), fonts.pick(rng, "sans"))

    # expiry, its label, holder name
    exp = f"{int(rng.integers(1, 13)):02d}/{int(rng.integers(24, 36)):02d}"
    ey = q[2, 1] + rng.uniform(2.5, 4.0) * s if layout == "classic" else q[2, 1] + rng.uniform(2.0, 3.0) * s
    eh = rng.uniform(2.6, 3.4)
    ex = (rng.uniform(32, 44) if layout == "classic" else rng.uniform(40, 47)) * s
    if rng.random() < 0.6:
        lab = str(rng.choice(["VALID THRU", "GOOD THRU", "VALID FROM", "EXPIRES END", "MONTH/YEAR"]))
        lm = ink(lab, fonts.pick(rng, "sans"), rng.uniform(1.2, 1.6) * s / 0.72)
        lx = ex - lm.mask.width - 1.5 * s
        lcol = contrast_color(rng, region_mean(img, (lx, ey, ex, ey + lm.mask.height)), 70)
        lines.append(Line(lab, paste_ink(img, lm.mask, lx, ey + eh * s * 0.2, lcol), "label"))
    put(exp, "expiry", ex, ey, eh)
    name = holder_name(rng)
    if layout == "classic":
        name_x, name_y = nx, rng.uniform(45, 47.5) * s
    else:  # compact: the row under the expiry
        name_x, name_y = rng.uniform(4, 8) * s, ey + (eh + rng.uniform(2.0, 2.8)) * s
    put(name, "name", name_x, name_y, rng.uniform(2.4, 3.2))
    if rng.random() < 0.3:  # printed gloss/wear: slight softening of the whole face
        img = img.filter(ImageFilter.GaussianBlur(0.4))
    return rounded_alpha(img, 3.18 * s), lines, {"issuer": issuer, "number": number, "style": style,
                                                 "layout": layout, "expiry": exp, "name": name}


def generate(rng, out_size=OUT_SIZE):
    doc, lines, meta = render_card(rng)
    return compose(rng, doc, lines, out_size, DOMAIN, meta, view={"fill": (0.6, 0.95), "max_tilt": 25},
                   effects={"glare_p": 0.35, "glare_amp": (30, 110)})
