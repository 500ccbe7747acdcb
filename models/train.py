"""Train a model of the zoo on synthetic lines rendered here.

    python -m models.train recognizer --domain card --field number --out runs/card_rec \\
        --lines 20000 --epochs 30
    python -m models.train detector --out runs/det --pages 6000 --epochs 30

Detector (models.detector, targets in models.det_targets): pages of every domain (round robin) are
letterboxed to the spec's input and cached as runs/cache/det_<H>x<W>/train_<k>.npz (shard k from seed
det_targets.TRAIN_SEED_BASE + k; val from det_targets.VAL_SEED); targets are computed per batch.
Progress, checkpoints, resuming and OUT/final.weights.h5 as for the recognizer; the per-epoch
validation line reports detection precision/recall/F at IoU 0.5 (xnn.ocr.detect post-processing).

Data: lines are rendered by models.data into a cache of .npz shards (runs/cache/<name>_w<width>/
train_<k>.npz, shard k drawn from seed TRAIN_SEED_BASE + k; val.npz from VAL_SEED, never used in
training), preprocessed as models.rec_spec describes. The first --lines are rendered before training
(--workers processes); --bg-lines more are rendered by a background process while training runs,
and every epoch trains on all shards present when it starts (fresh lines each epoch).
Progress: one line per epoch (loss, learning rate, greedy sequence/character accuracy on the
validation lines, time) and the loss every --log-every steps.
Resumable: a checkpoint (weights, optimizer, epoch) is written after every epoch to OUT/ckpt; running
the same command again continues after the last finished epoch (--restart starts over). At the end
OUT/final.weights.h5 holds the Keras weights (load with models.recognizer.build(spec)).
Threads: TensorFlow uses --threads intra-op threads and one inter-op thread.
Quantization-aware training (--qat-bits B, --qat-bits-for REGEX=B; both models): every step runs
forward and backward with the weight kernels rounded to B-bit uniform codes per output channel
(straight-through estimator: the gradient at the rounded weights updates the float ones); validation
and OUT/final.weights.h5 use the rounded weights, so the export is on the grid that `xnn convert
--weight-bits B --weight-codec uniform` stores. Usually a short fine-tune (--init) of a trained run,
or of a shipped model turned back into a run by models.import_zoo. --distill W adds a loss against a
teacher's outputs (the float model, --teacher, default --init): the KL divergence from its per-frame
distributions (recognizer), its score map and geometry as soft targets (detector). --train-only REGEX
updates only the matching variables (e.g. 'gamma|beta|bias': batch-norm scales and biases around
kernels held on post-training codes imported with models.import_zoo). --qat-learn-grid LR (with
--qat-grid-from) also learns each kernel's per-channel grid (LSQ-style straight-through gradients).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import multiprocessing as mp
import os
import re
import sys
import time

import numpy as np

from . import rec_spec as rs


# ---- data cache ---------------------------------------------------------------------------------

def cache_dir(spec: rs.RecSpec, root: str) -> str:
    return os.path.join(root, spec.cache_name)


def _save(path, x, texts):
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, x=x, texts=np.array(texts, dtype=object).astype(str))
    os.replace(tmp, path)


def _render_shard(args):
    spec_json, path, n, seed = args
    if os.path.exists(path):
        return path
    spec = rs.RecSpec.from_json(spec_json)
    x, texts = rs.render_set(spec, n, seed)
    _save(path, x, texts)
    return path


def _shard_path(d, k):
    return os.path.join(d, f"train_{k:05d}.npz")


def _render_loop(spec_json, d, ks, n):
    """Background renderer (a spawned process): shards ks, lowest priority."""
    try:
        os.nice(19)
    except OSError:
        pass
    for k in ks:
        _render_shard((spec_json, _shard_path(d, k), n, rs.TRAIN_SEED_BASE + k))


def ensure_data(spec, root, lines, shard, val, workers, log=print):
    """Render missing training shards (enough for `lines`) and the validation set."""
    d = cache_dir(spec, root)
    os.makedirs(d, exist_ok=True)
    sj = spec.to_json()
    jobs = [(sj, _shard_path(d, k), shard, rs.TRAIN_SEED_BASE + k) for k in range(math.ceil(lines / shard))]
    jobs.append((sj, os.path.join(d, f"val_{val}.npz"), val, rs.VAL_SEED))
    todo = [j for j in jobs if not os.path.exists(j[1])]
    if todo:
        t0 = time.time()
        log(f"rendering {sum(j[2] for j in todo)} lines into {d} ({workers} worker(s)) ...")
        if workers > 1:
            with mp.get_context("spawn").Pool(workers, initializer=os.nice, initargs=(19,)) as pool:
                for _ in pool.imap_unordered(_render_shard, todo):
                    pass
        else:
            for j in todo:
                _render_shard(j)
        log(f"rendered in {time.time() - t0:.0f}s")
    return d


def load_shards(d):
    """(lines, texts) of every finished training shard in d, the lines in one array filled shard by
    shard (no list of copies and concatenation: a 580,000-line pool is ~7 GB, and two copies of it
    next to TensorFlow ran a 24 GB machine out of memory)."""
    paths = [p for p in sorted(glob.glob(os.path.join(d, "train_*.npz"))) if not p.endswith(".tmp.npz")]
    ts, counts = [], []
    for p in paths:
        with np.load(p) as z:
            t = list(z["texts"])
        ts += t
        counts.append(len(t))
    x, o = None, 0
    for p, n in zip(paths, counts):
        with np.load(p) as z:
            xi = z["x"]
        if len(xi) != n:
            raise SystemExit(f"{p}: {len(xi)} lines but {n} texts")
        if x is None:
            x = np.empty((sum(counts),) + xi.shape[1:], xi.dtype)
        x[o:o + n] = xi
        o += n
    return x, ts


# ---- shared by both trainers ---------------------------------------------------------------------

def _write_spec(out, spec, load, restart, check=True):
    """OUT/spec.json: refuse to continue a run of another spec (unless restart/not check), then write."""
    path = os.path.join(out, "spec.json")
    if check and os.path.exists(path) and not restart:
        old = load(open(path, encoding="utf-8").read())
        if old != spec:
            raise SystemExit(f"{out} holds a run of another spec ({old}); use --restart or --out")
    with open(path, "w", encoding="utf-8") as f:
        f.write(spec.to_json())


def _tensorflow(threads):
    """(tf, keras) with `threads` intra-op threads and one inter-op thread."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_keras as keras

    return tf, keras


