"""The sweep spec: schemes, fault levels, ensemble settings, data noise; read from YAML/TOML.

:class:`SweepSpec` (with :class:`FaultLevels` and :class:`EnsembleSetting`)
validates everything at construction; :func:`load_spec` reads a ``.yaml`` /
``.toml`` file. The small JSON helpers every sweep module hashes with live here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError

DEFAULT_PARAMETERS: dict[str, str] = {
    "gaussian": "std_factor",
    "uniform": "half_width_factor",
    "multiplicative": "std",
    "bitflip": "ber",
    "stuck_at": "fraction",
    "scale": "std",
}
"""The parameter a fault's levels set when the spec does not name one."""

ALL_SCHEMES = "all"
"""``schemes: all`` in a spec: every variant of the manifest, in manifest order."""
NO_DATA_NOISE = "none"
"""The ``data_noise_label`` of cells evaluated on the test data as stored (no acquisition noise)."""

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
