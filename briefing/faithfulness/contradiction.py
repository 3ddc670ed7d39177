"""Where two statements about the same thing disagree, and in what.

A conflict is one of: a changed number, a changed date, another name or place in the same
slot, a negation on one side only, an opposite predicate ("approved" vs "rejected"), or a
quote of the same speaker in other words. The statements are compared word by word: their
stems are aligned (difflib), and a difference counts only where the words around it agree
and the two say most of the same things; two sentences that merely share a topic do not
conflict. Quotes are compared by speaker instead: the same person quoted, on the same
subject, with different words.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from briefing.faithfulness.lexical.features import (
    APPOSITION,
    DIRECTIONS,
    SPEECH,
    negation_flips,
    present,
    soft,
    unit_conflicts,
)
from briefing.faithfulness.lexical.text import (
    MONTHS,
    NEGATIONS,
    STOPWORDS,
    TextView,
    is_year,
    number_value,
    stem,
    word_set,
)
from briefing.text.segment import sentence_spans

__all__ = [
    "Conflict",
    "ConflictKind",
    "Quote",
    "conflicts",
    "find_quotes",
    "proper_names",
    "quotations",
    "quote_backed",
    "quote_conflict",
    "relatedness",
    "same_speaker",
    "soft_content",
    "surname",
    "text_view",
]

ConflictKind = Literal["number", "date", "name", "place", "negation", "opposite", "quote", "judged"]

#: Share of a statement's content words the other must hold before a difference between
#: them is a conflict rather than two different facts.
RELATED = 0.5
#: Fewest content words the two must share (a short statement: all of its own).
_MIN_SHARED = 3
#: Longest run of words replaced in one slot that still reads as a substitution.
_MAX_SLOT = 4
#: Two short quotations of one speaker whose content words overlap (Dice) at least
#: QUOTE_SAME_POINT are about the same point; below QUOTE_CONSISTENT they word it otherwise.
QUOTE_SAME_POINT = 0.2
QUOTE_CONSISTENT = 0.6
#: Longest quotation (in content words) compared word for word as a phrase.
QUOTE_MAX_WORDS = 8

_WEEKDAYS = word_set("monday tuesday wednesday thursday friday saturday sunday")
_LOCATIVE = word_set("in at from to near into across outside inside via")
_PRONOUNS = word_set("he she they him her his hers")
# Opposite predicates beyond the checker's direction words: pairs a report rarely states
# both of about one thing.
_OPPOSITE_PAIRS = (
    ("agree agreed agrees", "disagree disagreed disagrees refuse refused refuses"),
    ("confirm confirmed confirms", "deny denied denies"),
    ("succeed succeeded succeeds", "fail failed fails"),
    ("strengthen strengthened strengthens", "weaken weakened weakens"),
    ("improve improved improves soften softened softens", "worsen worsened worsens "
     "deteriorate deteriorated deteriorates harden hardened hardens"),
    ("friend friends ally allies", "enemy enemies foe foes"),
    ("legal lawful", "illegal unlawful"),
    ("possible", "impossible"),
    ("true", "false"),
    ("more", "less fewer"),
    ("higher", "lower"),
    ("up", "down"),
    ("praise praised praises welcome welcomed welcomes", "criticize criticized criticizes "
     "criticise criticised criticises condemn condemned condemns"),
    ("continue continued continues", "stop stopped stops halt halted halts"),
    ("skilled skillful experienced expert", "amateur unskilled inexperienced"),
    ("present", "absent"),
    ("guilty", "innocent"),
    ("alive", "dead"),
    ("positive", "negative"),
)  # fmt: skip
_OPPOSITES = (
    *DIRECTIONS,
    *((word_set(a), word_set(b)) for a, b in _OPPOSITE_PAIRS),
)
_SAYING = SPEECH | word_set(
    "dubs dub dubbed calls call called describes describe described labels labelled labeled "
    "remarked remarks replied replies answered answers announced announces declared declares "
    "recalls concluded concludes shared shares suggest advocates advocated advocating "
    "proposes proposed urges urged"
)
_OPEN_CLOSE = {"\u201c": "\u201d", '"': '"', "\u2018": "\u2019", "'": "'", "\u00ab": "\u00bb"}


@dataclass(frozen=True)
class Conflict:
    """One disagreement between a statement and another source's statement."""

    kind: ConflictKind
    #: The words of the statement under judgement that the other contradicts.
    claim: str
    #: The other statement's words in their place.
    other: str

    def describe(self) -> str:
        """One line for people, e.g. 'a different number: "five" vs "six"'."""
        what = {
            "number": "a different number",
            "date": "a different date",
            "name": "another name",
            "place": "another place",
            "negation": "negated on one side only",
            "opposite": "the opposite",
            "quote": "the same speaker quoted in other words",
            "judged": "the judge found them contradictory",
        }[self.kind]
        return f'{what}: "{self.claim}" vs "{self.other}"'


