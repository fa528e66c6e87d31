"""Graph-level facts of a TFLite model: operators, tensors, sizes and activation memory.

This module owns the read-only view of a model as a graph, which the edge
evaluation (:mod:`robustq.edge`) builds its footprint and target checks on.
:func:`read_graph` parses the flatbuffer once (``ai_edge_litert``'s schema
object API, ``flatbuffer_utils.convert_bytearray_to_object``) into frozen
:class:`OpInfo` / :class:`TensorInfo` records: every operator in execution
order with its builtin name, op version and input/output dtypes, every tensor
with its batch-1 shape, dtype, buffer and whether it is a constant. On top of
that it computes constant bytes by dtype, op counts, an activation-memory
estimate by a liveness walk over the execution order
(:func:`activation_memory`), and reads back what the LiteRT interpreter
actually allocates (:func:`interpreter_memory`). Weight *editing* stays in
:mod:`robustq.tflite`; this module never writes bytes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError

# TFLite TensorType -> bytes per element (None: no fixed size; int4 packs two per byte).
_ITEMSIZE: dict[str, float | None] = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint8": 1,
    "int64": 8,
    "string": None,
    "bool": 1,
    "int16": 2,
    "complex64": 8,
    "int8": 1,
    "float64": 8,
    "complex128": 16,
    "uint64": 8,
    "resource": None,
    "variant": None,
    "uint32": 4,
    "uint16": 2,
    "int4": 0.5,
    "bfloat16": 2,
    "int2": 0.25,
    "uint4": 0.5,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}

# Ops whose output the interpreter computes once at Prepare from a constant input and
# keeps in its persistent arena (LiteRT's dequantize/densify kernels): weights, not activations.
_CONSTANT_FOLDING_OPS = frozenset({"DEQUANTIZE", "DENSIFY"})

ARENA_ALIGNMENT = 64
"""LiteRT's tensor alignment in its arenas (``kDefaultTensorAlignment``), in bytes."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph as the flatbuffer declares it.

    ``shape`` is the batch-1 shape (dimensions that are -1 in the shape
    signature are taken as 1); ``nbytes`` the bytes that shape occupies at the
    tensor's dtype (0 when the dtype has no fixed size, e.g. string);
    ``constant`` means the tensor has data in the file and ``data_bytes`` is
    the size of that data; ``constant_derived`` marks outputs of ``DEQUANTIZE``
    or ``DENSIFY`` applied to a constant, which LiteRT computes once and keeps
    (dequantized weights, not activations).
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    buffer: int
    constant: bool
    data_bytes: int
    nbytes: int
    variable: bool = False
    constant_derived: bool = False

    @property
    def activation(self) -> bool:
        """True for tensors that live in the activation arena (not constant, not derived)."""
        return not self.constant and not self.constant_derived


@dataclass(frozen=True)
class OpInfo:
    """One operator in execution order: its builtin name, version and tensor dtypes.

    ``name`` is the builtin operator name (``CUSTOM:<code>`` for custom ops);
    ``inputs``/``outputs`` are tensor indices (-1 for an omitted optional
    input, whose dtype is ``"none"``).
    """

    index: int
    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    input_dtypes: tuple[str, ...]
    output_dtypes: tuple[str, ...]
    subgraph: int = 0


@dataclass(frozen=True)
class SubgraphInfo:
    """The tensors, operators (in execution order) and graph inputs/outputs of one subgraph."""

    index: int
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    """A parsed TFLite model as a graph; ``subgraphs[0]`` is the one the interpreter runs."""

    subgraphs: tuple[SubgraphInfo, ...]
    file_bytes: int

    @property
    def main(self) -> SubgraphInfo:
        """The main (first) subgraph."""
        return self.subgraphs[0]

    @property
    def ops(self) -> tuple[OpInfo, ...]:
        """Every operator of every subgraph, subgraph by subgraph, in execution order."""
        return tuple(op for sg in self.subgraphs for op in sg.ops)

    def op_counts(self) -> dict[str, int]:
        """Number of operators of each type over all subgraphs, most frequent first."""
        return dict(Counter(op.name for op in self.ops).most_common())

    def constant_bytes_by_dtype(self) -> dict[str, int]:
        """Bytes of constant data stored in the file, per tensor dtype.

        Each buffer is counted once (a buffer shared by several tensors under
        the dtype of the first tensor that uses it). This is every constant:
        weights and biases, and also small shape or axis constants.
        """
        seen: set[int] = set()
        totals: dict[str, int] = {}
        for sg in self.subgraphs:
            for t in sg.tensors:
                if not t.constant or t.buffer in seen:
                    continue
                seen.add(t.buffer)
                totals[t.dtype] = totals.get(t.dtype, 0) + t.data_bytes
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def ops_table(self) -> Any:
        """A pandas DataFrame with one row per operator (subgraph, index, op, version, dtypes)."""
        import pandas as pd

        rows = [
            {
                "subgraph": op.subgraph,
                "index": op.index,
                "op": op.name,
                "version": op.version,
                "input_dtypes": ",".join(op.input_dtypes),
                "output_dtypes": ",".join(op.output_dtypes),
            }
            for op in self.ops
        ]
        return pd.DataFrame(
            rows,
            columns=["subgraph", "index", "op", "version", "input_dtypes", "output_dtypes"],
        )

    def tensors_table(self) -> Any:
        """A pandas DataFrame with one row per tensor of every subgraph."""
        import pandas as pd

        rows = [
            {
                "subgraph": sg.index,
                "index": t.index,
                "name": t.name,
                "dtype": t.dtype,
                "shape": "x".join(str(d) for d in t.shape) or "scalar",
                "buffer": t.buffer,
                "constant": t.constant,
                "constant_derived": t.constant_derived,
                "variable": t.variable,
                "data_bytes": t.data_bytes,
                "nbytes": t.nbytes,
            }
            for sg in self.subgraphs
            for t in sg.tensors
        ]
        return pd.DataFrame(rows)


