import sqlite3
from pathlib import Path

import pytest

from optsearch.cli import main
from optsearch.engine.store import Store, Trial
from optsearch.report import write_report

DISCOVERY = Path(__file__).parents[2] / "docs" / "discovery"


def test_report_has_every_plot_and_the_leaderboard(search_db, tmp_path):
    path = write_report(search_db, tmp_path / "rep")
    names = {p.name for p in path.parent.iterdir()}
    assert {"index.html", "report.md", "learning_curve.png", "reward_histogram.png", "unique_vs_sampled.png",
            "pareto.png", "top_curves.png", "rule_1.png"} <= names
    html = path.read_text()
    assert "Leaderboard (top 10)" in html and "adam * exp(sign(g) * sign(m))" in html
    assert "\\operatorname{sign}" in html  # the LaTeX source is shown as code beside its rendering
    assert "exp(g) - exp(m)" not in html.split("Leaderboard")[1]  # rejected rules are not ranked
    assert "RMSProp (rule `rmsprop`)" in html  # the reference missing from the db is named
    md = (path.parent / "report.md").read_text()
    assert "![controller learning curve](learning_curve.png)" in md


def test_the_summary_prints_settings_as_plain_values(search_db, tmp_path):
    with Store(search_db) as store:
        store.set_meta("config", {"task": "mnist1d_large", "lrs": [0.001, 0.1], "fidelity": "halving"})
    path = write_report(search_db, tmp_path / "rep")
    md = (path.parent / "report.md").read_text()
    assert "| task | `mnist1d_large` |" in md and "| lrs | `0.001, 0.1` |" in md and "| fidelity | `halving` |" in md
    assert "&quot;" not in path.read_text().split("Summary")[1].split("</table>")[0]


def test_top_n_limits_the_leaderboard(search_db, tmp_path):
    html = write_report(search_db, tmp_path / "rep", top=3).read_text()
    assert "Leaderboard (top 3)" in html and "rule_4.png" not in html


def test_empty_database_gives_a_report_that_says_so(tmp_path):
    db = tmp_path / "empty.sqlite"
    Store(db).close()
    path = write_report(db, tmp_path / "rep")
    assert "no sampled rules yet" in path.read_text()


def test_missing_database_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no search database"):
        write_report(tmp_path / "nope.sqlite", tmp_path / "rep")


def garbage(path: Path) -> None:
    path.write_text("not a database\n" * 100)


def foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (name TEXT)")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), "x.sqlite holds no optsearch search: no table trials"),
    (foreign, "x.sqlite holds no optsearch search: no table trials"),
    (garbage, "x.sqlite is not an SQLite database")])
def test_report_refuses_what_is_not_a_search_and_leaves_it_untouched(tmp_path, capsys, make, message):
    db = tmp_path / "x.sqlite"
    make(db)
    before = db.read_bytes()
    assert main(["report", str(db), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite"]


def test_report_of_a_db_being_written_shows_its_committed_trials(search_db, tmp_path):
    with Store(search_db) as writer:  # a live search: holds the lock, WAL file open
        writer.add_trial(Trial("g * 2", ["g"], "fresh", "ok", 0.99))
        html = write_report(search_db, tmp_path / "rep").read_text()
    assert "g * 2" in html.split("Leaderboard")[1]


@pytest.mark.parametrize("name", ["ppo-seed0.sqlite", "random-seed0.sqlite"])
def test_the_committed_discovery_stores_are_read_without_a_change(tmp_path, name):
    db = tmp_path / name
    db.write_bytes((DISCOVERY / name).read_bytes())
    with Store(db, readonly=True) as store:
        assert store.count_trials() > 100 and store.get_meta("config")["task"]
    assert db.read_bytes() == (DISCOVERY / name).read_bytes()
