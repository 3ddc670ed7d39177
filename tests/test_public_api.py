"""The public surface of `briefing`: changing it must be a deliberate edit of this test."""

from __future__ import annotations

import importlib

import pytest

import briefing

EXPECTED = {
    "Briefing",
    "BriefingError",
    "CheckPair",
    "CheckResult",
    "Checker",
    "Citation",
    "Claim",
    "Settings",
    "Source",
    "__version__",
    "build_briefing",
    "build_briefing_sync",
    "load_source",
    "load_sources",
}

#: Where each public name is defined; the package attribute must be that very object.
HOMES = {
    "Briefing": "briefing.schema",
    "BriefingError": "briefing.errors",
    "CheckPair": "briefing.faithfulness.checker",
    "CheckResult": "briefing.faithfulness.checker",
    "Checker": "briefing.faithfulness.checker",
    "Citation": "briefing.schema",
    "Claim": "briefing.schema",
    "Settings": "briefing.config",
    "Source": "briefing.schema",
    "build_briefing": "briefing.pipeline.build",
    "build_briefing_sync": "briefing.pipeline.build",
    "load_source": "briefing.text.sources",
    "load_sources": "briefing.pipeline.build",
}


def test_all_is_the_expected_surface() -> None:
    assert set(briefing.__all__) == EXPECTED
    assert len(briefing.__all__) == len(set(briefing.__all__))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(briefing, name) is not None


@pytest.mark.parametrize("name", sorted(HOMES))
def test_lazy_attributes_are_the_defining_objects(name: str) -> None:
    home = importlib.import_module(HOMES[name])
    assert getattr(briefing, name) is getattr(home, name)


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from briefing import *", namespace)
    assert EXPECTED - {"__version__"} <= set(namespace)


def test_version_is_a_string() -> None:
    assert isinstance(briefing.__version__, str)
    assert briefing.__version__.count(".") >= 1


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        briefing.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_public_classes_are_what_they_claim() -> None:
    assert issubclass(briefing.BriefingError, Exception)
    source = briefing.Source(id="x", title="t", sha256="0" * 64, text="Some text.")
    citation = briefing.Citation(source_id="x", start=0, end=4, quote="Some")
    claim = briefing.Claim(id="c1", text="Some", citations=[citation])
    made = briefing.Briefing(
        id="b",
        title="t",
        engine="extractive",
        model="extractive",
        prompt=None,
        sources=[source],
        summary=[claim],
        key_points=[],
    )
    assert made.claims() == [claim]
