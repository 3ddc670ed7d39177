"""The sentence index of a comparison: every sentence of every source, retrieved by BM25.

A statement's candidate evidence comes from here, never from all pairs of sentences: a
query reads the postings of its rarest stems first and stops at a fixed budget, so its cost
stays bounded however many sources are indexed.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from briefing.faithfulness.contradiction import text_view
from briefing.faithfulness.lexical.features import soft
from briefing.faithfulness.lexical.text import STOPWORDS, TOKEN, TextView, normalize, stem
from briefing.schema import Citation, Source
from briefing.text.segment import sentence_spans

__all__ = ["IndexedSentence", "SentenceIndex", "index_terms", "sentence_key"]

#: A term found in more sentences than this is left out of retrieval when rarer terms rank
#: the candidates: it costs much and says little (this keeps the cost near-linear).
MAX_POSTINGS = 5_000
#: Postings one query reads at most (beyond its three rarest terms).
READ_BUDGET = 2_000
_K1, _B = 1.2, 0.75


def index_terms(text: str) -> list[str]:
    """The content stems a sentence is retrieved by (numbers left out, so a changed number
    still finds the sentence it changes)."""
    out = []
    for tok in TOKEN.findall(normalize(text)):
        low = tok.lower()
        if low in STOPWORDS or low[0].isdigit():
            continue
        st = stem(low)
        if st not in STOPWORDS:
            out.append(st)
    return out


def sentence_key(text: str) -> str:
    """The same key for word-for-word equal sentences, whatever their spacing, quote marks
    and case."""
    return " ".join(TOKEN.findall(normalize(text).lower()))


@dataclass(frozen=True)
class IndexedSentence:
    source: int
    start: int
    end: int


class SentenceIndex:
    """Every sentence of every source, with an inverted index of their stems."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.sentences: list[IndexedSentence] = []
        self.by_source: list[list[int]] = []
        self.exact: dict[str, list[int]] = {}
        postings: dict[str, array[int]] = {}
        lengths = array("I")
        for number, source in enumerate(self.sources):
            ids = []
            for start, end in sentence_spans(source.text):
                sid = len(self.sentences)
                self.sentences.append(IndexedSentence(number, start, end))
                ids.append(sid)
                text = source.text[start:end]
                terms = set(index_terms(text))
                lengths.append(len(terms))
                for term in terms:
                    got = postings.get(term)
                    if got is None:
                        postings[term] = array("I", (sid,))
                    else:
                        got.append(sid)
                key = sentence_key(text)
                if key.count(" ") >= 3:  # a headline word or two is no sentence to match
                    self.exact.setdefault(key, []).append(sid)
            self.by_source.append(ids)
        self._postings = postings
        self._lengths = lengths
        self._average = (sum(lengths) / len(lengths)) if lengths else 1.0

    def __len__(self) -> int:
        """Number of sentences."""
        return len(self.sentences)

    def text(self, sid: int) -> str:
        """The sentence's exact text."""
        s = self.sentences[sid]
        return self.sources[s.source].text[s.start : s.end]

    def view(self, sid: int) -> TextView:
        """The checker's token view of a sentence (from a bounded cache shared with the
        conflict detectors)."""
        return text_view(self.text(sid))

    def citation(self, sid: int) -> Citation:
        """The exact Citation of one sentence."""
        s = self.sentences[sid]
        text = self.sources[s.source].text
        return Citation(
            source_id=self.sources[s.source].id,
            start=s.start,
            end=s.end,
            quote=text[s.start : s.end],
        )

    def search(self, terms: Iterable[str], exclude: set[int], k: int) -> list[int]:
        """The `k` best sentences of the sources not in `exclude`, by BM25 over `terms`.

        The rarest terms are read first, and once READ_BUDGET postings are read (after the
        three rarest, whatever their length) the commoner ones are left: they would add
        little to the ranking and most of the cost, and this keeps a query's cost bounded
        however many sources there are."""
        lists = sorted(
            (ids for t in set(terms) if (ids := self._postings.get(t)) is not None), key=len
        )
        rare = [ids for ids in lists if len(ids) <= MAX_POSTINGS] or lists
        n = len(self.sentences)
        scores: dict[int, float] = {}
        read = 0
        for number, ids in enumerate(rare):
            if number >= 3 and read + len(ids) > READ_BUDGET:
                break
            read += len(ids)
            idf = math.log(1.0 + (n - len(ids) + 0.5) / (len(ids) + 0.5))
            for sid in ids:
                if self.sentences[sid].source in exclude:
                    continue
                norm = _K1 * (1 - _B + _B * self._lengths[sid] / self._average)
                scores[sid] = scores.get(sid, 0.0) + idf * (_K1 + 1) / (1 + norm)
        best = heapq.nsmallest(k, scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [sid for sid, score in best if score > 0]

    def idf(self, term: str) -> float:
        """How rare a term is among the sentences (BM25's inverse document frequency)."""
        df = len(self._postings.get(term, ()))
        n = len(self.sentences)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def coverage(self, text: str, sids: Sequence[int]) -> tuple[float, int]:
        """How much of `text`'s content the sentences `sids` hold: the share by IDF weight
        of its terms found in them (by prefix), and how many terms that is."""
        terms = set(index_terms(text))
        pool = {soft(t) for sid in sids for t in index_terms(self.text(sid))}
        found = [t for t in terms if soft(t) in pool]
        total = sum(self.idf(t) for t in terms)
        return (sum(self.idf(t) for t in found) / total if total else 0.0), len(found)

    def passage(self, sid: int) -> tuple[int, int]:
        """The sentence with its neighbours in the same paragraph: (start, end) in its source."""
        s = self.sentences[sid]
        text = self.sources[s.source].text
        ids = self.by_source[s.source]
        at = sid - ids[0]
        start, end = s.start, s.end
        if at > 0 and "\n" not in text[self.sentences[sid - 1].end : s.start]:
            start = self.sentences[sid - 1].start
        if at + 1 < len(ids) and "\n" not in text[s.end : self.sentences[sid + 1].start]:
            end = self.sentences[sid + 1].end
        return start, end

    def sentence_at(self, source: int, offset: int) -> int:
        """The sentence of `source` that holds (or last starts before) `offset`."""
        ids = self.by_source[source]
        lo, hi = 0, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.sentences[ids[mid]].start <= offset:
                lo = mid + 1
            else:
                hi = mid
        return ids[max(lo - 1, 0)]
