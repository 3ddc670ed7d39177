"""Fit the offline lexical checker's model and write briefing/lexical_model.json.

Needs numpy and scikit-learn (not dependencies of the package) and the package importable;
from the repository root:

    PYTHONPATH=. python evals/train_checker.py            # measure, fit, write the model
    PYTHONPATH=. python evals/train_checker.py --measure  # measure the stored model only

Features come from `briefing.lexical` itself, so training and run time share one code path.
Training data: evals/datasets/summac-dev/*.jsonl plus synthetic pairs made from those
documents (copied or shortened sentences as positives; a changed number, a foreign name, a
flipped negation or a foreign ending as negatives). evals/datasets/seeds_claims.jsonl is a test
set only. Reported: grouped (by document) cross-validated balanced accuracy and ROC-AUC per
summac file, the seeds figures at the stored threshold with a per-kind table, and pairs/s.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from briefing import lexical

# scikit-learn ships no type information; imported by name it is plainly `Any` to mypy.
LogisticRegression = importlib.import_module("sklearn.linear_model").LogisticRegression
roc_auc_score = importlib.import_module("sklearn.metrics").roc_auc_score
StratifiedGroupKFold = importlib.import_module("sklearn.model_selection").StratifiedGroupKFold

ROOT = Path(__file__).resolve().parents[1]
SUMMAC = ROOT / "evals" / "datasets" / "summac-dev"
SEEDS = ROOT / "evals" / "datasets" / "seeds_claims.jsonl"
MODEL_PATH = ROOT / "briefing" / "lexical_model.json"
DATASETS = ("factcc", "summeval", "xsumfaith")

C = 0.03
SYNTH_WEIGHT = 0.5
SYNTH_PER_DOC = 3
SEED = 0
FOLDS = 5
REPEATS = 5

Row = dict[str, Any]


def load_rows(path: Path, dataset: str) -> list[Row]:
    """Rows of one JSONL file, tagged with their dataset name."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for r in rows:
        r["dataset"] = dataset
    return rows


def featurize(rows: list[Row]) -> np.ndarray:
    """Feature matrix in lexical.FEATURES order; each document is indexed once."""
    docs: dict[str, lexical.IndexedDocument] = {}
    x = np.zeros((len(rows), len(lexical.FEATURES)))
    for i, r in enumerate(rows):
        doc = docs.get(r["document"])
        if doc is None:
            doc = docs[r["document"]] = lexical.IndexedDocument(r["document"])
        f = lexical.claim_features(doc, r["claim"])
        x[i] = [f[n] for n in lexical.FEATURES]
    return x


# ---------------------------------------------------------------- synthetic pairs

_AUX = re.compile(r"\b(is|was|are|were|has|have|had|will|can|could|would|did|does|do|should)\b")
_NEG = re.compile(r"\s*\b(not|never)\b|n't")


def _sentences(doc: str) -> list[str]:
    return [doc[a:b] for a, b in lexical.split_sentences(doc)]