def _checkpoints(tf, model, opt, out, restart, log, extra=None):
    """(epoch variable, CheckpointManager) for OUT/ckpt, restored from the latest checkpoint.
    `extra`: more named trackables to save (a checkpoint without them restores the rest)."""
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var, **(extra or {}))
    mgr = tf.train.CheckpointManager(ckpt, os.path.join(out, "ckpt"), max_to_keep=2)
    if mgr.latest_checkpoint and not restart:
        ckpt.restore(mgr.latest_checkpoint).expect_partial()
        log(f"resumed from {mgr.latest_checkpoint} (epoch {int(epoch_var.numpy())} done)")
    return epoch_var, mgr


def _lr(a, epoch):
    """Cosine decay from --lr to --lr/50 over --epochs, set per epoch (a resumed run continues it)."""
    return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * epoch / max(1, a.epochs))))


# ---- quantization-aware training (weight codes) ---------------------------------------------------

def parse_bits_for(items) -> tuple:
    """--qat-bits-for REGEX=B values as ((regex, bits), ...); B 0 = exact (not fake-quantized)."""
    out = []
    for item in items or ():
        pat, sep, b = item.rpartition("=")
        if not sep or not pat or not b.isdigit() or not 0 <= int(b) <= 8:
            raise SystemExit(f"--qat-bits-for {item!r}: expected REGEX=B with B in 0..8")
        try:
            re.compile(pat)
        except re.error as e:
            raise SystemExit(f"--qat-bits-for {item!r}: not a regular expression ({e})") from None
        out.append((pat, int(b)))
    return tuple(out)


def qat_plan(model, bits, bits_for=(), min_size=0) -> list:
    """[(name, variable, channel axis, bits, blocks)] for the weight kernels that get uniform B-bit
    codes per output channel (see fake_quant). The axis is the channel axis the exported tensor keeps
    (conv/dense: outputs; depthwise: channels; LSTM: gate units, i.e. TFLite rows), so that folding
    a BN's per-channel scale into the kernel at export keeps every channel on its grid. `blocks`:
    None where the int8 export scales each channel (conv, depthwise, dense), else the number of
    column blocks that each get one int8 scale (the LSTM's four gate matrices; 1: its projection).
    Names are LAYER/WEIGHT (e.g. stem_conv/kernel, lstm/recurrent_kernel); the last --qat-bits-for
    pattern that matches (re.search) wins, else --qat-bits unless the kernel has < min_size elements."""
    cands = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "DepthwiseConv2D":
            cands.append((f"{layer.name}/depthwise_kernel", layer.depthwise_kernel, 2, None))
        elif cls in ("Conv2D", "Dense"):
            cands.append((f"{layer.name}/kernel", layer.kernel, layer.kernel.shape.rank - 1, None))
        elif cls == "RNN" and hasattr(layer.cell, "projection"):
            for w in ("kernel", "recurrent_kernel", "projection"):
                cands.append((f"{layer.name}/{w}", getattr(layer.cell, w), 1, 1 if w == "projection" else 4))
    plan = []
    for name, var, axis, blocks in cands:
        size = int(np.prod(var.shape))
        b = None if size < min_size else bits
        for pat, pb in bits_for:
            if re.search(pat, name):
                b = pb
        if b:
            plan.append((name, var, axis, int(b), blocks))
    return plan


def fake_quant(tf, w, axis: int, bits: int, blocks=None, grid: str = "int8", fixed=None):
    """w on the grid its codes will have (see qat_plan); all-zero channels stay as they are.
    grid "int8" (default): the values the int8 export and then `xnn convert --weight-codec uniform`
    store, exactly: symmetric int8 q = round(w / s), s = max|w| / 127 per channel (or per column
    block, see qat_plan), then per channel the K = 2^B integer levels lo + floor((2 (hi - lo) i + K - 1)
    / (2 (K - 1))) between its lo = min q and hi = max q, each q moved to its nearest level; w = s·level.
    So the int8 .tflite of the trained model holds exactly such levels and `--weight-bits-fit`
    stores it losslessly. grid "float": per channel lo = min w, step = (max w - lo) / (K - 1). `fixed`:
    that grid's (lo, step) arrays (broadcastable to w) instead of w's own (see grid_from)."""
    K1 = float((1 << bits) - 1)
    red = [i for i in range(w.shape.rank) if i != axis]
    if fixed is not None:  # (lo, step) per channel, kept from the start (--qat-grid-from)
        lo, step = fixed
        ok = step > 0
        q = tf.clip_by_value(tf.round((w - lo) / tf.where(ok, step, 1.0)), 0.0, K1)
        return tf.where(ok, lo + q * step, w)
    if grid == "float":
        lo = tf.reduce_min(w, axis=red, keepdims=True)
        step = (tf.reduce_max(w, axis=red, keepdims=True) - lo) / K1
        ok = step > 0
        q = tf.clip_by_value(tf.round((w - lo) / tf.where(ok, step, 1.0)), 0.0, K1)
        return tf.where(ok, lo + q * step, w)
    a = tf.abs(w)
    if blocks is None:
        m = tf.reduce_max(a, axis=red, keepdims=True)
    else:  # rank 2, axis 1: one scale per block of columns
        n = int(w.shape[1]) // blocks
        mb = tf.reduce_max(tf.reshape(a, [-1, blocks, n]), axis=[0, 2], keepdims=True)
        m = tf.reshape(tf.broadcast_to(mb, [1, blocks, n]), [1, blocks * n])
    s = m / 127.0
    ok = s > 0
    q = tf.round(w / tf.where(ok, s, 1.0))
    lo = tf.reduce_min(q, axis=red, keepdims=True)
    span = tf.reduce_max(q, axis=red, keepdims=True) - lo

    def level(i):
        return lo + tf.floor((2.0 * span * i + K1) / (2.0 * K1))

    i0 = tf.clip_by_value(tf.floor((q - lo) * K1 / tf.maximum(span, 1.0)), 0.0, K1)
    i1 = tf.minimum(i0 + 1.0, K1)
    pick = tf.where(tf.abs(level(i1) - q) < tf.abs(level(i0) - q), i1, i0)
    return tf.where(ok, level(pick) * s, w)


