"""Running TFLite models with the LiteRT interpreter.

The runtime takes flatbuffer bytes and float samples and returns float class
probabilities: inputs are quantized and outputs dequantized from the model's
own tensor parameters, samples go through in large batches
(``resize_tensor_input``), and the kernel set and thread count are choices.
A fresh interpreter is built per model: weights cannot be patched in a live
one, so a perturbed model is new bytes and a new interpreter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError

KERNELS: tuple[str, ...] = ("default", "builtin", "reference")
"""Kernel choices: XNNPACK-delegated default, builtin without delegates, reference kernels."""

DEFAULT_BATCH = 1024


def _resolver(kernels: str) -> Any:
    from ai_edge_litert.interpreter import OpResolverType

    if kernels not in KERNELS:
        raise ConfigError(f"unknown kernels {kernels!r}; choose from {', '.join(KERNELS)}")
    return {
        "default": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": OpResolverType.BUILTIN_REF,
    }[kernels]


def make_interpreter(
    model_bytes: bytes, threads: int | None = None, kernels: str = "default"
) -> Any:
    """Build an ``ai_edge_litert`` Interpreter over ``model_bytes`` (tensors not yet allocated).

    ``threads`` None lets the runtime decide; ``kernels`` is one of
    :data:`KERNELS`. Raises InputError when the bytes are not a loadable
    TFLite model.
    """
    from ai_edge_litert.interpreter import Interpreter

    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1 (got {threads})")
    resolver = _resolver(kernels)
    if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
        raise InputError("not a TFLite model (missing the TFL3 flatbuffer identifier)")
    try:
        return Interpreter(
            model_content=bytes(model_bytes),
            num_threads=threads,
            experimental_op_resolver_type=resolver,
        )
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load TFLite model: {first}") from None


def quantize_input(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Quantize float samples into an integer input tensor (round to nearest, clip to dtype)."""
    info = np.iinfo(dtype)
    q = np.rint(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_output(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Dequantize an integer output tensor into float32 values."""
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    """Class probabilities of one model on a set of samples, and the time it took."""

    probabilities: np.ndarray  # N x K float32
    seconds: float

    @property
    def labels(self) -> np.ndarray:
        """Predicted class per sample (argmax of the probabilities)."""
        return np.argmax(self.probabilities, axis=1)


def predict(
    model_bytes: bytes,
    x: np.ndarray,
    batch_size: int = DEFAULT_BATCH,
    threads: int | None = None,
    kernels: str = "default",
) -> Prediction:
    """Run a TFLite classifier over float samples ``x`` and return its probabilities.

    The input is resized to ``batch_size`` once and the last batch is padded
    (its padding rows dropped), so tensors are allocated once. Integer inputs
    are quantized and integer outputs dequantized with the tensors' own scale
    and zero point. Raises InputError when ``x`` does not match the model's
    per-sample input shape.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1 (got {batch_size})")
    interpreter = make_interpreter(model_bytes, threads, kernels)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    sample_shape = tuple(int(d) for d in inp["shape"][1:])
    x = np.asarray(x)
    if x.ndim >= 1 and tuple(x.shape[1:]) != sample_shape:
        squeezed = x.reshape(len(x), *sample_shape) if x[0].size == np.prod(sample_shape) else None
        if squeezed is None:
            raise InputError(
                f"data samples have shape {tuple(x.shape[1:])} but the model expects {sample_shape}"
            )
        x = squeezed
    n = len(x)
    batch = max(1, min(batch_size, n))
    interpreter.resize_tensor_input(inp["index"], [batch, *sample_shape])
    interpreter.allocate_tensors()
    in_dtype = np.dtype(inp["dtype"])
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    n_out = int(np.prod(out["shape"][1:]))
    probabilities = np.empty((n, n_out), dtype=np.float32)
    buffer = np.zeros((batch, *sample_shape), dtype=in_dtype)
    start = time.perf_counter()
    for begin in range(0, n, batch):
        chunk = np.asarray(x[begin : begin + batch], dtype=np.float32)
        rows = len(chunk)
        if in_dtype.kind == "i":
            buffer[:rows] = quantize_input(chunk, in_dtype, in_scale, in_zero)
        else:
            buffer[:rows] = chunk
        buffer[rows:] = 0
        interpreter.set_tensor(inp["index"], buffer)
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"]).reshape(batch, n_out)[:rows]
        if result.dtype.kind == "i":
            result = dequantize_output(result, out_scale, out_zero)
        probabilities[begin : begin + rows] = result
    seconds = time.perf_counter() - start
    return Prediction(probabilities=probabilities, seconds=seconds)
