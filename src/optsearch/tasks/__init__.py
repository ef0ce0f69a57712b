"""Child tasks and the evaluator: offline datasets, small models, the population trainer, evaluate(rule) -> reward."""

from optsearch.tasks.data import DatasetMissing, Splits
from optsearch.tasks.evaluate import PAPER_LRS, CurvePoint, Evaluation, LrResult, evaluate
from optsearch.tasks.registry import TASKS, Task, get_task, task_table

__all__ = [
    "PAPER_LRS",
    "TASKS",
    "CurvePoint",
    "DatasetMissing",
    "Evaluation",
    "LrResult",
    "Splits",
    "Task",
    "evaluate",
    "get_task",
    "task_table",
]
