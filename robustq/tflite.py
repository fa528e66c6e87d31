"""The TFLite flatbuffer: list a model's weight tensors, read them as float, write them back.

All flatbuffer handling in robustq lives here. :class:`TFLiteModel` parses a
model's bytes once (through the generated ``schema_py_generated`` accessors of
``ai_edge_litert``) and lists every constant tensor that holds weights or
biases as a :class:`WeightTensor` — following ``DEQUANTIZE`` ops, so the fp16
constants of a float16 variant are found as well as the int8 weights of
hybrid (dynamic-range) ops. Values are read dequantized (per channel along the
quantized dimension) and written back re-quantized with the tensor's original
scale and zero point. A :class:`ModelEditor` copies the original bytes once
and patches weight buffers and quantization vectors in place: a perturbation
never changes a tensor's length, so every other byte of the model stays
identical and making a perturbed member costs milliseconds. The input bytes
are never modified.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustq.errors import ConfigError, InputError

_IDENTIFIER = b"TFL3"

# TFLite TensorType -> (name, little-endian numpy dtype); None = not readable as numbers.
_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("float32", "<f4"),
    1: ("float16", "<f2"),
    2: ("int32", "<i4"),
    3: ("uint8", "u1"),
    4: ("int64", "<i8"),
    5: ("string", None),
    6: ("bool", None),
    7: ("int16", "<i2"),
    9: ("int8", "i1"),
    10: ("float64", "<f8"),
    12: ("uint64", "<u8"),
    15: ("uint32", "<u4"),
    16: ("uint16", "<u2"),
    17: ("int4", None),
    18: ("bfloat16", None),
}

# Which operator inputs hold parameters, and whether each is a weight or a bias.
WEIGHT_SLOTS: dict[str, dict[int, str]] = {
    "CONV_2D": {1: "weight", 2: "bias"},
    "DEPTHWISE_CONV_2D": {1: "weight", 2: "bias"},
    "FULLY_CONNECTED": {1: "weight", 2: "bias"},
    "CONV_3D": {1: "weight", 2: "bias"},
    "TRANSPOSE_CONV": {1: "weight", 3: "bias"},
    "BATCH_MATMUL": {1: "weight"},
    "EMBEDDING_LOOKUP": {1: "weight"},
    "PRELU": {1: "weight"},
    "MUL": {0: "weight", 1: "weight"},
    "ADD": {0: "bias", 1: "bias"},
    "SUB": {0: "bias", 1: "bias"},
}
"""Operator -> {input position: role}: the constant inputs robustq treats as parameters.

