"""`briefing serve` and `briefing db`: the HTTP service and its database."""

from __future__ import annotations

import sys

import click

from briefing.cli.common import fail, settings_from
from briefing.errors import BriefingError


@click.group()
def db() -> None:
    """Manage the store's database (BRIEFING_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite.")
def db_upgrade(database_url: str | None) -> None:
    """Apply every pending migration."""
    from briefing.store import redacted_url
    from briefing.store.migrations import upgrade

    try:
        settings = settings_from(database_url=database_url)
        revision = upgrade(settings.store_url)
    except BriefingError as exc:
        fail(exc)
        return
    click.echo(f"{redacted_url(settings.store_url)} is at revision {revision}", err=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite.")
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, database_url: str | None, log_level: str) -> None:
    """Run the HTTP service (migrations are applied first)."""
    import logging

    import uvicorn

    from briefing.service import create_app
    from briefing.store import redacted_url
    from briefing.store.migrations import upgrade

    logging.basicConfig(level=log_level.upper(), format="%(message)s", stream=sys.stderr)
    # Alembic narrates every migration context at INFO, /readyz included; APScheduler
    # every firing (the scheduler logs each run itself).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        settings = settings_from(database_url=database_url)
        if settings.schedules_file is not None:
            from briefing.daily.schedules import load_schedules

            # A broken file fails the start with its reasons, not the first reload.
            load_schedules(settings.schedules_file)
        revision = upgrade(settings.store_url)
        app = create_app(settings)
    except BriefingError as exc:
        fail(exc)
        return
    click.echo(f"store {redacted_url(settings.store_url)} at revision {revision}", err=True)
    if not settings.api_key_list and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: serving on {host} without BRIEFING_API_KEYS: anyone who can reach "
            "this address can use the API",
            err=True,
        )
    # The app logs one structured line per request itself; uvicorn's access log would repeat it.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
