"""Font discovery for the generators: Debian font packages (see models/setup_data.sh), grouped by role.

A role is a list of (file name, face index) candidates; only the ones found on disk are used, so the
generators run with any non-empty subset of the packages. Fonts are looked up under the directories in
$XNN_FONT_DIRS (os.pathsep-separated) and /usr/share/fonts, /usr/local/share/fonts.
"""
from __future__ import annotations

import functools
import os

from PIL import Image, ImageChops, ImageFont

SETUP_HINT = "install the fonts with `bash models/setup_data.sh` (Debian font packages)"

# Face index 2 of the Noto CJK collections is the Simplified Chinese ("SC") face.
ROLES: dict[str, list[tuple[str, int]]] = {
    "ocrb": [("OCRB.otf", 0), ("OCRBS.otf", 0), ("OCRBL.otf", 0)],
    "ocra": [("OCRA.ttf", 0), ("OCRABold.ttf", 0)],
    "mono": [("DejaVuSansMono.ttf", 0), ("DejaVuSansMono-Bold.ttf", 0),
             ("LiberationMono-Regular.ttf", 0), ("LiberationMono-Bold.ttf", 0)],
    "sans": [("DejaVuSans.ttf", 0), ("LiberationSans-Regular.ttf", 0),
             ("LiberationSansNarrow-Regular.ttf", 0), ("DejaVuSansCondensed.ttf", 0)],
    "sans_bold": [("DejaVuSans-Bold.ttf", 0), ("DejaVuSansCondensed-Bold.ttf", 0),
                  ("LiberationSans-Bold.ttf", 0), ("LiberationSansNarrow-Bold.ttf", 0)],
    "serif": [("DejaVuSerif.ttf", 0), ("LiberationSerif-Regular.ttf", 0), ("LiberationSerif-Bold.ttf", 0)],
    "italic_bold": [("DejaVuSans-BoldOblique.ttf", 0), ("LiberationSans-BoldItalic.ttf", 0)],
    "road": [("RG2014B.ttf", 0), ("RG2014C.ttf", 0), ("RG2014D.ttf", 0), ("RG2014E.ttf", 0)],
    "seg7": [("DSEG7Classic-Regular.ttf", 0), ("DSEG7Classic-Bold.ttf", 0), ("DSEG7Classic-Italic.ttf", 0),
             ("DSEG7Modern-Regular.ttf", 0), ("DSEG7Modern-Bold.ttf", 0), ("DSEG7Modern-Italic.ttf", 0)],
    "cjk_sans": [("NotoSansCJK-Regular.ttc", 2), ("NotoSansCJK-Bold.ttc", 2), ("wqy-microhei.ttc", 0)],
    "cjk_serif": [("NotoSerifCJK-Regular.ttc", 2), ("NotoSerifCJK-Bold.ttc", 2)],
}
# Roles that may stand in for an empty one (e.g. no Serif CJK face installed: use a Sans one).
FALLBACK = {"cjk_serif": "cjk_sans", "ocra": "ocrb", "road": "sans_bold", "italic_bold": "sans_bold",
            "serif": "sans", "mono": "ocrb"}


class FontMissing(RuntimeError):
    pass


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    dirs = [d for d in os.environ.get("XNN_FONT_DIRS", "").split(os.pathsep) if d]
    dirs += ["/usr/share/fonts", "/usr/local/share/fonts"]
    found: dict[str, str] = {}
    for root_dir in dirs:
        for root, _, files in os.walk(root_dir):
            for f in files:
                found.setdefault(f, os.path.join(root, f))
    return found


@functools.lru_cache(maxsize=None)
def faces(role: str) -> tuple[tuple[str, int], ...]:
    """Installed (path, index) faces of a role, in ROLES order; falls back along FALLBACK."""
    idx = _index()
    got = tuple((idx[name], i) for name, i in ROLES[role] if name in idx)
    if not got and role in FALLBACK:
        return faces(FALLBACK[role])
    if not got:
        raise FontMissing(f"no font for role {role!r} ({[n for n, _ in ROLES[role]]}); {SETUP_HINT}")
    return got


def available(role: str) -> bool:
    try:
        faces(role)
        return True
    except FontMissing:
        return False


def pick(rng, role: str) -> tuple[str, int]:
    f = faces(role)
    return f[int(rng.integers(len(f)))]


@functools.lru_cache(maxsize=1024)
def font(face: tuple[str, int], size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(face[0], max(4, int(size)), index=face[1])


def _mask(f: ImageFont.FreeTypeFont, ch: str) -> Image.Image:
    box = f.getbbox(ch)
    im = Image.new("L", (max(1, box[2]) + 2, max(1, box[3]) + 2), 0)
    if box[2] > box[0] and box[3] > box[1]:
        from PIL import ImageDraw
        ImageDraw.Draw(im).text((0, 0), ch, font=f, fill=255)
    return im


def has_glyphs(face: tuple[str, int], chars: str) -> list[bool]:
    """Whether each char has its own glyph: its bitmap differs from that of a surely unmapped code point
    (U+10FFFD, private use plane 16), which FreeType renders with the .notdef glyph. Blank glyphs (space)
    count as missing unless .notdef is blank too."""
    f = font(face, 24)
    notdef = _mask(f, "\U0010FFFD")
    out = []
    for ch in chars:
        m = _mask(f, ch)
        same = m.size == notdef.size and ImageChops.difference(m, notdef).getbbox() is None
        out.append(not same and m.getbbox() is not None)
    return out
