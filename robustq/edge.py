"""Edge-interpreter evaluation: kernels, threads, streaming latency, footprint, target ops.

On board a variant does not run under the desktop's XNNPACK path: it runs on a
small CPU with builtin, reference or micro kernels, one sample at a time, in a
fixed memory budget. This module owns measuring that before launch.
:func:`evaluate_edge` runs one model under several interpreter
configurations (:class:`EdgeConfig`: kernel set and thread count) and reports
per configuration its overall accuracy, its agreement with the reference-kernel
run (flip rate and largest output difference), its throughput at a large batch
and its per-sample latency at batch 1 (median and 99th percentile over a fixed
number of calls). :func:`footprint` sums up file size, constant bytes by
dtype, op counts and activation memory (from :mod:`robustq.graph`).
:func:`check_target` checks the model's operators, with their input types,
against a target profile — every builtin op of the installed LiteRT, the
TFLite Micro snapshot shipped in ``robustq/targets/``, or a user's JSON/text
list — and lists the ops that would block deployment.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError
from robustq.graph import (
    ActivationMemory,
    InterpreterMemory,
    OpInfo,
    activation_memory,
    builtin_op_names,
    interpreter_memory,
    read_graph,
)
from robustq.runtime import KERNELS, dequantize_output, make_interpreter, quantize_input

__all__ = [
    "EdgeConfig",
    "EdgeRow",
    "EdgeResult",
    "Footprint",
    "TargetProfile",
    "BlockingOp",
    "CompatReport",
    "TARGETS",
    "parse_configs",
    "evaluate_edge",
    "footprint",
    "load_target",
    "check_target",
    "compat_matrix",
    "op_signature",
    "save_edge",
    "SUMMARY_COLUMNS",
]

DEFAULT_CONFIGS = "default,builtin:t1,reference"
SUMMARY_COLUMNS: tuple[str, ...] = (
    "config",
    "accuracy",
    "agreement",
    "flip_rate",
    "max_abs_diff",
    "throughput",
    "latency_median_ms",
    "latency_p99_ms",
)
"""The columns of :meth:`EdgeResult.table` a printed summary shows (CLI and benchmark)."""


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class EdgeConfig:
    """One interpreter configuration: a kernel set and a thread count.

    ``kernels`` is one of :data:`robustq.runtime.KERNELS` — ``default``
    (XNNPACK delegate), ``builtin`` (builtin kernels, no delegate) or
    ``reference`` (``BUILTIN_REF``, the most portable arithmetic); ``threads``
    is the interpreter's thread count (1 unless given: on-board inference is
    usually single-threaded). Written ``kernels[:tN]``, e.g. ``builtin:t2``.
    """

    kernels: str = "default"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kernels not in KERNELS:
            raise ConfigError(f"unknown kernels {self.kernels!r}; choose from {', '.join(KERNELS)}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int | np.integer):
            raise ConfigError(f"threads must be an integer, got {self.threads!r}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (got {self.threads})")
        object.__setattr__(self, "threads", int(self.threads))

    @property
    def label(self) -> str:
        """The configuration as text, ``kernels:tN``."""
        return f"{self.kernels}:t{self.threads}"

    @classmethod
    def parse(cls, text: str) -> EdgeConfig:
        """Parse ``default``, ``builtin:t1``, ``reference``, ``default:t2`` ... into a config.

        Raises ConfigError naming the accepted forms for anything else.
        """
        if not isinstance(text, str):
            raise ConfigError(f"an edge configuration must be text, got {text!r}")
        spec = text.strip().lower()
        kernels, _, threads = spec.partition(":")
        if kernels not in KERNELS or (threads and not _is_threads(threads)):
            raise ConfigError(
                f"unknown edge configuration {text!r}; expected KERNELS[:tN] with KERNELS one "
                f"of {', '.join(KERNELS)} and N >= 1, e.g. builtin:t2"
            )
        return cls(kernels, int(threads[1:]) if threads else 1)


def _is_threads(text: str) -> bool:
    return len(text) > 1 and text[0] == "t" and text[1:].isdigit() and int(text[1:]) >= 1


def parse_configs(spec: str | EdgeConfig | Sequence[str | EdgeConfig]) -> tuple[EdgeConfig, ...]:
    """Configurations from ``"default,builtin:t1,reference"``, a config, or a list of either.

    Raises ConfigError for an empty list, an unknown configuration or one
    given twice.
    """
    if isinstance(spec, EdgeConfig):
        items: list[str | EdgeConfig] = [spec]
    elif isinstance(spec, str):
        items = [part for part in spec.split(",") if part.strip()]
    else:
        items = list(spec)
    configs = tuple(c if isinstance(c, EdgeConfig) else EdgeConfig.parse(c) for c in items)
    if not configs:
        raise ConfigError("no edge configuration given (e.g. default,builtin:t1,reference)")
    labels = [c.label for c in configs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigError(f"edge configuration given twice: {', '.join(twice)}")
    return configs


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EdgeRow:
    """The measurements of one configuration (one row of ``edge.csv``).

    ``agreement``/``flip_rate``: fraction of test samples whose predicted
    class equals / differs from the reference run's; ``max_abs_diff``: the
    largest absolute difference between the two runs' (dequantized) class
    probabilities over all samples and classes. ``throughput`` is samples per
    second at ``batch_size``; ``latency_median_ms``/``latency_p99_ms`` are
    over ``latency_calls`` batch-1 calls.
    """

    config: str
    kernels: str
    threads: int
    accuracy: float
    balanced_accuracy: float
    agreement: float
    flip_rate: float
    max_abs_diff: float
    throughput: float
    throughput_batches: int
    latency_median_ms: float
    latency_p99_ms: float
    latency_calls: int
    batch_size: int
    n_samples: int
    reference: str


_ROW_COLUMNS = [
    "config",
    "kernels",
    "threads",
    "accuracy",
    "balanced_accuracy",
    "agreement",
    "flip_rate",
    "max_abs_diff",
    "throughput",
    "throughput_batches",
    "latency_median_ms",
    "latency_p99_ms",
    "latency_calls",
    "batch_size",
    "n_samples",
    "reference",
]


@dataclass(frozen=True)
class EdgeResult:
    """The outcome of :func:`evaluate_edge`: one row per configuration and the raw data.

    ``probabilities[label]`` are the class probabilities of configuration
    ``label`` on the test samples (``reference_probabilities`` those of the
    reference run), ``latencies[label]`` the raw per-call times in seconds
    (exactly ``latency_calls`` of them) and ``latency_indices`` the test
    samples the latency calls cycle through.
    """

    rows: tuple[EdgeRow, ...]
    reference: str
    y_true: np.ndarray = field(repr=False)
    probabilities: Mapping[str, np.ndarray] = field(repr=False)
    reference_probabilities: np.ndarray = field(repr=False)
    latencies: Mapping[str, np.ndarray] = field(repr=False)
    latency_indices: np.ndarray = field(repr=False)

    def labels(self, config: str) -> np.ndarray:
        """Predicted classes of one configuration (argmax of its probabilities)."""
        if config not in self.probabilities:
            raise ConfigError(
                f"no configuration {config!r} in this result; have {', '.join(self.probabilities)}"
            )
        return np.argmax(self.probabilities[config], axis=1)

    def row(self, config: str) -> EdgeRow:
        """The row of one configuration."""
        for row in self.rows:
            if row.config == config:
                return row
        raise ConfigError(f"no configuration {config!r} in this result")

    def table(self) -> Any:
        """The rows as a pandas DataFrame (the columns of ``edge.csv``)."""
        import pandas as pd

        return pd.DataFrame([vars(r) for r in self.rows], columns=_ROW_COLUMNS)

    def latency_table(self) -> Any:
        """Raw latencies in long form: config, call, sample (test index), seconds."""
        import pandas as pd

        frames = []
        for config, times in self.latencies.items():
            k = len(self.latency_indices)
            calls = np.arange(len(times))
            frames.append(
                pd.DataFrame(
                    {
                        "config": config,
                        "call": calls,
                        "sample": self.latency_indices[calls % k],
                        "seconds": times,
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=["config", "call", "sample", "seconds"])
        return pd.concat(frames, ignore_index=True)


def evaluate_edge(
    model_bytes: bytes,
    splits: Any,
    configs: str | EdgeConfig | Sequence[str | EdgeConfig] = DEFAULT_CONFIGS,
    latency_calls: int = 200,
    batch_size: int = 1024,
    reference: str | EdgeConfig = "reference",
    latency_samples: int = 64,
    warmup_calls: int = 5,
) -> EdgeResult:
    """Evaluate one TFLite classifier under several interpreter configurations.

    For each configuration the test split (``splits.x_test``/``y_test``) is
    run at ``batch_size`` (input resized once, last batch zero-padded, inputs
    quantized beforehand with the model's own parameters): OA and balanced
    accuracy against the labels; agreement, flip rate and maximum absolute
    output difference against the ``reference`` configuration's run (run
    once, reused when it is also among ``configs``). *Throughput* is
    ``batch_size`` x timed batches / their time, where each timed batch is
    ``set_tensor`` + ``invoke`` + ``get_tensor``; the first batch is a
    warm-up and is not timed unless it is the only one
    (``throughput_batches`` says how many were timed). *Latency* is streaming
    inference: a second interpreter is resized to batch 1 and allocated once,
    ``warmup_calls`` untimed calls are made, then exactly ``latency_calls``
    calls, call ``i`` on fixed test sample ``latency_indices[i % k]`` (``k =
    min(latency_samples, n)`` samples evenly spaced over the test split, no
    randomness); each call's time covers ``set_tensor`` + ``invoke`` +
    ``get_tensor`` only (``time.perf_counter_ns``). Median and 99th
    percentile are ``numpy.median`` and ``numpy.percentile(..., 99)`` (linear
    interpolation) of those times. Raises ConfigError for unknown
    configurations or bad counts and InputError when the model's input or
    output does not match the data.
    """
    configs = parse_configs(configs)
    reference_config = (
        reference if isinstance(reference, EdgeConfig) else EdgeConfig.parse(reference)
    )
    for name, value, low in (
        ("latency_calls", latency_calls, 1),
        ("batch_size", batch_size, 1),
        ("latency_samples", latency_samples, 1),
        ("warmup_calls", warmup_calls, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low} (got {value!r})")
    x, y, n_classes = _test_data(splits)
    io = _model_io(model_bytes, x, n_classes)
    x = x.reshape(len(x), *io.sample_shape)
    xq = io.quantize(x)
    latency_indices = np.unique(
        np.linspace(0, len(x) - 1, num=min(latency_samples, len(x))).round().astype(np.int64)
    )

    from robustq.metrics import score

    runs = {c.label: _run_batched(model_bytes, xq, io, c, int(batch_size)) for c in configs}
    reference_run = runs.get(reference_config.label) or _run_batched(
        model_bytes, xq, io, reference_config, int(batch_size)
    )
    reference_labels = np.argmax(reference_run.probabilities, axis=1)

    rows = []
    latencies: dict[str, np.ndarray] = {}
    for config in configs:
        run = runs[config.label]
        labels = np.argmax(run.probabilities, axis=1)
        scores = score(y, labels, n_classes)
        times = _latency(
            model_bytes, xq[latency_indices], io, config, int(latency_calls), int(warmup_calls)
        )
        latencies[config.label] = times
        flip = float(np.mean(labels != reference_labels))
        rows.append(
            EdgeRow(
                config=config.label,
                kernels=config.kernels,
                threads=config.threads,
                accuracy=scores.accuracy,
                balanced_accuracy=scores.balanced_accuracy,
                agreement=1.0 - flip,
                flip_rate=flip,
                max_abs_diff=float(np.max(np.abs(run.probabilities - reference_run.probabilities))),
                throughput=run.throughput,
                throughput_batches=run.timed_batches,
                latency_median_ms=float(np.median(times)) * 1e3,
                latency_p99_ms=float(np.percentile(times, 99)) * 1e3,
                latency_calls=len(times),
                batch_size=run.batch,
                n_samples=len(y),
                reference=reference_config.label,
            )
        )
    return EdgeResult(
        rows=tuple(rows),
        reference=reference_config.label,
        y_true=y,
        probabilities={label: run.probabilities for label, run in runs.items()},
        reference_probabilities=reference_run.probabilities,
        latencies=latencies,
        latency_indices=latency_indices,
    )


def _test_data(splits: Any) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        x = np.asarray(splits.x_test)
        y = np.asarray(splits.y_test)
        n_classes = int(splits.n_classes)
    except AttributeError:
        raise InputError(
            f"edge evaluation needs Splits (x_test, y_test, n_classes), got {type(splits).__name__}"
        ) from None
    if x.ndim < 2 or len(x) == 0 or y.shape != (len(x),):
        raise InputError(
            f"test data must be N samples with N labels (got x {x.shape}, y {y.shape})"
        )
    return x, y, n_classes


@dataclass(frozen=True)
class _ModelIO:
    sample_shape: tuple[int, ...]
    in_dtype: np.dtype
    in_quant: tuple[float, int]
    out_quant: tuple[float, int]
    n_out: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if self.in_dtype.kind in "iu":
            return quantize_input(np.asarray(x, np.float32), self.in_dtype, *self.in_quant)
        return np.asarray(x, dtype=self.in_dtype)

    def dequantize(self, out: np.ndarray) -> np.ndarray:
        if out.dtype.kind in "iu":
            return dequantize_output(out, *self.out_quant)
        return out.astype(np.float32, copy=False)


def _model_io(model_bytes: bytes, x: np.ndarray, n_classes: int) -> _ModelIO:
    """The model's input/output layout, checked against the data."""
    interpreter = make_interpreter(model_bytes, 1, "reference")
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(
            f"edge evaluation needs a model with one input and one output "
            f"(this one has {len(inputs)} and {len(outputs)})"
        )
    inp, out = inputs[0], outputs[0]
    sample_shape = tuple(int(d) for d in inp["shape"][1:])
    data_shape = tuple(int(d) for d in x.shape[1:])
    if data_shape != sample_shape and int(np.prod(data_shape)) != int(np.prod(sample_shape)):
        raise InputError(
            f"data samples have shape {data_shape} but the model expects {sample_shape}"
        )
    n_out = int(np.prod(out["shape"][1:]))
    if n_out != n_classes:
        raise InputError(f"the model has {n_out} outputs but the data has {n_classes} classes")
    return _ModelIO(
        sample_shape=sample_shape,
        in_dtype=np.dtype(inp["dtype"]),
        in_quant=(float(inp["quantization"][0]), int(inp["quantization"][1])),
        out_quant=(float(out["quantization"][0]), int(out["quantization"][1])),
        n_out=n_out,
    )


