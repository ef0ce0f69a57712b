"""Child tasks and the evaluator: offline datasets, small models, the population trainer, evaluate(rule) -> reward."""

from optsearch.tasks.data import DatasetMissing, Splits
from optsearch.tasks.evaluate import evaluate, evaluate_settings
from optsearch.tasks.registry import TASKS, Task, get_task, task_table
from optsearch.tasks.results import CurvePoint, Evaluation, LrResult, Status
from optsearch.tasks.settings import PAPER_LRS, PRECISIONS, Settings, SettingsError

__all__ = [
    "PAPER_LRS",
    "PRECISIONS",
    "TASKS",
    "CurvePoint",
    "DatasetMissing",
    "Evaluation",
    "LrResult",
    "Settings",
    "SettingsError",
    "Splits",
    "Status",
    "Task",
    "evaluate",
    "evaluate_settings",
    "get_task",
    "task_table",
]