@dataclass(frozen=True)
class Quote:
    """A quotation in a text: the quoted words' span and who is quoted (a name or None)."""

    start: int
    end: int
    speaker: str | None


def relatedness(claim: TextView, other: TextView) -> float:
    """Share of the claim's content words (by prefix) that the other statement holds."""
    content = claim.content or claim.stems
    if not content:
        return 0.0
    pool = {soft(s) for s in other.stems}
    return sum(1 for w in content if soft(w) in pool or present(w, set(other.stems))) / len(content)


def _about_the_same(claim: TextView, other: TextView) -> bool:
    content = claim.content or claim.stems
    pool = {soft(s) for s in other.stems}
    shared = sum(1 for w in set(content) if soft(w) in pool)
    return relatedness(claim, other) >= RELATED and shared >= min(_MIN_SHARED, len(set(content)))


def conflicts(claim: str, other: str) -> list[Conflict]:
    """How `other` contradicts `claim`, when the two state mostly the same things; [] else."""
    a, b = text_view(claim), text_view(other)
    if not a.toks or not b.toks or not _about_the_same(a, b):
        return []
    found: list[Conflict] = []
    found.extend(_slot_conflicts(a, b))
    if negation_flips(a, b):
        denied = sorted((a.negated ^ b.negated) & set(a.stems) & set(b.stems))
        word = _word_for(a, denied[0]) if denied else "not"
        found.append(
            Conflict(
                "negation",
                _with_negation(a, word) if denied and denied[0] in a.negated else word,
                _with_negation(b, word) if denied and denied[0] in b.negated else word,
            )
        )
    if unit_conflicts(a, [b]) and not any(c.kind == "number" for c in found):
        for value, unit in a.num_units:
            theirs = sorted(v for v, u in b.num_units if u == unit and v != value)
            if theirs and all(v != value for v, u in b.num_units if u == unit):
                found.append(Conflict("number", f"{value} {unit}", f"{theirs[0]} {unit}"))
                break
    if a.years and b.years and not a.years & b.years and not any(c.kind == "date" for c in found):
        found.append(Conflict("date", ", ".join(sorted(a.years)), ", ".join(sorted(b.years))))
    return _unique(found)


def _unique(found: list[Conflict]) -> list[Conflict]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for item in found:
        key = (item.kind, item.claim.lower(), item.other.lower())
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _word_for(view: TextView, stem_: str) -> str:
    for tok, st in zip(view.toks, view.stems, strict=True):
        if st == stem_:
            return tok
    return stem_


def _with_negation(view: TextView, word: str) -> str:
    # "did not criticize": the negation and the word it denies, as the text says them.
    toks = view.toks
    for i, tok in enumerate(toks):
        if tok == word:
            for j in range(max(0, i - 3), i):
                low = toks[j].lower()
                if low in NEGATIONS or low.endswith("n't"):
                    return " ".join(toks[j : i + 1])
    return word


