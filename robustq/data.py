"""Scenes and splits: everything before training (the synthetic scene is in robustq.synthetic).

This module owns the first arrow of robustq's data flow. It loads a labelled
hyperspectral cube (``H x W x B`` plus an ``H x W`` ground-truth map, from
``.npy``, ``.npz`` or MATLAB ``.mat``) or a sample table (``N x B`` plus a label
vector, also from ``.csv``) into a :class:`Scene` of clean, remapped samples,
and cuts a scene into seeded, per-class train / validation / test
:class:`Splits`, min-max scaled from the training set and shaped ``(N, B, 1, 1)``
like the original research code's spectral samples. The array functions in the
middle are pure; file reading and writing happen only in the loaders and in
:meth:`Splits.save` / :meth:`Splits.load`. Randomness always comes from
``numpy.random.default_rng`` / ``SeedSequence`` seeded by the caller, files are
never unpickled, and every user mistake raises :class:`~robustq.errors.InputError`
or :class:`~robustq.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import numbers
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError
from robustq.fileio import atomic_write

__all__ = [
    "Scene",
    "Splits",
    "load_cube_scene",
    "load_sample_scene",
    "make_splits",
    "scene_from_cube",
    "scene_from_samples",
]

_SPLITS_FORMAT = "robustq-splits"
_SPLITS_VERSION = 1
# Tolerance for per-class counts computed as floor(n * fraction): 250 * 0.1 and
# similar products must not lose a sample to binary floating point.
_FLOOR_EPS = 1e-9


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view, so frozen dataclasses are not mutated through their arrays."""
    view = array.view()
    view.flags.writeable = False
    return view


# --------------------------------------------------------------------------- scene


@dataclass(frozen=True, eq=False)
class Scene:
    """Clean labelled samples of one data set, ready to be split.

    ``samples`` is ``N x B`` float32 with background and non-finite samples
    removed; ``labels`` holds class indices ``0..K-1`` (int64) and
    ``label_map[k]`` the original label value of class ``k``. ``shape`` is the
    ``(H, W)`` of the source cube and ``positions`` the flat (row-major) pixel
    index of every sample in it, so classification maps can be drawn; both are
    None for sample tables. Arrays are stored as read-only views.
    """

    samples: np.ndarray
    labels: np.ndarray
    label_map: tuple[int, ...]
    shape: tuple[int, int] | None = None
    positions: np.ndarray | None = None
    name: str = "scene"

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        labels = np.asarray(self.labels, dtype=np.int64)
        if samples.ndim != 2:
            raise InputError(f"scene samples must be N x B, got shape {samples.shape}")
        if labels.shape != (samples.shape[0],):
            raise InputError(
                f"scene labels must have shape ({samples.shape[0]},), got {labels.shape}"
            )
        label_map = tuple(int(v) for v in self.label_map)
        if labels.size and (labels.min() < 0 or labels.max() >= len(label_map)):
            raise InputError(f"scene labels must lie in 0..{len(label_map) - 1}")
        object.__setattr__(self, "samples", _read_only(samples))
        object.__setattr__(self, "labels", _read_only(labels))
        object.__setattr__(self, "label_map", label_map)
        if self.shape is not None:
            object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))
        if self.positions is not None:
            positions = np.asarray(self.positions, dtype=np.int64)
            if positions.shape != labels.shape:
                raise InputError(
                    f"scene positions must have shape {labels.shape}, got {positions.shape}"
                )
            object.__setattr__(self, "positions", _read_only(positions))

    @property
    def n_bands(self) -> int:
        """Number of spectral bands ``B``."""
        return int(self.samples.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.label_map)

    @property
    def class_counts(self) -> np.ndarray:
        """Samples per class, an int64 array of length ``K``."""
        return np.bincount(self.labels, minlength=self.n_classes).astype(np.int64)


