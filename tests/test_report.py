"""The robustness report: built from real tiny sweeps, sections present exactly when their data is.

One base sweep (float32 and int8 x gaussian at 3 levels x 2 seeds x single
model and a 2-copy ensemble: 24 cells of the tiny model) feeds most tests;
a few 1-scheme sweeps of 2 cells switch one input off at a time (training
history, cube positions, splits file), and one layer-wise sweep feeds the
heatmap. The verdict is checked against a hand-computed synthetic frame,
and the page is opened in headless Chromium when it is installed.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustq.errors import ConfigError, InputError
from robustq.report import build_report, parse_required, verdict
from robustq.report.figures import class_map
from robustq.sweep import SweepSpec, load_results, run_sweep

CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_RE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def make_data_dir(folder: Path, splits, variants_dir: Path, training: Path | None) -> Path:
    """A run's inputs as ``robustq demo`` lays them out: splits, variants/, training history."""
    folder.mkdir(parents=True, exist_ok=True)
    splits.save(folder / "splits.npz")
    (folder / "variants").symlink_to(variants_dir, target_is_directory=True)
    if training is not None:
        shutil.copy(training, folder / "training_metrics.csv")
    return folder


def sweep(data_dir: Path, run: Path, **changes) -> Path:
    spec = {
        "variants": str(data_dir / "variants"),
        "splits": str(data_dir / "splits.npz"),
        "schemes": ["int8"],
        "faults": [{"name": "gaussian", "levels": [0, 0.3]}],
        "seeds": 1,
        "ensemble": {"copies": 0},
    }
    spec.update(changes)
    run_sweep(SweepSpec.from_dict(spec), run, jobs=1, progress=False)
    return run


@pytest.fixture(scope="module")
def training_csv(tiny_run) -> Path:
    return Path(tiny_run.model_path).parent / "training_metrics.csv"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny_splits, tiny_variants_dir, training_csv) -> Path:
    return make_data_dir(
        tmp_path_factory.mktemp("report") / "data", tiny_splits, tiny_variants_dir, training_csv
    )


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, data_dir) -> Path:
    """2 schemes x gaussian at 3 levels x 2 seeds x (single model, 2-copy hard ensemble)."""
    return sweep(
        data_dir,
        tmp_path_factory.mktemp("report_run") / "run",
        schemes=["float32", "int8"],
        faults=[{"name": "gaussian", "levels": [0, 0.1, 0.3]}],
        seeds=2,
        ensemble=[{"copies": 0}, {"copies": 2, "voting": "hard"}],
    )


@pytest.fixture(scope="module")
def base_report(base_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_out") / "report.html"
    return build_report(base_run, out, required={"gaussian": 0.1})


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMAGE_RE.findall(page)]


def section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)">', page)


# --------------------------------------------------------------------------- the full report
def test_full_report_has_every_section_with_data(base_report):
    assert base_report.sections == [
        "identity",
        "verdict",
        "baseline",
        "degradation",
        "confusion",
        "maps",
        "training",
    ]
    page = base_report.html_path.read_text(encoding="utf-8")
    assert section_ids(page) == base_report.sections
    assert "layers" not in base_report.sections  # the sweep is not layer-wise
    assert not base_report.notes, base_report.notes  # the shown cell reproduced its row
    # identity: data set, split sizes, seeds, versions and the spec
    for text in (
        "synthetic-pavia",
        "train ",
        "validation ",
        "repeat(s)",
        "numpy",
        "&quot;schemes&quot;",
    ):
        assert text in page
    # ensemble vs single: both settings are configurations of the verdict
    assert "int8 x2 hard +clean" in page and "int8 single" in page
    assert base_report.html_path.with_suffix(".md") == base_report.md_path


def test_report_is_self_contained(base_report):
    page = base_report.html_path.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "@import" not in page and "url(" not in page


def test_images_are_valid_png(base_report):
    import matplotlib.image as mpimg

    found = images(base_report.html_path.read_text(encoding="utf-8"))
    # OA curves, flip-rate curves, confusion matrices, maps, training curve
    assert len(found) == 5
    for png in found:
        assert png.startswith(PNG_SIGNATURE)
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0.01  # not a blank canvas


