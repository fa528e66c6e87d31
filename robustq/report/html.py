"""The robustness report of a sweep run: one self-contained HTML page plus a Markdown summary.

:func:`build_report` reads a run folder's results store (never re-running
the sweep), finds the run's artefacts through the stored spec, and writes
``report.html`` (every figure a base64 PNG data URI, CSS inline, no script,
no external resource) and ``report.md`` (identity, baseline table,
verdict). Sections appear only when their data exists:

======================  =========================================================
section                 needs
======================  =========================================================
``identity``            always (the results store and its spec)
``verdict``             whole-model cells (not only layer-wise ones)
``baseline``            the cells' clean scores; sizes from the variants manifest
``degradation``         whole-model cells
``layers``              layer-wise cells (``layerwise: true``)
``confusion``           the variants and splits files, unchanged since the sweep
``maps``                the same, and splits from a cube (``splits.shape`` set)
``edge``                ``RUN_DIR/edge/<name>/`` folders written by ``robustq edge``
``training``            a ``training_metrics.csv`` (see below)
======================  =========================================================

Artefact lookup. The stored spec names the variants folder and the splits
file; an absolute path is used as is, a relative one is tried against the
current folder and then the run folder. ``training_metrics.csv`` (and the
Keras model, ``*.keras``/``*.h5``, named in the identity section) is looked
for, first match wins, in: the run folder, the variants folder's parent (the
layout ``robustq demo`` writes: ``runs/demo/{training_metrics.csv,variants/}``),
the variants folder itself, and the splits file's folder. What is missing is
listed under "notes" in the identity section instead of failing the report.

The confusion matrices and maps need one extra evaluation: the cell of the
"shown setting" (by default the recommended configuration at the first
required level, else the first scheme at its first failing level) is
re-evaluated exactly as the sweep did (clean model + its perturbed
member(s), same seed), which also checks that the stored row reproduces.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustq.errors import ConfigError, InputError, RobustqError
from robustq.fileio import write_text
from robustq.report import figures
from robustq.report.conditions import has_data_noise_axis, two_axis_table
from robustq.report.verdict import (
    DEFAULT_TOLERANCE,
    NO_DATA_NOISE,
    Verdict,
    label_rows,
    parse_required,
    reference_condition,
    select_condition,
    verdict,
    whole_model_rows,
)

__all__ = [
    "REPORT_FILE",
    "SECTIONS",
    "ReportResult",
    "RunArtefacts",
    "build_report",
    "locate_artefacts",
]

REPORT_FILE = "report.html"
"""The report's default file name inside the run folder."""

SECTIONS: tuple[str, ...] = (
    "identity",
    "verdict",
    "baseline",
    "degradation",
    "datanoise",
    "layers",
    "confusion",
    "maps",
    "edge",
    "training",
)
"""Every section the report can hold, in page order."""

EDGE_FOLDER = "edge"
"""Sub-folder of the run folder holding ``robustq edge --out RUN_DIR/edge/<name>`` outputs."""

