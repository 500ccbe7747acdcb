"""Capture-quality check (xnn.ocr.quality): clean synthetic captures pass, each degradation raises its
own hint (and no unrelated error), the focus and exposure metrics behave (Gaussian-blur sigma recovered,
monotone in blur and gamma, contrast-invariant), quad metrics are right, bad input is rejected.

`python tests/test_ocr_quality.py [N] [SEED]` prints the calibration table quoted in the module's
docstring (false alarms on N clean samples per domain of SEED, detection of each degradation)."""
import json
import math
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnn.ocr import quality as Q

pytest.importorskip("PIL")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `models` is not installed

from models.data import DOMAINS, generate  # noqa: E402

SEED = 303          # neither the calibration seed (101) nor the held-out one (202)
N_CLEAN = 12        # clean samples per domain
N_DEGRADE = 3       # hint-free clean samples per domain that each degradation is applied to


# ---- degradations (NumPy) -----------------------------------------------------------------------

def gblur(img, sigma):
    """Gaussian blur (separable, radius 3 sigma, edge padding), rounded back to uint8."""
    if sigma < 1e-3:
        return img.copy()
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    f = img.astype(np.float32)
    extra = ((0, 0),) * (f.ndim - 2)
    p = np.pad(f, ((r, r), (0, 0)) + extra, mode="edge")
    f = sum(k[i] * p[i:i + f.shape[0]] for i in range(2 * r + 1))
    p = np.pad(f, ((0, 0), (r, r)) + extra, mode="edge")
    f = sum(k[i] * p[:, i:i + f.shape[1]] for i in range(2 * r + 1))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def exposure(img, k):
    return np.clip(np.rint(img.astype(np.float32) * k), 0, 255).astype(np.uint8)


def gamma(img, g):
    return np.clip(np.rint(255.0 * (img / 255.0) ** g), 0, 255).astype(np.uint8)


def contrast(img, k):
    f = img.astype(np.float32)
    m = f.mean()
    return np.clip(np.rint((f - m) * k + m), 0, 255).astype(np.uint8)


def quad_sizes(q):
    q = np.asarray(q, np.float64)
    hs = 0.5 * (np.linalg.norm(q[:, 3] - q[:, 0], axis=1) + np.linalg.norm(q[:, 2] - q[:, 1], axis=1))
    ws = 0.5 * (np.linalg.norm(q[:, 1] - q[:, 0], axis=1) + np.linalg.norm(q[:, 2] - q[:, 3], axis=1))
    return hs, ws


def glare_blob(img, quads, amp=300.0):
    """A specular highlight (Gaussian, + amp gray levels, clipped) centred on the biggest line, sized
    0.3 x its width by 1 x its height (at least 4% of the frame each way)."""
    h, w = img.shape[:2]
    q = np.asarray(quads, np.float64)
    hs, ws = quad_sizes(q)
    i = int(np.argmax(hs * ws))
    cx, cy = q[i].mean(0)
    sx, sy = max(0.3 * ws[i], 0.04 * w), max(hs[i], 0.04 * h)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = amp * np.exp(-0.5 * (((x + 0.5 - cx) / sx) ** 2 + ((y + 0.5 - cy) / sy) ** 2))
    return np.clip(img.astype(np.float32) + g[..., None], 0, 255).astype(np.uint8)