def grid_grads(xp, w, lo, step, g, K1: float, red) -> tuple:
    """Straight-through gradients of a learned uniform grid (LSQ, Esser et al. 2020) for the weights
    w_q = lo + step·clip(round((w - lo) / step), 0, K1) of one kernel: (d_lo, d_step, g_w) from g =
    dL/dw_q, with lo/step per channel (summed over the axes `red`). A weight inside the grid's range
    passes g to w and moves step by g·(q - u) (u = (w - lo)/step: its rounding error, in steps); one
    below lo or above lo + K1·step gets no weight gradient and moves lo by g and step by g·q (q = 0 or
    K1), so training can narrow or widen each channel's range (clipping outliers or not).
    `xp`: numpy, or a namespace of the same names over TensorFlow (_tf_ops)."""
    u = (w - lo) / step
    q = xp.clip(xp.round(u), 0.0, K1)
    inside = xp.logical_and(u >= 0.0, u <= K1)
    zero = xp.zeros_like(g)
    d_step = xp.sum(g * xp.where(inside, q - u, q), axis=red, keepdims=True)
    d_lo = xp.sum(xp.where(inside, zero, g), axis=red, keepdims=True)
    return d_lo, d_step, xp.where(inside, g, zero)


def _tf_ops(tf):
    """the numpy names grid_grads uses, over TensorFlow"""
    from types import SimpleNamespace
    return SimpleNamespace(clip=tf.clip_by_value, round=tf.round, logical_and=tf.logical_and, where=tf.where,
                           zeros_like=tf.zeros_like, sum=lambda x, axis, keepdims: tf.reduce_sum(
                               x, axis=axis, keepdims=keepdims))


def trained_variables(model, a, log) -> list:
    """The variables the optimizer updates: all trainable ones, or with --train-only REGEX those
    whose name matches (the others keep their values)."""
    vs = list(model.trainable_variables)
    if not getattr(a, "train_only", None):
        return vs
    try:
        pat = re.compile(a.train_only)
    except re.error as e:
        raise SystemExit(f"--train-only {a.train_only!r}: not a regular expression ({e})") from None
    keep = [v for v in vs if pat.search(v.name)]
    if not keep:
        raise SystemExit(f"--train-only {a.train_only!r} matches none of the model's {len(vs)} variables")
    log(f"--train-only {a.train_only!r}: {len(keep)} of {len(vs)} variables, "
        f"{sum(int(np.prod(v.shape)) for v in keep):,} parameters trained")
    return keep


def grid_from(tf, plan, a, build, log) -> list:
    """--qat-grid-from RUN (float grid): per planned kernel the (lo, step) of RUN's same kernel
    (lo = min, step = (max - lo) / (K - 1) per channel, each rounded to bfloat16 as `xnn convert
    --coarse-params` rounds them), as constants. RUN is the float model whose
    post-training codes (`xnn convert --weight-rounding gptq`, imported as --init) start this run:
    GPTQ keeps the float model's per-channel grids but need not use their end levels, so the grid of
    the rounded weights' own min/max would move every weight of such a channel."""
    from xnn.converter.compress import _affine_grid, _channel_rows

    if a.qat_grid != "float":
        raise SystemExit("--qat-grid-from needs --qat-grid float")
    if build is None:
        raise SystemExit("--qat-grid-from is not available for this model")
    ref = build(a.qat_grid_from)
    ref.load_weights(os.path.join(a.qat_grid_from, "final.weights.h5"))
    by_name = {name: var for name, var, *_ in qat_plan(ref, 8, ((".", 8),))}
    out = []
    for name, v, ax, b, _ in plan:
        if name not in by_name or tuple(by_name[name].shape) != tuple(v.shape):
            raise SystemExit(f"--qat-grid-from {a.qat_grid_from}: no kernel {name} of shape {list(v.shape)}")
        w = by_name[name].numpy()
        rows = _channel_rows(w, ax)  # [C, n]
        C, n = rows.shape
        # the converter's own grid with --coarse-params: lo, then step, rounded to bfloat16
        lo, step = _affine_grid(rows.reshape(-1), np.repeat(np.arange(C), n), C, b, coarse=True)
        shape = [1] * w.ndim
        shape[ax] = C
        out.append((tf.constant(lo.reshape(shape)), tf.constant(step.reshape(shape))))
    log(f"QAT grids of {len(out)} kernels from {a.qat_grid_from}")
    return out


