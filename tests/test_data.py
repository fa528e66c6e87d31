"""Tests of robustq.data (loading, cleaning, splitting, scaling) and robustq.synthetic."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import scipy.io

from robustq.data import (
    Scene,
    Splits,
    load_cube_scene,
    load_sample_scene,
    make_splits,
    scene_from_cube,
    scene_from_samples,
)
from robustq.errors import ConfigError, InputError
from robustq.synthetic import synthetic_cube, synthetic_scene


@pytest.fixture(scope="module")
def small_scene() -> Scene:
    return synthetic_scene(seed=1, height=120, width=80)


@pytest.fixture(scope="module")
def full_cube() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_cube(seed=0)


@pytest.fixture(scope="module")
def full_scene(full_cube) -> Scene:
    return scene_from_cube(*full_cube, name="synthetic-pavia")


@pytest.fixture()
def cube_and_gt() -> tuple[np.ndarray, np.ndarray]:
    """A 6 x 5 x 4 cube; labels {2, 5, 9} on 18 pixels, background elsewhere."""
    rng = np.random.default_rng(0)
    cube = rng.uniform(0.0, 1.0, size=(6, 5, 4)).astype(np.float32)
    gt = np.zeros((6, 5), dtype=np.uint8)
    gt[0:2, :] = 2
    gt[2:4, 1:4] = 5
    gt[4:6, 0:2] = 9
    return cube, gt


def _expected(cube: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    positions = np.flatnonzero(gt)
    samples = cube.reshape(-1, cube.shape[-1])[positions]
    labels = np.searchsorted([2, 5, 9], gt.reshape(-1)[positions])
    return samples, labels, positions


def _assert_scene_matches(scene: Scene, cube: np.ndarray, gt: np.ndarray) -> None:
    samples, labels, positions = _expected(cube, gt)
    np.testing.assert_array_equal(scene.samples, samples)
    np.testing.assert_array_equal(scene.labels, labels)
    np.testing.assert_array_equal(scene.positions, positions)
    assert scene.label_map == (2, 5, 9)
    assert scene.shape == gt.shape
    assert scene.samples.dtype == np.float32 and scene.labels.dtype == np.int64


# ----------------------------------------------------------------------------- cube loading


def test_cube_from_npy_files(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    np.save(tmp_path / "pavia.npy", cube)
    np.save(tmp_path / "pavia_gt.npy", gt)
    scene = load_cube_scene(tmp_path / "pavia.npy", tmp_path / "pavia_gt.npy")
    _assert_scene_matches(scene, cube, gt)
    assert scene.name == "pavia"
    assert scene.n_bands == 4 and scene.n_classes == 3
    np.testing.assert_array_equal(scene.class_counts, [10, 6, 4])


def test_cube_and_gt_in_one_npz_are_picked_by_ndim(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    path = tmp_path / "both.npz"
    np.savez(path, data=cube, labels=gt, wavelengths=np.arange(4.0))
    _assert_scene_matches(load_cube_scene(path, path, name="x"), cube, gt)


def test_ambiguous_npz_requires_a_key_and_lists_keys(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    path = tmp_path / "two.npz"
    np.savez(path, raw=cube * 2, corrected=cube, gt=gt)
    with pytest.raises(InputError, match=r"several .*cube_key.*raw.*corrected"):
        load_cube_scene(path, path)
    _assert_scene_matches(load_cube_scene(path, path, cube_key="corrected"), cube, gt)
    with pytest.raises(InputError, match=r"'nope' is not in .*available keys: raw"):
        load_cube_scene(path, path, cube_key="nope")


def test_key_for_npy_file_is_a_config_error(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    np.save(tmp_path / "c.npy", cube)
    np.save(tmp_path / "g.npy", gt)
    with pytest.raises(ConfigError, match="cube_key applies only"):
        load_cube_scene(tmp_path / "c.npy", tmp_path / "g.npy", cube_key="x")


def test_cube_from_mat_files(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    scipy.io.savemat(tmp_path / "PaviaU.mat", {"paviaU": cube.astype(np.float64)})
    scipy.io.savemat(tmp_path / "PaviaU_gt.mat", {"paviaU_gt": gt})
    scene = load_cube_scene(tmp_path / "PaviaU.mat", tmp_path / "PaviaU_gt.mat")
    _assert_scene_matches(scene, cube, gt)
    scipy.io.savemat(tmp_path / "both.mat", {"img": cube, "map": gt})
    _assert_scene_matches(load_cube_scene(tmp_path / "both.mat", tmp_path / "both.mat"), cube, gt)


def _write_mat_v73(path, arrays: dict[str, np.ndarray]) -> None:
    """A MATLAB v7.3 file: HDF5 after a 512-byte user block holding the MATLAB header."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w", userblock_size=512) as h5:
        for key, value in arrays.items():
            h5[key] = value.T  # MATLAB is column-major: HDF5 sees reversed axes
    header = b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as handle:
        handle.write(header)


