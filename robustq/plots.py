"""Figures and tables for notebooks: the seed's ``plot_training_curve`` and ``show_statistics``.

Plotting is matplotlib with the non-interactive Agg backend unless a
notebook chose one; every function returns the Figure (or DataFrame) so the
caller decides to show, save or embed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robustq.errors import InputError

_ALIASES = {"acc": "accuracy", "val_acc": "val_accuracy"}


def _frame(source: pd.DataFrame | str | Path, what: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a CSV table ({exc})") from None


def plot_training_curve(
    history: pd.DataFrame | str | Path,
    metrics: Sequence[str] = ("loss", "val_loss", "accuracy", "val_accuracy"),
) -> Any:
    """Plot per-epoch training metrics (from ``training_metrics.csv`` or its DataFrame).

    Loss-like and accuracy-like metrics get separate axes. The seed's names
    ``acc``/``val_acc`` are accepted for ``accuracy``/``val_accuracy``.
    Unknown metric names raise InputError listing the available columns.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in {"agg", "module://matplotlib_inline.backend_inline"}:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = _frame(history, "training history")
    wanted = [_ALIASES.get(m, m) for m in metrics]
    missing = [m for m in wanted if m not in frame.columns]
    if missing:
        raise InputError(
            f"training history has no {', '.join(missing)}; it has {', '.join(frame.columns)}"
        )
    epochs = frame["epoch"] if "epoch" in frame.columns else pd.Series(range(1, len(frame) + 1))
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in wanted:
        axis = loss_ax if "loss" in name else acc_ax
        axis.plot(
            epochs, frame[name], label=name, linestyle="--" if name.startswith("val") else "-"
        )
    for axis, title in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    fig.tight_layout()
    return fig


def show_statistics(metrics: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Return a metrics table (``inference_metrics.csv``, ``members.csv``) rounded for display."""
    return _frame(metrics, "metrics table").round(4)