def _slot_conflicts(a: TextView, b: TextView) -> Iterator[Conflict]:
    """Differences in one slot between words that agree: numbers, dates, names, opposites,
    and a negation inserted on one side."""
    matcher = SequenceMatcher(None, a.stems, b.stems, autojunk=False)
    ops = matcher.get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            continue
        before = ops[n - 1] if n > 0 and ops[n - 1][0] == "equal" else None
        after = ops[n + 1] if n + 1 < len(ops) and ops[n + 1][0] == "equal" else None
        if not _anchored(a, before, after):
            continue
        mine, theirs = a.toks[i1:i2], b.toks[j1:j2]
        if tag in ("insert", "delete"):
            extra = theirs or mine
            lows = [t.lower() for t in extra]
            if lows and all(t in NEGATIONS or t.endswith("n't") for t in lows):
                yield Conflict(
                    "negation", " ".join(mine) or "(stated)", " ".join(theirs) or "(stated)"
                )
            continue
        if len(mine) > _MAX_SLOT or len(theirs) > _MAX_SLOT:
            # A long replaced stretch can still end (or start) in a name in the slot the
            # agreeing words mark: "... Putin: George W. Bush invited" / "Bill Clinton invited".
            clash = _edge_names(mine, theirs, at_end=after is not None)
            if clash is not None:
                yield clash
            continue
        prior = a.low[i1 - 1] if i1 > 0 else ""
        # A sentence's first word is capitalised whatever it is ("Notably", "Initially").
        yield from _replaced(mine, theirs, prior, a, b, first=(i1 == 0, j1 == 0))


def _anchored(
    a: TextView,
    before: tuple[str, int, int, int, int] | None,
    after: tuple[str, int, int, int, int] | None,
) -> bool:
    # A slot is the same slot when agreeing words stand on both sides of it, or on one side
    # when those words are content, not just "the" or "of".
    def content(op: tuple[str, int, int, int, int] | None) -> bool:
        return op is not None and any(a.low[i] not in STOPWORDS for i in range(op[1], op[2]))

    return (before is not None and after is not None) or content(before) or content(after)


def _replaced(
    mine: Sequence[str],
    theirs: Sequence[str],
    prior: str,
    a: TextView,
    b: TextView,
    first: tuple[bool, bool] = (False, False),
) -> Iterator[Conflict]:
    low_mine = [t.lower() for t in mine]
    low_theirs = [t.lower() for t in theirs]
    nums_mine = {v for t in low_mine if (v := number_value(t)) is not None}
    nums_theirs = {v for t in low_theirs if (v := number_value(t)) is not None}
    said_mine, said_theirs = " ".join(mine), " ".join(theirs)
    if nums_mine and nums_theirs and not nums_mine & nums_theirs:
        years = all(is_year(v) for v in nums_mine | nums_theirs)
        yield Conflict("date" if years else "number", said_mine, said_theirs)
        return
    dates_mine = {t for t in low_mine if t in MONTHS or t in _WEEKDAYS}
    dates_theirs = {t for t in low_theirs if t in MONTHS or t in _WEEKDAYS}
    if dates_mine and dates_theirs and not dates_mine & dates_theirs:
        yield Conflict("date", said_mine, said_theirs)
        return
    for one, other in _OPPOSITES:
        for x, y in ((one, other), (other, one)):
            # One side's word, the other's opposite, and neither side saying both.
            if set(low_mine) & x and set(low_theirs) & y and not (set(b.low) & x or set(a.low) & y):
                yield Conflict("opposite", said_mine, said_theirs)
                return
    if first[0] or first[1]:
        mine, theirs = mine[first[0] :], theirs[first[1] :]
    if _names(mine) and _names(theirs) and not _same_name(mine, theirs, a, b):
        kind: ConflictKind = "place" if prior in _LOCATIVE else "name"
        yield Conflict(kind, " ".join(mine), " ".join(theirs))


def _edge_names(mine: Sequence[str], theirs: Sequence[str], *, at_end: bool) -> Conflict | None:
    """Different names next to the agreeing words that follow (or precede) a replaced span."""

    def run(tokens: Sequence[str]) -> list[str]:
        seq = list(reversed(tokens)) if at_end else list(tokens)
        out = []
        # Three words at most: "George W. Bush"; before that is another clause.
        for tok in seq[:3]:
            if not _names([tok]):
                break
            out.append(tok)
        return list(reversed(out)) if at_end else out

    a_run, b_run = run(mine), run(theirs)
    if not a_run or not b_run or len(a_run) > _MAX_SLOT or len(b_run) > _MAX_SLOT:
        return None
    if _same_name(a_run, b_run, TextView(" ".join(mine)), TextView(" ".join(theirs))):
        return None
    return Conflict("name", " ".join(a_run), " ".join(b_run))


def _names(tokens: Sequence[str]) -> bool:
    # Every word capitalised and none a common word: a name, not "The" opening a sentence.
    return bool(tokens) and all(
        t[:1].isupper() and t.lower() not in STOPWORDS and not t[:1].isdigit() for t in tokens
    )