def synthesize(
    doc: str, rng: np.random.Generator, foreign_names: list[str], foreign_sents: list[str]
) -> list[Row]:
    """Copied/shortened sentences (label 1) and corrupted ones (label 0) from one document."""
    sents = [s for s in _sentences(doc) if 8 <= len(s.split()) <= 45]
    out: list[Row] = []
    if not sents:
        return out
    for pick in rng.choice(len(sents), size=min(SYNTH_PER_DOC, len(sents)), replace=False):
        s = sents[int(pick)]
        words = s.split()
        cuts = [i for i, w in enumerate(words) if w.endswith(",") and i >= 6]
        # Positive: the sentence itself, or its opening clause as a shortened claim.
        cut = cuts[0] + 1 if cuts and rng.random() < 0.5 else 0
        pos = " ".join(words[:cut]).rstrip(",") + "." if cut else s
        out.append({"claim": pos, "label": 1})
        negs: list[str] = []
        nums = [i for i, w in enumerate(words) if re.fullmatch(r"\d[\d,.]*", w.strip(".,;:)"))]
        if nums:
            i = int(rng.choice(nums))
            core = words[i].strip(".,;:)")
            try:
                v = int(core.replace(",", ""))
                if 1900 < v < 2100:
                    nv = v + int(rng.choice([-3, -2, -1, 1, 2, 3, 5, 10]))
                else:
                    nv = max(0, v * int(rng.choice([2, 3])) + int(rng.choice([1, 2, 7])))
            except ValueError:
                nv = int(rng.integers(2, 99))
            negs.append(" ".join([*words[:i], words[i].replace(core, str(nv)), *words[i + 1 :]]))
        caps = [i for i, w in enumerate(words) if i > 0 and w[:1].isupper() and w.isalpha()]
        if caps and foreign_names:
            i = int(rng.choice(caps))
            name = foreign_names[int(rng.integers(len(foreign_names)))]
            negs.append(" ".join([*words[:i], name, *words[i + 1 :]]))
        if _NEG.search(s):
            negs.append(_NEG.sub("", s, count=1))
        elif _AUX.search(s):
            negs.append(_AUX.sub(lambda m: m.group(0) + " not", s, count=1))
        if foreign_sents:
            fw = foreign_sents[int(rng.integers(len(foreign_sents)))].split()
            negs.append(" ".join(words[: len(words) // 2] + fw[len(fw) // 2 :]))
        if negs:
            out.append({"claim": negs[int(rng.integers(len(negs)))], "label": 0})
    for r in out:
        if rng.random() < 0.4:  # benchmark claims are often lower-cased
            r["claim"] = r["claim"].lower()
    return out


def synth_rows(docs: list[str], seed: int) -> list[Row]:
    """Synthetic pairs for every document; foreign material comes from another document."""
    rng = np.random.default_rng(seed)
    names = []
    sents = []
    for d in docs:
        toks = d.split()
        names.append(
            [
                t
                for i, t in enumerate(toks)
                if i > 0 and t[:1].isupper() and t.isalpha() and len(t) > 3
            ]
        )
        sents.append([s for s in _sentences(d) if len(s.split()) >= 8])
    rows: list[Row] = []
    for i, d in enumerate(docs):
        j = (i + 1 + int(rng.integers(max(len(docs) - 1, 1)))) % len(docs)
        own = set(d.lower().split())
        foreign = [w for w in names[j] if w.lower() not in own]
        for r in synthesize(d, rng, foreign, sents[j]):
            r.update(document=d, dataset="synth", group=i)
            rows.append(r)
    return rows


# ---------------------------------------------------------------- model and measures


class LogReg:
    """Standardised logistic regression whose parameters the package applies in pure Python."""

    def __init__(self, c: float) -> None:
        self.c = c

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> LogReg:
        """Fit on standardised features with sample weights."""
        self.mu = x.mean(0)
        self.sd = x.std(0) + 1e-9
        m = LogisticRegression(C=self.c, max_iter=5000)
        m.fit((x - self.mu) / self.sd, y, sample_weight=w)
        self.coef = m.coef_[0]
        self.bias = float(m.intercept_[0])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(label 1)."""
        z = ((x - self.mu) / self.sd) @ self.coef + self.bias
        out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return out


def balanced_weights(ds: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each (dataset, label) cell gets the same total weight."""
    w = np.zeros(len(y))
    cells = set(zip(ds.tolist(), y.tolist(), strict=True))
    for d, lab in cells:
        m = (ds == d) & (y == lab)
        w[m] = len(y) / (len(cells) * m.sum())
    return w


def bacc(y: np.ndarray, pred: np.ndarray) -> float:
    """Balanced accuracy (mean of TPR and TNR over the classes present)."""
    parts = [float((pred[y == lab] == lab).mean()) for lab in (0, 1) if (y == lab).any()]
    return float(np.mean(parts))


def best_threshold(p: np.ndarray, y: np.ndarray, ds: np.ndarray) -> float:
    """The threshold maximising the mean per-dataset balanced accuracy."""
    cands = np.unique(np.quantile(p, np.linspace(0.01, 0.99, 197)))
    names = np.unique(ds)
    scores = [
        np.mean([bacc(y[ds == d], (p[ds == d] >= t).astype(int)) for d in names]) for t in cands
    ]
    return float(cands[int(np.argmax(scores))])


def fit_model(
    x: np.ndarray, y: np.ndarray, ds: np.ndarray, synth: tuple[np.ndarray, np.ndarray] | None
) -> LogReg:
    """Fit on dev rows (balanced by dataset and label) plus down-weighted synthetic rows."""
    w = balanced_weights(ds, y)
    if synth is not None and len(synth[1]) and SYNTH_WEIGHT > 0:
        xs, ys = synth
        ws = balanced_weights(np.zeros(len(ys)), ys) * SYNTH_WEIGHT * len(y) / (3 * len(ys))
        x, y, w = np.vstack([x, xs]), np.concatenate([y, ys]), np.concatenate([w, ws])
    return LogReg(C).fit(x, y, w)


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    ds: np.ndarray,
    groups: np.ndarray,
    synth: tuple[np.ndarray, np.ndarray, np.ndarray],
    fit: Callable[..., LogReg] = fit_model,
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Grouped stratified CV; per-dataset BA at a threshold chosen on the training folds, AUC."""
    strat = np.array([f"{d}_{lab}" for d, lab in zip(ds, y, strict=True)])
    names = [str(d) for d in np.unique(ds)]
    res: dict[str, dict[str, list[float]]] = {d: {"ba": [], "auc": []} for d in names}
    oof_sum = np.zeros(len(y))
    for rep in range(REPEATS):
        oof = np.zeros(len(y))
        pred = np.zeros(len(y), dtype=int)
        cv = StratifiedGroupKFold(n_splits=FOLDS, shuffle=True, random_state=SEED + rep)
        for tr, te in cv.split(x, strat, groups):
            ms = np.isin(synth[2], groups[tr])  # synthetic pairs of training documents only
            m = fit(x[tr], y[tr], ds[tr], (synth[0][ms], synth[1][ms]))
            oof[te] = m.predict(x[te])
            t = best_threshold(m.predict(x[tr]), y[tr], ds[tr])
            pred[te] = oof[te] >= t
        oof_sum += oof
        for d in names:
            mk = ds == d
            res[d]["ba"].append(bacc(y[mk], pred[mk]))
            res[d]["auc"].append(float(roc_auc_score(y[mk], oof[mk])))
    out = {d: {k: round(float(np.mean(v)), 3) for k, v in m.items()} for d, m in res.items()}
    return out, oof_sum / REPEATS


def measure_seeds(score: Callable[[list[Row]], np.ndarray], threshold: float) -> dict[str, Any]:
    """BA and AUC on seeds_claims at `threshold`, with correct/total per kind."""
    rows = load_rows(SEEDS, "seeds")
    p = score(rows)
    y = np.array([r["label"] for r in rows])
    pred = (p >= threshold).astype(int)
    kinds: dict[str, list[int]] = {}
    for r, q in zip(rows, pred, strict=True):
        kinds.setdefault(r["kind"], []).append(int(q == r["label"]))
    return {
        "ba": round(bacc(y, pred), 3),
        "auc": round(float(roc_auc_score(y, p)), 3),
        "tpr": round(float((pred[y == 1] == 1).mean()), 3),
        "tnr": round(float((pred[y == 0] == 0).mean()), 3),
        "per_kind": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(kinds.items())},
    }


def throughput(rows: list[Row]) -> float:
    """Pairs/s of the packaged scorer, indexing each document once, as a caller would."""
    t0 = time.perf_counter()
    docs: dict[str, lexical.IndexedDocument] = {}
    for r in rows:
        doc = docs.get(r["document"])
        if doc is None:
            doc = docs[r["document"]] = lexical.IndexedDocument(r["document"])
        lexical.score_claim(doc, r["claim"])
    return len(rows) / (time.perf_counter() - t0)


def print_report(cv: dict[str, Any], seeds: dict[str, Any], pairs_s: float | None) -> None:
    """Human-readable figures."""
    for d, v in cv.items():
        print(f"{d:10s} CV BA {v['ba']:.3f}  AUC {v['auc']:.3f}")
    print(
        f"seeds      BA {seeds['ba']:.3f}  AUC {seeds['auc']:.3f}  "
        f"TPR {seeds['tpr']:.3f}  TNR {seeds['tnr']:.3f}"
    )
    print("seeds per kind (correct/total):")
    for k, v in seeds["per_kind"].items():
        print(f"   {k:16s} {v}")
    if pairs_s is not None:
        print(f"throughput {pairs_s:.1f} pairs/s (summac-dev, documents indexed once)")


def main(argv: list[str] | None = None) -> int:
    """Measure, fit and write the model (or only measure the stored one)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--measure", action="store_true", help="measure the stored model only")
    args = ap.parse_args(argv)
    rows = [r for d in DATASETS for r in load_rows(SUMMAC / f"{d}.jsonl", d)]
    if args.measure:
        seeds = measure_seeds(
            lambda rs: np.array(
                [
                    lexical.score_claim(lexical.IndexedDocument(r["document"]), r["claim"]).score
                    for r in rs
                ]
            ),
            lexical.THRESHOLD,
        )
        print_report(json.loads(MODEL_PATH.read_text())["cv"]["summac"], seeds, throughput(rows))
        return 0
    docs = list(dict.fromkeys(r["document"] for r in rows))
    gid = {d: i for i, d in enumerate(docs)}
    x = featurize(rows)
    y = np.array([r["label"] for r in rows])
    ds = np.array([r["dataset"] for r in rows])
    groups = np.array([gid[r["document"]] for r in rows])
    srows = synth_rows(docs, SEED)
    synth = (
        featurize(srows),
        np.array([r["label"] for r in srows]),
        np.array([r["group"] for r in srows]),
    )
    cv, oof = cross_validate(x, y, ds, groups, synth)
    model = fit_model(x, y, ds, (synth[0], synth[1]))
    # The threshold comes from out-of-fold scores, which are not flattered by the fit.
    threshold = best_threshold(oof, y, ds)
    seeds = measure_seeds(lambda rs: model.predict(featurize(rs)), threshold)
    print_report(cv, seeds, None)
    coefs = sorted(zip(lexical.FEATURES, model.coef, strict=True), key=lambda t: -abs(t[1]))
    print("standardised coefficients:", {n: round(float(c), 2) for n, c in coefs})
    out = {
        "method": lexical.METHOD_NAME,
        "features": list(lexical.FEATURES),
        "mean": [round(float(v), 6) for v in model.mu],
        "scale": [round(float(v), 6) for v in model.sd],
        "coef": [round(float(v), 6) for v in model.coef],
        "bias": round(model.bias, 6),
        "threshold": round(threshold, 6),
        "trained_on": [f"evals/datasets/summac-dev/{d}.jsonl" for d in DATASETS]
        + [f"synthetic pairs from those documents ({len(srows)}, weight {SYNTH_WEIGHT})"],
        "cv": {
            "scheme": f"StratifiedGroupKFold by document, {FOLDS} folds x {REPEATS} repeats; "
            "BA at a threshold chosen on the training folds",
            "summac": cv,
            "seeds_claims_test": seeds,
            "C": C,
        },
    }
    MODEL_PATH.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {MODEL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
