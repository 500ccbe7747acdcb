"""Domain rules for constrained CTC decoding: small DFAs over characters, compiled to label automata.

A recognizer reads a field (card number, VIN, ...) as a label sequence. Readers pass the field's
grammar to `xnn.ctc.beam_search(..., dfa=constraint(key, charset))`, so the rules act INSIDE the prefix
beam search: a prefix is extended by a label only along an allowed transition, and only prefixes that
end in an accepting state are returned. (A post-filter over an unconstrained beam would often find no
valid candidate left in the beam; the constrained beam keeps the runner-up characters that satisfy the
rules alive instead.)

DFA format
----------
`Dfa(alphabet, trans, accept)`: states 0..S-1, start state 0; `alphabet` a string of distinct
characters; `trans` int (S, len(alphabet)) with trans[s, a] = next state or -1 (forbidden); `accept`
bool (S,). Every constructor and combinator returns a trimmed (every state reachable from the start and
able to reach an accepting state) and minimized (Moore partition refinement) automaton with states
numbered in breadth-first order, so equal languages give identical tables.

`Dfa.compile(charset)` maps it onto a recognizer's classes: class i < len(charset) is charset[i], the
CTC blank is the last class, len(charset). It returns (trans int64 (S, len(charset) + 1), accept bool
(S,), 0) with the blank column all -1 (the kernel never moves the automaton on a blank). Characters of
the grammar missing from the charset become unusable transitions; the result is trimmed again, so the
beam never enters a state from which no accepting state can be reached (ValueError if nothing is left).

Constructors: `Dfa.template` (one character set per position), `Dfa.literal` (a finite set of strings),
`Dfa.explore` (breadth-first enumeration of a Python state machine). Combinators: `union` and
`intersect` (product construction), `concat` (subset construction), `with_checksum` (product with a
running weighted sum mod m: the state carries (automaton state, position, residue)) and
`insert_separators` (fixed group layout such as "4512 3456 7890 1234").

Grammars (the texts of models/data, one function each, cached; GRAMMARS maps (domain, field) to them)
-----------------------------------------------------------------------------------------------------
card_number   issuer-consistent digits, Luhn-valid, printed with the issuer's grouping (single spaces) or
              ungrouped: Visa 4 (13 | 16 | 19), Mastercard 51-55 | 2221-2720 (16), Amex 34 | 37 (15,
              grouped 4-6-5), UnionPay 62 (16-19). Groupings: 16 -> 4-4-4-4; 17-19 -> 6-rest or
              4-4-4-4-rest; 13 -> 4-3-3-3. (The generator draws Visa with 16 digits only.)
              Luhn (ISO/IEC 7812-1): from the right, every second digit starting with the one left of
              the check digit is doubled (2d - 9 when 2d > 9); the total must be 0 mod 10.
card_expiry   "MM/YY", MM 01-12.
card_name     2-26 chars: at least two words (given name and surname, as cards emboss them) of A-Z and
              '.' (a word starts with a letter) separated by single spaces. (The card reader also
              drops readings made only of printed captions, CARD_CAPTIONS: VALID THRU, ...)
meter_reading exactly n digits, or 5-8 digits.
plate         mainland plates without the separator dot, letters A-Z without I and O:
              province + letter + 5 alnum (at most 2 letters)          blue / yellow
              province + letter + 4 alnum (at most 1 letter) + 警 | 学   police / driving school
              province + letter + D|F + alnum + 4 digits               new energy, small car
              province + letter + 5 digits + D|F                       new energy, large vehicle
vin           17 characters of 0-9 A-Z without I, O, Q; position 10 (model year) not U, Z or 0; position
              9 is the check character: values 0-9 for digits, A-H 1-8, J-N 1-5, P 7, R 9, S-Z 2-9;
              weights 8 7 6 5 4 3 2 10 0 9 8 7 6 5 4 3 2; sum mod 11, 10 written X. The check comes
              before the characters it depends on, so the automaton's state carries
              (sum so far - value of the check character) mod 11 and accepts on 0 only.
id_number     18-character resident ID (GB 11643): region (6 digits, the first two a province-level
              code), birth date YYYYMMDD (1900-2099, day valid for the month, 29 February allowed in the
              automaton: the leap-year test is in id_ok), 3-digit sequence, ISO 7064 MOD 11-2 check
              (weights 2^(17-i) mod 11; check = (12 - sum mod 11) mod 11, 10 written X).

Validators (plain Python, exact: the automaton accepts a text iff its validator does, except the
leap-year test of id_ok): luhn_ok, card_issuer, card_number_ok, expiry_ok, card_name_ok, reading_ok,
plate_ok, vin_check_char, vin_ok, id_check_char, id_ok, id_info. VALIDATORS maps (domain, field) to them.

A text outside a grammar (a VIN without a check digit, as some non-North-American makers print them, a
card of another issuer) cannot come out of a constrained beam: the search returns the most probable
text inside the grammar, or nothing. Readers that may meet such texts should also run the unconstrained
decode and report the rule check (the validators) rather than trust a forced correction.
"""
from __future__ import annotations

import datetime
import functools
from collections import deque

import numpy as np

__all__ = [
    "Dfa", "union", "intersect", "concat", "with_checksum", "insert_separators",
    "card_number", "card_expiry", "card_name", "meter_reading", "plate", "vin", "id_number",
    "luhn_ok", "card_issuer", "card_groupings", "card_number_ok", "expiry_ok", "card_name_ok", "reading_ok",
    "CARD_CAPTIONS", "card_caption",
    "plate_ok", "vin_value", "vin_check_char", "vin_ok", "id_check_char", "id_ok", "id_info",
    "GRAMMARS", "VALIDATORS", "constraint", "grammar_key",
    "DIGITS", "PLATE_LETTERS", "PROVINCES", "VIN_CHARS", "VIN_YEAR_CHARS", "VIN_WEIGHTS", "ID_WEIGHTS",
    "PROVINCE_CODES", "CARD_ISSUERS",
    "counted", "words_then", "is_hanzi", "id_name", "id_name_ok", "id_address_start", "id_address_ok",
    "id_text_constraint", "ID_LABELS",
]

