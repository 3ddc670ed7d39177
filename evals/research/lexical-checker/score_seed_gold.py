"""Score model.json on the hand-labelled seed gold set (evals/datasets/seeds_claims.jsonl)."""

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import checker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
model = json.loads((HERE / "model.json").read_text())
rows = [json.loads(line) for line in (ROOT / "evals/datasets/seeds_claims.jsonl").open()]
docs = {r["document"]: r["document"] for r in rows}  # the text is inline
scores = np.array([checker.predict(model, docs[r["document"]], r["claim"]) for r in rows])
labels = np.array([r["label"] for r in rows])
pred = (scores >= model.get("threshold", 0.5)).astype(int)
tpr, tnr = (pred[labels == 1] == 1).mean(), (pred[labels == 0] == 0).mean()
print(f"threshold {model.get('threshold', 0.5):.3f}  balanced accuracy {(tpr + tnr) / 2:.3f}  "
      f"ROC-AUC {roc_auc_score(labels, scores):.3f}  TPR {tpr:.3f}  TNR {tnr:.3f}")
by_kind: dict[str, list[int]] = {}
for r, p in zip(rows, pred):
    by_kind.setdefault(r["kind"], []).append(int(p == r["label"]))
print({k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_kind.items())})
