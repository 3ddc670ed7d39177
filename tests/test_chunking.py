"""Chunking: sentence-aligned, token-bounded chunks that overlap by whole sentences."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from briefing.errors import ConfigError
from briefing.models.tokens import count_tokens, get_encoding
from briefing.pipeline.chunking import (
    SENTENCE_TAG_TOKENS,
    Chunk,
    chunk_at_weightiest,
    chunk_sentences,
)
from briefing.text.segment import Sentence, segment
from briefing.text.sources import load_source, source_from_text

ENCODING = "o200k_base"
SEEDS = sorted((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))


def size(sentence: Sentence) -> int:
    return len(get_encoding(ENCODING).encode(sentence.text)) + SENTENCE_TAG_TOKENS


def assert_chunking(
    sentences: list[Sentence], chunks: list[Chunk], max_tokens: int, overlap_tokens: int
) -> None:
    """Every property chunk_sentences promises, checked from the outside."""
    if not sentences:
        assert chunks == []
        return
    position = {s.index: n for n, s in enumerate(sentences)}
    runs: list[list[int]] = []
    for n, chunk in enumerate(chunks, start=1):
        assert chunk.index == n
        assert chunk.id == f"{sentences[0].source_id}:{n}"
        assert chunk.source_id == sentences[0].source_id
        assert chunk.sentences, "a chunk without sentences"
        run = [position[s.index] for s in chunk.sentences]
        # Sentence-aligned: a contiguous run of whole sentences, in order.
        assert run == list(range(run[0], run[-1] + 1))
        assert chunk.sentences == sentences[run[0] : run[-1] + 1]
        assert chunk.tokens == sum(size(s) for s in chunk.sentences)
        assert chunk.start == chunk.sentences[0].start
        assert chunk.end == chunk.sentences[-1].end
        if len(chunk.sentences) > 1:
            assert chunk.tokens <= max_tokens, f"chunk {n} has {chunk.tokens} tokens"
        runs.append(run)
    assert runs[0][0] == 0
    assert runs[-1][-1] == len(sentences) - 1
    for prev, nxt in itertools.pairwise(runs):
        # No gap, and the start moves forward.
        assert prev[0] < nxt[0] <= prev[-1] + 1
        # Each chunk brings at least one sentence the previous one did not have; a chunk
        # made only of repeated sentences is a wasted model call.
        assert nxt[-1] > prev[-1], f"chunk {nxt} adds nothing to {prev}"
        repeated = sentences[nxt[0] : prev[-1] + 1]
        assert sum(size(s) for s in repeated) <= overlap_tokens
    covered = {i for run in runs for i in run}
    assert covered == set(range(len(sentences)))


def sentences_of(text: str) -> list[Sentence]:
    return segment(source_from_text(text))


# --- tokens -----------------------------------------------------------------------------


def test_count_tokens_is_offline_and_stable() -> None:
    assert count_tokens("hello world", ENCODING) == 2
    assert count_tokens("", ENCODING) == 0


def test_special_token_text_counts_as_text() -> None:
    assert count_tokens("<|endoftext|>", ENCODING) > 1


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no-such-encoding"):
        get_encoding("no-such-encoding")


NO_NETWORK = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network disabled by the test")

socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def run_offline(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_NETWORK + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")
    }
    # tiktoken's own default cache lives under the temp dir: make it an empty one.
    env["TMPDIR"] = str(tmp_path)
    return env


def test_encodings_load_without_network_or_cache_variables(tmp_path: Path) -> None:
    result = run_offline(
        """
        import os
        from briefing.models.tokens import count_tokens
        print(count_tokens("hello world", "o200k_base"), count_tokens("hello world", "cl100k_base"))
        print(os.environ["TIKTOKEN_CACHE_DIR"])
        """,
        clean_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    counts, cache_dir = result.stdout.splitlines()
    assert counts == "2 2"
    # The files come from the litellm package, not a download cache.
    assert "litellm" in Path(cache_dir).parts
    assert list(tmp_path.iterdir()) == []


def test_missing_encoding_files_are_a_config_error_not_a_download(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    env["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "empty-cache")
    result = run_offline(
        """
        from briefing.errors import ConfigError
        from briefing.models.tokens import get_encoding
        try:
            get_encoding("o200k_base")
        except ConfigError as exc:
            print("ConfigError:", exc)
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ConfigError:")
    assert "not available offline" in result.stdout


# --- chunking ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"), [(1200, 120), (300, 60), (100, 30), (64, 0), (80, 79)]
)
def test_seed_chunks(path: Path, max_tokens: int, overlap_tokens: int) -> None:
    sentences = segment(load_source(path))
    chunks = chunk_sentences(
        sentences, encoding=ENCODING, max_tokens=max_tokens, overlap_tokens=overlap_tokens
    )
    assert_chunking(sentences, chunks, max_tokens, overlap_tokens)


def test_a_short_text_is_one_chunk() -> None:
    sentences = sentences_of("One short sentence. Another short one.")
    chunks = chunk_sentences(sentences, encoding=ENCODING, max_tokens=1200, overlap_tokens=120)
    assert len(chunks) == 1
    assert chunks[0].sentences == sentences


def test_no_overlap_partitions_the_sentences() -> None:
    sentences = segment(load_source(SEEDS[0]))
    chunks = chunk_sentences(sentences, encoding=ENCODING, max_tokens=100, overlap_tokens=0)
    assert [s for c in chunks for s in c.sentences] == sentences


