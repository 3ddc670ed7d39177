"""Offline lexical faithfulness check: P(claim supported by document), with evidence spans.

A document is split into sentences once (offsets into the original text), and an inverted
index maps word stems to the sentences that hold them. A claim retrieves its best-supporting
sentences by IDF-weighted overlap; lexical features compare the claim with that bounded
window of sentences only, and a logistic regression stored in `lexical_model.json` turns the
features into a probability. Pure Python at run time; `evals/train_checker.py` refits it.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import re
import unicodedata
from array import array
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
    "score_claim",
    "split_sentences",
]

METHOD_NAME = "offline-lexical-v1"

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
might must 's one new also last first year years
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


def normalize(text: str) -> str:
    """Unify Unicode forms, quotes and dashes, and undo PTB tokenisation artefacts."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\\'", "'").translate(_QUOTES).replace("\u2014", " - ")
    text = _PTB_BRACKET.sub(" ", text)
    text = _PTB_CLITIC.sub(r"'\1", text)
    return _PTB_NEG.sub("n't", text)


@functools.lru_cache(maxsize=200_000)
def _stem(tok: str) -> str:
    # A tiny suffix stripper (lower-case input): enough to merge plural and tense variants.
    if tok.endswith("'s"):
        tok = tok[:-2]
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


class _Text:
    """Token-level view of one sentence (or claim) used by the features."""

    __slots__ = ("bigrams", "content", "ents", "low", "neg", "numbers", "stems", "toks", "trigrams")

    def __init__(self, raw: str) -> None:
        self.toks: list[str] = _TOKEN.findall(normalize(raw))
        self.low = [t.lower() for t in self.toks]
        self.stems = [_stem(t) for t in self.low]
        self.content = [
            s for s, lw in zip(self.stems, self.low, strict=True)
            if lw not in _STOPWORDS and s not in _STOPWORDS
        ]  # fmt: skip
        self.numbers = {v for v in map(_num_value, self.low) if v is not None}
        self.neg = sum(1 for t in self.low if t in _NEGATIONS or t.endswith("n't"))
        self.bigrams = set(zip(self.stems, self.stems[1:], strict=False))
        self.trigrams = set(zip(self.stems, self.stems[1:], self.stems[2:], strict=False))
        # Capitalised tokens after the first are names (or words a lower-cased claim cannot mark).
        self.ents = [t.lower() for i, t in enumerate(self.toks) if i > 0 and t[0].isupper()]


# ---------------------------------------------------------------- the indexed document

_RETRIEVE_K = 3
_WINDOW_K = 10
_CACHE_SENTENCES = 4096