MAX_STATES = 200_000  # guard for Dfa.explore (the grammars here stay below a few thousand)


# ---- the automaton ------------------------------------------------------------------------------

def _alphabet(chars) -> str:
    """Distinct characters, sorted (so automata built the same way compare equal)."""
    return "".join(sorted(set(chars)))


class Dfa:
    """Deterministic automaton over characters: start state 0, trans[s, a] -> state or -1.

    Instances are immutable in practice (their arrays are read-only); build them with the
    constructors and combinators, which return trimmed, minimized automata."""

    __slots__ = ("alphabet", "trans", "accept", "_index")

    def __init__(self, alphabet: str, trans, accept):
        alphabet = str(alphabet)
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("Dfa alphabet characters must be distinct")
        accept = np.array(accept, bool).reshape(-1)
        trans = np.array(trans, np.int64).reshape(accept.shape[0], len(alphabet))
        if trans.shape[0] != accept.shape[0] or trans.shape[0] < 1:
            raise ValueError(f"Dfa needs >= 1 state and one accept flag per state, got {trans.shape}, "
                             f"{accept.shape}")
        if trans.size and (trans.min() < -1 or trans.max() >= trans.shape[0]):
            raise ValueError("Dfa transitions out of range")
        trans.setflags(write=False)
        accept.setflags(write=False)
        self.alphabet = alphabet
        self.trans = trans
        self.accept = accept
        self._index = {c: i for i, c in enumerate(alphabet)}

    # -- queries --

    @property
    def n_states(self) -> int:
        return int(self.trans.shape[0])

    def __repr__(self) -> str:
        return f"Dfa({self.n_states} states, alphabet {self.alphabet!r})"

    def step(self, state: int, ch: str) -> int:
        """Next state, or -1 (no transition, unknown character, or state already -1)."""
        a = self._index.get(ch)
        if state < 0 or a is None:
            return -1
        return int(self.trans[state, a])

    def run(self, text: str) -> int:
        """State after reading `text` from the start, or -1 once a transition is missing."""
        s = 0
        for ch in text:
            s = self.step(s, ch)
            if s < 0:
                return -1
        return s

    def accepts(self, text: str) -> bool:
        s = self.run(text)
        return s >= 0 and bool(self.accept[s])

    def is_empty(self) -> bool:
        return not self.accept.any()

    def sample(self, rng, stop: float = 0.3, max_len: int = 1000) -> str:
        """A random accepted text: a uniform random walk over the transitions, stopping in an accepting
        state with probability `stop` (always when it has no way on). Needs a trimmed automaton (what
        the constructors return; see trim())."""
        if self.is_empty():
            raise ValueError("the automaton accepts nothing")
        s, out = 0, []
        for _ in range(max_len):
            nxt = np.flatnonzero(self.trans[s] >= 0)
            if self.accept[s] and (nxt.size == 0 or rng.random() < stop):
                return "".join(out)
            if nxt.size == 0:
                raise ValueError("random walk reached a dead state: trim() the automaton first")
            a = int(nxt[int(rng.integers(nxt.size))])
            out.append(self.alphabet[a])
            s = int(self.trans[s, a])
        raise ValueError("random walk did not stop within max_len")

    def _lists(self):
        return self.trans.tolist(), self.accept.tolist(), self._index

    # -- normal forms --

    def trim(self) -> "Dfa":
        """Keep the states reachable from the start that can reach an accepting state, renumbered in
        breadth-first order from the start (alphabet order). An empty language gives one
        non-accepting state without transitions."""
        S, A = self.trans.shape
        succ = [np.unique(row[row >= 0]) for row in self.trans]     # per state, its distinct targets
        rev = [[] for _ in range(S)]
        for s, ts in enumerate(succ):
            for t in ts.tolist():
                rev[t].append(s)
        alive = np.zeros(S, bool)
        todo = deque(int(s) for s in np.flatnonzero(self.accept))
        alive[list(todo)] = True
        while todo:
            t = todo.popleft()
            for s in rev[t]:
                if not alive[s]:
                    alive[s] = True
                    todo.append(s)
        if not alive[0]:
            return Dfa(self.alphabet, np.full((1, A), -1), [False])
        # breadth-first order; a state's successors in the order of their first column
        order, new = [0], {0: 0}
        i = 0
        while i < len(order):
            row = self.trans[order[i]]
            ts, first = np.unique(row[row >= 0], return_index=True)
            for t in ts[np.argsort(first, kind="stable")].tolist():
                if alive[t] and t not in new:
                    new[t] = len(order)
                    order.append(t)
            i += 1
        remap = np.full(S + 1, -1, np.int64)          # index -1 (no transition) maps to -1
        for old, nw in new.items():
            remap[old] = nw
        trans = remap[self.trans[order]]
        return Dfa(self.alphabet, trans.reshape(len(order), A), self.accept[order].tolist())

    def minimize(self) -> "Dfa":
        """Trimmed minimal automaton (Moore refinement; a missing transition is its own class)."""
        d = self.trim()
        if d.is_empty():
            return d
        trans = d.trans
        cls = d.accept.astype(np.int64)
        n = len(np.unique(cls))
        while True:
            tgt = np.where(trans >= 0, cls[np.maximum(trans, 0)], -1)
            new = _row_classes(np.concatenate([cls[:, None], tgt], axis=1))
            m = int(new.max()) + 1
            cls = new
            if m == n:
                break
            n = m
        rep = np.zeros(n, np.int64)
        rep[cls[::-1]] = np.arange(len(cls))[::-1]  # first state of each class
        # class numbers are arbitrary: swap the start's class with 0 (trim then renumbers breadth-first)
        perm = np.arange(n)
        perm[[0, int(cls[0])]] = perm[[int(cls[0]), 0]]
        inv = np.argsort(perm)
        t = trans[rep[perm]]
        q = np.where(t >= 0, inv[cls[np.maximum(t, 0)]], -1)
        return Dfa(d.alphabet, q, d.accept[rep[perm]]).trim()

    def restrict(self, chars) -> "Dfa":
        """The same automaton over the characters of `chars` only (others dropped), minimized."""
        chars = set(chars)
        keep = [c for c in self.alphabet if c in chars]
        cols = [self._index[c] for c in keep]
        return Dfa("".join(keep), self.trans[:, cols] if cols else np.zeros((self.n_states, 0), np.int64),
                   self.accept).minimize()

    def compile(self, charset: str):
        """(trans int64 (S, len(charset) + 1), accept bool (S,), start 0) over label indices: class i is
        charset[i], the blank (class len(charset)) column is all -1. Trimmed after dropping the
        characters the charset lacks; ValueError when the automaton then accepts nothing."""
        d = self.restrict(charset)
        if d.is_empty():
            raise ValueError(f"no text of the grammar can be written with the charset {charset[:40]!r}")
        C = len(charset) + 1
        out = np.full((d.n_states, C), -1, np.int64)
        for i, ch in enumerate(charset):
            a = d._index.get(ch)
            if a is not None:
                out[:, i] = d.trans[:, a]
        return out, d.accept.copy(), 0

    def equivalent(self, other: "Dfa") -> bool:
        """Same language (minimal automata are unique up to the BFS numbering used here)."""
        a, b = self.minimize(), other.minimize()
        if a.is_empty() or b.is_empty():
            return a.is_empty() and b.is_empty()
        alpha = _alphabet(a.alphabet + b.alphabet)
        a, b = _widen(a, alpha), _widen(b, alpha)
        return a.n_states == b.n_states and np.array_equal(a.trans, b.trans) and \
            np.array_equal(a.accept, b.accept)

    # -- constructors --

    @classmethod
    def explore(cls, alphabet, start, step, accepting, max_states: int = MAX_STATES) -> "Dfa":
        """Breadth-first enumeration of a state machine given in Python: `step(state, ch)` returns the
        next (hashable) state or None, `accepting(state)` a bool. Returns the minimized automaton."""
        alphabet = _alphabet(alphabet)
        index, states, rows, acc = {start: 0}, [start], [], []
        i = 0
        while i < len(states):
            s = states[i]
            row = []
            for ch in alphabet:
                t = step(s, ch)
                if t is None:
                    row.append(-1)
                    continue
                j = index.get(t)
                if j is None:
                    j = index[t] = len(states)
                    states.append(t)
                    if len(states) > max_states:
                        raise ValueError(f"automaton exceeds {max_states} states")
                row.append(j)
            rows.append(row)
            acc.append(bool(accepting(s)))
            i += 1
        return cls(alphabet, np.array(rows, np.int64).reshape(len(states), len(alphabet)), acc).minimize()

    @classmethod
    def template(cls, sets) -> "Dfa":
        """Fixed-length texts: position i holds one character of sets[i] (a string)."""
        sets = [set(s) for s in sets]
        alphabet = _alphabet("".join("".join(s) for s in sets))
        n = len(sets)
        return cls.explore(alphabet, 0, lambda p, ch: p + 1 if p < n and ch in sets[p] else None,
                           lambda p: p == n)

    @classmethod
    def literal(cls, strings) -> "Dfa":
        """Exactly the given strings (a trie, minimized)."""
        strings = set(strings)
        prefixes = {w[:i] for w in strings for i in range(len(w) + 1)}
        alphabet = _alphabet("".join(strings))
        return cls.explore(alphabet, "", lambda p, ch: p + ch if p + ch in prefixes else None,
                           lambda p: p in strings)

    # operators: a | b (union), a & b (intersection), a + b (concatenation)
    def __or__(self, other):
        return union(self, other)

    def __and__(self, other):
        return intersect(self, other)

    def __add__(self, other):
        return concat(self, other)


