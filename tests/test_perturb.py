"""Tests of robustq.perturb: targets, the quantized path, reproducibility and the float path."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from robustq.convert import SCHEMES  # noqa: E402
from robustq.errors import ConfigError, InputError
from robustq.faults import FaultSpec
from robustq.perturb import (
    Targets,
    keras_weights,
    members,
    per_layer,
    perturb,
    perturb_float_path,
    perturb_keras,
    requantize_from_float,
)
from robustq.runtime import predict
from robustq.tflite import TFLiteModel

ALL_FAULTS = [
    FaultSpec("gaussian", {"std_factor": 0.1}),
    FaultSpec("gaussian", {"std": 0.01}),
    FaultSpec("uniform", {"half_width_factor": 0.1}),
    FaultSpec("multiplicative", {"std": 0.1}),
    FaultSpec("bitflip", {"ber": 1e-3}),
    FaultSpec("bitflip", {"ber": 1e-2, "bits": "sign"}),
    FaultSpec("stuck_at", {"fraction": 1e-3, "value": 1}),
    FaultSpec("stuck_at", {"fraction": 1e-3, "value": 0}),
    FaultSpec("scale", {"std": 0.05}),
]

ZERO_FAULTS = [
    FaultSpec("gaussian", {"std": 0.0}),
    FaultSpec("gaussian", {"std_factor": 0.0}),
    FaultSpec("uniform", {"half_width": 0.0}),
    FaultSpec("multiplicative", {"std": 0.0}),
    FaultSpec("bitflip", {"ber": 0.0}),
    FaultSpec("stuck_at", {"fraction": 0.0}),
]


@pytest.fixture(scope="module")
def x_eval(tiny_splits):
    """A few hundred test samples of the tiny scene."""
    return tiny_splits.x_test[:512]


@pytest.fixture(scope="module")
def calibration(tiny_splits):
    """The calibration samples the shared tiny variants were converted with."""
    from robustq.convert import calibration_sample

    return calibration_sample(tiny_splits.x_train, 64, 0)


@pytest.fixture(scope="module")
def depthwise(depthwise_keras):
    """The depthwise model, sample inputs, and its float32 and int8 variants."""
    from robustq.convert import to_tflite

    model = depthwise_keras
    x = np.random.default_rng(1).random((64, 8, 8, 3), dtype=np.float32)
    return model, x, {s: to_tflite(model, s, x[:32]) for s in ("float32", "int8")}


def tensor_changed(before: bytes, after: bytes) -> dict[str, bool]:
    a, b = TFLiteModel(before), TFLiteModel(after)
    return {t.name: not np.array_equal(a.raw(t.name), b.raw(t.name)) for t in a.tensors}


# every scheme, every fault -------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_fault_on_every_scheme(tiny_variants, x_eval, scheme):
    clean = tiny_variants[scheme]
    quantized = any(t.quantized for t in TFLiteModel(clean).tensors)
    for spec in ALL_FAULTS:
        if spec.name == "scale" and not quantized:
            with pytest.raises(ConfigError, match="scale fault needs quantized"):
                perturb(clean, spec, seed=1)
            continue
        result = perturb(clean, spec, seed=1)
        assert result.model_bytes != clean, spec
        assert len(result.model_bytes) == len(clean)
        assert result.record["fault"] == spec.to_dict()
        assert sum(result.record["changed"].values()) > 0
        probabilities = predict(result.model_bytes, x_eval[:64]).probabilities
        assert probabilities.shape == (64, 9)
        if spec.kind == "value" or spec.name == "scale":
            assert np.all(np.isfinite(probabilities))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_zero_strength_gives_identical_bytes_and_predictions(tiny_variants, x_eval, scheme):
    clean = tiny_variants[scheme]
    expected = predict(clean, x_eval).probabilities
    for spec in ZERO_FAULTS:
        result = perturb(clean, spec, seed=3)
        assert result.model_bytes == clean, spec
        np.testing.assert_array_equal(predict(result.model_bytes, x_eval).probabilities, expected)
    if scheme not in ("float32", "float16"):
        assert perturb(clean, FaultSpec("scale", {"std": 0.0}), seed=3).model_bytes == clean


# statistics on real models -------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["float32", "float16", "int8", "dynamic_int8", "int16x8"])
def test_measured_noise_std_per_tensor(tiny_variants, scheme):
    """On large tensors the measured noise std is within 5% of 0.1 x that tensor's std."""
    clean = TFLiteModel(tiny_variants[scheme])
    noisy = TFLiteModel(
        perturb(clean, FaultSpec("gaussian", {"std_factor": 0.1}), seed=11).model_bytes
    )
    large = [t for t in clean.tensors if t.size >= 10_000]
    assert large
    for t in large:
        values = clean.read(t.name)
        noise = noisy.read(t.name) - values
        assert abs(noise.std() / (0.1 * values.std()) - 1) < 0.05, t.name
        assert abs(noise.mean()) < 0.05 * noise.std()


