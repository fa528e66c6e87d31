"""The seed-story notebook runs top to bottom (reduced settings) and produces its tables."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = (
    Path(__file__).resolve().parents[1] / "notebooks" / "model_noise_injection_ensemble.ipynb"
)


def test_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTQ_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("ROBUSTQ_NOTEBOOK_OUT", str(tmp_path / "run"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the training curve
    run = tmp_path / "run"
    for scheme in ("float32", "int8"):
        assert (run / "clean" / scheme / "inference_metrics.csv").exists()
        assert (run / "ensemble" / scheme / "members.csv").exists()
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "ensemble OA" in html and "accuracy_score" in html


def test_committed_notebook_has_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code), "commit the notebook executed"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
