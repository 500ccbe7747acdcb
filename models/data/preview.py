"""Contact sheet of generated samples, quads drawn over the images and the ground truth listed below.

    python -m models.data.preview --domain card --n 8 --out /tmp/preview.png [--seed 0] [--lines]
                                  [--no-quads] [--cols 4]

--lines shows rectified line crops (render_lines) with their texts instead of full pages.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image, ImageDraw

from . import DOMAINS, fonts, generate, render_lines

COLORS = [(255, 40, 40), (40, 220, 40), (40, 120, 255), (255, 200, 0), (255, 0, 255), (0, 230, 230)]


def _caption_font(size):
    role = "cjk_sans" if fonts.available("cjk_sans") else "sans"
    return fonts.font(fonts.faces(role)[0], size)


def page_sheet(domain, n, seed, cols, quads=True) -> Image.Image:
    tiles = []
    f = _caption_font(12)
    for i in range(n):
        s = generate(domain, seed, i)
        im = Image.fromarray(s.image)
        d = ImageDraw.Draw(im)
        caps = []
        for k, ln in enumerate(s.lines):
            c = COLORS[k % len(COLORS)]
            if quads:
                d.polygon([tuple(p) for p in ln.quad], outline=c)
                d.ellipse([ln.quad[0][0] - 2, ln.quad[0][1] - 2, ln.quad[0][0] + 2, ln.quad[0][1] + 2], fill=c)
            extra = " (rolled)" if ln.meta.get("rolled") else ""
            caps.append((c, f"{ln.field}: {ln.text}{extra}"))
        cap_h = 14 * len(caps) + 4
        tile = Image.new("RGB", (im.width, im.height + cap_h), (255, 255, 255))
        tile.paste(im, (0, 0))
        dt = ImageDraw.Draw(tile)
        for k, (c, t) in enumerate(caps):
            dt.text((3, im.height + 2 + 14 * k), t, font=f, fill=tuple(v // 2 for v in c))
        tiles.append(tile)
    return grid(tiles, cols)


def line_sheet(domain, n, seed, cols) -> Image.Image:
    f = _caption_font(14)
    tiles = []
    for img, text in render_lines(domain, n, seed):
        im = Image.fromarray(img)
        tile = Image.new("RGB", (max(im.width, 200), im.height + 18), (255, 255, 255))
        tile.paste(im, (0, 0))
        ImageDraw.Draw(tile).text((2, im.height + 1), text, font=f, fill=(0, 0, 0))
        tiles.append(tile)
    return grid(tiles, cols)


def grid(tiles, cols) -> Image.Image:
    cols = max(1, min(cols, len(tiles)))
    rows = (len(tiles) + cols - 1) // cols
    cw = max(t.width for t in tiles) + 6
    rh = [max(t.height for t in tiles[r * cols:(r + 1) * cols]) + 6 for r in range(rows)]
    sheet = Image.new("RGB", (cw * cols, sum(rh)), (200, 200, 200))
    y = 0
    for r in range(rows):
        for c, t in enumerate(tiles[r * cols:(r + 1) * cols]):
            sheet.paste(t, (c * cw + 3, y + 3))
        y += rh[r]
    return sheet


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", choices=sorted(DOMAINS), required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--out", default="/tmp/preview.png")
    ap.add_argument("--lines", action="store_true", help="show rectified line crops instead of pages")
    ap.add_argument("--no-quads", action="store_true")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    sheet = line_sheet(a.domain, a.n, a.seed, a.cols) if a.lines else \
        page_sheet(a.domain, a.n, a.seed, a.cols, not a.no_quads)
    sheet.save(a.out)
    print(f"wrote {a.out} ({sheet.width}x{sheet.height}) in {time.perf_counter() - t:.2f}s")
    return np.asarray(sheet).shape


if __name__ == "__main__":
    main()
