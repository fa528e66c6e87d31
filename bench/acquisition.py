"""Benchmark: vectorised acquisition noise on a large array vs. a naive per-sample loop.

For each data-noise model (gaussian, impulsive, shot) times
``robustq.acquisition.apply_noise`` on 1,000,000 x 103 float32 samples
(uniform in [0, 1), like scaled data), by default in the hardest setting:
every sample affected (pa 1), half the bands (pb 0.5) redrawn per sample
(bc false). Side by side in the same run, a naive implementation that loops
over the affected samples in Python (one ``rng.choice`` of bands and one
noise draw per sample) is timed on the first 20,000 samples and extrapolated
per sample; the vectorised function is also timed on those same 20,000
samples. Prints seconds, microseconds per sample and the speed-up ratios.
Run: ``.venv/bin/python bench/acquisition.py [--samples 1000000] [--naive-samples 20000]
[--pa 1] [--pb 0.5] [--bc] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from robustq.acquisition import DataNoise, affected_counts, apply_noise


def naive_noise(x: np.ndarray, noise: DataNoise, rng: np.random.Generator) -> np.ndarray:
    """The same noise models written as a Python loop over samples (bands on the last axis)."""
    out = x.copy()
    n_samples, n_bands = x.shape[0], x.shape[-1]
    n_affected, n_chosen, n_white = affected_counts(n_samples, n_bands, noise)
    rows = rng.choice(n_samples, n_affected, replace=False)
    low, high = float(x.min()), float(x.max())
    shared = rng.choice(n_bands, n_chosen, replace=False)
    for k, i in enumerate(rows):
        bands = shared if noise.bc else rng.choice(n_bands, n_chosen, replace=False)
        values = out[i, ..., bands]
        if noise.name == "gaussian":
            out[i, ..., bands] = values + rng.normal(noise.mean, noise.std, values.shape)
        elif noise.name == "impulsive":
            out[i, ..., bands] = high if k < n_white else low
        else:
            lam = np.maximum(values, 0)
            out[i, ..., bands] = lam + rng.poisson(lam)
    return out


def _median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print one line per noise model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--naive-samples", type=int, default=20_000)
    parser.add_argument("--bands", type=int, default=103)
    parser.add_argument("--pa", type=float, default=1.0)
    parser.add_argument("--pb", type=float, default=0.5)
    parser.add_argument("--bc", action="store_true", help="same bands for every sample")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    data_rng = np.random.default_rng(0)
    x = data_rng.random((args.samples, args.bands), dtype=np.float32)
    small = x[: args.naive_samples]
    print(
        f"apply_noise on {args.samples:,} x {args.bands} float32 "
        f"(pa {args.pa:g}, pb {args.pb:g}, bc {args.bc}); naive loop on {len(small):,} samples"
    )
    header = (
        f"{'noise':<10} {'vectorised s':>12} {'us/sample':>10} {'small s':>9} "
        f"{'naive s':>9} {'us/sample':>10} {'naive 1M s*':>11} {'ratio':>7} {'ratio small':>11}"
    )
    print(header)
    for name in ("gaussian", "impulsive", "shot"):
        noise = DataNoise(name, std=1.0, pw=0.5, pa=args.pa, pb=args.pb, bc=args.bc)
        big = _median_seconds(
            lambda n=noise: apply_noise(x, n, np.random.default_rng(1)), args.repeats
        )
        vec_small = _median_seconds(
            lambda n=noise: apply_noise(small, n, np.random.default_rng(1)), args.repeats
        )
        naive = _median_seconds(lambda n=noise: naive_noise(small, n, np.random.default_rng(1)), 1)
        per_vec = big / args.samples
        per_naive = naive / len(small)
        print(
            f"{name:<10} {big:12.2f} {1e6 * per_vec:10.3f} {vec_small:9.3f} {naive:9.2f} "
            f"{1e6 * per_naive:10.2f} {per_naive * args.samples:11.1f} "
            f"{per_naive / per_vec:7.0f} {naive / vec_small:11.0f}"
        )
    print(
        "* naive time extrapolated per sample to the large array; ratio = naive per-sample "
        "time / vectorised per-sample time on the large array; ratio small = both on the "
        f"same {len(small):,} samples"
    )


if __name__ == "__main__":
    main()
