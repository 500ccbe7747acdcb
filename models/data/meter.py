"""Gas and water meter faces with odometer readings.

Kinds: round water-meter dials and rectangular gas-meter faces with mechanical number wheels (black
integer wheels, optional red fraction wheels), and electronic meters with a 7-segment LCD (DSEG7
fonts, unlit segments faintly visible as on real LCDs).

Reading line (field "reading"): text = every digit shown in the window, left to right, integer and
fraction digits alike (meta n_int / n_frac give the split; an LCD's decimal point is drawn but not
transcribed); 5-8 digits. Half-rolled wheels: on a mechanical counter the last wheel may be caught
between digit d and the next one (d + 1) mod 10, shifted by a fraction in [0.2, 0.8] of the digit
pitch; the ground truth is d (the value the wheel is leaving, so 9 -> 0 reads 9) and the line's meta
has rolled=True and roll=<fraction>. Other printed text on the face is labelled as field "label".
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

from . import augment, fonts
from .base import Line, compose, contrast_color, ink, paste_ink

DOMAIN = "meter"
OUT_SIZE = (384, 288)
ALPHABETS = {"reading": "0123456789"}
MECH_ROLES = ("sans_bold", "road", "ocrb", "sans", "mono")


@functools.lru_cache(maxsize=4096)
def _digit(face, size: int, d: str):
    return ink(d, face, size)


def _digit_size(face, gh: float, cell_w: float) -> int:
    """Font size whose digits are gh px tall and at most 0.85 cell_w wide."""
    m = _digit(face, 100, "0")
    k = min(gh / m.height, 0.85 * cell_w / m.width)
    return max(6, int(100 * k))


def reading_digits(rng) -> tuple[str, int, int]:
    total = int(rng.integers(5, 9))
    n_frac = int(rng.choice([0, 0, 1, 2, 3])) if total >= 6 else int(rng.choice([0, 1]))
    n_int = total - n_frac
    # meters are mostly young: leading zeros are common
    lead = int(rng.integers(0, n_int))
    digits = "0" * lead + "".join(str(d) for d in rng.integers(0, 10, total - lead))
    return digits, n_int, n_frac


def draw_wheels(rng, img: Image.Image, x0, y0, cell_w, cell_h, digits, n_int, rolled: float | None,
                face, frac_style) -> np.ndarray:
    """Number wheels side by side from (x0, y0); returns the quad of the whole window strip.

    Wheel i shows digit d_i centred, with its neighbours (d_i -/+ 1) one pitch above/below (clipped by
    the window); the last wheel is shifted up by `rolled` pitches when given. A cylinder's brightness
    falls off towards its top and bottom: shade(y) = 1 - 0.45 (2y/h - 1)^2."""
    gh = cell_h * rng.uniform(0.55, 0.75)
    size = _digit_size(face, gh, cell_w)
    pitch = gh * rng.uniform(1.25, 1.6)
    sep = max(1, int(cell_w * rng.uniform(0.04, 0.2)))
    black_bg = np.array(rng.choice([[20, 20, 20], [35, 30, 30], [240, 240, 235], [15, 25, 40]]), np.float32)
    black_fg = contrast_color(rng, black_bg, 150) if rng.random() < 0.2 else \
        (np.array([245, 245, 245], np.float32) if augment.luminance(black_bg) < 128 else np.zeros(3, np.float32))
    red_bg, red_fg = {"red_bg": ([200, 25, 25], [250, 250, 250]), "red_fg": ([240, 240, 235], [210, 20, 20]),
                      "black": ([20, 20, 20], [225, 40, 40])}[frac_style]
    yy = np.linspace(-1, 1, int(cell_h))[:, None]
    shade = (1 - 0.45 * yy ** 2)[..., None].astype(np.float32)
    x = x0
    for i, ch in enumerate(digits):
        frac = i >= n_int
        bg = np.array(red_bg if frac else black_bg, np.float32)
        fg = np.array(red_fg if frac else black_fg, np.float32)
        cell = Image.new("RGB", (int(cell_w), int(cell_h)), tuple(int(v) for v in bg))
        d = int(ch)
        off = (rolled if (rolled is not None and i == len(digits) - 1) else rng.uniform(-0.05, 0.05)) * pitch
        for k in (-1, 0, 1, 2):
            m = _digit(face, size, str((d + k) % 10))
            cy = cell_h / 2 + k * pitch - off
            paste_ink(cell, m.mask, (cell_w - m.width) / 2, cy - m.height / 2, fg)
        arr = np.asarray(cell, np.float32) * shade
        img.paste(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), (int(x), int(y0)))
        x += int(cell_w) + sep
    x1 = x - sep
    return augment.rect_quad(int(x0), int(y0), int(x1), int(y0 + int(cell_h)))


def _labels(rng, img: Image.Image, boxes, avoid, lines, texts, scale):
    """Print short label texts at free spots (not overlapping `avoid` boxes)."""
    d_w, d_h = img.size
    for t in texts:
        face = fonts.pick(rng, str(rng.choice(["sans", "sans_bold", "serif"])))
        m = ink(t, face, scale * rng.uniform(0.8, 1.2))
        for _ in range(20):
            bx0, by0, bx1, by1 = boxes
            x = rng.uniform(bx0, max(bx0 + 1, bx1 - m.width))
            y = rng.uniform(by0, max(by0 + 1, by1 - m.height))
            r = (x - 3, y - 3, x + m.width + 3, y + m.height + 3)
            if x + m.width > bx1 or y + m.height > by1:
                continue
            if all(r[2] < a[0] or r[0] > a[2] or r[3] < a[1] or r[1] > a[3] for a in avoid):
                under = np.asarray(img.crop(tuple(int(v) for v in r)), np.float32).reshape(-1, 3).mean(0)
                q = paste_ink(img, m.mask, x, y, contrast_color(rng, under, 100))
                lines.append(Line(t, q, "label"))
                avoid.append(r)
                break


def _model_texts(rng, kind):
    if kind == "gas":
        pool = [f"G{rng.choice(['1.6', '2.5', '4', '6'])}", f"Qmax {rng.choice(['2.5', '4', '6', '10'])} m3/h",
                f"Pmax {rng.choice(['10', '50'])} kPa", f"No. {int(rng.integers(10**6, 10**8))}", "GAS METER",
                f"V {rng.choice(['1.2', '2.0'])} dm3"]
    elif kind == "water":
        pool = [f"LXS-{rng.choice(['15', '20', '25'])}{rng.choice(['E', 'C', 'F'])}",
                f"DN{rng.choice(['15', '20', '25'])}", f"Q3={rng.choice(['2.5', '4.0'])}", "R160", "CLASS B",
                f"No.{int(rng.integers(10**6, 10**8))}", "WATER METER"]
    else:
        pool = ["SMART METER", f"ID {int(rng.integers(10**7, 10**9))}", "PREPAID", "IC CARD",
                f"Qn {rng.choice(['1.5', '2.5'])}", "VALVE"]
    k = int(rng.integers(1, 4))
    idx = rng.choice(len(pool), size=k, replace=False)
    return [pool[int(i)] for i in idx]


def render_mechanical(rng, kind: str):
    digits, n_int, n_frac = reading_digits(rng)
    rolled = float(rng.uniform(0.2, 0.8)) if rng.random() < 0.35 else None
    face = fonts.pick(rng, str(rng.choice(MECH_ROLES)))
    frac_style = str(rng.choice(["red_bg", "red_fg", "black"]))
    cell_w = rng.uniform(22, 34)
    cell_h = cell_w * rng.uniform(1.25, 1.7)
    sep_room = cell_w * 0.2
    strip_w = len(digits) * (cell_w + sep_room)
    if kind == "water":
        dia = int(max(strip_w / rng.uniform(0.5, 0.7), 260))
        w = h = dia
        img = Image.new("RGB", (w, h), (0, 0, 0))
        d = ImageDraw.Draw(img)
        rim = tuple(int(v) for v in rng.choice([[40, 40, 45], [170, 130, 60], [20, 60, 140], [200, 200, 205]]))
        face_c = tuple(int(v) for v in rng.choice([[245, 245, 240], [230, 238, 250], [250, 245, 225], [30, 30, 35]]))
        d.ellipse([0, 0, w - 1, h - 1], fill=rim)
        rr = int(dia * rng.uniform(0.04, 0.08))
        d.ellipse([rr, rr, w - 1 - rr, h - 1 - rr], fill=face_c)
        x0 = (w - strip_w) / 2
        y0 = h * rng.uniform(0.28, 0.36)
        area = (rr * 2.2, rr * 2, w - rr * 2.2, h - rr * 2)
    else:  # gas: rectangular plate
        w = int(strip_w / rng.uniform(0.5, 0.75))
        h = int(w * rng.uniform(0.55, 0.8))
        base = np.array(rng.choice([[225, 220, 205], [200, 200, 200], [235, 235, 235], [190, 170, 120]]), np.float32)
        arr = augment.gradient(rng, w, h, base * 1.05, base * 0.85)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        x0 = (w - strip_w) / 2 + rng.uniform(-0.1, 0.1) * w * 0.3
        y0 = h * rng.uniform(0.2, 0.45)
        area = (w * 0.04, h * 0.05, w * 0.96, h * 0.95)
    # window frame: dark bezel a few px around the wheels
    bez = int(cell_w * rng.uniform(0.15, 0.4))
    frame_c = tuple(int(v) for v in rng.choice([[15, 15, 15], [60, 60, 60], [120, 120, 125]]))
    d.rectangle([x0 - bez, y0 - bez, x0 + strip_w + bez, y0 + cell_h + bez], fill=frame_c)
    q = draw_wheels(rng, img, x0, y0, cell_w, cell_h, digits, n_int, rolled, face, frac_style)
    lines = [Line(digits, q, "reading", {"n_int": n_int, "n_frac": n_frac, "rolled": rolled is not None,
                                         "roll": rolled or 0.0, "kind": kind})]
    avoid = [(x0 - bez - 2, y0 - bez - 2, x0 + strip_w + bez + 2, y0 + cell_h + bez + 2)]
    if kind == "water":  # small sub-dials with red pointers (no numerals) and a star wheel
        for k in range(int(rng.integers(0, 4))):
            r = w * rng.uniform(0.06, 0.09)
            cx = w / 2 + (k - 1.5) * 2.4 * r
            cy = h * rng.uniform(0.62, 0.7)
            box = (cx - r, cy - r, cx + r, cy + r)
            d.ellipse(box, outline=(40, 40, 40), width=1)
            for t in np.linspace(0, 2 * np.pi, 10, endpoint=False):
                d.line([cx + 0.8 * r * np.cos(t), cy + 0.8 * r * np.sin(t), cx + r * np.cos(t), cy + r * np.sin(t)],
                       fill=(40, 40, 40))
            a = rng.uniform(0, 2 * np.pi)
            d.line([cx, cy, cx + 0.85 * r * np.cos(a), cy + 0.85 * r * np.sin(a)], fill=(220, 30, 30), width=2)
            avoid.append(box)
    unit_face = fonts.pick(rng, "sans_bold")
    unit_text = "m³" if fonts.has_glyphs(unit_face, "³")[0] else "m3"
    um = ink(unit_text, unit_face, cell_h * 0.5)
    ux, uy = x0 + strip_w + bez + cell_w * 0.3, y0 + cell_h / 2 - um.height / 2
    if ux + um.width < w - 4:
        under = np.asarray(img.crop((int(ux), int(uy), int(ux + um.width) + 1, int(uy + um.height) + 1)),
                           np.float32).reshape(-1, 3).mean(0)
        uq = paste_ink(img, um.mask, ux, uy, contrast_color(rng, under, 100))
        lines.append(Line(unit_text, uq, "label"))
        avoid.append((ux - 2, uy - 2, ux + um.width + 2, uy + um.height + 2))
    _labels(rng, img, area, avoid, lines, _model_texts(rng, kind), cell_h * 0.38)
    doc = img.convert("RGBA")
    if kind == "water":
        a = Image.new("L", img.size, 0)
        ImageDraw.Draw(a).ellipse([0, 0, w - 1, h - 1], fill=255)
        doc.putalpha(a)
    return doc, lines, {"kind": kind, "digits": digits, "rolled": rolled is not None}


def render_lcd(rng):
    digits, n_int, n_frac = reading_digits(rng)
    face = fonts.pick(rng, "seg7")
    gh = rng.uniform(28, 44)
    size = int(gh / (_digit(face, 100, "8").height / 100))
    f = fonts.font(face, size)
    show = digits[:n_int] + ("." + digits[n_int:] if n_frac else "")
    ghost = "8" * n_int + ("." + "8" * n_frac if n_frac else "")
    tw = f.getlength(ghost)
    pw, ph = int(tw + gh * rng.uniform(0.6, 1.4)), int(gh * rng.uniform(1.5, 2.0))
    w, h = int(pw / rng.uniform(0.45, 0.7)), int(ph / rng.uniform(0.3, 0.45))
    body = np.array(rng.choice([[235, 235, 230], [200, 205, 210], [60, 60, 65], [215, 225, 240]]), np.float32)
    img = Image.fromarray(np.clip(augment.gradient(rng, w, h, body * 1.05, body * 0.85), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    px, py = int((w - pw) / 2), int(h * rng.uniform(0.15, 0.35))
    lcd = np.array(rng.choice([[175, 190, 165], [190, 195, 185], [160, 175, 150], [120, 170, 200]]), np.float32)
    d.rectangle([px - 4, py - 4, px + pw + 4, py + ph + 4], fill=(40, 40, 40))
    panel = augment.gradient(rng, pw, ph, lcd * 1.05, lcd * 0.9)
    img.paste(Image.fromarray(np.clip(panel, 0, 255).astype(np.uint8)), (px, py))
    ink_c = np.array([25, 30, 25], np.float32) * rng.uniform(0.5, 2.0)
    tx, by = px + (pw - tw) / 2, py + ph / 2 + gh / 2
    layer = Image.new("L", img.size, 0)
    ImageDraw.Draw(layer).text((tx, by), ghost, font=f, fill=255, anchor="ls")
    box = layer.getbbox()
    img.paste(tuple(int(v) for v in ink_c), (0, 0), layer.point(lambda v: int(v * rng.uniform(0.06, 0.16))))
    layer2 = Image.new("L", img.size, 0)
    ImageDraw.Draw(layer2).text((tx, by), show, font=f, fill=255, anchor="ls")
    img.paste(tuple(int(v) for v in ink_c), (0, 0), layer2)
    q = augment.rect_quad(*box)
    lines = [Line(digits, q, "reading", {"n_int": n_int, "n_frac": n_frac, "rolled": False, "roll": 0.0,
                                         "kind": "lcd"})]
    avoid = [(px - 6, py - 6, px + pw + 6, py + ph + 6)]
    _labels(rng, img, (w * 0.04, h * 0.04, w * 0.96, h * 0.96), avoid, lines, _model_texts(rng, "lcd"),
            gh * 0.35)
    return img.convert("RGBA"), lines, {"kind": "lcd", "digits": digits, "rolled": False}


def _dirt(rng, doc: Image.Image) -> Image.Image:
    """Dirty cover glass: brownish blotches where smooth noise exceeds a threshold (alpha <= 0.35)."""
    w, h = doc.size
    n = augment.value_noise(rng, w, h, (2, 6), 3)
    t = rng.uniform(0.5, 0.7)
    a = np.clip((n - t) / (1 - t), 0, 1) * rng.uniform(0.15, 0.35)
    col = np.array([110, 90, 60], np.float32) * rng.uniform(0.7, 1.3)
    rgb = np.asarray(doc.convert("RGB"), np.float32)
    rgb = rgb * (1 - a[..., None]) + col * a[..., None]
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).convert("RGBA")
    out.putalpha(doc.getchannel("A"))
    return out


def generate(rng, out_size=OUT_SIZE):
    kind = str(rng.choice(["water", "gas", "lcd"], p=[0.4, 0.35, 0.25]))
    doc, lines, meta = render_lcd(rng) if kind == "lcd" else render_mechanical(rng, kind)
    if rng.random() < 0.4:
        doc = _dirt(rng, doc)
    return compose(rng, doc, lines, out_size, DOMAIN, meta, view={"fill": (0.65, 1.0), "max_tilt": 25},
                   effects={"glare_p": 0.4, "glare_amp": (30, 110)})
