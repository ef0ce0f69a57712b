"""Tasks and the evaluator: the one task registry (built-in datasets and models, or your own), the population
trainer, evaluate(rule) -> reward."""

from optsearch.tasks.data import DatasetMissing, Splits
from optsearch.tasks.evaluate import evaluate, evaluate_settings
from optsearch.tasks.metrics import METRICS, Metric
from optsearch.tasks.models import MLP
from optsearch.tasks.registry import TASKS, Task, TaskError, get_task, register, task_table
from optsearch.tasks.results import CurvePoint, Evaluation, LrResult, Status
from optsearch.tasks.settings import PAPER_LRS, PRECISIONS, Settings, SettingsError
from optsearch.tasks.suite import SUITES, Suite, SuiteEvaluation, evaluate_suite

__all__ = [
    "METRICS",
    "MLP",
    "PAPER_LRS",
    "PRECISIONS",
    "SUITES",
    "TASKS",
    "CurvePoint",
    "DatasetMissing",
    "Evaluation",
    "LrResult",
    "Metric",
    "Settings",
    "SettingsError",
    "Splits",
    "Status",
    "Suite",
    "SuiteEvaluation",
    "Task",
    "TaskError",
    "evaluate",
    "evaluate_settings",
    "evaluate_suite",
    "get_task",
    "register",
    "task_table",
]
