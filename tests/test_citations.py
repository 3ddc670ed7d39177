"""Citations: sentence ids become exact spans; tampered or stray citations are caught."""

from __future__ import annotations

import pytest

from briefing.pipeline.citations import (
    citation_for,
    citation_problems,
    merge_citations,
    normalize_sentence_id,
    resolve_sentence_ids,
)
from briefing.schema import Briefing, Citation, Claim, Disagreement, Source
from briefing.text.segment import Sentence, segment
from briefing.text.sources import source_from_text

TEXT_A = (
    "The council met on Monday. It approved the budget. Caf\u00e9 owners objected.\r\n"
    "The vote was seven to two."
)
TEXT_B = "A second source says the vote was close. It was held at night."


@pytest.fixture
def source_a() -> Source:
    return source_from_text(TEXT_A, title="A")


@pytest.fixture
def source_b() -> Source:
    return source_from_text(TEXT_B, title="B")


def shown(source: Source) -> dict[str, Sentence]:
    return {s.id: s for s in segment(source)}


def assert_exact(citation: Citation, source: Source) -> None:
    assert citation.source_id == source.id
    assert source.text[citation.start : citation.end] == citation.quote


# --- sentence ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["S12", "s12", "[S12]", "12", 12, " S12 ", "[ s 12 ]", "S012", "[12]"]
)
def test_normalize_accepts_the_forms_models_write(raw: object) -> None:
    assert normalize_sentence_id(raw) == "S12"


@pytest.mark.parametrize(
    "raw", ["X1", "S", "1.5", "", "S1S2", "S-1", "C12", "S12a", None, 1.5, "twelve"]
)
def test_normalize_rejects_anything_else(raw: object) -> None:
    assert normalize_sentence_id(raw) is None


# --- resolving ids ----------------------------------------------------------------------


def test_citation_for_slices_the_canonical_text(source_a: Source) -> None:
    sentences = segment(source_a)
    citation = citation_for(sentences[2], source_a)
    assert citation.quote == "Caf\u00e9 owners objected."
    assert_exact(citation, source_a)


def test_resolve_known_ids_gives_exact_citations(source_a: Source) -> None:
    citations, unknown = resolve_sentence_ids(["S1", "[S3]", 4], shown(source_a), source_a)
    assert unknown == []
    assert [c.quote for c in citations] == [
        "The council met on Monday.",
        "Caf\u00e9 owners objected.",
        "The vote was seven to two.",
    ]
    for citation in citations:
        assert_exact(citation, source_a)


def test_resolve_lists_unknown_ids(source_a: Source) -> None:
    citations, unknown = resolve_sentence_ids(["S2", "S99", "X1", 0], shown(source_a), source_a)
    assert [c.quote for c in citations] == ["It approved the budget."]
    assert unknown == ["S99", "X1", "0"]


def test_resolve_only_accepts_sentences_that_were_shown(source_a: Source) -> None:
    # A model shown one chunk must not cite a sentence outside it, even one that exists.
    only_first_two = {k: v for k, v in shown(source_a).items() if k in ("S1", "S2")}
    citations, unknown = resolve_sentence_ids(["S1", "S3"], only_first_two, source_a)
    assert [c.start for c in citations] == [0]
    assert unknown == ["S3"]


def test_resolve_deduplicates_keeping_first_order(source_a: Source) -> None:
    citations, unknown = resolve_sentence_ids(
        ["S2", "s2", "[S2]", 2, "S1", "S2"], shown(source_a), source_a
    )
    assert unknown == []
    assert [c.quote for c in citations] == ["It approved the budget.", "The council met on Monday."]


def test_resolve_nothing(source_a: Source) -> None:
    assert resolve_sentence_ids([], shown(source_a), source_a) == ([], [])


# --- merging ----------------------------------------------------------------------------


