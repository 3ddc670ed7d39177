"""Offline lexical faithfulness check: P(claim supported by document), with evidence spans.

A document is split into sentences once (offsets into the original text), and an inverted
index maps word stems to the sentences that hold them. Each claim sentence retrieves its
best-supporting sentences by IDF-weighted overlap (numbers left out of the query); features
compare it with that bounded window only, plus the aligned sentence's paragraph context:

- support: content-word coverage by the best sentence (exact stems and shared 6-letter
  prefixes), trigram coverage and longest copied run within the top ten sentences, coverage
  by the document's vocabulary, the count of content words the document never uses, and the
  claim's length relative to its best sentence;
- alignment: numbers missing from the aligned evidence; the claim's subject or quoted speaker
  missing from the evidence's paragraph context; other names (for a lower-cased claim: words
  the document writes as names) absent from the document; absolutes ("every", "always") the
  context does not state;
- `conflict` (also returned as `contradiction`), when the evidence covers at least half the
  claim: a number or year the evidence states differently, a number counting the same thing
  differently, a word negated on one side only, a reversed direction word ("rose"/"fell"),
  or a name bound to another person's verb or title ("Clinton invited" vs "Bush invited").

A logistic regression stored in `lexical_model.json` turns `FEATURES` into a probability.
Pure Python at run time; `evals/train_checker.py` refits the model.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "FEATURES",
    "METHOD_NAME",
    "THRESHOLD",
    "IndexedDocument",
    "LexicalScore",
    "claim_features",
    "has_words",
    "score_claim",
    "split_sentences",
]

METHOD_NAME = "offline-lexical-v2"

# ---------------------------------------------------------------- word lists


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _words(
    """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself nor of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves said says say told tell according s t will shall may
might must 's one new also last first year years article
"""
)
_NEGATIONS = _words("not no never none nobody nothing neither nor without n't cannot")
_NUM_WORDS: dict[str, float] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 10**6, "billion": 10**9, "dozen": 12, "twice": 2, "once": 1, "half": 0.5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip

# ---------------------------------------------------------------- sentences with offsets

_LINE = re.compile(r"[^\n]+")
# A sentence ends at . ! or ? (possibly doubled), then closing quotes/brackets, then space.
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+")
_OPENER = re.compile(r"[\"'\u201c\u2018(\[]?[^\W_a-z]")
_ABBREVIATIONS = _words(
    "mr mrs ms dr st prof gen sen rep gov lt col sgt capt cpl jr sr inc co corp ltd vs no nos "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft rev hon pres adm maj cmdr supt "
    "u.s u.k u.n e.g i.e etc approx"
)
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?]*$")
_MAX_SENTENCE_CHARS = 1500


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) into `text`, each free of surrounding whitespace."""
    return list(_iter_sentence_spans(text))


def _iter_sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    # A line break always ends a sentence: headlines and bylines carry no full stop.
    for line in _LINE.finditer(text):
        yield from _line_spans(line.group(), line.start())


def _line_spans(line: str, offset: int) -> Iterator[tuple[int, int]]:
    # Lower-cased benchmark text has no capital to open a sentence: any boundary counts.
    lowered = not any(c.isupper() for c in line)
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for m in _BOUNDARY.finditer(line):
        after = line[m.end() : m.end() + 2]
        if not lowered and not _OPENER.match(after):
            continue
        word = _WORD_BEFORE.search(line, max(0, m.start() - 20), m.start() + 1)
        if word is not None and m.group()[0] == ".":
            w = word.group(1).lower().rstrip(".")
            # Abbreviations and initials ("George W. Bush") do not end a sentence.
            if w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha()):
                continue
        pieces.append((cursor, m.end()))
        cursor = m.end()
    pieces.append((cursor, len(line)))
    merged: list[tuple[int, int]] = []
    for a, b in pieces:
        a, b = _strip_span(line, a, b)
        if a >= b:
            continue
        # A fragment of one or two words ("No." / "he said.") belongs to the sentence before.
        if merged and line.count(" ", a, b) < 2:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    for a, b in merged:
        for ca, cb in _cap_span(line, a, b):
            yield offset + ca, offset + cb


def _strip_span(s: str, a: int, b: int) -> tuple[int, int]:
    while a < b and s[a].isspace():
        a += 1
    while b > a and s[b - 1].isspace():
        b -= 1
    return a, b


