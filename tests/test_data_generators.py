"""Synthetic data generators (models/data): determinism, geometry of the ground truth, check digits,
charsets and per-field alphabets. Needs Pillow and the fonts of models/setup_data.sh."""
import datetime
import os
import re
import sys

import numpy as np
import pytest

pytest.importorskip("PIL")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models.data import DOMAINS, alphabet, augment, crop_line, generate, render_lines, render_pages  # noqa: E402
from models.data import card, charset, idcard, plate, vocab  # noqa: E402

N_PER_DOMAIN = 6


@pytest.fixture(scope="module")
def samples():
    return {d: [generate(d, seed=11, index=i) for i in range(N_PER_DOMAIN)] for d in DOMAINS}


# --------------------------------------------------------------------------------------------------
# determinism


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_same_seed_same_sample(domain, samples):
    a = samples[domain][2]
    b = generate(domain, seed=11, index=2)
    np.testing.assert_array_equal(a.image, b.image)
    assert [(ln.text, ln.field) for ln in a.lines] == [(ln.text, ln.field) for ln in b.lines]
    for la, lb in zip(a.lines, b.lines):
        np.testing.assert_array_equal(la.quad, lb.quad)
    c = generate(domain, seed=12, index=2)
    assert not np.array_equal(a.image, c.image) or [ln.text for ln in a.lines] != [ln.text for ln in c.lines]


def test_sample_does_not_depend_on_batch():
    pages = render_pages("plate", 3, seed=5)
    s = generate("plate", seed=5, index=2)
    np.testing.assert_array_equal(pages[2][0], s.image)
    assert pages[2][1][0][0] == s.lines[0].text
    more = render_pages("plate", 2, seed=5, start=1)
    np.testing.assert_array_equal(more[1][0], s.image)


# --------------------------------------------------------------------------------------------------
# geometry


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_images_and_quads(domain, samples):
    for s in samples[domain]:
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        assert s.image.std() > 5                        # not a blank frame
        assert s.lines
        for ln in s.lines:
            q = ln.quad
            assert q.shape == (4, 2) and q.dtype == np.float32
            assert (q[:, 0] >= 0).all() and (q[:, 0] <= w).all(), (ln.text, q)
            assert (q[:, 1] >= 0).all() and (q[:, 1] <= h).all(), (ln.text, q)
            assert augment.signed_area(q) > 4.0, (ln.text, q)   # clockwise on screen, not degenerate
            # point 0 is the text's top-left: the top edge runs left to right
            assert q[1, 0] > q[0, 0] and q[3, 1] > q[0, 1]
            assert ln.text and ln.text == ln.text.strip()


def test_homography_maps_points_like_pillow_warps_pixels():
    from PIL import Image

    rng = np.random.default_rng(0)
    src = Image.new("RGBA", (200, 100), (0, 0, 0, 255))
    src.paste((255, 255, 255, 255), (60, 30, 140, 70))
    hm = augment.sample_view(rng, 200, 100, 320, 240)
    out = np.asarray(augment.warp_onto(Image.new("RGB", (320, 240)), src, hm))[..., 0]
    q = augment.apply_h(hm, augment.rect_quad(60, 30, 140, 70))
    centre = q.mean(0)
    assert out[int(centre[1]), int(centre[0])] > 200
    ys, xs = np.nonzero(out > 128)
    assert abs(xs.min() - q[:, 0].min()) < 2 and abs(xs.max() + 1 - q[:, 0].max()) < 2
    assert abs(ys.min() - q[:, 1].min()) < 2 and abs(ys.max() + 1 - q[:, 1].max()) < 2


def test_crop_line_rectifies_a_known_quad():
    img = np.zeros((120, 200, 3), np.uint8)
    img[40:60, 50:150] = (255, 0, 0)
    out = crop_line(img, augment.rect_quad(50, 40, 150, 60), height=32, pad_x=0, pad_y=0)
    assert out.shape == (32, 160, 3)
    assert (out[1:-1, 1:-1, 0] > 250).all() and (out[1:-1, 1:-1, 1:] < 5).all()
    # a rotated quad around the same bar: TL, TR, BR, BL after a 90 degree turn reads the same
    rot = np.zeros((200, 120, 3), np.uint8)
    rot[50:150, 60:80] = (255, 0, 0)
    q = np.array([[80, 50], [80, 150], [60, 150], [60, 50]], np.float32)
    out2 = crop_line(rot, q, height=32, pad_x=0, pad_y=0)
    assert out2.shape == (32, 160, 3) and (out2[1:-1, 1:-1, 0] > 250).all()


