"""Conflict detection between two statements, on sentences of the seed articles.

Each contradiction case is a real sentence of seed 000 set against the same sentence with
one thing changed (or, for the twisted quote, the two seeds' own words); the negative cases
are real paraphrases and unrelated sentences, which must not conflict.
"""

from __future__ import annotations

import pytest

from briefing.faithfulness.contradiction import (
    conflicts,
    find_quotes,
    quote_backed,
    quote_conflict,
    same_speaker,
)

PRESIDENTS = (
    "With a man who, while confidently remaining in office, outlived five US presidents, eight "
    "British prime ministers, three Chinese leaders and six NATO leaders, personally "
    "participating in negotiations with many of them."
)


@pytest.mark.parametrize(
    ("claim", "other", "kind", "mine", "theirs"),
    [
        pytest.param(
            PRESIDENTS, PRESIDENTS.replace("five US", "six US"), "number", "five", "six",
            id="number",
        ),
        pytest.param(
            "For example, in 2007, Putin allowed his Labrador to approach German Chancellor "
            "Merkel during a photo shoot.",
            "In 2009, Putin allowed his Labrador to approach German Chancellor Merkel during a "
            "photo shoot.",
            "date", "2007", "2009", id="year",
        ),
        pytest.param(
            "The last trip took place last Friday.", "The last trip took place last Monday.",
            "date", "Friday", "Monday", id="weekday",
        ),
        pytest.param(
            "Some former presidents have tried to build personal relationships with Putin: "
            "George W. Bush invited the Russian leader to his ranch in Crawford, Texas, where "
            "he drove him around in a Ford pickup truck.",
            "Bill Clinton invited the Russian leader to his ranch in Crawford, Texas, where he "
            "drove him around in a Ford pickup truck.",
            "name", "George W Bush", "Bill Clinton", id="name",
        ),
        pytest.param(
            "When they met in Helsinki in 2018, during a press conference, the Russian leader "
            "handed Trump a ball from the 2018 FIFA World Cup.",
            "When they met in Vienna in 2018, during a press conference, the Russian leader "
            "handed Trump a ball from the 2018 FIFA World Cup.",
            "place", "Helsinki", "Vienna", id="place",
        ),
        pytest.param(
            "Remember, he did not criticize Trump for any of these statements.",
            "Remember, he criticized Trump for any of these statements.",
            "negation", "not criticize", "criticize", id="negation",
        ),
        pytest.param(
            "Initially, Vladimir Putin agreed to cooperate with the Bush administration.",
            "Initially, Vladimir Putin refused to cooperate with the Bush administration.",
            "opposite", "agreed", "refused", id="opposite-agree",
        ),
        pytest.param(
            "Relations between America and Russia have softened under the Obama administration.",
            "Relations between America and Russia have worsened under the Obama administration.",
            "opposite", "softened", "worsened", id="opposite-direction",
        ),
    ],
)  # fmt: skip
def test_each_kind_of_contradiction_is_found(
    claim: str, other: str, kind: str, mine: str, theirs: str
) -> None:
    found = conflicts(claim, other)
    assert [(c.kind, c.claim, c.other) for c in found][:1] == [(kind, mine, theirs)]
    assert found[0].describe().endswith(f'"{mine}" vs "{theirs}"')


@pytest.mark.parametrize(
    ("claim", "other"),
    [
        # The seeds' own paraphrase: UK/British, U.S./US, chiefs/leaders.
        (
            PRESIDENTS,
            "He’s outlasted five U.S. presidents, eight UK prime ministers, three Chinese "
            "leaders and six NATO chiefs.",
        ),
        # Another spelling of one name.
        (
            "Green, who is also a professor of Russian politics at King's College London, said "
            "the string of failures had led Moscow to conclude.",
            "Sam Greene, a professor at King's College London, said the string of failures had "
            "led Moscow to conclude.",
        ),
        # One fact told by each seed in its own words; a sentence's first word ("Notably",
        # "Initially") is no name.
        (
            "Notably, Putin was the first world leader to reach out to George W. Bush following "
            "the September 11 attacks in 2001.",
            "Initially, Vladimir Putin agreed to cooperate with the Bush administration and "
            "became the first world leader to call him after the September 11 attacks, but their "
            "positive personal relationship quickly deteriorated.",
        ),
        # Two sentences of one article about different things: other numbers, no conflict.
        (
            "The Trump administration's attempts to reach a ceasefire agreement in Ukraine have "
            "effectively stalled, despite intense diplomatic activity.",
            "After returning to the White House, Trump held at least two lengthy telephone "
            "conversations with Putin.",
        ),
    ],
)
def test_paraphrases_and_other_facts_do_not_conflict(claim: str, other: str) -> None:
    assert conflicts(claim, other) == []


