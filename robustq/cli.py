"""The ``robustq`` command line: thin typer commands over the Python API.

Each command parses options, calls the API, prints a short result. A
:class:`~robustq.errors.RobustqError` becomes one line on stderr and exit
status 2; TensorFlow is imported only by the commands that need it, so
``robustq --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from robustq.errors import ConfigError, InputError, RobustqError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Quantization robustness of edge classifiers: prepare, train, convert, evaluate.",
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn RobustqError (and unreadable files) into one stderr line and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RobustqError as exc:
            typer.echo(f"robustq: error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def guard_outputs(outputs: list[Path], inputs: list[Path | None]) -> None:
    """Refuse to write any output onto one of the user's input files."""
    resolved = {Path(p).resolve() for p in inputs if p is not None}
    for out in outputs:
        if Path(out).resolve() in resolved:
            raise InputError(f"output {out} would overwrite an input file; choose another path")


def parse_train_size(text: str) -> int | float | list[int]:
    """Parse ``--train-size``: ``250`` (per class), ``0.1`` (fraction) or ``10,20,30`` (list)."""
    try:
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        if "." in text:
            return float(text)
        return int(text)
    except ValueError:
        raise ConfigError(
            f"--train-size {text!r}: expected an int, a fraction or a comma-separated list"
        ) from None


def parse_value(text: str) -> Any:
    """Parse a ``--param`` value: JSON when it parses (numbers, lists, null), else the string."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def fault_spec(name: str, params: list[str] | None, **options: Any) -> Any:
    """Build a FaultSpec from the named CLI options that were given plus ``--param k=v`` pairs."""
    from robustq.faults import FaultSpec

    values = {key: value for key, value in options.items() if value is not None}
    for item in params or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        values[key.strip()] = parse_value(text)
    return FaultSpec(name, values)


def targets_from(names: str | None, ops: str | None, role: str, layer: int | None) -> Any:
    """Build a Targets selection from the CLI's target options (None when all are defaults)."""
    from robustq.perturb import Targets

    op_list = tuple(o.strip() for o in ops.split(",") if o.strip()) if ops else ()
    if names is None and not op_list and role == "all" and layer is None:
        return None
    return Targets(names=names, ops=op_list, role=role, layer=layer)


NoiseName = Annotated[
    str | None, typer.Option("--noise", help="Data noise: gaussian | impulsive | shot.")
]
NoiseMean = Annotated[float, typer.Option("--noise-mean", help="gaussian data noise: mean.")]
NoiseStd = Annotated[float, typer.Option("--noise-std", help="gaussian data noise: std.")]
NoisePw = Annotated[float, typer.Option("--pw", help="impulsive: share set to the max.")]
NoisePa = Annotated[float, typer.Option("--pa", help="Fraction of samples affected.")]
NoisePb = Annotated[float, typer.Option("--pb", help="Fraction of bands affected.")]
NoiseBc = Annotated[
    bool, typer.Option("--bc/--no-bc", help="Same bands for every affected sample.")
]


def data_noise(
    name: str | None, mean: float, std: float, pw: float, pa: float, pb: float, bc: bool
) -> Any:
    """Build a DataNoise from the CLI's data-noise options (None when --noise is not given)."""
    if name is None:
        return None
    from robustq.acquisition import DataNoise

    return DataNoise(name, mean=mean, std=std, pw=pw, pa=pa, pb=pb, bc=bc)


FaultName = Annotated[
    str,
    typer.Option(
        "--fault", help="gaussian | uniform | multiplicative | bitflip | stuck_at | scale"
    ),
]
StdFactor = Annotated[
    float | None, typer.Option(help="gaussian: std as a factor of each tensor's own std.")
]
Std = Annotated[float | None, typer.Option(help="gaussian/multiplicative/scale: absolute std.")]
Mean = Annotated[float | None, typer.Option(help="gaussian/uniform: noise mean.")]
Ber = Annotated[float | None, typer.Option(help="bitflip: bit-error rate per stored bit.")]
Fraction = Annotated[float | None, typer.Option(help="stuck_at: fraction of stored bits.")]
Bits = Annotated[
    str | None, typer.Option(help="bitflip/stuck_at: all, sign, msb, lsb, exponent, mantissa.")
]
Params = Annotated[
    list[str] | None, typer.Option("--param", help="Any fault parameter as KEY=VALUE.")
]
TargetNames = Annotated[str | None, typer.Option("--target-names", help="Tensor name regex.")]
TargetOps = Annotated[
    str | None, typer.Option("--target-ops", help="Comma-separated op types (conv2d, dense...).")
]
TargetRole = Annotated[str, typer.Option("--target-role", help="all | weights | biases")]
TargetLayer = Annotated[int | None, typer.Option("--target-layer", help="One layer index.")]


