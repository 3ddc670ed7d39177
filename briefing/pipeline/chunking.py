"""Token-aware, sentence-aligned chunks of a source, with overlap."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from pydantic import BaseModel

from briefing.models.tokens import get_encoding
from briefing.text.segment import Sentence

#: Tokens for the "[S12] " tag and line break each sentence gets in a prompt.
SENTENCE_TAG_TOKENS = 4


class Chunk(BaseModel):
    """Consecutive sentences of one source that fit a token budget together."""

    id: str
    source_id: str
    index: int
    sentences: list[Sentence]
    tokens: int

    @property
    def start(self) -> int:
        """Offset of the first character in the source's canonical text."""
        return self.sentences[0].start

    @property
    def end(self) -> int:
        """Offset just past the last character."""
        return self.sentences[-1].end


def sentence_tokens(sentences: list[Sentence], encoding: str) -> list[int]:
    """Tokens each sentence takes in a prompt, tag included; each sentence encoded once."""
    enc = get_encoding(encoding)
    # A plain loop, not encode_batch: that starts a pool of threads on every call, which
    # cost ten times the encoding itself for the sentences of one article.
    return [len(enc.encode(s.text, disallowed_special=())) + SENTENCE_TAG_TOKENS for s in sentences]


def chunk_sentences(
    sentences: list[Sentence], *, encoding: str, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Group sentences into chunks of at most `max_tokens` (a longer sentence stands alone).

    Each chunk after the first repeats the trailing sentences of the previous one that fit
    in `overlap_tokens`, so a claim that spans a boundary is seen whole at least once.
    """
    if overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be smaller than max_tokens")
    if not sentences:
        return []
    sizes = sentence_tokens(sentences, encoding)
    source_id = sentences[0].source_id
    chunks: list[Chunk] = []
    start = 0
    while start < len(sentences):
        end, total = start, 0
        while end < len(sentences) and (end == start or total + sizes[end] <= max_tokens):
            total += sizes[end]
            end += 1
        chunks.append(
            Chunk(
                id=f"{source_id}:{len(chunks) + 1}",
                source_id=source_id,
                index=len(chunks) + 1,
                sentences=sentences[start:end],
                tokens=total,
            )
        )
        if end >= len(sentences):
            break
        # Step back over whole sentences that fit the overlap, but never so far that the
        # next sentence no longer fits beside them: every chunk must bring a new sentence.
        back, carried = end, 0
        while (
            back - 1 > start
            and carried + sizes[back - 1] <= overlap_tokens
            and carried + sizes[back - 1] + sizes[end] <= max_tokens
        ):
            back -= 1
            carried += sizes[back]
        start = back
    return chunks


def chunk_at_weightiest(
    sentences: list[Sentence], weights: Sequence[float], *, encoding: str, max_tokens: int
) -> list[Chunk]:
    """Group consecutive sentences into about as many chunks as `max_tokens` calls for, each
    opening at one of the weightiest sentences (`weights`, one per sentence), no overlap.

    For a model that reads only the start of what it is shown: whatever else it skips, it
    reads the sentences that matter most. Openings are at least half a chunk's worth of
    sentences apart, so that no chunk is a sentence or two; the sentences before the first
    opening join the first chunk when they are fewer than that.
    """
    if not sentences:
        return []
    if len(weights) != len(sentences):
        raise ValueError("one weight per sentence is needed")
    sizes = sentence_tokens(sentences, encoding)
    wanted = max(1, -(-sum(sizes) // max_tokens))
    gap = max(1, len(sentences) // (2 * wanted))
    opens: list[int] = []
    for i in sorted(range(len(sentences)), key=lambda i: (-weights[i], i)):
        if len(opens) >= wanted:
            break
        if all(abs(i - j) >= gap for j in opens):
            opens.append(i)
    opens.sort()
    if opens[0] < gap:
        opens[0] = 0
    else:
        opens.insert(0, 0)
    source_id = sentences[0].source_id
    bounds = [*opens, len(sentences)]
    return [
        Chunk(
            id=f"{source_id}:{n}",
            source_id=source_id,
            index=n,
            sentences=sentences[a:b],
            tokens=sum(sizes[a:b]),
        )
        for n, (a, b) in enumerate(pairwise(bounds), start=1)
    ]
