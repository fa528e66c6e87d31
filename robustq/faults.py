"""Fault models: small pure functions that disturb one tensor, plus the registry naming them.

A fault model is a function of an array, its parameters and a seeded
``numpy.random.Generator`` — nothing else — registered under a name with the
frozen dataclass of its parameters. Three kinds exist: *value* faults
(``gaussian``, ``uniform``, ``multiplicative``) act on float values (the
engine dequantizes first and re-quantizes after); *bit* faults (``bitflip``,
``stuck_at``) act on the raw stored bits of int8, int16, int32, int64,
float16 or float32 storage; the *scale* fault acts on a quantized tensor's
scale vector. A :class:`FaultSpec` (name + parameters) is what users write,
and it round-trips through a plain dict / JSON. Adding a fault model is one
function and one :func:`register` call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import numpy as np

from robustq.errors import ConfigError

KINDS = ("value", "bits", "scale")


def _check_number(fault: str, name: str, value: Any, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{fault}: {name} must be a number (got {value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{fault}: {name} must be finite (got {value})")
    if low is not None and value < low:
        raise ConfigError(f"{fault}: {name} must be >= {low:g} (got {value:g})")
    return value


def _check_probability(fault: str, name: str, value: Any) -> float:
    value = _check_number(fault, name, value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{fault}: {name} must be in [0, 1] (got {value:g})")
    return value


def _check_bits(fault: str, bits: Any) -> str | tuple[int, ...]:
    if isinstance(bits, str):
        if bits not in BIT_GROUPS:
            raise ConfigError(
                f"{fault}: bits must be one of {', '.join(BIT_GROUPS)} or a list of bit positions "
                f"(got {bits!r})"
            )
        return bits
    if isinstance(bits, Sequence) and bits:
        positions = []
        for bit in bits:
            if isinstance(bit, bool) or not isinstance(bit, int | np.integer) or not 0 <= bit < 64:
                raise ConfigError(
                    f"{fault}: bit positions must be integers in [0, 63] (got {bit!r})"
                )
            positions.append(int(bit))
        return tuple(sorted(set(positions)))
    raise ConfigError(f"{fault}: bits must be a group name or a non-empty list (got {bits!r})")


# parameter dataclasses ----------------------------------------------------------------------
@dataclass(frozen=True)
class GaussianParams:
    """Additive noise N(mean, std); ``std`` absolute, or ``std_factor`` x the tensor's own std.

    With neither given, ``std_factor`` is 0.1 (the seed's behaviour), applied
    to each tensor separately.
    """

    mean: float = 0.0
    std: float | None = None
    std_factor: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _check_number("gaussian", "mean", self.mean))
        if self.std is not None and self.std_factor is not None:
            raise ConfigError("gaussian: give either std or std_factor, not both")
        if self.std is None and self.std_factor is None:
            object.__setattr__(self, "std_factor", 0.1)
        for name in ("std", "std_factor"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_number("gaussian", name, value, 0.0))


@dataclass(frozen=True)
class UniformParams:
    """Additive noise U(mean - h, mean + h); ``half_width`` absolute or ``half_width_factor`` x std.

    The relative form uses each tensor's own std; with neither given,
    ``half_width_factor`` is 0.1.
    """

    mean: float = 0.0
    half_width: float | None = None
    half_width_factor: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _check_number("uniform", "mean", self.mean))
        if self.half_width is not None and self.half_width_factor is not None:
            raise ConfigError("uniform: give either half_width or half_width_factor, not both")
        if self.half_width is None and self.half_width_factor is None:
            object.__setattr__(self, "half_width_factor", 0.1)
        for name in ("half_width", "half_width_factor"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_number("uniform", name, value, 0.0))


@dataclass(frozen=True)
class MultiplicativeParams:
    """Relative noise: ``w * (1 + e)`` with e ~ N(0, std) per element."""

    std: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", _check_number("multiplicative", "std", self.std, 0.0))


@dataclass(frozen=True)
class BitflipParams:
    """Flip each stored bit with probability ``ber`` (only the ``bits`` positions are candidates).

    ``bits`` is ``"all"``, ``"sign"``, ``"msb"``, ``"lsb"``, ``"exponent"`` or
    ``"mantissa"`` (the last two for float storage), or a list of bit
    positions (0 = least significant bit of an element).
    """

    ber: float
    bits: str | tuple[int, ...] = "all"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ber", _check_probability("bitflip", "ber", self.ber))
        object.__setattr__(self, "bits", _check_bits("bitflip", self.bits))


@dataclass(frozen=True)
class StuckAtParams:
    """Stored bits (of the ``bits`` positions) stuck at ``value``, each with prob. ``fraction``."""

    fraction: float
    value: int = 0
    bits: str | tuple[int, ...] = "all"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "fraction", _check_probability("stuck_at", "fraction", self.fraction)
        )
        if isinstance(self.value, bool | float) or self.value not in (0, 1):
            raise ConfigError(f"stuck_at: value must be 0 or 1 (got {self.value!r})")
        object.__setattr__(self, "value", int(self.value))
        object.__setattr__(self, "bits", _check_bits("stuck_at", self.bits))


@dataclass(frozen=True)
class ScaleParams:
    """Relative noise on quantization scales: ``scale * (1 + e)``, e ~ N(0, std) per scale."""

    std: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", _check_number("scale", "std", self.std, 0.0))


# the fault functions --------------------------------------------------------------------------
def _floats(values: np.ndarray) -> np.ndarray:
    """``values`` as a C-ordered float32 or float64 array (other types become float64).

    C order makes the draws and the float32 arithmetic independent of how
    the caller's array happens to be laid out in memory.
    """
    values = np.asarray(values)
    dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(values, dtype=dtype)


def _tensor_std(values: np.ndarray) -> float:
    """The tensor's population std (ddof 0), in the values' own precision (pairwise sums)."""
    return float(np.std(values)) if values.size else 0.0


def gaussian(values: np.ndarray, params: GaussianParams, rng: np.random.Generator) -> np.ndarray:
    """Return ``values`` + N(mean, std), std absolute or relative to this tensor's std.

    Computed in the values' own float type (float32 stays float32: the
    noise is drawn as float32, which is twice as fast for large tensors).
    """
    values = _floats(values)
    std = params.std if params.std is not None else params.std_factor * _tensor_std(values)
    noisy = rng.standard_normal(values.shape, dtype=values.dtype)
    noisy *= values.dtype.type(std)
    if params.mean:
        noisy += values.dtype.type(params.mean)
    noisy += values
    return noisy


def uniform(values: np.ndarray, params: UniformParams, rng: np.random.Generator) -> np.ndarray:
    """Return ``values`` + U(mean - h, mean + h), h absolute or relative to this tensor's std."""
    values = _floats(values)
    if params.half_width is not None:
        half = params.half_width
    else:
        half = params.half_width_factor * _tensor_std(values)
    noisy = rng.random(values.shape, dtype=values.dtype)
    noisy *= values.dtype.type(2 * half)
    noisy += values.dtype.type(params.mean - half)
    noisy += values
    return noisy