def _row_classes(rows: np.ndarray) -> np.ndarray:
    """Class index per row (equal rows, equal class), numbered in the order of the rows' sorted
    contents (as np.unique(axis=0, return_inverse=True), but hashing rows instead of sorting columns)."""
    rows = np.ascontiguousarray(rows, np.int64)
    keys = {}
    first = np.empty(len(rows), np.int64)
    for i in range(len(rows)):
        first[i] = keys.setdefault(rows[i].tobytes(), i)
    reps = np.unique(first)
    order = sorted(range(len(reps)), key=lambda k: tuple(rows[reps[k]].tolist()))
    rank = np.empty(len(reps), np.int64)
    rank[order] = np.arange(len(reps))
    return rank[np.searchsorted(reps, first)]


def _widen(d: Dfa, alphabet: str) -> Dfa:
    """The same automaton over a larger alphabet (new characters have no transitions)."""
    cols = [d._index.get(c) for c in alphabet]
    trans = np.stack([d.trans[:, a] if a is not None else np.full(d.n_states, -1) for a in cols], axis=1)
    return Dfa(alphabet, trans, d.accept)


def _product(dfas, accepting, alphabet) -> Dfa:
    tabs = [d._lists() for d in dfas]

    def step(state, ch):
        nxt = tuple(rows[s][idx[ch]] if s >= 0 and ch in idx else -1 for s, (rows, _, idx) in zip(state, tabs))
        return nxt if any(t >= 0 for t in nxt) else None

    def acc(state):
        return accepting([s >= 0 and tab[1][s] for s, tab in zip(state, tabs)])

    return Dfa.explore(alphabet, tuple(0 for _ in dfas), step, acc)