def _cap_span(s: str, a: int, b: int) -> Iterator[tuple[int, int]]:
    # Text without punctuation would otherwise make one huge "sentence" that every claim
    # retrieves and re-tokenises; cut it at whitespace so per-claim work stays bounded.
    while b - a > _MAX_SENTENCE_CHARS:
        cut = s.rfind(" ", a + _MAX_SENTENCE_CHARS // 2, a + _MAX_SENTENCE_CHARS)
        if cut < 0:
            cut = a + _MAX_SENTENCE_CHARS
        ca, cb = _strip_span(s, a, cut)
        if ca < cb:
            yield ca, cb
        a, b = _strip_span(s, cut, b)
    if a < b:
        yield a, b


# ---------------------------------------------------------------- normalisation and tokens

_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)?|n't")
_QUOTES = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "`": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-"}
)
_PTB_CLITIC = re.compile(r"\s+'(s|re|ve|ll|d|m)\b")
_PTB_NEG = re.compile(r"\s+n't\b")
_PTB_BRACKET = re.compile(r"-[lr][rcs]b-", re.IGNORECASE)
_COUNTRY_DOTS = re.compile(r"\b([UuEe])\.([SsKkNnUu])\.")


def normalize(text: str) -> str:
    """Unify Unicode forms, quotes and dashes, and undo PTB tokenisation artefacts."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\\'", "'").translate(_QUOTES).replace("\u2014", " - ")
    text = _PTB_BRACKET.sub(" ", text)
    text = _COUNTRY_DOTS.sub(lambda m: m.group(1) + m.group(2), text)
    text = _PTB_CLITIC.sub(r"'\1", text)
    return _PTB_NEG.sub("n't", text)


# Irregular past forms, so "took" meets "take" (the suffix stripper cannot see these).
_IRREGULAR = {
    "took": "take", "taken": "take", "came": "come", "gave": "give", "given": "give",
    "went": "go", "gone": "go", "made": "make", "held": "hold", "met": "meet", "left": "leave",
    "won": "win", "lost": "lose", "saw": "see", "seen": "see", "began": "begin",
    "begun": "begin", "spoke": "speak", "spoken": "speak", "wrote": "write", "written": "write",
    "thought": "think", "brought": "bring", "bought": "buy", "sold": "sell", "sent": "send",
    "found": "find", "kept": "keep", "led": "lead", "fell": "fall", "fallen": "fall",
    "rose": "rise", "risen": "rise", "grew": "grow", "grown": "grow", "knew": "know",
    "known": "know", "ran": "run", "paid": "pay", "felt": "feel", "stood": "stand",
    "understood": "understand", "chose": "choose", "chosen": "choose", "drove": "drive",
    "driven": "drive", "shown": "show", "struck": "strike", "fought": "fight", "caught": "catch",
    "taught": "teach", "built": "build", "spent": "spend", "lent": "lend", "hit": "hit",
    "broke": "break", "broken": "break", "ate": "eat", "eaten": "eat", "flew": "fly",
    "flown": "fly", "hid": "hide", "hidden": "hide", "stole": "steal", "stolen": "steal",
    "threw": "throw", "thrown": "throw", "wore": "wear", "worn": "wear", "woke": "wake",
    "forgot": "forget", "forgotten": "forget", "sought": "seek", "meant": "mean",
    "heard": "hear", "sat": "sit", "lay": "lie", "laid": "lay", "shot": "shoot",
    "children": "child", "men": "man", "women": "woman", "people": "person",
}  # fmt: skip


@functools.lru_cache(maxsize=200_000)
def _stem(tok: str) -> str:
    # A tiny suffix stripper (lower-case input): enough to merge plural and tense variants.
    if tok.endswith("'s"):
        tok = tok[:-2]
    tok = _IRREGULAR.get(tok, tok)
    if len(tok) <= 3 or tok[0].isdigit():
        return tok
    for suf, rep, minlen in (
        ("ies", "y", 5), ("sses", "ss", 5), ("ness", "", 7), ("ments", "", 8), ("ment", "", 7),
        ("ings", "", 7), ("ing", "", 6), ("edly", "", 7), ("ed", "", 5), ("ly", "", 6),
        ("es", "", 6), ("s", "", 4),
    ):  # fmt: skip
        if tok.endswith(suf) and len(tok) >= minlen and not (suf == "s" and tok.endswith("ss")):
            tok = tok[: len(tok) - len(suf)] + rep
            break
    if len(tok) > 4 and tok[-1] == tok[-2] and tok[-1] not in "lsz":
        tok = tok[:-1]
    if tok.endswith("ise"):
        tok = tok[:-3] + "ize"
    # "criticize"/"criticized", "approve"/"approved" meet at one stem.
    if len(tok) > 4 and tok.endswith("e") and not tok.endswith("ee"):
        tok = tok[:-1]
    return tok


def _num_value(low: str) -> str | None:
    if low[0].isdigit():
        t = low.replace(",", "")
        if ":" in t:
            return t
        try:
            return f"{float(t):g}"
        except ValueError:
            return t
    if low in _NUM_WORDS:
        return f"{_NUM_WORDS[low]:g}"
    return None


# Words that mark a claim's direction; a claim on one side aligned with evidence on the
# other is a reversal ("rose" vs "fell"). Kept to pairs that rarely occur in both senses.
_DIRECTION_PAIRS = (
    ("rise rises rose risen rising increase increased increases increasing grow grew grown "
     "growing gain gains gained surge surged soar soared",
     "fall falls fell fallen falling decrease decreased decreases decreasing shrink shrank "
     "decline declined declines drop dropped drops plunge plunged"),
    ("win wins won winning victory victorious", "lose loses lost losing defeat defeated"),
    ("before earlier", "after later"),
    ("accept accepted accepts approve approved approves allow allowed allows support supported "
     "supports include included includes", "reject rejected rejects refuse refused refuses ban "
     "banned bans oppose opposed opposes exclude excluded excludes"),
    ("open opened opens", "close closed closes shut"),
    ("start started starts begin began begins", "end ended ends finish finished"),
    ("best largest biggest highest", "worst smallest lowest"),
    ("buy bought buys", "sell sold sells"),
    ("male", "female"),
    ("easy easier easiest", "hard harder hardest difficult"),
    ("success successful succeeded", "failure failed unsuccessful"),
)  # fmt: skip
_DIRECTIONS = tuple((_words(a), _words(b)) for a, b in _DIRECTION_PAIRS)
_ABSOLUTES = _words(
    "every all always entire entirely completely totally whole everyone everything everybody "
    "forever solely exclusively"
)
_SPEECH = _words(
    "said say says told tell tells according added adds explained explains noted notes argued "
    "argues claimed claims warned warns stated states recalled insisted wrote writes pointed "
    "summed sums believes thinks described describes suggested suggests"
)
# "instead of X" and "rather than X" deny X as "not X" does, for scope comparison only.
_CONTRASTS = _words("instead rather")
_NOT_QUANTITIES = _words(
    "one once first second third fourth fifth sixth seventh eighth ninth tenth"
)
# After "not" these hide what is denied: "don't think [X]", "not so much [in X]".
_OPAQUE_AFTER_NEGATION = _words(
    "think believe expect seem seems really necessarily always much so even longer"
)

# Words that open a description of the name before them ("Green, who teaches ...").
_APPOSITION = _words("who a an the of from at director head professor")
_MONTHS = _words(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_MAGNITUDES = _words("hundred thousand million billion trillion m bn k")
# After these a number word names a known group ("the two countries"), not a quantity.
_DETERMINERS = _words("the both these those")
_CLAUSE = re.compile(
    r"[,;:.!?()\"]|\b(?:but|and|or|while|although|though|whereas|because)\b", re.IGNORECASE
)


def _negated_words(raw: str) -> tuple[set[str], set[str]]:
    """Stems a negation governs: the first content word after it in the same clause
    ("did not [criticize]", "instead of [Kellogg]"); and every stem of a clause that holds
    a negation, where a word may be denied in a way this reading cannot pin down."""
    scoped: set[str] = set()
    touched: set[str] = set()
    for clause in _CLAUSE.split(normalize(raw)):
        low = [t.lower() for t in _TOKEN.findall(clause)]
        for i, t in enumerate(low):
            if not (t in _NEGATIONS or t.endswith("n't") or t in _CONTRASTS):
                continue
            if i + 1 < len(low) and low[i + 1] in ("only", "just", "merely"):
                continue
            touched.update(_stem(w) for w in low)
            for w in low[i + 1 : i + 4]:
                if w in _STOPWORDS or w in _NEGATIONS:
                    continue
                # The scope is then further on, where a lexical view cannot find it.
                if w not in _OPAQUE_AFTER_NEGATION:
                    scoped.add(_stem(w))
                break
    return scoped, touched


def _is_year(value: str) -> bool:
    return len(value) == 4 and value.isdigit() and 1800 <= int(value) <= 2100


class _Text:
    """Token-level view of one sentence (or claim) used by the features."""

    __slots__ = (
        "cased", "content", "counts", "cpos", "low", "near_negation", "neg", "negated",
        "num_units", "numbers", "positions", "stems", "toks", "trigrams", "years",
    )  # fmt: skip

    def __init__(self, raw: str) -> None:
        self.toks: list[str] = _TOKEN.findall(normalize(raw))
        self.low = [t.lower() for t in self.toks]
        self.stems = [_stem(t) for t in self.low]
        self.cased = any(c.isupper() for c in raw)
        self.cpos = [
            i for i, (s, lw) in enumerate(zip(self.stems, self.low, strict=True))
            if lw not in _STOPWORDS and s not in _STOPWORDS
        ]  # fmt: skip
        self.content = [self.stems[i] for i in self.cpos]
        # Ordinals and "one"/"once" are mostly not quantities ("the first time", "one of").
        values = [
            None
            if lw in _NOT_QUANTITIES
            or (lw in _NUM_WORDS and i > 0 and self.low[i - 1] in _DETERMINERS)
            else _num_value(lw)
            for i, lw in enumerate(self.low)
        ]
        self.numbers = {v for v in values if v is not None}
        self.years = {v for v in self.numbers if _is_year(v)}
        negators = [
            i for i, t in enumerate(self.low)
            if (t in _NEGATIONS or t.endswith("n't"))
            # "not only X but also Y" affirms X.
            and not (i + 1 < len(self.low) and self.low[i + 1] in ("only", "just", "merely"))
        ]  # fmt: skip
        self.neg = len(negators)
        self.negated, self.near_negation = _negated_words(raw)
        self.positions: dict[str, list[int]] = {}
        for i, st in enumerate(self.stems):
            self.positions.setdefault(st, []).append(i)
        # Counts: numbers that are neither years nor days of a month ("April 13").
        self.counts = {
            v for i, v in enumerate(values)
            if v is not None and not _is_year(v)
            and not any(0 <= j < len(self.low) and self.low[j] in _MONTHS for j in (i - 1, i + 1))
        }  # fmt: skip
        # A count and the word it counts, right after it ("three Chinese leaders",
        # "42 million dollars").
        self.num_units: list[tuple[str, str]] = []
        for i, v in enumerate(values):
            if v is None or v not in self.counts:
                continue
            j = i + 1
            if j < len(self.low) and self.low[j] in _MAGNITUDES:
                v, j = f"{v} {self.low[j]}", j + 1
            if j < len(self.low) and values[j] is None and self.low[j] not in _STOPWORDS:
                self.num_units.append((v, self.stems[j]))
        self.trigrams = set(zip(self.stems, self.stems[1:], self.stems[2:], strict=False))


# ---------------------------------------------------------------- the indexed document

_RETRIEVE_K = 3
_WINDOW_K = 10
_CACHE_SENTENCES = 4096
_MAX_POSTINGS = 20_000


class IndexedDocument:
    """A document prepared once and scored against many claims."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("document text is empty or whitespace only")
        self.text = text
        self._starts = array("q")
        self._ends = array("q")
        postings: dict[str, array[int]] = {}
        capitalised: Counter[str] = Counter()
        lower_case: Counter[str] = Counter()
        for sid, (start, end) in enumerate(_iter_sentence_spans(text)):
            self._starts.append(start)
            self._ends.append(end)
            toks = _TOKEN.findall(normalize(text[start:end]))
            # Casing tells names apart when a claim is lower-cased: a word the document
            # writes capitalised mid-sentence more often than not is a name.
            capitalised.update(t.lower() for t in toks[1:] if t[0].isupper())
            lower_case.update(t for t in toks if t[0].islower())
            for lw in {t.lower() for t in toks}:
                st = _stem(lw)
                ids = postings.get(st)
                if ids is None:
                    postings[st] = array("I", (sid,))
                elif ids[-1] != sid:
                    ids.append(sid)
        self._postings = postings
        self._proper = frozenset(w for w, c in capitalised.items() if c > lower_case.get(w, 0))
        self._n = len(self._starts)
        self._cache: dict[int, _Text] = {}

    def __len__(self) -> int:
        """Number of sentences."""
        return self._n

    def span(self, sid: int) -> tuple[int, int]:
        """Offsets of sentence `sid` in `text`."""
        return self._starts[sid], self._ends[sid]

    def has_stem(self, stem: str) -> bool:
        """Whether any sentence holds the stem."""
        return stem in self._postings

    def is_name(self, low: str) -> bool:
        """Whether the document writes this lower-cased word as a name."""
        return low in self._proper

    def _same_paragraph(self, a: int, b: int) -> bool:
        """Whether adjacent sentences `a` and `b` share a line (paragraph)."""
        lo, hi = min(a, b), max(a, b)
        return "\n" not in self.text[self._ends[lo] : self._starts[hi]]

    def _context(self, sid: int) -> list[int]:
        """The sentence, its neighbours, and up to three more each way in its paragraph."""
        ids = [j for j in (sid - 1, sid, sid + 1) if 0 <= j < self._n]
        for step in (-1, 1):
            j = sid
            while (
                abs(j - sid) < 3 and 0 <= j + step < self._n and self._same_paragraph(j, j + step)
            ):
                j += step
                if j not in ids:
                    ids.append(j)
        return sorted(ids)

    def _sentence(self, sid: int) -> _Text:
        got = self._cache.get(sid)
        if got is None:
            if len(self._cache) >= _CACHE_SENTENCES:
                self._cache.clear()
            got = self._cache[sid] = _Text(self.text[self._starts[sid] : self._ends[sid]])
        return got

    def _retrieve(self, claim: _Text, k: int) -> list[int]:
        # Numbers are left out of the query so a changed number cannot pull in another sentence.
        query = {w for w in claim.content if not w[0].isdigit()} or set(claim.stems)
        scores: dict[int, float] = {}
        lists = [ids for w in query if (ids := self._postings.get(w)) is not None]
        rare = [ids for ids in lists if len(ids) <= _MAX_POSTINGS]
        # In a huge document a word found in tens of thousands of sentences says little and
        # costs much: leave it out when rarer words can rank the sentences.
        for ids in rare or lists:
            weight = math.log((self._n + 1) / (len(ids) + 0.5))
            for sid in ids:
                scores[sid] = scores.get(sid, 0.0) + weight
        best = heapq.nlargest(k, scores.items(), key=lambda kv: (kv[1], -kv[0]))
        top = [sid for sid, s in best if s > 0]
        return top


