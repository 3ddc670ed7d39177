"""`briefing eval`: the eval suites, gated on a baseline report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from briefing.cli.common import EXIT_RUNTIME, fail, settings_from, write_atomically
from briefing.errors import BriefingError, ConfigError

_SUITES = ("checker", "comparison", "briefings", "adversarial")


@click.command("eval")
@click.option(
    "--suite",
    "suites",
    multiple=True,
    type=click.Choice(_SUITES),
    help="Run only this suite (repeatable); all of them by default.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled pairs JSONL for the checker suite (repeatable); default: the seed gold set "
    "and evals/datasets/summac-dev/*.jsonl.",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["offline", "judge", "auto", "nli"]),
    help="Checker method to measure (repeatable); default offline, plus judge and auto when "
    "a judge model is set, and nli when an NLI model is.",
)
@click.option(
    "--models",
    default="extractive",
    show_default=True,
    help="Comma-separated engines/models for the briefing and adversarial suites, e.g. "
    "extractive,local/smollm2.",
)
@click.option("--check-model", help="litellm model string of the judge. Env: BRIEFING_CHECK_MODEL.")
@click.option(
    "--nli-model",
    type=click.Path(path_type=Path),
    help="Folder of an ONNX NLI cross-encoder, for the nli method. Env: BRIEFING_CHECK_NLI_MODEL.",
)
@click.option("--api-base", help="Provider base URL for the models and the judge.")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(),
    show_default=True,
    help="The repository root; dataset paths are relative to it.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("evals/reports"),
    show_default=True,
    help="Where report.json and report.md are written.",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A previous report.json: exit 1 if a gated metric fell by more than --tolerance.",
)
@click.option("--tolerance", type=float, default=0.02, show_default=True)
@click.option(
    "--calibrate",
    is_flag=True,
    help="Fit auto's judge weight and threshold for --check-model on the checker datasets "
    "and store them in the calibration table (BRIEFING_CHECK_CALIBRATION, else the bundled one).",
)
def eval_command(
    suites: tuple[str, ...],
    datasets: tuple[Path, ...],
    methods: tuple[str, ...],
    models: str,
    check_model: str | None,
    nli_model: Path | None,
    api_base: str | None,
    root: Path,
    output_dir: Path,
    baseline: Path | None,
    tolerance: float,
    calibrate: bool,
) -> None:
    """Measure the checker, briefings of the seeds, and adversarial sources; gate on a baseline."""
    import asyncio

    from briefing import __version__
    from briefing import evaluation as ev

    chosen = [s for s in _SUITES if s in suites] if suites else list(_SUITES)
    model_list = [m.strip() for m in models.split(",") if m.strip()]
    try:
        settings = settings_from(
            check_model=check_model, check_nli_model=nli_model, api_base=api_base
        )
        if calibrate and not settings.check_model:
            raise ConfigError("--calibrate needs a judge model (--check-model)")
        if calibrate:
            methods = tuple(dict.fromkeys([*methods, "offline", "judge"]))
            chosen = ["checker", *[s for s in chosen if s != "checker"]]
        if not methods:
            methods = ("offline", "judge", "auto") if settings.check_model else ("offline",)
            if settings.check_nli_model is not None:
                methods = (*methods, "nli")
        gold = [root / "evals/datasets/seeds_claims.jsonl"]
        paths = list(datasets) or gold + sorted(
            (root / "evals/datasets/summac-dev").glob("*.jsonl")
        )
        old = ev.load_report(baseline) if baseline else None
        report = ev.Report(version=__version__)
        for suite in chosen:
            click.echo(f"eval: {suite} ...", err=True)
            if suite == "checker":
                result = asyncio.run(ev.evaluate_checker(paths, methods, settings))
            elif suite == "comparison":
                labels = root / "evals/datasets/seeds_comparison.jsonl"
                result = asyncio.run(
                    ev.evaluate_comparison(labels, root / "seeds", methods, settings)
                )
            elif suite == "briefings":
                seeds = sorted((root / "seeds").glob("*.txt"))
                keyfacts = root / "evals/datasets/seeds_keyfacts.jsonl"
                labels = root / "evals/datasets/seeds_comparison.jsonl"
                result = asyncio.run(
                    ev.evaluate_briefings(seeds, keyfacts, model_list, settings, labels)
                )
            else:
                cases = root / "evals/datasets/adversarial/cases.jsonl"
                result = asyncio.run(ev.evaluate_adversarial(cases, model_list, settings, root))
            report.suites[suite] = result
        fitted = report.suites["checker"].details.get("calibration") if calibrate else None
        if fitted:
            from briefing.faithfulness.checker import calibration_path

            table = settings.check_calibration or calibration_path()
            write_atomically(table, ev.calibration_with(table, settings.check_model, fitted))
            click.echo(
                f"calibrated auto for {settings.check_model}: judge weight "
                f"{fitted['judge_weight']}, threshold {fitted['threshold']} (mean balanced "
                f"accuracy {fitted['mean_balanced_accuracy']}); wrote {table}",
                err=True,
            )
    except BriefingError as exc:
        fail(exc)
        return
    regressions = ev.compare(report, old, tolerance) if old else None
    write_atomically(output_dir / "report.json", report.model_dump_json(indent=1) + "\n")
    markdown = ev.report_markdown(report, regressions)
    write_atomically(output_dir / "report.md", markdown)
    click.echo(markdown, nl=False)
    click.echo(f"wrote {output_dir / 'report.json'} and {output_dir / 'report.md'}", err=True)
    if regressions:
        click.echo(f"error: {len(regressions)} metric(s) regressed against {baseline}", err=True)
        sys.exit(EXIT_RUNTIME)
