"""The search driver: strategies ask, the evaluator scores, the SQLite store remembers."""

from optsearch.engine.driver import (
    ConfigMismatch,
    Progress,
    Schedule,
    SearchConfig,
    SearchExists,
    SearchLoop,
    SearchResult,
    search,
)
from optsearch.engine.executors import EvalJob, InlineExecutor, ProcessExecutor, make_executor
from optsearch.engine.store import BASELINE, BASELINES, Sample, Store, Trial

__all__ = [
    "BASELINE", "BASELINES", "ConfigMismatch", "EvalJob", "InlineExecutor", "ProcessExecutor",
    "Progress", "Sample", "Schedule", "SearchConfig", "SearchExists", "SearchLoop", "SearchResult", "Store", "Trial",
    "make_executor", "search",
]