@dataclass(frozen=True)
class _BatchRun:
    probabilities: np.ndarray
    batch: int
    batch_seconds: tuple[float, ...]

    @property
    def timed_batches(self) -> int:
        return max(len(self.batch_seconds) - 1, 1)

    @property
    def throughput(self) -> float:
        # The first batch warms the interpreter up (XNNPACK sets up at its first invoke).
        times = self.batch_seconds[1:] if len(self.batch_seconds) > 1 else self.batch_seconds
        total = sum(times)
        return float(self.batch * len(times) / total) if total > 0 else float("inf")


def _run_batched(
    model_bytes: bytes, xq: np.ndarray, io: _ModelIO, config: EdgeConfig, batch_size: int
) -> _BatchRun:
    interpreter = make_interpreter(model_bytes, config.threads, config.kernels)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    n = len(xq)
    batch = max(1, min(batch_size, n))
    interpreter.resize_tensor_input(inp["index"], [batch, *io.sample_shape])
    interpreter.allocate_tensors()
    buffer = np.zeros((batch, *io.sample_shape), dtype=io.in_dtype)
    probabilities = np.empty((n, io.n_out), dtype=np.float32)
    seconds = []
    for begin in range(0, n, batch):
        rows = min(batch, n - begin)
        buffer[:rows] = xq[begin : begin + rows]
        buffer[rows:] = 0
        start = time.perf_counter_ns()
        interpreter.set_tensor(inp["index"], buffer)
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"])
        seconds.append((time.perf_counter_ns() - start) / 1e9)
        probabilities[begin : begin + rows] = io.dequantize(result.reshape(batch, io.n_out)[:rows])
    return _BatchRun(probabilities=probabilities, batch=batch, batch_seconds=tuple(seconds))


