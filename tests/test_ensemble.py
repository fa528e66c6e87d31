"""Ensembles: voting rules on hand-made predictions, and real ensembles of TFLite variants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustq.ensemble import (
    EnsembleConfig,
    evaluate_ensemble,
    fit_voter,
    stacking_features,
    vote_hard,
    vote_soft,
)
from robustq.errors import ConfigError


def test_hard_vote_majority_and_tie_rule():
    # 3 members, 3 samples, 3 classes
    p = np.array(
        [
            [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.4, 0.35, 0.25]],
            [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6]],
            [[0.1, 0.8, 0.1], [0.45, 0.44, 0.11], [0.2, 0.7, 0.1]],
        ]
    )
    # sample 0: votes 0,1,1 -> 1; sample 1: votes 0,1,0 -> 0 (majority, though soft says 1)
    # sample 2: votes 0,2,1 -> three-way tie -> larger summed probability: class 1 (1.35)
    assert vote_hard(p).tolist() == [1, 0, 1]
    assert vote_soft(p).tolist() == [1, 1, 1]
    # an exact tie of votes and sums goes to the lower class index
    tie = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    assert vote_hard(tie).tolist() == [0]


def test_stacking_features_layout():
    p = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    f = stacking_features(p)
    assert f.shape == (3, 8)
    assert f[1].tolist() == p[0, 1].tolist() + p[1, 1].tolist()


def test_voter_rejects_bad_parameters():
    p = np.random.default_rng(0).random((2, 20, 3))
    with pytest.raises(ConfigError, match="classifier parameters"):
        fit_voter(p, np.arange(20) % 3, {"n_trees": 5})


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown voting"):
        EnsembleConfig(voting="median")
    with pytest.raises(ConfigError):
        EnsembleConfig(copies=-1)
    with pytest.raises(ConfigError, match="members"):
        EnsembleConfig(copies=0, include_clean=False)


@pytest.mark.parametrize("scheme", ["float32", "int8"])
def test_seed_ensemble_hard_voting(tiny_variants, tiny_splits, scheme):
    """The seed's call: 4 noisy copies + the original, hard voting, std 0.1 x tensor std."""
    fault = {"name": "gaussian", "std_factor": 0.1}
    result = evaluate_ensemble(tiny_variants[scheme], tiny_splits, fault, EnsembleConfig(copies=4))
    assert len(result.members) == 5
    assert result.members["member"].tolist() == ["clean", "copy_0", "copy_1", "copy_2", "copy_3"]
    clean = result.members.iloc[0]
    assert clean["flip_rate"] == 0 and clean["delta_accuracy"] == 0
    copies = result.members.iloc[1:]
    # noise of 10% of each tensor's std changes some labels, but not most of them
    assert (copies["flip_rate"] > 0).all()
    assert (copies["flip_rate"] < 0.5).all()
    assert (copies["probability_shift"] > 0).all()
    # members are different models: their predictions are not all identical
    assert copies["accuracy_score"].nunique() > 1 or copies["flip_rate"].nunique() > 1
    m = result.metrics.iloc[0]
    assert m["members"] == 5
    assert m["accuracy_score"] == pytest.approx(np.mean(result.labels == tiny_splits.y_test))
    assert m["delta_accuracy"] == pytest.approx(m["accuracy_score"] - m["clean_accuracy"])
    assert result.confusion.to_numpy().sum() == len(tiny_splits.y_test)
    assert len(result.records) == 4


def test_zero_strength_ensemble_equals_clean(tiny_variants, tiny_splits):
    fault = {"name": "gaussian", "std": 0.0}
    result = evaluate_ensemble(
        tiny_variants["int8"], tiny_splits, fault, EnsembleConfig(copies=2, voting="soft")
    )
    assert (result.members["flip_rate"] == 0).all()
    assert np.array_equal(result.labels, result.clean_labels)
    assert result.metrics.iloc[0]["probability_shift"] == pytest.approx(0.0, abs=1e-7)


