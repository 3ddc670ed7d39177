"""Sentence segmentation with exact character spans into a source's canonical text."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    import pysbd

    from briefing.sources import Source

_PARAGRAPH = re.compile(r"[^\n]+")


class Sentence(BaseModel):
    """One sentence; `source.text[start:end] == text` holds by construction."""

    id: str
    source_id: str
    index: int
    start: int
    end: int
    text: str


@functools.cache
def _segmenter() -> pysbd.Segmenter:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=False)


def segment(source: Source) -> list[Sentence]:
    """Split a source into sentences; ids are S1, S2, ... in reading order."""
    spans = sentence_spans(source.text)
    return [
        Sentence(
            id=f"S{i}",
            source_id=source.id,
            index=i,
            start=start,
            end=end,
            text=source.text[start:end],
        )
        for i, (start, end) in enumerate(spans, start=1)
    ]


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, shifted by `offset`; stripped of whitespace."""
    spans: list[tuple[int, int]] = []
    # Lines are segmented one at a time: a line break ends a sentence in these texts
    # (headlines carry no full stop), and pysbd is faster on short inputs.
    for para in _PARAGRAPH.finditer(text):
        spans.extend(_sentence_spans(para.group(), offset + para.start()))
    return spans


def _sentence_spans(paragraph: str, offset: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in _segmenter().segment(paragraph):
        stripped = piece.strip()
        if not stripped:
            continue
        # pysbd returns the text as written; locating it from the cursor gives exact
        # offsets even when the same sentence occurs twice.
        at = paragraph.find(stripped, cursor)
        if at < 0:
            # pysbd altered the text (it should not with clean=False): keep the rest of
            # the paragraph as one span rather than invent offsets.
            rest = paragraph[cursor:]
            lead = len(rest) - len(rest.lstrip())
            if rest.strip():
                spans.append((offset + cursor + lead, offset + len(paragraph.rstrip())))
            return spans
        spans.append((offset + at, offset + at + len(stripped)))
        cursor = at + len(stripped)
    return spans
