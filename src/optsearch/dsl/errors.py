"""The one exception every bad rule input raises."""

from __future__ import annotations


class RuleError(ValueError):
    """A rule that cannot be built. Its message is one line: what is wrong, where (character position in
    the text), and what is allowed instead."""

    def __init__(self, message: str, text: str | None = None, position: int | None = None,
                 allowed: str | None = None):
        self.message, self.text, self.position, self.allowed = message, text, position, allowed
        full = message
        if position is not None:
            full += f" at position {position}"
            if text is not None and len(text) <= 80:
                full += f" of {text!r}"
        if allowed:
            full += f"; allowed: {allowed}"
        super().__init__(full)
