"""CTC decoding: best-path (greedy) and prefix beam search, with constraints, as Numba kernels.

Input is a (T, C) array of per-frame class scores for one sequence; `to_log_probs` turns
probabilities, logits or int8 outputs into log-probabilities. A label sequence's exact probability
is P(l|x) = Σ over frame paths π that collapse to l (merge repeats, drop blanks) of Π_t p_t(π_t),
computed by the CTC forward recursion over the blank-extended sequence l' = (b, l1, b, l2, ..., b).

Prefix beam search keeps, per prefix, the log-probability of all paths that produced it ending in a
blank (pb) and in a non-blank (pnb); a repeated label extends a prefix only across a blank. The
search can be constrained by a per-frame allowed-label mask and by a DFA over labels
(transitions[state, label] = next state or -1; accepting states), both checked inside the kernel,
or by a Python `prefix_ok(prefix, label)` callback (run by the NumPy reference implementation).
Final candidates (beam results plus the greedy path's labels, when it satisfies the constraints)
are ranked by their exact P(l|x), so the beam result never scores below greedy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

NEG_INF = -np.inf


@dataclass
class CTCResult:
    labels: np.ndarray  # int32 (L,)
    log_prob: float  # exact log P(labels | x) (constraints do not renormalize it)
    char_conf: np.ndarray  # float32 (L,): max posterior of each character over its aligned frames
    spans: np.ndarray  # int32 (L, 2): first and last frame (inclusive) aligned to each character
    valid: bool = True  # satisfies the constraints (always True without constraints)

    @property
    def confidence(self) -> float:
        return float(np.exp(self.log_prob))


# ---- input conversion ------------------------------------------------------------------------

def to_log_probs(x, kind="probs", scale=None, zero_point=0) -> np.ndarray:
    """(T, C) scores -> float64 log-probabilities. kind: 'probs', 'logits' or 'log_probs'.
    Integer input is dequantized with (scale, zero_point) first."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"CTC input must be (T >= 1, C >= 2) scores, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        if scale is None:
            raise ValueError("integer CTC input needs its quantization scale")
        x = (x.astype(np.float64) - zero_point) * float(scale)
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("CTC input contains NaN or infinity")
    if kind == "probs":
        with np.errstate(divide="ignore"):
            return np.log(np.clip(x, 0.0, None) / np.maximum(x.sum(axis=1, keepdims=True), 1e-30))
    if kind == "logits":
        m = x.max(axis=1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    if kind == "log_probs":
        return x
    raise ValueError(f"kind must be 'probs', 'logits' or 'log_probs', got {kind!r}")


# ---- NumPy references (the spec) ------------------------------------------------------------

def _lae(a, b):
    return np.logaddexp(a, b)


def greedy_ref(lp, blank=0):
    """Best path: per-frame argmax, merge repeats, drop blanks. Returns (labels, spans, conf)."""
    best = np.argmax(lp, axis=1)
    labels, spans, conf = [], [], []
    prev = -1
    for t, k in enumerate(best):
        if k != blank and k != prev:
            labels.append(int(k))
            spans.append([t, t])
            conf.append(float(np.exp(lp[t, k])))
        elif k != blank and k == prev:
            spans[-1][1] = t
            conf[-1] = max(conf[-1], float(np.exp(lp[t, k])))
        prev = k
    return (np.array(labels, np.int32), np.array(spans, np.int32).reshape(-1, 2),
            np.array(conf, np.float32))


def ctc_log_prob_ref(lp, labels, blank=0):
    """Exact log P(labels | x) by the CTC forward recursion."""
    T = lp.shape[0]
    ext = [blank]
    for c in labels:
        ext += [int(c), blank]
    S = len(ext)
    alpha = np.full(S, -np.inf)
    alpha[0] = lp[0, ext[0]]
    if S > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, T):
        new = np.full(S, -np.inf)
        for s in range(S):
            a = alpha[s]
            if s >= 1:
                a = _lae(a, alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a = _lae(a, alpha[s - 2])
            new[s] = a + lp[t, ext[s]]
        alpha = new
    return float(_lae(alpha[-1], alpha[-2])) if S > 1 else float(alpha[-1])


def beam_search_ref(lp, beam_width=8, blank=0, allowed=None, transitions=None, accept=None,
                    start_state=0, prefix_ok=None, top_classes=None):
    """Prefix beam search over dicts; returns [(prefix tuple, beam log score)] best first, restricted
    to accepted prefixes when a DFA is given. The spec the Numba kernel must match."""
    T, C = lp.shape
    K = C if top_classes is None else min(top_classes, C)
    beams = {(): (0.0, -np.inf, start_state)}
    for t in range(T):
        order = np.argsort(-lp[t], kind="stable")[:K]
        nxt = {}

        def add(prefix, pb, pnb, state):
            if prefix in nxt:
                ob, onb, _ = nxt[prefix]
                nxt[prefix] = (_lae(ob, pb), _lae(onb, pnb), state)
            else:
                nxt[prefix] = (pb, pnb, state)

        for prefix, (pb, pnb, state) in beams.items():
            ptot = _lae(pb, pnb)
            last = prefix[-1] if prefix else -1
            stay_b = ptot + lp[t, blank] if allowed is None or allowed[t, blank] else -np.inf
            stay_nb = pnb + lp[t, last] if last >= 0 and (allowed is None or allowed[t, last]) else -np.inf
            add(prefix, stay_b, stay_nb, state)
            for c in order:
                c = int(c)
                if c == blank or (allowed is not None and not allowed[t, c]):
                    continue
                ns = state
                if transitions is not None:
                    ns = int(transitions[state, c])
                    if ns < 0:
                        continue
                if prefix_ok is not None and not prefix_ok(prefix, c):
                    continue
                add(prefix + (c,), -np.inf, (pb if c == last else ptot) + lp[t, c], ns)
        ranked = sorted(nxt.items(), key=lambda kv: -_lae(kv[1][0], kv[1][1]))
        beams = dict(kv for kv in ranked[:beam_width] if np.isfinite(_lae(kv[1][0], kv[1][1])))
        if not beams:
            return []
    out = [(p, float(_lae(v[0], v[1]))) for p, v in beams.items()
           if accept is None or accept[v[2]]]
    return sorted(out, key=lambda kv: -kv[1])


def all_paths(lp, blank=0):
    """Every frame path of a (tiny) (T, C) input: yields (collapsed labels tuple, path log-prob)."""
    import itertools

    T, C = lp.shape
    for path in itertools.product(range(C), repeat=T):
        labels, prev = [], -1
        for k in path:
            if k != blank and k != prev:
                labels.append(k)
            prev = k
        yield tuple(labels), float(sum(lp[t, k] for t, k in enumerate(path)))


def brute_force_ref(lp, blank=0):
    """Exhaustive: sum the probability of every frame path per collapsed label sequence (tiny T, C)."""
    totals = {}
    for key, s in all_paths(lp, blank):
        totals[key] = _lae(totals.get(key, -np.inf), s)
    return totals


# ---- Numba kernels -------------------------------------------------------------------------

@njit(cache=True)
def _lae_nb(a, b):
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + np.log1p(np.exp(b - a))
    return b + np.log1p(np.exp(a - b))


@njit(cache=True)
def greedy_kernel(lp, blank):
    T = lp.shape[0]
    labels = np.empty(T, np.int32)
    spans = np.empty((T, 2), np.int32)
    conf = np.empty(T, np.float32)
    n = 0
    prev = -1
    for t in range(T):
        k = 0
        best = lp[t, 0]
        for c in range(1, lp.shape[1]):
            if lp[t, c] > best:
                best = lp[t, c]
                k = c
        if k != blank:
            if k != prev:
                labels[n] = k
                spans[n, 0] = t
                spans[n, 1] = t
                conf[n] = np.exp(best)
                n += 1
            else:
                spans[n - 1, 1] = t
                conf[n - 1] = max(conf[n - 1], np.float32(np.exp(best)))
        prev = k
    return labels[:n].copy(), spans[:n].copy(), conf[:n].copy()


@njit(cache=True)
def ctc_log_prob_kernel(lp, labels, blank):
    """log P(labels | x) by the CTC forward recursion in the probability domain, each frame's
    alphas divided by their maximum and the logs of those maxima summed: one exp per (frame, label)
    and one log per frame instead of a log-add-exp per (frame, state) (5x faster; the same value to
    ~1e-13). -inf when no frame path produces the labels."""
    T = lp.shape[0]
    L = labels.shape[0]
    S = 2 * L + 1
    ext = np.full(S, blank, np.int64)
    for i in range(L):
        ext[2 * i + 1] = labels[i]
    skip = np.zeros(S, np.bool_)         # state s may also come from s - 2
    for s in range(2, S):
        skip[s] = ext[s] != blank and ext[s] != ext[s - 2]
    alpha = np.zeros(S)
    new = np.empty(S)
    e = np.empty(L + 1)                  # this frame's probabilities: blank, then each label
    alpha[0] = np.exp(lp[0, ext[0]])
    if S > 1:
        alpha[1] = np.exp(lp[0, ext[1]])
    log_scale = 0.0
    for t in range(T):
        if t > 0:
            e[0] = np.exp(lp[t, blank])
            for i in range(L):
                e[i + 1] = np.exp(lp[t, labels[i]])
            for s in range(S):
                a = alpha[s]
                if s >= 1:
                    a += alpha[s - 1]
                if skip[s]:
                    a += alpha[s - 2]
                new[s] = a * (e[0] if s % 2 == 0 else e[(s + 1) // 2])
            for s in range(S):
                alpha[s] = new[s]
        m = 0.0
        for s in range(S):
            if alpha[s] > m:
                m = alpha[s]
        if not m > 0.0:                  # every path died (or a NaN)
            return NEG_INF
        if m < 1e-150 or m > 1e150:
            log_scale += np.log(m)
            for s in range(S):
                alpha[s] /= m
    last = alpha[S - 1] + (alpha[S - 2] if S > 1 else 0.0)
    if not last > 0.0:
        return NEG_INF
    return log_scale + np.log(last)


@njit(cache=True)
def align_kernel(lp, labels, blank):
    """Viterbi forced alignment of `labels`: per character its frame span and max frame posterior."""
    T = lp.shape[0]
    L = labels.shape[0]
    S = 2 * L + 1
    ext = np.full(S, blank, np.int64)
    for i in range(L):
        ext[2 * i + 1] = labels[i]
    score = np.full((T, S), NEG_INF)
    back = np.zeros((T, S), np.int64)
    score[0, 0] = lp[0, ext[0]]
    if S > 1:
        score[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            best = score[t - 1, s]
            arg = s
            if s >= 1 and score[t - 1, s - 1] > best:
                best = score[t - 1, s - 1]
                arg = s - 1
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2] and score[t - 1, s - 2] > best:
                best = score[t - 1, s - 2]
                arg = s - 2
            score[t, s] = best + lp[t, ext[s]]
            back[t, s] = arg
    spans = np.full((L, 2), -1, np.int32)
    conf = np.zeros(L, np.float32)
    s = S - 1
    if S > 1 and score[T - 1, S - 2] > score[T - 1, S - 1]:
        s = S - 2
    for t in range(T - 1, -1, -1):
        if s % 2 == 1:
            i = s // 2
            if spans[i, 1] < 0:
                spans[i, 1] = t
            spans[i, 0] = t
            p = np.float32(np.exp(lp[t, ext[s]]))
            if p > conf[i]:
                conf[i] = p
        s = back[t, s]
    return spans, conf


@njit(cache=True)
def beam_kernel(lp, beam_width, blank, allowed, use_mask, transitions, use_dfa, start_state, top_classes):
    """Prefix beam search. Returns (prefixes (W, T) int32, lengths, scores, dfa states), best first."""
    T, C = lp.shape
    W = beam_width
    K = min(top_classes, C)
    maxc = W * (K + 1)
    pref = np.zeros((W, T), np.int32)
    plen = np.zeros(W, np.int64)
    pb = np.full(W, NEG_INF)
    pnb = np.full(W, NEG_INF)
    st = np.zeros(W, np.int64)
    hsh = np.zeros(W, np.int64)
    nb = 1
    pb[0] = 0.0
    st[0] = start_state
    c_par = np.empty(maxc, np.int64)
    c_lab = np.empty(maxc, np.int64)
    c_pb = np.empty(maxc)
    c_pnb = np.empty(maxc)
    c_st = np.empty(maxc, np.int64)
    c_h = np.empty(maxc, np.int64)
    n_pref = np.zeros((W, T), np.int32)
    n_len = np.zeros(W, np.int64)
    n_pb = np.empty(W)
    n_pnb = np.empty(W)
    n_st = np.empty(W, np.int64)
    n_h = np.empty(W, np.int64)
    order = np.empty(K, np.int64)
    for t in range(T):
        _top_k(lp[t], K, order)
        nc = 0
        for w in range(nb):
            ptot = _lae_nb(pb[w], pnb[w])
            last = pref[w, plen[w] - 1] if plen[w] > 0 else -1
            sb = NEG_INF
            if (not use_mask) or allowed[t, blank]:
                sb = ptot + lp[t, blank]
            snb = NEG_INF
            if last >= 0 and ((not use_mask) or allowed[t, last]):
                snb = pnb[w] + lp[t, last]
            c_par[nc] = w
            c_lab[nc] = -1
            c_pb[nc] = sb
            c_pnb[nc] = snb
            c_st[nc] = st[w]
            c_h[nc] = hsh[w]
            nc += 1
            for j in range(K):
                c = order[j]
                if c == blank or (use_mask and not allowed[t, c]):
                    continue
                ns = st[w]
                if use_dfa:
                    ns = transitions[st[w], c]
                    if ns < 0:
                        continue
                base = pb[w] if c == last else ptot
                c_par[nc] = w
                c_lab[nc] = c
                c_pb[nc] = NEG_INF
                c_pnb[nc] = base + lp[t, c]
                c_st[nc] = ns
                c_h[nc] = hsh[w] * 1000003 + c + 1  # wraps mod 2^64: a hash, verified below
                nc += 1
        # merge candidates that spell the same prefix (equal hash, then equal labels)
        idx = np.argsort(c_h[:nc], kind="mergesort")
        alive = np.ones(nc, np.bool_)
        for a in range(nc):
            ia = idx[a]
            if not alive[ia]:
                continue
            for b in range(a + 1, nc):
                ib = idx[b]
                if c_h[ib] != c_h[ia]:
                    break
                if not alive[ib] or not _same_prefix(pref, plen, c_par[ia], c_lab[ia], c_par[ib], c_lab[ib]):
                    continue
                c_pb[ia] = _lae_nb(c_pb[ia], c_pb[ib])
                c_pnb[ia] = _lae_nb(c_pnb[ia], c_pnb[ib])
                alive[ib] = False
        tot = np.full(nc, NEG_INF)
        for i in range(nc):
            if alive[i]:
                tot[i] = _lae_nb(c_pb[i], c_pnb[i])
        rank = np.argsort(-tot, kind="mergesort")
        nn = 0
        for r in range(min(W, nc)):
            i = rank[r]
            if tot[i] == NEG_INF:
                break
            w = c_par[i]
            n_pref[nn, :plen[w]] = pref[w, :plen[w]]
            n_len[nn] = plen[w]
            if c_lab[i] >= 0:
                n_pref[nn, plen[w]] = c_lab[i]
                n_len[nn] += 1
            n_pb[nn] = c_pb[i]
            n_pnb[nn] = c_pnb[i]
            n_st[nn] = c_st[i]
            n_h[nn] = c_h[i]
            nn += 1
        nb = nn
        for w in range(nb):
            pref[w, :n_len[w]] = n_pref[w, :n_len[w]]
            plen[w] = n_len[w]
            pb[w] = n_pb[w]
            pnb[w] = n_pnb[w]
            st[w] = n_st[w]
            hsh[w] = n_h[w]
        if nb == 0:
            break
    scores = np.empty(nb)
    for w in range(nb):
        scores[w] = _lae_nb(pb[w], pnb[w])
    return pref[:nb].copy(), plen[:nb].copy(), scores, st[:nb].copy()


@njit(cache=True)
def _top_k(row, K, out):
    """Indices of the K largest entries of `row`, largest first, ties to the lower index
    (the order of a stable descending sort), by insertion into a sorted list: O(C·K)."""
    n = 0
    for c in range(row.shape[0]):
        v = row[c]
        if n == K and v <= row[out[K - 1]]:
            continue
        j = n if n < K else K - 1
        while j > 0 and row[out[j - 1]] < v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = c
        if n < K:
            n += 1


@njit(cache=True)
def _same_prefix(pref, plen, pa, la, pb_, lb):
    na = plen[pa] + (1 if la >= 0 else 0)
    nb = plen[pb_] + (1 if lb >= 0 else 0)
    if na != nb:
        return False
    for i in range(na):
        xa = pref[pa, i] if i < plen[pa] else la
        xb = pref[pb_, i] if i < plen[pb_] else lb
        if xa != xb:
            return False
    return True


# ---- public API ------------------------------------------------------------------------------

def _check_lp(lp, blank):
    lp = np.ascontiguousarray(lp, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] < 1 or lp.shape[1] < 2:
        raise ValueError(f"log-probabilities must be (T >= 1, C >= 2), got {lp.shape}")
    if not 0 <= int(blank) < lp.shape[1]:
        raise ValueError(f"blank index {blank} out of range for {lp.shape[1]} classes")
    if np.isnan(lp).any():
        raise ValueError("log-probabilities contain NaN")
    return lp, int(blank)


def _result(lp, labels, blank, valid=True):
    labels = np.asarray(labels, np.int32)
    spans, conf = align_kernel(lp, labels, blank)
    return CTCResult(labels=labels, log_prob=float(ctc_log_prob_kernel(lp, labels, blank)),
                     char_conf=conf, spans=spans, valid=valid)


def greedy_decode(log_probs, blank=0) -> CTCResult:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks."""
    lp, blank = _check_lp(log_probs, blank)
    labels, spans, conf = greedy_kernel(lp, blank)
    return CTCResult(labels=labels, log_prob=float(ctc_log_prob_kernel(lp, labels, blank)),
                     char_conf=conf, spans=spans)


def _satisfies(labels, lp, blank, allowed, transitions, accept, start_state, prefix_ok):
    if transitions is not None:
        s = start_state
        for c in labels:
            s = int(transitions[s, c])
            if s < 0:
                return False
        if not accept[s]:
            return False
    if prefix_ok is not None:
        for i, c in enumerate(labels):
            if not prefix_ok(tuple(int(x) for x in labels[:i]), int(c)):
                return False
    if allowed is not None:  # the exact path must be realizable: check by a masked forward pass
        masked = np.where(allowed, lp, -np.inf)
        return np.isfinite(ctc_log_prob_kernel(masked, np.asarray(labels, np.int32), blank))
    return True


def beam_search(log_probs, beam_width=8, blank=0, top_k=1, allowed=None, dfa=None, prefix_ok=None,
                top_classes=None) -> list:
    """CTC prefix beam search; returns up to `top_k` CTCResults, best (highest exact P(l|x)) first.

    allowed: optional bool mask (T, C) or (C,) of labels permitted per frame.
    dfa: optional (transitions int (S, C) with -1 = forbidden, accept bool (S,), start state int):
         only label sequences the automaton accepts are returned.
    prefix_ok: optional Python callable (prefix: tuple, label: int) -> bool vetoing extensions
         (uses the NumPy implementation; prefer `dfa` where the rule is a regular language).
    top_classes: consider only the K most likely classes per frame (default: all).
    An empty list means no label sequence satisfies the constraints.
    """
    lp, blank = _check_lp(log_probs, blank)
    T, C = lp.shape
    if not isinstance(beam_width, (int, np.integer)) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive int, got {beam_width!r}")
    K = C if top_classes is None else int(top_classes)
    if K < 1:
        raise ValueError("top_classes must be >= 1")
    mask = None
    if allowed is not None:
        mask = np.asarray(allowed, bool)
        if mask.shape == (C,):
            mask = np.broadcast_to(mask, (T, C))
        if mask.shape != (T, C):
            raise ValueError(f"allowed mask must be ({C},) or ({T}, {C}), got {mask.shape}")
        mask = np.ascontiguousarray(mask)
    trans = accept = None
    start = 0
    if dfa is not None:
        trans, accept, start = dfa
        trans = np.ascontiguousarray(trans, np.int64)
        accept = np.asarray(accept, bool)
        if trans.ndim != 2 or trans.shape[1] != C or accept.shape != (trans.shape[0],):
            raise ValueError(f"dfa transitions must be (S, {C}) with accept (S,)")
        if trans.min() < -1 or trans.max() >= trans.shape[0] or not 0 <= start < trans.shape[0]:
            raise ValueError("dfa transitions/start state out of range")
    if prefix_ok is not None:
        found = beam_search_ref(lp, beam_width, blank, mask, trans, accept, start, prefix_ok, K)
        cands = [tuple(p) for p, _ in found]
    else:
        pref, plen, _, states = beam_kernel(
            lp, int(beam_width), blank, mask if mask is not None else np.zeros((1, 1), np.bool_),
            mask is not None, trans if trans is not None else np.zeros((1, 1), np.int64),
            trans is not None, int(start), K)
        cands = [tuple(int(x) for x in pref[w, :plen[w]]) for w in range(len(plen))
                 if accept is None or accept[states[w]]]
    g = tuple(int(x) for x in greedy_kernel(lp, blank)[0])
    if g not in cands and _satisfies(g, lp, blank, mask, trans, accept, start, prefix_ok):
        cands.append(g)
    scored = sorted(((float(ctc_log_prob_kernel(lp, np.asarray(c, np.int32), blank)), c) for c in cands),
                    key=lambda sc: -sc[0])
    return [_result(lp, c, blank) for _, c in scored[:top_k]]


# ---- DFA-constrained best path (beam Viterbi with state recombination) ---------------------------
#
# A prefix beam search keeps the W most probable label prefixes; under a checksum or length rule
# those are near-copies of the greedy path that all die at the last characters (Luhn, a VIN or ID
# check character), and a valid reading needs an impractically wide beam. A path's future under
# the rules depends only on (DFA state, last emitted label or "after a blank"), so hypotheses that
# agree on that pair can be recombined, keeping the more probable one (Viterbi): the beam then holds
# W different futures instead of W spellings of one. The result maximizes the single best path
# probability among accepted label sequences (exactly, when the beam and class limits are not hit);
# candidates are finally ranked by their exact CTC probability P(labels | x).

def dfa_viterbi_ref(lp, transitions, accept, start=0, blank=0):
    """Exact NumPy reference (no pruning): the accepted label sequence of the most probable single
    path, and that path's log-probability; (None, -inf) if no path is accepted."""
    lp = np.asarray(lp, np.float64)
    T, C = lp.shape
    best = {(int(start), blank): (0.0, ())}          # (state, last) -> (score, labels)
    for t in range(T):
        nxt = {}

        def put(key, sc, labels):
            if key not in nxt or sc > nxt[key][0]:
                nxt[key] = (sc, labels)

        for (s, last), (sc, labels) in best.items():
            put((s, blank), sc + lp[t, blank], labels)
            if last != blank:
                put((s, last), sc + lp[t, last], labels)
            for k in range(C):
                if k == blank or k == last:
                    continue
                ns = int(transitions[s, k])
                if ns >= 0:
                    put((ns, k), sc + lp[t, k], labels + (k,))
        best = nxt
    fin = [(sc, labels) for (s, _), (sc, labels) in best.items() if accept[s] and np.isfinite(sc)]
    if not fin:
        return None, -np.inf
    sc, labels = max(fin, key=lambda x: x[0])
    return np.array(labels, np.int32), float(sc)


@njit(cache=True)
def _top_indices(scores, n, k, idx):
    """Fill idx[:min(n, k)] with the indices of the k largest of scores[:n] (in no particular order):
    quickselect (Hoare partition, median-of-three pivot) over an index array."""
    for i in range(n):
        idx[i] = i
    if n <= k:
        return n
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        a, b, c = scores[idx[lo]], scores[idx[mid]], scores[idx[hi]]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while scores[idx[i]] > pivot:
                i += 1
            while scores[idx[j]] < pivot:
                j -= 1
            if i <= j:
                t = idx[i]
                idx[i] = idx[j]
                idx[j] = t
                i += 1
                j -= 1
        if k - 1 <= j:
            hi = j
        elif k - 1 >= i:
            lo = i
        else:
            break
    return k


@njit(cache=True)
def dfa_viterbi_kernel(lp, blank, transitions, accept, start, width, top_classes, n_best):
    """Beam Viterbi over (DFA state, last label); returns up to n_best accepted label sequences
    (padded (n, T) int32, lengths, path scores), best first."""
    T, C = lp.shape
    S = transitions.shape[0]
    M = width * (top_classes + 2)
    # history: per frame and kept hypothesis, its parent slot at t-1 and the label it emitted (-1)
    parent = np.full((T, width), -1, np.int32)
    emitted = np.full((T, width), -1, np.int32)
    cur_s = np.empty(width, np.int64)
    cur_l = np.empty(width, np.int64)
    cur_sc = np.empty(width, np.float64)
    cur_s[0] = start
    cur_l[0] = blank
    cur_sc[0] = 0.0
    n_cur = 1
    slot = np.full(S * C, -1, np.int64)        # (state, last) -> candidate index this frame
    cand_s = np.empty(M, np.int64)
    cand_l = np.empty(M, np.int64)
    cand_sc = np.empty(M, np.float64)
    cand_par = np.empty(M, np.int32)
    cand_em = np.empty(M, np.int32)
    order_k = np.empty(top_classes, np.int64)
    keep = np.empty(M, np.int64)
    for t in range(T):
        # the frame's most probable non-blank classes
        nk = 0
        row = lp[t]
        for k in range(C):
            if k == blank:
                continue
            if nk < top_classes:
                order_k[nk] = k
                nk += 1
                j = nk - 1
            elif row[k] > row[order_k[nk - 1]]:
                order_k[nk - 1] = k
                j = nk - 1
            else:
                continue
            while j > 0 and row[order_k[j]] > row[order_k[j - 1]]:
                tmp = order_k[j]
                order_k[j] = order_k[j - 1]
                order_k[j - 1] = tmp
                j -= 1
        n_c = 0
        for h in range(n_cur):
            s = cur_s[h]
            last = cur_l[h]
            sc = cur_sc[h]
            for m in range(nk + 2):
                if m == 0:             # blank
                    ns, nl, add, em = s, blank, row[blank], -1
                elif m == 1:           # repeat of the last label (collapses)
                    if last == blank:
                        continue
                    ns, nl, add, em = s, last, row[last], -1
                else:
                    k = order_k[m - 2]
                    if k == last:
                        continue
                    ns = transitions[s, k]
                    if ns < 0:
                        continue
                    nl, add, em = k, row[k], k
                v = sc + add
                if v == -np.inf:
                    continue
                key = ns * C + nl
                i = slot[key]
                if i < 0:
                    i = n_c
                    n_c += 1
                    slot[key] = i
                    cand_s[i] = ns
                    cand_l[i] = nl
                    cand_sc[i] = v
                    cand_par[i] = h
                    cand_em[i] = em
                elif v > cand_sc[i]:
                    cand_sc[i] = v
                    cand_par[i] = h
                    cand_em[i] = em
        for i in range(n_c):
            slot[cand_s[i] * C + cand_l[i]] = -1
        if n_c == 0:
            return np.zeros((0, T), np.int32), np.zeros(0, np.int32), np.zeros(0, np.float64)
        n_cur = _top_indices(cand_sc, n_c, width, keep)
        for j in range(n_cur):
            i = keep[j]
            cur_s[j] = cand_s[i]
            cur_l[j] = cand_l[i]
            cur_sc[j] = cand_sc[i]
            parent[t, j] = cand_par[i]
            emitted[t, j] = cand_em[i]
    # accepted final hypotheses, best first
    fin = np.empty(n_cur, np.int64)
    n_fin = 0
    for h in np.argsort(-cur_sc[:n_cur], kind="mergesort"):
        if accept[cur_s[h]]:
            fin[n_fin] = h
            n_fin += 1
    n_out = min(n_best, n_fin)
    labels = np.zeros((n_out, T), np.int32)
    lens = np.zeros(n_out, np.int32)
    scores = np.zeros(n_out, np.float64)
    for o in range(n_out):
        h = fin[o]
        scores[o] = cur_sc[h]
        n = 0
        for t in range(T - 1, -1, -1):
            if emitted[t, h] >= 0:
                labels[o, n] = emitted[t, h]
                n += 1
            h = parent[t, h]
        for a in range(n // 2):
            tmp = labels[o, a]
            labels[o, a] = labels[o, n - 1 - a]
            labels[o, n - 1 - a] = tmp
        lens[o] = n
    return labels, lens, scores


class CheckedDfa(tuple):
    """A DFA (transitions (S, C) int64, accept (S,) bool, start) validated once for C classes, on
    private copies: dfa_decode skips the O(S·C) range check for it (the card-number grammar has
    7,000 x 12 transitions, checked on every call otherwise). Build with check_dfa; do not write
    into its arrays (the kernel indexes them without bounds checks)."""
    n_classes: int


def check_dfa(dfa, n_classes: int) -> CheckedDfa:
    """Validate (transitions, accept, start) for n_classes classes (ValueError if malformed)."""
    if isinstance(dfa, CheckedDfa) and dfa.n_classes == n_classes:
        return dfa
    try:
        trans, accept, start = dfa
        trans = np.array(trans, np.int64, copy=True, order="C")
        accept = np.array(accept, np.bool_, copy=True, order="C")
        start = int(start)
    except (TypeError, ValueError) as e:
        raise ValueError(f"dfa must be (transitions, accept, start): {e}") from None
    C = int(n_classes)
    if trans.ndim != 2 or trans.shape[1] != C or trans.shape[0] < 1 or accept.shape != (trans.shape[0],):
        raise ValueError(f"dfa transitions must be (S, {C}) with accept (S,)")
    if trans.min() < -1 or trans.max() >= trans.shape[0] or not 0 <= start < trans.shape[0]:
        raise ValueError("dfa transitions/start state out of range")
    out = CheckedDfa((trans, accept, start))
    out.n_classes = C
    return out


def dfa_decode(log_probs, dfa, blank=0, width=256, top_classes=None, top_k=1) -> list:
    """The most probable readings that a DFA accepts, found by beam Viterbi with recombination on
    (DFA state, last label) (see above): up to `top_k` CTCResults ranked by exact P(labels | x);
    [] when no path within the beam is accepted. dfa = (transitions (S, C), accept (S,), start)
    as for beam_search; width: hypotheses kept per frame; top_classes: non-blank classes tried per
    frame (the most probable ones; default all of them up to 64 classes, else 16: an int8 model
    rounds most classes to the same floor probability, and the one a rule needs may be among them)."""
    lp, blank = _check_lp(log_probs, blank)
    T, C = lp.shape
    trans, accept, start = check_dfa(dfa, C)      # (a CheckedDfa for C classes: as it is)
    if top_classes is None:
        top_classes = C - 1 if C <= 65 else 16
    if int(width) < 1 or int(top_classes) < 1 or int(top_k) < 1:
        raise ValueError("width, top_classes and top_k must be >= 1")
    labels, lens, _ = dfa_viterbi_kernel(lp, blank, trans, accept, int(start), int(width),
                                         min(int(top_classes), C - 1), max(int(top_k), 4))
    cands = [labels[i, :lens[i]] for i in range(len(lens))]
    scored = sorted(((float(ctc_log_prob_kernel(lp, c, blank)), i) for i, c in enumerate(cands)), key=lambda x: -x[0])
    return [_result(lp, cands[i], blank) for _, i in scored[:top_k]]
