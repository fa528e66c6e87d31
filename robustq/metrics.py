"""Classification scores with the seed's column names, computed with sklearn.metrics.

``accuracy_score``, ``balanced_accuracy_score``, ``cohen_kappa_score`` and the
per-class recall ``Class_0..Class_K-1`` make one row of
``inference_metrics.csv``; the confusion matrix (rows true, columns predicted)
goes to ``confusion_matrix.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from robustq.errors import InputError


@dataclass(frozen=True)
class Scores:
    """Overall accuracy, balanced accuracy, kappa, per-class recall and the confusion matrix."""

    accuracy: float
    balanced_accuracy: float
    kappa: float
    per_class: tuple[float, ...]
    confusion: np.ndarray  # K x K, rows = true class, columns = predicted class

    def row(self, inference_time: float | None = None) -> dict[str, float]:
        """The seed's ``inference_metrics.csv`` columns as an ordered dict."""
        row = {
            "accuracy_score": self.accuracy,
            "balanced_accuracy_score": self.balanced_accuracy,
            "cohen_kappa_score": self.kappa,
        }
        row.update({f"Class_{k}": recall for k, recall in enumerate(self.per_class)})
        if inference_time is not None:
            row["inference_time"] = inference_time
        return row

    def confusion_frame(self) -> pd.DataFrame:
        """The confusion matrix as a DataFrame indexed ``true_k`` with columns ``pred_k``."""
        k = len(self.confusion)
        return pd.DataFrame(
            self.confusion,
            index=[f"true_{i}" for i in range(k)],
            columns=[f"pred_{i}" for i in range(k)],
        )


def score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> Scores:
    """Score predicted labels against true labels for classes ``0..n_classes-1``.

    Per-class recall is 0 for a class absent from ``y_true`` (sklearn's
    ``zero_division=0``). Raises InputError when the arrays differ in length
    or are empty.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise InputError(
            f"labels and predictions must be equal-length 1-D arrays "
            f"(got {y_true.shape} and {y_pred.shape})"
        )
    labels = np.arange(n_classes)
    # balanced accuracy over the classes present; kappa is undefined (NaN) for one class
    with np.errstate(all="ignore"):
        kappa = float(skm.cohen_kappa_score(y_true, y_pred, labels=labels))
    return Scores(
        accuracy=float(skm.accuracy_score(y_true, y_pred)),
        balanced_accuracy=float(skm.balanced_accuracy_score(y_true, y_pred)),
        kappa=kappa,
        per_class=tuple(
            float(r)
            for r in skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        ),
        confusion=skm.confusion_matrix(y_true, y_pred, labels=labels),
    )