def test_ensemble_is_deterministic_and_seeded(tiny_variants, tiny_splits):
    fault = {"name": "gaussian", "std_factor": 0.2}
    a = evaluate_ensemble(
        tiny_variants["int8"], tiny_splits, fault, EnsembleConfig(copies=2, seed=4)
    )
    b = evaluate_ensemble(
        tiny_variants["int8"], tiny_splits, fault, EnsembleConfig(copies=2, seed=4)
    )
    c = evaluate_ensemble(
        tiny_variants["int8"], tiny_splits, fault, EnsembleConfig(copies=2, seed=5)
    )
    cols = ["accuracy_score", "flip_rate", "probability_shift"]
    pd.testing.assert_frame_equal(a.members[cols], b.members[cols])
    assert not a.members[cols].iloc[1:].equals(c.members[cols].iloc[1:])


def test_classifier_voting_trains_on_train_split_only(tiny_variants, tiny_splits, tmp_path):
    fault = {"name": "gaussian", "std_factor": 0.1}
    config = EnsembleConfig(
        copies=2, voting="classifier", classifier_params={"n_estimators": 25, "max_depth": 6}
    )
    result = evaluate_ensemble(tiny_variants["float32"], tiny_splits, fault, config)
    assert result.labels.shape == tiny_splits.y_test.shape
    assert set(np.unique(result.labels)) <= set(range(tiny_splits.n_classes))
    # a stacking voter over decent members is itself a decent classifier
    assert result.scores.accuracy > 0.5 * result.clean_scores.accuracy
    paths = result.save(tmp_path)
    assert {p.name for p in paths} == {
        "inference_metrics.csv",
        "members.csv",
        "confusion_matrix.csv",
        "members.json",
    }
    saved = pd.read_csv(tmp_path / "members.csv")
    assert len(saved) == 3 and "flip_rate" in saved.columns


def test_clean_member_can_be_left_out(tiny_variants, tiny_splits):
    fault = {"name": "bitflip", "ber": 1e-3}
    result = evaluate_ensemble(
        tiny_variants["int8"], tiny_splits, fault, EnsembleConfig(copies=3, include_clean=False)
    )
    assert result.members["member"].tolist() == ["copy_0", "copy_1", "copy_2"]
    assert result.metrics.iloc[0]["members"] == 3


def test_nonfinite_rate_counts_rows_with_nan_or_inf():
    from robustq.ensemble import nonfinite_rate

    p = np.full((8, 3), 1 / 3)
    assert nonfinite_rate(p) == 0.0
    p[1, 2] = np.nan
    p[4, 0] = np.inf
    p[4, 1] = np.nan  # one row, counted once
    p[6, 1] = -np.inf
    assert nonfinite_rate(p) == 3 / 8
    assert nonfinite_rate(np.zeros((0, 3))) == 0.0


def test_exponent_bit_flips_make_float_outputs_nonfinite(tiny_variants, tiny_splits):
    from robustq.ensemble import nonfinite_rate
    from robustq.perturb import perturb
    from robustq.runtime import predict

    fault = {"name": "bitflip", "ber": 0.02, "bits": "exponent"}
    result = evaluate_ensemble(
        tiny_variants["float32"], tiny_splits, fault, EnsembleConfig(copies=2, seed=3)
    )
    members = result.members.set_index("member")
    assert members.loc["clean", "nonfinite_rate"] == 0.0
    # ~2% of the exponent bits of every weight flipped: huge weights overflow to inf/NaN
    assert (members.loc[["copy_0", "copy_1"], "nonfinite_rate"] > 0).all()
    # the member's figure is that of its own output, recomputed from the same seed stream
    copy = perturb(tiny_variants["float32"], fault, seed=np.random.SeedSequence(3).spawn(2)[0])
    output = predict(copy.model_bytes, tiny_splits.x_test, threads=1).probabilities
    assert members.loc["copy_0", "nonfinite_rate"] == nonfinite_rate(output)
    # int8 weights cannot overflow: same fault on stored int8 bits keeps outputs finite
    int8 = evaluate_ensemble(
        tiny_variants["int8"],
        tiny_splits,
        {"name": "bitflip", "ber": 0.02},
        EnsembleConfig(copies=2, seed=3),
    )
    assert (int8.members["nonfinite_rate"] == 0).all()
