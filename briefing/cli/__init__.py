"""The `briefing` command line. Heavy imports (litellm) happen inside commands."""

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
from briefing.errors import BriefingError, ConfigError, UserError

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
    from briefing.pipeline.build import build_briefing_sync, load_sources
    from briefing.pipeline.render import to_json, to_markdown

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


@main.command()
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
    type=click.Choice(["offline", "judge", "auto"]),
    help="offline (no model), judge (an LLM), auto (offline, plus the judge when a judge "
    "model is set). Env: BRIEFING_CHECK_METHOD; default auto.",
)
@click.option("--check-model", help="litellm model string of the judge. Env: BRIEFING_CHECK_MODEL.")
@click.option("--api-base", help="The judge provider's base URL.")
@click.option("--max-concurrency", type=int, help="Judge calls in flight at once.")
@click.option("--timeout", type=float, help="Seconds per judge request.")
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
def check(
    input_path: str,
    output_path: str,
    method: str | None,
    check_model: str | None,
    api_base: str | None,
    max_concurrency: int | None,
    timeout: float | None,
    quiet: bool,
) -> None:
    """Score how well each document supports its claim (the faithfulness check)."""
    import asyncio
    import shutil

    from briefing.faithfulness.checker import Checker, check_file

    with tempfile.TemporaryDirectory(prefix="briefing-check-") as scratch:
        try:
            settings = _settings(
                check_method=method,
                check_model=check_model,
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
            with _progress(not quiet and sys.stderr.isatty()) as progress:
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
            _fail(exc)
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


_SUITES = ("checker", "briefings", "adversarial")


@main.command("eval")
@click.option(
    "--suite",
    "suites",
    multiple=True,
    type=click.Choice(_SUITES),
    help="Run only this suite (repeatable); all three by default.",
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
    type=click.Choice(["offline", "judge", "auto"]),
    help="Checker method to measure (repeatable); default offline, plus judge and auto when "
    "a judge model is set.",
)
@click.option(
    "--models",
    default="extractive",
    show_default=True,
    help="Comma-separated engines/models for the briefing and adversarial suites, e.g. "
    "extractive,local/smollm2.",
)
@click.option("--check-model", help="litellm model string of the judge. Env: BRIEFING_CHECK_MODEL.")
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
        settings = _settings(check_model=check_model, api_base=api_base)
        if calibrate and not settings.check_model:
            raise ConfigError("--calibrate needs a judge model (--check-model)")
        if calibrate:
            methods = tuple(dict.fromkeys([*methods, "offline", "judge"]))
            chosen = ["checker", *[s for s in chosen if s != "checker"]]
        if not methods:
            methods = ("offline", "judge", "auto") if settings.check_model else ("offline",)
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
            elif suite == "briefings":
                seeds = sorted((root / "seeds").glob("*.txt"))
                keyfacts = root / "evals/datasets/seeds_keyfacts.jsonl"
                result = asyncio.run(ev.evaluate_briefings(seeds, keyfacts, model_list, settings))
            else:
                cases = root / "evals/datasets/adversarial/cases.jsonl"
                result = asyncio.run(ev.evaluate_adversarial(cases, model_list, settings, root))
            report.suites[suite] = result
        fitted = report.suites["checker"].details.get("calibration") if calibrate else None
        if fitted:
            from briefing.faithfulness.checker import calibration_path

            table = settings.check_calibration or calibration_path()
            _write(table, ev.calibration_with(table, settings.check_model, fitted))
            click.echo(
                f"calibrated auto for {settings.check_model}: judge weight "
                f"{fitted['judge_weight']}, threshold {fitted['threshold']} (mean balanced "
                f"accuracy {fitted['mean_balanced_accuracy']}); wrote {table}",
                err=True,
            )
    except BriefingError as exc:
        _fail(exc)
        return
    regressions = ev.compare(report, old, tolerance) if old else None
    _write(output_dir / "report.json", report.model_dump_json(indent=1) + "\n")
    markdown = ev.report_markdown(report, regressions)
    _write(output_dir / "report.md", markdown)
    click.echo(markdown, nl=False)
    click.echo(f"wrote {output_dir / 'report.json'} and {output_dir / 'report.md'}", err=True)
    if regressions:
        click.echo(f"error: {len(regressions)} metric(s) regressed against {baseline}", err=True)
        sys.exit(EXIT_RUNTIME)


@main.group()
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
        _fail(exc)


@prompts.command("show")
@click.argument("ref")
@click.option("--prompts-dir", type=click.Path(path_type=Path, file_okay=False))
def prompts_show(ref: str, prompts_dir: Path | None) -> None:
    """Print the template file of NAME@VERSION (or the newest version of NAME)."""
    from briefing.models.prompts import PromptLibrary

    try:
        template = PromptLibrary(prompts_dir).get(ref)
    except BriefingError as exc:
        _fail(exc)
        return
    click.echo(f"# {template.label}  sha256:{template.sha256}  ({template.path})")
    click.echo(Path(template.path).read_text("utf-8"), nl=False)


@main.group()
def db() -> None:
    """Manage the store's database (BRIEFING_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite.")
def db_upgrade(database_url: str | None) -> None:
    """Apply every pending migration."""
    from briefing.store import redacted_url
    from briefing.store.migrations import upgrade

    try:
        settings = _settings(database_url=database_url)
        revision = upgrade(settings.store_url)
    except BriefingError as exc:
        _fail(exc)
        return
    click.echo(f"{redacted_url(settings.store_url)} is at revision {revision}", err=True)


@main.command()
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
        settings = _settings(database_url=database_url)
        if settings.schedules_file is not None:
            from briefing.daily.schedules import load_schedules

            # A broken file fails the start with its reasons, not the first reload.
            load_schedules(settings.schedules_file)
        revision = upgrade(settings.store_url)
        app = create_app(settings)
    except BriefingError as exc:
        _fail(exc)
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


@main.group()
def daily() -> None:
    """Daily briefings: run a schedule once, or list the schedules (BRIEFING_SCHEDULES)."""


_CONFIG_OPTION = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Schedules file (TOML); default BRIEFING_SCHEDULES.",
)
_DATABASE_OPTION = click.option(
    "--database-url", help="SQLAlchemy URL; default BRIEFING_DATABASE_URL or SQLite."
)


def _daily_context(config: Path | None, database_url: str | None) -> tuple[Any, Any, list[Any]]:
    """Settings, a store at the current revision, and every schedule (file and store)."""
    from briefing.daily.runs import schedules_of
    from briefing.store import Store
    from briefing.store.migrations import upgrade

    settings = _settings(database_url=database_url)
    if config is None and settings.schedules_file is None:
        click.echo("note: no schedules file (BRIEFING_SCHEDULES or --config)", err=True)
    # Run from cron on a fresh machine, the store may not exist yet.
    upgrade(settings.store_url)
    store = Store(settings.store_url)
    try:
        return settings, store, schedules_of(settings, store, config)
    except BaseException:
        store.close()
        raise


@daily.command("run")
@click.argument("name")
@click.option(
    "--date",
    "run_date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The run's date (YYYY-MM-DD); default today in the schedule's time zone.",
)
@click.option("--force", is_flag=True, help="Run again even if the date has a run.")
@_CONFIG_OPTION
@_DATABASE_OPTION
def daily_run(
    name: str, run_date: Any, force: bool, config: Path | None, database_url: str | None
) -> None:
    """Run schedule NAME once: collect, brief what is new, deliver.

    A second run for the same date does nothing (and says so) unless --force.
    """
    from briefing.daily.runs import find_schedule, retry_deliveries, run_schedule

    try:
        settings, store, schedules = _daily_context(config, database_url)
        try:
            schedule = find_schedule(schedules, name)
            for delivery in retry_deliveries(store, settings):
                click.echo(
                    f"retried {delivery.kind} {delivery.target}: {delivery.status}", err=True
                )
            outcome = run_schedule(
                schedule,
                store,
                settings,
                run_date=run_date.date() if run_date else None,
                force=force,
            )
        finally:
            store.close()
    except BriefingError as exc:
        _fail(exc)
        return
    click.echo(outcome.message)
    if outcome.status == "failed":
        sys.exit(EXIT_RUNTIME)


@daily.command("list")
@_CONFIG_OPTION
@_DATABASE_OPTION
def daily_list(config: Path | None, database_url: str | None) -> None:
    """Show the schedules with their last and next run."""
    from datetime import UTC, datetime

    from briefing.daily.schedules import next_run

    try:
        _, store, schedules = _daily_context(config, database_url)
        try:
            now = datetime.now(UTC)
            rows = []
            for schedule in schedules:
                last = store.runs.last(schedule.name, finished=False)
                upcoming = next_run(schedule, now).astimezone(schedule.zone)
                rows.append(
                    (
                        schedule.name,
                        f"{schedule.cron} ({schedule.timezone})",
                        f"{last.run_date} {last.status}" if last else "never",
                        upcoming.strftime("%Y-%m-%d %H:%M %Z"),
                    )
                )
        finally:
            store.close()
    except BriefingError as exc:
        _fail(exc)
        return
    if not rows:
        click.echo("no schedules")
        return
    header = ("NAME", "CRON", "LAST RUN", "NEXT RUN")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
