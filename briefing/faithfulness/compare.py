"""Cross-source comparison: what other sources back, what rests on one source, what conflicts.

Every sentence of every source is indexed once by its word stems. A statement (a sentence,
or a claim of a briefing) retrieves its candidate evidence from the *other* sources by BM25
over that index, so the cost grows with the number of sentences, not with pairs of them.
The best candidates of each other source then go to the faithfulness checker and to the
conflict detectors of `contradiction`:

- corroborated: another source supports the statement (the same sentence word for word,
  the checker's verdict on the candidate passages, or the same speaker quoted there saying
  the words the statement quotes);
- contradicted: another source states the same thing with a different number, date, name
  or place, negates it, states the opposite, or quotes the same speaker in other words;
- single_source: no other source says it. Headlines and section headings name a topic and
  state nothing: they are never judged, and never evidence for anything else.

With the offline method the checker's stored model scores support with its conflict term
left out (conflicts are this module's own detectors' to find), against a threshold set for
comparing sources, which paraphrase each other far more than a summary paraphrases its
article. With a judge (`judge`, or `auto` with a judge model) the checker's verdict stands.
Supporting and contradicting sentences come back as exact Citations into the other sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from briefing.faithfulness import lexical
from briefing.faithfulness.checker import Checker, CheckPair
from briefing.faithfulness.contradiction import (
    Conflict,
    Quote,
    conflicts,
    find_quotes,
    proper_names,
    quotations,
    quote_backed,
    quote_conflict,
    relatedness,
    same_speaker,
    soft_content,
)
from briefing.faithfulness.lexical.features import SPEECH
from briefing.faithfulness.lexical.text import TextView, stem
from briefing.faithfulness.sentence_index import (
    IndexedSentence,
    SentenceIndex,
    index_terms,
    sentence_key,
)
from briefing.schema import (
    Claim,
    Comparison,
    Corroboration,
    CorroborationStatus,
    SentenceComparison,
    Source,
    SourceAgreement,
)
from briefing.text.segment import sentence_spans
from briefing.text.statements import is_heading

__all__ = [
    "SUPPORT_COVERAGE",
    "SUPPORT_SHARED",
    "SUPPORT_THRESHOLD",
    "Comparer",
    "SentenceIndex",
    "compare_sources",
    "source_agreement",
]

Progress = Callable[[str, int, int], None]

#: Offline support: the stored model's probability without its conflict term, at least
#: SUPPORT_THRESHOLD, with the candidates holding at least SUPPORT_COVERAGE of the
#: statement's content words by IDF weight and at least SUPPORT_SHARED of them; so that
#: sharing only common words ("last", "took place") is not saying the same thing. Chosen on
#: the dev half of evals/datasets/seeds_comparison.jsonl; the held-out half measures them.
SUPPORT_THRESHOLD = 0.2
SUPPORT_COVERAGE = 0.4
SUPPORT_SHARED = 3
#: Candidate sentences retrieved per statement from all other sources together.
CANDIDATES = 12
#: Other sources whose candidates are weighed, per statement (the best first).
SOURCES_CHECKED = 4
#: Candidate sentences of one source shown to the checker (each with its neighbours).
PER_SOURCE = 2
#: Below this share of the statement's content words a candidate is about something else,
#: and is not weighed at all.
MIN_OVERLAP = 0.3
#: Statements judged per checker batch (judge calls run concurrently within one).
BATCH = 256
_SAYING_STEMS = frozenset(stem(w) for w in SPEECH)


@dataclass
class _Statement:
    """What is judged: a text, the sources it rests on, and its quotes with their speakers."""

    text: str
    own: set[int]
    quotes: list[tuple[str, str | None]] = field(default_factory=list)
    #: A headline or section heading names a topic: nothing backs or contradicts it.
    heading: bool = False


@dataclass
class _Candidates:
    """One other source's candidate sentences for a statement, as one checker pair."""

    statement: int
    source: int
    sentences: list[int]
    pair: CheckPair
    #: (offset in the pair's document, offset in the source, length) of each passage.
    segments: list[tuple[int, int, int]]

    @property
    def key(self) -> tuple[tuple[int, ...], str]:
        """The same candidates for the same statement are weighed once (a small key: the
        document the checker reads is rebuilt from the sentence ids)."""
        return tuple(self.sentences), self.pair.claim


@dataclass(frozen=True)
class _Support:
    score: float
    supported: bool
    #: Offset in the pair's document of the best evidence, when the checker named one.
    evidence: int | None
    judged_contradicted: bool = False


