"""Scores against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from robustq.errors import InputError
from robustq.metrics import score


def test_scores_match_hand_computation():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 1])
    s = score(y_true, y_pred, 4)
    assert s.accuracy == pytest.approx(7 / 10)
    assert s.per_class == pytest.approx((3 / 4, 1 / 2, 3 / 4, 0.0))
    # balanced accuracy averages recall over classes present in y_true
    assert s.balanced_accuracy == pytest.approx((3 / 4 + 1 / 2 + 3 / 4) / 3)
    # kappa = (po - pe) / (1 - pe); pe = sum(row_k * col_k) / n^2
    po, pe = 0.7, (4 * 4 + 2 * 3 + 4 * 3) / 100
    assert s.kappa == pytest.approx((po - pe) / (1 - pe))
    assert s.confusion.tolist() == [[3, 1, 0, 0], [1, 1, 0, 0], [0, 1, 3, 0], [0, 0, 0, 0]]
    row = s.row(1.5)
    assert list(row) == [
        "accuracy_score",
        "balanced_accuracy_score",
        "cohen_kappa_score",
        "Class_0",
        "Class_1",
        "Class_2",
        "Class_3",
        "inference_time",
    ]
    frame = s.confusion_frame()
    assert frame.loc["true_2", "pred_1"] == 1


def test_scores_reject_mismatched_input():
    with pytest.raises(InputError, match="equal-length"):
        score(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(InputError):
        score(np.array([]), np.array([]), 2)
