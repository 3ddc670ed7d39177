"""Cross-source comparison: every sentence of every source against all the others."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from briefing.config import Settings
from briefing.evaluation.metrics import balanced_accuracy
from briefing.faithfulness.checker import Checker
from briefing.faithfulness.compare import Comparer, compare_sources
from briefing.faithfulness.lexical.text import stem
from briefing.pipeline.build import load_sources
from briefing.schema import Citation, Claim, Comparison, Source
from briefing.text.sources import source_from_text

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
LABELS = ROOT / "evals" / "datasets" / "seeds_comparison.jsonl"
#: What seed 004 adds that seed 000 never says (the issue's own list).
INVENTIONS = (
    "a genius in the art of the deal",
    "a signature amateur-hour tactic",
    "a magical moment of bipartisanship",
    "eroding Russia\u2019s longstanding leadership",
)
#: A floor under the held-out balanced accuracy (corroborated or not), below what was
#: measured (0.8125, evals/reports/report.md); the goal is 0.85.
HELD_OUT_FLOOR = 0.75


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


def offline() -> Checker:
    return Checker(Settings(), "offline")


@pytest.fixture(scope="module")
def seeds() -> list[Source]:
    return load_sources(SEEDS)


@pytest.fixture(scope="module")
def seed_comparison(seeds: list[Source]) -> Comparison:
    return asyncio.run(compare_sources(seeds, Checker(Settings(), "offline")))


def compared(first: str, second: str) -> tuple[Source, Source, Comparison]:
    """Two sources A and B of these texts, and their comparison (offline)."""
    a, b = source_from_text(first, title="A"), source_from_text(second, title="B")
    return a, b, asyncio.run(compare_sources([a, b], offline()))


def assert_exact(comparison: Comparison) -> None:
    texts = {s.id: s.text for s in comparison.sources}
    for sentence in comparison.sentences:
        assert texts[sentence.source_id][sentence.start : sentence.end] == sentence.text
        for c in (*sentence.supporting, *sentence.contradicting):
            assert texts[c.source_id][c.start : c.end] == c.quote
            # Evidence always comes from another source.
            assert c.source_id != sentence.source_id


def test_every_sentence_of_every_source_is_judged_with_exact_spans(
    seeds: list[Source], seed_comparison: Comparison
) -> None:
    assert seed_comparison.sources == seeds
    assert {s.source_id for s in seed_comparison.sentences} == {s.id for s in seeds}
    assert_exact(seed_comparison)
    for sentence in seed_comparison.sentences:
        assert sentence.status in ("corroborated", "single_source", "contradicted")
        assert sentence.score is not None
        assert 0.0 <= sentence.score <= 1.0
        if sentence.status == "corroborated":
            assert sentence.supporting
        if sentence.status == "single_source":
            assert not sentence.supporting
        assert bool(sentence.contradicting) == (sentence.status == "contradicted")
        assert len(sentence.conflicts) == len(sentence.contradicting)
    counts = {a.source_id: a for a in seed_comparison.source_agreement}
    for source in seeds:
        mine = [s for s in seed_comparison.sentences if s.source_id == source.id]
        row = counts[source.id]
        assert row.claims == len(mine)
        assert row.corroborated + row.single_source + row.contradicted == len(mine)


def test_held_out_labels_are_classified_well(
    seeds: list[Source], seed_comparison: Comparison
) -> None:
    # The labels of evals/datasets/seeds_comparison.jsonl that no threshold was chosen on.
    by_span = {(s.source_id, s.start, s.end): s for s in seed_comparison.sentences}
    rewrite = next(s for s in seeds if s.path and s.path.endswith("004_922a7ff930af4547.txt"))
    gold, predicted = [], []
    for line in LABELS.read_text("utf-8").splitlines():
        label = json.loads(line)
        got = by_span[(rewrite.id, label["start"], label["end"])]
        assert got.text == label["text"]
        if label["split"] == "heldout":
            gold.append(int(label["label"] == "corroborated"))
            predicted.append(int(got.status == "corroborated"))
    assert len(gold) >= 20
    assert balanced_accuracy(gold, predicted) >= HELD_OUT_FLOOR


def test_the_rewrites_inventions_are_never_corroborated(seed_comparison: Comparison) -> None:
    for words in INVENTIONS:
        [sentence] = [s for s in seed_comparison.sentences if words in s.text]
        assert sentence.status in ("single_source", "contradicted"), sentence.text


def test_the_twisted_quote_is_contradicted_on_both_sides(seed_comparison: Comparison) -> None:
    rewrite = next(s for s in seed_comparison.sentences if "get along with people" in s.text)
    original = next(s for s in seed_comparison.sentences if "'working with people.'" in s.text)
    assert rewrite.status == original.status == "contradicted"
    assert [(c.start, c.end) for c in rewrite.contradicting] == [(original.start, original.end)]
    assert "quoted in other words" in rewrite.conflicts[0]


def test_a_paraphrase_in_another_source_corroborates(seed_comparison: Comparison) -> None:
    outlasted = next(
        s for s in seed_comparison.sentences if s.text.startswith("He\u2019s outlasted")
    )
    assert outlasted.status == "corroborated"
    assert any("outlived five US presidents" in c.quote for c in outlasted.supporting)
    # Backing goes both ways: the sentence it rests on is corroborated by it.
    outlived = next(s for s in seed_comparison.sentences if "outlived five US presidents" in s.text)
    assert outlived.status == "corroborated"
    assert [c.start for c in outlived.supporting] == [outlasted.start]


def test_a_line_introducing_a_quote_stands_with_the_quote(seed_comparison: Comparison) -> None:
    sentences = seed_comparison.sentences
    at = next(i for i, s in enumerate(sentences) if s.text == "According to Sam Greene:")
    assert sentences[at].status == sentences[at + 1].status == "corroborated"


def test_a_quote_of_the_same_speaker_in_the_other_source_corroborates(
    seed_comparison: Comparison,
) -> None:
    # 004 quotes Graham's "competitive coexistence" in a sentence of its own words; 000
    # quotes him at length saying it. The citation is the sentence of the quotation that
    # holds the phrase.
    graham = next(
        s for s in seed_comparison.sentences if s.text.startswith("Additionally, experts like")
    )
    assert graham.status == "corroborated"
    assert any("competitive coexistence" in c.quote for c in graham.supporting)


def test_a_heading_is_never_judged_backed() -> None:
    # "Mastery of Detail in Negotiations" shares its words with "a master of details" in
    # the other source, but a heading names a topic and states nothing.
    a, b, result = compared(
        "Mastery of Detail in Negotiations\n"
        "The envoy returned from the talks in the capital without any agreement.",
        "The president is a skilled negotiator and a master of detail in negotiations.\n"
        "The envoy returned from the talks in the capital without any agreement.",
    )
    by_text = {(s.source_id, s.text): s for s in result.sentences}
    heading = by_text[(a.id, "Mastery of Detail in Negotiations")]
    assert (heading.status, heading.supporting) == ("single_source", [])
    negotiator = by_text[(b.id, b.text.split("\n")[0])]
    assert negotiator.supporting == []
    assert by_text[(a.id, a.text.split("\n")[1])].status == "corroborated"


def test_a_changed_number_contradicts_and_cites_the_other_side() -> None:
    a, b, result = compared(
        "The factory in the northern valley employs 400 workers on three shifts.\n"
        "It opened in the spring after a long delay in construction work.",
        "The factory in the northern valley employs 900 workers on three shifts.\n"
        "Local officials welcomed the new jobs in a statement on Friday.",
    )
    assert_exact(result)
    first = {s.source_id: s for s in result.sentences if "factory" in s.text}
    assert first[a.id].status == first[b.id].status == "contradicted"
    assert first[a.id].contradicting[0].quote.startswith("The factory")
    assert first[a.id].conflicts == ['a different number: "400" vs "900"']
    others = [s for s in result.sentences if "factory" not in s.text]
    assert {s.status for s in others} == {"single_source"}


def test_the_same_sentence_elsewhere_corroborates_with_certainty() -> None:
    shared = "The city council approved the new budget on Tuesday morning after a long debate."
    a = source_from_text(f"{shared}\nThe mayor was pleased.", title="A")
    b = source_from_text(f"Local news.\n{shared}", title="B")
    result = asyncio.run(compare_sources([a, b], offline()))
    same = [s for s in result.sentences if s.text == shared]
    assert [(s.status, s.score) for s in same] == [("corroborated", 1.0), ("corroborated", 1.0)]


def test_one_source_has_nothing_to_compare_with() -> None:
    a = source_from_text("The council approved the budget on Monday. It met at noon.", title="A")
    result = asyncio.run(compare_sources([a], offline()))
    assert result.sentences
    assert {s.status for s in result.sentences} == {"not_applicable"}
    assert {s.score for s in result.sentences} == {None}


def test_a_claim_backed_by_a_second_cited_source_is_corroborated(seeds: list[Source]) -> None:
    original, rewrite = seeds

    def cite(source: Source, words: str) -> Citation:
        start = source.text.index(words)
        end = source.text.index(".", start) + 1
        return Citation(source_id=source.id, start=start, end=end, quote=source.text[start:end])

    claim = Claim(
        id="c1",
        text="Putin has outlived five US presidents, eight British prime ministers, three "
        "Chinese leaders and six NATO leaders.",
        citations=[cite(original, "With a man who"), cite(rewrite, "He\u2019s outlasted")],
    )
    invented = Claim(
        id="c2",
        text="Putin has proven to be a genius in the art of the deal.",
        citations=[cite(rewrite, "Vladimir Putin has proven")],
    )
    uncited = Claim(id="c3", text="Nothing cites this.", citations=[])
    judged = asyncio.run(Comparer(seeds, offline()).claims([claim, invented, uncited]))
    assert judged["c1"].status == "corroborated"
    assert judged["c1"].supporting[0].source_id == rewrite.id
    assert judged["c2"].status == "single_source"
    assert judged["c3"].status == "single_source"


def test_retrieval_reads_other_sources_that_share_a_term(seeds: list[Source]) -> None:
    # Retrieval touches the postings of a statement's terms, not every sentence: a source
    # that shares no word with the statement is never a candidate, nor is its own source.
    unrelated = source_from_text(
        "Volcanic ash closed three airports in the south.\nFerries ran late all week.",
        title="Weather",
    )
    index = Comparer([*seeds, unrelated], offline()).index
    terms = [stem(w) for w in ("putin", "labrador", "merkel")]
    found = index.search(terms, exclude={0}, k=50)
    assert found
    assert {index.sentences[sid].source for sid in found} == {1}
    assert any("Labrador" in index.text(sid) for sid in found)
    assert index.search(terms, exclude={0, 1}, k=50) == []
