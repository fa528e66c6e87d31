"""The LiteRT runtime: exact float path, batching, quantized I/O, kernels, errors."""

from __future__ import annotations

import numpy as np
import pytest

from robustq.errors import ConfigError, InputError
from robustq.runtime import dequantize_output, predict, quantize_input


def test_float32_matches_keras(tiny_variants, tiny_model, tiny_splits):
    x = tiny_splits.x_test[:300]
    expected = tiny_model.predict(x, verbose=0)
    got = predict(tiny_variants["float32"], x, batch_size=128)
    assert got.probabilities.shape == expected.shape
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-5)
    assert got.seconds > 0


@pytest.mark.parametrize("scheme", ["float32", "int8", "int16x8"])
def test_batch_size_does_not_change_results(tiny_variants, tiny_splits, scheme):
    x = tiny_splits.x_test[:203]
    a = predict(tiny_variants[scheme], x, batch_size=1024).probabilities
    b = predict(tiny_variants[scheme], x, batch_size=7).probabilities
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_flat_samples_are_reshaped_to_the_model_input(tiny_variants, tiny_splits):
    x = tiny_splits.x_test[:50]
    a = predict(tiny_variants["float32"], x).probabilities
    b = predict(tiny_variants["float32"], x.reshape(50, -1)).probabilities
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernels", ["builtin", "reference"])
def test_kernel_choices_agree_closely(tiny_variants, tiny_splits, kernels):
    x = tiny_splits.x_test[:200]
    for scheme in ("float32", "int8"):
        base = predict(tiny_variants[scheme], x)
        other = predict(tiny_variants[scheme], x, kernels=kernels, threads=1)
        diff = np.abs(base.probabilities - other.probabilities).max()
        if scheme == "float32":
            assert diff <= 1e-5
        else:
            # int8 kernels may round differently (XNNPACK vs builtin was seen to differ
            # by up to ~17 output steps of 1/256); labels must still mostly agree
            assert diff <= 0.15
            assert np.mean(base.labels == other.labels) >= 0.95


def test_int8_outputs_are_dequantized_probabilities(tiny_variants, tiny_splits):
    p = predict(tiny_variants["int8"], tiny_splits.x_test[:100]).probabilities
    assert p.dtype == np.float32
    assert p.min() >= 0 and p.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=0.05)


def test_quantize_roundtrip_rounds_and_clips():
    x = np.array([-10.0, -0.26, 0.0, 0.24, 0.26, 10.0], dtype=np.float32)
    q = quantize_input(x, np.dtype(np.int8), 0.5, -3)
    assert q.tolist() == [-23, -4, -3, -3, -2, 17]
    assert quantize_input(np.array([1e9]), np.dtype(np.int8), 0.5, 0).tolist() == [127]
    np.testing.assert_allclose(dequantize_output(q, 0.5, -3), (q + 3) * 0.5)


def test_runtime_errors(tiny_variants, tiny_splits):
    with pytest.raises(InputError, match="not a TFLite model"):
        predict(b"garbage bytes here", tiny_splits.x_test[:4])
    truncated = tiny_variants["float32"][: len(tiny_variants["float32"]) // 3]
    with pytest.raises(InputError):
        predict(truncated, tiny_splits.x_test[:4])
    with pytest.raises(InputError, match="expects"):
        predict(tiny_variants["float32"], np.zeros((4, 50, 1, 1), np.float32))
    with pytest.raises(ConfigError, match="unknown kernels"):
        predict(tiny_variants["float32"], tiny_splits.x_test[:4], kernels="gpu")
    with pytest.raises(ConfigError):
        predict(tiny_variants["float32"], tiny_splits.x_test[:4], batch_size=0)