TRAINING_FILE = "training_metrics.csv"


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote: the HTML and Markdown paths and the sections present."""

    html_path: Path
    md_path: Path
    sections: list[str]
    verdict: Verdict | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunArtefacts:
    """A run folder's results and the files its spec points to (None where not found).

    ``sample`` is the test sample the cells were evaluated on (the splits'
    test set cut to the spec's ``test_limit``); ``blobs`` maps scheme to
    variant bytes for the variants whose hash matches the cells';
    ``notes`` lists what was missing or changed.
    """

    run_dir: Path
    frame: pd.DataFrame
    spec: Mapping[str, Any]
    meta: Mapping[str, str]
    counts: tuple[int, int]
    variants_dir: Path | None = None
    variants: tuple[Any, ...] = ()
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    splits_path: Path | None = None
    splits: Any = None
    sample: Any = None
    sample_matches: bool = False
    training_csv: Path | None = None
    model_path: Path | None = None
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- reading a run
def _open_results(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any], dict[str, str], Any]:
    """Frame, spec, meta and counts of a run's store; InputError with one clear line otherwise."""
    from robustq.sweep import RESULTS_FILE, ResultsStore

    if not run_dir.exists():
        raise InputError(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir} is a file, not a sweep run folder")
    if not (run_dir / RESULTS_FILE).is_file():
        raise InputError(
            f"{run_dir} holds no sweep results (no {RESULTS_FILE}); run 'robustq sweep' into it"
        )
    try:
        with ResultsStore(run_dir) as store:
            frame = store.frame()
            spec = store.spec() or {}
            meta = store.meta()
            counts = store.counts()
    except (sqlite3.DatabaseError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{run_dir / RESULTS_FILE} is corrupt: {first}") from None
    if frame.empty:
        raise InputError(f"{run_dir} holds no finished cells yet (the sweep has not run)")
    needed = ("scheme", "fault", "level", "accuracy_score")
    if any(c not in frame.columns for c in needed):
        raise InputError(f"{run_dir / RESULTS_FILE} is corrupt: its rows lack sweep columns")
    return frame, spec, meta, counts


def _find_path(text: Any, run_dir: Path) -> Path | None:
    if not isinstance(text, str) or not text:
        return None
    path = Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, run_dir / path]
    return next((c for c in candidates if c.exists()), None)


def _first(folders: Iterable[Path | None], patterns: Sequence[str]) -> Path | None:
    seen: set[Path] = set()
    for folder in folders:
        if folder is None or folder in seen or not folder.is_dir():
            continue
        seen.add(folder)
        for pattern in patterns:
            found = sorted(folder.glob(pattern))
            if found:
                return found[0]
    return None


def locate_artefacts(run_dir: str | os.PathLike[str]) -> RunArtefacts:
    """Read a run folder's results and find the variants, splits and training history.

    The lookup is described in this module's docstring. InputError when
    the folder is missing, has no results store, or the store is corrupt;
    any other missing file becomes a note (the report then leaves out the
    sections that need it).
    """
    from robustq.convert import read_manifest
    from robustq.data import Splits, subsample_test
    from robustq.sweep import splits_fingerprint

    run = Path(run_dir)
    frame, spec, meta, counts = _open_results(run)
    notes: list[str] = []
    variants_dir = _find_path(spec.get("variants"), run)
    variants: tuple[Any, ...] = ()
    blobs: dict[str, bytes] = {}
    if variants_dir is None:
        notes.append(f"variants folder not found: {spec.get('variants')}")
    else:
        try:
            variants = tuple(read_manifest(variants_dir))
        except RobustqError as exc:
            notes.append(str(exc))
        if "variant_sha256" in frame:
            hashes = frame.groupby("scheme")["variant_sha256"].first().to_dict()
        else:  # rows without hashes: trust the files
            hashes = dict.fromkeys(frame["scheme"].unique())
        for variant in variants:
            if variant.scheme not in hashes or variant.scheme in blobs:
                continue
            try:
                blob = variant.read_bytes(variants_dir)
            except OSError as exc:
                notes.append(f"cannot read {variant.path}: {exc}")
                continue
            expected = hashes[variant.scheme]
            if expected and hashlib.sha256(blob).hexdigest() != expected:
                notes.append(f"the {variant.scheme} variant changed since the sweep ran")
                continue
            blobs[variant.scheme] = blob
    splits_path = _find_path(spec.get("splits"), run)
    splits = sample = None
    matches = False
    if splits_path is None:
        notes.append(f"splits file not found: {spec.get('splits')}")
    else:
        try:
            splits = Splits.load(splits_path)
            sample = subsample_test(
                splits, int(spec.get("test_limit", 0) or 0), int(spec.get("seed", 0) or 0)
            )
            stored = set(frame["splits_sha256"].dropna()) if "splits_sha256" in frame else set()
            matches = not stored or stored == {splits_fingerprint(sample)}
            if not matches:
                notes.append("the splits file changed since the sweep ran")
        except RobustqError as exc:
            notes.append(str(exc))
    folders: list[Path | None] = [run]
    if isinstance(spec.get("variants"), str):
        given = Path(spec["variants"]).expanduser()
        folders += [given.parent, variants_dir.parent if variants_dir else None, variants_dir]
    folders.append(splits_path.parent if splits_path else None)
    training_csv = _first(folders, (TRAINING_FILE,))
    model_path = _first(folders, ("*.keras", "*.h5"))
    return RunArtefacts(
        run_dir=run,
        frame=frame,
        spec=spec,
        meta=meta,
        counts=counts,
        variants_dir=variants_dir,
        variants=variants,
        blobs=blobs,
        splits_path=splits_path,
        splits=splits,
        sample=sample,
        sample_matches=matches,
        training_csv=training_csv,
        model_path=model_path,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- small formatting
def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def _level(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):g}"


def _html_table(frame: pd.DataFrame, formats: Mapping[str, Any] | None = None) -> str:
    formats = formats or {}
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            text = formats.get(column, _num)(value)
            cells.append(f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_table(frame: pd.DataFrame, formats: Mapping[str, Any] | None = None) -> str:
    formats = formats or {}
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in frame.columns) + "|")
    for record in frame.itertuples(index=False):
        values = [
            formats.get(column, _num)(value).replace("|", "\\|")
            for column, value in zip(frame.columns, record, strict=True)
        ]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def _image(figure: Any, alt: str) -> str:
    png = figures.figure_png(figure)
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></figure>'


