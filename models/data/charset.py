"""The Chinese charset of the ID-card recognizer: `models/data/charset_zh.txt`, one character per line.

Method (no frequency list can be downloaded here): GB2312 level-1 hanzi, which the standard orders and
selects as the 3,755 most frequently used characters (rows 16-55 of the 94x94 grid: EUC-CN bytes
0xB0A1-0xD7F9, row 55 ending at cell 89), decoded with Python's gb2312 codec; plus every character the
generators print from their fixed vocabularies (plate provinces, ethnic group names, region names,
card labels: vocab.vocabulary_chars()) that level 1 lacks (level-2 characters such as 冀, 皖, 闽, 傈, 僳);
minus any character without a glyph in every installed Chinese face (fonts.faces("cjk_sans")).
Order: GB2312 order (which is pinyin order within level 1), then the extras in code point order.

Regenerate with `python -m models.data.charset` (needs the fonts from models/setup_data.sh).
"""
from __future__ import annotations

import functools
import os

PATH = os.path.join(os.path.dirname(__file__), "charset_zh.txt")


def gb2312_level1() -> str:
    chars = []
    for row in range(0xB0, 0xD8):
        last = 0xF9 if row == 0xD7 else 0xFE
        for cell in range(0xA1, last + 1):
            chars.append(bytes([row, cell]).decode("gb2312"))
    return "".join(chars)


def build() -> str:
    from . import fonts, vocab

    base = gb2312_level1()
    extra = "".join(c for c in vocab.vocabulary_chars() if c not in set(base))
    cand = base + extra
    ok = [True] * len(cand)
    for face in fonts.faces("cjk_sans") + fonts.faces("cjk_serif"):
        ok = [a and b for a, b in zip(ok, fonts.has_glyphs(face, cand))]
    return "".join(c for c, k in zip(cand, ok) if k)


@functools.lru_cache(maxsize=1)
def load() -> str:
    with open(PATH, encoding="utf-8") as f:
        return "".join(line.rstrip("\n") for line in f if line.strip())


def main() -> None:
    chars = build()
    with open(PATH, "w", encoding="utf-8") as f:
        f.write("\n".join(chars) + "\n")
    lv1 = gb2312_level1()
    print(f"{PATH}: {len(chars)} characters ({sum(c in lv1 for c in chars)} GB2312 level-1 "
          f"of {len(lv1)}, {sum(c not in lv1 for c in chars)} vocabulary extras)")


if __name__ == "__main__":
    main()
