"""Token-aware, sentence-aligned chunks of a source, with overlap."""

from __future__ import annotations

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
