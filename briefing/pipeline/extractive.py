"""The embedded default engine: no model, deterministic, every claim a verbatim sentence.

Only sentences that state something are candidates: headlines, section headings and
link-bait lines (a line with no closing punctuation), bylines and datelines, questions,
lines that introduce a quotation, and sentences about the article itself ("In this article
we explore ...") are left out. The rest are ranked by centrality (LexRank: PageRank over
TF-IDF cosine similarity), weighted by how specific they are (names and figures), by an
early position in a news source, and by what the other sources say of them: a sentence
another source backs counts for more, one that only its own source says for less. The
summary takes the best few, every source's best first; the key points follow by maximal
marginal relevance, so that no two state the same fact, in one source's words or
another's. Because each claim is the exact text of the span it cites, it is supported by
construction (the faithfulness check still scores it, like every claim).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from briefing.config import EXTRACTIVE, Settings
from briefing.pipeline.citations import citation_for
from briefing.pipeline.corroboration import disagreement_of
from briefing.schema import (
    Briefing,
    Claim,
    Corroboration,
    Disagreement,
    SentenceComparison,
    Source,
)
from briefing.text.segment import Sentence, segment
from briefing.text.statements import WORD, is_statement

__all__ = ["NOTICE", "build_extractive", "specifics", "statement_weights"]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_LINK_THRESHOLD = 0.08
_MMR_LAMBDA = 0.6
_DAMPING = 0.85
#: News puts what matters first: a sentence's centrality gets up to this much extra weight
#: for being early in its source, decaying over the first dozen or so sentences; the
#: summary, which must say what the story is, leans on it more than the key points.
_LEAD_BONUS = {"summary": 3.0, "key_points": 0.3}
_LEAD_DECAY = {"summary": 4.0, "key_points": 8.0}
#: The summary says what the story is: what is central, early and backed. The key points
#: are its facts, where a sentence's words count too: specific facts use rare words. Each
#: is an exponent of the sentence's ratio to the mean (0: not counted).
_CENTRALITY_EXPONENT = {"summary": 0.5, "key_points": 0.5}
_RARITY_EXPONENT = {"summary": 0.0, "key_points": 2.0}
_QUOTE_OPENERS = "\"“‘'«"
#: A sentence that opens with a quotation is one voice's view, not the news.
_VOICE = 0.65
#: What the other sources say of a sentence, as a weight on its rank: backed (another
#: source says it, or says part of it in a sentence this one backs), said by no other
#: source, or contradicted.
_CORROBORATION_WEIGHT = {"backed": 1.25, "alone": 1.0, "contradicted": 0.7}
#: The weight of a sentence only its own source states: (1 - the share of that source's
#: statements another source backs) ** _ALONE_POWER, at least _MIN_ALONE. A rewrite that
#: mostly restates another source earns less trust for what it alone adds.
_MIN_ALONE = 0.25
_ALONE_POWER = 2.0
#: A sentence's names and figures (distinct, capped) each add this much to its weight:
#: the key points are the facts, and facts name who, where and how many.
_SPECIFIC_BONUS = {"summary": 0.05, "key_points": 0.2}
_SPECIFIC_CAP = 8
#: Words beyond which a sentence's weight shrinks (with the square root of the excess):
#: centrality favours long sentences, which share words with everything.
_LONG = 40
#: Two sentences this similar (TF-IDF cosine) state the same fact; two of one paragraph
#: are at least this similar (a news paragraph carries one fact, its other sentences
#: mostly add detail).
_SAME_FACT = 0.5
_SAME_PARAGRAPH = 0.45
_MAX_DISAGREEMENTS = 5

# Who a speaker is: ", a distinguished fellow at ... from 2004 to 2007," / ", who ...,".
# Names and rare words there say who spoke, not what happened.
_BIO = re.compile(
    r",\s+(?:a|an|the|who|whose|director|head|chair|chief|professor|former|associate|senior|"
    r"distinguished|deputy|spokesman|spokeswoman|spokesperson)\b[^,;:\"“”]{3,160},",
    re.IGNORECASE,
)
# A sentence that opens by pointing back ("They invited ...", "As a result, ...") leans on
# the one before it, which the briefing does not show.
_DANGLING = re.compile(
    r"^(?:he|she|they|it|this|these|those|that|both|such|all three|as a result|however|but|"
    r"so|therefore|thus|instead|also|yet|still|then|and|or)\b",
    re.IGNORECASE,
)
_DANGLING_WEIGHT = 0.5

NOTICE = (
    "Extractive briefing: every point is a sentence quoted verbatim from the sources, "
    "ranked by centrality and by what the other sources back; no language model wrote "
    "this text."
)


@dataclass
class _Candidate:
    sentence: Sentence
    source: Source
    vector: dict[str, float]
    words: set[str]
    specific: int
    comparison: SentenceComparison | None
    #: Mean rarity (IDF) of the sentence's words: specific facts use rare words.
    rarity: float = 1.0
    backed: bool = False
    #: Weight of a sentence only this source states: less, the more of the source's other
    #: sentences merely restate another source (a rewrite's additions are its own).
    alone: float = 1.0
    #: Where the sentence stands among its source's statements (0: the first).
    position: int = 0
    #: The number of the paragraph (line) it is in.
    paragraph: int = 0


def build_extractive(
    sources: list[Source], settings: Settings, comparison: Sequence[SentenceComparison] = ()
) -> Briefing:
    """A Briefing made only of ranked source sentences, each citing itself exactly.

    `comparison`: the sentences judged against the other sources (`faithfulness.compare`);
    it weighs the ranking and gives the disagreements. Without it, every sentence counts
    as not compared."""
    known = {(s.source_id, s.start, s.end): s for s in comparison}
    candidates = _candidates(sources, known)
    # Backing goes both ways for ranking: a sentence another source's sentence rests on is
    # backed too (that one says part of it).
    backers = {(c.source_id, c.start, c.end) for s in comparison for c in s.supporting}
    for c in candidates:
        status = c.comparison.status if c.comparison is not None else None
        c.backed = status == "corroborated" or (
            status != "contradicted" and (c.source.id, c.sentence.start, c.sentence.end) in backers
        )
    if comparison:
        statements: Counter[str] = Counter(c.source.id for c in candidates)
        echoes: Counter[str] = Counter(
            c.source.id
            for c in candidates
            if c.comparison is not None and c.comparison.status == "corroborated"
        )
        for c in candidates:
            share = echoes[c.source.id] / statements[c.source.id]
            c.alone = alone_weight(share)
    warnings = [NOTICE]
    if not candidates:
        warnings.append("no sentence long enough to quote was found in the sources")
    scores = _scores(candidates)
    order = {
        part: sorted(range(len(candidates)), key=lambda i: (-ranked[i], i))
        for part, ranked in scores.items()
    }
    summary_idx = _pick_summary(
        order["summary"], candidates, settings.summary_sentences, len(sources)
    )
    key_idx = _mmr(order["key_points"], candidates, settings.key_points, exclude=set(summary_idx))
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
    return Briefing(
        id=_briefing_id(),
        title=_title(sources),
        engine="extractive",
        model=EXTRACTIVE,
        prompt=None,
        sources=sources,
        summary=summary,
        key_points=key_points,
        disagreements=_disagreements(candidates, scores["key_points"]),
        warnings=warnings,
    )


def _scores(candidates: list[_Candidate]) -> dict[str, list[float]]:
    """Each candidate's rank weight for the summary and for the key points."""
    centrality = _lexrank([c.vector for c in candidates])
    mean = sum(centrality) / len(centrality) if centrality else 1.0
    mean_rarity = sum(c.rarity for c in candidates) / len(candidates) if candidates else 1.0
    return {
        part: [
            (score / mean) ** _CENTRALITY_EXPONENT[part]
            # (+0.1: a word in every sentence has no rarity, and one sentence alone none.)
            * ((c.rarity + 0.1) / (mean_rarity + 0.1)) ** _RARITY_EXPONENT[part]
            * _prior(c, part)
            for score, c in zip(centrality, candidates, strict=True)
        ]
        for part in ("summary", "key_points")
    }


