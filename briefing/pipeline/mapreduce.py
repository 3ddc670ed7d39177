"""The LLM engine: map chunks to cited claims, condense if needed, reduce to a briefing.

The model only ever cites ids (sentence ids in the map step, claim ids after it); code
turns ids into exact spans, so a quote can never be invented. Ids that name nothing the
model was shown are reported in the warnings and removed.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from briefing.config import Settings
from briefing.errors import BriefingError, LLMError, ModelOutputError
from briefing.faithfulness.lexical.text import STOPWORDS
from briefing.models.llm import LLMClient
from briefing.models.prompts import PromptLibrary, PromptTemplate, as_data
from briefing.models.tokens import count_tokens
from briefing.pipeline.attribution import Attributor
from briefing.pipeline.chunking import Chunk, chunk_at_weightiest, chunk_sentences
from briefing.pipeline.citations import (
    merge_citations,
    normalize_sentence_id,
    resolve_sentence_ids,
)
from briefing.pipeline.extractive import alone_weight, statement_weights
from briefing.pipeline.mapcache import CachedClaim, MapCache, map_key
from briefing.schema import (
    Briefing,
    Citation,
    Claim,
    Corroboration,
    Disagreement,
    PromptRef,
    Source,
    Usage,
)
from briefing.text.segment import Sentence, segment, sentence_spans
from briefing.text.statements import is_remark, is_statement

#: Progress callback: (stage, done, total).
Progress = Callable[[str, int, int], None]
#: What the other sources say of each claim, by claim id (the comparison engine's verdicts).
Backing = Callable[[list[Claim]], Awaitable[dict[str, Corroboration]]]
#: Tokens kept free for the chat format and tokenizer mismatch between models.
_SAFETY_TOKENS = 256
_MAX_CONDENSE_LEVELS = 6
#: Tokens of the map template around the sentences: about 190 in o200k_base, with room
#: for models whose tokenizers count more.
_MAP_TEMPLATE_TOKENS = 600
_QUOTE_CHARS = 60
#: The most claims the map step asks of one chunk, however long.
_MAX_CLAIMS_PER_DOCUMENT = 16
#: A source whose map requests gave fewer claims than this share of those asked for is
#: mapped again on its own, in smaller chunks (at least _MIN_RETRY_TOKENS).
MIN_YIELD = 0.3
_MIN_RETRY_TOKENS = 256
#: A chunk whose claims cite (nearly) every one of its first sentences in a row and none
#: of the rest, with more than half of it left, was read only that far: a small model asked
#: for 10 claims of a 74-sentence article copies out S1..S10. Its unread part is mapped
#: again in chunks the size of what the model did read.
_SKIM_DENSITY = 0.75
#: The fewest claims that only one source makes which the reduce is shown of that source.
MIN_QUOTA = 8
#: Claims that stand in for a summary the reduce did not write; and the fewest summary
#: sentences left where some of the reduce's were dropped (the prompt asks for two to four).
SUMMARY_CLAIMS = 3
MIN_SUMMARY = 2
#: Below this many key points of its own, a briefing's key points are topped up from the
#: map step's claims.
MIN_KEY_POINTS = 3
T = TypeVar("T")
#: A sentence tag at the front of a claim ("S3 ", "[S3] ").
_LEADING_TAG = re.compile(r"\[?(S\d+)\]?[\s:.,-]+")


def _ids(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if v is not None]


class _MapClaim(BaseModel):
    text: str = Field(min_length=1)
    sentence_ids: list[str]

    _coerce = field_validator("sentence_ids", mode="before")(lambda v: _ids(v))


def _without_copied_tags(claim: _MapClaim) -> str:
    """The claim's text without the tags of its own sentences copied to its front.

    Small models copy "S3 " from the prompt into the claim; the citation already says where
    it comes from. Only a tag the claim cites is removed, so "S3 buckets were exposed" keeps
    its first word unless it cites sentence S3.
    """
    text = claim.text.strip()
    while (match := _LEADING_TAG.match(text)) and match.group(1) in claim.sentence_ids:
        if not text[match.end() :].strip():
            break
        text = text[match.end() :].lstrip()
    return text


#: Claims one point of a reduce or condense answer may cite, in the schema sent: a point
#: is one sentence, and a small model looping over ids ("C83", "C84", … "C376") stops here.
MAX_POINT_CLAIMS = 8
#: Characters of one point's text (a summary item holds up to four sentences), and of a
#: title or topic, in the schema sent: a 1.5B model that fell into repeating one sentence
#: ("The Trump administration's attempts ... stalled." forty times) ran to max_tokens and
#: lost the whole answer; a grammar enforcing the schema closes the string here instead,
#: and the repeats collapse into one claim.
MAX_POINT_CHARS = 800
MAX_TITLE_CHARS = 200
#: How a finished sentence ends (with a closing quotation mark or bracket after it).
_ENDS = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s*$")


def citing_only(schema: dict[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    """`schema` with every `claim_ids` array narrowed to `ids` (an enum) and to at most
    MAX_POINT_CLAIMS items, so that a provider or local grammar enforcing the schema can
    cite only the claims of this request; the text of a point that cites claims to
    MAX_POINT_CHARS, and the titles and topics beside them to MAX_TITLE_CHARS. Other
    prompts' schemas come back unchanged."""

    def narrow(node: Any) -> Any:
        if isinstance(node, list):
            return [narrow(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: narrow(value) for key, value in node.items()}
        properties = out.get("properties")
        cited = properties.get("claim_ids") if isinstance(properties, dict) else None
        if (
            isinstance(properties, dict)
            and isinstance(cited, dict)
            and cited.get("type") == "array"
            and ids
        ):
            items = dict(cited.get("items") or {})
            items["enum"] = list(ids)
            most = cited.get("maxItems")
            properties["claim_ids"] = {
                **cited,
                "items": items,
                "maxItems": min(most, MAX_POINT_CLAIMS)
                if isinstance(most, int)
                else MAX_POINT_CLAIMS,
            }
            _cap(properties, "text", MAX_POINT_CHARS)
        if isinstance(properties, dict):
            for name in ("title", "topic"):
                _cap(properties, name, MAX_TITLE_CHARS)
        return out

    narrowed: dict[str, Any] = narrow(schema)
    return narrowed


def _whole_sentences(text: str) -> tuple[str, str]:
    """A point's text with each sentence once, and without the unfinished sentence it ends
    in when the schema's MAX_POINT_CHARS cut it off (returned second, else "")."""
    text = " ".join(text.split())
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    cut = ""
    if sentences and len(text) >= MAX_POINT_CHARS - 1 and not _ENDS.search(sentences[-1]):
        cut = sentences.pop()
    unique = dict.fromkeys(sentences, None)
    return " ".join(unique), cut


def _cap(properties: dict[str, Any], name: str, most: int) -> None:
    """A string property limited to `most` characters (a tighter limit of its own stays)."""
    field_ = properties.get(name)
    if isinstance(field_, dict) and field_.get("type") == "string":
        ceiling = field_.get("maxLength")
        properties[name] = {
            **field_,
            "maxLength": min(ceiling, most) if isinstance(ceiling, int) else most,
        }


def asking_for(schema: dict[str, Any], ids: Sequence[str], most: int) -> dict[str, Any]:
    """The map prompt's `schema` narrowed to one request: `sentence_ids` to an enum of the
    ids it shows, and `claims` to at most the `most` it asks for.

    A provider or local grammar enforcing the schema then closes the list once it holds
    what was asked: a 1.5B model asked for 10 claims of an article copied out every
    sentence until max_tokens, an answer that failed, twice. A schema of another shape
    comes back unchanged.
    """
    claims = (schema.get("properties") or {}).get("claims")
    if not isinstance(claims, dict) or claims.get("type") != "array":
        return schema
    item = dict(claims.get("items") or {})
    properties = dict(item.get("properties") or {})
    cited = properties.get("sentence_ids")
    if isinstance(cited, dict) and cited.get("type") == "array" and ids:
        properties["sentence_ids"] = {
            **cited,
            "items": {**(cited.get("items") or {}), "enum": list(ids)},
        }
    ceiling = claims.get("maxItems")
    narrowed = {
        **claims,
        "items": {**item, "properties": properties},
        "maxItems": min(ceiling, most) if isinstance(ceiling, int) else most,
    }
    return {**schema, "properties": {**schema["properties"], "claims": narrowed}}


class MapOutput(BaseModel):
    """What extract-claims returns."""

    claims: list[_MapClaim]


class Point(BaseModel):
    """A sentence of the model's with the claim ids it rests on."""

    text: str = Field(min_length=1)
    claim_ids: list[str]

    _coerce = field_validator("claim_ids", mode="before")(lambda v: _ids(v))


class CondenseOutput(BaseModel):
    """What condense-claims returns."""

    claims: list[Point]


class _Sides(BaseModel):
    topic: str
    sides: list[Point]


class ReduceOutput(BaseModel):
    """What the briefing prompt returns."""

    title: str = Field(min_length=1)
    summary: list[Point]
    key_points: list[Point]
    disagreements: list[_Sides] = Field(default_factory=list)


@dataclass
class _Document:
    """One chunk of one source as the map step shows it, with the claims it asks of it."""

    source: Source
    chunk: Chunk
    max_claims: int
    #: The chunk's sentences a claim may cite (not headlines, bylines, ...): the ones shown.
    statements: list[Sentence] = field(default_factory=list)


@dataclass(frozen=True)
class _Unread:
    """The part of a chunk its answer left unread: the statements after the run of first
    ones its claims cite."""

    start: int
    end: int
    read: int
    shown: int
    read_tokens: int


def _unread(document: _Document, cites: list[Citation], claim_tokens: int) -> _Unread | None:
    """What of `document` the model did not read, when its claims cite a run of the first
    sentences in order and over half of the chunk (at least two claims' worth) lies past
    them; None when the claims are spread over the chunk, or there is none."""
    statements = document.statements
    own = [c for c in cites if c.source_id == document.source.id]
    cited = [
        i for i, s in enumerate(statements) if any(c.start < s.end and c.end > s.start for c in own)
    ]
    if not cited:
        return None  # a source with no claim is the low-yield check's
    read = cited[-1] + 1
    if len(cited) < _SKIM_DENSITY * read or len(statements) - read <= read:
        return None
    read_tokens = document.chunk.tokens * read // len(statements)
    if document.chunk.tokens - read_tokens < 2 * claim_tokens:
        return None
    return _Unread(statements[read].start, statements[-1].end, read, len(statements), read_tokens)


def _where(pack: list[_Document]) -> str:
    """Names the chunks of a map request in warnings."""
    return ", ".join(f"chunk {d.chunk.id} of {d.source.title!r}" for d in pack)


def _claim_limit(prompt: PromptTemplate) -> int:
    """The map template's own cap on claims per answer (its schema's maxItems)."""
    claims = prompt.output_schema.get("properties", {}).get("claims", {})
    limit = claims.get("maxItems") if isinstance(claims, dict) else None
    return int(limit) if isinstance(limit, int) and limit > 0 else 10**6


@dataclass
class _Claim:
    id: str
    text: str
    citations: list[Citation]
    source_labels: list[str]
    #: Another source backs it (the comparison engine said so before the reduce).
    backed: bool = False
    #: The other sources' sentences that back it, as (source id, start, end).
    backers: frozenset[tuple[str, int, int]] = frozenset()
    #: The ids of the claims a condensed claim merges (empty for a map claim).
    merged: tuple[str, ...] = ()

    def spans(self) -> set[tuple[str, int, int]]:
        return {(c.source_id, c.start, c.end) for c in self.citations}

    def restates(self, used: set[tuple[str, int, int]]) -> bool:
        """Whether points resting on `used` (the spans they cite, and those backing them)
        already make this claim: it cites only those, or another source's sentence that
        backs it is one of them (the same fact in other words)."""
        return self.spans() <= used or bool(self.backers & used)


def _claim_key(raw: str) -> str:
    """A claim id as a model writes it ("[c3] ") as the id it names ("C3")."""
    return raw.strip().strip("[]").upper()


def _cited_claims(point: Point, by_id: Mapping[str, _Claim]) -> list[_Claim]:
    """The claims a point cites that it was shown, each once, in the point's order."""
    return list({k: by_id[k] for k in map(_claim_key, point.claim_ids) if k in by_id}.values())


def _backed_share(claims: Sequence[_Claim]) -> dict[str, float]:
    """Per source, the share of its map claims another source backs (a rewrite's is high:
    what it alone adds to the sources it restates, the seeds' "a genius in the art of the
    deal", weighs `extractive.alone_weight` of it, as the extractive engine weighs it)."""
    counts: Counter[str] = Counter()
    backed: Counter[str] = Counter()
    for claim in claims:
        if claim.citations:
            counts[claim.citations[0].source_id] += 1
            backed[claim.citations[0].source_id] += claim.backed
    return {s: backed[s] / n for s, n in counts.items()}


def _resting_on(points: Sequence[Claim], claims: Sequence[_Claim]) -> set[tuple[str, int, int]]:
    """The spans of the map claims `points` rest on, and the other sources' sentences
    backing those: what a further point must not merely restate.

    A point rests on a claim it cites and shares words with (at least _SPLIT_MATCH of the
    shorter one's content words). A sentence a small model wrote citing eight claims it says nothing of ("The
    U.S. administration has consistently used the word 'reset' ...", citing the article's
    first eight claims) has not made their points, and must not keep them out."""
    used: set[tuple[str, int, int]] = set()
    words = {id(c): _content_words(c.text) for c in claims}
    for point in points:
        cited = {(c.source_id, c.start, c.end) for c in point.citations}
        mine = _content_words(point.text)
        for claim in claims:
            spans = claim.spans()
            if spans and spans <= cited and _overlap(mine, words[id(claim)]) >= _SPLIT_MATCH:
                used |= spans | claim.backers
    return used


async def _all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as group_error:
        # Callers handle BriefingError, not ExceptionGroup.
        raise group_error.exceptions[0] from None
    return [t.result() for t in tasks]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 1] + "…"


