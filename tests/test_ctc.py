"""CTC decoders: Numba kernels vs NumPy references, brute force, and the decoder properties."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from xnn.kernels import ctc


@st.composite
def frames(draw, max_t=12, max_c=6, peaked=False):
    T = draw(st.integers(1, max_t))
    C = draw(st.integers(2, max_c))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if peaked:  # confident frames: one class carries >= 0.9 of the mass
        top = rng.integers(0, C, T)
        p = rng.dirichlet(np.ones(C), size=T) * 0.1
        p[np.arange(T), top] += 0.9
    else:
        p = rng.dirichlet(np.full(C, draw(st.sampled_from([0.2, 1.0, 5.0]))), size=T)
    blank = draw(st.integers(0, C - 1))
    return ctc.to_log_probs(p), blank


@given(frames())
def test_greedy_kernel_matches_reference(fb):
    lp, blank = fb
    labels, spans, conf = ctc.greedy_kernel(lp, blank)
    rl, rs, rc = ctc.greedy_ref(lp, blank)
    np.testing.assert_array_equal(labels, rl)
    np.testing.assert_array_equal(spans, rs)
    np.testing.assert_allclose(conf, rc, rtol=1e-6)


@given(frames(max_t=5, max_c=3))
def test_forward_probability_against_brute_force(fb):
    lp, blank = fb
    totals = ctc.brute_force_ref(lp, blank)
    assert np.isclose(np.logaddexp.reduce(list(totals.values())), 0.0, atol=1e-9)  # sums to 1
    for labels, logp in totals.items():
        assert np.isclose(ctc.ctc_log_prob_kernel(lp, np.array(labels, np.int32), blank), logp, atol=1e-9)
        assert np.isclose(ctc.ctc_log_prob_ref(lp, labels, blank), logp, atol=1e-9)


@given(frames(max_t=5, max_c=3))
def test_wide_beam_finds_the_most_probable_sequence(fb):
    lp, blank = fb
    totals = ctc.brute_force_ref(lp, blank)
    best_p = max(totals.values())
    r = ctc.beam_search(lp, beam_width=len(totals) + 1, blank=blank)[0]
    assert np.isclose(r.log_prob, best_p, atol=1e-9)
    assert np.isclose(totals[tuple(r.labels)], best_p, atol=1e-9)


@given(frames(), st.integers(1, 6))
def test_beam_kernel_matches_reference(fb, width):
    lp, blank = fb
    pref, plen, scores, _ = ctc.beam_kernel(lp, width, blank, np.zeros((1, 1), bool), False,
                                            np.zeros((1, 1), np.int64), False, 0, lp.shape[1])
    ref = ctc.beam_search_ref(lp, width, blank)
    got = sorted((tuple(pref[w, :plen[w]]), s) for w, s in enumerate(scores))
    exp = sorted(ref)
    assume(len(set(np.round([s for _, s in ref], 9))) == len(ref))  # no exact score ties
    assert [g[0] for g in got] == [e[0] for e in exp]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in exp], atol=1e-9)


@given(frames())
def test_beam_never_scores_below_greedy(fb):
    lp, blank = fb
    g = ctc.greedy_decode(lp, blank)
    for width in (1, 3, 8):
        assert ctc.beam_search(lp, width, blank)[0].log_prob >= g.log_prob - 1e-12


@given(frames(peaked=True))
def test_greedy_equals_width_one_beam(fb):
    lp, blank = fb
    g = ctc.greedy_decode(lp, blank)
    b = ctc.beam_search(lp, beam_width=1, blank=blank)[0]
    np.testing.assert_array_equal(g.labels, b.labels)
    np.testing.assert_array_equal(g.spans, b.spans)


def _digit_dfa(C, blank, n):
    """Accept exactly n labels, each from the odd-numbered classes (an arbitrary regular rule)."""
    trans = np.full((n + 1, C), -1, np.int64)
    for s in range(n):
        for c in range(C):
            if c != blank and c % 2 == 1:
                trans[s, c] = s + 1
    accept = np.zeros(n + 1, bool)
    accept[n] = True
    return trans, accept, 0


@given(frames(max_c=6), st.integers(1, 3))
def test_dfa_constraint_and_callback_agree(fb, n):
    lp, blank = fb
    C = lp.shape[1]
    dfa = _digit_dfa(C, blank, n)
    trans, accept, _ = dfa
    res = ctc.beam_search(lp, 6, blank, top_k=3, dfa=dfa)
    for r in res:
        assert len(r.labels) == n and all(c % 2 == 1 and c != blank for c in r.labels)

    def ok(prefix, c):
        return c % 2 == 1 and c != blank and len(prefix) < n
    # the callback cannot express "accept only at length n"; filter the final length like accept does
    res_cb = [r for r in ctc.beam_search(lp, 6, blank, top_k=10, prefix_ok=ok) if len(r.labels) == n]
    res_dfa = ctc.beam_search(lp, 6, blank, top_k=10, dfa=dfa)
    if res_dfa and res_cb:
        assert np.isclose(res_dfa[0].log_prob, res_cb[0].log_prob) or \
            res_dfa[0].log_prob >= res_cb[0].log_prob - 1e-9


@given(frames())
def test_allowed_mask_is_respected(fb):
    lp, blank = fb
    T, C = lp.shape
    allowed = np.ones((T, C), bool)
    banned = (blank + 1) % C
    allowed[:, banned] = False
    for r in ctc.beam_search(lp, 4, blank, top_k=4, allowed=allowed):
        assert banned not in r.labels


@given(frames())
def test_spans_and_confidences_are_consistent(fb):
    lp, blank = fb
    for r in [ctc.greedy_decode(lp, blank)] + ctc.beam_search(lp, 4, blank, top_k=2):
        T = lp.shape[0]
        assert r.spans.shape == (len(r.labels), 2)
        if len(r.labels):
            assert r.spans.min() >= 0 and r.spans.max() < T
            assert np.all(r.spans[:, 0] <= r.spans[:, 1])
            assert np.all(r.spans[1:, 0] > r.spans[:-1, 1])  # characters occupy disjoint frames
            assert np.all((r.char_conf > 0) & (r.char_conf <= 1.0 + 1e-6))


def test_int8_and_logits_inputs():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (20, 11)).astype(np.float32)
    q = np.clip(np.round(logits / 0.05), -128, 127).astype(np.int8)
    lp_q = ctc.to_log_probs(q, kind="logits", scale=0.05, zero_point=0)
    lp_f = ctc.to_log_probs(q.astype(np.float64) * 0.05, kind="logits")
    np.testing.assert_allclose(lp_q, lp_f, atol=1e-9)
    assert np.allclose(np.exp(lp_q).sum(1), 1)
    probs = np.exp(lp_f).astype(np.float32)
    np.testing.assert_allclose(ctc.to_log_probs(probs, kind="probs"), lp_f, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((4,)), np.zeros((3, 1))])
def test_bad_shapes(bad):
    with pytest.raises(ValueError):
        ctc.to_log_probs(bad)


def test_bad_arguments():
    lp = ctc.to_log_probs(np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="blank"):
        ctc.greedy_decode(lp, blank=9)
    with pytest.raises(ValueError, match="beam_width"):
        ctc.beam_search(lp, beam_width=0)
    with pytest.raises(ValueError, match="allowed"):
        ctc.beam_search(lp, allowed=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="integer"):
        ctc.to_log_probs(np.zeros((3, 4), np.int8))