# --------------------------------------------------------------------------- section contents
def _identity(
    art: RunArtefacts, generated: str, everything: pd.DataFrame
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(label, value) pairs of the run's identity and the spec to print.

    ``art.frame`` holds the rows the report's decision sections use (one data
    condition); ``everything`` all rows, for the list of data conditions.
    """
    frame, spec = art.frame, art.spec
    items: list[tuple[str, str]] = [("run folder", str(art.run_dir.resolve()))]
    done, planned = art.counts
    items.append(("cells finished", f"{done} of {planned} planned"))
    if art.meta.get("created_at"):
        items.append(("sweep started", art.meta["created_at"]))
    if "finished_at" in frame and frame["finished_at"].notna().any():
        items.append(("last cell finished", str(frame["finished_at"].max())))
    items.append(("report generated", generated))
    if art.model_path is not None:
        items.append(("model", str(art.model_path)))
    if art.variants_dir is not None:
        items.append(("variants", str(art.variants_dir)))
    converters = sorted({v.converter_version for v in art.variants if v.converter_version})
    if converters:
        items.append(("converter", ", ".join(converters)))
    schemes = list(dict.fromkeys(frame["scheme"]))
    items.append(("schemes", ", ".join(schemes)))
    if art.splits is not None:
        splits = art.splits
        sizes = splits.summary()["sizes"]
        items.append(
            (
                "data set",
                f"{splits.scene_name}: {splits.n_bands} bands, {splits.n_classes} classes"
                + (f", {splits.shape[0]} x {splits.shape[1]} pixels" if splits.shape else ""),
            )
        )
        items.append(
            (
                "splits",
                f"train {sizes['train']:,}, validation {sizes['val']:,}, test {sizes['test']:,} "
                f"(split seed {splits.seed}); file {art.splits_path}",
            )
        )
        if art.sample is not None and len(art.sample.y_test) != sizes["test"]:
            items.append(
                (
                    "evaluated on",
                    f"a class-stratified sample of {len(art.sample.y_test):,} test samples "
                    f"(test_limit {spec.get('test_limit')})",
                )
            )
    faults = []
    for entry in spec.get("faults", []):
        levels = ", ".join(_level(v) for v in entry.get("levels", []))
        params = entry.get("params") or {}
        extra = f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""
        faults.append(f"{entry.get('name')} {entry.get('parameter')} in [{levels}]{extra}")
    if faults:
        items.append(("faults", "; ".join(faults)))
    seeds = sorted(int(s) for s in frame["seed"].dropna().unique()) if "seed" in frame else []
    items.append(
        (
            "seeds",
            f"{spec.get('seeds', len(seeds))} repeat(s) from seed {spec.get('seed', '?')}"
            + (f" (member seeds {', '.join(str(s) for s in seeds)})" if seeds else ""),
        )
    )
    ensembles = spec.get("ensemble") or []
    if ensembles:
        items.append(("ensemble", "; ".join(_setting_text(e) for e in ensembles)))
    if spec.get("layerwise"):
        items.append(("layer-wise", "yes: one cell per layer"))
    conditions = []
    if "data_noise_label" in everything:
        conditions = list(dict.fromkeys(everything["data_noise_label"]))
    if len(conditions) > 1 or any(c != NO_DATA_NOISE for c in conditions):
        items.append(
            (
                "data noise on the test sample",
                "; ".join(conditions) + f" (verdict, baseline, degradation and layers on: "
                f"{reference_condition(frame)})",
            )
        )
    versions = []
    for column in sorted(c for c in frame.columns if c.startswith("version_")):
        values = sorted({str(v) for v in frame[column].dropna()})
        if values:
            versions.append(f"{column.removeprefix('version_')} {'/'.join(values)}")
    if versions:
        items.append(("library versions", ", ".join(versions)))
    return items, dict(spec)


def _setting_text(entry: Mapping[str, Any]) -> str:
    copies = int(entry.get("copies", 0) or 0)
    if copies == 0:
        return "one perturbed model alone (copies 0)"
    clean = " + the clean model" if entry.get("include_clean", True) else ""
    return f"{copies} perturbed copies{clean}, {entry.get('voting', 'hard')} vote"


def _sample_size(art: RunArtefacts) -> int | None:
    if art.sample is not None:
        return len(art.sample.y_test)
    limit = int(art.spec.get("test_limit", 0) or 0)
    return limit or None


def _throughput(rows: pd.DataFrame, n_test: int | None) -> float:
    """Median samples/s of a scheme's cells, from their timings (1 thread, incl. perturbing)."""
    if n_test is None or "inference_time" not in rows or rows.empty:
        return float("nan")
    copies = rows["copies"].fillna(0).astype(int) if "copies" in rows else 0
    # a cell predicts the clean model once plus every perturbed member (copies 0: one member)
    predictions = 1 + np.maximum(copies, 1)
    rates = predictions * n_test / rows["inference_time"].astype(float)
    rates = rates[np.isfinite(rates)]
    return float(rates.median()) if len(rates) else float("nan")


def _baseline(art: RunArtefacts) -> pd.DataFrame:
    """One row per scheme: file size, parameters, parameter bytes, clean OA/AA/kappa, throughput."""
    from robustq.edge import footprint

    frame = art.frame
    by_scheme = {v.scheme: v for v in art.variants}
    n_test = _sample_size(art)
    rows = []
    for scheme, group in frame.groupby("scheme", sort=False):
        variant = by_scheme.get(scheme)
        parameter_bytes = None
        blob = art.blobs.get(scheme)
        if blob is not None:
            try:
                parameter_bytes = footprint(blob, interpreter=False).weight_bytes
            except RobustqError:
                parameter_bytes = None
        rows.append(
            {
                "scheme": scheme,
                "file size (bytes)": variant.file_size if variant else None,
                "parameters": variant.parameter_count if variant else None,
                "parameter bytes": parameter_bytes,
                "OA": _mean(group, "clean_accuracy"),
                "AA": _mean(group, "clean_balanced_accuracy"),
                "kappa": _mean(group, "clean_kappa"),
                "samples/s": _throughput(group, n_test),
            }
        )
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all")


def _mean(group: pd.DataFrame, column: str) -> float:
    if column not in group or group[column].isna().all():
        return float("nan")
    return float(group[column].mean())


def _aggregate_table(frame: pd.DataFrame) -> pd.DataFrame:
    rows = label_rows(whole_model_rows(frame))
    grouped = rows.groupby(["configuration", "fault_label", "level"], sort=False)
    table = grouped.agg(
        seeds=("accuracy_score", "size"),
        OA_mean=("accuracy_score", "mean"),
        OA_std=("accuracy_score", "std"),
        OA_min=("accuracy_score", "min"),
        OA_max=("accuracy_score", "max"),
        **({"flip_rate_mean": ("flip_rate", "mean")} if "flip_rate" in rows else {}),
        **(
            {"nonfinite_mean": ("member_nonfinite_rate_mean", "mean")}
            if "member_nonfinite_rate_mean" in rows
            else {}
        ),
    ).reset_index()
    return table.rename(columns={"configuration": "configuration", "fault_label": "fault"})