def test_absolute_std_on_float32(tiny_variants):
    clean = TFLiteModel(tiny_variants["float32"])
    noisy = TFLiteModel(perturb(clean, FaultSpec("gaussian", {"std": 0.003}), seed=2).model_bytes)
    for t in clean.tensors:
        if t.size >= 10_000:
            noise = noisy.read(t.name) - clean.read(t.name)
            assert abs(noise.std() / 0.003 - 1) < 0.05


@pytest.mark.parametrize("scheme", ["int8", "float16", "float32", "int16x8"])
def test_bitflip_counts_per_tensor_are_binomial(tiny_variants, scheme):
    ber = 2e-3
    result = perturb(tiny_variants[scheme], FaultSpec("bitflip", {"ber": ber}), seed=4)
    model = TFLiteModel(tiny_variants[scheme])
    assert result.record["changed_unit"] == "bits"
    total_bits = total_flips = 0
    for t in model.tensors:
        n_bits = 8 * model.raw(t.name).nbytes
        low, high = binom.interval(0.999, n_bits, ber)
        flips = result.record["changed"][t.name]
        assert low <= flips <= high, t.name
        total_bits += n_bits
        total_flips += flips
    low, high = binom.interval(0.999, total_bits, ber)
    assert low <= total_flips <= high


def test_stuck_at_counts_on_int8(tiny_variants):
    model = TFLiteModel(tiny_variants["int8"])
    result = perturb(model, FaultSpec("stuck_at", {"fraction": 0.01, "value": 1}), seed=4)
    noisy = TFLiteModel(result.model_bytes)
    for t in model.tensors:
        before = np.unpackbits(model.raw(t.name).view(np.uint8))
        after = np.unpackbits(noisy.raw(t.name).view(np.uint8))
        assert np.all(after >= before)  # stuck at 1 never clears a bit
        zeros = int((before == 0).sum())
        if zeros > 5000:
            low, high = binom.interval(0.999, zeros, 0.01)
            assert low <= int((after != before).sum()) <= high, t.name


def test_scale_fault_moves_bias_scales_with_weights(tiny_variants, x_eval):
    model = TFLiteModel(tiny_variants["int8"])
    result = perturb(model, FaultSpec("scale", {"std": 0.1}), seed=5)
    noisy = TFLiteModel(result.model_bytes)
    for t in model.tensors:
        np.testing.assert_array_equal(noisy.raw(t.name), model.raw(t.name))  # integers untouched
        if t.role == "weight":
            ratio = np.asarray(noisy.tensor(t.name).scales) / np.asarray(t.scales)
            assert ratio.std() > 0.03
            bias = model.linked_biases(t.name)[0]
            bias_ratio = np.asarray(noisy.tensor(bias).scales) / np.asarray(
                model.tensor(bias).scales
            )
            np.testing.assert_allclose(bias_ratio, ratio, rtol=1e-6)
    assert result.record["skipped"] == [t.name for t in model.tensors if t.role == "bias"]
    assert np.all(np.isfinite(predict(result.model_bytes, x_eval).probabilities))


