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
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
import re
import socket
import sqlite3
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustq.errors import ConfigError, InputError, RobustqError
from robustq.fileio import atomic_write, write_csv, write_json

__all__ = [
    "DEFAULT_PARAMETERS",
    "ALL_SCHEMES",
    "EXECUTORS",
    "NO_DATA_NOISE",
    "RESULTS_FILE",
    "VOLATILE_COLUMNS",
    "Cell",
    "EnsembleSetting",
    "FaultLevels",
    "ResultsStore",
    "SweepSpec",
    "SweepSummary",
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

DEFAULT_PARAMETERS: dict[str, str] = {
    "gaussian": "std_factor",
    "uniform": "half_width_factor",
    "multiplicative": "std",
    "bitflip": "ber",
    "stuck_at": "fraction",
    "scale": "std",
}
"""The parameter a fault's levels set when the spec does not name one."""

RESULTS_FILE = "results.sqlite"
"""The results database inside a run folder."""

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
ALL_SCHEMES = "all"
"""``schemes: all`` in a spec: every variant of the manifest, in manifest order."""
NO_DATA_NOISE = "none"
"""The ``data_noise_label`` of cells evaluated on the test data as stored (no acquisition noise)."""
# Clean predictions kept per process (one per variant x data condition x repeat's noise draw).
_CLEAN_CACHE_SIZE = 16
_STORE_FORMAT = "robustq-sweep"
_STORE_VERSION = 1
_KEY_VERSION = 1
_SPEC_KEYS = (
    "variants",
    "splits",
    "schemes",
    "faults",
    "seeds",
    "seed",
    "ensemble",
    "layerwise",
    "targets",
    "kernels",
    "batch_size",
    "test_limit",
    "data_noise",
)
_REQUIRED_SPEC_KEYS = ("variants", "splits", "schemes", "faults")
_FAULT_KEYS = ("name", "parameter", "levels", "params")
_ENSEMBLE_KEYS = ("copies", "voting", "include_clean", "classifier_params")
_SWEEP_THREADS = 1  # parallelism is across cells; one thread also keeps rows executor-independent
_IN_FLIGHT_PER_WORKER = 2
# Imported once by the fork server, so each worker process starts with them loaded (~3 s saved).
_PRELOAD = (
    "robustq.sweep",
    "robustq.data",
    "robustq.convert",
    "robustq.perturb",
    "robustq.ensemble",
    "ai_edge_litert.interpreter",
)


# --------------------------------------------------------------------------- small helpers
def _canonical(obj: Any) -> str:
    """Compact, key-sorted JSON: the text every hash and stored spec is computed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"sweep spec: unknown key {key!r}{where} (allowed: {', '.join(allowed)})"
            )


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"sweep spec: {what} must be a mapping (got {value!r})")
    return value


def _plain(value: Any) -> Any:
    """JSON-able copy of a parameter value (tuples become lists, numpy scalars Python ones)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class FaultLevels:
    """One fault model of a sweep: the parameter its ``levels`` set, plus fixed ``params``.

    ``parameter`` defaults to :data:`DEFAULT_PARAMETERS` of the fault
    (gaussian -> ``std_factor``, bitflip -> ``ber``, ...). Levels are
    strengths: finite numbers >= 0, at least one, no repeats; level 0 is the
    zero-strength (clean) fault. Every level is validated by building its
    :class:`~robustq.faults.FaultSpec`, so a ber of 2 fails here, not mid-sweep.
    """

    name: str
    levels: tuple[float, ...]
    parameter: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from robustq.faults import get_fault

        if not isinstance(self.name, str):
            raise ConfigError(f"sweep spec: a fault name must be a string (got {self.name!r})")
        model = get_fault(self.name)
        where = f"fault {self.name!r}"
        parameter = self.parameter
        if parameter is None:
            parameter = DEFAULT_PARAMETERS.get(self.name)
            if parameter is None:
                raise ConfigError(f"{where}: give the 'parameter' its levels set")
        allowed = [f.name for f in fields(model.params)]
        if parameter not in allowed:
            raise ConfigError(
                f"{where}: parameter {parameter!r} is not one of its parameters "
                f"({', '.join(allowed)})"
            )
        params = dict(_mapping(self.params, f"{where} params"))
        if parameter in params:
            raise ConfigError(f"{where}: {parameter!r} is set by the levels; remove it from params")
        levels = self.levels
        if isinstance(levels, str | bytes) or not isinstance(levels, Sequence):
            raise ConfigError(f"{where}: levels must be a list of numbers (got {levels!r})")
        if len(levels) == 0:
            raise ConfigError(f"{where}: the level list is empty")
        checked: list[float] = []
        for level in levels:
            if not _is_number(level) or not math.isfinite(float(level)):
                raise ConfigError(f"{where}: level {level!r} is not a finite number")
            if float(level) < 0:
                raise ConfigError(f"{where}: level {level!r} is negative; levels must be >= 0")
            if float(level) in checked:
                raise ConfigError(f"{where}: level {level!r} is listed twice")
            checked.append(float(level))
        object.__setattr__(self, "parameter", parameter)
        object.__setattr__(self, "params", _plain(params))
        object.__setattr__(self, "levels", tuple(checked))
        for level in checked:
            try:
                self.fault_spec(level)
            except ConfigError as exc:
                raise ConfigError(f"{where} at {parameter}={level:g}: {exc}") from None

    def fault_spec(self, level: float) -> Any:
        """The :class:`~robustq.faults.FaultSpec` of this fault at ``level``."""
        from robustq.faults import FaultSpec

        return FaultSpec(self.name, {**self.params, str(self.parameter): float(level)})

    def fixed_params(self) -> dict[str, Any]:
        """Every parameter except the level one, defaults filled in (canonical, JSON-able)."""
        spec = self.fault_spec(self.levels[0]).to_dict()
        return {k: v for k, v in spec.items() if k not in ("name", self.parameter)}

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in a spec file."""
        return {
            "name": self.name,
            "parameter": self.parameter,
            "levels": list(self.levels),
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> FaultLevels:
        """Build an entry from a spec-file mapping (unknown keys -> ConfigError naming the key)."""
        data = _mapping(data, f"fault entry{where}")
        _check_keys(data, _FAULT_KEYS, where)
        for key in ("name", "levels"):
            if key not in data:
                raise ConfigError(f"sweep spec: missing key {key!r}{where}")
        levels = data["levels"]
        if isinstance(levels, list):
            levels = tuple(levels)
        return cls(
            name=data["name"],
            levels=levels,
            parameter=data.get("parameter"),
            params=data.get("params") or {},
        )


@dataclass(frozen=True)
class EnsembleSetting:
    """How each cell's perturbed models are evaluated: alone, or as a voted ensemble.

    ``copies=0`` (the default) evaluates one perturbed model alone: one
    member, no clean member, no vote (``voting`` is recorded as ``"none"``;
    giving a voting rule or ``include_clean=True`` with it is a ConfigError).
    ``copies=n >= 1`` is an ensemble of ``n`` perturbed copies plus the clean
    model when ``include_clean`` (default True), voted by ``voting``
    (default ``"hard"``; ``soft`` or ``classifier`` with ``classifier_params``).
    """

    copies: int = 0
    voting: str | None = None
    include_clean: bool | None = None
    classifier_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _is_int(self.copies) or self.copies < 0:
            raise ConfigError(f"ensemble: copies must be an integer >= 0 (got {self.copies!r})")
        if self.include_clean is not None and not isinstance(self.include_clean, bool):
            raise ConfigError(
                f"ensemble: include_clean must be true or false ({self.include_clean!r})"
            )
        params = dict(_mapping(self.classifier_params, "ensemble classifier_params"))
        if self.copies == 0:
            if self.voting not in (None, "none"):
                raise ConfigError(
                    "ensemble: copies 0 evaluates one perturbed model alone, without a vote; "
                    "remove 'voting' or set copies >= 1"
                )
            if self.include_clean:
                raise ConfigError(
                    "ensemble: copies 0 evaluates one perturbed model alone; "
                    "include_clean needs copies >= 1"
                )
            if params:
                raise ConfigError(
                    "ensemble: classifier_params need copies >= 1 and voting classifier"
                )
            voting, include_clean = "none", False
        else:
            from robustq.ensemble import VOTINGS

            voting = "hard" if self.voting is None else self.voting
            if voting not in VOTINGS:
                raise ConfigError(
                    f"ensemble: unknown voting {voting!r}; choose from {', '.join(VOTINGS)}"
                )
            include_clean = True if self.include_clean is None else self.include_clean
            if params and voting != "classifier":
                raise ConfigError("ensemble: classifier_params need voting classifier")
        object.__setattr__(self, "voting", voting)
        object.__setattr__(self, "include_clean", include_clean)
        object.__setattr__(self, "classifier_params", _plain(params))

    def to_dict(self) -> dict[str, Any]:
        """The setting as written in a spec file (normalized)."""
        data: dict[str, Any] = {"copies": self.copies}
        if self.copies:
            data.update(voting=self.voting, include_clean=self.include_clean)
            if self.classifier_params:
                data["classifier_params"] = dict(self.classifier_params)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> EnsembleSetting:
        """Build a setting from a spec-file mapping (unknown keys -> ConfigError naming the key)."""
        data = _mapping(data, f"ensemble{where}")
        _check_keys(data, _ENSEMBLE_KEYS, where)
        return cls(
            copies=data.get("copies", 0),
            voting=data.get("voting"),
            include_clean=data.get("include_clean"),
            classifier_params=data.get("classifier_params") or {},
        )


@dataclass(frozen=True)
class SweepSpec:
    """A whole robustness sweep: which variants and data, which faults at which levels, how often.

    ``variants`` is a folder with ``manifest.json`` (from ``robustq convert``)
    and ``splits`` a splits file (``robustq prepare``); relative paths in a
    spec *file* are relative to that file's folder. ``schemes`` picks the
    variants by scheme name (``"all"``: every variant of the manifest, in its
    order); ``faults`` are :class:`FaultLevels`; ``seeds``
    is the number of repeats (repeat ``r`` uses the ensemble seed drawn from
    ``SeedSequence(seed, spawn_key=(r,))``); ``ensemble`` one or more
    :class:`EnsembleSetting`; ``layerwise`` puts the fault into one layer's
    weights and bias at a time (one cell per layer); ``targets`` restricts
    the perturbed tensors (a :class:`~robustq.perturb.Targets`; in layer-wise
    mode only its ``role``); ``kernels`` and ``batch_size`` go to the
    interpreter; ``test_limit`` > 0 evaluates every cell on the same
    class-stratified sample of that many test samples (drawn with ``seed``,
    as the demo's summary does; 0 = the whole test split). ``data_noise`` is
    the acquisition-noise axis: a list of data conditions, each ``None``
    (the test data as stored) or a :class:`~robustq.acquisition.DataNoise`
    (or its dict) applied to the test sample only; every weight-fault cell is
    run under every condition. Each repeat draws its own noise
    (:func:`data_noise_seed`), shared by all schemes, faults and levels of
    that repeat, so they are compared on identical noisy data. Everything is
    validated at construction (ConfigError).
    """

    variants: Path
    splits: Path
    schemes: tuple[str, ...]  # or ("all",): every variant in the manifest, in its order
    faults: tuple[FaultLevels, ...]
    seeds: int = 1
    seed: int = 0
    ensemble: tuple[EnsembleSetting, ...] = field(default_factory=lambda: (EnsembleSetting(),))
    layerwise: bool = False
    targets: Any = None
    kernels: str = "default"
    batch_size: int = 1024
    test_limit: int = 0
    data_noise: tuple[Any, ...] = (None,)

    def __post_init__(self) -> None:
        from robustq.convert import SCHEMES
        from robustq.perturb import Targets
        from robustq.runtime import KERNELS

        for name in ("variants", "splits"):
            value = getattr(self, name)
            if not isinstance(value, str | os.PathLike) or not str(value):
                raise ConfigError(f"sweep spec: {name} must be a path (got {value!r})")
            object.__setattr__(self, name, Path(value))
        schemes = (self.schemes,) if isinstance(self.schemes, str) else tuple(self.schemes or ())
        if not schemes:
            raise ConfigError("sweep spec: schemes is empty; name at least one scheme")
        for scheme in schemes:
            if scheme == ALL_SCHEMES and len(schemes) == 1:
                continue
            if scheme not in SCHEMES:
                raise ConfigError(
                    f"sweep spec: unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)} "
                    f"(or {ALL_SCHEMES} alone)"
                )
        if len(set(schemes)) != len(schemes):
            raise ConfigError("sweep spec: a scheme is listed twice")
        object.__setattr__(self, "schemes", schemes)
        faults = tuple(self.faults or ())
        if not faults:
            raise ConfigError("sweep spec: faults is empty; give at least one fault with levels")
        checked = []
        for index, entry in enumerate(faults):
            where = f" in faults[{index}]"
            try:
                if not isinstance(entry, FaultLevels):
                    entry = FaultLevels.from_dict(entry, where)
            except ConfigError as exc:
                raise ConfigError(_located(exc, f"faults[{index}]")) from None
            checked.append(entry)
        object.__setattr__(self, "faults", tuple(checked))
        if not _is_int(self.seeds) or self.seeds < 1:
            raise ConfigError(
                f"sweep spec: seeds (repeats) must be an integer >= 1 ({self.seeds!r})"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"sweep spec: seed must be an integer >= 0 (got {self.seed!r})")
        object.__setattr__(self, "seeds", int(self.seeds))
        object.__setattr__(self, "seed", int(self.seed))
        ensembles = self.ensemble
        if isinstance(ensembles, EnsembleSetting | Mapping):
            ensembles = (ensembles,)
        ensembles = tuple(ensembles or ())
        if not ensembles:
            raise ConfigError("sweep spec: ensemble is an empty list")
        settings = []
        for index, setting in enumerate(ensembles):
            where = f" in ensemble[{index}]"
            try:
                if not isinstance(setting, EnsembleSetting):
                    setting = EnsembleSetting.from_dict(setting, where)
            except ConfigError as exc:
                raise ConfigError(_located(exc, f"ensemble[{index}]")) from None
            if setting in settings:
                raise ConfigError(f"sweep spec: ensemble[{index}] repeats an earlier setting")
            settings.append(setting)
        object.__setattr__(self, "ensemble", tuple(settings))
        if not isinstance(self.layerwise, bool):
            raise ConfigError(f"sweep spec: layerwise must be true or false ({self.layerwise!r})")
        targets = self.targets
        if targets is None:
            targets = Targets()
        elif not isinstance(targets, Targets):
            try:
                targets = Targets.from_dict(_mapping(targets, "targets"))
            except TypeError as exc:
                raise ConfigError(f"sweep spec: targets: {exc}") from None
        if self.layerwise and (targets.names or targets.ops or targets.layer is not None):
            raise ConfigError(
                "sweep spec: layerwise picks one layer per cell; targets may only set 'role'"
            )
        object.__setattr__(self, "targets", targets)
        if self.kernels not in KERNELS:
            raise ConfigError(
                f"sweep spec: unknown kernels {self.kernels!r}; choose from {', '.join(KERNELS)}"
            )
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ConfigError(
                f"sweep spec: batch_size must be an integer >= 1 ({self.batch_size!r})"
            )
        if not _is_int(self.test_limit) or self.test_limit < 0:
            raise ConfigError(
                f"sweep spec: test_limit must be an integer >= 0 ({self.test_limit!r})"
            )
        object.__setattr__(self, "data_noise", _data_conditions(self.data_noise))

    def to_dict(self) -> dict[str, Any]:
        """The spec as a plain, JSON-able dict (the inverse of :meth:`from_dict`)."""
        return {
            "variants": str(self.variants),
            "splits": str(self.splits),
            "schemes": list(self.schemes),
            "faults": [entry.to_dict() for entry in self.faults],
            "seeds": self.seeds,
            "seed": self.seed,
            "ensemble": [setting.to_dict() for setting in self.ensemble],
            "layerwise": self.layerwise,
            "targets": self.targets.to_dict(),
            "kernels": self.kernels,
            "batch_size": self.batch_size,
            "test_limit": self.test_limit,
            "data_noise": [None if n is None else n.to_dict() for n in self.data_noise],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: str | Path | None = None) -> SweepSpec:
        """Build a spec from a plain mapping; relative paths are joined to ``base`` when given.

        Unknown or missing keys raise ConfigError naming the key.
        """
        data = _mapping(data, "the top level")
        _check_keys(data, _SPEC_KEYS, "")
        for key in _REQUIRED_SPEC_KEYS:
            if key not in data:
                raise ConfigError(f"sweep spec: missing key {key!r}")
        values = dict(data)
        for key in ("variants", "splits"):
            value = values[key]
            if isinstance(value, str) and value and base is not None:
                values[key] = Path(base) / Path(value).expanduser()
        faults = values["faults"]
        if isinstance(faults, Mapping) or not isinstance(faults, list | tuple):
            raise ConfigError(
                "sweep spec: faults must be a list of entries {name, levels[, parameter, params]}"
            )
        values["faults"] = tuple(faults)
        if "ensemble" in values and isinstance(values["ensemble"], list):
            values["ensemble"] = tuple(values["ensemble"])
        if "data_noise" in values and isinstance(values["data_noise"], list):
            values["data_noise"] = tuple(values["data_noise"])
        schemes = values["schemes"]
        if not isinstance(schemes, str | list | tuple):
            raise ConfigError(f"sweep spec: schemes must be a list of names (got {schemes!r})")
        return cls(**values)

    def fingerprint_fields(self) -> dict[str, Any]:
        """What, with the data's hashes, defines a run: the spec without paths and batch size.

        Neither changes a result (files are identified by content, and the
        interpreter's batch size does not change per-sample outputs), so
        moving the data or changing the batch size resumes the same run.
        """
        data = self.to_dict()
        del data["variants"], data["splits"], data["batch_size"]
        if self.data_noise == (None,):
            del data["data_noise"]  # the default: runs from before the axis existed still resume
        return data


def _data_conditions(value: Any) -> tuple[Any, ...]:
    """Validate the spec's ``data_noise`` list: None / "none" entries or DataNoise (dicts)."""
    from robustq.acquisition import DataNoise

    entries = (value,) if value is None or isinstance(value, Mapping | DataNoise | str) else value
    if not isinstance(entries, list | tuple):
        raise ConfigError(
            "sweep spec: data_noise must be a list of null or {name, ...} entries "
            f"(got {value!r})"
        )
    if not entries:
        raise ConfigError("sweep spec: data_noise is an empty list (use [null] for clean data)")
    checked: list[Any] = []
    labels: list[str] = []
    for index, entry in enumerate(entries):
        if entry is None or (isinstance(entry, str) and entry.lower() == NO_DATA_NOISE):
            noise = None
        elif isinstance(entry, DataNoise):
            noise = entry
        elif isinstance(entry, Mapping):
            try:
                noise = DataNoise.from_dict(entry)
            except (ConfigError, TypeError) as exc:
                raise ConfigError(f"sweep spec: data_noise[{index}]: {exc}") from None
        else:
            raise ConfigError(
                f"sweep spec: data_noise[{index}] must be null or a mapping with a name "
                f"(got {entry!r})"
            )
        label = NO_DATA_NOISE if noise is None else noise.label
        if label in labels:
            raise ConfigError(
                f"sweep spec: data_noise[{index}] repeats an earlier condition ({label})"
            )
        labels.append(label)
        checked.append(noise)
    return tuple(checked)


def _located(exc: ConfigError, where: str) -> str:
    message = str(exc)
    return message if message.startswith("sweep spec:") else f"sweep spec: {where}: {message}"


@functools.lru_cache(maxsize=1)
def _yaml_loader() -> Any:
    """A YAML SafeLoader that also reads ``1e-6`` as a float (YAML 1.2), as users expect."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.VERBOSE,
        ),
        list("-+0123456789."),
    )
    return Loader


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep spec from a ``.yaml``/``.yml`` or ``.toml`` file.

    Keys: ``variants``, ``splits``, ``schemes``, ``faults`` (a list of
    ``{name, levels, parameter?, params?}``) are required; ``seeds``,
    ``seed``, ``ensemble`` (a mapping or a list of them), ``layerwise``,
    ``targets``, ``kernels``, ``batch_size``, ``test_limit`` and
    ``data_noise`` (a list of null or ``{name, std, pa, ...}``) are optional (see
    :class:`SweepSpec`). Relative paths are relative to the spec file's
    folder. A missing file is an InputError; malformed text, an unknown
    key, scheme or fault, an empty level list or a negative level is a
    ConfigError naming the culprit.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"sweep spec not found: {file}")
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read sweep spec {file}: {exc}") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{file}: not valid YAML: {first}") from None
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    else:
        raise ConfigError(f"sweep spec must be a .yaml, .yml or .toml file (got {file.name})")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: a sweep spec is a mapping of keys, got {type(data).__name__}")
    return SweepSpec.from_dict(data, base=file.resolve().parent)


# --------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One unit of work: a scheme, a fault at one level, one repeat, one ensemble setting[, layer].

    ``seed`` is the repeat's ensemble seed (drawn from
    ``SeedSequence(spec.seed, spawn_key=(repeat,))``); ``fault_params``,
    ``classifier_params`` and ``targets`` are canonical JSON; ``test_limit``
    and ``test_seed`` pick the test sample (see :class:`SweepSpec`); the two
    ``*_sha256`` fields pin the exact variant bytes and split arrays read.
    ``data_noise`` is the canonical JSON of the acquisition noise applied to
    that sample ("" for none) and ``data_noise_seed`` its seed.
    ``key`` hashes every field that can change the cell's result (all of
    them but ``batch_size``; the two data-noise fields only when there is
    noise, so keys of runs without the axis are unchanged), so equal keys
    mean equal rows.
    """

    scheme: str
    fault: str
    parameter: str
    level: float
    repeat: int
    seed: int
    copies: int = 0
    voting: str = "none"
    include_clean: bool = False
    layer: int | None = None
    fault_params: str = "{}"
    classifier_params: str = "{}"
    targets: str = "{}"
    kernels: str = "default"
    test_limit: int = 0
    test_seed: int = 0
    variant_sha256: str = ""
    splits_sha256: str = ""
    batch_size: int = 1024
    data_noise: str = ""
    data_noise_seed: int = 0

    @functools.cached_property
    def key(self) -> str:
        """A stable 32-hex-digit content hash of the cell (the results store's primary key)."""
        skip = {"batch_size"}
        if not self.data_noise:
            skip |= {"data_noise", "data_noise_seed"}
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        data["key_version"] = _KEY_VERSION
        return _sha256(_canonical(data))[:32]

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``int8 gaussian std_factor=0.1 repeat=2``."""
        parts = [self.scheme, self.fault, f"{self.parameter}={self.level:g}"]
        if self.data_noise:
            parts.append(f"data={self.noise_label}")
        if self.layer is not None:
            parts.append(f"layer={self.layer}")
        if self.copies:
            parts.append(f"copies={self.copies}/{self.voting}")
        parts.append(f"repeat={self.repeat}")
        return " ".join(parts)

    def noise(self) -> Any:
        """The cell's :class:`~robustq.acquisition.DataNoise` on the test data, or None."""
        from robustq.acquisition import DataNoise

        return DataNoise.from_dict(json.loads(self.data_noise)) if self.data_noise else None

    @property
    def noise_label(self) -> str:
        """The data condition's short name: the noise's label, or ``none``."""
        noise = self.noise()
        return NO_DATA_NOISE if noise is None else noise.label

    def fault_spec(self) -> Any:
        """The cell's :class:`~robustq.faults.FaultSpec` (fixed parameters + the level)."""
        from robustq.faults import FaultSpec

        return FaultSpec(self.fault, {**json.loads(self.fault_params), self.parameter: self.level})

    def selection(self) -> Any:
        """The cell's :class:`~robustq.perturb.Targets` (the spec's targets, plus the layer)."""
        from robustq.perturb import Targets

        data = json.loads(self.targets)
        if self.layer is not None:
            data["layer"] = self.layer
        return Targets.from_dict(data)

    def ensemble_config(self) -> Any:
        """The :class:`~robustq.ensemble.EnsembleConfig` that evaluates this cell.

        ``copies=0`` becomes one perturbed member without the clean model,
        soft-voted: with one member the vote is that member's own argmax,
        and soft voting keeps its probabilities for the probability shift.
        """
        from robustq.ensemble import EnsembleConfig

        common = {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "threads": _SWEEP_THREADS,
            "kernels": self.kernels,
        }
        if self.copies == 0:
            return EnsembleConfig(copies=1, voting="soft", include_clean=False, **common)
        return EnsembleConfig(
            copies=self.copies,
            voting=self.voting,
            include_clean=self.include_clean,
            classifier_params=json.loads(self.classifier_params),
            **common,
        )

    def columns(self) -> dict[str, Any]:
        """The cell's identifying columns, in the order rows list them."""
        return {
            "key": self.key,
            "scheme": self.scheme,
            "data_noise": self.data_noise,
            "data_noise_label": self.noise_label,
            "data_noise_seed": self.data_noise_seed,
            "fault": self.fault,
            "parameter": self.parameter,
            "level": self.level,
            "fault_params": self.fault_params,
            "repeat": self.repeat,
            "seed": self.seed,
            "copies": self.copies,
            "voting": self.voting,
            "include_clean": self.include_clean,
            "classifier_params": self.classifier_params,
            "layer": self.layer,
            "targets": self.targets,
            "kernels": self.kernels,
            "test_limit": self.test_limit,
            "variant_sha256": self.variant_sha256,
            "splits_sha256": self.splits_sha256,
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (stored in the run's plan)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def repeat_seed(seed: int, repeat: int) -> int:
    """The ensemble seed of repeat ``repeat``: a 32-bit draw of ``SeedSequence(seed, (repeat,))``.

    Independent streams per repeat (never ``seed + repeat``), and the same
    seed for every scheme, fault and level of that repeat, so curves over
    levels compare like with like.
    """
    state = np.random.SeedSequence(int(seed), spawn_key=(int(repeat),)).generate_state(1)
    return int(state[0])


def data_noise_seed(seed: int, repeat: int) -> int:
    """The data-noise seed of repeat ``repeat``: the second 32-bit word of its SeedSequence.

    :func:`repeat_seed` is the first word of the same state, so the test data's
    noise and the weights' faults of a repeat come from independent streams
    (never the same seed fed to both), and every scheme, fault and level of
    the repeat sees the same noisy data.
    """
    state = np.random.SeedSequence(int(seed), spawn_key=(int(repeat),)).generate_state(2)
    return int(state[1])


def splits_fingerprint(splits: Any) -> str:
    """SHA-256 of the arrays a cell reads (train and test samples and labels, class count)."""
    digest = hashlib.sha256()
    digest.update(f"n_classes={int(splits.n_classes)}".encode())
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = np.ascontiguousarray(getattr(splits, name))
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class _Resolved:
    """A spec with its files read: paths, data, hashes and each scheme's layers."""

    spec: SweepSpec
    schemes: tuple[str, ...]
    variants_dir: Path
    splits_path: Path
    splits: Any
    splits_sha256: str
    paths: Mapping[str, Path]
    blobs: Mapping[str, bytes]
    hashes: Mapping[str, str]
    layers: Mapping[str, tuple[int, ...]]

    def fingerprint(self) -> dict[str, Any]:
        """The spec (without paths) and the content hashes of its data: a run's identity."""
        return {
            "spec": self.spec.fingerprint_fields(),
            "splits_sha256": self.splits_sha256,
            "variants_sha256": dict(self.hashes),
        }


def _resolve(spec: SweepSpec) -> _Resolved:
    """Read the manifest, the selected variants and the splits; hash them; list layers."""
    from robustq.convert import read_manifest
    from robustq.data import Splits, subsample_test
    from robustq.perturb import per_layer

    variants_dir = spec.variants.expanduser().resolve()
    splits_path = spec.splits.expanduser().resolve()
    if not variants_dir.is_dir():
        raise InputError(f"variants folder not found: {variants_dir}")
    by_scheme: dict[str, Any] = {}
    for variant in read_manifest(variants_dir):
        if variant.scheme in by_scheme:
            raise InputError(
                f"{variants_dir}: the manifest lists two variants of scheme {variant.scheme} "
                f"({by_scheme[variant.scheme].name}, {variant.name}); a sweep needs one per scheme"
            )
        by_scheme[variant.scheme] = variant
    paths: dict[str, Path] = {}
    blobs: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    layers: dict[str, tuple[int, ...]] = {}
    schemes = tuple(by_scheme) if spec.schemes == (ALL_SCHEMES,) else spec.schemes
    if not schemes:
        raise InputError(f"the manifest in {variants_dir} lists no variant")
    for scheme in schemes:
        variant = by_scheme.get(scheme)
        if variant is None:
            have = ", ".join(by_scheme) or "none"
            raise InputError(f"no {scheme} variant in {variants_dir} (the manifest has: {have})")
        path = variants_dir / variant.path
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read variant {path}: {exc}") from None
        digest = _sha256(blob)
        if variant.sha256 and digest != variant.sha256:
            raise InputError(f"{path} does not match the sha256 in its manifest (changed since?)")
        paths[scheme], blobs[scheme], hashes[scheme] = path, blob, digest
        if spec.layerwise:
            layers[scheme] = tuple(t.layer for t in per_layer(blob, spec.targets.role))
        else:
            layers[scheme] = ()
    splits = subsample_test(Splits.load(splits_path), spec.test_limit, spec.seed)
    return _Resolved(
        spec=spec,
        schemes=schemes,
        variants_dir=variants_dir,
        splits_path=splits_path,
        splits=splits,
        splits_sha256=splits_fingerprint(splits),
        paths=paths,
        blobs=blobs,
        hashes=hashes,
        layers=layers,
    )


def _cells(resolved: _Resolved) -> list[Cell]:
    """The grid in its fixed order: scheme, data noise, fault, layer, level, ensemble, repeat."""
    spec = resolved.spec
    seeds = [repeat_seed(spec.seed, repeat) for repeat in range(spec.seeds)]
    noise_seeds = [data_noise_seed(spec.seed, repeat) for repeat in range(spec.seeds)]
    conditions = ["" if n is None else _canonical(n.to_dict()) for n in spec.data_noise]
    targets = spec.targets.to_dict()
    targets.pop("layer", None)
    targets_json = _canonical(targets)
    cells: list[Cell] = []
    for scheme, condition in itertools.product(resolved.schemes, conditions):
        layers: Sequence[int | None] = resolved.layers[scheme] if spec.layerwise else (None,)
        for entry in spec.faults:
            fixed = _canonical(entry.fixed_params())
            for layer in layers:
                for level in entry.levels:
                    for setting in spec.ensemble:
                        for repeat, seed in enumerate(seeds):
                            cells.append(
                                Cell(
                                    scheme=scheme,
                                    fault=entry.name,
                                    parameter=str(entry.parameter),
                                    level=float(level),
                                    repeat=repeat,
                                    seed=seed,
                                    copies=setting.copies,
                                    voting=str(setting.voting),
                                    include_clean=bool(setting.include_clean),
                                    layer=layer,
                                    fault_params=fixed,
                                    classifier_params=_canonical(setting.classifier_params),
                                    targets=targets_json,
                                    kernels=spec.kernels,
                                    test_limit=spec.test_limit,
                                    test_seed=spec.seed,
                                    variant_sha256=resolved.hashes[scheme],
                                    splits_sha256=resolved.splits_sha256,
                                    batch_size=spec.batch_size,
                                    data_noise=condition,
                                    data_noise_seed=noise_seeds[repeat] if condition else 0,
                                )
                            )
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.key in seen:
            raise ConfigError(
                f"sweep spec: two fault entries give the same cell ({cell.label}); "
                "remove the repeated level"
            )
        seen[cell.key] = cell
    return cells


def _preflight(resolved: _Resolved) -> None:
    """Perturb each scheme once per fault (and layer) at its strongest level, to fail up front.

    Catches what only the model can tell: a scale fault on a float variant,
    a float-only bit group on integer storage, a target selection that
    matches nothing. Milliseconds per model: flatbuffer edits, no inference.
    """
    from robustq.perturb import Targets, perturb

    spec = resolved.spec
    for scheme in resolved.schemes:
        layers: Sequence[int | None] = resolved.layers[scheme] if spec.layerwise else (None,)
        for index, entry in enumerate(spec.faults):
            strongest = entry.fault_spec(max(entry.levels))
            for layer in layers:
                selection = spec.targets
                if layer is not None:
                    selection = Targets.from_dict({**spec.targets.to_dict(), "layer": layer})
                try:
                    perturb(resolved.blobs[scheme], strongest, selection, seed=0, threads=1)
                except RobustqError as exc:
                    where = f"layer {layer} of " if layer is not None else ""
                    raise ConfigError(
                        f"sweep spec: faults[{index}] ({entry.name}) cannot be applied to "
                        f"{where}the {scheme} variant: {exc}"
                    ) from None


def grid(spec: SweepSpec | str | os.PathLike[str]) -> list[Cell]:
    """Every cell of a sweep in run order (reads the variants and splits to pin their hashes).

    The grid is the product schemes x faults' levels [x layers] x ensemble
    settings x repeats; with ``layerwise`` each scheme contributes its own
    layers. Raises InputError for missing files and ConfigError for a spec
    that cannot run (e.g. the scale fault on a float variant).
    """
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    resolved = _resolve(spec)
    _preflight(resolved)
    return _cells(resolved)


# --------------------------------------------------------------------------- running one cell
@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str | None]:
    import robustq

    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "version_robustq": robustq.__version__,
        "version_numpy": np.__version__,
        "version_tensorflow": installed("tensorflow"),
        "version_ai_edge_litert": installed("ai-edge-litert"),
        "version_python": ".".join(str(v) for v in sys.version_info[:3]),
    }


def _float(value: Any) -> float:
    return float(value) if value is not None else float("nan")


def _layer_name(model_bytes: bytes, layer: int | None) -> str | None:
    """The name of a layer's weight tensor (its first tensor when it has no weight)."""
    if layer is None:
        return None
    from robustq.tflite import TFLiteModel

    tensors = [t for t in TFLiteModel(model_bytes).tensors if t.layer == layer]
    weights = [t for t in tensors if t.role == "weight"] or tensors
    return weights[0].name if weights else None


def cell_data(cell: Cell, splits: Any) -> Any:
    """The data a cell is evaluated on: ``splits`` with the cell's acquisition noise on test.

    ``splits`` is the cell's clean test sample; without data noise it is
    returned as is, otherwise a copy whose test samples are noised with
    :func:`~robustq.acquisition.apply_to_splits` (seed ``data_noise_seed``).
    Training and validation data stay clean (a stacking voter learns from
    clean training predictions).
    """
    from robustq.acquisition import apply_to_splits

    noise = cell.noise()
    if noise is None:
        return splits
    return apply_to_splits(splits, noise, ("test",), seed=cell.data_noise_seed)


# Per-process cache of clean predictions, keyed by what determines them (see _clean_prediction).
_CLEAN_CACHE: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()


def _clean_prediction(cell: Cell, model_bytes: bytes, splits: Any, config: Any) -> Any:
    """The clean variant's prediction on the cell's data, computed once per process and input.

    Every cell of a scheme under one data condition (and repeat, when the
    data is noised) compares against the same clean output, so it is cached
    (LRU, :data:`_CLEAN_CACHE_SIZE` entries). The key is the variant's and
    the clean splits' hashes, the data noise and its seed, the kernels and
    whether the training split is needed; a cell without both hashes (built
    by hand) is never cached. Inference with one thread is deterministic, so
    a cached prediction is the one the cell would compute.
    """
    from robustq.ensemble import predict_clean

    if not (cell.variant_sha256 and cell.splits_sha256) or _CLEAN_CACHE_SIZE <= 0:
        return None
    key = (
        cell.variant_sha256,
        cell.splits_sha256,
        cell.data_noise,
        cell.data_noise_seed,
        cell.kernels,
        config.voting == "classifier",
    )
    if key in _CLEAN_CACHE:
        _CLEAN_CACHE.move_to_end(key)
        return _CLEAN_CACHE[key]
    prediction = predict_clean(model_bytes, splits, config)
    _CLEAN_CACHE[key] = prediction
    while len(_CLEAN_CACHE) > _CLEAN_CACHE_SIZE:
        _CLEAN_CACHE.popitem(last=False)
    return prediction


def evaluate_cell(cell: Cell, model_bytes: bytes, splits: Any) -> dict[str, Any]:
    """Evaluate one cell on given variant bytes and splits and return its row (a plain dict).

    The pure core of :func:`run_cell`, used by every executor: ``splits``
    is the cell's clean test sample; the cell's data noise, if any, is
    applied here (:func:`cell_data`). The clean model's prediction is cached
    per process (the result does not depend on it being cached). Raises
    InputError when the bytes or the splits are not those the cell was
    planned for (its ``variant_sha256`` / ``splits_sha256``).
    """
    from robustq.ensemble import evaluate_ensemble

    started, cpu_started = time.perf_counter(), time.process_time()
    if cell.variant_sha256 and _sha256(model_bytes) != cell.variant_sha256:
        raise InputError(f"the {cell.scheme} variant changed since the sweep was planned")
    if cell.splits_sha256 and splits_fingerprint(splits) != cell.splits_sha256:
        raise InputError("the splits changed since the sweep was planned")
    data = cell_data(cell, splits)
    config = cell.ensemble_config()
    result = evaluate_ensemble(
        model_bytes,
        data,
        cell.fault_spec(),
        config,
        cell.selection(),
        clean=_clean_prediction(cell, model_bytes, data, config),
    )
    metrics = result.metrics.iloc[0]
    perturbed = result.members[result.members["member"] != "clean"]
    changed = [sum(record["changed"].values()) for record in result.records]
    targeted = result.records[0]["targets"] if result.records else []
    touched = {
        name for record in result.records for name, count in record["changed"].items() if count
    }
    row: dict[str, Any] = cell.columns()
    row["members"] = int(metrics["members"])
    row["layer_name"] = _layer_name(model_bytes, cell.layer)
    row.update({k: float(v) for k, v in result.scores.row().items()})
    row.update(
        {
            "clean_accuracy": result.clean_scores.accuracy,
            "clean_balanced_accuracy": result.clean_scores.balanced_accuracy,
            "clean_kappa": result.clean_scores.kappa,
            "delta_accuracy": _float(metrics["delta_accuracy"]),
            "delta_balanced_accuracy": _float(metrics["delta_balanced_accuracy"]),
            "delta_kappa": _float(metrics["delta_kappa"]),
            "flip_rate": _float(metrics["flip_rate"]),
            "probability_shift": _float(metrics["probability_shift"]),
            # population statistics (ddof 0) over the perturbed members only
            "member_accuracy_mean": float(perturbed["accuracy_score"].mean()),
            "member_accuracy_std": float(perturbed["accuracy_score"].std(ddof=0)),
            "member_flip_rate_mean": float(perturbed["flip_rate"].mean()),
            "member_flip_rate_std": float(perturbed["flip_rate"].std(ddof=0)),
            "member_probability_shift_mean": float(perturbed["probability_shift"].mean()),
            # share of test samples with a NaN/inf output, mean over the perturbed members
            "member_nonfinite_rate_mean": float(perturbed["nonfinite_rate"].mean()),
            "tensors_targeted": len(targeted),
            "tensors_changed": len(touched),
            "changed_mean": float(np.mean(changed)) if changed else 0.0,
            "changed_unit": result.records[0]["changed_unit"] if result.records else None,
            "inference_time": _float(metrics["inference_time"]),
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }
    )
    row.update(_versions())
    return row


# Per-process caches: a worker reads the splits and each variant once, whatever it runs.
_SPLITS_CACHE: dict[tuple[str, int, int], tuple[Any, str]] = {}
_VARIANT_CACHE: dict[tuple[str, str], tuple[bytes, str]] = {}


def _cell_splits(splits: Any, cell: Cell) -> tuple[Any, str | None]:
    """The cell's test sample of ``splits`` (an object, or a path read once per process).

    Returns the splits and, for a path, their fingerprint (None for an object).
    """
    from robustq.data import Splits, subsample_test

    if not isinstance(splits, str | os.PathLike):
        return subsample_test(splits, cell.test_limit, cell.test_seed), None
    key = (str(Path(splits).resolve()), cell.test_limit, cell.test_seed)
    if key not in _SPLITS_CACHE:
        loaded = subsample_test(Splits.load(key[0]), cell.test_limit, cell.test_seed)
        _SPLITS_CACHE[key] = (loaded, splits_fingerprint(loaded))
    return _SPLITS_CACHE[key]


def _cached_variant(variants_dir: str | os.PathLike[str], scheme: str) -> tuple[bytes, str]:
    from robustq.convert import read_manifest

    folder = str(Path(variants_dir).resolve())
    if (folder, scheme) not in _VARIANT_CACHE:
        matches = [v for v in read_manifest(folder) if v.scheme == scheme]
        if not matches:
            raise InputError(f"no {scheme} variant in {folder}")
        blob = matches[0].read_bytes(folder)
        _VARIANT_CACHE[(folder, scheme)] = (blob, _sha256(blob))
    return _VARIANT_CACHE[(folder, scheme)]


def run_cell(cell: Cell, variants_dir: str | os.PathLike[str], splits: Any) -> dict[str, Any]:
    """Run one cell: read its variant from ``variants_dir`` and return its row.

    ``splits`` is a :class:`~robustq.data.Splits` or the path of a splits
    file (the cell's ``test_limit`` sample is taken from it). Files are
    read once per process and checked against the cell's hashes
    (InputError if the variant or the splits changed since the sweep was
    planned). The row holds the cell's columns, the ensemble's seed-style
    scores (``accuracy_score``, ``balanced_accuracy_score``,
    ``cohen_kappa_score``, ``Class_k``), the clean scores, degradation
    (``delta_*``, ``flip_rate``, ``probability_shift``), member statistics
    (mean and population std over the perturbed members; the share of test
    samples with a NaN or infinite output), how many tensors
    were targeted and changed, timings and library versions.
    """
    blob, digest = _cached_variant(variants_dir, cell.scheme)
    if cell.variant_sha256 and digest != cell.variant_sha256:
        raise InputError(f"the {cell.scheme} variant changed since the sweep was planned")
    data, splits_digest = _cell_splits(splits, cell)
    if splits_digest is not None and cell.splits_sha256 and splits_digest != cell.splits_sha256:
        raise InputError("the splits file changed since the sweep was planned")
    return evaluate_cell(cell, blob, data)


def _worker_init(driver: Any) -> None:
    """Local worker start-up: exit as soon as the driver process is gone.

    ``driver`` is the read end of a pipe whose only write end the driver
    holds; it reads EOF when the driver exits for any reason (SIGKILL
    included), and the worker then exits at once instead of waiting forever
    for work that will never come.
    """
    import threading

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                driver.recv_bytes()
        os._exit(1)

    threading.Thread(target=watch, name="robustq-driver-watch", daemon=True).start()


def _worker_task(cell: Cell, variants_dir: str, splits_path: str) -> dict[str, Any]:
    """A local worker process's entry point (module level, so it pickles by reference)."""
    return run_cell(cell, variants_dir, splits_path)


# --------------------------------------------------------------------------- the results store
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsStore:
    """The SQLite results database of one run folder (``results.sqlite``).

    Tables: ``meta`` (format, current spec and its hash), ``specs`` (every
    spec the run has used), ``plan`` (the current grid: key, position and
    the cell) and ``results`` (one JSON row per finished cell, ``key``
    PRIMARY KEY). The database is in WAL mode with full synchronisation and
    every row is written in its own transaction, so a process killed at any
    moment leaves each row either absent or whole, never twice. Only the
    sweep driver writes; readers may look at any time.
    """

    def __init__(self, run_dir: str | os.PathLike[str], create: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILE
        if not self.path.exists():
            if not create:
                raise InputError(f"no sweep results in {self.run_dir} (no {RESULTS_FILE})")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS specs (
                    hash TEXT PRIMARY KEY, spec TEXT NOT NULL, stored_at TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS plan (
                    key TEXT PRIMARY KEY, position INTEGER NOT NULL, cell TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS results (
                    key TEXT PRIMARY KEY, row TEXT NOT NULL, finished_at TEXT NOT NULL);
                """
            )
            stored = self.meta().get("format")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path} is not a robustq results database ({exc})") from None
        if stored not in (None, _STORE_FORMAT):
            raise InputError(f"{self.path} is not a robustq results database")

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (empty for a new store)."""
        return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

    def spec(self) -> dict[str, Any] | None:
        """The stored spec (as written by :meth:`prepare`), or None for a new store."""
        text = self.meta().get("spec")
        return None if text is None else json.loads(text)

    def prepare(
        self,
        spec: Mapping[str, Any],
        identity: Mapping[str, Any],
        cells: Sequence[Cell],
        extend: bool,
    ) -> None:
        """Record the run's spec and plan, or check them against the stored ones.

        ``identity`` is the spec without paths plus the data hashes; its hash
        decides whether the spec changed. A new store records everything in
        one transaction. The same identity again: nothing to do (resume). A
        different one: ConfigError, unless ``extend`` and every cell of the
        stored plan is still in the new grid (the old rows stay valid
        because equal keys mean equal inputs); then the new spec and plan
        replace the old ones and every row is kept.
        """
        identity_hash = _sha256(_canonical(identity))
        meta = self.meta()
        if meta.get("spec_hash") == identity_hash:
            return
        if meta:
            old_identity = json.loads(meta["identity"])
            if not extend:
                raise ConfigError(
                    f"{self.run_dir} holds a sweep with a different spec "
                    f"({_differences(old_identity, identity)}); pass extend to add cells to it, "
                    "or use a new run folder"
                )
            planned = {cell.key for cell in cells}
            dropped = [
                json.loads(text)
                for key, text in self._db.execute("SELECT key, cell FROM plan")
                if key not in planned
            ]
            dropped_rows = [key for key in self.finished() if key not in planned]
            if dropped or dropped_rows:
                count = len(dropped) or len(dropped_rows)
                example = _cell_label(dropped[0]) if dropped else dropped_rows[0]
                raise ConfigError(
                    f"cannot extend {self.run_dir}: the new spec drops {count} of its cells "
                    f"(e.g. {example}; {_differences(old_identity, identity)}); "
                    "extending may only add cells"
                )
        with self._transaction() as db:
            spec_text = _canonical(dict(spec))
            values = {
                "format": _STORE_FORMAT,
                "version": str(_STORE_VERSION),
                "spec": spec_text,
                "identity": _canonical(dict(identity)),
                "spec_hash": identity_hash,
                "updated_at": _now(),
            }
            if not meta:
                values["created_at"] = values["updated_at"]
            db.executemany(
                "INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", list(values.items())
            )
            db.execute(
                "INSERT OR REPLACE INTO specs(hash, spec, stored_at) VALUES (?, ?, ?)",
                (identity_hash, spec_text, values["updated_at"]),
            )
            db.execute("DELETE FROM plan")
            db.executemany(
                "INSERT INTO plan(key, position, cell) VALUES (?, ?, ?)",
                [(c.key, i, _canonical(c.to_dict())) for i, c in enumerate(cells)],
            )

    def finished(self) -> set[str]:
        """Keys of the cells whose rows are stored."""
        return {key for (key,) in self._db.execute("SELECT key FROM results")}

    def add(self, row: Mapping[str, Any]) -> bool:
        """Store one finished cell's row in its own transaction; False if its key was there."""
        text = json.dumps(_plain(dict(row)), allow_nan=True)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO results(key, row, finished_at) VALUES (?, ?, ?)",
                (row["key"], text, _now()),
            )
        return cursor.rowcount == 1

    def delete(self, keys: Iterable[str]) -> int:
        """Forget the rows of ``keys`` (they are recomputed by the next run); return how many."""
        with self._transaction() as db:
            cursor = db.executemany("DELETE FROM results WHERE key = ?", [(k,) for k in keys])
        return cursor.rowcount

    def counts(self) -> tuple[int, int]:
        """(finished cells, planned cells)."""
        done = self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        planned = self._db.execute("SELECT COUNT(*) FROM plan").fetchone()[0]
        return int(done), int(planned)

    def frame(self) -> pd.DataFrame:
        """Every stored row as a DataFrame, in grid order (``finished_at`` added)."""
        query = (
            "SELECT r.row, r.finished_at FROM results r LEFT JOIN plan p ON p.key = r.key "
            "ORDER BY p.position IS NULL, p.position, r.key"
        )
        rows = []
        for text, finished_at in self._db.execute(query):
            row = json.loads(text)
            row["finished_at"] = finished_at
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            # rows stored before the data-noise axis existed were on the data as stored
            for column, value in (("data_noise", ""), ("data_noise_label", NO_DATA_NOISE)):
                frame[column] = frame[column].fillna(value) if column in frame else value
            if "data_noise_seed" not in frame:
                frame["data_noise_seed"] = 0
        if "layer" in frame:
            frame["layer"] = frame["layer"].astype("Int64")
        return frame


def _cell_label(data: Mapping[str, Any]) -> str:
    try:
        return Cell(**data).label
    except (TypeError, ConfigError):
        return str(data.get("key", "?"))


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A short list of what differs between two run identities."""
    changes: list[str] = []
    if old.get("splits_sha256") != new.get("splits_sha256"):
        changes.append("the splits' data differ")
    old_v, new_v = old.get("variants_sha256", {}), new.get("variants_sha256", {})
    for scheme in sorted(set(old_v) & set(new_v)):
        if old_v[scheme] != new_v[scheme]:
            changes.append(f"the {scheme} variant differs")
    old_s, new_s = old.get("spec", {}), new.get("spec", {})
    keys = [k for k in _SPEC_KEYS if old_s.get(k) != new_s.get(k) and k in set(old_s) | set(new_s)]
    if keys:
        changes.append("changed: " + ", ".join(keys))
    return "; ".join(changes) or "changed spec"


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder: one driver (the only writer) at a time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the single-writer rule is the user's
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".sweep.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another sweep is running in {run_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- executors
EXECUTORS: tuple[str, ...] = ("local", "ray")
"""Where cells run: local worker processes (or in-process for one job), or Ray tasks."""

_OnRow = Callable[[dict[str, Any]], None]


def _run_in_process(cells: Sequence[Cell], resolved: _Resolved, on_row: _OnRow) -> None:
    for cell in cells:
        on_row(evaluate_cell(cell, resolved.blobs[cell.scheme], resolved.splits))


def _mp_context() -> Any:
    """A start method that never forks a process holding TensorFlow or LiteRT state.

    ``forkserver`` (POSIX) forks workers from a fresh server process that has
    imported this module once, so workers start fast; ``spawn`` elsewhere.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(_PRELOAD))
        return context
    return multiprocessing.get_context("spawn")


def _run_local(cells: Sequence[Cell], resolved: _Resolved, jobs: int, on_row: _OnRow) -> None:
    """Run cells in ``jobs`` worker processes; the driver stores each row as it completes."""
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    if jobs == 1 or len(cells) <= 1:
        _run_in_process(cells, resolved, on_row)
        return
    workers = min(jobs, len(cells))
    context = _mp_context()
    # Workers watch the read end; the write end never leaves this process (fds are not
    # inheritable), so its closing - on any exit, SIGKILL included - stops them.
    watch, alive = context.Pipe(duplex=False)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(watch,)
    )
    todo = iter(cells)
    pending: set[Future] = set()
    args = (str(resolved.variants_dir), str(resolved.splits_path))

    def refill() -> None:
        # a bounded window of submitted cells keeps the driver's memory flat in the grid size
        while len(pending) < workers * _IN_FLIGHT_PER_WORKER:
            cell = next(todo, None)
            if cell is None:
                return
            pending.add(pool.submit(_worker_task, cell, *args))

    try:
        refill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                on_row(future.result())
            refill()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        alive.close()  # stops the workers now, cells in flight included
        raise
    pool.shutdown(wait=True)
    alive.close()
    watch.close()


def _ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the Ray executor needs Ray: install robustq[ray] (pip install 'robustq[ray]')"
        ) from None
    return ray


def _run_ray(
    cells: Sequence[Cell],
    resolved: _Resolved,
    jobs: int | None,
    address: str | None,
    on_row: _OnRow,
) -> None:
    """Run cells as Ray tasks (same :func:`evaluate_cell`); the driver stores each row.

    Connects to the cluster at ``address``, or starts a local Ray instance
    with ``jobs`` CPUs when None (shut down afterwards). The variant bytes
    and the splits go to the object store once, so workers need no shared
    file system; robustq must be installed where the tasks run.
    """
    import logging

    ray = _ray_module()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=jobs or os.cpu_count() or 1, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot start or reach Ray at {address or 'local'}: {first}"
            ) from None
        started = True
    try:
        capacity = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=2)(evaluate_cell)
        splits_ref = ray.put(resolved.splits)
        blob_refs = {scheme: ray.put(blob) for scheme, blob in resolved.blobs.items()}
        todo = iter(cells)
        pending: list[Any] = []

        def refill() -> None:
            while len(pending) < capacity * _IN_FLIGHT_PER_WORKER:
                cell = next(todo, None)
                if cell is None:
                    return
                pending.append(task.remote(cell, blob_refs[cell.scheme], splits_ref))

        refill()
        while pending:
            done, rest = ray.wait(pending, num_returns=1)
            pending[:] = rest
            try:
                row = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            on_row(row)
            refill()
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- the sweep
@dataclass(frozen=True)
class SweepSummary:
    """What one :func:`run_sweep` call did: cells in the grid, already stored, computed now."""

    run_dir: Path
    total: int
    skipped: int
    computed: int
    seconds: float
    executor: str
    jobs: int


