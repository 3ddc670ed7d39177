"""`briefing daily`: run a schedule once, or list the schedules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from briefing.cli.common import EXIT_RUNTIME, fail, settings_from
from briefing.errors import BriefingError


@click.group()
def daily() -> None:
    """Daily briefings: run a schedule once, or list the schedules (BRIEFING_SCHEDULES)."""


_CONFIG_OPTION = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Schedules file (TOML); default BRIEFING_SCHEDULES.",
)
_DATABASE_OPTION = click.option(
    "--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite."
)


def _daily_context(config: Path | None, database_url: str | None) -> tuple[Any, Any, list[Any]]:
    """Settings, a store at the current revision, and every schedule (file and store)."""
    from briefing.daily.runs import schedules_of
    from briefing.store import Store
    from briefing.store.migrations import upgrade

    settings = settings_from(database_url=database_url)
    if config is None and settings.schedules_file is None:
        click.echo("note: no schedules file (BRIEFING_SCHEDULES or --config)", err=True)
    # Run from cron on a fresh machine, the store may not exist yet.
    upgrade(settings.store_url)
    store = Store(settings.store_url)
    try:
        return settings, store, schedules_of(settings, store, config)
    except BaseException:
        store.close()
        raise


@daily.command("run")
@click.argument("name")
@click.option(
    "--date",
    "run_date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The run's date (YYYY-MM-DD); default today in the schedule's time zone.",
)
@click.option("--force", is_flag=True, help="Run again even if the date has a run.")
@_CONFIG_OPTION
@_DATABASE_OPTION
def daily_run(
    name: str, run_date: Any, force: bool, config: Path | None, database_url: str | None
) -> None:
    """Run schedule NAME once: collect, brief what is new, deliver.

    A second run for the same date does nothing (and says so) unless --force.
    """
    from briefing.daily.runs import find_schedule, retry_deliveries, run_schedule

    try:
        settings, store, schedules = _daily_context(config, database_url)
        try:
            schedule = find_schedule(schedules, name)
            for delivery in retry_deliveries(store, settings, schedules=schedules):
                click.echo(
                    f"retried {delivery.kind} {delivery.target}: {delivery.status}", err=True
                )
            outcome = run_schedule(
                schedule,
                store,
                settings,
                run_date=run_date.date() if run_date else None,
                force=force,
            )
        finally:
            store.close()
    except BriefingError as exc:
        fail(exc)
        return
    click.echo(outcome.message)
    if outcome.status == "failed":
        sys.exit(EXIT_RUNTIME)


@daily.command("list")
@_CONFIG_OPTION
@_DATABASE_OPTION
def daily_list(config: Path | None, database_url: str | None) -> None:
    """Show the schedules with their last and next run."""
    from datetime import UTC, datetime

    from briefing.daily.schedules import next_run

    try:
        _, store, schedules = _daily_context(config, database_url)
        try:
            now = datetime.now(UTC)
            rows = []
            for schedule in schedules:
                last = store.runs.last(schedule.name, finished=False)
                upcoming = next_run(schedule, now).astimezone(schedule.zone)
                rows.append(
                    (
                        schedule.name,
                        f"{schedule.cron} ({schedule.timezone})",
                        f"{last.run_date} {last.status}" if last else "never",
                        upcoming.strftime("%Y-%m-%d %H:%M %Z"),
                    )
                )
        finally:
            store.close()
    except BriefingError as exc:
        fail(exc)
        return
    if not rows:
        click.echo("no schedules")
        return
    header = ("NAME", "CRON", "LAST RUN", "NEXT RUN")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
