"""Citations are made by code from sentence spans, never taken from a model's text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from briefing.schema import Briefing, Citation, Source
from briefing.text.segment import Sentence

_SENTENCE_ID = re.compile(r"^\s*\[?\s*[Ss]?\s*(\d+)\s*\]?\s*$")


def normalize_sentence_id(raw: object) -> str | None:
    """'S12', 's12', '[S12]', '12' and 12 all name sentence S12; anything else is None."""
    match = _SENTENCE_ID.match(str(raw))
    return f"S{int(match.group(1))}" if match else None


def citation_for(sentence: Sentence, source: Source) -> Citation:
    """The citation of one whole sentence, its quote sliced from the canonical text."""
    return Citation(
        source_id=source.id,
        start=sentence.start,
        end=sentence.end,
        quote=source.text[sentence.start : sentence.end],
    )


def resolve_sentence_ids(
    ids: Iterable[object], shown: Mapping[str, Sentence], source: Source | Mapping[str, Source]
) -> tuple[list[Citation], list[str]]:
    """Citations for the ids that name a sentence in `shown`, and the ids that do not.

    `source` is the one source every shown sentence belongs to, or, when a prompt showed
    sentences of several sources, the sources by id.
    """
    citations: list[Citation] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for raw in ids:
        key = normalize_sentence_id(raw)
        sentence = shown.get(key) if key else None
        if sentence is None:
            unknown.append(str(raw))
            continue
        if key not in seen:
            seen.add(key)  # type: ignore[arg-type]
            owner = source if isinstance(source, Source) else source[sentence.source_id]
            citations.append(citation_for(sentence, owner))
    return citations, unknown


def merge_citations(
    groups: Iterable[Iterable[Citation]], order: Mapping[str, int]
) -> list[Citation]:
    """Union of citations, without duplicates, in source order then text order."""
    unique = {(c.source_id, c.start, c.end): c for group in groups for c in group}
    return sorted(unique.values(), key=lambda c: (order.get(c.source_id, 0), c.start, c.end))


def citation_problems(briefing: Briefing) -> list[str]:
    """Every citation whose quote is not exactly its span of a briefing source."""
    texts = {s.id: s.text for s in briefing.sources}
    problems: list[str] = []
    for claim in briefing.claims():
        for c in claim.citations:
            text = texts.get(c.source_id)
            if text is None:
                problems.append(f"claim {claim.id}: unknown source {c.source_id}")
            elif not (0 <= c.start < c.end <= len(text)) or text[c.start : c.end] != c.quote:
                problems.append(
                    f"claim {claim.id}: quote differs from {c.source_id}[{c.start}:{c.end}]"
                )
    return problems
