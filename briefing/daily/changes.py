"""What changed from one briefing to a later one: new, updated and dropped claims, and sources.

Claims are matched by meaning, not by their words: the claims of each briefing become one
text (a claim a line), and the comparison engine of `briefing.faithfulness.compare` judges
every sentence of either against the other, with the faithfulness checker and the conflict
detectors. For a claim of the later briefing:

- corroborated (the earlier briefing says it): unchanged, counted, not listed;
- contradicted (the earlier briefing states the same fact with another number, date, name,
  place or status): `updated`, with both sides;
- otherwise: `new`.

A claim of the earlier briefing that no later claim backs or updates is `dropped`. Each side
keeps its own citations: `updated[].before` and `dropped` cite the earlier briefing's
sources, which `since_sources` carries where the later briefing does not hold them.

Sources are matched by path (a file's path, a page's URL), else title: the same content hash
is unchanged, the same path with other content is edited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from briefing.faithfulness.checker import Checker
from briefing.faithfulness.compare import Comparer
from briefing.schema import (
    Briefing,
    Changes,
    Claim,
    SentenceComparison,
    Source,
    SourceChange,
    UpdatedClaim,
)

__all__ = ["diff_briefings", "source_changes"]

_BEFORE, _AFTER = "before", "after"


@dataclass(frozen=True)
class _Lines:
    """The claims of one briefing as one text, and where each claim's line starts."""

    source: Source
    claims: list[Claim]
    starts: list[int]

    def claim_at(self, offset: int) -> int:
        """Index of the claim whose line holds `offset`."""
        low, high = 0, len(self.starts) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.starts[middle] <= offset:
                low = middle
            else:
                high = middle - 1
        return low


def _unique_claims(briefing: Briefing) -> list[Claim]:
    """Summary, key points and both sides of each disagreement, each statement once."""
    seen: set[str] = set()
    out = []
    for claim in briefing.claims():
        key = " ".join(claim.text.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(claim)
    return out


def _lines(side: str, claims: list[Claim]) -> _Lines:
    starts, parts, at = [], [], 0
    for claim in claims:
        line = " ".join(claim.text.split())
        starts.append(at)
        parts.append(line)
        at += len(line) + 1
    text = "\n".join(parts)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    source = Source(id=side, title=f"{side} claims", sha256=digest, text=text)
    return _Lines(source, claims, starts)


@dataclass
class _Verdicts:
    """Per claim of one side: its status and the other side's claims it was judged by."""

    status: list[str]
    supporting: list[set[int]]
    contradicting: list[set[int]]
    conflicts: list[list[str]]


def _verdicts(lines: _Lines, other: _Lines, judged: Sequence[SentenceComparison]) -> _Verdicts:
    """A claim is corroborated when every sentence of it is; contradicted when any is."""
    n = len(lines.claims)
    found = _Verdicts(["corroborated"] * n, [set() for _ in range(n)], [set() for _ in range(n)],
                      [[] for _ in range(n)])  # fmt: skip
    for sentence in judged:
        if sentence.source_id != lines.source.id:
            continue
        at = lines.claim_at(sentence.start)
        found.supporting[at].update(other.claim_at(c.start) for c in sentence.supporting)
        found.contradicting[at].update(other.claim_at(c.start) for c in sentence.contradicting)
        found.conflicts[at].extend(sentence.conflicts)
        if sentence.status == "contradicted":
            found.status[at] = "contradicted"
        elif sentence.status != "corroborated" and found.status[at] != "contradicted":
            found.status[at] = "single_source"
    return found


async def diff_briefings(before: Briefing, after: Briefing, checker: Checker) -> Changes:
    """What changed from `before` to `after` (any two briefings, the earlier first)."""
    old, new = _unique_claims(before), _unique_claims(after)
    changes = Changes(
        since=before.id, since_date=before.created_at, sources=source_changes(before, after)
    )
    if not old or not new:
        changes.new, changes.dropped = new, old
        changes.since_sources = _sources_cited(changes, before, after)
        return changes
    was, now = _lines(_BEFORE, old), _lines(_AFTER, new)
    judged = await Comparer([was.source, now.source], checker).sentences()
    later = _verdicts(now, was, judged)
    earlier = _verdicts(was, now, judged)
    kept: set[int] = set()  # earlier claims that a later one repeats or updates
    for n, claim in enumerate(new):
        status = later.status[n]
        if status == "contradicted" and later.contradicting[n]:
            first = min(later.contradicting[n])
            changes.updated.append(
                UpdatedClaim(before=old[first], after=claim, conflicts=_unique(later.conflicts[n]))
            )
            kept.update(later.contradicting[n])
        elif status == "corroborated":
            changes.unchanged += 1
            kept.update(later.supporting[n])
        else:
            changes.new.append(claim)
    paired = {id(u.after) for u in changes.updated}
    for n, claim in enumerate(old):
        if n in kept:
            continue
        status = earlier.status[n]
        if status == "contradicted" and earlier.contradicting[n]:
            # The later claim that states it otherwise was judged on its own as new or
            # unchanged; the pair is an update all the same.
            other = new[min(earlier.contradicting[n])]
            if id(other) not in paired:
                paired.add(id(other))
                changes.new = [c for c in changes.new if c is not other]
                changes.updated.append(
                    UpdatedClaim(before=claim, after=other, conflicts=_unique(earlier.conflicts[n]))
                )
            continue
        if status != "corroborated":
            changes.dropped.append(claim)
    changes.since_sources = _sources_cited(changes, before, after)
    return changes


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _sources_cited(changes: Changes, before: Briefing, after: Briefing) -> list[Source]:
    """The earlier briefing's sources that its listed claims cite and the later one lacks."""
    have = {s.id for s in after.sources}
    cited = {
        c.source_id
        for claim in [*changes.dropped, *(u.before for u in changes.updated)]
        for c in claim.citations
    }
    return [s for s in before.sources if s.id in cited and s.id not in have]


def _key(source: Source) -> str:
    return source.path or source.title


def source_changes(before: Briefing, after: Briefing) -> list[SourceChange]:
    """Every source of `after` as new, edited or unchanged, then those of `before` removed."""
    old_ids = {s.id for s in before.sources}
    new_ids = {s.id for s in after.sources}
    by_key = {_key(s): s for s in before.sources if s.id not in new_ids}
    out: list[SourceChange] = []
    replaced: set[str] = set()
    for source in after.sources:
        if source.id in old_ids:
            status, previous = "unchanged", None
        elif _key(source) in by_key and by_key[_key(source)].id not in replaced:
            previous = by_key[_key(source)].id
            status = "edited"
            replaced.add(previous)
        else:
            status, previous = "new", None
        out.append(
            SourceChange(
                status=status,  # type: ignore[arg-type]
                source_id=source.id,
                previous_id=previous,
                title=source.title,
                path=source.path,
            )
        )
    out.extend(
        SourceChange(status="removed", source_id=s.id, title=s.title, path=s.path)
        for s in before.sources
        if s.id not in new_ids and s.id not in replaced
    )
    return out
