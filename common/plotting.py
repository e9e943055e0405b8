"""matplotlib's ``pyplot`` on the Agg backend (files only, no window), imported on first use."""

from __future__ import annotations

__all__ = ["pyplot"]


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend chosen (plots are written to files)."""
    # matplotlib is heavy (about a second): imported only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib's pyplot, after the Agg backend is chosen
    import matplotlib.pyplot as plt

    return plt