def union(*dfas: Dfa) -> Dfa:
    """Texts accepted by any of the automata (product construction over the union alphabet)."""
    if not dfas:
        raise ValueError("union of nothing")
    return _product(dfas, any, _alphabet("".join(d.alphabet for d in dfas)))


def intersect(*dfas: Dfa) -> Dfa:
    """Texts accepted by all of the automata (product construction over the common alphabet)."""
    if not dfas:
        raise ValueError("intersection of nothing")
    common = set(dfas[0].alphabet).intersection(*(set(d.alphabet) for d in dfas[1:]))
    return _product(dfas, all, _alphabet(common))


def concat(a: Dfa, b: Dfa) -> Dfa:
    """Texts x + y with x accepted by a and y by b (subset construction: the state is a's state and
    the set of b's states reachable by the ways of splitting the text read so far)."""
    ra, aa, ia = a._lists()
    rb, ab, ib = b._lists()

    def enter(sa, sb):
        return (sa, frozenset(sb | {0}) if sa >= 0 and aa[sa] else frozenset(sb))

    def step(state, ch):
        sa, sb = state
        na = ra[sa][ia[ch]] if sa >= 0 and ch in ia else -1
        nb = {rb[s][ib[ch]] for s in sb if ch in ib} - {-1}
        if na < 0 and not nb:
            return None
        return enter(na, nb)

    return Dfa.explore(_alphabet(a.alphabet + b.alphabet), enter(0, set()), step,
                       lambda st: any(ab[s] for s in st[1]))


def with_checksum(d: Dfa, term, modulus: int, target=0) -> Dfa:
    """Texts of `d` whose checksum sum_i term(i, text[i]) mod `modulus` equals `target` (an int, or a
    set of residues). term(i, ch) -> int, or None to forbid ch at position i. The product state is
    (state of d, position, residue); d should bound the length (a fixed-length layout)."""
    rows, acc, idx = d._lists()
    targets = {target % modulus} if isinstance(target, (int, np.integer)) else {t % modulus for t in target}

    def step(state, ch):
        s, i, r = state
        t = rows[s][idx[ch]] if ch in idx else -1
        if t < 0:
            return None
        v = term(i, ch)
        if v is None:
            return None
        return (t, i + 1, (r + v) % modulus)

    return Dfa.explore(d.alphabet, (0, 0, 0), step, lambda st: acc[st[0]] and st[2] in targets)


def insert_separators(d: Dfa, groups, sep: str = " ") -> Dfa:
    """Texts of `d` of length sum(groups) printed in groups of those sizes joined by `sep`
    ("4512345678901234", (4, 4, 4, 4) -> "4512 3456 7890 1234")."""
    if len(sep) != 1 or sep in d.alphabet:
        raise ValueError("the separator must be one character outside the automaton's alphabet")
    groups = tuple(int(g) for g in groups)
    if not groups or min(groups) < 1:
        raise ValueError(f"bad groups {groups}")
    seps, k = set(), 0
    for g in groups[:-1]:
        k += g
        seps.add(k + len(seps))
    total = sum(groups) + len(groups) - 1
    rows, acc, idx = d._lists()

    def step(state, ch):
        s, k = state
        if k >= total:
            return None
        if k in seps:
            return (s, k + 1) if ch == sep else None
        t = rows[s][idx[ch]] if ch in idx else -1
        return (t, k + 1) if t >= 0 else None

    return Dfa.explore(d.alphabet + sep, (0, 0), step, lambda st: st[1] == total and acc[st[0]])


# ---- shared character sets ------------------------------------------------------------------------

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"               # A-Z without I, O
# The 31 mainland province-level abbreviations that start a plate (GA 36).
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
VIN_CHARS = DIGITS + "ABCDEFGHJKLMNPRSTUVWXYZ"           # A-Z without I, O, Q
VIN_YEAR_CHARS = "ABCDEFGHJKLMNPRSTVWXY123456789"        # model-year codes: no U, Z, 0 either
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
ID_WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
# GB/T 2260 province-level codes (first two digits of an ID number's region).
PROVINCE_CODES = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古",
    "21": "辽宁", "22": "吉林", "23": "黑龙江",
    "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽", "35": "福建", "36": "江西", "37": "山东",
    "41": "河南", "42": "湖北", "43": "湖南", "44": "广东", "45": "广西", "46": "海南",
    "50": "重庆", "51": "四川", "52": "贵州", "53": "云南", "54": "西藏",
    "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏", "65": "新疆",
    "71": "台湾", "81": "香港", "82": "澳门",
}


def _is_digits(s: str) -> bool:
    return len(s) > 0 and all(c in DIGITS for c in s)


# ---- bank cards ---------------------------------------------------------------------------------

# issuer -> (prefix ranges (lo, hi) of equal-length digit strings, allowed lengths)
CARD_ISSUERS = {
    "visa": ((("4", "4"),), (13, 16, 19)),
    "mastercard": ((("51", "55"), ("2221", "2720")), (16,)),
    "amex": ((("34", "34"), ("37", "37")), (15,)),
    "unionpay": ((("62", "62"),), (16, 17, 18, 19)),
}


def card_groupings(issuer: str, n: int) -> tuple:
    """Printed groupings of an n-digit number of `issuer` (besides the ungrouped digit string)."""
    if issuer == "amex":
        return ((4, 6, 5),)
    if n == 13:
        return ((4, 3, 3, 3),)
    if n == 16:
        return ((4, 4, 4, 4),)
    if 17 <= n <= 19:
        return ((6, n - 6), (4, 4, 4, 4, n - 16))
    return ()