def downscale(img, quads, k: int):
    """Box-average by an integer factor k; quads scale by 1 / k."""
    h, w = img.shape[0] // k * k, img.shape[1] // k * k
    small = img[:h, :w].reshape(h // k, k, w // k, k, -1).mean((1, 3))
    return np.rint(small).astype(np.uint8), np.asarray(quads, np.float64) / k


def crop_through_line(img, quads, frac=0.55):
    """Keep the frame left of a cut through the widest line, at `frac` of its width."""
    q = np.asarray(quads, np.float64)
    i = int(np.argmax(quad_sizes(q)[1]))
    x0, x1 = q[i, :, 0].min(), q[i, :, 0].max()
    return img[:, :max(16, int(round(x0 + frac * (x1 - x0))))].copy(), q


def rotate_each(quads, deg):
    """Every quad rotated by deg (clockwise on screen) about its own centre."""
    q = np.asarray(quads, np.float64)
    t = np.radians(deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    c = q.mean(1, keepdims=True)
    return (q - c) @ r.T + c


def keystone(quads, k):
    """Right edges scaled by k and left edges by 2 - k about their midpoints (mean height kept)."""
    q = np.asarray(quads, np.float64).copy()
    for a, b, s in ((1, 2, k), (0, 3, 2 - k)):
        m = 0.5 * (q[:, a] + q[:, b])
        q[:, a] = m + (q[:, a] - m) * s
        q[:, b] = m + (q[:, b] - m) * s
    return q


def inside(quads, shape, margin=0.01):
    q = np.asarray(quads)
    h, w = shape[:2]
    m = margin * max(h, w)
    return q[..., 0].min() >= m and q[..., 1].min() >= m and q[..., 0].max() <= w - m and q[..., 1].max() <= h - m


def codes(report, severity=None):
    return {h.code for h in report.hints if severity is None or h.severity == severity}


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean():
    """domain -> [(image, quads)] for N_CLEAN samples of SEED."""
    out = {}
    for d in DOMAINS:
        out[d] = []
        for i in range(N_CLEAN):
            s = generate(d, SEED, i)
            out[d].append((s.image, np.stack([ln.quad for ln in s.lines]).astype(np.float64)))
    return out


@pytest.fixture(scope="module")
def base(clean):
    """domain -> the first N_DEGRADE clean samples with no hint at all (the degradations' baseline)."""
    out = {}
    for d, ss in clean.items():
        out[d] = [(img, q) for img, q in ss if not Q.check(img, q, d).hints][:N_DEGRADE]
        assert len(out[d]) == N_DEGRADE, f"{d}: too few hint-free clean samples"
    return out


# ---- clean captures pass ------------------------------------------------------------------------

def test_clean_samples_pass(clean):
    """Documented false-alarm rates (held-out seed): errors ~1%, any hint ~5% (mostly tilt warnings on
    the generator's genuinely rolled shots). Allowed here: errors <= 5%, hints <= 15%, <= 2 errors per
    domain, with and without quads."""
    n = 0
    err = {"quads": 0, "none": 0}
    hinted = {"quads": 0, "none": 0}
    for d, ss in clean.items():
        per_domain = 0
        for img, q in ss:
            for mode, r in (("quads", Q.check(img, q, d)), ("none", Q.check(img, None, d))):
                assert r.ok == (not codes(r, "error"))
                err[mode] += not r.ok
                hinted[mode] += bool(r.hints)
                per_domain += not r.ok
            n += 1
        assert per_domain <= 2, d
    for mode in err:
        assert err[mode] <= 0.05 * n, (mode, err[mode], n)
        assert hinted[mode] <= 0.15 * n, (mode, hinted[mode], n)


# ---- each degradation: its hint, no unrelated error ---------------------------------------------

def _degrade(name, img, q, d):
    """(image, quads, expected code, expected severity or None for either)."""
    if name == "blur":
        return gblur(img, 3.0), q, "blurry", "error"
    if name == "dark":
        return exposure(img, 0.15), q, "too_dark", "error"
    if name == "bright":  # exposure up until the brightest 60% of the frame clips to white
        k = 255.0 / max(float(np.percentile(img.min(2), 40)), 1.0)
        return exposure(img, k), q, "too_bright", "error"
    if name == "low_contrast":
        return contrast(img, 0.12), q, "low_contrast", "error"
    if name == "glare":
        return glare_blob(img, q), q, "glare", None
    if name == "small":
        k = int(math.ceil(float(np.median(quad_sizes(q)[0])) / (0.8 * Q.MIN_TEXT_PX[d])))
        im, qs = downscale(img, q, max(k, 2))
        return im, qs, "too_small", "error"
    if name == "cut_off":
        im, qc = crop_through_line(img, q)
        return im, qc, "cut_off", "error"
    if name == "no_text":
        return img, np.zeros((0, 4, 2)), "no_text", "error"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["blur", "dark", "bright", "low_contrast", "glare", "small", "cut_off",
                                  "no_text"])
@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_degradation_raises_its_hint(domain, name, base):
    for img, q in base[domain]:
        im, qq, code, severity = _degrade(name, img, q, domain)
        r = Q.check(im, qq, domain)
        got = {h.code: h for h in r.hints}
        assert code in got, (name, [(h.code, h.severity) for h in r.hints], r.metrics)
        if severity:
            assert got[code].severity == severity
        assert codes(r, "error") <= {code}, (name, [(h.code, h.severity) for h in r.hints])
        assert not r.ok or got[code].severity == "warning"
        h = got[code]
        assert math.isfinite(h.value) and math.isfinite(h.threshold) and h.message


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_rotated_and_keystoned_quads_are_tilted(domain, base):
    tested = 0
    for img, q in base[domain]:
        med = Q.check(img, q, domain).metrics["tilt_deg"]
        for target_deg, severity in ((32.0, "warning"), (-32.0, "warning"), (70.0, "error"), (180.0, "error")):
            qr = rotate_each(q, target_deg - med)
            if not inside(qr, img.shape):  # a long line swung out of the frame is cut off, not only tilted
                continue
            tested += 1
            r = Q.check(img, qr, domain)
            assert (r.metrics["tilt_deg"] - target_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-6)
            tilt = [h for h in r.hints if h.code == "tilted"]
            assert tilt and tilt[0].severity == severity, (target_deg, r.hints)
            # a quad swung round covers other pixels: glare measured there is real, nothing else may fire
            assert codes(r, "error") <= {"tilted", "glare"}
        r = Q.check(img, keystone(q, 0.5), domain)  # left edges 3x the right ones (times their old ratio)
        assert r.metrics["perspective"] > 2.0
        assert [h.code for h in r.hints] == ["tilted"] and r.hints[0].severity == "warning" and r.ok
    assert tested >= N_DEGRADE


def test_quads_at_or_outside_the_border_are_cut_off():
    img = np.full((120, 200, 3), 200, np.uint8)
    img[40:60, 50:150] = 30
    inner = np.array([[[50, 40], [150, 40], [150, 60], [50, 60]]], np.float64)
    assert "cut_off" not in codes(Q.check(img, inner))
    for dx, dy in ((-49.5, 0), (49.5, 0), (0, -39.5), (0, 59.5), (-80, 0)):
        r = Q.check(img, inner + [dx, dy])
        assert "cut_off" in codes(r, "error") and r.metrics["cut_off_lines"] == 1
        assert r.metrics["border_distance_px"] < Q.BORDER_MARGIN * 200


def test_dim_but_sharp_is_not_blurry(base):
    for d, ss in base.items():
        for img, q in ss:
            s0 = Q.check(img, q, d).metrics["sharpness"]
            r = Q.check(exposure(img, 0.5), q, d)
            assert "blurry" not in codes(r, "error"), (d, r.metrics)
            assert r.metrics["sharpness"] == pytest.approx(s0, rel=0.25)


# ---- metrics ------------------------------------------------------------------------------------

def _rect_scene(rng, h=200, w=300, lo=60, hi=200):
    img = np.full((h, w), lo, np.uint8)
    for _ in range(12):
        x0, y0 = rng.integers(0, w - 50), rng.integers(0, h - 40)
        img[y0:y0 + rng.integers(20, 40), x0:x0 + rng.integers(20, 50)] = hi
    return img


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5, 2.0, 3.0, 4.0])
def test_focus_measure_recovers_gaussian_sigma(sigma):
    """For Gaussian-blurred step edges S = 1 / (sigma sqrt 2), so blur_sigma_px estimates sigma (within
    10%) whatever the edges' contrast, as long as uint8 rounding keeps their detail: for a 30-level
    edge that is sigma <= 1 px; beyond, the estimate errs on the blurry side, never the sharp one."""
    rng = np.random.default_rng(int(sigma * 10))
    scene = _rect_scene(rng)
    m = Q.check(gblur(scene, sigma)).metrics
    assert m["blur_sigma_px"] == pytest.approx(sigma, rel=0.1), m
    dim = (20 + (scene > 100) * 30).astype(np.uint8)  # same edges, 30 gray levels instead of 140
    est = Q.check(gblur(dim, sigma)).metrics["blur_sigma_px"]
    if sigma <= 1.0:
        assert est == pytest.approx(sigma, rel=0.1)
    else:
        assert est >= 0.9 * sigma


