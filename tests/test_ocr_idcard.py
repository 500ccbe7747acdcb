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