class Comparer:
    """Judges statements against every source but their own; reuse it for many statements."""

    def __init__(
        self, sources: Sequence[Source], checker: Checker, *, progress: Progress | None = None
    ) -> None:
        self.index = SentenceIndex(sources)
        #: Headlines and section headings: never judged, never evidence.
        self.headings = frozenset(
            sid
            for sid, s in enumerate(self.index.sentences)
            if is_heading(self.index.sources[s.source].text, s.start, s.end)
        )
        self.checker = checker
        self.progress = progress
        # Names and quotes of a source are read when a statement first needs them: a
        # briefing's few claims meet only the sources found near them.
        self._names: dict[int, frozenset[str]] = {}
        self._quotes: dict[int, list[tuple[Quote, str]]] = {}
        self._support: dict[tuple[tuple[int, ...], str], _Support] = {}

    def with_checker(self, checker: Checker) -> Comparer:
        """The same sources and index, judged by another checker (an offline one to rank
        many claims cheaply, where the briefing's own checker calls a judge)."""
        other = Comparer.__new__(Comparer)
        other.__dict__.update(self.__dict__)
        other.checker = checker
        other._support = {}
        return other

    # ------------------------------------------------------------ entry points

    async def sentences(self) -> list[SentenceComparison]:
        """Every sentence of every source, judged against all the other sources.

        Backing goes both ways: the sentence another source's sentence rests on is
        corroborated by it (that one states it, or part of it, and is cited). A line that
        only introduces the quotation after it ("According to Sam Greene:") stands or falls
        with that quotation.
        """
        index = self.index
        statements = [
            _Statement(
                index.text(sid),
                {s.source},
                self._sentence_quotes(s),
                heading=sid in self.headings,
            )
            for sid, s in enumerate(index.sentences)
        ]
        judged = await self._judge_all(statements)
        self._back_the_backers(judged)
        for sid in range(len(index.sentences) - 1, -1, -1):
            if self._introduces_quote(sid):
                judged[sid] = judged[sid + 1]
        return [
            SentenceComparison(
                source_id=index.sources[s.source].id,
                start=s.start,
                end=s.end,
                text=index.text(sid),
                **judged[sid].model_dump(),
            )
            for sid, s in enumerate(index.sentences)
        ]

    def _back_the_backers(self, judged: list[Corroboration]) -> None:
        index = self.index
        at = {
            (index.sources[s.source].id, s.start, s.end): sid
            for sid, s in enumerate(index.sentences)
        }
        for sid, verdict in enumerate(list(judged)):
            if verdict.status != "corroborated":
                continue
            for citation in verdict.supporting:
                other = at.get((citation.source_id, citation.start, citation.end))
                if (
                    other is None
                    or other in self.headings
                    or judged[other].status != "single_source"
                ):
                    continue
                judged[other] = Corroboration(
                    status="corroborated",
                    score=verdict.score,
                    supporting=[index.citation(sid)],
                )

    async def claims(self, claims: Sequence[Claim]) -> dict[str, Corroboration]:
        """Each claim's corroboration, by claim id, against the sources it does not rest on.

        A claim rests on the source of its first citation; the other sources it cites are
        weighed like any other, so a claim two sources back is corroborated. A claim that
        cites nothing is single-source.
        """
        if len(self.index.sources) < 2:
            return {c.id: Corroboration(status="not_applicable") for c in claims}
        position = {s.id: n for n, s in enumerate(self.index.sources)}
        statements, ids = [], []
        for claim in claims:
            cited = [position[c.source_id] for c in claim.citations if c.source_id in position]
            if not cited:
                continue
            names = self._names_of(cited[0])
            quotes = [
                (claim.text[q.start : q.end], q.speaker) for q in find_quotes(claim.text, names)
            ]
            statements.append(_Statement(claim.text, {cited[0]}, quotes))
            ids.append(claim.id)
        out = {c.id: Corroboration(status="single_source", score=0.0) for c in claims}
        out.update(zip(ids, await self._judge_all(statements), strict=True))
        return out

    # ------------------------------------------------------------ judging

    async def _judge_all(self, statements: Sequence[_Statement]) -> list[Corroboration]:
        out: list[Corroboration] = []
        for first in range(0, len(statements), BATCH):
            out.extend(await self._judge(statements[first : first + BATCH]))
            if self.progress is not None:
                self.progress("compare", len(out), len(statements))
        return out

    async def _judge(self, statements: Sequence[_Statement]) -> list[Corroboration]:
        index = self.index
        candidates: dict[int, list[_Candidates]] = {}
        nearby: dict[int, set[int]] = {}
        exact: list[list[int]] = []
        for n, st in enumerate(statements):
            if st.heading:
                exact.append([])
                candidates[n], nearby[n] = [], set()
                continue
            same = [
                sid
                for sid in index.exact.get(sentence_key(st.text), [])
                if index.sentences[sid].source not in st.own and sid not in self.headings
            ]
            exact.append(same)
            skip = st.own | {index.sentences[sid].source for sid in same}
            candidates[n], nearby[n] = self._candidates(n, st, skip)
        await self._weigh([c for group in candidates.values() for c in group])
        return [
            self._decide(st, exact[n], candidates[n], nearby[n]) for n, st in enumerate(statements)
        ]

    def _candidates(
        self, n: int, st: _Statement, skip: set[int]
    ) -> tuple[list[_Candidates], set[int]]:
        """The pairs to weigh, and every source retrieval found near the statement."""
        index = self.index
        view = TextView(st.text)
        terms = [t for t in index_terms(st.text) if t not in _SAYING_STEMS]
        # "He explains:" states nothing another source could back or contradict.
        if len(set(terms)) < 2 or not view.toks:
            return [], set()
        per_source: dict[int, list[int]] = {}
        for sid in index.search(terms, skip, CANDIDATES):
            if sid in self.headings:
                continue
            got = per_source.setdefault(index.sentences[sid].source, [])
            if len(got) < PER_SOURCE:
                got.append(sid)
        out = []
        for source, sids in list(per_source.items())[:SOURCES_CHECKED]:
            close = [sid for sid in sids if relatedness(view, index.view(sid)) >= MIN_OVERLAP]
            if close:
                document, segments = self._document(source, close)
                pair = CheckPair(id=f"s{n}", document=document, claim=st.text)
                out.append(_Candidates(n, source, close, pair, segments))
        return out, set(per_source)

    def _document(self, source: int, sids: Sequence[int]) -> tuple[str, list[tuple[int, int, int]]]:
        """The candidates' passages of one source as one document for the checker."""
        text = self.index.sources[source].text
        spans: list[tuple[int, int]] = []
        for sid in sorted(sids):
            start, end = self.index.passage(sid)
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        parts, segments, at = [], [], 0
        for start, end in spans:
            parts.append(text[start:end])
            segments.append((at, start, end - start))
            at += end - start + 1
        return "\n".join(parts), segments

    async def _weigh(self, groups: Sequence[_Candidates]) -> None:
        """The checker's support for each group's pair not weighed yet."""
        todo = list({g.key: g for g in groups if g.key not in self._support}.values())
        if not todo:
            return
        if self.checker.uses_model:
            results = await self.checker.check([g.pair for g in todo])
            for group, result in zip(todo, results, strict=True):
                self._support[group.key] = _Support(
                    score=result.score,
                    supported=result.label == 1,
                    evidence=result.evidence[0].start if result.evidence else None,
                    judged_contradicted=result.verdict == "contradicted",
                )
            return
        for group in todo:
            scored = self.checker.offline(group.pair)
            score = lexical.probability({**scored.features, "conflict": 0.0})
            weight, shared = self.index.coverage(group.pair.claim, group.sentences)
            self._support[group.key] = _Support(
                score=score,
                supported=score >= SUPPORT_THRESHOLD
                and weight >= SUPPORT_COVERAGE
                and shared >= SUPPORT_SHARED,
                evidence=scored.evidence[0][0] if scored.evidence else None,
            )

    def _decide(
        self,
        st: _Statement,
        exact: Sequence[int],
        candidates: Sequence[_Candidates],
        nearby: set[int],
    ) -> Corroboration:
        index = self.index
        supporting: dict[int, int] = {}
        contradicting: dict[int, int] = {}
        found: list[Conflict] = []
        best = 1.0 if exact else 0.0
        for sid in exact:
            supporting.setdefault(index.sentences[sid].source, sid)
        for group in candidates:
            support = self._support[group.key]
            clash = self._conflict(st, group, support)
            if clash is not None:
                found.append(clash[0])
                contradicting.setdefault(group.source, clash[1])
                continue
            best = max(best, support.score)
            if support.supported:
                supporting.setdefault(group.source, self._evidence(group, support))
        for words, who in st.quotes:
            # A source that backs the statement, or already contradicts it, need not be
            # asked about its quotes; nor one retrieval did not find near the statement (a
            # speaker quoted in hundreds of sources must not cost a pass over all of them).
            if who is None:
                continue
            for source in sorted(nearby - st.own - set(contradicting) - set(supporting)):
                quotes = [
                    (q, t) for q, t in self._quotes_of(source) if same_speaker(who, q.speaker)
                ]
                if not quotes:
                    continue
                said = [(text, q.speaker) for q, text in quotes]
                backed = quote_backed(words, who, said)
                if backed is not None:
                    # The other source quotes the same speaker saying these words.
                    supporting[source] = self._sentence_saying(source, quotes[backed][0], words)
                    continue
                got = quote_conflict(words, who, said)
                if got is not None:
                    found.append(got[0])
                    contradicting[source] = index.sentence_at(source, quotes[got[1]][0].start)
        status: CorroborationStatus = (
            "contradicted" if contradicting else "corroborated" if supporting else "single_source"
        )
        return Corroboration(
            status=status,
            score=round(min(max(best, 0.0), 1.0), 4),
            supporting=[index.citation(sid) for sid in supporting.values()],
            contradicting=[index.citation(sid) for sid in contradicting.values()],
            conflicts=[c.describe() for c in found],
        )

    def _conflict(
        self, st: _Statement, group: _Candidates, support: _Support
    ) -> tuple[Conflict, int] | None:
        for sid in group.sentences:
            got = conflicts(st.text, self.index.text(sid))
            if got:
                return got[0], sid
        if support.judged_contradicted:
            sid = self._evidence(group, support)
            return Conflict("judged", st.text, self.index.text(sid)), sid
        return None

    def _evidence(self, group: _Candidates, support: _Support) -> int:
        """The candidate sentence that holds the checker's best evidence (else the first)."""
        if support.evidence is not None:
            for at, start, length in group.segments:
                if at <= support.evidence < at + length:
                    return self.index.sentence_at(group.source, start + support.evidence - at)
        return group.sentences[0]

    def _names_of(self, source: int) -> frozenset[str]:
        got = self._names.get(source)
        if got is None:
            got = self._names[source] = proper_names(self.index.sources[source].text)
        return got

    def _quotes_of(self, source: int) -> list[tuple[Quote, str]]:
        """The quotations of a source with their speakers (read once)."""
        got = self._quotes.get(source)
        if got is None:
            text = self.index.sources[source].text
            got = self._quotes[source] = [(q, text[q.start : q.end]) for q in quotations(text)]
        return got

    def _sentence_quotes(self, s: IndexedSentence) -> list[tuple[str, str | None]]:
        text = self.index.sources[s.source].text
        out = []
        for quote, _ in self._quotes_of(s.source):
            start, end = max(quote.start, s.start), min(quote.end, s.end)
            if end - start > 3:
                out.append((text[start:end], quote.speaker))
        return out

    def _sentence_saying(self, source: int, quote: Quote, words: str) -> int:
        """The sentence of a (long) quotation that holds `words`, else its first."""
        index = self.index
        first = index.sentence_at(source, quote.start)
        last = index.sentence_at(source, max(quote.start, quote.end - 1))
        wanted = soft_content(words)
        for sid in range(first, last + 1):
            if wanted <= soft_content(index.text(sid)):
                return sid
        return first

    def _introduces_quote(self, sid: int) -> bool:
        index = self.index
        s = index.sentences[sid]
        if sid + 1 >= len(index.sentences) or index.sentences[sid + 1].source != s.source:
            return False
        text = index.sources[s.source].text
        following = index.sentences[sid + 1]
        return (
            text[s.start : s.end].rstrip().endswith(":")
            and text[following.start : following.start + 1] in "\"\u201c\u2018'\u00ab"
        )


