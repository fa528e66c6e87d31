"""The shipped reference variants match their manifest and the accuracy claims of the README."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1] / "tflite_models"


@pytest.fixture(scope="module")
def default_test_sample():
    from robustq.data import make_splits, subsample_test
    from robustq.synthetic import synthetic_scene

    splits = make_splits(synthetic_scene(seed=0), 250, 0.1, 0)
    return subsample_test(splits, 5000, 0)


def test_files_match_the_manifest():
    from robustq.convert import SCHEMES, read_manifest

    variants = read_manifest(ROOT)
    assert [v.scheme for v in variants] == list(SCHEMES)
    for v in variants:
        data = (ROOT / v.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == v.sha256, v.name
        assert len(data) == v.file_size
        assert v.parameter_count == 828_889


def test_reference_accuracy_reproduces_summary(default_test_sample):
    """Re-score every variant on the regenerated scene: the table in summary.csv, and the
    quantization claims (int8 within 2 points of float32, float16 within 0.5)."""
    from robustq.convert import read_manifest
    from robustq.evaluate import evaluate_bytes

    summary = pd.read_csv(ROOT / "summary.csv").set_index("scheme")
    oa = {}
    for v in read_manifest(ROOT):
        evaluation = evaluate_bytes(v.read_bytes(ROOT), default_test_sample, v.name)
        oa[v.name] = evaluation.scores.accuracy
        # kernels may round int arithmetic differently from the machine that wrote the table
        assert oa[v.name] == pytest.approx(summary.loc[v.name, "OA"], abs=0.003), v.name
    assert 0.80 <= oa["float32"] <= 0.95
    assert abs(oa["float16"] - oa["float32"]) <= 0.005
    for scheme in ("dynamic_int8", "int8", "int8_per_tensor", "int16x8"):
        assert abs(oa[scheme] - oa["float32"]) <= 0.02, scheme