def _latency(
    model_bytes: bytes,
    samples: np.ndarray,
    io: _ModelIO,
    config: EdgeConfig,
    calls: int,
    warmup_calls: int,
) -> np.ndarray:
    """Seconds per batch-1 call (set_tensor + invoke + get_tensor), exactly ``calls`` of them."""
    interpreter = make_interpreter(model_bytes, config.threads, config.kernels)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [1, *io.sample_shape])
    interpreter.allocate_tensors()
    singles = [np.ascontiguousarray(s[None]) for s in samples]
    k = len(singles)
    for i in range(warmup_calls):
        interpreter.set_tensor(inp["index"], singles[i % k])
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
    times = np.empty(calls, dtype=np.float64)
    for i in range(calls):
        sample = singles[i % k]
        start = time.perf_counter_ns()
        interpreter.set_tensor(inp["index"], sample)
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
        times[i] = (time.perf_counter_ns() - start) / 1e9
    return times


# --------------------------------------------------------------------------- footprint


@dataclass(frozen=True)
class Footprint:
    """Size, operators and memory of one model (see :func:`footprint`).

    ``constant_bytes_by_dtype``: bytes of constant data in the file per dtype
    (weights, biases and small shape constants, each buffer once);
    ``activation``: the liveness-walk estimate at batch 1;
    ``activation_total_bytes``: all activation tensors summed without reuse;
    ``interpreter``: what LiteRT allocated, per kernel set read.
    """

    file_bytes: int
    constant_bytes_by_dtype: Mapping[str, int]
    op_counts: Mapping[str, int]
    activation: ActivationMemory
    activation_total_bytes: int
    interpreter: tuple[InterpreterMemory, ...] = ()

    @property
    def weight_bytes(self) -> int:
        """All constant bytes stored in the file."""
        return int(sum(self.constant_bytes_by_dtype.values()))

    @property
    def n_ops(self) -> int:
        """Number of operators over all subgraphs."""
        return int(sum(self.op_counts.values()))

    def row(self) -> dict[str, Any]:
        """The footprint as one flat dict (the columns of ``footprint.csv``)."""
        row: dict[str, Any] = {
            "file_bytes": self.file_bytes,
            "weight_bytes": self.weight_bytes,
        }
        row.update({f"weight_bytes_{k}": v for k, v in self.constant_bytes_by_dtype.items()})
        row["n_ops"] = self.n_ops
        row["ops"] = ", ".join(f"{name} x{count}" for name, count in self.op_counts.items())
        row["activation_estimate_bytes"] = self.activation.peak_bytes
        row["activation_peak_op"] = f"{self.activation.peak_op}:{self.activation.peak_op_name}"
        row["activation_total_bytes"] = self.activation_total_bytes
        row["dequantized_weight_bytes"] = self.activation.persistent_bytes
        for mem in self.interpreter:
            row[f"{mem.kernels}_arena_bytes"] = mem.arena_bytes
            row[f"{mem.kernels}_scratch_bytes"] = mem.scratch_bytes
        return row

    def table(self) -> Any:
        """The footprint as a two-column DataFrame (quantity, value) for printing."""
        import pandas as pd

        return pd.DataFrame(list(self.row().items()), columns=["quantity", "value"])


