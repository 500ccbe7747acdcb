"""Detector spec, input preparation and training targets (NumPy only: no TensorFlow, no Numba).

Geometry (EAST's RBOX, see xnn/ocr/detect.py for the decoding): a ground-truth quad q0..q3 (TL, TR,
BR, BL) becomes the rotated rectangle with reading direction θ = atan2 of (q1 - q0) + (q2 - q3) and,
in the frame u = x cos θ + y sin θ, v = -x sin θ + y cos θ,
    u_l = (u0 + u3)/2, u_r = (u1 + u2)/2, v_t = (v0 + v1)/2, v_b = (v2 + v3)/2
(exact for rectangles; the least-squares rectangle of a mildly perspective quad).
Targets on the stride-s grid, pixel centre c = s·(j + 1/2, i + 1/2), with (p_u, p_v) = c in the frame:
    kernel  |p_v - v_c| <= k_v, |p_u - u_c| <= k_u,  v_c, u_c the box centre,
            k_v = clip((1/2 - r)·h, s/2, h/2), k_u = clip(w/2 - r·h, s/2, w/2), h = v_b - v_t,
            w = u_r - u_l, r = SHRINK (k >= s/2 keeps at least one grid row/column in thin lines)
    score   1 in kernels, 0 elsewhere; mask 0 (ignored) inside a box but outside its kernel
    geo     log(1 + d/d0) of d = (p_v - v_t, u_r - p_u, v_b - p_v, p_u - u_l), and θ
Overlaps: smaller boxes are drawn last (win).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import numpy as np

SHRINK = 0.3
# page seeds: training shard k uses TRAIN_SEED_BASE + k; the others are never trained on
TRAIN_SEED_BASE = 2_000_000
VAL_SEED = 7
TEST_SEED = 8
CALIB_SEED = 9
DOMAINS = ("card", "meter", "plate", "vin", "idcard")


def _post():
    """xnn.ocr.detect; loaded from its file where the xnn package cannot import (the TensorFlow venv
    lacks Numba). The module itself imports only NumPy."""
    try:
        from xnn.ocr import detect
        return detect
    except ImportError:
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "xnn", "ocr", "detect.py")
        spec = importlib.util.spec_from_file_location("_xnn_ocr_detect", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


post = _post()


@dataclasses.dataclass(frozen=True)
class DetSpec:
    name: str = "detector"
    height: int = 320          # input rows (multiple of 32)
    width: int = 480           # input columns (multiple of 32)
    stride: int = 4            # output grid step in input pixels
    d0: float = 4.0            # log-distance unit
    widths: tuple = (16, 32, 64, 96, 128)  # channels at 1/2, 1/4, 1/8, 1/16, 1/32
    fpn: int = 48              # channels of the upsampling path
    groups: int = 4            # group convs in shuffle units
    units: tuple = (1, 2, 2)   # shuffle units at 1/8, 1/16, 1/32
    domains: tuple = DOMAINS

    @property
    def out_shape(self):
        return (self.height // self.stride, self.width // self.stride, 6)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, s: str) -> "DetSpec":
        d = json.loads(s)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def to_input(batch_u8: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, H, W, 1) float32 in [0, 1]."""
    return (np.asarray(batch_u8, np.float32) / 255.0)[..., None]


def prepare(image, quads, spec: DetSpec):
    """Page + page-pixel quads -> (letterboxed gray (H, W) uint8, quads in input pixels, scale)."""
    x, s = post.letterbox(image, spec.height, spec.width)
    q = np.asarray(quads, np.float64).reshape(-1, 4, 2) * s
    return x, q.astype(np.float32), s


