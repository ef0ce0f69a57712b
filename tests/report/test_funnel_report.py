import re
import sqlite3

from optsearch.report import write_report


def test_a_funnel_db_gets_the_winners_curse_each_tasks_ranking_and_the_leaderboard(funnel_db, funnel_best, tmp_path):
    path = write_report(funnel_db, tmp_path / "rep")
    assert (path.parent / "winners_curse.png").stat().st_size > 1000
    md = (path.parent / "report.md").read_text()
    assert "## Funnel: stage 1 vs stage 2 (the winner's curse)" in md
    assert re.search(r"Spearman ρ between them: -?\d\.\d\d", md)
    proxy = md.split("## Funnel: mnist1d (stage 2, the search's own task)")[1].split("##")[0]
    held_out = md.split("## Funnel: digits (stage 3, held out)")[1].split("##")[0]
    board = md.split("## Funnel: final leaderboard")[1]
    for table, n_found, seeds in ((proxy, 4, 4), (held_out, 2, 3)):
        rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| #")]
        assert len(rows) == n_found + 4  # the found rules and the four baselines
        assert rows[0].startswith(f"| 1 | `{funnel_best}`") and "| beats |" in rows[0]
        assert sum("best baseline" in r for r in rows) == 1
        assert all(f"| {seeds} |" in r for r in rows)
        assert all(re.search(r"\| 0\.\d{4} ± 0\.\d{4} \|", r) for r in rows)
    assert board.split("\n| 1 | ")[1].startswith(f"`{funnel_best}` | 1.00 | 1 / 0 / 0 |")
    assert "degree(s) of freedom" in board
    assert "| digits | 2 | — | — |" in board  # two finalists: too few for a rank correlation


def test_a_search_without_a_funnel_has_no_funnel_sections(search_db, tmp_path):
    assert "Funnel" not in write_report(search_db, tmp_path / "rep").read_text()


def test_a_funnel_stopped_before_its_first_result_still_reports(funnel_db, tmp_path):
    with sqlite3.connect(funnel_db) as db:
        db.execute("DELETE FROM evaluations")
    md = (write_report(funnel_db, tmp_path / "rep").parent / "report.md").read_text()
    proxy = md.split("## Funnel: mnist1d (stage 2, the search's own task)")[1].split("##")[0]
    assert proxy.count("| incomplete | 0 |") == 8  # every rule listed, none scored yet
    assert "Spearman ρ between them: n/a" in md


def test_a_half_done_funnel_says_how_many_results_of_how_many_and_gives_no_final_verdict(funnel_db, tmp_path):
    with sqlite3.connect(funnel_db) as db:  # adam's last proxy seed is missing, as after a kill
        db.execute("DELETE FROM evaluations WHERE stage = 'proxy' AND rule = 'adam' AND seed = "
                   "(SELECT MAX(seed) FROM evaluations WHERE stage = 'proxy')")
    md = (write_report(funnel_db, tmp_path / "rep").parent / "report.md").read_text()
    proxy = md.split("## Funnel: mnist1d (stage 2, the search's own task)")[1].split("##")[0]
    assert "over 4 seeds (1, 2, 3, 4); incomplete: 31 of 32 results." in proxy
    assert not re.search(r"\| (beats|ties|loses) \|", proxy) and "| incomplete |" in proxy
    assert "The funnel is incomplete: 49 of 50 results are stored, so every verdict waits for the rest" in md
