"""Conversion of a Keras classifier into float and quantized TFLite variants.

One function per concern: :func:`to_tflite` turns a model into flatbuffer
bytes for one scheme (pure: model + calibration array in, bytes out);
:func:`convert` runs several schemes, writes ``<scheme>.tflite`` files and a
``manifest.json`` describing each :class:`Variant`. Quantization-aware
training (``qat_int8``) fine-tunes a tf_keras copy of the model with
tensorflow-model-optimization before full-integer conversion.
"""

from __future__ import annotations

import hashlib
import json
import platform
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustq._tf import tensorflow, tf_keras
from robustq.errors import ConfigError, InputError
from robustq.fileio import write_bytes, write_json

SCHEMES: tuple[str, ...] = (
    "float32",
    "float16",
    "dynamic_int8",
    "int8",
    "int8_per_tensor",
    "int16x8",
    "qat_int8",
)
"""Every quantization scheme robustq can produce, in the order reports list them."""

MANIFEST = "manifest.json"
_NO_CALIB = {"float32", "float16", "dynamic_int8"}


@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware fine-tuning settings for the ``qat_int8`` scheme.

    The defaults were measured on the default scene: tfmot's activation ranges
    are moving averages (decay 0.999) that start at [-6, 6], so QAT needs a few
    hundred steps (small batches) to settle them, and a low learning rate so
    the fine-tuning does not undo the trained weights (lr 1e-4 lost ~2.5
    points of OA against post-training int8, lr 1e-5 ~1 point).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-5
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """One TFLite variant of a model: where it is and what it is (a manifest entry)."""

    name: str
    scheme: str
    path: str
    file_size: int
    sha256: str
    parameter_count: int
    input_dtype: str
    input_quantization: tuple[float, int] | None
    output_dtype: str
    output_quantization: tuple[float, int] | None
    calibration_size: int
    converter_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def read_bytes(self, root: str | Path | None = None) -> bytes:
        """Return the variant's flatbuffer bytes (``path`` resolved against ``root``)."""
        path = Path(self.path) if root is None else Path(root) / self.path
        return path.read_bytes()


def check_schemes(schemes: Sequence[str]) -> tuple[str, ...]:
    """Validate scheme names (``"all"`` expands to every scheme); return them de-duplicated."""
    if not schemes:
        raise ConfigError("no quantization scheme given")
    names: list[str] = []
    for scheme in schemes:
        expanded = SCHEMES if scheme == "all" else (scheme,)
        for name in expanded:
            if name not in SCHEMES:
                raise ConfigError(f"unknown scheme {name!r}; choose from {', '.join(SCHEMES)}")
            if name not in names:
                names.append(name)
    return tuple(names)


