"""Tests of robustq.faults: the fault functions' statistics, validation and the spec format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binom

from robustq.errors import ConfigError
from robustq.faults import (
    FAULTS,
    BitflipParams,
    FaultModel,
    FaultSpec,
    GaussianParams,
    MultiplicativeParams,
    ScaleParams,
    StuckAtParams,
    UniformParams,
    as_spec,
    bit_positions,
    bitflip,
    gaussian,
    get_fault,
    multiplicative,
    perturb_scales,
    register,
    stuck_at,
    uniform,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def inside_binomial(count: int, n: int, p: float, confidence: float = 0.999) -> bool:
    low, high = binom.interval(confidence, n, p)
    return low <= count <= high


# value faults ------------------------------------------------------------------------------
def test_gaussian_relative_std_is_per_tensor():
    """Each tensor's noise std is factor x its own std (the seed's defect 1 fixed)."""
    wide = rng(1).normal(0, 2.0, 100_000)
    narrow = rng(2).normal(0, 0.01, 100_000)
    params = GaussianParams(std_factor=0.1)
    for values in (wide, narrow):
        noise = gaussian(values, params, rng(3)) - values
        assert abs(noise.std() / (0.1 * values.std()) - 1) < 0.05
        assert abs(noise.mean()) < 0.05 * noise.std()


def test_gaussian_default_is_factor_0_1():
    assert GaussianParams() == GaussianParams(std_factor=0.1)
    assert GaussianParams().std is None


def test_gaussian_absolute_std_and_mean():
    values = np.zeros(200_000)
    noise = gaussian(values, GaussianParams(mean=0.5, std=0.2), rng())
    assert abs(noise.std() / 0.2 - 1) < 0.05
    assert abs(noise.mean() - 0.5) < 0.01


def test_zero_strength_value_faults_are_identity():
    values = rng().normal(size=(30, 7))
    for fn, params in (
        (gaussian, GaussianParams(std=0.0)),
        (gaussian, GaussianParams(std_factor=0.0)),
        (uniform, UniformParams(half_width=0.0)),
        (multiplicative, MultiplicativeParams(std=0.0)),
    ):
        np.testing.assert_array_equal(fn(values, params, rng()), values)


def test_uniform_bounds_and_std():
    values = rng().normal(0, 3.0, 100_000)
    noise = uniform(values, UniformParams(half_width_factor=0.2), rng(1)) - values
    half = 0.2 * values.std()
    assert noise.min() >= -half and noise.max() <= half
    assert abs(noise.std() / (half / np.sqrt(3)) - 1) < 0.05
    absolute = uniform(np.zeros(1000), UniformParams(half_width=0.5, mean=1.0), rng())
    assert absolute.min() >= 0.5 and absolute.max() <= 1.5


def test_multiplicative_relative_error():
    values = rng().uniform(1, 2, 100_000)
    ratio = multiplicative(values, MultiplicativeParams(std=0.05), rng(1)) / values - 1
    assert abs(ratio.std() / 0.05 - 1) < 0.05


def test_fault_functions_do_not_modify_input():
    values = rng().normal(size=1000)
    snapshot = values.copy()
    gaussian(values, GaussianParams(), rng())
    stored = rng().integers(-127, 128, 1000).astype(np.int8)
    stored_snapshot = stored.copy()
    bitflip(stored, BitflipParams(ber=0.5), rng())
    stuck_at(stored, StuckAtParams(fraction=0.5, value=1), rng())
    np.testing.assert_array_equal(values, snapshot)
    np.testing.assert_array_equal(stored, stored_snapshot)


def test_same_generator_seed_same_draws():
    values = rng().normal(size=500)
    a = gaussian(values, GaussianParams(), rng(9))
    b = gaussian(values, GaussianParams(), rng(9))
    c = gaussian(values, GaussianParams(), rng(10))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# bit faults --------------------------------------------------------------------------------
def flipped_bits(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a.view(np.uint8), b.view(np.uint8))).sum())


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "float16", "float32"])
@pytest.mark.parametrize("ber", [1e-4, 1e-2])
def test_bitflip_count_is_binomial(dtype, ber):
    stored = rng().integers(-100, 100, 50_000).astype(dtype)
    n_bits = stored.size * stored.dtype.itemsize * 8
    flipped = bitflip(stored, BitflipParams(ber=ber), rng(5))
    assert flipped.dtype == stored.dtype and flipped.shape == stored.shape
    assert inside_binomial(flipped_bits(stored, flipped), n_bits, ber)


def test_bitflip_counts_over_many_seeds_follow_binomial():
    """The count's mean and variance over 400 draws match Binomial(n, p)."""
    stored = np.zeros(1000, dtype=np.int8)
    n, p = 8000, 0.01
    counts = np.array(
        [flipped_bits(stored, bitflip(stored, BitflipParams(ber=p), rng(s))) for s in range(400)]
    )
    assert abs(counts.mean() - n * p) < 4 * np.sqrt(n * p * (1 - p) / 400)
    assert 0.7 < counts.var() / (n * p * (1 - p)) < 1.3