def _nonfinite_text(table: pd.DataFrame) -> str:
    """A sentence naming where perturbed models output NaN/inf ("" when none did).

    Per configuration and fault, the weakest level with non-finite outputs
    and the share of samples affected there: those labels are argmax of a
    non-finite vector, not predictions, and a finiteness check on board
    would catch them.
    """
    if "nonfinite_mean" not in table or not (table["nonfinite_mean"] > 0).any():
        return ""
    hit = table[table["nonfinite_mean"] > 0].sort_values("level", kind="stable")
    first = hit.groupby(["configuration", "fault"], sort=False).head(1)
    items = [
        f"{r.configuration} under {r.fault} from {_level(r.level)} "
        f"({100 * r.nonfinite_mean:.1f}% of samples)"
        for r in first.itertuples()
    ]
    return (
        "<p><b>Non-finite outputs.</b> Some perturbed models compute NaN or infinity: "
        + _esc("; ".join(items))
        + ". Their labels there are not predictions; a finiteness check on the output "
        "would flag these samples on board.</p>"
    )


@dataclass(frozen=True)
class _Shown:
    """The cell re-evaluated for confusion matrices and maps, and what it gave."""

    title: str
    row: Mapping[str, Any]
    clean_confusion: np.ndarray
    confusion: np.ndarray
    clean_labels: np.ndarray
    labels: np.ndarray
    reproduced: bool


def _pick_shown(art: RunArtefacts, result: Verdict, choice: Mapping[str, Any] | None) -> Any:
    """The row of the setting to show: ``choice`` (scheme/fault/level/repeat) or the default."""
    rows = label_rows(whole_model_rows(art.frame))
    rows = rows[rows["scheme"].isin(list(art.blobs))]
    if rows.empty:
        return None
    if choice:
        unknown = set(choice) - {"scheme", "fault", "level", "repeat", "setting"}
        if unknown:
            raise ConfigError(f"shown setting: unknown key(s) {', '.join(sorted(unknown))}")
        picked = rows
        for key, column in (("scheme", "scheme"), ("setting", "setting"), ("repeat", "repeat")):
            if key in choice:
                picked = picked[picked[column] == choice[key]]
        if "fault" in choice:
            picked = picked[
                (picked["fault"] == choice["fault"]) | (picked["fault_label"] == choice["fault"])
            ]
        if "level" in choice:
            picked = picked[np.isclose(picked["level"].astype(float), float(choice["level"]))]
        if picked.empty:
            raise ConfigError(f"shown setting {dict(choice)} matches no cell of the run")
        return picked.sort_values("repeat", kind="stable").iloc[0]
    chosen = result.overall.chosen if result.overall else None
    verdict_rows = [r for r in result.rows if r.scheme in art.blobs]
    target = None
    level = None
    if chosen is not None:
        target = next((r for r in verdict_rows if r.configuration == chosen and r.required), None)
        if target is not None:
            above = [v for v in target.levels if v >= (target.required or 0) - 1e-12]
            level = min(above) if above else max(target.levels)
    if target is None and verdict_rows:
        target = verdict_rows[0]
        level = target.first_failing_level
        if level is None:
            level = max(target.levels)
    if target is None:
        return None
    if level == 0:
        level = max(target.levels)
    picked = rows[
        (rows["configuration"] == target.configuration)
        & (rows["fault_label"] == target.fault)
        & np.isclose(rows["level"].astype(float), float(level))
    ]
    return picked.sort_values("repeat", kind="stable").iloc[0] if not picked.empty else None


def _evaluate_shown(art: RunArtefacts, row: Any) -> _Shown:
    """Re-evaluate one stored cell exactly as the sweep did (clean + its perturbed members)."""
    from robustq.ensemble import evaluate_ensemble
    from robustq.sweep import Cell, cell_data

    names = set(Cell.__dataclass_fields__)
    values = {k: row[k] for k in names if k in row.index and k not in ("test_seed", "batch_size")}
    values["layer"] = None
    if pd.isna(values.get("data_noise")):
        values.pop("data_noise", None)
        values.pop("data_noise_seed", None)
    for key in ("copies", "repeat", "seed", "test_limit", "data_noise_seed"):
        if key in values:
            values[key] = int(values[key])
    values["include_clean"] = bool(values.get("include_clean", False))
    values["level"] = float(values["level"])
    cell = Cell(
        **values,
        test_seed=int(art.spec.get("seed", 0) or 0),
        batch_size=int(art.spec.get("batch_size", 1024) or 1024),
    )
    result = evaluate_ensemble(
        art.blobs[cell.scheme],
        cell_data(cell, art.sample),
        cell.fault_spec(),
        cell.ensemble_config(),
        cell.selection(),
    )
    reproduced = bool(np.isclose(result.scores.accuracy, float(row["accuracy_score"])))
    title = f"{row['configuration']}, {row['fault_label']} {cell.parameter}={cell.level:g}"
    title += f", repeat {cell.repeat}"
    return _Shown(
        title=title,
        row=dict(row),
        clean_confusion=np.asarray(result.clean_scores.confusion),
        confusion=np.asarray(result.scores.confusion),
        clean_labels=np.asarray(result.clean_labels),
        labels=np.asarray(result.labels),
        reproduced=reproduced,
    )


