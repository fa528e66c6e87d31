"""Reading a sweep back: the rows as a DataFrame, aggregates over seeds, exports, layer tables.

Nothing here runs a model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from robustq.errors import ConfigError
from robustq.fileio import atomic_write, write_csv
from robustq.sweep.store import ResultsStore

VOLATILE_COLUMNS: tuple[str, ...] = (
    "seconds",
    "cpu_seconds",
    "inference_time",
    "worker",
    "finished_at",
)
"""Row columns that differ between two runs of the same cell (timings, where and when).

``seconds`` is the cell's wall time in its process and ``cpu_seconds`` the
CPU time that process spent on it: much less CPU than wall time means the
cell waited for a core (other processes on the machine).
"""

# Columns identifying a cell; aggregate() groups by them without the per-seed ones.
_SEED_COLUMNS = ("key", "repeat", "seed", "data_noise_seed")
_GROUP_COLUMNS = (
    "scheme",
    "data_noise",
    "data_noise_label",
    "fault",
    "parameter",
    "level",
    "fault_params",
    "copies",
    "voting",
    "include_clean",
    "classifier_params",
    "members",
    "layer",
    "layer_name",
    "targets",
    "kernels",
    "test_limit",
    "variant_sha256",
    "splits_sha256",
)
_TEXT_COLUMNS = ("changed_unit", "worker", "finished_at")


# --------------------------------------------------------------------------- reading results
def _store(source: ResultsStore | str | os.PathLike[str]) -> tuple[ResultsStore, bool]:
    if isinstance(source, ResultsStore):
        return source, False
    return ResultsStore(source), True


def load_results(run_dir: str | os.PathLike[str] | ResultsStore) -> pd.DataFrame:
    """Every finished cell's row of a run folder as a tidy DataFrame, in grid order.

    One row per cell (per seed); the columns are those of :func:`run_cell`
    plus ``finished_at``. InputError if the folder holds no results.
    """
    store, owned = _store(run_dir)
    try:
        return store.frame()
    finally:
        if owned:
            store.close()


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    skip = set(_SEED_COLUMNS) | set(_GROUP_COLUMNS) | set(_TEXT_COLUMNS)
    return [
        c
        for c in frame.columns
        if c not in skip
        and not c.startswith("version_")
        and not c.startswith("tensors_")
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min and max of every metric across the seeds (repeats) of each cell.

    Groups rows by the cell columns without ``key``, ``repeat`` and
    ``seed``; writes ``<metric>_mean``, ``_std`` (sample std, ddof 1: NaN
    for one seed), ``_min`` and ``_max`` and ``n_seeds`` — the original
    research code's ``report.csv``. Groups keep grid order.
    """
    if frame.empty:
        return pd.DataFrame()
    keys = [c for c in _GROUP_COLUMNS if c in frame.columns]
    metrics = _metric_columns(frame)
    grouped = frame.groupby(keys, dropna=False, sort=False)
    stats = grouped[metrics].agg(["mean", "std", "min", "max"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats.insert(0, "n_seeds", grouped.size())
    return stats.reset_index()


def export(
    run_dir: str | os.PathLike[str],
    csv: str | os.PathLike[str] | None = None,
    parquet: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write a run's rows to ``csv`` and/or ``parquet`` and its aggregate to ``report`` (CSV).

    Each file is written atomically; returns the paths written. InputError
    if the folder holds no results.
    """
    frame = load_results(run_dir)
    written = []
    if csv is not None:
        written.append(write_csv(csv, frame))
    if parquet is not None:
        written.append(
            atomic_write(parquet, lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"))
        )
    if report is not None:
        written.append(write_csv(report, aggregate(frame)))
    return written


_REPORT_COLUMNS = {
    "accuracy_score_mean": "OA",
    "accuracy_score_std": "OA_std",
    "delta_accuracy_mean": "dOA",
    "delta_kappa_mean": "dkappa",
    "flip_rate_mean": "flip",
    "n_seeds": "seeds",
}


def format_report(table: pd.DataFrame) -> str:
    """A compact text view of an :func:`aggregate` table (the ``robustq results`` printout).

    One line per cell: scheme, fault, parameter, level (data noise, layer and
    ensemble when they vary), seeds, mean OA and its std, mean delta OA and kappa,
    mean flip rate.
    """
    if table.empty:
        return "(no finished cells)"
    keys = ["scheme", "fault", "parameter", "level"]
    if "data_noise_label" in table and table["data_noise_label"].nunique(dropna=True) > 1:
        keys.insert(1, "data_noise_label")
    for optional in ("layer", "copies", "voting"):
        if optional in table and table[optional].nunique(dropna=True) > 1:
            keys.append(optional)
    columns = keys + [c for c in _REPORT_COLUMNS if c in table]
    view = table[columns].rename(columns=_REPORT_COLUMNS)
    view["level"] = [f"{level:g}" for level in view["level"]]  # 1e-06, not 0.0000
    return view.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _layer_rows(
    source: ResultsStore | str | os.PathLike[str] | pd.DataFrame,
    scheme: str,
    fault: str | None,
) -> pd.DataFrame:
    frame = source if isinstance(source, pd.DataFrame) else load_results(source)
    if frame.empty or "layer" not in frame or frame["layer"].isna().all():
        raise ConfigError("no layer-wise cells in these results (run the sweep with layerwise)")
    rows = frame[frame["layer"].notna() & (frame["scheme"] == scheme)]
    if rows.empty:
        have = ", ".join(sorted(frame.loc[frame["layer"].notna(), "scheme"].unique()))
        raise ConfigError(f"no layer-wise cells for scheme {scheme!r} (have: {have})")
    if fault is not None:
        rows = rows[rows["fault"] == fault]
        if rows.empty:
            raise ConfigError(f"no layer-wise cells for fault {fault!r} on {scheme}")
    variants = rows[["fault", "parameter", "fault_params", "copies", "voting"]].drop_duplicates()
    if len(variants) > 1:
        raise ConfigError(
            "the layer-wise cells mix several faults or ensemble settings; pass fault "
            "(or filter the frame) to pick one"
        )
    return rows


def layer_table(
    source: ResultsStore | str | os.PathLike[str] | pd.DataFrame,
    scheme: str,
    fault: str | None = None,
    metric: str = "delta_accuracy",
) -> pd.DataFrame:
    """Layers x levels table of one scheme's layer-wise cells (mean of ``metric`` over seeds).

    ``source`` is a run folder, a :class:`ResultsStore` or a results frame.
    The index is the layer number, the columns the fault levels (ascending).
    ConfigError when there are no layer-wise cells for ``scheme``, or they
    mix faults (pass ``fault``).
    """
    rows = _layer_rows(source, scheme, fault)
    if metric not in rows:
        raise ConfigError(f"unknown metric {metric!r}")
    table = rows.pivot_table(index="layer", columns="level", values=metric, aggfunc="mean")
    table = table.sort_index().sort_index(axis=1)
    table.columns.name = str(rows["parameter"].iloc[0])
    return table


def layer_ranking(
    source: ResultsStore | str | os.PathLike[str] | pd.DataFrame,
    scheme: str,
    fault: str | None = None,
    metric: str = "delta_accuracy",
) -> pd.DataFrame:
    """Layers of one scheme ranked by degradation, most fragile first.

    Per layer: the mean of ``metric`` over the non-zero levels and seeds
    (``mean``), its value at the strongest level (``strongest``), the
    layer's weight tensor name, and ``rank`` (1 = largest loss, i.e. the
    most negative delta for the ``delta_*`` metrics and the largest value
    for ``flip_rate``/``probability_shift``).
    """
    rows = _layer_rows(source, scheme, fault)
    if metric not in rows:
        raise ConfigError(f"unknown metric {metric!r}")
    nonzero = rows[rows["level"] > 0]
    if nonzero.empty:
        nonzero = rows
    strongest = rows[rows["level"] == rows["level"].max()]
    ranking = pd.DataFrame(
        {
            "layer_name": rows.groupby("layer")["layer_name"].first(),
            "mean": nonzero.groupby("layer")[metric].mean(),
            "strongest": strongest.groupby("layer")[metric].mean(),
        }
    )
    worse_is_higher = metric in ("flip_rate", "probability_shift") or metric.startswith(
        "member_flip"
    )
    ranking = ranking.sort_values("mean", ascending=not worse_is_higher, kind="stable")
    ranking.insert(0, "rank", range(1, len(ranking) + 1))
    ranking.index.name = "layer"
    return ranking