def alone_weight(backed_share: float) -> float:
    """The weight of what only its own source states, for a source of which
    `backed_share` of the statements another source backs: a rewrite that mostly restates
    another source earns less trust for what it alone adds (the LLM path weighs its map
    claims by it too)."""
    return max(_MIN_ALONE, float((1.0 - backed_share) ** _ALONE_POWER))


def statement_weights(
    source: Source, part: Literal["summary", "key_points"] = "key_points"
) -> dict[tuple[int, int], float]:
    """How much each statement of one source counts as a key point (or, with `part`, as a
    summary sentence), by (start, end): the rank this engine gives it (centrality, rare
    words, names and figures, position), 1.0 on average. The LLM path uses it to see which
    of a source's statements matter most."""
    candidates = _candidates([source], {})
    ranked = _scores(candidates)[part]
    mean = sum(ranked) / len(ranked) if ranked else 1.0
    return {
        (c.sentence.start, c.sentence.end): w / mean
        for c, w in zip(candidates, ranked, strict=True)
    }


def _briefing_id() -> str:
    import uuid

    return f"brf_{uuid.uuid4().hex}"


def _title(sources: list[Source]) -> str:
    if len(sources) == 1:
        return sources[0].title
    return f"{sources[0].title} (and {len(sources) - 1} more source{'s' * (len(sources) > 2)})"


