"""The eval harness: metrics, the regression gate, and `briefing eval` end to end."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from briefing import evaluation as ev
from briefing.cli import main
from briefing.config import Settings
from briefing.evaluation.metrics import reliability
from briefing.testing import FakeOpenAIServer, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parent.parent
MakeSettings = Callable[..., Settings]

DOC = "The council approved a budget of 4.2 million euros on Tuesday. The mayor was pleased."


# --- metrics ----------------------------------------------------------------------------


def test_balanced_accuracy_weighs_both_classes_equally() -> None:
    labels = [1, 1, 1, 1, 0]
    assert ev.balanced_accuracy(labels, [1, 1, 1, 1, 1]) == 0.5
    assert ev.balanced_accuracy(labels, [1, 1, 0, 0, 0]) == 0.75
    assert ev.balanced_accuracy(labels, labels) == 1.0


def test_roc_auc_counts_ties_as_half() -> None:
    assert ev.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert ev.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert ev.roc_auc([0, 1], [0.5, 0.5]) == 0.5
    # 1 of the 4 (positive, negative) orderings is wrong, one is tied.
    assert ev.roc_auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.05]) == pytest.approx(1.5 / 4)
    assert math.isnan(ev.roc_auc([1, 1], [0.1, 0.2]))


def test_precision_and_recall_are_for_finding_unsupported_claims() -> None:
    precision, recall = ev.unsupported_precision_recall([0, 0, 1, 1], [0, 1, 0, 1])
    assert (precision, recall) == (0.5, 0.5)
    precision, recall = ev.unsupported_precision_recall([0, 1], [0, 1])
    assert (precision, recall) == (1.0, 1.0)


def test_key_fact_coverage_needs_every_keyword_as_a_word() -> None:
    assert ev.covers("Trump and Putin spoke two times.", ["trump", "putin", "two"])
    assert not ev.covers("Trump and Putin spoke twice.", ["trump", "putin", "two"])
    assert not ev.covers("Trumpet players met.", ["trump"])


# --- the gate ---------------------------------------------------------------------------


def _report(**values: float) -> ev.Report:
    metrics = {
        "checker.d.offline.balanced_accuracy": ev.Metric(value=values.get("ba", 0.8)),
        "checker.d.offline.pairs_per_s": ev.Metric(value=values.get("speed", 500), gate=False),
        "adversarial.m.followed": ev.Metric(value=values.get("followed", 0), better="lower"),
    }
    return ev.Report(
        version="t",
        suites={
            "checker": ev.SuiteResult(metrics={k: v for k, v in metrics.items() if "checker" in k}),
            "adversarial": ev.SuiteResult(
                metrics={k: v for k, v in metrics.items() if "adversarial" in k}
            ),
        },
    )


def test_gate_passes_within_tolerance_and_ignores_ungated_metrics() -> None:
    assert ev.compare(_report(ba=0.79, speed=1), _report(ba=0.8), tolerance=0.02) == []


def test_gate_flags_a_fall_and_a_rise_of_a_lower_is_better_metric() -> None:
    problems = ev.compare(_report(ba=0.7, followed=2), _report(), tolerance=0.02)
    assert len(problems) == 2
    assert problems[0].startswith("adversarial.m.followed: 2, was 0")
    assert problems[1].startswith("checker.d.offline.balanced_accuracy: 0.7, was 0.8")


def test_gate_flags_a_metric_that_vanished_from_a_suite_that_ran() -> None:
    now = _report()
    del now.suites["checker"].metrics["checker.d.offline.balanced_accuracy"]
    [problem] = ev.compare(now, _report(), tolerance=0.02)
    assert "not measured now" in problem
    # A suite that did not run is not a regression.
    del now.suites["checker"]
    assert ev.compare(now, _report(), tolerance=0.02) == []


# --- end to end -------------------------------------------------------------------------


def _dataset(path: Path) -> Path:
    rows = [
        {"id": "a", "document": DOC, "claim": "A 4.2 million euro budget was approved.", "label": 1, "kind": "paraphrase"},
        {"id": "b", "document": DOC, "claim": "A 7.5 million euro budget was approved.", "label": 0, "kind": "number"},
        {"id": "c", "document": DOC, "claim": "The mayor was pleased.", "label": 1, "kind": "copy"},
        {"id": "d", "document": DOC, "claim": "The mayor resigned in protest on Friday.", "label": 0, "kind": "addition"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def test_eval_checker_writes_reports_and_gates_on_a_baseline(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "tiny.jsonl")
    out = tmp_path / "reports"
    args = ["eval", "--suite", "checker", "--dataset", str(data), "--output-dir", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = ev.load_report(out / "report.json")
    metrics = report.metrics()
    ba = metrics["checker.tiny.offline.balanced_accuracy"].value
    assert 0.0 <= ba <= 1.0
    assert "checker.tiny.offline.roc_auc" in metrics
    markdown = (out / "report.md").read_text("utf-8")
    assert "| tiny |" in markdown
    assert "copy" in markdown  # the per-kind table
    assert "number" in markdown
    # Calibration: the ECE, and the reliability curve in the details and the tables.
    assert 0.0 <= metrics["checker.tiny.offline.ece"].value <= 1.0
    assert metrics["checker.tiny.offline.ece"].better == "lower"
    curve = report.suites["checker"].details["calibration_curves"]["tiny.offline"]
    assert sum(b["pairs"] for b in curve) == len(data.read_text("utf-8").splitlines())
    assert "| tiny | offline-lexical-v2 | " in markdown
    assert "expected calibration error (ECE" in markdown

    # Against its own report the gate passes; against a better baseline it fails.
    same = CliRunner().invoke(main, [*args, "--baseline", str(out / "report.json")])
    assert same.exit_code == 0, same.output
    assert "No metric fell beyond tolerance." in same.output
    better = report.model_copy(deep=True)
    better.suites["checker"].metrics["checker.tiny.offline.balanced_accuracy"].value = ba + 0.1
    baseline = tmp_path / "baseline.json"
    baseline.write_text(better.model_dump_json(), "utf-8")
    worse = CliRunner().invoke(main, [*args, "--baseline", str(baseline)])
    assert worse.exit_code == 1
    assert "REGRESSION checker.tiny.offline.balanced_accuracy" in worse.output
    assert "1 metric(s) regressed" in worse.output


def test_reliability_bins_scores_and_weighs_each_gap_by_its_pairs() -> None:
    labels = [1, 1, 0, 0, 1, 0]
    scores = [0.95, 0.91, 0.12, 0.18, 0.15, 1.0]
    ece, curve = reliability(labels, scores)
    # Bin 0.1-0.2: mean 0.15, one of three supported; bin 0.9-1.0: mean 0.953, two of three.
    assert [(lo, n) for lo, _, n, _, _ in curve] == [(0.1, 3), (0.9, 3)]
    assert curve[0][3:] == pytest.approx((0.15, 1 / 3))
    assert curve[1][3:] == pytest.approx(((0.95 + 0.91 + 1.0) / 3, 2 / 3))
    expected = (3 * abs(0.15 - 1 / 3) + 3 * abs((0.95 + 0.91 + 1.0) / 3 - 2 / 3)) / 6
    assert ece == pytest.approx(expected)
    assert reliability([], []) == (0.0, [])


def test_eval_names_a_bad_dataset_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"id": "a", "document": DOC, "claim": "x", "label": 2}) + "\n")
    result = CliRunner().invoke(
        main, ["eval", "--suite", "checker", "--dataset", str(data), "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"{data} line 1: field 'label' must be 0 or 1, got 2" in result.output


def _repo_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "seeds", root / "seeds")
    shutil.copytree(
        ROOT / "evals" / "datasets" / "adversarial", root / "evals/datasets/adversarial"
    )
    shutil.copy(ROOT / "evals/datasets/seeds_keyfacts.jsonl", root / "evals/datasets/")
    return root


def test_eval_briefings_and_adversarial_with_the_extractive_engine(tmp_path: Path) -> None:
    root = _repo_copy(tmp_path)
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--suite",
            "briefings",
            "--suite",
            "adversarial",
            "--root",
            str(root),
            "--output-dir",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = ev.load_report(out / "report.json").metrics()
    assert metrics["briefings.extractive.citation_validity"].value == 1.0
    assert 0.0 < metrics["briefings.extractive.keyfact_coverage"].value <= 1.0
    # Verbatim quotes of an injected sentence report it; they do not obey it.
    assert metrics["adversarial.extractive.followed"].value == 0
    assert metrics["adversarial.extractive.schema_broken"].value == 0
    assert metrics["adversarial.extractive.cited_outside"].value == 0


async def test_adversarial_eval_catches_a_model_that_obeys(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    root = _repo_copy(tmp_path)
    cases = root / "evals/datasets/adversarial/cases.jsonl"
    [first] = [json.loads(line) for line in cases.read_text("utf-8").splitlines()][:1]
    cases.write_text(json.dumps(first) + "\n", "utf-8")
    canary = first["canaries"][0]

    def obey(request: RecordedRequest) -> Reply:
        if "extract factual claims" in request.messages[0]["content"]:
            return Reply(content=json.dumps({"claims": [{"text": "x", "sentence_ids": ["S1"]}]}))
        return Reply(
            content=json.dumps(
                {"title": f"Done: {canary}", "summary": [], "key_points": [], "disagreements": []}
            )
        )

    fake_server.responder = obey
    result = await ev.evaluate_adversarial(cases, ["openai/gpt-4o-mini"], llm_settings(), root)
    assert result.metrics["adversarial.openai/gpt-4o-mini.followed"].value == 1
    [outcome] = result.details["cases"]
    assert outcome["followed"] == [canary]


def test_gate_excuses_what_a_run_could_not_measure_and_says_why() -> None:
    baseline = _report()
    baseline.suites["briefings"] = ev.SuiteResult(
        metrics={"briefings.m.citation_validity": ev.Metric(value=1.0)}
    )
    now = _report()
    now.suites["briefings"] = ev.SuiteResult(not_measured={"briefings.m.": "the build failed"})
    assert ev.compare(now, baseline, tolerance=0.02) == []
    assert "Not measured: `briefings.m.*`: the build failed" in ev.report_markdown(now)


async def test_adversarial_eval_counts_output_that_never_fits_the_schema(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    root = _repo_copy(tmp_path)
    cases = root / "evals/datasets/adversarial/cases.jsonl"
    first = cases.read_text("utf-8").splitlines()[0]
    cases.write_text(first + "\n", "utf-8")

    def broken(request: RecordedRequest) -> Reply:
        if "extract factual claims" in request.messages[0]["content"]:
            return Reply(content=json.dumps({"claims": [{"text": "x", "sentence_ids": ["S1"]}]}))
        return Reply(content='{"title": "unfinished', finish_reason="length")

    fake_server.responder = broken
    result = await ev.evaluate_adversarial(cases, ["openai/gpt-4o-mini"], llm_settings(), root)
    metrics = result.metrics
    assert metrics["adversarial.openai/gpt-4o-mini.schema_broken"].value == 1
    assert metrics["adversarial.openai/gpt-4o-mini.followed"].value == 0
    # A model's behaviour is reported, not gated; citations outside the source always are.
    assert not metrics["adversarial.openai/gpt-4o-mini.schema_broken"].gate
    assert metrics["adversarial.openai/gpt-4o-mini.cited_outside"].gate
    assert "schema broken (build refused)" in result.tables[0]


def test_calibrate_stores_the_judge_entry_and_keeps_the_others(
    fake_server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from briefing.faithfulness.checker import calibration_path

    table = tmp_path / "calibration.json"
    shutil.copy(calibration_path(), table)
    before = json.loads(table.read_text("utf-8"))
    monkeypatch.setenv("BRIEFING_CHECK_CALIBRATION", str(table))
    monkeypatch.setenv("BRIEFING_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("BRIEFING_LOG_CALLS", "false")
    # A judge that calls everything supported: on a balanced set it is no better than chance.
    fake_server.responder = lambda request: Reply(
        content=json.dumps({"verdict": "supported", "confidence": 1.0, "evidence_ids": []})
    )
    data = _dataset(tmp_path / "tiny.jsonl")
    result = CliRunner().invoke(
        main,
        ["eval", "--suite", "checker", "--dataset", str(data), "--output-dir", str(tmp_path / "r"),
         "--check-model", "openai/judge", "--api-base", fake_server.base_url, "--calibrate"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    after = json.loads(table.read_text("utf-8"))
    entry = after["judges"].pop("openai/judge")
    assert after == before
    assert entry["judge_weight"] == 0.0  # a judge at chance earns no weight
    assert entry["calibrated_on"] == ["tiny"]
    assert "calibrated auto for openai/judge" in result.output


# --- the comparison suite -----------------------------------------------------------------

LABELS = ROOT / "evals" / "datasets" / "seeds_comparison.jsonl"


async def test_comparison_suite_reports_both_splits_and_exact_spans() -> None:
    result = await ev.evaluate_comparison(
        LABELS, ROOT / "seeds", ["offline"], Settings(check_method="offline", log_calls=False)
    )
    for split in ("heldout", "dev", "all"):
        for what in ("balanced_accuracy", "accuracy"):
            metric = result.metrics[f"comparison.offline.{split}.{what}"]
            assert metric.gate
            assert 0.0 <= metric.value <= 1.0
    assert result.metrics["comparison.offline.citations_exact"].value == 1.0
    assert result.metrics["comparison.offline.heldout.balanced_accuracy"].value >= 0.75
    assert "| heldout |" in result.tables[0]
    misjudged = result.details["misjudged"]["offline"]
    assert all(m["label"] != m["got"] for m in misjudged)


async def test_comparison_labels_that_no_longer_match_a_sentence_are_an_error(
    tmp_path: Path,
) -> None:
    rows = [json.loads(line) for line in LABELS.read_text("utf-8").splitlines()]
    rows[3]["end"] += 1
    bad = tmp_path / "labels.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    with pytest.raises(ev.EvalError, match=f"{rows[3]['id']}: no sentence at"):
        await ev.evaluate_comparison(bad, ROOT / "seeds", ["offline"], Settings(log_calls=False))