def group_digits(digits: str, groups) -> str:
    """'4512345678901234', (4, 4, 4, 4) -> '4512 3456 7890 1234' (the printed layout)."""
    out, i = [], 0
    for g in groups:
        out.append(digits[i:i + g])
        i += g
    return " ".join(out)


def _luhn_digit(i: int, d: int, n: int) -> int:
    """Luhn contribution of digit d at index i (from the left) of an n-digit number."""
    if (n - 1 - i) % 2 == 1:
        d *= 2
        return d - 9 if d > 9 else d
    return d


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812-1 Luhn check over a digit string (at least 2 digits)."""
    if len(digits) < 2 or not _is_digits(digits):
        return False
    n = len(digits)
    return sum(_luhn_digit(i, int(c), n) for i, c in enumerate(digits)) % 10 == 0


def card_issuer(digits: str) -> str | None:
    """Issuer whose prefix range and length both fit the digit string, else None."""
    if not _is_digits(digits):
        return None
    for name, (ranges, lengths) in CARD_ISSUERS.items():
        if len(digits) in lengths and any(lo <= digits[:len(lo)] <= hi for lo, hi in ranges):
            return name
    return None


def card_number_ok(text: str) -> bool:
    """Issuer-consistent, Luhn-valid, and printed ungrouped or with one of the issuer's groupings."""
    digits = text.replace(" ", "")
    issuer = card_issuer(digits)
    if issuer is None or not luhn_ok(digits):
        return False
    return text == digits or any(text == group_digits(digits, g) for g in card_groupings(issuer, len(digits)))


def _card_digits(issuer: str, n: int) -> Dfa:
    ranges, _ = CARD_ISSUERS[issuer]
    parts = []
    for k in sorted({len(lo) for lo, _ in ranges}):
        heads = [str(x).zfill(k) for lo, hi in ranges if len(lo) == k for x in range(int(lo), int(hi) + 1)]
        parts.append(concat(Dfa.literal(heads), Dfa.template([DIGITS] * (n - k))))
    layout = union(*parts)
    return with_checksum(layout, lambda i, ch: _luhn_digit(i, int(ch), n), 10, 0)


@functools.lru_cache(maxsize=None)
def card_number() -> Dfa:
    parts = []
    for issuer, (_, lengths) in CARD_ISSUERS.items():
        for n in lengths:
            d = _card_digits(issuer, n)
            parts.append(d)
            parts += [insert_separators(d, g) for g in card_groupings(issuer, n)]
    return union(*parts)


def expiry_ok(text: str) -> bool:
    return len(text) == 5 and text[2] == "/" and _is_digits(text[:2] + text[3:]) and 1 <= int(text[:2]) <= 12


@functools.lru_cache(maxsize=None)
def card_expiry() -> Dfa:
    return union(Dfa.template(["0", "123456789", "/", DIGITS, DIGITS]),
                 Dfa.template(["1", "012", "/", DIGITS, DIGITS]))


NAME_MIN, NAME_MAX = 2, 26


def card_name_ok(text: str) -> bool:
    """At least two words of A-Z and '.', each starting with a letter, single spaces between, 2-26
    characters (the automaton's language; the reader also drops readings made of CARD_CAPTIONS)."""
    if not NAME_MIN <= len(text) <= NAME_MAX:
        return False
    words = text.split(" ")
    return len(words) >= 2 and all(w and w[0] in UPPER and all(c in UPPER + "." for c in w) for w in words)


# captions printed near the expiry (and tier words), never a holder's name
CARD_CAPTIONS = frozenset({"VALID", "THRU", "GOOD", "FROM", "EXPIRES", "EXPIRY", "END", "MONTH", "YEAR",
                           "MONTH/YEAR", "DATE", "MEMBER", "SINCE", "VALID/THRU"})


def card_caption(text: str) -> bool:
    """True when every word of text is a printed card caption (VALID THRU, GOOD THRU, EXPIRES END)."""
    words = text.split()
    return bool(words) and all(w in CARD_CAPTIONS for w in words)


@functools.lru_cache(maxsize=None)
def card_name() -> Dfa:
    """The word grammar of card_name_ok; the caption test is applied to the decoded readings
    (Reader._read_fields), as it is a list of whole words rather than a character rule."""
    # state (length, where, words): where 0 = start, 1 = just after a space, 2 = inside a word;
    # words counts started words, capped at 2
    def step(state, ch):
        n, where, words = state
        if n >= NAME_MAX:
            return None
        if ch == " ":
            return (n + 1, 1, words) if where == 2 else None
        if ch == ".":
            return (n + 1, 2, words) if where == 2 else None
        return (n + 1, 2, words if where == 2 else min(2, words + 1))

    return Dfa.explore(UPPER + " .", (0, 0, 0), step, lambda st: st[1] == 2 and st[0] >= NAME_MIN and st[2] >= 2)


# ---- meters -------------------------------------------------------------------------------------

READING_MIN, READING_MAX = 5, 8


def reading_ok(text: str, n_digits: int | None = None) -> bool:
    if not _is_digits(text):
        return False
    return len(text) == n_digits if n_digits is not None else READING_MIN <= len(text) <= READING_MAX


@functools.lru_cache(maxsize=None)
def meter_reading(n_digits: int | None = None) -> Dfa:
    if n_digits is not None:
        if int(n_digits) < 1:
            raise ValueError("n_digits must be >= 1")
        return Dfa.template([DIGITS] * int(n_digits))
    return union(*(Dfa.template([DIGITS] * n) for n in range(READING_MIN, READING_MAX + 1)))


# ---- plates and VINs ----------------------------------------------------------------------------

