"""`briefing compare`: every sentence of every source judged against all the others."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from briefing.cli.common import emit, fail, progress_bar, settings_from
from briefing.errors import BriefingError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write here, not stdout.")
@click.option(
    "--method",
    type=click.Choice(["offline", "judge", "auto", "nli"]),
    help="How support is judged, as in `briefing check`. Env: BRIEFING_CHECK_METHOD; "
    "default auto (offline unless a judge model is set).",
)
@click.option("--check-model", help="litellm model string of the judge. Env: BRIEFING_CHECK_MODEL.")
@click.option(
    "--nli-model",
    type=click.Path(path_type=Path),
    help="Folder of an ONNX NLI cross-encoder for --method nli. Env: BRIEFING_CHECK_NLI_MODEL.",
)
@click.option("--api-base", help="The judge provider's base URL.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def compare(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    method: str | None,
    check_model: str | None,
    nli_model: Path | None,
    api_base: str | None,
    quiet: bool,
) -> None:
    """Compare PATHS (.txt or .md files): what other sources back, what only one says, and
    where they contradict each other."""
    import asyncio

    from briefing.faithfulness.checker import Checker
    from briefing.faithfulness.compare import compare_sources
    from briefing.pipeline.build import load_sources
    from briefing.pipeline.render import comparison_json, comparison_markdown

    try:
        settings = settings_from(
            check_method=method,
            check_model=check_model,
            check_nli_model=nli_model,
            api_base=api_base,
        )
        sources = load_sources(paths)
        checker = Checker(settings, fallback=True)
        checker.check_credentials()
        with progress_bar(not quiet and sys.stderr.isatty()) as progress:
            result = asyncio.run(compare_sources(sources, checker, progress=progress))
    except BriefingError as exc:
        fail(exc)
        return
    text = comparison_json(result) if fmt == "json" else comparison_markdown(result)
    emit(text, output, quiet=quiet)
