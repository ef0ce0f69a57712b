"""A rule's LaTeX as a small PNG via matplotlib's mathtext: MathJax is not available offline."""

from __future__ import annotations

import io

from matplotlib import mathtext


def latex_png(latex: str, dpi: int = 125) -> bytes | None:
    """The formula as PNG bytes, or None when mathtext cannot typeset it (the report then shows the source only)."""
    buf = io.BytesIO()
    try:
        mathtext.math_to_image(f"${latex}$", buf, dpi=dpi, format="png")
    except ValueError:
        return None
    return buf.getvalue()
