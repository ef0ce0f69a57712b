"""The one task registry: every task, built in or your own, is usable by `evaluate`, `search` and `benchmark`.

A task is named three ways: a built-in name (`optsearch tasks` lists them), the name of a Task registered in this
process (`register`, or passing the Task object itself), or a spec `path/to/file.py:make_task` /
`package.module:make_task` naming a function that returns a Task. A spec is a plain string, so process and Ray
workers import the same file by themselves; it is imported once per process, never `eval`ed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from optsearch.tasks import data, text
from optsearch.tasks.data import DataError, Splits
from optsearch.tasks.metrics import Metric, get_metric
from optsearch.tasks.models import MLP, CharLSTM, ConvNet, ResNet, TransformerLM
from optsearch.tasks.precision import fast_bf16  # noqa: F401  (its old home; kept importable here)
from optsearch.validate import check_positive_int


class TaskError(ValueError):
    """A task name or spec that does not resolve, or a Task built with bad fields; the message says what is allowed."""


@dataclass(frozen=True)
class Task:
    """A model trained on data, with its metric and default budgets.

    `model` builds a fresh, randomly initialized nn.Module; an `MLP` trains its search members as one stacked
    model, anything else trains them one after another. `metric` is accuracy, perplexity or mse; a search's
    reward is always higher-is-better in [0, 1] (accuracy, 1/perplexity, 1/(1+mse); see `tasks.metrics`).
    `steps` × `batch_size` is the search budget per (rule, lr) member; `epochs` × `benchmark_batch_size` the
    benchmark's per run. `files(data_dir)` lists the files it reads (None: unknown without a data_dir).

    `checkpoint_val`: the intermediate validation checkpoints (the learning curve and the halving decisions) score
    a fixed subset of this many validation examples (the same for every seed, rule and process; see
    `Splits.val_subset`), the end of training the full split; None scores every checkpoint on the full split.
    `bf16`: whether precision "auto" may run this model under bfloat16 autocast (where the hardware has native
    bf16, `fast_bf16`); False where bf16 measured slower for the model (the transformer), so auto means fp32.
    """

    name: str
    description: str
    load: Callable[[Path | None], Splits]  # data_dir -> splits
    model: Callable[[], nn.Module]
    steps: int
    batch_size: int
    epochs: int
    benchmark_batch_size: int
    metric: str = "accuracy"
    sizes: tuple[int, int, int] | None = None  # train / validation / test examples, where known
    files: Callable[[Path | None], list[Path] | None] = field(default=lambda _: [], repr=False)
    source: str = "in memory"
    checkpoint_val: int | None = None
    bf16: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name or self.name != self.name.strip():
            raise TaskError(f"task name: got {self.name!r}; allowed: a non-empty name without ':' or outer spaces")
        get_metric(self.metric)
        for key in ("steps", "batch_size", "epochs", "benchmark_batch_size"):
            check_positive_int(key, getattr(self, key), TaskError)
        if self.checkpoint_val is not None:
            check_positive_int("checkpoint_val", self.checkpoint_val, TaskError)
        if not isinstance(self.bf16, bool):
            raise TaskError(f"bf16: got {self.bf16!r}; allowed: True or False")
        if isinstance(self.model, MLP) and self.metric != "accuracy":
            raise TaskError(f"task {self.name}: a stacked MLP is scored by accuracy, got metric {self.metric!r}")

    @property
    def scoring(self) -> Metric:
        return get_metric(self.metric)

    @property
    def stacked(self) -> bool:
        """Whether search members train as one stacked model (tiny MLPs) rather than one after another."""
        return isinstance(self.model, MLP)

    def data_present(self, data_dir: Path | None = None) -> bool:
        files = self.files(data_dir)
        return files is not None and all(f.exists() for f in files)

    @classmethod
    def from_tensors(cls, name: str, build_model: Callable[[], nn.Module], train: tuple[Tensor, Tensor],
                     val: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], steps: int, batch_size: int,
                     metric: str = "accuracy", epochs: int = 5, benchmark_batch_size: int | None = None,
                     description: str = "") -> Task:
        """Your own task from a model factory and (inputs, targets) tensors of the three splits.

        Classification takes integer class targets (metric accuracy or, for sequences, perplexity); regression
        takes float targets with metric "mse" (MSE loss; reward 1/(1+mse)). Validation picks the learning rate;
        test is only reported.
        """
        parts = []
        for split, pair in (("train", train), ("val", val), ("test", test)):
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(t, Tensor) for t in pair)
                    and len(pair[0]) == len(pair[1]) > 0):
                raise TaskError(f"{split}: allowed: a pair (inputs, targets) of tensors with the same number (>0) "
                                "of examples")
            parts += list(pair)
        splits = Splits(*parts)
        return cls(name, description or f"{name}: your tensors", lambda _: splits, build_model, steps, batch_size,
                   epochs, benchmark_batch_size or batch_size, metric, splits.sizes)


def _fashion_files(data_dir: Path | None) -> list[Path]:
    folder = Path(data_dir) if data_dir is not None else data.FASHION_MNIST_DIR
    return [folder / name for name in data.FASHION_MNIST_FILES.values()]


def _cifar_files(data_dir: Path | None) -> list[Path] | None:
    return None if data_dir is None else [Path(data_dir) / name for name in data.CIFAR10_FILES]


def _kjv_32(data_dir: Path | None) -> Splits:
    return text.load_kjv(data_dir, seq_len=32, holdout_every=80)


def _kjv_64(data_dir: Path | None) -> Splits:
    return text.load_kjv(data_dir, seq_len=64, holdout_every=80)


def _text_files(data_dir: Path | None) -> list[Path]:
    return [text.BIBLE_DATA] if data_dir is None else [Path(data_dir)]


FASHION = dict(load=data.load_fashion_mnist, sizes=(54000, 6000, 10000), files=_fashion_files,
               source="apt package dataset-fashion-mnist, or data_dir", steps=500, batch_size=100, epochs=5,
               benchmark_batch_size=100)
FASHION_STATS = ((0.2860,), (0.3530,))
CIFAR = dict(load=data.load_cifar10, sizes=(45000, 5000, 10000), files=_cifar_files,
             source="data_dir: your cifar-10-batches-py folder", steps=500, batch_size=100, epochs=5,
             benchmark_batch_size=100)
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))

KJV_SOURCE = "apt packages bible-kjv bible-kjv-text, or a text file as data_dir"

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("mnist1d_large", "MNIST-1D generated larger (24000 / 8000 / 8000), MLP 40-100-100-10, 1000 steps: the "
         "second discovery run's proxy, quieter than mnist1d (one seed's reward std ~0.009 against ~0.02 at 400 "
         "steps); evaluate's default task.",
         data.load_mnist1d_large, MLP((40, 100, 100, 10)), steps=1000, batch_size=128, epochs=10,
         benchmark_batch_size=128, sizes=(24000, 8000, 8000), source="generated by the mnist1d package, cached"),
    Task("mnist1d", "MNIST-1D, 10 classes of length-40 signals; MLP 40-100-100-10. The first discovery run's proxy.",
         data.load_mnist1d, MLP((40, 100, 100, 10)), steps=1000, batch_size=128, epochs=40,
         benchmark_batch_size=128, sizes=(3200, 800, 1000), source="generated by the mnist1d package, cached"),
    Task("digits", "scikit-learn's 8×8 digits; MLP 64-64-10. A seconds-long sanity task.",
         data.load_digits, MLP((64, 64, 10)), steps=300, batch_size=64, epochs=20, benchmark_batch_size=64,
         sizes=(1150, 288, 359), source="bundled with scikit-learn"),
    Task("fashion_mnist_conv", "Fashion-MNIST 28×28; the paper's child ConvNet (2 × conv-ReLU-BN-pool, dense).",
         model=partial(ConvNet, *FASHION_STATS, 28), checkpoint_val=2000, **FASHION),
    Task("fashion_mnist_resnet", "Fashion-MNIST 28×28; a small ResNet (3 stages, widths 16/32/64), the deeper "
         "model", model=partial(ResNet, *FASHION_STATS), **FASHION),
    Task("cifar10_conv", "CIFAR-10 32×32 RGB; the paper's child ConvNet (2 × conv-ReLU-BN-pool, dense).",
         model=partial(ConvNet, *CIFAR_STATS, 32), **CIFAR),
    Task("cifar10_resnet", "CIFAR-10 32×32 RGB; a small ResNet, the paper's Table 1 at small scale.",
         model=partial(ResNet, *CIFAR_STATS), **CIFAR),
    Task("kjv_char_lstm", "King James Bible (data_dir: any other text file); a byte-level LSTM language model "
         "(hidden 128, 64-byte sequences) standing in for GNMT", text.load_kjv, partial(CharLSTM, text.BYTES),
         steps=300, batch_size=32, epochs=3, benchmark_batch_size=32, metric="perplexity",
         sizes=(59512, 3307, 3307), files=_text_files, source=KJV_SOURCE, checkpoint_val=512),
    Task("fashion_tiny_conv", "Fashion-MNIST at 14×14 (2×2 average-pooled); a tiny ConvNet (3×3 convs of 8 and 16 "
         "filters, ReLU, batch norm, max-pool; dense head). A cheap member of the conv family.",
         data.load_fashion_mnist_14, partial(ConvNet, *FASHION_STATS, 14, width=(8, 16)), steps=1000,
         batch_size=128, epochs=3, benchmark_batch_size=128, sizes=(54000, 6000, 10000), files=_fashion_files,
         source=FASHION["source"], checkpoint_val=2000),
    Task("kjv_tiny_lstm", "King James Bible bytes in 32-byte sequences (1/80 each to validation and test); a tiny "
         "byte-level LSTM (embedding 32, hidden 64). A cheap member of the recurrent family.",
         _kjv_32, partial(CharLSTM, text.BYTES, embed=32, hidden=64), steps=1000, batch_size=32, epochs=1,
         benchmark_batch_size=32, metric="perplexity", sizes=(126991, 1629, 1629), files=_text_files,
         source=KJV_SOURCE, checkpoint_val=512),
    Task("kjv_transformer", "King James Bible bytes in 64-byte contexts (1/80 each to validation and test); a "
         "decoder-only pre-norm transformer LM (width 64, 2 layers, 4 heads). The held-out family; fp32 under "
         "precision auto (bf16 measured slower).",
         _kjv_64, partial(TransformerLM, text.BYTES), steps=400, batch_size=16, epochs=1, benchmark_batch_size=16,
         metric="perplexity", sizes=(64472, 827, 827), files=_text_files, source=KJV_SOURCE, checkpoint_val=128,
         bf16=False),
)}
"""Every built-in task by name.