def multiplicative(
    values: np.ndarray, params: MultiplicativeParams, rng: np.random.Generator
) -> np.ndarray:
    """Return ``values * (1 + e)`` with e ~ N(0, std) drawn per element."""
    values = _floats(values)
    factor = rng.standard_normal(values.shape, dtype=values.dtype)
    factor *= values.dtype.type(params.std)
    factor += values.dtype.type(1)
    factor *= values
    return factor


def perturb_scales(scales: np.ndarray, params: ScaleParams, rng: np.random.Generator) -> np.ndarray:
    """Return ``scales * (1 + e)``, e ~ N(0, std) per scale; factors are kept >= 1e-6."""
    scales = np.asarray(scales, dtype=np.float64)
    factor = 1.0 + params.std * rng.standard_normal(scales.shape)
    return scales * np.maximum(factor, 1e-6)


BIT_GROUPS = ("all", "sign", "msb", "lsb", "exponent", "mantissa")

_FLOAT_FIELDS = {2: (10, 5), 4: (23, 8), 8: (52, 11)}  # itemsize -> (mantissa bits, exponent bits)


def bit_positions(dtype: np.dtype | str, bits: str | Sequence[int] = "all") -> np.ndarray:
    """Bit positions (0 = least significant) of one ``dtype`` element that ``bits`` selects.

    Named groups: ``all``; ``sign``/``msb`` (the top bit); ``lsb``;
    ``exponent`` and ``mantissa`` (float16 / float32 / float64 only).
    Explicit positions must lie inside the element. Raises ConfigError.
    """
    dtype = np.dtype(dtype)
    width = 8 * dtype.itemsize
    if isinstance(bits, str):
        if bits == "all":
            return np.arange(width)
        if bits in ("sign", "msb"):
            return np.array([width - 1])
        if bits == "lsb":
            return np.array([0])
        if bits in ("exponent", "mantissa"):
            if dtype.kind != "f":
                raise ConfigError(f"bits={bits!r} needs float storage; this tensor is {dtype.name}")
            mantissa, exponent = _FLOAT_FIELDS[dtype.itemsize]
            if bits == "mantissa":
                return np.arange(mantissa)
            return np.arange(mantissa, mantissa + exponent)
        raise ConfigError(f"unknown bit group {bits!r}; choose from {', '.join(BIT_GROUPS)}")
    positions = np.unique(np.asarray(bits, dtype=np.int64))
    if positions.size == 0 or positions.min() < 0 or positions.max() >= width:
        raise ConfigError(
            f"bit positions {list(bits)} do not fit a {width}-bit {dtype.name} element"
        )
    return positions


