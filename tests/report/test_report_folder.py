"""A report's --out folder: a folder of other files is refused (before: they were overwritten in place), an earlier
report is replaced whole (before: its stale plots stayed beside the new ones), and a failed write changes nothing."""

import pytest

from optsearch.cli import main
from optsearch.report.page import REPORT_MARK, Image, Page, ReportFolderError, Section, write_page

PNG = b"\x89PNG\r\n\x1a\n fake"


def page(*names: str) -> Page:
    return Page("T", [Section("S", [Image(name, PNG + name.encode(), name) for name in names])])


def test_a_folder_of_other_files_is_refused_and_left_alone(tmp_path, search_db, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    with pytest.raises(ReportFolderError, match=r"mine holds files that are not an optsearch report \(index.html\); "
                                                "allowed: a new folder, an empty one or an earlier optsearch report's"):
        write_page(page("a.png"), out)
    assert main(["report", str(search_db), "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["index.html"] and (out / "index.html").read_text() == "my own page"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_earlier_report_is_replaced_whole(tmp_path, search_db, capsys):
    out = tmp_path / "rep"
    write_page(page("a.png", "stale.png"), out)
    write_page(page("a.png"), out)
    assert sorted(p.name for p in out.iterdir()) == [REPORT_MARK, "a.png", "index.html", "report.md"]
    assert main(["report", str(search_db), "--out", str(out)]) == 0  # the command replaces its own report too
    assert "a.png" not in {p.name for p in out.iterdir()} and (out / "learning_curve.png").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left beside it


def test_an_empty_folder_is_taken(tmp_path):
    (tmp_path / "empty").mkdir()
    assert write_page(page("a.png"), tmp_path / "empty") == tmp_path / "empty" / "index.html"


def test_a_failed_write_leaves_the_earlier_report_as_it_was(tmp_path):
    out = tmp_path / "rep"
    write_page(page("a.png"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileNotFoundError):
        write_page(page("no/such/folder.png"), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]
