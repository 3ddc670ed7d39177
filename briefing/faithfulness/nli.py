"""A natural-language-inference cross-encoder the user has on disk, run with onnxruntime.

The model is a folder, as a cross-encoder exported to ONNX is laid out:

- ``model.onnx``: inputs ``input_ids`` and ``attention_mask`` (``token_type_ids`` too where
  the graph takes it), output the logits of each label, one row per (premise, hypothesis);
- ``tokenizer.json``: the Hugging Face ``tokenizers`` file that encodes a pair;
- ``config.json``: ``id2label``, which names the entailment and contradiction labels.

Nothing is ever downloaded: a folder that lacks a file, or holds one that is not what it
should be, is a ConfigError naming the file. A claim is scored against each sentence of its
document (a cross-encoder reads a short premise best) and the best sentence speaks for it.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from briefing.errors import ConfigError

__all__ = ["Inference", "NLIModel", "load_nli"]

#: Pairs per onnxruntime run, and the most tokens of one pair (the premise is cut first).
BATCH = 32
MAX_TOKENS = 512


@dataclass(frozen=True)
class Inference:
    """One (premise, hypothesis) pair's label probabilities."""

    entailment: float
    contradiction: float


class NLIModel:
    """A loaded cross-encoder; one per folder per process (`load_nli`), shared by checks."""

    def __init__(self, folder: Path) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError(
                f"the nli method needs onnxruntime and tokenizers ({exc.name} is missing): "
                "pip install 'briefing[nli]'"
            ) from None
        self.folder = folder
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such folder (the NLI model's model.onnx, "
                              "tokenizer.json and config.json are expected in it)")  # fmt: skip
        model, tokenizer, config = (
            folder / n for n in ("model.onnx", "tokenizer.json", "config.json")
        )
        for path in (model, tokenizer, config):
            if not path.is_file():
                raise ConfigError(f"{path}: missing (an NLI model folder holds model.onnx, "
                                  "tokenizer.json and config.json)")  # fmt: skip
        self.entail, self.contra, self.labels = _labels(config)
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer))
        except Exception as exc:  # tokenizers raises its own Exception types
            raise ConfigError(f"{tokenizer}: not a tokenizers file ({exc})") from None
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="only_first")
        self.tokenizer.enable_padding()
        try:
            self.session = onnxruntime.InferenceSession(
                str(model), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Exception types
            raise ConfigError(f"{model}: not an ONNX model onnxruntime can load ({exc})") from None
        self.inputs = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self.inputs
        if missing:
            raise ConfigError(f"{model}: takes no {', '.join(sorted(missing))} input")
        # One run at a time: a session is thread-safe, but two runs on 2 cores only wait.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"nli:{self.folder.name}"

    def infer(self, pairs: Sequence[tuple[str, str]]) -> list[Inference]:
        """Label probabilities of each (premise, hypothesis), in order."""
        import numpy as np

        out: list[Inference] = []
        for first in range(0, len(pairs), BATCH):
            batch = pairs[first : first + BATCH]
            encoded = self.tokenizer.encode_batch([(p, h) for p, h in batch])
            feed: dict[str, Any] = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            }
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
            with self._lock:
                logits = np.asarray(self.session.run(None, feed)[0], dtype=np.float64)
            if logits.ndim != 2 or logits.shape[1] != self.labels:
                raise ConfigError(
                    f"{self.folder / 'model.onnx'}: gives logits of shape {logits.shape}; "
                    f"config.json names {self.labels} labels"
                )
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = shifted / shifted.sum(axis=1, keepdims=True)
            out.extend(Inference(float(row[self.entail]), float(row[self.contra])) for row in probs)
        return out


def _labels(config: Path) -> tuple[int, int, int]:
    """(entailment index, contradiction index, number of labels) from config.json."""
    try:
        data = json.loads(config.read_text("utf-8"))
        names = {int(k): str(v).lower() for k, v in data["id2label"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{config}: no usable id2label ({exc})") from None
    entail = [i for i, n in names.items() if n.startswith("entail")]
    contra = [i for i, n in names.items() if n.startswith("contradict")]
    if len(entail) != 1 or len(contra) != 1 or sorted(names) != list(range(len(names))):
        raise ConfigError(
            f"{config}: id2label must name one entailment and one contradiction label, "
            f"numbered from 0 (it has {data['id2label']})"
        )
    return entail[0], contra[0], len(names)


@functools.lru_cache(maxsize=4)
def _cached(folder: str) -> NLIModel:
    return NLIModel(Path(folder))


def load_nli(folder: Path) -> NLIModel:
    """The model in `folder`, loaded once per process."""
    return _cached(str(folder.expanduser().resolve()))