def plate_ok(text: str) -> bool:
    """Mainland plate text (without the dot) of one of the shapes listed in the module docstring."""
    if len(text) not in (7, 8) or text[0] not in PROVINCES or text[1] not in PLATE_LETTERS:
        return False
    rest = text[2:]
    alnum = PLATE_LETTERS + DIGITS

    def letters(s):
        return sum(c in PLATE_LETTERS for c in s)

    if len(text) == 7:
        if all(c in alnum for c in rest) and letters(rest) <= 2:
            return True
        return rest[-1] in "警学" and all(c in alnum for c in rest[:4]) and letters(rest[:4]) <= 1
    small = rest[0] in "DF" and rest[1] in alnum and _is_digits(rest[2:])
    large = _is_digits(rest[:5]) and rest[5] in "DF"
    return small or large


@functools.lru_cache(maxsize=None)
def plate() -> Dfa:
    alnum = PLATE_LETTERS + DIGITS

    def counted(n, max_letters, tail=""):
        # province, letter, n alnum with at most max_letters letters, then the fixed tail characters
        def step(state, ch):
            i, k = state
            if i == 0:
                return (1, 0) if ch in PROVINCES else None
            if i == 1:
                return (2, 0) if ch in PLATE_LETTERS else None
            j = i - 2
            if j < n:
                if ch in DIGITS:
                    return (i + 1, k)
                return (i + 1, k + 1) if ch in PLATE_LETTERS and k < max_letters else None
            if j - n < len(tail) and ch == tail[j - n]:
                return (i + 1, k)
            return None
        return Dfa.explore(PROVINCES + alnum + tail, (0, 0), step, lambda st: st[0] == 2 + n + len(tail))

    head = [PROVINCES, PLATE_LETTERS]
    return union(counted(5, 2), counted(4, 1, "警"), counted(4, 1, "学"),
                 Dfa.template(head + ["DF", alnum] + [DIGITS] * 4),
                 Dfa.template(head + [DIGITS] * 5 + ["DF"]))


def vin_value(c: str) -> int:
    """Transliteration value of a VIN character (digits: themselves; A-H 1-8, J-N 1-5, P 7, R 9,
    S-Z 2-9)."""
    if c in DIGITS:
        return int(c)
    if c in "ABCDEFGH":
        return "ABCDEFGH".index(c) + 1
    if c in "JKLMN":
        return "JKLMN".index(c) + 1
    if c == "P":
        return 7
    if c == "R":
        return 9
    if c in "STUVWXYZ":
        return "STUVWXYZ".index(c) + 2
    raise ValueError(f"{c!r} is not a VIN character")


def vin_check_char(vin17: str) -> str:
    """Check character (position 9) of a 17-character VIN; the character at index 8 is ignored."""
    r = sum(vin_value(c) * w for c, w in zip(vin17, VIN_WEIGHTS)) % 11
    return "X" if r == 10 else str(r)


def vin_ok(text: str, year_code: bool = True) -> bool:
    """17 VIN characters with a correct check character (and a model-year code at position 10 when
    `year_code`)."""
    if len(text) != 17 or any(c not in VIN_CHARS for c in text):
        return False
    if year_code and text[9] not in VIN_YEAR_CHARS:
        return False
    return text[8] == vin_check_char(text)


@functools.lru_cache(maxsize=None)
def vin(year_code: bool = True) -> Dfa:
    sets = [VIN_CHARS] * 17
    sets[8] = DIGITS + "X"
    if year_code:
        sets[9] = VIN_YEAR_CHARS

    def term(i, ch):  # the check character counts negatively: accept when sum == check (mod 11)
        if i == 8:
            return -(10 if ch == "X" else int(ch))
        return vin_value(ch) * VIN_WEIGHTS[i]

    return with_checksum(Dfa.template(sets), term, 11, 0)


# ---- resident ID numbers ------------------------------------------------------------------------

ID_YEARS = (1900, 2099)
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February up to 29 (leap test: id_ok)


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not _is_digits(first17):
        raise ValueError("need the first 17 digits of the ID number")
    c = (12 - sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS)) % 11) % 11
    return "X" if c == 10 else str(c)


def _id_date(text: str, check_leap: bool = True):
    y, m, d = int(text[6:10]), int(text[10:12]), int(text[12:14])
    if not ID_YEARS[0] <= y <= ID_YEARS[1] or not 1 <= m <= 12 or not 1 <= d <= _MONTH_DAYS[m - 1]:
        return None
    try:
        return datetime.date(y, m, d)
    except ValueError:  # 29 February of a common year
        return None if check_leap else datetime.date(y, m, 28)


def id_ok(text: str, check_leap: bool = True) -> bool:
    """Full check: 18 characters, province-level region code, a real birth date in 1900-2099 (the
    leap year too unless check_leap=False, which is exactly the automaton's language), check character."""
    if len(text) != 18 or not _is_digits(text[:17]) or text[17] not in DIGITS + "X":
        return False
    if text[:2] not in PROVINCE_CODES or _id_date(text, check_leap) is None:
        return False
    return text[17] == id_check_char(text[:17])


def id_info(text: str) -> dict:
    """region (6 digits), province_code (2), province (name), birth (datetime.date), sex ('男' when
    the 17th digit is odd, else '女'). ValueError when id_ok fails."""
    if not id_ok(text):
        raise ValueError(f"not a valid resident ID number: {text!r}")
    return {"region": text[:6], "province_code": text[:2], "province": PROVINCE_CODES[text[:2]],
            "birth": _id_date(text), "sex": "男" if int(text[16]) % 2 == 1 else "女"}


