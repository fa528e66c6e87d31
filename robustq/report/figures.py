"""The report's figures, also for notebooks: each function returns a matplotlib Figure.

Degradation curves (a metric against fault level, one line per scheme, a
band across seeds, one panel per fault model, ensembles dashed against
single models), per-layer sensitivity heatmaps, confusion matrices,
classification maps of a scene (ground truth, clean and perturbed
predictions, flipped pixels) and the training curve. Figures are built on
:class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state), so
they work headless and never pile up in pyplot's registry; a notebook shows
one by returning it. :func:`figure_png` renders one to PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustq.errors import ConfigError, InputError
from robustq.report.verdict import label_rows, whole_model_rows

__all__ = [
    "METRIC_NAMES",
    "class_map",
    "figure_png",
    "plot_classification_maps",
    "plot_confusion_matrices",
    "plot_data_noise",
    "plot_degradation",
    "plot_layer_heatmap",
    "plot_training",
]

METRIC_NAMES: dict[str, str] = {
    "accuracy_score": "overall accuracy (OA)",
    "balanced_accuracy_score": "balanced accuracy (AA)",
    "cohen_kappa_score": "kappa",
    "flip_rate": "flip rate (share of predictions changed)",
    "delta_accuracy": "OA change vs clean",
    "delta_kappa": "kappa change vs clean",
    "probability_shift": "probability shift",
}
"""Axis labels of the metrics the report plots."""

_SHORT_NAMES = {"accuracy_score": "OA", "flip_rate": "flip rate"}
_LINESTYLES = ("-", "--", ":", "-.")
_FLIPPED, _KEPT = "#000000", "#dddddd"  # black and light grey: no class colour is either
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_png(figure: Any, dpi: int = 110) -> bytes:
    """Render a Figure to PNG bytes (Agg, white background)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _x_scale(axis: Any, levels: Sequence[float]) -> None:
    """Log (or symlog with a linear part around 0) when positive levels span two decades."""
    positive = sorted(v for v in levels if v > 0)
    if len(positive) < 2 or positive[-1] / positive[0] < 100:
        return
    if min(levels) <= 0:
        axis.set_xscale("symlog", linthresh=positive[0], linscale=0.5)
    else:
        axis.set_xscale("log")


def plot_degradation(
    frame: pd.DataFrame,
    metric: str = "accuracy_score",
    band: str = "minmax",
    tolerance: float | None = None,
) -> Any:
    """A metric against fault level: one panel per fault model, one line per scheme.

    ``frame`` is a results frame (:func:`robustq.sweep.load_results`);
    layer-wise cells are left out. Each line is the mean over seeds with a
    band of the seed ``"minmax"`` range or ``"std"`` (mean +- sample std);
    ensemble settings get their own line style (solid = one perturbed
    model). With ``tolerance`` and an accuracy metric, each scheme's
    clean-minus-tolerance level is drawn as a thin dotted line. Levels
    spanning decades (bit-error rates) get a log x axis.
    """
    if band not in ("minmax", "std"):
        raise ConfigError(f"band must be 'minmax' or 'std' (got {band!r})")
    rows = whole_model_rows(frame)
    if rows.empty:
        raise InputError("no whole-model cells to plot (only layer-wise ones?)")
    if metric not in rows.columns:
        raise ConfigError(f"unknown metric {metric!r}")
    rows = label_rows(rows)
    faults = list(dict.fromkeys(rows["fault_label"]))
    schemes = list(dict.fromkeys(rows["scheme"]))
    settings = list(dict.fromkeys(rows["setting"]))
    columns = min(len(faults), 3)
    lines = math.ceil(len(faults) / columns)
    figure = _figure(max(7.0, 4.6 * columns), 3.6 * lines + 0.9)
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    colors = _colors(len(schemes))
    for axis, fault in zip(axes, faults, strict=False):
        part = rows[rows["fault_label"] == fault]
        for s_index, scheme in enumerate(schemes):
            for t_index, setting in enumerate(settings):
                cell = part[(part["scheme"] == scheme) & (part["setting"] == setting)]
                if cell.empty:
                    continue
                stats = cell.groupby("level")[metric].agg(["mean", "std", "min", "max"])
                stats = stats.sort_index()
                levels = stats.index.to_numpy(dtype=float)
                label = scheme if len(settings) == 1 else f"{scheme} {setting}"
                axis.plot(
                    levels,
                    stats["mean"],
                    color=colors[s_index],
                    linestyle=_LINESTYLES[t_index % len(_LINESTYLES)],
                    marker=_MARKERS[s_index % len(_MARKERS)],
                    markersize=4,
                    label=label,
                )
                if band == "minmax":
                    low, high = stats["min"], stats["max"]
                else:
                    spread = stats["std"].fillna(0.0)
                    low, high = stats["mean"] - spread, stats["mean"] + spread
                axis.fill_between(levels, low, high, color=colors[s_index], alpha=0.15, lw=0)
                if tolerance is not None and metric == "accuracy_score" and t_index == 0:
                    if "clean_accuracy" in cell.columns:
                        floor = float(cell["clean_accuracy"].mean()) - tolerance
                        axis.axhline(floor, color=colors[s_index], linestyle=":", lw=0.8)
        parameter = str(part["parameter"].iloc[0]) if "parameter" in part.columns else "level"
        axis.set_xlabel(f"{parameter}")
        axis.set_ylabel(METRIC_NAMES.get(metric, metric))
        axis.set_title(fault)
        axis.grid(alpha=0.3)
        _x_scale(axis, list(part["level"].astype(float).unique()))
    for axis in axes[len(faults) :]:
        axis.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(4, len(handles)),
            fontsize="small",
        )
    spread = "min-max range" if band == "minmax" else "+-1 std"
    short = _SHORT_NAMES.get(metric, metric)
    figure.suptitle(f"{short} vs fault level (band: {spread} over seeds)", fontsize="medium")
    return figure


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(count)]


