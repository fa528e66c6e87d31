"""The reference model (``model_2d``), its training, and loading user models.

``model_2d`` is the seed's spectral CNN: input ``(B, 1, 1)``, four Conv2D
layers (kernel ``(k, 1)``, valid padding, ReLU, strides 1, 3, 2, 2), Flatten,
Dense 200, Dense 128, Dense K softmax. It is built with tf_keras (Keras 2) so
that quantization-aware training works on it. User models may be Keras 2
(``.h5``, SavedModel folder, Keras-2 ``.keras``) or Keras 3 (``.keras``);
:func:`load_model` reads the file's own ``keras_version`` to pick the loader.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustq._tf import tensorflow, tf_keras
from robustq.errors import ConfigError, InputError
from robustq.fileio import atomic_write, write_csv

if TYPE_CHECKING:
    from robustq.acquisition import DataNoise


def model_2d(
    n_bands: int,
    n_classes: int,
    kernel_size: int = 5,
    n_filters: int = 200,
    seed: int = 0,
) -> Any:
    """Build the seed's ``model_2d`` as an uncompiled tf_keras ``Sequential``.

    Input ``(n_bands, 1, 1)``; four Conv2D(``n_filters``, ``(kernel_size, 1)``)
    with strides 1, 3, 2, 2; Flatten; Dense 200 and 128 (ReLU); Dense
    ``n_classes`` softmax. Weight initialisation is seeded by ``seed``. For 103
    bands and 9 classes this has exactly 828,889 parameters.
    """
    if n_bands < 1 or n_classes < 2 or kernel_size < 1 or n_filters < 1:
        raise ConfigError(
            f"model_2d needs n_bands >= 1, n_classes >= 2, kernel_size >= 1, n_filters >= 1 "
            f"(got {n_bands}, {n_classes}, {kernel_size}, {n_filters})"
        )
    positions = n_bands
    for stride in (1, 3, 2, 2):
        positions = (positions - kernel_size) // stride + 1
    if positions < 1:
        raise ConfigError(
            f"model_2d: {n_bands} bands are too few for four convolutions with kernel "
            f"{kernel_size} and strides 1, 3, 2, 2"
        )
    keras = tf_keras()
    layers = keras.layers
    init = keras.initializers
    seeds = np.random.SeedSequence(seed).generate_state(7)

    def glorot(i: int) -> Any:
        return init.GlorotUniform(seed=int(seeds[i]))

    model = keras.Sequential(name="model_2d")
    model.add(keras.Input(shape=(n_bands, 1, 1)))
    for i, stride in enumerate((1, 3, 2, 2)):
        model.add(
            layers.Conv2D(
                n_filters,
                (kernel_size, 1),
                strides=(stride, 1),
                padding="valid",
                activation="relu",
                kernel_initializer=glorot(i),
                name="conv2d" if i == 0 else f"conv2d_{i}",
            )
        )
    # explicit names: tensor names in the TFLite variants (and target regexes) must not
    # depend on how many models were built before in the same process
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(200, activation="relu", kernel_initializer=glorot(4), name="dense"))
    model.add(layers.Dense(128, activation="relu", kernel_initializer=glorot(5), name="dense_1"))
    model.add(
        layers.Dense(n_classes, activation="softmax", kernel_initializer=glorot(6), name="dense_2")
    )
    return model


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the seed's defaults)."""

    lr: float = 0.001
    batch_size: int = 128
    epochs: int = 200
    patience: int = 15
    seed: int = 0
    kernel_size: int = 5
    n_filters: int = 200

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range field."""
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0 (got {self.lr})")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1 (got {self.epochs})")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0 (got {self.patience})")


@dataclass(frozen=True)
class TrainResult:
    """What training produced: the model, its per-epoch history, and where it was saved."""

    model: Any
    history: Any  # pandas.DataFrame: epoch, loss, accuracy, val_loss, val_accuracy, epoch_time
    model_path: Path | None
    best_epoch: int


def _epoch_timer(keras: Any) -> Any:
    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.times: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


def seed_everything(seed: int) -> None:
    """Make TensorFlow's own random ops (dropout, shuffling) and kernels deterministic.

    robustq never uses NumPy's global RNG; TensorFlow's op-level seed is set
    here because Keras' ``fit(shuffle=True)`` draws from it.
    """
    tf = tensorflow()
    tf.keras.utils.set_random_seed(int(seed) % (2**32))
    tf.config.experimental.enable_op_determinism()


def train(
    splits: Any,
    out_dir: str | Path | None = None,
    config: TrainConfig | None = None,
    model: Any = None,
    verbose: int = 0,
    data_noise: DataNoise | None = None,
    noise_sets: tuple[str, ...] = ("train",),
) -> TrainResult:
    """Train ``model`` (default: a fresh ``model_2d``) on ``splits`` with early stopping.

    Adam with ``config.lr``, sparse categorical cross-entropy, batch size and
    epoch limit from ``config``; early stopping on ``val_loss`` with
    ``config.patience`` and restore of the best weights; seeded. When
    ``out_dir`` is given, writes ``model_2d.keras`` (or ``model.keras`` for a
    user model) and ``training_metrics.csv`` (epoch, loss, accuracy,
    val_loss, val_accuracy, epoch_time) atomically. With ``data_noise``, the
    ``noise_sets`` (``train`` and/or ``val``) are noised once before fitting
    with :func:`robustq.acquisition.apply_to_splits`, seeded by
    ``config.seed`` (the seed's ``noise`` / ``noise_sets``); nothing else
    changes and the noise is not recorded in the outputs.
    """
    import pandas as pd

    config = config or TrainConfig()
    config.validate()
    if data_noise is not None:
        from robustq.acquisition import apply_to_splits, check_sets

        if "test" in check_sets(noise_sets):
            raise ConfigError("training noise_sets may only be train and/or val (not test)")
        splits = apply_to_splits(splits, data_noise, noise_sets, seed=config.seed)
    keras = tf_keras()
    seed_everything(config.seed)
    if model is None:
        model = model_2d(
            splits.n_bands, splits.n_classes, config.kernel_size, config.n_filters, config.seed
        )
        name = "model_2d.keras"
    else:
        name = "model.keras"
    if len(splits.y_val) == 0:
        raise ConfigError("training needs a validation split for early stopping (val_size > 0)")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    timer = _epoch_timer(keras)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    fit = model.fit(
        splits.x_train,
        splits.y_train,
        validation_data=(splits.x_val, splits.y_val),
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=[timer, stopper],
    )
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["epoch_time"] = timer.times[: len(history)]
    best_epoch = int(history["val_loss"].idxmin()) + 1
    model_path = None
    if out_dir is not None:
        out = Path(out_dir)
        model_path = save_model(model, out / name)
        write_csv(out / "training_metrics.csv", history)
    return TrainResult(model=model, history=history, model_path=model_path, best_epoch=best_epoch)


def save_model(model: Any, path: str | Path) -> Path:
    """Save a tf_keras model atomically (format chosen by the suffix, ``.keras`` or ``.h5``)."""
    path = Path(path)
    suffix = path.suffix if path.suffix in {".keras", ".h5"} else ".keras"

    def writer(tmp: Path) -> None:
        staged = tmp.with_suffix(suffix)
        model.save(staged)
        staged.replace(tmp)

    return atomic_write(path, writer)


def keras_file_version(path: Path) -> int:
    """Return the Keras major version (2 or 3) that wrote a ``.keras`` zip file.

    Reads ``metadata.json`` inside the archive; raises InputError if the file
    is not a Keras archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a Keras .keras archive ({exc})") from None
    version = str(meta.get("keras_version", "3"))
    return int(version.split(".")[0])


def load_model(path: str | Path) -> Any:
    """Load a user's Keras classifier from ``.keras``, ``.h5`` or a SavedModel folder.

    Keras-2 files load with tf_keras; Keras-3 ``.keras`` files load with the
    ``keras`` 3 package (they can be converted and evaluated, but not used for
    QAT, which needs Keras 2). Raises InputError for a missing or unreadable
    file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file not found: {path}")
    keras2 = tf_keras()
    try:
        if path.is_dir() or path.suffix == ".h5":
            return keras2.models.load_model(path, compile=False)
        if path.suffix != ".keras":
            raise InputError(f"{path}: unknown model file type (expected .keras, .h5 or a folder)")
        if keras_file_version(path) >= 3:
            import keras as keras3

            return keras3.saving.load_model(path, compile=False)
        return keras2.models.load_model(path, compile=False)
    except InputError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot load Keras model: {first}") from None


def is_keras3(model: Any) -> bool:
    """True when ``model`` is a Keras 3 object rather than a tf_keras (Keras 2) one."""
    return type(model).__module__.startswith("keras.") and not type(model).__module__.startswith(
        "keras.src.legacy"
    )


def input_shape(model: Any) -> tuple[int, ...]:
    """Per-sample input shape of a single-input Keras model (batch axis dropped)."""
    shape = model.inputs[0].shape
    return tuple(int(d) for d in shape[1:])
