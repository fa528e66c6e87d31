"""Benchmark: a 24-cell robustness sweep with 1 job vs 2 jobs, and the driver's peak memory.

Uses the reference variants of the default model in ``tflite_models/``
(828,889 parameters; float32 and int8) and the splits of the default
synthetic scene (seed 0, 250 samples per class, 10% validation — the demo's),
evaluated on a class-stratified sample of ``--test-limit`` test pixels. The
sweep is 2 schemes x (gaussian std_factor 0.05, 0.1, 0.2 + bitflip ber 1e-5,
1e-4, 1e-3) x 2 seeds = 24 cells, one perturbed model per cell. It runs twice
into fresh run folders, side by side in this process: ``jobs=1`` (in-process)
and ``jobs=2`` (two worker processes, fork-server start included), then
prints cells per second and the speed-up (goal: at least 1.7x on 2 cores),
and checks that both runs stored identical rows. Then the same ``jobs=1``
run once more with the per-process cache of clean predictions switched off
(``robustq.sweep.cells._CLEAN_CACHE_SIZE = 0``): each cell then predicts the
clean model too, as before the cache existed; the ratio is the cache's
speed-up (goal: close to 2x for one-member cells) and the rows must again
be identical.

Driver memory: the same spec with cheap cells (``--memory-limit`` test
pixels) at 24 and at ``--memory-cells`` cells with ``jobs=2``; the driver's
peak resident set (VmHWM, reset before each run through
``/proc/self/clear_refs``; Linux) minus its size before the run is printed
for both (goal: flat in the number of cells).

Run: ``.venv/bin/python bench/sweep.py [--test-limit 5000] [--memory-cells 240]``.
The machine's load average is printed too: other processes on the 2 cores
lower the speed-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULTS = [
    {"name": "gaussian", "levels": [0.05, 0.1, 0.2]},
    {"name": "bitflip", "levels": [1e-5, 1e-4, 1e-3]},
]


def _status_kb(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in kB (None where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _spec(folder: Path, seeds: int, test_limit: int):
    from robustq.sweep import SweepSpec

    return SweepSpec.from_dict(
        {
            "variants": str(ROOT / "tflite_models"),
            "splits": str(folder / "splits.npz"),
            "schemes": ["float32", "int8"],
            "faults": FAULTS,
            "seeds": seeds,
            "ensemble": {"copies": 0},
            "test_limit": test_limit,
        }
    )


def _timed_run(spec, run: Path, jobs: int):
    from robustq.sweep import run_sweep

    started = time.perf_counter()
    summary = run_sweep(spec, run, jobs=jobs, progress=False)
    return summary, time.perf_counter() - started


def _memory_run(spec, run: Path) -> tuple[int, float | None]:
    """Cells run and the driver's peak RSS growth in MB during a jobs=2 sweep."""
    from robustq.sweep import run_sweep

    before = _status_kb("VmRSS")
    peak_known = _reset_peak()
    summary = run_sweep(spec, run, jobs=2, progress=False)
    peak = _status_kb("VmHWM") if peak_known else None
    growth = None if peak is None or before is None else (peak - before) / 1024
    return summary.computed, growth


def main() -> None:
    """Prepare the splits, run the sweep with 1 and 2 jobs, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test-limit", type=int, default=5000, help="test pixels per cell")
    parser.add_argument("--memory-limit", type=int, default=100, help="test pixels (memory part)")
    parser.add_argument("--memory-cells", type=int, default=240, help="0 skips the memory part")
    args = parser.parse_args()

    import pandas as pd

    from robustq.data import make_splits
    from robustq.sweep import VOLATILE_COLUMNS, load_results
    from robustq.synthetic import synthetic_scene

    with tempfile.TemporaryDirectory(prefix="robustq-bench-sweep-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        splits = make_splits(synthetic_scene(seed=0), train_size=250, val_size=0.1, seed=0)
        splits.save(folder / "splits.npz")
        print(
            f"default scene splits: {len(splits.y_test)} test pixels, "
            f"{args.test_limit} per cell ({time.perf_counter() - started:.1f} s to make)"
        )
        spec = _spec(folder, seeds=2, test_limit=args.test_limit)
        load_before = os.getloadavg()[0]
        one, one_s = _timed_run(spec, folder / "jobs1", 1)
        two, two_s = _timed_run(spec, folder / "jobs2", 2)
        load_after = os.getloadavg()[0]
        assert one.computed == two.computed == 24
        frames = [load_results(folder / run) for run in ("jobs1", "jobs2")]
        pd.testing.assert_frame_equal(
            frames[0].drop(columns=list(VOLATILE_COLUMNS)),
            frames[1].drop(columns=list(VOLATILE_COLUMNS)),
        )
        for jobs, seconds, frame in ((1, one_s, frames[0]), (2, two_s, frames[1])):
            print(
                f"jobs={jobs}: 24 cells in {seconds:6.1f} s = {24 / seconds:.3f} cells/s; "
                f"per cell {frame['seconds'].mean():.2f} s wall, "
                f"{frame['cpu_seconds'].mean():.2f} s CPU"
            )
        print(f"speed-up jobs=2 / jobs=1: {one_s / two_s:.2f}x (goal >= 1.7x); rows identical")
        busy = [f["cpu_seconds"].sum() / f["seconds"].sum() for f in frames]
        if min(busy) < 0.9:
            print(
                f"warning: cells had a core only {min(busy):.0%} of their wall time: other "
                "processes are using the CPUs and the speed-up above is not representative"
            )
        print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}")

        from robustq.sweep import cells

        cache_size = cells._CLEAN_CACHE_SIZE
        cells._CLEAN_CACHE_SIZE = 0
        try:
            uncached, uncached_s = _timed_run(spec, folder / "nocache", 1)
        finally:
            cells._CLEAN_CACHE_SIZE = cache_size
        assert uncached.computed == 24
        pd.testing.assert_frame_equal(
            load_results(folder / "nocache").drop(columns=list(VOLATILE_COLUMNS)),
            frames[0].drop(columns=list(VOLATILE_COLUMNS)),
        )
        print(
            f"jobs=1 without the clean-prediction cache: {uncached_s:6.1f} s; with it "
            f"{one_s:6.1f} s: {uncached_s / one_s:.2f}x; rows identical"
        )

        if args.memory_cells > 0:
            seeds = max(1, round(args.memory_cells / 12))
            small = _spec(folder, seeds=2, test_limit=args.memory_limit)
            large = _spec(folder, seeds=seeds, test_limit=args.memory_limit)
            for label, cells_spec, run in (("small", small, "mem_small"), ("large", large, "mem")):
                cells, growth = _memory_run(cells_spec, folder / run)
                shown = "n/a (no /proc)" if growth is None else f"{growth:.1f} MB"
                print(f"driver peak RSS growth, jobs=2, {cells:4d} cells ({label}): {shown}")


if __name__ == "__main__":
    main()
