"""The verdict: how much of each fault every scheme tolerates, and which variant to fly.

A pure function of a sweep's results frame (:func:`robustq.sweep.load_results`):
for each configuration (scheme, and the ensemble setting when the run has
several) and fault model, :func:`verdict` finds the largest fault level up to
which the mean overall accuracy (OA) across seeds stays within ``tolerance``
of the scheme's clean OA; given a required level per fault it then picks the
smallest configuration (deployed bytes) that tolerates every required level,
and says so plainly when none does. No model is run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from robustq.errors import ConfigError, InputError

__all__ = [
    "DEFAULT_TOLERANCE",
    "Decision",
    "FaultVerdict",
    "Verdict",
    "configuration_label",
    "fault_label",
    "label_rows",
    "parse_required",
    "reference_condition",
    "reference_rows",
    "select_condition",
    "setting_label",
    "verdict",
    "whole_model_rows",
]

DEFAULT_TOLERANCE = 0.01
"""Default allowed OA loss against the clean model: 0.01 = one percentage point."""

# a mean OA equal to clean - tolerance up to float rounding still counts as within
_EPSILON = 1e-12
_SETTING_COLUMNS = ("copies", "voting", "include_clean", "classifier_params")
_FAULT_COLUMNS = ("fault", "parameter", "fault_params")


@dataclass(frozen=True)
class FaultVerdict:
    """One configuration under one fault model: how far its OA stays within tolerance.

    ``tolerated_level`` is the largest tested level such that the mean OA at
    it *and at every weaker tested level* is at least ``clean_accuracy -
    tolerance`` (None when even the weakest level fails);
    ``first_failing_level`` the weakest level that breaks the tolerance
    (None when none does). ``required`` and ``meets_required`` are None when
    no level was required for this fault. ``size_bytes`` is the deployed
    size: the variant's file size times the models the configuration runs.
    """

    configuration: str
    scheme: str
    setting: str
    fault: str
    fault_name: str
    parameter: str
    clean_accuracy: float
    levels: tuple[float, ...]
    mean_accuracy: tuple[float, ...]
    tolerated_level: float | None
    first_failing_level: float | None
    accuracy_at_tolerated: float | None
    required: float | None = None
    meets_required: bool | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class Decision:
    """Which configuration to fly for one requirement (one fault, or all of them together).

    ``fault`` is a fault label, or None for the combined requirement;
    ``candidates`` are the configurations meeting it, smallest first;
    ``chosen`` the first of them (None when none meets it); ``message`` says
    it in one plain sentence.
    """

    fault: str | None
    required: Mapping[str, float]
    candidates: tuple[str, ...]
    chosen: str | None
    message: str


@dataclass(frozen=True)
class Verdict:
    """The verdict of a run: one :class:`FaultVerdict` per configuration and fault, and decisions.

    ``decisions`` is empty when no level was required; otherwise it holds
    one :class:`Decision` per required fault and, last when there are
    several, the combined one (every required level at once); the last
    decision is :attr:`overall` and its message :attr:`summary`.
    """

    tolerance: float
    required: Mapping[str, float]
    rows: tuple[FaultVerdict, ...]
    decisions: tuple[Decision, ...] = field(default=())

    @property
    def overall(self) -> Decision | None:
        """The combined decision (every required level at once), or None without requirements."""
        return self.decisions[-1] if self.decisions else None

    @property
    def summary(self) -> str:
        """One plain sentence: the chosen configuration, or that none meets the requirement."""
        if self.overall is None:
            return (
                "No required fault level was given: the table lists the level each "
                f"configuration tolerates within {100 * self.tolerance:g} OA points."
            )
        return self.overall.message

    def table(self) -> pd.DataFrame:
        """The verdict as a DataFrame, one row per configuration and fault (for CSV or display)."""
        columns = [
            "configuration",
            "fault",
            "parameter",
            "size_bytes",
            "clean_accuracy",
            "tolerated_level",
            "accuracy_at_tolerated",
            "first_failing_level",
            "required",
            "meets_required",
        ]
        return pd.DataFrame(
            [{name: getattr(row, name) for name in columns} for row in self.rows], columns=columns
        )


def _format_level(value: float) -> str:
    return f"{value:g}"


def parse_required(text: str | Mapping[str, Any] | None) -> dict[str, float]:
    """Parse required fault levels: ``"gaussian=0.1,bitflip=1e-4"`` or a mapping, into a dict.

    Keys are fault names (or fault labels as the report prints them); values
    must be finite numbers >= 0. None or an empty string gives an empty
    dict. A malformed entry is a ConfigError naming it.
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ConfigError(
                    f"required level {part!r}: expected FAULT=LEVEL, e.g. gaussian=0.1"
                )
            items.append((name.strip(), value.strip()))
    required: dict[str, float] = {}
    for name, value in items:
        try:
            level = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"required level for {name!r}: {value!r} is not a number") from None
        if isinstance(value, bool) or not math.isfinite(level) or level < 0:
            raise ConfigError(f"required level for {name!r} must be a finite number >= 0")
        required[str(name)] = level
    return required