@dataclass
class _MapRun:
    """What one pass of the map step asked for and got, per source."""

    found: list[tuple[str, list[Citation]]] = field(default_factory=list)
    mapped: dict[str, list[CachedClaim]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    asked: dict[str, int] = field(default_factory=dict)
    statements: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    #: Per source, the parts of its chunks the answers left unread.
    unread: dict[str, list[_Unread]] = field(default_factory=dict)
    non_statements: int = 0
    done: int = 0
    total: int = 0

    def got(self, source_id: str) -> int:
        """Claims that cite `source_id`."""
        return len(self.mapped.get(source_id, []))

    def merge(self, other: _MapRun) -> None:
        """Add a later pass's answers (the sources it mapped again are no longer failed)."""
        self.found.extend(other.found)
        for source_id, claims in other.mapped.items():
            self.mapped.setdefault(source_id, []).extend(claims)
        self.failed = (self.failed - set(other.requests)) | other.failed
        self.non_statements += other.non_statements


_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
#: A sentence of a point restates a cited claim when it holds this share of its words.
_SPLIT_MATCH = 0.3
#: A claim that shares this share of its words with a point already made repeats it.
_SAME_POINT = 0.6
#: A map claim another source backs counts this much more as a point (`_weight`).
_BACKED_WEIGHT = 1.25


def _content_words(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORDS.findall(text)) if w not in STOPWORDS}


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, min(len(a), len(b)))


