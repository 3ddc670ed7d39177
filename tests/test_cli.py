"""The `briefing` command line, through click's runner and once as the installed script."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from briefing.cli import main
from briefing.models.prompts import default_prompts_dir

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
SEED_ARGS = [str(p) for p in SEEDS]


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's BRIEFING_* variables must not pick another engine or setting.
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def canonical_text(path: Path) -> str:
    """The contract's canonical text, computed independently of the package."""
    text = path.read_bytes().decode("utf-8")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    return unicodedata.normalize("NFC", text)


# --- build: Markdown --------------------------------------------------------------------


def test_build_prints_markdown() -> None:
    result = run("build", *SEED_ARGS)
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    lines = md.splitlines()
    assert lines[0].startswith("# CNN: The United States needs to move")
    assert "Extractive briefing" in md
    for heading in ("## Summary", "## Key points", "## Citations", "## Sources"):
        assert heading in lines
    # Claims carry numbered markers (their own spans, and the other sources' spans that
    # back or contradict them), and each number is listed under Citations.
    items = re.findall(r"^ *- .*$", md.split("## Citations", 1)[0], flags=re.MULTILINE)
    markers = {int(n) for item in items for n in re.findall(r"\[(\d+)\]", item)}
    assert markers
    citations = md.split("## Citations", 1)[1].split("## Sources", 1)[0]
    listed = {int(n) for n in re.findall(r"^(\d+)\. ", citations, flags=re.MULTILINE)}
    assert listed == markers == set(range(1, len(markers) + 1))
    sources = md.split("## Sources", 1)[1]
    for path in SEED_ARGS:
        assert path in sources


