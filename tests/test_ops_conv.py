"""CONV_2D (incl. grouped), DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED vs LiteRT BUILTIN_REF.

int8 outputs must equal LiteRT and the NumPy reference exactly. float32 and hybrid (float input,
int8 weights) outputs agree within rtol 1e-5 plus an atol of 1e-5 times the typical output size
sqrt(k)·rms(x) of a k-term sum. Besides the property tests, a few large fixed cases have enough
outputs (>= 64k) to tell double from single rounding apart: the conv kernels round twice,
FULLY_CONNECTED rounds once (see xnn/kernels/gemm.py), and to pin LiteRT's on-the-fly input
quantization of the hybrid kernels bit for bit.

Each op has two implementations, picked at prepare by gemm.tiles_wanted: the SIMD tile kernels
(one call per node, requantization fused) and the BLAS path (im2col + exact float32 GEMM + a
requantization pass). The property and large tests run both (`path`: forced through
gemm.FORCE_TILES); the tile kernels' AVX2 and generic-LLVM forms run in subprocesses.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracle import check_op, one_op_model, qp, run_litert, spec
from xnn import Interpreter, XnnError
from xnn.kernels import gemm

PATHS = ["tiles", "blas"]


@contextlib.contextmanager
def _path(path):
    """Force the tile kernels or the BLAS path for every op prepared inside."""
    old = gemm.FORCE_TILES
    gemm.FORCE_TILES = {"tiles": True, "blas": False, "auto": None}[path]
    try:
        yield
    finally:
        gemm.FORCE_TILES = old

ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _tol(ins, feeds, op):
    """rtol 1e-5; atol 1e-5 scaled by the typical output size sqrt(k)·rms(x) of a k-term float sum
    (outputs near 0 carry the rounding error of the whole sum, for LiteRT as for xnn)."""
    w = next(t for t in ins if t is not None and t.name == "w")
    k = int(np.prod(w.shape[1:3])) if op == "DEPTHWISE_CONV_2D" else int(np.prod(w.shape[1:]))
    x = np.asarray(feeds[0], np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 1.0
    return dict(rtol=1e-5, atol=1e-5 * max(1.0, np.sqrt(k) * rms))


def _rng(draw):
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def _act(draw):
    return ACTS[draw(st.sampled_from(sorted(ACTS)))]


def _f32(v):
    return float(np.float32(v))


def _int8_scales(draw, rng, k, oc, per_channel):
    """(s_x, zp_x, s_w per channel, s_y, zp_y) with s_y putting typical outputs well inside int8."""
    sx = _f32(draw(st.floats(0.004, 0.1)))
    zx = draw(st.integers(-128, 127))
    if per_channel:
        sw = rng.uniform(0.001, 0.05, oc).astype(np.float32)
    else:
        sw = np.full(1, _f32(draw(st.floats(0.001, 0.05))), np.float32)
    spread = draw(st.sampled_from([0.01, 0.1, 0.3, 1.0, 3.0]))  # 0.01: saturation, big multipliers
    sy = _f32(max(1e-6, 5400.0 * np.sqrt(k) * sx * float(sw.mean()) / 40.0 * spread))
    return sx, zx, sw, sy, draw(st.integers(-128, 127))


def _int8(rng, shape, lo=-128):
    return rng.integers(lo, 128, size=shape).astype(np.int8)


def _hybrid_x(draw, rng, shape):
    """Float activations at varied scales and offsets; sometimes an all-zero image (sf 1, off 0)."""
    x = (rng.normal(0, 1, shape) * draw(st.sampled_from([0.01, 1.0, 30.0]))
         + draw(st.sampled_from([0.0, 0.5, -2.0]))).astype(np.float32)
    if draw(st.integers(0, 9)) == 0:
        x[0] = 0.0
    return x


def _hybrid_ins(draw, rng, xshape, wshape, axis, oc, modes):
    """float32 input, int8 filter with 1 scale, equal scales or distinct per-channel scales."""
    mode = draw(st.sampled_from(modes))
    if mode == "one":
        sws = np.full(1, _f32(draw(st.floats(0.001, 0.05))), np.float32)
    elif mode == "equal":
        sws = np.full(oc, _f32(draw(st.floats(0.001, 0.05))), np.float32)
    else:
        sws = rng.uniform(0.001, 0.05, oc).astype(np.float32)
    bias = spec("b", None, np.float32, None, rng.normal(0, 1, oc).astype(np.float32))
    return [spec("x", xshape, np.float32),
            spec("w", None, np.int8, qp(sws, 0, axis), _int8(rng, wshape, lo=-127)), bias]


# ---- CONV_2D ------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw, dtype):
    rng = _rng(draw)
    n = draw(st.integers(1, 2))
    g = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cg = draw(st.integers(1, 9))
    ng = draw(st.integers(1, 9))
    c, oc = g * cg, g * ng
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from([0, 1]))
    h, w = draw(st.integers(1, 13)), draw(st.integers(1, 13))
    if padding == 1:  # VALID: the dilated filter must fit
        h, w = max(h, (kh - 1) * dh + 1), max(w, (kw - 1) * dw + 1)
    opts = dict(padding=padding, stride_h=sh, stride_w=sw, dilation_h_factor=dh, dilation_w_factor=dw,
                fused_activation_function=_act(draw))
    if dtype == np.float32:
        x = rng.normal(0, 1, (n, h, w, c)).astype(np.float32)
        wt = rng.normal(0, 1, (oc, kh, kw, cg)).astype(np.float32)
        b = rng.normal(0, 1, oc).astype(np.float32)
        ins = [spec("x", x.shape, np.float32), spec("w", None, np.float32, None, wt),
               spec("b", None, np.float32, None, b)]
        return ins, [spec("y", None, np.float32)], [x], opts
    if dtype == "hybrid":
        # LiteRT's hybrid convolutions insist on one scale per output channel
        return _hybrid_ins(draw, rng, (n, h, w, c), (oc, kh, kw, cg), 0, oc, ("equal", "per-channel")), \
            [spec("y", None, np.float32)], \
            [_hybrid_x(draw, rng, (n, h, w, c))], opts
    per_channel = draw(st.booleans())
    sx, zx, sws, sy, zy = _int8_scales(draw, rng, kh * kw * cg, oc, per_channel)
    x = _int8(rng, (n, h, w, c))
    wt = _int8(rng, (oc, kh, kw, cg), lo=draw(st.sampled_from([-127, -128])))
    b = rng.integers(-20000, 20000, oc).astype(np.int32)
    ins = [spec("x", x.shape, np.int8, qp(sx, zx)), spec("w", None, np.int8, qp(sws, 0, 0), wt),
           spec("b", None, np.int32, qp(np.float32(sx) * sws, 0, 0), b)]
    return ins, [spec("y", None, np.int8, qp(sy, zy))], [x], opts


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.int8, np.float32, "hybrid"], ids=["int8", "float32", "hybrid"])
@given(data=st.data())
def test_conv2d(dtype, path, data):
    with _path(path):
        ins, outs, feeds, opts = data.draw(conv_cases(dtype))
        check_op("CONV_2D", ins, outs, feeds, options=opts, **_tol(ins, feeds, "CONV_2D"))


# ---- DEPTHWISE_CONV_2D --------------------------------------------------------------------------

@st.composite
def depthwise_cases(draw, dtype):
    rng = _rng(draw)
    n = draw(st.integers(1, 2))
    c = draw(st.one_of(st.integers(1, 9), st.integers(15, 40)))
    m = draw(st.sampled_from([1, 1, 2, 3]))
    oc = c * m
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from([0, 1]))
    h, w = draw(st.integers(1, 13)), draw(st.integers(1, 40))
    if padding == 1:
        h, w = max(h, (kh - 1) * dh + 1), max(w, (kw - 1) * dw + 1)
    opts = dict(padding=padding, stride_h=sh, stride_w=sw, dilation_h_factor=dh, dilation_w_factor=dw,
                depth_multiplier=m, fused_activation_function=_act(draw))
    if dtype == np.float32:
        x = rng.normal(0, 1, (n, h, w, c)).astype(np.float32)
        wt = rng.normal(0, 1, (1, kh, kw, oc)).astype(np.float32)
        b = rng.normal(0, 1, oc).astype(np.float32)
        ins = [spec("x", x.shape, np.float32), spec("w", None, np.float32, None, wt),
               spec("b", None, np.float32, None, b)]
        return ins, [spec("y", None, np.float32)], [x], opts
    if dtype == "hybrid":
        return _hybrid_ins(draw, rng, (n, h, w, c), (1, kh, kw, oc), 3, oc, ("equal", "per-channel")), \
            [spec("y", None, np.float32)], \
            [_hybrid_x(draw, rng, (n, h, w, c))], opts
    per_channel = draw(st.booleans())
    sx, zx, sws, sy, zy = _int8_scales(draw, rng, kh * kw, oc, per_channel)
    x = _int8(rng, (n, h, w, c))
    wt = _int8(rng, (1, kh, kw, oc), lo=draw(st.sampled_from([-127, -128])))
    b = rng.integers(-20000, 20000, oc).astype(np.int32)
    ins = [spec("x", x.shape, np.int8, qp(sx, zx)), spec("w", None, np.int8, qp(sws, 0, 3), wt),
           spec("b", None, np.int32, qp(np.float32(sx) * sws, 0, 0), b)]
    return ins, [spec("y", None, np.int8, qp(sy, zy))], [x], opts


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.int8, np.float32, "hybrid"], ids=["int8", "float32", "hybrid"])
@given(data=st.data())
def test_depthwise_conv2d(dtype, path, data):
    with _path(path):
        ins, outs, feeds, opts = data.draw(depthwise_cases(dtype))
        check_op("DEPTHWISE_CONV_2D", ins, outs, feeds, options=opts, **_tol(ins, feeds, "DEPTHWISE_CONV_2D"))


# ---- TRANSPOSE_CONV -----------------------------------------------------------------------------

@st.composite
def transpose_conv_cases(draw, dtype):
    rng = _rng(draw)
    n = draw(st.integers(1, 2))
    ic, oc = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    padding = draw(st.sampled_from([0, 1]))
    # LiteRT requires the conv that maps the output back to the input to give exactly h x w
    if padding == 0:  # SAME: ceil(OH / s) == h
        oh = draw(st.integers((h - 1) * sh + 1, h * sh))
        ow = draw(st.integers((w - 1) * sw + 1, w * sw))
    else:  # VALID: (OH - k) // s + 1 == h
        oh = (h - 1) * sh + kh + draw(st.integers(0, sh - 1))
        ow = (w - 1) * sw + kw + draw(st.integers(0, sw - 1))
    opts = dict(padding=padding, stride_h=sh, stride_w=sw, fused_activation_function=_act(draw))
    has_bias = draw(st.booleans())
    osh = spec("oshape", None, np.int32, None, np.array([n, oh, ow, oc], np.int32))
    if dtype == np.float32:
        x = rng.normal(0, 1, (n, h, w, ic)).astype(np.float32)
        wt = rng.normal(0, 1, (oc, kh, kw, ic)).astype(np.float32)
        ins = [osh, spec("w", None, np.float32, None, wt), spec("x", x.shape, np.float32)]
        if has_bias:
            ins.append(spec("b", None, np.float32, None, rng.normal(0, 1, oc).astype(np.float32)))
        return ins, [spec("y", None, np.float32)], [x], opts
    per_channel = draw(st.booleans())
    taps = -(-kh // sh) * -(-kw // sw) * ic
    sx, zx, sws, sy, zy = _int8_scales(draw, rng, taps, oc, per_channel)
    x = _int8(rng, (n, h, w, ic))
    wt = _int8(rng, (oc, kh, kw, ic), lo=draw(st.sampled_from([-127, -128])))
    ins = [osh, spec("w", None, np.int8, qp(sws, 0, 0), wt), spec("x", x.shape, np.int8, qp(sx, zx))]
    if has_bias:
        ins.append(spec("b", None, np.int32, qp(np.float32(sx) * sws, 0, 0),
                        rng.integers(-20000, 20000, oc).astype(np.int32)))
    return ins, [spec("y", None, np.int8, qp(sy, zy))], [x], opts


@pytest.mark.parametrize("dtype", [np.int8, np.float32], ids=["int8", "float32"])
@given(data=st.data())
def test_transpose_conv(dtype, data):
    ins, outs, feeds, opts = data.draw(transpose_conv_cases(dtype))
    check_op("TRANSPOSE_CONV", ins, outs, feeds, options=opts, **_tol(ins, feeds, "TRANSPOSE_CONV"))


# ---- FULLY_CONNECTED ----------------------------------------------------------------------------

@st.composite
def fc_cases(draw, kind):
    rng = _rng(draw)
    k = draw(st.one_of(st.integers(1, 40), st.integers(100, 300)))
    u = draw(st.integers(1, 40))
    keep = draw(st.booleans())
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=0 if keep else 1, max_size=2)))
    if keep and not lead:
        lead = (1,)
    xshape = lead + (k,)
    opts = dict(fused_activation_function=_act(draw), keep_num_dims=keep)
    has_bias = draw(st.booleans())
    if kind == "float32":
        x = rng.normal(0, 1, xshape).astype(np.float32)
        ins = [spec("x", xshape, np.float32),
               spec("w", None, np.float32, None, rng.normal(0, 1, (u, k)).astype(np.float32)),
               spec("b", None, np.float32, None, rng.normal(0, 1, u).astype(np.float32)) if has_bias
               else None]
        return ins, [spec("y", None, np.float32)], [x], opts
    if kind == "hybrid":
        opts["asymmetric_quantize_inputs"] = draw(st.booleans())
        x = (rng.normal(0, 1, xshape) * draw(st.sampled_from([0.01, 1.0, 30.0]))
             + draw(st.sampled_from([0.0, 0.5, -2.0]))).astype(np.float32)
        if draw(st.integers(0, 9)) == 0:
            x[..., :] = 0.0  # all-zero rows: scale 1, offset 0
        per_channel = draw(st.booleans())
        sws = (rng.uniform(0.001, 0.05, u) if per_channel
               else np.full(1, _f32(draw(st.floats(0.001, 0.05))))).astype(np.float32)
        ins = [spec("x", xshape, np.float32),
               spec("w", None, np.int8, qp(sws, 0, 0), _int8(rng, (u, k), lo=-127)),
               spec("b", None, np.float32, None, rng.normal(0, 1, u).astype(np.float32)) if has_bias
               else None]
        return ins, [spec("y", None, np.float32)], [x], opts
    per_channel = draw(st.booleans())
    sx, zx, sws, sy, zy = _int8_scales(draw, rng, k, u, per_channel)
    wz = 0 if per_channel else draw(st.sampled_from([0, 0, 5, -17]))
    x = _int8(rng, xshape)
    ins = [spec("x", xshape, np.int8, qp(sx, zx)),
           spec("w", None, np.int8, qp(sws, wz, 0), _int8(rng, (u, k), lo=-127)),
           spec("b", None, np.int32, qp(np.float32(sx) * sws, 0, 0),
                rng.integers(-20000, 20000, u).astype(np.int32)) if has_bias else None]
    return ins, [spec("y", None, np.int8, qp(sy, zy))], [x], opts


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["int8", "float32", "hybrid"])
@given(data=st.data())
def test_fully_connected(kind, path, data):
    ins, outs, feeds, opts = data.draw(fc_cases(kind))
    with _path(path):
        check_op("FULLY_CONNECTED", ins, outs, feeds, options=opts,
                 **_tol(ins, feeds, "FULLY_CONNECTED"))


# ---- large fixed cases: bit-exact over many outputs, chunked reductions -------------------------

def _big_int8(op, xshape, wshape, axis, oc, opts, extra_first=(), seed=0, bias=True):
    rng = np.random.default_rng(seed)
    x = _int8(rng, xshape)
    sws = rng.uniform(0.002, 0.02, oc).astype(np.float32)
    sx = 0.05
    k = int(np.prod(wshape)) // oc
    sy = _f32(5400.0 * np.sqrt(k) * sx * float(sws.mean()) / 40.0)
    ins = list(extra_first) + [spec("w", None, np.int8, qp(sws, 0, axis), _int8(rng, wshape, lo=-127))]
    xs = spec("x", xshape, np.int8, qp(sx, 7))
    ins = [xs] + ins if not extra_first else ins + [xs]
    if bias:
        ins.append(spec("b", None, np.int32, qp(np.float32(sx) * sws, 0, 0),
                        rng.integers(-20000, 20000, oc).astype(np.int32)))
    check_op(op, ins, [spec("y", None, np.int8, qp(sy, -5))], [x], options=opts)


@pytest.mark.parametrize("path", PATHS)
def test_conv2d_int8_large_and_chunked(path):
    # 65536 outputs; K = 3·3·128 = 1152 > 1024 forces two exact float32 chunks (BLAS path)
    with _path(path):
        _big_int8("CONV_2D", (1, 16, 32, 128), (128, 3, 3, 128), 0, 128,
                  dict(padding=0, stride_h=1, stride_w=1, fused_activation_function=0))


@pytest.mark.parametrize("path", PATHS)
def test_conv2d_int8_grouped_chunked_blocked(path):
    # 2 groups of K = 3·3·120 = 1080 > 1024 (chunked), batch 2 over several row blocks; tiles:
    # 32 channels per group, so every 16-channel block reads its own group's channels only
    with _path(path):
        _big_int8("CONV_2D", (2, 12, 20, 240), (64, 3, 3, 120), 0, 64,
                  dict(padding=0, stride_h=1, stride_w=2, fused_activation_function=1), seed=1)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op, wshape, axis", [("CONV_2D", (24, 3, 3, 130), 0),
                                              ("CONV_2D", (32, 3, 3, 16), 0),
                                              ("DEPTHWISE_CONV_2D", (1, 3, 3, 32), 3)])
def test_hybrid_conv_large(op, wshape, axis, path):
    """Batch 2 over several row blocks (per-image quantization offsets), K > 1024 for the first."""
    rng = np.random.default_rng(5)
    c = wshape[3] if op == "CONV_2D" else wshape[3]
    oc = wshape[axis]
    x = (rng.normal(0, 1, (2, 40, 64, c)) + np.array([0.5, -1.0])[:, None, None, None]).astype(np.float32)
    ins = [spec("x", x.shape, np.float32),
           spec("w", None, np.int8, qp(rng.uniform(0.001, 0.05, oc).astype(np.float32), 0, axis),
                _int8(rng, wshape, lo=-127)),
           spec("b", None, np.float32, None, rng.normal(0, 1, oc).astype(np.float32))]
    opts = dict(padding=0, stride_h=1, stride_w=1, fused_activation_function=0)
    if op == "DEPTHWISE_CONV_2D":
        opts["depth_multiplier"] = 1
    with _path(path):
        check_op(op, ins, [spec("y", None, np.float32)], [x], options=opts, **_tol(ins, [x], op))


@pytest.mark.parametrize("path", PATHS)
def test_depthwise_int8_large(path):
    with _path(path):
        _big_int8("DEPTHWISE_CONV_2D", (1, 32, 64, 64), (1, 3, 3, 64), 3, 64,
                  dict(padding=0, stride_h=1, stride_w=1, depth_multiplier=1,
                       fused_activation_function=0))


@pytest.mark.parametrize("path", PATHS)
def test_depthwise_int8_huge_kernel_uses_exact_accumulation(path):
    # 31·31 taps · 255 · 127 > 2^24: float32 sums would round, the BLAS-path kernel switches to
    # float64 (the tile kernels accumulate in int32 like TFLite)
    with _path(path):
        _big_int8("DEPTHWISE_CONV_2D", (1, 40, 40, 4), (1, 31, 31, 4), 3, 4,
                  dict(padding=0, stride_h=1, stride_w=1, depth_multiplier=1,
                       fused_activation_function=0))


def test_transpose_conv_int8_large():
    osh = spec("oshape", None, np.int32, None, np.array([1, 64, 64, 32], np.int32))
    _big_int8("TRANSPOSE_CONV", (1, 32, 32, 16), (32, 3, 3, 16), 0, 32,
              dict(padding=0, stride_h=2, stride_w=2, fused_activation_function=0), extra_first=[osh])


@pytest.mark.parametrize("path", PATHS)
def test_fully_connected_int8_single_rounding_and_chunked(path):
    # 65536 outputs (single vs double rounding differ on a few); K = 2000 > 1024 chunks
    with _path(path):
        _big_int8("FULLY_CONNECTED", (256, 2000), (256, 2000), 0, 256,
                  dict(fused_activation_function=0))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("asym", [False, True], ids=["symmetric", "asymmetric"])
def test_hybrid_input_quantization_bit_exact(asym, path):
    """Identity weights expose every quantized input: y = float(xq - off)·sf must match LiteRT exactly
    (20k rows: catches the float32 scale and round-then-offset details of LiteRT's quantizer)."""
    rng = np.random.default_rng(13)
    b, k = 20000, 64
    x = rng.normal(0, 1, (b, k)) * rng.uniform(0.001, 30, (b, 1)) + rng.normal(0, 2, (b, 1))
    x = x.astype(np.float32)
    x[:2000] = np.abs(x[:2000]) + 0.01
    x[2000:4000] = -np.abs(x[2000:4000]) - 0.01
    x[4000] = 0.0
    ins = [spec("x", x.shape, np.float32), spec("w", None, np.int8, qp(1.0), np.eye(k, dtype=np.int8)),
           None]
    with _path(path):
        check_op("FULLY_CONNECTED", ins, [spec("y", None, np.float32)], [x],
                 options=dict(asymmetric_quantize_inputs=asym), rtol=0, atol=0)


def test_conv2d_no_bias_matches_zero_bias():
    """LiteRT's CONV_2D insists on a bias; xnn also takes the 2-input form (bias = 0)."""
    rng = np.random.default_rng(3)
    x = _int8(rng, (1, 6, 7, 5))
    wt = _int8(rng, (4, 3, 3, 5), lo=-127)
    sws = rng.uniform(0.002, 0.02, 4).astype(np.float32)
    xs, ws, ys = spec("x", x.shape, np.int8, qp(0.05, 3)), spec("w", None, np.int8, qp(sws, 0, 0), wt), \
        spec("y", (1, 6, 7, 4), np.int8, qp(0.2, -1))
    bs = spec("b", None, np.int32, qp(np.float32(0.05) * sws, 0, 0), np.zeros(4, np.int32))
    opts = dict(padding=0, stride_h=1, stride_w=1)
    expect = run_litert(one_op_model("CONV_2D", [xs, ws, bs], [ys], opts), [x])[0]
    it = Interpreter(model_content=one_op_model("CONV_2D", [xs, ws, None], [ys], opts))
    np.testing.assert_array_equal(it(x)[0], expect)


# ---- tile kernels: path choice, tile/block edges, SIMD forms ------------------------------------

def _small_conv_model(kind="int8"):
    rng = np.random.default_rng(0)
    if kind == "int8":
        ins = [spec("x", (1, 6, 6, 4), np.int8, qp(0.05, 3)),
               spec("w", None, np.int8, qp(0.01), _int8(rng, (8, 3, 3, 4), lo=-127)),
               spec("b", None, np.int32, qp(0.0005), np.zeros(8, np.int32))]
        outs = [spec("y", (1, 6, 6, 8), np.int8, qp(0.1, 0))]
    else:
        ins = [spec("x", (1, 6, 6, 4), np.float32),
               spec("w", None, np.float32, None, rng.normal(0, 1, (8, 3, 3, 4)).astype(np.float32)),
               spec("b", None, np.float32, None, np.zeros(8, np.float32))]
        outs = [spec("y", (1, 6, 6, 8), np.float32)]
    return one_op_model("CONV_2D", ins, outs, dict(padding=0, stride_h=1, stride_w=1))


@pytest.mark.parametrize("path", PATHS)
def test_path_is_forced(path):
    with _path(path):
        it = Interpreter(model_content=_small_conv_model())
        it.allocate_tensors()
    tiles = "runner" in it._plan[0][0].__qualname__
    assert tiles == (path == "tiles")


def test_tiles_threshold(monkeypatch):
    """The calibrated choice (see gemm.tiles_wanted): tiles everywhere with AVX-512, BLAS for
    big float32 GEMMs with AVX2, BLAS always without x86 intrinsics."""
    monkeypatch.setattr(gemm, "FORCE_TILES", None)
    big, small = (4096, 1152, 128), (256, 32, 32)
    monkeypatch.setattr(gemm, "SIMD", "avx512")
    assert all(gemm.tiles_wanted(*shape, kind) for shape in (big, small)
               for kind in ("int8", "float32", "hybrid", "dw"))
    monkeypatch.setattr(gemm, "SIMD", "avx2")
    assert not gemm.tiles_wanted(*big, "float32")
    assert gemm.tiles_wanted(*small, "float32") and gemm.tiles_wanted(*big, "int8")
    assert gemm.tiles_wanted(4096, 27, 16, "float32")  # few input channels: tiles still win
    monkeypatch.setattr(gemm, "SIMD", "generic")
    assert not gemm.tiles_wanted(*small, "int8")


def _int8_case(op, xshape, wshape, axis, oc, opts, seed=0, wlo=-128, bias=20000):
    rng = np.random.default_rng(seed)
    k = int(np.prod(wshape)) // oc
    sws = rng.uniform(0.002, 0.02, oc).astype(np.float32)
    sx = 0.05
    sy = _f32(5400.0 * np.sqrt(k) * sx * float(sws.mean()) / 40.0 * rng.choice([0.05, 1.0]))
    ins = [spec("x", xshape, np.int8, qp(sx, int(rng.integers(-128, 128)))),
           spec("w", None, np.int8, qp(sws, 0, axis), _int8(rng, wshape, lo=wlo)),
           spec("b", None, np.int32, qp(np.float32(sx) * sws, 0, 0),
                rng.integers(-bias, bias, oc).astype(np.int32))]
    return ins, [spec("y", None, np.int8, qp(sy, int(rng.integers(-128, 128))))], \
        [_int8(rng, xshape)], opts


# (xshape, filter, groups-driven Cg, options): output rows around the tile height (8: M = 7, 8, 9,
# 17), output channels around the 16-lane block (15, 16, 17, 33), odd pair runs (Cg·KW odd),
# groups whose 16-channel blocks span several groups (Ng = 5) or one group each (Ng = 16)
_EDGE_CONVS = [
    ((1, 1, 7, 3), (15, 1, 3, 3), dict(padding=0)),
    ((1, 2, 4, 5), (16, 2, 2, 5), dict(padding=1)),
    ((1, 3, 3, 7), (17, 1, 1, 7), dict(padding=0)),
    ((2, 3, 3, 4), (33, 3, 3, 4), dict(padding=0, stride_h=2, stride_w=1)),
    ((1, 5, 9, 12), (20, 3, 2, 3), dict(padding=0, dilation_h_factor=2, dilation_w_factor=3)),
    ((1, 4, 5, 32), (32, 3, 3, 16), dict(padding=0, stride_w=2)),
    ((1, 9, 9, 1), (16, 3, 3, 1), dict(padding=0, stride_h=2, stride_w=2)),
]


@pytest.mark.parametrize("case", range(len(_EDGE_CONVS)))
def test_conv2d_int8_tile_edges(case):
    xshape, wshape, opts = _EDGE_CONVS[case]
    opts = dict(dict(stride_h=1, stride_w=1, fused_activation_function=0), **opts)
    with _path("tiles"):
        check_op("CONV_2D", *_int8_case("CONV_2D", xshape, wshape, 0, wshape[0], opts, seed=case))


def _float_case(op, kind, xshape, wshape, axis, oc, opts, seed=0):
    """float32 or hybrid (int8 filter, one scale per output channel) case with a bias."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 1, xshape) + 0.3).astype(np.float32)
    b = spec("b", None, np.float32, None, rng.normal(0, 1, oc).astype(np.float32))
    if kind == "float32":
        w = spec("w", None, np.float32, None, rng.normal(0, 1, wshape).astype(np.float32))
    else:
        w = spec("w", None, np.int8, qp(rng.uniform(0.001, 0.05, oc).astype(np.float32), 0, axis),
                 _int8(rng, wshape, lo=-127))
    ins = [spec("x", xshape, np.float32), w, b]
    return ins, [spec("y", None, np.float32)], [x], opts


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sy", [1e-3, 0.3, 1e3, 3e6])
def test_conv2d_int8_extreme_accumulators(sy, path):
    """Biases near ±2^30 and output scales from tiny (huge multipliers, left shifts) to huge
    (right shifts up to 31): the requantization's int32 steps must not overflow where TFLite's
    do not."""
    ins, outs, feeds, opts = _int8_case("CONV_2D", (1, 5, 6, 8), (24, 3, 3, 8), 0, 24,
                                        dict(padding=0, stride_h=1, stride_w=1), seed=3,
                                        bias=1 << 30)
    outs = [spec("y", None, np.int8, qp(np.float32(sy), 5))]
    with _path(path):
        check_op("CONV_2D", ins, outs, feeds, options=opts)


def _extreme_requant_case(wrap):
    """acc = bias (x = zp_x): per-channel multipliers from 2^-31 to 2^7 (right shifts 31..0 and left
    shifts); biases up to ±(2^31 - 1) where left = 0, and, with `wrap`, also where acc·2^left
    leaves int32."""
    rng = np.random.default_rng(11)
    oc = 32
    sws = (2.0 ** rng.uniform(-30, 7, oc)).astype(np.float32)
    bias = np.concatenate([[2**31 - 1, -2**31, 2**31 - 2**20, -2**31 + 1],
                           rng.integers(-2**31, 2**31, oc - 4)])
    big = sws >= 0.5  # multiplier >= 1/2: a left shift, acc·2^left may leave int32
    if not wrap:
        bias = np.where(big, bias // 2**9, bias)
    ins = [spec("x", (1, 1, 8, 1), np.int8, qp(1.0, 7)),
           spec("w", None, np.int8, qp(sws, 0, 0), _int8(rng, (oc, 1, 1, 1), lo=-127)),
           spec("b", None, np.int32, qp(sws, 0, 0), bias.astype(np.int32))]
    return ins, [spec("y", None, np.int8, qp(1.0, -3))], [np.full((1, 1, 8, 1), 7, np.int8)], \
        dict(padding=0, stride_h=1, stride_w=1)


@pytest.mark.parametrize("path", PATHS)
def test_conv2d_int8_requantization_extremes(path):
    ins, outs, feeds, opts = _extreme_requant_case(wrap=False)
    with _path(path):
        check_op("CONV_2D", ins, outs, feeds, options=opts)


@pytest.mark.parametrize("path", PATHS)
def test_conv2d_int8_left_shift_wraps_like_litert(path):
    """Where acc·2^left leaves int32, LiteRT's int32 multiply wraps (quant.mbqm_ref saturates, so
    this compares with LiteRT only)."""
    ins, outs, feeds, opts = _extreme_requant_case(wrap=True)
    model = one_op_model("CONV_2D", ins, outs, opts)
    with _path(path):
        got = Interpreter(model_content=model)(feeds[0])[0]
    np.testing.assert_array_equal(got, run_litert(model, feeds)[0])


_SIMD_SCRIPT = r"""
import sys
sys.path.insert(0, {tests!r})
import test_ops_conv as t
from xnn.kernels import gemm
assert gemm.SIMD == {simd!r} and gemm.FORCE_TILES, (gemm.SIMD, gemm.FORCE_TILES)
for i, (xshape, wshape, opts) in enumerate(t._EDGE_CONVS[:4]):
    opts = dict(dict(stride_h=1, stride_w=1, fused_activation_function=1), **opts)
    t.check_op("CONV_2D", *t._int8_case("CONV_2D", xshape, wshape, 0, wshape[0], opts, seed=i))
    for kind in ("float32", "hybrid"):
        c = t._float_case("CONV_2D", kind, xshape, wshape, 0, wshape[0], opts, seed=i)
        t.check_op("CONV_2D", *c[:3], options=c[3], **t._tol(c[0], c[2], "CONV_2D"))
