"""Connected-component labelling of a binary map (the text detector's kernels, xnn.ocr.detect).

Semantics: 8-connectivity; labels 1..K numbered in row-major order of each component's first
pixel; 0 is background. One row-major pass links every set pixel to its already-visited set
neighbours (left, up-left, up, up-right) with union-find whose root is always the smaller linear
index, so a component's root is its first pixel; a second pass numbers the roots in order.
Tests compare with a breadth-first flood fill (tests/test_ocr_pipeline.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _find(parent, a):
    r = a
    while parent[r] != r:
        r = parent[r]
    while parent[a] != r:          # path compression
        nxt = parent[a]
        parent[a] = r
        a = nxt
    return r


@njit(cache=True)
def label_kernel(mask, out):
    """mask (h, w) bool -> out (h, w) int64 labels; returns the number of components."""
    h, w = mask.shape
    parent = np.empty(h * w, np.int64)
    for i in range(h):
        for j in range(w):
            p = i * w + j
            if not mask[i, j]:
                continue
            parent[p] = p
            for di, dj in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
                a, b = i + di, j + dj
                if a < 0 or b < 0 or b >= w or not mask[a, b]:
                    continue
                rx, ry = _find(parent, p), _find(parent, a * w + b)
                if rx != ry:
                    if rx < ry:
                        parent[ry] = rx
                    else:
                        parent[rx] = ry
    n = 0
    for i in range(h):
        for j in range(w):
            if not mask[i, j]:
                out[i, j] = 0
                continue
            p = i * w + j
            r = _find(parent, p)
            if r == p:
                n += 1
                out[i, j] = n
            else:
                out[i, j] = out[r // w, r % w]
    return n