def footprint(model_bytes: bytes, interpreter: bool = True) -> Footprint:
    """File size, constant bytes by dtype, op counts and activation memory of a model.

    The activation estimate is :func:`robustq.graph.activation_memory` (the
    largest live set of activation tensors at batch 1 over the execution
    order). With ``interpreter`` the model is also allocated (not run) by
    LiteRT with builtin and with reference kernels and
    :func:`robustq.graph.interpreter_memory` reads back the arena each
    plans: reference kernels need no scratch, so their arena is the estimate
    plus alignment padding; builtin kernels add im2col and hybrid scratch.
    """
    graph = read_graph(model_bytes)
    activation = activation_memory(graph)
    main = graph.main
    used = {*main.inputs, *main.outputs, *(t for op in main.ops for t in (*op.inputs, *op.outputs))}
    total = sum(t.nbytes for t in main.tensors if t.activation and t.index in used)
    memories: tuple[InterpreterMemory, ...] = ()
    if interpreter:
        memories = tuple(interpreter_memory(model_bytes, k) for k in ("builtin", "reference"))
    return Footprint(
        file_bytes=graph.file_bytes,
        constant_bytes_by_dtype=graph.constant_bytes_by_dtype(),
        op_counts=graph.op_counts(),
        activation=activation,
        activation_total_bytes=int(total),
        interpreter=memories,
    )