def test_scale_fault_on_dynamic_int8_skips_float_tensors(tiny_variants):
    model = TFLiteModel(tiny_variants["dynamic_int8"])
    result = perturb(model, FaultSpec("scale"), seed=1)
    quantized = [t.name for t in model.tensors if t.quantized]
    assert list(result.record["changed"]) == quantized
    assert set(result.record["skipped"]) == {t.name for t in model.tensors} - set(quantized)
    with pytest.raises(ConfigError, match="scale fault"):
        perturb(model, FaultSpec("scale"), Targets(role="biases"), seed=1)


def test_bit_group_that_does_not_fit_the_storage(tiny_variants):
    with pytest.raises(ConfigError, match="needs float storage"):
        perturb(tiny_variants["int8"], FaultSpec("bitflip", {"ber": 0.1, "bits": "exponent"}))


# exactness ---------------------------------------------------------------------------------
def test_float32_flatbuffer_path_equals_reconversion(tiny_model, tiny_variants, x_eval):
    """Flatbuffer noise on float32 == converting the Keras model with the same noisy weights."""
    from robustq.convert import to_tflite

    spec = FaultSpec("gaussian", {"std_factor": 0.1})
    edited = perturb(tiny_variants["float32"], spec, seed=21).model_bytes
    keras_noisy = perturb_keras(tiny_model, spec, seed=21)
    reconverted = to_tflite(keras_noisy, "float32")
    a, b = TFLiteModel(edited), TFLiteModel(reconverted)
    for ta, tb in zip(a.tensors, b.tensors, strict=True):
        np.testing.assert_array_equal(a.raw(ta.name), b.raw(tb.name))
    pa = predict(edited, x_eval).probabilities
    pb = predict(reconverted, x_eval).probabilities
    np.testing.assert_allclose(pa, pb, atol=1e-5)
    clean = predict(tiny_variants["float32"], x_eval).probabilities
    assert np.abs(pa - clean).max() > 1e-4  # the noise did something


def test_float32_flatbuffer_matches_keras_set_weights(tiny_model, tiny_variants, x_eval):
    """Independent of perturb_keras: copy the edited tensors back into Keras by hand."""
    from robustq._tf import tf_keras
    from robustq.convert import to_tflite

    edited = perturb(tiny_variants["float32"], FaultSpec("uniform"), seed=8).model_bytes
    model = TFLiteModel(edited)
    keras = tf_keras()
    clone = keras.models.clone_model(tiny_model)
    weights = []
    for t, w in zip(model.tensors, tiny_model.get_weights(), strict=True):
        values = model.read(t.name)
        if w.ndim == 4:
            values = np.transpose(values, (1, 2, 3, 0))  # OHWI -> HWIO
        elif w.ndim == 2:
            values = values.T
        weights.append(values.astype(np.float32))
    clone.set_weights(weights)
    reconverted = to_tflite(clone, "float32")
    np.testing.assert_allclose(
        predict(edited, x_eval).probabilities, predict(reconverted, x_eval).probabilities, atol=1e-5
    )


def test_perturb_keras_leaves_the_model_alone(tiny_model):
    before = [w.copy() for w in tiny_model.get_weights()]
    noisy = perturb_keras(tiny_model, FaultSpec("gaussian"), seed=1)
    for a, b in zip(before, tiny_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before, noisy.get_weights(), strict=True))
    biases_only = perturb_keras(
        tiny_model, FaultSpec("gaussian"), seed=1, targets=Targets(role="biases")
    )
    for w, a, b in zip(keras_weights(biases_only), before, biases_only.get_weights(), strict=True):
        assert np.array_equal(a, b) == (w.role == "weight")
    with pytest.raises(ConfigError, match="scale fault"):
        perturb_keras(tiny_model, FaultSpec("scale"))