def test_merge_orders_by_source_then_offset_and_deduplicates(
    source_a: Source, source_b: Source
) -> None:
    a = shown(source_a)
    b = shown(source_b)
    cite_a = {k: citation_for(v, source_a) for k, v in a.items()}
    cite_b = {k: citation_for(v, source_b) for k, v in b.items()}
    groups = [
        [cite_b["S2"], cite_a["S3"]],
        [cite_a["S1"], cite_b["S1"], cite_a["S3"]],
        [cite_b["S2"].model_copy()],
    ]
    merged = merge_citations(groups, {source_a.id: 0, source_b.id: 1})
    assert merged == [cite_a["S1"], cite_a["S3"], cite_b["S1"], cite_b["S2"]]
    # Source order comes from the mapping, not from ids or first appearance.
    reversed_order = merge_citations(groups, {source_a.id: 1, source_b.id: 0})
    assert reversed_order == [cite_b["S1"], cite_b["S2"], cite_a["S1"], cite_a["S3"]]


def test_merge_of_nothing_is_empty() -> None:
    assert merge_citations([], {}) == []
    assert merge_citations([[], []], {}) == []


# --- checking a briefing ----------------------------------------------------------------


def briefing_of(sources: list[Source], claims: list[Claim]) -> Briefing:
    return Briefing(
        id="brf_test",
        title="Test",
        engine="llm",
        model="test/model",
        prompt=None,
        sources=sources,
        summary=claims,
        key_points=[],
    )


def claim(claim_id: str, *citations: Citation) -> Claim:
    return Claim(id=claim_id, text="A claim.", citations=list(citations), verdict="supported")


def test_exact_citations_have_no_problems(source_a: Source, source_b: Source) -> None:
    a = shown(source_a)
    b = shown(source_b)
    briefing = briefing_of(
        [source_a, source_b],
        [
            claim("c1", citation_for(a["S1"], source_a), citation_for(b["S2"], source_b)),
            claim("c2", citation_for(a["S4"], source_a)),
        ],
    )
    assert citation_problems(briefing) == []


def test_tampered_quote_is_reported(source_a: Source) -> None:
    good = citation_for(shown(source_a)["S2"], source_a)
    tampered = good.model_copy(update={"quote": "It rejected the budget."})
    problems = citation_problems(
        briefing_of([source_a], [claim("c1", good), claim("c2", tampered)])
    )
    assert len(problems) == 1
    assert "c2" in problems[0]
    assert source_a.id in problems[0]


def test_quote_of_another_span_is_reported(source_a: Source) -> None:
    first, second = segment(source_a)[:2]
    shifted = Citation(source_id=source_a.id, start=second.start, end=second.end, quote=first.text)
    assert len(citation_problems(briefing_of([source_a], [claim("c1", shifted)]))) == 1


@pytest.mark.parametrize("where", ["past_end", "empty", "reversed"])
def test_bad_span_is_reported(source_a: Source, where: str) -> None:
    n = len(source_a.text)
    start, end, quote = {
        # Slicing would forgive an end past the text; the check must not.
        "past_end": (0, n + 5, source_a.text),
        "empty": (4, 4, ""),
        "reversed": (10, 4, ""),
    }[where]
    bad = Citation(source_id=source_a.id, start=start, end=end, quote=quote)
    problems = citation_problems(briefing_of([source_a], [claim("c1", bad)]))
    assert len(problems) == 1
    assert "c1" in problems[0]


def test_unknown_source_id_is_reported(source_a: Source, source_b: Source) -> None:
    # An exact citation of a source that is not part of the briefing.
    stray = citation_for(shown(source_b)["S1"], source_b)
    problems = citation_problems(briefing_of([source_a], [claim("c1", stray)]))
    assert len(problems) == 1
    assert "unknown source" in problems[0]
    assert source_b.id in problems[0]


def test_key_points_and_disagreements_are_checked_too(source_a: Source) -> None:
    good = citation_for(shown(source_a)["S1"], source_a)
    bad = good.model_copy(update={"quote": "Something else."})
    briefing = Briefing(
        id="brf_test",
        title="Test",
        engine="llm",
        model="test/model",
        prompt=None,
        sources=[source_a],
        summary=[claim("c1", good)],
        key_points=[claim("c2", bad)],
        disagreements=[Disagreement(topic="vote", claims=[claim("c3", good), claim("c4", bad)])],
    )
    problems = citation_problems(briefing)
    assert len(problems) == 2
    assert "c2" in problems[0]
    assert "c4" in problems[1]