# --------------------------------------------------------------------------- target compatibility

TARGETS: tuple[str, ...] = ("tflite_builtin", "tflite_micro")
"""Targets known by name (aliases: ``builtin``, ``micro``, ``tflm``); any other is a file path."""

_ALIASES = {"builtin": "tflite_builtin", "micro": "tflite_micro", "tflm": "tflite_micro"}

KERNEL_INPUTS: dict[str, tuple[int, int]] = {
    "CONV_2D": (0, 1),
    "DEPTHWISE_CONV_2D": (0, 1),
    "FULLY_CONNECTED": (0, 1),
    "CONV_3D": (0, 1),
    "TRANSPOSE_CONV": (2, 1),
}
"""Ops whose signature is ``activation/weight``: op -> (activation input, weight input)."""


@dataclass(frozen=True)
class TargetProfile:
    """The operators a deployment target supports, and with which input types.

    ``ops`` maps an operator name (a LiteRT builtin name, or
    ``CUSTOM:<code>``) to the signatures it accepts (patterns matched with
    :func:`fnmatch.fnmatchcase` against :func:`op_signature`), or None for any
    type. ``load_check`` also loads the model in the installed LiteRT
    interpreter, which catches op versions it does not implement.
    """

    name: str
    ops: Mapping[str, tuple[str, ...] | None]
    source: str = ""
    compiled: str = ""
    snapshot: bool = False
    load_check: bool = False

    def accepts(self, op: str, signature: str) -> str | None:
        """None if the target runs ``op`` with ``signature``, else the reason it does not."""
        if op not in self.ops:
            return "operator not supported by the target"
        patterns = self.ops[op]
        if patterns is None or any(fnmatch.fnmatchcase(signature, p) for p in patterns):
            return None
        return f"input type {signature} not supported (target has {', '.join(patterns)})"


