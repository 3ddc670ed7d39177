"""A document prepared once for many claims: its sentences and an index of their stems."""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter

from briefing.faithfulness.lexical.text import TOKEN, TextView, iter_sentence_spans, normalize, stem

__all__ = ["RETRIEVE_K", "WINDOW_K", "IndexedDocument"]

# ---------------------------------------------------------------- the indexed document

RETRIEVE_K = 3
WINDOW_K = 10
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
        for sid, (start, end) in enumerate(iter_sentence_spans(text)):
            self._starts.append(start)
            self._ends.append(end)
            toks = TOKEN.findall(normalize(text[start:end]))
            # Casing tells names apart when a claim is lower-cased: a word the document
            # writes capitalised mid-sentence more often than not is a name.
            capitalised.update(t.lower() for t in toks[1:] if t[0].isupper())
            lower_case.update(t for t in toks if t[0].islower())
            for lw in {t.lower() for t in toks}:
                st = stem(lw)
                ids = postings.get(st)
                if ids is None:
                    postings[st] = array("I", (sid,))
                elif ids[-1] != sid:
                    ids.append(sid)
        self._postings = postings
        self._proper = frozenset(w for w, c in capitalised.items() if c > lower_case.get(w, 0))
        self._n = len(self._starts)
        self._cache: dict[int, TextView] = {}

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

    def context(self, sid: int) -> list[int]:
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

    def sentence(self, sid: int) -> TextView:
        got = self._cache.get(sid)
        if got is None:
            if len(self._cache) >= _CACHE_SENTENCES:
                self._cache.clear()
            got = self._cache[sid] = TextView(self.text[self._starts[sid] : self._ends[sid]])
        return got

    def retrieve(self, claim: TextView, k: int) -> list[int]:
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
