"""Every scheme converts, its manifest entry is truthful, and its accuracy is plausible."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from robustq.errors import ConfigError, InputError

IO = {
    "float32": "float32",
    "float16": "float32",
    "dynamic_int8": "float32",
    "int8": "int8",
    "int8_per_tensor": "int8",
    "int16x8": "int16",
    "qat_int8": "int8",
}


def test_manifest_describes_every_variant(tiny_variants_dir, tiny_model):
    from robustq.convert import SCHEMES, read_manifest

    variants = read_manifest(tiny_variants_dir)
    assert [v.scheme for v in variants] == list(SCHEMES)
    raw = json.loads((tiny_variants_dir / "manifest.json").read_text())
    assert len(raw["variants"]) == len(SCHEMES)
    for v in variants:
        data = (tiny_variants_dir / v.path).read_bytes()
        assert v.file_size == len(data)
        assert v.sha256 == hashlib.sha256(data).hexdigest()
        assert v.parameter_count == tiny_model.count_params()
        assert v.input_dtype == IO[v.scheme] and v.output_dtype == IO[v.scheme]
        assert (v.input_quantization is None) == (IO[v.scheme] == "float32")
        assert v.calibration_size == (
            64 if v.scheme in {"int8", "int8_per_tensor", "int16x8", "qat_int8"} else 0
        )
        assert v.converter_version.startswith("tensorflow 2.")


def test_sizes_follow_the_storage_type(tiny_variants):
    sizes = {s: len(b) for s, b in tiny_variants.items()}
    assert sizes["float16"] < 0.65 * sizes["float32"]
    for scheme in ("dynamic_int8", "int8", "int8_per_tensor", "int16x8", "qat_int8"):
        assert sizes[scheme] < 0.45 * sizes["float32"], scheme


def test_accuracy_of_variants_against_float32(tiny_variants, tiny_splits, tiny_model):
    from robustq.evaluate import evaluate_bytes

    keras_labels = tiny_model.predict(tiny_splits.x_test, verbose=0).argmax(1)
    oa = {s: evaluate_bytes(b, tiny_splits, s).scores.accuracy for s, b in tiny_variants.items()}
    keras_oa = float(np.mean(keras_labels == tiny_splits.y_test))
    assert oa["float32"] == pytest.approx(keras_oa, abs=1e-9)
    assert abs(oa["float16"] - oa["float32"]) <= 0.005
    for scheme in ("dynamic_int8", "int8", "int8_per_tensor", "int16x8"):
        assert abs(oa[scheme] - oa["float32"]) <= 0.05, (scheme, oa)
    assert oa["qat_int8"] > 0.5 * oa["float32"]


def test_calibration_sample_is_seeded_and_bounded():
    from robustq.convert import calibration_sample

    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    a = calibration_sample(x, 10, seed=1)
    assert a.shape == (10, 1) and len(np.unique(a)) == 10
    assert np.array_equal(a, calibration_sample(x, 10, seed=1))
    assert not np.array_equal(a, calibration_sample(x, 10, seed=2))
    assert calibration_sample(x, 500, seed=1).shape == (100, 1)
    with pytest.raises(ConfigError):
        calibration_sample(x, 0, seed=1)


def test_scheme_names_are_checked():
    from robustq.convert import SCHEMES, check_schemes

    assert check_schemes(["all"]) == SCHEMES
    assert check_schemes(["int8", "int8", "float16"]) == ("int8", "float16")
    with pytest.raises(ConfigError, match="unknown scheme 'int4'"):
        check_schemes(["int4"])
    with pytest.raises(ConfigError):
        check_schemes([])


def test_integer_schemes_need_calibration(tiny_model):
    from robustq.convert import to_tflite

    with pytest.raises(ConfigError, match="calibration"):
        to_tflite(tiny_model, "int8", None)


def test_manifest_errors(tmp_path):
    from robustq.convert import read_manifest

    with pytest.raises(InputError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not a robustq manifest"):
        read_manifest(tmp_path)