def _builtin_target() -> TargetProfile:
    import ai_edge_litert

    version = getattr(ai_edge_litert, "__version__", "")
    names = [n for n in builtin_op_names() if n != "CUSTOM"]
    return TargetProfile(
        name="tflite_builtin",
        ops=dict.fromkeys(names),
        source=(
            "every BuiltinOperator of the installed ai_edge_litert schema"
            + (f" {version}" if version else "")
            + ", plus a load of the model in its interpreter (builtin kernels)"
        ),
        compiled="at run time",
        snapshot=False,
        load_check=True,
    )


def _parse_ops(raw: Any, where: str) -> dict[str, tuple[str, ...] | None]:
    known = set(builtin_op_names())
    if isinstance(raw, list):
        raw = dict.fromkeys(raw, "*")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'ops' must be a list of names or a mapping name -> types")
    ops: dict[str, tuple[str, ...] | None] = {}
    for name, types in raw.items():
        if not isinstance(name, str):
            raise ConfigError(f"{where}: operator names must be text, got {name!r}")
        op = name.strip()
        if op.upper().startswith("CUSTOM:"):
            op = "CUSTOM:" + op.split(":", 1)[1].strip()
        else:
            op = op.upper()
            if op not in known or op == "CUSTOM":
                raise ConfigError(
                    f"{where}: unknown operator {name!r} (not a LiteRT builtin; "
                    "write custom ops as CUSTOM:<code>)"
                )
        if types is None or types == "*" or types == ["*"]:
            ops[op] = None
        elif isinstance(types, str):
            ops[op] = (types.strip(),)
        elif isinstance(types, list) and all(isinstance(t, str) for t in types) and types:
            ops[op] = tuple(t.strip() for t in types)
        else:
            raise ConfigError(f"{where}: types of {name!r} must be '*' or a list of signatures")
    if not ops:
        raise ConfigError(f"{where}: the target lists no operator")
    return ops