def _share(sentence: set[str], claim: set[str]) -> float:
    """The share of a sentence's content words that a claim holds."""
    return len(sentence & claim) / max(1, len(sentence))


def _statement_or_unknown(
    raw: object, shown: dict[str, Sentence], sources: dict[str, Source]
) -> bool:
    """Whether a cited id may stand: it names a statement, or nothing (reported later)."""
    key = normalize_sentence_id(raw)
    sentence = shown.get(key) if key else None
    # Length is the model's to judge: a short sentence can state a fact.
    return sentence is None or is_statement(sentence, sources[sentence.source_id], by_length=False)


def _ahead_done(task: asyncio.Task[None]) -> None:
    # Work done ahead is redone where its result is needed (the weights when the top-up
    # reads them, a verdict when `_balance` asks): a failure surfaces there, not here.
    if not task.cancelled():
        task.exception()


class MapReduce:
    """Builds one briefing with one LLMClient."""

    def __init__(
        self,
        settings: Settings,
        client: LLMClient,
        library: PromptLibrary,
        progress: Progress | None = None,
        cache: MapCache | None = None,
        backing: Backing | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.cache = cache
        self.backing = backing
        self.map_prompt = library.get(settings.map_prompt)
        self.condense_prompt = library.get(settings.condense_prompt)
        self.reduce_prompt = library.get(settings.prompt)
        self.progress = progress or (lambda stage, done, total: None)
        self.usage = Usage()
        self.warnings: list[str] = []
        self.used: list[PromptTemplate] = []
        self._order: dict[str, int] = {}
        self._map_requests = 0
        self._map_failures: list[str] = []
        #: Statements (sentences a claim may cite) per mapped source.
        self._statements: dict[str, int] = {}
        self._sources: dict[str, Source] = {}
        #: Each source's statement weights (`extractive.statement_weights`), when needed.
        self._weights: dict[tuple[str, str], dict[tuple[int, int], float]] = {}
        #: Work done while the map requests are out (`_ahead`), cancelled when run ends.
        self._ahead_tasks: set[asyncio.Task[None]] = set()
        #: Set once the first map pass has sent its last request (chunking, which comes
        #: before each request, goes first).
        self._sent = asyncio.Event()
        self._attribute = Attributor([])

    async def run(self, sources: list[Source]) -> Briefing:
        """Map every chunk, condense until the claims fit, then reduce."""
        self._order = {s.id: n for n, s in enumerate(sources)}
        self._sources = {s.id: s for s in sources}
        self._attribute = Attributor(sources)
        self._ahead(self._weigh_ahead(sources))
        try:
            return await self._run(sources)
        finally:
            for task in self._ahead_tasks:
                task.cancel()
            self._ahead_tasks.clear()

    def _ahead(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` on the event loop beside the map requests. A model call takes far
        longer than the CPU work of its answer, so the loop is mostly idle while they are
        out: work that would otherwise come after the map step (on the critical path) is
        done in that time, in slices that let every answer be read as soon as it comes."""
        task = asyncio.ensure_future(work)
        self._ahead_tasks.add(task)
        task.add_done_callback(_ahead_done)
        task.add_done_callback(self._ahead_tasks.discard)

    async def _weigh_ahead(self, sources: list[Source]) -> None:
        """Each source's statement weights (the top-up's ranking), one source a slice."""
        await self._sent.wait()
        for source in sources:
            await asyncio.sleep(0)
            self._weights_of(source, "key_points")

    async def _back_ahead(self, found: list[tuple[str, list[Citation]]]) -> None:
        """An answer's claims judged against the other sources, as `_balance` will judge
        them (attributed as `_attributed` will make them), one claim a slice: `backing`
        remembers its verdicts, so the reduce need not wait for them."""
        assert self.backing is not None
        for n, (text, cites) in enumerate(found):
            await asyncio.sleep(0)
            claim = Claim(id=f"A{n}", text=self._attribute(text, cites), citations=cites)
            await self.backing([claim])

    async def _run(self, sources: list[Source]) -> Briefing:
        labels = {s.id: f"[{n}]" for n, s in enumerate(sources, start=1)}
        claims = await self._map(sources, labels)
        if not claims:
            if self._map_requests and len(self._map_failures) == self._map_requests:
                # The real cause, per request: invalid output after the re-asks, truncation
                # at max_tokens, a refusal; with the call log's ids to look them up.
                raise LLMError(
                    f"every map request failed ({len(self._map_failures)} of "
                    f"{self._map_requests}): " + "; ".join(self._map_failures[:5])
                )
            if not self._map_requests:
                why = (
                    "no sentence of the sources reads as a statement a claim could cite "
                    "(each is a headline, byline, question or remark about the article)"
                )
            elif self.warnings:
                why = "; ".join(self.warnings[-5:])
            else:
                why = f"its answers to {self._map_requests} map request(s) held no claim"
            raise LLMError(
                f"the model extracted no claim with a valid citation from any source: {why}"
            )
        if len(sources) > 1:
            claims = await self._balance(claims, sources, labels)
        claims = await self._condense_until_fits(claims, sources, labels)
        briefing = await self._reduce(claims, sources, labels)
        return self._represent(briefing, claims, sources) if len(sources) > 1 else briefing

    async def map_only(self, sources: list[Source]) -> int:
        """Map `sources` into the cache and stop (one worker's share of a briefing whose
        map step is spread over a cluster; the reduce finds these claims in the cache).
        Returns how many claims were found."""
        if self.cache is None:
            raise BriefingError("mapping ahead of the reduce needs the map cache")
        labels = {s.id: f"[{n}]" for n, s in enumerate(sources, start=1)}
        self._order = {s.id: n for n, s in enumerate(sources)}
        self._attribute = Attributor(sources)
        return len(await self._map(sources, labels))

    # ------------------------------------------------------------ coverage

    async def _balance(
        self, claims: list[_Claim], sources: list[Source], labels: dict[str, str]
    ) -> list[_Claim]:
        """The claims the reduce sees, so that no source crowds out another.

        A claim another source backs (by the comparison engine, when `backing` is given)
        is shown as drawn from both sources, and such claims come first. Of each source's
        claims that only it makes, at most a quota go on: twice the median density (claims
        per statement) of the other sources, at this source's size, and never fewer than
        MIN_QUOTA; the ones left out (the model's last) are counted in the warnings.
        """
        if self.backing is not None:
            verdicts = await self.backing(
                [Claim(id=c.id, text=c.text, citations=c.citations) for c in claims]
            )
            position = {s.id: n for n, s in enumerate(sources)}
            for claim in claims:
                verdict = verdicts.get(claim.id)
                if verdict is None or verdict.status != "corroborated":
                    continue
                backers = {c.source_id for c in verdict.supporting if c.source_id in position}
                own = {c.source_id for c in claim.citations}
                named = sorted(own | backers, key=position.__getitem__)
                claim.source_labels = [labels[s] for s in named]
                claim.backed = True
                claim.backers = frozenset((c.source_id, c.start, c.end) for c in verdict.supporting)
        alone: dict[str, list[_Claim]] = {}
        for claim in claims:
            if len(claim.source_labels) == 1:
                alone.setdefault(claim.source_labels[0], []).append(claim)
        by_label = {labels[s.id]: s.id for s in sources}
        # Claims per statement of each source: a source mined far more densely than the
        # others (a model that lists everything of one and skims another) is trimmed to
        # twice the others' median density, at its own size.
        density = {
            label: len(rows) / max(1, self._statements.get(by_label[label], 0))
            for label, rows in alone.items()
        }
        dropped: dict[str, int] = {}
        kept: set[str] = set()
        for label, rows in alone.items():
            others = sorted(d for other, d in density.items() if other != label)
            median = others[len(others) // 2] if others else density[label]
            size = max(1, self._statements.get(by_label[label], 0))
            quota = max(MIN_QUOTA, math.ceil(2 * median * size))
            kept.update(c.id for c in rows[:quota])
            if len(rows) > quota:
                dropped[label] = len(rows) - quota
        titles = {labels[s.id]: s.title for s in sources}
        for label, n in dropped.items():
            self.warnings.append(
                f"{n} claim(s) only {titles[label]!r} makes were left out of the reduce, so "
                "that it does not crowd out the other sources (per-source quota)"
            )
        chosen = [c for c in claims if c.backed or c.id in kept]
        # Backed claims first: the reduce reads them, and their group, before the rest.
        return sorted(chosen, key=lambda c: not c.backed)

    def _represent(
        self, briefing: Briefing, claims: list[_Claim], sources: list[Source]
    ) -> Briefing:
        """Every source that gave claims has one in the briefing: for a source the reduce
        cited nothing of, its first claim (a backed one if it has one) is added as a key
        point, and the warnings say so."""
        cited = {c.source_id for claim in briefing.claims() for c in claim.citations}
        added = []
        for source in sources:
            if source.id in cited:
                continue
            own = [c for c in claims if c.citations and c.citations[0].source_id == source.id]
            if not own:
                continue
            best = next((c for c in own if c.backed), own[0])
            added.append(
                Claim(id=f"c{uuid.uuid4().hex[:8]}", text=best.text, citations=best.citations)
            )
            self.warnings.append(
                f"the reduce cited nothing of {source.title!r}; its claim {best.id} was added as a "
                "key point so that every source is represented"
            )
        if not added:
            return briefing
        return briefing.model_copy(
            update={"key_points": [*briefing.key_points, *added], "warnings": self.warnings}
        )

    def _chunk_budget(self) -> tuple[int, int]:
        """(chunk size, overlap) in tokens that leave room for the map prompt and answer."""
        window = self.client.context_tokens()
        prompt_cost = (
            int(self.map_prompt.model_parameters.get("max_tokens", 1024)) + _MAP_TEMPLATE_TOKENS
        )
        size = min(self.settings.chunk_tokens, max(64, window - prompt_cost - _SAFETY_TOKENS))
        return size, min(self.settings.chunk_overlap_tokens, size // 4)

    def _chunks(self, source: Source, size: int, overlap: int) -> list[Chunk]:
        return chunk_sentences(
            segment(source),
            encoding=self.settings.encoding,
            max_tokens=size,
            overlap_tokens=overlap,
        )

    def _statement_chunks(
        self, source: Source, size: int, overlap: int, parts: Sequence[_Unread] | None = None
    ) -> list[tuple[Chunk, list[Sentence]]]:
        """The source's chunks, each with the sentences of it a claim may cite (worked out
        here, on the chunking thread, off the event loop).

        With `parts` (what a model that skimmed the source left unread), only their
        statements, in chunks that each open at one of the source's weightiest statements
        (the extractive engine's rank): a model that again reads only the first sentences
        of each chunk then reads those."""
        if parts is None:
            return [
                (chunk, [x for x in chunk.sentences if is_statement(x, source, by_length=False)])
                for chunk in self._chunks(source, size, overlap)
            ]
        statements = [
            x
            for x in segment(source)
            if any(u.start <= x.start and x.end <= u.end for u in parts)
            and is_statement(x, source, by_length=False)
        ]
        weights = self._weights_of(source, "key_points")
        chunks = chunk_at_weightiest(
            statements,
            [weights.get((x.start, x.end), 0.0) for x in statements],
            encoding=self.settings.encoding,
            max_tokens=size,
        )
        return [(chunk, chunk.sentences) for chunk in chunks]

    def _packs(self) -> bool:
        """Whether the map template takes several sources per request (extract-claims@2 on).

        Earlier versions take one chunk of one source; the template's instructions then cost
        a fifth of the tokens of a typical article, once per article.
        """
        return "documents" in self.map_prompt.input_variables

    def _max_claims(self, chunk: Chunk) -> int:
        """Claims asked of one chunk: one per `claim_tokens` of its text, within bounds."""
        wanted = -(-chunk.tokens // self.settings.claim_tokens)
        return max(1, min(_MAX_CLAIMS_PER_DOCUMENT, wanted))

    def _map_variables(
        self, pack: list[_Document]
    ) -> tuple[dict[str, object], dict[str, Sentence]]:
        """The map prompt's variables for `pack`, and which sentence each shown id names.

        Ids are numbered from S1 in every request (small models assume a list starts at 1)
        and run on across the sources of a pack, so each names one sentence of one source;
        code maps the id back to its sentence either way.
        """
        shown: dict[str, Sentence] = {}
        documents = []
        for document in pack:
            rows = []
            # Headlines, bylines and the like are not shown: a claim may not cite them, and
            # a small model shown its source's headline first answers with it.
            for sentence in document.statements:
                sid = f"S{len(shown) + 1}"
                shown[sid] = sentence
                rows.append({"id": sid, "text": as_data(sentence.text)})
            documents.append(
                {
                    "title": as_data(document.source.title).replace('"', "'"),
                    "max_claims": document.max_claims,
                    "sentences": rows,
                }
            )
        if self._packs():
            return {"documents": documents}, shown
        [only] = documents
        return {"source_title": only["title"], "sentences": only["sentences"]}, shown

    async def _map(self, sources: list[Source], labels: dict[str, str]) -> list[_Claim]:
        """Chunk the sources one by one and map each request's worth as soon as it exists.

        Segmenting is CPU work of milliseconds a source; done on a worker thread while
        earlier requests are with the model, it is off the critical path instead of all of
        it coming before the first request. Consecutive chunks share a request while they
        fit the chunk budget and the template's claim limit. `total` grows until the last
        source is chunked.

        Coverage: a source whose requests gave far fewer claims than they asked for (under
        MIN_YIELD of them, a headline alone, or an answer that failed) is mapped once more
        on its own, in chunks half the size, so that no source goes missing because the
        model skimmed it among others. A chunk whose claims copy out its first sentences in
        order and stop with over half of it unread has that part mapped again, in chunks
        the size of what the model read (one retry pass for both).
        """
        self._use(self.map_prompt)
        size, overlap = self._chunk_budget()

        keys = {s.id: self._cache_key(s, size, overlap) for s in sources}
        cached = await self._cached(keys)
        run = _MapRun()
        await self._map_pass(
            [s for s in sources if s.id not in cached], size, overlap, self._packs(), run
        )
        low = self._low_yield(sources, cached, run)
        low_ids = {s.id for s in low}
        skimmed = {k: v for k, v in run.unread.items() if k not in low_ids}
        if low or skimmed:
            # One retry pass, for both: a low-yield source whole, in chunks half the size;
            # of a skimmed one only what was left unread, in chunks of what was read.
            smaller = max(_MIN_RETRY_TOKENS, size // 2)
            sizes = {s.id: smaller for s in low}
            for source_id, parts in skimmed.items():
                read = min(u.read_tokens for u in parts)
                sizes[source_id] = max(_MIN_RETRY_TOKENS, min(smaller, read))
            again = [s for s in sources if s.id in sizes]
            retry = _MapRun()
            await self._map_pass(again, size, overlap, False, retry, sizes=sizes, only=skimmed)
            for source in again:
                before = run.got(source.id)
                added = retry.got(source.id)
                requests = retry.requests.get(source.id, 0)
                if source.id in low_ids:
                    self.warnings.append(
                        f"{source.title!r}: {before} claim(s) for {run.asked[source.id]} "
                        f"asked; mapped again on its own in {requests} smaller request(s): "
                        f"{added} more"
                    )
                    continue
                parts = skimmed[source.id]
                read = sum(u.read for u in parts)
                shown = sum(u.shown for u in parts)
                self.warnings.append(
                    f"{source.title!r}: its claims cited only the first {read} of {shown} "
                    f"sentences shown, in order; the other {shown - read} were mapped again "
                    f"in {requests} smaller request(s): {added} more claim(s)"
                )
            run.merge(retry)
        # Statements per source, for the reduce's quotas: counted while chunking (overlaps
        # count twice, which is close enough), and for the sources the cache answered.
        self._statements = dict(run.statements)
        if len(sources) > 1 and cached:
            self._statements.update(
                await asyncio.to_thread(
                    lambda: {
                        s.id: sum(is_statement(x, s, by_length=False) for x in segment(s))
                        for s in sources
                        if s.id in cached
                    }
                )
            )
        found = list(run.found)
        found.extend(self._from_cache(cached, sources))
        found = await asyncio.to_thread(self._attributed, found)
        await self._keep(keys, run.mapped, run.failed, cached)
        if run.non_statements:
            self.warnings.append(
                f"{run.non_statements} claim(s) that cited only headlines, bylines, questions "
                "or remarks about the article were dropped"
            )
        # In source order (a pack's answer may list its sources' claims in any order), and
        # in the order of what they cite within a source: answers arrive in whatever order
        # the provider finishes them, and the reduce must be shown the same list for the
        # same claims (a small model's answer changes wholesale with the order).
        found.sort(key=lambda item: min((self._order[c.source_id], c.start) for c in item[1]))
        claims: list[_Claim] = []
        seen: set[tuple[str, tuple[tuple[str, int, int], ...]]] = set()
        for text, cites in found:
            # Overlapping chunks may yield the same claim twice.
            key = (
                " ".join(text.lower().split()),
                tuple((c.source_id, c.start, c.end) for c in cites),
            )
            if key in seen:
                continue
            seen.add(key)
            cited = sorted({c.source_id for c in cites}, key=self._order.__getitem__)
            claims.append(
                _Claim(
                    f"C{len(claims) + 1}",
                    text,
                    merge_citations([cites], self._order),
                    [labels[s] for s in cited],
                )
            )
        return claims

    def _attributed(
        self, found: list[tuple[str, list[Citation]]]
    ) -> list[tuple[str, list[Citation]]]:
        """Claims that restate a quotation without its speaker, with the speaker named
        (`attribution`): an analyst's view is not a fact of the story."""
        out = [(self._attribute(text, cites), cites) for text, cites in found]
        changed = sum(a[0] != b[0] for a, b in zip(found, out, strict=True))
        if changed:
            self.warnings.append(
                f"{changed} claim(s) restated a quotation without naming who said it; the "
                "speaker the cited sentence names was added"
            )
        return out

    async def _map_pass(
        self,
        sources: list[Source],
        size: int,
        overlap: int,
        packs: bool,
        run: _MapRun,
        *,
        sizes: Mapping[str, int] | None = None,
        only: Mapping[str, list[_Unread]] | None = None,
    ) -> None:
        """Map `sources` in requests of at most `size` tokens (packed when `packs`), the
        answers and what they asked for recorded in `run`.

        A retry pass gives a chunk size per source in `sizes`, and in `only` the parts of
        a source to show (its other sentences are not sent again).
        """
        claim_limit = _claim_limit(self.map_prompt)

        async def one(pack: list[_Document]) -> None:
            variables, shown = self._map_variables(pack)
            where = _where(pack)
            try:
                result = await self.client.structured(
                    self.map_prompt,
                    variables,
                    MapOutput,
                    schema=asking_for(
                        self.map_prompt.output_schema,
                        list(shown),
                        max(1, sum(d.max_claims for d in pack)),
                    ),
                )
            except ModelOutputError as exc:
                self.usage += exc.usage
                self.warnings.append(f"{where} skipped: {exc}")
                self._map_failures.append(f"{where}: {exc}")
                run.failed.update(d.source.id for d in pack)
                return
            except BaseException:
                run.failed.update(d.source.id for d in pack)
                raise
            finally:
                run.done += 1
                self.progress("map", run.done, run.total)
            self.usage += result.usage
            by_id = {d.source.id: d.source for d in pack}
            cited: list[Citation] = []
            answer: list[tuple[str, list[Citation]]] = []
            for claim in result.value.claims:
                ids = [i for i in claim.sentence_ids if _statement_or_unknown(i, shown, by_id)]
                cites, unknown = resolve_sentence_ids(ids, shown, by_id)
                if unknown:
                    self._report_unknown(where, claim.text, unknown, bool(cites))
                if not cites:
                    if len(ids) < len(claim.sentence_ids):
                        run.non_statements += 1
                    continue
                text = _without_copied_tags(claim)
                run.found.append((text, cites))
                answer.append((text, cites))
                for source_id in dict.fromkeys(c.source_id for c in cites):
                    run.mapped.setdefault(source_id, []).append(
                        CachedClaim(text=text, citations=cites)
                    )
                cited.extend(cites)
            if self.backing is not None and answer:
                self._ahead(self._back_ahead(answer))
            if only is None:  # a retry's answer is not checked again: one retry at most
                for document in pack:
                    unread = _unread(document, cited, self.settings.claim_tokens)
                    if unread is not None:
                        run.unread.setdefault(document.source.id, []).append(unread)

        pending: list[_Document] = []
        pending_tokens = pending_claims = 0
        try:
            async with asyncio.TaskGroup() as group:

                def send() -> None:
                    nonlocal pending, pending_tokens, pending_claims
                    group.create_task(one(pending))
                    run.total += 1
                    self._map_requests += 1
                    for source_id in {d.source.id for d in pending}:
                        run.requests[source_id] = run.requests.get(source_id, 0) + 1
                    pending, pending_tokens, pending_claims = [], 0, 0

                for source in sources:
                    own = sizes.get(source.id, size) if sizes else size
                    parts = only.get(source.id) if only else None
                    chunks = await asyncio.to_thread(
                        self._statement_chunks, source, own, min(overlap, own // 4), parts
                    )
                    # The source's tag and title, sent once per source in a request.
                    header = count_tokens(source.title, self.settings.encoding) + 12
                    for chunk, statements in chunks:
                        if not statements:
                            continue  # only headings and bylines: nothing to claim
                        document = _Document(source, chunk, self._max_claims(chunk), statements)
                        run.asked[source.id] = run.asked.get(source.id, 0) + document.max_claims
                        run.statements[source.id] = run.statements.get(source.id, 0) + len(
                            statements
                        )
                        cost = chunk.tokens + header
                        if pending and (
                            pending_tokens + cost > size
                            or pending_claims + document.max_claims > claim_limit
                        ):
                            send()
                        pending.append(document)
                        pending_tokens += cost
                        pending_claims += document.max_claims
                        if not packs:
                            send()
                    self.progress("map", run.done, run.total)
                if pending:
                    send()
                    self.progress("map", run.done, run.total)
                self._sent.set()
        except BaseExceptionGroup as group_error:
            # Callers handle BriefingError, not ExceptionGroup.
            raise group_error.exceptions[0] from None

    def _low_yield(
        self, sources: list[Source], cached: dict[str, list[CachedClaim]], run: _MapRun
    ) -> list[Source]:
        """Mapped sources that gave under MIN_YIELD of the claims asked (and have enough
        statements to give more)."""
        low = []
        for source in sources:
            if source.id in cached or source.id not in run.asked:
                continue
            asked = run.asked[source.id]
            enough = max(1, math.ceil(asked * MIN_YIELD))
            if run.got(source.id) < enough and run.statements.get(source.id, 0) > run.got(
                source.id
            ):
                low.append(source)
        return low

    # ------------------------------------------------------------ cache

    def _cache_key(self, source: Source, size: int, overlap: int) -> str:
        prompt = self.map_prompt
        return map_key(
            source,
            chunking={
                "chunk_tokens": size,
                "overlap_tokens": overlap,
                "encoding": self.settings.encoding,
                "claim_tokens": self.settings.claim_tokens,
                "packs": self._packs(),
            },
            prompt={"name": prompt.name, "version": prompt.version, "sha256": prompt.sha256},
            model=self.settings.model,
            parameters={**prompt.model_parameters, "api_base": self.settings.api_base},
        )

    async def _cached(self, keys: dict[str, str]) -> dict[str, list[CachedClaim]]:
        """Each source's kept claims, by source id; a cache that fails costs only the hits."""
        if self.cache is None or not keys:
            return {}
        cache = self.cache
        try:
            found = await asyncio.to_thread(cache.get_many, list(keys.values()))
        except BriefingError as exc:
            self.warnings.append(f"map cache not read: {exc}")
            return {}
        hits = {sid: found[key] for sid, key in keys.items() if key in found}
        self.usage += Usage(cache_hits=len(hits))
        return hits

    def _from_cache(
        self, cached: dict[str, list[CachedClaim]], sources: list[Source]
    ) -> list[tuple[str, list[Citation]]]:
        """Kept claims whose every citation still points into a source of this briefing."""
        by_id = {s.id: s for s in sources}
        out = []
        for claims in cached.values():
            for claim in claims:
                if all(
                    c.source_id in by_id and by_id[c.source_id].text[c.start : c.end] == c.quote
                    for c in claim.citations
                ):
                    out.append((claim.text, list(claim.citations)))
        return out

    async def _keep(
        self,
        keys: dict[str, str],
        mapped: dict[str, list[CachedClaim]],
        failed: set[str],
        cached: dict[str, list[CachedClaim]],
    ) -> None:
        if self.cache is None:
            return
        cache = self.cache
        fresh = [
            (keys[sid], sid, claims)
            for sid, claims in mapped.items()
            if sid in keys and sid not in failed and sid not in cached and claims
        ]

        def write() -> None:
            for key, sid, claims in fresh:
                cache.put(key, sid, claims)

        try:
            await asyncio.to_thread(write)
        except BriefingError as exc:
            self.warnings.append(f"map cache not written: {exc}")

    def _claim_rows(self, claims: list[_Claim]) -> list[dict[str, str]]:
        return [
            {"id": c.id, "source": ",".join(c.source_labels), "text": as_data(c.text)}
            for c in claims
        ]

    def _reduce_variables(
        self, claims: list[_Claim], sources: list[Source], labels: dict[str, str]
    ) -> dict[str, object]:
        if "groups" in self.reduce_prompt.input_variables:
            return {"groups": self._claim_groups(claims, sources, labels)}
        return {
            "claims": self._claim_rows(claims),
            "sources": [{"label": labels[s.id], "title": as_data(s.title)} for s in sources],
        }

    def _claim_groups(
        self, claims: list[_Claim], sources: list[Source], labels: dict[str, str]
    ) -> list[dict[str, object]]:
        """Claims grouped by the sources they rest on (briefing@2 on), groups in first-seen
        order: the source is named once per group instead of once per claim."""
        titles = {labels[s.id]: as_data(s.title) for s in sources}
        groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
        for claim in claims:
            key = tuple(claim.source_labels)
            groups.setdefault(key, []).append({"id": claim.id, "text": as_data(claim.text)})
        return [
            {
                "label": ", ".join(key),
                "title": titles[key[0]] if len(key) == 1 else "claims drawn from these sources",
                "claims": rows,
            }
            for key, rows in groups.items()
        ]

    def _room(self, prompt: PromptTemplate, variables: dict[str, object]) -> int:
        """Tokens left in the model's window after this prompt and its answer."""
        messages = prompt.render(variables)
        used = sum(count_tokens(m["content"], self.settings.encoding) + 4 for m in messages)
        out = int(prompt.model_parameters.get("max_tokens", self.settings.reduce_output_tokens))
        return self.client.context_tokens() - used - out - _SAFETY_TOKENS

    def _fits(self, prompt: PromptTemplate, variables: dict[str, object]) -> bool:
        return self._room(prompt, variables) >= 0

    async def _condense_until_fits(
        self, claims: list[_Claim], sources: list[Source], labels: dict[str, str]
    ) -> list[_Claim]:
        level = 0
        while not self._fits(self.reduce_prompt, self._reduce_variables(claims, sources, labels)):
            level += 1
            if level > _MAX_CONDENSE_LEVELS:
                raise LLMError(
                    f"claims still exceed the context of {self.client.model} after "
                    f"{_MAX_CONDENSE_LEVELS} condense levels; raise context_tokens or use a "
                    "model with a larger window"
                )
            self._use(self.condense_prompt)
            batches = self._batches(claims)
            self.progress(f"condense level {level}", 0, len(batches))
            done = await _all([self._condense(b) for b in batches])
            condensed = sum(len(part) for part, _ in done)
            if condensed >= len(claims):
                raise LLMError(
                    f"condensing did not reduce the claims ({len(claims)} -> {condensed}); "
                    f"{self.client.model} cannot fit them into its context"
                )
            # What another source backs must not vanish because a model merging claims
            # left it out: such claims go on as they stand, while the level still shrinks
            # the claims (the next level may merge them).
            room = len(claims) - 1 - condensed
            merged: list[_Claim] = []
            carried = 0
            for batch, (part, cited) in zip(batches, done, strict=True):
                merged.extend(part)
                for claim in batch:
                    if claim.backed and claim.id not in cited and carried < room:
                        merged.append(replace(claim, merged=(claim.id,)))
                        carried += 1
            kept = sum(len(cited) for _, cited in done) + carried
            joined = sum(1 for c in merged if len(c.merged) > 1)
            self.warnings.append(
                f"condense level {level}: {len(claims)} claims into {len(merged)} "
                f"({joined} of them merge several; {carried} claim(s) another source backs, "
                f"which no condensed claim cites, kept as they stand; {len(claims) - kept} "
                "claim(s) no condensed claim cites were left out)"
            )
            # New ids for the next level; what they merged was reported above.
            claims = [replace(c, id=f"C{n}", merged=()) for n, c in enumerate(merged, start=1)]
            self.progress(f"condense level {level}", len(batches), len(batches))
        return claims

    def _batches(self, claims: list[_Claim]) -> list[list[_Claim]]:
        """Greedy batches that each fit the condense prompt.

        Each claim's line is tokenised once and the template's own cost once, so batching
        stays linear in the number of claims instead of re-rendering every trial batch.
        """
        budget = self._room(self.condense_prompt, {"claims": [], "max_claims": len(claims)})
        batches: list[list[_Claim]] = []
        current: list[_Claim] = []
        used = 0
        for claim, row in zip(claims, self._claim_rows(claims), strict=True):
            line = count_tokens(
                f"[{row['id']}] ({row['source']}) {row['text']}\n", self.settings.encoding
            )
            if current and used + line > budget:
                batches.append(current)
                current, used = [], 0
            current.append(claim)
            used += line
        if current:
            batches.append(current)
        return batches

    async def _condense(self, batch: list[_Claim]) -> tuple[list[_Claim], set[str]]:
        """The batch condensed, and the ids of its claims the condensed ones cite. A
        condensed claim is backed where a claim it merges was (what another source says
        stays said), with their backing sentences."""
        variables = {"claims": self._claim_rows(batch), "max_claims": max(1, len(batch) // 2)}
        by_id = {c.id: c for c in batch}
        try:
            result = await self.client.structured(
                self.condense_prompt,
                variables,
                CondenseOutput,
                schema=citing_only(self.condense_prompt.output_schema, list(by_id)),
            )
        except ModelOutputError as exc:
            # Keep the batch as it was rather than lose its claims.
            self.usage += exc.usage
            self.warnings.append(f"condense step failed, batch kept unmerged: {exc}")
            return [replace(c, merged=(c.id,)) for c in batch], {c.id for c in batch}
        self.usage += result.usage
        out = []
        cited: set[str] = set()
        for point in result.value.claims:
            resolved = self._resolve_claims(point, by_id, "condense")
            if resolved:
                cites, sources = resolved
                parts = _cited_claims(point, by_id)
                ids = tuple(c.id for c in parts)
                cited.update(ids)
                out.append(
                    _Claim(
                        "",
                        point.text.strip(),
                        cites,
                        sources,
                        backed=any(c.backed for c in parts),
                        backers=frozenset().union(*(c.backers for c in parts)),
                        merged=ids,
                    )
                )
        return out, cited

    def _resolve_claims(
        self, point: Point, by_id: dict[str, _Claim], step: str
    ) -> tuple[list[Citation], list[str]] | None:
        found = _cited_claims(point, by_id)
        unknown = [i for i in point.claim_ids if _claim_key(i) not in by_id]
        if unknown or not found:
            self._report_unknown(step, point.text, unknown, bool(found))
        if not found:
            return None
        cites = merge_citations((c.citations for c in found), self._order)
        labels = sorted({s for c in found for s in c.source_labels})
        return cites, labels

    async def _reduce(
        self, claims: list[_Claim], sources: list[Source], labels: dict[str, str]
    ) -> Briefing:
        self._use(self.reduce_prompt)
        self.progress("reduce", 0, 1)
        result = await self.client.structured(
            self.reduce_prompt,
            self._reduce_variables(claims, sources, labels),
            ReduceOutput,
            schema=citing_only(self.reduce_prompt.output_schema, [c.id for c in claims]),
        )
        self.usage += result.usage
        self.progress("reduce", 1, 1)
        by_id = {c.id: c for c in claims}
        counter = iter(range(1, 10**9))
        remarks: list[str] = []
        ungrounded: list[str] = []

        def to_claims(points: list[Point], step: str) -> list[Claim]:
            out: dict[str, Claim] = {}
            for point in points:
                resolved = self._resolve_claims(point, by_id, step)
                if not resolved:
                    continue
                text, cut = _whole_sentences(point.text)
                if cut:
                    self.warnings.append(
                        f"{step}: {_short(cut)!r} was cut off at {MAX_POINT_CHARS} "
                        "characters and dropped"
                    )
                if not text:
                    continue
                point = point.model_copy(update={"text": text})
                for text, citations, grounded in self._split(point, by_id):
                    if is_remark(text):
                        # "The briefing discusses ...": no fact of the story to check.
                        remarks.append(text)
                        continue
                    if not grounded:
                        # Shares next to no words with any claim it cites: not what they
                        # say (a small model's "The U.S. administration has consistently
                        # used the word 'reset' ...", citing the first eight claims).
                        ungrounded.append(text)
                        continue
                    key = " ".join(text.lower().split())
                    if key in out:
                        # The same sentence twice in one section is one claim with both
                        # supports.
                        same = out[key]
                        same.citations = merge_citations([same.citations, citations], self._order)
                    else:
                        out[key] = Claim(id=f"c{next(counter)}", text=text, citations=citations)
            return list(out.values())

        value = result.value
        disagreements = []
        for item in value.disagreements:
            sides = to_claims(item.sides, f"disagreement {_short(item.topic)!r}")
            if len(sides) < 2:
                self.warnings.append(
                    f"disagreement {_short(item.topic)!r} dropped: fewer than two cited sides"
                )
                continue
            disagreements.append(Disagreement(topic=item.topic.strip(), claims=sides))
        before = len(remarks) + len(ungrounded)
        summary = to_claims(value.summary, "summary")
        # Sentences of the summary dropped here (remarks, or restating none of their
        # claims) leave a gap that map claims fill, as they fill a missing summary.
        thinned = len(remarks) + len(ungrounded) > before
        stated = {" ".join(c.text.lower().split()) for c in summary}
        # A key point that only repeats a summary sentence says nothing more.
        key_points = [
            c for c in to_claims(value.key_points, "key point")
            if " ".join(c.text.lower().split()) not in stated
        ]  # fmt: skip
        if remarks:
            self.warnings.append(
                f"{len(remarks)} sentence(s) of the reduce's answer spoke of the briefing, not "
                f"the story, and were dropped (the first: {_short(remarks[0])!r})"
            )
        if ungrounded:
            self.warnings.append(
                f"{len(ungrounded)} sentence(s) of the reduce's answer restated none of the "
                f"claims they cited and were dropped (the first: {_short(ungrounded[0])!r})"
            )
        if not summary or (thinned and len(summary) < MIN_SUMMARY):
            summary = self._stand_in_summary(claims, summary, key_points, counter)
        key_points = self._top_up(key_points, summary, claims, counter)
        return Briefing(
            id=f"brf_{uuid.uuid4().hex}",
            title=value.title.strip(),
            engine="llm",
            model=self.client.model,
            prompt=self.reduce_prompt.ref,
            prompts=[p.ref for p in self.used],
            sources=sources,
            summary=summary,
            key_points=key_points,
            disagreements=disagreements,
            usage=self.usage,
            warnings=self.warnings,
        )

    def _split(
        self, point: Point, by_id: dict[str, _Claim]
    ) -> list[tuple[str, list[Citation], bool]]:
        """A point of several sentences as one claim per sentence, each citing the cited
        claims it restates (by shared words): a paragraph citing twenty claims is checked
        sentence by sentence, not as a whole. The third item is False for a sentence that
        cites several claims and restates none of them (shares under _SPLIT_MATCH of its
        words with each): it says something else."""
        text = " ".join(point.text.split())
        found = [by_id[k] for k in map(_claim_key, point.claim_ids) if k in by_id]
        every = merge_citations((c.citations for c in found), self._order)
        spans = sentence_spans(text)
        if len(found) < 2:
            return [(text, every, True)]
        words = {c.id: _content_words(c.text) for c in found}
        if len(spans) < 2:
            mine = _content_words(text)
            best = max(_share(mine, theirs) for theirs in words.values())
            return [(text, every, best >= _SPLIT_MATCH)]
        out = []
        for start, end in spans:
            sentence = text[start:end]
            mine = _content_words(sentence)
            scores = {cid: _share(mine, theirs) for cid, theirs in words.items()}
            best = max(scores.values(), default=0.0)
            chosen = [c for c in found if best >= _SPLIT_MATCH and scores[c.id] >= best * 0.75]
            cites = merge_citations((c.citations for c in chosen), self._order) if chosen else every
            out.append((sentence, cites, bool(chosen)))
        return out

    def _weights_of(
        self, source: Source, part: Literal["summary", "key_points"]
    ) -> dict[tuple[int, int], float]:
        """`extractive.statement_weights` of a source, worked out once per briefing (the
        skim retry's chunking and the top-up both read them)."""
        got = self._weights.get((source.id, part))
        if got is None:
            got = self._weights[(source.id, part)] = statement_weights(source, part)
        return got

    def _weight(
        self,
        claim: _Claim,
        part: Literal["summary", "key_points"] = "key_points",
        alone: Mapping[str, float] | None = None,
        mapped: set[tuple[str, int, int]] | None = None,
    ) -> float:
        """How much a map claim counts as a key point (or summary sentence): the weightiest
        statement it cites, by the extractive engine's rank within its source (1.0 on
        average); a quarter more when another source backs it, and when none does, times
        `alone` of the source it rests on (`extractive.alone_weight` of `_backed_share`).

        Of two map claims stating one fact in two sources (one cites what backs the other,
        in `mapped`), the one from the source that echoes others less comes first: the
        article rather than its rewrite, whose version may drop who said it."""
        best = 0.0
        for c in claim.citations:
            source = self._sources.get(c.source_id)
            if source is None:
                continue
            weights = self._weights_of(source, part)
            best = max([best, *(w for (a, b), w in weights.items() if a < c.end and b > c.start)])
        if claim.backed:
            twins = {s for s, a, b in claim.backers if mapped and (s, a, b) in mapped}
            if alone and twins and claim.citations:
                mine = alone.get(claim.citations[0].source_id, 1.0)
                theirs = max(alone.get(s, 1.0) for s in twins)
                return best * _BACKED_WEIGHT * min(1.0, mine / theirs)
            return best * _BACKED_WEIGHT
        if alone and claim.citations:
            return best * alone.get(claim.citations[0].source_id, 1.0)
        return best

    def _weights_for(
        self,
        claims: Sequence[_Claim],
        part: Literal["summary", "key_points"],
        echoed: Mapping[str, float],
    ) -> list[float]:
        """`_weight` of each claim, with its source's alone weight (from `echoed`, the
        `_backed_share` of each source) and every span a map claim cites."""
        alone = {s: alone_weight(share) for s, share in echoed.items()}
        mapped = {span for c in claims for span in c.spans()}
        return [self._weight(c, part, alone, mapped) for c in claims]

    def _top_up(
        self,
        key_points: list[Claim],
        summary: list[Claim],
        claims: list[_Claim],
        counter: Iterator[int],
    ) -> list[Claim]:
        """Key points from the map step's claims where the reduce left a gap.

        When it gave fewer than MIN_KEY_POINTS of its own (a small model that wrote one
        paragraph), claims of every source follow up to BRIEFING_KEY_POINTS, the weightiest
        first (`_weight`: central, specific statements, backed ones ahead), each source at
        most its share of the statements mapped that no other source backs, in the whole
        briefing (so that a rewrite does not fill it with its additions, nor a long source
        crowd out the rest).
        When its summary and key points cite nothing of a source it was shown claims of (a
        small model that wrote only of the last source listed), claims of those sources follow,
        up to BRIEFING_KEY_POINTS in all and at least one each, an equal share each, the
        weightiest first (`_represent` sees to sources past BRIEFING_KEY_POINTS of them).
        None that restates a point already made."""
        wanted = self.settings.key_points
        made_points = [*summary, *key_points]
        echoed = _backed_share(claims)
        weights = self._weights_for(claims, "key_points", echoed)
        weight = dict(zip(map(id, claims), weights, strict=True))
        ranked = sorted((c for c in claims if c.citations), key=lambda c: -weight[id(c)])
        mentioned = {c.source_id for p in made_points for c in p.citations}
        starved = list(
            dict.fromkeys(
                c.citations[0].source_id
                for c in ranked
                if c.citations[0].source_id not in mentioned
            )
        )
        caps: dict[str, int]
        if len(key_points) < min(MIN_KEY_POINTS, wanted):
            target = wanted
            # Shares of the whole briefing, by what each source says that others do not
            # (a rewrite's statements that restate another source are that one's); what the
            # summary cites of a source counts.
            own = {
                s: self._statements.get(s, 0) * (1.0 - echoed.get(s, 0.0)) for s in self._sources
            }
            statements = sum(own.values()) or 1.0
            points = len(summary) + target
            cited = Counter(p.citations[0].source_id for p in made_points if p.citations)
            caps = {
                s: max(1, math.ceil(points * own[s] / statements)) - cited[s] for s in self._sources
            }
        elif starved:
            target = max(wanted, len(key_points) + min(len(starved), wanted))
            # An equal share each (at least one) of the points to add.
            share = max(1, -(-(target - len(key_points)) // len(starved)))
            caps = dict.fromkeys(starved, share)
        else:
            return key_points
        made = [_content_words(c.text) for c in made_points]
        used = _resting_on(made_points, claims)
        taken: Counter[str] = Counter()
        added: list[Claim] = []
        for claim in ranked:
            if len(key_points) + len(added) >= target:
                break
            source_id = claim.citations[0].source_id
            if taken[source_id] >= caps.get(source_id, 0):
                continue
            if claim.restates(used):
                continue  # the points made already rest on it, or on what backs it
            words = _content_words(claim.text)
            if any(_overlap(words, other) >= _SAME_POINT for other in made):
                continue
            made.append(words)
            used |= claim.spans() | claim.backers
            taken[source_id] += 1
            added.append(Claim(id=f"c{next(counter)}", text=claim.text, citations=claim.citations))
        if added:
            whose = (
                f" of {len(starved)} source(s) it cited nothing of"
                if len(key_points) >= min(MIN_KEY_POINTS, wanted)
                else ""
            )
            self.warnings.append(
                f"the reduce gave {len(key_points)} key point(s); {len(added)} more were taken "
                f"from the map step's claims{whose}"
            )
        return [*key_points, *added]

    def _stand_in_summary(
        self,
        claims: list[_Claim],
        summary: list[Claim],
        key_points: list[Claim],
        counter: Iterator[int],
    ) -> list[Claim]:
        """The summary, where the reduce wrote none, or fewer than MIN_SUMMARY once
        sentences of it were dropped, followed by map claims up to SUMMARY_CLAIMS in all:
        those other sources back first, then by the extractive summary's rank of what they
        cite (central, early), none that the summary or a key point already makes."""
        made = [_content_words(c.text) for c in [*summary, *key_points]]
        used = _resting_on([*summary, *key_points], claims)
        weight = self._weights_for(claims, "summary", _backed_share(claims))
        order = sorted(range(len(claims)), key=lambda n: (not claims[n].backed, -weight[n], n))
        chosen: list[Claim] = []
        for n in order:
            claim = claims[n]
            if len(summary) + len(chosen) >= SUMMARY_CLAIMS:
                break
            words = _content_words(claim.text)
            if (
                not claim.citations
                or claim.restates(used)
                or any(_overlap(words, w) >= _SAME_POINT for w in made)
            ):
                continue
            made.append(words)
            used |= claim.spans() | claim.backers
            chosen.append(Claim(id=f"c{next(counter)}", text=claim.text, citations=claim.citations))
        if chosen:
            self.warnings.append(
                f"the reduce gave no summary of the story; {len(chosen)} of the map step's "
                "claims stand in for it"
                if not summary
                else f"the reduce gave {len(summary)} summary sentence(s) about the story; "
                f"{len(chosen)} of the map step's claims follow"
            )
        return [*summary, *chosen]

    def _report_unknown(self, where: str, text: str, unknown: list[str], kept: bool) -> None:
        what = (
            f"cited ids that name nothing it was shown ({', '.join(unknown)})"
            if unknown
            else "cited nothing"
        )
        fate = "those ids were removed" if kept else "dropped, no valid citation left"
        self.warnings.append(f"{where}: {_short(text)!r} {what}; {fate}")

    def _use(self, prompt: PromptTemplate) -> None:
        if prompt not in self.used:
            self.used.append(prompt)


__all__ = ["MapReduce", "PromptRef"]
