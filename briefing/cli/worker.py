"""`briefing worker`: runs briefing jobs of a cluster (`BRIEFING_EXECUTOR=celery`)."""

from __future__ import annotations

import sys

import click

from briefing.cli.common import fail, settings_from
from briefing.errors import BriefingError, ConfigError


@click.command()
@click.option(
    "--concurrency",
    "-c",
    default=2,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Jobs (and map shares) this worker runs at once.",
)
@click.option(
    "--pool",
    default="prefork",
    show_default=True,
    type=click.Choice(["prefork", "threads", "solo"]),
    help="Celery pool: processes (CPU-bound engines), threads, or one task at a time.",
)
@click.option("--log-level", default="info", show_default=True)
def worker(concurrency: int, pool: str, log_level: str) -> None:
    """Run briefing jobs queued by `briefing serve` on the broker (BRIEFING_BROKER_URL).

    Every setting comes from the environment (BRIEFING_*), the same as the service's: the
    store must be the service's PostgreSQL database, and the model settings those its jobs
    were queued with.
    """
    import logging

    logging.basicConfig(level=log_level.upper(), format="%(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        settings = settings_from()
        if settings.executor != "celery":
            raise ConfigError(
                "briefing worker runs the jobs of a cluster: set BRIEFING_EXECUTOR=celery "
                "and BRIEFING_BROKER_URL (and the service's BRIEFING_DATABASE_URL)"
            )
        from briefing.service.cluster import run_worker

        run_worker(settings, concurrency=concurrency, pool=pool, loglevel=log_level)
    except BriefingError as exc:
        fail(exc)
