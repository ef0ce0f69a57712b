"""How rules are scored on a child task: one frozen record that validates every field when it is built.

The same `Settings` travels from the command line (built before anything is written or trained, so bad input
fails at once) through the search driver and its executors to the worker that calls the evaluator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from optsearch import validate
from optsearch.tasks.registry import DEFAULT_TASK

PAPER_LRS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The paper's learning-rate grid."""
LR_LIMITS: tuple[float, float] = (1e-7, 1e2)
"""How far `extend_lrs` goes: a decade is tried only within these bounds."""
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
"""auto: bfloat16 autocast where the hardware computes it natively; bf16 / fp32 force one."""
DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda", "mps")
FIDELITIES: tuple[str, ...] = ("full", "halving")
"""full: every (rule, lr) member trains every step; halving: hopeless members stop early (`tasks.halving`)."""
MAX_SEED = 2**63 - 1


class SettingsError(ValueError):
    """A setting outside what is allowed; the message names the setting, the value given and what is allowed."""


@dataclass(frozen=True)
class Settings:
    """Which task, learning-rate grid, budget, seed(s), device, precision and fidelity score a rule.

    `task` is a task name or a `file.py:function` spec (see `tasks.registry`); a spec's file path is made
    absolute so workers find it. `steps` / `batch_size` None mean the task's default budget (`resolved()` fills
    them in). `device` is checked for form here; whether such a device exists is checked where training happens
    (`check_device`), since a Ray cluster's workers may have GPUs the driver lacks.
    `seeds` (None: just `seed`) scores a rule on each seed and rewards the mean; `seed` becomes the first of them.
    A count N given as `seeds` means the N seeds `seed` … `seed` + N - 1 (1: just `seed`, stored as None).
    `fidelity` "halving" stops hopeless members early; `extend_lrs` tries the next decade (within `LR_LIMITS`)
    while a rule's best learning rate is at the edge of those tried. Both change rewards, so both default off
    (committed stores stay reproducible).
    """

    task: str = DEFAULT_TASK  # a Task object given here is registered in this process and replaced by its name
    lrs: tuple[float, ...] = PAPER_LRS
    steps: int | None = None
    batch_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    precision: str = "auto"
    fidelity: str = "full"
    extend_lrs: bool = False
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        from optsearch.tasks.registry import Task, get_task, is_spec, normalize_spec, register

        try:
            if isinstance(self.task, Task):
                object.__setattr__(self, "task", register(self.task))
            elif isinstance(self.task, str) and is_spec(self.task):
                object.__setattr__(self, "task", normalize_spec(self.task))
            get_task(self.task)
        except ValueError as error:
            raise SettingsError(f"task: {error}") from None
        object.__setattr__(self, "lrs", check_lrs(self.lrs))
        for name in ("steps", "batch_size"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_int_in("seed", self.seed, 0, MAX_SEED)
        if self.seeds is not None:
            object.__setattr__(self, "seeds", check_seeds(self.seeds, self.seed))
        if self.seeds is not None:
            object.__setattr__(self, "seed", self.seeds[0])
        object.__setattr__(self, "device", check_device_name(self.device))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", str(self.data_dir))
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("fidelity", self.fidelity, FIDELITIES)
        if not isinstance(self.extend_lrs, bool):
            validate.refuse("extend_lrs", self.extend_lrs, "true or false", SettingsError)

    @property
    def all_seeds(self) -> tuple[int, ...]:
        """The seeds a rule is scored on."""
        return self.seeds or (self.seed,)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes`, validated like a new one."""
        return Settings(**{**asdict(self), **changes})

    def resolved(self) -> Settings:
        """A copy with the task's default budget filled in for `steps` and `batch_size` left None."""
        from optsearch.tasks.registry import get_task

        spec = get_task(self.task)
        return self.replace(steps=self.steps or spec.steps, batch_size=self.batch_size or spec.batch_size)

    @property
    def data_path(self) -> Path | None:
        return None if self.data_dir is None else Path(self.data_dir)

    def check_device(self) -> None:
        """Raise SettingsError unless this machine has the device (call where the training runs)."""
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SettingsError(f"device: {self.device!r} asked for, but no CUDA GPU is visible here; use cpu")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise SettingsError(f"device: {self.device!r} asked for, but this machine has "
                                f"{torch.cuda.device_count()} CUDA GPU(s)")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SettingsError(f"device: {self.device!r} asked for, but MPS is not available here; use cpu")

    def check_data(self) -> None:
        """Load the task's data here and raise TaskError if it is missing or broken (see `Splits.check`): call it
        before anything is written where the data is read on this machine."""
        from optsearch.tasks.registry import load_splits

        load_splits(self.task, self.data_path)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["lrs"] = list(self.lrs)
        d["seeds"] = None if self.seeds is None else list(self.seeds)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**{k: tuple(v) if k in ("lrs", "seeds") and v is not None else v for k, v in d.items()})


def check_positive_int(name: str, value: Any) -> int:
    return validate.check_positive_int(name, value, SettingsError)


def check_int_in(name: str, value: Any, low: int, high: int) -> int:
    return validate.check_int_in(name, value, low, high, SettingsError)


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    return validate.check_choice(name, value, allowed, SettingsError)


def check_lrs(lrs: Sequence[float]) -> tuple[float, ...]:
    """A non-empty grid of finite positive learning rates, as floats (order kept, duplicates dropped)."""
    values = tuple(lrs) if isinstance(lrs, Sequence) and not isinstance(lrs, str) else None
    if not values or not all(validate.is_real(lr) and lr > 0 for lr in values):
        validate.refuse("lrs", lrs, "a non-empty list of finite numbers > 0", SettingsError)
    return tuple(dict.fromkeys(float(lr) for lr in values))


def check_seeds(seeds: Any, first: int = 0) -> tuple[int, ...] | None:
    """A non-empty tuple of distinct seeds, each a whole number from 0 to MAX_SEED; a count N stands for the N seeds
    from `first` (None for 1: just `first`)."""
    if validate.is_whole(seeds) and seeds >= 1:
        return None if seeds == 1 else check_seeds(range(first, first + seeds))
    values = tuple(seeds) if isinstance(seeds, Sequence) and not isinstance(seeds, str) else ()
    if not values or len(set(values)) != len(values):
        validate.refuse("seeds", seeds, "a count >= 1 or a non-empty list of distinct whole numbers", SettingsError)
    for seed in values:
        check_int_in("seeds", seed, 0, MAX_SEED)
    return values


def check_device_name(device: Any) -> str:
    """A torch device string of a supported type (cpu, cuda, cuda:N, mps), normalized."""
    text = str(device)
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        validate.refuse("device", text, "cpu, cuda, cuda:N, mps", SettingsError)
    return str(parsed)
