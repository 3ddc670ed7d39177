"""A claim drawn from a quotation names the one quoted (briefing.pipeline.attribution)."""

from __future__ import annotations

from briefing.pipeline.attribution import Attributor
from briefing.schema import Citation, Source
from briefing.text.sources import source_from_text

TEXT = (
    "Rubio said last week that the United States could withdraw from the talks.\n"
    '"The Trump administration is eager to make a deal, but is unwilling to pay a high price '
    'for it. That is, they do not give any guarantees of security," said Jennifer Kavanagh, '
    "director of military analysis at the Defense Priorities think tank.\n"
    "Green, who is also a professor of Russian politics, said the string of failures had led "
    'Moscow to "conclude that the United States is fundamentally inconsistent."\n'
    'He said at the time, "Now the ball is on your side," referring to the talks.\n'
    "\"Putin describes his past in the KGB as 'working with people.' He was trained in the "
    'art of manipulating interlocutors," Lowe said.\n'
)


def _source() -> Source:
    return source_from_text(TEXT, title="Talks")


def _cite(source: Source, opening: str) -> Citation:
    start = source.text.index(opening)
    end = source.text.index("\n", start)
    return Citation(source_id=source.id, start=start, end=end, quote=source.text[start:end])


def test_a_claim_copied_from_a_quotation_names_its_speaker() -> None:
    source = _source()
    attribute = Attributor([source])
    claim = (
        "The Trump administration is eager to make a deal, but is unwilling to pay a high price."
    )
    got = attribute(claim, [_cite(source, '"The Trump')])
    assert got == (
        "The Trump administration is eager to make a deal, but is unwilling to pay a high "
        "price, Jennifer Kavanagh said."
    )
    # A quoted ending keeps its quotation mark.
    quoted = '"The Trump administration is eager to make a deal."'
    assert attribute(quoted, [_cite(source, '"The Trump')]) == (
        '"The Trump administration is eager to make a deal," Jennifer Kavanagh said.'
    )


def test_the_outer_speaker_speaks_for_a_nested_quotation() -> None:
    source = _source()
    got = Attributor([source])(
        "Putin was trained in the art of manipulating interlocutors.", [_cite(source, '"Putin')]
    )
    assert got == "Putin was trained in the art of manipulating interlocutors, Lowe said."


def test_claims_left_as_they_are() -> None:
    source = _source()
    attribute = Attributor([source])
    # Names the speaker already.
    named = "Jennifer Kavanagh says the administration is eager to make a deal."
    assert attribute(named, [_cite(source, '"The Trump')]) == named
    # The reporter's narration, not the quotation's words.
    narration = "A professor of Russian politics said the string of failures had led Moscow on."
    assert attribute(narration, [_cite(source, "Green, who")]) == narration
    # No quotation at all.
    plain = "The United States could withdraw from the talks."
    assert attribute(plain, [_cite(source, "Rubio said")]) == plain
    # The speaker is not named in the cited sentence ("He said"): no guess is written in.
    unnamed = "Now the ball is on your side."
    assert attribute(unnamed, [_cite(source, "He said at")]) == unnamed
    # A citation into a source it was not given.
    other = Citation(source_id="elsewhere", start=0, end=5, quote="Rubio")
    assert attribute(plain, [other]) == plain
