"""Records shared by all generators (Line, Sample), text rasterization with tight ink boxes, page
composition (document -> camera view -> photometric chain) and the line rectifier `crop_line`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from xnn.ocr.geometry import crop_line  # noqa: F401  (the rectifier lives in the package: inference uses it)

from . import augment, fonts


@dataclass
class Line:
    """One text line. quad: float32 (4, 2) image coordinates of the text's top-left, top-right,
    bottom-right, bottom-left corners (clockwise on screen), the box around its ink. field names what
    the line is (e.g. 'number', 'name', 'label'); meta holds extras (e.g. meter 'rolled'; every line
    of a Sample has 'height_px', its text height in the image, to filter out unreadably small text)."""
    text: str
    quad: np.ndarray
    field: str
    meta: dict = field(default_factory=dict)


@dataclass
class Sample:
    image: np.ndarray            # HxWx3 uint8 RGB
    lines: list[Line]
    domain: str
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# text


@dataclass
class Ink:
    mask: Image.Image            # L, tight around the ink
    baseline: int                # baseline row inside mask
    char_boxes: list             # per non-space char: (x0, x1) columns inside mask

    @property
    def width(self) -> int:
        return self.mask.width

    @property
    def height(self) -> int:
        return self.mask.height


def ink(text: str, face, size: float, tracking: float = 0.0, gaps: dict | None = None) -> Ink:
    """Rasterize text char by char: pen advance = glyph advance + tracking (px), plus gaps[i] px after
    char i. The mask is cropped to the ink's bounding box, so the box is the line's quad."""
    f = fonts.font(face, round(size))
    asc, desc = f.getmetrics()
    pad = int(size) + 4
    adv = [f.getlength(c) for c in text]
    gaps = gaps or {}
    total = sum(adv) + tracking * len(text) + sum(gaps.values())
    im = Image.new("L", (int(total) + 2 * pad, asc + desc + 2 * pad), 0)
    d = ImageDraw.Draw(im)
    x = float(pad)
    spans = []
    for i, c in enumerate(text):
        if not c.isspace():
            d.text((x, pad + asc), c, font=f, fill=255, anchor="ls")
            spans.append((x, x + adv[i]))
        x += adv[i] + tracking + gaps.get(i, 0)
    box = im.getbbox()
    if box is None:
        raise ValueError(f"text {text!r} has no ink in {face}")
    return Ink(im.crop(box), pad + asc - box[1], [(a - box[0], b - box[0]) for a, b in spans])


def paste_ink(img: Image.Image, mask: Image.Image, x: float, y: float, color, alpha: float = 1.0) -> np.ndarray:
    """Fill `color` through `mask` with its top-left at (x, y) (rounded); returns the quad it covers."""
    x, y = int(round(x)), int(round(y))
    m = mask if alpha >= 1 else mask.point(lambda v: int(v * alpha))
    img.paste(tuple(int(c) for c in color), (x, y), m)
    return augment.rect_quad(x, y, x + mask.width, y + mask.height)


def emboss(img: Image.Image, mask: Image.Image, x: float, y: float, face_color, depth: int = 1,
           highlight=(255, 255, 255), shade=(0, 0, 0), strength: float = 0.6) -> np.ndarray:
    """Raised characters lit from the top-left: shade offset (+d, +d), highlight (-d, -d), then the face.
    Swap highlight and shade for stamped (recessed) characters."""
    paste_ink(img, mask, x + depth, y + depth, shade, strength)
    paste_ink(img, mask, x - depth, y - depth, highlight, strength * 0.8)
    return paste_ink(img, mask, x, y, face_color)


def contrast_color(rng, under, min_diff=90.0):
    """A text colour whose luminance differs from `under` by at least min_diff (when possible)."""
    lum = augment.luminance(under)
    for _ in range(20):
        c = augment.rand_color(rng)
        if abs(augment.luminance(c) - lum) >= min_diff:
            return c
    return np.array([0, 0, 0] if lum > 127 else [255, 255, 255], np.float32)


# ---------------------------------------------------------------------------------------------------
# pages


def compose(rng, doc: Image.Image, lines: list[Line], out_size, domain: str, meta: dict | None = None,
            view: dict | None = None, effects: dict | None = None, bg_photo_p: float = 0.4) -> Sample:
    """Document (RGBA, lines in its pixel frame) -> background, camera view, photometric chain."""
    for ln in lines:  # a line must lie on the document, else its text was clipped
        q = ln.quad
        if q.min() < 0 or (q[:, 0] > doc.width).any() or (q[:, 1] > doc.height).any():
            raise AssertionError(f"{domain}: line {ln.text!r} ({ln.field}) leaves the document: {q.tolist()}")
    w, h = out_size
    bg = Image.fromarray(augment.background(rng, w, h, bg_photo_p))
    hm = augment.sample_view(rng, doc.width, doc.height, w, h, **(view or {}))
    img = np.asarray(augment.warp_onto(bg, doc, hm))
    img = augment.camera_effects(rng, img, **(effects or {}))
    out = []
    for ln in lines:
        q = augment.apply_h(hm, ln.quad)
        # text height in the output image: mean length of the quad's left and right edges
        hpx = 0.5 * float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
        out.append(Line(ln.text, q, ln.field, {**ln.meta, "height_px": round(hpx, 1)}))
    meta = dict(meta or {})
    meta["doc_quad"] = augment.apply_h(hm, augment.rect_quad(0, 0, doc.width, doc.height))
    return Sample(np.ascontiguousarray(img, dtype=np.uint8), out, domain, meta)


def rounded_alpha(doc: Image.Image, radius: float) -> Image.Image:
    a = Image.new("L", doc.size, 0)
    ImageDraw.Draw(a).rounded_rectangle([0, 0, doc.width - 1, doc.height - 1], radius=radius, fill=255)
    out = doc.convert("RGBA")
    out.putalpha(a)
    return out