def rbox(q: np.ndarray):
    """quad (4, 2) -> (θ, u_l, u_r, v_t, v_b) as in the module docstring."""
    q = np.asarray(q, np.float64)
    dx, dy = (q[1] - q[0]) + (q[2] - q[3])
    th = float(np.arctan2(dy, dx))
    c, s = np.cos(th), np.sin(th)
    u = q[:, 0] * c + q[:, 1] * s
    v = -q[:, 0] * s + q[:, 1] * c
    return th, (u[0] + u[3]) / 2, (u[1] + u[2]) / 2, (v[0] + v[1]) / 2, (v[2] + v[3]) / 2


def targets(quads, spec: DetSpec):
    """Input-pixel quads -> score (H', W'), mask (H', W'), geo (H', W', 5) float32."""
    H, W, _ = spec.out_shape
    s = spec.stride
    cy, cx = np.meshgrid(s * (np.arange(H) + 0.5), s * (np.arange(W) + 0.5), indexing="ij")
    score = np.zeros((H, W), np.float32)
    mask = np.ones((H, W), np.float32)
    geo = np.zeros((H, W, 5), np.float32)
    boxes = [rbox(q) for q in np.asarray(quads, np.float64).reshape(-1, 4, 2)]
    boxes = [b for b in boxes if b[2] - b[1] > 1 and b[4] - b[3] > 1]
    boxes.sort(key=lambda b: -(b[2] - b[1]) * (b[4] - b[3]))
    frames = []
    for th, ul, ur, vt, vb in boxes:
        c, sn = np.cos(th), np.sin(th)
        pu, pv = cx * c + cy * sn, -cx * sn + cy * c
        frames.append((pu, pv))
        mask[(pu >= ul) & (pu <= ur) & (pv >= vt) & (pv <= vb)] = 0
    for (th, ul, ur, vt, vb), (pu, pv) in zip(boxes, frames):
        h, w = vb - vt, ur - ul
        kv = np.clip((0.5 - SHRINK) * h, s / 2, h / 2)
        ku = np.clip(w / 2 - SHRINK * h, s / 2, w / 2)
        k = (np.abs(pv - (vt + vb) / 2) <= kv) & (np.abs(pu - (ul + ur) / 2) <= ku)
        score[k], mask[k] = 1, 1
        d = np.stack([pv[k] - vt, ur - pu[k], vb - pv[k], pu[k] - ul], -1)
        geo[k, :4] = np.log1p(np.maximum(d, 0) / spec.d0)
        geo[k, 4] = th
    return score, mask, geo


def encode(quads, spec: DetSpec) -> np.ndarray:
    """The ideal model output (H', W', 6): [score, geo] (used by tests: decode(encode(q)) ≈ q)."""
    score, _, geo = targets(quads, spec)
    return np.concatenate([score[..., None], geo], -1)


def render_set(spec: DetSpec, n: int, seed: int, start: int = 0):
    """n prepared pages, cycling through spec.domains (page i: domain i mod len, index i of `seed`):
    (x (n, H, W) uint8, quads (M, 4, 2) float32 in input pixels, owner (M,) page index,
    scales (n,), domains (n,))."""
    from .data import generate

    xs, qs, owner, scales, doms = [], [], [], [], []
    for i in range(start, start + n):
        dom = spec.domains[i % len(spec.domains)]
        smp = generate(dom, seed, i)
        x, q, sc = prepare(smp.image, [ln.quad for ln in smp.lines], spec)
        xs.append(x)
        qs.append(q)
        owner += [i - start] * len(q)
        scales.append(sc)
        doms.append(dom)
    return (np.stack(xs), np.concatenate(qs).reshape(-1, 4, 2).astype(np.float32), np.array(owner, np.int64),
            np.array(scales, np.float32), np.array(doms, dtype=str))


def batch_targets(quads, owner, idx, spec: DetSpec):
    """Targets of pages idx: score (B, H', W', 1), mask (B, H', W', 1), geo (B, H', W', 5)."""
    out = [targets(quads[owner == i], spec) for i in idx]
    return (np.stack([o[0] for o in out])[..., None], np.stack([o[1] for o in out])[..., None],
            np.stack([o[2] for o in out]))
