"""Ensembles of perturbed copies of one variant: members, votes, degradation vs clean.

Members are the clean variant (optionally) plus ``copies`` perturbed copies
from :func:`robustq.perturb.members`. Each member is built, run on the test
split (and the training split when a stacking voter needs it) and dropped, so
memory holds predictions (members x samples x classes), never interpreters.
Voting is a pure function of those predictions: ``hard`` (majority of labels,
ties broken by the larger summed probability, then the lower class index),
``soft`` (argmax of summed probabilities) or ``classifier`` (a scikit-learn
RandomForestClassifier trained on the members' training-split probabilities
and the training labels; it never sees test labels).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustq.errors import ConfigError
from robustq.fileio import write_csv, write_json
from robustq.metrics import Scores, score
from robustq.runtime import DEFAULT_BATCH, predict

VOTINGS: tuple[str, ...] = ("hard", "soft", "classifier")


@dataclass(frozen=True)
class EnsembleConfig:
    """How an ensemble is formed and voted (the seed's ``copies=4, voting='hard'`` by default)."""

    copies: int = 4
    voting: str = "hard"
    include_clean: bool = True
    seed: int = 0
    classifier_params: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH
    threads: int | None = None
    kernels: str = "default"

    def __post_init__(self) -> None:
        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or self.copies < 0:
            raise ConfigError(f"copies must be an integer >= 0 (got {self.copies!r})")
        if self.voting not in VOTINGS:
            raise ConfigError(f"unknown voting {self.voting!r}; choose from {', '.join(VOTINGS)}")
        if self.copies == 0 and not self.include_clean:
            raise ConfigError("an ensemble needs members: copies >= 1 or include_clean")
        if not isinstance(self.classifier_params, Mapping):
            raise ConfigError("classifier_params must be a mapping of RandomForest parameters")


def vote_hard(probabilities: np.ndarray) -> np.ndarray:
    """Majority vote over members' labels; ties go to the larger summed probability.

    ``probabilities`` is members x samples x classes. A remaining exact tie
    goes to the lowest class index (``argmax`` picks the first maximum).
    """
    members, _, classes = probabilities.shape
    labels = probabilities.argmax(axis=2)  # members x samples
    votes = np.zeros(probabilities.shape[1:], dtype=np.float64)
    for member in range(members):
        np.add.at(votes, (np.arange(labels.shape[1]), labels[member]), 1.0)
    summed = probabilities.sum(axis=0, dtype=np.float64)
    # summed probability of any class is < members, so it only ever breaks vote ties
    return np.argmax(votes * (members + 1) + summed, axis=1)


def vote_soft(probabilities: np.ndarray) -> np.ndarray:
    """Argmax of the members' summed class probabilities (ties: lowest class index)."""
    return probabilities.sum(axis=0, dtype=np.float64).argmax(axis=1)


def stacking_features(probabilities: np.ndarray) -> np.ndarray:
    """Members x samples x classes -> samples x (members * classes) feature matrix."""
    members, samples, classes = probabilities.shape
    return probabilities.transpose(1, 0, 2).reshape(samples, members * classes)


def fit_voter(
    train_probabilities: np.ndarray,
    y_train: np.ndarray,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Any:
    """Fit the stacking voter (RandomForestClassifier) on training-split member probabilities.

    ``params`` are RandomForestClassifier keyword arguments (JSON-able);
    ``random_state`` defaults to ``seed``. Unknown parameters -> ConfigError.
    """
    from sklearn.ensemble import RandomForestClassifier

    options = {"n_estimators": 100, "random_state": seed, "n_jobs": 1, **(params or {})}
    try:
        voter = RandomForestClassifier(**options)
    except TypeError as exc:
        raise ConfigError(f"classifier parameters: {exc}") from None
    try:
        return voter.fit(stacking_features(train_probabilities), y_train)
    except ValueError as exc:
        raise ConfigError(f"classifier parameters: {exc}") from None


def vote_classifier(voter: Any, probabilities: np.ndarray, n_classes: int) -> np.ndarray:
    """Predict labels with a fitted stacking voter from test-split member probabilities."""
    del n_classes  # the voter's classes_ are the training labels 0..K-1
    return voter.predict(stacking_features(probabilities)).astype(np.int64)


@dataclass(frozen=True)
class SplitsPrediction:
    """A variant's class probabilities on a split's test (and train) samples.

    One per ensemble member, from :func:`predict_splits`. The clean variant's
    is what :func:`evaluate_ensemble` compares its members with; a caller
    that evaluates many ensembles of the same variant on the same data (a
    sweep) computes it once and passes it in. ``train`` is None unless a
    stacking voter needs it; ``seconds`` is the test inference time.
    """

    test: np.ndarray
    train: np.ndarray | None
    seconds: float


def predict_splits(
    model_bytes: bytes, splits: Any, config: EnsembleConfig | None = None
) -> SplitsPrediction:
    """Run a variant on the test split (and the train split for a stacking voter).

    Uses ``config``'s batch size, threads and kernels; the training split is
    predicted only when ``config.voting == "classifier"``.
    """
    config = config or EnsembleConfig()
    test = predict(model_bytes, splits.x_test, config.batch_size, config.threads, config.kernels)
    train = None
    if config.voting == "classifier":
        train = predict(
            model_bytes, splits.x_train, config.batch_size, config.threads, config.kernels
        ).probabilities
    return SplitsPrediction(test=test.probabilities, train=train, seconds=test.seconds)


@dataclass(frozen=True)
class EnsembleResult:
    """An ensemble's scores, its members' rows and the clean baseline it is compared with."""

    metrics: pd.DataFrame  # one row: the seed's columns for the ensemble + degradation
    members: pd.DataFrame  # one row per member
    confusion: pd.DataFrame
    scores: Scores
    clean_scores: Scores
    labels: np.ndarray  # ensemble's test labels
    clean_labels: np.ndarray
    records: list[dict[str, Any]]  # perturbation records of the perturbed members

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write inference_metrics.csv, members.csv, confusion_matrix.csv and members.json."""
        out = Path(out_dir)
        return [
            write_csv(out / "inference_metrics.csv", self.metrics),
            write_csv(out / "members.csv", self.members),
            write_csv(out / "confusion_matrix.csv", self.confusion, index=True),
            write_json(out / "members.json", self.records),
        ]


def nonfinite_rate(probabilities: np.ndarray) -> float:
    """Share of samples whose output holds a NaN or an infinity (samples x classes -> [0, 1]).

    A perturbed float model whose exponent bits flip can compute inf or NaN;
    its label for such a sample is then ``argmax`` of a non-finite row (the
    first NaN, or the first +inf), not a prediction. On board, a finiteness
    check on the output would catch exactly these samples.
    """
    if len(probabilities) == 0:
        return 0.0
    return float((~np.isfinite(probabilities).all(axis=1)).mean())


def degradation(
    scores: Scores,
    clean: Scores,
    labels: np.ndarray,
    clean_labels: np.ndarray,
    probabilities: np.ndarray | None = None,
    clean_probabilities: np.ndarray | None = None,
) -> dict[str, float]:
    """Differences from the clean baseline: delta OA/AA/kappa, flip rate, mean probability shift.

    The flip rate is the fraction of samples whose predicted label differs
    from the clean model's. The probability shift is the mean over samples of
    the total-variation distance ``0.5 * sum_k |p_k - p_clean_k|`` (0 = same
    output, 1 = disjoint); NaN when no probabilities are given (hard or
    classifier votes have none).
    """
    shift = float("nan")
    if probabilities is not None and clean_probabilities is not None:
        shift = float(0.5 * np.abs(probabilities - clean_probabilities).sum(axis=1).mean())
    return {
        "delta_accuracy": scores.accuracy - clean.accuracy,
        "delta_balanced_accuracy": scores.balanced_accuracy - clean.balanced_accuracy,
        "delta_kappa": scores.kappa - clean.kappa,
        "flip_rate": float(np.mean(labels != clean_labels)),
        "probability_shift": shift,
    }


def evaluate_ensemble(
    model_bytes: bytes,
    splits: Any,
    fault: Any,
    config: EnsembleConfig | None = None,
    targets: Any = None,
    clean: SplitsPrediction | None = None,
) -> EnsembleResult:
    """Evaluate an ensemble of perturbed copies of a variant against its clean baseline.

    Members = the clean variant (when ``config.include_clean``) + ``config.copies``
    copies perturbed with ``fault`` (a FaultSpec, dict or name) on
    ``targets``, seeded from ``config.seed`` (independent streams per member).
    ``clean`` is the clean variant's prediction on these very splits (from
    :func:`predict_splits`, with the same config) when the caller has it;
    otherwise it is computed here. Returns the ensemble's seed-style metrics
    with degradation columns, one row per member, and the ensemble's
    confusion matrix.
    """
    from robustq.perturb import members as perturbed_members

    config = config or EnsembleConfig()
    started = time.perf_counter()
    need_train = config.voting == "classifier"
    if clean is None or (need_train and clean.train is None):
        clean = predict_splits(model_bytes, splits, config)
    if len(clean.test) != len(splits.y_test):
        raise ConfigError(
            f"the clean prediction has {len(clean.test)} test samples, the splits "
            f"{len(splits.y_test)}: it was computed on other data"
        )

    clean_test = clean.test
    clean_labels = clean_test.argmax(axis=1)
    clean_scores = score(splits.y_test, clean_labels, splits.n_classes)
    test_probs: list[np.ndarray] = []
    train_probs: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []

    def add_member(name: str, prediction: SplitsPrediction) -> None:
        test = prediction.test
        labels = test.argmax(axis=1)
        member_scores = score(splits.y_test, labels, splits.n_classes)
        test_probs.append(test)
        if prediction.train is not None:
            train_probs.append(prediction.train)
        rows.append(
            {
                "member": name,
                **member_scores.row(prediction.seconds),
                **degradation(member_scores, clean_scores, labels, clean_labels, test, clean_test),
                "nonfinite_rate": nonfinite_rate(test),
            }
        )

    if config.include_clean:
        add_member("clean", clean)
    if config.copies:
        for index, result in enumerate(
            perturbed_members(
                model_bytes, fault, config.copies, config.seed, targets, config.threads
            )
        ):
            add_member(f"copy_{index}", predict_splits(result.model_bytes, splits, config))
            records.append(result.record)
    stacked = np.stack(test_probs)
    summed = None
    if config.voting == "hard":
        labels = vote_hard(stacked)
    elif config.voting == "soft":
        labels = vote_soft(stacked)
        summed = stacked.sum(axis=0) / len(stacked)
    else:
        voter = fit_voter(
            np.stack(train_probs), splits.y_train, config.classifier_params, config.seed
        )
        labels = vote_classifier(voter, stacked, splits.n_classes)
    ensemble_scores = score(splits.y_test, labels, splits.n_classes)
    elapsed = time.perf_counter() - started
    metrics = pd.DataFrame(
        [
            {
                **ensemble_scores.row(elapsed),
                **degradation(
                    ensemble_scores, clean_scores, labels, clean_labels, summed, clean_test
                ),
                "members": len(stacked),
                "voting": config.voting,
                "clean_accuracy": clean_scores.accuracy,
            }
        ]
    )
    return EnsembleResult(
        metrics=metrics,
        members=pd.DataFrame(rows),
        confusion=ensemble_scores.confusion_frame(),
        scores=ensemble_scores,
        clean_scores=clean_scores,
        labels=labels,
        clean_labels=clean_labels,
        records=records,
    )
