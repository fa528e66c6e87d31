"""The two-axis view: acquisition noise on the data x weight faults, from a results frame.

A sweep with a ``data_noise`` axis runs every weight-fault cell under every
data condition (the test data as stored, and each acquisition noise). This
module turns its rows into one tidy table, a pure function of the frame:
per configuration, data condition, fault and level, the mean OA over seeds,
and the OA changes that separate the two causes against the clean model on
the reference data (:func:`~robustq.report.verdict.reference_condition`):
what the data noise alone costs, what the weight fault alone costs, what
both together cost, and their interaction (how much worse or better the
combination is than the sum of the two alone). No model is run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustq.errors import InputError
from robustq.report.verdict import (
    NO_DATA_NOISE,
    label_rows,
    reference_condition,
    whole_model_rows,
)

__all__ = ["TWO_AXIS_COLUMNS", "has_data_noise_axis", "two_axis_table"]

TWO_AXIS_COLUMNS: tuple[str, ...] = (
    "configuration",
    "data_noise",
    "fault",
    "parameter",
    "level",
    "seeds",
    "OA",
    "OA_std",
    "clean_OA",
    "dOA_data",
    "dOA_fault",
    "dOA_total",
    "interaction",
)
"""Columns of :func:`two_axis_table`, in order."""

_NEEDED = ("scheme", "fault", "parameter", "level", "accuracy_score", "clean_accuracy")


def has_data_noise_axis(frame: pd.DataFrame) -> bool:
    """True when the run's whole-model cells were evaluated under acquisition noise."""
    if "data_noise_label" not in frame.columns:
        return False
    labels = set(whole_model_rows(frame, all_conditions=True)["data_noise_label"].fillna(""))
    return bool(labels - {NO_DATA_NOISE, ""})


def two_axis_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean OA per configuration x data condition x fault x level, and where the loss comes from.

    ``frame`` is a results frame (:func:`robustq.sweep.load_results`);
    layer-wise cells are left out. Per row: ``seeds`` (repeats), ``OA`` and
    ``OA_std`` (mean and sample std over seeds), ``clean_OA`` (the clean
    model under this data condition, i.e. without weight fault), and, against
    the clean model on the reference data (``R``): ``dOA_data = clean_OA -
    clean_OA(R)`` (the data noise alone), ``dOA_fault = OA(R, same fault and
    level) - clean_OA(R)`` (the weight fault alone), ``dOA_total = OA -
    clean_OA(R)`` (both) and ``interaction = dOA_total - dOA_data -
    dOA_fault`` (negative: the two compound; NaN where a term is missing).
    Rows keep grid order; an empty frame gives an empty table with these
    columns, a frame without the needed columns an InputError naming them.
    """
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise InputError(f"the results frame lacks column(s) {', '.join(missing)}")
    rows = whole_model_rows(frame, all_conditions=True)
    if rows.empty:
        return pd.DataFrame(columns=list(TWO_AXIS_COLUMNS))
    rows = label_rows(rows)
    if "data_noise_label" not in rows.columns:
        rows["data_noise_label"] = NO_DATA_NOISE
    rows["data_noise_label"] = rows["data_noise_label"].fillna(NO_DATA_NOISE)
    reference = reference_condition(rows) or NO_DATA_NOISE
    keys = ["configuration", "data_noise_label", "fault_label", "parameter", "level"]
    table = (
        rows.groupby(keys, sort=False)
        .agg(
            seeds=("accuracy_score", "size"),
            OA=("accuracy_score", "mean"),
            OA_std=("accuracy_score", "std"),
        )
        .reset_index()
    )
    # the clean model under each condition: one value per configuration and condition
    clean = rows.groupby(["configuration", "data_noise_label"], sort=False)["clean_accuracy"].mean()
    table["clean_OA"] = [
        float(clean.loc[(c, d)])
        for c, d in zip(table["configuration"], table["data_noise_label"], strict=True)
    ]
    at_reference = table[table["data_noise_label"] == reference]
    clean_reference = at_reference.groupby("configuration")["clean_OA"].first()
    fault_alone = at_reference.set_index(["configuration", "fault_label", "parameter", "level"])[
        "OA"
    ]
    base = table["configuration"].map(clean_reference).astype(float)
    alone = [
        float(fault_alone.get((c, f, p, lv), np.nan))
        for c, f, p, lv in zip(
            table["configuration"],
            table["fault_label"],
            table["parameter"],
            table["level"],
            strict=True,
        )
    ]
    table["dOA_data"] = table["clean_OA"] - base
    table["dOA_fault"] = np.asarray(alone) - base
    table["dOA_total"] = table["OA"] - base
    table["interaction"] = table["dOA_total"] - table["dOA_data"] - table["dOA_fault"]
    table = table.rename(columns={"data_noise_label": "data_noise", "fault_label": "fault"})
    return table[list(TWO_AXIS_COLUMNS)]
