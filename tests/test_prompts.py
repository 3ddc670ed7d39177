"""Versioned prompt templates: loading, strict and sandboxed rendering, immutability."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from briefing.errors import PromptError
from briefing.models.prompts import (
    RELEASED_FILE,
    PromptLibrary,
    default_prompts_dir,
    load_file,
    parse_ref,
)

PROMPTS = default_prompts_dir()
EXPECTED_NAMES = {"briefing", "condense-claims", "extract-claims", "judge-claim"}

#: A value for every input variable a bundled template declares.
SAMPLE_VALUES: dict[str, Any] = {
    "source_title": "Council report",
    "sentences": [
        {"id": "S1", "text": "The council met on Monday."},
        {"id": "S2", "text": "It approved the budget."},
    ],
    "claims": [
        {"id": "C1", "source": "A", "text": "The council met on Monday."},
        {"id": "C2", "source": "B", "text": "The budget was approved."},
    ],
    "sources": [{"label": "A", "title": "Council report"}, {"label": "B", "title": "Wire"}],
    "max_claims": 5,
    "documents": [
        {
            "title": "Council report",
            "max_claims": 2,
            "sentences": [{"id": "S1", "text": "The council met on Monday."}],
        },
        {
            "title": "Wire",
            "max_claims": 1,
            "sentences": [{"id": "S2", "text": "It approved the budget."}],
        },
    ],
    "groups": [
        {
            "label": "[1]",
            "title": "Council report",
            "claims": [{"id": "C1", "text": "The council met on Monday."}],
        }
    ],
    "claim": "The council approved the budget.",
}


def template_data(name: str, version: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": "A test template.",
        "model_parameters": {"temperature": 0},
        "input_variables": ["topic"],
        "output_schema": {"type": "object"},
        "system": "You answer briefly.",
        "user": "Tell me about {{ topic }}.",
    }
    data.update(overrides)
    return data


def write_template(root: Path, name: str, version: int, **overrides: Any) -> Path:
    path = root / name / f"v{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(template_data(name, version, **overrides)), "utf-8")
    return path


@pytest.fixture
def library() -> PromptLibrary:
    return PromptLibrary()


# --- the bundled templates --------------------------------------------------------------


def test_every_bundled_template_loads_and_validates(library: PromptLibrary) -> None:
    templates = library.all()
    assert {t.name for t in templates} == EXPECTED_NAMES
    for template in templates:
        path = Path(template.path)
        assert path == PROMPTS / template.name / f"v{template.version}.yaml"
        assert template.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert template.ref.sha256 == template.sha256
        assert template.label == f"{template.name}@{template.version}"
        assert template.description.strip()
        assert template.input_variables


def test_output_schemas_are_valid_json_schema(library: PromptLibrary) -> None:
    from jsonschema import Draft202012Validator

    for template in library.all():
        Draft202012Validator.check_schema(template.output_schema)


@pytest.mark.parametrize("path", PromptLibrary().files(), ids=lambda p: p.parent.name)
def test_every_bundled_template_renders(path: Path) -> None:
    template = load_file(path)
    unknown = set(template.input_variables) - set(SAMPLE_VALUES)
    assert not unknown, f"add sample values for {sorted(unknown)} to SAMPLE_VALUES"
    messages = template.render({k: SAMPLE_VALUES[k] for k in template.input_variables})
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(m["content"].strip() for m in messages)


def test_rendered_extract_prompt_numbers_the_sentences(library: PromptLibrary) -> None:
    template = library.get("extract-claims@1")
    _, user = template.render(
        {"source_title": "Council report", "sentences": SAMPLE_VALUES["sentences"]}
    )
    assert '<source title="Council report">' in user["content"]
    assert "[S1] The council met on Monday.\n[S2] It approved the budget." in user["content"]


def test_missing_variables_are_named(library: PromptLibrary) -> None:
    template = library.get("extract-claims@1")
    with pytest.raises(PromptError, match="missing variables") as info:
        template.render({"source_title": "x"})
    assert "sentences" in str(info.value)
    assert "extract-claims@1" in str(info.value)


def test_extra_variables_are_named(library: PromptLibrary) -> None:
    template = library.get("extract-claims@1")
    with pytest.raises(PromptError, match="unexpected variables") as info:
        template.render({"source_title": "x", "sentences": [], "temperature": 1})
    assert "temperature" in str(info.value)


def test_undefined_attribute_is_an_error_not_an_empty_string(library: PromptLibrary) -> None:
    template = library.get("extract-claims@1")
    with pytest.raises(PromptError, match="text"):
        template.render({"source_title": "x", "sentences": [{"id": "S1"}]})


def test_strict_undefined_in_a_custom_template(tmp_path: Path) -> None:
    write_template(tmp_path, "typo", 1, user="About {{ topic.nmae }}.")
    template = PromptLibrary(tmp_path).get("typo@1")
    with pytest.raises(PromptError, match="nmae"):
        template.render({"topic": {"name": "budgets"}})


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "topic.__class__.__subclasses__()",
        "topic.__init__.__globals__",
        "cycler.__init__.__globals__",
    ],
)
def test_sandbox_blocks_python_internals(tmp_path: Path, expression: str) -> None:
    write_template(tmp_path, "escape", 1, user="{{ " + expression + " }}")
    template = PromptLibrary(tmp_path).get("escape")
    with pytest.raises(PromptError, match="unsafe") as info:
        template.render({"topic": "x"})
    assert "<class" not in str(info.value)


def test_sandbox_forbids_mutating_inputs(tmp_path: Path) -> None:
    write_template(tmp_path, "mutate", 1, user="{{ topic.append('injected') }}")
    template = PromptLibrary(tmp_path).get("mutate")
    topic: list[str] = []
    with pytest.raises(PromptError):
        template.render({"topic": topic})
    assert topic == []


# --- references and lookup --------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("briefing@1", ("briefing", 1)),
        ("briefing", ("briefing", None)),
        ("extract-claims@12", ("extract-claims", 12)),
        ("  briefing@2 ", ("briefing", 2)),
    ],
)
def test_parse_ref(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize(
    "ref", ["", "@1", "briefing@", "briefing@v1", "Briefing@1", "briefing@1.0", "a/b@1", "-x@1"]
)
def test_parse_ref_rejects_malformed_references(ref: str) -> None:
    with pytest.raises(PromptError, match="NAME@VERSION"):
        parse_ref(ref)


def test_unknown_name_lists_the_known_prompts(library: PromptLibrary) -> None:
    with pytest.raises(PromptError, match="nope") as info:
        library.get("nope@1")
    for name in EXPECTED_NAMES:
        assert name in str(info.value)


def test_unknown_version_lists_the_versions(library: PromptLibrary) -> None:
    with pytest.raises(PromptError, match="no version 9") as info:
        library.get("briefing@9")
    assert "versions: 1" in str(info.value)


def test_name_without_version_gets_the_newest(tmp_path: Path) -> None:
    write_template(tmp_path, "topic", 1)
    write_template(tmp_path, "topic", 2, description="Second.")
    write_template(tmp_path, "topic", 10, description="Tenth.")
    library = PromptLibrary(tmp_path)
    assert library.get("topic").version == 10
    assert library.get("topic@2").description == "Second."
    assert [p.name for p in library.files()] == ["v1.yaml", "v2.yaml", "v10.yaml"]


def test_missing_prompts_directory(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="not found"):
        PromptLibrary(tmp_path / "absent")


# --- malformed files --------------------------------------------------------------------


def load_error(path: Path) -> str:
    """The PromptError of loading `path`, which must name it; the path itself blanked out."""
    with pytest.raises(PromptError) as info:
        load_file(path)
    message = str(info.value)
    assert str(path) in message
    return message.replace(str(path), "<path>")


def test_declared_name_must_match_the_folder(tmp_path: Path) -> None:
    path = write_template(tmp_path, "topic", 1)
    path.write_text(yaml.safe_dump(template_data("other", 1)), "utf-8")
    assert "declares other@1" in load_error(path)
    with pytest.raises(PromptError, match="declares other@1"):
        PromptLibrary(tmp_path).get("topic@1")


def test_declared_version_must_match_the_file_name(tmp_path: Path) -> None:
    path = write_template(tmp_path, "topic", 2)
    path.write_text(yaml.safe_dump(template_data("topic", 1)), "utf-8")
    message = load_error(path)
    assert "topic@1" in message
    assert "topic@2" in message


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    path = write_template(tmp_path, "topic", 1, temperature=0.2)
    assert "temperature" in load_error(path)


def test_missing_keys_are_refused(tmp_path: Path) -> None:
    path = write_template(tmp_path, "topic", 1)
    data = template_data("topic", 1)
    del data["user"]
    path.write_text(yaml.safe_dump(data), "utf-8")
    assert "user" in load_error(path)


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "topic" / "v1.yaml"
    path.parent.mkdir()
    path.write_text("name: [unclosed\n", "utf-8")
    assert "not valid YAML" in load_error(path)


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "topic" / "v1.yaml"
    path.parent.mkdir()
    path.write_text("- name: topic\n", "utf-8")
    assert "mapping" in load_error(path)


def test_template_syntax_error_is_refused_at_load(tmp_path: Path) -> None:
    path = write_template(tmp_path, "topic", 1, user="{% for x in topic %}no end")
    assert "syntax error" in load_error(path)


# --- immutability of released versions -------------------------------------------------


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def released_path(library: PromptLibrary, label: str) -> Path:
    name, version = parse_ref(label)
    assert version is not None, f"{RELEASED_FILE}: {label!r} names no version"
    return library.root / name / f"v{version}.yaml"


def edited_released(library: PromptLibrary) -> list[str]:
    """Released versions whose file no longer has the recorded hash."""
    problems = []
    for label, recorded in library.released().items():
        path = released_path(library, label)
        if path.exists() and (actual := file_sha256(path)) != recorded:
            problems.append(
                f"{path} ({label}) was released with sha256 {recorded} but is now {actual}: "
                "add a new version instead of editing a released one"
            )
    return problems


def missing_released(library: PromptLibrary) -> list[str]:
    """Released versions whose file is gone."""
    return [
        f"{label} is released (in {RELEASED_FILE}) but {path} is missing: released "
        "versions must stay, since briefings record them"
        for label in library.released()
        if not (path := released_path(library, label)).exists()
    ]


def unlisted_files(library: PromptLibrary) -> list[str]:
    """Template files that RELEASED does not list."""
    released = library.released()
    problems = []
    for path in library.files():
        label = f"{path.parent.name}@{path.stem[1:]}"
        if label not in released:
            problems.append(
                f"{path} is not listed in {library.root / RELEASED_FILE}: add the line "
                f"'{label} {file_sha256(path)}' to release it"
            )
    return problems


def test_released_file_lists_the_bundled_templates(library: PromptLibrary) -> None:
    assert (PROMPTS / RELEASED_FILE).is_file()
    assert set(library.released()) == {f"{name}@1" for name in EXPECTED_NAMES} | {
        "briefing@2",
        "extract-claims@2",
    }


def test_released_prompts_are_unchanged(library: PromptLibrary) -> None:
    problems = edited_released(library)
    assert not problems, "\n".join(problems)


def test_released_prompts_are_present(library: PromptLibrary) -> None:
    problems = missing_released(library)
    assert not problems, "\n".join(problems)


def test_every_prompt_file_is_released(library: PromptLibrary) -> None:
    problems = unlisted_files(library)
    assert not problems, "\n".join(problems)


@pytest.fixture
def copied(tmp_path: Path) -> PromptLibrary:
    root = tmp_path / "prompts"
    shutil.copytree(PROMPTS, root)
    return PromptLibrary(root)


def test_check_passes_on_an_untouched_copy(copied: PromptLibrary) -> None:
    assert edited_released(copied) == []
    assert missing_released(copied) == []
    assert unlisted_files(copied) == []


def test_check_reports_an_edited_released_file(copied: PromptLibrary) -> None:
    path = copied.root / "briefing" / "v1.yaml"
    path.write_text(path.read_text("utf-8").replace("neutral", "punchy"), "utf-8")
    load_file(path)  # still a valid template: only the hash check can catch this
    problems = edited_released(copied)
    assert len(problems) == 1
    assert str(path) in problems[0]
    assert "add a new version instead of editing a released one" in problems[0]


def test_check_reports_a_whitespace_only_edit(copied: PromptLibrary) -> None:
    path = copied.root / "extract-claims" / "v1.yaml"
    path.write_bytes(path.read_bytes() + b"\n")
    assert [str(path) in p for p in edited_released(copied)] == [True]


def test_check_reports_a_missing_released_file(copied: PromptLibrary) -> None:
    path = copied.root / "condense-claims" / "v1.yaml"
    path.unlink()
    problems = missing_released(copied)
    assert len(problems) == 1
    assert "condense-claims@1" in problems[0]
    assert str(path) in problems[0]


def test_check_reports_an_unlisted_file_until_it_is_added(copied: PromptLibrary) -> None:
    path = write_template(copied.root, "briefing", 3, input_variables=["claims", "sources"])
    problems = unlisted_files(copied)
    assert len(problems) == 1
    assert str(path) in problems[0]
    assert "add the line" in problems[0]
    with (copied.root / RELEASED_FILE).open("a", encoding="utf-8") as released:
        released.write(f"briefing@3 {file_sha256(path)}\n")
    assert unlisted_files(copied) == []
    assert edited_released(copied) == []


def test_released_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / RELEASED_FILE).write_text(
        "# header\n\ntopic@1 abc123  # trailing comment\n", "utf-8"
    )
    assert PromptLibrary(tmp_path).released() == {"topic@1": "abc123"}


def test_malformed_released_line_names_the_line(tmp_path: Path) -> None:
    (tmp_path / RELEASED_FILE).write_text("# header\ntopic@1\n", "utf-8")
    with pytest.raises(PromptError, match=f"{RELEASED_FILE}:2"):
        PromptLibrary(tmp_path).released()


def test_no_released_file_means_nothing_is_released(tmp_path: Path) -> None:
    write_template(tmp_path, "topic", 1)
    library = PromptLibrary(tmp_path)
    assert library.released() == {}
    assert len(unlisted_files(library)) == 1