class IndexedDocument:
    """A document prepared once and scored against many claims."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("document text is empty or whitespace only")
        self.text = text
        self._starts = array("q")
        self._ends = array("q")
        postings: dict[str, array[int]] = {}
        lower_vocab: set[str] = set()
        numbers: set[str] = set()
        for sid, (start, end) in enumerate(_iter_sentence_spans(text)):
            self._starts.append(start)
            self._ends.append(end)
            low = [t.lower() for t in _TOKEN.findall(normalize(text[start:end]))]
            lower_vocab.update(low)
            for lw in set(low):
                st = _stem(lw)
                if lw[0].isdigit() or lw in _NUM_WORDS:
                    v = _num_value(lw)
                    if v is not None:
                        numbers.add(v)
                ids = postings.get(st)
                if ids is None:
                    postings[st] = array("I", (sid,))
                elif ids[-1] != sid:
                    ids.append(sid)
        self._postings = postings
        self._lower_vocab = lower_vocab
        self._numbers = numbers
        self._n = len(self._starts)
        self._max_idf = math.log((self._n + 1) / 0.5)
        self._cache: dict[int, _Text] = {}

    def __len__(self) -> int:
        """Number of sentences."""
        return self._n

    def span(self, sid: int) -> tuple[int, int]:
        """Offsets of sentence `sid` in `text`."""
        return self._starts[sid], self._ends[sid]

    def idf(self, stem: str) -> float:
        """Sentence-level inverse document frequency of a stem (unknown stems get the most)."""
        ids = self._postings.get(stem)
        if ids is None:
            return self._max_idf
        return math.log((self._n + 1) / (len(ids) + 0.5))

    def has_stem(self, stem: str) -> bool:
        """Whether any sentence holds the stem."""
        return stem in self._postings

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
        for w in query:
            ids = self._postings.get(w)
            if ids is None:
                continue
            weight = math.log((self._n + 1) / (len(ids) + 0.5))
            for sid in ids:
                scores[sid] = scores.get(sid, 0.0) + weight
        best = heapq.nlargest(k, scores.items(), key=lambda kv: (kv[1], -kv[0]))
        top = [sid for sid, s in best if s > 0]
        return top or [0]


# ---------------------------------------------------------------- features


def _cov(items: Iterable[Any], pool: set[Any] | frozenset[Any]) -> float:
    seq = list(items)
    if not seq:
        return 1.0
    return sum(1 for w in seq if w in pool) / len(seq)


def _wcov(items: list[str], present: Iterable[bool], doc: IndexedDocument) -> float:
    if not items:
        return 1.0
    weights = [doc.idf(x) for x in items]
    total = sum(weights) or 1.0
    return sum(w for w, p in zip(weights, present, strict=True) if p) / total


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


def _sentence_features(cs: _Text, doc: IndexedDocument) -> _SentenceResult:
    window = doc._retrieve(cs, _WINDOW_K)
    top = window[:_RETRIEVE_K]
    texts = [doc._sentence(i) for i in window]
    ev1 = set(texts[0].stems)
    near = set(ev1).union(*(set(t.stems) for t in texts[:_RETRIEVE_K]))
    neighbours = [j for j in (top[0] - 1, top[0] + 1) if 0 <= j < len(doc)]
    # The sentences around the best one catch pronoun antecedents and split numbers.
    for j in neighbours:
        near |= set(doc._sentence(j).stems)
    ev_bi = set().union(*(t.bigrams for t in texts[:_RETRIEVE_K]))
    win_bi = set().union(*(t.bigrams for t in texts))
    win_tri = set().union(*(t.trigrams for t in texts))
    ev_nums = set(texts[0].numbers).union(*(doc._sentence(j).numbers for j in neighbours))
    content = cs.content or cs.stems
    win_ngrams: set[tuple[str, ...]] = set()
    for t in texts:
        st = t.stems
        for n in range(1, min(_LCS_MAXN, len(cs.stems)) + 1):
            win_ngrams.update(tuple(st[i : i + n]) for i in range(len(st) - n + 1))
    num_miss_ev = sum(1 for n in cs.numbers if n not in ev_nums)
    neg_mismatch = (cs.neg > 0) != (texts[0].neg > 0)
    cov_top1 = _cov(content, ev1)
    conflict = (num_miss_ev > 0 and bool(texts[0].numbers)) or neg_mismatch
    feats = {
        "cov_top1": cov_top1,
        "cov_top3": _cov(content, near),
        "wcov_top1": _wcov(content, (w in ev1 for w in content), doc),
        "wcov_top3": _wcov(content, (w in near for w in content), doc),
        "bi_top3": _cov(cs.bigrams, ev_bi),
        "bi_win": _cov(cs.bigrams, win_bi),
        "tri_win": _cov(cs.trigrams, win_tri),
        "lcs_frac": _longest_run(cs.stems, win_ngrams, _LCS_MAXN) / max(len(cs.stems), 1),
        "num_miss_ev": float(num_miss_ev),
        "num_miss_doc": float(sum(1 for n in cs.numbers if n not in doc._numbers)),
        "neg_mismatch": float(neg_mismatch),
        "ent_miss_doc": float(
            sum(1 for e in cs.ents if e not in doc._lower_vocab and not doc.has_stem(_stem(e)))
        ),
        "novel_cnt": float(sum(1 for w in content if not doc.has_stem(w))),
        "len_ratio": len(cs.toks) / (len(texts[0].toks) or 1),
    }
    return _SentenceResult(feats, top, conflict and cov_top1 >= 0.5)


FEATURES: tuple[str, ...] = (
    "min_cov_top1", "mean_cov_top1", "min_cov_top3", "mean_cov_top3", "min_wcov_top3",
    "mean_wcov_top1", "min_bi_top3", "mean_bi_top3", "mean_bi_win", "mean_tri_win",
    "cov_doc", "wcov_doc", "any_num_miss_ev", "num_miss_doc", "neg_mismatch",
    "ent_miss_doc", "log_novel_cnt", "log_len", "n_sents", "lcs_frac", "max_len_ratio",
    "has_num",
)  # fmt: skip


@dataclass(frozen=True)
class LexicalScore:
    """How well a document supports a claim, and where."""

    score: float
    evidence: tuple[tuple[int, int], ...]
    contradiction: bool
    features: dict[str, float]


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

    feats = {
        "min_cov_top1": agg_min("cov_top1"),
        "mean_cov_top1": agg_mean("cov_top1"),
        "min_cov_top3": agg_min("cov_top3"),
        "mean_cov_top3": agg_mean("cov_top3"),
        "min_wcov_top3": agg_min("wcov_top3"),
        "mean_wcov_top1": agg_mean("wcov_top1"),
        "min_bi_top3": agg_min("bi_top3"),
        "mean_bi_top3": agg_mean("bi_top3"),
        "mean_bi_win": agg_mean("bi_win"),
        "mean_tri_win": agg_mean("tri_win"),
        "cov_doc": _cov(content, {w for w in content if doc.has_stem(w)}),
        "wcov_doc": _wcov(content, (doc.has_stem(w) for w in content), doc),
        "any_num_miss_ev": float(any(f["num_miss_ev"] > 0 for f in sf)),
        "num_miss_doc": math.log1p(sum(f["num_miss_doc"] for f in sf)),
        "neg_mismatch": max(f["neg_mismatch"] for f in sf),
        "ent_miss_doc": math.log1p(sum(f["ent_miss_doc"] for f in sf)),
        "log_novel_cnt": math.log1p(sum(f["novel_cnt"] for f in sf)),
        "log_len": math.log1p(len(full.toks)),
        "n_sents": math.log(len(csents)),
        "lcs_frac": agg_mean("lcs_frac"),
        "max_len_ratio": min(max(f["len_ratio"] for f in sf), 3.0),
        "has_num": float(bool(full.numbers)),
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
    raw = resources.files("briefing").joinpath("lexical_model.json").read_text(encoding="utf-8")
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