The three cheap families (fashion_tiny_conv, kjv_tiny_lstm, kjv_transformer), measured on this project's 2-core AMD
EPYC (no native bf16), one torch thread, while other sessions kept the load average near 7 (so absolute times are
~4× an idle core's; the issue-19 table, from an idle bf16-native CPU, is in brackets):
- training ms/step, fp32 / bf16 autocast: tiny ConvNet (batch 128) 12.7-14.7 / 51-68 [3.3 / 2.3]; tiny LSTM (batch
  32) 32-35 / none (oneDNN has no bf16 LSTM on this CPU) [3.5 / 2.4]; transformer 158-209 / 1513-1635 at batch 32
  [29.1 / 48.9], 100-108 fp32 at batch 16. So `bf16` is True for the conv and LSTM (faster where native), False for
  the transformer (slower on both machines).
- budgets (steps × batch): 1000 × 128, 1000 × 32, 400 × 16. evaluate of adam at one lr took 57-83 s, 52-118 s and
  120-185 s here under that load; at the idle table's ms/step that is ~3.3 s, ~3.5 s and (batch 16) a few s.
- reward std over seeds 0-3 of adam at the best lr tried (evaluate with the task's defaults): fashion_tiny_conv lr
  1e-2 0.0083 (mean 0.862; lr 1e-3 0.0036); kjv_tiny_lstm lr 1e-2 0.0018 (mean 0.189, perplexity 5.3; lr 1e-3
  0.0026); kjv_transformer lr 3e-3 0.0013 (mean 0.113, perplexity 8.9; lr 1e-3 0.0004). Compare mnist1d_large's
  0.0094. The final score is the full split's, so `checkpoint_val` does not change it (checked: seed 0 bit-equal).
- validation's share of evaluate's time (adam, the same runs), with `checkpoint_val` / with the full split at
  every checkpoint: fashion_tiny_conv 1.4-2.9% / 4.8%; kjv_tiny_lstm 2.4-3.5% / 10.2%; kjv_transformer 8.2-9.1% /
  23.2% (scoring the test split at the end adds 1-2%, 2-4%, 3-8%). Measured with subsets of 1000, 256 and 128; the
  conv's and the LSTM's were then doubled (below), which costs at most the gap to the full split's share.
- halving decisions on the subset against the full split (8 rules: adam, sgd, rmsprop, momentum, powersign,
  addsign, g * exp(sign(g)*sign(m)), -g; lrs 1e-4..1e-1; seed 0; floors from each's own adam/sgd scores), as
  first-rung member decisions / second-rung decisions of the members the full split kept / rules left with the
  same learning rates: fashion_tiny_conv subset 1000: 29/31, 11/14, 4/8; 2000 and 3000: 31/31, 14/14, 8/8 (so
  2000). kjv_tiny_lstm 256: 32/32, 17/18, 7/8; 512 and 1024: all agree (so 512). kjv_transformer (6 of those
  rules, lrs 1e-3..1e-1): 128, 256 and 512 all agree, 17/17, 9/9, 6/6 (so 128). On the two language tasks the
  floors (HALVING_MARGINS, in reward units, set for accuracy) sit below zero at the first rung and LR_MARGIN spans
  most 1/perplexity gaps, so there halving mostly keeps the best fraction by lr.
- fashion_mnist_conv and kjv_char_lstm score their intermediate checkpoints on the subsets chosen above for the
  same validation data (2000 images; 512 sequences): their final scores are unchanged, and scoring the full split
  at every checkpoint was a large share of a member's work (counted in examples forwarded, a trained example
  counting about three: the CharLSTM at its own 300 steps 6 × 3307 sequences against 300 × 32 trained, two fifths;
  the ConvNet 4 × 6000 + 6000 + 10000 images against 500 × 100 trained, one fifth, two fifths at the 200 steps the
  panel and the second funnel used). The funnel's held-out stage and the proxy-validity panel train them at full
  fidelity over many seeds.
"""
DEFAULT_TASK = "mnist1d_large"
"""The default task of evaluate (a search's default is the `transfer` suite, `engine.config.SEARCH_TASK`)."""

_registered: dict[str, Task] = {}
_imported: dict[str, Task] = {}


def register(task: Task) -> str:
    """Make `task` known to this process by its name (a later Task of the same name replaces it); returns the
    name. Process and Ray workers do not see it: give them a spec string instead."""
    if not isinstance(task, Task):
        raise TaskError(f"register takes a Task, got {type(task).__name__}")
    if task.name in TASKS and TASKS[task.name] is not task:
        raise TaskError(f"task name {task.name!r} is a built-in task's; name yours differently")
    _registered[task.name] = task
    return task.name


def is_spec(name: str) -> bool:
    return ":" in name


def get_task(name: str | Task) -> Task:
    """The Task named by a built-in or registered name or a `file.py:function` / `module:function` spec."""
    if isinstance(name, Task):
        return name
    if not isinstance(name, str):
        raise TaskError(f"a task is a name, a spec 'file.py:function' or a Task, got {type(name).__name__}")
    if name in TASKS or name in _registered:
        return TASKS.get(name) or _registered[name]
    if is_spec(name):
        key = normalize_spec(name)
        if key not in _imported:
            _imported[key] = _import_task(key)
        return _imported[key]
    raise TaskError(f"unknown task {name!r}; choose one of {', '.join([*TASKS, *_registered])}, or give "
                    "path/to/file.py:make_task or package.module:make_task")


def normalize_spec(spec: str) -> str:
    """A spec with a file path made absolute, so workers started elsewhere find the same file."""
    target, _, function = spec.rpartition(":")
    if not target or not function.isidentifier():
        raise TaskError(f"task spec {spec!r}: allowed: path/to/file.py:function or package.module:function")
    if _is_file(target):
        return f"{Path(target).expanduser().resolve()}:{function}"
    return spec


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import_task(spec: str) -> Task:
    """Import the spec's file or module and call its function. A file's folder is on sys.path meanwhile (as for a
    script run by python), so the file can import its sibling modules; workers import the spec the same way."""
    target, _, function = spec.rpartition(":")
    path = Path(target) if _is_file(target) else None
    with nullcontext() if path is None else _on_path(path.parent):
        module = _run(spec, f"importing {target}", importlib.import_module, target) if path is None else (
            _import_file(spec, path))
        task = _run(spec, f"{function}()", _function(spec, module, target, function))
    if not isinstance(task, Task):
        raise TaskError(f"task spec {spec!r}: {function}() returned {type(task).__name__}, not an optsearch Task "
                        "(build one with optsearch.Task.from_tensors)")
    return task


def _import_file(spec: str, path: Path) -> ModuleType:
    if not path.is_file():
        raise TaskError(f"task spec {spec!r}: file {path} not found")
    name = f"optsearch_user_task_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # so pickling and dataclasses in the file work
    try:
        _run(spec, f"importing {path}", module_spec.loader.exec_module, module)
    except TaskError:
        del sys.modules[name]
        raise
    return module


@contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    """`folder` first on sys.path for the duration (left as it was if it is there already)."""
    entry = str(folder)
    if entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def _run(spec: str, doing: str, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, with an exception or a `sys.exit` in the user's code turned into one TaskError (exit 2 from
    the command line, not the file's own exit code); Ctrl-C still interrupts."""
    try:
        return fn(*args)
    except SystemExit as error:
        raise TaskError(f"task spec {spec!r}: {doing} exited (sys.exit({error.code!r})); a task file must not "
                        "exit") from None
    except Exception as error:
        raise TaskError(f"task spec {spec!r}: {doing} failed: {type(error).__name__}: {error}") from None


def _function(spec: str, module: ModuleType, target: str, function: str) -> Callable[[], Any]:
    make = getattr(module, function, None)
    if not callable(make):
        defined = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                   and getattr(v, "__module__", None) == module.__name__]
        raise TaskError(f"task spec {spec!r}: {target} has no function {function!r}; it defines: "
                        f"{', '.join(defined) or 'none'}")
    return make


def load_splits(task: str | Task, data_dir: Path | None = None) -> Splits:
    """A task's splits, loaded once per process (searches evaluate thousands of rules on the same data)."""
    return _load(get_task(task), None if data_dir is None else Path(data_dir))


@lru_cache(maxsize=4)
def _load(task: Task, data_dir: Path | None) -> Splits:
    """The task's splits, checked (see `Splits.check`): broken data is named here, not blamed on every rule."""
    splits = task.load(data_dir)
    if not isinstance(splits, Splits):
        raise TaskError(f"task {task.name}: its load returned {type(splits).__name__}; allowed: a Splits")
    try:
        splits.check()
        classes = _outputs(task, splits.x_train) if task.scoring.labels else None
        if classes is not None:
            splits.check_labels(classes)
    except DataError as error:
        raise TaskError(f"task {task.name}: {error}") from None
    return splits


def _outputs(task: Task, x: Tensor) -> int | None:
    """How many classes the task's model tells apart (the width of its output on two training inputs); None when
    the model fails on them, an error its training reports for each rule."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            return int(task.model().eval()(x[:2]).shape[-1])
        except Exception:  # noqa: BLE001 - the model's own failure is not a data error
            return None


def task_table(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per task for `optsearch tasks`: metric and reward, budgets, model, data sizes, whether it is here."""
    folder = None if data_dir is None else Path(data_dir)
    return [{
        "name": t.name,
        "metric": t.metric,
        "reward": t.scoring.reward_text,
        "search (steps×batch)": f"{t.steps}×{t.batch_size}",
        "benchmark (epochs×batch)": f"{t.epochs}×{t.benchmark_batch_size}",
        "checkpoint val": "full" if t.checkpoint_val is None else str(t.checkpoint_val),
        "bf16 auto": "yes" if t.bf16 else "no",
        "model": _model_name(t.model),
        "train / val / test": "?" if t.sizes is None else " / ".join(str(n) for n in t.sizes),
        "data present": "yes" if t.data_present(folder) else "no",
        "source": t.source,
    } for t in [*TASKS.values(), *_registered.values()]]


def _model_name(model: Callable[[], nn.Module]) -> str:
    if isinstance(model, MLP):
        return "MLP " + "-".join(map(str, model.sizes))
    return getattr(getattr(model, "func", model), "__name__", type(model).__name__)
