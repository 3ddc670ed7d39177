"""Behaviour of the offline lexical faithfulness check."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from briefing.faithfulness import lexical
from briefing.faithfulness.lexical import THRESHOLD, IndexedDocument, score_claim

ARTICLE = """Harbour council approves new ferry terminal
The Harbour Council voted on Tuesday to approve a new ferry terminal in Port Elm. \
Mayor Linda Okafor said the terminal would cost 42 million dollars and open in 2027. \
The old terminal, built in 1968, will not be demolished. \
Council member Raj Patel opposed the plan, saying the budget was too high. \
Passenger numbers rose by 15 percent last year, according to the port authority.
"Ferries are the backbone of this town," Okafor told reporters after the vote.
"""


@pytest.fixture(scope="module")
def doc() -> IndexedDocument:
    return IndexedDocument(ARTICLE)


def test_copied_sentence_scores_above_threshold(doc: IndexedDocument) -> None:
    claim = "The Harbour Council voted on Tuesday to approve a new ferry terminal in Port Elm."
    result = score_claim(doc, claim)
    assert result.score >= THRESHOLD
    assert not result.contradiction
    start, end = result.evidence[0]
    assert doc.text[start:end] == claim


def test_changed_number_scores_below_and_is_a_contradiction(doc: IndexedDocument) -> None:
    claim = "Mayor Linda Okafor said the terminal would cost 97 million dollars and open in 2027."
    result = score_claim(doc, claim)
    assert result.score < THRESHOLD
    assert result.contradiction


def test_changed_year_is_a_contradiction(doc: IndexedDocument) -> None:
    result = score_claim(doc, "The old terminal, built in 1975, will not be demolished.")
    assert result.score < THRESHOLD
    assert result.contradiction


def test_added_negation_scores_below_and_is_a_contradiction(doc: IndexedDocument) -> None:
    claim = "The Harbour Council did not approve a new ferry terminal in Port Elm on Tuesday."
    result = score_claim(doc, claim)
    assert result.score < THRESHOLD
    assert result.contradiction


def test_foreign_name_scores_below(doc: IndexedDocument) -> None:
    claim = "Council member Gregor Lindqvist opposed the plan, saying the budget was too high."
    assert score_claim(doc, claim).score < THRESHOLD


def test_supported_claim_outscores_its_corruptions(doc: IndexedDocument) -> None:
    good = score_claim(doc, "Raj Patel, a council member, opposed the plan over its budget.")
    bad = score_claim(doc, "Raj Patel, a council member, strongly backed the plan over its budget.")
    assert good.score > bad.score


def test_evidence_offsets_are_exact_sentences(doc: IndexedDocument) -> None:
    result = score_claim(doc, "Passenger numbers went up 15 percent, the port authority said.")
    assert 1 <= len(result.evidence) <= 3
    for start, end in result.evidence:
        piece = doc.text[start:end]
        assert piece == piece.strip()
        assert piece
    first = doc.text[result.evidence[0][0] : result.evidence[0][1]]
    assert first.startswith("Passenger numbers rose by 15 percent")


def test_score_is_a_probability_and_features_are_reported(doc: IndexedDocument) -> None:
    result = score_claim(doc, "Ferries are the backbone of this town, Okafor said.")
    assert 0.0 <= result.score <= 1.0
    assert set(lexical.FEATURES) <= set(result.features)


def test_offsets_survive_unicode_and_ptb_text() -> None:
    text = "  \u201cWe won\u2019t stop,\u201d she said.\n\n-lrb- cnn -rrb- the team did n't win . it lost 3-1 ."
    d = IndexedDocument(text)
    spans = lexical.split_sentences(text)
    for start, end in spans:
        assert d.text[start:end] == d.text[start:end].strip()
    result = score_claim(d, "the team did n't win .")
    start, end = result.evidence[0]
    assert text[start:end] == "-lrb- cnn -rrb- the team did n't win ."


HISTORY = """Ties between the two countries have swung for decades.
Bill Clinton hosted a summit in 1997 that ended without a deal. \
Later, George Bush invited the Russian leader to his ranch in Texas, where he drove him \
around in a pickup truck. Bush later wrote that he had looked the man in the eye.
The leader has outlived five US presidents, three Chinese leaders and six NATO leaders.
Trade rose by 12 percent in 2012, officials said. Diplomats did not expect a breakthrough.
"It was never going to be easy," said Anna Berg, a historian at Lund University.
The envoy not only returned empty-handed, but also repeated the other side's talking points.
"""


@pytest.fixture(scope="module")
def history() -> IndexedDocument:
    return IndexedDocument(HISTORY)


def test_name_bound_to_another_persons_verb_is_a_contradiction(history: IndexedDocument) -> None:
    claim = "Bill Clinton invited the Russian leader to his ranch in Texas."
    right = "George Bush invited the Russian leader to his ranch in Texas."
    swapped = score_claim(history, claim)
    assert swapped.contradiction
    assert swapped.score < THRESHOLD
    assert not score_claim(history, right).contradiction
    assert score_claim(history, right).score > swapped.score


def test_swapped_counts_are_a_contradiction(history: IndexedDocument) -> None:
    result = score_claim(history, "The leader has outlived six Chinese leaders.")
    assert result.contradiction
    assert result.score < THRESHOLD


def test_reversed_direction_is_a_contradiction(history: IndexedDocument) -> None:
    wrong = score_claim(history, "Trade fell by 12 percent in 2012, officials said.")
    right = score_claim(history, "Trade rose by 12 percent in 2012, officials said.")
    assert wrong.contradiction
    assert not right.contradiction
    assert right.score > wrong.score


def test_changed_year_beside_the_evidence_is_a_contradiction(history: IndexedDocument) -> None:
    result = score_claim(history, "Bill Clinton hosted a summit in 2001 that ended without a deal.")
    assert result.contradiction
    assert result.score < THRESHOLD


def test_dropped_negation_scores_below(history: IndexedDocument) -> None:
    wrong = score_claim(history, "Diplomats expected a breakthrough.")
    right = score_claim(history, "Diplomats did not expect a breakthrough.")
    assert right.score > wrong.score


def test_quote_credited_to_someone_absent_scores_below(history: IndexedDocument) -> None:
    right = score_claim(
        history, "Anna Berg, a Lund University historian, said it was never going to be easy."
    )
    wrong = score_claim(history, "George Bush said it was never going to be easy.")
    assert wrong.score < THRESHOLD
    assert right.score > wrong.score


def test_not_only_is_not_a_negation(history: IndexedDocument) -> None:
    claim = "The envoy not only returned empty-handed but also repeated the other side's points."
    result = score_claim(history, claim)
    assert not result.contradiction
    assert result.score >= THRESHOLD


def test_lower_cased_copy_still_scores_above(history: IndexedDocument) -> None:
    claim = "trade rose by 12 percent in 2012, officials said."
    assert score_claim(history, claim).score >= THRESHOLD


def test_each_claim_sentence_brings_its_evidence(history: IndexedDocument) -> None:
    result = score_claim(
        history,
        "Trade rose by 12 percent in 2012. Bush later wrote that he had looked the man in the eye.",
    )
    quotes = [history.text[a:b] for a, b in result.evidence]
    assert quotes[0].startswith("Trade rose by 12 percent")
    assert quotes[1].startswith("Bush later wrote")


def test_unrelated_claim_has_no_evidence_and_a_low_score(history: IndexedDocument) -> None:
    result = score_claim(history, "Volcanic ash grounded flights across Iceland.")
    assert result.evidence == ()
    assert result.score < THRESHOLD


def test_sentences_survive_abbreviations_and_initials() -> None:
    text = "He met Dr. Ruiz in St. Petersburg. George W. Bush spoke later.\nA headline"
    spans = lexical.split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "He met Dr. Ruiz in St. Petersburg.",
        "George W. Bush spoke later.",
        "A headline",
    ]


@pytest.mark.parametrize("bad", ["", "   \n\t"])
def test_empty_inputs_raise_value_error(doc: IndexedDocument, bad: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        IndexedDocument(bad)
    with pytest.raises(ValueError, match="empty"):
        score_claim(doc, bad)


def test_claim_without_words_raises_value_error(doc: IndexedDocument) -> None:
    with pytest.raises(ValueError, match="no words"):
        score_claim(doc, "... !!")


def test_stored_model_matches_the_features() -> None:
    raw = (
        resources.files("briefing.faithfulness")
        .joinpath("lexical_model.json")
        .read_text(encoding="utf-8")
    )
    model = json.loads(raw)
    assert tuple(model["features"]) == lexical.FEATURES
    n = len(lexical.FEATURES)
    assert len(model["mean"]) == len(model["scale"]) == len(model["coef"]) == n
    assert all(s > 0 for s in model["scale"])
    assert model["method"] == lexical.METHOD_NAME
    assert 0.0 < model["threshold"] < 1.0
    assert model["threshold"] == THRESHOLD


def test_huge_document_is_scored_with_exact_offsets() -> None:
    filler = (
        "Routine item {i}: the committee reviewed minutes, parking permits and library hours. "
        "Members noted that item {i} needed no further action.\n"
    )
    parts = [filler.format(i=i) for i in range(40_000)]
    parts.insert(20_000, "The observatory in Valdoria recorded a comet on 3 March 2024.\n")
    text = "".join(parts)
    assert len(text) > 5_000_000
    d = IndexedDocument(text)
    result = score_claim(d, "The observatory in Valdoria recorded a comet on 3 March 2024.")
    start, end = result.evidence[0]
    assert text[start:end] == "The observatory in Valdoria recorded a comet on 3 March 2024."
    assert result.score >= THRESHOLD
    assert score_claim(d, "The committee reviewed parking permits.").evidence


@given(st.text(alphabet=st.sampled_from(list("ab C.!?\n\"' \u2019x9")), max_size=200))
def test_sentence_spans_are_exact_ordered_and_lose_no_words(text: str) -> None:
    spans = lexical.split_sentences(text)
    previous = 0
    for start, end in spans:
        piece = text[start:end]
        assert piece
        assert piece == piece.strip()
        assert start >= previous
        previous = end
    covered = "".join(text[a:b] for a, b in spans)
    assert [c for c in covered if not c.isspace()] == [c for c in text if not c.isspace()]