def _profile_from_json(data: Any, where: str, default_name: str) -> TargetProfile:
    if isinstance(data, list):
        data = {"ops": data}
    if not isinstance(data, dict) or "ops" not in data:
        raise ConfigError(f"{where}: expected a JSON object with an 'ops' field, or a list of ops")
    return TargetProfile(
        name=str(data.get("name") or default_name),
        ops=_parse_ops(data["ops"], where),
        source=str(data.get("source", where)),
        compiled=str(data.get("compiled", "")),
        snapshot=bool(data.get("snapshot", False)),
    )


def _profile_from_text(text: str, where: str, default_name: str) -> TargetProfile:
    raw: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        name, *types = line.split()
        raw[name] = types or "*"
    return TargetProfile(name=default_name, ops=_parse_ops(raw, where), source=where)


def load_target(target: str | os.PathLike[str] | TargetProfile) -> TargetProfile:
    """A target profile by name (:data:`TARGETS` and aliases) or from a JSON or text file.

    ``tflite_builtin`` is derived at run time from the installed LiteRT's
    ``BuiltinOperator`` enum (any input type) and also loads the model in its
    interpreter; ``tflite_micro`` is the snapshot shipped in
    ``robustq/targets/tflite_micro.json``. A file is JSON (``{"name": ...,
    "ops": {"CONV_2D": ["int8/int8"], "RESHAPE": "*"}}`` or a list of op
    names) or text (one op per line, optionally followed by accepted
    signatures; ``#`` starts a comment). Raises ConfigError for an unknown
    target or a malformed profile.
    """
    if isinstance(target, TargetProfile):
        return target
    text = os.fspath(target)
    name = _ALIASES.get(text.strip().lower(), text.strip().lower())
    if name == "tflite_builtin":
        return _builtin_target()
    if name == "tflite_micro":
        from importlib.resources import files

        data = json.loads((files("robustq") / "targets" / "tflite_micro.json").read_text("utf-8"))
        return _profile_from_json(data, "tflite_micro.json", "tflite_micro")
    path = Path(text)
    if not path.is_file():
        raise ConfigError(
            f"unknown target {text!r}; choose {', '.join(TARGETS)} (or builtin, micro) "
            "or give a JSON/text file listing the supported ops"
        )
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read target file {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"target file {path} is not valid JSON: {exc}") from None
        return _profile_from_json(data, str(path), path.stem)
    return _profile_from_text(content, str(path), path.stem)


def op_signature(op: OpInfo) -> str:
    """The input type of an op as target profiles match it.

    For ``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``FULLY_CONNECTED``, ``CONV_3D``
    and ``TRANSPOSE_CONV`` it is ``<activation dtype>/<weight dtype>`` (e.g.
    ``int8/int8``, ``int16/int8`` for 16x8, ``float32/int8`` for a hybrid
    op); for every other op, the dtype of its first input (``none`` if it has
    none). A weight that a ``DEQUANTIZE`` feeds counts as that op's output
    dtype (float32); the ``DEQUANTIZE`` itself is checked on its own.
    """
    positions = KERNEL_INPUTS.get(op.name)
    if positions is not None:
        act, weight = (
            op.input_dtypes[p] if p < len(op.input_dtypes) else "none" for p in positions
        )
        return f"{act}/{weight}"
    present = [d for d in op.input_dtypes if d != "none"]
    return present[0] if present else "none"


@dataclass(frozen=True)
class BlockingOp:
    """One operator that would block deployment on a target, and why."""

    subgraph: int
    index: int
    op: str
    version: int
    signature: str
    reason: str


@dataclass(frozen=True)
class CompatReport:
    """The result of checking one model against one target (see :func:`check_target`).

    ``ops`` lists the model's distinct (op, version, signature) triples;
    ``blocking`` the operators the target cannot run (each op occurrence).
    """

    target: str
    source: str
    n_ops: int
    ops: tuple[tuple[str, int, str], ...]
    blocking: tuple[BlockingOp, ...]

    @property
    def passed(self) -> bool:
        """True when nothing blocks deployment."""
        return not self.blocking

    def summary(self) -> str:
        """``pass``, or ``blocked:`` and each distinct blocking op with its signature."""
        if self.passed:
            return "pass"
        seen = dict.fromkeys(f"{b.op}({b.signature})" for b in self.blocking)
        return "blocked: " + ", ".join(seen)

    def table(self) -> Any:
        """Blocking operators as a DataFrame (target, subgraph, index, op, version, ...)."""
        import pandas as pd

        columns = ["target", "subgraph", "index", "op", "version", "signature", "reason"]
        rows = [{"target": self.target, **vars(b)} for b in self.blocking]
        return pd.DataFrame(rows, columns=columns)