def _integer_labels(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as int64, or InputError if any value is not an integer."""
    kind = values.dtype.kind
    if kind in "iub":
        return values.astype(np.int64)
    if kind == "f":
        bad = ~np.isfinite(values)
        bad[~bad] = values[~bad] != np.round(values[~bad])
        if bad.any():
            raise InputError(f"{what} must be integers, found the value {values[bad][0].item()!r}")
        return values.astype(np.int64)
    raise InputError(f"{what} must be integers, got an array of dtype {values.dtype}")


def _numeric(values: np.ndarray, what: str) -> np.ndarray:
    if values.dtype.kind not in "iubf":
        raise InputError(f"{what} must be numeric, got an array of dtype {values.dtype}")
    return values


def _remap(raw_labels: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    label_map = np.unique(raw_labels)
    return np.searchsorted(label_map, raw_labels).astype(np.int64), tuple(int(v) for v in label_map)


def _finish_scene(
    samples: np.ndarray,
    raw_labels: np.ndarray,
    positions: np.ndarray | None,
    shape: tuple[int, int] | None,
    name: str,
    what: str,
) -> Scene:
    """Drop non-finite samples, check what is left and remap the labels."""
    finite = np.isfinite(samples).all(axis=1)
    samples, raw_labels = samples[finite], raw_labels[finite]
    if positions is not None:
        positions = positions[finite]
    if samples.shape[0] == 0:
        raise InputError(f"{what} has no valid samples (all are background or contain NaN)")
    labels, label_map = _remap(raw_labels)
    if len(label_map) < 2:
        raise InputError(f"{what} has only one class (label {label_map[0]}); at least 2 are needed")
    return Scene(samples, labels, label_map, shape, positions, name)


def scene_from_cube(
    cube: np.ndarray, gt: np.ndarray, band_axis: int = -1, name: str = "cube"
) -> Scene:
    """Build a :class:`Scene` from a hyperspectral cube and its ground-truth map.

    ``cube`` is 3-D with bands on ``band_axis`` (moved last, giving ``H x W x B``)
    and ``gt`` is an ``H x W`` map of integer labels where 0 means background.
    Background pixels and pixels with any non-finite value (NaN or infinity) are
    dropped, the remaining labels are remapped to ``0..K-1`` in increasing order
    of their original value (kept in ``label_map``), and each sample's flat
    row-major pixel index is kept in ``positions``. Raises InputError for wrong
    dimensions, mismatched shapes, non-integer or negative labels, no valid
    samples, or fewer than two classes.
    """
    cube = _numeric(np.asarray(cube), "cube")
    gt = np.asarray(gt)
    if cube.ndim != 3:
        raise InputError(f"cube must be 3-D (H x W x B), got shape {cube.shape}")
    if isinstance(band_axis, bool) or not isinstance(band_axis, numbers.Integral):
        raise ConfigError(f"band_axis must be an integer, got {band_axis!r}")
    if not -3 <= band_axis <= 2:
        raise ConfigError(f"band_axis must be one of -3..2 for a 3-D cube, got {band_axis}")
    cube = np.moveaxis(cube, int(band_axis), -1)
    if gt.ndim != 2:
        raise InputError(f"ground truth must be 2-D (H x W), got shape {gt.shape}")
    if gt.shape != cube.shape[:2]:
        raise InputError(
            f"cube is {cube.shape[0]} x {cube.shape[1]} pixels (bands on axis {band_axis}) "
            f"but the ground truth is {gt.shape[0]} x {gt.shape[1]}"
        )
    gt = _integer_labels(gt, "ground-truth labels")
    if (gt < 0).any():
        raise InputError(
            f"ground truth has negative labels ({gt.min()}); use 0 for background/unlabelled"
        )
    flat_gt = gt.reshape(-1)
    positions = np.flatnonzero(flat_gt)
    samples = cube.reshape(-1, cube.shape[-1])[positions].astype(np.float32)
    return _finish_scene(
        samples, flat_gt[positions], positions, (gt.shape[0], gt.shape[1]), name, "cube"
    )


def scene_from_samples(samples: np.ndarray, labels: np.ndarray, name: str = "samples") -> Scene:
    """Build a :class:`Scene` from a sample table ``N x B`` and a label vector ``N``.

    Every label value is a class, including 0 (a sample table has no
    background); labels may be 1-based or arbitrary integers and are remapped
    to ``0..K-1`` in increasing order of their value (kept in ``label_map``).
    ``labels`` may also be an ``N x 1`` or ``1 x N`` matrix. Samples with any
    non-finite value are dropped. Raises InputError for wrong dimensions,
    mismatched lengths, non-integer labels, no valid samples, or fewer than
    two classes.
    """
    samples = _numeric(np.asarray(samples), "samples")
    labels = np.asarray(labels)
    if samples.ndim != 2:
        raise InputError(f"samples must be a 2-D table (N x B), got shape {samples.shape}")
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise InputError(f"labels must be a vector of length N, got shape {labels.shape}")
    if labels.shape[0] != samples.shape[0]:
        raise InputError(f"{samples.shape[0]} samples but {labels.shape[0]} labels")
    labels = _integer_labels(labels, "labels")
    return _finish_scene(samples.astype(np.float32), labels, None, None, name, "sample table")


# --------------------------------------------------------------------------- file loading

_MAT_V73_HINT = (
    "is a MATLAB v7.3 (HDF5) file, which needs h5py; re-save it in MATLAB with "
    "save(..., '-v7') or convert it to .npy"
)


def _existing(path: str | os.PathLike[str], role: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{role} not found: {path}")
    if not path.is_file():
        raise InputError(f"{role} is not a file: {path}")
    return path


def _check_magic(path: Path, magic: bytes, kind: str) -> None:
    # Without this, np.load treats any other file as a pickle and says so.
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(magic))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if start != magic:
        raise InputError(f"{path} is not {kind} file")


def _read_npy(path: Path) -> np.ndarray:
    _check_magic(path, b"\x93NUMPY", "a .npy")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(
                f"{path} contains pickled objects; robustq never unpickles files"
            ) from None
        raise InputError(f"cannot read {path} as .npy: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as .npy: {exc}") from None
    return array


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    _check_magic(path, b"PK", "an .npz (zip)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays: dict[str, np.ndarray] = {}
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as exc:
                    if "pickle" in str(exc).lower():
                        raise InputError(
                            f"{path} contains pickled objects (key {key!r}); "
                            "robustq never unpickles files"
                        ) from None
                    raise
            return arrays
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {path} as .npz: {exc}") from None


def _read_mat(path: Path) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError:
        return _read_mat_v73(path)
    except (ValueError, TypeError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise InputError(f"cannot read {path} as a MATLAB .mat file: {exc}") from None
    return {
        key: value
        for key, value in contents.items()
        if not key.startswith("__") and isinstance(value, np.ndarray)
    }


def _read_mat_v73(path: Path) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise InputError(f"{path} {_MAT_V73_HINT}") from None
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        for key, item in h5.items():
            if isinstance(item, h5py.Dataset) and item.dtype.kind in "iubf":
                # MATLAB writes column-major data, so HDF5 sees the axes reversed.
                arrays[key] = np.asarray(item[()]).T
    return arrays


def _read_csv(path: Path, what: str) -> np.ndarray:
    """A numeric table from CSV; a first row that is not numeric is taken as a header."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read {path} as CSV: {exc}") from None
    text = frame.fillna("").apply(lambda column: column.str.strip())
    values = text.apply(pd.to_numeric, errors="coerce")
    missing = text.apply(lambda column: column.str.lower().isin(["", "nan", "na", "n/a"]))
    bad = (values.isna() & ~missing).to_numpy()
    if bad[0].any() and not bad[1:].any():
        values, bad = values.iloc[1:], bad[1:]
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"{what} must be numeric; {path} has {text.iat[row, col]!r} "
            f"at row {row + 1}, column {col + 1}"
        )
    if len(values) == 0:
        raise InputError(f"{path} has no data rows")
    return values.to_numpy(dtype=np.float64)


