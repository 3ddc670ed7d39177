"""What the commands share: settings from flags, errors as exit codes, atomic writes, progress."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from briefing.errors import BriefingError, UserError

__all__ = [
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "fail",
    "open_store",
    "progress_bar",
    "settings_from",
    "write_atomically",
]

EXIT_RUNTIME, EXIT_USAGE = 1, 2


def fail(exc: BriefingError) -> None:
    """Report `exc` and exit: 2 for a usage error, 1 for a runtime one."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_USAGE if isinstance(exc, UserError) else EXIT_RUNTIME)


def settings_from(**overrides: Any) -> Any:
    """Settings from the environment, with the flags that were given on top."""
    from pydantic import ValidationError

    from briefing.config import Settings
    from briefing.errors import ConfigError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def open_store(settings: Any) -> Any:
    """The settings' store, migrated to the current revision (it may not exist yet)."""
    from briefing.store import Store
    from briefing.store.migrations import upgrade

    upgrade(settings.store_url)
    return Store(settings.store_url)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all."""
    # Write beside the target and rename, so a failed run never leaves half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(text: str, output: Path | None, *, quiet: bool) -> None:
    """`text` on stdout, or written whole to `output` (saying so unless `quiet`)."""
    if output is None:
        click.echo(text, nl=False)
        return
    write_atomically(output, text)
    if not quiet:
        click.echo(f"wrote {output}", err=True)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress callback drawing one bar per stage on stderr (None when not enabled)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update