# ---------------------------------------------------------------- features


def _cov(items: Iterable[Any], pool: set[Any] | frozenset[Any]) -> float:
    seq = list(items)
    if not seq:
        return 1.0
    return sum(1 for w in seq if w in pool) / len(seq)


def _longest_run(stems: list[str], ngrams: set[tuple[str, ...]], maxn: int) -> int:
    best = 0
    for n in range(1, maxn + 1):
        if not any(tuple(stems[i : i + n]) in ngrams for i in range(len(stems) - n + 1)):
            break
        best = n
    return best


_LCS_MAXN = 12


@dataclass(frozen=True)
class _SentenceResult:
    feats: dict[str, float]
    top: list[int]
    contradiction: bool


def _claim_names(cs: _Text, doc: IndexedDocument) -> list[int]:
    """Positions of the claim's name tokens: capitalised, or names by the document's casing."""
    out = []
    for i, (tok, low) in enumerate(zip(cs.toks, cs.low, strict=True)):
        if low in _STOPWORDS or low[0].isdigit() or low in _SPEECH:
            continue
        if (cs.cased and tok[0].isupper() and (i > 0 or doc.is_name(low))) or (
            not cs.cased and doc.is_name(low)
        ):
            out.append(i)
    return out


def _runs(names: list[int]) -> list[list[int]]:
    """Consecutive name positions grouped into runs ("Sam Green")."""
    runs: list[list[int]] = []
    for p in names:
        if runs and runs[-1][-1] == p - 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _speakers(cs: _Text, names: list[int]) -> list[int]:
    """Name positions of whoever the claim says spoke: "X said", "said X", "according to X",
    or "X, <who X is>, said"."""
    verbs = [i for i, t in enumerate(cs.low) if t in _SPEECH]
    out: list[int] = []
    runs = _runs(names)
    if verbs and runs and runs[0][0] <= 1:
        nxt = runs[0][-1] + 1
        # "Green, who teaches at King's College London, said": the opening name speaks, not
        # the last name of the description before the verb.
        if nxt < verbs[0] and cs.low[nxt] in _APPOSITION:
            return runs[0]
    for v in verbs:
        after = v + 2 if cs.low[v] == "according" else v + 1
        for k, run in enumerate(runs):
            if run[-1] == v - 1 or run[0] == after or (k == 0 and run[0] <= 1 and run[-1] < v):
                out.extend(run)
    return sorted(set(out))