@app.command()
@user_errors
def prepare(
    data: Annotated[
        Path | None, typer.Argument(help="Cube (H x W x B) or sample table (N x B) file.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output splits file (.npz).")] = Path("splits.npz"),
    gt: Annotated[
        Path | None, typer.Option(help="Ground-truth map H x W (0 = background).")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Label vector N for a sample table.")] = None,
    synthetic: Annotated[bool, typer.Option(help="Use the embedded synthetic scene.")] = False,
    data_key: Annotated[str | None, typer.Option(help="Variable name in .npz/.mat.")] = None,
    gt_key: Annotated[str | None, typer.Option(help="Ground-truth / labels variable.")] = None,
    band_axis: Annotated[int, typer.Option(help="Cube axis holding the bands.")] = -1,
    train_size: Annotated[
        str, typer.Option(help="Per class: count (250), fraction (0.1) or list (10,20,...).")
    ] = "250",
    val_size: Annotated[float, typer.Option(help="Per-class fraction of training picks.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed of the split.")] = 0,
) -> None:
    """Load a scene and write seeded, scaled train/val/test splits."""
    from robustq import data as rq_data

    if synthetic:
        from robustq.synthetic import synthetic_scene

        scene = synthetic_scene(seed=seed)
    elif data is None:
        raise ConfigError("give a DATA file (with --gt or --labels) or --synthetic")
    elif gt is not None:
        scene = rq_data.load_cube_scene(
            data, gt, cube_key=data_key, gt_key=gt_key, band_axis=band_axis
        )
    elif labels is not None:
        scene = rq_data.load_sample_scene(data, labels, samples_key=data_key, labels_key=gt_key)
    else:
        raise ConfigError("a DATA file needs --gt (cube) or --labels (sample table)")
    guard_outputs([out], [data, gt, labels])
    splits = rq_data.make_splits(scene, parse_train_size(train_size), val_size, seed)
    splits.save(out)
    sizes = f"{len(splits.y_train)} train, {len(splits.y_val)} val, {len(splits.y_test)} test"
    typer.echo(f"{out}: {sizes}; {splits.n_bands} bands, {splits.n_classes} classes")


@app.command()
@user_errors
def train(
    splits: Annotated[Path, typer.Argument(help="Splits file written by `robustq prepare`.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("run"),
    model: Annotated[
        Path | None, typer.Option(help="Train this Keras model file instead of model_2d.")
    ] = None,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 0.001,
    patience: int = 15,
    kernel_size: int = 5,
    filters: int = 200,
    seed: int = 0,
    noise: NoiseName = None,
    noise_mean: NoiseMean = 0.0,
    noise_std: NoiseStd = 1.0,
    pw: NoisePw = 0.5,
    pa: NoisePa = 0.1,
    pb: NoisePb = 1.0,
    bc: NoiseBc = True,
    noise_sets: Annotated[
        str, typer.Option(help="Splits the data noise goes into: train, val or train,val.")
    ] = "train",
) -> None:
    """Train model_2d (or a given Keras model) with early stopping; write it and its history.

    With ``--noise`` the training (and/or validation) split gets acquisition
    noise first — the seed's noise augmentation.
    """
    from robustq.data import Splits
    from robustq.models import TrainConfig, load_model
    from robustq.models import train as train_model

    data = Splits.load(splits)
    config = TrainConfig(lr, batch_size, epochs, patience, seed, kernel_size, filters)
    user_model = load_model(model) if model is not None else None
    noise_spec = data_noise(noise, noise_mean, noise_std, pw, pa, pb, bc)
    sets = tuple(x.strip() for x in noise_sets.split(",") if x.strip())
    result = train_model(
        data, out, config, model=user_model, data_noise=noise_spec, noise_sets=sets
    )
    last = result.history.iloc[result.best_epoch - 1]
    typer.echo(
        f"{result.model_path}: {len(result.history)} epochs, best epoch {result.best_epoch} "
        f"(val_loss {last['val_loss']:.4f}, val_accuracy {last['val_accuracy']:.4f})"
    )


@app.command()
@user_errors
def convert(
    model: Annotated[Path, typer.Argument(help="Keras model file (.keras, .h5 or folder).")],
    data: Annotated[Path, typer.Option(help="Splits file (calibration and QAT data).")],
    out: Annotated[Path, typer.Option(help="Output folder for variants.")] = Path("variants"),
    schemes: Annotated[str, typer.Option(help="Comma-separated schemes, or 'all'.")] = "all",
    calibration_size: int = 512,
    qat_epochs: int = 10,
    seed: int = 0,
) -> None:
    """Convert a Keras model into TFLite variants with a manifest."""
    import numpy as np

    from robustq.convert import QATConfig
    from robustq.convert import convert as convert_model
    from robustq.data import Splits
    from robustq.models import input_shape, load_model

    splits = Splits.load(data)
    keras_model = load_model(model)
    shape = input_shape(keras_model)
    if int(np.prod(shape)) != splits.n_bands:
        raise InputError(f"model input {shape} does not match the data's {splits.n_bands} bands")
    x_train = splits.x_train.reshape(len(splits.x_train), *shape)
    variants = convert_model(
        keras_model,
        [s.strip() for s in schemes.split(",") if s.strip()],
        out,
        x_calibration=x_train,
        calibration_size=calibration_size,
        seed=seed,
        train_data=(x_train, splits.y_train),
        qat=QATConfig(epochs=qat_epochs, seed=seed),
    )
    for v in variants:
        typer.echo(f"{out / v.path}: {v.scheme}, {v.file_size / 1024:.1f} KB, in {v.input_dtype}")


@app.command()
@user_errors
def evaluate(
    model: Annotated[
        Path, typer.Argument(help="A .tflite file, or a variants folder with manifest.json.")
    ],
    data: Annotated[Path, typer.Option(help="Splits file written by `robustq prepare`.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("eval"),
    batch_size: int = 1024,
    threads: Annotated[int | None, typer.Option(help="Interpreter threads.")] = None,
    kernels: Annotated[str, typer.Option(help="default | builtin | reference")] = "default",
    ensemble_copies: Annotated[
        int, typer.Option(help="Perturbed copies; > 0 evaluates an ensemble.")
    ] = 0,
    voting: Annotated[str, typer.Option(help="hard | soft | classifier")] = "hard",
    no_clean: Annotated[
        bool, typer.Option("--no-clean", help="Leave the clean model out of the ensemble.")
    ] = False,
    classifier_params: Annotated[
        str, typer.Option(help="RandomForest parameters as JSON (classifier voting).")
    ] = "{}",
    fault: FaultName = "gaussian",
    std_factor: StdFactor = None,
    std: Std = None,
    mean: Mean = None,
    ber: Ber = None,
    fraction: Fraction = None,
    bits: Bits = None,
    param: Params = None,
    target_names: TargetNames = None,
    target_ops: TargetOps = None,
    target_role: TargetRole = "all",
    target_layer: TargetLayer = None,
    seed: int = 0,
    noise: NoiseName = None,
    noise_mean: NoiseMean = 0.0,
    noise_std: NoiseStd = 1.0,
    pw: NoisePw = 0.5,
    pa: NoisePa = 0.1,
    pb: NoisePb = 1.0,
    bc: NoiseBc = True,
) -> None:
    """Evaluate TFLite variants on the test split, alone or as an ensemble of perturbed copies.

    With ``--noise`` the test split gets acquisition noise (seeded by ``--seed``) first.
    """
    import json

    import pandas as pd

    from robustq.convert import read_manifest
    from robustq.data import Splits
    from robustq.ensemble import EnsembleConfig, evaluate_ensemble
    from robustq.evaluate import evaluate_bytes, write_evaluation
    from robustq.pipeline import summary_row

    splits = Splits.load(data)
    test_noise = data_noise(noise, noise_mean, noise_std, pw, pa, pb, bc)
    if test_noise is not None:
        from robustq.acquisition import apply_to_splits

        splits = apply_to_splits(splits, test_noise, ("test",), seed)
    if model.is_dir():
        targets = [(v.name, model / v.path) for v in read_manifest(model)]
    elif model.exists():
        targets = [(model.stem, model)]
    else:
        raise InputError(f"model file not found: {model}")
    ensemble = None
    if ensemble_copies > 0:
        try:
            rf_params = json.loads(classifier_params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--classifier-params is not valid JSON: {exc}") from None
        ensemble = EnsembleConfig(
            copies=ensemble_copies,
            voting=voting,
            include_clean=not no_clean,
            seed=seed,
            classifier_params=rf_params,
            batch_size=batch_size,
            threads=threads,
            kernels=kernels,
        )
        spec = fault_spec(
            fault,
            param,
            std_factor=std_factor,
            std=std,
            mean=mean,
            ber=ber,
            fraction=fraction,
            bits=bits,
        )
        selection = targets_from(target_names, target_ops, target_role, target_layer)
    rows = []
    for name, path in targets:
        blob = path.read_bytes()
        where = out if len(targets) == 1 else out / name
        if ensemble is None:
            evaluation = evaluate_bytes(blob, splits, name, batch_size, threads, kernels)
            write_evaluation(evaluation, where)
            rows.append(summary_row(len(blob), evaluation))
            continue
        result = evaluate_ensemble(blob, splits, spec, ensemble, selection)
        result.save(where)
        m = result.metrics.iloc[0]
        rows.append(
            {
                "model": name,
                "members": int(m["members"]),
                "clean_OA": m["clean_accuracy"],
                "ensemble_OA": m["accuracy_score"],
                "delta_OA": m["delta_accuracy"],
                "flip_rate": m["flip_rate"],
                "member_OA_mean": result.members["accuracy_score"].mean(),
            }
        )
    typer.echo(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


@app.command()
@user_errors
def inspect(
    model: Annotated[Path, typer.Argument(help="A .tflite file.")],
) -> None:
    """List a TFLite model's weight tensors: name, op, dtype, shape, quantization."""
    import pandas as pd

    from robustq.tflite import inspect_table

    if not model.is_file():
        raise InputError(f"model file not found: {model}")
    table = inspect_table(model.read_bytes())
    with pd.option_context("display.max_colwidth", 48, "display.width", 200):
        typer.echo(table.to_string(index=False))


@app.command()
@user_errors
def perturb(
    model: Annotated[Path, typer.Argument(help="A .tflite file (any scheme).")],
    out: Annotated[Path, typer.Option(help="Output .tflite file.")],
    fault: FaultName = "gaussian",
    std_factor: StdFactor = None,
    std: Std = None,
    mean: Mean = None,
    ber: Ber = None,
    fraction: Fraction = None,
    bits: Bits = None,
    param: Params = None,
    target_names: TargetNames = None,
    target_ops: TargetOps = None,
    target_role: TargetRole = "all",
    target_layer: TargetLayer = None,
    seed: int = 0,
) -> None:
    """Write a perturbed copy of a TFLite model (quantized path) and its record (.json)."""
    from robustq.fileio import write_json
    from robustq.perturb import perturb as perturb_model

    if not model.is_file():
        raise InputError(f"model file not found: {model}")
    record_path = out.with_suffix(out.suffix + ".json")
    guard_outputs([out, record_path], [model])
    spec = fault_spec(
        fault,
        param,
        std_factor=std_factor,
        std=std,
        mean=mean,
        ber=ber,
        fraction=fraction,
        bits=bits,
    )
    selection = targets_from(target_names, target_ops, target_role, target_layer)
    result = perturb_model(model.read_bytes(), spec, selection, seed)
    result.save(out)
    write_json(record_path, result.record)
    names = result.record.get("targets", [])
    typer.echo(f"{out}: {spec.to_json()}, seed {seed}, {len(names)} tensors perturbed")


@app.command("noise")
@user_errors
def noise_command(
    splits: Annotated[Path, typer.Argument(help="Splits file written by `robustq prepare`.")],
    out: Annotated[Path, typer.Option(help="Output splits file (.npz) with noisy sets.")],
    noise: Annotated[str, typer.Option(help="gaussian | impulsive | shot")] = "gaussian",
    noise_mean: NoiseMean = 0.0,
    noise_std: NoiseStd = 1.0,
    pw: NoisePw = 0.5,
    pa: NoisePa = 0.1,
    pb: NoisePb = 1.0,
    bc: NoiseBc = True,
    sets: Annotated[str, typer.Option(help="Comma-separated: train, val, test.")] = "test",
    seed: int = 0,
) -> None:
    """Write a copy of a splits file with acquisition noise in the chosen sets, for inspection."""
    from robustq.acquisition import apply_to_splits
    from robustq.data import Splits

    guard_outputs([out], [splits])
    spec = data_noise(noise, noise_mean, noise_std, pw, pa, pb, bc)
    chosen = tuple(x.strip() for x in sets.split(",") if x.strip())
    noisy = apply_to_splits(Splits.load(splits), spec, chosen, seed)
    noisy.save(out)
    typer.echo(f"{out}: {spec.label} on {', '.join(chosen)}, seed {seed}")


@app.command()
@user_errors
def edge(
    model: Annotated[Path, typer.Argument(help="A .tflite file.")],
    data: Annotated[Path, typer.Option(help="Splits file written by `robustq prepare`.")],
    configs: Annotated[
        str, typer.Option(help="KERNELS[:tN],... with default|builtin|reference")
    ] = "default,builtin:t1,reference",
    target: Annotated[
        list[str] | None,
        typer.Option(help="builtin | micro | a JSON/text op list; repeatable"),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("edge"),
    latency_calls: int = 200,
    batch_size: int = 1024,
    limit: Annotated[int, typer.Option(help="Stratified test subset, 0 = all.")] = 0,
    seed: int = 0,
) -> None:
    """Evaluate a model under edge interpreter configurations, its footprint and target ops.

    Saved under ``SWEEP_RUN/edge/<name>``, the tables appear in that run's report.
    """
    from robustq.data import Splits, subsample_test
    from robustq.edge import (
        SUMMARY_COLUMNS,
        check_target,
        evaluate_edge,
        footprint,
        parse_configs,
        save_edge,
    )

    if not model.is_file():
        raise InputError(f"model file not found: {model}")
    guard_outputs([out / "edge.csv"], [model, data])
    parse_configs(configs)  # fail fast on a bad --configs
    blob = model.read_bytes()
    reports = [check_target(blob, t) for t in (target or [])]  # fail fast on a bad --target
    splits = subsample_test(Splits.load(data), limit, seed)
    result = evaluate_edge(
        blob, splits, configs, latency_calls=latency_calls, batch_size=batch_size
    )
    fp = footprint(blob)
    save_edge(out, result, fp, reports)
    summary = result.table()[list(SUMMARY_COLUMNS)]
    typer.echo(summary.to_string(index=False, float_format="%.4g"))
    row = fp.row()
    typer.echo(
        f"{fp.n_ops} ops ({row['ops']}); weights {fp.weight_bytes} B; activation estimate "
        f"{fp.activation.peak_bytes} B (reference arena {row['reference_arena_bytes']} B, "
        f"builtin arena {row['builtin_arena_bytes']} B)"
    )
    for report in reports:
        typer.echo(f"{report.target}: {report.summary()}")


@app.command()
@user_errors
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (.yaml/.yml or .toml).")],
    out: Annotated[Path, typer.Option(help="Run folder (results.sqlite lives here).")],
    jobs: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray instance).")
    ] = None,
    extend: Annotated[
        bool, typer.Option(help="Accept a changed spec on an existing run folder.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Progress bar with ETA on stderr.")] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Validate the spec and data, print the grid's size; run and write nothing."
        ),
    ] = False,
) -> None:
    """Run a robustness sweep (schemes x faults x levels x seeds); resumes where it stopped."""
    from robustq.sweep import aggregate, format_report, load_results, run_sweep

    if dry_run:
        _print_plan(spec, out)
        return
    summary = run_sweep(
        spec, out, jobs=jobs, executor=executor, address=address, extend=extend, progress=progress
    )
    typer.echo(format_report(aggregate(load_results(out))))
    typer.echo(
        f"{summary.run_dir}: {summary.total} cells, {summary.skipped} already done, "
        f"{summary.computed} computed in {summary.seconds:.1f} s "
        f"({summary.executor}, {summary.jobs} jobs)"
    )


def _print_plan(spec: Path, out: Path) -> None:
    """``robustq sweep --dry-run``: the grid's size per scheme and data condition, what is done."""
    from collections import Counter

    from robustq.sweep import RESULTS_FILE, ResultsStore, grid

    cells = grid(spec)
    typer.echo(f"{len(cells)} cells")
    for (scheme, condition), count in Counter((c.scheme, c.noise_label) for c in cells).items():
        typer.echo(f"  {scheme:<16} data {condition}: {count}")
    if (out / RESULTS_FILE).exists():
        with ResultsStore(out) as store:
            done = store.finished() & {c.key for c in cells}
        typer.echo(f"{out}: {len(done)} of them already done")
    else:
        typer.echo(f"{out}: no results yet")


@app.command()
@user_errors
def results(
    run_dir: Annotated[Path, typer.Argument(help="A sweep run folder.")],
    csv: Annotated[Path | None, typer.Option(help="Export every row as CSV.")] = None,
    parquet: Annotated[Path | None, typer.Option(help="Export every row as Parquet.")] = None,
    report_csv: Annotated[
        Path | None, typer.Option("--aggregate", help="Export the aggregate table as CSV.")
    ] = None,
) -> None:
    """Print a sweep's aggregate table (mean/std/min/max across seeds); export rows."""
    from robustq.sweep import aggregate, export, format_report, load_results

    typer.echo(format_report(aggregate(load_results(run_dir))))
    for path in export(run_dir, csv=csv, parquet=parquet, report=report_csv):
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A sweep run folder (holds results.sqlite).")],
    out: Annotated[
        Path | None,
        typer.Option(help="HTML file to write (default RUN_DIR/report.html; report.md beside)."),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Allowed OA loss against the clean model (0.01 = one point).")
    ] = 0.01,
    required: Annotated[
        str | None,
        typer.Option(help="Fault levels that must be tolerated, e.g. gaussian=0.1,bitflip=1e-4."),
    ] = None,
    data_condition: Annotated[
        str | None,
        typer.Option(
            help="Data condition the verdict is computed on: 'none' (clean data, the default), "
            "a data-noise label as `robustq results` prints it, or its index in the spec's "
            "data_noise list."
        ),
    ] = None,
) -> None:
    """Write a sweep's robustness report: one self-contained HTML page plus report.md."""
    from robustq.report import build_report

    result = build_report(
        run_dir, out, tolerance=tolerance, required=required, data_condition=data_condition
    )
    if result.verdict is not None:
        typer.echo(result.verdict.summary)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"sections: {', '.join(result.sections)}")
    typer.echo(f"report: {result.html_path}")
    typer.echo(f"summary: {result.md_path}")


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Output folder of the run.")] = Path("runs/demo"),
    epochs: int = 200,
    patience: int = 15,
    seed: int = 0,
    schemes: Annotated[str, typer.Option(help="Comma-separated schemes, or 'all'.")] = "all",
    qat_epochs: int = 10,
    test_limit: Annotated[
        int,
        typer.Option(help="Evaluate on a stratified sample of this many test pixels (0 = all)."),
    ] = 5000,
    small: Annotated[
        bool, typer.Option(help="A 120 x 80 scene, 40 per class (smoke test).")
    ] = False,
    sweep: Annotated[
        bool, typer.Option(help="End with a robustness sweep and its HTML report.")
    ] = True,
    jobs: Annotated[int | None, typer.Option(help="Sweep worker processes.")] = None,
) -> None:
    """Synthetic scene -> splits -> model_2d -> all TFLite variants -> evaluation table."""
    from robustq.convert import QATConfig, check_schemes
    from robustq.models import TrainConfig
    from robustq.pipeline import DemoConfig, run_demo

    chosen = check_schemes([s.strip() for s in schemes.split(",") if s.strip()])
    size = dict(scene_height=120, scene_width=80, train_size=40) if small else {}
    config = DemoConfig(
        seed=seed,
        train=TrainConfig(epochs=epochs, patience=patience, seed=seed),
        schemes=chosen,
        qat=QATConfig(epochs=qat_epochs, seed=seed),
        test_limit=test_limit,
        sweep=sweep,
        jobs=jobs,
        **size,
    )
    table = run_demo(out, config, log=lambda message: typer.echo(f"[demo] {message}", err=True))
    typer.echo(table.to_string(index=False, float_format="%.4f"))
    typer.echo(f"results in {out}")
    if config.sweep:
        typer.echo(f"report: {out / 'sweep' / 'report.html'}")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(app())


if __name__ == "__main__":
    main()
