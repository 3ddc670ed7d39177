"""`briefing cache`: what the map step's cache holds, and emptying it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from briefing.cli.common import fail, open_store, settings_from
from briefing.errors import BriefingError

_DATABASE_OPTION = click.option(
    "--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite."
)


@click.group()
def cache() -> None:
    """The map step's cache: a source's claims, reused while the source, chunking, map
    prompt, model and parameters are unchanged (BRIEFING_MAP_CACHE turns it off)."""


@cache.command("stats")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@_DATABASE_OPTION
def cache_stats(fmt: str, database_url: str | None) -> None:
    """How many entries, sources and claims the cache holds, and their ages."""
    try:
        settings = settings_from(database_url=database_url)
        store = open_store(settings)
        try:
            stats = store.map_cache.stats()
        finally:
            store.close()
    except BriefingError as exc:
        fail(exc)
        return
    if fmt == "json":
        click.echo(json.dumps(stats.model_dump(mode="json"), indent=2))
        return
    click.echo(f"entries: {stats.entries}")
    click.echo(f"sources: {stats.sources}")
    click.echo(f"claims:  {stats.claims}")
    if stats.oldest is not None and stats.newest is not None:
        click.echo(f"oldest:  {stats.oldest:%Y-%m-%d %H:%M} UTC")
        click.echo(f"newest:  {stats.newest:%Y-%m-%d %H:%M} UTC")
    click.echo(f"enabled: {'yes' if settings.map_cache else 'no (BRIEFING_MAP_CACHE=false)'}")


@cache.command("clear")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    help="Only entries made more than this many days ago.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_DATABASE_OPTION
def cache_clear(days: int | None, yes: bool, database_url: str | None) -> None:
    """Remove cache entries; the next briefing of their sources calls the model again."""
    what = "every cache entry" if days is None else f"cache entries older than {days} days"
    if not yes:
        click.confirm(f"Remove {what}?", abort=True)
    before = None if days is None else datetime.now(UTC) - timedelta(days=days)
    try:
        settings = settings_from(database_url=database_url)
        store = open_store(settings)
        try:
            removed = store.map_cache.clear(before=before)
        finally:
            store.close()
    except BriefingError as exc:
        fail(exc)
        return
    click.echo(f"{removed} {'entry' if removed == 1 else 'entries'} removed")
