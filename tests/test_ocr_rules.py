"""xnn.ocr.rules: DFA toolkit, domain grammars vs. the synthetic generators' texts, validators vs.
hand-computed examples, compiled label automata, and constrained CTC beam search end to end."""
import functools
import itertools
import re
from collections import deque

import numpy as np
import pytest
from hypothesis import given, strategies as st

import xnn
from xnn.ocr import rules as R
from xnn.ocr.rules import Dfa

pytest.importorskip("PIL")
from models.data import card as gcard  # noqa: E402
from models.data import idcard as gid  # noqa: E402
from models.data import meter as gmeter  # noqa: E402
from models.data import plate as gplate  # noqa: E402

N_SEEDS = 300


# ---- generator texts ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def gen_texts(key):
    rng = np.random.default_rng
    if key == ("card", "number"):
        out = []
        for s in range(N_SEEDS):
            issuer = gcard.ISSUERS[s % len(gcard.ISSUERS)]
            number, groups = gcard.card_number(rng([1, s]), issuer)
            out += [gcard.group(number, groups), number]
        return out
    if key == ("card", "expiry"):  # the generator's format, over its whole range
        return [f"{m:02d}/{y:02d}" for m in range(1, 13) for y in range(24, 36)]
    if key == ("card", "name"):
        return [gcard.holder_name(rng([2, s])) for s in range(N_SEEDS)]
    if key == ("meter", "reading"):
        return [gmeter.reading_digits(rng([3, s]))[0] for s in range(N_SEEDS)]
    if key == ("plate", "plate"):
        return [gplate.plate_text(rng([4, s]), style) for s in range(N_SEEDS // 2) for style in gplate.STYLES]
    if key == ("vin", "vin"):
        return [gplate.make_vin(rng([5, s])) for s in range(N_SEEDS)]
    if key == ("idcard", "id_number"):
        return [gid.make_identity(rng([6, s]))["id_number"] for s in range(N_SEEDS)]
    raise KeyError(key)


KEYS = sorted(R.GRAMMARS)


def oracle(key):
    if key == ("idcard", "id_number"):  # the automaton allows 29 February in every year
        return lambda t: R.id_ok(t, check_leap=False)
    return R.VALIDATORS[key]


@pytest.mark.parametrize("key", KEYS)
def test_generator_texts_accepted(key):
    d = R.GRAMMARS[key]()
    ok = oracle(key)
    texts = gen_texts(key)
    assert len(texts) >= 144  # expiry: the generator's whole range, 12 months x 12 years
    for t in texts:
        assert d.accepts(t), (key, t)
        assert ok(t) and R.VALIDATORS[key](t), (key, t)


def test_rendered_card_lines_accepted():
    """Full renders (the expiry is drawn inline in render_card): every number/expiry/name line."""
    try:
        rendered = [gcard.render_card(np.random.default_rng([7, s])) for s in range(24)]
    except Exception as e:  # fonts of models/setup_data.sh missing
        pytest.skip(f"cannot render cards: {e!r}")
    grammars = {"number": R.card_number(), "expiry": R.card_expiry(), "name": R.card_name()}
    seen = set()
    for _, lines, meta in rendered:
        for ln in lines:
            if ln.field in grammars:
                assert grammars[ln.field].accepts(ln.text), (ln.field, ln.text)
                seen.add(ln.field)
        assert meta["issuer"] == R.card_issuer(meta["number"])
    assert seen == set(grammars)


def test_generator_metadata_agrees_with_validators():
    rng = np.random.default_rng
    for s in range(100):
        ident = gid.make_identity(rng([8, s]))
        info = R.id_info(ident["id_number"])
        assert info["birth"] == ident["birth"] and info["sex"] == ident["sex"]
        assert info["region"] == ident["region"] and info["province_code"] == ident["region"][:2]
        v = gplate.make_vin(rng([9, s]))
        assert gplate.vin_valid(v) and R.vin_check_char(v) == gplate.vin_check_char(v)
        for issuer in gcard.ISSUERS:
            number, _ = gcard.card_number(rng([10, s]), issuer)
            assert R.card_issuer(number) == issuer and R.luhn_ok(number)


# ---- validators against hand-computed examples ---------------------------------------------------

def luhn_by_hand(digits):
    total = 0
    for k, c in enumerate(reversed(digits)):
        d = int(c) * (2 if k % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def test_luhn_and_card_examples():
    assert R.luhn_ok("79927398713") and not R.luhn_ok("79927398710")
    for number, issuer in [("4111111111111111", "visa"), ("4222222222222", "visa"),
                           ("5555555555554444", "mastercard"), ("2223003122003222", "mastercard"),
                           ("378282246310005", "amex"), ("6200000000000005", "unionpay")]:
        assert luhn_by_hand(number) and R.luhn_ok(number), number
        assert R.card_issuer(number) == issuer
        assert R.card_number_ok(number)
    assert R.card_number_ok("4111 1111 1111 1111") and R.card_number_ok("3782 822463 10005")
    assert R.card_number_ok("4222 222 222 222")
    assert not R.card_number_ok("4111 1111 1111 1112")        # Luhn
    assert not R.card_number_ok("4111  1111 1111 1111")       # double space
    assert not R.card_number_ok(" 4111 1111 1111 1111")       # leading space
    assert not R.card_number_ok("41111 111 1111 1111")        # wrong grouping
    assert not R.card_number_ok("3782 8224 6310 005")         # Amex prints 4-6-5
    assert R.card_issuer("2721000000000000") is None and R.card_issuer("5600000000000000") is None
    assert R.card_issuer("62000000000000000") == "unionpay" and R.card_issuer("4" * 15) is None


@given(st.text(alphabet="0123456789", min_size=2, max_size=20))
def test_luhn_matches_generator_and_hand(digits):
    assert R.luhn_ok(digits) == luhn_by_hand(digits) == gcard.luhn_valid(digits)


def test_vin_examples():
    for v in ("1M8GDM9AXKP042788", "11111111111111111", "1HGCM82633A004352", "JH4KA7561PC008269"):
        assert R.vin_ok(v) and R.vin().accepts(v), v
    assert R.vin_check_char("1M8GDM9AXKP042788") == "X"
    assert not R.vin_ok("1M8GDM9A1KP042788")                 # wrong check
    assert not R.vin_ok("1M8GDM9AXKP04278")                  # 16 chars
    assert not R.vin_ok("1M8GDM9AXOP042788")                 # O is not a VIN character
    # model year code: position 10 is never U, Z or 0 (checked by default)
    v = "1M8GDM9AXUP042788"
    v = v[:8] + R.vin_check_char(v) + v[9:]
    assert not R.vin_ok(v) and R.vin_ok(v, year_code=False)
    assert not R.vin().accepts(v) and R.vin(year_code=False).accepts(v)


def id_check_by_hand(first17):
    s = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(first17))
    return "0123456789X"[(12 - s % 11) % 11]


def test_id_examples():
    assert R.id_ok("11010519491231002X")                      # the GB 11643 example
    first17 = "44030519900307123"
    n = first17 + id_check_by_hand(first17)
    assert R.id_check_char(first17) == n[-1] and R.id_ok(n) and R.id_number().accepts(n)
    info = R.id_info(n)
    assert info["sex"] == "男" and info["birth"].isoformat() == "1990-03-07"
    assert info["region"] == "440305" and info["province_code"] == "44" and info["province"] == "广东"
    f = "11010520000229002"                                   # 2000 is a leap year
    assert R.id_ok(f + id_check_by_hand(f)) and R.id_info(f + id_check_by_hand(f))["sex"] == "女"
    f = "11010519000229002"                                   # 1900 is not
    n = f + id_check_by_hand(f)
    assert not R.id_ok(n) and R.id_ok(n, check_leap=False) and R.id_number().accepts(n)
    for first in ("99010519491231002", "11010518991231002", "11010519491331002", "11010519490431002",
                  "11010519490100002"):
        assert not R.id_ok(first + id_check_by_hand(first)), first   # region, year, month, day
    with pytest.raises(ValueError):
        R.id_info("11010519491231002Y")


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_id_check_char_matches(first17):
    assert R.id_check_char(first17) == id_check_by_hand(first17) == gid.id_check_char(first17)
    assert gid.id_valid(first17 + R.id_check_char(first17))


def test_small_validators():
    assert R.expiry_ok("01/24") and R.expiry_ok("12/99")
    assert not any(R.expiry_ok(t) for t in ("00/25", "13/25", "1/25", "01-25", "01/2"))
    assert R.card_name_ok("JOHN SMITH") and R.card_name_ok("J. R. R. TOLKIEN") and R.card_name_ok("LI NA")
    assert not any(R.card_name_ok(t) for t in ("A", "LI", "JOHN", "JOHN  SMITH", " JOHN", "JOHN ", ".JOHN", "John",
                                                "A" * 27, "JOHN .SMITH"))
    assert R.reading_ok("00123") and R.reading_ok("12345678") and not R.reading_ok("1234")
    assert R.reading_ok("1234", n_digits=4) and not R.meter_reading(4).accepts("12345")
    assert all(R.plate_ok(t) for t in ("京A12345", "沪AB1234", "粤B1234警", "川A123F学", "京AD12345",
                                       "京AFA1234", "京A12345D"))
    assert not any(R.plate_ok(t) for t in ("京I12345", "京A1O345", "京ABCD12", "粤BAB12警", "京AD1234A",
                                           "A京12345", "京A1234", "京A12345DD", "京AA12345"))


# ---- mutations: the automaton accepts exactly what the validator accepts ---------------------------

def extra_chars(key):
    return "?aI O-" + ("X" if key != ("idcard", "id_number") else "Y")


@st.composite
def mutated(draw, key):
    base = draw(st.sampled_from(gen_texts(key)))
    alphabet = R.GRAMMARS[key]().alphabet + extra_chars(key)
    edits = draw(st.lists(st.tuples(st.sampled_from(["sub", "ins", "del"]), st.integers(0, 30),
                                    st.sampled_from(alphabet)), min_size=1, max_size=2))
    t = base
    for op, i, c in edits:
        i %= len(t) + 1
        if op == "sub" and i < len(t):
            t = t[:i] + c + t[i + 1:]
        elif op == "ins":
            t = t[:i] + c + t[i:]
        elif op == "del" and i < len(t):
            t = t[:i] + t[i + 1:]
    return t


def walk(compiled, labels):
    trans, accept, s = compiled
    for lab in labels:
        s = trans[s, lab]
        if s < 0:
            return False
    return bool(accept[s])


def check_agreement(key, text):
    d = R.GRAMMARS[key]()
    assert d.accepts(text) == oracle(key)(text), (key, text)
    cs = d.alphabet
    if all(c in cs for c in text):
        assert walk(R.constraint(key, cs), [cs.index(c) for c in text]) == d.accepts(text), (key, text)


@pytest.mark.parametrize("key", KEYS)
@given(data=st.data())
def test_mutations_agree_with_validator(key, data):
    check_agreement(key, data.draw(mutated(key)))


@pytest.mark.parametrize("key", KEYS)
def test_single_char_substitutions_exhaustive(key):
    """Every one-character substitution of a few generator texts: exact agreement (this is where check
    digits bite: a substitution at a weighted position must be rejected unless it keeps the sum)."""
    d = R.GRAMMARS[key]()
    ok = oracle(key)
    alphabet = d.alphabet + extra_chars(key)
    n_valid = n_invalid = 0
    for base in gen_texts(key)[:4]:
        for i in range(len(base)):
            for c in alphabet:
                t = base[:i] + c + base[i + 1:]
                a = d.accepts(t)
                assert a == ok(t), (key, t)
                n_valid += a
                n_invalid += not a
    assert n_invalid > 0 and n_valid > 0


@pytest.mark.parametrize("key", KEYS)
def test_random_walks_are_valid(key):
    """Texts drawn from the automaton itself pass the validator (the automaton is not too loose)."""
    d = R.GRAMMARS[key]()
    ok = oracle(key)
    rng = np.random.default_rng(0)
    for _ in range(300):
        t = d.sample(rng)
        assert ok(t), (key, t)


def test_check_digits_constrain_every_weighted_position():
    """Luhn / VIN / ID: replacing one character at a weighted position by one of a different value
    always breaks the text (the automata carry the checksum)."""
    v = gen_texts(("vin", "vin"))[0]
    for i, w in enumerate(R.VIN_WEIGHTS):
        for c in R.VIN_CHARS:
            if i != 8 and w and R.vin_value(c) != R.vin_value(v[i]) and (i != 9 or c in R.VIN_YEAR_CHARS):
                assert not R.vin().accepts(v[:i] + c + v[i + 1:])
    n = gen_texts(("card", "number"))[1]
    for i in range(len(n)):
        for c in "0123456789":
            assert R.card_number().accepts(n[:i] + c + n[i + 1:]) == (c == n[i])


# ---- compiled tables ------------------------------------------------------------------------------

def reachable(trans, start=0):
    seen, todo = {start}, deque([start])
    while todo:
        s = todo.popleft()
        for t in trans[s]:
            if t >= 0 and t not in seen:
                seen.add(int(t))
                todo.append(int(t))
    return seen


def coreachable(trans, accept):
    rev = [[] for _ in range(len(trans))]
    for s, row in enumerate(trans):
        for t in row:
            if t >= 0:
                rev[t].append(s)
    seen = set(np.flatnonzero(accept).tolist())
    todo = deque(seen)
    while todo:
        for s in rev[todo.popleft()]:
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return seen


CHARSETS = {  # the recognizers' charsets (sorted unions of the generators' field alphabets)
    ("card", "number"): " 0123456789",
    ("card", "expiry"): "/0123456789",
    ("card", "name"): " .ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ("meter", "reading"): "0123456789",
    ("plate", "plate"): "".join(sorted(gplate.ALPHABETS["plate"])),
    ("vin", "vin"): "".join(sorted(gplate.VIN_CHARS)),
    ("idcard", "id_number"): "0123456789X",
}


@pytest.mark.parametrize("key", KEYS)
def test_compiled_table(key):
    cs = CHARSETS[key] + "#"                               # '#': a class no grammar uses
    trans, accept, start = R.constraint(key, cs)
    S = trans.shape[0]
    assert trans.dtype == np.int64 and trans.shape == (S, len(cs) + 1) and accept.shape == (S,)
    assert start == 0 and (trans[:, len(cs)] == -1).all() and (trans[:, cs.index("#")] == -1).all()
    assert trans.min() >= -1 and trans.max() < S
    rows = trans.tolist()
    assert reachable(rows) == set(range(S)), "unreachable states"
    assert coreachable(rows, accept) == set(range(S)), "dead states"
    assert S == R.GRAMMARS[key]().n_states
    for t in gen_texts(key)[:50]:
        assert walk((trans, accept, start), [cs.index(c) for c in t])
    # the cached arrays are not handed out: mutating a result does not leak into the next call
    trans[:] = -1
    assert (R.constraint(key, cs)[0] >= 0).any()


def test_compile_charset_lacking_characters():
    # no space in the charset: only ungrouped card numbers remain, and no dead state is left behind
    cs = "9876543210"
    trans, accept, _ = R.card_number().compile(cs)
    assert reachable(trans.tolist()) == coreachable(trans.tolist(), accept) == set(range(len(trans)))
    for t in gen_texts(("card", "number"))[:40]:
        if " " not in t:
            assert walk((trans, accept, 0), [cs.index(c) for c in t])
    assert walk((trans, accept, 0), [cs.index(c) for c in "4111111111111111"])
    # VIN without 'X': VINs whose check character is X become unwritable, the rest remain
    cs = R.VIN_CHARS.replace("X", "")
    trans, accept, _ = R.vin().compile(cs)
    assert coreachable(trans.tolist(), accept) == set(range(len(trans)))
    assert walk((trans, accept, 0), [cs.index(c) for c in "11111111111111111"])
    with pytest.raises(ValueError):
        R.id_number().compile("0123456789ABC"[10:])
    with pytest.raises(ValueError):
        R.plate().compile("0123456789ABCDEFGH")              # no province characters


def test_state_counts():
    counts = {key: R.GRAMMARS[key]().n_states for key in KEYS}
    limits = {("card", "number"): 8000, ("card", "expiry"): 10, ("card", "name"): 80,
              ("meter", "reading"): 10, ("plate", "plate"): 40, ("vin", "vin"): 200,
              ("idcard", "id_number"): 300}
    for key in KEYS:
        assert counts[key] <= limits[key], (key, counts[key])
    # minimal automata of simple languages have the textbook sizes
    assert counts[("meter", "reading")] == 9                    # lengths 0..8
    assert R.meter_reading(6).n_states == 7
    assert R.vin(year_code=False).n_states <= counts[("vin", "vin")]


def test_registry_and_keys():
    assert R.grammar_key("card_number") == R.grammar_key(("card", "number")) == ("card", "number")
    assert R.grammar_key("idcard_id_number") == R.grammar_key("id_number") == ("idcard", "id_number")
    assert R.grammar_key("vin") == ("vin", "vin") and R.grammar_key("plate.plate") == ("plate", "plate")
    assert R.grammar_key("meter/reading") == ("meter", "reading")
    with pytest.raises(KeyError):
        R.grammar_key("card_number_expiry_name")
    assert set(R.GRAMMARS) == set(R.VALIDATORS)
    assert R.card_number() is R.card_number()                   # cached
    d = R.meter_reading(4)
    tr, acc, s = R.constraint(d, "0123456789")
    assert walk((tr, acc, s), [1, 2, 3, 4]) and not walk((tr, acc, s), [1, 2, 3])


# ---- the toolkit ----------------------------------------------------------------------------------

def strings(alphabet, max_len):
    for n in range(max_len + 1):
        for t in itertools.product(alphabet, repeat=n):
            yield "".join(t)


def same_language(d, pred, alphabet, max_len):
    for t in strings(alphabet, max_len):
        assert d.accepts(t) == pred(t), t


def test_toolkit_against_brute_force():
    a = Dfa.template(["ab", "b", "abc"])
    same_language(a, lambda t: re.fullmatch("[ab]b[abc]", t) is not None, "abc", 5)
    lit = Dfa.literal(["", "a", "abc", "bb"])
    same_language(lit, lambda t: t in ("", "a", "abc", "bb"), "abc", 5)
    same_language(R.union(a, lit), lambda t: a.accepts(t) or lit.accepts(t), "abc", 5)
    same_language(a | lit, lambda t: a.accepts(t) or lit.accepts(t), "abc", 5)
    b = Dfa.explore("abc", 0, lambda n, ch: n + 1 if n < 4 else None, lambda n: n % 2 == 1)
    same_language(b, lambda t: len(t) in (1, 3), "abc", 5)
    same_language(R.intersect(a, b), lambda t: a.accepts(t) and b.accepts(t), "abc", 5)
    same_language(R.concat(lit, b), lambda t: any(lit.accepts(t[:i]) and b.accepts(t[i:])
                                                  for i in range(len(t) + 1)), "abc", 6)
    digits = Dfa.template(["012"] * 3)
    s3 = R.with_checksum(digits, lambda i, ch: (i + 1) * int(ch), 4, 1)
    same_language(s3, lambda t: len(t) == 3 and "3" not in t
                  and sum((i + 1) * int(c) for i, c in enumerate(t)) % 4 == 1, "0123", 4)
    g = R.insert_separators(Dfa.template(["ab"] * 5), (2, 3), "-")
    same_language(g, lambda t: re.fullmatch("[ab]{2}-[ab]{3}", t) is not None, "ab-", 7)


def test_minimize_canonical_and_empty():
    a = Dfa.template(["01"] * 3)
    assert (a | a).equivalent(a) and np.array_equal((a | a).trans, a.trans)
    assert a.n_states == 4
    # two constructions of the same language give identical tables
    b = Dfa.literal(["".join(p) for p in itertools.product("01", repeat=3)])
    assert np.array_equal(a.trans, b.trans) and np.array_equal(a.accept, b.accept)
    assert not a.equivalent(Dfa.template(["01"] * 2))
    # an intersection with nothing in common is empty; compiling it raises
    empty = Dfa.template(["0"]) & Dfa.template(["1"])
    assert empty.is_empty() and empty.n_states == 1
    with pytest.raises(ValueError):
        empty.compile("01")
    # dead branches are trimmed: "ab" can never finish
    d = Dfa("ab", [[1, 2], [-1, -1], [-1, 1]], [False, True, False])
    m = d.minimize()
    assert m.n_states == 3 and m.accepts("a") and m.accepts("bb") and not m.accepts("b")
    d = Dfa("ab", [[1, 2], [-1, -1], [2, -1]], [False, True, False])   # state 2 is dead
    m = d.minimize()
    assert m.n_states == 2 and (m.trans[0] >= 0).sum() == 1


def test_explore_guard():
    with pytest.raises(ValueError):
        Dfa.explore("a", 0, lambda n, ch: n + 1, lambda n: True, max_states=100)


# ---- constrained beam search end to end -------------------------------------------------------------

def frames_for(text, charset, wrong=None, p_right=0.4, p_wrong=0.5):
    """(T, C) log-probs spelling `text` with one frame per character and a blank frame after each;
    wrong = (i, c): at character i the greedy choice is c (p_wrong), the true one runner-up (p_right)."""
    C = len(charset) + 1
    blank = C - 1
    T = 2 * len(text) + 1
    p = np.full((T, C), 1e-4)
    p[0::2, blank] = 0.99
    for i, ch in enumerate(text):
        p[2 * i + 1, charset.index(ch)] = 0.9
        if wrong is not None and i == wrong[0]:
            p[2 * i + 1, charset.index(ch)] = p_right
            p[2 * i + 1, charset.index(wrong[1])] = p_wrong
    p /= p.sum(axis=1, keepdims=True)
    return np.log(p), blank


def decode(lp, blank, charset, dfa=None):
    res = xnn.ctc.beam_search(lp, beam_width=8, blank=blank, dfa=dfa)
    return "".join(charset[i] for i in res[0].labels) if res else None


def check_fix(key, text, wrong, charset):
    bad = text[:wrong[0]] + wrong[1] + text[wrong[0] + 1:]
    assert R.VALIDATORS[key](text) and not R.VALIDATORS[key](bad)
    lp, blank = frames_for(text, charset, wrong)
    assert decode(lp, blank, charset) == bad                    # unconstrained: the greedy misread
    assert decode(lp, blank, charset, R.constraint(key, charset)) == text


def test_beam_fixes_card_number_luhn():
    cs = CHARSETS[("card", "number")]
    text = gen_texts(("card", "number"))[0]
    i = 6 if text[6] != " " else 7
    check_fix(("card", "number"), text, (i, "0" if text[i] != "0" else "1"), cs)
    check_fix(("card", "number"), "4111 1111 1111 1111", (5, "7"), cs)


def test_beam_fixes_vin_check():
    cs = CHARSETS[("vin", "vin")]
    v = gen_texts(("vin", "vin"))[0]
    # a misread before the check character (different transliteration value), one after it, and
    # a misread check character
    for i in (3, 14, 8):
        c = next(c for c in "0123456789" if R.vin_value(c) != R.vin_value(v[i]) and c != v[i])
        check_fix(("vin", "vin"), v, (i, c), cs)
    check_fix(("vin", "vin"), "1M8GDM9AXKP042788", (8, "1"), cs)


def test_beam_fixes_id_check():
    cs = CHARSETS[("idcard", "id_number")]
    first = "11010519491231002"
    check_fix(("idcard", "id_number"), first + "X", (17, "2"), cs)
    n = gen_texts(("idcard", "id_number"))[0]
    check_fix(("idcard", "id_number"), n, (15, "7" if n[15] != "7" else "3"), cs)


def test_beam_respects_date_and_plate_rules():
    # ID: the greedy month "23" is no month at all
    cs = CHARSETS[("idcard", "id_number")]
    first = "11010519900307123"
    check_fix(("idcard", "id_number"), first + R.id_check_char(first), (10, "2"), cs)
    cs = CHARSETS[("plate", "plate")]
    check_fix(("plate", "plate"), "京A12345", (1, "1"), cs)      # second character must be a letter


def test_beam_empty_when_frames_cannot_hold_a_valid_text():
    cs = CHARSETS[("vin", "vin")]
    lp, blank = frames_for("1M8GDM9AX", cs)                    # 19 frames: 9 characters seen, 17 needed
    assert xnn.ctc.beam_search(lp, beam_width=8, blank=blank, dfa=R.constraint("vin", cs)) == []


# ---- ID card name and address (charset-dependent automata) ----------------------------------------

@functools.lru_cache(maxsize=1)
def _zh_charset():
    from models.data import charset as gcs

    return "".join(sorted(set(gcs.load()) | set(R.DIGITS)))


def test_counted_and_words_then_match_their_definitions():
    d = R.counted("ab", 1, 3)
    for n in range(0, 6):
        for t in map("".join, itertools.product("abc", repeat=n)):
            assert d.accepts(t) == (1 <= n <= 3 and "c" not in t), t
    w = R.words_then(["xy", "xz", "q"], "ab", 0, 2)
    for n in range(0, 5):
        for t in map("".join, itertools.product("xyzqab", repeat=n)):
            want = any(t.startswith(p) and len(t) - len(p) <= 2 and set(t[len(p):]) <= set("ab")
                       for p in ("xy", "xz", "q"))
            assert w.accepts(t) == want, t
    with pytest.raises(ValueError):
        R.words_then(["a", "ab"], "x", 0, 1)        # not prefix-free
    with pytest.raises(ValueError):
        R.counted("a", 3, 2)


def test_id_name_and_address_automata_agree_with_validators_on_generator_texts():
    cs = _zh_charset()
    name, addr = R.id_name(cs), R.id_address_start(cs)
    rng = np.random.default_rng(5)
    for _ in range(80):
        who = gid.make_identity(rng)
        assert name.accepts(who["name"]) and R.id_name_ok(who["name"]), who["name"]
        first = who["address"][:13]
        assert addr.accepts(first) and R.id_address_ok(who["address"]), first
        code = who["id_number"][:2]
        assert R.id_address_start(cs, code).accepts(first)
        other = next(c for c in R.PROVINCE_CODES if R.PROVINCE_CODES[c] != R.PROVINCE_CODES[code])
        assert not R.id_address_start(cs, other).accepts(first)
        assert not R.id_address_ok(who["address"], other)
        assert R.id_address_start(cs, code).accepts("住址" + first)      # a box that took the caption in
    for bad in ("张", "张3", "Li", "张三" * 7):
        assert not name.accepts(bad) and not R.id_name_ok(bad)
    assert not R.id_name_ok("住址")                                       # a caption is not a name
    assert not addr.accepts("长安区1号") and not R.id_address_ok("长安区1号")
    with pytest.raises(ValueError):
        R.id_address_start(cs, "99")


def test_id_text_constraint_tables_decode_like_the_automaton():
    cs = _zh_charset()
    trans, accept, start = R.id_text_constraint("address", cs, "42")
    assert trans.shape == (trans.shape[0], len(cs) + 1) and (trans[:, len(cs)] == -1).all()
    rng = np.random.default_rng(0)
    d = R.id_address_start(cs, "42")
    for t in ["湖北省武汉市", "湖南省", "湖北", "住址湖北省", "北京市"] + [d.sample(rng) for _ in range(20)]:
        s = start
        for ch in t:
            s = trans[s, cs.index(ch)] if s >= 0 and ch in cs else -1
        assert (s >= 0 and bool(accept[s])) == d.accepts(t), t
    trans[0, 0] = 99                                   # callers get copies
    assert R.id_text_constraint("address", cs, "42")[0][0, 0] != 99
    with pytest.raises(ValueError):
        R.id_text_constraint("birth", cs)
