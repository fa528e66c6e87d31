"""Acquisition-condition noise on data: the paper's gaussian, impulsive and shot noise.

This module owns the simulation of imperfect on-board acquisition on the
*data* (weight faults live in :mod:`robustq.faults`). A :class:`DataNoise`
(a validated frozen dataclass that round-trips through a plain dict) names a
noise model and how much of the data it hits: ``floor(N * pa)`` samples are
affected, and in each of them ``floor(B * pb)`` bands, the same bands for
every affected sample when ``bc`` is true, redrawn per sample otherwise.
``gaussian`` adds ``N(mean, std)`` to the affected entries; ``impulsive`` sets
them to the set's maximum for ``floor(n_affected * pw)`` randomly chosen
affected samples ("white") and to its minimum for the others ("black");
``shot`` clips them at 0 and replaces ``x`` by ``x + Poisson(x)``.
:func:`apply_noise` is a pure, fully vectorised function of an array, a noise
and a seeded ``numpy.random.Generator`` (samples on axis 0, bands on an
explicit ``band_axis``: the last axis for patches ``(N, H, W, B)``, axis 1 for
the ``(N, B, 1, 1)`` spectral layout); :func:`apply_to_splits` noises chosen
sets of a :class:`~robustq.data.Splits`, each from its own ``SeedSequence``
child. The global NumPy RNG is never used and inputs are never modified.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError

__all__ = [
    "NOISES",
    "SETS",
    "DataNoise",
    "affected_counts",
    "apply_noise",
    "apply_to_splits",
    "check_sets",
]

NOISES = ("gaussian", "impulsive", "shot")
"""The data-noise models, by name."""

SETS = ("train", "val", "test")
"""The sets of a Splits that can be noised; each draws from its own SeedSequence child."""

# Same convention as robustq.data's split counts: floor(n * fraction) must not
# lose one to binary floating point (1000 * 0.29 = 289.99999999999997).
_FLOOR_EPS = 1e-9
# Entries processed per block: bounds the temporaries (a few 16 MB arrays)
# whatever the data size. The loop runs over blocks of many samples, never
# over single samples; the random stream depends only on the array's shape.
_BLOCK_ENTRIES = 1 << 22


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"data noise: {name} must be a number (got {value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"data noise: {name} must be finite (got {value})")
    return value


def _fraction(name: str, value: Any) -> float:
    value = _number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"data noise: {name} must be in [0, 1] (got {value:g})")
    return value


@dataclass(frozen=True)
class DataNoise:
    """One acquisition-noise setting: the model's name, its parameters, and what it hits.

    ``name`` is ``gaussian`` (uses ``mean``, ``std``), ``impulsive`` (uses
    ``pw``, the share of affected samples set to the set's maximum) or
    ``shot`` (no parameter of its own). ``pa`` is the fraction of samples
    affected, ``pb`` the fraction of bands affected in each affected sample,
    ``bc`` whether those bands are the same for every affected sample (True)
    or redrawn per sample (False). The defaults are the seed's test-noise
    setting (gaussian, std 1, pa 0.1, pb 1). Validated at construction:
    unknown name, ``pa``/``pb``/``pw`` outside [0, 1], negative or non-finite
    ``std``, non-boolean ``bc`` -> ConfigError. Every field is kept whatever
    the model, so ``to_dict`` / ``from_dict`` round-trip exactly.
    """

    name: str
    mean: float = 0.0
    std: float = 1.0
    pw: float = 0.5
    pa: float = 0.1
    pb: float = 1.0
    bc: bool = True

    def __post_init__(self) -> None:
        if self.name not in NOISES:
            raise ConfigError(f"unknown data noise {self.name!r}; choose from {', '.join(NOISES)}")
        object.__setattr__(self, "mean", _number("mean", self.mean))
        std = _number("std", self.std)
        if std < 0:
            raise ConfigError(f"data noise: std must be >= 0 (got {std:g})")
        object.__setattr__(self, "std", std)
        for name in ("pw", "pa", "pb"):
            object.__setattr__(self, name, _fraction(name, getattr(self, name)))
        if not isinstance(self.bc, bool | np.bool_):
            raise ConfigError(f"data noise: bc must be true or false (got {self.bc!r})")
        object.__setattr__(self, "bc", bool(self.bc))

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``gaussian(mean=0,std=1,pa=0.1,pb=1,bc=True)``."""
        own = {"gaussian": ("mean", "std"), "impulsive": ("pw",), "shot": ()}[self.name]
        parts = [f"{k}={getattr(self, k):g}" for k in (*own, "pa", "pb")]
        return f"{self.name}({','.join(parts)},bc={self.bc})"

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict of every field: ``{"name": ..., "mean": ..., ...}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataNoise:
        """Build a noise from ``{"name": ..., **fields}``; unknown keys -> ConfigError."""
        if not isinstance(data, Mapping) or "name" not in data:
            raise ConfigError(f"a data noise needs a 'name' (got {data!r})")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(
                f"data noise: unknown parameter(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**dict(data))


def _floor_count(n: int, fraction: float) -> int:
    return min(n, math.floor(n * fraction + _FLOOR_EPS))


def affected_counts(n_samples: int, n_bands: int, noise: DataNoise) -> tuple[int, int, int]:
    """How many samples, bands per sample and white samples ``noise`` affects.

    Returns ``(floor(n_samples * pa), floor(n_bands * pb), floor(affected * pw))``
    (with a 1e-9 tolerance so that e.g. ``1000 * 0.29`` counts 290, as in
    :func:`robustq.data.make_splits`); the third number is only used by
    ``impulsive`` (the remaining affected samples are "black").
    """
    n_affected = _floor_count(n_samples, noise.pa)
    return n_affected, _floor_count(n_bands, noise.pb), _floor_count(n_affected, noise.pw)


def _band_axis(ndim: int, band_axis: Any) -> int:
    if isinstance(band_axis, bool) or not isinstance(band_axis, numbers.Integral):
        raise ConfigError(f"band_axis must be an integer, got {band_axis!r}")
    if not -ndim <= band_axis < ndim:
        raise ConfigError(f"band_axis {band_axis} is out of range for a {ndim}-D array")
    axis = int(band_axis) % ndim
    if axis == 0:
        raise ConfigError("band_axis cannot be 0: axis 0 holds the samples")
    return axis


def _value_range(value_range: Any) -> tuple[float, float]:
    try:
        low, high = value_range
    except (TypeError, ValueError):
        raise ConfigError(f"value_range must be (low, high), got {value_range!r}") from None
    low, high = _number("value_range low", low), _number("value_range high", high)
    if low > high:
        raise ConfigError(f"value_range low must be <= high (got {low:g} > {high:g})")
    return low, high


def _noised_values(
    block: np.ndarray,
    where: Any,
    white: np.ndarray | None,
    noise: DataNoise,
    rng: np.random.Generator,
    low: float,
    high: float,
) -> None:
    """Apply the noise in place to ``block[where]`` (random draws in C order of the entries).

    ``where`` is a boolean mask of the block's shape, or an index on its band
    axis (``(..., bands)``) when every row has the same bands; ``white`` is
    broadcastable to ``block[where]`` (impulsive only).
    """
    if noise.name == "impulsive":
        # The new values do not depend on the old ones: no need to read them.
        block[where] = np.where(white, high, low)
        return
    values = block[where]
    if noise.name == "gaussian":
        draw_dtype = np.float64 if values.dtype == np.float64 else np.float32
        delta = rng.standard_normal(values.shape, dtype=draw_dtype)
        delta *= noise.std
        delta += noise.mean
        values += delta
        block[where] = values
        return
    lam = np.maximum(values, 0).astype(np.float64)
    try:
        counts = rng.poisson(lam)
    except ValueError:
        raise InputError(
            "shot noise needs finite values below about 1e10 on the affected entries"
        ) from None
    block[where] = lam + counts


def _random_band_masks(
    rng: np.random.Generator, n_rows: int, n_bands: int, n_chosen: int
) -> np.ndarray:
    """``(n_rows, n_bands)`` masks, each with a uniformly random set of ``n_chosen`` bands.

    A partial Fisher-Yates shuffle run on all rows at once: the loop runs over
    ``min(n_chosen, n_bands - n_chosen)`` band positions (the complement is
    drawn when more than half the bands are chosen), each step vectorised
    over the rows; the permutation is stored band-major so each step reads
    contiguous memory.
    """
    take = min(n_chosen, n_bands - n_chosen)
    ids = np.arange(n_bands, dtype=np.int16 if n_bands < 2**15 else np.int64)
    order = np.repeat(ids[:, None], n_rows, axis=1)  # order[j, r]: band at position j of row r
    flat = order.reshape(-1)
    row_ids = np.arange(n_rows, dtype=np.intp)
    for j in range(take):
        swap = rng.integers(j, n_bands, size=n_rows)
        swap *= n_rows
        swap += row_ids
        current = order[j].copy()
        order[j] = flat[swap]
        flat[swap] = current
    mask = np.zeros((n_rows, n_bands), dtype=bool)
    mask[row_ids, order[:take]] = True
    return mask if take == n_chosen else ~mask


def apply_noise(
    x: np.ndarray,
    noise: DataNoise,
    rng: np.random.Generator,
    band_axis: int = -1,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Return a noisy copy of ``x`` (samples on axis 0, bands on ``band_axis``); ``x`` is untouched.

    Picks ``floor(N * pa)`` samples without replacement, then ``floor(B * pb)``
    bands (one draw shared by all affected samples when ``noise.bc``, else one
    per sample), and applies the model to every entry of those samples on
    those bands, whatever the other axes hold (e.g. every pixel of a patch).
    Use ``band_axis=-1`` for patches ``(N, H, W, B)`` and tables ``(N, B)``,
    ``band_axis=1`` for the ``(N, B, 1, 1)`` spectral layout. ``impulsive``
    uses the minimum and maximum of ``x`` itself (the set being noised) unless
    ``value_range=(low, high)`` is given; ``floor(n_affected * pw)`` affected
    samples, chosen at random, are "white". Vectorised over blocks of many
    samples; all randomness comes from ``rng``. Floating inputs keep their
    dtype, others become float32. Raises ConfigError for a bad ``band_axis``
    or ``value_range`` and InputError for a non-numeric or less than 2-D ``x``.
    """
    if not isinstance(noise, DataNoise):
        raise ConfigError(f"noise must be a DataNoise, got {type(noise).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    x = np.asarray(x)
    if x.dtype.kind not in "iubf":
        raise InputError(f"data to noise must be numeric, got an array of dtype {x.dtype}")
    if x.ndim < 2:
        raise InputError(f"data to noise must be at least 2-D (samples, ..., bands), got {x.shape}")
    axis = _band_axis(x.ndim, band_axis)
    fixed_range = None if value_range is None else _value_range(value_range)
    out = x.astype(x.dtype if x.dtype.kind == "f" else np.float32, copy=True)
    view = np.moveaxis(out, axis, -1)  # writes through to out
    n_samples, n_bands = view.shape[0], view.shape[-1]
    n_affected, n_chosen, n_white = affected_counts(n_samples, n_bands, noise)
    if n_affected == 0 or n_chosen == 0:
        return out
    if fixed_range is not None:
        low, high = fixed_range
    elif noise.name == "impulsive":
        low, high = float(x.min()), float(x.max())
    else:
        low = high = 0.0

    every_sample = n_affected == n_samples
    rows = None if every_sample else np.sort(rng.choice(n_samples, n_affected, replace=False))
    white = None
    if noise.name == "impulsive":
        white = rng.permutation(n_affected) < n_white
    shared: Any = None  # an index on the band axis when every row has the same bands
    if n_chosen == n_bands:
        shared = (Ellipsis, slice(None))
    elif noise.bc:
        shared = (Ellipsis, np.sort(rng.choice(n_bands, n_chosen, replace=False)))
    inner = (1,) * (view.ndim - 2)  # broadcasts over the axes between samples and bands
    block_rows = max(1, _BLOCK_ENTRIES // max(1, math.prod(view.shape[1:])))
    for start in range(0, n_affected, block_rows):
        stop = min(start + block_rows, n_affected)
        # All samples: a view of out, edited in place; otherwise a gathered copy.
        picked = slice(start, stop) if rows is None else rows[start:stop]
        block = view[picked]
        flags = None if white is None else white[start:stop].reshape(stop - start, *inner, 1)
        if shared is not None:
            where = shared
        else:
            mask = _random_band_masks(rng, stop - start, n_bands, n_chosen)
            where = np.broadcast_to(mask.reshape(stop - start, *inner, n_bands), block.shape)
            if flags is not None:
                flags = np.broadcast_to(flags, block.shape)[where]
        _noised_values(block, where, flags, noise, rng, low, high)
        if rows is not None:
            view[picked] = block
    return out


def check_sets(sets: Iterable[str] | str) -> tuple[str, ...]:
    """Validate set names (``train``, ``val``, ``test``) and return them as a tuple in order.

    A single string is one set; duplicates are dropped; an unknown name
    raises ConfigError.
    """
    if isinstance(sets, str):
        sets = (sets,)
    names = tuple(sets)
    unknown = [s for s in names if s not in SETS]
    if unknown:
        raise ConfigError(f"unknown noise set {unknown[0]!r}; choose from {', '.join(SETS)}")
    return tuple(s for s in SETS if s in names)


def apply_to_splits(
    splits: Any,
    noise: DataNoise,
    sets: Iterable[str] | str = ("test",),
    seed: int = 0,
) -> Any:
    """Return new :class:`~robustq.data.Splits` with the chosen sets noised (the rest shared).

    ``sets`` is any of ``train``, ``val``, ``test``. Noise is applied to the
    scaled ``(N, B, 1, 1)`` arrays along band axis 1. ``SeedSequence(seed)`` is
    spawned into three children, one per set in the fixed order train, val,
    test, so a set's noise depends only on ``seed`` and the set, not on which
    other sets are noised. ``impulsive`` uses each set's own minimum and
    maximum. Labels, indices and the scaling are unchanged.
    """
    chosen = check_sets(sets)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    children = dict(zip(SETS, np.random.SeedSequence(int(seed)).spawn(len(SETS)), strict=True))
    changes = {
        f"x_{part}": apply_noise(
            getattr(splits, f"x_{part}"), noise, np.random.default_rng(children[part]), band_axis=1
        )
        for part in chosen
    }
    return replace(splits, **changes) if changes else splits