class _QAT:
    """The run's QAT plan at work: to_grid() puts the planned kernels on their grids and returns the
    float values that restore() puts back; learn() (with --qat-learn-grid) turns the kernels'
    gradients into their grids' and updates those; `trackables` go into the checkpoint."""

    def __init__(self, tf, keras, plan, grid, fixed, learn_lr=0.0):
        self.tf, self.plan, self.grid, self.fixed = tf, plan, grid, fixed
        self.grids, self.trackables, self.opt = [], {}, None
        if learn_lr:
            for i in range(len(plan)):
                s0, m0, ok = self._start(i)
                self.grids.append((tf.Variable(s0, trainable=False), tf.Variable(m0, trainable=False),
                                   tf.constant(ok)))
            self.opt = keras.optimizers.Adam(learn_lr)
            # the bits each grid was learned for: a run that changes a kernel's bits (--init from a
            # run with other --qat-bits-for) starts that kernel's grid afresh (check_restored)
            self.bits = tf.Variable([p[3] for p in plan], dtype=tf.int32, trainable=False)
            self.trackables = {"qat_grid": tf.train.Checkpoint(
                vars=[v for s_, m_, _ in self.grids for v in (s_, m_)], optimizer=self.opt, bits=self.bits)}

    def _start(self, i):
        """kernel i's learned-grid parameters at --qat-grid-from's grid: per channel s = log(step) and
        m = lo / step (so that the optimizer's steps are relative: a learning rate of 1e-3 moves a step
        by ~0.1%, lo by ~0.001 steps), and where the step is > 0 (other channels stay exact)"""
        lo, st = (x.numpy() for x in self.fixed[i])
        ok = st > 0
        st = np.where(ok, st, 1.0)
        return np.log(st).astype(np.float32), (lo / st).astype(np.float32), ok

    def check_restored(self, log):
        """after a checkpoint restore: grids learned for other bits than this plan's go back to
        --qat-grid-from's"""
        if not self.grids:
            return
        was = self.bits.numpy()
        for i, (name, *_, b, _) in enumerate(self.plan):
            if int(was[i]) != b:
                s0, m0, _ = self._start(i)
                self.grids[i][0].assign(s0)
                self.grids[i][1].assign(m0)
                log(f"{name}: its learned grid was for {int(was[i])} bits, now {b}: starts from --qat-grid-from")
        self.bits.assign([p[3] for p in self.plan])

    def _grid(self, i):
        """kernel i's (lo, step): the fixed ones (None without --qat-grid-from), or the learned ones
        rounded to bfloat16 (so that `xnn convert --coarse-params` stores them as trained); step 0
        where a channel stays exact"""
        if not self.grids:
            return self.fixed[i]
        tf = self.tf
        s_, m_, ok = self.grids[i]
        st = tf.exp(s_)
        bf = (lambda x: tf.cast(tf.cast(x, tf.bfloat16), tf.float32))
        return bf(m_ * st), tf.where(ok, bf(st), 0.0)

    def to_grid(self):
        saved = [self.tf.identity(p[1]) for p in self.plan]
        for i, (_, v, ax, b, blocks) in enumerate(self.plan):
            v.assign(fake_quant(self.tf, v, ax, b, blocks, self.grid, self._grid(i)))
        return saved

    def restore(self, saved):
        for p, s in zip(self.plan, saved):
            p[1].assign(s)

    def learn(self, grads, train_vars, saved):
        """grads (of train_vars, at the rounded kernels) -> the same list with the learned-grid kernels'
        gradients masked (grid_grads), after one update of their grids; `saved`: to_grid()'s floats"""
        if not self.grids:
            return grads
        tf, xp = self.tf, _tf_ops(self.tf)
        at = {id(v): j for j, v in enumerate(train_vars)}
        grads, pairs = list(grads), []
        for i, (_, v, ax, b, _) in enumerate(self.plan):
            j = at.get(id(v))
            if j is None or grads[j] is None:
                continue
            s_, m_, ok = self.grids[i]
            lo, st = self._grid(i)
            st1 = tf.where(ok, st, 1.0)
            red = [k for k in range(v.shape.rank) if k != ax]
            d_lo, d_st, g_w = grid_grads(xp, saved[i], lo, st1, grads[j], float((1 << b) - 1), red)
            grads[j] = tf.where(ok, g_w, grads[j])
            zero = tf.zeros_like(d_lo)
            # chain rule to (s, m): step = e^s, lo = m·e^s
            pairs += [(tf.where(ok, d_st * st1 + d_lo * lo, zero), s_), (tf.where(ok, d_lo * st1, zero), m_)]
        if pairs:
            self.opt.apply_gradients(pairs)
        return grads

    def grid_summary(self) -> str:
        """how far the learned grids moved from where they started (for the epoch log)"""
        if not self.grids:
            return ""
        r, c = [], []
        for i, (_, v, ax, b, _) in enumerate(self.plan):
            lo, st = (x.numpy() for x in self._grid(i))
            lo0, st0 = (x.numpy() for x in self.fixed[i])
            ok = st0 > 0
            r.append(np.abs(np.log(st[ok] / st0[ok])))
            w = v.numpy()
            u = (w - lo) / np.where(st > 0, st, 1.0)
            c.append((((u < -0.5) | (u > (1 << b) - 0.5)) & (st > 0)).mean())
        r = np.concatenate(r)
        return (f"learned grids: step moved {100 * np.mean(np.expm1(r)):.1f}% on average "
                f"(max {100 * np.expm1(r.max()):.0f}%), {100 * np.mean(c):.2f}% of weights clipped")


def qat_hooks(tf, model, a, log, build=None, keras=None) -> _QAT:
    """the run's _QAT (its methods are no-ops without --qat-bits/--qat-bits-for). The plan goes to
    OUT/qat.json."""
    plan = qat_plan(model, a.qat_bits, parse_bits_for(a.qat_bits_for), a.qat_min_size) \
        if (a.qat_bits or a.qat_bits_for) else []
    if plan:
        log(f"quantization-aware training ({a.qat_grid} grid): {len(plan)} kernels, "
            f"{sum(int(np.prod(p[1].shape)) for p in plan):,} weights: "
            + ", ".join(f"{p[0]}={p[3]}" for p in plan))
        with open(os.path.join(a.out, "qat.json"), "w") as f:
            json.dump({"grid": a.qat_grid, "bits": {p[0]: p[3] for p in plan}}, f, indent=1)
    learn = getattr(a, "qat_learn_grid", 0.0) or 0.0
    if learn and not getattr(a, "qat_grid_from", None):
        raise SystemExit("--qat-learn-grid needs --qat-grid-from RUN (the grids it starts from)")
    if learn and not plan:
        raise SystemExit("--qat-learn-grid needs a QAT plan (--qat-bits / --qat-bits-for)")
    fixed = grid_from(tf, plan, a, build, log) if getattr(a, "qat_grid_from", None) else [None] * len(plan)
    if learn:
        log(f"learning the {len(plan)} kernels' grids (lo, step per channel) at rate {learn:g}")
    return _QAT(tf, keras, plan, a.qat_grid, fixed, learn)


