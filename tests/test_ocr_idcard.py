"""The ID-card reader end to end on the shipped models: number, what it encodes, name and address."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

pytest.importorskip("PIL")

from xnn.ocr import rules  # noqa: E402
from models.rec_spec import edit_distance  # noqa: E402
from xnn.ocr.apps import Reader  # noqa: E402


@pytest.fixture(scope="module")
def id_reader():
    return Reader("idcard")


def test_idcard_reader_reads_name_and_address_from_true_line_boxes(id_reader):
    """Held-out ID cards, every true line box given (captions included, as a detector finds them):
    the number is valid, sex and birth agree with what it encodes, the name is 2-12 Chinese
    characters and the address starts with the province the number encodes; most names and
    addresses equal the ground truth (the recognizer's accuracy is measured by models.evaluate and
    bench/bench_peers.py; this checks layout + crop + recognizer + constrained decoding)."""
    from models.data import generate

    names = addr_chars = addr_errs = n = 0
    for i in range(8):
        smp = generate("idcard", 8, 3000 + i)
        truth = {ln.field: ln.text for ln in smp.lines if ln.field in ("name", "id_number")}
        address = "".join(ln.text for ln in sorted((x for x in smp.lines if x.field == "address"),
                                                    key=lambda x: x.meta["row"]))
        res = id_reader.read(smp.image, quads=[ln.quad for ln in smp.lines])
        num = res.fields.get("id_number")
        assert num is not None and num.valid
        if num.text != truth["id_number"]:
            continue
        n += 1
        info = rules.id_info(num.text)
        assert res.fields["sex"].text == info["sex"] == smp.meta["sex"]
        assert res.fields["birth"].text == info["birth"].isoformat() == smp.meta["birth"]
        name, addr = res.fields.get("name"), res.fields.get("address")
        assert name is not None and rules.id_name_ok(name.text) and name.valid
        assert addr is not None and addr.valid and addr.meta["province_matches_number"]
        assert addr.text.startswith(rules.PROVINCE_CODES[num.text[:2]])
        assert 0.0 <= name.confidence <= 1.0 and len(name.char_conf) == len(name.text)
        names += name.text == truth["name"]
        addr_errs += min(len(address), edit_distance(addr.text, address))
        addr_chars += len(address)
    assert n >= 6, n
    assert names >= 0.5 * n, (names, n)
    assert addr_errs <= 0.15 * addr_chars, (addr_errs, addr_chars)



def _address_sample(min_rows=2):
    from models.data import generate

    for i in range(40):
        smp = generate("idcard", 8, 3100 + i)
        if sum(ln.field == "address" for ln in smp.lines) >= min_rows:
            return smp
    raise AssertionError("no ID card with a multi-row address")


def test_address_continuation_skips_caption_boxes_and_slivers_between_rows(id_reader, line_reads):
    """Boxes a detector draws around the 住址 caption below the first row's centre line (a row of
    their own, left of the value column) and short slivers between two address rows are not read as
    address text: the address comes out as from the true boxes alone, the extra boxes are not
    read into it (the caption box is not even recognized)."""
    import numpy as np

    from xnn.ocr import apps
    from xnn.ocr.geometry import quad_axis, quad_size

    smp = _address_sample(3)
    quads = [np.asarray(ln.quad, np.float64) for ln in smp.lines]
    rows = sorted((ln for ln in smp.lines if ln.field == "address"), key=lambda ln: ln.meta["row"])
    cap = next(np.asarray(ln.quad, np.float64) for ln in smp.lines if ln.text == "住址")
    q0, q1 = np.asarray(rows[0].quad, np.float64), np.asarray(rows[1].quad, np.float64)
    u = quad_axis(q0)
    v = np.array([-u[1], u[0]])
    h = quad_size(q0)[1]
    low_caption = cap + 0.6 * quad_size(cap)[1] * v
    # a sliver: the first four heights of row 1's box moved half the row pitch up (it takes in the
    # bottom of row 0's characters and the top of row 1's)
    pitch = (q1.mean(0) - q0.mean(0)) @ v
    sliver = q1 - 0.5 * pitch * v
    sliver[[1, 2]] = sliver[[0, 3]] + 4.0 * h * u
    rec = id_reader.recognizers[apps.ID_TEXT_MODEL]
    assert len(rec.decode(rec.log_probs(rec.crop(smp.image, sliver.astype(np.float32))), beam_width=1)[0].labels)
    base = id_reader.read(smp.image, quads=quads)
    read = line_reads
    read.clear()
    n = len(quads)
    got = id_reader.read(smp.image, quads=quads + [low_caption, sliver])
    assert base.fields["address"].text == got.fields["address"].text
    assert (apps.ID_TEXT_MODEL, n) not in read          # the caption is not even recognized
    assert len(got.fields["address"].meta["rows"]) == len(rows)

    # only the first address row found: the caption box below it would be the last continuation row
    quads = [np.asarray(ln.quad, np.float64) for ln in smp.lines
             if ln.field != "address" or ln.meta["row"] == 0]
    assert len(rec.decode(rec.log_probs(rec.crop(smp.image, low_caption.astype(np.float32))), beam_width=1)[0].labels)
    base = id_reader.read(smp.image, quads=quads)
    read.clear()
    got = id_reader.read(smp.image, quads=quads + [low_caption])
    assert base.fields["address"].text == got.fields["address"].text
    assert (apps.ID_TEXT_MODEL, len(quads)) not in read


def test_uncertain_id_text_lines_average_views_moved_across_the_line(id_reader):
    """_LineCache.views: a line whose greedy reading is certain keeps its one read; an uncertain one
    is the probability mean of its own read and reads of its box moved by each shift (checked
    against crops of the moved boxes computed here)."""
    import numpy as np

    from xnn.ocr import apps
    from xnn.ocr.geometry import fill_color, quad_axis, quad_size

    smp = _address_sample(1)
    k = next(j for j, ln in enumerate(smp.lines) if ln.field == "address")
    quads = np.array([ln.quad for ln in smp.lines], np.float32)
    rec = id_reader.recognizers[apps.ID_TEXT_MODEL]
    t = {"crop": 0.0, "recognize": 0.0}
    cache = apps._LineCache(id_reader.recognizers, smp.image, quads, t)
    one = cache.get(apps.ID_TEXT_MODEL, k)
    assert cache.views(apps.ID_TEXT_MODEL, k, (-0.06, 0.06), 0.0) is one           # nothing below 0
    cache = apps._LineCache(id_reader.recognizers, smp.image, quads, t)
    shifts = (-0.1, 0.05)
    got = cache.views(apps.ID_TEXT_MODEL, k, shifts, 1.01)                          # every line uncertain
    q = quads[k].astype(np.float64)
    u = quad_axis(q)
    v = np.array([-u[1], u[0]])
    h = quad_size(q)[1]
    fill = fill_color(smp.image)
    probs = [np.exp(rec.log_probs(rec.crop(smp.image, quads[k], fill)))]
    probs += [np.exp(rec.log_probs(rec.crop(smp.image, (q + s * h * v).astype(np.float32), fill))) for s in shifts]
    want = np.log(np.mean(probs, axis=0))
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-9)
    assert not np.allclose(got, one)
    assert np.allclose(np.exp(got).sum(1), 1.0)
    # the reader decodes ID names and addresses from these views
    asked = []
    orig = apps._LineCache.views

    def spy(self, name, j, shifts, gate, tighten=False):
        asked.append((name, j, shifts, gate, tighten))
        return orig(self, name, j, shifts, gate, tighten)
    apps._LineCache.views = spy
    try:
        res = id_reader.read(smp.image, quads=quads)
    finally:
        apps._LineCache.views = orig
    assert "address" in res.fields and (apps.ID_TEXT_MODEL, k, apps.ID_VIEW_SHIFTS, apps.ID_VIEW_GATE,
                                        apps.ID_TIGHTEN) in asked


def test_two_address_rows_merged_into_one_box_are_read_as_two_rows(id_reader, monkeypatch):
    """A detector box that holds the first two address rows (a short row under a full one, merged
    into one box ~2.4 box heights tall) is read as two bands: the address comes out as from the two
    true boxes. With the split turned off the merged box yields no such address."""
    import numpy as np

    from xnn.ocr import apps
    from xnn.ocr.geometry import quad_axis, quad_size

    smp = _address_sample(2)
    rows = sorted((ln for ln in smp.lines if ln.field == "address"), key=lambda ln: ln.meta["row"])
    q0, q1 = np.asarray(rows[0].quad, np.float64), np.asarray(rows[1].quad, np.float64)
    u = quad_axis(q0)
    v = np.array([-u[1], u[0]])
    pitch = (q1.mean(0) - q0.mean(0)) @ v
    merged = q0.copy()
    merged[[2, 3]] += pitch * v                      # row 0's box grown down over row 1
    assert quad_size(merged)[1] > 2 * quad_size(q0)[1]
    keep = [np.asarray(ln.quad, np.float64) for ln in smp.lines if ln not in rows[:2]]
    base = id_reader.read(smp.image, quads=[np.asarray(ln.quad, np.float64) for ln in smp.lines])
    got = id_reader.read(smp.image, quads=keep + [merged])
    assert got.fields["address"].text == base.fields["address"].text
    assert got.fields["address"].meta["rows"][:2] == base.fields["address"].meta["rows"][:2]
    monkeypatch.setattr(apps, "ID_SPLIT_RATIO", 100.0)
    off = id_reader.read(smp.image, quads=keep + [merged])
    assert "address" not in off.fields or off.fields["address"].text != base.fields["address"].text


def test_merged_row_boxes_and_split_quad():
    import numpy as np

    from xnn.ocr.apps import _Row, merged_row_boxes, split_quad

    q = np.array([[0, 0], [40, 0], [40, 10], [0, 10]], np.float32)
    bands = split_quad(q, 2)
    np.testing.assert_allclose(bands[0], [[0, 0], [40, 0], [40, 5], [0, 5]])
    np.testing.assert_allclose(bands[1], [[0, 5], [40, 5], [40, 10], [0, 10]])
    long_ = np.array([[0, 0], [60, 0], [60, 10], [0, 10]], np.float32)
    quads = [long_] * 6
    heights = [1.0, 1.1, 0.9, 2.4, 1.0, 3.5]   # box 3: two rows; box 5: three
    rows = [_Row(-10.0 + k, h, [k], [k], {k: (0.0, 6.0, h)}) for k, h in enumerate(heights)]
    assert merged_row_boxes(rows, quads) == {3: 2, 5: 3}
    assert merged_row_boxes(rows[:3], quads) == {}


def test_address_row_box_turned_off_its_text_is_read_from_the_text_band(id_reader, monkeypatch):
    """A detector box turned a few degrees off its address row (and taller: it cuts the characters at
    its ends, the recognizer then drops or confuses them) is read from the text band tighten_quad
    finds inside it when that band's best path is likelier: the address comes out as from the true
    box. With the band search off it does not."""
    import numpy as np

    from xnn.ocr import apps
    from xnn.ocr.geometry import quad_axis, quad_size

    smp = _address_sample(2)
    rows = sorted((ln for ln in smp.lines if ln.field == "address"), key=lambda ln: ln.meta["row"])
    q0 = np.asarray(rows[0].quad, np.float64)
    c, (w, h) = q0.mean(0), quad_size(q0)
    u0 = quad_axis(q0)
    quads = [np.asarray(ln.quad, np.float64) for ln in smp.lines]
    base = id_reader.read(smp.image, quads=quads)
    for deg in (-3.0, 3.0):                          # turned about its centre, 1.2x as tall
        t = np.radians(deg)
        u = np.cos(t) * u0 + np.sin(t) * np.array([-u0[1], u0[0]])
        v = np.array([-u[1], u[0]])
        turned = np.array([c - 0.5 * w * u - 0.6 * h * v, c + 0.5 * w * u - 0.6 * h * v,
                           c + 0.5 * w * u + 0.6 * h * v, c - 0.5 * w * u + 0.6 * h * v])
        quads[smp.lines.index(rows[0])] = turned
        monkeypatch.setattr(apps, "ID_TIGHTEN", True)
        got = id_reader.read(smp.image, quads=quads)
        assert got.fields["address"].text == base.fields["address"].text, deg
        monkeypatch.setattr(apps, "ID_TIGHTEN", False)
        off = id_reader.read(smp.image, quads=quads)
        assert "address" not in off.fields or off.fields["address"].text != base.fields["address"].text, deg
