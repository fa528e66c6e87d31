"""Sweeps on the tiny model: spec validation, the grid, the results store, resume, executors.

Every test runs real cells (TFLite inference of the tiny variants); grids are
kept small (float32 and int8, a few levels, 1-2 seeds) so the module stays
well under a few minutes. The kill test SIGKILLs a real sweep process.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustq.acquisition import DataNoise, apply_to_splits
from robustq.errors import ConfigError, InputError
from robustq.sweep import (
    RESULTS_FILE,
    VOLATILE_COLUMNS,
    Cell,
    ResultsStore,
    SweepSpec,
    aggregate,
    cell_data,
    data_noise_seed,
    evaluate_cell,
    export,
    format_report,
    grid,
    layer_ranking,
    layer_table,
    load_results,
    load_spec,
    repeat_seed,
    run_cell,
    run_sweep,
    splits_fingerprint,
)

NOISE = {"name": "gaussian", "std": 1.0, "pa": 0.5, "pb": 1.0}
BASE_FAULTS = [
    {"name": "gaussian", "levels": [0, 0.2]},
    {"name": "bitflip", "levels": [1e-3]},
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny_splits, tiny_variants_dir) -> Path:
    """A folder holding the tiny splits file and a spec-relative link to the variants."""
    folder = tmp_path_factory.mktemp("sweep_data")
    tiny_splits.save(folder / "splits.npz")
    (folder / "variants").symlink_to(tiny_variants_dir, target_is_directory=True)
    return folder


def spec_dict(folder: Path, **changes) -> dict:
    """The base spec over ``folder``'s variants and splits (validation alone needs no files)."""
    spec = {
        "variants": str(folder / "variants"),
        "splits": str(folder / "splits.npz"),
        "schemes": ["float32", "int8"],
        "faults": BASE_FAULTS,
        "seeds": 2,
        "ensemble": {"copies": 0},
    }
    spec.update(changes)
    return spec


def make_spec(folder: Path, **changes) -> SweepSpec:
    return SweepSpec.from_dict(spec_dict(folder, **changes))


def stable(frame: pd.DataFrame) -> pd.DataFrame:
    """The deterministic columns of a results frame (timings and worker ids dropped)."""
    return frame.drop(columns=[c for c in VOLATILE_COLUMNS if c in frame]).reset_index(drop=True)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, data_dir) -> Path:
    """The base spec (2 schemes x 3 fault levels x 2 seeds) run once with jobs=1."""
    run = tmp_path_factory.mktemp("base_run") / "run"
    summary = run_sweep(make_spec(data_dir), run, jobs=1, progress=False)
    assert (summary.total, summary.skipped, summary.computed) == (12, 0, 12)
    return run


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