NO_DATA_NOISE = "none"  # robustq.sweep.NO_DATA_NOISE, repeated so the report needs no sweep import


def reference_condition(frame: pd.DataFrame) -> str | None:
    """The data condition the verdict is computed on: clean data when the run has it.

    Returns ``"none"`` (the test data as stored) when any row has it, else
    the first acquisition-noise condition in grid order, and None for a
    frame without a ``data_noise_label`` column (a run without the axis).
    """
    if "data_noise_label" not in frame.columns or frame.empty:
        return None
    labels = list(dict.fromkeys(frame["data_noise_label"].fillna(NO_DATA_NOISE)))
    return NO_DATA_NOISE if NO_DATA_NOISE in labels else labels[0]


def select_condition(frame: pd.DataFrame, condition: str | int | None) -> pd.DataFrame:
    """The rows of one data condition: a ``data_noise_label``, ``"none"``, or its index.

    ``condition`` None returns ``frame`` unchanged. An index (an int, or a
    string of digits) counts the run's conditions in grid order from 0. An
    unknown label or index is a ConfigError listing the run's conditions.
    """
    if condition is None:
        return frame
    labels = ["none"]
    if "data_noise_label" in frame.columns:
        labels = list(dict.fromkeys(frame["data_noise_label"].fillna(NO_DATA_NOISE)))
    text = str(condition).strip()
    if text.isdigit() and not isinstance(condition, bool):
        if int(text) >= len(labels):
            raise ConfigError(
                f"data condition {text}: the run has {len(labels)} ({'; '.join(labels)})"
            )
        text = labels[int(text)]
    if text not in labels:
        raise ConfigError(f"unknown data condition {text!r}; the run has: {'; '.join(labels)}")
    if "data_noise_label" not in frame.columns:
        return frame
    return frame[frame["data_noise_label"].fillna(NO_DATA_NOISE) == text]


def reference_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows evaluated on the reference data condition (:func:`reference_condition`).

    The verdict, the baseline, the degradation curves and the per-layer
    tables compare weight faults on this one data condition; the data-noise
    view shows every condition.
    """
    reference = reference_condition(frame)
    if reference is None:
        return frame
    return frame[frame["data_noise_label"].fillna(NO_DATA_NOISE) == reference]


def whole_model_rows(frame: pd.DataFrame, all_conditions: bool = False) -> pd.DataFrame:
    """The rows of cells that perturb the whole model, on the reference data condition.

    Layer-wise cells are dropped; so are cells under other data conditions
    than :func:`reference_condition` (the acquisition-noise axis) unless
    ``all_conditions``.
    """
    if "layer" in frame.columns:
        frame = frame[frame["layer"].isna()]
    return frame if all_conditions else reference_rows(frame)


def _members(copies: int, include_clean: bool) -> int:
    return 1 if copies <= 0 else int(copies) + int(bool(include_clean))


def configuration_label(row: Mapping[str, Any], several_settings: bool = True) -> str:
    """A configuration's name: the scheme, plus its ensemble setting when the run has several.

    ``int8`` for one perturbed model; ``int8 x3 hard`` for an ensemble of 3
    perturbed copies (``+clean`` when the clean model votes too).
    """
    scheme = str(row["scheme"])
    if not several_settings:
        return scheme
    return f"{scheme} {setting_label(row)}"


def setting_label(row: Mapping[str, Any]) -> str:
    """The ensemble setting of a row: ``single`` or ``x<copies> <voting>[ +clean]``."""
    copies = int(row.get("copies", 0) or 0)
    if copies <= 0:
        return "single"
    label = f"x{copies} {row.get('voting', 'hard')}"
    if bool(row.get("include_clean", False)):
        label += " +clean"
    return label


def fault_label(row: Mapping[str, Any], several: bool = False) -> str:
    """A fault model's name: the fault, plus its fixed parameters when one fault appears twice."""
    name = str(row["fault"])
    if not several:
        return name
    params = row.get("fault_params") or "{}"
    try:
        fixed = json.loads(params) if isinstance(params, str) else dict(params)
    except (json.JSONDecodeError, TypeError):
        return f"{name} {params}"
    text = ", ".join(f"{k}={v}" for k, v in sorted(fixed.items()))
    return f"{name} ({text})" if text else name


