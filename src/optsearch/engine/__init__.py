"""The search driver: strategies ask, the evaluator scores, the SQLite store remembers."""

from optsearch.engine.driver import ConfigMismatch, Progress, SearchConfig, SearchResult, search
from optsearch.engine.executors import EvalJob, InlineExecutor, ProcessExecutor, make_executor
from optsearch.engine.store import Sample, Store, Trial

__all__ = [
    "ConfigMismatch", "EvalJob", "InlineExecutor", "ProcessExecutor", "Progress", "Sample", "SearchConfig",
    "SearchResult", "Store", "Trial", "make_executor", "search",
]
