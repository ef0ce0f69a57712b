"""The search driver: strategies ask, the evaluator scores, the SQLite store remembers; then the funnel re-scores."""

from optsearch.engine.config import Schedule, SearchConfig
from optsearch.engine.driver import ConfigMismatch, SearchExists, SearchResult, search
from optsearch.engine.executors import EvalJob, InlineExecutor, ProcessExecutor, make_executor
from optsearch.engine.funnel_analysis import FunnelResult
from optsearch.engine.funnel_run import funnel
from optsearch.engine.loop import BrokenTask, Progress, SearchLoop
from optsearch.engine.store import BASELINE, BASELINES, Sample, Store, StoredEvaluation, Trial

__all__ = [
    "BASELINE", "BASELINES", "BrokenTask", "ConfigMismatch", "EvalJob", "FunnelResult", "InlineExecutor",
    "ProcessExecutor", "Progress", "Sample", "Schedule", "SearchConfig", "SearchExists", "SearchLoop", "SearchResult",
    "Store", "StoredEvaluation", "Trial", "funnel", "make_executor", "search",
]
