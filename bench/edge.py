"""Benchmark: every reference variant under edge interpreter configurations.

Runs :func:`robustq.edge.evaluate_edge` on each ``tflite_models/<scheme>.tflite``
over a 2,000-sample stratified subset of the default scene's test split
(``synthetic_scene(seed=0)``, ``make_splits(scene, 250, 0.1, 0)``,
``subsample_test(splits, 2000, 0)``) and prints, per variant and
configuration: OA, agreement / flip rate / maximum output difference against
the reference kernels, throughput at batch 1024 and batch-1 latency (median
and p99). Then throughput ratios between configurations side by side, the
footprint (activation estimate vs what the interpreter plans) and which
variants pass which target. The machine's load shows in the timings: run it
on an idle machine for figures worth quoting.

Run: ``.venv/bin/python bench/edge.py [--configs default,builtin:t1,reference]
[--latency-calls 200] [--limit 2000] [--schemes int8,float32]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = Path(__file__).resolve().parents[1] / "tflite_models"
SCHEMES = ("float32", "float16", "dynamic_int8", "int8", "int8_per_tensor", "int16x8", "qat_int8")


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="default,builtin:t1,reference")
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    args = parser.parse_args()

    import pandas as pd

    from robustq.data import make_splits, subsample_test
    from robustq.edge import (
        SUMMARY_COLUMNS,
        compat_matrix,
        evaluate_edge,
        footprint,
        parse_configs,
    )
    from robustq.synthetic import synthetic_scene

    configs = parse_configs(args.configs)
    scene = synthetic_scene(seed=0)
    splits = subsample_test(make_splits(scene, 250, 0.1, 0), args.limit, 0)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    blobs = {s: (MODELS / f"{s}.tflite").read_bytes() for s in schemes}
    print(f"{len(splits.y_test)} test samples, configs {', '.join(c.label for c in configs)}")

    tables, prints = [], []
    for scheme, blob in blobs.items():
        start = time.perf_counter()
        result = evaluate_edge(
            blob, splits, configs, latency_calls=args.latency_calls, batch_size=args.batch_size
        )
        table = result.table()
        table.insert(0, "scheme", scheme)
        tables.append(table)
        fp = footprint(blob)
        prints.append(
            {
                "scheme": scheme,
                "file_bytes": fp.file_bytes,
                "weight_bytes": fp.weight_bytes,
                "ops": fp.n_ops,
                "activation_estimate": fp.activation.peak_bytes,
                "reference_arena": fp.row()["reference_arena_bytes"],
                "builtin_arena": fp.row()["builtin_arena_bytes"],
                "dequantized_weights": fp.activation.persistent_bytes,
            }
        )
        print(f"  {scheme}: {time.perf_counter() - start:.1f} s", flush=True)

    results = pd.concat(tables, ignore_index=True)
    columns = ["scheme", *SUMMARY_COLUMNS]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\nPer variant and configuration (agreement against reference kernels):")
        print(results[columns].to_string(index=False, float_format="%.4g"))
        wide = results.pivot(index="scheme", columns="config", values="throughput")
        wide = wide[[c.label for c in configs]]
        base = configs[0].label
        ratios = wide.div(wide[base], axis=0).add_suffix(f" / {base}")
        print("\nThroughput (samples/s) and ratios to the first configuration:")
        print(pd.concat([wide, ratios], axis=1).to_string(float_format="%.3g"))
        print("\nFootprint (bytes; activation estimate vs interpreter arena at batch 1):")
        print(pd.DataFrame(prints).to_string(index=False))
        print("\nTarget compatibility:")
        print(compat_matrix(blobs, ["builtin", "micro"]).to_string())


if __name__ == "__main__":
    main()