def _fine_tune_copy(a, spec, spec_cls, data_only=()) -> bool:
    """--init RUN for a new run folder: copy RUN's checkpoint (weights, optimizer, epoch); RUN's spec
    must equal this one except for the `data_only` fields. True when it copied."""
    if not a.init or os.path.exists(os.path.join(a.out, "ckpt")):
        return False
    import shutil

    other = spec_cls.from_json(_spec_json(a.init))
    if {k: v for k, v in other.__dict__.items() if k not in data_only} != \
            {k: v for k, v in spec.__dict__.items() if k not in data_only}:
        raise SystemExit(f"--init {a.init}: its model differs from this spec beyond the training data")
    shutil.copytree(os.path.join(a.init, "ckpt"), os.path.join(a.out, "ckpt"))
    return True


# ---- recognizer training -------------------------------------------------------------------------

def _teacher(a, build, log):
    """--distill: a frozen teacher, build(RUN) loaded from RUN/final.weights.h5 (RUN: --teacher, else
    --init); None without --distill. `build` checks RUN's spec and builds its model."""
    if not a.distill:
        return None
    run = a.teacher or a.init
    if not run:
        raise SystemExit("--distill needs --teacher RUN or --init RUN")
    t = build(run)
    t.load_weights(os.path.join(run, "final.weights.h5"))
    t.trainable = False
    log(f"distillation from {run} (weight {a.distill:g})")
    return t


def _spec_json(run):
    return open(os.path.join(run, "spec.json"), encoding="utf-8").read()


def _rec_teacher(spec, rec):
    """build(RUN) for _teacher: any recognizer reading the same charset at the same input width."""
    def build(run):
        other = rs.RecSpec.from_json(_spec_json(run))
        if (other.charset, other.width) != (spec.charset, spec.width):
            raise SystemExit(f"--teacher {run}: another charset or input width than this spec")
        return rec.build(other)
    return build


def train_recognizer(a, log=print):
    ints = (lambda v: tuple(int(t) for t in v.split(",")) if v else None)
    spec = rs.make_spec(a.domain, a.field, width=a.width, units=a.units, proj=a.proj, growth=a.growth,
                        stem=a.stem, max_label=a.max_label, logits_rank=a.logits_rank,
                        blocks=ints(a.blocks), trans=ints(a.trans),
                        jitter=a.jitter, box_jitter=a.box_jitter, merge_captions=a.merge_captions,
                        se_pool=a.se_pool)
    os.makedirs(a.out, exist_ok=True)
    # fine-tune: continue another run's checkpoint (weights, optimizer, epoch) under this spec,
    # which may differ from that run's only in its training data (e.g. --jitter/--box-jitter)
    fine_tune = _fine_tune_copy(a, spec, rs.RecSpec, {"jitter", "box_jitter", "merge_captions", "se_pool"})
    if fine_tune:
        log(f"fine-tuning from {a.init}")
    _write_spec(a.out, spec, rs.RecSpec.from_json, a.restart, check=not fine_tune)
    d = ensure_data(spec, a.cache, a.lines, a.shard, a.val, a.workers, log)
    bg = None
    if a.bg_lines > 0:
        k0 = math.ceil(a.lines / a.shard)
        ks = list(range(k0, k0 + math.ceil(a.bg_lines / a.shard)))
        bg = mp.get_context("spawn").Process(target=_render_loop, args=(spec.to_json(), d, ks, a.shard),
                                             daemon=True)
        bg.start()
        log(f"background renderer: {len(ks)} more shards of {a.shard} lines")

    tf, keras = _tensorflow(a.threads)

    from . import recognizer as rec

    tf.keras.utils.set_random_seed(a.seed)
    model = rec.build(spec)
    lm = rec.logits_model(model)
    log(f"{spec.name}: input 32x{spec.width}, {spec.frames} frames, {spec.n_classes} classes, "
        f"{model.count_params():,} parameters")
    opt = keras.optimizers.Adam(a.lr)
    qat = qat_hooks(tf, model, a, log, _rec_teacher(spec, rec), keras)
    to_grid, restore = qat.to_grid, qat.restore
    epoch_var, mgr = _checkpoints(tf, model, opt, a.out, a.restart, log, qat.trackables)
    qat.check_restored(log)

    B, T = a.batch, spec.frames
    sig = [tf.TensorSpec((B, 32, spec.width, 1), tf.float32), tf.TensorSpec((B, spec.max_label), tf.int32),
           tf.TensorSpec((B,), tf.int32)]
    train_vars = trained_variables(lm, a, log)
    teacher = _teacher(a, _rec_teacher(spec, rec), log)
    if teacher is not None:
        teacher = rec.logits_model(teacher)

    @tf.function(input_signature=sig)
    def step(x, lab, lens):
        # with a QAT plan: forward and gradient at the quantized weights, update of the float ones
        # (straight-through estimator)
        saved = to_grid()
        with tf.GradientTape() as tape:
            logits = lm(x, training=not a.freeze_bn)
            loss = tf.reduce_mean(tf.nn.ctc_loss(lab, logits, lens, tf.fill([B], T), logits_time_major=False,
                                                 blank_index=-1))
            if teacher is not None:
                # KL(teacher || student) summed over a line's frames, averaged over the batch
                lt = tf.nn.log_softmax(teacher(x, training=False), -1)
                ls = tf.nn.log_softmax(logits, -1)
                loss = loss + a.distill * tf.reduce_mean(
                    tf.reduce_sum(tf.exp(lt) * (lt - ls), axis=[1, 2]))
        grads = tape.gradient(loss, train_vars)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        grads = qat.learn(grads, train_vars, saved)  # --qat-learn-grid
        restore(saved)
        opt.apply_gradients(zip(grads, train_vars))
        return loss

    zv = np.load(os.path.join(d, f"val_{a.val}.npz"))
    xv, tv = rs.to_input(zv["x"]), list(zv["texts"])
    hist = open(os.path.join(a.out, "history.jsonl"), "a")
    start = int(epoch_var.numpy())
    for epoch in range(start, min(a.epochs, a.until) if a.until else a.epochs):
        t0 = time.time()
        x_all = None                      # the previous epoch's pool goes before the next one loads
        x_all, t_all = load_shards(d)
        keep = [i for i, t in enumerate(t_all) if 0 < len(t) <= spec.max_label]
        rng = np.random.default_rng([a.seed, epoch])
        order = rng.permutation(keep)
        n_steps = len(order) // B if a.steps <= 0 else min(a.steps, len(order) // B)
        lr = _lr(a, epoch)
        opt.learning_rate.assign(lr)
        if qat.opt is not None:  # the grids' rate follows the same schedule
            qat.opt.learning_rate.assign(a.qat_learn_grid * lr / a.lr)
        losses = []
        for s in range(n_steps):
            idx = order[s * B:(s + 1) * B]
            lab, lens = rs.label_batch([t_all[i] for i in idx], spec)
            loss = float(step(tf.constant(rs.to_input(x_all[idx])), tf.constant(lab), tf.constant(lens)))
            losses.append(loss)
            if a.log_every and (s + 1) % a.log_every == 0:
                log(f"  epoch {epoch + 1} step {s + 1}/{n_steps} loss {np.mean(losses[-a.log_every:]):.4f}")
        t_train = time.time() - t0
        saved = to_grid()  # validate what will be exported
        probs = model.predict(xv, batch_size=64, verbose=0)
        restore(saved)
        acc = rs.accuracy([rs.greedy_text(p, spec.charset) for p in probs], tv)
        epoch_var.assign(epoch + 1)
        mgr.save(checkpoint_number=epoch + 1)
        rec_ = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None, "lr": lr,
                "lines": len(keep), "steps": n_steps, "val_seq_acc": acc["seq_acc"],
                "val_char_acc": acc["char_acc"], "train_s": round(t_train, 1),
                "ms_per_line": round(1000 * t_train / max(1, n_steps * B), 1)}
        hist.write(json.dumps(rec_) + "\n")
        hist.flush()
        log(f"epoch {epoch + 1}/{a.epochs}  loss {rec_['loss']:.4f}  lr {lr:.2e}  val seq {acc['seq_acc']:.4f} "
            f"char {acc['char_acc']:.4f}  ({len(keep)} lines, {t_train:.0f}s, {rec_['ms_per_line']} ms/line)")
        if qat.grids:
            log("  " + qat.grid_summary())
    to_grid()  # the final weights are the quantized ones (checkpoints keep the float shadow)
    model.save_weights(os.path.join(a.out, "final.weights.h5"))
    log(f"wrote {os.path.join(a.out, 'final.weights.h5')}")
    if bg is not None and bg.is_alive():
        bg.terminate()