def _type_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {
        v: k.lower()
        for k, v in vars(schema.TensorType).items()
        if not k.startswith("_") and isinstance(v, int)
    }


def builtin_op_names() -> tuple[str, ...]:
    """Every builtin operator name the installed LiteRT schema knows (``BuiltinOperator``)."""
    from ai_edge_litert import schema_py_generated as schema

    names = [
        (v, k)
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    ]
    return tuple(k for _, k in sorted(names))


def _ints(values: Any) -> tuple[int, ...]:
    if values is None:
        return ()
    return tuple(int(v) for v in np.asarray(values).reshape(-1))


def _batch1_shape(shape: Any, signature: Any) -> tuple[int, ...]:
    dims = list(_ints(shape))
    sig = _ints(signature)
    if sig and len(sig) == len(dims):
        dims = [1 if s < 0 else d for d, s in zip(dims, sig, strict=True)]
    return tuple(d if d > 0 else 1 for d in dims)


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    size = _ITEMSIZE.get(dtype)
    if size is None:
        return 0
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return int(np.ceil(count * size))


def read_graph(model_bytes: bytes | bytearray | memoryview) -> Graph:
    """Parse a TFLite model into a :class:`Graph`: operators, tensors, buffers.

    Operators are listed in the order of the flatbuffer's operator vector,
    which is the order the LiteRT interpreter executes them in. Raises
    InputError when the bytes are not a complete TFLite model.
    """
    if not isinstance(model_bytes, bytes | bytearray | memoryview):
        raise InputError(f"a TFLite model must be bytes, not {type(model_bytes).__name__}")
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite model (missing the TFL3 flatbuffer identifier)")
    try:
        return _read_graph(data)
    except InputError:
        raise
    except Exception as exc:  # the generated accessors raise many kinds on corrupt data
        raise InputError(f"truncated or corrupt TFLite model ({type(exc).__name__})") from None


