"""The robustness report of a sweep: one self-contained HTML page, a Markdown summary, figures.

:func:`build_report` turns a sweep run folder (its ``results.sqlite``, the
variants manifest, the splits and the training history its spec points to)
into ``report.html`` and ``report.md``; :func:`verdict` computes the
tolerated fault level of every scheme and the smallest scheme meeting a
required level from a results frame; :mod:`robustq.report.figures` holds
the plots, each a function returning a matplotlib Figure for notebooks.
Exports are resolved lazily so importing the package stays light, except
:func:`verdict`, bound eagerly because it shares its name with its module
(a submodule attribute would otherwise shadow the function).
"""

from __future__ import annotations

import importlib
from typing import Any

from robustq.report.verdict import verdict as verdict

_EXPORTS: dict[str, str] = {
    "build_report": "robustq.report.html",
    "locate_artefacts": "robustq.report.html",
    "ReportResult": "robustq.report.html",
    "RunArtefacts": "robustq.report.html",
    "REPORT_FILE": "robustq.report.html",
    "SECTIONS": "robustq.report.html",
    "parse_required": "robustq.report.verdict",
    "Verdict": "robustq.report.verdict",
    "FaultVerdict": "robustq.report.verdict",
    "Decision": "robustq.report.verdict",
    "DEFAULT_TOLERANCE": "robustq.report.verdict",
    "plot_degradation": "robustq.report.figures",
    "plot_layer_heatmap": "robustq.report.figures",
    "plot_confusion_matrices": "robustq.report.figures",
    "plot_classification_maps": "robustq.report.figures",
    "plot_training": "robustq.report.figures",
    "plot_data_noise": "robustq.report.figures",
    "two_axis_table": "robustq.report.conditions",
    "class_map": "robustq.report.figures",
    "figure_png": "robustq.report.figures",
}

__all__ = sorted([*_EXPORTS, "verdict"])


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robustq.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    """The public names, for tab completion."""
    return sorted(__all__)