def _read_arrays(path: Path, role: str, allow_csv: bool) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays in ``path`` and whether they are named (``.npz``/``.mat``)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return {"": _read_npy(path)}, False
    if suffix == ".npz":
        return _read_npz(path), True
    if suffix == ".mat":
        return _read_mat(path), True
    if suffix == ".csv" and allow_csv:
        return {"": _read_csv(path, role.split()[0])}, False
    expected = ".npy, .npz, .mat or .csv" if allow_csv else ".npy, .npz or .mat"
    raise InputError(f"unknown file extension {suffix!r} for {role} {path}; expected {expected}")


def _describe(arrays: dict[str, np.ndarray]) -> str:
    if not arrays:
        return "none"
    return ", ".join(
        f"{key} ({' x '.join(str(n) for n in value.shape) or 'scalar'} {value.dtype})"
        for key, value in arrays.items()
    )


def _pick(
    arrays: dict[str, np.ndarray],
    keyed: bool,
    key: str | None,
    *,
    path: Path,
    key_arg: str,
    expected: str,
    accept: Callable[[np.ndarray], bool],
) -> np.ndarray:
    """The array named ``key``, or the only array that ``accept``s, from one file."""
    if not keyed:
        if key is not None:
            raise ConfigError(f"{key_arg} applies only to .npz/.mat files, not {path.name}")
        return arrays[""]
    if key is not None:
        if key not in arrays:
            raise InputError(
                f"{key_arg}={key!r} is not in {path}; available keys: {_describe(arrays)}"
            )
        return arrays[key]
    candidates = [
        name for name, value in arrays.items() if value.dtype.kind in "iubf" and accept(value)
    ]
    if len(candidates) == 1:
        return arrays[candidates[0]]
    if not candidates:
        raise InputError(
            f"no {expected} array in {path}; available keys: {_describe(arrays)}; "
            f"pass {key_arg}= to choose one"
        )
    raise InputError(
        f"{path} holds several {expected} arrays ({', '.join(candidates)}); "
        f"pass {key_arg}= to choose one; available keys: {_describe(arrays)}"
    )


