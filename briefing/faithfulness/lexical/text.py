"""Words of a text as the lexical checker sees them: sentences with offsets, normalised
tokens, stems, numbers, dates and negation scope."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

__all__ = [
    "MONTHS",
    "NEGATIONS",
    "NUM_WORDS",
    "STOPWORDS",
    "TOKEN",
    "TextView",
    "is_year",
    "iter_sentence_spans",
    "normalize",
    "number_value",
    "split_sentences",
    "stem",
    "word_set",
]

# ---------------------------------------------------------------- word lists


def word_set(text: str) -> frozenset[str]:
    """The distinct words of a whitespace-separated list."""
    return frozenset(text.split())


STOPWORDS = word_set(
    """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself nor of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves said says say told tell according s t will shall may
might must 's one new also last first year years article
"""
)
NEGATIONS = word_set("not no never none nobody nothing neither nor without n't cannot")
NUM_WORDS: dict[str, float] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 10**6, "billion": 10**9, "dozen": 12, "twice": 2, "once": 1, "half": 0.5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip

# ---------------------------------------------------------------- sentences with offsets

_LINE = re.compile(r"[^\n]+")
# A sentence ends at . ! or ? (possibly doubled), then closing quotes/brackets, then space.
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+")
_OPENER = re.compile(r"[\"'\u201c\u2018(\[]?[^\W_a-z]")
_ABBREVIATIONS = word_set(
    "mr mrs ms dr st prof gen sen rep gov lt col sgt capt cpl jr sr inc co corp ltd vs no nos "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft rev hon pres adm maj cmdr supt "
    "u.s u.k u.n e.g i.e etc approx"
)
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?]*$")
_MAX_SENTENCE_CHARS = 1500


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) into `text`, each free of surrounding whitespace."""
    return list(iter_sentence_spans(text))


def iter_sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    # A line break always ends a sentence: headlines and bylines carry no full stop.
    for line in _LINE.finditer(text):
        yield from _line_spans(line.group(), line.start())


def _line_spans(line: str, offset: int) -> Iterator[tuple[int, int]]:
    # Lower-cased benchmark text has no capital to open a sentence: any boundary counts.
    lowered = not any(c.isupper() for c in line)
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for m in _BOUNDARY.finditer(line):
        after = line[m.end() : m.end() + 2]
        if not lowered and not _OPENER.match(after):
            continue
        word = _WORD_BEFORE.search(line, max(0, m.start() - 20), m.start() + 1)
        if word is not None and m.group()[0] == ".":
            w = word.group(1).lower().rstrip(".")
            # Abbreviations and initials ("George W. Bush") do not end a sentence.
            if w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha()):
                continue
        pieces.append((cursor, m.end()))
        cursor = m.end()
    pieces.append((cursor, len(line)))
    merged: list[tuple[int, int]] = []
    for a, b in pieces:
        a, b = _strip_span(line, a, b)
        if a >= b:
            continue
        # A fragment of one or two words ("No." / "he said.") belongs to the sentence before.
        if merged and line.count(" ", a, b) < 2:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    for a, b in merged:
        for ca, cb in _cap_span(line, a, b):
            yield offset + ca, offset + cb


def _strip_span(s: str, a: int, b: int) -> tuple[int, int]:
    while a < b and s[a].isspace():
        a += 1
    while b > a and s[b - 1].isspace():
        b -= 1
    return a, b


def _cap_span(s: str, a: int, b: int) -> Iterator[tuple[int, int]]:
    # Text without punctuation would otherwise make one huge "sentence" that every claim
    # retrieves and re-tokenises; cut it at whitespace so per-claim work stays bounded.
    while b - a > _MAX_SENTENCE_CHARS:
        cut = s.rfind(" ", a + _MAX_SENTENCE_CHARS // 2, a + _MAX_SENTENCE_CHARS)
        if cut < 0:
            cut = a + _MAX_SENTENCE_CHARS
        ca, cb = _strip_span(s, a, cut)
        if ca < cb:
            yield ca, cb
        a, b = _strip_span(s, cut, b)
    if a < b:
        yield a, b


# ---------------------------------------------------------------- normalisation and tokens

TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)?|n't")
_QUOTES = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "`": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-"}
)
_PTB_CLITIC = re.compile(r"\s+'(s|re|ve|ll|d|m)\b")
_PTB_NEG = re.compile(r"\s+n't\b")
_PTB_BRACKET = re.compile(r"-[lr][rcs]b-", re.IGNORECASE)
# "U.S.", and "U. S." as models write it (a 1.5B model's "The latest U. S. proposal" was
# judged to contradict its source's "U.S.").
_COUNTRY_DOTS = re.compile(r"\b([UuEe])\. ?([SsKkNnUu])\.")


