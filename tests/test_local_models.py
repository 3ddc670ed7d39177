"""Naming local models (`briefing.models.local.resolve`): built-in, the models file, a path.

What is checked before any weights are loaded, so these run without the [local] extra:
missing files, files that are not GGUF, and mistakes in the models file, each a ConfigError
that names the file and what is wrong.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from briefing.config import Settings
from briefing.errors import ConfigError
from briefing.models.local import MODELS, local_models, resolve, with_model_defaults
from briefing.pipeline.engines import available_engines


def _fake_gguf(path: Path) -> Path:
    # The magic and a version, then nothing: GGUF by its first bytes, unreadable after.
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    return path


def test_the_built_in_model_needs_no_file() -> None:
    assert resolve("smollm2") is MODELS["smollm2"]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ConfigError) as raised:
        resolve(str(missing))
    assert str(missing) in str(raised.value)
    assert "no such file" in str(raised.value)


def test_a_file_that_is_not_gguf_is_refused_before_loading(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("these are notes, not weights\n", "utf-8")
    with pytest.raises(ConfigError) as raised:
        resolve(str(text))
    assert "is not a GGUF model file" in str(raised.value)
    assert "b'thes'" in str(raised.value)
    folder = tmp_path / "dir.gguf"
    folder.mkdir()
    with pytest.raises(ConfigError, match="not a file"):
        resolve(str(folder))


def test_a_truncated_gguf_file_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    with pytest.raises(ConfigError) as raised:
        resolve(str(_fake_gguf(tmp_path / "cut.gguf")))
    assert "is not a readable GGUF file" in str(raised.value)


def test_an_unknown_name_lists_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve("llama9")
    message = str(raised.value)
    assert "local/llama9" in message
    assert "local/smollm2" in message
    assert "local/<path to file.gguf>" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[models.q]\npath = 'x.gguf'\ncolour = 'red'\n", "models.q.colour: Extra inputs"),
        ("[models.q]\ncontext = 4096\n", "models.q.path: Field required"),
        ("[models.q]\npath = 'x.gguf'\ncontext = 1\n", "models.q.context: Input should be"),
        ("[models.smollm2]\npath = 'x.gguf'\n", "models.smollm2: is a built-in model's name"),
        ("[model.q]\npath = 'x.gguf'\n", "expected [models.NAME] tables"),
        ("[models.q]\npath = 'missing.gguf'\n", "models.q.path: no such file"),
        ("not toml at all [", "not a valid local models file"),
    ],
)
def test_mistakes_in_the_models_file_name_the_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    models = tmp_path / "models.toml"
    models.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as raised:
        resolve("q", models)
    assert str(models) in str(raised.value)
    assert expected in str(raised.value)


def _real_gguf(path: Path, context: int) -> Path:
    """A GGUF file of metadata only (no tensors), written by the format's own writer."""
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context)
    writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_file_by_path_opens_its_trained_window_up_to_the_default(tmp_path: Path) -> None:
    small = resolve(str(_real_gguf(tmp_path / "small.gguf", 2048)))
    assert (small.name, small.path, small.context_tokens) == (
        str(tmp_path / "small.gguf"),
        str(tmp_path / "small.gguf"),
        2048,
    )
    assert small.litellm_name == f"local/{tmp_path / 'small.gguf'}"
    # A model trained on 128k tokens still opens 8192 unless its models-file entry says more.
    assert resolve(str(_real_gguf(tmp_path / "long.gguf", 131072))).context_tokens == 8192


def test_a_models_file_entry_is_relative_to_the_file_and_brings_its_defaults(
    tmp_path: Path,
) -> None:
    (tmp_path / "weights").mkdir()
    _real_gguf(tmp_path / "weights" / "m.gguf", 32768)
    models = tmp_path / "models.toml"
    models.write_text(
        "[models.mine]\npath = 'weights/m.gguf'\ncontext = 16384\nthreads = 2\n"
        "chat_format = 'chatml'\nprompt = 'briefing@1'\n",
        "utf-8",
    )
    mine = resolve("mine", models)
    assert mine.path == str(tmp_path / "weights" / "m.gguf")
    assert (mine.context_tokens, mine.threads, mine.chat_format) == (16384, 2, "chatml")
    assert mine.defaults == {"prompt": "briefing@1"}
    settings = Settings(model="local/mine", local_models=models)
    # Its defaults apply where the settings are unset, never over what the user set.
    assert with_model_defaults(settings).prompt == "briefing@1"
    assert with_model_defaults(settings.model_copy(update={"prompt": "briefing@2"})).prompt == (
        "briefing@2"
    )
    assert [m.name for m in local_models(settings)] == ["smollm2", "mine"]
    engines = {e.id: e for e in available_engines(settings)}
    assert engines["local/mine"].default
    runnable = importlib.util.find_spec("llama_cpp") is not None
    assert engines["local/mine"].available is runnable
    if runnable:
        assert "16384-token window" in engines["local/mine"].note


def test_the_engines_list_a_broken_configured_model_as_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "gone.gguf"
    settings = Settings(model=f"local/{missing}")
    engines = {e.id: e for e in available_engines(settings)}
    engine = engines[f"local/{missing}"]
    assert engine.kind == "local"
    assert not engine.available
    assert "no such file" in engine.note
    assert "local/smollm2" in engines
    # A briefing with it fails before any request, with the same reason.
    with pytest.raises(ConfigError, match="no such file"):
        with_model_defaults(settings)
    assert [m.name for m in local_models(Settings())] == ["smollm2"]