# ---- detector training ---------------------------------------------------------------------------

def det_cache_dir(spec, root: str) -> str:
    return os.path.join(root, f"det_{spec.height}x{spec.width}")


def _render_det_shard(args):
    spec_json, path, n, seed = args
    if os.path.exists(path):
        return path
    from . import det_targets as dt

    spec = dt.DetSpec.from_json(spec_json)
    x, q, owner, scales, doms = dt.render_set(spec, n, seed)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, x=x, quads=q, owner=owner, scales=scales, domains=doms)
    os.replace(tmp, path)
    return path


def ensure_det_data(spec, root, pages, shard, val, workers, log=print):
    """Render missing detector page shards (enough for `pages`) and the validation pages."""
    from . import det_targets as dt

    d = det_cache_dir(spec, root)
    os.makedirs(d, exist_ok=True)
    sj = spec.to_json()
    jobs = [(sj, _shard_path(d, k), shard, dt.TRAIN_SEED_BASE + k) for k in range(math.ceil(pages / shard))]
    jobs.append((sj, os.path.join(d, f"val_{val}.npz"), val, dt.VAL_SEED))
    todo = [j for j in jobs if not os.path.exists(j[1])]
    if todo:
        t0 = time.time()
        log(f"rendering {sum(j[2] for j in todo)} pages into {d} ({workers} worker(s)) ...")
        if workers > 1:
            with mp.get_context("spawn").Pool(workers, initializer=os.nice, initargs=(19,)) as pool:
                for _ in pool.imap_unordered(_render_det_shard, todo):
                    pass
        else:
            for j in todo:
                _render_det_shard(j)
        log(f"rendered in {time.time() - t0:.0f}s")
    return d


def load_det_shards(d, limit=None):
    """All cached training pages: (x (N, H, W) uint8, quads (M, 4, 2), owner (M,) page index)."""
    xs, qs, ows, n = [], [], [], 0
    for p in sorted(glob.glob(os.path.join(d, "train_*.npz"))):
        if p.endswith(".tmp.npz"):
            continue
        z = np.load(p)
        xs.append(z["x"])
        qs.append(z["quads"])
        ows.append(z["owner"] + n)
        n += len(z["x"])
        if limit and n >= limit:
            break
    return np.concatenate(xs), np.concatenate(qs), np.concatenate(ows)


def det_scores(probs_out, quads, owner, spec, threshold=0.5):
    """Precision/recall/F at IoU 0.5 of model outputs (N, H', W', 6) against input-pixel quads."""
    from .det_targets import post

    tp = n_pred = 0
    for i, y in enumerate(probs_out):
        q, _ = post.detect(y, 1.0, spec.stride, spec.d0, threshold)
        tp += post.match(q, quads[owner == i])
        n_pred += len(q)
    return post.prf(tp, n_pred, len(quads))


