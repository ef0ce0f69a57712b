"""Reports: a search's learning curve, leaderboard and Pareto front; a transfer benchmark's table and curves."""

from optsearch.report.benchmark import write_benchmark_report
from optsearch.report.search import write_report

__all__ = ["write_benchmark_report", "write_report"]
