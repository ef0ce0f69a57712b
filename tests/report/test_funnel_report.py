import math
import re
import sqlite3

from optsearch.engine.funnel_analysis import Entry, load_funnel
from optsearch.engine.funnel_plan import FOUND, FUNNEL_BASELINES, REFERENCE_RULES
from optsearch.engine.stats import ALPHA
from optsearch.engine.store import Store
from optsearch.report import write_report
from optsearch.report.funnel import gap_interval

FIXED = len(FUNNEL_BASELINES) + len(REFERENCE_RULES)


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
        assert len(rows) == n_found + FIXED  # the found rules, the baselines and the reference rules
        assert rows[0].startswith(f"| 1 | `{funnel_best}`") and re.search(r"\| beats \| 0\.\d{4} \|", rows[0])
        assert sum("best baseline" in r for r in rows) == 1
        assert sum("(reference) |" in r for r in rows) == len(REFERENCE_RULES)
        assert all(f"| {seeds} |" in r for r in rows)
        assert all(re.search(r"\| 0\.\d{4} ± 0\.\d{4} \|", r) for r in rows)
        assert f"the search's best, {funnel_best}, is +0." in table  # where it stands against the paper's rules
    assert "scored over 3 seeds (4, 5, 6), the learning rate tuned on 3 others (1, 2, 3)" in held_out
    assert board.split("\n| 1 | ")[1].startswith(f"`{funnel_best}` | 1.00 | 1 / 0 / 0 |")
    assert "n − 1 degrees of freedom (here 2 to 3)" in board and "80% power" in board  # 3 and 4 seeds
    assert "| digits | 2 | — | — |" in board  # two finalists: too few for a rank correlation


def test_a_search_without_a_funnel_has_no_funnel_sections(search_db, tmp_path):
    assert "Funnel" not in write_report(search_db, tmp_path / "rep").read_text()


def test_a_funnel_stopped_before_its_first_result_still_reports(funnel_db, tmp_path):
    with sqlite3.connect(funnel_db) as db:
        db.execute("DELETE FROM evaluations")
    md = (write_report(funnel_db, tmp_path / "rep").parent / "report.md").read_text()
    proxy = md.split("## Funnel: mnist1d (stage 2, the search's own task)")[1].split("##")[0]
    assert len(re.findall(r"\| incomplete( \(reference\))? \| — \| 0 \|", proxy)) == 4 + FIXED  # none scored yet
    assert "Spearman ρ between them: n/a" in md
    assert "forest" not in md  # no baseline scored: no gap to draw


def test_each_funnel_task_gets_a_forest_plot_in_its_section(funnel_db, tmp_path):
    path = write_report(funnel_db, tmp_path / "rep")
    md = (path.parent / "report.md").read_text()
    for section, task, stage in (("mnist1d (stage 2, the search's own task)", "mnist1d", "proxy"),
                                 ("digits (stage 3, held out)", "digits", "transfer")):
        assert (path.parent / f"forest_{stage}_{task}.png").stat().st_size > 1000
        text = md.split(f"## Funnel: {section}")[1].split("##")[0]
        assert f"![forest plot: {task}](forest_{stage}_{task}.png)" in text
        assert "gap to the best baseline" in text and "95% paired t interval" in text


def test_the_forest_intervals_clear_zero_exactly_when_the_paired_test_rejects(funnel_db):
    with Store(funnel_db, readonly=True) as store:
        result = load_funnel(store)
    rejects = []
    for table in [result.proxy, *result.transfer]:
        best = table.best_baseline
        assert gap_interval(best, best) == 0.0
        for e in table.found:
            half = gap_interval(e, best)
            assert half > 0 and (abs(e.gap) > half) == (e.p < ALPHA)
            rejects.append(e.p < ALPHA)
    assert len(rejects) == 6 and any(rejects) and not all(rejects)
    one_seed = Entry("g", "fp", ("g",), None, FOUND, 0.1, {1: 0.5})
    assert math.isnan(gap_interval(result.proxy.found[0], one_seed))


def test_a_half_done_funnel_says_how_many_results_of_how_many_and_gives_no_final_verdict(funnel_db, tmp_path):
    with sqlite3.connect(funnel_db) as db:  # adam's last proxy seed is missing, as after a kill
        db.execute("DELETE FROM evaluations WHERE stage = 'proxy' AND rule = 'adam' AND seed = "
                   "(SELECT MAX(seed) FROM evaluations WHERE stage = 'proxy')")
    md = (write_report(funnel_db, tmp_path / "rep").parent / "report.md").read_text()
    proxy = md.split("## Funnel: mnist1d (stage 2, the search's own task)")[1].split("##")[0]
    assert f"over 4 seeds (1, 2, 3, 4); incomplete: {(4 + FIXED) * 4 - 1} of {(4 + FIXED) * 4} results." in proxy
    assert not re.search(r"\| (beats|ties|loses) \|", proxy) and "| incomplete |" in proxy
    planned = (4 + FIXED) * 4 + (2 + FIXED) * 3
    assert f"The funnel is incomplete: {planned - 1} of {planned} results are stored, so every verdict waits" in md
