"""The one exception every bad rule input raises."""

from __future__ import annotations


class RuleError(ValueError):
    """A rule that cannot be built: says what is wrong, where (character position), what is allowed."""

    def __init__(self, message: str, text: str | None = None, position: int | None = None,
                 allowed: str | None = None):
        self.text, self.position, self.allowed = text, position, allowed
        full = message
        if position is not None:
            full += f" at position {position}"
            if text is not None and len(text) <= 200:
                full += f"\n  {text}\n  {' ' * position}^"
        if allowed:
            full += f"\n  allowed: {allowed}"
        super().__init__(full)
        self.message = message