def test_sharp_edges_pass_blurred_fail():
    img = _rect_scene(np.random.default_rng(1))
    assert "blurry" not in codes(Q.check(gblur(img, 0.8)))
    assert "blurry" in codes(Q.check(gblur(img, 1.8)), "error")


def test_large_image_is_downscaled_and_quads_stay_in_original_pixels(clean):
    img, q = clean["idcard"][0]
    big = np.repeat(np.repeat(img, 2, 0), 2, 1)  # 1280 x 832: the working image is the original again
    a, b = Q.check(img, q, "idcard"), Q.check(big, q * 2, "idcard")
    assert b.metrics["scale"] == 2 and a.metrics["scale"] == 1
    for k, v in a.metrics.items():
        if k == "scale" or not math.isfinite(v):
            continue
        want = 2 * v if k in ("text_height_px", "border_distance_px", "blur_sigma_px") else v
        assert b.metrics[k] == pytest.approx(want, rel=1e-4, abs=1e-4), k
    assert [h.code for h in a.hints] == [h.code for h in b.hints]


def test_gray_input_equals_replicated_rgb(clean):
    img, q = clean["card"][1]
    gray = np.rint(img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    a, b = Q.check(gray, q, "card"), Q.check(np.repeat(gray[..., None], 3, 2), q, "card")
    for k, v in a.metrics.items():
        assert (math.isnan(v) and math.isnan(b.metrics[k])) or b.metrics[k] == pytest.approx(v, abs=1e-3), k


def test_quad_metrics_height_and_angle():
    img = np.full((400, 400), 128, np.uint8)
    for deg in (0.0, 12.0, -33.0, 90.0, 179.0, -179.0):
        box = np.array([[-60, -9], [60, -9], [60, 9], [-60, 9]], np.float64)
        t = np.radians(deg)
        r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        quads = np.stack([box @ r.T + [200, 200 + dy] for dy in (-60, 0, 60)])
        m = Q.check(img, quads).metrics
        assert m["text_height_px"] == pytest.approx(18.0)
        assert (m["tilt_deg"] - deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-6)
        assert m["perspective"] == pytest.approx(1.0) and m["lines"] == 3
        m = Q.check(img, keystone(quads, 2 / 3)).metrics  # left edges 4/3, right edges 2/3 of 18 px
        assert m["perspective"] == pytest.approx(2.0) and m["text_height_px"] == pytest.approx(18.0)


def test_glare_area_is_the_largest_clipped_region():
    img = np.full((160, 240), 90, np.uint8)
    img[16:64, 24:120] = 255    # 48 x 96: 6 x 12 glare blocks
    img[100:116, 160:176] = 255  # a separate 2 x 2
    img[120:144, 16:64] = 255    # a white patch with ink strokes is not glare, however large
    img[120:144, 16:64:3] = 0
    m = Q.check(img).metrics
    assert m["glare_area"] == pytest.approx(48 * 96 / (160 * 240))
    quads = np.array([[[24, 40], [72, 40], [72, 88], [24, 88]]], np.float64)  # half inside the region
    assert Q.check(img, quads).metrics["glare_text"] == pytest.approx(0.5)


def _largest_component_reference(m):
    seen = np.zeros_like(m)
    best = 0
    for i0, j0 in zip(*np.nonzero(m)):
        if seen[i0, j0]:
            continue
        seen[i0, j0] = True
        stack, size = [(i0, j0)], 0
        while stack:
            i, j = stack.pop()
            size += 1
            for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                if 0 <= a < m.shape[0] and 0 <= b < m.shape[1] and m[a, b] and not seen[a, b]:
                    seen[a, b] = True
                    stack.append((a, b))
        best = max(best, size)
    return best


@settings(max_examples=25)
@given(h=st.integers(1, 14), w=st.integers(1, 14), p=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 16))
def test_largest_component_matches_flood_fill(h, w, p, seed):
    m = np.random.default_rng(seed).random((h, w)) < p
    assert Q._largest_component(m) == _largest_component_reference(m)


