"""`briefing diff`: what changed from one briefing to a later one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from briefing.cli.common import emit, fail, open_store, settings_from
from briefing.errors import BriefingError, NotFoundError, UserError


def _load(ref: str, store: Any) -> Any:
    """A briefing by its id in the store, or from a Briefing JSON file."""
    from pydantic import ValidationError

    from briefing.schema import Briefing

    path = Path(ref)
    if path.is_file():
        try:
            return Briefing.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the document"
            raise UserError(f"{path}: not a Briefing JSON ({where}: {first['msg']})") from None
    try:
        job = store.jobs.get(ref)
    except NotFoundError:
        raise NotFoundError(f"no briefing {ref!r} in the store, and no such file") from None
    if job.result is None:
        raise NotFoundError(f"job {ref!r} has no briefing (it is {job.status})")
    return Briefing.model_validate(job.result)


@click.command()
@click.argument("before")
@click.argument("after")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write here, not stdout.")
@click.option(
    "--method",
    type=click.Choice(["offline", "judge", "auto"]),
    help="How claims are matched, as in `briefing check`. Env: BRIEFING_CHECK_METHOD.",
)
@click.option("--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite.")
@click.option("--quiet", "-q", is_flag=True, help="Say nothing but the result.")
def diff(
    before: str,
    after: str,
    fmt: str,
    output: Path | None,
    method: str | None,
    database_url: str | None,
    quiet: bool,
) -> None:
    """What changed from briefing BEFORE to the later briefing AFTER: new, updated and
    dropped claims, each citing its own briefing's sources, and which sources are new,
    edited or removed. Each is a briefing id in the store or a Briefing JSON file."""
    import asyncio

    from briefing.daily.changes import diff_briefings
    from briefing.faithfulness.checker import Checker
    from briefing.pipeline.render import changes_markdown

    try:
        settings = settings_from(check_method=method, database_url=database_url)
        store = open_store(settings)
        try:
            earlier, later = _load(before, store), _load(after, store)
        finally:
            store.close()
        if later.created_at < earlier.created_at:
            raise UserError(
                f"briefing {after} ({later.created_at:%Y-%m-%d %H:%M}) is older than "
                f"{before} ({earlier.created_at:%Y-%m-%d %H:%M}): give the earlier one first"
            )
        checker = Checker(settings, fallback=True)
        checker.check_credentials()
        changes = asyncio.run(diff_briefings(earlier, later, checker))
    except BriefingError as exc:
        fail(exc)
        return
    if fmt == "json":
        text = changes.model_dump_json(indent=2) + "\n"
    else:
        text = changes_markdown(changes, later)
    emit(text, output, quiet=quiet)
