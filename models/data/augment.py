"""Shared augmentation: camera geometry (homographies), backgrounds and textures, photometric effects.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [j, j+1) x [i, i+1), so a quad drawn
around a text bounding box uses the box edges. Pillow's PERSPECTIVE transform samples the input at
H^-1 applied to each output pixel centre, which is the same convention, so points mapped with
`apply_h(H, pts)` land where the warped pixels land.

Every function takes a numpy Generator and draws from it in a fixed order, so a seed fixes the output.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from xnn.ocr.geometry import homography  # noqa: F401  (shared with the line rectifier)

# ---------------------------------------------------------------------------------------------------
# geometry


def apply_h(h: np.ndarray, pts) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return (p[:, :2] / p[:, 2:3]).astype(np.float32)


def rect_quad(x0, y0, x1, y1) -> np.ndarray:
    """Axis-aligned box as a quad: top-left, top-right, bottom-right, bottom-left (clockwise, y down)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def signed_area(quad) -> float:
    """Shoelace area; positive for clockwise order on screen (y axis down)."""
    q = np.asarray(quad, np.float64)
    x, y = q[:, 0], q[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def camera_quad(rng, w, h, max_tilt=25.0, max_roll=10.0, big_roll_p=0.05, big_roll=30.0) -> np.ndarray:
    """Corners of a w x h planar document seen by a pinhole camera, in arbitrary image units.

    The document (z = 0, centred) is rotated by tilts about its x and y axes (|angle| <= max_tilt, deg),
    then in-plane roll, placed at distance d = f along the optical axis and projected u = f X / Z.
    Focal f in [1, 3] document widths spans wide-angle (strong keystone) to tele (near affine).
    All corners stay in front of the camera (Z >= d - w/2 > 0), so the order stays clockwise."""
    ax, ay = np.deg2rad(rng.uniform(-max_tilt, max_tilt, 2))
    roll_lim = big_roll if rng.random() < big_roll_p else max_roll
    az = np.deg2rad(rng.uniform(-roll_lim, roll_lim))
    f = max(w, h) * rng.uniform(1.0, 3.0)
    cx, sx = np.cos(ax), np.sin(ax)
    cy, sy = np.cos(ay), np.sin(ay)
    cz, sz = np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    corners = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    p = corners @ (rz @ rx @ ry).T + np.array([0, 0, f])
    return p[:, :2] * (f / p[:, 2:3])


def sample_view(rng, src_w, src_h, out_w, out_h, fill=(0.6, 0.92), **camera) -> np.ndarray:
    """Homography taking a src_w x src_h document into an out_w x out_h frame, entirely inside it.

    The projected corners' bounding box is scaled to `fill` (a fraction drawn from the range) of the
    largest size that fits, then placed uniformly in the remaining margin. The document is convex and
    in front of the camera, so everything drawn on it maps inside the frame too."""
    q = camera_quad(rng, src_w, src_h, **camera)
    lo, hi = q.min(0), q.max(0)
    bw, bh = hi - lo
    k = rng.uniform(*fill) * min(out_w / bw, out_h / bh)
    tx = rng.uniform(0, out_w - k * bw)
    ty = rng.uniform(0, out_h - k * bh)
    dst = (q - lo) * k + [tx, ty]
    return homography(rect_quad(0, 0, src_w, src_h), dst)


def warp_onto(bg: Image.Image, doc: Image.Image, h: np.ndarray) -> Image.Image:
    """Composite RGBA `doc` warped by `h` over RGB `bg`. A doc shrunk below 0.75x is first reduced with
    a box filter (Pillow's transform point-samples, which would alias), and h is corrected for it."""
    w, hh = doc.size
    src = rect_quad(0, 0, w, hh)
    dst = apply_h(h, src)
    scale = np.sqrt(abs(signed_area(dst)) / (w * hh))
    if scale < 0.75:
        nw, nh = max(1, round(w * scale)), max(1, round(hh * scale))
        doc = doc.resize((nw, nh), Image.BOX)
        h = h @ np.diag([w / nw, hh / nh, 1.0])
    inv = np.linalg.inv(h)
    inv = inv / inv[2, 2]
    out = doc.transform(bg.size, Image.PERSPECTIVE, tuple(inv.ravel()[:8]), Image.BILINEAR)
    res = bg.convert("RGB").copy()
    res.paste(out.convert("RGB"), (0, 0), out.getchannel("A"))
    return res


# ---------------------------------------------------------------------------------------------------
# colors and procedural textures (all return float32 HxWx3 in [0, 255] or uint8 where stated)


def rand_color(rng, lo=0, hi=255) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def luminance(c) -> float:
    c = np.asarray(c, np.float32)
    return float(c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114)


def _grid(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return x / max(w, h), y / max(w, h)


def value_noise(rng, w, h, cells=(2, 8), octaves=3) -> np.ndarray:
    """Smooth noise in [0, 1]: octaves of random grids bicubic-upsampled (Pillow), amplitudes 1/2^k."""
    acc = np.zeros((h, w), np.float32)
    c = rng.uniform(*cells)
    amp, tot = 1.0, 0.0
    for _ in range(octaves):
        gw, gh = max(2, int(c * w / max(w, h)) + 2), max(2, int(c * h / max(w, h)) + 2)
        g = Image.fromarray((rng.random((gh, gw)) * 255).astype(np.uint8))
        acc += amp * np.asarray(g.resize((w, h), Image.BICUBIC), np.float32) / 255.0
        tot += amp
        amp *= 0.5
        c *= 2.0
    return np.clip(acc / tot, 0, 1)


def blend2(t: np.ndarray, c0, c1) -> np.ndarray:
    return (1 - t)[..., None] * np.asarray(c0, np.float32) + t[..., None] * np.asarray(c1, np.float32)


def gradient(rng, w, h, c0=None, c1=None, radial=None) -> np.ndarray:
    c0 = rand_color(rng) if c0 is None else c0
    c1 = rand_color(rng) if c1 is None else c1
    x, y = _grid(w, h)
    if radial if radial is not None else rng.random() < 0.3:
        cx, cy = rng.uniform(0, w / max(w, h)), rng.uniform(0, h / max(w, h))
        t = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(0.5, 1.5)
    else:
        a = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(a) + y * np.sin(a)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return blend2(np.clip(t, 0, 1), c0, c1)


def texture(rng, w, h, kind: str | None = None) -> np.ndarray:
    """A procedural surface: gradient, noise (stone/paper), wood, stripes, plaid, clutter or bokeh."""
    kinds = ["gradient", "noise", "wood", "stripes", "plaid", "clutter", "bokeh"]
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    c0, c1 = rand_color(rng), rand_color(rng)
    x, y = _grid(w, h)
    if kind == "gradient":
        img = gradient(rng, w, h, c0, c1)
    elif kind == "noise":
        img = blend2(value_noise(rng, w, h, (3, 12), 4), c0, c1)
    elif kind == "wood":
        n = value_noise(rng, w, h, (1, 3), 2)
        a = rng.uniform(0, np.pi)
        t = (x * np.cos(a) + y * np.sin(a)) * rng.uniform(10, 40) + n * rng.uniform(4, 12)
        img = blend2(0.5 + 0.5 * np.sin(t), c0, c1 * 0.7 + c0 * 0.3)
    elif kind in ("stripes", "plaid"):
        a = rng.uniform(0, np.pi)
        fr = rng.uniform(8, 60)
        t = 0.5 + 0.5 * np.sign(np.sin((x * np.cos(a) + y * np.sin(a)) * fr))
        if kind == "plaid":
            t2 = 0.5 + 0.5 * np.sign(np.sin((-x * np.sin(a) + y * np.cos(a)) * fr * rng.uniform(0.5, 2)))
            t = 0.5 * (t + t2)
        img = blend2(t.astype(np.float32), c0, c1)
    elif kind == "clutter":
        im = Image.fromarray(gradient(rng, w, h, c0, c0 * 0.8).astype(np.uint8))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(4, 14))):
            x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
            x1, y1 = x0 + rng.uniform(0.05, 0.6) * w, y0 + rng.uniform(0.05, 0.6) * h
            col = tuple(int(v) for v in rand_color(rng))
            shape = rng.integers(3)
            if shape == 0:
                d.rectangle([x0, y0, x1, y1], fill=col)
            elif shape == 1:
                d.ellipse([x0, y0, x1, y1], fill=col)
            else:
                d.line([x0, y0, x1, y1], fill=col, width=int(rng.integers(1, 8)))
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2.5)))
        img = np.asarray(im, np.float32)
    else:  # bokeh: blurred bright discs over a dark-ish gradient
        im = Image.fromarray(gradient(rng, w, h, c0 * 0.5, c1 * 0.5).astype(np.uint8))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(5, 25))):
            r = rng.uniform(0.02, 0.12) * max(w, h)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in rand_color(rng, 120)))
        img = np.asarray(im.filter(ImageFilter.GaussianBlur(max(w, h) * rng.uniform(0.005, 0.03))), np.float32)
    return img.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# real photos: scikit-image's bundled sample images, read straight from its data folder with Pillow