def _next_word(cs: _Text, start: int, step: int) -> int | None:
    """The nearest content word from `start` in direction `step`, at most two tokens away."""
    for q in (start + step, start + 2 * step):
        if not 0 <= q < len(cs.low):
            return None
        if cs.low[q] not in _STOPWORDS:
            return q
    return None


def _same_form(a: str, b: str) -> bool:
    return a == b or all(a.endswith(x) == b.endswith(x) for x in ("ed", "ing"))


def _role_conflicts(cs: _Text, names: list[int], ev: _Text, doc: IndexedDocument) -> int:
    """Claim names whose neighbouring word sits, in the evidence, next to another name and
    away from this one ("Bill Clinton invited" vs "George W. Bush invited")."""
    if not cs.cased:  # only capitalised claims mark names reliably enough for this
        return 0
    ev_names = [
        i for i, t in enumerate(ev.toks)
        if ev.low[i] not in _STOPWORDS and not t[0].isdigit()
        and ((i > 0 and t[0].isupper()) or doc.is_name(ev.low[i]))
    ]  # fmt: skip
    conflicts = 0
    for run in _runs(names):
        # Compared by prefix, so "Russia's" and "Russian" count as one name.
        mine = {_soft(cs.stems[p]) for p in run}
        own = [i for i, st in enumerate(ev.stems) if _soft(st) in mine]
        foreign = [i for i in ev_names if _soft(ev.stems[i]) not in mine]
        # The word right after a name is what the claim says of it: its verb or its title.
        q = _next_word(cs, run[-1], 1)
        if q is None or q in names:
            continue
        # Same word in the same form: "pointed" (a verb) is not the noun "point".
        at = [a for a in ev.positions.get(cs.stems[q], []) if _same_form(cs.low[q], ev.low[a])]
        # Bound to this name somewhere in the evidence: no conflict, even if repeated elsewhere.
        if any(abs(a - b) <= 2 for a in at for b in own):
            continue
        if any(a - b == 1 for a in at for b in foreign):
            conflicts += 1
    return conflicts