def test_requantize_from_float_agrees_with_full_reconversion(
    tiny_model, tiny_variants, calibration, x_eval
):
    """The fast float-path approximation vs. perturb + re-convert with fresh calibration."""
    spec = FaultSpec("gaussian", {"std_factor": 0.1})
    noisy_float = perturb(tiny_variants["float32"], spec, seed=13).model_bytes
    approx = requantize_from_float(noisy_float, tiny_variants["int8"])
    full = perturb_float_path(tiny_model, "int8", spec, calibration, seed=13)
    assert full.record["path"] == "float" and full.record["scheme"] == "int8"
    a, f = TFLiteModel(approx), TFLiteModel(full.model_bytes)
    for ta, tf_ in zip(a.tensors, f.tensors, strict=True):
        if ta.role == "weight":  # weights and their scales are exactly the converter's
            np.testing.assert_array_equal(a.raw(ta.name), f.raw(tf_.name))
            np.testing.assert_array_equal(ta.scales, tf_.scales)
    pa = predict(approx, x_eval).probabilities
    pf = predict(full.model_bytes, x_eval).probabilities
    flip_rate = float(np.mean(pa.argmax(1) != pf.argmax(1)))
    max_diff = float(np.abs(pa - pf).max())
    print(f"fast float path vs full re-conversion: flip {flip_rate:.4f}, max diff {max_diff:.4f}")
    assert flip_rate <= 0.05
    assert max_diff <= 0.5


def test_requantize_from_float_of_clean_model_is_close_to_clean(tiny_variants, x_eval):
    approx = requantize_from_float(tiny_variants["float32"], tiny_variants["int8"])
    a, c = TFLiteModel(approx), TFLiteModel(tiny_variants["int8"])
    for t in c.tensors:
        if t.role == "weight":
            np.testing.assert_array_equal(a.raw(t.name), c.raw(t.name))
    same = predict(approx, x_eval).labels == predict(tiny_variants["int8"], x_eval).labels
    assert same.mean() > 0.99


@pytest.mark.parametrize("scheme", ["int8_per_tensor", "int16x8", "dynamic_int8", "float16"])
def test_requantize_from_float_other_schemes(tiny_variants, x_eval, scheme):
    noisy = perturb(tiny_variants["float32"], FaultSpec("gaussian"), seed=2).model_bytes
    approx = requantize_from_float(noisy, tiny_variants[scheme])
    assert np.all(np.isfinite(predict(approx, x_eval[:64]).probabilities))
    clean = TFLiteModel(tiny_variants[scheme])
    assert [len(t.scales) for t in TFLiteModel(approx).tensors] == [
        len(t.scales) for t in clean.tensors
    ]


def test_requantize_from_float_refuses_mismatches(tiny_variants, depthwise):
    with pytest.raises(InputError, match="float variant"):
        requantize_from_float(tiny_variants["int8"], tiny_variants["int8"])
    with pytest.raises(InputError, match="weight tensors"):
        requantize_from_float(depthwise[2]["float32"], tiny_variants["int8"])


# selection ---------------------------------------------------------------------------------
def test_untargeted_tensors_are_byte_identical(tiny_variants):
    clean = tiny_variants["int8"]
    model = TFLiteModel(clean)
    target = model.tensors[2].name
    pattern = "^" + target.replace(";", ".").replace("(", ".").replace(")", ".") + "$"
    result = perturb(clean, FaultSpec("gaussian"), Targets(names=pattern), seed=1)
    assert result.record["targets"] == [target]
    changed = tensor_changed(clean, result.model_bytes)
    assert changed[target]
    assert not any(v for k, v in changed.items() if k != target)


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (Targets(role="weights"), lambda t: t.role == "weight"),
        (Targets(role="biases"), lambda t: t.role == "bias"),
        (Targets(ops=("FULLY_CONNECTED",)), lambda t: "FULLY_CONNECTED" in t.consumers),
        (Targets(ops=("conv2d",)), lambda t: "CONV_2D" in t.consumers),
        (Targets(layer=3), lambda t: t.layer == 3),
        (
            Targets(ops=("dense",), role="weights", layer=5),
            lambda t: t.layer == 5 and t.role == "weight",
        ),
        (Targets(names="dense_1/"), lambda t: "dense_1/" in t.name),
    ],
)
def test_selection(tiny_variants, targets, expected):
    clean = tiny_variants["int8"]
    model = TFLiteModel(clean)
    result = perturb(clean, FaultSpec("gaussian", {"std_factor": 0.3}), targets, seed=1)
    wanted = [t.name for t in model.tensors if expected(t)]
    assert result.record["targets"] == wanted
    assert result.record["selection"] == targets.to_dict()
    changed = tensor_changed(clean, result.model_bytes)
    assert {k for k, v in changed.items() if v} == set(wanted)