def _is_matrix(value: np.ndarray) -> bool:
    return value.ndim == 2 and min(value.shape) > 1


def _is_vector(value: np.ndarray) -> bool:
    return value.ndim == 1 or (value.ndim == 2 and min(value.shape) == 1)


def _read_pair(
    first: str | os.PathLike[str],
    second: str | os.PathLike[str],
    roles: tuple[str, str],
    allow_csv: bool,
) -> tuple[Path, Path, tuple[dict[str, np.ndarray], bool], tuple[dict[str, np.ndarray], bool]]:
    first_path = _existing(first, roles[0])
    second_path = _existing(second, roles[1])
    first_arrays = _read_arrays(first_path, roles[0], allow_csv)
    if second_path.resolve() == first_path.resolve():
        second_arrays = first_arrays
    else:
        second_arrays = _read_arrays(second_path, roles[1], allow_csv)
    return first_path, second_path, first_arrays, second_arrays


def load_cube_scene(
    cube_path: str | os.PathLike[str],
    gt_path: str | os.PathLike[str],
    *,
    cube_key: str | None = None,
    gt_key: str | None = None,
    band_axis: int = -1,
    name: str | None = None,
) -> Scene:
    """Load a hyperspectral cube and its ground-truth map from files into a :class:`Scene`.

    Both files may be ``.npy``, ``.npz`` or MATLAB ``.mat`` (v7 and older; a
    v7.3/HDF5 file is read only if h5py is installed, otherwise the error says
    how to convert it), and may be the same file. In ``.npz``/``.mat`` files the
    cube is the only 3-D array and the ground truth the only 2-D matrix unless
    ``cube_key``/``gt_key`` name them; when the choice is ambiguous the error
    lists the available keys. ``band_axis`` is the cube axis holding the bands.
    Ground-truth value 0 is background. Files are never unpickled. The scene
    name defaults to the cube file's stem. See :func:`scene_from_cube` for the
    cleaning and remapping.
    """
    cube_file, gt_file, cube_arrays, gt_arrays = _read_pair(
        cube_path, gt_path, ("cube file", "ground-truth file"), allow_csv=False
    )
    cube = _pick(
        *cube_arrays,
        cube_key,
        path=cube_file,
        key_arg="cube_key",
        expected="3-D (cube)",
        accept=lambda value: value.ndim == 3,
    )
    gt = _pick(
        *gt_arrays,
        gt_key,
        path=gt_file,
        key_arg="gt_key",
        expected="2-D (ground truth)",
        accept=_is_matrix,
    )
    return scene_from_cube(cube, gt, band_axis=band_axis, name=name or cube_file.stem)