def _unit_conflicts(cs: _Text, ctx: list[_Text]) -> int:
    """Claim numbers whose counted word is counted differently in the evidence."""
    conflicts = 0
    for value, unit in cs.num_units:
        seen = {v for t in ctx for v, u in t.num_units if u == unit}
        if seen and value not in seen:
            conflicts += 1
    return conflicts


def _direction_flips(cs: _Text, ev: _Text) -> int:
    claim = set(cs.low)
    evidence = set(ev.low)
    flips = 0
    for a, b in _DIRECTIONS:
        for one, other in ((a, b), (b, a)):
            if claim & one and not claim & other and evidence & other and not evidence & one:
                flips += 1
    return flips


def _negation_flips(cs: _Text, ev: _Text) -> int:
    """Shared words that one side negates and the other states with no negation near."""
    shared = set(cs.content) & set(ev.stems)
    denied = (cs.negated - ev.near_negation) | (ev.negated - cs.near_negation)
    return len(denied & shared)


_ALIASES = {
    _stem(k): frozenset(_stem(w) for w in v.split())
    for k, v in {"us": "united america washington", "uk": "britain kingdom british",
                 "eu": "european brussels"}.items()
}  # fmt: skip


def _present(stem: str, pool: set[str]) -> bool:
    # "US" is found where the evidence says "United States" (and the like).
    return stem in pool or bool(_ALIASES.get(stem, frozenset()) & pool)