def plot_layer_heatmap(
    frame: pd.DataFrame,
    scheme: str,
    fault: str | None = None,
    metric: str = "delta_accuracy",
) -> Any:
    """Per-layer sensitivity of one scheme: a layers x levels heatmap of ``metric``.

    Reads the layer-wise cells with :func:`robustq.sweep.layer_table` (mean
    over seeds); rows are labelled with the layer's weight tensor name.
    Delta metrics use a diverging map centred on 0 (red = accuracy lost);
    other metrics a sequential one. ConfigError when the frame has no
    layer-wise cells for ``scheme``.
    """
    from matplotlib.colors import TwoSlopeNorm

    from robustq.sweep import layer_table

    table = layer_table(frame, scheme, fault, metric)
    layer_rows = frame[frame["layer"].notna() & (frame["scheme"] == scheme)]
    names = layer_rows.groupby("layer")["layer_name"].first() if "layer_name" in frame else {}
    values = table.to_numpy(dtype=float)
    height = 1.6 + 0.38 * len(table)
    figure = _figure(2.6 + 0.9 * len(table.columns) + 2.4, height)
    axis = figure.subplots()
    if metric.startswith("delta"):
        extent = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        extent = extent or 1e-6
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-extent, vmax=extent)
        image = axis.imshow(values, cmap="RdBu", norm=norm, aspect="auto")
    else:
        image = axis.imshow(values, cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(table.columns)), [f"{v:g}" for v in table.columns])
    labels = []
    for layer in table.index:
        name = names.get(layer) if hasattr(names, "get") else None
        labels.append(f"{layer}: {_short(name)}" if name else str(layer))
    axis.set_yticks(range(len(table.index)), labels, fontsize="small")
    axis.set_xlabel(str(table.columns.name or "level"))
    axis.set_ylabel("layer")
    if values.size <= 200:
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                shade = (
                    abs(float(image.norm(value)) - 0.5) > 0.3
                    if metric.startswith("delta")
                    else False
                )
                color = "white" if shade else "black"
                axis.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axis, label=METRIC_NAMES.get(metric, metric))
    suffix = f", {fault}" if fault else ""
    axis.set_title(f"{scheme}: per-layer sensitivity{suffix}")
    return figure