def test_cube_from_mat_v73_with_h5py(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    path = tmp_path / "v73.mat"
    _write_mat_v73(path, {"cube": cube, "gt": gt})
    _assert_scene_matches(load_cube_scene(path, path), cube, gt)


def test_mat_v73_without_h5py_gives_a_conversion_hint(tmp_path, cube_and_gt, monkeypatch):
    path = tmp_path / "v73.mat"
    _write_mat_v73(path, {"cube": cube_and_gt[0], "gt": cube_and_gt[1]})
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(InputError, match=r"v7\.3.*-v7.*\.npy"):
        load_cube_scene(path, path)


def test_band_axis_moves_bands_last(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    np.save(tmp_path / "bhw.npy", np.moveaxis(cube, -1, 0))
    np.save(tmp_path / "gt.npy", gt)
    scene = load_cube_scene(tmp_path / "bhw.npy", tmp_path / "gt.npy", band_axis=0)
    _assert_scene_matches(scene, cube, gt)
    with pytest.raises(InputError, match="cube is 4 x 6 pixels"):
        load_cube_scene(tmp_path / "bhw.npy", tmp_path / "gt.npy")


def test_background_and_nan_samples_are_dropped(cube_and_gt):
    cube, gt = cube_and_gt
    cube = cube.copy()
    cube[0, 1, 2] = np.nan  # labelled pixel, flat index 1
    cube[5, 4, 0] = np.nan  # background pixel
    scene = scene_from_cube(cube, gt)
    keep = np.flatnonzero(gt)
    keep = keep[keep != 1]
    np.testing.assert_array_equal(scene.positions, keep)
    np.testing.assert_array_equal(scene.samples, cube.reshape(-1, 4)[keep])
    assert np.isfinite(scene.samples).all()
    assert len(scene.labels) == (gt > 0).sum() - 1


def test_scene_arrays_are_read_only(cube_and_gt):
    scene = scene_from_cube(*cube_and_gt)
    with pytest.raises(ValueError, match="read-only"):
        scene.samples[0, 0] = 1.0


@pytest.mark.parametrize(
    ("cube", "gt", "message"),
    [
        (np.ones((4, 4, 3)), np.ones((4, 5)), "ground truth is 4 x 5"),
        (np.ones((4, 4)), np.ones((4, 4)), "cube must be 3-D"),
        (np.ones((4, 4, 3)), np.ones((4, 4, 1)), "ground truth must be 2-D"),
        (np.full((4, 4, 3), np.nan), np.ones((4, 4)), "no valid samples"),
        (np.ones((4, 4, 3)), np.zeros((4, 4)), "no valid samples"),
        (np.ones((4, 4, 3)), np.full((4, 4), 1.5), "must be integers.*1.5"),
        (np.ones((4, 4, 3)), np.full((4, 4), 3), "only one class"),
        (np.ones((4, 4, 3)), -np.ones((4, 4)), "negative labels"),
    ],
)
def test_bad_cubes_raise_input_error(cube, gt, message):
    with pytest.raises(InputError, match=message):
        scene_from_cube(cube, gt)


def test_missing_file_and_unknown_extension(tmp_path, cube_and_gt):
    cube, gt = cube_and_gt
    np.save(tmp_path / "gt.npy", gt)
    with pytest.raises(InputError, match="cube file not found"):
        load_cube_scene(tmp_path / "absent.npy", tmp_path / "gt.npy")
    (tmp_path / "cube.txt").write_text("1 2 3\n")
    with pytest.raises(InputError, match=r"unknown file extension '\.txt'"):
        load_cube_scene(tmp_path / "cube.txt", tmp_path / "gt.npy")
    (tmp_path / "cube.npz").write_bytes(b"not a zip archive")
    with pytest.raises(InputError, match=r"is not an \.npz \(zip\) file"):
        load_cube_scene(tmp_path / "cube.npz", tmp_path / "gt.npy")
    (tmp_path / "cube.csv").write_text("1,2,3\n")
    with pytest.raises(InputError, match=r"unknown file extension '\.csv'"):
        load_cube_scene(tmp_path / "cube.csv", tmp_path / "gt.npy")


def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "evil.npy"
    # The malicious input, written the way np.save writes object arrays: an .npy header
    # declaring dtype object, then a pickle (the one pickle in the code base).
    with open(path, "wb") as handle:
        header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
        np.lib.format.write_array_header_1_0(handle, header)
        pickle.dump(np.array([{"a": 1}], dtype=object), handle, protocol=3)
    np.save(tmp_path / "gt.npy", np.ones((2, 2), dtype=int))
    with pytest.raises(InputError, match="contains pickled objects; robustq never unpickles"):
        load_cube_scene(path, tmp_path / "gt.npy")
    with pytest.raises(InputError, match="pickled objects"):
        load_sample_scene(path, tmp_path / "gt.npy")


# ----------------------------------------------------------------------------- sample tables


def test_sample_table_keeps_label_zero_and_remaps():
    samples = np.arange(12, dtype=np.float64).reshape(6, 2)
    scene = scene_from_samples(samples, np.array([0, 7, 7, 0, 3, 3]), name="t")
    assert scene.label_map == (0, 3, 7)
    np.testing.assert_array_equal(scene.labels, [0, 2, 2, 0, 1, 1])
    assert scene.shape is None and scene.positions is None
    assert scene.name == "t"


def test_sample_table_from_csv_with_header_and_nan(tmp_path):
    (tmp_path / "x.csv").write_text("b1,b2,b3\n1,2,3\n4,,6\n7,8,9\n1.5,2.5,3.5\n")
    (tmp_path / "y.csv").write_text("label\n1\n1\n2\n2\n")
    scene = load_sample_scene(tmp_path / "x.csv", tmp_path / "y.csv")
    np.testing.assert_array_equal(scene.samples, [[1, 2, 3], [7, 8, 9], [1.5, 2.5, 3.5]])
    np.testing.assert_array_equal(scene.labels, [0, 1, 1])
    assert scene.label_map == (1, 2)
    assert scene.name == "x"


def test_sample_table_string_labels_are_refused(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n3,4\n5,6\n")
    (tmp_path / "y.csv").write_text("grass\nsoil\ngrass\n")
    with pytest.raises(InputError, match="labels must be numeric.*'grass'"):
        load_sample_scene(tmp_path / "x.csv", tmp_path / "y.csv")
    with pytest.raises(InputError, match="labels must be integers"):
        scene_from_samples(np.ones((3, 2)), np.array(["a", "b", "a"]))
    with pytest.raises(InputError, match="labels must be integers, found the value 0.5"):
        scene_from_samples(np.ones((3, 2)), np.array([1.0, 0.5, 2.0]))


def test_sample_table_from_mat_and_npz_auto_keys(tmp_path):
    samples = np.random.default_rng(1).normal(size=(8, 5))
    labels = np.array([3, 3, 4, 4, 4, 9, 9, 9])
    # savemat stores the label vector as a 1 x 8 matrix.
    scipy.io.savemat(tmp_path / "table.mat", {"X": samples, "y": labels})
    np.savez(tmp_path / "table.npz", X=samples, y=labels)
    for path in (tmp_path / "table.mat", tmp_path / "table.npz"):
        scene = load_sample_scene(path, path)
        np.testing.assert_allclose(scene.samples, samples.astype(np.float32))
        np.testing.assert_array_equal(scene.labels, [0, 0, 1, 1, 1, 2, 2, 2])
        assert scene.label_map == (3, 4, 9)


def test_sample_table_errors(tmp_path):
    with pytest.raises(InputError, match="5 samples but 4 labels"):
        scene_from_samples(np.ones((5, 2)), np.array([1, 2, 1, 2]))
    with pytest.raises(InputError, match="no valid samples"):
        scene_from_samples(np.full((3, 2), np.nan), np.array([1, 2, 1]))
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    (tmp_path / "y.json").write_text("[1, 2, 3]")
    with pytest.raises(InputError, match="unknown file extension '.json' for labels file"):
        load_sample_scene(tmp_path / "x.npy", tmp_path / "y.json")


# ----------------------------------------------------------------------------- splits


def _per_class(y: np.ndarray, n_classes: int) -> list[int]:
    return np.bincount(y, minlength=n_classes).tolist()


def test_balanced_split_250_gives_225_train_25_val(full_scene):
    splits = make_splits(full_scene, train_size=250, val_size=0.1, seed=0)
    assert _per_class(splits.y_train, 9) == [225] * 9
    assert _per_class(splits.y_val, 9) == [25] * 9
    assert len(splits.y_test) == full_scene.labels.size - 9 * 250
    assert splits.x_train.shape == (2025, 103, 1, 1) and splits.x_train.dtype == np.float32
    assert splits.shape == (610, 340)


def test_fraction_and_list_train_sizes(small_scene):
    counts = small_scene.class_counts
    by_fraction = make_splits(small_scene, train_size=0.5, val_size=0.2, seed=1)
    picks = np.floor(counts * 0.5).astype(int)
    assert _per_class(by_fraction.y_val, 9) == np.floor(picks * 0.2).astype(int).tolist()
    assert _per_class(by_fraction.y_train, 9) == (picks - np.floor(picks * 0.2)).tolist()
    sizes = [10, 20, 30, 40, 50, 11, 12, 13, 14]
    by_list = make_splits(small_scene, train_size=sizes, val_size=3, seed=1)
    assert _per_class(by_list.y_val, 9) == [3] * 9
    assert _per_class(by_list.y_train, 9) == [n - 3 for n in sizes]
    assert _per_class(by_list.y_test, 9) == (counts - np.array(sizes)).tolist()


def test_splits_are_disjoint_and_cover_the_scene(small_scene):
    splits = make_splits(small_scene, train_size=40, val_size=0.1, seed=0)
    parts = [splits.idx_train, splits.idx_val, splits.idx_test]
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(small_scene.labels)))
    for idx, y in zip(parts, [splits.y_train, splits.y_val, splits.y_test], strict=True):
        np.testing.assert_array_equal(small_scene.labels[idx], y)
    assert _per_class(splits.y_train, 9) == [36] * 9
    assert _per_class(splits.y_val, 9) == [4] * 9


def test_splits_are_deterministic_per_seed(small_scene):
    first = make_splits(small_scene, 40, 0.1, seed=7)
    again = make_splits(small_scene, 40, 0.1, seed=7)
    other = make_splits(small_scene, 40, 0.1, seed=8)
    for key in ("x_train", "y_train", "x_val", "idx_train", "idx_val", "idx_test", "x_test"):
        np.testing.assert_array_equal(getattr(first, key), getattr(again, key))
    assert not np.array_equal(first.idx_train, other.idx_train)
    assert first.seed == 7


def test_class_streams_are_independent(small_scene):
    sizes = [40] * 9
    base = make_splits(small_scene, sizes, 0, seed=3)
    sizes[0] = 50
    changed = make_splits(small_scene, sizes, 0, seed=3)
    others = small_scene.labels[base.idx_train] != 0
    np.testing.assert_array_equal(
        base.idx_train[others], changed.idx_train[small_scene.labels[changed.idx_train] != 0]
    )


def test_scaling_uses_the_training_set_only(small_scene):
    splits = make_splits(small_scene, 40, 0.1, seed=0)
    raw_train = small_scene.samples[splits.idx_train]
    assert splits.scale_min == float(raw_train.min())
    assert splits.scale_max == float(raw_train.max())
    assert splits.x_train.min() == 0.0 and splits.x_train.max() == 1.0
    expected = (small_scene.samples[splits.idx_test].astype(np.float64) - splits.scale_min) / (
        splits.scale_max - splits.scale_min
    )
    np.testing.assert_allclose(splits.x_test[:, :, 0, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(splits.scale(small_scene.samples[splits.idx_test]), splits.x_test)
    with pytest.raises(InputError, match="N x 103"):
        splits.scale(np.ones((2, 5)))


def test_split_errors(small_scene):
    counts = small_scene.class_counts
    k = int(np.argmin(counts))
    label = small_scene.label_map[k]
    with pytest.raises(InputError, match=rf"class {k} \(label {label}, {counts[k]} samples\)"):
        make_splits(small_scene, train_size=int(counts[k]) + 1)
    with pytest.raises(ConfigError, match="train_size"):
        make_splits(small_scene, train_size=[10, 20])
    with pytest.raises(ConfigError, match="train_size"):
        make_splits(small_scene, train_size="ten")
    with pytest.raises(ConfigError, match="fraction must be in"):
        make_splits(small_scene, train_size=1.5)
    with pytest.raises(InputError, match="at least one must stay in training"):
        make_splits(small_scene, train_size=5, val_size=5)
    constant = scene_from_samples(np.ones((10, 3)), np.arange(10) % 2)
    with pytest.raises(InputError, match="constant"):
        make_splits(constant, train_size=2, val_size=0)


def test_splits_save_load_round_trip(tmp_path, small_scene):
    splits = make_splits(small_scene, 40, 0.1, seed=5)
    path = splits.save(tmp_path / "out" / "splits.npz")
    assert path == tmp_path / "out" / "splits.npz"
    assert [p.name for p in path.parent.iterdir()] == ["splits.npz"]
    loaded = Splits.load(path)
    for key in (*Splits._ARRAYS, *Splits._INDICES, "positions"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(splits, key))
        assert getattr(loaded, key).dtype == getattr(splits, key).dtype
    for key in ("scale_min", "scale_max", "label_map", "n_classes", "n_bands", "scene_name"):
        assert getattr(loaded, key) == getattr(splits, key)
    assert (loaded.seed, loaded.shape) == (5, (120, 80))
    assert loaded.summary() == splits.summary()

    table = scene_from_samples(np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2)
    no_map = make_splits(table, 5, 0.2, seed=0)
    reloaded = Splits.load(no_map.save(tmp_path / "table_splits"))
    assert reloaded.shape is None and reloaded.positions is None


def test_loading_a_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(InputError, match="not a robustq splits file"):
        Splits.load(tmp_path / "other.npz")
    with pytest.raises(InputError, match="not found"):
        Splits.load(tmp_path / "absent.npz")


def test_summary_counts(small_scene):
    splits = make_splits(small_scene, 40, 0.1, seed=0)
    summary = splits.summary()
    assert summary["sizes"] == {
        "train": 324,
        "val": 36,
        "test": int(small_scene.labels.size) - 360,
    }
    assert summary["per_class"]["train"] == [36] * 9
    assert summary["scene"] == "synthetic-pavia"


# ----------------------------------------------------------------------------- synthetic scene


def _neighbour_agreement(gt: np.ndarray) -> float:
    pairs = [(gt[:, 1:], gt[:, :-1]), (gt[1:, :], gt[:-1, :])]
    same = total = 0
    for a, b in pairs:
        both = (a > 0) & (b > 0)
        same += int((a[both] == b[both]).sum())
        total += int(both.sum())
    return same / total


def test_synthetic_scene_is_pavia_like(full_cube, full_scene):
    cube, gt = full_cube
    assert cube.shape == (610, 340, 103) and cube.dtype == np.float32
    assert full_scene.n_bands == 103 and full_scene.n_classes == 9
    assert full_scene.label_map == tuple(range(1, 10))
    counts = full_scene.class_counts
    assert counts.max() > 10 * counts.min()  # unequal, like Pavia (18649 vs 947)
    assert 0.7 < np.mean(gt == 0) < 0.9  # mostly unlabelled background
    assert 30_000 < counts.sum() < 60_000
    assert _neighbour_agreement(gt) > 0.9
    np.testing.assert_array_equal(full_scene.samples, cube[gt > 0])


def test_small_synthetic_scene_is_deterministic_and_complete(small_scene):
    again = synthetic_scene(seed=1, height=120, width=80)
    np.testing.assert_array_equal(again.samples, small_scene.samples)
    np.testing.assert_array_equal(again.labels, small_scene.labels)
    via_cube = scene_from_cube(*synthetic_cube(seed=1, height=120, width=80))
    np.testing.assert_array_equal(via_cube.samples, small_scene.samples)
    other = synthetic_scene(seed=2, height=120, width=80)
    assert other.samples.shape != small_scene.samples.shape or not np.array_equal(
        other.samples, small_scene.samples
    )
    assert small_scene.n_classes == 9
    assert small_scene.class_counts.min() >= 60
    assert small_scene.shape == (120, 80)
    assert _neighbour_agreement(synthetic_cube(seed=1, height=120, width=80)[1]) > 0.9


def test_synthetic_cube_reloads_like_a_real_data_set(tmp_path):
    cube, gt = synthetic_cube(seed=4, height=64, width=48, n_bands=20)
    np.save(tmp_path / "cube.npy", cube)
    np.save(tmp_path / "gt.npy", gt)
    scene = load_cube_scene(tmp_path / "cube.npy", tmp_path / "gt.npy")
    direct = synthetic_scene(seed=4, height=64, width=48, n_bands=20)
    np.testing.assert_array_equal(scene.samples, direct.samples)
    np.testing.assert_array_equal(scene.positions, direct.positions)
    assert scene.n_bands == 20


def test_synthetic_arguments_are_checked():
    with pytest.raises(ConfigError, match="height"):
        synthetic_cube(height=4)
    with pytest.raises(ConfigError, match="n_classes"):
        synthetic_cube(n_classes=12)


def test_subsample_test_is_stratified_and_seeded(tiny_splits):
    from robustq.data import subsample_test

    cut = subsample_test(tiny_splits, 300, seed=1)
    assert len(cut.y_test) == 300
    full = np.bincount(tiny_splits.y_test, minlength=tiny_splits.n_classes) / len(
        tiny_splits.y_test
    )
    part = np.bincount(cut.y_test, minlength=tiny_splits.n_classes) / 300
    assert np.abs(full - part).max() <= 1 / 300 + 1e-12
    assert set(cut.idx_test) <= set(tiny_splits.idx_test)
    assert np.array_equal(cut.x_train, tiny_splits.x_train)
    assert np.array_equal(subsample_test(tiny_splits, 300, seed=1).idx_test, cut.idx_test)
    assert not np.array_equal(subsample_test(tiny_splits, 300, seed=2).idx_test, cut.idx_test)
    assert subsample_test(tiny_splits, 0) is tiny_splits
    with pytest.raises(ConfigError):
        subsample_test(tiny_splits, -5)