def _same_name(mine: Sequence[str], theirs: Sequence[str], a: TextView, b: TextView) -> bool:
    """Spellings or aliases of one name ("Greene"/"Green", "UK"/"British"), or a name each
    side also states elsewhere (then this is no substitution)."""
    for x in mine:
        sx = stem(x.lower())
        for y in theirs:
            sy = stem(y.lower())
            if soft(sx) == soft(sy) or present(sx, {sy}) or present(sy, {sx}):
                return True
            if SequenceMatcher(None, x.lower(), y.lower()).ratio() >= 0.8:
                return True
    stems_a, stems_b = set(a.stems), set(b.stems)
    return all(stem(y.lower()) in stems_a for y in theirs) or all(
        stem(x.lower()) in stems_b for x in mine
    )


# ---------------------------------------------------------------- quotes


def proper_names(text: str) -> frozenset[str]:
    """Lower-cased words `text` writes capitalised inside sentences more often than not."""
    capital: dict[str, int] = {}
    lower: dict[str, int] = {}
    for start, end in sentence_spans(text):
        words = _WORD.findall(text[start:end])
        for word in words[1:]:
            base = _base(word)
            if base[:1].isupper():
                capital[base.lower()] = capital.get(base.lower(), 0) + 1
            elif base[:1].islower():
                lower[base] = lower.get(base, 0) + 1
    return frozenset(w for w, n in capital.items() if n > lower.get(w, 0) and w not in STOPWORDS)


@functools.lru_cache(maxsize=256)
def quotations(text: str) -> tuple[Quote, ...]:
    """The quotations of a whole source, with its own names (`find_quotes`), read once
    for every caller: the comparison and the LLM path's attribution both need them."""
    return tuple(find_quotes(text))


def find_quotes(text: str, proper: frozenset[str] | None = None) -> list[Quote]:
    """The quotations of a text (nested ones too), each with its speaker: a name next to a
    verb of saying, the name on a line that introduces it with a colon, the speaker of the
    quote before it in the paragraph, or, for "he said", the name that last opened a
    sentence. `proper`: the words that are names (by default, as `text` writes them)."""
    names = proper_names(text) if proper is None else proper
    openers = _sentence_openers(text, names)
    starts = [start for start, _ in sentence_spans(text)]
    quotes: list[Quote] = []
    introduced: str | None = None
    offset = 0
    for line in text.split("\n"):
        previous: str | None = None
        for start, end, nested in sorted(_quote_spans(line)):
            who = _speaker_near(line, start, end, names)
            if who is None and start <= 1 and not nested:
                who = introduced
            if who is None and not nested:
                who = previous
            if who is not None and who.lower() in _PRONOUNS:
                who = _latest(openers, _sentence_start(starts, offset + start))
            quotes.append(Quote(offset + start, offset + end, who))
            if not nested:
                previous = who
        stripped = line.rstrip()
        # "According to Sam Greene:" introduces the quotation on the next line.
        introduced = _introducer(stripped, names) if stripped.endswith(":") else None
        if introduced is not None and introduced.lower() in _PRONOUNS:
            introduced = _latest(openers, _sentence_start(starts, offset + len(stripped)))
        offset += len(line) + 1
    return quotes


_WORD = re.compile(r"[\w\u2019'.-]+")


def _base(word: str) -> str:
    return word.strip(".,-").removesuffix("'s").removesuffix("\u2019s")