Constants of ``MUL``/``ADD``/``SUB`` appear when the converter cannot fold a
layer (e.g. a batch normalization that does not follow a convolution).
"""


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    ops = schema.BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


_OP_NAMES: dict[int, str] = {}


def _op_name(code: int) -> str:
    if not _OP_NAMES:
        _OP_NAMES.update(_builtin_names())
    return _OP_NAMES.get(code, f"OP_{code}")


@dataclass(frozen=True)
class WeightTensor:
    """One constant tensor of a model that holds weights or biases, as stored.

    ``index`` is the tensor's index in its subgraph; ``name`` is unique within
    the model (duplicated flatbuffer names get ``@index`` appended, or
    ``@subgraph.index`` outside the main subgraph);
    ``consumers`` are the op types using it (through a ``DEQUANTIZE`` when
    ``via_dequantize``); ``layer`` numbers the parameterised ops in execution
    order (the first consumer's). ``scales``/``zero_points`` are empty for
    float storage; ``per_channel`` means one scale per slice along
    ``quantized_dimension``.
    """

    index: int
    name: str
    consumers: tuple[str, ...]
    role: str
    dtype: str
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    per_channel: bool
    layer: int
    subgraph: int = 0
    via_dequantize: bool = False

    @property
    def size(self) -> int:
        """Number of stored elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def quantized(self) -> bool:
        """True when the tensor is stored as integers with a quantization scale."""
        return bool(self.scales) and self.dtype.startswith(("int", "uint"))


@dataclass(frozen=True)
class _Layout:
    """Where one weight tensor's storage and quantization vectors sit in the file."""

    data_start: int
    data_bytes: int
    storage: str | None  # numpy dtype string, None if unsupported
    scale_span: tuple[int, int] | None  # (start, count) of the float32 scale vector
    zero_point_span: tuple[int, int] | None  # (start, count) of the int64 zero-point vector
    q_range: tuple[float, float] | None  # clip range for re-quantization
    ops: tuple[tuple[int, int], ...]  # (subgraph, op index) of every consuming op
    activation: tuple[int, int] | None  # (subgraph, tensor index) of the first consumer's input


def _vector(table: Any, slot: int) -> tuple[int, int] | None:
    """(start, count) of a flatbuffer vector field, or None when the field is absent."""
    offset = table.Offset(slot)
    if offset == 0:
        return None
    return table.Vector(offset), table.VectorLen(offset)


def _check_span(start: int, nbytes: int, total: int, what: str) -> None:
    if start < 0 or nbytes < 0 or start + nbytes > total:
        raise InputError(
            f"truncated or corrupt TFLite model: {what} lies beyond the end of the file"
        )


class TFLiteModel:
    """A parsed, read-only TFLite model: its weight tensors and how to read them.

    Parsing validates the file (identifier, flatbuffer structure, every weight
    buffer inside the file) and raises InputError for anything that is not a
    complete TFLite model. Parse once, then make many :meth:`edit` copies.
    """

    def __init__(self, model_bytes: bytes | bytearray | memoryview) -> None:
        if not isinstance(model_bytes, bytes | bytearray | memoryview):
            raise InputError(f"a TFLite model must be bytes, not {type(model_bytes).__name__}")
        self.data: bytes = bytes(model_bytes)
        if len(self.data) < 8 or self.data[4:8] != _IDENTIFIER:
            raise InputError("not a TFLite model (missing the TFL3 flatbuffer identifier)")
        try:
            tensors, layouts = self._parse()
        except InputError:
            raise
        except (IndexError, struct.error, ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"truncated or corrupt TFLite model ({type(exc).__name__})") from None
        self.tensors: tuple[WeightTensor, ...] = tensors
        self._layouts = layouts
        self._by_name = {t.name: i for i, t in enumerate(tensors)}

    # parsing -------------------------------------------------------------------------------
    def _parse(self) -> tuple[tuple[WeightTensor, ...], dict[str, _Layout]]:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

        data = self.data
        total = len(data)
        root = struct.unpack_from("<I", data, 0)[0]
        if root >= total:
            raise InputError("truncated or corrupt TFLite model: root table beyond the end")
        model = schema.Model.GetRootAs(data, 0)
        codes = [
            _op_name(get_builtin_code_from_operator_code(model.OperatorCodes(i)))
            for i in range(model.OperatorCodesLength())
        ]
        n_buffers = model.BuffersLength()
        found: list[dict[str, Any]] = []
        seen: dict[tuple[int, int], dict[str, Any]] = {}
        layer = -1
        for sg_index in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(sg_index)
            n_tensors = subgraph.TensorsLength()
            ops = []
            producer: dict[int, int] = {}
            for op_index in range(subgraph.OperatorsLength()):
                op = subgraph.Operators(op_index)
                code = op.OpcodeIndex()
                if code >= len(codes):
                    raise InputError("corrupt TFLite model: operator code index out of range")
                inputs = [int(i) for i in _ints(op.InputsAsNumpy())]
                outputs = [int(i) for i in _ints(op.OutputsAsNumpy())]
                ops.append((codes[code], inputs))
                for out in outputs:
                    producer[out] = op_index

            def constant(
                tensor_index: int, subgraph: Any = subgraph, n_tensors: int = n_tensors
            ) -> bool:
                if tensor_index < 0 or tensor_index >= n_tensors:
                    return False
                buffer_index = subgraph.Tensors(tensor_index).Buffer()
                if buffer_index <= 0 or buffer_index >= n_buffers:
                    return False
                buffer = model.Buffers(buffer_index)
                return buffer.DataLength() > 0 or buffer.Offset() > 1

            for op_index, (op_type, inputs) in enumerate(ops):
                slots = WEIGHT_SLOTS.get(op_type)
                if not slots:
                    continue
                layer_used = False
                for position, role in slots.items():
                    if position >= len(inputs) or inputs[position] < 0:
                        continue
                    source, via = inputs[position], False
                    if not constant(source) and source in producer:
                        prod_type, prod_inputs = ops[producer[source]]
                        if prod_type == "DEQUANTIZE" and prod_inputs and constant(prod_inputs[0]):
                            source, via = prod_inputs[0], True
                    if not constant(source):
                        continue
                    if op_type in {"MUL", "ADD", "SUB"} and not _is_numeric(subgraph, source):
                        continue
                    if not layer_used:
                        layer += 1
                        layer_used = True
                    key = (sg_index, source)
                    activation = next(
                        (i for i in inputs if i >= 0 and i != inputs[position] and not constant(i)),
                        None,
                    )
                    if key in seen:
                        entry = seen[key]
                        entry["consumers"].append(op_type)
                        entry["ops"].append((sg_index, op_index))
                        continue
                    entry = {
                        "subgraph": sg_index,
                        "index": source,
                        "role": role,
                        "consumers": [op_type],
                        "ops": [(sg_index, op_index)],
                        "layer": layer,
                        "via": via,
                        "activation": None if activation is None else (sg_index, activation),
                    }
                    seen[key] = entry
                    found.append(entry)
        return self._describe(model, found, total)

    def _describe(
        self, model: Any, found: list[dict[str, Any]], total: int
    ) -> tuple[tuple[WeightTensor, ...], dict[str, _Layout]]:
        raw_names = []
        for entry in found:
            tensor = model.Subgraphs(entry["subgraph"]).Tensors(entry["index"])
            name = tensor.Name()
            text = name.decode("utf-8", errors="replace") if name else ""
            raw_names.append(text or f"tensor_{entry['index']}")
        counts: dict[str, int] = {}
        for text in raw_names:
            counts[text] = counts.get(text, 0) + 1
        tensors = []
        layouts: dict[str, _Layout] = {}
        for entry, text in zip(found, raw_names, strict=True):
            tensor = model.Subgraphs(entry["subgraph"]).Tensors(entry["index"])
            where = (
                entry["index"]
                if entry["subgraph"] == 0
                else f"{entry['subgraph']}.{entry['index']}"
            )
            name = text if counts[text] == 1 else f"{text}@{where}"
            type_name, storage = _TYPES.get(tensor.Type(), (f"type_{tensor.Type()}", None))
            shape_array = tensor.ShapeAsNumpy()
            shape = (
                tuple(int(d) for d in shape_array) if isinstance(shape_array, np.ndarray) else ()
            )
            buffer = model.Buffers(tensor.Buffer())
            span = _vector(buffer._tab, 4)
            if span is not None and span[1] > 0:
                data_start, data_bytes = span
            else:
                data_start, data_bytes = int(buffer.Offset()), int(buffer.Size())
            _check_span(data_start, data_bytes, total, f"the data of tensor {name!r}")
            if storage is not None:
                expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(storage).itemsize
                if expected != data_bytes:
                    raise InputError(
                        f"corrupt TFLite model: tensor {name!r} has shape {shape} "
                        f"but {data_bytes} bytes of data"
                    )
            scales: tuple[float, ...] = ()
            zero_points: tuple[int, ...] = ()
            scale_span = zero_span = None
            dimension = 0
            quant = tensor.Quantization()
            if quant is not None:
                scale_span = _vector(quant._tab, 8)
                zero_span = _vector(quant._tab, 10)
                if scale_span is not None:
                    _check_span(scale_span[0], 4 * scale_span[1], total, f"scales of {name!r}")
                    scales = tuple(float(s) for s in _floats(quant.ScaleAsNumpy()))
                if zero_span is not None:
                    _check_span(zero_span[0], 8 * zero_span[1], total, f"zero points of {name!r}")
                    zero_points = tuple(int(z) for z in _ints(quant.ZeroPointAsNumpy()))
                dimension = int(quant.QuantizedDimension())
            if not scales:
                scale_span = zero_span = None
                zero_points = ()
            per_channel = len(scales) > 1
            if per_channel and (dimension >= len(shape) or shape[dimension] != len(scales)):
                raise InputError(
                    f"corrupt TFLite model: tensor {name!r} has {len(scales)} scales "
                    f"but shape {shape} along dimension {dimension}"
                )
            if zero_points and len(zero_points) not in (1, len(scales)):
                raise InputError(f"corrupt TFLite model: tensor {name!r} zero points mismatch")
            weight = WeightTensor(
                index=entry["index"],
                name=name,
                consumers=tuple(entry["consumers"]),
                role=entry["role"],
                dtype=type_name,
                shape=shape,
                scales=scales,
                zero_points=zero_points,
                quantized_dimension=dimension,
                per_channel=per_channel,
                layer=entry["layer"],
                subgraph=entry["subgraph"],
                via_dequantize=entry["via"],
            )
            tensors.append(weight)
            layouts[name] = _Layout(
                data_start=data_start,
                data_bytes=data_bytes,
                storage=storage,
                scale_span=scale_span,
                zero_point_span=zero_span,
                q_range=_q_range(self.data, weight, storage, data_start, data_bytes),
                ops=tuple(entry["ops"]),
                activation=entry["activation"],
            )
        self._model = model
        return tuple(tensors), layouts

    # queries -------------------------------------------------------------------------------
    def tensor(self, name: str) -> WeightTensor:
        """The weight tensor called ``name``; ConfigError naming a few valid names otherwise."""
        index = self._by_name.get(name)
        if index is None:
            known = ", ".join(repr(t.name) for t in self.tensors[:4])
            raise ConfigError(f"no weight tensor named {name!r} (known: {known}, ...)")
        return self.tensors[index]

    def layout(self, name: str) -> _Layout:
        """Where ``name``'s storage and quantization vectors sit in the file (internal use)."""
        self.tensor(name)
        return self._layouts[name]

    def raw(self, name: str) -> np.ndarray:
        """A writable copy of the tensor's stored values (storage dtype, native byte order)."""
        return _raw(self.data, self.tensor(name), self._layouts[name])

    def read(self, name: str) -> np.ndarray:
        """The tensor's values as floats: dequantized per channel along the quantized dimension.

        float32 for float16/float32/int8/int16 storage (exact for all of them),
        float64 for int32/int64 storage (biases), where float32 would lose
        integer precision. See :func:`work_dtype`.
        """
        tensor = self.tensor(name)
        stored = self.stored(name)
        return dequantize(stored, tensor.scales, tensor.zero_points, tensor.quantized_dimension)

    def stored(self, name: str) -> np.ndarray:
        """A read-only view of the tensor's stored values (no copy; little-endian dtype)."""
        return _view(self.data, self.tensor(name), self._layouts[name])

    def encode(self, name: str, values: np.ndarray) -> np.ndarray:
        """Float ``values`` -> the tensor's storage values, with its original quantization.

        Integer storage is rounded to nearest and clipped (int8/int16 weights
        with zero-point 0 to the symmetric range, e.g. [-127, 127]; int32/int64
        biases to the full range); fp16 is cast with clipping to the finite
        range; float32 is cast. Returns a little-endian array ready to store.
        """
        tensor = self.tensor(name)
        layout = self._layouts[name]
        values = np.asarray(values)
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        if values.shape != tensor.shape and values.size == tensor.size:
            values = values.reshape(tensor.shape)
        if values.shape != tensor.shape:
            raise ConfigError(
                f"tensor {name!r} has shape {tensor.shape}, got values {values.shape}"
            )
        storage = np.dtype(_storage(tensor, layout))
        if storage.kind == "f":
            if storage.itemsize == 2:
                limit = float(np.finfo(np.float16).max)
                values = np.clip(values, -limit, limit)
            return values.astype(storage)
        assert layout.q_range is not None
        stored = quantize(
            values,
            storage,
            tensor.scales,
            tensor.zero_points,
            tensor.quantized_dimension,
            layout.q_range,
        )
        return stored.astype(storage, copy=False)

    def activation_scale(self, name: str) -> float | None:
        """Scale of the activation entering the first op that consumes ``name`` (None if float)."""
        where = self.layout(name).activation
        if where is None:
            return None
        tensor = self._model.Subgraphs(where[0]).Tensors(where[1])
        quant = tensor.Quantization()
        if quant is None or quant.ScaleLength() == 0:
            return None
        return float(quant.Scale(0))

    def linked_biases(self, name: str) -> tuple[str, ...]:
        """Integer bias tensors whose scale is tied to weight ``name`` (input x weight scale)."""
        ops = set(self.layout(name).ops)
        return tuple(
            t.name
            for t in self.tensors
            if t.role == "bias"
            and t.quantized
            and t.dtype in {"int32", "int64"}
            and ops.intersection(self._layouts[t.name].ops)
        )

    def linked_weight(self, name: str) -> str | None:
        """The weight tensor feeding the same op as bias ``name`` (None if there is none)."""
        ops = set(self.layout(name).ops)
        for t in self.tensors:
            if t.role == "weight" and ops.intersection(self._layouts[t.name].ops):
                return t.name
        return None

    def edit(self) -> ModelEditor:
        """A mutable copy of this model's bytes to patch tensors in."""
        return ModelEditor(self)


class ModelEditor:
    """A copy of a model's bytes in which weight tensors are patched in place.

    Every write keeps the tensor's length, so the flatbuffer structure stays
    valid and untouched bytes stay identical to the original. ``write``
    re-quantizes with the tensor's *original* scale and zero point;
    ``write_raw`` stores storage values as given (bit-level faults);
    ``write_quantization`` replaces the scale (and zero-point) vector.
    """

    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        self._data = bytearray(model.data)
        self.edited: list[str] = []

    def _mark(self, name: str) -> None:
        if name not in self.edited:
            self.edited.append(name)

    def raw(self, name: str) -> np.ndarray:
        """A copy of the tensor's current stored values (after edits so far)."""
        return _raw(self._data, self.model.tensor(name), self.model.layout(name))

    def scales(self, name: str) -> np.ndarray:
        """The tensor's current scale vector as float64 (empty for float storage)."""
        span = self.model.layout(name).scale_span
        if span is None:
            return np.zeros(0)
        return np.frombuffer(self._data, "<f4", span[1], span[0]).astype(np.float64)

    def write(self, name: str, values: np.ndarray) -> None:
        """Store float ``values`` into tensor ``name``, re-quantized with its original parameters.

        See :meth:`TFLiteModel.encode` for the rounding and clipping rules.
        """
        layout = self.model.layout(name)
        stored = self.model.encode(name, values)
        self._patch(layout.data_start, layout.data_bytes, stored.tobytes())
        self._mark(name)

    def write_raw(self, name: str, stored: np.ndarray) -> None:
        """Store raw values (the tensor's storage dtype and element count) into tensor ``name``."""
        tensor = self.model.tensor(name)
        layout = self.model.layout(name)
        storage = np.dtype(_storage(tensor, layout))
        stored = np.asarray(stored)
        if stored.size != tensor.size or stored.dtype.newbyteorder("<") != storage.newbyteorder(
            "<"
        ):
            raise ConfigError(
                f"tensor {name!r} stores {tensor.size} {tensor.dtype} values, "
                f"got {stored.size} {stored.dtype}"
            )
        self._patch(layout.data_start, layout.data_bytes, stored.astype(storage).tobytes())
        self._mark(name)

    def write_quantization(
        self, name: str, scales: np.ndarray, zero_points: np.ndarray | None = None
    ) -> None:
        """Replace the scale vector (and optionally the zero points) of quantized tensor ``name``.

        The vectors keep their length; scales must be positive and finite.
        The stored integers are not touched.
        """
        tensor = self.model.tensor(name)
        layout = self.model.layout(name)
        if layout.scale_span is None:
            raise ConfigError(f"tensor {name!r} ({tensor.dtype}) has no quantization scales")
        start, count = layout.scale_span
        scales = np.asarray(scales, dtype=np.float64).reshape(-1)
        if scales.size != count:
            raise ConfigError(f"tensor {name!r} has {count} scales, got {scales.size}")
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise ConfigError(f"scales of tensor {name!r} must be positive and finite")
        self._patch(start, 4 * count, scales.astype("<f4").tobytes())
        if zero_points is not None:
            if layout.zero_point_span is None:
                raise ConfigError(f"tensor {name!r} has no zero-point vector")
            z_start, z_count = layout.zero_point_span
            zero_points = np.asarray(zero_points, dtype=np.int64).reshape(-1)
            if zero_points.size != z_count:
                raise ConfigError(
                    f"tensor {name!r} has {z_count} zero points, got {zero_points.size}"
                )
            self._patch(z_start, 8 * z_count, zero_points.astype("<i8").tobytes())
        self._mark(name)

    def _patch(self, start: int, nbytes: int, payload: bytes) -> None:
        if len(payload) != nbytes:
            raise AssertionError(f"patch of {len(payload)} bytes into a {nbytes}-byte slot")
        self._data[start : start + nbytes] = payload

    def to_bytes(self) -> bytes:
        """The edited model as new bytes (the original bytes are untouched)."""
        return bytes(self._data)


# pure helpers ------------------------------------------------------------------------------
def _ints(array: Any) -> np.ndarray:
    return array if isinstance(array, np.ndarray) else np.zeros(0, dtype=np.int64)


def _floats(array: Any) -> np.ndarray:
    return array if isinstance(array, np.ndarray) else np.zeros(0, dtype=np.float32)


def _is_numeric(subgraph: Any, tensor_index: int) -> bool:
    return _TYPES.get(subgraph.Tensors(tensor_index).Type(), ("", None))[1] is not None


def _storage(tensor: WeightTensor, layout: _Layout) -> str:
    if layout.storage is None:
        raise ConfigError(f"tensor {tensor.name!r}: storage type {tensor.dtype} is not supported")
    return layout.storage


def _view(data: bytes | bytearray, tensor: WeightTensor, layout: _Layout) -> np.ndarray:
    """The stored values as an array over ``data`` itself (read-only for bytes)."""
    storage = np.dtype(_storage(tensor, layout))
    return np.frombuffer(data, storage, tensor.size, layout.data_start).reshape(tensor.shape)


def _raw(data: bytes | bytearray, tensor: WeightTensor, layout: _Layout) -> np.ndarray:
    view = _view(data, tensor, layout)
    return view.astype(view.dtype.newbyteorder("="))


def _q_range(
    data: bytes, tensor: WeightTensor, storage: str | None, start: int, nbytes: int
) -> tuple[float, float] | None:
    """Clip range for re-quantizing a tensor: symmetric for zero-point-0 int8/int16 weights."""
    if storage is None or np.dtype(storage).kind not in "iu":
        return None
    info = np.iinfo(np.dtype(storage))
    low, high = float(info.min), float(info.max)
    if np.dtype(storage).itemsize == 8:
        high = float(np.nextafter(2.0**63, 0))  # the largest float64 below 2**63
    symmetric = (
        np.dtype(storage).kind == "i"
        and np.dtype(storage).itemsize <= 2
        and not any(tensor.zero_points)
        and bool(tensor.scales)
    )
    if symmetric:
        stored = np.frombuffer(data, storage, nbytes // np.dtype(storage).itemsize, start)
        if stored.size == 0 or int(stored.min()) > info.min:
            low = -high
    return low, high


def _channel_shape(ndim: int, axis: int, count: int) -> tuple[int, ...]:
    shape = [1] * ndim
    shape[axis] = count
    return tuple(shape)


def work_dtype(storage: np.dtype | str) -> np.dtype:
    """The float type values of a storage type are handled in: float64 for 32/64-bit storage
    integers and float64, float32 otherwise (exact for int8, int16, float16 and float32)."""
    storage = np.dtype(storage)
    if storage.itemsize >= 8 or (storage.kind in "iu" and storage.itemsize >= 4):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _broadcast(
    scales: tuple[float, ...] | np.ndarray,
    zero_points: tuple[int, ...] | np.ndarray,
    ndim: int,
    axis: int,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale and zero point arrays shaped to broadcast along ``axis`` (zero None if all 0)."""
    scale = np.asarray(scales, dtype=dtype).reshape(-1)
    zero = np.asarray(zero_points, dtype=dtype).reshape(-1)
    if scale.size == 0:
        scale = np.ones(1, dtype=dtype)
    if scale.size > 1:
        scale = scale.reshape(_channel_shape(ndim, axis, scale.size))
        if zero.size > 1:
            zero = zero.reshape(scale.shape)
    return scale, (zero if zero.size and np.any(zero) else None)


def dequantize(
    stored: np.ndarray,
    scales: tuple[float, ...] | np.ndarray,
    zero_points: tuple[int, ...] | np.ndarray,
    axis: int = 0,
) -> np.ndarray:
    """Stored values -> floats: ``(q - zero_point) * scale``, per channel along ``axis``.

    Computed in :func:`work_dtype` of the storage. With no scales (float
    storage, or an unquantized integer constant) the values are only widened.
    """
    stored = np.asarray(stored)
    dtype = work_dtype(stored.dtype)
    values = stored.astype(dtype)
    if len(scales) == 0:
        return values
    scale, zero = _broadcast(scales, zero_points, values.ndim, axis, dtype)
    if zero is not None:
        values -= zero
    values *= scale
    return values


def quantize(
    values: np.ndarray,
    storage: str | np.dtype,
    scales: tuple[float, ...] | np.ndarray,
    zero_points: tuple[int, ...] | np.ndarray,
    axis: int,
    q_range: tuple[float, float],
) -> np.ndarray:
    """Float values -> integers of dtype ``storage``: round to nearest, clip to ``q_range``.

    ``q = clip(rint(value / scale + zero_point))`` with one scale per slice
    along ``axis`` when several are given, computed in the storage's
    :func:`work_dtype`, so re-quantizing dequantized values returns the
    original integers exactly. NaN becomes the zero point.
    """
    dtype = work_dtype(storage)
    values = np.asarray(values)
    q = values.astype(dtype) if values.dtype != dtype else values.copy()
    scale, zero = _broadcast(scales, zero_points, q.ndim, axis, dtype)
    q /= scale
    if zero is not None:
        q += zero
    np.rint(q, out=q)
    if np.isnan(q).any():
        q = np.nan_to_num(q, nan=0.0 if zero is None else float(np.ravel(zero)[0]))
    np.clip(q, q_range[0], q_range[1], out=q)
    return q.astype(np.dtype(storage).newbyteorder("="))


def weight_tensors(model_bytes: bytes) -> tuple[WeightTensor, ...]:
    """List every weight and bias tensor of a TFLite model, in execution order."""
    return TFLiteModel(model_bytes).tensors


def read_tensor(model_bytes: bytes, name: str) -> np.ndarray:
    """Read one weight tensor of a TFLite model as floats (dequantized; see TFLiteModel.read)."""
    return TFLiteModel(model_bytes).read(name)


def replace_tensors(model_bytes: bytes, values: dict[str, np.ndarray]) -> bytes:
    """Return new model bytes with the named tensors set to float ``values`` (re-quantized)."""
    editor = TFLiteModel(model_bytes).edit()
    for name, array in values.items():
        editor.write(name, array)
    return editor.to_bytes()


def inspect_table(model_bytes: bytes) -> Any:
    """A pandas DataFrame describing every weight tensor of a TFLite model, one row each.

    Columns: layer, name, op, role, dtype, shape, size, per_channel,
    quantized_dimension, scale_min, scale_max, zero_point (the distinct
    zero points, comma-separated) and via_dequantize.
    """
    import pandas as pd

    rows = []
    for t in TFLiteModel(model_bytes).tensors:
        rows.append(
            {
                "layer": t.layer,
                "name": t.name,
                "op": "+".join(dict.fromkeys(t.consumers)),
                "role": t.role,
                "dtype": t.dtype,
                "shape": "x".join(str(d) for d in t.shape) or "scalar",
                "size": t.size,
                "per_channel": t.per_channel,
                "quantized_dimension": t.quantized_dimension if t.scales else None,
                "scale_min": min(t.scales) if t.scales else None,
                "scale_max": max(t.scales) if t.scales else None,
                "zero_point": ",".join(str(z) for z in sorted(set(t.zero_points))) or None,
                "via_dequantize": t.via_dequantize,
            }
        )
    columns = [
        "layer",
        "name",
        "op",
        "role",
        "dtype",
        "shape",
        "size",
        "per_channel",
        "quantized_dimension",
        "scale_min",
        "scale_max",
        "zero_point",
        "via_dequantize",
    ]
    return pd.DataFrame(rows, columns=columns)