def _run_missing(run: list[str], pool: set[str]) -> int:
    """Tokens of a name missing from `pool`; a surname alone stands for "First Last"."""
    if len(run) == 2 and _present(run[-1], pool):
        return 0
    return sum(1 for w in run if not _present(w, pool))


def _soft(stem: str) -> str:
    # Derivations and spellings share a prefix ("intense"/"intensive", "stabilise"/"stabilize").
    return stem[:6] if len(stem) >= 6 else stem


def _sentence_features(cs: _Text, doc: IndexedDocument) -> _SentenceResult:
    found = doc._retrieve(cs, _WINDOW_K)
    top = found[:_RETRIEVE_K]  # the evidence: empty when no sentence shares a word
    # With nothing shared, the first sentence stands in so the features stay defined.
    window = found or [0]
    texts = [doc._sentence(i) for i in window]
    best = texts[0]
    ev1 = set(best.stems)
    # The sentences around the best one catch pronoun antecedents and split numbers.
    neighbours = [j for j in (window[0] - 1, window[0] + 1) if 0 <= j < len(doc)]
    context = [doc._sentence(j) for j in doc._context(window[0])]
    ctx_stems = set().union(*(set(t.stems) for t in context))
    ctx_low = set().union(*(set(t.low) for t in context))
    ev_nums = set(best.numbers).union(*(doc._sentence(j).numbers for j in neighbours))
    ctx_years = set().union(*(t.years for t in context))
    content = cs.content or cs.stems
    win_tri = set().union(*(t.trigrams for t in texts))
    win_ngrams: set[tuple[str, ...]] = set()
    for t in texts:
        st = t.stems
        for n in range(1, min(_LCS_MAXN, len(cs.stems)) + 1):
            win_ngrams.update(tuple(st[i : i + n]) for i in range(len(st) - n + 1))
    names = _claim_names(cs, doc)
    runs = [[cs.stems[i] for i in run] for run in _runs(names)]
    speakers = [[cs.stems[i] for i in run] for run in _runs(_speakers(cs, names))]
    # Who the claim is about or quotes (its speaker, or a name that opens it) must stand in the
    # evidence's context; other names (background, appositions) need only be in the document.
    lead = [runs[0]] if names and names[0] <= 1 else []
    core = speakers + [run for run in lead if run not in speakers]
    ev1_soft = {_soft(w) for w in ev1}
    num_miss_ev = sum(1 for n in cs.numbers if n not in ev_nums)
    year_conflict = bool(ctx_years) and any(y not in ctx_years for y in cs.years)
    unit_conflicts = _unit_conflicts(cs, context)
    neg_flips = _negation_flips(cs, best)
    flips = _direction_flips(cs, best)
    role_conflicts = _role_conflicts(cs, names, best, doc)
    cov_top1 = _cov(content, ev1)
    # Only where the evidence is really about the claim does a mismatch mean a conflict.
    ev_counts = set(best.counts).union(*(doc._sentence(j).counts for j in neighbours))
    conflict = cov_top1 >= 0.5 and (
        # A count the evidence does not have, where it gives other counts.
        (bool(cs.counts - ev_counts) and bool(best.counts - cs.counts))
        or year_conflict
        or unit_conflicts > 0
        or neg_flips > 0
        or flips > 0
        or role_conflicts > 0
    )
    feats = {
        "cov_top1": cov_top1,
        "soft_top1": _cov((_soft(w) for w in content), ev1_soft),
        "cov_ctx": _cov(content, ctx_stems),
        "tri_win": _cov(cs.trigrams, win_tri),
        "lcs_frac": _longest_run(cs.stems, win_ngrams, _LCS_MAXN) / max(len(cs.stems), 1),
        "novel_cnt": float(sum(1 for w in content if not doc.has_stem(w))),
        "len_ratio": len(cs.toks) / (len(best.toks) or 1),
        "num_miss_ev": float(num_miss_ev),
        "year_conflict": float(year_conflict),
        "unit_conflict": float(unit_conflicts),
        "neg_mismatch": float((cs.neg > 0) != (best.neg > 0)),
        "neg_flip": float(neg_flips),
        "direction_flip": float(flips),
        "absolute_added": float(any(t in _ABSOLUTES and t not in ctx_low for t in cs.low)),
        "name_miss_ctx": float(sum(_run_missing(run, ctx_stems) for run in runs)),
        "subject_miss_ctx": float(sum(_run_missing(run, ctx_stems) for run in core)),
        "name_miss_doc": float(
            sum(1 for run in runs if run not in core and not any(map(doc.has_stem, run)))
        ),
        "speaker_miss": float(sum(1 for run in speakers if not _present(run[-1], ctx_stems))),
        "role_conflict": float(role_conflicts),
        "conflict": float(conflict),
    }
    return _SentenceResult(feats, top, conflict)


