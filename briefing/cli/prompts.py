"""`briefing prompts`: the versioned prompt templates."""

from __future__ import annotations

from pathlib import Path

import click

from briefing.cli.common import fail
from briefing.errors import BriefingError


@click.group()
def prompts() -> None:
    """Inspect the versioned prompt templates."""


@prompts.command("list")
@click.option("--prompts-dir", type=click.Path(path_type=Path, file_okay=False))
def prompts_list(prompts_dir: Path | None) -> None:
    """List every template version with its content hash."""
    from briefing.models.prompts import PromptLibrary

    try:
        library = PromptLibrary(prompts_dir)
        released = library.released()
        for template in library.all():
            state = "released" if template.label in released else "draft"
            click.echo(
                f"{template.label:<22} {template.sha256[:12]}  {state:<8}  "
                f"{' '.join(template.description.split())}"
            )
    except BriefingError as exc:
        fail(exc)


@prompts.command("show")
@click.argument("ref")
@click.option("--prompts-dir", type=click.Path(path_type=Path, file_okay=False))
def prompts_show(ref: str, prompts_dir: Path | None) -> None:
    """Print the template file of NAME@VERSION (or the newest version of NAME)."""
    from briefing.models.prompts import PromptLibrary

    try:
        template = PromptLibrary(prompts_dir).get(ref)
    except BriefingError as exc:
        fail(exc)
        return
    click.echo(f"# {template.label}  sha256:{template.sha256}  ({template.path})")
    click.echo(Path(template.path).read_text("utf-8"), nl=False)