def plot_data_noise(frame: pd.DataFrame, saturation: float = 0.3) -> Any:
    """The two-axis view: OA of each configuration under data noise x weight-fault level.

    One heatmap panel per configuration (rows of panels) and fault model
    (columns of panels); in each, one row per data condition and one column
    per fault level, after a first ``no fault`` column (the clean model
    under that data condition). Number: mean OA over seeds
    (:func:`robustq.report.conditions.two_axis_table`). Colour: the OA change
    against the configuration's clean model on the reference data (red =
    accuracy lost, saturating at ``-saturation``; blue = gained), one scale
    for all panels, so small losses of healthy models stay visible next to
    broken ones. InputError when the frame has no whole-model cells.
    """
    import textwrap

    from matplotlib.colors import TwoSlopeNorm

    from robustq.report.conditions import two_axis_table

    table = two_axis_table(frame)
    if table.empty:
        raise InputError("no whole-model cells to plot (only layer-wise ones?)")
    configurations = list(dict.fromkeys(table["configuration"]))
    faults = list(dict.fromkeys(table["fault"]))
    conditions = list(dict.fromkeys(table["data_noise"]))
    if not saturation > 0:
        raise ConfigError(f"saturation must be > 0 (got {saturation!r})")
    # the clean model on the reference data, per configuration: the colour's zero
    base = (table["clean_OA"] - table["dOA_data"]).groupby(table["configuration"]).first()
    gains = table["dOA_total"].to_numpy(float)
    gain = float(np.nanmax(gains)) if np.isfinite(gains).any() else 0.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-saturation, vmax=max(saturation / 6, gain))
    widest = max(len(table.loc[table["fault"] == f, "level"].unique()) for f in faults) + 1
    figure = _figure(
        2.4 + len(faults) * (0.9 + 0.62 * widest),
        1.0 + len(configurations) * (0.9 + 0.42 * len(conditions)),
    )
    axes = figure.subplots(len(configurations), len(faults), squeeze=False)
    names = ["\n".join(textwrap.wrap(str(c), 22)) for c in conditions]
    image = None
    for i, configuration in enumerate(configurations):
        for j, fault in enumerate(faults):
            axis = axes[i, j]
            part = table[(table["configuration"] == configuration) & (table["fault"] == fault)]
            levels = sorted(part["level"].astype(float).unique())
            grid = np.full((len(conditions), len(levels) + 1), np.nan)
            for r, condition in enumerate(conditions):
                own = part[part["data_noise"] == condition]
                if own.empty:
                    continue
                grid[r, 0] = float(own["clean_OA"].iloc[0])
                for _, row in own.iterrows():
                    grid[r, 1 + levels.index(float(row["level"]))] = float(row["OA"])
            change = np.clip(grid - float(base.get(configuration, np.nan)), -saturation, None)
            image = axis.imshow(change, cmap="RdBu", norm=norm, aspect="auto")
            for (r, c), value in np.ndenumerate(grid):
                if np.isfinite(value):
                    dark = np.isfinite(change[r, c]) and change[r, c] < -0.6 * saturation
                    color = "white" if dark else "black"
                    axis.text(
                        c, r, f"{value:.3f}", ha="center", va="center", fontsize=7, color=color
                    )
            axis.set_xticks(
                range(len(levels) + 1), ["no fault", *(f"{v:g}" for v in levels)], fontsize=7
            )
            axis.set_yticks(range(len(conditions)), names if j == 0 else [], fontsize=7)
            parameter = str(part["parameter"].iloc[0]) if not part.empty else "level"
            axis.set_xlabel(parameter, fontsize="small")
            axis.set_title(f"{configuration}: {fault}", fontsize="small")
    if image is not None:
        figure.colorbar(
            image, ax=axes.ravel().tolist(), label="OA change vs clean model on clean data"
        )
    figure.suptitle(
        "OA (numbers) under data noise (rows) x weight-fault level (columns)", fontsize="medium"
    )
    return figure


def _short(name: Any, width: int = 36) -> str:
    text = str(name)
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def plot_confusion_matrices(
    matrices: Mapping[str, np.ndarray],
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
) -> Any:
    """Confusion matrices side by side (rows true class, columns predicted), one per title.

    With ``normalize`` the colour is each row's share (per-class recall on
    the diagonal) and small matrices are annotated with the counts.
    """
    if not matrices:
        raise ConfigError("no confusion matrix to plot")
    count = len(matrices)
    size = len(next(iter(matrices.values())))
    names = list(class_names) if class_names is not None else [str(k) for k in range(size)]
    side = 2.4 + 0.32 * size
    figure = _figure(side * count + 1.0, side)
    axes = figure.subplots(1, count, squeeze=False).ravel()
    image = None
    for axis, (title, matrix) in zip(axes, matrices.items(), strict=True):
        counts = np.asarray(matrix, dtype=float)
        shown = counts
        if normalize:
            totals = counts.sum(axis=1, keepdims=True)
            shown = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        image = axis.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        axis.set_xticks(range(size), names, rotation=90, fontsize="small")
        axis.set_yticks(range(size), names, fontsize="small")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(title, fontsize="medium")
        if size <= 12:
            for (i, j), value in np.ndenumerate(counts):
                if value:
                    dark = shown[i, j] > 0.6
                    axis.text(
                        j,
                        i,
                        f"{int(value)}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if dark else "black",
                    )
    if image is not None:
        figure.colorbar(image, ax=list(axes), shrink=0.8, label="share of true class")
    return figure


