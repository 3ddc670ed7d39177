"""The package's architecture, as the import-linter contracts in pyproject.toml state it.

The contracts must hold for the code as it is, and must fail on an import that climbs back
up a layer or reaches past the one package allowed to use a dependency: each case below adds
one such import to a copy of the package and expects `lint-imports` to name it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH puts the tree's copy of the package ahead of the installed one.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml, to add imports to."""
    shutil.copytree(
        ROOT / "briefing", tmp_path / "briefing", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken." in done.stdout
    assert "Packages import only the layers below them KEPT" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "named"),
    [
        # The text layer under the service it is used by.
        (
            "text/segment.py",
            "from briefing.service import app",
            "Packages import only the layers below them",
            "briefing.text.segment -> briefing.service",
        ),
        # The store back up into the daily runs that use it.
        (
            "store/jobs.py",
            "from briefing.daily import runs",
            "Packages import only the layers below them",
            "briefing.store.jobs -> briefing.daily.runs",
        ),
        # The checker back up into the pipeline that calls it.
        (
            "faithfulness/checker.py",
            "from briefing.pipeline import citations",
            "Packages import only the layers below them",
            "briefing.faithfulness.checker -> briefing.pipeline.citations",
        ),
        # The contracts importing what is built on them.
        (
            "errors.py",
            "from briefing.models import calllog",
            "Packages import only the layers below them",
            "briefing.errors -> briefing.models.calllog",
        ),
        # Two independent siblings of one layer.
        (
            "models/tokens.py",
            "from briefing.text import segment",
            "Packages import only the layers below them",
            "briefing.models.tokens -> briefing.text.segment",
        ),
        # litellm outside the model boundary.
        (
            "pipeline/mapreduce.py",
            "import litellm",
            "Only briefing.models talks to a language model",
            "briefing.pipeline.mapreduce -> litellm",
        ),
        # SQL outside the store.
        (
            "daily/runs.py",
            "import sqlalchemy",
            "Only briefing.store talks to the database",
            "briefing.daily.runs -> sqlalchemy",
        ),
    ],
)
def test_an_import_against_the_architecture_breaks_a_contract(
    tree: Path, module: str, line: str, contract: str, named: str
) -> None:
    path = tree / "briefing" / module
    path.write_text(path.read_text("utf-8") + f"\n{line}  # noqa\n", "utf-8")
    done = _lint(tree)
    assert done.returncode != 0
    assert f"{contract} BROKEN" in done.stdout
    assert named in done.stdout
