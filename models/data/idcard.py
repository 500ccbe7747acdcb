"""Chinese resident identity card, portrait side (ID-1 size, 85.6 x 54 mm).

Fields (Line.field): name, sex (男/女), ethnicity, birth ("1990年1月5日": numbers unpadded, 年/月/日
printed in the label colour), address (one Line per printed row, at most 12-13 characters each),
id_number, label (the printed captions 姓名 性别 民族 出生 住址 公民身份号码).

The 18-character number (GB 11643) is consistent with the other fields:
  1-6   county-level region code of the address (vocab.REGIONS, a sample of real GB/T 2260 codes)
  7-14  birth date YYYYMMDD
  15-17 sequence code; the 17th digit is odd for 男 and even for 女
  18    ISO 7064 MOD 11-2 check character: with weights w_i = 2^(17-i) mod 11 (i = 0..16),
        c = (12 - sum(d_i w_i) mod 11) mod 11, written X when 10; equivalently, counting the check as
        a digit of weight 1, the weighted sum of all 18 is 1 mod 11.
Names and street names draw characters uniformly from charset_zh.txt half of the time, so every
character of the charset appears in training data; the other half use common name characters.
"""
from __future__ import annotations

import datetime

import numpy as np
from PIL import Image, ImageDraw

from . import augment, charset, fonts, vocab
from .base import Line, compose, ink, paste_ink, rounded_alpha

DOMAIN = "idcard"
OUT_SIZE = (640, 416)
CARD_MM = (85.6, 54.0)
DIGITS = "0123456789"
ALPHABETS = {
    "id_number": DIGITS + "X",
    "birth": DIGITS + vocab.ID_DATE_UNITS,
    "sex": vocab.ID_SEXES,
    "ethnicity": "".join(sorted(set("".join(vocab.ETHNIC_GROUPS)))),
    "name": lambda: charset.load(),
    "address": lambda: charset.load() + DIGITS,
    "label": "".join(sorted(set("".join(vocab.ID_LABELS)))),
}
ID_WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))   # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2


def id_check_char(first17: str) -> str:
    r = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS)) % 11
    c = (12 - r) % 11
    return "X" if c == 10 else str(c)


