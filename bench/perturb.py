"""Benchmark: one perturbed int8 member by flatbuffer editing vs. by TFLite re-conversion.

Builds the default-size ``model_2d(103, 9)`` (200 filters, 828,889
parameters), fits it for one epoch on random data, converts it to full int8
with 128 random calibration samples, then times, side by side in one run:

* *editing*: ``robustq.perturb.perturb`` on the int8 bytes (parse the
  flatbuffer, dequantize, Gaussian noise at 0.1 x each tensor's std,
  re-quantize, patch, serialize), and the per-member cost inside
  ``members`` where the model is parsed once (default threads, and one);
* *re-conversion*: ``perturb_keras`` (the same noise in the Keras weights)
  followed by ``to_tflite(..., "int8")`` with the same calibration.

Prints the medians and their ratio (the goal is at least 100x).
Run: ``.venv/bin/python bench/perturb.py [--edit-repeats 30] [--convert-repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _median_seconds(action, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print the timings and the speed-up ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edit-repeats", type=int, default=30)
    parser.add_argument("--convert-repeats", type=int, default=5)
    parser.add_argument("--filters", type=int, default=200)
    args = parser.parse_args()

    import warnings

    from robustq.convert import to_tflite
    from robustq.faults import FaultSpec
    from robustq.models import model_2d, seed_everything
    from robustq.perturb import members, perturb, perturb_keras

    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    seed_everything(0)
    model = model_2d(103, 9, n_filters=args.filters, seed=0)
    x = rng.random((2048, 103, 1, 1), dtype=np.float32)
    y = rng.integers(0, 9, len(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    calibration = rng.random((128, 103, 1, 1), dtype=np.float32)
    clean = to_tflite(model, "int8", calibration)
    spec = FaultSpec("gaussian", {"std_factor": 0.1})
    size = f"{model.count_params():,} parameters, int8 variant {len(clean):,} bytes"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"model_2d(103, 9): {size}; {os.cpu_count()} CPUs, load average {load}")

    perturb(clean, spec, seed=0)  # warm-up: imports, caches
    copies = [bytes(bytearray(clean)) for _ in range(args.edit_repeats)]  # no parse memo hits
    edit = _median_seconds(lambda i: perturb(copies[i], spec, seed=i), args.edit_repeats)
    stream = members(clean, spec, copies=args.edit_repeats, seed=0)
    member = _median_seconds(lambda i: next(stream), args.edit_repeats)
    serial_stream = members(clean, spec, copies=args.edit_repeats, seed=0, threads=1)
    serial = _median_seconds(lambda i: next(serial_stream), args.edit_repeats)
    convert = _median_seconds(
        lambda i: to_tflite(perturb_keras(model, spec, seed=i), "int8", calibration),
        args.convert_repeats,
    )
    rows = [
        ("editing: perturb(), parse included", edit, f"median of {args.edit_repeats}"),
        ("editing: members(), per member", member, "model parsed once"),
        ("editing: members(threads=1)", serial, "one thread"),
        ("re-conversion: perturb_keras + int8", convert, f"median of {args.convert_repeats}"),
    ]
    for label, seconds, note in rows:
        ratio = "" if seconds is convert else f"{convert / seconds:6.0f}x faster"
        print(f"{label:38s} {seconds * 1e3:9.1f} ms  {ratio:14s} ({note})")
    print(f"ratio re-conversion / perturb(): {convert / edit:.0f}x (goal >= 100x)")


if __name__ == "__main__":
    main()