def test_bitflip_all_and_nothing():
    stored = rng().integers(-127, 128, 999).astype(np.int8)
    np.testing.assert_array_equal(bitflip(stored, BitflipParams(ber=0.0), rng()), stored)
    np.testing.assert_array_equal(bitflip(stored, BitflipParams(ber=1.0), rng()), ~stored)


def test_bitflip_sign_only():
    stored = rng().normal(size=20_000).astype(np.float32)
    flipped = bitflip(stored, BitflipParams(ber=0.3, bits="sign"), rng(1))
    changed = flipped != stored
    np.testing.assert_array_equal(flipped[changed], -stored[changed])
    assert inside_binomial(int(changed.sum()), stored.size, 0.3)


def test_bitflip_exponent_bits_only_float32():
    stored = rng().normal(size=20_000).astype(np.float32)
    flipped = bitflip(stored, BitflipParams(ber=0.05, bits="exponent"), rng(1))
    xor = stored.view(np.uint32) ^ flipped.view(np.uint32)
    exponent_mask = np.uint32(0xFF << 23)
    assert np.all((xor & ~exponent_mask) == 0)
    assert inside_binomial(int(np.unpackbits(xor.view(np.uint8)).sum()), stored.size * 8, 0.05)


def test_bitflip_explicit_positions_int8():
    stored = np.zeros(10_000, dtype=np.int8)
    flipped = bitflip(stored, BitflipParams(ber=0.5, bits=(0, 2)), rng(1))
    assert np.all((flipped.view(np.uint8) & ~np.uint8(0b101)) == 0)
    assert inside_binomial(flipped_bits(stored, flipped), 20_000, 0.5)


def test_bit_positions_groups():
    assert list(bit_positions("float16", "exponent")) == list(range(10, 15))
    assert list(bit_positions("float16", "mantissa")) == list(range(10))
    assert list(bit_positions("float32", "sign")) == [31]
    assert list(bit_positions("int8", "msb")) == [7]
    assert list(bit_positions("int32", "lsb")) == [0]
    assert len(bit_positions("int64", "all")) == 64
    with pytest.raises(ConfigError, match="float storage"):
        bit_positions("int8", "exponent")
    with pytest.raises(ConfigError, match="do not fit"):
        bit_positions("int8", (3, 8))


@pytest.mark.parametrize("value", [0, 1])
def test_stuck_at_fraction(value):
    start = 0 if value == 1 else -1  # all bits opposite to the stuck value
    stored = np.full(40_000, start, dtype=np.int16)
    n_bits = stored.size * 16
    stuck = stuck_at(stored, StuckAtParams(fraction=0.02, value=value), rng(2))
    bits = np.unpackbits(stuck.view(np.uint8))
    count = int(bits.sum()) if value == 1 else int((bits == 0).sum())
    assert inside_binomial(count, n_bits, 0.02)


def test_stuck_at_never_sets_the_other_value():
    stored = rng().integers(-127, 128, 5000).astype(np.int8)
    ones = stuck_at(stored, StuckAtParams(fraction=0.3, value=1), rng(1))
    zeros = stuck_at(stored, StuckAtParams(fraction=0.3, value=0), rng(1))
    assert np.all((ones.view(np.uint8) & stored.view(np.uint8)) == stored.view(np.uint8))
    assert np.all((zeros.view(np.uint8) | stored.view(np.uint8)) == stored.view(np.uint8))


def test_scale_fault_relative_noise():
    scales = rng().uniform(1e-3, 2e-3, 50_000)
    new = perturb_scales(scales, ScaleParams(std=0.05), rng(1))
    assert np.all(new > 0)
    assert abs((new / scales - 1).std() / 0.05 - 1) < 0.05
    np.testing.assert_array_equal(perturb_scales(scales, ScaleParams(std=0.0), rng()), scales)


# validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("gaussian", {"std": -0.1}, "std must be >= 0"),
        ("gaussian", {"std_factor": -1}, "std_factor must be >= 0"),
        ("gaussian", {"std": 0.1, "std_factor": 0.1}, "either std or std_factor"),
        ("gaussian", {"std": float("nan")}, "finite"),
        ("gaussian", {"std": "0.1"}, "number"),
        ("gaussian", {"sigma": 0.1}, "unknown parameter"),
        ("uniform", {"half_width": -1}, "half_width must be >= 0"),
        ("multiplicative", {"std": -0.5}, "std must be >= 0"),
        ("bitflip", {"ber": -0.1}, r"ber must be in \[0, 1\]"),
        ("bitflip", {"ber": 1.5}, r"ber must be in \[0, 1\]"),
        ("bitflip", {}, "missing parameter"),
        ("bitflip", {"ber": 0.1, "bits": "middle"}, "bits must be one of"),
        ("bitflip", {"ber": 0.1, "bits": [70]}, "bit positions"),
        ("stuck_at", {"fraction": 1.01}, r"fraction must be in \[0, 1\]"),
        ("stuck_at", {"fraction": -0.01}, r"fraction must be in \[0, 1\]"),
        ("stuck_at", {"fraction": 0.1, "value": 2}, "value must be 0 or 1"),
        ("scale", {"std": -0.01}, "std must be >= 0"),
        ("lightning", {}, "unknown fault 'lightning'"),
    ],
)
def test_invalid_specs_raise_config_error(name, params, message):
    with pytest.raises(ConfigError, match=message):
        FaultSpec(name, params)


def test_spec_round_trips_through_dict_and_json():
    specs = [
        FaultSpec("gaussian"),
        FaultSpec("gaussian", {"std": 0.02, "mean": 0.001}),
        FaultSpec("uniform", {"half_width": 0.1}),
        FaultSpec("multiplicative", {"std": 0.2}),
        FaultSpec("bitflip", {"ber": 1e-3, "bits": "exponent"}),
        FaultSpec("bitflip", {"ber": 1e-3, "bits": [7, 0, 3]}),
        FaultSpec("stuck_at", {"fraction": 0.01, "value": 1}),
        FaultSpec("scale", {"std": 0.1}),
    ]
    for spec in specs:
        data = spec.to_dict()
        assert data["name"] == spec.name
        json.dumps(data)  # plain JSON types only
        assert FaultSpec.from_dict(data) == spec
        assert FaultSpec.from_json(spec.to_json()) == spec
        assert FaultSpec.from_dict(json.loads(json.dumps(data))) == spec
        hash(spec)
    assert specs[5].params.bits == (0, 3, 7)
    assert FaultSpec("gaussian").to_dict() == {
        "name": "gaussian",
        "mean": 0.0,
        "std": None,
        "std_factor": 0.1,
    }


def test_spec_accepts_params_dataclass_and_shortcuts():
    spec = FaultSpec("bitflip", BitflipParams(ber=0.01))
    assert spec.kind == "bits" and spec.params.ber == 0.01
    assert as_spec("gaussian") == FaultSpec("gaussian")
    assert as_spec({"name": "scale", "std": 0.2}) == FaultSpec("scale", {"std": 0.2})
    assert as_spec(spec) is spec
    with pytest.raises(ConfigError, match="needs a 'name'"):
        FaultSpec.from_dict({"std": 0.1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        FaultSpec.from_json("{nope")


def test_registry_lists_all_faults_and_accepts_new_ones():
    assert set(FAULTS) >= {"gaussian", "uniform", "multiplicative", "bitflip", "stuck_at", "scale"}
    assert {get_fault(n).kind for n in FAULTS} <= {"value", "bits", "scale"}

    from dataclasses import dataclass

    @dataclass(frozen=True)
    class OffsetParams:
        offset: float = 1.0

    def offset(values, params, rng):
        return np.asarray(values, dtype=np.float64) + params.offset

    register(FaultModel("offset", "value", OffsetParams, offset, "add a constant"))
    try:
        spec = FaultSpec("offset", {"offset": 2.0})
        assert spec.model.apply(np.zeros(2), spec.params, rng()).tolist() == [2.0, 2.0]
    finally:
        del FAULTS["offset"]
    with pytest.raises(ValueError, match="kind"):
        register(FaultModel("bad", "weird", OffsetParams, offset, ""))