def class_map(shape: tuple[int, int], positions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """An ``H x W`` float map with ``labels`` at the flat pixel ``positions`` and NaN elsewhere."""
    height, width = int(shape[0]), int(shape[1])
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.asarray(labels)
    if positions.shape != labels.shape:
        raise InputError(
            f"positions and labels differ in shape ({positions.shape} vs {labels.shape})"
        )
    if positions.size and (positions.min() < 0 or positions.max() >= height * width):
        raise InputError(f"pixel positions fall outside the {height} x {width} scene")
    flat = np.full(height * width, np.nan)
    flat[positions] = labels
    return flat.reshape(height, width)


def plot_classification_maps(
    splits: Any,
    clean_labels: np.ndarray,
    perturbed_labels: np.ndarray,
    perturbed_title: str = "perturbed prediction",
    class_names: Sequence[str] | None = None,
) -> Any:
    """Four maps of the test pixels of a scene: ground truth, clean, perturbed, flipped pixels.

    ``splits`` must come from a cube (``splits.shape`` and
    ``splits.positions`` set; ConfigError otherwise); the labels are
    predictions for ``splits.x_test`` in order, so each pixel is drawn at
    ``splits.positions[splits.idx_test]``. Pixels outside the test set stay
    blank; the fourth panel marks test pixels whose prediction flipped
    (black) against those that kept it (light grey).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    if splits.shape is None or splits.positions is None:
        raise ConfigError("classification maps need splits from a cube (shape and positions)")
    clean_labels = np.asarray(clean_labels)
    perturbed_labels = np.asarray(perturbed_labels)
    n_test = len(splits.y_test)
    if clean_labels.shape != (n_test,) or perturbed_labels.shape != (n_test,):
        raise InputError(f"predictions must have one label per test sample ({n_test})")
    where = np.asarray(splits.positions)[np.asarray(splits.idx_test)]
    k = int(splits.n_classes)
    palette = _colors(k)
    cmap = ListedColormap(palette[:k]).with_extremes(bad="white")
    norm = BoundaryNorm(np.arange(-0.5, k + 0.5), k)
    flipped = (clean_labels != perturbed_labels).astype(float)
    panels = [
        ("ground truth (test pixels)", class_map(splits.shape, where, splits.y_test), True),
        ("clean prediction", class_map(splits.shape, where, clean_labels), True),
        (perturbed_title, class_map(splits.shape, where, perturbed_labels), True),
        (
            f"flipped pixels ({int(flipped.sum())} of {n_test}, {100 * flipped.mean():.1f}%)",
            class_map(splits.shape, where, flipped),
            False,
        ),
    ]
    height, width = splits.shape
    panel_width = 3.4
    panel_height = max(1.6, min(6.0, panel_width * height / max(width, 1)))
    figure = _figure(4 * panel_width + 1.8, panel_height + 0.9)
    axes = figure.subplots(1, 4).ravel()
    flip_cmap = ListedColormap([_KEPT, _FLIPPED]).with_extremes(bad="white")
    for axis, (title, image, categorical) in zip(axes, panels, strict=True):
        if categorical:
            axis.imshow(image, cmap=cmap, norm=norm, interpolation="nearest")
        else:
            axis.imshow(image, cmap=flip_cmap, vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize="small")
        axis.set_xticks([])
        axis.set_yticks([])
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    handles = [Patch(color=palette[c], label=names[c]) for c in range(k)]
    handles += [Patch(color=_FLIPPED, label="flipped"), Patch(color=_KEPT, label="kept")]
    figure.legend(handles=handles, loc="outside right upper", fontsize="x-small")
    return figure


def plot_training(history: pd.DataFrame | str | Path) -> Any:
    """The training curve (loss and accuracy per epoch) of ``training_metrics.csv``.

    Plots those of ``loss``, ``val_loss``, ``accuracy`` and ``val_accuracy``
    (or the seed's ``acc``/``val_acc``) the history has, with
    :func:`robustq.plots.plot_training_curve`; the figure is detached from
    pyplot so it does not accumulate there. InputError when none is present.
    """
    import matplotlib.pyplot as plt

    from robustq.plots import _frame, plot_training_curve

    frame = _frame(history, "training history")
    frame = frame.rename(columns={"acc": "accuracy", "val_acc": "val_accuracy"})
    wanted = [m for m in ("loss", "val_loss", "accuracy", "val_accuracy") if m in frame.columns]
    if not wanted:
        raise InputError(
            f"training history has no loss or accuracy column (it has {', '.join(frame.columns)})"
        )
    figure = plot_training_curve(frame, wanted)
    plt.close(figure)
    return figure