# (no import of skimage, no network). Images that show text are left out: text in a background would
# be unlabelled text for the detector.
PHOTO_FILES = ["astronaut.png", "coffee.png", "chelsea.png", "camera.png", "gravel.png", "brick.png",
               "grass.png", "hubble_deep_field.jpg", "moon.png", "horse.png", "retina.jpg", "ihc.png",
               "cell.png", "microaneurysms.png"]


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    out = []
    for name in PHOTO_FILES:
        p = os.path.join(folder, name)
        if os.path.exists(p):
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
    return tuple(out)


def photo_crop(rng, w, h) -> np.ndarray | None:
    """A random crop of a bundled photo, rescaled to w x h, maybe mirrored and colour-jittered."""
    ph = photos()
    if not ph:
        return None
    src = ph[int(rng.integers(len(ph)))]
    sh, sw = src.shape[:2]
    s = rng.uniform(0.3, 1.0) * min(sw / w, sh / h)
    cw, ch = max(8, int(w * s)), max(8, int(h * s))
    x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
    crop = Image.fromarray(src[y0:y0 + ch, x0:x0 + cw]).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    img = np.asarray(crop, np.float32) * rng.uniform(0.7, 1.2, 3).astype(np.float32)
    return np.clip(img, 0, 255)


def background(rng, w, h, photo_p=0.4) -> np.ndarray:
    """Scene behind a document: a real photo crop (if available) or a procedural texture; uint8."""
    img = photo_crop(rng, w, h) if rng.random() < photo_p else None
    if img is None:
        img = texture(rng, w, h)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# photometric effects on uint8 HxWx3 arrays