def normalize(text: str) -> str:
    """Unify Unicode forms, quotes and dashes, and undo PTB tokenisation artefacts."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\\'", "'").translate(_QUOTES).replace("\u2014", " - ")
    text = _PTB_BRACKET.sub(" ", text)
    text = _COUNTRY_DOTS.sub(lambda m: m.group(1) + m.group(2), text)
    text = _PTB_CLITIC.sub(r"'\1", text)
    return _PTB_NEG.sub("n't", text)


# Irregular past forms, so "took" meets "take" (the suffix stripper cannot see these).
_IRREGULAR = {
    "took": "take", "taken": "take", "came": "come", "gave": "give", "given": "give",
    "went": "go", "gone": "go", "made": "make", "held": "hold", "met": "meet", "left": "leave",
    "won": "win", "lost": "lose", "saw": "see", "seen": "see", "began": "begin",
    "begun": "begin", "spoke": "speak", "spoken": "speak", "wrote": "write", "written": "write",
    "thought": "think", "brought": "bring", "bought": "buy", "sold": "sell", "sent": "send",
    "found": "find", "kept": "keep", "led": "lead", "fell": "fall", "fallen": "fall",
    "rose": "rise", "risen": "rise", "grew": "grow", "grown": "grow", "knew": "know",
    "known": "know", "ran": "run", "paid": "pay", "felt": "feel", "stood": "stand",
    "understood": "understand", "chose": "choose", "chosen": "choose", "drove": "drive",
    "driven": "drive", "shown": "show", "struck": "strike", "fought": "fight", "caught": "catch",
    "taught": "teach", "built": "build", "spent": "spend", "lent": "lend", "hit": "hit",
    "broke": "break", "broken": "break", "ate": "eat", "eaten": "eat", "flew": "fly",
    "flown": "fly", "hid": "hide", "hidden": "hide", "stole": "steal", "stolen": "steal",
    "threw": "throw", "thrown": "throw", "wore": "wear", "worn": "wear", "woke": "wake",
    "forgot": "forget", "forgotten": "forget", "sought": "seek", "meant": "mean",
    "heard": "hear", "sat": "sit", "lay": "lie", "laid": "lay", "shot": "shoot",
    "children": "child", "men": "man", "women": "woman", "people": "person",
}  # fmt: skip


@functools.lru_cache(maxsize=200_000)
def stem(tok: str) -> str:
    # A tiny suffix stripper (lower-case input): enough to merge plural and tense variants.
    if tok.endswith("'s"):
        tok = tok[:-2]
    tok = _IRREGULAR.get(tok, tok)
    if len(tok) <= 3 or tok[0].isdigit():
        return tok
    for suf, rep, minlen in (
        ("ies", "y", 5), ("sses", "ss", 5), ("ness", "", 7), ("ments", "", 8), ("ment", "", 7),
        ("ings", "", 7), ("ing", "", 6), ("edly", "", 7), ("ed", "", 5), ("ly", "", 6),
        ("es", "", 6), ("s", "", 4),
    ):  # fmt: skip
        if tok.endswith(suf) and len(tok) >= minlen and not (suf == "s" and tok.endswith("ss")):
            tok = tok[: len(tok) - len(suf)] + rep
            break
    if len(tok) > 4 and tok[-1] == tok[-2] and tok[-1] not in "lsz":
        tok = tok[:-1]
    if tok.endswith("ise"):
        tok = tok[:-3] + "ize"
    # "criticize"/"criticized", "approve"/"approved" meet at one stem.
    if len(tok) > 4 and tok.endswith("e") and not tok.endswith("ee"):
        tok = tok[:-1]
    return tok


def number_value(low: str) -> str | None:
    """The value of a lower-cased number token (\"42\", \"1,000\", \"five\") as text; None for a word."""
    if low[0].isdigit():
        t = low.replace(",", "")
        if ":" in t:
            return t
        try:
            return f"{float(t):g}"
        except ValueError:
            return t
    if low in NUM_WORDS:
        return f"{NUM_WORDS[low]:g}"
    return None


# "instead of X" and "rather than X" deny X as "not X" does, for scope comparison only.
_CONTRASTS = word_set("instead rather")
_NOT_QUANTITIES = word_set(
    "one once first second third fourth fifth sixth seventh eighth ninth tenth"
)
# After "not" these hide what is denied: "don't think [X]", "not so much [in X]".
_OPAQUE_AFTER_NEGATION = word_set(
    "think believe expect seem seems really necessarily always much so even longer"
)

# Words that open a description of the name before them ("Green, who teaches ...").
MONTHS = word_set(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_MAGNITUDES = word_set("hundred thousand million billion trillion m bn k")
# After these a number word names a known group ("the two countries"), not a quantity.
_DETERMINERS = word_set("the both these those")
_CLAUSE = re.compile(
    r"[,;:.!?()\"]|\b(?:but|and|or|while|although|though|whereas|because)\b", re.IGNORECASE
)


def _negated_words(raw: str) -> tuple[set[str], set[str]]:
    """Stems a negation governs: the first content word after it in the same clause
    ("did not [criticize]", "instead of [Kellogg]"); and every stem of a clause that holds
    a negation, where a word may be denied in a way this reading cannot pin down."""
    scoped: set[str] = set()
    touched: set[str] = set()
    for clause in _CLAUSE.split(normalize(raw)):
        low = [t.lower() for t in TOKEN.findall(clause)]
        for i, t in enumerate(low):
            if not (t in NEGATIONS or t.endswith("n't") or t in _CONTRASTS):
                continue
            if i + 1 < len(low) and low[i + 1] in ("only", "just", "merely"):
                continue
            touched.update(stem(w) for w in low)
            for w in low[i + 1 : i + 4]:
                if w in STOPWORDS or w in NEGATIONS:
                    continue
                # The scope is then further on, where a lexical view cannot find it.
                if w not in _OPAQUE_AFTER_NEGATION:
                    scoped.add(stem(w))
                break
    return scoped, touched


def is_year(value: str) -> bool:
    return len(value) == 4 and value.isdigit() and 1800 <= int(value) <= 2100


class TextView:
    """Token-level view of one sentence (or claim) used by the features."""

    __slots__ = (
        "cased", "content", "counts", "cpos", "low", "near_negation", "neg", "negated",
        "num_units", "numbers", "positions", "stems", "toks", "trigrams", "years",
    )  # fmt: skip

    def __init__(self, raw: str) -> None:
        self.toks: list[str] = TOKEN.findall(normalize(raw))
        self.low = [t.lower() for t in self.toks]
        self.stems = [stem(t) for t in self.low]
        self.cased = any(c.isupper() for c in raw)
        self.cpos = [
            i for i, (s, lw) in enumerate(zip(self.stems, self.low, strict=True))
            if lw not in STOPWORDS and s not in STOPWORDS
        ]  # fmt: skip
        self.content = [self.stems[i] for i in self.cpos]
        # Ordinals and "one"/"once" are mostly not quantities ("the first time", "one of").
        values = [
            None
            if lw in _NOT_QUANTITIES
            or (lw in NUM_WORDS and i > 0 and self.low[i - 1] in _DETERMINERS)
            else number_value(lw)
            for i, lw in enumerate(self.low)
        ]
        self.numbers = {v for v in values if v is not None}
        self.years = {v for v in self.numbers if is_year(v)}
        negators = [
            i for i, t in enumerate(self.low)
            if (t in NEGATIONS or t.endswith("n't"))
            # "not only X but also Y" affirms X.
            and not (i + 1 < len(self.low) and self.low[i + 1] in ("only", "just", "merely"))
        ]  # fmt: skip
        self.neg = len(negators)
        self.negated, self.near_negation = _negated_words(raw)
        self.positions: dict[str, list[int]] = {}
        for i, st in enumerate(self.stems):
            self.positions.setdefault(st, []).append(i)
        # Counts: numbers that are neither years nor days of a month ("April 13").
        self.counts = {
            v for i, v in enumerate(values)
            if v is not None and not is_year(v)
            and not any(0 <= j < len(self.low) and self.low[j] in MONTHS for j in (i - 1, i + 1))
        }  # fmt: skip
        # A count and the word it counts, right after it ("three Chinese leaders",
        # "42 million dollars").
        self.num_units: list[tuple[str, str]] = []
        for i, v in enumerate(values):
            if v is None or v not in self.counts:
                continue
            j = i + 1
            if j < len(self.low) and self.low[j] in _MAGNITUDES:
                v, j = f"{v} {self.low[j]}", j + 1
            if j < len(self.low) and values[j] is None and self.low[j] not in STOPWORDS:
                self.num_units.append((v, self.stems[j]))
        self.trigrams = set(zip(self.stems, self.stems[1:], self.stems[2:], strict=False))