def id_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2 over all 18 characters (X = 10): sum(a_i * 2^(17-i)) = 1 (mod 11)."""
    if len(number) != 18 or not number[:17].isdigit() or number[17] not in DIGITS + "X":
        return False
    vals = [int(c) for c in number[:17]] + [10 if number[17] == "X" else int(number[17])]
    return sum(v * pow(2, 17 - i, 11) for i, v in enumerate(vals)) % 11 == 1


def make_identity(rng) -> dict:
    cs = charset.load()
    code, prov, city, dist = vocab.REGIONS[int(rng.integers(len(vocab.REGIONS)))]
    sex = "男" if rng.random() < 0.5 else "女"
    start = datetime.date(1940, 1, 1).toordinal()
    birth = datetime.date.fromordinal(start + int(rng.integers(0, datetime.date(2012, 12, 31).toordinal() - start)))

    def rand_chars(k, common):
        if rng.random() < 0.5:
            return "".join(common[int(i)] for i in rng.integers(0, len(common), k))
        return "".join(cs[int(i)] for i in rng.integers(0, len(cs), k))

    if rng.random() < 0.03:
        surname = str(rng.choice(vocab.COMPOUND_SURNAMES))
    else:
        surname = vocab.SURNAMES[int(rng.integers(len(vocab.SURNAMES)))]
    name = surname + rand_chars(int(rng.choice([1, 2, 2, 2, 3])), vocab.GIVEN_NAME_CHARS)
    eth = "汉" if rng.random() < 0.6 else str(rng.choice(vocab.ETHNIC_GROUPS))
    street = rand_chars(int(rng.integers(2, 4)), vocab.GIVEN_NAME_CHARS) + str(rng.choice(vocab.STREET_SUFFIXES))
    addr = prov + city + dist + street + f"{int(rng.integers(1, 999))}号"
    r = rng.random()
    if r < 0.4:
        estate = rand_chars(2, vocab.GIVEN_NAME_CHARS) + str(rng.choice(["小区", "花园", "公寓", "新村", "大厦"]))
        building, unit = int(rng.integers(1, 40)), int(rng.integers(1, 6))
        room = f"{int(rng.integers(1, 30))}{int(rng.integers(1, 5)):02d}"
        addr += f"{estate}{building}栋{unit}单元{room}室"
    elif r < 0.6:
        addr += f"{int(rng.integers(1, 30))}号楼{int(rng.integers(1, 30))}{int(rng.integers(1, 5)):02d}"
    elif r < 0.75:
        addr = prov + city + dist + rand_chars(2, vocab.GIVEN_NAME_CHARS) + "村" + f"{int(rng.integers(1, 12))}组" + \
            f"{int(rng.integers(1, 200))}号"
    seq = int(rng.integers(0, 100)) * 10 + int(rng.choice([1, 3, 5, 7, 9] if sex == "男" else [0, 2, 4, 6, 8]))
    first17 = code + birth.strftime("%Y%m%d") + f"{seq:03d}"
    return {"name": name, "sex": sex, "ethnicity": eth, "birth": birth, "address": addr, "region": code,
            "id_number": first17 + id_check_char(first17)}


def _guilloche(rng, img: Image.Image):
    """Pale security pattern: families of phase-shifted sinusoids and rosette curves."""
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    col = tuple(int(v) for v in rng.choice([[120, 170, 220], [220, 150, 170], [150, 200, 170], [200, 180, 120]]))
    a = int(rng.integers(25, 70))
    x = np.linspace(0, w, 240)
    amp, fr = rng.uniform(0.02, 0.08) * h, rng.uniform(2, 8) * 2 * np.pi / w
    for y0 in np.arange(-0.1 * h, 1.1 * h, rng.uniform(3, 8)):
        d.line(list(zip(x, y0 + amp * np.sin(fr * x + y0 * 0.05))), fill=col + (a,), width=1)
    if rng.random() < 0.6:
        cx, cy, big_r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0.15, 0.35) * w
        t = np.linspace(0, 2 * np.pi, 900)
        k = int(rng.integers(12, 30))
        for ph in np.linspace(0, np.pi, 8):
            r = big_r * (1 + 0.12 * np.sin(k * t + ph))
            d.line(list(zip(cx + r * np.cos(t), cy + r * np.sin(t))), fill=col + (a,), width=1)
    img.paste(layer, (0, 0), layer)


def _portrait(rng, img: Image.Image, box):
    """Head-and-shoulders silhouette drawn inside `box` only (clipped to it)."""
    bx0, by0, bx1, by1 = box
    w, h = bx1 - bx0, by1 - by0
    bgc = tuple(int(v) for v in rng.choice([[245, 245, 245], [225, 235, 248], [238, 238, 232]]))
    pic = Image.new("RGB", (w, h), bgc)
    d = ImageDraw.Draw(pic)
    x0, y0 = 0, 0
    cx = w / 2 + rng.uniform(-0.05, 0.05) * w
    cloth = tuple(int(v) for v in augment.rand_color(rng, 10, 120))
    d.ellipse([cx - 0.55 * w, y0 + 0.68 * h, cx + 0.55 * w, y0 + 1.35 * h], fill=cloth)
    skin = np.array([230, 190, 160]) * rng.uniform(0.7, 1.05)
    d.rectangle([cx - 0.1 * w, y0 + 0.55 * h, cx + 0.1 * w, y0 + 0.75 * h], fill=tuple(int(v * 0.9) for v in skin))
    hw, hh = rng.uniform(0.26, 0.32) * w, rng.uniform(0.3, 0.36) * h
    hy = y0 + 0.42 * h
    hair = tuple(int(v) for v in rng.choice([[20, 20, 20], [50, 35, 25], [80, 80, 80]]))
    d.ellipse([cx - hw * 1.1, hy - hh * 1.15, cx + hw * 1.1, hy + hh * (0.4 + 0.6 * rng.random())], fill=hair)
    d.ellipse([cx - hw, hy - hh * 0.85, cx + hw, hy + hh], fill=tuple(int(v) for v in skin))
    img.paste(pic, (bx0, by0))


def render_card(rng):
    s = rng.uniform(6.5, 8.5)
    w, h = int(CARD_MM[0] * s), int(CARD_MM[1] * s)
    who = make_identity(rng)
    base = np.array(rng.choice([[246, 246, 242], [240, 244, 248], [248, 244, 238]]), np.float32)
    arr = augment.gradient(rng, w, h, base, base * rng.uniform(0.9, 1.0))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    _guilloche(rng, img)
    lab_c = np.array([30, 130, 200], np.float32) * rng.uniform(0.7, 1.15)
    val_c = np.array([15, 15, 15], np.float32) + rng.uniform(0, 40)
    face = fonts.pick(rng, "cjk_sans")
    lab_face = fonts.pick(rng, "cjk_sans")
    num_face = fonts.pick(rng, str(rng.choice(["ocrb", "ocrb", "mono", "sans_bold"])))
    lab_sz, val_sz = rng.uniform(2.4, 2.9) * s, rng.uniform(3.0, 3.5) * s
    dx, dy = rng.uniform(-1, 1) * s, rng.uniform(-1, 1) * s
    lx, vx = 5.5 * s + dx, 15.5 * s + dx
    lines: list[Line] = []

    def put(text, x, y, size, col, fld, fface=None, baseline=None):
        m = ink(text, fface or face, size)
        yy = (baseline - m.baseline) if baseline is not None else y
        q = paste_ink(img, m.mask, x, yy, col)
        if fld:
            lines.append(Line(text, q, fld))
        return m, q

    def row(label, y):
        """Caption at (lx, y), returns the caption's baseline so values share it."""
        m = ink(label, lab_face, lab_sz)
        q = paste_ink(img, m.mask, lx, y, lab_c)
        lines.append(Line(label, q, "label"))
        return y + m.baseline, q

    _portrait(rng, img, (int(57 * s + dx), int(6 * s + dy), int(81 * s + dx), int(39 * s + dy)))

    bl, _ = row("姓名", 6.5 * s + dy)
    put(who["name"], vx, 0, val_sz * rng.uniform(1.0, 1.15), val_c, "name", baseline=bl)
    bl, _ = row("性别", 13 * s + dy)
    put(who["sex"], vx, 0, val_sz, val_c, "sex", baseline=bl)
    m, q = put("民族", 26 * s + dx, 0, lab_sz, lab_c, None, lab_face, baseline=bl)
    lines.append(Line("民族", q, "label"))
    put(who["ethnicity"], 36 * s + dx, 0, val_sz, val_c, "ethnicity", baseline=bl)

    # birth: numbers in the value colour, 年 月 日 in the caption colour, one line
    bl, _ = row("出生", 19.5 * s + dy)
    b = who["birth"]
    parts = [(str(b.year), val_c, val_sz, num_face if rng.random() < 0.3 else face), ("年", lab_c, lab_sz, lab_face),
             (str(b.month), val_c, val_sz, face), ("月", lab_c, lab_sz, lab_face),
             (str(b.day), val_c, val_sz, face), ("日", lab_c, lab_sz, lab_face)]
    x = vx
    quads = []
    for t, c, sz, ff in parts:
        m, q = put(t, x, 0, sz, c, None, ff, baseline=bl)
        quads.append(q)
        x = q[1, 0] + rng.uniform(0.8, 1.6) * s
    allq = np.concatenate(quads)
    lines.append(Line(f"{b.year}年{b.month}月{b.day}日", augment.rect_quad(*allq.min(0), *allq.max(0)), "birth"))

    bl, _ = row("住址", 26 * s + dy)
    per_row = int(rng.integers(11, 14))
    addr = who["address"]
    rows = [addr[i:i + per_row] for i in range(0, len(addr), per_row)][:4]
    pitch = val_sz * rng.uniform(1.3, 1.5)
    for k, t in enumerate(rows):
        m = ink(t, face, val_sz)
        q = paste_ink(img, m.mask, vx, bl + k * pitch - m.baseline, val_c)
        lines.append(Line(t, q, "address", {"row": k}))

    bl, _ = row("公民身份号码", 45 * s + dy)
    nsz = rng.uniform(3.2, 3.8) * s
    f = fonts.font(num_face, round(nsz))
    track = rng.uniform(0.05, 0.35) * f.getlength("0")
    put_x = 26.5 * s + dx + rng.uniform(0, 2) * s
    m = ink(who["id_number"], num_face, nsz, track)
    if put_x + m.width > w - 3 * s:                         # keep the number on the card
        m = ink(who["id_number"], num_face, nsz * (w - 3 * s - put_x) / m.width, 0)
    q = paste_ink(img, m.mask, put_x, bl - m.baseline, val_c)
    lines.append(Line(who["id_number"], q, "id_number", {"valid": id_valid(who["id_number"])}))
    meta = {k: (v.isoformat() if isinstance(v, datetime.date) else v) for k, v in who.items()}
    return rounded_alpha(img, 3.2 * s), lines, meta


def generate(rng, out_size=OUT_SIZE):
    doc, lines, meta = render_card(rng)
    return compose(rng, doc, lines, out_size, DOMAIN, meta, view={"fill": (0.7, 0.97), "max_tilt": 22},
                   effects={"glare_p": 0.35, "glare_amp": (30, 100)})
