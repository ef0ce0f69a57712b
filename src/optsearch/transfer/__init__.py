"""The transfer benchmark: optimizers found by the search against SGD, Momentum, Adam and RMSProp on larger tasks."""

from optsearch.transfer.benchmark import DEFAULT_LRS, run_benchmark, summary_table
from optsearch.transfer.results import BenchmarkResult, Stat, Summary
from optsearch.transfer.tasks import TASKS, TransferTask, get_task
from optsearch.transfer.train import Budget, Epoch, Run, train

__all__ = [
    "DEFAULT_LRS", "TASKS", "BenchmarkResult", "Budget", "Epoch", "Run", "Stat", "Summary", "TransferTask",
    "get_task", "run_benchmark", "summary_table", "train",
]
