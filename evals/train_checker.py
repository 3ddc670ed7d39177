"""Fit the offline lexical checker's model and write briefing/faithfulness/lexical_model.json.

Needs numpy and scikit-learn (not dependencies of the package) and the package importable;
from the repository root:

    PYTHONPATH=. python evals/train_checker.py            # measure, fit, write the model
    PYTHONPATH=. python evals/train_checker.py --measure  # measure the stored model only

Features come from `briefing.faithfulness.lexical` itself, so training and run time share one code path.
Training data: evals/datasets/summac-dev/*.jsonl, evals/datasets/seeds_claims.jsonl, and
synthetic pairs made from the summac documents (copied, shortened or re-attributed sentences
as positives; a name from elsewhere in the document, swapped names or numbers, a changed
number, a flipped negation or direction word, an added "all"/"always", or a foreign ending as
negatives). Every (dataset, label) cell weighs the same, so the one threshold serves all.

Measured and printed: grouped cross-validation (summac rows grouped by document; seeds rows,
which all share one document, each in its own group, i.e. folds of claims), with the balanced
accuracy at a threshold chosen on the training folds and the ROC-AUC per dataset; a per-kind
table for seeds_claims from those out-of-fold scores; the same model fitted without
seeds_claims and scored on it as a pure test set; and the packaged scorer's pairs/s.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from briefing.faithfulness import lexical

# scikit-learn ships no type information; imported by name it is plainly `Any` to mypy.
LogisticRegression = importlib.import_module("sklearn.linear_model").LogisticRegression
roc_auc_score = importlib.import_module("sklearn.metrics").roc_auc_score
StratifiedGroupKFold = importlib.import_module("sklearn.model_selection").StratifiedGroupKFold

ROOT = Path(__file__).resolve().parents[1]
SUMMAC = ROOT / "evals" / "datasets" / "summac-dev"
SEEDS = ROOT / "evals" / "datasets" / "seeds_claims.jsonl"
MODEL_PATH = ROOT / "briefing" / "faithfulness" / "lexical_model.json"
DATASETS = ("factcc", "summeval", "xsumfaith")

C = 0.03
SYNTH_WEIGHT = 0.5
SYNTH_PER_DOC = 4
SEED = 0
FOLDS = 5
REPEATS = 5

Row = dict[str, Any]
Synth = tuple[np.ndarray, np.ndarray, np.ndarray]


def load_rows(path: Path, dataset: str) -> list[Row]:
    """Rows of one JSONL file, tagged with their dataset name."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for r in rows:
        r["dataset"] = dataset
    return rows


def featurize(rows: list[Row], names: tuple[str, ...] = lexical.FEATURES) -> np.ndarray:
    """Feature matrix in `names` order; each document is indexed once."""
    docs: dict[str, lexical.IndexedDocument] = {}
    x = np.zeros((len(rows), len(names)))
    for i, r in enumerate(rows):
        doc = docs.get(r["document"])
        if doc is None:
            doc = docs[r["document"]] = lexical.IndexedDocument(r["document"])
        f = lexical.claim_features(doc, r["claim"])
        x[i] = [f[n] for n in names]
    return x


# ---------------------------------------------------------------- synthetic pairs

_AUX = re.compile(r"\b(is|was|are|were|has|have|had|will|can|could|would|did|does|do|should)\b")
_NEG = re.compile(r"\s*\b(not|never)\b|n't")
# A capitalised run that does not open the sentence: a name, most of the time.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z][\w'\-]*(?:\s+[A-Z][a-z][\w'\-]*)*")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_SPEECH = re.compile(r"\b(said|says|told|added|explained|noted|according to)\b")
_QUOTE_THEN_SPEAKER = re.compile(
    r"^[\"']?(.{20,}?)[,.]?[\"']?,?\s+(?:(\w+(?:\s\w+){0,2})\s+(said|says|added)"
    r"|(said|says|added)\s+(\w+(?:\s\w+){0,2}))\.?$"
)
_ABSOLUTE = {"sometimes": "always", "some": "all", "many": "all", "often": "always", "most": "all"}
_OPPOSITES = (
    ("rose", "fell"), ("increased", "decreased"), ("rise", "fall"), ("won", "lost"),
    ("win", "lose"), ("before", "after"), ("approved", "rejected"), ("supported", "opposed"),
    ("opened", "closed"), ("started", "ended"), ("best", "worst"), ("largest", "smallest"),
    ("bought", "sold"), ("male", "female"), ("easier", "harder"), ("success", "failure"),
)  # fmt: skip
_OPPOSITE = {a: b for pair in _OPPOSITES for a, b in (pair, pair[::-1])}