@functools.lru_cache(maxsize=None)
def id_number() -> Dfa:
    provinces = set(PROVINCE_CODES)
    lo, hi = str(ID_YEARS[0]), str(ID_YEARS[1])

    # layout state (i, info): i characters read; info holds what the later positions depend on
    def step(state, ch):
        i, info = state
        if i < 17 and ch not in DIGITS:
            return None
        if i == 0:
            return (1, ch) if any(p[0] == ch for p in provinces) else None
        if i == 1:
            return (2, None) if info + ch in provinces else None
        if i < 6:
            return (i + 1, None)
        if i < 10:  # year: compare with the bounds digit by digit (info = prefix so far)
            y = (info or "") + ch
            return (i + 1, y if i < 9 else None) if lo[:len(y)] <= y <= hi[:len(y)] else None
        if i == 10:
            return (11, ch) if ch in "01" else None
        if i == 11:
            m = int(info + ch)
            return (12, _MONTH_DAYS[m - 1]) if 1 <= m <= 12 else None
        if i == 12:  # info = days in the month
            return (13, (info, ch)) if int(ch) <= info // 10 else None
        if i == 13:
            days, d1 = info
            return (14, None) if 1 <= int(d1 + ch) <= days else None
        if i < 17:
            return (i + 1, None)
        if i == 17:
            return (18, None) if ch in DIGITS + "X" else None
        return None

    layout = Dfa.explore(DIGITS + "X", (0, None), step, lambda st: st[0] == 18)

    def term(i, ch):
        if i < 17:
            return int(ch) * ID_WEIGHTS[i]
        return 10 if ch == "X" else int(ch)

    return with_checksum(layout, term, 11, 1)  # all 18 with the check's weight 1: sum = 1 (mod 11)


# ---- ID card name and address ----------------------------------------------------------------------
# Their alphabet is the recognizer's Chinese charset (thousands of characters), so these automata are
# built per charset (id_name(charset), id_address_start(charset, province)) instead of through the
# registry below; both are small (<= 100 states) and built directly, without subset construction.

ID_LABELS = ("姓名", "性别", "民族", "出生", "住址", "公民身份号码")   # the printed captions
ADDRESS_MARKS = DIGITS + UPPER + "-"                               # besides Chinese characters