def test_build_writes_markdown_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "briefing.md"
    result = run("build", *SEED_ARGS, "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert str(out) in result.stderr
    assert out.read_text("utf-8").startswith("# ")
    assert [p.name for p in out.parent.iterdir()] == ["briefing.md"]


# --- build: JSON ------------------------------------------------------------------------


CLAIM_KEYS = {"id", "text", "citations", "verdict", "score"}
CITATION_KEYS = {"source_id", "start", "end", "quote"}


def assert_claim(claim: dict[str, object], texts: dict[str, str]) -> None:
    assert set(claim) >= CLAIM_KEYS
    assert claim["verdict"] in {"supported", "unsupported", "contradicted", "unverified"}
    assert claim["score"] is None or 0 <= claim["score"] <= 1  # type: ignore[operator]
    assert isinstance(claim["citations"], list)
    for citation in claim["citations"]:
        assert set(citation) >= CITATION_KEYS
        text = texts[citation["source_id"]]
        assert 0 <= citation["start"] < citation["end"] <= len(text)
        assert text[citation["start"] : citation["end"]] == citation["quote"]


@pytest.fixture
def messy_file(tmp_path: Path) -> Path:
    """A source whose canonical text differs from its bytes: BOM, CRLF and NFD accents."""
    path = tmp_path / "cafe.txt"
    text = (
        "Cafe\u0301 Report\r\n"
        "Cafe\u0301 owners in the old town protested the new parking rules on Monday.\r\n"
        "The mayor said the rules would stay in place until next spring at least.\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return path


def test_build_json_meets_the_contract(tmp_path: Path, messy_file: Path) -> None:
    out = tmp_path / "out.json"
    paths = [*SEEDS, messy_file]
    before = datetime.now().astimezone()
    result = run("build", *map(str, paths), "--format", "json", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text("utf-8"))

    assert {
        "id",
        "created_at",
        "title",
        "engine",
        "model",
        "prompt",
        "sources",
        "summary",
        "key_points",
        "disagreements",
        "usage",
        "warnings",
    } <= set(data)
    assert isinstance(data["id"], str)
    assert data["id"]
    assert isinstance(data["title"], str)
    assert data["title"]
    assert data["engine"] == "extractive"
    assert data["model"] == "extractive"
    assert data["prompt"] is None

    created = datetime.fromisoformat(data["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert data["created_at"].endswith(("Z", "+00:00"))
    assert before - timedelta(seconds=5) <= created <= datetime.now().astimezone()

    assert set(data["usage"]) >= {"calls", "input_tokens", "output_tokens", "cost_usd"}
    assert all(isinstance(w, str) for w in data["warnings"])

    assert len(data["sources"]) == len(paths)
    for source, path in zip(data["sources"], paths, strict=True):
        assert {"id", "title", "path", "sha256", "text"} <= set(source)
        assert source["text"] == canonical_text(path)
        assert source["sha256"] == hashlib.sha256(source["text"].encode("utf-8")).hexdigest()
        assert source["path"] == str(path)
    assert data["sources"][2]["title"] == "Caf\u00e9 Report"

    texts = {s["id"]: s["text"] for s in data["sources"]}
    assert len(texts) == len(paths)
    claims = [*data["summary"], *data["key_points"]]
    for item in data["disagreements"]:
        assert isinstance(item["topic"], str)
        claims.extend(item["claims"])
    assert data["summary"]
    assert data["key_points"]
    for claim in claims:
        assert_claim(claim, texts)
    cited = {c["source_id"] for claim in claims for c in claim["citations"]}
    assert cited <= set(texts)


def test_build_json_to_stdout_parses() -> None:
    result = run("build", SEED_ARGS[1], "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sources"][0]["text"] == canonical_text(SEEDS[1])


def test_duplicate_paths_are_one_source(tmp_path: Path) -> None:
    copy = tmp_path / "copy.txt"
    copy.write_bytes(SEEDS[0].read_bytes())
    result = run("build", SEED_ARGS[0], str(copy), SEED_ARGS[0], "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["sources"]) == 1


# --- build: errors ----------------------------------------------------------------------


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    result = run("build", SEED_ARGS[0], str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert result.stderr.startswith("error:")
    assert result.stdout == ""


def test_error_leaves_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = run("build", str(tmp_path / "nowhere.txt"), "--format", "json", "-o", str(out))
    assert result.exit_code == 2
    assert not out.exists()


def test_unsupported_file_is_a_usage_error(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    result = run("build", str(pdf))
    assert result.exit_code == 2
    assert str(pdf) in result.stderr


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["--chunk-tokens", "10"], "chunk_tokens"),
        (["--chunk-overlap", "7000"], "chunk_overlap_tokens"),
        (["--max-concurrency", "0"], "max_concurrency"),
        (["--timeout", "0"], "timeout_s"),
    ],
)
def test_invalid_setting_is_a_usage_error(args: list[str], setting: str) -> None:
    result = run("build", SEED_ARGS[0], *args)
    assert result.exit_code == 2
    assert setting in result.stderr
    assert result.stdout == ""


def test_invalid_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_CHUNK_TOKENS", "10")
    result = run("build", SEED_ARGS[0])
    assert result.exit_code == 2
    assert "chunk_tokens" in result.stderr


def test_build_without_paths_is_a_usage_error() -> None:
    result = run("build")
    assert result.exit_code == 2


# --- prompts ----------------------------------------------------------------------------


def test_prompts_list_shows_released_versions() -> None:
    result = run("prompts", "list")
    assert result.exit_code == 0, result.stderr
    for label in ("extract-claims@1", "condense-claims@1", "briefing@1"):
        assert re.search(rf"^{re.escape(label)}\s+[0-9a-f]{{12}}\s+released\b", result.stdout, re.M)


def test_prompts_list_marks_unreleased_versions_as_drafts(tmp_path: Path) -> None:
    folder = tmp_path / "topic"
    folder.mkdir()
    (folder / "v1.yaml").write_text(
        "name: topic\nversion: 1\ndescription: A draft.\ninput_variables: [x]\n"
        "output_schema: {type: object}\nsystem: Be brief.\nuser: '{{ x }}'\n",
        "utf-8",
    )
    result = run("prompts", "list", "--prompts-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^topic@1\s+[0-9a-f]{12}\s+draft\s+A draft\.$", result.stdout, re.M)


def test_prompts_show_prints_the_file() -> None:
    path = default_prompts_dir() / "briefing" / "v1.yaml"
    result = run("prompts", "show", "briefing@1")
    assert result.exit_code == 0, result.stderr
    header, body = result.stdout.split("\n", 1)
    assert "briefing@1" in header
    assert hashlib.sha256(path.read_bytes()).hexdigest() in header
    assert body == path.read_text("utf-8")


def test_prompts_show_without_version_shows_the_newest() -> None:
    result = run("prompts", "show", "extract-claims")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# extract-claims@2")


@pytest.mark.parametrize("ref", ["nope@1", "briefing@99", "Not A Ref"])
def test_prompts_show_unknown_is_a_usage_error(ref: str) -> None:
    result = run("prompts", "show", ref)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:")
    assert result.stdout == ""


def test_version_option() -> None:
    import briefing

    result = run("--version")
    assert result.exit_code == 0
    assert briefing.__version__ in result.stdout


# --- the installed script and import cost -----------------------------------------------


def test_installed_script_builds_json(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "briefing"
    assert script.is_file(), f"console script not installed next to {sys.executable}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
            cwd=tmp_path,
            check=False,
        )

    result = run("build", *SEED_ARGS, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["engine"] == "extractive"
    assert [s["text"] for s in data["sources"]] == [canonical_text(p) for p in SEEDS]

    missing = run("build", "nowhere.txt")
    assert missing.returncode == 2
    assert "nowhere.txt" in missing.stderr


def imports_litellm(code: str) -> bool:
    """Run `code` in a fresh interpreter and say whether litellm got imported."""
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('litellm' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_the_check_can_see_litellm() -> None:
    # Guards the checks below against passing for the wrong reason (a real litellm import
    # takes seconds, so a stand-in module is registered).
    assert imports_litellm(
        "import sys, types\nsys.modules['litellm'] = types.ModuleType('litellm')"
    )


def test_import_briefing_does_not_import_litellm() -> None:
    assert not imports_litellm("import briefing\n[getattr(briefing, n) for n in briefing.__all__]")


def test_help_does_not_import_litellm() -> None:
    code = """
from briefing.cli import main
for args in (["--help"], ["build", "--help"], ["prompts", "list"]):
    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
"""
    assert not imports_litellm(code)


def test_extractive_build_does_not_import_litellm(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code = f"""
from briefing.cli import main
main(["build", *{SEED_ARGS!r}, "--format", "json", "-q", "-o", {str(out)!r}],
     standalone_mode=False)
"""
    assert not imports_litellm(code)
    assert json.loads(out.read_text("utf-8"))["engine"] == "extractive"


# --- compare ------------------------------------------------------------------------------


def test_compare_prints_json_with_exact_spans(tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    result = run("compare", *SEED_ARGS, "--format", "json", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text("utf-8"))
    assert set(data) >= {"sources", "sentences", "method", "source_agreement"}
    texts = {s["id"]: s["text"] for s in data["sources"]}
    assert {s["id"] for s in data["sources"]} == {s["source_id"] for s in data["sentences"]}
    for sentence in data["sentences"]:
        assert texts[sentence["source_id"]][sentence["start"] : sentence["end"]] == sentence["text"]
        assert sentence["status"] in ("corroborated", "single_source", "contradicted")
        for c in sentence["supporting"] + sentence["contradicting"]:
            assert texts[c["source_id"]][c["start"] : c["end"]] == c["quote"]
    assert any(s["status"] == "contradicted" for s in data["sentences"])


def test_compare_markdown_says_per_source_what_only_it_says_and_where_it_conflicts() -> None:
    result = run("compare", *SEED_ARGS)
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    assert md.startswith("# Comparison of 2 sources")
    assert md.count("### What only it says") == 2
    assert "### Where it contradicts the others" in md
    assert "get along with people" in md


def test_compare_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("compare", SEED_ARGS[0], str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "nope.txt: no such file" in result.stderr


def test_build_help_names_the_prompt_that_really_is_the_default() -> None:
    from briefing.config import Settings

    shown = run("build", "--help")
    assert shown.exit_code == 0
    text = " ".join(shown.output.split())
    assert f"default {Settings.model_fields['prompt'].default}" in text
    assert "local/<path to file.gguf>" in text
