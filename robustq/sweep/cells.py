"""The grid and one cell: expanding a spec into keyed cells, and evaluating one cell into a row.

:func:`grid` reads the variants and splits a spec names, pins their hashes and
expands the spec into frozen :class:`Cell` s in a fixed order;
:func:`evaluate_cell` (pure: cell, bytes, splits -> row) and :func:`run_cell`
(reads the files once per process) evaluate one.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import itertools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError, RobustqError
from robustq.sweep.spec import ALL_SCHEMES, NO_DATA_NOISE, SweepSpec, _canonical, _sha256, load_spec

# Clean predictions kept per process (one per variant x data condition x repeat's noise draw).
_CLEAN_CACHE_SIZE = 16

_KEY_VERSION = 1

_SWEEP_THREADS = 1  # parallelism is across cells; one thread also keeps rows executor-independent


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
    from robustq.ensemble import predict_splits

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
    prediction = predict_splits(model_bytes, splits, config)
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
    if cell.variant_sha256 and _digest(model_bytes, _sha256) != cell.variant_sha256:
        raise InputError(f"the {cell.scheme} variant changed since the sweep was planned")
    if cell.splits_sha256 and _digest(splits, splits_fingerprint) != cell.splits_sha256:
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
_SPLITS_CACHE: dict[tuple[str, int, int], Any] = {}
_VARIANT_CACHE: dict[tuple[str, str], bytes] = {}
# Hashes of the inputs this process has checked, by object identity, with the object kept so
# its id cannot be reused: variant bytes and Splits (read-only arrays) never change, so each
# is hashed once per process however many cells use it.
_DIGESTS: dict[int, tuple[Any, str]] = {}
_DIGESTS_SIZE = 16


def _digest(obj: Any, compute: Callable[[Any], str]) -> str:
    """``compute(obj)``, remembered for this very object (immutable inputs only)."""
    known = _DIGESTS.get(id(obj))
    if known is not None and known[0] is obj:
        return known[1]
    if len(_DIGESTS) >= _DIGESTS_SIZE:
        _DIGESTS.clear()
    value = compute(obj)
    _DIGESTS[id(obj)] = (obj, value)
    return value


def _cell_splits(splits: Any, cell: Cell) -> Any:
    """The cell's test sample of ``splits`` (an object, or a path read once per process)."""
    from robustq.data import Splits, subsample_test

    if not isinstance(splits, str | os.PathLike):
        return subsample_test(splits, cell.test_limit, cell.test_seed)
    key = (str(Path(splits).resolve()), cell.test_limit, cell.test_seed)
    if key not in _SPLITS_CACHE:
        _SPLITS_CACHE[key] = subsample_test(Splits.load(key[0]), cell.test_limit, cell.test_seed)
    return _SPLITS_CACHE[key]


def _cached_variant(variants_dir: str | os.PathLike[str], scheme: str) -> bytes:
    from robustq.convert import read_manifest

    folder = str(Path(variants_dir).resolve())
    if (folder, scheme) not in _VARIANT_CACHE:
        matches = [v for v in read_manifest(folder) if v.scheme == scheme]
        if not matches:
            raise InputError(f"no {scheme} variant in {folder}")
        _VARIANT_CACHE[(folder, scheme)] = matches[0].read_bytes(folder)
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
    return evaluate_cell(
        cell, _cached_variant(variants_dir, cell.scheme), _cell_splits(splits, cell)
    )
