"""What the other sources say of a briefing's claims, for both engines, and the extractive
default that it helps rank."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from briefing.config import Settings
from briefing.evaluation.briefings import covers
from briefing.pipeline.build import build_briefing, build_briefing_sync, load_sources
from briefing.pipeline.citations import citation_problems
from briefing.pipeline.render import to_markdown
from briefing.schema import Briefing, Source
from briefing.testing import FakeOpenAIServer, RecordedRequest, Reply
from briefing.text.segment import segment, sentence_spans
from briefing.text.sources import source_from_text
from briefing.text.statements import is_statement

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
KEYFACTS = ROOT / "evals" / "datasets" / "seeds_keyfacts.jsonl"
INVENTIONS = (
    "a genius in the art of the deal",
    "a signature amateur-hour tactic",
    "a magical moment of bipartisanship",
    "eroding Russia\u2019s longstanding leadership",
)


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def seeds() -> list[Source]:
    return load_sources(SEEDS)


@pytest.fixture(scope="module")
def seed_briefing(seeds: list[Source]) -> Briefing:
    return build_briefing_sync(seeds, Settings())


def test_every_claim_says_what_the_other_sources_say(seed_briefing: Briefing) -> None:
    texts = {s.id: s.text for s in seed_briefing.sources}
    for claim in seed_briefing.claims():
        corroboration = claim.corroboration
        assert corroboration.status in ("corroborated", "single_source", "contradicted")
        for c in (*corroboration.supporting, *corroboration.contradicting):
            assert texts[c.source_id][c.start : c.end] == c.quote
            assert c.source_id != claim.citations[0].source_id
    assert citation_problems(seed_briefing) == []
    assert any(c.corroboration.status == "corroborated" for c in seed_briefing.claims())


def test_source_agreement_counts_the_claims_of_each_source(seed_briefing: Briefing) -> None:
    rows = {a.source_id: a for a in seed_briefing.source_agreement}
    assert list(rows) == [s.id for s in seed_briefing.sources]
    claims = [*seed_briefing.summary, *seed_briefing.key_points]
    for source_id, row in rows.items():
        mine = [c for c in claims if c.citations[0].source_id == source_id]
        assert row.claims == len(mine)
        for status in ("corroborated", "single_source", "contradicted"):
            assert getattr(row, status) == sum(c.corroboration.status == status for c in mine)


def test_the_rewrites_inventions_are_not_passed_off_as_corroborated(
    seed_briefing: Briefing,
) -> None:
    for claim in seed_briefing.claims():
        if any(words in claim.text for words in INVENTIONS):
            assert claim.corroboration.status in ("single_source", "contradicted")


def test_a_disagreement_found_by_code_cites_both_sides(seed_briefing: Briefing) -> None:
    texts = {s.id: s.text for s in seed_briefing.sources}
    [twisted] = [d for d in seed_briefing.disagreements if "quoted in other words" in d.topic]
    one, other = twisted.claims
    assert {one.citations[0].source_id, other.citations[0].source_id} == set(texts)
    assert {"get along with people" in c.text for c in twisted.claims} == {True, False}
    for side in twisted.claims:
        [citation] = side.citations
        assert texts[citation.source_id][citation.start : citation.end] == side.text
        assert side.corroboration.status == "contradicted"
        assert side.verdict == "supported"  # each side quotes its own source


def test_markdown_labels_each_claim_and_lists_what_one_source_says(
    seed_briefing: Briefing,
) -> None:
    md = to_markdown(seed_briefing)
    for heading in (
        "## Where the sources disagree",
        "## Only one source says",
        "## Source agreement",
    ):
        assert heading in md
    body = md.split("## Where the sources disagree", 1)[0]
    items = [line for line in body.splitlines() if line.startswith("- ")]
    assert len(items) == len(seed_briefing.summary) + len(seed_briefing.key_points)
    for line, claim in zip(items, [*seed_briefing.summary, *seed_briefing.key_points], strict=True):
        label = {
            "corroborated": "**corroborated** by [",
            "single_source": "_only one source says this_",
            "contradicted": "**contradicted** by [",
        }[claim.corroboration.status]
        assert label in line
    alone = md.split("## Only one source says", 1)[1].split("## Source agreement", 1)[0]
    single = [
        c
        for c in seed_briefing.summary + seed_briefing.key_points
        if c.corroboration.status == "single_source"
    ]
    assert alone.count("\n  - ") == len(single)


def test_one_source_is_not_applicable() -> None:
    source = source_from_text(
        "The council approved the budget on Monday after a long debate.\n"
        "The mayor said the vote was the best outcome for the city this year.",
        title="Council",
    )
    briefing = build_briefing_sync([source], Settings())
    assert briefing.claims()
    assert {c.corroboration.status for c in briefing.claims()} == {"not_applicable"}
    assert [(a.source_id, a.claims) for a in briefing.source_agreement] == [
        (source.id, len(briefing.summary) + len(briefing.key_points))
    ]
    md = to_markdown(briefing)
    assert "only one source says" not in md.lower()
    assert "corroborated" not in md


def test_the_extractive_default_covers_the_key_facts(seed_briefing: Briefing) -> None:
    facts = [json.loads(line) for line in KEYFACTS.read_text("utf-8").splitlines()]
    texts = [seed_briefing.title, *(c.text for c in seed_briefing.claims())]
    sentences = [t[a:b] for t in texts for a, b in sentence_spans(t)]
    covered = [f["id"] for f in facts if any(covers(s, f["keywords"]) for s in sentences)]
    assert len(covered) >= 10, covered
    assert 3 <= len(seed_briefing.summary) <= 5


@pytest.mark.parametrize(
    ("text", "quotable"),
    [
        ("CNN: The United States needs to move from hostility to competitive coexistence", False),
        ("Author: Ivana Kottasova.", False),
        ("In this article we explore some of Putin's strategies for diplomacy and more.", False),
        ("It looks at the consequences of his deep-seated ambitions for Russia's place.", False),
        ('"What is the real aim of these long and repeated talks with the envoy?"', False),
        ("Angela Stent, an expert on U.S.-Russia relations, stated:", False),
        ("MOSCOW (Reuters) - Talks ended.", False),
        ("Read more about the negotiations on our live page today.", False),
        ("Such perspectives underscore the need..s.s..s.s...sss.s.s.s.s.s.", False),
        ("The latest U.S. proposal includes recognition of Russian control over Crimea.", True),
        (
            "MOSCOW (Reuters) - The Kremlin said on Monday that talks with the envoy went well.",
            True,
        ),
    ],
)
def test_only_statements_are_candidates(text: str, quotable: bool) -> None:
    source = source_from_text(f"{text}\nA second paragraph closes the text properly here.")
    [first, *_] = segment(source)
    assert first.text == text
    assert is_statement(first, source) is quotable


# --- the LLM engine -------------------------------------------------------------------

_SENTENCE_LINE = re.compile(r"^\[?(S\d+)\]? (.*)$", re.MULTILINE)
_CLAIM_LINE = re.compile(r"^\[?(C\d+)\]? (?:\([^)]*\) )?(.*)$", re.MULTILINE)
SHARED = "The harbour bridge reopened on Friday after three months of repairs."


def _responder(request: RecordedRequest) -> Reply:
    system, user = request.messages[0]["content"], request.messages[1]["content"]
    if "<source" in user:
        ids = [sid for sid, text in _SENTENCE_LINE.findall(user)]
        # One claim per sentence shown, each citing its sentence.
        claims = [
            {"text": text, "sentence_ids": [sid]} for sid, text in _SENTENCE_LINE.findall(user)
        ]
        assert ids
        return Reply(content=json.dumps({"claims": claims}))
    shown = _CLAIM_LINE.findall(user)
    assert not system.startswith("You condense")
    points = [{"text": text, "claim_ids": [cid]} for cid, text in shown]
    return Reply(
        content=json.dumps(
            {
                "title": "Harbour",
                "summary": points[:1],
                "key_points": points[1:],
                "disagreements": [],
            }
        )
    )


async def test_llm_claims_are_corroborated_and_ordered(
    fake_server: FakeOpenAIServer, llm_settings: Callable[..., Settings]
) -> None:
    fake_server.responder = _responder
    a = source_from_text(
        f"Harbour news.\nThe city council met late on Tuesday night.\n{SHARED}", title="A"
    )
    b = source_from_text(
        f"Port report.\n{SHARED}\nThe ferry to the island carried 300 passengers on Sunday.",
        title="B",
    )
    settings: Settings = llm_settings(map_prompt="extract-claims@1", prompt="briefing@1")
    briefing = await build_briefing([a, b], settings)
    # The backed claim comes first to the reduce (this one makes it the summary; the
    # other source's copy of it would only repeat the summary as a key point).
    assert [c.corroboration.status for c in briefing.summary] == ["corroborated"]
    # Among the key points too, claims other sources back come first.
    statuses = [c.corroboration.status for c in briefing.key_points]
    assert statuses == sorted(statuses, key=lambda s: s != "corroborated")
    backed = [c for c in briefing.claims() if c.corroboration.status == "corroborated"]
    for claim in backed:
        assert SHARED in claim.text
        assert all(c.quote == SHARED for c in claim.corroboration.supporting)
    council = next(c for c in briefing.claims() if "council" in c.text)
    assert council.corroboration.status == "single_source"
    assert {row.source_id for row in briefing.source_agreement} == {a.id, b.id}


def test_a_long_paragraph_cut_short_keeps_its_finished_sentences() -> None:
    """A paragraph whose line does not close (it ends on "… stated:" before a quotation,
    or the text was cut) is no headline: its finished sentences are statements, only the
    unfinished one is not. A short line that does not close stays a headline."""
    text = (
        "Notably, Putin was the first world leader to reach out to George W. Bush following "
        "the September 11 attacks in 2001. This friendship did not last long, as different "
        "visions of Russia's place in the world soon took shape. Angela Stent, an expert on "
        "U.S.-Russia relations, stated:\n"
        "Trump discovers that Putin is no pushover in the talks\n"
        "A second paragraph closes the text properly here."
    )
    source = source_from_text(text)
    found = {x.text: is_statement(x, source) for x in segment(source)}
    assert found[
        "Notably, Putin was the first world leader to reach out to George W. Bush following "
        "the September 11 attacks in 2001."
    ]
    assert found[
        "This friendship did not last long, as different visions of Russia's place in the "
        "world soon took shape."
    ]
    assert not found["Angela Stent, an expert on U.S.-Russia relations, stated:"]
    assert not found["Trump discovers that Putin is no pushover in the talks"]