dw = dict(padding=0, stride_h=2, stride_w=1, depth_multiplier=2, fused_activation_function=0)
t.check_op("DEPTHWISE_CONV_2D", *t._int8_case("DEPTHWISE_CONV_2D", (2, 5, 7, 9), (1, 3, 3, 18), 3, 18, dw))
for kind in ("float32", "hybrid"):
    c = t._float_case("DEPTHWISE_CONV_2D", kind, (2, 5, 7, 9), (1, 3, 3, 18), 3, 18, dw)
    t.check_op("DEPTHWISE_CONV_2D", *c[:3], options=c[3], **t._tol(c[0], c[2], "DEPTHWISE_CONV_2D"))
for b in (1, 5):
    t.check_op("FULLY_CONNECTED", *t._int8_case("FULLY_CONNECTED", (b, 37), (20, 37), 0, 20, {{}}))
    for kind in ("float32", "hybrid"):
        c = t._float_case("FULLY_CONNECTED", kind, (b, 37), (20, 37), 0, 20, {{}})
        t.check_op("FULLY_CONNECTED", *c[:3], options=c[3], **t._tol(c[0], c[2], "FULLY_CONNECTED"))
print("ok")
"""


def _host_has_avx2():
    import llvmlite.binding as llb
    return bool(llb.get_host_cpu_features().get("avx2"))


@pytest.mark.parametrize("simd", ["avx2", "generic"])
def test_tile_kernels_other_simd_forms(simd, tmp_path):
    """The tile kernels' AVX2 (pmaddwd on ymm halves) and generic-LLVM forms, forced, compiled in a
    fresh process (own cache directory) and checked bit-exactly against LiteRT."""
    if simd == "avx2" and not _host_has_avx2():
        pytest.skip("host without AVX2")
    env = dict(os.environ, XNN_SIMD=simd, XNN_TILES="1", NUMBA_CACHE_DIR=str(tmp_path))
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", _SIMD_SCRIPT.format(tests=tests, simd=simd)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


# ---- rejected configurations --------------------------------------------------------------------

def _conv_model(x_dtype=np.int8, w_dtype=np.int8, y_dtype=np.int8, act=0, wzp=0, w_const=True,
                bias_dtype=np.int32, nscales=4, waxis=0, y_scale=0.2):
    q = (lambda s, z=0, a=0: qp(s, z, a)) if x_dtype == np.int8 else (lambda *a, **k: None)
    wq = qp(np.full(nscales, 0.01, np.float32), wzp, waxis) if w_dtype == np.int8 else None
    wt = np.ones((4, 3, 3, 2), w_dtype)
    ins = [spec("x", (1, 5, 5, 2), x_dtype, q(0.1, 0)),
           spec("w", (4, 3, 3, 2), w_dtype, wq, wt if w_const else None),
           spec("b", None, bias_dtype, None, np.zeros(4, bias_dtype))]
    outs = [spec("y", (1, 5, 5, 4), y_dtype, q(y_scale, 0))]
    return one_op_model("CONV_2D", ins, outs, dict(padding=0, stride_h=1, stride_w=1,
                                                   fused_activation_function=act))


@pytest.mark.parametrize("kwargs, match", [
    (dict(x_dtype=np.float32, y_dtype=np.float32, bias_dtype=np.float32, nscales=1), "one per output"),
    (dict(x_dtype=np.int16, y_dtype=np.int16, bias_dtype=np.int64), "unsupported dtypes"),
    (dict(act=4), "TANH"),
    (dict(wzp=3), "symmetric"),
    (dict(w_const=False), "constant"),
    (dict(bias_dtype=np.int64), "int32 bias"),
    (dict(nscales=3), "scales"),
    (dict(y_scale=0.0), "positive"),
], ids=["hybrid-one-scale", "int16", "tanh", "filter-zp", "runtime-filter", "int64-bias", "scale-count",
        "zero-scale"])
def test_conv2d_rejects(kwargs, match):
    with pytest.raises(XnnError, match=match):
        Interpreter(model_content=_conv_model(**kwargs))


def test_transpose_conv_rejects_hybrid():
    ins = [spec("oshape", None, np.int32, None, np.array([1, 8, 8, 2], np.int32)),
           spec("w", None, np.int8, qp(0.01), np.ones((2, 3, 3, 3), np.int8)),
           spec("x", (1, 4, 4, 3), np.float32)]
    with pytest.raises(XnnError, match="hybrid"):
        Interpreter(model_content=one_op_model("TRANSPOSE_CONV", ins, [spec("y", (1, 8, 8, 2), np.float32)],
                                               dict(padding=0, stride_h=2, stride_w=2)))


def test_conv2d_rejects_bad_groups():
    ins = [spec("x", (1, 5, 5, 6), np.float32),
           spec("w", None, np.float32, None, np.ones((5, 3, 3, 3), np.float32)),
           spec("b", None, np.float32, None, np.zeros(5, np.float32))]
    with pytest.raises(XnnError, match="groups"):
        Interpreter(model_content=one_op_model("CONV_2D", ins, [spec("y", (1, 5, 5, 5), np.float32)],
                                               dict(padding=0, stride_h=1, stride_w=1)))


def test_depthwise_rejects_bad_filter():
    ins = [spec("x", (1, 5, 5, 3), np.float32),
           spec("w", None, np.float32, None, np.ones((1, 3, 3, 4), np.float32)),
           spec("b", None, np.float32, None, np.zeros(4, np.float32))]
    with pytest.raises(XnnError, match="multiple of input channels"):
        Interpreter(model_content=one_op_model("DEPTHWISE_CONV_2D", ins,
                                               [spec("y", (1, 5, 5, 4), np.float32)],
                                               dict(padding=0, stride_h=1, stride_w=1, depth_multiplier=1)))


def test_transpose_conv_rejects_inconsistent_output_shape():
    ins = [spec("oshape", None, np.int32, None, np.array([1, 9, 9, 2], np.int32)),
           spec("w", None, np.float32, None, np.ones((2, 3, 3, 3), np.float32)),
           spec("x", (1, 4, 4, 3), np.float32)]
    with pytest.raises(XnnError, match="implies"):
        Interpreter(model_content=one_op_model("TRANSPOSE_CONV", ins, [spec("y", (1, 9, 9, 2), np.float32)],
                                               dict(padding=0, stride_h=2, stride_w=2)))


@pytest.mark.parametrize("opts, xshape, match", [
    (dict(weights_format=1), (2, 6), "shuffled"),
    (dict(keep_num_dims=True), (2, 3, 4), "keep_num_dims"),
    (dict(), (7,), "whole number of rows"),
])
def test_fully_connected_rejects(opts, xshape, match):
    ins = [spec("x", xshape, np.float32), spec("w", None, np.float32, None, np.ones((5, 6), np.float32)),
           None]
    with pytest.raises(XnnError, match=match):
        Interpreter(model_content=one_op_model("FULLY_CONNECTED", ins, [spec("y", (2, 5), np.float32)],
                                               opts))
