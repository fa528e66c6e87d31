"""Tests of the acquisition-noise models on data (issue 7): counts, statistics, layouts, seeds."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from robustq.acquisition import (
    NOISES,
    DataNoise,
    affected_counts,
    apply_noise,
    apply_to_splits,
    check_sets,
)
from robustq.errors import ConfigError, InputError


def _floor(n: int, fraction: float) -> int:
    """floor(n * fraction) with the fraction taken as the decimal the user wrote."""
    return math.floor(n * Fraction(repr(fraction)))


def _data(n: int = 1000, b: int = 103, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, b)).astype(np.float32)


def _changed(x: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    return noisy != x


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("n", "b", "pa", "pb", "bc"),
    [
        (1000, 103, 0.29, 0.5, False),  # 1000 * 0.29 is 289.99999999999997 in binary
        (1000, 103, 0.1, 1.0, True),
        (997, 103, 0.333, 0.07, False),
        (50, 10, 0.7, 0.3, True),
        (100_000, 103, 0.9, 0.33, False),  # several processing blocks
    ],
)
def test_exact_affected_counts(n, b, pa, pb, bc):
    x = _data(n, b)
    noise = DataNoise("gaussian", std=1.0, pa=pa, pb=pb, bc=bc)
    changed = _changed(x, apply_noise(x, noise, np.random.default_rng(1)))
    per_sample = changed.sum(axis=1)
    assert int((per_sample > 0).sum()) == _floor(n, pa)
    assert set(np.unique(per_sample[per_sample > 0]).tolist()) == {_floor(b, pb)}
    assert affected_counts(n, b, noise)[:2] == (_floor(n, pa), _floor(b, pb))


@pytest.mark.parametrize("name", NOISES)
def test_pa_zero_or_pb_zero_changes_nothing(name):
    x = _data(200, 20)
    for pa, pb in ((0.0, 1.0), (1.0, 0.0), (0.004, 1.0), (1.0, 0.04)):  # floor(...) == 0
        noisy = apply_noise(x, DataNoise(name, pa=pa, pb=pb), np.random.default_rng(0))
        assert noisy is not x
        assert noisy.dtype == x.dtype
        np.testing.assert_array_equal(noisy, x)


def test_pa_one_pb_one_changes_every_entry():
    x = _data(500, 103)
    for bc in (True, False):
        noise = DataNoise("gaussian", std=0.5, pa=1.0, pb=1.0, bc=bc)
        assert _changed(x, apply_noise(x, noise, np.random.default_rng(2))).all()
    impulsive = apply_noise(x, DataNoise("impulsive", pa=1, pb=1, pw=0.5), np.random.default_rng(2))
    assert np.isin(impulsive, [x.min(), x.max()]).all()


def test_gaussian_statistics():
    x = np.zeros((200_000, 10), dtype=np.float32)
    noise = DataNoise("gaussian", mean=0.5, std=2.0, pa=1.0, pb=1.0)
    noisy = apply_noise(x, noise, np.random.default_rng(3)).astype(np.float64)
    # 2e6 draws: the mean's standard error is 2 / sqrt(2e6) = 0.0014
    assert abs(noisy.mean() - 0.5) < 0.01
    assert abs(noisy.std() - 2.0) < 0.01


# --------------------------------------------------------------------------- bands (bc)


def test_bc_true_same_bands_for_every_affected_sample():
    x = _data(1000, 103)
    noise = DataNoise("gaussian", pa=0.5, pb=0.2, bc=True)
    changed = _changed(x, apply_noise(x, noise, np.random.default_rng(4)))
    rows = changed[changed.any(axis=1)]
    assert len(rows) == 500
    assert len(np.unique(rows, axis=0)) == 1
    assert rows[0].sum() == _floor(103, 0.2)


def test_bc_false_redraws_bands_per_sample_uniformly():
    x = _data(1000, 103)
    noise = DataNoise("gaussian", pa=0.5, pb=0.2, bc=False)
    changed = _changed(x, apply_noise(x, noise, np.random.default_rng(4)))
    rows = changed[changed.any(axis=1)]
    assert len(rows) == 500
    assert len(np.unique(rows, axis=0)) > 450  # C(103, 20) sets: repeats are very unlikely
    # each band is hit by about 500 * 20 / 103 = 97 samples
    hits = rows.sum(axis=0)
    assert hits.min() > 50
    assert hits.max() < 150


def test_bc_false_band_subsets_are_uniform():
    # 5 bands, 2 chosen: each of the 10 subsets should appear about 1/10 of the time.
    x = np.zeros((100_000, 5), dtype=np.float32)
    noise = DataNoise("gaussian", std=1.0, pa=1.0, pb=0.4, bc=False)
    changed = _changed(x, apply_noise(x, noise, np.random.default_rng(5)))
    codes = changed.astype(np.int64) @ (1 << np.arange(5))
    counts = np.bincount(codes, minlength=32)
    observed = counts[counts > 0]
    assert len(observed) == 10
    # binomial sd at p = 0.1, n = 1e5 is 95: a 6-sigma band
    assert np.abs(observed - 10_000).max() < 600


# --------------------------------------------------------------------------- impulsive


@pytest.mark.parametrize("pw", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_impulsive_values_are_the_set_min_max_with_exact_white_share(pw):
    x = _data(1000, 30)
    x[3, 4], x[7, 8] = -1.5, 2.5  # the set's own minimum and maximum
    noise = DataNoise("impulsive", pw=pw, pa=0.4, pb=0.5, bc=False)
    noisy = apply_noise(x, noise, np.random.default_rng(6))
    changed = _changed(x, noisy)
    assert np.isin(noisy[changed], [-1.5, 2.5]).all()
    affected = np.flatnonzero(changed.any(axis=1))
    assert len(affected) == 400
    # every affected sample is wholly white or wholly black on its chosen bands
    white = np.array([(noisy[i][changed[i]] == 2.5).all() for i in affected])
    black = np.array([(noisy[i][changed[i]] == -1.5).all() for i in affected])
    assert (white ^ black).all()
    # the white share is exact: floor(n_affected * pw)
    assert int(white.sum()) == _floor(400, pw)
    assert affected_counts(1000, 30, noise)[2] == _floor(400, pw)


def test_impulsive_value_range_override():
    x = _data(100, 10)
    noise = DataNoise("impulsive", pw=0.5, pa=1.0, pb=1.0)
    noisy = apply_noise(x, noise, np.random.default_rng(0), value_range=(-3.0, 7.0))
    assert set(np.unique(noisy).tolist()) == {-3.0, 7.0}
    assert int((noisy[:, 0] == 7.0).sum()) == 50


def test_impulsive_white_share_exact_across_blocks():
    x = _data(100_000, 103)
    noise = DataNoise("impulsive", pw=0.3, pa=0.9, pb=0.1, bc=False)
    noisy = apply_noise(x, noise, np.random.default_rng(7))
    high = (noisy == x.max()) & (x != x.max())
    assert int(high.any(axis=1).sum()) == _floor(90_000, 0.3)


# --------------------------------------------------------------------------- shot


def test_shot_noise_mean_and_variance():
    # x + Poisson(x): mean 2x, variance x. 2e6 draws at x = 3: the mean's standard
    # error is 0.0012 and the variance's about 0.0032; tolerances are 8-10 sigma.
    x = np.full((200_000, 10), 3.0, dtype=np.float32)
    noisy = apply_noise(x, DataNoise("shot", pa=1.0, pb=1.0), np.random.default_rng(8))
    values = noisy.astype(np.float64)
    assert abs(values.mean() - 6.0) < 0.01
    assert abs(values.var() - 3.0) < 0.03
    np.testing.assert_array_equal(values - 3.0, np.round(values - 3.0))  # integer counts added


def test_shot_noise_on_varied_values():
    rng = np.random.default_rng(9)
    x = rng.uniform(0.0, 4.0, (500_000, 4)).astype(np.float32)
    noisy = apply_noise(x, DataNoise("shot", pa=1.0, pb=1.0), np.random.default_rng(10))
    excess = noisy.astype(np.float64) - 2.0 * x  # Poisson(x) - x: mean 0, variance x
    assert abs(excess.mean()) < 0.01
    assert abs((excess**2).mean() - x.mean()) / x.mean() < 0.01


def test_shot_noise_clips_negative_values_at_zero():
    x = np.full((100, 10), -2.0, dtype=np.float32)
    noisy = apply_noise(x, DataNoise("shot", pa=0.5, pb=0.5, bc=True), np.random.default_rng(0))
    changed = _changed(x, noisy)
    assert (noisy[changed] == 0.0).all()  # clip to 0, then 0 + Poisson(0) = 0
    assert changed.sum() == 50 * 5


# --------------------------------------------------------------------------- layouts


def test_patches_are_noised_along_the_last_axis_only():
    rng = np.random.default_rng(11)
    x = rng.uniform(size=(60, 5, 5, 20)).astype(np.float32)
    noise = DataNoise("gaussian", pa=0.5, pb=0.25, bc=False)
    changed = _changed(x, apply_noise(x, noise, np.random.default_rng(12)))
    bands_hit = changed.any(axis=(1, 2))  # (N, B)
    assert int(bands_hit.any(axis=1).sum()) == 30
    assert set(bands_hit.sum(axis=1).tolist()) == {0, 5}
    # a chosen band is noised on every pixel of the patch, the others on none
    for i in np.flatnonzero(bands_hit.any(axis=1)):
        assert changed[i][:, :, bands_hit[i]].all()
        assert not changed[i][:, :, ~bands_hit[i]].any()


def test_spectral_layout_band_axis_one_matches_the_table():
    x = _data(300, 103)
    noise = DataNoise("gaussian", pa=0.3, pb=0.1, bc=False)
    spectral = apply_noise(x[:, :, None, None], noise, np.random.default_rng(13), band_axis=1)
    table = apply_noise(x, noise, np.random.default_rng(13))
    assert spectral.shape == (300, 103, 1, 1)
    np.testing.assert_array_equal(spectral[:, :, 0, 0], table)
    changed = _changed(x, spectral[:, :, 0, 0])
    assert set(changed.sum(axis=1).tolist()) == {0, 10}


def test_band_axis_one_on_channel_first_patches():
    x = np.random.default_rng(14).uniform(size=(40, 12, 3, 3)).astype(np.float32)  # (N, B, H, W)
    noise = DataNoise("gaussian", pa=1.0, pb=0.5, bc=True)
    changed = _changed(x, apply_noise(x, noise, np.random.default_rng(15), band_axis=1))
    per_band = changed.all(axis=(2, 3))
    assert (per_band.sum(axis=1) == 6).all()
    assert (changed.any(axis=(2, 3)) == per_band).all()


# --------------------------------------------------------------------------- seeds and inputs


@pytest.mark.parametrize("name", NOISES)
def test_determinism(name):
    x = _data(500, 50) * 3
    noise = DataNoise(name, pa=0.5, pb=0.5, bc=False)
    first = apply_noise(x, noise, np.random.default_rng(42))
    again = apply_noise(x, noise, np.random.default_rng(42))
    other = apply_noise(x, noise, np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_input_array_untouched_even_if_read_only():
    x = _data(200, 30)
    original = x.copy()
    view = x.view()
    view.flags.writeable = False
    for name in NOISES:
        noisy = apply_noise(view, DataNoise(name, pa=1.0, pb=1.0), np.random.default_rng(0))
        assert noisy.flags.writeable
        assert not np.shares_memory(noisy, x)
    np.testing.assert_array_equal(x, original)


def test_dtypes():
    x64 = _data(50, 10).astype(np.float64)
    assert apply_noise(x64, DataNoise("gaussian"), np.random.default_rng(0)).dtype == np.float64
    ints = np.arange(200).reshape(20, 10)
    noisy = apply_noise(ints, DataNoise("gaussian", pa=1.0), np.random.default_rng(0))
    assert noisy.dtype == np.float32


def test_empty_and_degenerate_arrays():
    empty = np.zeros((0, 10), dtype=np.float32)
    for name in NOISES:
        out = apply_noise(empty, DataNoise(name, pa=1.0), np.random.default_rng(0))
        assert out.shape == (0, 10)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "salt"},
        {"name": "gaussian", "pa": -0.1},
        {"name": "gaussian", "pa": 1.5},
        {"name": "gaussian", "pb": 2},
        {"name": "impulsive", "pw": -1},
        {"name": "impulsive", "pw": 1.01},
        {"name": "gaussian", "std": -1},
        {"name": "gaussian", "std": float("nan")},
        {"name": "gaussian", "mean": float("inf")},
        {"name": "gaussian", "pa": "0.1"},
        {"name": "gaussian", "bc": "yes"},
        {"name": "gaussian", "pa": True},
    ],
)
def test_bad_parameters_raise_config_error(kwargs):
    with pytest.raises(ConfigError) as info:
        DataNoise(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_calls_raise_clear_errors():
    x = _data(10, 5)
    noise = DataNoise("gaussian")
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="band_axis"):
        apply_noise(x, noise, rng, band_axis=0)
    with pytest.raises(ConfigError, match="band_axis"):
        apply_noise(x, noise, rng, band_axis=2)
    with pytest.raises(InputError):
        apply_noise(x[0], noise, rng)
    with pytest.raises(InputError):
        apply_noise(np.array([["a", "b"]]), noise, rng)
    with pytest.raises(ConfigError):
        apply_noise(x, {"name": "gaussian"}, rng)
    with pytest.raises(ConfigError):
        apply_noise(x, noise, 0)
    with pytest.raises(ConfigError, match="value_range"):
        apply_noise(x, DataNoise("impulsive"), rng, value_range=(1.0, 0.0))
    with pytest.raises(ConfigError, match="value_range"):
        apply_noise(x, DataNoise("impulsive"), rng, value_range=1.0)
    with pytest.raises(ConfigError, match="unknown"):
        DataNoise.from_dict({"name": "gaussian", "sigma": 1})
    with pytest.raises(ConfigError):
        DataNoise.from_dict({"std": 1})
    with pytest.raises(ConfigError, match="noise set"):
        check_sets(("train", "testing"))


def test_to_dict_round_trip():
    for noise in (
        DataNoise("gaussian", mean=0.1, std=2, pa=0.3, pb=0.4, bc=False),
        DataNoise("impulsive", pw=0.25),
        DataNoise("shot", pa=1),
    ):
        data = json.loads(json.dumps(noise.to_dict()))
        assert DataNoise.from_dict(data) == noise
    assert DataNoise("gaussian", std=1, pa=0.1, pb=1).label == (
        "gaussian(mean=0,std=1,pa=0.1,pb=1,bc=True)"
    )


# --------------------------------------------------------------------------- splits and training


def test_apply_to_splits_noises_only_the_chosen_sets(tiny_splits):
    noise = DataNoise("gaussian", pa=0.5, pb=0.5, bc=False)
    noisy = apply_to_splits(tiny_splits, noise, sets=("test",), seed=0)
    # Splits re-wraps its arrays in new read-only views: the untouched sets share memory
    assert np.shares_memory(noisy.x_train, tiny_splits.x_train)
    assert np.shares_memory(noisy.x_val, tiny_splits.x_val)
    assert not np.shares_memory(noisy.x_test, tiny_splits.x_test)
    changed = (noisy.x_test != tiny_splits.x_test)[:, :, 0, 0]
    assert int(changed.any(axis=1).sum()) == _floor(len(tiny_splits.y_test), 0.5)
    assert set(changed.sum(axis=1).tolist()) == {0, _floor(tiny_splits.n_bands, 0.5)}
    np.testing.assert_array_equal(noisy.y_test, tiny_splits.y_test)
    assert (noisy.scale_min, noisy.scale_max) == (tiny_splits.scale_min, tiny_splits.scale_max)
    assert not noisy.x_test.flags.writeable  # still a proper Splits

    both = apply_to_splits(tiny_splits, noise, sets=("train", "test"), seed=0)
    assert not np.array_equal(both.x_train, tiny_splits.x_train)
    assert np.shares_memory(both.x_val, tiny_splits.x_val)
    # a set's noise depends on the seed and the set only
    np.testing.assert_array_equal(both.x_test, noisy.x_test)
    other_seed = apply_to_splits(tiny_splits, noise, sets="test", seed=1)
    assert not np.array_equal(other_seed.x_test, noisy.x_test)
    assert apply_to_splits(tiny_splits, noise, sets=(), seed=0) is tiny_splits
    with pytest.raises(ConfigError):
        apply_to_splits(tiny_splits, noise, sets=("test",), seed=-1)


def test_apply_to_splits_impulsive_uses_each_sets_own_range(tiny_splits):
    noise = DataNoise("impulsive", pw=0.5, pa=1.0, pb=1.0)
    noisy = apply_to_splits(tiny_splits, noise, sets=("train", "val", "test"), seed=0)
    for part in ("train", "val", "test"):
        clean = getattr(tiny_splits, f"x_{part}")
        values = np.unique(getattr(noisy, f"x_{part}"))
        np.testing.assert_array_equal(values, np.unique([clean.min(), clean.max()]))


def test_apply_to_splits_round_trips_through_save(tiny_splits, tmp_path):
    from robustq.data import Splits

    noisy = apply_to_splits(tiny_splits, DataNoise("shot", pa=0.2), sets=("test",), seed=3)
    loaded = Splits.load(noisy.save(tmp_path / "noisy.npz"))
    np.testing.assert_array_equal(loaded.x_test, noisy.x_test)


def test_train_with_data_noise(tiny_splits):
    from robustq.models import TrainConfig, train

    config = TrainConfig(epochs=2, patience=2, batch_size=64, seed=0, n_filters=8, lr=0.003)
    noise = DataNoise("gaussian", std=1.0, pa=0.5, pb=1.0)
    noisy = train(tiny_splits, None, config, data_noise=noise, noise_sets=("train", "val"))
    clean = train(tiny_splits, None, config)
    assert len(noisy.history) == 2
    assert np.isfinite(noisy.history["loss"]).all()
    # same seeds everywhere: only the noised data can make the histories differ
    assert not np.allclose(noisy.history["val_loss"], clean.history["val_loss"])
    with pytest.raises(ConfigError, match="noise_sets"):
        train(tiny_splits, None, config, data_noise=noise, noise_sets=("test",))


def test_replace_keeps_validation():
    noise = DataNoise("gaussian")
    with pytest.raises(ConfigError):
        replace(noise, pa=3)
