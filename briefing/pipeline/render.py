"""Briefings as Markdown (for people) and JSON (the contract, for tools)."""

from __future__ import annotations

from briefing.schema import Briefing, Claim

_VERDICT_MARK = {
    "supported": "",
    "unverified": "",
    "unsupported": " **[UNSUPPORTED by its sources]**",
    "contradicted": " **[CONTRADICTED by its sources]**",
}


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

    def cite(claim: Claim) -> str:
        marks = []
        for c in claim.citations:
            key = (c.source_id, c.start, c.end)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                spans.append((numbers[key], c))
            marks.append(f"[{numbers[key]}]")
        mark = "".join(marks) if marks else "**[no citation]**"
        return f"{claim.text} {mark}{_VERDICT_MARK.get(claim.verdict, '')}"

    lines = [f"# {briefing.title}", ""]
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
    lines += ["## Summary", ""]
    lines += [f"- {cite(c)}" for c in briefing.summary] or ["_No summary._"]
    lines += ["", "## Key points", ""]
    lines += [f"- {cite(c)}" for c in briefing.key_points] or ["_No key points._"]
    if briefing.disagreements:
        lines += ["", "## Where sources disagree", ""]
        for item in briefing.disagreements:
            lines.append(f"### {item.topic}")
            lines.append("")
            lines += [f"- {cite(c)}" for c in item.claims]
            lines.append("")
    lines += ["", "## Citations", ""]
    for number, c in spans:
        lines.append(
            f"{number}. [{source_no.get(c.source_id, '?')}] {titles.get(c.source_id, c.source_id)}, "
            f"characters {c.start}–{c.end}: “{_quote(c.quote)}”"
        )
    lines += ["", "## Sources", ""]
    for n, s in enumerate(briefing.sources, start=1):
        where = f" — `{s.path}`" if s.path else ""
        lines.append(f"{n}. {s.title}{where} (id `{s.id}`)")
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