def load_sample_scene(
    samples_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    *,
    samples_key: str | None = None,
    labels_key: str | None = None,
    name: str | None = None,
) -> Scene:
    """Load a sample table ``N x B`` and its label vector ``N`` from files into a :class:`Scene`.

    Files may be ``.npy``, ``.npz``, MATLAB ``.mat`` or ``.csv`` (comma
    separated, an optional non-numeric header row, empty or ``nan`` cells read
    as NaN), and may be the same ``.npz``/``.mat`` file. In ``.npz``/``.mat``
    files the table is the only 2-D matrix and the labels the only vector
    (``N``, ``N x 1`` or ``1 x N``) unless ``samples_key``/``labels_key`` name
    them. Unlike a cube's ground truth, label 0 is NOT background here: every
    label value is a class, remapped to ``0..K-1``. The scene name defaults to
    the samples file's stem. See :func:`scene_from_samples`.
    """
    samples_file, labels_file, sample_arrays, label_arrays = _read_pair(
        samples_path, labels_path, ("samples file", "labels file"), allow_csv=True
    )
    samples = _pick(
        *sample_arrays,
        samples_key,
        path=samples_file,
        key_arg="samples_key",
        expected="2-D (sample table)",
        accept=_is_matrix,
    )
    labels = _pick(
        *label_arrays,
        labels_key,
        path=labels_file,
        key_arg="labels_key",
        expected="vector (labels)",
        accept=_is_vector,
    )
    return scene_from_samples(samples, labels, name=name or samples_file.stem)


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True, eq=False)
class Splits:
    """Seeded train / validation / test splits of a :class:`Scene`, scaled for training.

    ``x_*`` are float32 ``(N, B, 1, 1)`` (the reference model's spectral sample
    layout), min-max scaled with the training set's global ``scale_min`` and
    ``scale_max``; ``y_*`` are class indices ``0..K-1``; ``idx_*`` are the
    (ascending) indices of the samples in the scene. ``shape`` and
    ``positions`` are the scene's (``positions[idx_test]`` locates the test
    pixels), None for sample tables. Arrays are stored as read-only views.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    idx_train: np.ndarray
    idx_val: np.ndarray
    idx_test: np.ndarray
    scale_min: float
    scale_max: float
    label_map: tuple[int, ...]
    n_classes: int
    n_bands: int
    scene_name: str
    seed: int
    shape: tuple[int, int] | None = None
    positions: np.ndarray | None = field(default=None, repr=False)

    _ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    _INDICES = ("idx_train", "idx_val", "idx_test")

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            x = np.asarray(getattr(self, f"x_{part}"), dtype=np.float32)
            y = np.asarray(getattr(self, f"y_{part}"), dtype=np.int64)
            idx = np.asarray(getattr(self, f"idx_{part}"), dtype=np.int64)
            if x.ndim != 4 or x.shape[1:] != (self.n_bands, 1, 1):
                raise InputError(f"x_{part} must be (N, {self.n_bands}, 1, 1), got {x.shape}")
            if y.shape != (x.shape[0],) or idx.shape != y.shape:
                raise InputError(f"x_{part}, y_{part} and idx_{part} differ in length")
            object.__setattr__(self, f"x_{part}", _read_only(x))
            object.__setattr__(self, f"y_{part}", _read_only(y))
            object.__setattr__(self, f"idx_{part}", _read_only(idx))
        object.__setattr__(self, "label_map", tuple(int(v) for v in self.label_map))
        if self.shape is not None:
            object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))
        if self.positions is not None:
            object.__setattr__(
                self, "positions", _read_only(np.asarray(self.positions, dtype=np.int64))
            )

    def scale(self, x_raw: np.ndarray) -> np.ndarray:
        """Apply the stored training-set min-max scaling to raw samples.

        ``x_raw`` is ``N x B`` (or already ``(N, B, 1, 1)``) in the scene's
        original units; returns float32 ``(N, B, 1, 1)``. Raises InputError if
        the number of bands differs from the splits'.
        """
        x = np.asarray(x_raw, dtype=np.float64)
        if x.ndim == 4 and x.shape[2:] == (1, 1):
            x = x.reshape(x.shape[0], x.shape[1])
        if x.ndim != 2 or x.shape[1] != self.n_bands:
            raise InputError(
                f"samples to scale must be N x {self.n_bands} (or (N, {self.n_bands}, 1, 1)), "
                f"got shape {x.shape}"
            )
        return _min_max(x, self.scale_min, self.scale_max)

    def summary(self) -> dict[str, Any]:
        """Sizes of the splits, overall and per class, as plain JSON-ready Python values."""
        per_class = {
            part: np.bincount(getattr(self, f"y_{part}"), minlength=self.n_classes).tolist()
            for part in ("train", "val", "test")
        }
        return {
            "scene": self.scene_name,
            "seed": self.seed,
            "n_bands": self.n_bands,
            "n_classes": self.n_classes,
            "label_map": list(self.label_map),
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
            "sizes": {part: int(sum(counts)) for part, counts in per_class.items()},
            "per_class": per_class,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the splits to one ``.npz`` file (atomically, no pickled objects); return its path.

        The file is written exactly at ``path`` (no suffix is added); optional
        fields that are None are omitted. Read it back with :meth:`load`.
        """
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_SPLITS_FORMAT),
            "version": np.array(_SPLITS_VERSION, dtype=np.int64),
            "scale_min": np.array(self.scale_min, dtype=np.float64),
            "scale_max": np.array(self.scale_max, dtype=np.float64),
            "label_map": np.array(self.label_map, dtype=np.int64),
            "n_classes": np.array(self.n_classes, dtype=np.int64),
            "n_bands": np.array(self.n_bands, dtype=np.int64),
            "scene_name": np.array(str(self.scene_name)),
            "seed": np.array(self.seed, dtype=np.int64),
        }
        for key in (*self._ARRAYS, *self._INDICES):
            arrays[key] = np.asarray(getattr(self, key))
        if self.shape is not None:
            arrays["shape"] = np.array(self.shape, dtype=np.int64)
        if self.positions is not None:
            arrays["positions"] = np.asarray(self.positions)

        def write(tmp: Path) -> None:
            # A file object, because np.savez appends ".npz" to a path without it.
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Splits:
        """Read splits written by :meth:`save`; never unpickles.

        Raises InputError if the file is missing, unreadable, contains pickled
        objects, or is not a robustq splits file.
        """
        file = _existing(path, "splits file")
        if file.suffix.lower() == ".npy":
            raise InputError(f"{file} is not a robustq splits file (.npz expected)")
        arrays = _read_npz(file)
        required = {
            "format",
            "scale_min",
            "scale_max",
            "label_map",
            "n_classes",
            "n_bands",
            "scene_name",
            "seed",
            *cls._ARRAYS,
            *cls._INDICES,
        }
        missing = sorted(required - arrays.keys())
        if missing or str(arrays["format"]) != _SPLITS_FORMAT:
            raise InputError(
                f"{file} is not a robustq splits file (missing: {', '.join(missing) or 'format'})"
            )
        if int(arrays.get("version", 0)) > _SPLITS_VERSION:
            raise InputError(f"{file} was written by a newer robustq (format version too new)")
        shape = arrays.get("shape")
        return cls(
            **{key: arrays[key] for key in (*cls._ARRAYS, *cls._INDICES)},
            scale_min=float(arrays["scale_min"]),
            scale_max=float(arrays["scale_max"]),
            label_map=tuple(int(v) for v in arrays["label_map"]),
            n_classes=int(arrays["n_classes"]),
            n_bands=int(arrays["n_bands"]),
            scene_name=str(arrays["scene_name"]),
            seed=int(arrays["seed"]),
            shape=None if shape is None else (int(shape[0]), int(shape[1])),
            positions=arrays.get("positions"),
        )


