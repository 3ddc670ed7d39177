"""Which sentences state something: headings and bare attributions do not."""

from __future__ import annotations

import pytest

from briefing.text.segment import segment
from briefing.text.sources import source_from_text
from briefing.text.statements import is_attribution, is_heading, is_statement


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        (
            "Angela Stent, a foreign policy expert and former national intelligence officer "
            "for Russia and Eurasia at the National Intelligence Council, told CNN.",
            True,
        ),
        ("Lowe said.", True),
        ("Officials told CNN.", True),
        ("Kalina Zhekova notes:", True),
        ("John Lowe said that Putin's service in the KGB shaped his approach.", False),
        ("Trump said the talks had stalled.", False),
        ("Graham summed up his reasoning.", False),
    ],
)
def test_an_attribution_alone_says_who_spoke_not_what(text: str, bare: bool) -> None:
    assert is_attribution(text) is bare


def test_headings_are_short_lines_of_their_own_that_do_not_close() -> None:
    text = (
        "Mastery of Detail in Negotiations\n"
        "Putin is a skilled negotiator and a master of details.\n"
        "Angela Stent, an expert on U.S.-Russia relations, stated:\n"
        "Angela Stent, a foreign policy expert, told CNN.\n"
    )
    source = source_from_text(text, title="Seeds")
    sentences = segment(source)
    headings = [s.text for s in sentences if is_heading(source.text, s.start, s.end)]
    assert headings == ["Mastery of Detail in Negotiations"]
    statements = [s.text for s in sentences if is_statement(s, source)]
    assert statements == ["Putin is a skilled negotiator and a master of details."]