def _read_graph(data: bytes) -> Graph:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools.flatbuffer_utils import (
        convert_bytearray_to_object,
        get_builtin_code_from_operator_code,
    )

    model = convert_bytearray_to_object(data)
    type_names = _type_names()
    by_code = {
        v: k
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    }
    codes: list[tuple[str, int]] = []
    for opcode in model.operatorCodes or []:
        code = int(get_builtin_code_from_operator_code(opcode))
        name = by_code.get(code, f"OP_{code}")
        if name == "CUSTOM":
            custom = opcode.customCode
            custom = custom.decode("utf-8", "replace") if isinstance(custom, bytes) else custom
            name = f"CUSTOM:{custom or '?'}"
        codes.append((name, int(opcode.version or 1)))
    buffers = model.buffers or []

    def buffer_bytes(index: int) -> int:
        if index <= 0 or index >= len(buffers):
            return 0
        buf = buffers[index]
        if buf.data is not None and len(buf.data) > 0:
            return int(len(buf.data))
        if buf.offset and buf.offset > 1:
            return int(buf.size)
        return 0

    subgraphs = []
    for sg_index, sg in enumerate(model.subgraphs or []):
        raw = sg.tensors or []
        dtypes = [type_names.get(int(t.type), f"type_{t.type}") for t in raw]
        ops = []
        for op_index, op in enumerate(sg.operators or []):
            if op.opcodeIndex >= len(codes):
                raise InputError("corrupt TFLite model: operator code index out of range")
            name, version = codes[op.opcodeIndex]
            inputs, outputs = _ints(op.inputs), _ints(op.outputs)
            for i in (*inputs, *outputs):
                if i >= len(raw):
                    raise InputError("corrupt TFLite model: operator uses a missing tensor")
            ops.append(
                OpInfo(
                    index=op_index,
                    name=name,
                    version=version,
                    inputs=inputs,
                    outputs=outputs,
                    input_dtypes=tuple(dtypes[i] if i >= 0 else "none" for i in inputs),
                    output_dtypes=tuple(dtypes[i] if i >= 0 else "none" for i in outputs),
                    subgraph=sg_index,
                )
            )
        constant = [buffer_bytes(int(t.buffer)) > 0 for t in raw]
        derived = [False] * len(raw)
        for op in ops:
            if op.name in _CONSTANT_FOLDING_OPS and op.inputs and constant[op.inputs[0]]:
                for out in op.outputs:
                    if out >= 0:
                        derived[out] = True
        tensors = []
        for i, t in enumerate(raw):
            name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else t.name
            shape = _batch1_shape(t.shape, t.shapeSignature)
            tensors.append(
                TensorInfo(
                    index=i,
                    name=name or f"tensor_{i}",
                    dtype=dtypes[i],
                    shape=shape,
                    buffer=int(t.buffer),
                    constant=constant[i],
                    data_bytes=buffer_bytes(int(t.buffer)),
                    nbytes=_nbytes(dtypes[i], shape),
                    variable=bool(t.isVariable),
                    constant_derived=derived[i],
                )
            )
        subgraphs.append(
            SubgraphInfo(
                index=sg_index,
                tensors=tuple(tensors),
                ops=tuple(ops),
                inputs=_ints(sg.inputs),
                outputs=_ints(sg.outputs),
            )
        )
    if not subgraphs:
        raise InputError("TFLite model has no subgraph")
    return Graph(subgraphs=tuple(subgraphs), file_bytes=len(data))


@dataclass(frozen=True)
class ActivationMemory:
    """The activation-memory estimate of a subgraph at batch 1 (see :func:`activation_memory`).

    ``peak_bytes`` is the largest live set, reached while running op
    ``peak_op`` (its index and name) with ``peak_tensors`` live;
    ``live_bytes[i]`` is the live set while op ``i`` runs; ``persistent_bytes``
    are constant-derived tensors (dequantized weights) that LiteRT keeps for
    the whole run and are *not* in the estimate.
    """

    peak_bytes: int
    peak_op: int
    peak_op_name: str
    peak_tensors: tuple[int, ...]
    live_bytes: tuple[int, ...]
    persistent_bytes: int


def activation_memory(graph: Graph, subgraph: int = 0) -> ActivationMemory:
    """Estimate the activation memory of a subgraph at batch 1 by a liveness walk.

    The tensors counted are the *activations*: non-constant tensors that are
    not constant-derived (the output of ``DEQUANTIZE``/``DENSIFY`` applied to
    a constant is a weight LiteRT computes once, reported as
    ``persistent_bytes``), each at its batch-1 size. Walking the operators in
    execution order ``0..n-1``, a tensor is live from the op that produces it
    (from the start, op 0, for a graph input, a variable or a tensor no op
    produces) through the last op that consumes it (through the end, op
    ``n-1``, for a graph output or a variable; only during its producing op
    if nothing consumes it). While op ``i`` runs, its inputs and outputs are
    both live. The estimate is the largest sum of live tensor bytes over all
    ops. It assumes no tensor shares memory with another (LiteRT may run
    ``RESHAPE`` in place) and leaves out kernel scratch buffers (im2col,
    hybrid-quantization temporaries) and alignment padding, which
    :func:`interpreter_memory` reads back from a live interpreter.
    """
    if subgraph < 0 or subgraph >= len(graph.subgraphs):
        raise ConfigError(f"subgraph {subgraph} out of range (model has {len(graph.subgraphs)})")
    sg = graph.subgraphs[subgraph]
    n_ops = len(sg.ops)
    last = max(n_ops - 1, 0)
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for op in sg.ops:
        for t in op.outputs:
            if t >= 0 and t not in start:
                start[t] = op.index
        for t in (*op.inputs, *op.outputs):
            if t >= 0:
                end[t] = max(end.get(t, -1), op.index)
    referenced = set(end) | set(sg.inputs) | set(sg.outputs)
    intervals: list[tuple[int, int, int, int]] = []  # (tensor, first op, last op, bytes)
    for index in sorted(referenced):
        if index < 0:
            continue
        tensor = sg.tensors[index]
        if not tensor.activation:
            continue
        first = 0 if (index in sg.inputs or tensor.variable) else start.get(index, 0)
        through = end.get(index, first)
        if index in sg.outputs or tensor.variable:
            through = last
        intervals.append((index, first, max(first, through), tensor.nbytes))
    live = [sum(b for _, s, e, b in intervals if s <= i <= e) for i in range(max(n_ops, 1))]
    peak_op = int(np.argmax(live)) if live else 0
    persistent = sum(t.nbytes for t in sg.tensors if t.constant_derived)
    return ActivationMemory(
        peak_bytes=int(live[peak_op]) if live else 0,
        peak_op=peak_op,
        peak_op_name=sg.ops[peak_op].name if n_ops else "",
        peak_tensors=tuple(t for t, s, e, _ in intervals if s <= peak_op <= e),
        live_bytes=tuple(int(b) for b in live),
        persistent_bytes=int(persistent),
    )


