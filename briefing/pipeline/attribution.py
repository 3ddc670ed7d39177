"""Who said it: a claim that restates a quotation names the one quoted.

A model asked for claims copies out the words of a quotation and drops the speaker: '"The
Trump administration is eager to make a deal ...," said Jennifer Kavanagh' becomes "The Trump
administration is eager to make a deal ...", one analyst's view given as a fact of the story.
A claim whose words come from inside the quotations of the sentences it cites, and that names
none of their speakers, gets the speaker back ("..., Jennifer Kavanagh said."), but only where
the name stands in what the claim cites, so that the reader sees it there too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from briefing.faithfulness.contradiction import Quote, quotations, soft_content, surname
from briefing.schema import Citation, Source

__all__ = ["Attributor"]

_CLOSING_QUOTES = "\"'\u201d\u2019\u00bb"
_END_PUNCTUATION = ".,;:!?\u2026 "
_LETTERS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class _Quoted:
    """A cited span's quotations: their speaker, and the content words inside and outside."""

    speaker: str | None
    inside: frozenset[str]
    outside: frozenset[str]


class Attributor:
    """Puts the speaker back into claims drawn from quotations of the given sources (each
    source's quotations are found once, when a claim first cites it)."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self._sources = {s.id: s for s in sources}
        self._quotes: dict[str, list[Quote]] = {}

    def __call__(self, text: str, citations: Sequence[Citation]) -> str:
        """`text` with its speaker named, when it restates the quotation of one speaker
        that its citations hold and names no speaker of them; else `text` unchanged."""
        spans = [self._quoted(c) for c in citations]
        speakers = {s.speaker for s in spans if s.speaker is not None}
        if len(speakers) != 1 or any(s.speaker is None and s.inside for s in spans):
            # No quotation, several speakers, or one whose speaker the span does not name.
            return text
        speaker = speakers.pop()
        words = soft_content(text)
        if surname(speaker) in {w.lower() for w in _LETTERS.findall(text)}:
            return text
        inside = frozenset().union(*(s.inside for s in spans))
        outside = frozenset().union(*(s.outside for s in spans))
        # The claim's words must come from what the speaker said, not from the narration
        # around it ("Green said the failures led Moscow to ..." is the reporter's).
        if len(words & inside) <= len(words & outside - inside):
            return text
        return _said(text, speaker)

    def _quoted(self, citation: Citation) -> _Quoted:
        source = self._sources.get(citation.source_id)
        if source is None:
            return _Quoted(None, frozenset(), frozenset())
        quotes = self._quotes.get(source.id)
        if quotes is None:
            quotes = self._quotes[source.id] = [
                q for q in quotations(source.text) if q.end - q.start > 3
            ]
        start, end = citation.start, citation.end
        cited = source.text[start:end]
        within = [q for q in quotes if q.start < end and q.end > start]
        # A quotation inside another is the outer speaker's words ("Putin describes his past
        # as 'working with people,'" Lowe said): only the outermost speak.
        outer = [
            q for q in within
            if not any(o is not q and o.start <= q.start and q.end <= o.end for o in within)
        ]  # fmt: skip
        speakers = {q.speaker for q in outer if q.speaker is not None}
        # The speaker must be named in the cited span itself, where the reader checks it
        # (a quotation's speaker found sentences away may be a guess).
        speaker = speakers.pop() if len(speakers) == 1 else None
        if speaker is not None and surname(speaker) not in cited.lower():
            speaker = None
        inside, outside, at = [], [], start
        for q in sorted(outer, key=lambda q: q.start):
            a, b = max(q.start, at), min(q.end, end)
            if b <= a:
                continue
            outside.append(source.text[at:a])
            inside.append(source.text[a:b])
            at = b
        outside.append(source.text[at:end])
        return _Quoted(speaker, soft_content(" ".join(inside)), soft_content(" ".join(outside)))


def _said(text: str, speaker: str) -> str:
    """'The talks stalled.' -> 'The talks stalled, Ann Lee said.' (a quoted ending keeps
    its quotation mark: '"The talks stalled," Ann Lee said.')."""
    body = text.rstrip()
    closing = ""
    while body and body[-1] in _CLOSING_QUOTES:
        closing = body[-1] + closing
        body = body[:-1]
    body = body.rstrip(_END_PUNCTUATION)
    if closing:
        return f"{body},{closing} {speaker} said."
    return f"{body}, {speaker} said."