def _sentences(doc: str) -> list[str]:
    return [doc[a:b] for a, b in lexical.split_sentences(doc)]


def _names(s: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _NAME.finditer(s) if m.start() > 0]


def _pick(rng: np.random.Generator, seq: list[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _changed_number(rng: np.random.Generator, core: str) -> str:
    try:
        v = int(core.replace(",", ""))
    except ValueError:
        return str(int(rng.integers(2, 99)))
    if 1900 < v < 2100:
        return str(v + int(rng.choice([-3, -2, -1, 1, 2, 3, 5, 10])))
    return str(max(0, v * int(rng.choice([2, 3])) + int(rng.choice([1, 2, 7]))))


def corruptions(
    s: str, rng: np.random.Generator, doc_names: list[str], foreign_sents: list[str]
) -> dict[str, str]:
    """Unsupported variants of a document sentence, by kind of error."""
    out: dict[str, str] = {}
    names = _names(s)
    here = {n for _, _, n in names}
    others = [n for n in doc_names if n not in here and not any(t in s for t in n.split())]
    if names and others:
        a, b, _ = _pick(rng, names)
        out["name_from_doc"] = s[:a] + _pick(rng, others) + s[b:]
        speech = _SPEECH.search(s)
        near = [
            x
            for x in names
            if speech and min(abs(x[0] - speech.start()), abs(x[1] - speech.end())) < 40
        ]
        if near:
            a, b, _ = _pick(rng, near)
            out["speaker"] = s[:a] + _pick(rng, others) + s[b:]
    if len(names) >= 2:
        i, j = sorted(int(k) for k in rng.choice(len(names), size=2, replace=False))
        (a1, b1, n1), (a2, b2, n2) = names[i], names[j]
        if n1 not in n2 and n2 not in n1:
            out["name_swap"] = s[:a1] + n2 + s[b1:a2] + n1 + s[b2:]
    nums = list(_NUMBER.finditer(s))
    if nums:
        m = _pick(rng, nums)
        out["number"] = s[: m.start()] + _changed_number(rng, m.group()) + s[m.end() :]
    if len(nums) >= 2 and nums[0].group() != nums[1].group():
        m1, m2 = nums[0], nums[1]
        out["number_swap"] = (
            s[: m1.start()] + m2.group() + s[m1.end() : m2.start()] + m1.group() + s[m2.end() :]
        )
    if _NEG.search(s):
        out["negation"] = _NEG.sub("", s, count=1)
    elif _AUX.search(s):
        out["negation"] = _AUX.sub(lambda m: m.group(0) + " not", s, count=1)
    words = [m for m in re.finditer(r"[A-Za-z]+", s) if m.group().lower() in _OPPOSITE]
    if words:
        m = _pick(rng, words)
        out["direction"] = s[: m.start()] + _OPPOSITE[m.group().lower()] + s[m.end() :]
    words = [m for m in re.finditer(r"[A-Za-z]+", s) if m.group().lower() in _ABSOLUTE]
    if words:
        m = words[0]
        out["absolute"] = s[: m.start()] + _ABSOLUTE[m.group().lower()] + s[m.end() :]
    if foreign_sents:
        fw = _pick(rng, foreign_sents).split()
        out["foreign_ending"] = " ".join(s.split()[: len(s.split()) // 2] + fw[len(fw) // 2 :])
    return out


def rewordings(s: str) -> dict[str, str]:
    """Supported variants of a document sentence: itself, shortened, or re-attributed."""
    out = {"copy": s}
    words = s.split()
    cuts = [i for i, w in enumerate(words) if w.endswith(",") and i >= 6]
    if cuts:
        out["opening_clause"] = " ".join(words[: cuts[0] + 1]).rstrip(",") + "."
    m = re.search(r",\s[^,]{3,60},\s", s)
    if m:
        out["no_apposition"] = s[: m.start()] + " " + s[m.end() :]
    m = _QUOTE_THEN_SPEAKER.match(s)
    if m:
        speaker = m.group(2) or m.group(5)
        verb = m.group(3) or m.group(4)
        out["speaker_first"] = f"{speaker} {verb} that {m.group(1)}."
    return out


def synth_rows(docs: list[str], seed: int) -> list[Row]:
    """Synthetic pairs for every document: per picked sentence one positive, one negative."""
    rng = np.random.default_rng(seed)
    sents = [_sentences(d) for d in docs]
    names = [list(dict.fromkeys(n for s in ss for _, _, n in _names(s))) for ss in sents]
    rows: list[Row] = []
    for i, d in enumerate(docs):
        j = (i + 1 + int(rng.integers(max(len(docs) - 1, 1)))) % len(docs)
        picks = [k for k, s in enumerate(sents[i]) if 8 <= len(s.split()) <= 45]
        foreign = [s for s in sents[j] if len(s.split()) >= 8]
        for k in rng.choice(len(picks), size=min(SYNTH_PER_DOC, len(picks)), replace=False):
            s = sents[i][picks[int(k)]]
            good = rewordings(s)
            bad = corruptions(s, rng, names[i], foreign)
            kind = _pick(rng, sorted(good))
            new = [{"claim": good[kind], "label": 1, "kind": kind}]
            if bad:
                kind = _pick(rng, sorted(bad))
                new.append({"claim": bad[kind], "label": 0, "kind": kind})
            for r in new:
                if rng.random() < 0.4:  # benchmark claims are often lower-cased
                    r["claim"] = r["claim"].lower()
                r.update(document=d, dataset="synth", group=i)
            rows.extend(new)
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
    """Fit on real rows (balanced by dataset and label) plus down-weighted synthetic rows."""
    w = balanced_weights(ds, y)
    if synth is not None and len(synth[1]) and SYNTH_WEIGHT > 0:
        xs, ys = synth
        ws = balanced_weights(np.zeros(len(ys)), ys) * SYNTH_WEIGHT * len(y) / (3 * len(ys))
        x, y, w = np.vstack([x, xs]), np.concatenate([y, ys]), np.concatenate([w, ws])
    return LogReg(C).fit(x, y, w)


def cross_validate(
    x: np.ndarray, y: np.ndarray, ds: np.ndarray, groups: np.ndarray, synth: Synth
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Grouped CV: per-dataset BA (training-fold threshold) and AUC, and mean out-of-fold scores."""
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
            m = fit_model(x[tr], y[tr], ds[tr], (synth[0][ms], synth[1][ms]))
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


def seeds_figures(rows: list[Row], p: np.ndarray, threshold: float) -> dict[str, Any]:
    """BA, AUC, TPR and TNR at `threshold`, with correct/total per kind."""
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


def print_seeds(title: str, seeds: dict[str, Any]) -> None:
    """Seeds figures and the per-kind table."""
    print(
        f"{title}: BA {seeds['ba']:.3f}  AUC {seeds['auc']:.3f}  "
        f"TPR {seeds['tpr']:.3f}  TNR {seeds['tnr']:.3f}"
    )
    print(f"   {'kind':16s} correct/total")
    for kind, v in seeds["per_kind"].items():
        print(f"   {kind:16s} {v}")


def measure_stored(summac: list[Row], seeds: list[Row]) -> None:
    """Figures of the stored model: its recorded CV, seeds at its threshold, pairs/s."""
    stored = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    for d, v in stored["cv"]["datasets"].items():
        print(f"{d:10s} CV BA {v['ba']:.3f}  AUC {v['auc']:.3f}  (recorded at training)")
    doc = lexical.IndexedDocument(seeds[0]["document"])  # every seeds claim shares one document
    p = np.array([lexical.score_claim(doc, r["claim"]).score for r in seeds])
    note = "in training: in-sample" if stored["cv"].get("seeds_in_training") else "test set"
    print_seeds(f"seeds_claims, stored model ({note})", seeds_figures(seeds, p, lexical.THRESHOLD))
    print(f"throughput {throughput(summac):.1f} pairs/s (summac-dev, documents indexed once)")


def main(argv: list[str] | None = None) -> int:
    """Measure, fit and write the model (or only measure the stored one)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--measure", action="store_true", help="measure the stored model only")
    ap.add_argument(
        "--seeds-as-test", action="store_true", help="leave seeds_claims out of the training"
    )
    args = ap.parse_args(argv)
    summac = [r for d in DATASETS for r in load_rows(SUMMAC / f"{d}.jsonl", d)]
    seeds = load_rows(SEEDS, "seeds")
    if args.measure:
        measure_stored(summac, seeds)
        return 0
    docs = list(dict.fromkeys(r["document"] for r in summac))
    gid = {d: i for i, d in enumerate(docs)}
    srows = synth_rows(docs, SEED)
    synth = (
        featurize(srows),
        np.array([r["label"] for r in srows]),
        np.array([r["group"] for r in srows]),
    )
    xm, xq = featurize(summac), featurize(seeds)
    ym = np.array([r["label"] for r in summac])
    yq = np.array([r["label"] for r in seeds])
    dm = np.array([r["dataset"] for r in summac])
    gm = np.array([gid[r["document"]] for r in summac])

    # Seeds as a pure test set: fit on summac (+ synthetic) only.
    _, oof_m = cross_validate(xm, ym, dm, gm, synth)
    held = fit_model(xm, ym, dm, (synth[0], synth[1]))
    seeds_test = seeds_figures(seeds, held.predict(xq), best_threshold(oof_m, ym, dm))

    if args.seeds_as_test:
        x, y, ds, groups = xm, ym, dm, gm
    else:
        # All seeds claims share one document: each claim is its own group (claim folds).
        x, y = np.vstack([xm, xq]), np.concatenate([ym, yq])
        ds = np.concatenate([dm, np.full(len(yq), "seeds")])
        groups = np.concatenate([gm, len(docs) + np.arange(len(yq))])
    cv, oof = cross_validate(x, y, ds, groups, synth)
    model = fit_model(x, y, ds, (synth[0], synth[1]))
    # The threshold comes from out-of-fold scores, which are not flattered by the fit.
    threshold = best_threshold(oof, y, ds)
    for d, v in cv.items():
        print(f"{d:10s} CV BA {v['ba']:.3f}  AUC {v['auc']:.3f}")
    seeds_cv = None
    if not args.seeds_as_test:
        seeds_cv = seeds_figures(seeds, oof[ds == "seeds"], threshold)
        print_seeds("seeds_claims, claim-fold CV (out-of-fold scores, stored threshold)", seeds_cv)
    print_seeds("seeds_claims as a test set (model fitted on summac + synthetic only)", seeds_test)
    coefs = sorted(zip(lexical.FEATURES, model.coef, strict=True), key=lambda t: -abs(t[1]))
    print("standardised coefficients:", {n: round(float(c), 2) for n, c in coefs})
    trained_on = [f"evals/datasets/summac-dev/{d}.jsonl" for d in DATASETS]
    if not args.seeds_as_test:
        trained_on.append("evals/datasets/seeds_claims.jsonl")
    trained_on.append(
        f"synthetic pairs from the summac documents ({len(srows)}, weight {SYNTH_WEIGHT})"
    )
    out = {
        "method": lexical.METHOD_NAME,
        "features": list(lexical.FEATURES),
        "mean": [round(float(v), 6) for v in model.mu],
        "scale": [round(float(v), 6) for v in model.sd],
        "coef": [round(float(v), 6) for v in model.coef],
        "bias": round(model.bias, 6),
        "threshold": round(threshold, 6),
        "trained_on": trained_on,
        "cv": {
            "scheme": f"StratifiedGroupKFold, {FOLDS} folds x {REPEATS} repeats, summac grouped by "
            "document, seeds_claims by claim; BA at a threshold chosen on the training folds",
            "datasets": cv,
            "seeds_in_training": not args.seeds_as_test,
            "seeds_claims_cv": seeds_cv,
            "seeds_claims_as_test": seeds_test,
            "C": C,
        },
    }
    MODEL_PATH.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {MODEL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