async def compare_sources(
    sources: Sequence[Source], checker: Checker, *, progress: Progress | None = None
) -> Comparison:
    """Every sentence of every source judged against all the others (`briefing compare`)."""
    if len(sources) > 1:
        sentences = await Comparer(sources, checker, progress=progress).sentences()
    else:
        sentences = [
            SentenceComparison(
                source_id=source.id,
                start=start,
                end=end,
                text=source.text[start:end],
                status="not_applicable",
            )
            for source in sources
            for start, end in sentence_spans(source.text)
        ]
    return Comparison(
        sources=list(sources),
        sentences=sentences,
        method=checker.name,
        source_agreement=source_agreement(sources, ((s.source_id, s.status) for s in sentences)),
        usage=checker.usage,
        warnings=list(checker.warnings),
    )


def source_agreement(
    sources: Sequence[Source], statuses: Iterable[tuple[str, CorroborationStatus]]
) -> list[SourceAgreement]:
    """Per source, in order: how many of its statements are corroborated, single-source and
    contradicted (`statuses`: (source id, status) of each statement)."""
    rows = {s.id: SourceAgreement(source_id=s.id) for s in sources}
    for source_id, status in statuses:
        row = rows.get(source_id)
        if row is None:
            continue
        row.claims += 1
        if status == "corroborated":
            row.corroborated += 1
        elif status == "single_source":
            row.single_source += 1
        elif status == "contradicted":
            row.contradicted += 1
    return list(rows.values())