# --------------------------------------------------------------------------- spec validation
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sedes": 3}, "unknown key 'sedes'"),
        ({"schemes": ["int4"]}, "unknown scheme 'int4'"),
        ({"schemes": []}, "schemes is empty"),
        ({"faults": [{"name": "cosmic_ray", "levels": [1]}]}, "unknown fault 'cosmic_ray'"),
        ({"faults": [{"name": "gaussian", "levels": []}]}, "level list is empty"),
        ({"faults": [{"name": "gaussian", "levels": [0.1, -0.2]}]}, "-0.2 is negative"),
        ({"faults": [{"name": "gaussian", "levels": [0.1, 0.1]}]}, "listed twice"),
        ({"faults": [{"name": "gaussian", "levels": ["big"]}]}, "not a finite number"),
        ({"faults": [{"name": "gaussian", "level": [0.1]}]}, "unknown key 'level' in faults"),
        ({"faults": [{"name": "bitflip", "levels": [0.5, 2]}]}, "ber must be in"),
        ({"faults": [{"name": "gaussian", "parameter": "sigma", "levels": [1]}]}, "'sigma'"),
        (
            {"faults": [{"name": "bitflip", "levels": [0.1], "params": {"ber": 0.2}}]},
            "set by the levels",
        ),
        (
            {"faults": [{"name": "bitflip", "levels": [0.1], "params": {"bitz": "msb"}}]},
            "unknown parameter",
        ),
        ({"faults": []}, "faults is empty"),
        ({"seeds": 0}, "seeds"),
        ({"seed": -1}, "seed must be"),
        ({"ensemble": {"copies": 2, "vote": "soft"}}, "unknown key 'vote' in ensemble"),
        ({"ensemble": {"copies": 0, "voting": "soft"}}, "copies 0"),
        ({"ensemble": {"copies": 2, "voting": "median"}}, "unknown voting"),
        ({"layerwise": True, "targets": {"names": "dense"}}, "layerwise"),
        ({"targets": {"role": "kernels"}}, "target role"),
        ({"kernels": "fastest"}, "unknown kernels"),
        ({"test_limit": -5}, "test_limit"),
        ({"data_noise": []}, "data_noise is an empty list"),
        ({"data_noise": [None, {"name": "salt"}]}, r"data_noise\[1\]: unknown data noise 'salt'"),
        ({"data_noise": [{"name": "gaussian", "pa": 2}]}, r"pa must be in \[0, 1\]"),
        ({"data_noise": [{"name": "gaussian", "std": -1}]}, "std must be >= 0"),
        ({"data_noise": [{"name": "shot", "lam": 3}]}, "unknown parameter"),
        ({"data_noise": [{"std": 1}]}, "needs a 'name'"),
        ({"data_noise": [None, "none"]}, r"data_noise\[1\] repeats an earlier condition"),
        ({"data_noise": [5]}, "must be null or a mapping"),
    ],
)
def test_spec_validation_errors(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        make_spec(tmp_path, **changes)


def test_spec_missing_key(tmp_path):
    data = spec_dict(tmp_path)
    del data["faults"]
    with pytest.raises(ConfigError, match="missing key 'faults'"):
        SweepSpec.from_dict(data)


def test_yaml_and_toml_specs_agree(tmp_path):
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(
        "variants: variants\n"
        "splits: splits.npz\n"
        "schemes: [float32, int8]\n"
        "faults:\n"
        "  - {name: gaussian, levels: [0, 0.2]}\n"
        "  - {name: bitflip, levels: [1e-3], params: {bits: all}}\n"
        "seeds: 2\n"
        "ensemble: {copies: 0}\n"
    )
    toml_file = tmp_path / "spec.toml"
    toml_file.write_text(
        'variants = "variants"\n'
        'splits = "splits.npz"\n'
        'schemes = ["float32", "int8"]\n'
        "seeds = 2\n"
        "[ensemble]\ncopies = 0\n"
        '[[faults]]\nname = "gaussian"\nlevels = [0, 0.2]\n'
        '[[faults]]\nname = "bitflip"\nlevels = [1e-3]\nparams = {bits = "all"}\n'
    )
    from_yaml, from_toml = load_spec(yaml_file), load_spec(toml_file)
    assert from_yaml == from_toml
    # relative paths are relative to the spec file; YAML's 1e-3 is a number
    assert from_yaml.variants == tmp_path / "variants"
    assert from_yaml.faults[1].levels == (1e-3,)
    assert from_yaml.faults[0].parameter == "std_factor"
    assert SweepSpec.from_dict(from_yaml.to_dict()) == from_yaml


def test_spec_file_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "spec.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        load_spec(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("schemes: [int8\nfaults: {")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(broken)
    scalar = tmp_path / "scalar.toml"
    scalar.write_text("schemes = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(scalar)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("variants: v\nsplits: s\nschemes: [int8]\nfaults: []\ncopies: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'copies'"):
        load_spec(unknown)


def test_data_noise_in_yaml_and_toml(tmp_path):
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(
        "variants: v\nsplits: s.npz\nschemes: [int8]\n"
        "faults: [{name: gaussian, levels: [0]}]\n"
        "data_noise:\n  - null\n  - {name: gaussian, std: 1, pa: 0.1, pb: 1}\n"
    )
    toml_file = tmp_path / "spec.toml"
    toml_file.write_text(
        'variants = "v"\nsplits = "s.npz"\nschemes = ["int8"]\n'
        'data_noise = ["none", {name = "gaussian", std = 1.0, pa = 0.1, pb = 1.0}]\n'
        '[[faults]]\nname = "gaussian"\nlevels = [0]\n'
    )
    from_yaml, from_toml = load_spec(yaml_file), load_spec(toml_file)
    assert from_yaml == from_toml
    assert from_yaml.data_noise == (None, DataNoise("gaussian", std=1.0, pa=0.1, pb=1.0))
    assert SweepSpec.from_dict(from_yaml.to_dict()) == from_yaml
    # the default (clean data only) leaves the run identity of older runs unchanged
    assert "data_noise" in from_yaml.fingerprint_fields()
    plain = SweepSpec.from_dict({**from_yaml.to_dict(), "data_noise": [None]})
    assert "data_noise" not in plain.fingerprint_fields()


def test_example_spec_is_valid():
    spec = load_spec(Path(__file__).parent.parent / "examples" / "sweep.yaml")
    assert spec.schemes == ("float32", "float16", "int8", "int16x8")
    assert spec.faults[0].levels == (0.0, 0.05, 0.1, 0.2, 0.4)
    assert spec.faults[1].levels == (1e-6, 1e-5, 1e-4, 1e-3)
    assert spec.seeds == 3 and spec.ensemble[0].copies == 0
    assert spec.variants.parts[-3:] == ("runs", "demo", "variants")
    assert spec.data_noise == (None,)


def test_example_spec_data_noise_block_is_valid_when_uncommented(tmp_path):
    import re

    text = (Path(__file__).parent.parent / "examples" / "sweep.yaml").read_text()
    uncommented = re.sub(r"^# (data_noise:|  - )", r"\1", text, flags=re.M)
    assert uncommented != text
    (tmp_path / "sweep.yaml").write_text(uncommented)
    spec = load_spec(tmp_path / "sweep.yaml")
    assert spec.data_noise[0] is None
    assert [n.std for n in spec.data_noise[1:]] == [0.5, 1.0]
    assert {(n.name, n.pa, n.pb) for n in spec.data_noise[1:]} == {("gaussian", 0.1, 1.0)}


def test_problems_only_the_model_shows_fail_before_anything_is_written(tmp_path, data_dir):
    run = tmp_path / "run"
    spec = make_spec(data_dir, faults=[{"name": "scale", "levels": [0.1]}])
    with pytest.raises(ConfigError, match="scale"):
        run_sweep(spec, run, jobs=1, progress=False)
    assert not run.exists()
    with pytest.raises(InputError, match="variants folder not found"):
        run_sweep(make_spec(data_dir, variants=str(tmp_path / "nope")), run, progress=False)
    with pytest.raises(ConfigError, match="jobs"):
        run_sweep(make_spec(data_dir), run, jobs=0, progress=False)
    with pytest.raises(ConfigError, match="address applies"):
        run_sweep(make_spec(data_dir), run, address="127.0.0.1:6379", progress=False)
    assert not run.exists()


def test_missing_ray_is_a_clear_error(monkeypatch, tmp_path, data_dir):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"robustq\[ray\]"):
        run_sweep(make_spec(data_dir), tmp_path / "run", executor="ray", progress=False)


# --------------------------------------------------------------------------- the grid
def test_grid_is_the_product_of_its_axes(data_dir):
    spec = make_spec(
        data_dir,
        faults=[
            {"name": "gaussian", "levels": [0, 0.1, 0.2]},
            {"name": "bitflip", "levels": [1e-4, 1e-3]},
        ],
        seeds=3,
        ensemble=[{"copies": 0}, {"copies": 2, "voting": "soft"}],
    )
    cells = grid(spec)
    assert len(cells) == 2 * (3 + 2) * 3 * 2
    assert len({c.key for c in cells}) == len(cells)
    assert [c.key for c in grid(spec)] == [c.key for c in cells]  # stable keys
    # repeats draw independent seeds from SeedSequence(seed, (repeat,)), never seed + i
    seeds = sorted({(c.repeat, c.seed) for c in cells})
    assert seeds == [(r, repeat_seed(0, r)) for r in range(3)]
    assert {s for _, s in seeds}.isdisjoint({0, 1, 2})
    assert repeat_seed(0, 1) == int(np.random.SeedSequence(0).spawn(2)[1].generate_state(1)[0])
    counts = pd.Series([(c.scheme, c.fault, c.copies) for c in cells]).value_counts()
    assert set(counts) == {9, 6}
    # the key covers everything that changes a result, and nothing else
    cell = cells[0]
    assert Cell(**{**cell.to_dict(), "batch_size": 7}).key == cell.key
    assert Cell(**{**cell.to_dict(), "level": 0.3}).key != cell.key
    assert Cell(**{**cell.to_dict(), "variant_sha256": "0" * 64}).key != cell.key


def test_data_noise_is_an_axis_of_the_grid(data_dir):
    plain = grid(make_spec(data_dir))
    cells = grid(make_spec(data_dir, data_noise=[None, NOISE]))
    assert len(cells) == 2 * len(plain)
    assert len({c.key for c in cells}) == len(cells)
    clean = [c for c in cells if not c.data_noise]
    noisy = [c for c in cells if c.data_noise]
    # clean-data cells are exactly the cells of a run without the axis (same keys: it resumes)
    assert [c.key for c in clean] == [c.key for c in plain]
    assert all(c.data_noise_seed == 0 and c.noise() is None for c in clean)
    # order: scheme, then data condition, then the fault grid
    assert [(c.scheme, bool(c.data_noise)) for c in cells[:: len(plain) // 2]] == [
        ("float32", False),
        ("float32", True),
        ("int8", False),
        ("int8", True),
    ]
    # one noise draw per repeat, shared by every scheme, fault and level of that repeat,
    # from a stream independent of the weight faults' seed
    assert {(c.repeat, c.data_noise_seed) for c in noisy} == {
        (r, data_noise_seed(0, r)) for r in range(2)
    }
    assert {c.data_noise_seed for c in noisy}.isdisjoint({c.seed for c in cells})
    assert all(c.noise() == DataNoise.from_dict(NOISE) for c in noisy)
    assert "data=gaussian(" in noisy[0].label
    cell = noisy[0]
    assert Cell(**{**cell.to_dict(), "data_noise_seed": 1}).key != cell.key
    assert Cell(**{**cell.to_dict(), "data_noise": ""}).key in {c.key for c in clean}


def test_all_schemes_are_the_manifests_variants(data_dir, tiny_variants):
    from robustq.convert import read_manifest

    every = grid(make_spec(data_dir, schemes="all", seeds=1))
    schemes = [v.scheme for v in read_manifest(data_dir / "variants")]
    assert len(schemes) == len(tiny_variants) == 7
    assert list(dict.fromkeys(c.scheme for c in every)) == schemes
    assert len(every) == len(schemes) * 3
    assert make_spec(data_dir, schemes=["all"]).schemes == ("all",)
    with pytest.raises(ConfigError, match="unknown scheme 'all'"):
        make_spec(data_dir, schemes=["all", "int8"])


def test_layerwise_grid_has_one_cell_per_layer(data_dir, tiny_variants):
    from robustq.perturb import per_layer

    spec = make_spec(data_dir, layerwise=True, seeds=1)
    cells = grid(spec)
    n_layers = {s: len(per_layer(tiny_variants[s])) for s in ("float32", "int8")}
    assert len(cells) == sum(n_layers.values()) * 3
    assert {c.layer for c in cells} == set(range(n_layers["int8"]))


# --------------------------------------------------------------------------- running and storing
def test_rows_in_the_store(base_run, data_dir):
    frame = load_results(base_run)
    cells = grid(make_spec(data_dir))
    assert frame["key"].tolist() == [c.key for c in cells]  # grid order, each once
    assert len(frame) == 12
    for column in (
        "accuracy_score",
        "balanced_accuracy_score",
        "cohen_kappa_score",
        "Class_0",
        "delta_accuracy",
        "delta_kappa",
        "flip_rate",
        "probability_shift",
        "member_accuracy_mean",
        "member_flip_rate_std",
        "member_nonfinite_rate_mean",
        "seconds",
        "version_tensorflow",
        "version_ai_edge_litert",
        "version_numpy",
        "version_robustq",
    ):
        assert column in frame, column
    assert frame["members"].eq(1).all() and frame["voting"].eq("none").all()
    # level 0 is the zero-strength fault: exactly the clean model
    clean = frame[frame["level"] == 0]
    assert len(clean) == 4
    assert (clean["delta_accuracy"] == 0).all() and (clean["flip_rate"] == 0).all()
    assert (clean["tensors_changed"] == 0).all()
    assert (clean["accuracy_score"] == clean["clean_accuracy"]).all()
    noisy = frame[frame["level"] > 0]
    assert (noisy["tensors_changed"] > 0).all() and (noisy["flip_rate"] > 0).all()
    # one perturbed member alone: its statistics are the cell's
    assert np.allclose(noisy["member_accuracy_mean"], noisy["accuracy_score"])
    assert (frame["member_accuracy_std"] == 0).all()
    assert np.allclose(
        noisy["probability_shift"], noisy["member_probability_shift_mean"], equal_nan=True
    )
    assert np.allclose(frame["delta_accuracy"], frame["accuracy_score"] - frame["clean_accuracy"])
    with closing(sqlite3.connect(base_run / RESULTS_FILE)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM results").fetchone() == (
            12,
            12,
        )


def test_run_cell_reproduces_a_stored_row(base_run, data_dir):
    cell = grid(make_spec(data_dir))[3]
    row = run_cell(cell, data_dir / "variants", data_dir / "splits.npz")
    stored = load_results(base_run).set_index("key").loc[cell.key]
    for column, value in row.items():
        if column in VOLATILE_COLUMNS or column == "key":
            continue
        if value is None or (isinstance(value, float) and np.isnan(value)):
            assert pd.isna(stored[column]), column
        else:
            assert stored[column] == value, column


def test_a_cell_refuses_inputs_other_than_those_it_was_planned_on(
    data_dir, tiny_variants, tiny_splits
):
    from robustq.data import subsample_test

    cell = next(c for c in grid(make_spec(data_dir)) if c.scheme == "int8")
    with pytest.raises(InputError, match="int8 variant changed since the sweep was planned"):
        evaluate_cell(cell, tiny_variants["int8"] + b"\0", tiny_splits)
    with pytest.raises(InputError, match="splits changed since the sweep was planned"):
        evaluate_cell(cell, tiny_variants["int8"], subsample_test(tiny_splits, 100, 0))
    other = Cell(**{**cell.to_dict(), "variant_sha256": "", "splits_sha256": ""})
    assert evaluate_cell(other, tiny_variants["int8"], tiny_splits)["members"] == 1


def test_resume_skips_finished_cells_and_recomputes_deleted_ones(base_run, data_dir, tmp_path):
    run = copy_run(base_run, tmp_path)
    before = load_results(run)
    again = run_sweep(make_spec(data_dir), run, jobs=1, progress=False)
    assert (again.total, again.skipped, again.computed) == (12, 12, 0)
    # the batch size changes no result: the same run, not a changed spec
    assert run_sweep(make_spec(data_dir, batch_size=64), run, progress=False).computed == 0
    gone = before["key"].iloc[[1, 5, 10]].tolist()
    with ResultsStore(run) as store:
        assert store.delete(gone) == 3
    partial = run_sweep(make_spec(data_dir), run, jobs=1, progress=False)
    assert (partial.skipped, partial.computed) == (9, 3)
    after = load_results(run)
    pd.testing.assert_frame_equal(stable(after), stable(before))
    recomputed = after.set_index("key").loc[gone, "finished_at"]
    assert (recomputed >= before.set_index("key").loc[gone, "finished_at"]).all()


def test_changed_spec_is_refused_and_extend_adds_cells(base_run, data_dir, tmp_path):
    run = copy_run(base_run, tmp_path)
    more = [{"name": "gaussian", "levels": [0, 0.2, 0.4]}, {"name": "bitflip", "levels": [1e-3]}]
    with pytest.raises(ConfigError, match="different spec.*faults"):
        run_sweep(make_spec(data_dir, faults=more), run, jobs=1, progress=False)
    assert len(load_results(run)) == 12
    extended = run_sweep(make_spec(data_dir, faults=more), run, jobs=1, extend=True, progress=False)
    assert (extended.total, extended.skipped, extended.computed) == (16, 12, 4)
    frame = load_results(run)
    assert frame["key"].tolist() == [c.key for c in grid(make_spec(data_dir, faults=more))]
    pd.testing.assert_frame_equal(
        stable(frame[frame["level"] != 0.4]), stable(load_results(base_run))
    )
    # the extended spec is now the run's spec: re-running it resumes
    assert run_sweep(make_spec(data_dir, faults=more), run, jobs=1, progress=False).computed == 0
    with ResultsStore(run) as store:
        assert store.spec()["faults"][0]["levels"] == [0.0, 0.2, 0.4]
    # extending may only add cells: dropping some is refused, even with extend
    with pytest.raises(ConfigError, match="drops 8"):
        run_sweep(make_spec(data_dir, faults=more, seeds=1), run, extend=True, progress=False)


def test_a_second_driver_on_the_same_folder_is_refused(base_run, data_dir):
    from robustq.sweep.store import _run_lock

    with _run_lock(base_run), pytest.raises(ConfigError, match="another sweep"):
        run_sweep(make_spec(data_dir), base_run, jobs=1, progress=False)


_DRIVER = """
import sys
from robustq.sweep import load_spec, run_sweep
run_sweep(load_spec(sys.argv[1]), sys.argv[2], jobs=1, progress=False)
"""


def _stored_rows(db_path: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _kill_after(spec_file: Path, run: Path, rows_at_least: int, total: int) -> int:
    """Start a sweep process, SIGKILL it once ``rows_at_least`` rows are stored; return them."""
    process = subprocess.Popen([sys.executable, "-c", _DRIVER, str(spec_file), str(run)])
    deadline = time.monotonic() + 180
    try:
        while _stored_rows(run / RESULTS_FILE) < rows_at_least:
            assert process.poll() is None, "the sweep process ended before it could be killed"
            assert time.monotonic() < deadline, "no rows appeared"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    stored = _stored_rows(run / RESULTS_FILE)
    assert stored < total, "the sweep finished before the kill"
    return stored


def test_sigkill_loses_only_cells_in_flight(tmp_path, data_dir):
    levels = [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    spec = spec_dict(data_dir, faults=[{"name": "gaussian", "levels": levels}])
    spec_file = tmp_path / "spec.json.yaml"
    spec_file.write_text(json.dumps(spec))  # JSON is YAML
    total = 2 * len(levels) * 2
    run = tmp_path / "killed"
    first = _kill_after(spec_file, run, 1, total)
    second = _kill_after(spec_file, run, first + 2, total)
    assert second >= first + 2
    with closing(sqlite3.connect(run / RESULTS_FILE)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    summary = run_sweep(load_spec(spec_file), run, jobs=1, progress=False)
    assert summary.skipped >= second and summary.skipped + summary.computed == total
    killed = load_results(run)
    assert killed["key"].is_unique and len(killed) == total
    clean_run = run_sweep(load_spec(spec_file), tmp_path / "uninterrupted", jobs=1, progress=False)
    assert clean_run.computed == total
    pd.testing.assert_frame_equal(stable(killed), stable(load_results(tmp_path / "uninterrupted")))


# --------------------------------------------------------------------------- executors
def test_two_local_jobs_give_the_rows_of_one(base_run, data_dir, tmp_path):
    summary = run_sweep(make_spec(data_dir), tmp_path / "jobs2", jobs=2, progress=False)
    assert summary.computed == 12 and summary.jobs == 2
    parallel = load_results(tmp_path / "jobs2")
    pd.testing.assert_frame_equal(stable(parallel), stable(load_results(base_run)))


def test_ray_executor_gives_the_rows_of_the_local_one(base_run, data_dir, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'robustq[ray]')")
    assert not ray.is_initialized()
    summary = run_sweep(
        make_spec(data_dir), tmp_path / "ray", jobs=2, executor="ray", progress=False
    )
    assert summary.computed == 12 and summary.executor == "ray"
    assert not ray.is_initialized()  # the local instance it started is shut down
    remote = load_results(tmp_path / "ray")
    pd.testing.assert_frame_equal(stable(remote), stable(load_results(base_run)))


# --------------------------------------------------------------------------- reading results
def test_aggregate_matches_a_hand_computation(base_run):
    frame = load_results(base_run)
    table = aggregate(frame)
    assert len(table) == 6 and (table["n_seeds"] == 2).all()
    report = format_report(table).splitlines()
    assert len(report) == 7 and "0.001" in report[-1]  # levels as written, not 0.0000
    assert "key" not in table and "repeat" not in table and "seed" not in table
    for _, expected_group in frame.groupby(["scheme", "fault", "level"]):
        first = expected_group.iloc[0]
        match = table[
            (table["scheme"] == first["scheme"])
            & (table["fault"] == first["fault"])
            & (table["level"] == first["level"])
        ]
        assert len(match) == 1
        got = match.iloc[0]
        for metric in ("accuracy_score", "delta_accuracy", "flip_rate", "Class_3"):
            values = expected_group[metric].to_numpy(dtype=float)
            assert got[f"{metric}_mean"] == pytest.approx(values.sum() / len(values))
            spread = np.sqrt(((values - values.mean()) ** 2).sum() / (len(values) - 1))
            assert got[f"{metric}_std"] == pytest.approx(spread, abs=1e-12)
            assert got[f"{metric}_min"] == values.min()
            assert got[f"{metric}_max"] == values.max()


def test_export_csv_parquet_and_report(base_run, tmp_path):
    written = export(
        base_run,
        csv=tmp_path / "rows.csv",
        parquet=tmp_path / "rows.parquet",
        report=tmp_path / "report.csv",
    )
    assert [p.name for p in written] == ["rows.csv", "rows.parquet", "report.csv"]
    frame = load_results(base_run)
    from_csv = pd.read_csv(tmp_path / "rows.csv")
    from_parquet = pd.read_parquet(tmp_path / "rows.parquet")
    assert from_csv.shape == from_parquet.shape == frame.shape
    assert from_parquet["key"].tolist() == from_csv["key"].tolist() == frame["key"].tolist()
    assert np.allclose(from_parquet["accuracy_score"], frame["accuracy_score"])
    report = pd.read_csv(tmp_path / "report.csv")
    assert report.shape == aggregate(frame).shape
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files
    with pytest.raises(InputError, match="no sweep results"):
        export(tmp_path / "nothing", csv=tmp_path / "x.csv")


def test_ensemble_settings_are_an_axis_on_a_test_sample(tmp_path, data_dir, tiny_splits):
    from robustq.data import subsample_test

    spec = make_spec(
        data_dir,
        schemes=["int8"],
        faults=[{"name": "gaussian", "levels": [0.3]}],
        seeds=1,
        ensemble=[{"copies": 0}, {"copies": 2, "voting": "soft"}],
        test_limit=600,
    )
    run_sweep(spec, tmp_path / "run", jobs=1, progress=False)
    frame = load_results(tmp_path / "run")
    assert frame["members"].tolist() == [1, 3]
    assert frame["voting"].tolist() == ["none", "soft"]
    assert frame["include_clean"].tolist() == [False, True]
    assert frame["probability_shift"].notna().all()
    assert frame["member_accuracy_std"].iloc[1] >= 0
    assert frame["changed_mean"].gt(0).all()
    sample = subsample_test(tiny_splits, 600, 0)
    assert (frame["splits_sha256"] == splits_fingerprint(sample)).all()
    assert (frame["test_limit"] == 600).all()


def test_layerwise_cells_touch_one_layer_and_build_a_table(tmp_path, data_dir, tiny_variants):
    from robustq.perturb import perturb
    from robustq.tflite import TFLiteModel

    levels = [0, 0.3, 1.0]
    spec = make_spec(
        data_dir, faults=[{"name": "gaussian", "levels": levels}], seeds=1, layerwise=True
    )
    run = tmp_path / "layers"
    run_sweep(spec, run, jobs=1, progress=False)
    frame = load_results(run)
    for scheme in ("float32", "int8"):
        model = TFLiteModel(tiny_variants[scheme])
        by_layer = {}
        for tensor in model.tensors:
            by_layer.setdefault(tensor.layer, []).append(tensor)
        rows = frame[(frame["scheme"] == scheme) & (frame["level"] > 0)]
        for _, row in rows.iterrows():
            own = by_layer[row["layer"]]
            assert row["tensors_targeted"] == len(own) == 2  # the layer's weights and bias
            assert 1 <= row["tensors_changed"] <= 2
            assert row["layer_name"] == next(t.name for t in own if t.role == "weight")
        table = layer_table(run, scheme)
        assert table.shape == (len(by_layer), len(levels))
        assert table.index.tolist() == sorted(by_layer)
        assert table.columns.tolist() == levels
        assert (table[0.0] == 0).all()
        ranking = layer_ranking(run, scheme)
        assert ranking["rank"].tolist() == list(range(1, len(by_layer) + 1))
        assert ranking["mean"].is_monotonic_increasing  # most negative delta OA first
    # the perturbed bytes of one layer-wise cell differ from the clean ones in that layer only
    cell = next(c for c in grid(spec) if c.scheme == "int8" and c.layer == 2 and c.level == 1.0)
    clean = TFLiteModel(tiny_variants["int8"])
    noisy = TFLiteModel(
        perturb(tiny_variants["int8"], cell.fault_spec(), cell.selection(), cell.seed).model_bytes
    )
    differ = {
        t.layer
        for t in clean.tensors
        if not np.array_equal(clean.stored(t.name), noisy.stored(t.name))
    }
    assert differ == {2}
    with pytest.raises(ConfigError, match="no layer-wise cells for scheme 'float16'"):
        layer_table(run, "float16")


# --------------------------------------------------------------------------- the data-noise axis
@pytest.fixture(scope="module")
def noise_run(tmp_path_factory, data_dir) -> Path:
    """2 schemes x (clean data, gaussian data noise) x gaussian weights at 2 levels x 2 seeds."""
    from robustq.sweep import cells

    cells._CLEAN_CACHE.clear()
    run = tmp_path_factory.mktemp("noise_run") / "run"
    summary = run_sweep(noise_run_spec(data_dir), run, jobs=1, progress=False)
    assert summary.computed == 16
    # one clean prediction per scheme and data draw: clean data once, noisy data per repeat
    assert len(cells._CLEAN_CACHE) == 2 * (1 + 2)
    return run


def test_data_noise_cells_score_the_noisy_test_sample(noise_run, tiny_splits, tiny_variants):
    from sklearn.metrics import accuracy_score

    from robustq.data import subsample_test
    from robustq.runtime import predict

    frame = load_results(noise_run)
    assert set(frame["data_noise_label"]) == {"none", DataNoise.from_dict(NOISE).label}
    sample = subsample_test(tiny_splits, 600, 0)
    for scheme in ("float32", "int8"):
        rows = frame[frame["scheme"] == scheme]
        clean_oa = rows.loc[rows["data_noise"] == "", "clean_accuracy"].unique()
        assert len(clean_oa) == 1  # the clean model on clean data: one value for every cell
        for repeat in (0, 1):
            noisy = rows[(rows["data_noise"] != "") & (rows["repeat"] == repeat)]
            assert (noisy["data_noise_seed"] == data_noise_seed(0, repeat)).all()
            # recomputed independently: the repeat's noise draw on the same test sample
            data = apply_to_splits(
                sample, DataNoise.from_dict(NOISE), "test", data_noise_seed(0, 0 + repeat)
            )
            labels = predict(tiny_variants[scheme], data.x_test, threads=1).probabilities.argmax(1)
            expected = accuracy_score(data.y_test, labels)
            assert noisy["clean_accuracy"].tolist() == pytest.approx([expected] * len(noisy))
            # half the samples drowned in std-1 noise: the clean model loses well over 5 points
            assert expected < clean_oa[0] - 0.05
            # level 0 is the clean model under the same noisy data
            zero = noisy[noisy["level"] == 0]
            assert (zero["accuracy_score"] == zero["clean_accuracy"]).all()
            assert (zero["flip_rate"] == 0).all()
    table = aggregate(frame)
    assert len(table) == 2 * 2 * 2 and (table["n_seeds"] == 2).all()
    assert "data_noise_seed" not in table
    text = format_report(table)
    assert "data_noise_label" in text.splitlines()[0] and "gaussian(" in text


def test_cached_clean_predictions_change_nothing(noise_run, data_dir, monkeypatch):
    from robustq.sweep import cells as sweep_cells

    stored = load_results(noise_run).set_index("key")
    cells = [c for c in grid(noise_run_spec(data_dir)) if c.data_noise and c.level > 0][:2]
    monkeypatch.setattr(sweep_cells, "_CLEAN_CACHE_SIZE", 0)
    for cell in cells:
        row = run_cell(cell, data_dir / "variants", data_dir / "splits.npz")
        for column, value in row.items():
            if column in VOLATILE_COLUMNS or column == "key" or value is None:
                continue
            if isinstance(value, float) and np.isnan(value):
                assert pd.isna(stored.loc[cell.key, column]), column
            else:
                assert stored.loc[cell.key, column] == value, column
    # the noisy data is a pure function of the cell: same seed, same bytes
    sample = cell_data(cells[0], sweep_cells._cell_splits(data_dir / "splits.npz", cells[0]))
    again = cell_data(cells[0], sweep_cells._cell_splits(data_dir / "splits.npz", cells[0]))
    assert np.array_equal(sample.x_test, again.x_test)


def test_data_noise_rows_are_executor_independent(noise_run, data_dir, tmp_path):
    summary = run_sweep(noise_run_spec(data_dir), tmp_path / "jobs2", jobs=2, progress=False)
    assert summary.computed == 16
    pd.testing.assert_frame_equal(
        stable(load_results(tmp_path / "jobs2")), stable(load_results(noise_run))
    )


def noise_run_spec(data_dir: Path) -> SweepSpec:
    return make_spec(
        data_dir,
        faults=[{"name": "gaussian", "levels": [0, 0.2]}],
        data_noise=[None, NOISE],
        test_limit=600,
    )


def test_ray_executor_applies_the_data_noise_like_the_local_one(noise_run, data_dir, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'robustq[ray]')")
    summary = run_sweep(
        noise_run_spec(data_dir), tmp_path / "ray", jobs=2, executor="ray", progress=False
    )
    assert summary.computed == 16
    pd.testing.assert_frame_equal(
        stable(load_results(tmp_path / "ray")), stable(load_results(noise_run))
    )
