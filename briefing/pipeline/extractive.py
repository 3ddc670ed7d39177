"""The embedded default engine: no model, deterministic, every claim a verbatim sentence.

Sentences are ranked by centrality (LexRank: PageRank over TF-IDF cosine similarity) and
picked with maximal marginal relevance so the briefing does not repeat itself. Because each
claim is the exact text of the span it cites, it is supported by construction (the
faithfulness check still scores it, like every claim).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from briefing.config import EXTRACTIVE, Settings
from briefing.pipeline.citations import citation_for
from briefing.schema import Briefing, Claim, Disagreement, Source
from briefing.text.segment import Sentence, segment

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MIN_WORDS, _MAX_WORDS = 6, 90
_LINK_THRESHOLD = 0.08
_MMR_LAMBDA = 0.7
_DAMPING = 0.85
_PAIR_SIMILARITY = 0.3
#: News puts what matters first: a sentence's centrality gets up to this much extra weight
#: for being early in its source, decaying over the first dozen or so sentences.
_LEAD_BONUS = 0.6
_LEAD_DECAY = 8.0
_QUOTE_OPENERS = "\"“‘'«"

NOTICE = (
    "Extractive briefing: every point is a sentence quoted verbatim from the sources, "
    "ranked by centrality; no language model wrote this text."
)


@dataclass
class _Candidate:
    sentence: Sentence
    source: Source
    vector: dict[str, float]
    words: set[str]


def build_extractive(sources: list[Source], settings: Settings) -> Briefing:
    """A Briefing made only of ranked source sentences, each citing itself exactly."""
    candidates = _candidates(sources)
    warnings = [NOTICE]
    if not candidates:
        warnings.append("no sentence long enough to quote was found in the sources")
    scores = [
        score * _prior(c)
        for score, c in zip(_lexrank([c.vector for c in candidates]), candidates, strict=True)
    ]
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))

    summary_idx = _pick_summary(order, candidates, settings.summary_sentences, len(sources))
    key_idx = _mmr(order, candidates, settings.key_points, exclude=set(summary_idx))
    counter = iter(range(1, 10**9))

    def claim(i: int) -> Claim:
        c = candidates[i]
        return Claim(
            id=f"c{next(counter)}",
            text=c.sentence.text,
            citations=[citation_for(c.sentence, c.source)],
        )

    position = {s.id: n for n, s in enumerate(sources)}

    def reading_order(i: int) -> tuple[int, int]:
        return position[candidates[i].source.id], candidates[i].sentence.start

    summary = [claim(i) for i in summary_idx]
    key_points = [claim(i) for i in sorted(key_idx, key=reading_order)]
    disagreements = [
        Disagreement(topic=topic, claims=[claim(a), claim(b)])
        for topic, a, b in _numeric_conflicts(candidates, scores)
    ]
    return Briefing(
        id=_briefing_id(),
        title=_title(sources),
        engine="extractive",
        model=EXTRACTIVE,
        prompt=None,
        sources=sources,
        summary=summary,
        key_points=key_points,
        disagreements=disagreements,
        warnings=warnings,
    )


def _briefing_id() -> str:
    import uuid

    return f"brf_{uuid.uuid4().hex}"


def _title(sources: list[Source]) -> str:
    if len(sources) == 1:
        return sources[0].title
    return f"{sources[0].title} (and {len(sources) - 1} more source{'s' * (len(sources) > 2)})"


def _prior(c: _Candidate) -> float:
    lead = 1.0 + _LEAD_BONUS * math.exp(-(c.sentence.index - 1) / _LEAD_DECAY)
    # A sentence that opens with a quotation is usually one voice's view, not the news.
    voice = 0.8 if c.sentence.text[:1] in _QUOTE_OPENERS else 1.0
    return lead * voice


def _candidates(sources: list[Source]) -> list[_Candidate]:
    raw: list[tuple[Sentence, Source, list[str]]] = []
    for source in sources:
        for sentence in segment(source):
            words = [w.lower() for w in _WORD.findall(sentence.text)]
            # A sentence ending in a colon introduces a quotation and says nothing alone.
            if sentence.text.rstrip().endswith(":"):
                continue
            if _MIN_WORDS <= len(words) <= _MAX_WORDS:
                raw.append((sentence, source, words))
    df: Counter[str] = Counter()
    for _, _, words in raw:
        df.update(set(words))
    n = len(raw)
    out: list[_Candidate] = []
    for sentence, source, words in raw:
        tf = Counter(words)
        vec = {w: (1 + math.log(k)) * math.log((1 + n) / (1 + df[w])) for w, k in tf.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        out.append(_Candidate(sentence, source, {w: v / norm for w, v in vec.items()}, set(words)))
    return out


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(w, 0.0) for w, v in a.items())


def _lexrank(vectors: list[dict[str, float]], iterations: int = 60) -> list[float]:
    n = len(vectors)
    if n == 0:
        return []
    links: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            sim = _cosine(vectors[i], vectors[j])
            if sim >= _LINK_THRESHOLD:
                links[i].append((j, sim))
                links[j].append((i, sim))
    out_weight = [sum(w for _, w in row) for row in links]
    rank = [1.0 / n] * n
    for _ in range(iterations):
        nxt = [(1 - _DAMPING) / n] * n
        dangling = sum(rank[i] for i in range(n) if not out_weight[i])
        for i in range(n):
            if out_weight[i]:
                share = _DAMPING * rank[i] / out_weight[i]
                for j, w in links[i]:
                    nxt[j] += share * w
        spread = _DAMPING * dangling / n
        rank = [r + spread for r in nxt]
    return rank


def _mmr(order: list[int], cands: list[_Candidate], k: int, exclude: set[int]) -> list[int]:
    chosen: list[int] = []
    pool = [i for i in order if i not in exclude]
    rank_score = {i: 1.0 - pos / max(1, len(order)) for pos, i in enumerate(order)}
    taken = list(exclude)
    while pool and len(chosen) < k:

        def gain(i: int) -> float:
            redundancy = max(
                (_cosine(cands[i].vector, cands[j].vector) for j in taken), default=0.0
            )
            return _MMR_LAMBDA * rank_score[i] - (1 - _MMR_LAMBDA) * redundancy

        best = max(pool, key=lambda i: (gain(i), -i))
        pool.remove(best)
        chosen.append(best)
        taken.append(best)
    return chosen


def _pick_summary(order: list[int], cands: list[_Candidate], k: int, n_sources: int) -> list[int]:
    # The most central sentence of each source first (so every source is represented when
    # there is room), then the best of the rest.
    firsts: list[int] = []
    seen_sources: set[str] = set()
    for i in order:
        sid = cands[i].source.id
        if sid not in seen_sources and len(firsts) < min(k, n_sources):
            seen_sources.add(sid)
            firsts.append(i)
    rest = _mmr(order, cands, k - len(firsts), exclude=set(firsts))
    return firsts + rest


def _numeric_conflicts(cands: list[_Candidate], scores: list[float]) -> list[tuple[str, int, int]]:
    """Pairs of similar sentences from different sources whose numbers differ."""
    found: list[tuple[float, str, int, int]] = []
    for i, a in enumerate(cands):
        nums_a = set(_NUMBER.findall(a.sentence.text))
        for j in range(i + 1, len(cands)):
            b = cands[j]
            if a.source.id == b.source.id:
                continue
            nums_b = set(_NUMBER.findall(b.sentence.text))
            # Each side must state a figure the other lacks; one merely adding a detail
            # (a year, say) is not a disagreement.
            if not (nums_a - nums_b) or not (nums_b - nums_a):
                continue
            sim = _cosine(a.vector, b.vector)
            if sim >= _PAIR_SIMILARITY:
                shared = sorted(a.words & b.words, key=lambda w: (-a.vector.get(w, 0.0), w))[:4]
                topic = "Sources give different figures: " + ", ".join(shared)
                found.append((sim, topic, i, j))
    found.sort(key=lambda t: -t[0])
    used: set[int] = set()
    out: list[tuple[str, int, int]] = []
    for _, topic, i, j in found:
        if i in used or j in used:
            continue
        used.update((i, j))
        out.append((topic, i, j))
    return out[:5]
