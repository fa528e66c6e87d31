"""The public API resolves, and `import robustq` stays light (no TensorFlow import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import robustq


def test_every_export_resolves():
    for name in robustq.__all__:
        assert getattr(robustq, name) is not None, name
    with pytest.raises(AttributeError):
        robustq.no_such_thing  # noqa: B018


def test_import_and_help_do_not_load_tensorflow():
    code = (
        "import sys, robustq, robustq.cli; "
        "print('tensorflow' in sys.modules, 'ai_edge_litert' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