def test_render_lines():
    lines = render_lines("card", 5, seed=3, fields=("number",))
    assert len(lines) == 5
    for img, text in lines:
        assert img.dtype == np.uint8 and img.shape[0] == 32 and img.shape[2] == 3
        assert img.shape[1] > 32 * 4
        assert re.fullmatch(r"[0-9]+( [0-9]+)+", text)
    again = render_lines("card", 5, seed=3, fields=("number",))
    for (a, ta), (b, tb) in zip(lines, again):
        assert ta == tb
        np.testing.assert_array_equal(a, b)


def test_render_lines_merge_captions():
    """merge_captions=1: an expiry with a caption (VALID THRU) before it on its row is cropped with the
    caption (wider, same text); lines without one (names) come out exactly as without the option;
    merge_captions=0 is the default."""
    kw = dict(seed=3, fields=("expiry", "name"), jitter=0.0)
    plain = render_lines("card", 40, **kw)
    merged = render_lines("card", 40, merge_captions=1.0, **kw)
    assert [t for _, t in plain] == [t for _, t in merged]
    wider = 0
    for (a, t), (b, _) in zip(plain, merged):
        if "/" in t:
            assert b.shape[1] >= a.shape[1]
            wider += b.shape[1] > a.shape[1] + 16
        else:
            np.testing.assert_array_equal(a, b)
    assert wider >= 5
    for (a, _), (b, _) in zip(plain, render_lines("card", 40, merge_captions=0.0, **kw)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------------
# check digits and number rules


def test_luhn_known_values():
    assert card.luhn_valid("4111111111111111")
    assert card.luhn_valid("79927398713")
    assert card.luhn_valid("378282246310005")
    assert not card.luhn_valid("4111111111111112")
    assert not card.luhn_valid("79927398710")
    assert card.luhn_check_digit("7992739871") == "3"


def test_card_numbers_follow_issuer_rules():
    rng = np.random.default_rng(1)
    mc2 = 0
    for _ in range(400):
        issuer = card.ISSUERS[int(rng.integers(4))]
        num, groups = card.card_number(rng, issuer)
        assert card.luhn_valid(num) and sum(groups) == len(num)
        if issuer == "visa":
            assert num[0] == "4" and len(num) == 16 and groups == (4, 4, 4, 4)
        elif issuer == "mastercard":
            assert len(num) == 16 and (51 <= int(num[:2]) <= 55 or 2221 <= int(num[:4]) <= 2720)
            mc2 += num[0] == "2"
        elif issuer == "unionpay":
            assert num[:2] == "62" and 16 <= len(num) <= 19
            assert groups in ((4, 4, 4, 4), (6, len(num) - 6), (4, 4, 4, 4, len(num) - 16))
        else:
            assert num[:2] in ("34", "37") and len(num) == 15 and groups == (4, 6, 5)
    assert mc2 > 0


def test_card_lines(samples):
    seen = set()
    for s in samples["card"]:
        by = {ln.field: ln for ln in s.lines}
        num = by["number"]
        assert card.luhn_valid(num.meta["digits"]) and num.text.replace(" ", "") == num.meta["digits"]
        assert re.fullmatch(r"(0[1-9]|1[0-2])/[0-9]{2}", by["expiry"].text)
        assert re.fullmatch(r"[A-Z]+( [A-Z]+)+", by["name"].text)
        seen.update(ln.field for ln in s.lines)
    assert {"number", "expiry", "name", "bank"} <= seen


def test_vin_check_digit_known_values():
    assert plate.vin_valid("1M8GDM9AXKP042788")       # check digit X
    assert plate.vin_valid("11111111111111111")
    assert plate.vin_check_char("1HGCM82633A004352") == "3"
    assert not plate.vin_valid("1M8GDM9A1KP042788")
    assert not plate.vin_valid("1M8GDM9AXKP04278O")   # O is not a VIN character


def test_generated_vins():
    rng = np.random.default_rng(2)
    for _ in range(300):
        v = plate.make_vin(rng)
        assert plate.vin_valid(v) and not set(v) & set("IOQ") and v[9] not in "UZ0"


def test_plate_texts():
    pats = {
        "blue": r"[{p}][{l}][{a}]{{5}}", "yellow": r"[{p}][{l}][{a}]{{5}}", "white": r"[{p}][{l}][{a}]{{4}}警",
        "yellow_school": r"[{p}][{l}][{a}]{{4}}学", "green_small": r"[{p}][{l}][DF][{a}][0-9]{{4}}",
        "green_large": r"[{p}][{l}][0-9]{{5}}[DF]",
    }
    assert len(vocab.PROVINCES) == 31 == len(set(vocab.PROVINCES))
    assert set(plate.PLATE_LETTERS) == set("ABCDEFGHJKLMNPQRSTUVWXYZ")
    rng = np.random.default_rng(3)
    for style, pat in pats.items():
        rx = pat.format(p=vocab.PROVINCES, l=plate.PLATE_LETTERS, a=plate.PLATE_LETTERS + "0-9")
        for _ in range(50):
            t = plate.plate_text(rng, style)
            assert re.fullmatch(rx, t), (style, t)
            assert sum(c in plate.PLATE_LETTERS for c in t[2:]) <= 3


def test_id_check_character_known_values():
    assert idcard.id_valid("11010519491231002X")
    assert idcard.id_valid("440308199901101512")
    assert idcard.id_check_char("11010519491231002") == "X"
    assert not idcard.id_valid("110105194912310021")
    assert idcard.ID_WEIGHTS == (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def test_id_fields_are_consistent(samples):
    regions = {r[0]: r for r in vocab.REGIONS}
    for s in samples["idcard"]:
        by = {}
        for ln in s.lines:
            by.setdefault(ln.field, []).append(ln.text)
        num = by["id_number"][0]
        assert idcard.id_valid(num)
        code, prov, city, dist = regions[num[:6]]
        assert "".join(by["address"]).startswith(prov + city + dist)
        birth = datetime.date(int(num[6:10]), int(num[10:12]), int(num[12:14]))
        assert by["birth"] == [f"{birth.year}年{birth.month}月{birth.day}日"]
        assert by["sex"] == ["男" if int(num[16]) % 2 else "女"]
        assert by["ethnicity"][0] in vocab.ETHNIC_GROUPS
        assert sorted(by["label"]) == sorted(vocab.ID_LABELS)


def test_meter_readings(samples):
    rolled = 0
    for s in samples["meter"]:
        r = [ln for ln in s.lines if ln.field == "reading"]
        assert len(r) == 1
        ln = r[0]
        assert re.fullmatch(r"[0-9]{5,8}", ln.text)
        assert ln.meta["n_int"] + ln.meta["n_frac"] == len(ln.text)
        assert isinstance(ln.meta["rolled"], bool)
        rolled += ln.meta["rolled"]
    rng_rolled = sum(generate("meter", seed=4, index=i).lines[0].meta["rolled"] for i in range(12))
    assert rolled + rng_rolled > 0


# --------------------------------------------------------------------------------------------------
# charsets and alphabets


def test_charset_zh():
    cs = charset.load()
    lv1 = charset.gb2312_level1()
    assert len(lv1) == 3755 == len(set(lv1))
    assert lv1[0] == "啊" and lv1[-1] == "座"
    assert len(cs) == len(set(cs))
    assert 3755 <= len(cs) <= 3900
    assert cs.startswith(lv1)                          # all of level 1, in GB2312 order, then extras
    assert set(vocab.vocabulary_chars()) <= set(cs)
    assert all(0x3400 <= ord(c) <= 0x9FFF for c in cs)


def test_charset_has_glyphs():
    from models.data import fonts

    cs = charset.load()
    face = fonts.faces("cjk_sans")[0]
    assert all(fonts.has_glyphs(face, cs))
    latin = fonts.faces("ocrb")[0]
    assert fonts.has_glyphs(latin, "A汉") == [True, False]


ALPHA_FIELDS = {
    "card": ("number", "expiry", "name", "bin"),
    "meter": ("reading",),
    "plate": ("plate",),
    "vin": ("vin",),
    "idcard": ("id_number", "birth", "sex", "ethnicity", "name", "address", "label"),
}


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_texts_within_field_alphabets(domain, samples):
    checked = 0
    for s in samples[domain]:
        for ln in s.lines:
            if ln.field in ALPHA_FIELDS[domain]:
                extra = set(ln.text) - set(alphabet(domain, ln.field))
                assert not extra, (ln.field, ln.text, extra)
                checked += 1
    assert checked >= N_PER_DOMAIN


def test_alphabet_sizes():
    assert alphabet("card", "number") == "0123456789 "
    assert len(alphabet("vin", "vin")) == 33 and not set("IOQ") & set(alphabet("vin", "vin"))
    assert len(alphabet("plate", "plate")) == 31 + 24 + 10 + 2
    assert set(alphabet("idcard", "id_number")) == set("0123456789X")
    assert set(alphabet("meter", "reading")) == set("0123456789")