def test_quick_hints_most_severe_first():
    img = np.full((100, 160, 3), 20, np.uint8)
    img[40:48, 20:140] = 45
    quads = np.array([[[20, 40], [140, 40], [140, 48], [20, 48]]], np.float64)
    quads = rotate_each(quads, 30)
    r = Q.check(img, quads, "plate")  # dark, 8 px text < 20 px, tilted 30 degrees
    assert {"too_dark", "too_small", "tilted"} <= codes(r) and not r.ok
    msgs = Q.quick_hints(r)
    sev = [h.severity for h in r.hints]
    assert msgs == [h.message for h in r.hints] and sev == sorted(sev, key=lambda s: s != "error")
    assert msgs[0].startswith("Image is too dark") and msgs[-1].startswith("Text is tilted")
    d = r.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d and d["ok"] is False


# ---- properties ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prop_images(base):
    return [img for d in sorted(base) for img, _ in base[d][:2]]


@settings(max_examples=25)
@given(i=st.integers(0, 9), s1=st.floats(0.0, 3.0), ds=st.floats(0.25, 2.0))
def test_more_blur_never_sharper(prop_images, i, s1, ds):
    """uint8 rounding makes the measure flicker by < 0.5% for sigmas a few hundredths apart, so "more
    blur" means at least 0.25 px more sigma."""
    img = prop_images[i % len(prop_images)]
    a = Q.check(gblur(img, s1)).metrics["sharpness"]
    b = Q.check(gblur(img, s1 + ds)).metrics["sharpness"]
    assert b <= a


