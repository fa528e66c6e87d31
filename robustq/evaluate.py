"""Evaluating TFLite variants on a test split: predictions, scores and their CSV files.

The evaluator takes model bytes and a :class:`~robustq.data.Splits`, runs the
LiteRT runtime, scores the predictions, and (at the edge) writes the seed's
``inference_metrics.csv`` and ``confusion_matrix.csv``. It never knows how a
model was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustq.fileio import write_csv
from robustq.metrics import Scores, score
from robustq.runtime import DEFAULT_BATCH, Prediction, predict


@dataclass(frozen=True)
class Evaluation:
    """One model's prediction on the test split and its scores."""

    name: str
    prediction: Prediction
    scores: Scores

    def metrics_frame(self) -> pd.DataFrame:
        """One-row DataFrame with the seed's ``inference_metrics.csv`` columns."""
        return pd.DataFrame([self.scores.row(self.prediction.seconds)])


def evaluate_bytes(
    model_bytes: bytes,
    splits: Any,
    name: str = "model",
    batch_size: int = DEFAULT_BATCH,
    threads: int | None = None,
    kernels: str = "default",
) -> Evaluation:
    """Predict the test split of ``splits`` with a TFLite model and score it."""
    prediction = predict(model_bytes, splits.x_test, batch_size, threads, kernels)
    return Evaluation(name, prediction, score(splits.y_test, prediction.labels, splits.n_classes))


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """Write ``inference_metrics.csv`` and ``confusion_matrix.csv`` into ``out_dir``."""
    out = Path(out_dir)
    return [
        write_csv(out / "inference_metrics.csv", evaluation.metrics_frame()),
        write_csv(out / "confusion_matrix.csv", evaluation.scores.confusion_frame(), index=True),
    ]
