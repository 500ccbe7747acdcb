"""Reading images (PNG, JPEG, BMP, WebP, … via Pillow) with clear errors, and drawing results."""
from __future__ import annotations

import os

import numpy as np

from ..errors import XnnError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 40_000_000   # 40 MP: larger images are refused before decoding (decompression bombs)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise XnnError("reading images needs Pillow: pip install 'xnn[ocr]' (or pip install pillow)") from None
    return Image


def load_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (EXIF orientation applied). Missing, empty, unreadable,
    corrupt or too large files raise XnnError naming the file and the reason."""
    Image = _pillow()
    if not os.path.exists(path):
        raise XnnError(f"{path}: no such file")
    if os.path.isdir(path):
        raise XnnError(f"{path}: is a directory")
    if os.path.getsize(path) == 0:
        raise XnnError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise XnnError(f"{path}: image too large ({w}x{h} = {w * h / 1e6:.0f} MP; limit "
                               f"{max_pixels / 1e6:.0f} MP): downscale it first")
            if w < 8 or h < 8:
                raise XnnError(f"{path}: image too small ({w}x{h} pixels)")
            from PIL import ImageOps

            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except XnnError:
        raise
    except Image.DecompressionBombError:
        raise XnnError(f"{path}: image too large (Pillow refused it as a decompression bomb)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise XnnError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def list_images(folder: str) -> list:
    """Image files directly in `folder` (by extension), sorted by name."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        raise XnnError(f"{folder}: cannot list ({e.strerror})") from None
    return [os.path.join(folder, n) for n in names
            if n.lower().endswith(IMAGE_EXTS) and os.path.isfile(os.path.join(folder, n))]


def _font(size: int):
    from PIL import ImageFont

    for p in ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",   # Debian fonts-noto-cjk
              "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        if os.path.exists(p):
            try:
                return ImageFont.truetype(p, size)
            except OSError:
                continue
    try:
        return ImageFont.load_default(size)
    except TypeError:   # Pillow < 10.1
        return ImageFont.load_default()


def draw(image: np.ndarray, result, path: str) -> None:
    """Save `image` with every field's (or line's) quad outlined and its text written above it."""
    Image = _pillow()
    from PIL import ImageDraw

    im = Image.fromarray(np.asarray(image)).convert("RGB")
    d = ImageDraw.Draw(im)
    items = [(f"{k}: {f.text}", f.quad, f.valid) for k, f in result.fields.items() if f.quad is not None]
    if not items:
        items = [(ln.text, ln.quad, True) for ln in result.lines]
    size = max(12, int(min(im.size) / 30))
    font = _font(size)
    for text, quad, ok in items:
        q = [tuple(float(v) for v in p) for p in np.asarray(quad)]
        color = (0, 200, 0) if ok else (230, 120, 0)
        d.polygon(q, outline=color, width=max(2, size // 8))
        x, y = q[0][0], max(0.0, q[0][1] - size - 4)
        box = d.textbbox((x, y), text, font=font)
        d.rectangle(box, fill=(0, 0, 0))
        d.text((x, y), text, fill=color, font=font)
    try:
        im.save(path)
    except (OSError, ValueError) as e:
        raise XnnError(f"cannot write {path}: {e}") from None