def label_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``configuration``, ``setting`` and ``fault_label`` columns to a whole-model frame."""
    frame = frame.copy()
    setting_cols = [c for c in _SETTING_COLUMNS if c in frame.columns]
    several_settings = bool(setting_cols) and len(frame[setting_cols].drop_duplicates()) > 1
    records = frame.to_dict("records")
    frame["setting"] = [setting_label(r) for r in records]
    frame["configuration"] = [configuration_label(r, several_settings) for r in records]
    fault_cols = [c for c in _FAULT_COLUMNS if c in frame.columns]
    variants = frame[fault_cols].drop_duplicates()
    repeated = set(variants["fault"][variants["fault"].duplicated()])
    frame["fault_label"] = [fault_label(r, r["fault"] in repeated) for r in records]
    return frame


def _clean_accuracy(group: pd.DataFrame, scheme_rows: pd.DataFrame) -> float:
    if "clean_accuracy" in scheme_rows.columns and scheme_rows["clean_accuracy"].notna().any():
        return float(scheme_rows["clean_accuracy"].mean())
    at_zero = group[group["level"] == 0]
    if at_zero.empty:
        # a zero-strength fault of any model is the clean model
        same = scheme_rows[scheme_rows["configuration"] == group["configuration"].iloc[0]]
        at_zero = same[same["level"] == 0]
    if at_zero.empty:
        scheme = group["scheme"].iloc[0]
        raise InputError(
            f"no clean baseline for {scheme}: the results have neither a clean_accuracy "
            "column nor level-0 cells"
        )
    return float(at_zero["accuracy_score"].mean())


def _size(row: Mapping[str, Any], sizes: Mapping[str, int] | None) -> int | None:
    scheme = str(row["scheme"])
    if sizes is None or scheme not in sizes or sizes[scheme] is None:
        return None
    members = int(row.get("members") or 0) or _members(
        int(row.get("copies", 0) or 0), bool(row.get("include_clean", False))
    )
    return int(sizes[scheme]) * members


def _order_key(row: FaultVerdict, scheme_order: Sequence[str]) -> tuple[Any, ...]:
    size = row.size_bytes if row.size_bytes is not None else math.inf
    rank = scheme_order.index(row.scheme) if row.scheme in scheme_order else len(scheme_order)
    return (size, rank, row.configuration)


def _resolve_required(
    required: Mapping[str, float], rows: Sequence[FaultVerdict]
) -> dict[str, tuple[str, ...]]:
    """Map each required key (a fault name or label) to the fault labels it applies to."""
    labels = list(dict.fromkeys(r.fault for r in rows))
    names = {r.fault: r.fault_name for r in rows}
    resolved: dict[str, tuple[str, ...]] = {}
    for key in required:
        matched = tuple(label for label in labels if label == key) or tuple(
            label for label in labels if names[label] == key
        )
        if not matched:
            raise ConfigError(
                f"required level for {key!r}: the run has no such fault "
                f"(faults: {', '.join(labels) or 'none'})"
            )
        resolved[key] = matched
    return resolved


def verdict(
    frame: pd.DataFrame,
    tolerance: float = DEFAULT_TOLERANCE,
    required: Mapping[str, float] | str | None = None,
    sizes: Mapping[str, int] | None = None,
) -> Verdict:
    """Compute the verdict table of a results frame; pure (no files, no models).

    ``frame`` has one row per cell and seed with at least ``scheme``,
    ``fault``, ``level`` and ``accuracy_score`` (a :func:`load_results`
    frame; layer-wise cells are ignored). The clean OA of a scheme is the
    mean of its ``clean_accuracy`` column when present, else the mean OA of
    its level-0 cells. For each configuration and fault the mean OA across
    seeds is taken per level, and the tolerated level is the largest level
    up to which every tested level stays within ``tolerance`` (0.01 = one
    OA point) of the clean OA. ``required`` maps fault names (or labels) to
    the level that must be tolerated (a mapping or ``"gaussian=0.1,..."``);
    a configuration meets a requirement when its tolerated level is at
    least the required one. ``sizes`` maps schemes to file sizes in bytes;
    the chosen configuration is the smallest meeting every requirement
    (deployed bytes = file size x models in the ensemble; ties by scheme
    order). ConfigError for a bad tolerance or an unknown required fault.
    """
    from robustq.convert import SCHEMES

    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise ConfigError(f"tolerance must be a number (got {tolerance!r})")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"tolerance must be a finite number >= 0 (got {tolerance!r})")
    wanted = parse_required(required)
    missing = [c for c in ("scheme", "fault", "level", "accuracy_score") if c not in frame.columns]
    if missing:
        raise InputError(f"results frame lacks column(s) {', '.join(missing)}")
    rows_frame = whole_model_rows(frame)
    if rows_frame.empty:
        return Verdict(tolerance=float(tolerance), required=wanted, rows=())
    labelled = label_rows(rows_frame)
    group_cols = ["configuration", "fault_label"]
    results: list[FaultVerdict] = []
    for (configuration, label), group in labelled.groupby(group_cols, sort=False):
        first = group.iloc[0].to_dict()
        scheme_rows = labelled[labelled["scheme"] == first["scheme"]]
        clean = _clean_accuracy(group, scheme_rows)
        means = group.groupby("level")["accuracy_score"].mean().sort_index()
        tolerated: float | None = None
        at_tolerated: float | None = None
        failing: float | None = None
        for level, mean in means.items():
            if clean - float(mean) <= tolerance + _EPSILON:
                tolerated, at_tolerated = float(level), float(mean)
            else:
                failing = float(level)
                break
        results.append(
            FaultVerdict(
                configuration=str(configuration),
                scheme=str(first["scheme"]),
                setting=str(first["setting"]),
                fault=str(label),
                fault_name=str(first["fault"]),
                parameter=str(first.get("parameter", "level")),
                clean_accuracy=clean,
                levels=tuple(float(v) for v in means.index),
                mean_accuracy=tuple(float(v) for v in means.to_numpy()),
                tolerated_level=tolerated,
                first_failing_level=failing,
                accuracy_at_tolerated=at_tolerated,
                size_bytes=_size(first, sizes),
            )
        )
    if not wanted:
        return Verdict(tolerance=float(tolerance), required=wanted, rows=tuple(results))
    applies = _resolve_required(wanted, results)
    level_of: dict[str, float] = {}
    for key, labels in applies.items():
        for label in labels:
            level_of[label] = wanted[key]
    final: list[FaultVerdict] = []
    for row in results:
        need = level_of.get(row.fault)
        meets = None
        if need is not None:
            meets = row.tolerated_level is not None and row.tolerated_level >= need - _EPSILON
        final.append(replace(row, required=need, meets_required=meets))
    configurations = sorted(
        {r.configuration: r for r in final}.values(), key=lambda r: _order_key(r, SCHEMES)
    )
    decisions = [
        _decide(final, configurations, {label: lvl}, tolerance) for label, lvl in level_of.items()
    ]
    if len(level_of) > 1:
        decisions.append(_decide(final, configurations, level_of, tolerance, combined=True))
    return Verdict(
        tolerance=float(tolerance),
        required=wanted,
        rows=tuple(final),
        decisions=tuple(decisions),
    )


def _decide(
    rows: Sequence[FaultVerdict],
    configurations: Sequence[FaultVerdict],
    levels: Mapping[str, float],
    tolerance: float,
    combined: bool = False,
) -> Decision:
    """The configurations meeting every level in ``levels`` (smallest first) and a sentence."""
    by_key = {(r.configuration, r.fault): r for r in rows}
    candidates = []
    for config in configurations:
        found = [by_key.get((config.configuration, label)) for label in levels]
        if all(r is not None and r.meets_required for r in found):
            candidates.append(config)
    wanted = ", ".join(f"{label} at {_format_level(lvl)}" for label, lvl in levels.items())
    within = f"within {100 * tolerance:g} OA point(s) of its clean OA"
    if candidates:
        best = candidates[0]
        size = f" ({best.size_bytes:,} bytes)" if best.size_bytes is not None else ""
        others = len(candidates) - 1
        also = f"; {others} other configuration(s) also meet it" if others else ""
        message = (
            f"Fly {best.configuration}{size}: the smallest configuration whose OA stays "
            f"{within} under {wanted}{also}."
        )
    else:
        message = (
            f"No configuration meets the requirement: none keeps its OA {within} under {wanted}."
        )
    return Decision(
        fault=None if combined else next(iter(levels)),
        required=dict(levels),
        candidates=tuple(c.configuration for c in candidates),
        chosen=candidates[0].configuration if candidates else None,
        message=message,
    )
