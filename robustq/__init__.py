"""robustq: quantization robustness of edge classifiers.

The public API is re-exported here lazily (PEP 562), so ``import robustq``
does not import TensorFlow until a function that needs it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from robustq.errors import ConfigError, InputError, RobustqError

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # data
    "Scene": "robustq.data",
    "Splits": "robustq.data",
    "load_cube_scene": "robustq.data",
    "load_sample_scene": "robustq.data",
    "synthetic_scene": "robustq.synthetic",
    "synthetic_cube": "robustq.synthetic",
    "make_splits": "robustq.data",
    # models
    "model_2d": "robustq.models",
    "train": "robustq.models",
    "TrainConfig": "robustq.models",
    "TrainResult": "robustq.models",
    "load_model": "robustq.models",
    # conversion
    "SCHEMES": "robustq.convert",
    "Variant": "robustq.convert",
    "QATConfig": "robustq.convert",
    "convert": "robustq.convert",
    "to_tflite": "robustq.convert",
    "read_manifest": "robustq.convert",
    # runtime and evaluation
    "predict": "robustq.runtime",
    "Prediction": "robustq.runtime",
    "score": "robustq.metrics",
    "Scores": "robustq.metrics",
    "evaluate_bytes": "robustq.evaluate",
    "write_evaluation": "robustq.evaluate",
    "Evaluation": "robustq.evaluate",
    # the flatbuffer and perturbation engine
    "TFLiteModel": "robustq.tflite",
    "WeightTensor": "robustq.tflite",
    "inspect_table": "robustq.tflite",
    "FaultSpec": "robustq.faults",
    "FAULTS": "robustq.faults",
    "Targets": "robustq.perturb",
    "PerturbResult": "robustq.perturb",
    "perturb": "robustq.perturb",
    "members": "robustq.perturb",
    "per_layer": "robustq.perturb",
    "perturb_keras": "robustq.perturb",
    "perturb_float_path": "robustq.perturb",
    "requantize_from_float": "robustq.perturb",
    # ensembles
    "EnsembleConfig": "robustq.ensemble",
    "EnsembleResult": "robustq.ensemble",
    "evaluate_ensemble": "robustq.ensemble",
    "SplitsPrediction": "robustq.ensemble",
    "predict_splits": "robustq.ensemble",
    # acquisition noise on data
    "DataNoise": "robustq.acquisition",
    "apply_noise": "robustq.acquisition",
    "apply_to_splits": "robustq.acquisition",
    # edge targets
    "EdgeConfig": "robustq.edge",
    "evaluate_edge": "robustq.edge",
    "footprint": "robustq.edge",
    "check_target": "robustq.edge",
    "load_target": "robustq.edge",
    "compat_matrix": "robustq.edge",
    # sweeps
    "SweepSpec": "robustq.sweep",
    "load_spec": "robustq.sweep",
    "run_sweep": "robustq.sweep",
    "load_results": "robustq.sweep",
    "aggregate": "robustq.sweep",
    "export": "robustq.sweep",
    "layer_table": "robustq.sweep",
    # the report
    "build_report": "robustq.report",
    "two_axis_table": "robustq.report.conditions",
    # figures for notebooks
    "plot_training_curve": "robustq.plots",
    "show_statistics": "robustq.plots",
    # the whole pipeline
    "run_demo": "robustq.pipeline",
    "DemoConfig": "robustq.pipeline",
}

__all__ = ["ConfigError", "InputError", "RobustqError", "__version__", *_EXPORTS]

# Two public functions share their module's name. Importing such a module (which
# robustq itself does) binds the module as an attribute of this package, and that
# attribute would shadow the lazy export: ``robustq.perturb`` would turn from the
# function into the module after first use. Both modules are light (NumPy only, no
# TensorFlow), so these two functions are bound eagerly instead.
from robustq.convert import convert as convert  # noqa: E402
from robustq.perturb import perturb as perturb  # noqa: E402


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robustq' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
