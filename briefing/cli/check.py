"""`briefing check`: the faithfulness check over a file of (document, claim) pairs."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from briefing.cli.common import fail, progress_bar, settings_from
from briefing.errors import BriefingError


@click.command()
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    help='JSONL of {"id", "document", "claim"} pairs; "-" reads stdin.',
)
@click.option(
    "--output",
    "-o",
    "output_path",
    required=True,
    help='Where the results JSONL goes (written whole or not at all); "-" for stdout.',
)
@click.option(
    "--method",
    type=click.Choice(["offline", "judge", "auto", "nli"]),
    help="offline (no model), judge (an LLM), auto (offline, plus the judge when a judge "
    "model is set), nli (an ONNX cross-encoder on disk, --nli-model). Env: "
    "BRIEFING_CHECK_METHOD; default auto.",
)
@click.option("--check-model", help="litellm model string of the judge. Env: BRIEFING_CHECK_MODEL.")
@click.option(
    "--nli-model",
    type=click.Path(path_type=Path),
    help="Folder of an ONNX NLI cross-encoder (model.onnx, tokenizer.json, config.json) for "
    "--method nli. Env: BRIEFING_CHECK_NLI_MODEL.",
)
@click.option("--api-base", help="The judge provider's base URL.")
@click.option("--max-concurrency", type=int, help="Judge calls in flight at once.")
@click.option("--timeout", type=float, help="Seconds per judge request.")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
def check(
    input_path: str,
    output_path: str,
    method: str | None,
    check_model: str | None,
    nli_model: Path | None,
    api_base: str | None,
    max_concurrency: int | None,
    timeout: float | None,
    quiet: bool,
) -> None:
    """Score how well each document supports its claim (the faithfulness check)."""
    import asyncio
    import shutil

    from briefing.faithfulness.checker import Checker
    from briefing.faithfulness.pairs import check_file

    with tempfile.TemporaryDirectory(prefix="briefing-check-") as scratch:
        try:
            settings = settings_from(
                check_method=method,
                check_model=check_model,
                check_nli_model=nli_model,
                api_base=api_base,
                max_concurrency=max_concurrency,
                timeout_s=timeout,
            )
            source = Path(input_path)
            if input_path == "-":
                # Read twice (validate, then score), so stdin is spooled to a file first.
                source = Path(scratch) / "stdin.jsonl"
                with source.open("wb") as spool:
                    shutil.copyfileobj(sys.stdin.buffer, spool)
            target = Path(scratch) / "out.jsonl" if output_path == "-" else Path(output_path)
            checker = Checker(settings)
            checker.check_credentials()
            with progress_bar(not quiet and sys.stderr.isatty()) as progress:
                summary = asyncio.run(
                    check_file(
                        checker,
                        source,
                        target,
                        name="<stdin>" if input_path == "-" else None,
                        progress=progress,
                    )
                )
        except BriefingError as exc:
            fail(exc)
            return
        if output_path == "-":
            with target.open("rb") as results:
                shutil.copyfileobj(results, sys.stdout.buffer)
    if not quiet:
        where = "stdout" if output_path == "-" else output_path
        click.echo(
            f"checked {summary.pairs} pairs with {summary.method}: {summary.supported} "
            f"supported, {summary.pairs - summary.supported} not; wrote {where}",
            err=True,
        )