def is_hanzi(ch: str) -> bool:
    """CJK unified ideographs (basic block and extension A) and compatibility ideographs."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def counted(chars, lo: int, hi: int) -> Dfa:
    """Texts of lo..hi characters, each one of `chars`."""
    if not 0 <= lo <= hi:
        raise ValueError(f"bad length range {lo}..{hi}")
    alphabet = _alphabet(chars)
    trans = np.full((hi + 1, len(alphabet)), -1, np.int64)
    for k in range(hi):
        trans[k, :] = k + 1
    return Dfa(alphabet, trans, [lo <= k <= hi for k in range(hi + 1)]).minimize()


def _trie_counter(words, body, lo: int, hi: int, index: dict, n_cols: int):
    """(trans (S, n_cols), accept (S,)) of: one of `words` (non-empty, prefix-free) followed by lo..hi
    characters of `body`, a trie whose leaves enter a length counter; characters are columns by
    `index` (words or body characters missing from it are dropped)."""
    words = sorted({w for w in words if all(c in index for c in w)})
    if not words:
        raise ValueError("no word of the grammar can be written with these characters")
    prefixes = sorted({w[:i] for w in words for i in range(len(w))})
    pid = {p: i for i, p in enumerate(prefixes)}
    n_p = len(prefixes)
    trans = np.full((n_p + hi + 1, n_cols), -1, np.int64)
    for w in words:
        for i in range(len(w)):
            trans[pid[w[:i]], index[w[i]]] = pid.get(w[:i + 1], n_p)
    cols = sorted({index[c] for c in body if c in index})
    for k in range(hi):
        trans[n_p + k, cols] = n_p + k + 1
    return trans, np.array([False] * n_p + [lo <= k <= hi for k in range(hi + 1)])


def words_then(words, body, lo: int, hi: int) -> Dfa:
    """One of `words` (non-empty; none a proper prefix of another) followed by lo..hi characters of
    `body`: a trie whose leaves enter a length counter."""
    words = sorted(set(words))
    if not words or "" in words or any(a != b and b.startswith(a) for a in words for b in words):
        raise ValueError("words must be non-empty and prefix-free")
    alphabet = _alphabet("".join(words) + "".join(body))
    trans, accept = _trie_counter(words, body, lo, hi, {c: i for i, c in enumerate(alphabet)}, len(alphabet))
    return Dfa(alphabet, trans, accept).minimize()


def id_name(charset: str) -> Dfa:
    """A holder's name: 2-12 Chinese characters of the charset (real names run from 2 characters to
    long transliterated minority names)."""
    return counted([c for c in charset if is_hanzi(c)], 2, 12)


def id_name_ok(text: str) -> bool:
    return 2 <= len(text) <= 12 and all(is_hanzi(c) for c in text) and text not in ID_LABELS


def _address_start_parts(charset: str, province_code):
    """(words, body) of the first address row: [caption +] province name(s), then body characters."""
    if province_code is not None and province_code not in PROVINCE_CODES:
        raise ValueError(f"unknown province code {province_code!r}")
    names = [PROVINCE_CODES[province_code]] if province_code else sorted(set(PROVINCE_CODES.values()))
    return [cap + n for cap in ("", "住址") for n in names], [c for c in charset if is_hanzi(c) or c in ADDRESS_MARKS]


def id_address_start(charset: str, province_code: str | None = None) -> Dfa:
    """The first printed address row: optionally the 住址 caption (a detector box that took it in),
    then the province-level name (the one the ID number's first two digits encode, or any), then up
    to 24 more characters (Chinese, digits, A-Z, '-')."""
    return words_then(*_address_start_parts(charset, province_code), 0, 24)


def id_address_ok(text: str, province_code: str | None = None) -> bool:
    """An address that starts with the province-level name (the given code's, or any)."""
    names = [PROVINCE_CODES[province_code]] if province_code else PROVINCE_CODES.values()
    return any(text.startswith(n) for n in names) and \
        all(is_hanzi(c) or c in ADDRESS_MARKS for c in text)


@functools.lru_cache(maxsize=64)
def _id_text_tables(kind: str, charset: str, province_code):
    if kind == "name":
        trans, accept, _ = id_name(charset).compile(charset)
    else:
        # the address automaton built straight on the label columns: the same language as
        # id_address_start(...).compile(charset) without minimizing 3,800 columns (~3 ms, not ~0.1 s)
        words, body = _address_start_parts(charset, province_code)
        try:
            trans, accept = _trie_counter(words, body, 0, 24, {c: i for i, c in enumerate(charset)},
                                          len(charset) + 1)
        except ValueError:
            raise ValueError(f"no text of the grammar can be written with the charset {charset[:40]!r}") from None
    trans.setflags(write=False)
    accept.setflags(write=False)
    return trans, accept, 0


def id_text_constraint(kind: str, charset: str, province_code: str | None = None):
    """Decoder tables (as `constraint`) for kind "name" or "address" (first row) over a charset."""
    if kind not in ("name", "address"):
        raise ValueError(f"kind must be 'name' or 'address', got {kind!r}")
    trans, accept, start = _id_text_tables(kind, str(charset), province_code)
    return trans.copy(), accept.copy(), start


# ---- registry -----------------------------------------------------------------------------------

GRAMMARS = {
    ("card", "number"): card_number,
    ("card", "expiry"): card_expiry,
    ("card", "name"): card_name,
    ("meter", "reading"): meter_reading,
    ("plate", "plate"): plate,
    ("vin", "vin"): vin,
    ("idcard", "id_number"): id_number,
}

VALIDATORS = {
    ("card", "number"): card_number_ok,
    ("card", "expiry"): expiry_ok,
    ("card", "name"): card_name_ok,
    ("meter", "reading"): reading_ok,
    ("plate", "plate"): plate_ok,
    ("vin", "vin"): vin_ok,
    ("idcard", "id_number"): id_ok,
}

_ALIASES = {fn.__name__: key for key, fn in GRAMMARS.items()}


def grammar_key(name_or_key) -> tuple:
    """(domain, field) for a registry key, a grammar function name ("vin", "id_number"), or a
    recognizer name / "domain.field" / "domain/field" / "domain_field" ("card_number",
    "idcard_id_number")."""
    if isinstance(name_or_key, tuple):
        key = tuple(name_or_key)
        if key in GRAMMARS:
            return key
    elif isinstance(name_or_key, str):
        if name_or_key in _ALIASES:
            return _ALIASES[name_or_key]
        for sep in (".", "/", "_"):
            if sep in name_or_key:
                key = tuple(name_or_key.split(sep, 1))
                if key in GRAMMARS:
                    return key
    raise KeyError(f"no grammar {name_or_key!r}; known: {sorted(GRAMMARS)}")


def _cache_path(grammar, charset: str):
    """Disk cache file of a registry grammar compiled for a charset (None: caching off, or a Dfa
    object). The name hashes this module's source, the key and the charset, so an edited rule never
    reads a stale table. XNN_CACHE_DIR overrides ~/.cache/xnn; XNN_CACHE_DIR=off disables it."""
    import hashlib
    import os

    if not isinstance(grammar, tuple):
        return None
    root = os.environ.get("XNN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "xnn")
    if root == "off":
        return None
    with open(__file__, "rb") as f:
        h = hashlib.sha256(f.read())
    h.update(repr((grammar, charset)).encode("utf-8"))
    return os.path.join(root, f"dfa_{h.hexdigest()[:24]}.npz")


def _load_cached(path):
    """(trans, accept) from a cache file, or None when it is missing or malformed (validated: the
    decoder indexes these tables without bounds checks)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            trans, accept = z["trans"].astype(np.int64), z["accept"].astype(bool)
    except (OSError, ValueError, KeyError):
        return None
    if trans.ndim != 2 or accept.shape != (trans.shape[0],) or trans.shape[0] < 1:
        return None
    if trans.min() < -1 or trans.max() >= trans.shape[0]:
        return None
    return trans, accept


@functools.lru_cache(maxsize=64)
def _compiled(grammar, charset: str):
    path = _cache_path(grammar, charset)
    hit = _load_cached(path) if path else None
    if hit is not None and hit[0].shape[1] == len(charset) + 1:
        trans, accept = hit
    else:
        d = GRAMMARS[grammar]() if isinstance(grammar, tuple) else grammar
        trans, accept, _ = d.compile(charset)
        if path:
            import os
            import tempfile

            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
                with os.fdopen(fd, "wb") as f:
                    np.savez_compressed(f, trans=trans, accept=accept)
                os.replace(tmp, path)
            except OSError:
                pass                       # a read-only home: compile every time
    trans.setflags(write=False)
    accept.setflags(write=False)
    return trans, accept, 0


def constraint(name_or_key, charset: str):
    """`dfa` argument of xnn.ctc.beam_search for a grammar (registry key, name, or a Dfa) over a
    recognizer's charset (blank = last class): (trans int64 (S, len(charset) + 1), accept bool (S,),
    0). Compiled once per (grammar, charset); each call returns fresh (writable) copies, so callers
    cannot corrupt the cache and the Numba kernel sees the array types it was compiled for."""
    grammar = name_or_key if isinstance(name_or_key, Dfa) else grammar_key(name_or_key)
    trans, accept, start = _compiled(grammar, str(charset))
    return trans.copy(), accept.copy(), start