def lighting(rng, img: np.ndarray, strength=1.0) -> np.ndarray:
    """Exposure, contrast, white balance, a linear illumination gradient and a vignette:
    out = ((img - m) * contrast + m) * gain_c * (1 + a * ramp) * (1 - v * r^2) + bias."""
    f = img.astype(np.float32)
    h, w = f.shape[:2]
    m = f.mean()
    f = (f - m) * rng.uniform(1 - 0.3 * strength, 1 + 0.2 * strength) + m
    f *= (1 + rng.uniform(-0.08, 0.08, 3) * strength).astype(np.float32)
    x, y = _grid(w, h)
    a = rng.uniform(0, 2 * np.pi)
    ramp = (x * np.cos(a) + y * np.sin(a))
    ramp = (ramp - ramp.mean()) / max(1e-6, float(np.abs(ramp).max()))
    shade = 1 + rng.uniform(0, 0.45) * strength * ramp
    r2 = (x - x.mean()) ** 2 + (y - y.mean()) ** 2
    shade *= 1 - rng.uniform(0, 0.5) * strength * r2 / max(1e-6, float(r2.max()))
    f = f * shade[..., None] + rng.uniform(-25, 25) * strength
    return np.clip(f, 0, 255).astype(np.uint8)


def glare(rng, img: np.ndarray, amp=(60, 200)) -> np.ndarray:
    """Specular highlight: + A exp(-(u^2/sx^2 + v^2/sy^2)/2) in a rotated (u, v) frame, white, clipped.
    A strong one washes out part of the text; the caller keeps amplitudes where text stays legible."""
    h, w = img.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    t = rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(t) + (y - cy) * np.sin(t)
    v = -(x - cx) * np.sin(t) + (y - cy) * np.cos(t)
    sx, sy = rng.uniform(0.05, 0.35) * w, rng.uniform(0.02, 0.15) * h
    g = rng.uniform(*amp) * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return np.clip(img.astype(np.float32) + g[..., None], 0, 255).astype(np.uint8)


