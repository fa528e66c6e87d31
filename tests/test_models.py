"""The reference model's architecture, training outputs, and user Keras models (2 and 3)."""

from __future__ import annotations

import numpy as np
import pytest

from robustq.errors import ConfigError, InputError


def test_model_2d_matches_the_seed_architecture():
    from robustq.models import model_2d

    model = model_2d(103, 9)
    assert model.count_params() == 828_889
    shapes = [tuple(layer.output_shape[1:]) for layer in model.layers]
    assert shapes == [
        (99, 1, 200),
        (32, 1, 200),
        (14, 1, 200),
        (5, 1, 200),
        (1000,),
        (200,),
        (128,),
        (9,),
    ]
    params = [layer.count_params() for layer in model.layers]
    assert params == [1200, 200200, 200200, 200200, 0, 200200, 25728, 1161]
    strides = [layer.strides[0] for layer in model.layers[:4]]
    assert strides == [1, 3, 2, 2]


def test_model_2d_is_parametrised_and_rejects_too_few_bands():
    from robustq.models import model_2d

    model = model_2d(60, 4, kernel_size=3, n_filters=8)
    assert model.output_shape == (None, 4)
    assert model.input_shape == (None, 60, 1, 1)
    with pytest.raises(ConfigError, match="too few"):
        model_2d(12, 4)


def test_training_writes_model_and_history(tiny_run, tiny_splits):
    history = tiny_run.history
    assert list(history.columns) == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "epoch_time",
    ]
    assert 1 <= len(history) <= 8
    assert (history["epoch_time"] > 0).all()
    assert tiny_run.model_path.name == "model_2d.keras" and tiny_run.model_path.exists()
    csv = tiny_run.model_path.parent / "training_metrics.csv"
    import pandas as pd

    assert pd.read_csv(csv).shape == history.shape
    # best weights restored: the kept model's val loss is the history's minimum
    loss = tiny_run.model.evaluate(tiny_splits.x_val, tiny_splits.y_val, verbose=0)
    loss = loss[0] if isinstance(loss, list) else loss
    assert loss == pytest.approx(history["val_loss"].min(), rel=1e-4, abs=1e-5)
    # it learned something on 9 classes
    assert history["accuracy"].iloc[-1] > 0.3


def test_training_is_deterministic(tiny_splits):
    from robustq.models import TrainConfig, train

    config = TrainConfig(epochs=2, patience=5, batch_size=64, n_filters=4, seed=5)
    first = train(tiny_splits, None, config).model.get_weights()
    second = train(tiny_splits, None, config).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_saved_model_reloads_with_identical_predictions(tiny_run, tiny_splits):
    from robustq.models import load_model

    again = load_model(tiny_run.model_path)
    x = tiny_splits.x_test[:64]
    np.testing.assert_allclose(
        again.predict(x, verbose=0), tiny_run.model.predict(x, verbose=0), atol=1e-6
    )


def test_load_model_errors(tmp_path):
    from robustq.models import load_model

    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a Keras"):
        load_model(bad)
    odd = tmp_path / "model.onnx"
    odd.write_bytes(b"x")
    with pytest.raises(InputError, match="unknown model file type"):
        load_model(odd)


def test_keras3_model_file_converts_and_predicts(tmp_path):
    """A Keras 3 `.keras` file (different bands/classes) goes through convert and runtime."""
    import keras

    from robustq.convert import to_tflite
    from robustq.models import is_keras3, keras_file_version, load_model
    from robustq.runtime import predict

    rng = np.random.default_rng(0)
    inputs = keras.Input((48,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Dense(5, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "user3.keras"
    model.save(path)
    assert keras_file_version(path) == 3
    loaded = load_model(path)
    assert is_keras3(loaded)
    x = rng.random((40, 48), dtype=np.float32)
    expected = np.asarray(loaded.predict(x, verbose=0))
    float32 = predict(to_tflite(loaded, "float32"), x)
    np.testing.assert_allclose(float32.probabilities, expected, atol=1e-5)
    int8 = predict(to_tflite(loaded, "int8", x[:20]), x)
    assert int8.probabilities.shape == (40, 5)
    assert np.abs(int8.probabilities - expected).max() < 0.1
