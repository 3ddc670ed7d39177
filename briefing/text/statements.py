"""Which sentences state something: the rules that keep headlines, headings, bylines,
datelines, questions, quote introductions and remarks about the article itself out of a
briefing's claims and out of what sources are judged to back or contradict.

They read a sentence in its line of the source: a line that never closes with a full stop
is a headline, a section heading or a link to another article.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from briefing.schema import Source
    from briefing.text.segment import Sentence

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "WORD",
    "is_attribution",
    "is_heading",
    "is_remark",
    "is_statement",
]

#: A word: letters and digits, with inner apostrophes ("Putin's").
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
#: The words a sentence needs to be quoted as a point, and the most it may have.
MIN_WORDS, MAX_WORDS = 6, 90
#: A heading is short: a line of more words that does not close is a paragraph cut short.
_HEADING_WORDS = 12

# A line that ends without a full stop (or a closing quote after one) is a headline, a
# section heading or a link to another article, not a statement; unless it is longer than
# any headline (words).
_HEADLINE_WORDS = 40
_CLOSED = re.compile(r"[.!…][\"'”’»)\]]*$")
_BYLINE = re.compile(
    r"^(?:by|author|authors|written by|reporting by|additional reporting|editing by|"
    r"edited by|photo|photos|image|images|video|source|sources|copyright|©)\b[\s:]",
    re.IGNORECASE,
)
# "MOSCOW, April 20 (Reuters) -" / "WASHINGTON —": a place in capitals and a dash.
_DATELINE = re.compile(r"^[A-Z][A-Z .'-]{2,}(?:,[^—–-]{0,40})?(?:\([^)]*\))?\s*[—–-]{1,2}\s")
# Sentences about the article, not the story; and calls to the reader.
_META = re.compile(
    r"^(?:in this (?:article|piece|post|report|story|analysis|essay)|"
    r"this (?:article|piece|post|report|story|analysis|essay) (?:explores|looks|examines|"
    r"discusses|describes|covers|will)|"
    r"(?:it|the (?:article|piece|report)) (?:looks at|examines|explores|discusses|considers|"
    r"analy[sz]es|covers)\b|"
    # What a small model writes as a briefing's summary: "The briefing discusses ...".
    r"(?:the|this) (?:briefing|summary) (?:also |then |further )?"
    r"(?:discuss|provide|highlight|conclude|describe|cover|explore|examine|present|offer|"
    r"focus|touch|mention|outline|include|end)e?s?\b|"
    r"(?:we|below,? we|here,? we) (?:explore|look at|examine|discuss|consider|analy[sz]e)\b|"
    r"(?:read|click|tap|sign up|subscribe|follow us|share this|watch|listen)\b|"
    r"(?:here(?:'|’)s|this is) (?:what|why|how)\b|"
    r"(?:related|see also|advertisement|more from)\b)",
    re.IGNORECASE,
)
# Only who spoke, with no words of theirs: "Angela Stent, a foreign policy expert ..., told
# CNN." (a small model cuts a quotation down to its attribution). A name, an optional
# description set off by commas, a verb of saying and at most whom it was said to.
_NAME = r"(?:[A-Z][\w.'’-]*)(?:\s+(?:[A-Z][\w.'’-]*|de|van|von|bin|al))*"
_ATTRIBUTION = re.compile(
    rf"^(?:according to\s+)?{_NAME}(?:,[^,;:\"“”]{{3,200}},)?\s+"
    r"(?:told|tells|said|says|stated|states|noted|notes|added|adds|explained|explains|"
    r"wrote|writes|argued|argues|recalled|recalls|concluded|concludes|summed up|sums up)"
    rf"(?:\s+(?:to\s+)?(?:the\s+)?{_NAME})?\s*[.:]?$"
)
# Runs of stray characters ("..s.s..s.s") that are no part of any language.
_GARBLED = re.compile(r"(?:[.][a-z]?){6,}|(?:\W\s?){8,}")


def _line(text: str, start: int, end: int) -> str:
    """The line (paragraph) of `text` that holds the span."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start : len(text) if line_end < 0 else line_end].strip()


def is_heading(text: str, start: int, end: int) -> bool:
    """Whether the sentence at `text[start:end]` is a headline or section heading: a short
    line of its own that closes with no punctuation ("Mastery of Detail in Negotiations").
    It names a topic and states nothing another source could back or contradict."""
    sentence = text[start:end].strip()
    return (
        _line(text, start, end) == sentence
        and not _CLOSED.search(sentence)
        and not sentence.endswith((":", "?", ";"))
        and len(WORD.findall(sentence)) <= _HEADING_WORDS
    )


def is_statement(sentence: Sentence, source: Source, *, by_length: bool = True) -> bool:
    """Whether a sentence states something a briefing could claim: not a headline, byline,
    dateline, question, quote introduction, link or remark about the article itself (nor,
    with `by_length`, too short or too long to quote as a point)."""
    text = sentence.text.strip()
    line = _line(source.text, sentence.start, sentence.end)
    words = WORD.findall(text)
    # A headline, heading or link-bait line never closes. A long line that does not is a
    # paragraph cut short: only its unfinished last sentence is no statement.
    headline = not _CLOSED.search(line) and (
        not _CLOSED.search(text) or len(WORD.findall(line)) <= _HEADLINE_WORDS
    )
    return not (
        headline
        or text.endswith((":", "?", '?"', "?”"))
        or _BYLINE.match(text)
        or (_DATELINE.match(text) and len(WORD.findall(_DATELINE.sub("", text))) < MIN_WORDS)
        or _META.match(text)
        or is_attribution(text)
        or _GARBLED.search(text)
        or (by_length and not MIN_WORDS <= len(words) <= MAX_WORDS)
    )


def is_attribution(text: str) -> bool:
    """Whether `text` only says who spoke ("Angela Stent, ..., told CNN."), not what."""
    return bool(_ATTRIBUTION.match(text.strip()))


def is_remark(text: str) -> bool:
    """Whether `text` speaks of the article or briefing itself ("In this article we
    explore...", "The briefing discusses...") rather than of the story."""
    return bool(_META.match(text.strip()))
