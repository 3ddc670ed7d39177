"""The `briefing` command line: one module per command group. Heavy imports (litellm, the
service) happen inside the commands, so `briefing --help` stays fast."""

from __future__ import annotations

import click

from briefing import __version__
from briefing.cli.build import build
from briefing.cli.cache import cache
from briefing.cli.calls import calls
from briefing.cli.check import check
from briefing.cli.compare import compare
from briefing.cli.daily import daily
from briefing.cli.diff import diff
from briefing.cli.evaluate import eval_command
from briefing.cli.prompts import prompts
from briefing.cli.serve import db, serve
from briefing.cli.worker import worker

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="briefing")
def main() -> None:
    """Grounded briefings: every claim cites the exact source span it rests on."""


for _command in (
    build,
    check,
    compare,
    diff,
    eval_command,
    prompts,
    db,
    serve,
    daily,
    cache,
    calls,
    worker,
):
    main.add_command(_command)
