import pytest

from optsearch.engine.store import Store
from optsearch.report import write_report


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