def test_markdown_summary(base_report):
    text = base_report.md_path.read_text(encoding="utf-8")
    assert text.startswith("# robustq robustness report")
    for heading in ("## Run identity", "## Clean baseline", "## Verdict"):
        assert heading in text
    assert base_report.verdict.summary in text
    assert "| float32" in text and "| int8" in text


def test_report_verdict_matches_the_results(base_run, base_report):
    frame = load_results(base_run)
    again = verdict(frame, 0.01, {"gaussian": 0.1})
    reported = {(r.configuration, r.fault): r.tolerated_level for r in base_report.verdict.rows}
    assert {(r.configuration, r.fault): r.tolerated_level for r in again.rows} == reported
    # by hand: mean OA per level against the clean OA, the single-model int8 configuration
    rows = frame[(frame["scheme"] == "int8") & (frame["copies"] == 0)]
    clean = rows["clean_accuracy"].mean()
    means = rows.groupby("level")["accuracy_score"].mean().sort_index()
    tolerated = None
    for level, mean in means.items():
        if clean - mean > 0.01 + 1e-12:
            break
        tolerated = level
    assert reported[("int8 single", "gaussian")] == tolerated
    # the baseline table shows sizes from the manifest next to the clean scores
    page = base_report.html_path.read_text(encoding="utf-8")
    assert "file size (bytes)" in page and "parameter bytes" in page and "samples/s" in page


