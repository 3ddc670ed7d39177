"""`briefing calls`: the model calls logged to SQLite, in the spirit of `llm logs`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from briefing.cli.common import fail, settings_from
from briefing.errors import BriefingError, NotFoundError

_LOG_OPTION = click.option(
    "--call-log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The SQLite call log; default BRIEFING_CALL_LOG or <data dir>/calls.db.",
)


def _log(call_log: Path | None) -> Any:
    from briefing.models.calllog import CallLog

    settings = settings_from(call_log=call_log)
    path = settings.call_log_path
    if not path.exists():
        raise NotFoundError(f"no call log at {path} (no model call was made with it)")
    return CallLog(path)


@click.group()
def calls() -> None:
    """Every model call: its prompt, model, tokens, latency and error; with its messages
    and answer unless BRIEFING_LOG_CALL_CONTENT=false."""


@calls.command("list")
@click.option("--limit", "-n", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--model", "-m", help="Only calls to this model string.")
@click.option("--prompt", "-p", help="Only calls of this prompt (NAME or NAME@VERSION).")
@click.option("--errors", is_flag=True, help="Only calls that failed.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@_LOG_OPTION
def calls_list(
    limit: int,
    model: str | None,
    prompt: str | None,
    errors: bool,
    as_json: bool,
    call_log: Path | None,
) -> None:
    """The latest calls first."""
    try:
        log = _log(call_log)
        try:
            rows = log.recent(limit=limit, model=model, prompt=prompt, errors_only=errors)
        finally:
            log.close()
    except BriefingError as exc:
        fail(exc)
        return
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("no calls")
        return
    header = ("ID", "WHEN (UTC)", "PROMPT", "MODEL", "TOKENS IN/OUT", "MS", "FINISH", "ERROR")
    table = [
        (
            str(r["id"]),
            r["created_at"][:19].replace("T", " "),
            r["prompt"] or "-",
            r["model"],
            f"{r['input_tokens'] or 0}/{r['output_tokens'] or 0}",
            f"{r['latency_ms']:.0f}",
            r["finish_reason"] or "-",
            (r["error"] or "")[:60],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@calls.command("show")
@click.argument("call_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@_LOG_OPTION
def calls_show(call_id: int, as_json: bool, call_log: Path | None) -> None:
    """One call: what was sent (every message) and what came back."""
    try:
        log = _log(call_log)
        try:
            row = log.get(call_id)
        finally:
            log.close()
        if row is None:
            raise NotFoundError(f"no call {call_id} in the call log")
    except BriefingError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps(row, indent=2, ensure_ascii=False))
        return
    cost = "unknown" if row["cost_usd"] is None else f"${row['cost_usd']:.6f}"
    lines = [
        f"# call {row['id']}",
        "",
        f"- when: {row['created_at']}",
        f"- model: {row['model']}",
        f"- prompt: {row['prompt'] or '-'} (sha256 {row['prompt_sha256'] or '-'})",
        f"- attempt: {row['attempt']}",
        f"- tokens: {row['input_tokens']} in"
        + (f" ({row['cached_tokens']} cached)" if row.get("cached_tokens") else "")
        + f", {row['output_tokens']} out; cost {cost}; {row['latency_ms']:.0f} ms",
        f"- finish reason: {row['finish_reason'] or '-'}",
        f"- parameters: {json.dumps(row['parameters'], sort_keys=True)}",
    ]
    if row["error"]:
        lines.append(f"- error: {row['error']}")
    messages = row.get("messages")
    if messages is None:
        lines += ["", "_Messages were not logged (BRIEFING_LOG_CALL_CONTENT=false)._"]
    else:
        for message in messages:
            lines += ["", f"## {message['role']}", "", message["content"]]
    if row.get("response") is not None:
        lines += ["", "## answer", "", row["response"]]
    click.echo("\n".join(lines))
