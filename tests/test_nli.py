"""The nli method: a user's ONNX cross-encoder on disk (briefing.faithfulness.nli), tested
with a tiny model and tokenizer this file builds.

The tiny model sums one row of logits per token (contradiction, entailment, neutral) over
the pair's tokens: "[CLS]" adds 4 to neutral, "approved" 3 to entailment, "rejected" 5 to
contradiction. So "approved" in the premise and the claim (6) outweighs neutral, once alone
does not, and "rejected" in the premise contradicts. Crude, but every number the method
reports comes from running it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from briefing.cli import main
from briefing.config import Settings
from briefing.errors import ConfigError
from briefing.faithfulness.checker import Checker, CheckPair
from briefing.faithfulness.compare import compare_sources
from briefing.faithfulness.nli import NLIModel
from briefing.text.sources import source_from_text

WORDS = ["the", "council", "approved", "rejected", "budget", "on", "monday", "weather",
         "was", "fine", "mayor", "said", "."]  # fmt: skip
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
#: Logits a token adds: (contradiction, entailment, neutral).
ROWS = {"[CLS]": (0.0, 0.0, 4.0), "approved": (0.0, 3.0, 0.0), "rejected": (5.0, 0.0, 0.0)}


def build_model(folder: Path, *, token_types: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate([*SPECIAL, *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.save(str(folder / "tokenizer.json"))

    table = np.zeros((len(vocab), 3), dtype=np.float32)
    for word, row in ROWS.items():
        table[vocab[word]] = row
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
    ]
    if token_types:
        inputs.append(
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "tokens"])
        )
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["rows"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis"], ["mask3"]),
        helper.make_node("Mul", ["rows", "mask3"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "tokens_axis"], ["logits"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-nli",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "tokens_axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    labels = {"0": "CONTRADICTION", "1": "ENTAILMENT", "2": "NEUTRAL"}
    (folder / "config.json").write_text(json.dumps({"id2label": labels}), "utf-8")
    return folder


@pytest.fixture
def nli_folder(tmp_path: Path) -> Path:
    return build_model(tmp_path / "tiny-nli")


def _check(folder: Path, pairs: list[CheckPair]) -> list:  # type: ignore[type-arg]
    checker = Checker(Settings(check_method="nli", check_nli_model=folder))
    return asyncio.run(checker.check(pairs))


def test_the_claim_is_scored_against_each_sentence_and_the_best_one_is_its_evidence(
    nli_folder: Path,
) -> None:
    document = "The weather was fine. The council approved the budget on Monday. The mayor said."
    supported, unsupported, contradicted = _check(
        nli_folder,
        [
            CheckPair(id="a", document=document, claim="The council approved the budget."),
            CheckPair(id="b", document="The weather was fine.", claim="The council approved."),
            CheckPair(id="c", document="The council rejected the budget.", claim="It approved."),
        ],
    )
    assert supported.verdict == "supported"
    assert supported.method == "nli:tiny-nli"
    # softmax of (0, 6, 4): the sentence holding "approved" twice over.
    assert supported.score == pytest.approx(np.exp(6) / (1 + np.exp(6) + np.exp(4)), rel=1e-5)
    [evidence] = supported.evidence
    assert document[evidence.start : evidence.end] == "The council approved the budget on Monday."
    assert unsupported.verdict == "unsupported"
    assert unsupported.score == pytest.approx(np.exp(3) / (1 + np.exp(3) + np.exp(4)), rel=1e-5)
    assert contradicted.verdict == "contradicted"
    assert contradicted.label == 0


def test_a_supported_claim_cites_the_sentence_that_entails_it_not_one_that_contradicts(
    nli_folder: Path,
) -> None:
    """One sentence says it, another says the opposite: the claim is supported (the best
    sentence speaks for it) and its evidence is the sentence that says it."""
    document = "The council approved the budget. The council rejected the budget."
    [result] = _check(
        nli_folder, [CheckPair(id="a", document=document, claim="The council approved.")]
    )
    assert result.verdict == "supported"
    [evidence] = result.evidence
    assert document[evidence.start : evidence.end] == "The council approved the budget."


def test_a_graph_without_token_type_ids_runs_too(tmp_path: Path) -> None:
    folder = build_model(tmp_path / "plain", token_types=False)
    [result] = _check(folder, [CheckPair(id="a", document="Approved.", claim="Approved.")])
    assert result.verdict == "supported"


def test_compare_with_the_nli_method_uses_the_model(nli_folder: Path) -> None:
    sources = [
        source_from_text("The council approved the budget on Monday.\n", title="one"),
        source_from_text("On Monday the council approved the budget.\n", title="two"),
    ]
    checker = Checker(Settings(check_method="nli", check_nli_model=nli_folder))
    comparison = asyncio.run(compare_sources(sources, checker))
    assert comparison.method == "nli:tiny-nli"
    assert [s.status for s in comparison.sentences] == ["corroborated", "corroborated"]


def test_briefing_check_runs_the_nli_method_from_the_command_line(
    nli_folder: Path, tmp_path: Path
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"id": "p1", "document": "The council approved the budget.", "claim": "Approved."},
        {"id": "p2", "document": "The weather was fine.", "claim": "Approved."},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "check",
            "-i",
            str(pairs),
            "-o",
            str(out),
            "--method",
            "nli",
            "--nli-model",
            str(nli_folder),
        ],
    )
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [(g["id"], g["verdict"]) for g in got] == [("p1", "supported"), ("p2", "unsupported")]


def test_a_folder_that_is_not_an_nli_model_is_a_clear_error(
    nli_folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="needs a model folder"):
        Checker(Settings(check_method="nli"))
    with pytest.raises(ConfigError, match="no such folder"):
        NLIModel(tmp_path / "nowhere")
    (nli_folder / "config.json").write_text('{"id2label": {"0": "yes", "1": "no"}}', "utf-8")
    with pytest.raises(ConfigError, match=r"config\.json: id2label must name one entailment"):
        NLIModel(nli_folder)
    broken = build_model(tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"model\.onnx: not an ONNX model"):
        NLIModel(broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match=r"tokenizer\.json: missing"):
        NLIModel(broken)


def test_briefing_eval_measures_the_nli_method_beside_offline(
    nli_folder: Path, tmp_path: Path
) -> None:
    pairs = tmp_path / "tiny.jsonl"
    rows = [
        {
            "id": "1",
            "document": "The council approved the budget.",
            "claim": "Approved.",
            "label": 1,
        },
        {"id": "2", "document": "The weather was fine.", "claim": "Approved.", "label": 0},
        {"id": "3", "document": "The council rejected it.", "claim": "Approved.", "label": 0},
        {"id": "4", "document": "The mayor approved it.", "claim": "It was approved.", "label": 1},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    out = tmp_path / "report"
    args = ["eval", "--suite", "checker", "--dataset", str(pairs), "--nli-model", str(nli_folder)]
    result = CliRunner().invoke(main, [*args, "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "report.json").read_text("utf-8"))["suites"]["checker"]["metrics"]
    assert metrics["checker.tiny.nli.balanced_accuracy"]["value"] == 1.0
    assert "checker.tiny.offline.balanced_accuracy" in metrics
