"""The seed's pipeline end to end: scene -> splits -> model -> variants -> evaluations.

:func:`run_demo` chains the step functions of the other modules on the
embedded synthetic scene (or any scene) and writes every artefact under one
run folder; it adds no logic of its own beyond ordering and file layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from robustq.convert import SCHEMES, QATConfig, convert
from robustq.evaluate import Evaluation, evaluate_bytes, write_evaluation
from robustq.fileio import write_csv, write_json
from robustq.models import TrainConfig, train


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo run needs; defaults follow the seed notebook.

    ``test_limit`` evaluates every variant on the same seeded, class-stratified
    sample of the test set (0 = all of it): int16x8 runs on reference
    kernels at ~8 ms per sample here, ~30x slower than int8, so the full
    40,526-pixel test set would take over five minutes for that variant alone.
    """

    seed: int = 0
    train_size: int = 250
    val_size: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)
    schemes: tuple[str, ...] = SCHEMES
    calibration_size: int = 512
    qat: QATConfig = field(default_factory=QATConfig)
    batch_size: int = 1024
    test_limit: int = 5000
    scene_height: int = 610
    scene_width: int = 340
    sweep: bool = True
    jobs: int | None = None


def summary_row(variant_size: int, evaluation: Evaluation) -> dict[str, float | str]:
    """One line of the demo table: scheme, size in KB, OA, AA, kappa, inference time."""
    return {
        "scheme": evaluation.name,
        "size_kb": round(variant_size / 1024, 1),
        "OA": evaluation.scores.accuracy,
        "AA": evaluation.scores.balanced_accuracy,
        "kappa": evaluation.scores.kappa,
        "inference_time": evaluation.prediction.seconds,
    }


def run_demo(
    out_dir: str | Path,
    config: DemoConfig | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> pd.DataFrame:
    """Run scene -> split -> train -> convert -> evaluate and return the summary table.

    Writes under ``out_dir``: ``splits.npz``, ``model_2d.keras``,
    ``training_metrics.csv``, ``variants/`` (``<scheme>.tflite`` +
    ``manifest.json``), ``eval/<scheme>/`` (``inference_metrics.csv``,
    ``confusion_matrix.csv``), ``summary.csv`` and ``config.json``.
    """
    from robustq.data import make_splits, subsample_test
    from robustq.synthetic import synthetic_scene

    config = config or DemoConfig()
    out = Path(out_dir)
    write_json(out / "config.json", asdict(config))
    log(f"scene: synthetic, seed {config.seed}, {config.scene_height} x {config.scene_width}")
    scene = synthetic_scene(seed=config.seed, height=config.scene_height, width=config.scene_width)
    splits = make_splits(scene, config.train_size, config.val_size, config.seed)
    splits.save(out / "splits.npz")
    log(
        f"splits: {len(splits.y_train)} train, {len(splits.y_val)} val, "
        f"{len(splits.y_test)} test, {splits.n_bands} bands, {splits.n_classes} classes"
    )
    log(f"training model_2d (up to {config.train.epochs} epochs)")
    trained = train(splits, out, config.train)
    log(f"trained: {len(trained.history)} epochs, best epoch {trained.best_epoch}")
    variants = convert(
        trained.model,
        config.schemes,
        out / "variants",
        x_calibration=splits.x_train,
        calibration_size=config.calibration_size,
        seed=config.seed,
        train_data=(splits.x_train, splits.y_train),
        qat=config.qat,
    )
    test = subsample_test(splits, config.test_limit, config.seed)
    log(f"evaluating on {len(test.y_test)} of {len(splits.y_test)} test samples")
    rows = []
    for variant in variants:
        log(f"evaluating {variant.name}")
        evaluation = evaluate_bytes(
            variant.read_bytes(out / "variants"),
            test,
            name=variant.name,
            batch_size=config.batch_size,
        )
        write_evaluation(evaluation, out / "eval" / variant.name)
        rows.append(summary_row(variant.file_size, evaluation))
    table = pd.DataFrame(rows)
    write_csv(out / "summary.csv", table)
    if config.sweep:
        report = sweep_and_report(out, config, log)
        log(f"report: {report}")
    return table


def demo_sweep_spec(out: Path, config: DemoConfig) -> dict[str, object]:
    """The demo's sweep: float32, float16 and int8 under Gaussian noise and bit flips.

    int16x8 is left out (reference kernels, ~30x slower); two repeats; every
    cell on the same stratified test sample as the summary table, once as
    stored and once under the seed's acquisition noise (gaussian, std 1
    after scaling, on every band of 10 % of the samples): the report's
    data noise x weight faults view.
    """
    schemes = [s for s in ("float32", "float16", "int8") if s in config.schemes]
    return {
        "variants": str(out / "variants"),
        "splits": str(out / "splits.npz"),
        "schemes": schemes,
        "faults": [
            {"name": "gaussian", "levels": [0, 0.05, 0.1, 0.2, 0.4]},
            {"name": "bitflip", "levels": [1e-5, 1e-4, 1e-3]},
        ],
        "seeds": 2,
        "seed": config.seed,
        "test_limit": config.test_limit,
        "ensemble": {"copies": 0},
        "data_noise": [None, {"name": "gaussian", "mean": 0.0, "std": 1.0, "pa": 0.1, "pb": 1.0}],
    }


def sweep_and_report(
    out: Path, config: DemoConfig, log: Callable[[str], None] = lambda message: None
) -> Path:
    """Run the demo's sweep into ``out/sweep`` and write its report; return the HTML path."""
    from robustq.report import build_report
    from robustq.sweep import SweepSpec, load_results, run_sweep

    spec = SweepSpec.from_dict(demo_sweep_spec(out, config))
    log(
        f"sweep: {len(spec.schemes)} schemes x gaussian, bitflip x {spec.seeds} seeds "
        f"x {len(spec.data_noise)} data conditions"
    )
    summary = run_sweep(spec, out / "sweep", jobs=config.jobs, progress=False)
    log(f"sweep: {summary.computed} cells in {summary.seconds:.0f} s")
    result = build_report(
        out / "sweep", tolerance=0.01, required={"gaussian": 0.05, "bitflip": 1e-4}
    )
    if result.verdict is not None:
        log(result.verdict.summary)
    for line in data_noise_summary(load_results(out / "sweep")):
        log(line)
    return result.html_path


def data_noise_summary(frame: pd.DataFrame) -> list[str]:
    """One line per noisy data condition: each scheme's clean OA on clean data -> noisy data.

    Empty when the run has no data-noise axis (or no clean-data cells to
    compare with).
    """
    from robustq.report.conditions import two_axis_table

    table = two_axis_table(frame)
    if table.empty:
        return []
    clean = table.groupby(["configuration", "data_noise"], sort=False)["clean_OA"].first()
    lines = []
    for condition in dict.fromkeys(table["data_noise"]):
        if condition == "none":
            continue
        parts = [
            f"{name} {clean[(name, 'none')]:.3f} -> {clean[(name, condition)]:.3f}"
            for name in dict.fromkeys(table["configuration"])
            if (name, "none") in clean.index and (name, condition) in clean.index
        ]
        if parts:
            lines.append(f"clean OA under data noise {condition}: " + ", ".join(parts))
    return lines