def _sentence_openers(text: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """(start, name) of each sentence with a name among its first words: its likely subject."""
    out = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        words = _WORD.findall(sentence)[:5]
        # "Furthermore, ..." / "Meanwhile, ...": a word set off by a comma opens the sentence
        # without being its subject, unless the text writes it as a name elsewhere.
        if (
            words
            and sentence[len(words[0]) : len(words[0]) + 1] == ","
            and words[0].lower() not in names
        ):
            words = words[1:]
        for a, b in _name_runs(words, names, loose=True):
            out.append((start, _joined(words, a, b)))
            break
    return out


def _sentence_start(starts: Sequence[int], position: int) -> int:
    """Where the sentence holding `position` starts."""
    at = bisect.bisect_right(starts, position) - 1
    return starts[at] if at >= 0 else 0


def _latest(openers: Sequence[tuple[int, str]], position: int) -> str | None:
    """The subject of the latest sentence before `position` that opens with a name."""
    found = [name for start, name in openers if start < position]
    return found[-1] if found else None


def _quote_spans(
    line: str, offset: int = 0, nested: bool = False
) -> Iterator[tuple[int, int, bool]]:
    """(start, end, nested) of each quotation on one line, the quote marks left out."""
    i = 0
    while i < len(line):
        close = _OPEN_CLOSE.get(line[i])
        # An apostrophe after a letter ("Putin's") opens nothing.
        if close is None or (line[i] == "'" and i > 0 and line[i - 1].isalnum()):
            i += 1
            continue
        j = i + 1
        while True:
            j = line.find(close, j)
            # A closing apostrophe before a letter is a contraction ("they\u2019re"), not an end.
            if j >= 0 and close in "'\u2019" and j + 1 < len(line) and line[j + 1].isalpha():
                j += 1
                continue
            break
        if j < 0:
            # A quotation left open runs to the end of its paragraph (news continues it below).
            if close in '\u201d"' and len(line) - i > 3:
                yield offset + i + 1, offset + len(line), nested
            i += 1
            continue
        if j > i + 1:
            yield offset + i + 1, offset + j, nested
            yield from _quote_spans(line[i + 1 : j], offset + i + 1, nested=True)
        i = j + 1


def _speaker_near(line: str, start: int, end: int, names: frozenset[str]) -> str | None:
    """Who the words around a quotation say spoke it: ', Stent sums up.', ', said Sam Green',
    'Zhekova said: "...', 'he dubs this "...'. A pronoun is returned as it is."""
    after: list[str] = _WORD.findall(_SENTENCE_END.split(line[end + 1 : end + 200], maxsplit=1)[0])
    lead = line[max(0, start - 200) : max(0, start - 1)].rstrip()
    # Words before the quotation speak for it only within its own sentence.
    clause = "" if lead[-1:] in ".!?" else _SENTENCE_END.split(lead)[-1]
    before: list[str] = _WORD.findall(clause)
    # Which of those words follow a comma.
    after_comma = [clause[: m.start()].rstrip().endswith(",") for m in _WORD.finditer(clause)]
    lows = [w.lower().strip(".,") for w in after]
    verbs = [k for k, low in enumerate(lows) if low in _SAYING]
    if verbs:
        runs = _name_runs(after, names, loose=True)
        for a, b in runs:
            # ', Angela Stent, a foreign policy expert ..., told CNN' / ', said Sam Green'
            if a <= 1 or a == verbs[0] + 1:
                return _joined(after, a, b)
        if verbs[0] <= 2 and verbs[0] > 0 and lows[verbs[0] - 1] in _PRONOUNS:
            return lows[verbs[0] - 1]
    lows = [w.lower().strip(".,:") for w in before]
    for k in reversed([k for k, low in enumerate(lows) if low in _SAYING]):
        if lows[k] == "according":
            runs = [r for r in _name_runs(before, names, loose=True) if r[0] > k]
            if runs:
                return _joined(before, *runs[0])
            continue
        # '..., advocating for "...": a participle set off by a comma speaks for the
        # sentence's subject, not for the name just before it; an earlier verb names it.
        if lows[k].endswith("ing") and after_comma[k]:
            continue
        runs = _name_runs(before, names, loose=True)
        # 'Green, who is also a professor ... at King's College London, said': the name
        # that opens the sentence speaks, not the last one of its description.
        if runs and runs[0][0] == 0 and runs[0][1] < k and lows[runs[0][1]] in APPOSITION:
            return _joined(before, *runs[0])
        for a, b in runs:
            # 'Zhekova said:' / 'Putin describes his past ... as' / 'Bush later wrote that he'
            if 0 <= k - b <= 2:
                return _joined(before, a, b)
        for q in range(max(0, k - 3), k):
            if lows[q] in _PRONOUNS:
                return lows[q]
    return None


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"\u201c\u2018'A-Z])")


def _joined(words: Sequence[str], a: int, b: int) -> str:
    return " ".join(_base(w) for w in words[a:b])