@settings(max_examples=25)
@given(i=st.integers(0, 9), g1=st.floats(0.3, 3.0), dg=st.floats(0.0, 2.0))
def test_darker_gamma_never_brighter(prop_images, i, g1, dg):
    img = prop_images[i % len(prop_images)]
    a = Q.check(gamma(img, g1)).metrics["mean_luminance"]
    b = Q.check(gamma(img, g1 + dg)).metrics["mean_luminance"]
    assert b <= a


@settings(max_examples=25)
@given(h=st.integers(16, 90), w=st.integers(16, 90), kind=st.sampled_from(["noise", "flat", "ramp"]),
       level=st.integers(0, 255), nq=st.integers(-1, 3), seed=st.integers(0, 2 ** 16),
       target=st.sampled_from(Q.TARGETS), rgb=st.booleans())
def test_any_valid_input_gives_a_consistent_report(h, w, kind, level, nq, seed, target, rgb):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind == "flat":
        img = np.full((h, w), level, np.uint8)
    else:
        img = np.linspace(0, level, w).astype(np.uint8)[None].repeat(h, 0)
    if rgb:
        img = np.repeat(img[..., None], 3, 2)
    quads = None if nq < 0 else rng.uniform(-20, max(h, w) + 20, (nq, 4, 2))
    r = Q.check(img, quads, target)
    assert r.ok == (not codes(r, "error"))
    assert codes(r) <= set(Q.CODES) and all(x.severity in ("error", "warning") for x in r.hints)
    assert [x.severity for x in r.hints] == sorted((x.severity for x in r.hints), key=lambda s: s != "error")
    assert ("no_text" in codes(r)) == (nq == 0)
    d = r.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d


# ---- bad input ----------------------------------------------------------------------------------

GOOD = np.zeros((32, 32, 3), np.uint8)


@pytest.mark.parametrize("image,quads,target,msg", [
    (GOOD.astype(np.float32), None, "text", "uint8"),
    (GOOD.astype(np.int64), None, "text", "uint8"),
    (np.zeros(64, np.uint8), None, "text", "shape"),
    (np.zeros((32, 32, 2), np.uint8), None, "text", "shape"),
    (np.zeros((2, 32, 32, 3), np.uint8), None, "text", "shape"),
    (np.zeros((0, 32, 3), np.uint8), None, "text", "empty"),
    (np.zeros((15, 300), np.uint8), None, "text", "at least 16x16"),
    (GOOD.tolist(), None, "text", "numpy array"),
    (GOOD, np.zeros((3, 4)), "text", r"\(N, 4, 2\)"),
    (GOOD, np.zeros((2, 3, 2)), "text", r"\(N, 4, 2\)"),
    (GOOD, np.zeros((4, 2)), "text", r"\(N, 4, 2\)"),
    (GOOD, np.full((1, 4, 2), np.nan), "text", "NaN"),
    (GOOD, [["a", "b"]], "text", "quads"),
    (GOOD, None, "receipt", "unknown target"),
    (GOOD, None, None, "unknown target"),
])
def test_bad_input_raises_value_error(image, quads, target, msg):
    with pytest.raises(ValueError, match=msg):
        Q.check(image, quads, target)


