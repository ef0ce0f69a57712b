"""Input checks shared by every layer, in one message style: "name: got VALUE; allowed: WHAT".

Each check raises `error` (a ValueError subclass the caller names: SettingsError, TaskError, …) and returns the
value. The torch.optim optimizers keep torch's own wording instead ("Invalid lr=…: must be …", `optim.checks`),
since their users expect it. This module imports nothing from optsearch, so any layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NoReturn


def refuse(name: str, value: Any, allowed: str, error: type[ValueError] = ValueError) -> NoReturn:
    """Raise `error` naming the input, the value given and what is allowed."""
    raise error(f"{name}: got {value!r}; allowed: {allowed}")


def is_whole(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_positive_int(name: str, value: Any, error: type[ValueError] = ValueError) -> int:
    if not (is_whole(value) and value > 0):
        refuse(name, value, "a whole number >= 1", error)
    return value


def check_int_in(name: str, value: Any, low: int, high: int, error: type[ValueError] = ValueError) -> int:
    if not (is_whole(value) and low <= value <= high):
        refuse(name, value, f"a whole number from {low} to {high}", error)
    return value


def check_choice(name: str, value: Any, allowed: Sequence[str], error: type[ValueError] = ValueError) -> str:
    if value not in allowed:
        refuse(name, value, ", ".join(allowed), error)
    return value