def test_overlap_repeats_trailing_sentences() -> None:
    sentences = segment(load_source(SEEDS[0]))
    chunks = chunk_sentences(sentences, encoding=ENCODING, max_tokens=200, overlap_tokens=60)
    assert len(chunks) > 3
    repeated = [prev.sentences[-1] in nxt.sentences for prev, nxt in itertools.pairwise(chunks)]
    assert any(repeated)
    assert_chunking(sentences, chunks, 200, 60)


def test_an_oversize_sentence_stands_alone() -> None:
    long = " ".join(["word"] * 150) + "."
    sentences = sentences_of(f"Short one here. {long} Another short one.")
    assert len(sentences) == 3
    chunks = chunk_sentences(sentences, encoding=ENCODING, max_tokens=64, overlap_tokens=10)
    oversize = [c for c in chunks if c.tokens > 64]
    assert [c.sentences for c in oversize] == [[sentences[1]]]
    assert_chunking(sentences, chunks, 64, 10)


def test_large_overlap_still_brings_a_new_sentence_each_chunk() -> None:
    # Sizes 7, 15, 17 and 65 tokens: after [S1 S2 S3] the overlap may carry S2 and S3, but
    # then S4 does not fit, so carrying them makes chunks that add nothing new.
    text = (
        "Cats sleep. Dogs bark loudly at night near the old barn today. "
        "Birds sing songs in the morning near the big lake here. " + " ".join(["word"] * 60) + "."
    )
    sentences = sentences_of(text)
    assert [size(s) for s in sentences] == [7, 15, 17, 65]
    chunks = chunk_sentences(sentences, encoding=ENCODING, max_tokens=40, overlap_tokens=39)
    assert_chunking(sentences, chunks, 40, 39)


def test_empty_input_gives_no_chunks() -> None:
    assert chunk_sentences([], encoding=ENCODING, max_tokens=100, overlap_tokens=10) == []


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(100, 100), (100, 150), (64, 64)])
def test_overlap_not_below_max_is_refused(max_tokens: int, overlap_tokens: int) -> None:
    sentences = sentences_of("One sentence here.")
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_sentences(
            sentences, encoding=ENCODING, max_tokens=max_tokens, overlap_tokens=overlap_tokens
        )


def make_sentences(lengths: list[int]) -> list[Sentence]:
    """Sentences of roughly the given numbers of words, at their offsets in one text."""
    out: list[Sentence] = []
    cursor = 0
    for n, words in enumerate(lengths, start=1):
        text = " ".join(["alpha", "beta", "gamma"][i % 3] for i in range(words)) + "."
        out.append(
            Sentence(
                id=f"S{n}",
                source_id="src",
                index=n,
                start=cursor,
                end=cursor + len(text),
                text=text,
            )
        )
        cursor += len(text) + 1
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=120), min_size=0, max_size=40),
    max_tokens=st.integers(min_value=8, max_value=300),
    overlap_fraction=st.floats(min_value=0.0, max_value=0.99),
)
def test_chunking_properties(lengths: list[int], max_tokens: int, overlap_fraction: float) -> None:
    overlap_tokens = int(max_tokens * overlap_fraction)
    sentences = make_sentences(lengths)
    chunks = chunk_sentences(
        sentences, encoding=ENCODING, max_tokens=max_tokens, overlap_tokens=overlap_tokens
    )
    # Progress: never more chunks than sentences (and so no endless loop).
    assert len(chunks) <= len(sentences)
    assert_chunking(sentences, chunks, max_tokens, overlap_tokens)


def test_chunks_open_at_the_weightiest_sentences_and_cover_each_once() -> None:
    source = source_from_text(
        " ".join(f"Sentence number {n} of the harbour report says one thing." for n in range(24)),
        title="Report",
    )
    sentences = segment(source)
    assert len(sentences) == 24
    weights = [0.1] * 24
    for heavy in (5, 13, 19):
        weights[heavy] = 3.0
    per = size(sentences[0])
    chunks = chunk_at_weightiest(sentences, weights, encoding=ENCODING, max_tokens=per * 8)
    # Three chunks' worth, each opening at a weighty sentence; the five sentences before
    # the first are more than half a chunk's (four), so they are a chunk of their own.
    assert [sentences.index(c.sentences[0]) for c in chunks] == [0, 5, 13, 19]
    weights[5] = 0.1
    weights[2] = 3.0
    # A lead-in shorter than that joins the first chunk.
    fewer = chunk_at_weightiest(sentences, weights, encoding=ENCODING, max_tokens=per * 8)
    assert [sentences.index(c.sentences[0]) for c in fewer] == [0, 13, 19]
    assert [s for c in chunks for s in c.sentences] == sentences
    assert all(c.tokens == sum(size(s) for s in c.sentences) for c in chunks)
    # Weights of equal rank open nothing beside each other: openings keep their distance.
    flat = chunk_at_weightiest(sentences, [1.0] * 24, encoding=ENCODING, max_tokens=per * 8)
    starts = [sentences.index(c.sentences[0]) for c in flat]
    assert all(b - a >= 4 for a, b in itertools.pairwise(starts))
    with pytest.raises(ValueError, match="one weight per sentence"):
        chunk_at_weightiest(sentences, [1.0], encoding=ENCODING, max_tokens=100)
    assert chunk_at_weightiest([], [], encoding=ENCODING, max_tokens=100) == []
