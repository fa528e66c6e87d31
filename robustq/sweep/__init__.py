"""Robustness sweeps: the spec, the grid of cells, running cells, the results store, executors.

A :class:`SweepSpec` (read from YAML or TOML by :func:`load_spec`, validated up
front) names a variants folder and a splits file, the quantization schemes,
fault models with their strength levels, the number of seeded repeats, the
ensemble settings and optionally layer-wise mode. :func:`grid` expands it
into frozen :class:`Cell` s (scheme x fault x level [x layer] x ensemble x
repeat), each with a stable content-addressed ``key``; :func:`run_cell`
evaluates one cell into one tidy row (scores, degradation vs clean, member
statistics, timings, library versions). :func:`run_sweep` runs the missing
cells in-process, in local worker processes or as Ray tasks and writes each
finished row in its own transaction to :class:`ResultsStore`, an SQLite
database in the run folder, so an interrupted sweep resumes where it stopped
and never duplicates a row. :func:`load_results`, :func:`aggregate`,
:func:`export`, :func:`layer_table` and :func:`layer_ranking` read the store
back; they never re-run a model.

The package splits that into one module per concept: :mod:`~robustq.sweep.spec`
(the spec), :mod:`~robustq.sweep.cells` (the grid and one cell),
:mod:`~robustq.sweep.store` (the results store), :mod:`~robustq.sweep.run`
(executors and :func:`run_sweep`) and :mod:`~robustq.sweep.results` (reading
results back); every public name is re-exported here.
"""

from __future__ import annotations

from robustq.sweep.cells import (
    Cell,
    cell_data,
    data_noise_seed,
    evaluate_cell,
    grid,
    repeat_seed,
    run_cell,
    splits_fingerprint,
)
from robustq.sweep.results import (
    VOLATILE_COLUMNS,
    aggregate,
    export,
    format_report,
    layer_ranking,
    layer_table,
    load_results,
)
from robustq.sweep.run import EXECUTORS, SweepSummary, run_sweep
from robustq.sweep.spec import (
    ALL_SCHEMES,
    DEFAULT_PARAMETERS,
    NO_DATA_NOISE,
    EnsembleSetting,
    FaultLevels,
    SweepSpec,
    load_spec,
)
from robustq.sweep.store import RESULTS_FILE, ResultsStore

__all__ = [
    "ALL_SCHEMES",
    "Cell",
    "DEFAULT_PARAMETERS",
    "EXECUTORS",
    "EnsembleSetting",
    "FaultLevels",
    "NO_DATA_NOISE",
    "RESULTS_FILE",
    "ResultsStore",
    "SweepSpec",
    "SweepSummary",
    "VOLATILE_COLUMNS",
    "aggregate",
    "cell_data",
    "data_noise_seed",
    "evaluate_cell",
    "export",
    "format_report",
    "grid",
    "layer_ranking",
    "layer_table",
    "load_results",
    "load_spec",
    "repeat_seed",
    "run_cell",
    "run_sweep",
    "splits_fingerprint",
]