def _min_max(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` in float64, returned as float32 ``(N, B, 1, 1)``."""
    scaled = (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)
    return scaled.astype(np.float32).reshape(scaled.shape[0], scaled.shape[1], 1, 1)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_fraction(value: object) -> bool:
    return isinstance(value, numbers.Real) and not _is_int(value) and not isinstance(value, bool)


def _class_name(scene: Scene, k: int) -> str:
    return f"class {k} (label {scene.label_map[k]}, {scene.class_counts[k]} samples)"


def _train_counts(scene: Scene, train_size: object) -> np.ndarray:
    counts = scene.class_counts
    n_classes = scene.n_classes
    if _is_int(train_size):
        if int(train_size) < 1:
            raise ConfigError(f"train_size must be at least 1 per class, got {train_size}")
        wanted = np.full(n_classes, int(train_size), dtype=np.int64)
    elif _is_fraction(train_size):
        fraction = float(train_size)
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"train_size as a fraction must be in (0, 1], got {fraction}")
        wanted = np.floor(counts * fraction + _FLOOR_EPS).astype(np.int64)
        empty = np.flatnonzero(wanted == 0)
        if empty.size:
            raise InputError(
                f"train_size={fraction} leaves {_class_name(scene, int(empty[0]))} "
                "without training samples"
            )
    elif isinstance(train_size, Sequence | np.ndarray) and not isinstance(train_size, str):
        values = list(train_size)
        if len(values) != n_classes or not all(_is_int(v) for v in values):
            raise ConfigError(
                f"train_size as a list needs {n_classes} integers (one per class), got {values}"
            )
        wanted = np.array([int(v) for v in values], dtype=np.int64)
        if (wanted < 1).any():
            raise ConfigError(f"train_size counts must be at least 1 per class, got {values}")
    else:
        raise ConfigError(
            f"train_size must be an int, a fraction or a list of ints, got {train_size!r}"
        )
    short = np.flatnonzero(wanted > counts)
    if short.size:
        k = int(short[0])
        raise InputError(
            f"{_class_name(scene, k)} has fewer samples than the {wanted[k]} "
            "requested by train_size"
        )
    return wanted


def _val_counts(scene: Scene, train_counts: np.ndarray, val_size: object) -> np.ndarray:
    if _is_int(val_size):
        if int(val_size) < 0:
            raise ConfigError(f"val_size must be >= 0, got {val_size}")
        wanted = np.full_like(train_counts, int(val_size))
    elif _is_fraction(val_size):
        fraction = float(val_size)
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"val_size as a fraction must be in [0, 1), got {fraction}")
        wanted = np.floor(train_counts * fraction + _FLOOR_EPS).astype(np.int64)
    else:
        raise ConfigError(f"val_size must be an int or a fraction, got {val_size!r}")
    short = np.flatnonzero(wanted >= train_counts)
    if short.size:
        k = int(short[0])
        raise InputError(
            f"val_size={val_size} takes all {train_counts[k]} training picks of "
            f"{_class_name(scene, k)}; at least one must stay in training"
        )
    return wanted


def make_splits(
    scene: Scene,
    train_size: int | float | Sequence[int] = 250,
    val_size: int | float = 0.1,
    seed: int | None = 0,
) -> Splits:
    """Split a scene per class into train / validation / test sets and scale them.

    ``train_size`` picks training samples per class: an int is the same count
    for every class ("balanced", the paper used 250), a float in (0, 1] that
    fraction of each class (floor), a list of ints one count per class.
    ``val_size`` moves part of each class's picks to validation: a float is
    ``floor(picks * val_size)`` (so 250 -> 225 train + 25 val), an int a count
    per class. Everything else is test. Each class is shuffled by its own
    stream, ``default_rng(SeedSequence(seed).spawn(K)[k])``: the first
    ``n_val`` of its permutation are validation, the next picks are training.
    Index arrays are sorted. All splits are min-max scaled with the global
    minimum and maximum of the training set (not validation) and shaped
    ``(N, B, 1, 1)``. ``seed=None`` draws a fresh 32-bit seed from OS entropy
    and records it in :attr:`Splits.seed`. Raises InputError when a class has
    fewer samples than requested or the training data are constant, and
    ConfigError for malformed sizes.
    """
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    if not _is_int(seed) or int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    seed = int(seed)
    train_counts = _train_counts(scene, train_size)
    val_counts = _val_counts(scene, train_counts, val_size)
    streams = np.random.SeedSequence(seed).spawn(scene.n_classes)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for k in range(scene.n_classes):
        members = np.flatnonzero(scene.labels == k)
        order = np.random.default_rng(streams[k]).permutation(members)
        n_val, n_pick = int(val_counts[k]), int(train_counts[k])
        parts["val"].append(order[:n_val])
        parts["train"].append(order[n_val:n_pick])
        parts["test"].append(order[n_pick:])
    idx = {part: np.sort(np.concatenate(chunks)) for part, chunks in parts.items()}
    train_raw = scene.samples[idx["train"]]
    lo, hi = float(train_raw.min()), float(train_raw.max())
    if not hi > lo:
        raise InputError(
            f"training samples are constant (min = max = {lo}); cannot min-max scale them"
        )
    return Splits(
        x_train=_min_max(train_raw, lo, hi),
        y_train=scene.labels[idx["train"]],
        x_val=_min_max(scene.samples[idx["val"]], lo, hi),
        y_val=scene.labels[idx["val"]],
        x_test=_min_max(scene.samples[idx["test"]], lo, hi),
        y_test=scene.labels[idx["test"]],
        idx_train=idx["train"],
        idx_val=idx["val"],
        idx_test=idx["test"],
        scale_min=lo,
        scale_max=hi,
        label_map=scene.label_map,
        n_classes=scene.n_classes,
        n_bands=scene.n_bands,
        scene_name=scene.name,
        seed=seed,
        shape=scene.shape,
        positions=scene.positions,
    )


def subsample_test(splits: Splits, limit: int, seed: int = 0) -> Splits:
    """Return ``splits`` with its test set cut to ``limit`` samples, stratified by class.

    Each class keeps ``limit`` x its share of the test set (largest remainders
    round up, every present class keeps at least one sample), picked with a
    stream derived from ``seed``; train and validation are untouched. A
    ``limit`` of 0 or at least the test size returns ``splits`` unchanged.
    Used to keep slow kernels (int16x8 runs on reference kernels) affordable.
    """
    n_test = len(splits.y_test)
    if limit < 0:
        raise ConfigError(f"test limit must be >= 0 (got {limit})")
    if limit == 0 or limit >= n_test:
        return splits
    classes, counts = np.unique(splits.y_test, return_counts=True)
    exact = counts * limit / n_test
    keep = np.maximum(np.floor(exact).astype(np.int64), 1)
    short = limit - int(keep.sum())
    if short > 0:
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        keep[order[:short]] += 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E57]))
    rows = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(splits.y_test == c), size=min(k, n), replace=False)
                for c, k, n in zip(classes, keep, counts, strict=True)
            ]
        )
    )
    return replace(
        splits,
        x_test=splits.x_test[rows],
        y_test=splits.y_test[rows],
        idx_test=splits.idx_test[rows],
    )
