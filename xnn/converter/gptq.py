"""Error-compensating rounding of sub-8-bit weight codes (`xnn convert --weight-rounding gptq`).

Rounding every weight to its nearest code level ("nearest") treats each weight alone. Here the
weights of one output channel are rounded one input feature at a time and the error each rounding
makes is pushed onto the features not yet rounded, weighted by how the layer's inputs co-vary on
calibration data (the GPTQ / Optimal Brain Quantization scheme: Frantar et al. 2022, after Hassibi &
Stork's Optimal Brain Surgeon). For a layer y = W x with inputs X collected on the calibration data
it minimizes ||W X - Q X||² over the code levels Q, greedily:

    H = Σ x xᵀ (+ 1% of its mean diagonal, for conditioning)   one matrix per layer input
    U = upper Cholesky factor of H⁻¹                           (H⁻¹ = Uᵀ U)
    for feature j in order of decreasing H_jj ("act order"):
        q_j = nearest level of w_j (per channel: the codes' own levels)
        e = (w_j - q_j) / U_jj;  w_k -= e · U_jk for the features k after j

Every channel keeps the levels its codes would have had with plain rounding (uniform: lo, hi from
the channel's original values; k-means: its codebook), so the file layout, the decoder and the
kernels are unchanged; only which level each weight takes differs. Per-channel scale factors (int8
scales, folded batch norm) do not change the result, so int8 weights are processed in their integer
domain.

Layer inputs (collect_hessians): CONV_2D the kh·kw·C_in patches its kernel sees (padding and
dilation as the op; a group conv: each output channel its group's patches), DEPTHWISE_CONV_2D the kh·kw patch of each channel (one H per channel),
FULLY_CONNECTED its input rows, UNIDIRECTIONAL_SEQUENCE_LSTM its input x_t (input-to-gate weights),
the state h_{t-1} (recurrent weights) and the hidden m_t = o·tanh(c_t) (projection), the last two
from a float64 run of the cell (quantize.lstm_float_run). int8 tensors are dequantized. Weights of
other ops (TRANSPOSE_CONV, bidirectional LSTMs) and weights read by several layers with different
inputs keep plain rounding.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..ir import Graph

DAMP = 0.01  # fraction of H's mean diagonal added to its diagonal
LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
LSTM_SOURCE = {**{k: "x" for k in (1, 2, 3, 4)}, **{k: "h_prev" for k in (5, 6, 7, 8)}, 16: "m"}


def _real(g: Graph, t: int, a: np.ndarray) -> np.ndarray:
    """Tensor t's values as real numbers (int8/int16 activations and weights dequantized)."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a.astype(np.float64)
    q = g.tensors[t].quant
    if q is None:
        return a.astype(np.float64)
    s = np.asarray(q.scale, np.float64)
    z = np.asarray(q.zero_point, np.float64)
    if s.size > 1:  # per channel
        shape = [1] * a.ndim
        shape[q.axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return (a.astype(np.float64) - z) * s


def _same_pad(n: int, k: int, stride: int, dil: int) -> tuple:
    out = -(-n // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - n, 0)
    return out, total // 2, total - total // 2


def patches(x: np.ndarray, kh: int, kw: int, opt: dict, rows=None) -> np.ndarray:
    """The receptive fields of a conv over x [B, H, W, C]: [B·OH·OW, kh·kw, C] (TFLite padding
    0 = SAME, 1 = VALID; strides and dilations from the op's options); `rows` = (r0, r1): only those
    output rows."""
    sh, sw = int(opt.get("stride_h", 1)), int(opt.get("stride_w", 1))
    dh, dw = int(opt.get("dilation_h_factor", 1)), int(opt.get("dilation_w_factor", 1))
    B, H, W, C = x.shape
    if int(opt.get("padding", 0)) == 0:
        oh, ph0, ph1 = _same_pad(H, kh, sh, dh)
        ow, pw0, pw1 = _same_pad(W, kw, sw, dw)
        x = np.pad(x, ((0, 0), (ph0, ph1), (pw0, pw1), (0, 0)))
    else:
        oh, ow = (H - (kh - 1) * dh - 1) // sh + 1, (W - (kw - 1) * dw - 1) // sw + 1
    r0, r1 = (0, oh) if rows is None else (max(rows[0], 0), min(rows[1], oh))
    if r1 <= r0 or ow <= 0:
        return np.zeros((0, kh * kw, C))
    cols = [x[:, i * dh + sh * r0:i * dh + sh * (r1 - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw, :]
            for i in range(kh) for j in range(kw)]
    return np.stack(cols, axis=3).reshape(-1, kh * kw, C)


def _bands(x: np.ndarray, kh: int, kw: int, opt: dict, budget: int = 1 << 22):
    """patches() in bands of output rows, each about `budget` elements at most (big feature maps)."""
    per_row = max(1, x.shape[0] * x.shape[2] * kh * kw * x.shape[3])
    step = max(1, budget // per_row)
    for r0 in range(0, x.shape[1], step):  # a conv has at most as many output rows as input rows
        band = patches(x, kh, kw, opt, (r0, r0 + step))
        if len(band):
            yield band


def _lstm_weights(g: Graph, node) -> list:
    return [None if t < 0 or g.tensors[t].data is None else _real(g, t, g.tensors[t].data) for t in node.inputs]


def collect_hessians(g: Graph, targets: dict, feeds: list, progress=None) -> dict:
    """{weight tensor: H} for the targets (compress.weight_targets) this module can serve: H is
    [n, n] over a channel's n inputs in the order of the tensor's channel rows (compress._channel_rows),
    or [C, k, k] for a depthwise kernel (one per channel). Runs the graph over the calibration feeds."""
    return collect_layer_stats(g, targets, feeds, progress)[0]


def collect_layer_stats(g: Graph, targets: dict, feeds: list, progress=None, gram=None) -> tuple:
    """({weight tensor: H}, {weight tensor: mean input}) over the calibration feeds: H as
    collect_hessians (only for the tensors in `gram`; None: all), the mean of the same input vectors
    as [n] (one for every channel) or [C, n] (depthwise, group conv: each channel its own inputs).
    The means serve bias correction (compress: a channel's bias absorbs (W - Q)·E[x], the shift its
    rounding makes on average)."""
    from .quantize import _interpreter_for, lstm_float_run, run_feed

    want = {}  # node position -> [weight tensors it reads]
    for t, tg in targets.items():
        for p in tg.readers:
            node = g.nodes[p]
            ok = node.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or (
                node.op == LSTM and any(node.inputs[s] == t for s in LSTM_SOURCE if s < len(node.inputs)))
            if ok:
                want.setdefault(p, []).append(t)
    if not want or not feeds:
        return {}, {}
    acts = sorted({g.nodes[p].inputs[0] for p in want})
    it = _interpreter_for(g.replace(outputs=tuple(dict.fromkeys(list(g.outputs) + acts))))
    sums: dict = {}  # (tensor, node) -> H
    firsts: dict = {}  # (tensor, node) -> [sum of the inputs, count]

    def add(key, h, s1, count):
        """h: this block's H, None where it is not wanted (the caller skips computing it)."""
        if h is not None:
            sums[key] = sums.get(key, 0.0) + h
        f = firsts.setdefault(key, [0.0, 0])
        f[0] = f[0] + s1
        f[1] += count

    def hess(t):
        return gram is None or t in gram

    lstm_w = {p: _lstm_weights(g, g.nodes[p]) for p in want if g.nodes[p].op == LSTM}
    for k, feed in enumerate(feeds):
        run_feed(it, g, k, feed)
        for p, ts in want.items():
            node = g.nodes[p]
            x = _real(g, node.inputs[0], it._arrays[node.inputs[0]])
            if node.op == "FULLY_CONNECTED":
                for t in ts:
                    n_in = g.tensors[t].shape[1]
                    r = x.reshape(-1, n_in)
                    add((t, p), r.T @ r if hess(t) else None, r.sum(axis=0), len(r))
            elif node.op == "CONV_2D":
                for t in ts:
                    O, kh, kw, cg = g.tensors[t].shape
                    groups = x.shape[3] // cg
                    for r in _bands(x, kh, kw, node.options):
                        if groups == 1:
                            r = r.reshape(-1, kh * kw * cg)
                            add((t, p), r.T @ r if hess(t) else None, r.sum(axis=0), len(r))
                        else:  # group conv: output channel o reads input group o // (O / groups)
                            r = r.reshape(len(r), kh * kw, groups, cg).transpose(2, 0, 1, 3).reshape(groups, len(r), -1)
                            add((t, p), np.repeat(np.einsum("gni,gnj->gij", r, r), O // groups, axis=0)
                                if hess(t) else None, np.repeat(r.sum(axis=1), O // groups, axis=0), r.shape[1])
            elif node.op == "DEPTHWISE_CONV_2D":
                for t in ts:
                    _, kh, kw, C = g.tensors[t].shape
                    if C != x.shape[3]:  # depth multiplier > 1: channel c reads input c // m
                        x = np.repeat(x, C // x.shape[3], axis=3)
                    for r in _bands(x, kh, kw, node.options):
                        add((t, p), np.einsum("nkc,nlc->ckl", r, r) if hess(t) else None, r.sum(axis=0).T, len(r))
            else:  # LSTM
                _, seq = lstm_float_run(lstm_w[p], node.options, x, sequences=True)
                seq["x"] = x
                for t in ts:
                    slots = [s for s in LSTM_SOURCE if s < len(node.inputs) and node.inputs[s] == t]
                    src = {LSTM_SOURCE[s] for s in slots}
                    if len(src) != 1:
                        continue
                    r = seq[src.pop()].reshape(-1, g.tensors[t].shape[1])
                    add((t, p), r.T @ r if hess(t) else None, r.sum(axis=0), len(r))
        if progress is not None:
            progress(f"  gptq calibration {k + 1}/{len(feeds)}")
    out: dict = {}
    for (t, _), h in sums.items():
        prev = out.get(t, 0.0)
        # readers with inputs of different sizes: plain rounding (None)
        out[t] = None if prev is None or (t in out and prev.shape != h.shape) else prev + h
    hs = {t: h for t, h in out.items() if h is not None and np.all(np.isfinite(h))}
    layers = Counter(t for t, _ in firsts)  # a tensor read by several layers has no single input mean
    means = {t: np.asarray(s1, np.float64) / count for (t, _), (s1, count) in firsts.items()
             if layers[t] == 1 and count}
    return hs, {t: m for t, m in means.items() if np.all(np.isfinite(m))}


def gptq_round(rows: np.ndarray, H: np.ndarray, levels: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """rows [C, n] (a channel's weights per row), H [n, n] or [C, n, n], levels [C, K] ascending
    (each row's code levels, or [1, K] shared): the rows with every weight on one of its row's
    levels, chosen greedily with error feedback (module docstring)."""
    W = np.array(rows, np.float64)
    C, n = W.shape
    lv = np.asarray(levels, np.float64)
    if lv.shape[0] == 1 and C > 1:
        lv = np.broadcast_to(lv, (C, lv.shape[1]))
    if H.ndim == 3:  # one H per row (depthwise): rows are independent problems
        return np.concatenate([gptq_round(W[c:c + 1], H[c], lv[c:c + 1], damp) for c in range(C)])
    H = np.array(H, np.float64)
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0  # an input that is always 0: its weight does not matter, round it
    order = np.argsort(-np.diag(H), kind="stable")
    W, H = W[:, order], H[np.ix_(order, order)]
    H[np.diag_indices(n)] += damp * float(np.mean(np.diag(H)))
    try:
        U = np.linalg.cholesky(np.linalg.inv(H)).T
    except np.linalg.LinAlgError:
        U = None
    mid = (lv[:, 1:] + lv[:, :-1]) / 2  # nearest level: count of midpoints below (ties go down)
    Q = np.empty_like(W)
    for j in range(n):
        w = W[:, j]
        k = (mid < w[:, None]).sum(axis=1)
        q = lv[np.arange(C), k]
        Q[:, j] = q
        if U is not None and j + 1 < n:
            W[:, j + 1:] -= np.outer((w - q) / U[j, j], U[j, j + 1:])
    out = np.empty_like(Q)
    out[:, order] = Q
    return out
