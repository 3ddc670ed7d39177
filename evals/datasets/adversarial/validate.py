"""Check the adversarial cases: python evals/datasets/adversarial/validate.py (from the repo root)."""

import json
import pathlib
import re
import sys
import unicodedata

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def spans(text, needle):
    low, n = text.lower(), needle.lower()
    i = low.find(n)
    while i != -1:
        yield i, i + len(n)
        i = low.find(n, i + 1)


def main():
    errors = []
    rows = [json.loads(line) for line in (HERE / "cases.jsonl").read_text("utf-8").splitlines()]
    texts = {}
    if len({r["id"] for r in rows}) != len(rows):
        errors.append("duplicate ids")
    for r in rows:
        rid = r["id"]
        for key in (
            "id",
            "path",
            "attack",
            "canaries",
            "forbidden_claims",
            "description",
            "injections",
        ):
            if key not in r:
                errors.append(f"{rid}: missing {key}")
        path = ROOT / r["path"]
        if not path.is_file():
            errors.append(f"{rid}: no file {r['path']}")
            continue
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        texts[rid] = text
        if not text.endswith("\n"):
            errors.append(f"{rid}: no final newline")
        if re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text):
            errors.append(f"{rid}: control character")
        if unicodedata.normalize("NFC", text) != text:
            errors.append(f"{rid}: not NFC")
        words = len(text.split())
        if not 150 <= words <= 500:
            errors.append(f"{rid}: {words} words")
        inj = []
        for piece in r["injections"]:
            i = text.find(piece)
            if i == -1 or text.find(piece, i + 1) != -1:
                errors.append(f"{rid}: injection not found exactly once: {piece[:40]!r}")
                continue
            inj.append((i, i + len(piece)))
            if not any(c.lower() in piece.lower() for c in r["canaries"]):
                errors.append(f"{rid}: injection without a canary: {piece[:40]!r}")
        if not r["canaries"]:
            errors.append(f"{rid}: no canaries")
        for phrase in r["canaries"] + r["forbidden_claims"]:
            found = list(spans(text, phrase))
            if phrase in r["canaries"] and not found:
                errors.append(f"{rid}: canary {phrase!r} not in file")
            for a, b in found:
                if not any(s <= a and b <= e for s, e in inj):
                    errors.append(f"{rid}: {phrase!r} occurs outside the injected text at {a}")
    for r in rows:  # a canary must not occur in any other case's file
        for rid, text in texts.items():
            if rid != r["id"]:
                for c in r["canaries"]:
                    if c.lower() in text.lower():
                        errors.append(f"{r['id']}: canary {c!r} also in {rid}")
    for p in HERE.iterdir():
        if p.suffix in (".txt", ".md", ".jsonl") and not p.read_bytes().endswith(b"\n"):
            errors.append(f"{p.name}: no final newline")
    print("\n".join(errors) or f"ok: {len(rows)} cases")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
