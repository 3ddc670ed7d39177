"""Sentence segmentation: every sentence is an exact, ordered, stripped span of its source."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from briefing.schema import Source
from briefing.text.segment import Sentence, segment
from briefing.text.sources import load_source, source_from_text

SEEDS = sorted((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))


def assert_exact_spans(source: Source, sentences: list[Sentence]) -> None:
    previous_end = 0
    for n, sentence in enumerate(sentences, start=1):
        assert sentence.id == f"S{n}"
        assert sentence.index == n
        assert sentence.source_id == source.id
        assert 0 <= sentence.start < sentence.end <= len(source.text)
        assert source.text[sentence.start : sentence.end] == sentence.text
        assert sentence.text == sentence.text.strip()
        assert sentence.start >= previous_end, "spans overlap or are out of order"
        previous_end = sentence.end


def assert_no_words_lost(source: Source, sentences: list[Sentence]) -> None:
    # No word falls between sentences. (A segmenter may leave out trailing punctuation after an
    # abbreviation, as in "Mr.!!", so only letters and digits are checked.)
    gaps, cursor = [], 0
    for sentence in sentences:
        gaps.append(source.text[cursor : sentence.start])
        cursor = sentence.end
    gaps.append(source.text[cursor:])
    lost = [gap for gap in gaps if any(ch.isalnum() for ch in gap)]
    assert lost == []


def test_seed_files_exist() -> None:
    assert len(SEEDS) == 2


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_seed_sentences_are_exact_spans(path: Path) -> None:
    source = load_source(path)
    sentences = segment(source)
    assert len(sentences) > 20
    assert_exact_spans(source, sentences)


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_seed_sentences_cover_all_text(path: Path) -> None:
    source = load_source(path)
    sentences = segment(source)

    # Ordered spans whose non-space characters add up to the whole text: only whitespace
    # lies between sentences.
    def squeeze(text: str) -> str:
        return "".join(text.split())

    assert "".join(squeeze(s.text) for s in sentences) == squeeze(source.text)


def texts(source: Source) -> list[str]:
    return [s.text for s in segment(source)]


def test_abbreviations_do_not_end_sentences() -> None:
    source = source_from_text(
        "The U.S. economy grew last year. Dr. Smith met Mr. Jones at 3 p.m. on Friday."
    )
    assert texts(source) == [
        "The U.S. economy grew last year.",
        "Dr. Smith met Mr. Jones at 3 p.m. on Friday.",
    ]
    assert_exact_spans(source, segment(source))


def test_quotes() -> None:
    source = source_from_text('He said "It is over." Then he left. \u201cReally?\u201d she asked.')
    sentences = segment(source)
    assert_exact_spans(source, sentences)
    assert sentences[-1].text.endswith("she asked.")
    assert "Then he left." in [s.text for s in sentences]


def test_repeated_identical_sentences_get_distinct_spans() -> None:
    source = source_from_text("Same sentence. Same sentence. Same sentence.")
    sentences = segment(source)
    assert [s.text for s in sentences] == ["Same sentence."] * 3
    assert [s.start for s in sentences] == [0, 15, 30]
    assert_exact_spans(source, sentences)


def test_repeated_lines_get_distinct_spans() -> None:
    source = source_from_text("Breaking news\nBody.\nBreaking news\nBody.")
    sentences = segment(source)
    assert [s.text for s in sentences] == ["Breaking news", "Body.", "Breaking news", "Body."]
    assert_exact_spans(source, sentences)


def test_multiple_spaces_are_kept_inside_and_dropped_around() -> None:
    source = source_from_text("   Lots   of    spaces.   Another    one.   ")
    sentences = segment(source)
    assert [s.text for s in sentences] == ["Lots   of    spaces.", "Another    one."]
    assert_exact_spans(source, sentences)


def test_newlines_without_full_stops_end_sentences() -> None:
    source = source_from_text("Headline without stop\n\nBody line one\nBody line two.\n")
    sentences = segment(source)
    assert [s.text for s in sentences] == [
        "Headline without stop",
        "Body line one",
        "Body line two.",
    ]
    assert_exact_spans(source, sentences)


def test_non_ascii_text() -> None:
    source = source_from_text(
        "Caf\u00e9 au lait co\u00fbte 3 \u20ac. \u00dcber alles! "
        "\u65e5\u672c\u8a9e\u306e\u6587\u3067\u3059\u3002 \u041f\u0440\u0438\u0432\u0435\u0442, "
        "\u043c\u0438\u0440. \U0001f600 Emoji too."
    )
    sentences = segment(source)
    assert len(sentences) >= 3
    assert sentences[0].text == "Caf\u00e9 au lait co\u00fbte 3 \u20ac."
    assert_exact_spans(source, sentences)


def test_offsets_index_the_canonical_text() -> None:
    # CRLF and decomposed accents are canonicalised first; offsets refer to the result.
    source = source_from_text("Cafe\u0301 opens.\r\nIt is busy.\r\n")
    sentences = segment(source)
    assert [s.text for s in sentences] == ["Caf\u00e9 opens.", "It is busy."]
    assert sentences[1].start == len("Caf\u00e9 opens.\n")
    assert_exact_spans(source, sentences)


def test_whitespace_between_lines_is_not_a_sentence() -> None:
    source = source_from_text("First line.\n   \n\t\nSecond line.")
    assert texts(source) == ["First line.", "Second line."]


WORDS = st.sampled_from(
    [
        "the",
        "U.S.",
        "Dr.",
        "Mr.",
        "e.g.",
        "3.5",
        "Putin",
        "caf\u00e9",
        "na\u00efve",
        "\u65e5\u672c",
        "\u201cquoted\u201d",
        '"said"',
        "'it'",
        "(aside)",
        "$10",
        "1,000",
        "--",
        "...",
        "U.K.",
        "etc.",
    ]
)
PUNCT = st.sampled_from([".", "!", "?", ",", ";", ":", "...", '."', ".)", "?!", ""])
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\n\n", " \n ", "\t", "\r\n"])
TOKEN = st.one_of(WORDS, PUNCT, SEPARATORS, st.text(min_size=1, max_size=6))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOKEN, min_size=1, max_size=40).map("".join))
def test_random_text_spans_are_exact_and_ordered(text: str) -> None:
    if "\x00" in text or not text.strip():
        return
    source = source_from_text(text)
    sentences = segment(source)
    assert_exact_spans(source, sentences)
    assert_no_words_lost(source, sentences)
