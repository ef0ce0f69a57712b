"""The transfer benchmark: optimizers found by the search against SGD, Momentum, Adam and RMSProp on any task of
the registry (`optsearch.tasks`), with the paper's tables and merging of runs done apart."""

from optsearch.transfer.benchmark import DEFAULT_LRS, run_benchmark, summary_table
from optsearch.transfer.results import BenchmarkResult, Stat, Summary
from optsearch.transfer.train import Budget, Epoch, Run, train_run

__all__ = [
    "DEFAULT_LRS", "BenchmarkResult", "Budget", "Epoch", "Run", "Stat", "Summary", "run_benchmark", "summary_table",
    "train_run",
]
