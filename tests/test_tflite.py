"""Tests of robustq.tflite: listing, reading and writing weight tensors in the flatbuffer."""

from __future__ import annotations

import numpy as np
import pytest

from robustq.convert import SCHEMES  # noqa: E402
from robustq.errors import ConfigError, InputError
from robustq.tflite import (
    TFLiteModel,
    dequantize,
    inspect_table,
    quantize,
    read_tensor,
    replace_tensors,
    weight_tensors,
)


@pytest.fixture(scope="module")
def depthwise_variants(depthwise_keras):
    """The depthwise model, calibration samples, and its float32 and int8 variants."""
    from robustq.convert import to_tflite

    model = depthwise_keras
    x = np.random.default_rng(1).random((32, 8, 8, 3), dtype=np.float32)
    return model, x, {s: to_tflite(model, s, x) for s in ("float32", "int8")}


# listing ------------------------------------------------------------------------------------
EXPECTED_STORAGE = {
    "float32": ({"float32"}, {"float32"}),
    "float16": ({"float16"}, {"float16"}),
    "dynamic_int8": ({"int8", "float32"}, {"float32"}),
    "int8": ({"int8"}, {"int32"}),
    "int8_per_tensor": ({"int8"}, {"int32"}),
    "int16x8": ({"int8"}, {"int64"}),
    "qat_int8": ({"int8"}, {"int32"}),
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_lists_every_weight_and_bias(tiny_variants, scheme):
    tensors = weight_tensors(tiny_variants[scheme])
    assert len(tensors) == 14  # 4 conv + 3 dense layers, kernel and bias each
    assert [t.role for t in tensors] == ["weight", "bias"] * 7
    assert [t.layer for t in tensors] == [i // 2 for i in range(14)]
    assert [t.consumers for t in tensors] == [("CONV_2D",)] * 8 + [("FULLY_CONNECTED",)] * 6
    assert all(isinstance(t.name, str) and t.name for t in tensors)
    assert len({t.name for t in tensors}) == 14
    weight_types, bias_types = EXPECTED_STORAGE[scheme]
    assert {t.dtype for t in tensors if t.role == "weight"} == weight_types
    assert {t.dtype for t in tensors if t.role == "bias"} == bias_types
    assert all(t.via_dequantize == (scheme == "float16") for t in tensors)
    for t in tensors:
        if t.quantized:
            assert t.scales and all(s > 0 for s in t.scales)
            assert t.per_channel == (len(t.scales) > 1)
        else:
            assert not t.scales and not t.per_channel
    if scheme == "int8":
        assert all(t.per_channel and t.quantized_dimension == 0 for t in tensors)
    if scheme == "int8_per_tensor":
        assert not any(t.per_channel for t in tensors)


def test_shapes_are_tflite_layout(tiny_variants, tiny_model):
    tensors = weight_tensors(tiny_variants["float32"])
    keras_shapes = [w.shape for w in tiny_model.get_weights()]
    assert tensors[0].shape == (keras_shapes[0][3], *keras_shapes[0][:3])  # OHWI
    assert tensors[8].shape == keras_shapes[8][::-1]  # dense (out, in)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rewriting_unchanged_values_gives_identical_bytes(tiny_variants, scheme):
    original = tiny_variants[scheme]
    model = TFLiteModel(original)
    editor = model.edit()
    for t in model.tensors:
        editor.write(t.name, model.read(t.name))
    assert editor.to_bytes() == original
    assert editor.edited == [t.name for t in model.tensors]


@pytest.mark.parametrize("scheme", ["int8", "int8_per_tensor", "int16x8", "dynamic_int8"])
def test_dequantized_weights_match_the_float_model(tiny_variants, scheme):
    """int8 weights dequantized along the right axis are within half a step of the float ones."""
    reference = TFLiteModel(tiny_variants["float32"])
    quantized = TFLiteModel(tiny_variants[scheme])
    for f, q in zip(reference.tensors, quantized.tensors, strict=True):
        if q.dtype != "int8":
            continue
        scale = np.asarray(q.scales).reshape([-1] + [1] * (len(q.shape) - 1))
        error = np.abs(reference.read(f.name) - quantized.read(q.name))
        assert np.all(error <= scale / 2 * (1 + 1e-5) + 1e-12), q.name


def test_int_bias_dequantizes_close_to_float(tiny_variants):
    reference = TFLiteModel(tiny_variants["float32"])
    quantized = TFLiteModel(tiny_variants["int8"])
    for f, q in zip(reference.tensors, quantized.tensors, strict=True):
        if q.role == "bias":
            step = np.asarray(q.scales)
            assert np.all(np.abs(reference.read(f.name) - quantized.read(q.name)) <= step)


def test_read_dtypes_keep_integers_exact(tiny_variants):
    model = TFLiteModel(tiny_variants["int16x8"])
    assert model.read(model.tensors[0].name).dtype == np.float32  # int8 weight
    assert model.read(model.tensors[1].name).dtype == np.float64  # int64 bias
    model = TFLiteModel(tiny_variants["int8"])
    assert model.read(model.tensors[1].name).dtype == np.float64  # int32 bias


def test_float16_reads_as_float(tiny_variants):
    half = TFLiteModel(tiny_variants["float16"])
    full = TFLiteModel(tiny_variants["float32"])
    for h, f in zip(half.tensors, full.tensors, strict=True):
        values = half.read(h.name)
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, full.read(f.name).astype(np.float16))


# writing ------------------------------------------------------------------------------------
def test_write_requantizes_with_original_scale_and_clips(tiny_variants):
    model = TFLiteModel(tiny_variants["int8"])
    weight = model.tensors[8]  # dense kernel, per-channel along axis 0
    values = model.read(weight.name)
    scale = np.asarray(weight.scales)[:, None]
    shifted = values + 0.4 * scale  # less than half a step: rounds back
    editor = model.edit()
    editor.write(weight.name, shifted)
    np.testing.assert_array_equal(editor.raw(weight.name), model.raw(weight.name))
    editor.write(weight.name, values + 1.0 * scale)  # one step up, clipped at 127
    expected = np.clip(model.raw(weight.name).astype(int) + 1, -127, 127)
    np.testing.assert_array_equal(editor.raw(weight.name), expected)
    editor.write(weight.name, np.full(weight.shape, -1e3))
    assert editor.raw(weight.name).min() == -127  # symmetric range, never -128
    assert np.array_equal(editor.scales(weight.name), np.asarray(weight.scales, dtype=np.float32))


def test_write_bias_uses_int32_range(tiny_variants):
    model = TFLiteModel(tiny_variants["int8"])
    bias = model.tensors[1]
    editor = model.edit()
    editor.write(bias.name, np.full(bias.shape, 1e9))
    assert np.all(editor.raw(bias.name) == np.iinfo(np.int32).max)


def test_write_float_storage(tiny_variants):
    for scheme, dtype in (("float32", np.float32), ("float16", np.float16)):
        model = TFLiteModel(tiny_variants[scheme])
        t = model.tensors[0]
        values = np.random.default_rng(0).normal(size=t.shape)
        data = replace_tensors(tiny_variants[scheme], {t.name: values})
        np.testing.assert_array_equal(read_tensor(data, t.name), values.astype(dtype))
        editor = model.edit()
        editor.write(t.name, np.full(t.shape, 1e6))
        assert np.all(np.isfinite(editor.raw(t.name)))  # fp16 clipped, not inf


def test_untouched_tensors_and_bytes_stay_identical(tiny_variants):
    original = tiny_variants["int8"]
    model = TFLiteModel(original)
    target = model.tensors[4]
    editor = model.edit()
    editor.write(target.name, model.read(target.name) * 1.5)
    data = editor.to_bytes()
    changed = TFLiteModel(data)
    for t in model.tensors:
        same = np.array_equal(changed.raw(t.name), model.raw(t.name))
        assert same == (t.name != target.name)
    layout = model.layout(target.name)
    outside = np.ones(len(original), dtype=bool)
    outside[layout.data_start : layout.data_start + layout.data_bytes] = False
    diff = np.frombuffer(original, np.uint8) != np.frombuffer(data, np.uint8)
    assert not diff[outside].any()


def test_input_bytes_never_modified(tiny_variants):
    original = bytearray(tiny_variants["int8"])
    snapshot = bytes(original)
    model = TFLiteModel(original)
    editor = model.edit()
    for t in model.tensors:
        editor.write(t.name, model.read(t.name) + 1.0)
        editor.write_raw(t.name, np.zeros(t.shape, dtype=editor.raw(t.name).dtype))
    editor.write_quantization(model.tensors[0].name, np.ones(len(model.tensors[0].scales)))
    editor.to_bytes()
    assert bytes(original) == snapshot


def test_write_quantization_patches_scales_only(tiny_variants):
    model = TFLiteModel(tiny_variants["int8"])
    t = model.tensors[2]
    editor = model.edit()
    new = np.asarray(t.scales) * 2
    editor.write_quantization(t.name, new)
    edited = TFLiteModel(editor.to_bytes())
    np.testing.assert_allclose(edited.tensor(t.name).scales, new, rtol=1e-7)
    np.testing.assert_array_equal(edited.raw(t.name), model.raw(t.name))
    np.testing.assert_allclose(edited.read(t.name), 2 * model.read(t.name), rtol=1e-6)


def test_editor_argument_errors(tiny_variants):
    model = TFLiteModel(tiny_variants["int8"])
    t = model.tensors[0]
    editor = model.edit()
    with pytest.raises(ConfigError, match="no weight tensor"):
        editor.write("nope", np.zeros(3))
    with pytest.raises(ConfigError, match="shape"):
        editor.write(t.name, np.zeros(t.size + 1))
    with pytest.raises(ConfigError, match="stores"):
        editor.write_raw(t.name, np.zeros(t.shape, dtype=np.int16))
    with pytest.raises(ConfigError, match="scales"):
        editor.write_quantization(t.name, np.ones(len(t.scales) + 1))
    with pytest.raises(ConfigError, match="positive"):
        editor.write_quantization(t.name, np.zeros(len(t.scales)))
    float_model = TFLiteModel(tiny_variants["float32"])
    with pytest.raises(ConfigError, match="no quantization"):
        float_model.edit().write_quantization(float_model.tensors[0].name, np.ones(1))


# depthwise ---------------------------------------------------------------------------------
def test_depthwise_per_channel_axis_is_3(depthwise_variants):
    _, _, variants = depthwise_variants
    tensors = {t.consumers[0] + "/" + t.role: t for t in weight_tensors(variants["int8"])}
    depthwise = tensors["DEPTHWISE_CONV_2D/weight"]
    assert depthwise.shape == (1, 3, 3, 8)
    assert depthwise.per_channel and depthwise.quantized_dimension == 3
    assert len(depthwise.scales) == 8
    assert tensors["CONV_2D/weight"].quantized_dimension == 0
    assert tensors["DEPTHWISE_CONV_2D/bias"].dtype == "int32"


def test_depthwise_round_trip_and_dequantization(depthwise_variants):
    _, _, variants = depthwise_variants
    model = TFLiteModel(variants["int8"])
    editor = model.edit()
    for t in model.tensors:
        editor.write(t.name, model.read(t.name))
    assert editor.to_bytes() == variants["int8"]
    reference = TFLiteModel(variants["float32"])
    for f, q in zip(reference.tensors, model.tensors, strict=True):
        if q.role == "weight" and q.dtype == "int8":
            shape = [1] * len(q.shape)
            shape[q.quantized_dimension] = len(q.scales)
            step = np.asarray(q.scales).reshape(shape)
            assert np.all(np.abs(reference.read(f.name) - model.read(q.name)) <= step / 2 + 1e-9)


def test_depthwise_keras_layout(depthwise_variants):
    keras_model, _, variants = depthwise_variants
    kernel = keras_model.layers[1].depthwise_kernel.numpy()  # (3, 3, 4, 2)
    tensors = weight_tensors(variants["float32"])
    depthwise = next(t for t in tensors if t.consumers == ("DEPTHWISE_CONV_2D",))
    stored = read_tensor(variants["float32"], depthwise.name)
    np.testing.assert_array_equal(stored, kernel.reshape(1, 3, 3, 8))


# pure helpers, inspect, bad input -------------------------------------------------------------
def test_quantize_dequantize_per_channel_axis():
    rng = np.random.default_rng(0)
    scales = np.array([0.5, 0.25, 0.125])
    q = rng.integers(-127, 128, size=(2, 4, 3)).astype(np.int8)
    values = dequantize(q, scales, (0, 0, 0), axis=2)
    np.testing.assert_array_equal(values[..., 1], q[..., 1] * 0.25)
    back = quantize(values, "int8", scales, (0, 0, 0), 2, (-127, 127))
    np.testing.assert_array_equal(back, q)
    asym = quantize(np.array([0.0, 1.0]), "int8", (1 / 255,), (-128,), 0, (-128, 127))
    np.testing.assert_array_equal(asym, [-128, 127])


@pytest.mark.parametrize("scheme", ["int8", "float16"])
def test_inspect_table(tiny_variants, scheme):
    table = inspect_table(tiny_variants[scheme])
    assert len(table) == 14
    assert {"name", "op", "role", "dtype", "shape", "per_channel", "scale_min", "scale_max"} <= set(
        table.columns
    )
    assert table["op"].iloc[0] == "CONV_2D"
    if scheme == "int8":
        assert table["per_channel"].all()
        assert (table["scale_min"] <= table["scale_max"]).all()


def test_not_a_tflite_file():
    with pytest.raises(InputError, match="not a TFLite"):
        TFLiteModel(b"")
    with pytest.raises(InputError, match="not a TFLite"):
        TFLiteModel(b"PK\x03\x04 this is a zip file, not a model")
    with pytest.raises(InputError, match="bytes"):
        TFLiteModel("model.tflite")  # type: ignore[arg-type]


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tiny_variants, keep):
    data = tiny_variants["int8"]
    with pytest.raises(InputError, match="truncated or corrupt"):
        TFLiteModel(data[: int(len(data) * keep)])


def test_corrupted_header(tiny_variants):
    data = bytearray(tiny_variants["int8"])
    data[0:4] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(InputError, match="truncated or corrupt"):
        TFLiteModel(bytes(data))
