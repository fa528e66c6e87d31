"""The demo pipeline end to end on a small scene, through the Python API."""

from __future__ import annotations

import json

import pandas as pd

from robustq.convert import QATConfig
from robustq.models import TrainConfig
from robustq.pipeline import DemoConfig, run_demo


def test_run_demo_writes_every_artefact(tmp_path):
    config = DemoConfig(
        seed=2,
        train_size=40,
        scene_height=120,
        scene_width=80,
        train=TrainConfig(epochs=3, patience=2, batch_size=32, n_filters=8, seed=2),
        schemes=("float32", "float16", "int8"),
        calibration_size=32,
        qat=QATConfig(epochs=1),
        jobs=1,
    )
    messages: list[str] = []
    table = run_demo(tmp_path, config, log=messages.append)
    assert list(table.columns) == ["scheme", "size_kb", "OA", "AA", "kappa", "inference_time"]
    assert list(table["scheme"]) == ["float32", "float16", "int8"]
    assert table["size_kb"].iloc[0] > table["size_kb"].iloc[1] > table["size_kb"].iloc[2]
    assert ((table["OA"] > 0) & (table["OA"] <= 1)).all()
    for name in ("splits.npz", "model_2d.keras", "training_metrics.csv", "summary.csv"):
        assert (tmp_path / name).exists(), name
    manifest = json.loads((tmp_path / "variants" / "manifest.json").read_text())
    assert [v["scheme"] for v in manifest["variants"]] == ["float32", "float16", "int8"]
    for scheme in ("float32", "float16", "int8"):
        metrics = pd.read_csv(tmp_path / "eval" / scheme / "inference_metrics.csv")
        assert metrics["accuracy_score"].iloc[0] == table.set_index("scheme").loc[scheme, "OA"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["epochs"] == 3 and saved["schemes"] == ["float32", "float16", "int8"]
    assert any("splits" in m for m in messages)
    # the demo ends with a sweep and its report
    assert (tmp_path / "sweep" / "results.sqlite").exists()
    html = (tmp_path / "sweep" / "report.html").read_text()
    assert "<img" in html and "verdict" in html.lower()
    assert '<section id="datanoise">' in html  # clean vs noisy test data x weight faults
    assert (tmp_path / "sweep" / "report.md").exists()
    assert any(m.startswith("report:") for m in messages)
    noisy = [m for m in messages if m.startswith("clean OA under data noise gaussian(")]
    assert len(noisy) == 1 and "float32 " in noisy[0] and "int8 " in noisy[0]
    # no temporary files left behind
    assert not list(tmp_path.rglob("*.tmp"))