def _class_names(splits: Any, long: bool) -> list[str]:
    from robustq.synthetic import SYNTHETIC_CLASS_NAMES

    names = [str(label) for label in splits.label_map]
    synthetic = str(splits.scene_name).startswith("synthetic")
    if long and synthetic and all(1 <= v <= len(SYNTHETIC_CLASS_NAMES) for v in splits.label_map):
        names = [f"{v} {SYNTHETIC_CLASS_NAMES[v - 1]}" for v in splits.label_map]
    return names


# --------------------------------------------------------------------------- the page
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1200px;padding:1.5em 2em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f2f2f4}td:first-child,th:first-child{text-align:left}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
dd{margin:0}figure{margin:.8em 0}img{max-width:100%;height:auto}
.decision{padding:.8em 1em;border-radius:6px;font-size:1.1em;margin:1em 0}
.ok{background:#e6f4ea;border:1px solid #34a853}.none{background:#fce8e6;border:1px solid #d93025}
.info{background:#eef3fb;border:1px solid #4a7bd0}.pass{color:#137333;font-weight:600}
.fail{color:#b3261e;font-weight:600}.note{color:#8a5300}pre{background:#f6f8fa;padding:.8em;
overflow:auto;font-size:.85em}p.caption{color:#555;font-size:.9em}
nav a{margin-right:1em}
"""

_TITLES = {
    "identity": "Run identity",
    "verdict": "Verdict",
    "baseline": "Clean baseline",
    "degradation": "Degradation under faults",
    "datanoise": "Data noise x weight faults",
    "layers": "Per-layer sensitivity",
    "confusion": "Confusion matrices",
    "maps": "Classification maps",
    "edge": "Edge interpreter and targets",
    "training": "Training curve",
}


def _verdict_table(result: Verdict) -> pd.DataFrame:
    table = result.table()
    table = table.rename(
        columns={
            "size_bytes": "deployed bytes",
            "clean_accuracy": "clean OA",
            "tolerated_level": "tolerated level",
            "accuracy_at_tolerated": "OA there",
            "first_failing_level": "first failing level",
            "meets_required": "meets required",
        }
    )
    if table["required"].isna().all():
        table = table.drop(columns=["required", "meets required"])
    if table["deployed bytes"].isna().all():
        table = table.drop(columns=["deployed bytes"])
    return table


def _tolerated(value: Any) -> str:
    if value is None or _isnan(value):
        return "none"
    return "0 (clean only)" if float(value) == 0 else _level(value)


_VERDICT_FORMATS = {
    "tolerated level": _tolerated,
    "first failing level": lambda v: "none" if v is None or _isnan(v) else _level(v),
    "required": _level,
    "meets required": lambda v: "–" if v is None or _isnan(v) else ("yes" if v else "NO"),
    "deployed bytes": lambda v: _num(None if v is None or _isnan(v) else int(v)),
}


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _verdict_html(result: Verdict) -> str:
    table = _verdict_table(result)
    formats = dict(_VERDICT_FORMATS)
    body = _html_table(table, formats)
    # colour the meets-required cells
    body = body.replace("<td>yes</td>", '<td class="pass">yes</td>').replace(
        "<td>NO</td>", '<td class="fail">NO</td>'
    )
    parts = [
        f"<p>Tolerance: OA may drop at most <b>{100 * result.tolerance:g} point(s)</b> below "
        "the scheme's clean OA. The tolerated level is the largest tested fault level up to "
        "which the mean OA over seeds stays within it at every tested level; the first "
        "failing level is the weakest one that breaks it.</p>",
        body,
    ]
    if result.decisions:
        items = "".join(
            f"<li><b>{_esc(d.fault or 'all requirements')}</b>: {_esc(d.message)}</li>"
            for d in result.decisions
        )
        parts.append(f"<ul>{items}</ul>")
    return "\n".join(parts)


def _decision_banner(result: Verdict | None) -> str:
    if result is None:
        return ""
    if result.overall is None:
        kind = "info"
    else:
        kind = "ok" if result.overall.chosen else "none"
    return f'<div class="decision {kind}">{_esc(result.summary)}</div>'


def build_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    required: Mapping[str, float] | str | None = None,
    shown: Mapping[str, Any] | None = None,
    data_condition: str | int | None = None,
) -> ReportResult:
    """Write the robustness report of a sweep run folder: one HTML page and ``report.md``.

    ``out`` is the HTML file (default ``RUN_DIR/report.html``); the Markdown
    summary goes next to it with the suffix ``.md``. ``tolerance`` is the
    allowed OA loss (0.01 = one point) and ``required`` the fault level each
    fault must be tolerated at (``{"gaussian": 0.1}`` or
    ``"gaussian=0.1,bitflip=1e-4"``), see :func:`robustq.report.verdict`.
    ``shown`` picks the perturbed setting of the confusion matrices and maps
    (keys ``scheme``, ``fault``, ``level``, ``repeat``, ``setting``); by
    default the recommended configuration at the first required level, else
    the first scheme at its first failing level. ``data_condition`` picks
    the data condition (a ``data_noise_label``, ``"none"`` or its index in
    the spec's ``data_noise`` list) the verdict, baseline, degradation,
    layer and confusion sections are computed on — by default the clean data
    when the run has it; the data noise x weight faults section always
    shows every condition. Both files are written atomically. InputError
    (one line) for a missing run folder, a folder without a results store or
    a corrupt store; ConfigError for bad options (an unknown data condition
    among them).
    """
    wanted = parse_required(required)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise ConfigError(f"tolerance must be a number (got {tolerance!r})")
    art = locate_artefacts(run_dir)
    everything = art.frame
    if data_condition is None:
        data_condition = reference_condition(everything)
    # every decision section sees one data condition; the data-noise view sees them all
    art = replace(art, frame=select_condition(everything, data_condition))
    html_path = Path(out) if out is not None else art.run_dir / REPORT_FILE
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the report file must end in .html (got {html_path.name})")
    md_path = html_path.with_suffix(".md")
    frame = art.frame
    notes = list(art.notes)
    sizes = {v.scheme: v.file_size for v in art.variants}
    whole = whole_model_rows(frame)
    result = verdict(frame, float(tolerance), wanted, sizes or None) if not whole.empty else None
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    sections: dict[str, str] = {}

    identity, spec = _identity(art, generated, everything)
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in identity)
    note_html = ""
    if notes:
        note_html = "<ul>" + "".join(f'<li class="note">{_esc(n)}</li>' for n in notes) + "</ul>"
    spec_text = json.dumps(spec, indent=2, sort_keys=True)
    sections["identity"] = (
        f"<dl>{items}</dl>{note_html}"
        f"<details><summary>the sweep spec</summary><pre>{_esc(spec_text)}</pre></details>"
    )
    if result is not None and result.rows:
        sections["verdict"] = _verdict_html(result)
    baseline = _baseline(art)
    baseline_formats = {"samples/s": lambda v: _num(v, 0)}
    if not baseline.empty and {"OA", "AA", "kappa"} & set(baseline.columns):
        caption = (
            "<p class='caption'>Clean variants on the sweep's test sample. Parameter bytes: "
            "constant data stored in the file. Samples/s: estimated from the sweep's cell "
            "timings (one thread, including the time to perturb the model), to compare "
            "schemes with each other, not a latency benchmark.</p>"
        )
        sections["baseline"] = _html_table(baseline, baseline_formats) + caption
    if not whole.empty:
        parts = [
            _image(
                figures.plot_degradation(frame, "accuracy_score", tolerance=float(tolerance)),
                "overall accuracy against fault level",
            ),
            "<p class='caption'>Mean over seeds; the band spans the seeds' minimum to "
            "maximum; dotted lines mark each scheme's clean OA minus the tolerance.</p>",
        ]
        if "flip_rate" in frame:
            parts.append(
                _image(figures.plot_degradation(frame, "flip_rate"), "flip rate against level")
            )
        table = _aggregate_table(frame)
        parts.append(_nonfinite_text(table))
        parts.append(
            "<details><summary>the numbers (mean over seeds per level)</summary>"
            + _html_table(table, {"level": _level})
            + "<p class='caption'>nonfinite_mean: share of test samples whose perturbed "
            "output holds a NaN or an infinity.</p></details>"
        )
        sections["degradation"] = "\n".join(parts)
    view = _data_noise_view(everything, result, reference_condition(frame))
    if view is not None:
        sections["datanoise"] = _data_noise_section(view)
    if "layer" in frame and frame["layer"].notna().any():
        parts = []
        layered = frame[frame["layer"].notna()]
        for scheme in dict.fromkeys(layered["scheme"]):
            for fault in dict.fromkeys(layered.loc[layered["scheme"] == scheme, "fault"]):
                figure = figures.plot_layer_heatmap(layered, scheme, fault)
                parts.append(_image(figure, f"per-layer sensitivity of {scheme} to {fault}"))
        parts.append(
            "<p class='caption'>Each cell perturbs one layer (its weights and bias) at one "
            "level; the colour is the OA change against the clean model (red = accuracy "
            "lost), mean over seeds.</p>"
        )
        sections["layers"] = "\n".join(parts)
    shown_cell = None
    if art.sample is not None and art.sample_matches and art.blobs and result is not None:
        row = _pick_shown(art, result, shown)
        if row is not None:
            shown_cell = _evaluate_shown(art, row)
            if not shown_cell.reproduced:
                notes.append(
                    "re-evaluating the shown cell did not reproduce its stored OA "
                    "(different runtime or kernels?)"
                )
    elif shown:
        raise ConfigError("the shown setting needs the run's variants and splits files")
    if shown_cell is not None:
        short = _class_names(art.sample, long=False)
        clean_oa = float(np.trace(shown_cell.clean_confusion) / shown_cell.clean_confusion.sum())
        oa = float(np.trace(shown_cell.confusion) / shown_cell.confusion.sum())
        matrices = {
            f"clean {shown_cell.row['scheme']} (OA {clean_oa:.4f})": shown_cell.clean_confusion,
            f"{shown_cell.title} (OA {oa:.4f})": shown_cell.confusion,
        }
        sections["confusion"] = (
            f"<p>Shown setting: <b>{_esc(shown_cell.title)}</b>.</p>"
            + _image(figures.plot_confusion_matrices(matrices, short), "confusion matrices")
            + "<p class='caption'>Rows: true class, columns: predicted class (original "
            "labels); colour = share of the true class, numbers = counts.</p>"
        )
        sample = art.sample
        if sample.shape is not None and sample.positions is not None:
            figure = figures.plot_classification_maps(
                sample,
                shown_cell.clean_labels,
                shown_cell.labels,
                "perturbed prediction",
                _class_names(sample, long=True),
            )
            sections["maps"] = (
                f"<p>Test pixels of the scene under <b>{_esc(shown_cell.title)}</b>.</p>"
                + _image(figure, "classification maps")
            )
    if art.training_csv is not None:
        try:
            history = pd.read_csv(art.training_csv)
            figure = figures.plot_training(history)
        except (RobustqError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            notes.append(f"training history {art.training_csv} not plotted: {exc}")
        else:
            best = ""
            if "val_loss" in history and history["val_loss"].notna().any():
                best_row = history.loc[history["val_loss"].idxmin()]
                epoch = int(best_row["epoch"]) if "epoch" in history else "?"
                best = f" Best epoch (lowest validation loss): {epoch} of {len(history)}."
            sections["training"] = f"<p>From {_esc(art.training_csv)}.{_esc(best)}</p>" + _image(
                figure, "training curve"
            )
    edge = _edge_section(art.run_dir / EDGE_FOLDER, notes)
    if edge:
        sections["edge"] = edge
    if notes != list(art.notes):
        extra = "".join(f'<li class="note">{_esc(n)}</li>' for n in notes[len(art.notes) :])
        sections["identity"] = sections["identity"].replace(
            "<details>", f"<ul>{extra}</ul><details>", 1
        )
    order = [name for name in SECTIONS if name in sections]
    page = _page(art, order, sections, result)
    write_text(html_path, page)
    write_text(md_path, _markdown(art, view, identity, baseline, result, notes))
    return ReportResult(
        html_path=html_path,
        md_path=md_path,
        sections=order,
        verdict=result,
        notes=tuple(notes),
    )


_TWO_AXIS_FORMATS = {
    "level": _level,
    "seeds": lambda v: str(int(v)),
    **{
        c: (lambda v: _num(v, 4))
        for c in ("OA", "OA_std", "clean_OA", "dOA_data", "dOA_fault", "dOA_total", "interaction")
    },
}


@dataclass(frozen=True)
class _DataNoiseView:
    """The data noise x weight faults view, computed once for the HTML and the Markdown."""

    frame: pd.DataFrame  # every whole-model row, all data conditions
    table: pd.DataFrame  # two_axis_table(frame)
    reference: str  # the data condition the losses are measured against
    chosen: str  # the recommended configuration ("" when none)
    under_noise: list[str]  # its figures under each other data condition, one line each


def _data_noise_view(
    frame: pd.DataFrame, result: Verdict | None, verdict_condition: str | None
) -> _DataNoiseView | None:
    """The view of a run with a data-noise axis (None for a run without one)."""
    if not has_data_noise_axis(frame):
        return None
    table = two_axis_table(frame)
    chosen, lines = _chosen_under_noise(table, result, verdict_condition)
    reference = reference_condition(frame) or NO_DATA_NOISE
    return _DataNoiseView(frame, table, reference, chosen, lines)


def _chosen_under_noise(
    table: pd.DataFrame, result: Verdict | None, verdict_condition: str | None
) -> tuple[str, list[str]]:
    """The recommended configuration's OA under every other data condition, one line each.

    Returns the configuration (or "" when the verdict chose none) and, per
    data condition other than the one the verdict was made on: the clean
    model's OA there and the OA at each required fault level (the smallest
    tested level at or above it), with the change in points against the
    clean model on the reference data.
    """
    overall = result.overall if result is not None else None
    if overall is None or overall.chosen is None:
        return "", []
    chosen = overall.chosen
    needs = [
        (r.fault, float(r.required))
        for r in result.rows
        if r.configuration == chosen and r.required is not None
    ]
    lines = []
    for condition in dict.fromkeys(table["data_noise"]):
        own = table[(table["configuration"] == chosen) & (table["data_noise"] == condition)]
        if condition == verdict_condition or own.empty:
            continue
        first = own.iloc[0]
        parts = [f"clean model {first['clean_OA']:.4f} ({100 * first['dOA_data']:+.1f} points)"]
        for fault, level in needs:
            tested = own[(own["fault"] == fault) & (own["level"] >= level - 1e-12)]
            if tested.empty:
                continue
            row = tested.sort_values("level", kind="stable").iloc[0]
            parts.append(
                f"{fault} at {_level(row['level'])}: {row['OA']:.4f} "
                f"({100 * row['dOA_total']:+.1f} points)"
            )
        lines.append(f"{condition}: " + "; ".join(parts))
    return chosen, lines


def _data_noise_section(view: _DataNoiseView) -> str:
    """The two-axis view: heatmaps of OA under data noise x weight faults, and the numbers."""
    reference = view.reference
    summary = ""
    if view.under_noise:
        summary = (
            f"<p>The recommended <b>{_esc(view.chosen)}</b> under the other data conditions "
            f"(points against its clean OA on {_esc(reference)} data):</p><ul>"
            + "".join(f"<li>{_esc(line)}</li>" for line in view.under_noise)
            + "</ul>"
        )
    return "\n".join(
        [
            summary,
            _image(figures.plot_data_noise(view.frame), "OA under data noise and weight faults"),
            "<p class='caption'>Each panel: one configuration under one fault model; rows "
            "are the data conditions (acquisition noise on the test sample, the same draw "
            "for every scheme and level of a repeat), columns the fault levels after the "
            "clean model ('no fault'). Numbers: mean OA over seeds; colour: the change "
            "against the clean model on the reference data (red = accuracy lost, saturated "
            "from 30 points down; blue = gained).</p>",
            f"<p>Losses against the clean model on the reference data ({_esc(reference)}): "
            "<b>dOA_data</b> is the data noise alone, <b>dOA_fault</b> the weight fault "
            "alone, <b>dOA_total</b> both together, and <b>interaction</b> = total - data - "
            "fault (negative: the two compound beyond their sum).</p>",
            "<details><summary>the numbers (mean over seeds)</summary>"
            + _html_table(view.table, _TWO_AXIS_FORMATS)
            + "</details>",
        ]
    )


def _two_axis_markdown(table: pd.DataFrame) -> str:
    """A compact Markdown pivot: OA per configuration and data condition, per fault level."""
    table = table.copy()
    table["column"] = [
        f"{f} {_level(v)}" for f, v in zip(table["fault"], table["level"], strict=True)
    ]
    pivot = table.pivot_table(
        index=["configuration", "data_noise"], columns="column", values="OA", sort=False
    )
    clean = table.groupby(["configuration", "data_noise"], sort=False)["clean_OA"].first()
    pivot.insert(0, "no fault", clean)
    pivot = pivot.reset_index()
    return _md_table(pivot, {c: (lambda v: _num(v, 4)) for c in pivot.columns[2:]})


_EDGE_FILES = (
    ("edge.csv", "Kernel and thread configurations against the reference kernels"),
    ("footprint.csv", "Footprint"),
    ("compat.csv", "Target compatibility"),
)


def _edge_section(folder: Path, notes: list[str]) -> str:
    """Tables of every ``robustq edge`` output folder below ``folder`` ("" when there is none).

    Each sub-folder (one per evaluated model, e.g. ``edge/int8``) contributes
    its ``edge.csv``, ``footprint.csv`` and ``compat.csv`` as tables; an
    unreadable file becomes a note instead of failing the report.
    """
    if not folder.is_dir():
        return ""
    parts = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        tables = []
        for name, caption in _EDGE_FILES:
            path = sub / name
            if not path.is_file():
                continue
            try:
                table = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                notes.append(f"edge table {path} not shown: {exc}")
                continue
            tables.append(f"<p class='caption'>{_esc(caption)} ({_esc(name)})</p>")
            tables.append(_html_table(table, {}))
        if tables:
            parts.append(f"<h3>{_esc(sub.name)}</h3>" + "".join(tables))
    if not parts:
        return ""
    return (
        "<p>From <code>robustq edge</code> runs saved under "
        f"{_esc(folder)}: agreement and latency per interpreter configuration, the "
        "model's footprint, and the ops that would block deployment on each target.</p>"
        + "".join(parts)
    )


def _page(
    art: RunArtefacts, order: Sequence[str], sections: Mapping[str, str], result: Verdict | None
) -> str:
    title = f"robustq robustness report: {art.run_dir.resolve().name}"
    nav = "".join(f'<a href="#{name}">{_esc(_TITLES[name])}</a>' for name in order)
    body = "\n".join(
        f'<section id="{name}"><h2>{_esc(_TITLES[name])}</h2>\n{sections[name]}\n</section>'
        for name in order
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>{_decision_banner(result)}<nav>{nav}</nav>\n{body}\n"
        "<p class='caption'>Written by robustq from the run's results store; "
        "self-contained (no network needed).</p>\n</body></html>\n"
    )


def _markdown(
    art: RunArtefacts,
    view: _DataNoiseView | None,
    identity: Sequence[tuple[str, str]],
    baseline: pd.DataFrame,
    result: Verdict | None,
    notes: Sequence[str],
) -> str:
    lines = [f"# robustq robustness report: {art.run_dir.resolve().name}", ""]
    if result is not None:
        lines += [f"**{result.summary}**", ""]
    lines += ["## Run identity", ""]
    lines += [f"- **{k}**: {v}" for k, v in identity]
    lines += [f"- **note**: {n}" for n in notes]
    lines.append("")
    if view is not None:
        lines += ["## Data noise x weight faults", ""]
        if view.under_noise:
            lines += [f"The recommended **{view.chosen}** under the other data conditions:", ""]
            lines += [f"- {line}" for line in view.under_noise] + [""]
        lines += [
            "Mean OA over seeds; rows: configuration and data condition (acquisition noise on "
            "the test sample), columns: no weight fault, then each fault level.",
            "",
            _two_axis_markdown(view.table),
            "",
        ]
    if not baseline.empty:
        lines += ["## Clean baseline", "", _md_table(baseline, {"samples/s": lambda v: _num(v, 0)})]
        lines.append("")
    if result is not None and result.rows:
        lines += [
            "## Verdict",
            "",
            f"Tolerance: OA at most {100 * result.tolerance:g} point(s) below the clean OA, "
            "at every tested level up to the tolerated one (mean over seeds).",
            "",
            _md_table(_verdict_table(result), _VERDICT_FORMATS),
            "",
        ]
        lines += [f"- {d.fault or 'all requirements'}: {d.message}" for d in result.decisions]
        lines.append("")
    return "\n".join(lines)
