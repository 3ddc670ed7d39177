"""The extractive engine: deterministic, model-free, every claim a verbatim cited sentence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from briefing.config import Settings
from briefing.faithfulness import lexical
from briefing.pipeline.build import build_briefing_sync, load_sources
from briefing.pipeline.citations import citation_problems
from briefing.schema import Briefing, Claim, Source
from briefing.text.sources import source_from_text

SEEDS = sorted((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's BRIEFING_* variables must not pick another engine.
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def seed_sources() -> list[Source]:
    return load_sources(SEEDS)


@pytest.fixture(scope="module")
def seed_briefing(seed_sources: list[Source]) -> Briefing:
    return build_briefing_sync(seed_sources, Settings(model="extractive"))


def assert_claim_quotes_itself(claim: Claim, sources: list[Source]) -> None:
    texts = {s.id: s.text for s in sources}
    assert len(claim.citations) == 1
    (citation,) = claim.citations
    assert texts[citation.source_id][citation.start : citation.end] == citation.quote
    assert claim.text == citation.quote.strip()
    # A verbatim quote of its own citation: the checker must find it supported.
    assert claim.verdict == "supported"
    assert claim.score is not None
    assert claim.score >= lexical.THRESHOLD


def test_engine_metadata(seed_briefing: Briefing) -> None:
    assert seed_briefing.engine == "extractive"
    assert seed_briefing.model == "extractive"
    assert seed_briefing.prompt is None
    assert seed_briefing.prompts == []
    assert seed_briefing.usage.calls == 0
    assert seed_briefing.usage.cost_usd is None


def test_default_settings_are_extractive(seed_sources: list[Source]) -> None:
    assert build_briefing_sync(seed_sources[:1], Settings()).engine == "extractive"


def test_summary_and_key_points_are_present(seed_briefing: Briefing) -> None:
    assert 1 <= len(seed_briefing.summary) <= Settings().summary_sentences
    assert len(seed_briefing.key_points) == Settings().key_points
    assert seed_briefing.title


def test_every_source_is_kept_and_represented(
    seed_briefing: Briefing, seed_sources: list[Source]
) -> None:
    assert seed_briefing.sources == seed_sources
    # With room for it, the summary quotes each source at least once.
    assert {c.citations[0].source_id for c in seed_briefing.summary} == {s.id for s in seed_sources}


def test_every_claim_is_its_own_exact_citation(
    seed_briefing: Briefing, seed_sources: list[Source]
) -> None:
    claims = seed_briefing.claims()
    assert claims
    for claim in claims:
        assert_claim_quotes_itself(claim, seed_sources)
    assert citation_problems(seed_briefing) == []


def test_claim_ids_are_unique(seed_briefing: Briefing) -> None:
    ids = [c.id for c in seed_briefing.claims()]
    assert len(ids) == len(set(ids))


def test_summary_and_key_points_do_not_repeat_a_sentence(seed_briefing: Briefing) -> None:
    spans = [
        (c.citations[0].source_id, c.citations[0].start)
        for c in [*seed_briefing.summary, *seed_briefing.key_points]
    ]
    assert len(spans) == len(set(spans))


def test_key_points_are_in_reading_order(
    seed_briefing: Briefing, seed_sources: list[Source]
) -> None:
    position = {s.id: n for n, s in enumerate(seed_sources)}
    keys = [
        (position[c.citations[0].source_id], c.citations[0].start) for c in seed_briefing.key_points
    ]
    assert keys == sorted(keys)


def test_warning_says_it_is_extractive(seed_briefing: Briefing) -> None:
    assert any("extractive" in w.lower() for w in seed_briefing.warnings)
    assert any("no language model" in w.lower() for w in seed_briefing.warnings)


def test_output_is_deterministic(seed_sources: list[Source]) -> None:
    first = build_briefing_sync(seed_sources, Settings())
    second = build_briefing_sync(seed_sources, Settings())

    def content(b: Briefing) -> dict[str, object]:
        return b.model_dump(mode="json", exclude={"id", "created_at"})

    assert content(first) == content(second)


def test_briefings_get_distinct_ids(seed_sources: list[Source]) -> None:
    first = build_briefing_sync(seed_sources[:1], Settings())
    second = build_briefing_sync(seed_sources[:1], Settings())
    assert first.id != second.id


@pytest.mark.parametrize("n", [1, 3, 12])
def test_number_of_key_points_follows_the_setting(seed_sources: list[Source], n: int) -> None:
    briefing = build_briefing_sync(seed_sources, Settings(key_points=n))
    assert len(briefing.key_points) == n


@pytest.mark.parametrize("n", [1, 2, 5])
def test_number_of_summary_sentences_follows_the_setting(
    seed_sources: list[Source], n: int
) -> None:
    briefing = build_briefing_sync(seed_sources, Settings(summary_sentences=n))
    assert len(briefing.summary) == n


def test_single_one_sentence_source() -> None:
    text = "The city council approved the new budget on Tuesday morning."
    source = source_from_text(text, title="Budget")
    briefing = build_briefing_sync([source], Settings())
    assert briefing.title == "Budget"
    assert [c.text for c in briefing.summary] == [text]
    assert briefing.disagreements == []
    for claim in briefing.claims():
        assert_claim_quotes_itself(claim, [source])


def test_source_with_nothing_quotable_still_builds() -> None:
    source = source_from_text("Too short.\nAlso short.", title="Stub")
    briefing = build_briefing_sync([source], Settings())
    assert briefing.claims() == []
    assert any("no sentence long enough" in w for w in briefing.warnings)


def test_canonical_text_offsets_with_crlf_and_accents() -> None:
    text = (
        "Cafe\u0301 owners in the old town protested the new parking rules.\r\n"
        "The mayor said the rules would stay in place until next spring."
    )
    source = source_from_text(text, title="Caf\u00e9s")
    briefing = build_briefing_sync([source], Settings())
    assert briefing.summary[0].text.startswith("Caf\u00e9 owners")
    for claim in briefing.claims():
        assert_claim_quotes_itself(claim, [source])


def test_disagreements_cite_both_sources() -> None:
    a = source_from_text(
        "The factory in the northern valley employs 400 workers on three shifts.\n"
        "It opened in the spring after a long delay in construction work.",
        title="A",
    )
    b = source_from_text(
        "The factory in the northern valley employs 900 workers on three shifts.\n"
        "Local officials welcomed the new jobs in a statement on Friday.",
        title="B",
    )
    briefing = build_briefing_sync([a, b], Settings())
    assert len(briefing.disagreements) == 1
    sides = briefing.disagreements[0].claims
    assert {c.citations[0].source_id for c in sides} == {a.id, b.id}
    assert {c.text for c in sides} == {
        "The factory in the northern valley employs 400 workers on three shifts.",
        "The factory in the northern valley employs 900 workers on three shifts.",
    }
    for claim in briefing.claims():
        assert_claim_quotes_itself(claim, [a, b])


def test_the_similarity_index_gives_every_pairs_cosine_to_the_last_bit() -> None:
    """The rank reads similarities from an index of which sentences hold each word; on the
    seeds (and both together, as the engine ranks several sources) every pair's value is
    `_cosine`'s exactly, and pairs sharing no word are absent."""
    from briefing.pipeline import extractive

    sources = load_sources(SEEDS)
    for group in ([sources[0]], [sources[1]], sources):
        vectors = [c.vector for c in extractive._candidates(group, {})]
        rows = extractive._similarities(vectors)
        for i, a in enumerate(vectors):
            for j in range(i + 1, len(vectors)):
                b = vectors[j]
                if set(a) & set(b):
                    assert rows[i][j] == extractive._cosine(a, b)
                else:
                    assert j not in rows[i]