def test_per_layer_targets_cover_the_model(tiny_variants):
    layers = per_layer(tiny_variants["int8"])
    assert [t.layer for t in layers] == list(range(7))
    covered = []
    for targets in layers:
        covered += targets.select(TFLiteModel(tiny_variants["int8"]).tensors)
    assert covered == [t.name for t in TFLiteModel(tiny_variants["int8"]).tensors]


def test_targets_round_trip():
    targets = Targets(names="conv", ops=("dense",), role="weights", layer=2)
    assert targets.ops == ("FULLY_CONNECTED",)
    assert Targets.from_dict(targets.to_dict()) == targets


def test_bad_targets(tiny_variants):
    clean = tiny_variants["int8"]
    with pytest.raises(ConfigError, match="matches no weight tensor"):
        perturb(clean, FaultSpec("gaussian"), Targets(names="no_such_layer"))
    with pytest.raises(ConfigError, match="invalid"):
        Targets(names="conv(")
    with pytest.raises(ConfigError, match="not in the model"):
        perturb(clean, FaultSpec("gaussian"), Targets(ops=("DEPTHWISE_CONV_2D",)))
    with pytest.raises(ConfigError, match="out of range"):
        perturb(clean, FaultSpec("gaussian"), Targets(layer=7))
    with pytest.raises(ConfigError, match="role"):
        Targets(role="kernels")
    with pytest.raises(ConfigError, match="layer"):
        Targets(layer=-1)
    with pytest.raises(ConfigError, match="matches no weight tensor"):
        perturb(clean, FaultSpec("gaussian"), Targets(names="dense_2", layer=0))
    with pytest.raises(ConfigError, match="unknown target option"):
        Targets.from_dict({"regex": "conv"})


# reproducibility ---------------------------------------------------------------------------
def test_same_seed_same_bytes_different_seed_differs(tiny_variants):
    clean = tiny_variants["int8"]
    spec = FaultSpec("gaussian")
    a = perturb(clean, spec, seed=7)
    b = perturb(clean, spec, seed=7)
    c = perturb(clean, spec, seed=8)
    assert a.model_bytes == b.model_bytes and a.record == b.record
    assert a.model_bytes != c.model_bytes
    assert a.record["seed"] == 7


def test_tensor_stream_does_not_depend_on_selection(tiny_variants):
    clean = tiny_variants["float32"]
    spec = FaultSpec("gaussian")
    every = TFLiteModel(perturb(clean, spec, seed=3).model_bytes)
    only = TFLiteModel(perturb(clean, spec, Targets(layer=4), seed=3).model_bytes)
    for t in only.tensors:
        if t.layer == 4:
            np.testing.assert_array_equal(only.raw(t.name), every.raw(t.name))


def test_members_have_independent_spawned_streams(tiny_variants):
    clean = tiny_variants["int8"]
    spec = FaultSpec("gaussian")
    copies = list(members(clean, spec, copies=4, seed=5))
    again = list(members(clean, spec, copies=4, seed=5))
    assert [m.model_bytes for m in copies] == [m.model_bytes for m in again]
    assert len({m.model_bytes for m in copies}) == 4
    assert [m.record["member"] for m in copies] == [0, 1, 2, 3]
    children = np.random.SeedSequence(5).spawn(4)
    for member, child in zip(copies, children, strict=True):
        assert member.model_bytes == perturb(clean, spec, seed=child).model_bytes
        assert member.model_bytes == perturb(clean, spec, seed=member.record["seed"]).model_bytes
    # never seed + i: member 1 of seed 5 is not member 0 of seed 6 nor perturb(seed=6)
    shifted = next(members(clean, spec, copies=1, seed=6))
    assert copies[1].model_bytes != shifted.model_bytes
    assert copies[1].model_bytes != perturb(clean, spec, seed=6).model_bytes


