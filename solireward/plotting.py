"""The figure boilerplate of every plot: a headless pyplot with the house theme, and an atomic PNG write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from solireward.io import atomic_path


def pyplot() -> tuple[Any, Any]:
    """matplotlib.pyplot on the Agg backend and seaborn with the house theme (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def save_figure(fig: Any, path: str | Path, dpi: int = 100, **savefig: Any) -> None:
    """Write `fig` as a PNG to `path` atomically, then close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig)
    plt.close(fig)