def test_quotes_are_found_with_their_speakers() -> None:
    text = (
        "John Lowe said that Putin's service in the ranks of the KGB shaped his approach. "
        "\"Putin describes his past in the KGB as 'working with people.' He was trained in "
        'the art of manipulating interlocutors," Lowe said.\n'
        "Angela Stent, an expert on U.S.-Russia relations, stated:\n"
        "\u201cI think the real reason for the collapse of that reset was Putin.\u201d\n"
    )
    quotes = {text[q.start : q.end]: q.speaker for q in find_quotes(text)}
    assert quotes["working with people."] == "Putin"
    assert (
        quotes[
            "Putin describes his past in the KGB as 'working with people.' He was trained in the "
            "art of manipulating interlocutors,"
        ]
        == "Lowe"
    )
    # The line that introduces a quotation with a colon names its speaker.
    assert quotes["I think the real reason for the collapse of that reset was Putin."] == (
        "Angela Stent"
    )


def test_a_participle_after_a_comma_speaks_for_the_sentences_subject() -> None:
    # Seed 004: the quote is Graham's, not "U.S.-Russia"'s, the name just before it.
    text = (
        "Additionally, experts like Thomas Graham suggest an alternative approach to "
        "U.S.-Russia relations, advocating for \u201ccompetitive coexistence\u201d rather than "
        "outright confrontation."
    )
    [quote] = find_quotes(text)
    assert (text[quote.start : quote.end], quote.speaker) == (
        "competitive coexistence",
        "Thomas Graham",
    )


def test_a_phrase_the_same_speaker_is_quoted_saying_elsewhere_is_backed() -> None:
    others = [
        ("Now the ball is on your side,", "Putin"),
        (
            "or we could have what I always call competitive coexistence, where the rivalry "
            "would mainly be economic,",
            "Graham",
        ),
    ]
    assert quote_backed("competitive coexistence", "Thomas Graham", others) == 1
    # Another speaker saying it, or the speaker saying other words, backs nothing.
    assert quote_backed("competitive coexistence", "Stent", others) is None
    assert quote_backed("peaceful coexistence", "Graham", others) is None
    # A single word is too little to call a quotation the same.
    assert quote_backed("coexistence", "Graham", others) is None


def test_a_pronoun_speaker_is_the_name_that_last_opened_a_sentence() -> None:
    text = (
        "Putin\u2019s approach to all diplomacy is complex. His years as a KGB spy granted him "
        "profound understandings of human relations. He sometimes humorously dubs this "
        "ability \u201cget along with people.\u201d"
    )
    [quote] = find_quotes(text)
    assert (text[quote.start : quote.end], quote.speaker) == ("get along with people.", "Putin")


def test_the_seeds_twisted_quote_is_a_conflict() -> None:
    # Seed 004 puts "get along with people" in Putin's mouth; seed 000 quotes him saying
    # "working with people". Other quotes of other speakers do not count.
    others = [
        ("working with people.", "Putin"),
        ("Now the ball is on your side,", "Helsinki"),
        ("get along with everyone in the room", "Stent"),
    ]
    found = quote_conflict("get along with people.", "Putin", others)
    assert found is not None
    conflict, at = found
    assert (conflict.kind, conflict.claim, conflict.other, at) == (
        "quote",
        "get along with people.",
        "working with people.",
        0,
    )


def test_the_same_quote_reworded_by_a_translation_is_no_conflict() -> None:
    others = [
        (
            "This was indicative of Putin's calculated tit-for-tat approach, which views "
            "diplomacy as a sports game with winners and losers.",
            "Zhekova",
        )
    ]
    mine = (
        "This was indicative of Putin\u2019s calculated \u2018tit-for-tat\u2019 approach that "
        "views diplomacy as a game with winners and losers."
    )
    assert quote_conflict(mine, "Kalina Zhekova", others) is None
    # A quote of a speaker the other source never quotes is not a conflict either.
    assert (
        quote_conflict("get along with people.", "Graham", [("working with people.", "Putin")])
        is None
    )


def test_speakers_match_by_surname_and_spelling() -> None:
    assert same_speaker("Sam Greene", "Green")
    assert same_speaker("Angela Stent", "Stent")
    assert not same_speaker("Angela Stent", "Angela Merkel")
    assert not same_speaker(None, "Stent")