def test_member_noise_is_uncorrelated(tiny_variants):
    model = TFLiteModel(tiny_variants["float32"])
    big = max(model.tensors, key=lambda t: t.size).name
    clean = model.read(big).ravel()
    noises = [
        TFLiteModel(m.model_bytes).read(big).ravel() - clean
        for m in members(model, FaultSpec("gaussian"), copies=3, seed=0)
    ]
    correlation = np.corrcoef(noises)
    assert np.all(np.abs(correlation[np.triu_indices(3, 1)]) < 0.05)


def test_members_argument_errors(tiny_variants):
    with pytest.raises(ConfigError, match="copies"):
        members(tiny_variants["int8"], FaultSpec("gaussian"), copies=0)
    with pytest.raises(ConfigError, match="seed dict"):
        perturb(tiny_variants["int8"], FaultSpec("gaussian"), seed={"entropy": 1})
    with pytest.raises(ConfigError, match="seed"):
        perturb(tiny_variants["int8"], FaultSpec("gaussian"), seed=-1)


def test_seed_none_is_recorded_and_reproducible(tiny_variants):
    result = perturb(tiny_variants["int8"], FaultSpec("gaussian"), seed=None)
    again = perturb(tiny_variants["int8"], FaultSpec("gaussian"), seed=result.record["seed"])
    assert again.model_bytes == result.model_bytes


def test_input_bytes_untouched(tiny_variants):
    for scheme in ("int8", "float16"):
        original = bytearray(tiny_variants[scheme])
        snapshot = bytes(original)
        for spec in ALL_FAULTS[:-1]:
            perturb(original, spec, seed=1)
        assert bytes(original) == snapshot


def test_fault_given_as_dict_or_name(tiny_variants):
    clean = tiny_variants["int8"]
    a = perturb(clean, {"name": "gaussian", "std_factor": 0.1}, seed=1)
    b = perturb(clean, "gaussian", seed=1)
    assert a.model_bytes == b.model_bytes


# depthwise ---------------------------------------------------------------------------------
def test_depthwise_model_every_fault(depthwise):
    _, x, variants = depthwise
    for scheme, data in variants.items():
        for spec in ALL_FAULTS:
            if spec.name == "scale" and scheme == "float32":
                continue
            result = perturb(data, spec, seed=2)
            assert result.model_bytes != data
            assert predict(result.model_bytes, x).probabilities.shape == (64, 3)


def test_depthwise_noise_statistics_and_scale_linking(depthwise):
    _, x, variants = depthwise
    model = TFLiteModel(variants["int8"])
    dw = next(
        t for t in model.tensors if t.consumers == ("DEPTHWISE_CONV_2D",) and t.role == "weight"
    )
    result = perturb(model, FaultSpec("scale", {"std": 0.1}), Targets(ops=("depthwise",)), seed=1)
    noisy = TFLiteModel(result.model_bytes)
    ratio = np.asarray(noisy.tensor(dw.name).scales) / np.asarray(dw.scales)
    bias = model.linked_biases(dw.name)[0]
    bias_ratio = np.asarray(noisy.tensor(bias).scales) / np.asarray(model.tensor(bias).scales)
    np.testing.assert_allclose(bias_ratio, ratio, rtol=1e-6)
    assert np.all(np.isfinite(predict(result.model_bytes, x).probabilities))