def _pick_bits(
    n_elements: int, positions: np.ndarray, probability: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw Binomial(n, p) distinct candidate bits; return (element index, bit position)."""
    n_bits = n_elements * positions.size
    count = int(rng.binomial(n_bits, probability)) if n_bits else 0
    if count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    picks = rng.choice(n_bits, size=count, replace=False)
    return picks // positions.size, positions[picks % positions.size]


def _byte_masks(
    stored: np.ndarray, elements: np.ndarray, bits: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A little-endian copy of ``stored``, its byte view, and each picked bit's byte and mask."""
    flat = np.ascontiguousarray(stored).reshape(-1).astype(stored.dtype.newbyteorder("<"))
    view = flat.view(np.uint8)
    byte_index = elements * stored.dtype.itemsize + bits // 8
    masks = np.left_shift(1, bits % 8).astype(np.uint8)
    return flat, view, byte_index, masks


def bitflip(stored: np.ndarray, params: BitflipParams, rng: np.random.Generator) -> np.ndarray:
    """Flip stored bits at bit-error rate ``ber``: a Binomial(n_bits, ber) count, drawn without
    replacement among the candidate bits; returns a new array of the same dtype and shape."""
    stored = np.asarray(stored)
    positions = bit_positions(stored.dtype, params.bits)
    elements, bits = _pick_bits(stored.size, positions, params.ber, rng)
    flat, view, byte_index, masks = _byte_masks(stored, elements, bits)
    np.bitwise_xor.at(view, byte_index, masks)
    return flat.astype(stored.dtype).reshape(stored.shape)


def stuck_at(stored: np.ndarray, params: StuckAtParams, rng: np.random.Generator) -> np.ndarray:
    """Force a Binomial(n_bits, fraction) set of candidate stored bits to ``value`` (0 or 1);
    returns a new array of the same dtype and shape."""
    stored = np.asarray(stored)
    positions = bit_positions(stored.dtype, params.bits)
    elements, bits = _pick_bits(stored.size, positions, params.fraction, rng)
    flat, view, byte_index, masks = _byte_masks(stored, elements, bits)
    if params.value:
        np.bitwise_or.at(view, byte_index, masks)
    else:
        np.bitwise_and.at(view, byte_index, np.invert(masks))
    return flat.astype(stored.dtype).reshape(stored.shape)


# registry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultModel:
    """A registered fault model: its name, kind, parameter dataclass and function."""

    name: str
    kind: str
    params: type
    apply: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
    description: str


FAULTS: dict[str, FaultModel] = {}
"""Every registered fault model by name."""


def register(model: FaultModel) -> FaultModel:
    """Add a fault model to :data:`FAULTS` (its kind must be one of :data:`KINDS`)."""
    if model.kind not in KINDS:
        raise ValueError(f"fault kind must be one of {KINDS}, got {model.kind!r}")
    FAULTS[model.name] = model
    return model


register(FaultModel("gaussian", "value", GaussianParams, gaussian, "additive N(mean, std)"))
register(FaultModel("uniform", "value", UniformParams, uniform, "additive U(mean - h, mean + h)"))
register(
    FaultModel(
        "multiplicative", "value", MultiplicativeParams, multiplicative, "w * (1 + N(0, std))"
    )
)
register(FaultModel("bitflip", "bits", BitflipParams, bitflip, "flip stored bits at rate ber"))
register(FaultModel("stuck_at", "bits", StuckAtParams, stuck_at, "stored bits stuck at 0 or 1"))
register(FaultModel("scale", "scale", ScaleParams, perturb_scales, "relative noise on scales"))


def get_fault(name: str) -> FaultModel:
    """The registered fault model called ``name``; ConfigError listing the known ones otherwise."""
    model = FAULTS.get(name)
    if model is None:
        raise ConfigError(f"unknown fault {name!r}; choose from {', '.join(sorted(FAULTS))}")
    return model


def _to_plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class FaultSpec:
    """A fault model and its validated parameters: what one perturbation run applies.

    ``FaultSpec("gaussian", {"std_factor": 0.1})`` validates at construction
    (unknown name or parameter, negative std, ber outside [0, 1] ->
    ConfigError) and stores the parameter dataclass. ``to_dict`` /
    ``from_dict`` round-trip through a plain ``{"name": ..., **params}`` dict.
    """

    name: str
    params: Any = None

    def __post_init__(self) -> None:
        model = get_fault(self.name)
        params = self.params
        if isinstance(params, model.params):
            return
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{self.name}: parameters must be a mapping (got {params!r})")
        allowed = {f.name for f in fields(model.params)}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        missing = sorted(
            f.name
            for f in fields(model.params)
            if f.name not in params and f.default is MISSING and f.default_factory is MISSING
        )
        if missing:
            raise ConfigError(f"{self.name}: missing parameter(s) {', '.join(missing)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        built = model.params(**values)
        object.__setattr__(self, "params", built)

    @property
    def model(self) -> FaultModel:
        """The registered fault model this spec uses."""
        return get_fault(self.name)

    @property
    def kind(self) -> str:
        """``value``, ``bits`` or ``scale``."""
        return self.model.kind

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict: ``{"name": ..., **parameters}``."""
        return {"name": self.name, **{k: _to_plain(v) for k, v in asdict(self.params).items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultSpec:
        """Build a spec from ``{"name": ..., **parameters}`` (the inverse of :meth:`to_dict`)."""
        if not isinstance(data, Mapping) or "name" not in data:
            raise ConfigError(f"a fault spec needs a 'name' (got {data!r})")
        params = {k: v for k, v in data.items() if k != "name"}
        return cls(str(data["name"]), params)

    def to_json(self) -> str:
        """The spec as compact, key-sorted JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultSpec:
        """Parse a spec from the JSON written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"fault spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def as_spec(fault: FaultSpec | Mapping[str, Any] | str) -> FaultSpec:
    """Accept a FaultSpec, a ``{"name": ...}`` dict or a bare fault name (default parameters)."""
    if isinstance(fault, FaultSpec):
        return fault
    if isinstance(fault, str):
        return FaultSpec(fault)
    return FaultSpec.from_dict(fault)
