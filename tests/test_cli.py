"""The command line over files: prepare -> train -> convert -> evaluate, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustq.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cube_files(tmp_path_factory):
    """A small unseen data set: 60 bands, 4 classes, cube + gt as .npy files."""
    rng = np.random.default_rng(11)
    h, w, bands = 40, 30, 60
    gt = np.zeros((h, w), dtype=np.int64)
    gt[:20, :15], gt[:20, 15:], gt[20:, :15], gt[20:, 15:] = 3, 5, 7, 9
    gt[::7, ::5] = 0  # some background
    centres = {3: 0.2, 5: 0.4, 7: 0.6, 9: 0.8}
    base = np.vectorize(lambda g: centres.get(int(g), 0.0))(gt)
    cube = base[..., None] + 0.05 * rng.standard_normal((h, w, bands))
    cube += np.linspace(0, 0.3, bands)[None, None, :] * (gt[..., None] % 4)
    root = tmp_path_factory.mktemp("cube")
    np.save(root / "cube.npy", cube.astype(np.float32))
    np.save(root / "gt.npy", gt)
    return root


def test_cli_pipeline_on_unseen_data(cube_files, tmp_path):
    splits = tmp_path / "splits.npz"
    result = run(
        "prepare",
        cube_files / "cube.npy",
        "--gt",
        cube_files / "gt.npy",
        "--out",
        splits,
        "--train-size",
        "30",
        "--val-size",
        "0.2",
        "--seed",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert "60 bands, 4 classes" in result.output
    result = run(
        "train",
        splits,
        "--out",
        tmp_path / "run",
        "--epochs",
        "3",
        "--filters",
        "8",
        "--batch-size",
        "32",
        "--kernel-size",
        "3",
    )
    assert result.exit_code == 0, result.output
    model = tmp_path / "run" / "model_2d.keras"
    assert model.exists() and (tmp_path / "run" / "training_metrics.csv").exists()
    result = run(
        "convert",
        model,
        "--data",
        splits,
        "--out",
        tmp_path / "variants",
        "--schemes",
        "float32,int8",
        "--calibration-size",
        "32",
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "variants").iterdir()} == {
        "float32.tflite",
        "int8.tflite",
        "manifest.json",
    }
    result = run("evaluate", tmp_path / "variants", "--data", splits, "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    for scheme in ("float32", "int8"):
        metrics = pd.read_csv(tmp_path / "eval" / scheme / "inference_metrics.csv")
        assert list(metrics.columns[:3]) == [
            "accuracy_score",
            "balanced_accuracy_score",
            "cohen_kappa_score",
        ]
        assert [c for c in metrics.columns if c.startswith("Class_")] == [
            f"Class_{k}" for k in range(4)
        ]
        confusion = pd.read_csv(tmp_path / "eval" / scheme / "confusion_matrix.csv", index_col=0)
        assert confusion.shape == (4, 4)
        assert 0.0 <= metrics["accuracy_score"].iloc[0] <= 1.0
    single = run(
        "evaluate",
        tmp_path / "variants" / "int8.tflite",
        "--data",
        splits,
        "--out",
        tmp_path / "eval1",
        "--kernels",
        "reference",
        "--threads",
        "1",
    )
    assert single.exit_code == 0, single.output
    assert (tmp_path / "eval1" / "inference_metrics.csv").exists()


def test_cli_user_keras3_model(tmp_path, tiny_splits):
    """A Keras 3 model the project never saw converts and evaluates through the CLI."""
    import keras

    splits_path = tmp_path / "splits.npz"
    tiny_splits.save(splits_path)
    inputs = keras.Input((tiny_splits.n_bands, 1, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(tiny_splits.n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tiny_splits.x_train, tiny_splits.y_train, epochs=3, verbose=0)
    model.save(tmp_path / "user.keras")
    result = run(
        "convert",
        tmp_path / "user.keras",
        "--data",
        splits_path,
        "--out",
        tmp_path / "v",
        "--schemes",
        "float32,float16,dynamic_int8,int8,int16x8",
    )
    assert result.exit_code == 0, result.output
    result = run("evaluate", tmp_path / "v", "--data", splits_path, "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    oa = pd.read_csv(tmp_path / "e" / "float32" / "inference_metrics.csv")["accuracy_score"][0]
    keras_oa = np.mean(model.predict(tiny_splits.x_test, verbose=0).argmax(1) == tiny_splits.y_test)
    assert oa == pytest.approx(keras_oa, abs=1e-9)
    # QAT needs Keras 2: a clear error, nothing written
    result = run(
        "convert",
        tmp_path / "user.keras",
        "--data",
        splits_path,
        "--out",
        tmp_path / "q",
        "--schemes",
        "qat_int8",
    )
    assert result.exit_code == 2
    assert "Keras 2" in result.output
    assert not (tmp_path / "q" / "qat_int8.tflite").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "missing.npy", "--gt", "gt.npy", "--out", "s.npz"], "not found"),
        (["prepare", "--out", "s.npz"], "--synthetic"),
        (["prepare", "--synthetic", "--out", "s.npz", "--train-size", "abc"], "--train-size"),
        (["evaluate", "nothing.tflite", "--data", "s.npz"], "not found"),
        (["demo", "--schemes", "int4"], "unknown scheme"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    os.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == []


def test_cli_refuses_to_overwrite_input(cube_files, tmp_path):
    gt = tmp_path / "gt.npy"
    gt.write_bytes((cube_files / "gt.npy").read_bytes())
    before = gt.read_bytes()
    result = runner.invoke(
        app, ["prepare", str(cube_files / "cube.npy"), "--gt", str(gt), "--out", str(gt)]
    )
    assert result.exit_code == 2 and "overwrite" in result.output
    assert gt.read_bytes() == before


def test_console_script_exit_status_and_stderr(tmp_path):
    """The installed entry point: one stderr line, status 2, no traceback."""
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"this is not a model")
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustq.cli",
            "evaluate",
            str(bad),
            "--data",
            str(tmp_path / "x.npz"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("robustq:")]
    assert len(lines) == 1 and "splits" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def tiny_splits_file(tmp_path_factory, tiny_splits):
    path = tmp_path_factory.mktemp("splits") / "splits.npz"
    tiny_splits.save(path)
    return path


def test_cli_evaluate_ensemble(tiny_variants_dir, tiny_splits_file, tmp_path):
    result = run(
        "evaluate",
        tiny_variants_dir / "int8.tflite",
        "--data",
        tiny_splits_file,
        "--out",
        tmp_path,
        "--ensemble-copies",
        "4",
        "--voting",
        "hard",
        "--fault",
        "gaussian",
        "--std-factor",
        "0.1",
        "--seed",
        "0",
    )
    assert result.exit_code == 0, result.output
    members = pd.read_csv(tmp_path / "members.csv")
    assert len(members) == 5 and members["member"].iloc[0] == "clean"
    metrics = pd.read_csv(tmp_path / "inference_metrics.csv")
    for column in ("accuracy_score", "Class_0", "inference_time", "flip_rate", "delta_accuracy"):
        assert column in metrics.columns
    assert (tmp_path / "confusion_matrix.csv").exists()
    bad = run(
        "evaluate",
        tiny_variants_dir / "int8.tflite",
        "--data",
        tiny_splits_file,
        "--out",
        tmp_path / "x",
        "--ensemble-copies",
        "2",
        "--voting",
        "classifier",
        "--classifier-params",
        "{not json",
    )
    assert bad.exit_code == 2 and "JSON" in bad.output


def test_cli_inspect_and_perturb(tiny_variants_dir, tmp_path):
    model = tiny_variants_dir / "int8.tflite"
    result = run("inspect", model)
    assert result.exit_code == 0, result.output
    assert "CONV_2D" in result.output and "FULLY_CONNECTED" in result.output
    out = tmp_path / "p.tflite"
    result = run(
        "perturb",
        model,
        "--out",
        out,
        "--fault",
        "bitflip",
        "--ber",
        "0.001",
        "--bits",
        "sign",
        "--target-ops",
        "dense",
        "--seed",
        "7",
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != model.read_bytes() and len(out.read_bytes()) == len(
        model.read_bytes()
    )
    record = json.loads((tmp_path / "p.tflite.json").read_text())
    assert record["targets"] and all("dense" in name for name in record["targets"])
    again = tmp_path / "q.tflite"
    run(
        "perturb",
        model,
        "--out",
        again,
        "--fault",
        "bitflip",
        "--ber",
        "0.001",
        "--bits",
        "sign",
        "--target-ops",
        "dense",
        "--seed",
        "7",
    )
    assert again.read_bytes() == out.read_bytes()
    for args, message in [
        (["--ber", "2"], "ber"),
        (["--ber", "0.01", "--target-names", "no_such_tensor"], "matches no"),
        (["--fault", "cosmic"], "cosmic"),
    ]:
        fault = [] if "--fault" in args else ["--fault", "bitflip"]
        result = run("perturb", model, "--out", tmp_path / "z.tflite", *fault, *args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert not (tmp_path / "z.tflite").exists()


FAULT_ARGS = {
    "gaussian": ["--std-factor", "0.1"],
    "uniform": ["--param", "half_width_factor=0.1"],
    "multiplicative": ["--std", "0.05"],
    "bitflip": ["--ber", "0.0005"],
    "stuck_at": ["--fraction", "0.0005", "--param", "value=1"],
    "scale": ["--std", "0.05"],
}


@pytest.mark.parametrize("fault", sorted(FAULT_ARGS))
def test_cli_every_fault_on_every_scheme(tiny_variants_dir, tiny_splits, tmp_path, fault):
    """Each fault goes through `robustq perturb` on each scheme and yields a runnable model."""
    from robustq.convert import read_manifest
    from robustq.runtime import predict

    x = tiny_splits.x_test[:64]
    for variant in read_manifest(tiny_variants_dir):
        source = tiny_variants_dir / variant.path
        out = tmp_path / f"{variant.scheme}.tflite"
        result = run("perturb", source, "--out", out, "--fault", fault, *FAULT_ARGS[fault])
        if fault == "scale" and variant.scheme in {"float32", "float16"}:
            # no quantization scales in a float model: a clear error, nothing written
            assert result.exit_code == 2 and "scale" in result.output, result.output
            assert not out.exists()
            continue
        assert result.exit_code == 0, (variant.scheme, result.output)
        perturbed = out.read_bytes()
        assert perturbed != source.read_bytes(), variant.scheme
        probabilities = predict(perturbed, x).probabilities
        assert probabilities.shape == (64, tiny_splits.n_classes)


def test_cli_edge(tiny_variants_dir, tiny_splits_file, tmp_path):
    result = run(
        "edge",
        tiny_variants_dir / "int8.tflite",
        "--data",
        tiny_splits_file,
        "--configs",
        "default,reference",
        "--target",
        "micro",
        "--out",
        tmp_path,
        "--latency-calls",
        "10",
        "--limit",
        "200",
    )
    assert result.exit_code == 0, result.output
    edge = pd.read_csv(tmp_path / "edge.csv")
    assert len(edge) == 2 and {"agreement", "latency_p99_ms"} <= set(edge.columns)
    assert "tflite_micro: pass" in result.output
    blocked = run(
        "edge",
        tiny_variants_dir / "float16.tflite",
        "--data",
        tiny_splits_file,
        "--configs",
        "default",
        "--target",
        "micro",
        "--out",
        tmp_path / "f16",
        "--latency-calls",
        "5",
        "--limit",
        "100",
    )
    assert blocked.exit_code == 0, blocked.output
    assert "DEQUANTIZE" in blocked.output
    bad = run(
        "edge",
        tiny_variants_dir / "int8.tflite",
        "--data",
        tiny_splits_file,
        "--configs",
        "gpu",
        "--out",
        tmp_path / "bad",
    )
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()


def test_cli_data_noise(tiny_variants_dir, tiny_splits_file, tiny_splits, tmp_path):
    from robustq.data import Splits

    noisy_path = tmp_path / "noisy.npz"
    result = run(
        "noise",
        tiny_splits_file,
        "--out",
        noisy_path,
        "--noise",
        "impulsive",
        "--pa",
        "0.2",
        "--pb",
        "0.5",
        "--sets",
        "test",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    noisy = Splits.load(noisy_path)
    changed = np.any(noisy.x_test != tiny_splits.x_test, axis=(1, 2, 3))
    assert changed.sum() <= int(len(tiny_splits.y_test) * 0.2)
    assert changed.sum() > 0.5 * int(len(tiny_splits.y_test) * 0.2)
    assert np.array_equal(noisy.x_train, tiny_splits.x_train)
    clean = run(
        "evaluate",
        tiny_variants_dir / "float32.tflite",
        "--data",
        tiny_splits_file,
        "--out",
        tmp_path / "clean",
    )
    loud = run(
        "evaluate",
        tiny_variants_dir / "float32.tflite",
        "--data",
        tiny_splits_file,
        "--out",
        tmp_path / "loud",
        "--noise",
        "gaussian",
        "--noise-std",
        "1",
        "--pa",
        "0.5",
    )
    assert clean.exit_code == 0 and loud.exit_code == 0, loud.output
    oa_clean = pd.read_csv(tmp_path / "clean" / "inference_metrics.csv")["accuracy_score"][0]
    oa_loud = pd.read_csv(tmp_path / "loud" / "inference_metrics.csv")["accuracy_score"][0]
    assert oa_loud < oa_clean - 0.02
    bad = run("noise", tiny_splits_file, "--out", tmp_path / "x.npz", "--pa", "1.5")
    assert bad.exit_code == 2 and "pa" in bad.output and not (tmp_path / "x.npz").exists()
    same = run("noise", tiny_splits_file, "--out", tiny_splits_file)
    assert same.exit_code == 2 and "overwrite" in same.output


def test_cli_sweep_results_report(tiny_variants_dir, tiny_splits_file, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"variants: {tiny_variants_dir}\n"
        f"splits: {tiny_splits_file}\n"
        "schemes: [int8]\n"
        "faults:\n  - name: gaussian\n    levels: [0, 0.2]\n"
        "seeds: 2\n"
        "ensemble:\n  copies: 0\n"
    )
    run_dir = tmp_path / "run"
    plan = run("sweep", spec, "--out", run_dir, "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "4 cells" in plan.output and "int8             data none: 4" in plan.output
    assert "no results yet" in plan.output and not run_dir.exists()
    first = run("sweep", spec, "--out", run_dir, "--jobs", "1", "--no-progress")
    assert first.exit_code == 0, first.output
    assert "4 cells, 0 already done, 4 computed" in first.output
    again = run("sweep", spec, "--out", run_dir, "--jobs", "1", "--no-progress")
    assert "4 cells, 4 already done, 0 computed" in again.output
    result = run("results", run_dir, "--csv", tmp_path / "rows.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 4
    report = run("report", run_dir, "--required", "gaussian=0.2", "--tolerance", "0.5")
    assert report.exit_code == 0, report.output
    assert (run_dir / "report.html").exists() and (run_dir / "report.md").exists()
    assert "Fly int8" in report.output
    spec.write_text(spec.read_text().replace("seeds: 2", "seeds: 3"))
    changed = run("sweep", spec, "--out", run_dir, "--jobs", "1", "--no-progress")
    assert changed.exit_code == 2 and "extend" in changed.output
    extended = run("sweep", spec, "--out", run_dir, "--jobs", "1", "--no-progress", "--extend")
    assert "6 cells, 4 already done, 2 computed" in extended.output
    # the data-noise axis extends the same run: clean-data cells keep their keys
    spec.write_text(
        spec.read_text() + "data_noise:\n  - null\n  - {name: gaussian, std: 1, pa: 0.5}\n"
    )
    noisy = run("sweep", spec, "--out", run_dir, "--jobs", "1", "--no-progress", "--extend")
    assert noisy.exit_code == 0, noisy.output
    assert "12 cells, 6 already done, 6 computed" in noisy.output
    plan = run("sweep", spec, "--out", run_dir, "--dry-run")
    assert "12 cells" in plan.output and "12 of them already done" in plan.output
    assert "data gaussian(mean=0,std=1,pa=0.5,pb=1,bc=True): 6" in plan.output
    table = run("results", run_dir)
    assert table.exit_code == 0 and "gaussian(mean=0,std=1,pa=0.5" in table.output
    report = run("report", run_dir, "--required", "gaussian=0.2", "--tolerance", "0.5")
    assert report.exit_code == 0, report.output
    assert '<section id="datanoise">' in (run_dir / "report.html").read_text()
    on_noisy = run("report", run_dir, "--data-condition", "1", "--tolerance", "0.5")
    assert on_noisy.exit_code == 0, on_noisy.output
    unknown = run("report", run_dir, "--data-condition", "fog")
    assert unknown.exit_code == 2 and "unknown data condition 'fog'" in unknown.output
    spec.write_text(spec.read_text().replace("pa: 0.5", "pa: 5"))
    bad = run("sweep", spec, "--out", run_dir, "--jobs", "1", "--no-progress", "--extend")
    assert bad.exit_code == 2 and "data_noise[1]: data noise: pa must be in [0, 1]" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    missing = run("report", tmp_path / "nowhere")
    assert missing.exit_code == 2
