"""The `briefing` command line. Heavy imports (litellm, pysbd) happen inside commands."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from briefing import __version__
from briefing.errors import BriefingError, UserError

EXIT_RUNTIME, EXIT_USAGE = 1, 2


def _fail(exc: BriefingError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_USAGE if isinstance(exc, UserError) else EXIT_RUNTIME)


def _settings(**overrides: Any) -> Any:
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


def _write(path: Path, text: str) -> None:
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


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="briefing")
def main() -> None:
    """Grounded briefings: every claim cites the exact source span it rests on."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    "-m",
    help="'extractive' (default, no LLM), 'local/smollm2', or any litellm model string "
    "such as openai/gpt-4o-mini. Env: BRIEFING_MODEL.",
)
@click.option("--api-base", help="Provider base URL (e.g. an OpenAI-compatible server).")
@click.option("--prompt", help="Reduce prompt as NAME@VERSION (default briefing@1).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write here, not stdout.")
@click.option("--chunk-tokens", type=int, help="Tokens per map chunk.")
@click.option("--chunk-overlap", type=int, help="Tokens of overlap between chunks.")
@click.option("--max-concurrency", type=int, help="Model calls in flight at once.")
@click.option("--timeout", type=float, help="Seconds per model request.")
@click.option("--context-tokens", type=int, help="Override the model's context window.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def build(
    paths: tuple[Path, ...],
    model: str | None,
    api_base: str | None,
    prompt: str | None,
    fmt: str,
    output: Path | None,
    chunk_tokens: int | None,
    chunk_overlap: int | None,
    max_concurrency: int | None,
    timeout: float | None,
    context_tokens: int | None,
    quiet: bool,
) -> None:
    """Build a briefing of PATHS (.txt or .md files)."""
    from briefing.pipeline import build_briefing_sync, load_sources
    from briefing.render import to_json, to_markdown

    try:
        settings = _settings(
            model=model,
            api_base=api_base,
            prompt=prompt,
            chunk_tokens=chunk_tokens,
            chunk_overlap_tokens=chunk_overlap,
            max_concurrency=max_concurrency,
            timeout_s=timeout,
            context_tokens=context_tokens,
        )
        sources = load_sources(paths)
        show = not quiet and not settings.is_extractive and sys.stderr.isatty()
        with _progress(show) as progress:
            briefing = build_briefing_sync(sources, settings, progress=progress)
    except BriefingError as exc:
        _fail(exc)
        return
    text = to_json(briefing) if fmt == "json" else to_markdown(briefing)
    if output is None:
        click.echo(text, nl=False)
    else:
        _write(output, text)
        if not quiet:
            click.echo(f"wrote {output}", err=True)


@main.group()
def prompts() -> None:
    """Inspect the versioned prompt templates."""


@prompts.command("list")
@click.option("--prompts-dir", type=click.Path(path_type=Path, file_okay=False))
def prompts_list(prompts_dir: Path | None) -> None:
    """List every template version with its content hash."""
    from briefing.prompts import PromptLibrary

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
        _fail(exc)


@prompts.command("show")
@click.argument("ref")
@click.option("--prompts-dir", type=click.Path(path_type=Path, file_okay=False))
def prompts_show(ref: str, prompts_dir: Path | None) -> None:
    """Print the template file of NAME@VERSION (or the newest version of NAME)."""
    from briefing.prompts import PromptLibrary

    try:
        template = PromptLibrary(prompts_dir).get(ref)
    except BriefingError as exc:
        _fail(exc)
        return
    click.echo(f"# {template.label}  sha256:{template.sha256}  ({template.path})")
    click.echo(Path(template.path).read_text("utf-8"), nl=False)
