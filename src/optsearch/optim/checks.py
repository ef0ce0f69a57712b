"""Hyperparameter checks shared by every optimizer, schedule and decay here.

Each check takes the hyperparameter's name and value and raises a one-line ValueError that names both and
says what is allowed (as torch's optimizers do), so a typo fails at construction rather than mid-training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

Check = Callable[[str, Any], None]
"""check(name, value): returns if value is allowed, else raises ValueError."""

SEED_LIMIT = 2**64
"""A torch.Generator seed is an unsigned 64-bit integer."""


def _refuse(name: str, value: Any, allowed: str) -> None:
    if isinstance(value, torch.Tensor):  # torch's optimizers take one for capturable/compiled steps; these do not
        raise ValueError(f"Invalid {name}: a Tensor {name} is not supported; must be {allowed} (a Python number)")
    raise ValueError(f"Invalid {name}={value!r}: must be {allowed}")


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def finite(name: str, value: Any) -> None:
    if not (_real(value) and math.isfinite(value)):
        _refuse(name, value, "a finite number")


def non_negative(name: str, value: Any) -> None:
    """lr, weight_decay: nan, inf and negative values refused."""
    if not (_real(value) and math.isfinite(value) and value >= 0):
        _refuse(name, value, "a finite number >= 0")


def positive(name: str, value: Any) -> None:
    if not (_real(value) and math.isfinite(value) and value > 0):
        _refuse(name, value, "a finite number > 0")


def decay_rate(name: str, value: Any) -> None:
    """β of a running average: 1 would never move it, negative values would oscillate."""
    if not (_real(value) and 0 <= value < 1):
        _refuse(name, value, "a number in [0, 1)")


def positive_int(name: str, value: Any) -> None:
    if not (_integer(value) and value > 0):
        _refuse(name, value, "a positive int")


def seed(name: str, value: Any) -> None:
    if not (_integer(value) and 0 <= value < SEED_LIMIT):
        _refuse(name, value, "an int in [0, 2**64) (a torch.Generator seed)")


def flag(name: str, value: Any) -> None:
    if not (value is None or isinstance(value, bool)):
        _refuse(name, value, "None, True or False")


def optional(check: Check) -> Check:
    """`check`, with None also allowed."""
    def check_optional(name: str, value: Any) -> None:
        if value is not None:
            try:
                check(name, value)
            except ValueError as err:
                raise ValueError(f"{err} (or None)") from None
    return check_optional


def check_all(checks: dict[str, Check], values: dict[str, Any]) -> None:
    """Run each named check on values[name]."""
    for name, check in checks.items():
        check(name, values[name])
