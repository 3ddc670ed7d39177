"""Ingestion: canonical text, content-hash ids, titles, and errors that name the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from briefing.errors import SourceError, UserError
from briefing.schema import Source
from briefing.text.sources import canonicalize, load_source, source_from_text

BODY = "The council approved the budget on Monday. It passed by seven votes to two.\n"


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# --- canonical text -------------------------------------------------------------------


def test_crlf_becomes_lf(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "a.txt", "Line one.\r\nLine two.\r\n"))
    assert source.text == "Line one.\nLine two.\n"
    assert "\r" not in source.text


def test_text_is_nfc(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "a.txt", "Caf" + "e\u0301" + " au lait is served.\n"))
    assert source.text == "Caf\u00e9 au lait is served.\n"
    assert "\u0301" not in source.text


def test_canonicalize_is_idempotent_and_matches_the_contract() -> None:
    raw = "A\r\nb\u0065\u0301\r\n"
    assert canonicalize(raw) == "A\nb\u00e9\n"
    assert canonicalize(canonicalize(raw)) == canonicalize(raw)


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "a.txt", b"\xef\xbb\xbf" + BODY.encode()))
    assert source.text == BODY
    assert not source.text.startswith("\ufeff")


def test_bom_does_not_change_the_id(tmp_path: Path) -> None:
    with_bom = load_source(write(tmp_path / "a.txt", b"\xef\xbb\xbf" + BODY.encode()))
    without = load_source(write(tmp_path / "b.txt", BODY))
    assert with_bom.id == without.id


def test_sha256_is_of_the_canonical_text(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "a.txt", BODY.replace("\n", "\r\n")))
    assert source.sha256 == hashlib.sha256(BODY.encode("utf-8")).hexdigest()


# --- ids --------------------------------------------------------------------------------


def test_same_text_gives_same_id() -> None:
    assert source_from_text(BODY).id == source_from_text(BODY).id


def test_different_path_same_content_gives_same_id(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    a = load_source(write(tmp_path / "a.txt", BODY))
    b = load_source(write(tmp_path / "sub" / "other-name.md", BODY))
    assert a.id == b.id
    assert a.path != b.path


def test_line_endings_and_normalisation_do_not_change_the_id(tmp_path: Path) -> None:
    nfc = load_source(write(tmp_path / "a.txt", "Caf\u00e9 opens.\nIt is busy.\n"))
    nfd_crlf = load_source(write(tmp_path / "b.txt", "Cafe\u0301 opens.\r\nIt is busy.\r\n"))
    assert nfc.id == nfd_crlf.id


def test_different_text_gives_different_id() -> None:
    assert source_from_text(BODY).id != source_from_text(BODY + "One more.").id


def test_load_source_returns_a_source_with_the_given_path(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", BODY)
    source = load_source(path)
    assert isinstance(source, Source)
    assert source.path == str(path)


# --- titles -----------------------------------------------------------------------------


def test_txt_title_is_a_short_first_line(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "news.txt", "Budget Approved\n" + BODY))
    assert source.title == "Budget Approved"


def test_txt_title_skips_blank_lines_and_strips(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "news.txt", "\n\n   Budget Approved  \n\n" + BODY))
    assert source.title == "Budget Approved"


def test_md_title_is_the_first_heading(tmp_path: Path) -> None:
    text = "Some intro text\n\n## The Real Heading ##\n\n# A later heading\n\n" + BODY
    source = load_source(write(tmp_path / "notes.md", text))
    assert source.title == "The Real Heading"


def test_md_title_from_a_top_heading(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "notes.md", "# Title One\n\n" + BODY))
    assert source.title == "Title One"


def test_title_falls_back_to_the_file_stem_when_first_line_is_a_sentence(
    tmp_path: Path,
) -> None:
    source = load_source(write(tmp_path / "council-report.txt", BODY + "More text here.\n"))
    assert source.title == "council-report"


def test_title_falls_back_to_the_file_stem_for_a_single_line(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "single.txt", "Just one line without a stop\n"))
    assert source.title == "single"


def test_title_falls_back_to_the_stem_for_a_very_long_first_line(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "long.txt", "word " * 100 + "\nBody.\n"))
    assert source.title == "long"


def test_explicit_title_wins_for_text_sources() -> None:
    assert source_from_text(BODY, title="  My Title ").title == "My Title"


@pytest.fixture
def seeds() -> list[Path]:
    return sorted((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))


def test_seed_titles(seeds: list[Path]) -> None:
    by_name = {p.name: load_source(p) for p in seeds}
    news = by_name["000_1108ccf958a2eb64.txt"]
    assert news.title.startswith("CNN: The United States needs to move")
    # The rewrite opens with a full sentence, so it has no headline: the stem is the title.
    assert by_name["004_922a7ff930af4547.txt"].title == "004_922a7ff930af4547"


# --- errors -----------------------------------------------------------------------------


def assert_source_error(path: Path, *fragments: str) -> str:
    with pytest.raises(SourceError) as info:
        load_source(path)
    message = str(info.value)
    assert str(path) in message
    # Look for the fragments in what is said about the file, not in its (tmp) path.
    said = message.replace(str(path), "<path>")
    for fragment in fragments:
        assert fragment in said
    # Bad input is a misuse error, not a runtime failure.
    assert isinstance(info.value, UserError)
    return message


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert_source_error(path, "binary")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert_source_error(write(tmp_path / "empty.txt", b""), "empty")


def test_whitespace_only_file_is_refused(tmp_path: Path) -> None:
    assert_source_error(write(tmp_path / "blank.md", " \n\t\r\n  \n"), "empty")


def test_bom_only_file_is_refused(tmp_path: Path) -> None:
    assert_source_error(write(tmp_path / "bom.txt", b"\xef\xbb\xbf\n"), "empty")


def test_invalid_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", "Caf\u00e9 opens.".encode("latin-1"))
    message = assert_source_error(path, "UTF-8", "offset 3")
    assert "0xe9" in message


def test_invalid_utf8_after_a_bom_names_the_offset_in_the_file(tmp_path: Path) -> None:
    # The offset is a position in the file, so the three BOM bytes count.
    raw = b"\xef\xbb\xbf" + "Caf\u00e9 opens.".encode("latin-1")
    assert raw[6] == 0xE9
    message = assert_source_error(write(tmp_path / "bom-latin1.txt", raw), "UTF-8")
    assert "0xe9" in message
    assert "offset 6" in message


def test_unsupported_suffix_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "report.pdf", b"%PDF-1.4 not really")
    assert_source_error(path, ".pdf", ".txt", ".md")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert_source_error(tmp_path / "nowhere.txt", "no such file")


def test_directory_with_a_text_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.mkdir()
    assert_source_error(path, "directory")


def test_directory_is_refused_as_a_directory(tmp_path: Path) -> None:
    # `briefing build corpus/` should say it got a directory, not complain about a suffix.
    path = tmp_path / "corpus"
    path.mkdir()
    assert_source_error(path, "directory")


def test_text_with_nul_is_refused() -> None:
    with pytest.raises(SourceError, match="binary"):
        source_from_text("abc\x00def", title="pasted")


def test_blank_text_is_refused_naming_it() -> None:
    with pytest.raises(SourceError, match="pasted"):
        source_from_text("  \n ", title="pasted")