def train_detector(a, log=print):
    from . import det_targets as dt

    ints = (lambda v: tuple(int(t) for t in v.split(",")) if v else None)
    kw = {k: v for k, v in dict(height=a.height, width=a.width, widths=ints(a.widths), fpn=a.fpn,
                                groups=a.groups, units=ints(a.units),
                                domains=tuple(a.domains.split(",")) if a.domains else None).items()
          if v is not None}
    spec = dt.DetSpec(**kw)
    os.makedirs(a.out, exist_ok=True)
    fine_tune = _fine_tune_copy(a, spec, dt.DetSpec)
    if fine_tune:
        log(f"fine-tuning from {a.init}")
    _write_spec(a.out, spec, dt.DetSpec.from_json, a.restart, check=not fine_tune)
    d = ensure_det_data(spec, a.cache, a.pages, a.shard, a.val, a.workers, log)

    tf, keras = _tensorflow(a.threads)

    from . import detector as det

    tf.keras.utils.set_random_seed(a.seed)
    model = det.build(spec)
    log(f"{spec.name}: input {spec.height}x{spec.width}, output {spec.out_shape}, "
        f"{model.count_params():,} parameters")
    opt = keras.optimizers.Adam(a.lr)
    qat = qat_hooks(tf, model, a, log)
    to_grid, restore = qat.to_grid, qat.restore
    epoch_var, mgr = _checkpoints(tf, model, opt, a.out, a.restart, log)

    B = a.batch
    H4, W4, _ = spec.out_shape
    sig = [tf.TensorSpec((B, spec.height, spec.width, 1), tf.float32), tf.TensorSpec((B, H4, W4, 1), tf.float32),
           tf.TensorSpec((B, H4, W4, 1), tf.float32), tf.TensorSpec((B, H4, W4, 5), tf.float32)]

    train_vars = trained_variables(model, a, log)

    def det_teacher(run):
        """any detector of the same input size, stride and targets (d0): a wider one may teach a narrower"""
        other = dt.DetSpec.from_json(_spec_json(run))
        if (other.height, other.width, other.stride, other.d0) != (spec.height, spec.width, spec.stride, spec.d0):
            raise SystemExit(f"--teacher {run}: another input size, stride or d0 than this spec")
        return det.build(other)

    teacher = _teacher(a, det_teacher, log)

    @tf.function(input_signature=sig)
    def step(x, score, mask, geo):
        saved = to_grid()  # QAT: see train_recognizer
        with tf.GradientTape() as tape:
            out = model(x, training=not a.freeze_bn)
            total, dice, g = det.loss_fn(out, score, mask, geo)
            if teacher is not None:
                # the teacher's score map as soft targets (no ignore mask), its geometry weighted by it
                t = teacher(x, training=False)
                total = total + a.distill * det.loss_fn(out, t[..., :1], tf.ones_like(mask), t[..., 1:])[0]
        grads = tape.gradient(total, train_vars)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        restore(saved)
        opt.apply_gradients(zip(grads, train_vars))
        return total, dice, g

    zv = np.load(os.path.join(d, f"val_{a.val}.npz"))
    xv, qv, ov = dt.to_input(zv["x"]), zv["quads"], zv["owner"]
    hist = open(os.path.join(a.out, "history.jsonl"), "a")
    start = int(epoch_var.numpy())
    for epoch in range(start, min(a.epochs, a.until) if a.until else a.epochs):
        t0 = time.time()
        x_all, q_all, o_all = load_det_shards(d, a.pages)
        rng = np.random.default_rng([a.seed, epoch])
        order = rng.permutation(len(x_all))
        n_steps = len(order) // B if a.steps <= 0 else min(a.steps, len(order) // B)
        lr = _lr(a, epoch)
        opt.learning_rate.assign(lr)
        losses = []
        for s in range(n_steps):
            idx = order[s * B:(s + 1) * B]
            sc, mk, ge = dt.batch_targets(q_all, o_all, idx, spec)
            out = step(tf.constant(dt.to_input(x_all[idx])), tf.constant(sc), tf.constant(mk), tf.constant(ge))
            losses.append([float(v) for v in out])
            if a.log_every and (s + 1) % a.log_every == 0:
                m = np.mean(losses[-a.log_every:], 0)
                log(f"  epoch {epoch + 1} step {s + 1}/{n_steps} loss {m[0]:.4f} (dice {m[1]:.4f} geo {m[2]:.4f})")
        t_train = time.time() - t0
        saved = to_grid()
        yv = model.predict(xv, batch_size=8, verbose=0)
        restore(saved)
        r = det_scores(yv, qv, ov, spec)
        epoch_var.assign(epoch + 1)
        mgr.save(checkpoint_number=epoch + 1)
        m = np.mean(losses, 0) if losses else [float("nan")] * 3
        rec_ = {"epoch": epoch + 1, "loss": float(m[0]), "dice": float(m[1]), "geo": float(m[2]), "lr": lr,
                "pages": len(x_all), "steps": n_steps, "val_precision": r["precision"], "val_recall": r["recall"],
                "val_f": r["f"], "train_s": round(t_train, 1),
                "ms_per_page": round(1000 * t_train / max(1, n_steps * B), 1)}
        hist.write(json.dumps(rec_) + "\n")
        hist.flush()
        log(f"epoch {epoch + 1}/{a.epochs}  loss {m[0]:.4f}  lr {lr:.2e}  val P {r['precision']:.3f} "
            f"R {r['recall']:.3f} F {r['f']:.3f}  ({len(x_all)} pages, {t_train:.0f}s, {rec_['ms_per_page']} ms/page)")
    to_grid()
    model.save_weights(os.path.join(a.out, "final.weights.h5"))
    log(f"wrote {os.path.join(a.out, 'final.weights.h5')}")


def _distill_args(p, what, teacher):
    p.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help=f"add W x {what} (knowledge distillation, e.g. for quantization-aware training; 0: off)")
    p.add_argument("--teacher", metavar="RUN",
                   help=f"with --distill: the teacher run (its final.weights.h5; {teacher}; default --init)")