def test_depthwise_float_path(depthwise):
    keras_model, x, variants = depthwise
    spec = FaultSpec("gaussian", {"std_factor": 0.2})
    edited = perturb(variants["float32"], spec, seed=4).model_bytes
    full = perturb_float_path(keras_model, "float32", spec, seed=4).model_bytes
    np.testing.assert_allclose(
        predict(edited, x).probabilities, predict(full, x).probabilities, atol=1e-5
    )
    approx = requantize_from_float(edited, variants["int8"])
    a = TFLiteModel(approx)
    dw = next(t for t in a.tensors if t.consumers == ("DEPTHWISE_CONV_2D",) and t.role == "weight")
    assert dw.quantized_dimension == 3 and dw.per_channel
    reference = TFLiteModel(edited).read(
        next(t.name for t in TFLiteModel(edited).tensors if t.consumers == ("DEPTHWISE_CONV_2D",))
    )
    step = np.asarray(dw.scales).reshape(1, 1, 1, -1)
    assert np.all(np.abs(a.read(dw.name) - reference) <= step / 2 + 1e-9)
    np.testing.assert_allclose(
        np.asarray(dw.scales), np.abs(reference).max(axis=(0, 1, 2)) / 127, rtol=1e-6
    )
    assert np.all(np.isfinite(predict(approx, x).probabilities))


# bad input ---------------------------------------------------------------------------------
def test_bad_model_bytes():
    with pytest.raises(InputError, match="not a TFLite"):
        perturb(b"hello world, not a model", FaultSpec("gaussian"))


def test_truncated_model(tiny_variants):
    data = tiny_variants["int8"]
    with pytest.raises(InputError, match="truncated"):
        perturb(data[: len(data) // 2], FaultSpec("gaussian"))


def test_bad_fault_values():
    with pytest.raises(ConfigError, match="std must be >= 0"):
        perturb(b"", {"name": "gaussian", "std": -1.0})
    with pytest.raises(ConfigError, match="ber"):
        perturb(b"", {"name": "bitflip", "ber": 2.0})
    with pytest.raises(ConfigError, match="unknown fault"):
        perturb(b"", "cosmic_ray")


# threads and quantization-aware ranges ---------------------------------------------------------
def test_threads_never_change_the_bytes(tiny_variants):
    clean = tiny_variants["float32"]
    for spec in (FaultSpec("gaussian"), FaultSpec("bitflip", {"ber": 1e-3})):
        one = perturb(clean, spec, seed=4, threads=1).model_bytes
        assert perturb(clean, spec, seed=4, threads=3).model_bytes == one
        assert perturb(clean, spec, seed=4).model_bytes == one
    serial = [m.model_bytes for m in members(clean, FaultSpec("gaussian"), 3, seed=1, threads=1)]
    pooled = [m.model_bytes for m in members(clean, FaultSpec("gaussian"), 3, seed=1, threads=2)]
    assert serial == pooled
    with pytest.raises(ConfigError, match="threads"):
        perturb(clean, FaultSpec("gaussian"), threads=0)


def test_qat_kernel_ranges_follow_the_perturbed_weights():
    """A QAT wrapper's kernel min/max are reset to the new symmetric ranges (LastValueQuant)."""
    from robustq._tf import tensorflow
    from robustq.perturb import KerasWeight, _refresh_ranges

    tf = tensorflow()

    kernel = np.random.default_rng(0).normal(size=(5, 1, 3, 4)).astype(np.float32)
    per_channel = (tf.Variable(np.zeros(4, np.float32)), tf.Variable(np.zeros(4, np.float32)))
    weight = KerasWeight("k", ("CONV_2D",), "weight", 0, None, per_channel)
    _refresh_ranges(weight, kernel)
    extent = np.abs(kernel).reshape(-1, 4).max(axis=0)
    np.testing.assert_allclose(per_channel[1].numpy(), extent)
    np.testing.assert_allclose(per_channel[0].numpy(), -extent)
    per_tensor = (tf.Variable(0.0), tf.Variable(0.0))
    _refresh_ranges(KerasWeight("k", ("FULLY_CONNECTED",), "weight", 0, None, per_tensor), kernel)
    assert per_tensor[1].numpy() == pytest.approx(np.abs(kernel).max())
