from optsearch.report import write_benchmark_report
from optsearch.transfer.results import BenchmarkResult


def test_benchmark_report_has_the_table_and_plots(bench_dir, tmp_path):
    path = write_benchmark_report(bench_dir, tmp_path / "rep")
    assert {"index.html", "report.md", "curves.png", "lr_sensitivity.png"} <= {p.name for p in path.parent.iterdir()}
    html = path.read_text()
    for column in ("Final Val (%)", "Final Test (%)", "Best Val (%)", "Best Test (%)"):
        assert column in html
    best = BenchmarkResult.load(bench_dir).summaries()[2]
    assert f"{100 * best.best_test.mean:.2f} ± {100 * best.best_test.std:.2f}" in html
    md = (path.parent / "report.md").read_text()
    assert "| `powersign-cd` |" in md


def test_perplexity_report_says_lower_is_better(perplexity_bench_dir, tmp_path):
    html = write_benchmark_report(perplexity_bench_dir, tmp_path / "rep").read_text()
    assert "perplexity (lower is better)" in html and "(%)" not in html