def check_target(
    model_bytes: bytes, target: str | os.PathLike[str] | TargetProfile
) -> CompatReport:
    """Check a model's operators and their input types against a target profile.

    Every operator of every subgraph is looked up by name in the profile; an
    op the profile lacks blocks, and so does an op whose
    :func:`op_signature` matches none of the profile's patterns for it (e.g.
    ``int16/int8`` on an op with only int8 kernels, ``float32/int8`` hybrid
    ops, ``float16`` DEQUANTIZE on TFLite Micro). For a profile with
    ``load_check`` (``tflite_builtin``) the model is also loaded and
    allocated by the installed LiteRT interpreter; a refusal blocks with the
    interpreter's message. Op versions are reported, not checked.
    """
    profile = load_target(target)
    graph = read_graph(model_bytes)
    blocking = []
    seen: dict[tuple[str, int, str], None] = {}
    for sg in graph.subgraphs:
        for op in sg.ops:
            signature = op_signature(op)
            seen[(op.name, op.version, signature)] = None
            reason = profile.accepts(op.name, signature)
            if reason is not None:
                blocking.append(
                    BlockingOp(sg.index, op.index, op.name, op.version, signature, reason)
                )
    if profile.load_check:
        failure = _load_failure(model_bytes)
        if failure is not None:
            blocking.append(BlockingOp(-1, -1, "(model)", 0, "", failure))
    return CompatReport(
        target=profile.name,
        source=profile.source,
        n_ops=len(graph.ops),
        ops=tuple(seen),
        blocking=tuple(blocking),
    )


def _load_failure(model_bytes: bytes) -> str | None:
    try:
        interpreter = make_interpreter(model_bytes, 1, "builtin")
        interpreter.allocate_tensors()
    except InputError as exc:
        return f"the LiteRT interpreter refused the model: {exc}"
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the LiteRT interpreter refused the model: {first}"
    return None


def compat_matrix(
    models: Mapping[str, bytes], targets: Sequence[str | os.PathLike[str] | TargetProfile]
) -> Any:
    """Which models pass which targets: a DataFrame, one row per model, one column per target.

    Each cell is :meth:`CompatReport.summary` (``pass`` or ``blocked: ...``).
    """
    import pandas as pd

    profiles = [load_target(t) for t in targets]
    rows = {}
    for name, blob in models.items():
        rows[name] = {p.name: check_target(blob, p).summary() for p in profiles}
    return pd.DataFrame.from_dict(rows, orient="index", columns=[p.name for p in profiles])


# --------------------------------------------------------------------------- output


def save_edge(
    out: str | os.PathLike[str],
    result: EdgeResult | None = None,
    model_footprint: Footprint | None = None,
    reports: Sequence[CompatReport] = (),
) -> list[Path]:
    """Write what was measured into folder ``out`` (atomically) and return the paths.

    ``edge.csv`` (one row per configuration) and ``edge_latency.csv`` (raw
    per-call times) from ``result``; ``footprint.csv`` (one row) from
    ``model_footprint``; ``compat.csv`` (one row per target: passed, summary,
    source; then one row per blocking op) from ``reports``.
    """
    import pandas as pd

    from robustq.fileio import write_csv

    folder = Path(out)
    written = []
    if result is not None:
        written.append(write_csv(folder / "edge.csv", result.table()))
        written.append(write_csv(folder / "edge_latency.csv", result.latency_table()))
    if model_footprint is not None:
        written.append(write_csv(folder / "footprint.csv", pd.DataFrame([model_footprint.row()])))
    if reports:
        rows = []
        for report in reports:
            rows.append(
                {
                    "target": report.target,
                    "passed": report.passed,
                    "summary": report.summary(),
                    "source": report.source,
                }
            )
            for b in report.blocking:
                rows.append({"target": report.target, "passed": False, **vars(b)})
        written.append(write_csv(folder / "compat.csv", pd.DataFrame(rows)))
    return written
