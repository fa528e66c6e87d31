"""Experiment: the effect of gaussian acquisition noise on test data, and of training with it.

Reproduces the seed's qualitative result on the DEFAULT synthetic scene
(``synthetic_scene(seed=0)``, 250 training samples per class, 10 %
validation, split seed 0): ``model_2d`` (seed defaults: Adam 0.001, batch 128,
up to 200 epochs, early stopping with patience 15) is trained twice, on
clean data and with gaussian noise on the training set (std 1 after scaling,
pa 0.1, pb 1, bc true), both are converted to float32 TFLite, and each is
evaluated with LiteRT on the clean test set and on the test set noised the
same way (``apply_to_splits(..., sets=("test",), seed=--noise-seed)``).
Prints the OA / AA (balanced accuracy) / kappa table and the OA drop that test
noise causes for each model.
Run: ``.venv/bin/python bench/data_noise_effect.py [--epochs 200] [--seed 0] [--csv out.csv]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    """Train both models, evaluate them on clean and noisy test data, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="training seed (and train noise)")
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the test noise")
    parser.add_argument("--std", type=float, default=1.0)
    parser.add_argument("--pa", type=float, default=0.1)
    parser.add_argument("--pb", type=float, default=1.0)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()

    import warnings

    import pandas as pd

    from robustq.acquisition import DataNoise, apply_to_splits
    from robustq.convert import to_tflite
    from robustq.data import make_splits
    from robustq.evaluate import evaluate_bytes
    from robustq.fileio import write_csv
    from robustq.models import TrainConfig, train
    from robustq.synthetic import synthetic_scene

    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    splits = make_splits(synthetic_scene(seed=0), 250, 0.1, 0)
    noise = DataNoise("gaussian", mean=0.0, std=args.std, pa=args.pa, pb=args.pb, bc=True)
    noisy_test = apply_to_splits(splits, noise, sets=("test",), seed=args.noise_seed)
    print(
        f"scene ready in {time.perf_counter() - start:.1f} s: train {len(splits.y_train)}, "
        f"val {len(splits.y_val)}, test {len(splits.y_test)}; noise {noise.label}",
        flush=True,
    )

    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    rows = []
    for training, data_noise in (("clean", None), ("gaussian noise on train", noise)):
        begin = time.perf_counter()
        result = train(splits, None, config, data_noise=data_noise, noise_sets=("train",))
        seconds = time.perf_counter() - begin
        model_bytes = to_tflite(result.model, "float32")
        print(
            f"trained ({training}): {len(result.history)} epochs, best {result.best_epoch}, "
            f"{seconds:.0f} s",
            flush=True,
        )
        for test_name, test_splits in (("clean", splits), ("gaussian noise", noisy_test)):
            scores = evaluate_bytes(model_bytes, test_splits).scores
            rows.append(
                {
                    "training": training,
                    "test": test_name,
                    "OA": scores.accuracy,
                    "AA": scores.balanced_accuracy,
                    "kappa": scores.kappa,
                }
            )

    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    oa = table.set_index(["training", "test"])["OA"]
    for training in ("clean", "gaussian noise on train"):
        drop = oa[(training, "clean")] - oa[(training, "gaussian noise")]
        print(f"OA drop under test noise, model trained {training}: {100 * drop:.2f} points")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.csv:
        write_csv(args.csv, table)


if __name__ == "__main__":
    main()