def _check_jobs(jobs: int | None) -> int:
    if jobs is None:
        return os.cpu_count() or 1
    if not _is_int(jobs) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1 (got {jobs!r})")
    return int(jobs)


def run_sweep(
    spec: SweepSpec | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
    extend: bool = False,
    progress: bool = True,
) -> SweepSummary:
    """Run every missing cell of a sweep into the run folder ``out_dir`` and return the counts.

    ``spec`` is a :class:`SweepSpec` or a spec file. The spec and the data
    are validated first (nothing is written before that); then the run's
    ``results.sqlite`` is created, or checked (a different spec is refused
    unless ``extend``, see :meth:`ResultsStore.prepare`); finished cells are
    skipped and the rest run with ``executor`` ``"local"`` (``jobs`` worker
    processes, default the CPU count; ``jobs=1`` in this process) or
    ``"ray"`` (tasks on the cluster at ``address``, or a local Ray instance
    with ``jobs`` CPUs). Each row is stored by this process as soon as its
    cell finishes, with a progress bar and ETA on stderr when ``progress``.
    Local workers are started with ``forkserver`` (``spawn`` off POSIX), so,
    as with any multiprocessing code, a script calling this with ``jobs`` > 1
    needs the ``if __name__ == "__main__":`` guard.
    """
    started = time.perf_counter()
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if executor == "ray":
        _ray_module()
    elif address is not None:
        raise ConfigError("address applies to the Ray executor only (executor='ray')")
    workers = _check_jobs(jobs)
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    resolved = _resolve(spec)
    _preflight(resolved)
    cells = _cells(resolved)
    run_dir = Path(out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"run folder {run_dir} is a file")
    with _run_lock(run_dir), ResultsStore(run_dir, create=True) as store:
        store.prepare(spec.to_dict(), resolved.fingerprint(), cells, extend)
        write_json(run_dir / "spec.json", {"spec": spec.to_dict(), **resolved.fingerprint()})
        finished = store.finished()
        todo = [cell for cell in cells if cell.key not in finished]
        bar = _progress(len(cells), len(cells) - len(todo), progress)
        computed = 0

        def on_row(row: dict[str, Any]) -> None:
            nonlocal computed
            store.add(row)
            computed += 1
            bar.update(1)

        try:
            if todo and executor == "local":
                _run_local(todo, resolved, workers, on_row)
            elif todo:
                _run_ray(todo, resolved, jobs, address, on_row)
        finally:
            bar.close()
    return SweepSummary(
        run_dir=run_dir,
        total=len(cells),
        skipped=len(cells) - len(todo),
        computed=computed,
        seconds=time.perf_counter() - started,
        executor=executor,
        jobs=workers,
    )


def _progress(total: int, done: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="cell",
        desc="sweep",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.05,
    )


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