def calibration_sample(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Pick ``size`` rows of ``x`` without replacement, seeded (all rows if fewer)."""
    if size < 1:
        raise ConfigError(f"calibration size must be >= 1 (got {size})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA11B]))
    if size >= len(x):
        return np.asarray(x, dtype=np.float32)
    rows = np.sort(rng.choice(len(x), size=size, replace=False))
    return np.asarray(x[rows], dtype=np.float32)


def _representative(calibration: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def dataset() -> Iterator[list[np.ndarray]]:
        for row in calibration:
            yield [row[None, ...].astype(np.float32)]

    return dataset


def _converter(model: Any) -> Any:
    """A TFLiteConverter for a tf_keras or a Keras 3 model (the latter via a concrete function)."""
    tf = tensorflow()
    from robustq.models import is_keras3

    if not is_keras3(model):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    # Passing the Keras 3 model as the trackable object makes the converter read
    # uninitialised variables (NaN outputs); the concrete function alone captures them.
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    func = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([func.get_concrete_function()])


def to_tflite(model: Any, scheme: str, calibration: np.ndarray | None = None) -> bytes:
    """Convert a Keras model into TFLite flatbuffer bytes for one quantization scheme.

    ``float32`` and ``float16`` keep float I/O; ``dynamic_int8`` quantizes
    weights only; ``int8`` (per-channel weights), ``int8_per_tensor`` and
    ``qat_int8`` are full-integer with int8 input and output; ``int16x8`` has
    16-bit activations and I/O with 8-bit weights. The integer schemes need
    ``calibration`` (float32 samples shaped like the model input). For
    ``qat_int8`` pass the already fine-tuned model from :func:`qat_model`.
    """
    tf = tensorflow()
    check_schemes([scheme])
    converter = _converter(model)
    needs_calibration = scheme in {"int8", "int8_per_tensor", "int16x8", "qat_int8"}
    if needs_calibration and (calibration is None or len(calibration) == 0):
        raise ConfigError(f"scheme {scheme} needs calibration samples")
    if scheme == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif scheme == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif scheme in {"int8", "int8_per_tensor", "qat_int8"}:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        if scheme == "int8_per_tensor":
            converter._experimental_disable_per_channel = True
    elif scheme == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        converter.inference_input_type = tf.int16
        converter.inference_output_type = tf.int16
    try:
        with warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": the representative
            # dataset supplies them; the converter warns regardless
            warnings.simplefilter("ignore", UserWarning)
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"TFLite conversion ({scheme}) failed: {first}") from exc


def qat_model(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    config: QATConfig | None = None,
) -> Any:
    """Return a quantization-aware fine-tuned copy of a tf_keras ``model``.

    Wraps the model with ``tfmot.quantization.keras.quantize_model`` (fake
    quantization of weights and activations), fine-tunes it on the training
    split with Adam, and returns the wrapped model ready for
    :func:`to_tflite` with scheme ``qat_int8``. Keras 3 models are refused
    with a clear error: tensorflow-model-optimization supports Keras 2 only.
    """
    from robustq.models import is_keras3, seed_everything

    if is_keras3(model):
        raise ConfigError(
            "qat_int8 needs a Keras 2 (tf_keras) model; this is a Keras 3 model — "
            "re-save it with tf_keras or choose another scheme"
        )
    config = config or QATConfig()
    tensorflow()
    import tensorflow_model_optimization as tfmot

    keras = tf_keras()
    seed_everything(config.seed)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    try:
        quantized = tfmot.quantization.keras.quantize_model(clone)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"qat_int8: model cannot be quantization-aware wrapped: {exc}") from None
    quantized.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    if config.epochs > 0:
        quantized.fit(
            x_train,
            y_train,
            batch_size=config.batch_size,
            epochs=config.epochs,
            shuffle=True,
            verbose=0,
        )
    return quantized


def describe(model_bytes: bytes) -> dict[str, Any]:
    """Read input/output dtype and quantization of a TFLite model from its bytes."""
    from robustq.runtime import make_interpreter

    interpreter = make_interpreter(model_bytes)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]

    def quant(detail: dict[str, Any]) -> tuple[float, int] | None:
        scale, zero = detail["quantization"]
        return (float(scale), int(zero)) if scale else None

    return {
        "input_dtype": np.dtype(inp["dtype"]).name,
        "input_quantization": quant(inp),
        "output_dtype": np.dtype(out["dtype"]).name,
        "output_quantization": quant(out),
    }


def convert(
    model: Any,
    schemes: Sequence[str],
    out_dir: str | Path,
    x_calibration: np.ndarray | None = None,
    calibration_size: int = 512,
    seed: int = 0,
    train_data: tuple[np.ndarray, np.ndarray] | None = None,
    qat: QATConfig | None = None,
) -> list[Variant]:
    """Convert ``model`` into each scheme, writing ``<scheme>.tflite`` and ``manifest.json``.

    Calibration uses ``calibration_size`` samples of ``x_calibration`` (the
    training split), picked with ``seed``. ``qat_int8`` also needs
    ``train_data`` (x, y) for fine-tuning. Existing manifest entries for other
    schemes in ``out_dir`` are kept, so variants can be added one at a time.
    Returns the new variants in scheme order.
    """
    tf = tensorflow()
    names = check_schemes(schemes)
    out = Path(out_dir)
    calibration = None
    if x_calibration is not None:
        calibration = calibration_sample(x_calibration, calibration_size, seed)
    calib_rows = 0 if calibration is None else len(calibration)
    variants = []
    for scheme in names:
        source = model
        if scheme == "qat_int8":
            if train_data is None:
                raise ConfigError("qat_int8 needs the training split for fine-tuning")
            source = qat_model(model, train_data[0], train_data[1], qat or QATConfig(seed=seed))
        data = to_tflite(source, scheme, calibration)
        path = write_bytes(out / f"{scheme}.tflite", data)
        info = describe(data)
        variants.append(
            Variant(
                name=scheme,
                scheme=scheme,
                path=path.name,
                file_size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                parameter_count=int(model.count_params()),
                calibration_size=0 if calibration is None or scheme in _NO_CALIB else calib_rows,
                converter_version=f"tensorflow {tf.__version__}",
                extra={"python": platform.python_version()},
                **info,
            )
        )
    write_manifest(out, variants)
    return variants


def write_manifest(out_dir: str | Path, variants: Sequence[Variant]) -> Path:
    """Merge ``variants`` into ``out_dir/manifest.json`` (by name) and write it atomically."""
    path = Path(out_dir) / MANIFEST
    entries = {v.name: asdict(v) for v in read_manifest(out_dir)} if path.exists() else {}
    for variant in variants:
        entries[variant.name] = asdict(variant)
    ordered = sorted(entries.values(), key=lambda e: (_order(e["scheme"]), e["name"]))
    return write_json(path, {"variants": ordered})


def _order(scheme: str) -> int:
    return SCHEMES.index(scheme) if scheme in SCHEMES else len(SCHEMES)


def read_manifest(out_dir: str | Path) -> list[Variant]:
    """Read the variants listed in ``out_dir/manifest.json``."""
    path = Path(out_dir) / MANIFEST
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["variants"]
    except FileNotFoundError:
        raise InputError(f"no {MANIFEST} in {out_dir}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a robustq manifest ({exc})") from None
    variants = []
    for entry in entries:
        for key in ("input_quantization", "output_quantization"):
            if entry.get(key) is not None:
                entry[key] = tuple(entry[key])
        variants.append(Variant(**entry))
    return variants
