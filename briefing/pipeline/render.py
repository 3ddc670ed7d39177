"""Briefings as Markdown (for people) and JSON (the contract, for tools)."""

from __future__ import annotations

import json
from collections.abc import Callable

from briefing.schema import Briefing, Changes, Citation, Claim, Comparison

_VERDICT_MARK = {
    "supported": "",
    "unverified": "",
    "unsupported": " **[UNSUPPORTED by its sources]**",
    "contradicted": " **[CONTRADICTED by its sources]**",
}


def _badge(claim: Claim, number: Callable[[Citation], str]) -> str:
    """What the other sources say of a claim, with the numbers of their spans."""
    corroboration = claim.corroboration
    if corroboration.status == "corroborated":
        return f" · **corroborated** by {''.join(number(c) for c in corroboration.supporting)}"
    if corroboration.status == "contradicted":
        return f" · **contradicted** by {''.join(number(c) for c in corroboration.contradicting)}"
    if corroboration.status == "single_source":
        return " · _only one source says this_"
    return ""


def to_json(briefing: Briefing) -> str:
    """The Briefing JSON of DESIGN.md."""
    return briefing.model_dump_json(indent=2) + "\n"


def _quote(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def to_markdown(briefing: Briefing) -> str:
    """Claims with numbered citations, then the quoted spans and the sources."""
    numbers: dict[tuple[str, int, int], int] = {}
    spans = []
    source_no = {s.id: n for n, s in enumerate(briefing.sources, start=1)}
    titles = {s.id: s.title for s in briefing.sources}

    def number(c: Citation) -> str:
        key = (c.source_id, c.start, c.end)
        if key not in numbers:
            numbers[key] = len(numbers) + 1
            spans.append((numbers[key], c))
        return f"[{numbers[key]}]"

    def cite(claim: Claim, badge: bool = True) -> str:
        marks = "".join(number(c) for c in claim.citations) or "**[no citation]**"
        text = f"{claim.text} {marks}{_VERDICT_MARK.get(claim.verdict, '')}"
        return text + (_badge(claim, number) if badge else "")

    lines = [f"# {briefing.title}", ""]
    earlier = briefing.changes.since_sources if briefing.changes else []
    for n, s in enumerate(earlier, start=len(briefing.sources) + 1):
        source_no.setdefault(s.id, n)
        titles.setdefault(s.id, s.title)
    if briefing.engine == "extractive":
        lines += [
            "> **Extractive briefing** — every point is a sentence quoted verbatim from the "
            "sources; no language model was used.",
            "",
        ]
    else:
        prompt = (
            f", prompt {briefing.prompt.name}@{briefing.prompt.version}" if briefing.prompt else ""
        )
        lines += [f"> Written by `{briefing.model}`{prompt}. Claims cite source spans below.", ""]
    if briefing.changes is not None:
        lines += changes_lines(briefing.changes, lambda c: cite(c, badge=False), titles)
        lines.append("")
    lines += ["## Summary", ""]
    lines += [f"- {cite(c)}" for c in briefing.summary] or ["_No summary._"]
    lines += ["", "## Key points", ""]
    lines += [f"- {cite(c)}" for c in briefing.key_points] or ["_No key points._"]
    if briefing.disagreements:
        lines += ["", "## Where the sources disagree", ""]
        for item in briefing.disagreements:
            lines.append(f"### {item.topic}")
            lines.append("")
            lines += [
                f"- {titles.get(c.citations[0].source_id, '?') if c.citations else '?'}: "
                f"{cite(c, badge=False)}"
                for c in item.claims
            ]
            lines.append("")
    alone: dict[str, list[Claim]] = {}
    for c in [*briefing.summary, *briefing.key_points]:
        if c.corroboration.status == "single_source" and c.citations:
            alone.setdefault(c.citations[0].source_id, []).append(c)
    if alone:
        lines += ["", "## Only one source says", ""]
        for source_id, claims in alone.items():
            lines.append(f"- {titles.get(source_id, source_id)}:")
            lines += [
                f"  - {_quote(c.text, 160)} {''.join(number(x) for x in c.citations)}"
                for c in claims
            ]
    if len(briefing.sources) > 1 and briefing.source_agreement:
        lines += [
            "",
            "## Source agreement",
            "",
            "| source | claims | corroborated | only this source | contradicted |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {source_no.get(a.source_id, '?')}. {_quote(titles.get(a.source_id, a.source_id), 80)} "
            f"| {a.claims} | {a.corroborated} | {a.single_source} | {a.contradicted} |"
            for a in briefing.source_agreement
        ]
    lines += ["", "## Citations", ""]
    for n, span in spans:
        lines.append(
            f"{n}. [{source_no.get(span.source_id, '?')}] "
            f"{titles.get(span.source_id, span.source_id)}, "
            f"characters {span.start}–{span.end}: “{_quote(span.quote)}”"
        )
    lines += ["", "## Sources", ""]
    for n, s in enumerate(briefing.sources, start=1):
        where = f" — `{s.path}`" if s.path else ""
        lines.append(f"{n}. {s.title}{where} (id `{s.id}`)")
    for n, s in enumerate(earlier, start=len(briefing.sources) + 1):
        where = f" — `{s.path}`" if s.path else ""
        lines.append(f"{n}. {s.title}{where} (id `{s.id}`; in the earlier briefing only)")
    if briefing.warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- {w}" for w in briefing.warnings]
    u = briefing.usage
    if u.calls:
        cost = f", ${u.cost_usd:.4f}" if u.cost_usd is not None else ""
        lines += [
            "",
            f"_{u.calls} model calls, {u.input_tokens} tokens in, {u.output_tokens} out{cost}._",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _day(changes: Changes) -> str:
    return changes.since_date.strftime("%Y-%m-%d %H:%M UTC")


def changes_lines(
    changes: Changes, cite: Callable[[Claim], str], titles: dict[str, str]
) -> list[str]:
    """The "What changed since …" section: sources, new, updated and dropped claims."""
    lines = [f"## What changed since {_day(changes)}", ""]
    if changes.empty:
        return [*lines, f"_Nothing changed since briefing `{changes.since}`._"]
    moved = [s for s in changes.sources if s.status != "unchanged"]
    if moved:
        counts = {k: sum(s.status == k for s in moved) for k in ("new", "edited", "removed")}
        lines.append("Sources: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + ".")
        lines.append("")
        lines += [f"- {s.status}: {s.title}" + (f" (`{s.path}`)" if s.path else "") for s in moved]
        lines.append("")
    if changes.new:
        lines += ["### New", ""]
        lines += [f"- {cite(c)}" for c in changes.new]
        lines.append("")
    if changes.updated:
        lines += ["### Updated", ""]
        for u in changes.updated:
            why = f" ({'; '.join(u.conflicts)})" if u.conflicts else ""
            lines.append(f"- now: {cite(u.after)}{why}")
            lines.append(f"  - before: {cite(u.before)}")
        lines.append("")
    if changes.dropped:
        lines += ["### No longer said", ""]
        lines += [
            f"- {cite(c)} — {', '.join(dict.fromkeys(titles.get(x.source_id, x.source_id) for x in c.citations))}"
            for c in changes.dropped
        ]
        lines.append("")
    lines.append(f"_{changes.unchanged} claim(s) unchanged since briefing `{changes.since}`._")
    return lines


def changes_markdown(changes: Changes, briefing: Briefing) -> str:
    """Only what changed: the section of `to_markdown`, with the spans it cites."""
    sources = {s.id: s for s in [*briefing.sources, *changes.since_sources]}
    spans: list[Citation] = []
    numbers: dict[tuple[str, int, int], int] = {}

    def cite(claim: Claim) -> str:
        marks = ""
        for c in claim.citations:
            key = (c.source_id, c.start, c.end)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                spans.append(c)
            marks += f"[{numbers[key]}]"
        return f"{claim.text} {marks or '**[no citation]**'}{_VERDICT_MARK.get(claim.verdict, '')}"

    titles = {sid: s.title for sid, s in sources.items()}
    lines = [f"# {briefing.title}", ""]
    lines += changes_lines(changes, cite, titles)
    if spans:
        lines += ["", "## Citations", ""]
        lines += [
            f"{n}. {titles.get(c.source_id, c.source_id)}, characters {c.start}–{c.end}: "
            f"“{_quote(c.quote)}”"
            for n, c in enumerate(spans, start=1)
        ]
    return "\n".join(lines).rstrip() + "\n"


def changes_json(changes: Changes, briefing: Briefing) -> str:
    """Only what changed, as JSON: the briefing's id, title and time, `changes`, and the
    later briefing's sources that its new and updated claims cite."""
    cited = {
        c.source_id
        for claim in [*changes.new, *(u.after for u in changes.updated)]
        for c in claim.citations
    }
    payload = {
        "id": briefing.id,
        "created_at": briefing.model_dump(mode="json")["created_at"],
        "title": briefing.title,
        "changes": changes.model_dump(mode="json"),
        "sources": [s.model_dump(mode="json") for s in briefing.sources if s.id in cited],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def comparison_json(comparison: Comparison) -> str:
    """The JSON of `briefing compare` and `POST /v1/compare`."""
    return comparison.model_dump_json(indent=2) + "\n"


def comparison_markdown(comparison: Comparison) -> str:
    """Per source: where it contradicts the others, what only it says, and how many of its
    sentences the others back."""
    sources = comparison.sources
    number = {s.id: n for n, s in enumerate(sources, start=1)}
    titles = {s.id: s.title for s in sources}
    lines = [f"# Comparison of {len(sources)} source{'s' * (len(sources) != 1)}", ""]
    if len(sources) < 2:
        lines += ["_One source: there is nothing to compare it with._", ""]
    lines += [
        f"Every sentence of each source against all the others (support judged by "
        f"{comparison.method}): **corroborated** when another source says it, "
        "**contradicted** when one says it otherwise, else said by its own source only.",
        "",
        "| source | sentences | corroborated | only this source | contradicted |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {number[a.source_id]}. {_quote(titles[a.source_id], 80)} | {a.claims} | "
        f"{a.corroborated} | {a.single_source} | {a.contradicted} |"
        for a in comparison.source_agreement
    ]

    def where(c: Citation) -> str:
        return f"[{number.get(c.source_id, '?')}] characters {c.start}–{c.end}: “{_quote(c.quote, 240)}”"

    for source in sources:
        mine = [s for s in comparison.sentences if s.source_id == source.id]
        lines += ["", f"## {number[source.id]}. {source.title}", ""]
        contradicted = [s for s in mine if s.status == "contradicted"]
        alone = [s for s in mine if s.status == "single_source"]
        backed = [s for s in mine if s.status == "corroborated"]
        if contradicted:
            lines += ["### Where it contradicts the others", ""]
            for s in contradicted:
                lines.append(f"- “{_quote(s.text, 300)}” (characters {s.start}–{s.end})")
                for n, c in enumerate(s.contradicting):
                    why = f"{s.conflicts[n]}; " if n < len(s.conflicts) else ""
                    lines.append(f"  - {why}{where(c)}")
            lines.append("")
        if alone and len(sources) > 1:
            lines += ["### What only it says", ""]
            lines += [f"- “{_quote(s.text, 300)}” (characters {s.start}–{s.end})" for s in alone]
            lines.append("")
        if backed:
            lines += [f"### Backed by another source ({len(backed)})", ""]
            for s in backed:
                lines.append(f"- “{_quote(s.text, 200)}”")
                lines += [f"  - {where(c)}" for c in s.supporting[:3]]
            lines.append("")
    if comparison.warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- {w}" for w in comparison.warnings]
    return "\n".join(lines).rstrip() + "\n"