def _prior(c: _Candidate, part: str) -> float:
    lead = 1.0 + _LEAD_BONUS[part] * math.exp(-c.position / _LEAD_DECAY[part])
    voice = _VOICE if c.sentence.text[:1] in _QUOTE_OPENERS else 1.0
    if _DANGLING.match(c.sentence.text):
        voice *= _DANGLING_WEIGHT
    specific = 1.0 + _SPECIFIC_BONUS[part] * min(c.specific, _SPECIFIC_CAP)
    words = len(c.words)
    length = 1.0 if words <= _LONG else math.sqrt(_LONG / words)
    status = c.comparison.status if c.comparison is not None else None
    said = "contradicted" if status == "contradicted" else "backed" if c.backed else "alone"
    weight = _CORROBORATION_WEIGHT[said] * (c.alone if said == "alone" else 1.0)
    return lead * voice * specific * length * weight


def specifics(text: str) -> int:
    """Distinct names (runs of capitalised words after a sentence's first word: "University
    College London" is one) and figures in `text`."""
    words = WORD.findall(text)
    names: set[str] = set()
    run: list[str] = []
    for word in [*words[1:], ""]:
        if word[:1].isupper():
            run.append(word)
        elif run:
            names.add(" ".join(run))
            run = []
    return len(names) + len(set(_NUMBER.findall(text)))


def _candidates(
    sources: list[Source], known: dict[tuple[str, int, int], SentenceComparison]
) -> list[_Candidate]:
    raw: list[tuple[Sentence, Source, list[str]]] = []
    for source in sources:
        for sentence in segment(source):
            if is_statement(sentence, source):
                words = [w.lower() for w in WORD.findall(sentence.text)]
                raw.append((sentence, source, words))
    df: Counter[str] = Counter()
    for _, _, words in raw:
        df.update(set(words))
    n = len(raw)
    out: list[_Candidate] = []
    seen: Counter[str] = Counter()
    for sentence, source, words in raw:
        tf = Counter(words)
        said = _BIO.sub(",", sentence.text)
        facts = Counter(w.lower() for w in WORD.findall(said)) or tf
        rarity = sum(math.log((1 + n) / (1 + df[w])) for w in facts) / len(facts)
        vec = {w: (1 + math.log(k)) * math.log((1 + n) / (1 + df[w])) for w, k in tf.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        out.append(
            _Candidate(
                sentence,
                source,
                {w: v / norm for w, v in vec.items()},
                set(words),
                specifics(said),
                known.get((source.id, sentence.start, sentence.end)),
                rarity=rarity,
                position=seen[source.id],
                paragraph=source.text.count("\n", 0, sentence.start),
            )
        )
        seen[source.id] += 1
    return out


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(w, 0.0) for w, v in a.items())


def _similarities(vectors: list[dict[str, float]]) -> list[dict[int, float]]:
    """`_cosine` of every pair of vectors that share a word, row i holding its partners
    j > i: through an index of which vectors hold each word, so that pairs sharing nothing
    cost nothing (all pairs was most of the LLM path's own CPU time at 100 sources).
    Each sum runs over the shorter vector's words in its own order, as `_cosine` does, so
    every value is the same to the last bit."""
    holding: dict[str, list[int]] = {}
    for i, vector in enumerate(vectors):
        for word in vector:
            holding.setdefault(word, []).append(i)
    sizes = [len(v) for v in vectors]
    rows: list[dict[int, float]] = [{} for _ in vectors]
    for i, vector in enumerate(vectors):
        size = sizes[i]
        # Pairs with i as `_cosine`'s first argument: the shorter, or the earlier of two
        # the same length.
        sums: dict[int, float] = {}
        for word, value in vector.items():
            for j in holding[word]:
                if sizes[j] > size or (sizes[j] == size and j > i):
                    sums[j] = sums.get(j, 0.0) + value * vectors[j][word]
        for j, total in sums.items():
            rows[min(i, j)][max(i, j)] = total
    return rows