def test_default_output_path_and_tolerance_change(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    result = build_report(run, tolerance=0.5)
    assert result.html_path == run / "report.html"
    assert result.md_path == run / "report.md"
    # half the accuracy may be lost: every configuration tolerates the strongest level
    assert {r.tolerated_level for r in result.verdict.rows} == {0.3}
    assert result.verdict.overall is None  # nothing required: no decision, said plainly
    assert "No required fault level was given" in result.html_path.read_text(encoding="utf-8")


def test_unmet_requirement_is_stated_plainly(base_run, tmp_path):
    # a level stronger than any tested one cannot be shown to be tolerated
    result = build_report(base_run, tmp_path / "r.html", required="gaussian=5")
    assert result.verdict.overall.chosen is None
    assert result.verdict.summary.startswith("No configuration meets the requirement")
    assert "No configuration meets" in (tmp_path / "r.md").read_text()
    assert 'class="decision none"' in result.html_path.read_text()
    with pytest.raises(ConfigError, match="no such fault"):
        build_report(base_run, tmp_path / "r.html", required={"bitflip": 1e-4})
    with pytest.raises(ConfigError, match=r"\.html"):
        build_report(base_run, tmp_path / "r.txt")


# --------------------------------------------------------------------------- sections switch off
def test_no_training_history_no_training_section(tmp_path, tiny_splits, tiny_variants_dir):
    data = make_data_dir(tmp_path / "data", tiny_splits, tiny_variants_dir, training=None)
    result = build_report(sweep(data, tmp_path / "run"))
    assert "training" not in result.sections
    assert {"identity", "verdict", "baseline", "degradation", "confusion", "maps"} <= set(
        result.sections
    )


def test_sample_table_splits_give_no_maps(tmp_path, tiny_splits, tiny_variants_dir, training_csv):
    table_splits = replace(tiny_splits, shape=None, positions=None)
    data = make_data_dir(tmp_path / "data", table_splits, tiny_variants_dir, training_csv)
    result = build_report(sweep(data, tmp_path / "run"))
    assert "maps" not in result.sections
    assert {"confusion", "training"} <= set(result.sections)
    assert len(images(result.html_path.read_text())) == 4


def test_missing_splits_file_is_a_note_not_a_failure(tmp_path, tiny_splits, tiny_variants_dir):
    data = make_data_dir(tmp_path / "data", tiny_splits, tiny_variants_dir, training=None)
    run = sweep(data, tmp_path / "run")
    (data / "splits.npz").unlink()
    result = build_report(run)
    assert "confusion" not in result.sections and "maps" not in result.sections
    assert any("splits file not found" in note for note in result.notes)
    assert "splits file not found" in result.html_path.read_text()


def test_layerwise_run_has_heatmaps(tmp_path, tiny_splits, tiny_variants_dir):
    data = make_data_dir(tmp_path / "data", tiny_splits, tiny_variants_dir, training=None)
    run = sweep(data, tmp_path / "run", faults=[{"name": "gaussian", "levels": [0.5, 1.0]}])
    assert "layers" not in build_report(run).sections
    layered = sweep(
        data,
        tmp_path / "layered",
        faults=[{"name": "gaussian", "levels": [0.5, 1.0]}],
        layerwise=True,
    )
    result = build_report(layered)
    assert "layers" in result.sections
    # only layer-wise cells: no whole-model curves, verdict or shown setting
    assert result.sections == ["identity", "baseline", "layers"]
    assert len(images(result.html_path.read_text())) == 1


# --------------------------------------------------------------------------- the verdict by hand
def synthetic_frame(with_clean_column: bool = False) -> pd.DataFrame:
    """Two schemes, two faults, two seeds, with OA values whose verdict is worked out below."""
    accuracy = {
        # scheme, fault, level: (seed 0, seed 1)
        ("float32", "gaussian", 0.0): (0.90, 0.90),  # clean 0.90
        ("float32", "gaussian", 0.1): (0.895, 0.893),  # mean 0.894, drop 0.006: within
        ("float32", "gaussian", 0.2): (0.89, 0.88),  # mean 0.885, drop 0.015: fails
        ("float32", "gaussian", 0.4): (0.90, 0.90),  # within again, but after a failure
        ("float32", "bitflip", 1e-4): (0.899, 0.897),  # within
        ("float32", "bitflip", 1e-3): (0.70, 0.72),  # fails
        ("int8", "gaussian", 0.0): (0.88, 0.88),  # clean 0.88
        ("int8", "gaussian", 0.1): (0.875, 0.873),  # within
        ("int8", "gaussian", 0.2): (0.87, 0.87),  # drop exactly 0.01: within
        ("int8", "gaussian", 0.4): (0.80, 0.82),  # fails
        ("int8", "bitflip", 1e-4): (0.85, 0.86),  # drop 0.025: fails at the weakest level
        ("int8", "bitflip", 1e-3): (0.60, 0.61),
    }
    rows = []
    for (scheme, fault, level), values in accuracy.items():
        for seed, value in enumerate(values):
            row = {"scheme": scheme, "fault": fault, "level": level, "seed": seed}
            row["accuracy_score"] = value
            if with_clean_column:
                row["clean_accuracy"] = 0.90 if scheme == "float32" else 0.88
            rows.append(row)
    return pd.DataFrame(rows)


SIZES = {"float32": 1000, "int8": 300}


@pytest.mark.parametrize("with_clean_column", [False, True])
def test_verdict_against_a_hand_computed_case(with_clean_column):
    frame = synthetic_frame(with_clean_column)
    result = verdict(frame, 0.01, {"gaussian": 0.2}, SIZES)
    table = {(r.scheme, r.fault): r for r in result.rows}
    assert table["float32", "gaussian"].tolerated_level == 0.1
    assert table["float32", "gaussian"].first_failing_level == 0.2
    assert table["float32", "gaussian"].accuracy_at_tolerated == pytest.approx(0.894)
    assert table["float32", "bitflip"].tolerated_level == 1e-4
    assert table["int8", "gaussian"].tolerated_level == 0.2
    assert table["int8", "gaussian"].first_failing_level == 0.4
    assert table["int8", "bitflip"].tolerated_level is None
    assert table["int8", "bitflip"].first_failing_level == 1e-4
    assert table["int8", "gaussian"].clean_accuracy == pytest.approx(0.88)
    # gaussian at 0.2: only int8 meets it, and it is the smaller one anyway
    assert table["int8", "gaussian"].meets_required is True
    assert table["float32", "gaussian"].meets_required is False
    assert table["float32", "bitflip"].meets_required is None  # not required
    assert result.overall.chosen == "int8"
    assert result.overall.candidates == ("int8",)
    assert result.summary.startswith("Fly int8 (300 bytes)")


def test_verdict_choice_is_the_smallest_meeting_every_requirement():
    frame = synthetic_frame()
    both = verdict(frame, 0.01, {"gaussian": 0.1}, SIZES)
    assert both.overall.candidates == ("int8", "float32")  # smallest first
    assert both.overall.chosen == "int8"
    # without sizes the order falls back to the scheme order
    assert verdict(frame, 0.01, {"gaussian": 0.1}).overall.chosen == "float32"
    # gaussian 0.2 needs int8, bitflip 1e-4 needs float32: nobody meets both
    none = verdict(frame, 0.01, "gaussian=0.2,bitflip=1e-4", SIZES)
    assert [d.chosen for d in none.decisions] == ["int8", "float32", None]
    assert none.overall.chosen is None
    assert none.summary.startswith("No configuration meets the requirement")
    # a looser tolerance moves the tolerated levels
    loose = {(r.scheme, r.fault): r.tolerated_level for r in verdict(frame, 0.02).rows}
    assert loose["float32", "gaussian"] == 0.4 and loose["int8", "gaussian"] == 0.2


def test_verdict_input_errors():
    frame = synthetic_frame()
    with pytest.raises(ConfigError, match="tolerance"):
        verdict(frame, -0.1)
    with pytest.raises(ConfigError, match="no such fault"):
        verdict(frame, 0.01, {"stuck_at": 0.1})
    with pytest.raises(InputError, match="no clean baseline"):
        verdict(frame[frame["level"] > 0])
    with pytest.raises(InputError, match="lacks column"):
        verdict(frame.drop(columns=["accuracy_score"]))
    assert parse_required("gaussian=0.1, bitflip=1e-4") == {"gaussian": 0.1, "bitflip": 1e-4}
    assert parse_required(None) == {} and parse_required("") == {}
    for bad in ("gaussian", "gaussian=lots", "gaussian=-1", "=0.1", "gaussian=nan"):
        with pytest.raises(ConfigError):
            parse_required(bad)


def test_figures_for_notebooks():
    from matplotlib.figure import Figure

    from robustq.report.figures import figure_png, plot_confusion_matrices, plot_degradation

    frame = synthetic_frame(with_clean_column=True)
    for band in ("minmax", "std"):
        figure = plot_degradation(frame, band=band, tolerance=0.01)
        assert isinstance(figure, Figure)
        assert len([a for a in figure.axes if a.get_visible()]) == 2  # one panel per fault
        assert figure_png(figure).startswith(PNG_SIGNATURE)
    with pytest.raises(ConfigError, match="band"):
        plot_degradation(frame, band="iqr")
    with pytest.raises(ConfigError, match="unknown metric"):
        plot_degradation(frame, metric="f1")
    matrix = np.array([[5, 1], [0, 4]])
    figure = plot_confusion_matrices({"clean": matrix, "perturbed": matrix[::-1]}, ["a", "b"])
    assert figure_png(figure).startswith(PNG_SIGNATURE)


def test_class_map_places_labels_at_positions():
    image = class_map((2, 3), np.array([0, 4, 5]), np.array([1, 2, 0]))
    assert image.shape == (2, 3)
    assert image[0, 0] == 1 and image[1, 1] == 2 and image[1, 2] == 0
    assert np.isnan(image[0, 1])
    with pytest.raises(InputError, match="outside"):
        class_map((2, 3), np.array([6]), np.array([1]))


# --------------------------------------------------------------------------- bad run folders
def test_missing_and_corrupt_run_folders(tmp_path):
    with pytest.raises(InputError, match="run folder not found"):
        build_report(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no sweep results"):
        build_report(empty)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        build_report(a_file)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "results.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="results") as info:
        build_report(garbage)
    assert "\n" not in str(info.value)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "results.sqlite") as db:
        db.execute("CREATE TABLE other (x INTEGER)")
    with pytest.raises(InputError, match="no finished cells"):
        build_report(foreign)
    assert not (garbage / "report.html").exists() and not (foreign / "report.html").exists()


def test_corrupt_rows_are_an_input_error(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    with sqlite3.connect(run / "results.sqlite") as db:
        db.execute("UPDATE results SET row = '{not json'")
    with pytest.raises(InputError, match="corrupt"):
        build_report(run)


# --------------------------------------------------------------------------- a real browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_page_renders_in_headless_chromium(base_report, tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "shot.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        "--window-size=1280,4000",
        base_report.html_path.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    log = done.stdout + done.stderr
    assert shot.is_file() and shot.stat().st_size > 20_000, log[-2000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (4000, 1280)
    assert pixels.std() > 0.05  # text and figures, not a blank page
    assert "Uncaught" not in log and "ERROR:CONSOLE" not in log, log[-2000:]


def test_edge_section_only_with_edge_outputs(
    base_run, base_report, tmp_path, tiny_splits, tiny_variants
):
    """`robustq edge --out RUN_DIR/edge/<name>` outputs appear as their own section."""
    from robustq.edge import check_target, evaluate_edge, footprint, save_edge

    assert "edge" not in base_report.sections
    run = tmp_path / "run"
    shutil.copytree(base_run, run, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    blob = tiny_variants["int8"]
    result = evaluate_edge(blob, tiny_splits, "default,reference", latency_calls=5)
    save_edge(run / "edge" / "int8", result, footprint(blob), [check_target(blob, "micro")])
    report = build_report(run, tmp_path / "report.html", required={"gaussian": 0.1})
    assert "edge" in report.sections
    page = (tmp_path / "report.html").read_text()
    assert section_ids(page).index("edge") < section_ids(page).index("training")
    assert "tflite_micro" in page and "latency_median_ms" in page and "CONV_2D" in page


# --------------------------------------------------------------------------- data noise x faults
NOISY = "gaussian(mean=0,std=1,pa=0.3,pb=1,bc=True)"


def two_axis_frame() -> pd.DataFrame:
    """Hand-made rows: int8 under gaussian weight noise, on clean and on noisy data, 2 seeds."""
    accuracy = {  # (data condition, level): per-seed OA; clean OA per condition below
        ("none", 0.0): (0.90, 0.90),
        ("none", 0.2): (0.86, 0.84),  # weight fault alone: -0.05
        (NOISY, 0.0): (0.80, 0.80),  # data noise alone: -0.10
        (NOISY, 0.2): (0.70, 0.72),  # both: -0.19, interaction -0.04
    }
    clean = {"none": 0.90, NOISY: 0.80}
    rows = []
    for (condition, level), values in accuracy.items():
        for seed, value in enumerate(values):
            rows.append(
                {
                    "scheme": "int8",
                    "fault": "gaussian",
                    "parameter": "std_factor",
                    "level": level,
                    "seed": seed,
                    "repeat": seed,
                    "data_noise_label": condition,
                    "accuracy_score": value,
                    "clean_accuracy": clean[condition],
                }
            )
    return pd.DataFrame(rows)


def test_two_axis_table_against_a_hand_computed_case():
    from robustq.report.conditions import two_axis_table
    from robustq.report.verdict import whole_model_rows

    table = two_axis_table(two_axis_frame()).set_index(["data_noise", "level"])
    assert len(table) == 4 and (table["seeds"] == 2).all()
    both = table.loc[(NOISY, 0.2)]
    assert both["OA"] == pytest.approx(0.71)
    assert both["clean_OA"] == pytest.approx(0.80)
    assert both["dOA_data"] == pytest.approx(-0.10)
    assert both["dOA_fault"] == pytest.approx(-0.05)
    assert both["dOA_total"] == pytest.approx(-0.19)
    assert both["interaction"] == pytest.approx(-0.04)
    assert table.loc[("none", 0.2), "dOA_data"] == pytest.approx(0.0)
    assert table.loc[("none", 0.2), "interaction"] == pytest.approx(0.0)
    assert table.loc[(NOISY, 0.0), "dOA_total"] == pytest.approx(-0.10)
    # the verdict side sees the clean-data rows only
    assert set(whole_model_rows(two_axis_frame())["data_noise_label"]) == {"none"}
    result = verdict(two_axis_frame(), 0.01)
    assert result.rows[0].clean_accuracy == pytest.approx(0.90)
    assert result.rows[0].tolerated_level == 0.0  # 0.85 at 0.2 is 5 points down
    # only noisy data in a run: it is its own reference
    only = two_axis_frame()
    only = only[only["data_noise_label"] == NOISY]
    alone = two_axis_table(only).set_index("level")
    assert alone.loc[0.2, "dOA_total"] == pytest.approx(-0.09)
    assert alone.loc[0.2, "dOA_data"] == pytest.approx(0.0)
    # the recommended configuration under the other data condition, at the required level
    # (0.1 is not tested: the smallest tested level above it, 0.2, is reported)
    from robustq.report.html import _chosen_under_noise

    frame = two_axis_frame()
    for required in (0.2, 0.1):
        result = verdict(frame, 0.06, {"gaussian": required})
        chosen, lines = _chosen_under_noise(two_axis_table(frame), result, "none")
        assert chosen == "int8"
        assert lines == [
            f"{NOISY}: clean model 0.8000 (-10.0 points); gaussian at 0.2: 0.7100 (-19.0 points)"
        ]
    strict = verdict(frame, 0.01, {"gaussian": 0.2})  # nothing is chosen
    assert _chosen_under_noise(two_axis_table(frame), strict, "none") == ("", [])
    with pytest.raises(InputError, match="lacks column.*clean_accuracy"):
        two_axis_table(two_axis_frame().drop(columns=["clean_accuracy"]))


def test_data_noise_figure_for_notebooks():
    from robustq.report.figures import figure_png, plot_data_noise

    figure = plot_data_noise(two_axis_frame())
    panels = [a for a in figure.axes if a.get_title()]
    assert [a.get_title() for a in panels] == ["int8: gaussian"]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["no fault", "0", "0.2"]
    assert len(panels[0].get_yticklabels()) == 2  # clean data, noisy data
    numbers = sorted(t.get_text() for t in panels[0].texts)
    assert numbers == sorted(["0.900", "0.900", "0.850", "0.800", "0.800", "0.710"])
    assert figure_png(figure).startswith(PNG_SIGNATURE)
    # colour = OA change against the clean model on clean data (0.90), saturating at -0.3
    shown = panels[0].images[0].get_array()
    assert np.allclose(shown, [[0.0, 0.0, -0.05], [-0.10, -0.10, -0.19]])
    with pytest.raises(ConfigError, match="saturation"):
        plot_data_noise(two_axis_frame(), saturation=0)


@pytest.fixture(scope="module")
def noise_report(tmp_path_factory, data_dir):
    """2 schemes x (clean data, gaussian data noise) x 2 fault models: a real two-axis sweep."""
    run = sweep(
        data_dir,
        tmp_path_factory.mktemp("noise_report") / "run",
        schemes=["float32", "int8"],
        faults=[{"name": "gaussian", "levels": [0, 0.3]}, {"name": "bitflip", "levels": [1e-3]}],
        data_noise=[None, {"name": "gaussian", "std": 1, "pa": 0.3, "pb": 1}],
        test_limit=600,
    )
    return run, build_report(run, required={"gaussian": 0.3})


def test_report_shows_data_noise_x_weight_faults(noise_report):
    from robustq.report.conditions import two_axis_table

    run, report = noise_report
    assert report.sections[:5] == ["identity", "verdict", "baseline", "degradation", "datanoise"]
    assert not report.notes, report.notes  # the shown cell reproduced its row
    page = report.html_path.read_text(encoding="utf-8")
    section = page.split('<section id="datanoise">')[1].split("</section>")[0]
    assert len(images(section)) == 1
    assert NOISY in section and "interaction" in section
    frame = load_results(run)
    clean_rows = frame[frame["data_noise"] == ""]
    # the verdict and the baseline are computed on the clean-data cells alone
    expected = verdict(clean_rows, 0.01, {"gaussian": 0.3})
    assert [(r.configuration, r.fault, r.tolerated_level) for r in report.verdict.rows] == [
        (r.configuration, r.fault, r.tolerated_level) for r in expected.rows
    ]
    baseline = page.split('<section id="baseline">')[1].split("</section>")[0]
    for scheme in ("float32", "int8"):
        oa = clean_rows.loc[clean_rows["scheme"] == scheme, "clean_accuracy"].mean()
        assert f"{oa:.4f}" in baseline
    assert "data noise on the test sample" in page
    # every number of the table is the mean of its rows
    table = two_axis_table(frame)
    assert len(table) == 2 * 2 * 3
    for _, row in table.iterrows():
        cells = frame[
            (frame["scheme"] == row["configuration"])
            & (frame["data_noise_label"] == row["data_noise"])
            & (frame["fault"] == row["fault"])
            & (frame["level"] == row["level"])
        ]
        assert row["OA"] == pytest.approx(cells["accuracy_score"].mean())
        assert f"{row['OA']:.4f}" in section
    noisy = table[table["data_noise"] == NOISY]
    assert (noisy["dOA_data"] < 0).all()  # 30 % of the samples drowned in std-1 noise
    markdown = report.md_path.read_text(encoding="utf-8")
    assert "## Data noise x weight faults" in markdown
    # the recommended configuration's figures under the noisy data, from the same table
    loose = build_report(run, run / "loose.html", tolerance=1.0, required={"gaussian": 0.3})
    markdown = loose.md_path.read_text(encoding="utf-8")
    chosen = loose.verdict.overall.chosen
    assert chosen is not None  # a tolerance of 100 points tolerates everything
    row = table[
        (table["configuration"] == chosen)
        & (table["data_noise"] == NOISY)
        & (table["fault"] == "gaussian")
        & (table["level"] == 0.3)
    ].iloc[0]
    line = (
        f"- {NOISY}: clean model {row['clean_OA']:.4f} ({100 * row['dOA_data']:+.1f} "
        f"points); gaussian at 0.3: {row['OA']:.4f} ({100 * row['dOA_total']:+.1f} points)"
    )
    assert line in markdown
    assert f"| int8 | {NOISY} |" in markdown


def test_report_verdict_on_a_chosen_data_condition(noise_report, tmp_path):
    run, _ = noise_report
    frame = load_results(run)
    noisy_rows = frame[frame["data_noise"] != ""]
    by_label = build_report(
        run, tmp_path / "noisy.html", required={"gaussian": 0.3}, data_condition=NOISY
    )
    by_index = build_report(
        run, tmp_path / "index.html", required={"gaussian": 0.3}, data_condition="1"
    )
    expected = verdict(noisy_rows, 0.01, {"gaussian": 0.3})
    for report in (by_label, by_index):
        assert [(r.configuration, r.fault, r.clean_accuracy) for r in report.verdict.rows] == [
            (r.configuration, r.fault, r.clean_accuracy) for r in expected.rows
        ]
        # the shown cell is re-evaluated on the same noisy draw and reproduces its row
        assert not report.notes, report.notes
        assert "datanoise" in report.sections
    page = by_label.html_path.read_text(encoding="utf-8")
    assert f"layers on: {NOISY})" in page
    baseline = page.split('<section id="baseline">')[1].split("</section>")[0]
    oa = noisy_rows.loc[noisy_rows["scheme"] == "int8", "clean_accuracy"].mean()
    assert f"{oa:.4f}" in baseline
    with pytest.raises(ConfigError, match="unknown data condition 'salt'; the run has: none; "):
        build_report(run, tmp_path / "x.html", data_condition="salt")
    with pytest.raises(ConfigError, match="data condition 2: the run has 2"):
        build_report(run, tmp_path / "x.html", data_condition=2)
    assert not (tmp_path / "x.html").exists()


def test_nonfinite_outputs_are_named_in_the_degradation_section():
    from robustq.report.html import _nonfinite_text

    table = pd.DataFrame(
        {
            "configuration": ["float32"] * 3 + ["int8"] * 2,
            "fault": ["bitflip"] * 5,
            "level": [1e-5, 1e-4, 1e-3, 1e-4, 1e-3],
            "nonfinite_mean": [0.178, 0.9, 1.0, 0.0, 0.0],
        }
    )
    text = _nonfinite_text(table)
    assert "float32 under bitflip from 1e-05 (17.8% of samples)" in text
    assert "int8" not in text
    assert _nonfinite_text(table.assign(nonfinite_mean=0.0)) == ""
    assert _nonfinite_text(table.drop(columns=["nonfinite_mean"])) == ""