# ---- calibration table (not a test) -------------------------------------------------------------

def calibrate(n=50, seed=202):
    """Print false-alarm rates on n clean samples per domain of `seed` and detection rates of each
    degradation: 'det' = its hint at any severity, 'err' = as an error, 'other' = an unrelated error."""
    import collections
    rng = np.random.default_rng(7)
    rows = collections.defaultdict(list)

    def run(case, expect, im, qq, d):
        r = Q.check(im, qq, d)
        rows[case].append((expect, {h.code: h.severity for h in r.hints}))

    for d in DOMAINS:
        for i in range(n):
            s = generate(d, seed, i)
            img, q = s.image, np.stack([ln.quad for ln in s.lines]).astype(np.float64)
            run("clean, quads", None, img, q, d)
            run("clean, no quads", None, img, None, d)
            for sg in (1.5, 2.0, 3.0):
                run(f"blur sigma {sg}, quads", "blurry", gblur(img, sg), q, d)
            run("blur sigma 2.0, no quads", "blurry", gblur(img, 2.0), None, d)
            run("dim x0.5 (not a fault), quads", None, exposure(img, 0.5), q, d)
            k = rng.uniform(0.12, 0.25)
            run("dark x0.12-0.25, quads", "too_dark", exposure(img, k), q, d)
            run("dark x0.12-0.25, no quads", "too_dark", exposure(img, k), None, d)
            k = rng.uniform(2.2, 3.0) * 128.0 / max(float(img.mean()), 1.0)
            run("bright x(2.2-3)*128/mean, quads", "too_bright", exposure(img, k), q, d)
            k = rng.uniform(0.15, 0.2)
            run("contrast x0.15-0.2, quads", "low_contrast", contrast(img, k), q, d)
            run("contrast x0.15-0.2, no quads", "low_contrast", contrast(img, k), None, d)
            run("glare blob on a line, quads", "glare", glare_blob(img, q), q, d)
            run("glare blob on a line, no quads", "glare", glare_blob(img, q), None, d)
            im, qs = downscale(img, q, 3)
            run("downscaled 1/3, quads", "too_small", im, qs, d)
            im, qc = crop_through_line(img, q, rng.uniform(0.4, 0.7))
            run("cropped through a line, quads", "cut_off", im, qc, d)
            qr = rotate_each(q, rng.uniform(30, 45) * rng.choice([-1, 1]))
            if inside(qr, img.shape):
                run("quads rotated 30-45 deg", "tilted", img, qr, d)
            run("quads keystoned (ratio 2.3)", "tilted", img, keystone(q, 0.6), d)
            run("quads = []", "no_text", img, np.zeros((0, 4, 2)), d)
    print(f"{'case':34s} {'n':>4s} {'det':>6s} {'err':>6s} {'other':>6s} {'any err':>8s} {'any hint':>8s}")
    for case, rs in rows.items():
        exp = rs[0][0]
        det = np.mean([exp in c for _, c in rs]) if exp else math.nan
        err = np.mean([c.get(exp) == "error" for _, c in rs]) if exp else math.nan
        other = np.mean([any(s == "error" and k != exp for k, s in c.items()) for _, c in rs])
        anyerr = np.mean([any(s == "error" for s in c.values()) for _, c in rs])
        anyhint = np.mean([bool(c) for _, c in rs])
        print(f"{case:34s} {len(rs):4d} {det:6.3f} {err:6.3f} {other:6.3f} {anyerr:8.3f} {anyhint:8.3f}")


if __name__ == "__main__":
    calibrate(*(int(a) for a in sys.argv[1:3]))
