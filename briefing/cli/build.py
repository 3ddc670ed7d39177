"""`briefing build`: a briefing of source files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from briefing.cli.common import emit, fail, progress_bar, settings_from
from briefing.errors import BriefingError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    "-m",
    help="'extractive' (default, no LLM), 'local/smollm2', 'local/<path to file.gguf>', "
    "'local/NAME' of BRIEFING_LOCAL_MODELS, or any litellm model string such as "
    "openai/gpt-4o-mini. Env: BRIEFING_MODEL.",
)
@click.option("--api-base", help="Provider base URL (e.g. an OpenAI-compatible server).")
@click.option(
    "--prompt",
    help="Reduce prompt as NAME@VERSION (default briefing@2; local/smollm2 runs briefing@1). "
    "Env: BRIEFING_PROMPT.",
)
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
    from briefing.pipeline.build import build_briefing_sync, load_sources
    from briefing.pipeline.render import to_json, to_markdown

    try:
        settings = settings_from(
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
        with progress_bar(show) as progress:
            briefing = build_briefing_sync(sources, settings, progress=progress)
    except BriefingError as exc:
        fail(exc)
        return
    text = to_json(briefing) if fmt == "json" else to_markdown(briefing)
    emit(text, output, quiet=quiet)