def _lexrank(vectors: list[dict[str, float]], iterations: int = 60) -> list[float]:
    n = len(vectors)
    if n == 0:
        return []
    links: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for i, row in enumerate(_similarities(vectors)):
        for j in sorted(row):
            sim = row[j]
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


def _backs(a: _Candidate, b: _Candidate) -> bool:
    """Whether the comparison found one of the two sentences backing the other."""
    for one, other in ((a, b), (b, a)):
        if one.comparison is not None:
            for c in one.comparison.supporting:
                if c.source_id == other.source.id and c.start == other.sentence.start:
                    return True
    return False


def _redundancy(cands: list[_Candidate], i: int, j: int) -> float:
    # Another source's sentence backing this one states the same fact, however worded.
    if _backs(cands[i], cands[j]):
        return 1.0
    similarity = _cosine(cands[i].vector, cands[j].vector)
    # A news paragraph carries one fact: a second sentence of it mostly adds detail.
    if cands[i].source.id == cands[j].source.id and cands[i].paragraph == cands[j].paragraph:
        return max(similarity, _SAME_PARAGRAPH)
    return similarity


def _mmr(order: list[int], cands: list[_Candidate], k: int, exclude: set[int]) -> list[int]:
    chosen: list[int] = []
    pool = [i for i in order if i not in exclude]
    rank_score = {i: 1.0 - pos / max(1, len(order)) for pos, i in enumerate(order)}
    taken = list(exclude)
    while pool and len(chosen) < k:

        def gain(i: int) -> float:
            redundancy = max((_redundancy(cands, i, j) for j in taken), default=0.0)
            return _MMR_LAMBDA * rank_score[i] - (1 - _MMR_LAMBDA) * redundancy

        # A sentence stating a fact already taken goes last, whatever its rank.
        fresh = [i for i in pool if all(_redundancy(cands, i, j) < _SAME_FACT for j in taken)]
        best = max(fresh or pool, key=lambda i: (gain(i), -i))
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
            if any(_redundancy(cands, i, j) >= _SAME_FACT for j in firsts):
                continue
            seen_sources.add(sid)
            firsts.append(i)
    rest = _mmr(order, cands, k - len(firsts), exclude=set(firsts))
    return firsts + rest


def _disagreements(cands: list[_Candidate], scores: list[float]) -> list[Disagreement]:
    """Sentences another source contradicts, the most central first, each with the other
    side; one entry per pair of sentences."""
    by_span = {(c.source.id, c.sentence.start, c.sentence.end): c for c in cands}
    found: list[Disagreement] = []
    seen: set[frozenset[tuple[str, int, int]]] = set()
    ranked = sorted(range(len(cands)), key=lambda i: (-scores[i], i))
    for i in ranked:
        c = cands[i]
        comparison = c.comparison
        if comparison is None or comparison.status != "contradicted":
            continue
        mine = (c.source.id, c.sentence.start, c.sentence.end)
        for n, other in enumerate(comparison.contradicting):
            key = frozenset({mine, (other.source_id, other.start, other.end)})
            if key in seen:
                continue
            seen.add(key)
            conflict = comparison.conflicts[n] if n < len(comparison.conflicts) else None
            side = Claim(
                id="x",
                text=c.sentence.text,
                citations=[citation_for(c.sentence, c.source)],
                corroboration=Corroboration.model_validate(
                    comparison.model_dump(include=set(Corroboration.model_fields))
                ),
            )
            found.append(disagreement_of(side, other, conflict, len(found) + 1))
            # The other side is a sentence of its source too: its own comparison stands.
            twin = by_span.get((other.source_id, other.start, other.end))
            if twin is not None and twin.comparison is not None:
                found[-1].claims[1].corroboration = Corroboration.model_validate(
                    twin.comparison.model_dump(include=set(Corroboration.model_fields))
                )
    return found[:_MAX_DISAGREEMENTS]