# The model's inputs, in its order. `LexicalScore.features` reports these and the rest of
# what is computed (conflict detectors, alternative coverages) for diagnosis.
FEATURES: tuple[str, ...] = (
    "min_cov_top1", "min_soft_top1", "mean_tri_win", "lcs_frac", "cov_doc", "log_novel_cnt",
    "max_len_ratio", "any_num_miss_ev", "subject_miss_ctx", "name_miss_doc", "absolute_added",
    "conflict",
)  # fmt: skip


@dataclass(frozen=True)
class LexicalScore:
    """How well a document supports a claim, and where."""

    #: P(claim supported by the document), in [0, 1]; compare with `THRESHOLD`.
    score: float
    #: Best-supporting sentences, best first, at most 3: `doc.text[start:end]` is the exact
    #: sentence. Empty when no sentence shares a word with the claim.
    evidence: tuple[tuple[int, int], ...]
    #: The aligned evidence states a conflicting number or date, negates or reverses what the
    #: claim says, or binds the claim's words to another name.
    contradiction: bool
    #: The model's inputs (`FEATURES`) and diagnostics, by name.
    features: dict[str, float]


def has_words(text: str) -> bool:
    """Whether `text` has a word or number to check; `score_claim` needs a claim that does."""
    return _TOKEN.search(normalize(text)) is not None