@dataclass(frozen=True)
class InterpreterMemory:
    """What a LiteRT interpreter allocated for a model at batch 1 (see :func:`interpreter_memory`).

    ``activation_bytes``: the graph's activation tensors (as
    :func:`activation_memory` counts them) summed without reuse;
    ``scratch_bytes``: kernel temporaries the interpreter added (im2col,
    hybrid-quantization buffers); ``persistent_bytes``: constant-derived
    tensors (dequantized weights); ``arena_bytes``: the extent of the address
    range the activation and scratch tensors occupy in the interpreter's
    arena — the memory it actually plans for them, with reuse and alignment.
    """

    kernels: str
    activation_bytes: int
    scratch_bytes: int
    persistent_bytes: int
    arena_bytes: int


def interpreter_memory(model_bytes: bytes, kernels: str = "builtin") -> InterpreterMemory:
    """Read back what the LiteRT interpreter allocates for a model at batch 1.

    Builds an interpreter with ``kernels`` ``"builtin"`` or ``"reference"``
    (no delegate: XNNPACK keeps its own buffers, which cannot be read),
    resizes the input to batch 1 and allocates tensors once. Sizes come from
    ``get_tensor_details()``; tensors beyond the flatbuffer's own are kernel
    temporaries. The arena extent is measured from the tensors' data
    addresses: address intervals of activation and scratch tensors are merged
    when they are less than :data:`ARENA_ALIGNMENT` bytes apart, and the
    merged block holding the graph input is the planned arena (its end minus
    its start). Nothing is invoked.
    """
    from robustq.runtime import make_interpreter

    if kernels not in ("builtin", "reference"):
        raise ConfigError(
            f"interpreter memory can be read with kernels builtin or reference, not {kernels!r}"
        )
    graph = read_graph(model_bytes)
    sg = graph.main
    interpreter = make_interpreter(model_bytes, 1, kernels)
    inp = interpreter.get_input_details()
    for detail in inp:
        shape = [int(d) for d in detail["shape"]]
        if shape and shape[0] != 1:
            interpreter.resize_tensor_input(detail["index"], [1, *shape[1:]])
    try:
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the interpreter cannot allocate this model: {first}") from None
    n_graph = len(sg.tensors)
    activation = scratch = persistent = 0
    spans: list[tuple[int, int]] = []
    input_index = sg.inputs[0] if sg.inputs else -1
    input_start: int | None = None
    for detail in interpreter.get_tensor_details():
        index = int(detail["index"])
        shape = tuple(int(d) for d in detail["shape"])
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(detail["dtype"]).itemsize
        if index < n_graph:
            tensor = sg.tensors[index]
            if tensor.constant:
                continue
            if tensor.constant_derived:
                persistent += size
                continue
            activation += size
        else:
            scratch += size
        if size == 0:
            continue
        view = interpreter.tensor(index)()
        address = int(view.ctypes.data)
        del view
        if address == 0:
            continue
        spans.append((address, address + size))
        if index == input_index:
            input_start = address
    arena = _arena_extent(spans, input_start)
    return InterpreterMemory(
        kernels=kernels,
        activation_bytes=activation,
        scratch_bytes=scratch,
        persistent_bytes=persistent,
        arena_bytes=arena,
    )


def _arena_extent(spans: list[tuple[int, int]], anchor: int | None) -> int:
    """Extent of the merged address block containing ``anchor`` (the largest block if None)."""
    if not spans:
        return 0
    blocks: list[list[int]] = []
    for lo, hi in sorted(spans):
        if blocks and lo - blocks[-1][1] < ARENA_ALIGNMENT:
            blocks[-1][1] = max(blocks[-1][1], hi)
        else:
            blocks.append([lo, hi])
    if anchor is not None:
        for lo, hi in blocks:
            if lo <= anchor < hi:
                return hi - lo
    return max(hi - lo for lo, hi in blocks)