def _name_runs(
    words: Sequence[str], names: frozenset[str], *, loose: bool = False
) -> list[tuple[int, int]]:
    """Runs of name words; `loose` also takes capitalised words the text never writes in
    lower case (a name seen only at the start of sentences), but no adverb ("Additionally")."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if _is_name_word(words[i], names, loose):
            j = i
            while j < len(words) and _is_name_word(words[j], names, loose):
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    return runs


def _is_name_word(word: str, names: frozenset[str], loose: bool = False) -> bool:
    base = _base(word)
    if len(base) < 2 or not base[0].isupper() or base.isupper():
        return False
    low = base.lower()
    if low in names:
        return True
    return loose and low not in STOPWORDS and low not in _SAYING and not low.endswith("ly")


def _introducer(line: str, names: frozenset[str]) -> str | None:
    """The speaker a line ending in a colon introduces ("According to Sam Greene:")."""
    last = _SENTENCE_END.split(line)[-1]
    words = _WORD.findall(last)
    if not words:
        return None
    runs = _name_runs(words, names, loose=True)
    if words[0].lower() == "according":
        runs = [r for r in runs if r[0] >= 2]
    if runs:
        return _joined(words, *runs[0])
    lows = [w.lower() for w in words[:2]]
    return next((w for w in lows if w in _PRONOUNS), None)


def same_speaker(a: str | None, b: str | None) -> bool:
    """Whether two speakers are one person: the same surname, or a spelling of it."""
    if not a or not b:
        return False
    return _same_surname(surname(a), surname(b))


def surname(speaker: str) -> str:
    """The last word of a speaker's name, lower-cased: what quotes are matched by."""
    return _base(speaker.split()[-1]).lower()


@functools.lru_cache(maxsize=65_536)
def _same_surname(a: str, b: str) -> bool:
    return a == b or SequenceMatcher(None, a, b).ratio() >= 0.8


@functools.lru_cache(maxsize=16_384)
def soft_content(text: str) -> frozenset[str]:
    """The soft stems of a text's content words (from a bounded cache)."""
    return frozenset(soft(w) for w in text_view(text).content)


@functools.lru_cache(maxsize=4_096)
def text_view(text: str) -> TextView:
    """The checker's view of a text, from a bounded cache (views are never changed)."""
    # A statement meets several candidates, and a candidate several statements: each text
    # is read into its view once.
    return TextView(text)


def quote_backed(
    quote: str, speaker: str | None, others: Sequence[tuple[str, str | None]]
) -> int | None:
    """The position in `others` ((text, speaker) pairs) of a quotation of the same speaker
    that holds every content word of `quote` (a phrase of two words or more): the other
    source quotes that speaker saying it. None when no quotation does."""
    if speaker is None:
        return None
    mine = soft_content(quote)
    if len(mine) < 2:
        return None
    for n, (text, who) in enumerate(others):
        if same_speaker(speaker, who) and mine <= soft_content(text):
            return n
    return None


def quote_conflict(
    quote: str, speaker: str | None, others: Sequence[tuple[str, str | None]]
) -> tuple[Conflict, int] | None:
    """A twisted quote: a short quotation of `speaker` that one of `others` ((text, speaker)
    pairs) quotes on the same point in other words: the two phrases share a word or two
    (Dice overlap of their content words in [QUOTE_SAME_POINT, QUOTE_CONSISTENT)) and the
    speaker is never quoted closer to it. Long quotations are reworded by every translation
    and edit; in them only a changed number, name or negation is a conflict (`conflicts`).
    Returns the conflict and the position in `others` of the speaker's closest quote."""
    if speaker is None:
        return None
    mine = set(TextView(quote).content)
    if not 2 <= len(mine) <= QUOTE_MAX_WORDS:
        return None
    best: tuple[float, int] | None = None
    for n, (text, who) in enumerate(others):
        if not same_speaker(speaker, who):
            continue
        theirs = soft_content(text)
        if not theirs:
            continue
        shared = sum(1 for w in mine if soft(w) in theirs)
        dice = 2 * shared / (len(mine) + len(theirs))
        if best is None or dice > best[0]:
            best = (dice, n)
    if best is None or not QUOTE_SAME_POINT <= best[0] < QUOTE_CONSISTENT:
        return None
    other = others[best[1]][0]
    if len(soft_content(other)) > QUOTE_MAX_WORDS:
        return None
    return Conflict("quote", " ".join(quote.split()), " ".join(other.split())), best[1]