def _claim_analysis(
    doc: IndexedDocument, claim: str
) -> tuple[dict[str, float], tuple[tuple[int, int], ...], bool]:
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("claim text is empty or whitespace only")
    csents = [_Text(claim[a:b]) for a, b in split_sentences(claim)]
    csents = [c for c in csents if c.toks] or [_Text(claim)]
    if not csents[0].toks:
        raise ValueError("claim has no words to check")
    results = [_sentence_features(c, doc) for c in csents]
    sf = [r.feats for r in results]
    full = _Text(claim)
    content = full.content or full.stems

    def agg_min(key: str) -> float:
        return min(f[key] for f in sf)

    def agg_mean(key: str) -> float:
        return sum(f[key] for f in sf) / len(sf)

    def agg_max(key: str) -> float:
        return float(max(f[key] > 0 for f in sf))

    def agg_sum(key: str) -> float:
        return sum(f[key] for f in sf)

    feats = {
        "min_cov_top1": agg_min("cov_top1"),
        "min_soft_top1": agg_min("soft_top1"),
        "mean_tri_win": agg_mean("tri_win"),
        "lcs_frac": agg_mean("lcs_frac"),
        "cov_doc": _cov(content, {w for w in content if doc.has_stem(w)}),
        "log_novel_cnt": math.log1p(agg_sum("novel_cnt")),
        "max_len_ratio": min(max(f["len_ratio"] for f in sf), 3.0),
        "any_num_miss_ev": agg_max("num_miss_ev"),
        "subject_miss_ctx": math.log1p(agg_sum("subject_miss_ctx")),
        "name_miss_doc": math.log1p(agg_sum("name_miss_doc")),
        "absolute_added": agg_max("absolute_added"),
        "conflict": agg_max("conflict"),
        # Diagnostics: not model inputs (they did not help it), but they say why.
        "min_cov_ctx": agg_min("cov_ctx"),
        "name_miss_ctx": math.log1p(agg_sum("name_miss_ctx")),
        "year_conflict": agg_max("year_conflict"),
        "unit_conflict": agg_max("unit_conflict"),
        "neg_mismatch": agg_max("neg_mismatch"),
        "neg_flip": agg_max("neg_flip"),
        "direction_flip": agg_max("direction_flip"),
        "speaker_miss": agg_max("speaker_miss"),
        "role_conflict": agg_max("role_conflict"),
    }
    # Evidence: each claim sentence's best sentence first, then the runners-up.
    order: list[int] = []
    for rank in range(_RETRIEVE_K):
        for r in results:
            if rank < len(r.top) and r.top[rank] not in order:
                order.append(r.top[rank])
    evidence = tuple(doc.span(i) for i in order[:3])
    return feats, evidence, any(r.contradiction for r in results)


def claim_features(doc: IndexedDocument, claim: str) -> dict[str, float]:
    """The model's input features for one claim against one document."""
    return _claim_analysis(doc, claim)[0]


# ---------------------------------------------------------------- the stored model


def _load_model() -> dict[str, Any]:
    raw = resources.files("briefing.faithfulness").joinpath("lexical_model.json").read_text(encoding="utf-8")
    model: dict[str, Any] = json.loads(raw)
    return model


_MODEL = _load_model()
THRESHOLD: float = float(_MODEL["threshold"])


def _probability(feats: dict[str, float]) -> float:
    names = _MODEL["features"]
    if tuple(names) != FEATURES:
        raise RuntimeError(
            "lexical_model.json was trained on other features; rerun evals/train_checker.py"
        )
    z = float(_MODEL["bias"])
    for name, mu, sd, w in zip(names, _MODEL["mean"], _MODEL["scale"], _MODEL["coef"], strict=True):
        z += (feats[name] - mu) / sd * w
    # Guard exp() against overflow for extreme feature values.
    z = max(-60.0, min(60.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def score_claim(doc: IndexedDocument, claim: str) -> LexicalScore:
    """Score how well `doc` supports `claim`: probability, evidence spans and a conflict flag."""
    feats, evidence, contradiction = _claim_analysis(doc, claim)
    return LexicalScore(
        score=_probability(feats), evidence=evidence, contradiction=contradiction, features=feats
    )
