"""Edge evaluation: kernel agreement, latency, footprint, activation memory, target checks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from robustq.data import subsample_test
from robustq.edge import (
    EdgeConfig,
    check_target,
    compat_matrix,
    evaluate_edge,
    footprint,
    load_target,
    parse_configs,
    save_edge,
)
from robustq.errors import ConfigError, InputError
from robustq.graph import activation_memory, interpreter_memory, read_graph
from robustq.runtime import make_interpreter, predict

REFERENCE_INT8 = Path(__file__).resolve().parents[1] / "tflite_models" / "int8.tflite"


@pytest.fixture(scope="module")
def small_splits(tiny_splits):
    """A stratified 240-sample test set keeps reference kernels fast."""
    return subsample_test(tiny_splits, 240, seed=0)


@pytest.fixture(scope="module")
def int8_edge(tiny_variants, small_splits):
    """Default, default with 2 threads and reference kernels on the tiny int8 model."""
    return evaluate_edge(
        tiny_variants["int8"],
        small_splits,
        "default,reference,default:t2",
        latency_calls=20,
        batch_size=64,
        latency_samples=8,
    )


@pytest.fixture(scope="module")
def keras_models() -> dict[str, bytes]:
    """Tiny float32 models converted from tf_keras: Dense 4->8->3, and SIGN then Dense 4->3."""
    from robustq._tf import tensorflow, tf_keras

    tf, keras = tensorflow(), tf_keras()
    keras.utils.set_random_seed(0)
    dense = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    sign = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Lambda(tf.math.sign), keras.layers.Dense(3)]
    )
    return {
        name: tf.lite.TFLiteConverter.from_keras_model(model).convert()
        for name, model in (("dense", dense), ("sign", sign))
    }


# configurations -----------------------------------------------------------------------------
def test_configs_parse_from_text():
    assert EdgeConfig.parse("default") == EdgeConfig("default", 1)
    assert EdgeConfig.parse(" builtin:t1 ") == EdgeConfig("builtin", 1)
    assert EdgeConfig.parse("default:t2").label == "default:t2"
    labels = [c.label for c in parse_configs("default,builtin:t1,reference")]
    assert labels == ["default:t1", "builtin:t1", "reference:t1"]


@pytest.mark.parametrize("text", ["gpu", "default:2", "builtin:t0", "reference:tx", "", "t2"])
def test_unknown_config_is_a_clear_error(text):
    with pytest.raises(ConfigError, match="edge configuration|no edge configuration"):
        parse_configs(text)


def test_config_given_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice: default:t1"):
        parse_configs("default,default:t1")


def test_evaluate_refuses_unknown_config_before_running(tiny_variants, small_splits):
    with pytest.raises(ConfigError, match="unknown edge configuration 'xnnpack'"):
        evaluate_edge(tiny_variants["int8"], small_splits, "default,xnnpack")
    with pytest.raises(ConfigError, match="latency_calls"):
        evaluate_edge(tiny_variants["int8"], small_splits, "default", latency_calls=0)


# reference vs default kernels ---------------------------------------------------------------
def test_reference_vs_default_agreement_is_measured(int8_edge, tiny_variants, small_splits):
    x, y = small_splits.x_test, small_splits.y_test
    # an independent run through robustq.runtime.predict, compared by our own argmax
    default = predict(tiny_variants["int8"], x, batch_size=64, threads=1, kernels="default")
    reference = predict(tiny_variants["int8"], x, batch_size=64, threads=1, kernels="reference")
    np.testing.assert_array_equal(int8_edge.probabilities["default:t1"], default.probabilities)
    np.testing.assert_array_equal(int8_edge.reference_probabilities, reference.probabilities)

    agree = float(np.mean(default.probabilities.argmax(1) == reference.probabilities.argmax(1)))
    row = int8_edge.row("default:t1")
    assert row.reference == "reference:t1"
    assert row.agreement == pytest.approx(agree)
    assert row.flip_rate == pytest.approx(1.0 - agree)
    assert row.max_abs_diff == pytest.approx(
        float(np.abs(default.probabilities - reference.probabilities).max())
    )
    assert row.accuracy == pytest.approx(float(np.mean(default.probabilities.argmax(1) == y)))
    assert row.n_samples == len(y) == 240
    ref_row = int8_edge.row("reference:t1")
    assert (ref_row.agreement, ref_row.flip_rate, ref_row.max_abs_diff) == (1.0, 0.0, 0.0)
    # the measured figure, shown with -s / in the report of a failure
    print(f"int8 default vs reference: agreement {agree:.4f}, max |dp| {row.max_abs_diff:.4f}")


def test_reference_vs_default_on_the_default_int8_model(tiny_splits):
    # the shipped 103-band model; the tiny scene has the same bands and classes
    blob = REFERENCE_INT8.read_bytes()
    splits = subsample_test(tiny_splits, 120, seed=1)
    result = evaluate_edge(blob, splits, "default,reference", latency_calls=10, batch_size=64)
    default = result.probabilities["default:t1"].argmax(1)
    reference = result.reference_probabilities.argmax(1)
    row = result.row("default:t1")
    assert row.agreement == pytest.approx(float(np.mean(default == reference)))
    assert row.flip_rate == pytest.approx(float(np.count_nonzero(default != reference)) / 120)
    assert 0.0 <= row.max_abs_diff <= 1.0
    print(f"default int8 model, default vs reference: agreement {row.agreement:.4f}")


def test_threads_and_table(int8_edge):
    table = int8_edge.table()
    assert list(table["config"]) == ["default:t1", "reference:t1", "default:t2"]
    assert list(table["threads"]) == [1, 1, 2]
    assert (table["throughput"] > 0).all()
    # 240 samples at batch 64 = 4 batches; the first one is the untimed warm-up
    assert (table["throughput_batches"] == 3).all()
    # threads change the schedule, not the arithmetic
    np.testing.assert_array_equal(
        int8_edge.probabilities["default:t2"], int8_edge.probabilities["default:t1"]
    )


# latency ------------------------------------------------------------------------------------
def test_latency_percentiles_use_exactly_the_stated_calls(int8_edge):
    for config, times in int8_edge.latencies.items():
        row = int8_edge.row(config)
        assert times.shape == (20,) and row.latency_calls == 20
        assert np.all(times > 0)
        assert row.latency_median_ms == pytest.approx(float(np.median(times)) * 1e3)
        assert row.latency_p99_ms == pytest.approx(float(np.percentile(times, 99)) * 1e3)
        assert row.latency_p99_ms >= row.latency_median_ms
    indices = int8_edge.latency_indices
    assert len(indices) == 8 and indices[0] == 0 and indices[-1] == 239
    long = int8_edge.latency_table()
    assert len(long) == 3 * 20
    first = long[long["config"] == "default:t1"]
    assert list(first["sample"][:10]) == [*indices, *indices[:2]]


def test_latency_count_is_independent_of_the_sample_count(tiny_variants, small_splits):
    result = evaluate_edge(
        tiny_variants["int8"],
        small_splits,
        "builtin:t1",
        latency_calls=7,
        batch_size=512,
        latency_samples=3,
        warmup_calls=0,
    )
    assert result.latencies["builtin:t1"].shape == (7,)
    assert result.row("builtin:t1").throughput_batches == 1  # one batch: timed as it is
    assert result.reference == "reference:t1" and "reference:t1" not in result.probabilities
    labels = result.labels("builtin:t1")
    assert result.row("builtin:t1").flip_rate == pytest.approx(
        float(np.mean(labels != result.reference_probabilities.argmax(1)))
    )


# activation memory and footprint ------------------------------------------------------------
def test_activation_estimate_by_hand_dense(keras_models):
    graph = read_graph(keras_models["dense"])
    assert [op.name for op in graph.main.ops] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    memory = activation_memory(graph)
    # float32 at batch 1: input 4 -> 16 B, hidden 8 -> 32 B, output 3 -> 12 B.
    # op 0 runs with input + hidden live (48 B), op 1 with hidden + output (44 B).
    assert memory.live_bytes == (48, 44)
    assert memory.peak_bytes == 48 and memory.peak_op == 0
    assert memory.persistent_bytes == 0
    reference = interpreter_memory(keras_models["dense"], "reference")
    assert reference.activation_bytes == 16 + 32 + 12
    assert reference.scratch_bytes == 0
    # the planned arena holds the peak live set plus 64-byte alignment padding
    assert memory.peak_bytes <= reference.arena_bytes <= memory.peak_bytes + 3 * 64


def test_activation_estimate_of_the_default_int8_model():
    blob = REFERENCE_INT8.read_bytes()
    memory = activation_memory(read_graph(blob))
    # int8 activations: input 103, conv outputs 99x200, 32x200, 14x200, 5x200, flatten 1000,
    # dense 200, 128, 9, softmax 9; the peak is conv2d_1 with its input and output live
    assert memory.live_bytes == (
        103 + 19800,
        19800 + 6400,
        6400 + 2800,
        2800 + 1000,
        1000 + 1000,
        1000 + 200,
        200 + 128,
        128 + 9,
        9 + 9,
    )
    assert memory.peak_bytes == 26200 and memory.peak_op_name == "CONV_2D"
    reference = interpreter_memory(blob, "reference")
    assert memory.peak_bytes <= reference.arena_bytes <= memory.peak_bytes + 4 * 64
    builtin = interpreter_memory(blob, "builtin")
    assert builtin.scratch_bytes > 0 and builtin.arena_bytes > reference.arena_bytes


def test_footprint_weight_bytes_sum_to_constant_buffers(tiny_variants):
    from ai_edge_litert.tools.flatbuffer_utils import convert_bytearray_to_object

    for scheme in ("int8", "float16", "dynamic_int8", "int16x8"):
        blob = tiny_variants[scheme]
        fp = footprint(blob, interpreter=False)
        model = convert_bytearray_to_object(blob)
        buffers = {
            t.buffer
            for sg in model.subgraphs
            for t in sg.tensors
            if t.buffer > 0 and model.buffers[t.buffer].data is not None
        }
        expected = sum(len(model.buffers[b].data) for b in buffers)
        assert fp.weight_bytes == sum(fp.constant_bytes_by_dtype.values()) == expected
        assert fp.file_bytes == len(blob)
        assert fp.file_bytes > fp.weight_bytes
    assert set(footprint(tiny_variants["float16"], False).constant_bytes_by_dtype) >= {"float16"}
    assert "int8" in footprint(tiny_variants["int8"], False).constant_bytes_by_dtype


def test_footprint_op_counts_match_the_interpreter(tiny_variants):
    for scheme in ("int8", "float16"):
        blob = tiny_variants[scheme]
        fp = footprint(blob)
        interpreter = make_interpreter(blob, 1, "reference")
        interpreter.allocate_tensors()
        counted = Counter(d["op_name"] for d in interpreter._get_ops_details())
        assert fp.op_counts == dict(counted)
        assert fp.n_ops == sum(counted.values())
        row = fp.row()
        assert row["activation_estimate_bytes"] == fp.activation.peak_bytes
        assert row["reference_arena_bytes"] >= fp.activation.peak_bytes
    # float16 weights are dequantized once into persistent float32 tensors, not activations
    fp16 = footprint(tiny_variants["float16"], interpreter=False)
    assert fp16.activation.persistent_bytes > 0
    fp32 = footprint(tiny_variants["float32"], interpreter=False)
    assert fp16.activation.peak_bytes == fp32.activation.peak_bytes


# target compatibility -----------------------------------------------------------------------
def test_default_schemes_against_builtin_and_micro(tiny_variants):
    matrix = compat_matrix(
        {s: tiny_variants[s] for s in ("int8", "int16x8", "float16", "dynamic_int8")},
        ["builtin", "micro"],
    )
    assert (matrix["tflite_builtin"] == "pass").all()
    assert matrix.loc["int8", "tflite_micro"] == "pass"
    assert matrix.loc["int16x8", "tflite_micro"] == "pass"  # TFLM has 16x8 conv/FC/softmax
    assert matrix.loc["float16", "tflite_micro"] == "blocked: DEQUANTIZE(float16)"
    assert "FULLY_CONNECTED(float32/int8)" in matrix.loc["dynamic_int8", "tflite_micro"]


def test_op_missing_from_micro_is_flagged(keras_models):
    report = check_target(keras_models["sign"], "micro")
    assert not report.passed
    assert [(b.op, b.signature) for b in report.blocking] == [("SIGN", "float32")]
    assert report.blocking[0].reason == "operator not supported by the target"
    assert check_target(keras_models["sign"], "tflite_builtin").passed
    micro = load_target("micro")
    assert micro.snapshot and "2026" in micro.compiled and "tflite-micro" in micro.source


def test_user_profiles_json_and_text(tiny_variants, tmp_path):
    no_conv = tmp_path / "no_conv.json"
    no_conv.write_text(
        json.dumps({"name": "no_conv", "ops": {"FULLY_CONNECTED": "*", "RESHAPE": "*"}})
    )
    report = check_target(tiny_variants["int8"], no_conv)
    assert report.target == "no_conv"
    blocked = Counter(b.op for b in report.blocking)
    graph_counts = read_graph(tiny_variants["int8"]).op_counts()
    assert blocked == {"CONV_2D": graph_counts["CONV_2D"], "SOFTMAX": 1}
    assert report.table()["op"].tolist().count("CONV_2D") == graph_counts["CONV_2D"]

    int8_only = tmp_path / "int8_only.txt"
    int8_only.write_text(
        "# an int8-only accelerator\nCONV_2D int8/int8\nfully_connected int8/*\nRESHAPE\nSOFTMAX\n"
    )
    assert check_target(tiny_variants["int8"], int8_only).passed
    report16 = check_target(tiny_variants["int16x8"], int8_only)
    assert {b.op for b in report16.blocking} == {"CONV_2D", "FULLY_CONNECTED"}
    assert "input type int16/int8 not supported" in report16.blocking[0].reason


def test_unknown_target_and_bad_profiles(tiny_variants, tmp_path):
    with pytest.raises(ConfigError, match="unknown target 'arduino'"):
        check_target(tiny_variants["int8"], "arduino")
    typo = tmp_path / "typo.txt"
    typo.write_text("CONV2D\n")
    with pytest.raises(ConfigError, match="unknown operator 'CONV2D'"):
        load_target(typo)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_target(broken)


# bad input ----------------------------------------------------------------------------------
def test_model_input_must_match_the_data(keras_models, small_splits):
    with pytest.raises(InputError, match=r"data samples have shape \(103, 1, 1\).*expects \(4,\)"):
        evaluate_edge(keras_models["dense"], small_splits, "reference", latency_calls=5)


def test_model_outputs_must_match_the_classes(keras_models):
    class FourBands:
        x_test = np.zeros((10, 4), dtype=np.float32)
        y_test = np.zeros(10, dtype=np.int64)
        n_classes = 9

    with pytest.raises(InputError, match="3 outputs but the data has 9 classes"):
        evaluate_edge(keras_models["dense"], FourBands(), "reference", latency_calls=5)


def test_not_a_model_is_an_input_error(small_splits):
    with pytest.raises(InputError, match="not a TFLite model"):
        evaluate_edge(b"garbage bytes", small_splits, "reference")
    with pytest.raises(InputError, match="not a TFLite model"):
        footprint(b"garbage bytes")
    with pytest.raises(InputError, match="not a TFLite model"):
        check_target(b"garbage bytes", "micro")


def test_save_edge_writes_the_tables(int8_edge, tiny_variants, tmp_path):
    import pandas as pd

    fp = footprint(tiny_variants["int8"])
    reports = [check_target(tiny_variants["int8"], t) for t in ("builtin", "micro")]
    paths = save_edge(tmp_path / "edge", int8_edge, fp, reports)
    assert sorted(p.name for p in paths) == [
        "compat.csv",
        "edge.csv",
        "edge_latency.csv",
        "footprint.csv",
    ]
    edge = pd.read_csv(tmp_path / "edge" / "edge.csv")
    assert list(edge["config"]) == ["default:t1", "reference:t1", "default:t2"]
    compat = pd.read_csv(tmp_path / "edge" / "compat.csv")
    assert list(compat["passed"]) == [True, True]