def shadow(rng, img: np.ndarray) -> np.ndarray:
    """A soft-edged cast shadow over a half-plane: multiply by 1 - s * sigmoid(dist / softness)."""
    h, w = img.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    px, py = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    dist = (x - px) * np.cos(a) + (y - py) * np.sin(a)
    soft = rng.uniform(2, 0.1 * max(w, h))
    k = 1 - rng.uniform(0.2, 0.5) / (1 + np.exp(-dist / soft))
    return np.clip(img.astype(np.float32) * k[..., None], 0, 255).astype(np.uint8)


def blur(rng, img: np.ndarray, max_sigma=1.3) -> np.ndarray:
    """Defocus (Gaussian, sigma <= max_sigma px) or linear motion blur (a 5x5 line kernel)."""
    im = Image.fromarray(img)
    if rng.random() < 0.7:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, max_sigma)))
    else:
        k = np.zeros((5, 5), np.float32)
        a = rng.uniform(0, np.pi)
        for t in np.linspace(-2, 2, 9):
            k[int(round(2 + t * np.sin(a))), int(round(2 + t * np.cos(a)))] += 1
        im = im.filter(ImageFilter.Kernel((5, 5), k.ravel().tolist(), float(k.sum())))
    return np.asarray(im)


def noise(rng, img: np.ndarray, max_sigma=8.0) -> np.ndarray:
    """Additive Gaussian sensor noise, luma plus a weaker chroma part; sigma in 0-255 units."""
    s = rng.uniform(0, max_sigma)
    n = rng.standard_normal(img.shape[:2], dtype=np.float32)[..., None] * s
    n = n + rng.standard_normal(img.shape, dtype=np.float32) * (s * 0.3)
    return np.clip(img + n, 0, 255).astype(np.uint8)


def jpeg(rng, img: np.ndarray, quality=(30, 95)) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(rng.integers(quality[0], quality[1] + 1)))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def low_res(rng, img: np.ndarray, factor=(1.0, 2.0)) -> np.ndarray:
    """Down- then up-sampling by a factor drawn from `factor`: a cheap camera's soft detail."""
    f = rng.uniform(*factor)
    if f < 1.05:
        return img
    h, w = img.shape[:2]
    im = Image.fromarray(img).resize((max(8, int(w / f)), max(8, int(h / f))), Image.BILINEAR)
    return np.asarray(im.resize((w, h), Image.BILINEAR))


def camera_effects(rng, img: np.ndarray, strength=1.0, glare_p=0.3, glare_amp=(60, 180)) -> np.ndarray:
    """The photometric chain, fixed order: lighting, glare, shadow, resolution, blur, noise, JPEG.
    Every stage draws its random numbers whether or not it is applied, so a change of one probability
    does not reshuffle the others."""
    img = lighting(rng, img, strength)
    r = rng.random(6)
    sub = [np.random.default_rng(int(s)) for s in rng.integers(0, 2**31, 6)]
    if r[0] < glare_p:
        img = glare(sub[0], img, glare_amp)
    if r[1] < 0.2 * strength:
        img = shadow(sub[1], img)
    if r[2] < 0.3 * strength:
        img = low_res(sub[2], img)
    if r[3] < 0.5 * strength:
        img = blur(sub[3], img)
    if r[4] < 0.7 * strength:
        img = noise(sub[4], img)
    if r[5] < 0.8:
        img = jpeg(sub[5], img)
    return img
