"""Synthetic OCR data: bank cards, meters, Chinese plates, VIN plates, Chinese ID cards.

    from models.data import render_pages, render_lines, generate
    pages = render_pages("card", 8, seed=0)      # [(image HxWx3 uint8, [(text, quad 4x2), ...]), ...]
    lines = render_lines("plate", 64, seed=0)    # [(line image 32xWx3 uint8, text), ...]
    s = generate("meter", seed=0, index=3)       # Sample: image, lines (text, quad, field, meta), meta

Sample `index` of `seed` is drawn from numpy's default_rng([seed, index]) alone, so it does not depend
on how many samples are rendered around it, and different seeds give independent streams (use
disjoint seeds for training and evaluation). Quads are float32 (4, 2): the text's top-left, top-right,
bottom-right, bottom-left corners in image pixels (clockwise on screen), after all augmentation.

Needs Pillow and the fonts of models/setup_data.sh; scikit-image is optional (its bundled photos
become backgrounds when installed).
"""
from __future__ import annotations

import importlib

import numpy as np

from xnn.ocr.geometry import quad_axis

from .base import Line, Sample, crop_line

__all__ = ["DOMAINS", "Line", "Sample", "alphabet", "crop_line", "generate", "generate_frames", "render_lines",
           "render_pages"]

# domain -> (module, generator function)
DOMAINS = {
    "card": ("card", "generate"),
    "meter": ("meter", "generate"),
    "plate": ("plate", "generate"),
    "vin": ("plate", "generate_vin"),
    "idcard": ("idcard", "generate"),
}


def _gen(domain: str):
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {sorted(DOMAINS)}")
    mod, fn = DOMAINS[domain]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), fn)


def generate(domain: str, seed: int = 0, index: int = 0, **kw) -> Sample:
    return _gen(domain)(np.random.default_rng([seed, index]), **kw)


def alphabet(domain: str, field: str) -> str:
    """Characters that lines of `field` may contain (recognizer charsets are unions of these)."""
    mod, _ = DOMAINS[domain]
    m = importlib.import_module(f"{__name__}.{mod}")
    table = getattr(m, "VIN_ALPHABETS" if domain == "vin" else "ALPHABETS")
    return table[field]() if callable(table[field]) else table[field]


def generate_frames(domain: str, n: int, seed: int = 0, index: int = 0) -> list:
    """n camera views of ONE document, like a burst of video frames: the document of
    generate(domain, seed, index) is rendered once and composed n times, view k with its own camera
    geometry, background and photometric effects from default_rng([seed, index, 2, k]) (frame 0 is
    not generate()'s image)."""
    mod = importlib.import_module(f"{__name__}.{DOMAINS[domain][0]}") if domain in DOMAINS else None
    if mod is None:
        raise ValueError(f"unknown domain {domain!r}; choose from {sorted(DOMAINS)}")
    from . import base

    calls = []

    def capture(rng, doc, lines, out_size, dom, meta=None, **kw):   # the generator's last step
        calls.append((doc, lines, out_size, dom, meta, kw))
        return base.compose(rng, doc, lines, out_size, dom, meta, **kw)

    orig = mod.compose
    mod.compose = capture
    try:
        generate(domain, seed, index)
    finally:
        mod.compose = orig
    doc, lines, out_size, dom, meta, kw = calls[-1]
    return [base.compose(np.random.default_rng([seed, index, 2, k]), doc, lines, out_size, dom, meta, **kw)
            for k in range(n)]


def render_pages(domain: str, n: int, seed: int = 0, start: int = 0, **kw):
    """n full images with every line's (text, quad): samples start .. start+n-1 of `seed`."""
    out = []
    for i in range(start, start + n):
        s = generate(domain, seed, i, **kw)
        out.append((s.image, [(ln.text, ln.quad) for ln in s.lines]))
    return out


def _with_caption(q, lh, captions, rng, p):
    """q with its left end moved out over a caption on its row that ends at most 2 line heights before
    q starts (probability p, drawn only when there is one), else q."""
    u = quad_axis(q)
    v = np.array([-u[1], u[0]])
    c0 = q.mean(0)
    start = float(((q - c0) @ u).min())
    for cq in captions:
        d = (np.asarray(cq, np.float64) - c0)
        along = d @ u
        if abs(float(d.mean(0) @ v)) < 0.6 * lh and start - 2 * lh < along.max() < start + 0.5 * lh \
                and along.min() < start:
            if rng.random() < p:
                shift = (float(along.min()) - start) * u
                q = q.copy()
                q[0] += shift
                q[3] += shift
            return q
    return q


def render_lines(domain: str, n: int, seed: int = 0, height: int = 32, fields=None, jitter: float = 0.05,
                 max_width: int | None = None, start: int = 0, box_jitter: float = 0.0,
                 merge_captions: float = 0.0):
    """n (line image, text) pairs, rectified to `height` rows by crop_line from consecutive samples of
    `seed`. fields: only lines of these fields (e.g. ("number",)); default: every line. jitter moves
    each quad corner by up to jitter x line height (uniform), like an imprecise detector box, drawn
    from default_rng([seed, index, 1]) so the pages stay identical to render_pages'. box_jitter b
    (then drawn from the same generator) moves each end of the box along the line, outwards by up to
    3b or inwards by up to b, and its top and bottom edges across it by up to b line heights, like
    the text detector's boxes, whose ends are off by ~0.3-0.6 (mostly too long) and edges by
    ~0.1-0.35 line heights (medians on held-out pages). merge_captions p: a line with a small
    caption in front of it on its row (a "label" line, e.g. VALID THRU before a card's expiry) is
    cropped with probability p from a box that takes the caption in too, as the detector boxes
    them as one line; its text stays the field's (the model learns to pass over captions)."""
    fields = set(fields) if fields else None
    out = []
    i = start
    while len(out) < n:
        s = generate(domain, seed, i)
        rng = np.random.default_rng([seed, i, 1])
        for ln in s.lines:
            if fields is not None and ln.field not in fields:
                continue
            q = ln.quad.astype(np.float64)
            lh = 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
            if merge_captions > 0:
                q = _with_caption(q, lh, [c.quad for c in s.lines if c.field == "label"], rng, merge_captions)
            q = q + rng.uniform(-jitter, jitter, (4, 2)) * lh
            if box_jitter > 0:
                u = (q[1] - q[0]) + (q[2] - q[3])
                u = u / max(1e-9, float(np.linalg.norm(u)))
                v = np.array([-u[1], u[0]])
                a = rng.uniform(-3 * box_jitter, box_jitter, 2) * lh * [1, -1]   # left, right end (mostly out)
                b = rng.uniform(-box_jitter, box_jitter, 2) * lh            # top edge, bottom edge
                q = q + np.outer([a[0], a[1], a[1], a[0]], u) + np.outer([b[0], b[0], b[1], b[1]], v)
            out.append((crop_line(s.image, q, height, max_width=max_width), ln.text))
            if len(out) == n:
                break
        i += 1
        if i - start > 100 * n + 100:
            raise ValueError(f"no lines of fields {sorted(fields)} in domain {domain!r}")
    return out
