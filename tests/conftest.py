"""Session-wide fixtures: a tiny scene, its splits, a tiny trained model and its variants.

Built once per test session (training and conversion are the slow parts) and
shared read-only by every test module.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from robustq.convert import SCHEMES as TINY_SCHEMES  # noqa: E402  (every scheme)


@pytest.fixture(scope="session")
def tiny_scene():
    """A 120 x 80 synthetic scene (103 bands, 9 classes)."""
    from robustq.synthetic import synthetic_scene

    return synthetic_scene(seed=3, height=120, width=80)


@pytest.fixture(scope="session")
def tiny_splits(tiny_scene):
    """40 samples per class, 10% validation, the rest test."""
    from robustq.data import make_splits

    return make_splits(tiny_scene, train_size=40, val_size=0.1, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_splits):
    """A small model_2d (16 filters) trained for a few epochs, saved under a session folder."""
    from robustq.models import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_run")
    config = TrainConfig(epochs=8, patience=3, batch_size=32, seed=0, n_filters=16, lr=0.003)
    return train(tiny_splits, out, config)


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    """The trained tf_keras model of :func:`tiny_run`."""
    return tiny_run.model


@pytest.fixture(scope="session")
def tiny_variants_dir(tmp_path_factory, tiny_model, tiny_splits) -> Path:
    """Every scheme of the tiny model converted into one folder with its manifest."""
    from robustq.convert import QATConfig, convert

    out = tmp_path_factory.mktemp("tiny_variants")
    convert(
        tiny_model,
        TINY_SCHEMES,
        out,
        x_calibration=tiny_splits.x_train,
        calibration_size=64,
        seed=0,
        train_data=(tiny_splits.x_train, tiny_splits.y_train),
        qat=QATConfig(epochs=1, batch_size=32),
    )
    return out


@pytest.fixture(scope="session")
def tiny_variants(tiny_variants_dir) -> dict[str, bytes]:
    """Scheme name -> TFLite bytes of the tiny model."""
    return {s: (tiny_variants_dir / f"{s}.tflite").read_bytes() for s in TINY_SCHEMES}


@pytest.fixture(scope="session")
def depthwise_keras():
    """A tiny seeded tf_keras model with Conv2D, DepthwiseConv2D and Dense, non-zero biases.

    Shared read-only: tests that perturb it work on clones.
    """
    from robustq._tf import tf_keras

    keras = tf_keras()
    init = keras.initializers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init.GlorotUniform(1)),
            keras.layers.DepthwiseConv2D(
                3,
                depth_multiplier=2,
                activation="relu",
                depthwise_initializer=init.GlorotUniform(2),
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init.GlorotUniform(3)),
        ]
    )
    rng = np.random.default_rng(0)
    weights = [
        w if w.ndim > 1 else rng.normal(0, 0.05, w.shape).astype(np.float32)
        for w in model.get_weights()
    ]
    model.set_weights(weights)
    return model