def _qat_args(p):
    p.add_argument("--qat-bits", type=int, default=0, metavar="B", choices=range(0, 9),
                   help="quantization-aware training: forward and backward on weight kernels rounded to B-bit "
                        "uniform codes per output channel (xnn convert --weight-bits B --weight-codec uniform); "
                        "the final weights are the rounded ones; best as a fine-tune (--init)")
    p.add_argument("--qat-bits-for", action="append", metavar="REGEX=B",
                   help="per-kernel bits by LAYER/WEIGHT name (e.g. '^lstm/=2'; B 0 keeps a kernel exact); "
                        "repeatable, the last match wins")
    p.add_argument("--qat-min-size", type=int, default=0, metavar="N",
                   help="with --qat-bits: kernels of fewer than N elements stay exact (--weight-bits-min-size N)")
    p.add_argument("--train-only", metavar="REGEX",
                   help="update only the variables whose name matches REGEX (re.search), e.g. "
                        "'gamma|beta|bias': a light fine-tune of the per-channel scales (batch norm) and biases "
                        "around kernels held on their post-training codes; the rest stay as --init left them")
    p.add_argument("--qat-grid-from", metavar="RUN",
                   help="with --qat-grid float: keep each kernel's per-channel grid of RUN's model (its float "
                        "model) all through the run, instead of the grid of the current weights' min/max; for "
                        "a start on post-training (gptq) codes imported with models.import_zoo")
    p.add_argument("--qat-learn-grid", type=float, default=0.0, metavar="LR",
                   help="with --qat-grid-from (recognizer): learn each kernel's per-channel grid (lo, step) from "
                        "there at learning rate LR (Adam on log step and lo/step, on --lr's schedule; e.g. 1e-4), "
                        "with straight-through gradients (LSQ): a channel may narrow its range and clip outliers. "
                        "lo and step are kept on bfloat16 numbers, so `xnn convert --weight-bits-fit "
                        "--coarse-params` stores the trained weights exactly")
    p.add_argument("--freeze-bn", action="store_true",
                   help="run the training steps in inference mode: batch norm uses (and keeps) its moving "
                        "statistics instead of each batch's; for fine-tunes of a converged model (--init)")
    p.add_argument("--qat-grid", choices=("int8", "float"), default="int8",
                   help="int8 (default): exactly the levels the int8 export + xnn convert --weight-codec uniform "
                        "store (the .xnn then equals the int8 model); float: the float model's uniform grid "
                        "(for `xnn convert` of the float .tflite)")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("recognizer", help="CRNN line recognizer (models.recognizer)")
    r.add_argument("--domain", required=True)
    r.add_argument("--field", required=True)
    r.add_argument("--out", required=True, help="run folder (spec, checkpoints, history, final weights)")
    r.add_argument("--cache", default="runs/cache", help="rendered-line cache root")
    r.add_argument("--lines", type=int, default=20000, help="training lines rendered before training")
    r.add_argument("--bg-lines", type=int, default=0, help="more lines rendered in the background")
    r.add_argument("--shard", type=int, default=1000, help="lines per cache shard")
    r.add_argument("--val", type=int, default=500, help="validation lines (seed VAL_SEED)")
    r.add_argument("--workers", type=int, default=1, help="rendering processes")
    r.add_argument("--epochs", type=int, default=30)
    r.add_argument("--steps", type=int, default=0, help="max steps per epoch (0: all lines)")
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--lr", type=float, default=2e-3)
    r.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--log-every", type=int, default=100)
    r.add_argument("--restart", action="store_true", help="ignore existing checkpoints")
    r.add_argument("--init", metavar="RUN", help="fine-tune: start from RUN's last checkpoint (same model; the "
                                                 "training data may differ, e.g. --box-jitter)")
    r.add_argument("--until", type=int, default=0, metavar="E",
                   help="stop after epoch E (the learning-rate schedule still spans --epochs; rerun to go on)")
    _distill_args(r, "the per-line KL divergence of the teacher's frame distributions to this model's",
                  "any recognizer of the same charset and input width")
    _qat_args(r)
    for k in ("width", "units", "proj", "growth", "stem", "max_label", "logits_rank"):
        r.add_argument("--" + k.replace("_", "-"), type=int, default=None, help="override the preset")
    r.add_argument("--jitter", type=float, default=None,
                   help="move training crops' quad corners by up to this many line heights (default 0.05; larger makes the model tolerate looser detector boxes)")
    r.add_argument("--box-jitter", type=float, default=None,
                   help="move training crops' box ends along the line by up to 3x and edges across it by up to "
                        "1x this many line heights, like detector boxes (default 0)")
    r.add_argument("--merge-captions", type=float, default=None, metavar="P",
                   help="crop this share of the lines that have a small caption before them on their row (a "
                        "card's VALID THRU) together with it, as the detector boxes them (default 0)")
    r.add_argument("--se-pool", choices=("global", "column"), default=None,
                   help="squeeze-excitation pooling: global (default) or per column (each frame's channel "
                        "weights from its own column, so no frame sees the far end of the line; a fine-tune "
                        "from a global run keeps its weights)")
    r.add_argument("--blocks", help="dense layers per block, e.g. 3,4,4 (overrides the preset)")
    r.add_argument("--trans", help="transition widths, e.g. 48,80,128 (overrides the preset)")
    t = sub.add_parser("detector", help="FCN text detector (models.detector)")
    t.add_argument("--out", required=True, help="run folder (spec, checkpoints, history, final weights)")
    t.add_argument("--cache", default="runs/cache", help="rendered-page cache root")
    t.add_argument("--pages", type=int, default=6000, help="training pages (all domains, round robin)")
    t.add_argument("--shard", type=int, default=250, help="pages per cache shard")
    t.add_argument("--val", type=int, default=100, help="validation pages (seed det_targets.VAL_SEED)")
    t.add_argument("--workers", type=int, default=1, help="rendering processes")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps", type=int, default=0, help="max steps per epoch (0: all pages)")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--restart", action="store_true", help="ignore existing checkpoints")
    t.add_argument("--until", type=int, default=0, metavar="E",
                   help="stop after epoch E (the learning-rate schedule still spans --epochs; rerun to go on)")
    for k in ("height", "width", "fpn", "groups"):
        t.add_argument("--" + k, type=int, default=None, help="override the default spec")
    t.add_argument("--widths", help="channels at 1/2 .. 1/32, e.g. 16,24,48,64,96")
    t.add_argument("--units", help="shuffle units at 1/8, 1/16, 1/32, e.g. 1,2,2")
    t.add_argument("--domains", help="comma-separated page domains (default: all)")
    t.add_argument("--init", metavar="RUN", help="fine-tune: start from RUN's last checkpoint (same spec)")
    _distill_args(t, "the loss against a teacher's outputs (its score map as soft targets, its geometry "
                     "where it sees text)", "the same spec")
    _qat_args(t)
    a = ap.parse_args(argv)
    if a.what == "recognizer":
        train_recognizer(a, log=lambda s: print(s, flush=True))
    elif a.what == "detector":
        train_detector(a, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    sys.exit(main())
