"""Call records a person can diagnose with: `briefing calls list/show`, re-asks that say why.

The LLM path runs over real HTTP against the fake OpenAI-compatible server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TEST_API_KEY

from briefing.cli import main
from briefing.errors import LLMError, ModelOutputError
from briefing.models.calllog import CallLog
from briefing.models.llm import LLMClient
from briefing.models.prompts import PromptLibrary
from briefing.pipeline.build import build_briefing, load_sources
from briefing.pipeline.mapreduce import MapOutput
from briefing.testing import FakeOpenAIServer, Reply

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
MakeSettings = Any

_MAP = {"source_title": "Weather", "sentences": [{"id": "S1", "text": "Rain closed the road."}]}
_GOOD = json.dumps({"claims": [{"text": "Rain closed the road.", "sentence_ids": ["S1"]}]})


async def _ask(settings: Any) -> Any:
    client = LLMClient(settings, CallLog(settings.call_log_path))
    return await client.structured(PromptLibrary().get("extract-claims@2"), _map(), MapOutput)


def _map() -> dict[str, Any]:
    return {
        "documents": [
            {"title": "Weather", "max_claims": 2, "sentences": _MAP["sentences"]},
        ]
    }


async def test_a_call_keeps_its_messages_and_answer_without_secrets(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings
) -> None:
    settings = llm_settings()
    fake_server.queue(Reply(content=_GOOD, cached_tokens=7))
    variables = _map()
    # A source that quotes the key, and a bearer token: neither may reach the log.
    variables["documents"][0]["sentences"] = [
        {"id": "S1", "text": f"The key {TEST_API_KEY} and Bearer abcdefghijklmnop leaked."}
    ]
    client = LLMClient(settings, CallLog(settings.call_log_path))
    await client.structured(PromptLibrary().get("extract-claims@2"), variables, MapOutput)
    [row] = CallLog(settings.call_log_path).rows()
    messages = json.loads(row["messages"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "leaked" in messages[1]["content"]
    assert TEST_API_KEY not in row["messages"]
    assert "abcdefghijklmnop" not in row["messages"]
    assert row["response"] == _GOOD
    assert row["cached_tokens"] == 7

    runner = CliRunner()
    env = {"BRIEFING_CALL_LOG": str(settings.call_log_path)}
    listed = runner.invoke(main, ["calls", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "extract-claims@2" in listed.output
    assert str(row["id"]) in listed.output.splitlines()[1]
    shown = runner.invoke(main, ["calls", "show", str(row["id"])], env=env)
    assert shown.exit_code == 0, shown.output
    assert "## system" in shown.output
    assert "## user" in shown.output
    assert "## answer" in shown.output
    assert "Rain closed the road." in shown.output
    assert "(7 cached)" in shown.output
    as_json = json.loads(
        runner.invoke(main, ["calls", "show", str(row["id"]), "--json"], env=env).output
    )
    assert as_json["messages"][1]["role"] == "user"
    missing = runner.invoke(main, ["calls", "show", "999"], env=env)
    assert missing.exit_code != 0
    assert "no call 999" in missing.output


async def test_content_logging_can_be_turned_off(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings
) -> None:
    settings = llm_settings(log_call_content=False)
    fake_server.queue(Reply(content=_GOOD))
    await _ask(settings)
    [row] = CallLog(settings.call_log_path).rows()
    assert row["messages"] is None
    assert row["response"] is None
    assert row["input_tokens"] > 0
    shown = CliRunner().invoke(
        main,
        ["calls", "show", str(row["id"])],
        env={"BRIEFING_CALL_LOG": str(settings.call_log_path)},
    )
    assert "Messages were not logged" in shown.output


@pytest.mark.parametrize("reasks", [0, 1, 3])
async def test_the_reask_budget_is_a_setting_and_the_failure_says_why(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, reasks: int
) -> None:
    settings = llm_settings(reasks=reasks)
    fake_server.queue(*[Reply(content="not json at all")] * (reasks + 1))
    with pytest.raises(ModelOutputError) as raised:
        await _ask(settings)
    error = raised.value
    assert len(fake_server.requests) == reasks + 1
    assert error.reason.startswith("not valid JSON")
    assert error.call_ids == [r["id"] for r in CallLog(settings.call_log_path).rows()]
    assert f"calls {', '.join(map(str, error.call_ids))}" in str(error)
    assert ("with no re-ask" if reasks == 0 else f"after {reasks} re-ask") in str(error)
    # Each re-ask quotes the fault back to the model.
    if reasks:
        assert "was not valid JSON" in fake_server.requests[-1].messages[-1]["content"]


async def test_a_refusal_and_a_truncation_are_named(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings
) -> None:
    settings = llm_settings(reasks=0)
    fake_server.queue(Reply(refusal="I can't help with that."))
    with pytest.raises(ModelOutputError, match="the model refused: I can't help with that"):
        await _ask(settings)
    fake_server.queue(Reply(content='{"claims": [', finish_reason="length"))
    with pytest.raises(ModelOutputError, match="truncated at the max_tokens limit"):
        await _ask(settings)


async def test_two_bad_answers_fail_the_briefing_naming_the_invalid_output(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings
) -> None:
    settings = llm_settings()
    # Two bad answers to the request and its re-ask; the source, left with no claim, is
    # mapped again in a smaller request, answered as badly.
    fake_server.queue(*[Reply(content="not json"), Reply(content="{still not json")] * 2)
    with pytest.raises(LLMError) as raised:
        await build_briefing(load_sources([SEEDS / "000_1108ccf958a2eb64.txt"]), settings)
    message = str(raised.value)
    assert len(fake_server.requests) == 4
    assert message.startswith("every map request failed (2 of 2)")
    assert "gave invalid output for extract-claims@2 after 1 re-ask: not valid JSON" in message
    assert "(calls 1, 2)" in message
    assert "(calls 3, 4)" in message


@pytest.mark.parametrize(
    ("choice", "model", "expected"),
    [
        ("json_schema", "openai/some-local-server-model", "json_schema"),
        ("json_object", "openai/gpt-4o-mini", "json_object"),
        ("auto", "openai/gpt-4o-mini", "json_schema"),  # litellm knows it enforces schemas
        ("auto", "openai/some-local-server-model", "json_object"),  # unknown: JSON mode
    ],
)
async def test_the_schema_is_sent_where_the_provider_can_enforce_it(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    choice: str,
    model: str,
    expected: str,
) -> None:
    settings = llm_settings(response_format=choice, model=model)
    fake_server.queue(Reply(content=_GOOD))
    await _ask(settings)
    sent = fake_server.requests[-1].body["response_format"]
    assert sent["type"] == expected
    if expected == "json_schema":
        schema = sent["json_schema"]["schema"]
        assert schema == PromptLibrary().get("extract-claims@2").output_schema
