"""The lexical checker's features: how well, and how consistently, evidence sentences cover
a claim (see `briefing.faithfulness.lexical` for the whole method)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from briefing.faithfulness.lexical.index import RETRIEVE_K, WINDOW_K, IndexedDocument
from briefing.faithfulness.lexical.text import (
    STOPWORDS,
    TOKEN,
    TextView,
    normalize,
    split_sentences,
    stem,
    word_set,
)

__all__ = [
    "ABSOLUTES",
    "ALIASES",
    "APPOSITION",
    "DIRECTIONS",
    "FEATURES",
    "SPEECH",
    "analyse_claim",
    "claim_features",
    "direction_flips",
    "has_words",
    "negation_flips",
    "present",
    "soft",
    "unit_conflicts",
]

# Words that mark a claim's direction; a claim on one side aligned with evidence on the
# other is a reversal ("rose" vs "fell"). Kept to pairs that rarely occur in both senses.
_DIRECTION_PAIRS = (
    ("rise rises rose risen rising increase increased increases increasing grow grew grown "
     "growing gain gains gained surge surged soar soared",
     "fall falls fell fallen falling decrease decreased decreases decreasing shrink shrank "
     "decline declined declines drop dropped drops plunge plunged"),
    ("win wins won winning victory victorious", "lose loses lost losing defeat defeated"),
    ("before earlier", "after later"),
    ("accept accepted accepts approve approved approves allow allowed allows support supported "
     "supports include included includes", "reject rejected rejects refuse refused refuses ban "
     "banned bans oppose opposed opposes exclude excluded excludes"),
    ("open opened opens", "close closed closes shut"),
    ("start started starts begin began begins", "end ended ends finish finished"),
    ("best largest biggest highest", "worst smallest lowest"),
    ("buy bought buys", "sell sold sells"),
    ("male", "female"),
    ("easy easier easiest", "hard harder hardest difficult"),
    ("success successful succeeded", "failure failed unsuccessful"),
)  # fmt: skip
DIRECTIONS = tuple((word_set(a), word_set(b)) for a, b in _DIRECTION_PAIRS)
ABSOLUTES = word_set(
    "every all always entire entirely completely totally whole everyone everything everybody "
    "forever solely exclusively"
)
SPEECH = word_set(
    "said say says told tell tells according added adds explained explains noted notes argued "
    "argues claimed claims warned warns stated states recalled insisted wrote writes pointed "
    "summed sums believes thinks described describes suggested suggests"
)
APPOSITION = word_set("who a an the of from at director head professor")

# ---------------------------------------------------------------- features


def coverage(items: Iterable[Any], pool: set[Any] | frozenset[Any]) -> float:
    """Share of `items` found in `pool` (1.0 for no items)."""
    seq = list(items)
    if not seq:
        return 1.0
    return sum(1 for w in seq if w in pool) / len(seq)


def _longest_run(stems: list[str], ngrams: set[tuple[str, ...]], maxn: int) -> int:
    best = 0
    for n in range(1, maxn + 1):
        if not any(tuple(stems[i : i + n]) in ngrams for i in range(len(stems) - n + 1)):
            break
        best = n
    return best


_LCS_MAXN = 12


@dataclass(frozen=True)
class _SentenceResult:
    feats: dict[str, float]
    top: list[int]
    contradiction: bool


def _claim_names(cs: TextView, doc: IndexedDocument) -> list[int]:
    """Positions of the claim's name tokens: capitalised, or names by the document's casing."""
    out = []
    for i, (tok, low) in enumerate(zip(cs.toks, cs.low, strict=True)):
        if low in STOPWORDS or low[0].isdigit() or low in SPEECH:
            continue
        if (cs.cased and tok[0].isupper() and (i > 0 or doc.is_name(low))) or (
            not cs.cased and doc.is_name(low)
        ):
            out.append(i)
    return out


def name_runs(names: list[int]) -> list[list[int]]:
    """Consecutive name positions grouped into runs ("Sam Green")."""
    runs: list[list[int]] = []
    for p in names:
        if runs and runs[-1][-1] == p - 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _speakers(cs: TextView, names: list[int]) -> list[int]:
    """Name positions of whoever the claim says spoke: "X said", "said X", "according to X",
    or "X, <who X is>, said"."""
    verbs = [i for i, t in enumerate(cs.low) if t in SPEECH]
    out: list[int] = []
    runs = name_runs(names)
    if verbs and runs and runs[0][0] <= 1:
        nxt = runs[0][-1] + 1
        # "Green, who teaches at King's College London, said": the opening name speaks, not
        # the last name of the description before the verb.
        if nxt < verbs[0] and cs.low[nxt] in APPOSITION:
            return runs[0]
    for v in verbs:
        after = v + 2 if cs.low[v] == "according" else v + 1
        for k, run in enumerate(runs):
            if run[-1] == v - 1 or run[0] == after or (k == 0 and run[0] <= 1 and run[-1] < v):
                out.extend(run)
    return sorted(set(out))


def _next_word(cs: TextView, start: int, step: int) -> int | None:
    """The nearest content word from `start` in direction `step`, at most two tokens away."""
    for q in (start + step, start + 2 * step):
        if not 0 <= q < len(cs.low):
            return None
        if cs.low[q] not in STOPWORDS:
            return q
    return None


def _same_form(a: str, b: str) -> bool:
    return a == b or all(a.endswith(x) == b.endswith(x) for x in ("ed", "ing"))


def _role_conflicts(cs: TextView, names: list[int], ev: TextView, doc: IndexedDocument) -> int:
    """Claim names whose neighbouring word sits, in the evidence, next to another name and
    away from this one ("Bill Clinton invited" vs "George W. Bush invited")."""
    if not cs.cased:  # only capitalised claims mark names reliably enough for this
        return 0
    ev_names = [
        i for i, t in enumerate(ev.toks)
        if ev.low[i] not in STOPWORDS and not t[0].isdigit()
        and ((i > 0 and t[0].isupper()) or doc.is_name(ev.low[i]))
    ]  # fmt: skip
    conflicts = 0
    for run in name_runs(names):
        # Compared by prefix, so "Russia's" and "Russian" count as one name.
        mine = {soft(cs.stems[p]) for p in run}
        own = [i for i, st in enumerate(ev.stems) if soft(st) in mine]
        foreign = [i for i in ev_names if soft(ev.stems[i]) not in mine]
        # The word right after a name is what the claim says of it: its verb or its title.
        q = _next_word(cs, run[-1], 1)
        if q is None or q in names:
            continue
        # Same word in the same form: "pointed" (a verb) is not the noun "point".
        at = [a for a in ev.positions.get(cs.stems[q], []) if _same_form(cs.low[q], ev.low[a])]
        # Bound to this name somewhere in the evidence: no conflict, even if repeated elsewhere.
        if any(abs(a - b) <= 2 for a in at for b in own):
            continue
        if any(a - b == 1 for a in at for b in foreign):
            conflicts += 1
    return conflicts


def unit_conflicts(cs: TextView, ctx: list[TextView]) -> int:
    """Claim numbers whose counted word is counted differently in the evidence."""
    conflicts = 0
    for value, unit in cs.num_units:
        seen = {v for t in ctx for v, u in t.num_units if u == unit}
        if seen and value not in seen:
            conflicts += 1
    return conflicts


def direction_flips(cs: TextView, ev: TextView) -> int:
    claim = set(cs.low)
    evidence = set(ev.low)
    flips = 0
    for a, b in DIRECTIONS:
        for one, other in ((a, b), (b, a)):
            if claim & one and not claim & other and evidence & other and not evidence & one:
                flips += 1
    return flips


def negation_flips(cs: TextView, ev: TextView) -> int:
    """Shared words that one side negates and the other states with no negation near."""
    shared = set(cs.content) & set(ev.stems)
    denied = (cs.negated - ev.near_negation) | (ev.negated - cs.near_negation)
    return len(denied & shared)


ALIASES = {
    stem(k): frozenset(stem(w) for w in v.split())
    for k, v in {"us": "united america washington", "uk": "britain kingdom british",
                 "eu": "european brussels"}.items()
}  # fmt: skip


def present(stem: str, pool: set[str]) -> bool:
    # "US" is found where the evidence says "United States" (and the like).
    return stem in pool or bool(ALIASES.get(stem, frozenset()) & pool)


def _run_missing(run: list[str], pool: set[str]) -> int:
    """Tokens of a name missing from `pool`; a surname alone stands for "First Last"."""
    if len(run) == 2 and present(run[-1], pool):
        return 0
    return sum(1 for w in run if not present(w, pool))


def soft(stem: str) -> str:
    # Derivations and spellings share a prefix ("intense"/"intensive", "stabilise"/"stabilize").
    return stem[:6] if len(stem) >= 6 else stem


def _sentence_features(cs: TextView, doc: IndexedDocument) -> _SentenceResult:
    found = doc.retrieve(cs, WINDOW_K)
    top = found[:RETRIEVE_K]  # the evidence: empty when no sentence shares a word
    # With nothing shared, the first sentence stands in so the features stay defined.
    window = found or [0]
    texts = [doc.sentence(i) for i in window]
    best = texts[0]
    ev1 = set(best.stems)
    # The sentences around the best one catch pronoun antecedents and split numbers.
    neighbours = [j for j in (window[0] - 1, window[0] + 1) if 0 <= j < len(doc)]
    context = [doc.sentence(j) for j in doc.context(window[0])]
    ctx_stems = set().union(*(set(t.stems) for t in context))
    ctx_low = set().union(*(set(t.low) for t in context))
    ev_nums = set(best.numbers).union(*(doc.sentence(j).numbers for j in neighbours))
    ctx_years = set().union(*(t.years for t in context))
    content = cs.content or cs.stems
    win_tri = set().union(*(t.trigrams for t in texts))
    win_ngrams: set[tuple[str, ...]] = set()
    for t in texts:
        st = t.stems
        for n in range(1, min(_LCS_MAXN, len(cs.stems)) + 1):
            win_ngrams.update(tuple(st[i : i + n]) for i in range(len(st) - n + 1))
    names = _claim_names(cs, doc)
    runs = [[cs.stems[i] for i in run] for run in name_runs(names)]
    speakers = [[cs.stems[i] for i in run] for run in name_runs(_speakers(cs, names))]
    # Who the claim is about or quotes (its speaker, or a name that opens it) must stand in the
    # evidence's context; other names (background, appositions) need only be in the document.
    lead = [runs[0]] if names and names[0] <= 1 else []
    core = speakers + [run for run in lead if run not in speakers]
    ev1_soft = {soft(w) for w in ev1}
    num_miss_ev = sum(1 for n in cs.numbers if n not in ev_nums)
    year_conflict = bool(ctx_years) and any(y not in ctx_years for y in cs.years)
    unit_clashes = unit_conflicts(cs, context)
    neg_flips = negation_flips(cs, best)
    flips = direction_flips(cs, best)
    role_conflicts = _role_conflicts(cs, names, best, doc)
    cov_top1 = coverage(content, ev1)
    # Only where the evidence is really about the claim does a mismatch mean a conflict.
    ev_counts = set(best.counts).union(*(doc.sentence(j).counts for j in neighbours))
    conflict = cov_top1 >= 0.5 and (
        # A count the evidence does not have, where it gives other counts.
        (bool(cs.counts - ev_counts) and bool(best.counts - cs.counts))
        or year_conflict
        or unit_clashes > 0
        or neg_flips > 0
        or flips > 0
        or role_conflicts > 0
    )
    feats = {
        "cov_top1": cov_top1,
        "soft_top1": coverage((soft(w) for w in content), ev1_soft),
        "cov_ctx": coverage(content, ctx_stems),
        "tri_win": coverage(cs.trigrams, win_tri),
        "lcs_frac": _longest_run(cs.stems, win_ngrams, _LCS_MAXN) / max(len(cs.stems), 1),
        "novel_cnt": float(sum(1 for w in content if not doc.has_stem(w))),
        "len_ratio": len(cs.toks) / (len(best.toks) or 1),
        "num_miss_ev": float(num_miss_ev),
        "year_conflict": float(year_conflict),
        "unit_conflict": float(unit_clashes),
        "neg_mismatch": float((cs.neg > 0) != (best.neg > 0)),
        "neg_flip": float(neg_flips),
        "direction_flip": float(flips),
        "absolute_added": float(any(t in ABSOLUTES and t not in ctx_low for t in cs.low)),
        "name_miss_ctx": float(sum(_run_missing(run, ctx_stems) for run in runs)),
        "subject_miss_ctx": float(sum(_run_missing(run, ctx_stems) for run in core)),
        "name_miss_doc": float(
            sum(1 for run in runs if run not in core and not any(map(doc.has_stem, run)))
        ),
        "speaker_miss": float(sum(1 for run in speakers if not present(run[-1], ctx_stems))),
        "role_conflict": float(role_conflicts),
        "conflict": float(conflict),
    }
    return _SentenceResult(feats, top, conflict)


# The model's inputs, in its order. `LexicalScore.features` reports these and the rest of
# what is computed (conflict detectors, alternative coverages) for diagnosis.
FEATURES: tuple[str, ...] = (
    "min_cov_top1", "min_soft_top1", "mean_tri_win", "lcs_frac", "cov_doc", "log_novel_cnt",
    "max_len_ratio", "any_num_miss_ev", "subject_miss_ctx", "name_miss_doc", "absolute_added",
    "conflict",
)  # fmt: skip


def has_words(text: str) -> bool:
    """Whether `text` has a word or number to check; `score_claim` needs a claim that does."""
    return TOKEN.search(normalize(text)) is not None


def analyse_claim(
    doc: IndexedDocument, claim: str
) -> tuple[dict[str, float], tuple[tuple[int, int], ...], bool]:
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("claim text is empty or whitespace only")
    csents = [TextView(claim[a:b]) for a, b in split_sentences(claim)]
    csents = [c for c in csents if c.toks] or [TextView(claim)]
    if not csents[0].toks:
        raise ValueError("claim has no words to check")
    results = [_sentence_features(c, doc) for c in csents]
    sf = [r.feats for r in results]
    full = TextView(claim)
    content = full.content or full.stems

    def agg_min(key: str) -> float:
        return min(f[key] for f in sf)

    def agg_mean(key: str) -> float:
        return sum(f[key] for f in sf) / len(sf)

    def agg_max(key: str) -> float:
        return float(max(f[key] > 0 for f in sf))

    def agg_sum(key: str) -> float:
        return sum(f[key] for f in sf)

    feats = {
        "min_cov_top1": agg_min("cov_top1"),
        "min_soft_top1": agg_min("soft_top1"),
        "mean_tri_win": agg_mean("tri_win"),
        "lcs_frac": agg_mean("lcs_frac"),
        "cov_doc": coverage(content, {w for w in content if doc.has_stem(w)}),
        "log_novel_cnt": math.log1p(agg_sum("novel_cnt")),
        "max_len_ratio": min(max(f["len_ratio"] for f in sf), 3.0),
        "any_num_miss_ev": agg_max("num_miss_ev"),
        "subject_miss_ctx": math.log1p(agg_sum("subject_miss_ctx")),
        "name_miss_doc": math.log1p(agg_sum("name_miss_doc")),
        "absolute_added": agg_max("absolute_added"),
        "conflict": agg_max("conflict"),
        # Diagnostics: not model inputs (they did not help it), but they say why.
        "min_cov_ctx": agg_min("cov_ctx"),
        "name_miss_ctx": math.log1p(agg_sum("name_miss_ctx")),
        "year_conflict": agg_max("year_conflict"),
        "unit_conflict": agg_max("unit_conflict"),
        "neg_mismatch": agg_max("neg_mismatch"),
        "neg_flip": agg_max("neg_flip"),
        "direction_flip": agg_max("direction_flip"),
        "speaker_miss": agg_max("speaker_miss"),
        "role_conflict": agg_max("role_conflict"),
    }
    # Evidence: each claim sentence's best sentence first, then the runners-up.
    order: list[int] = []
    for rank in range(RETRIEVE_K):
        for r in results:
            if rank < len(r.top) and r.top[rank] not in order:
                order.append(r.top[rank])
    evidence = tuple(doc.span(i) for i in order[:3])
    return feats, evidence, any(r.contradiction for r in results)


def claim_features(doc: IndexedDocument, claim: str) -> dict[str, float]:
    """The model's input features for one claim against one document."""
    return analyse_claim(doc, claim)[0]
