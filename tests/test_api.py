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


def test_exports_stay_the_exported_objects_after_every_submodule_is_imported():
    # In a fresh process: importing robustq.perturb or robustq.convert (as robustq's own
    # modules do) must not replace the functions robustq.perturb / robustq.convert.
    code = """
import importlib, pkgutil, robustq
first = {name: getattr(robustq, name) for name in robustq.__all__}
for info in pkgutil.walk_packages(robustq.__path__, "robustq."):
    if info.name != "robustq.__main__":
        importlib.import_module(info.name)
wrong = [name for name in robustq.__all__ if getattr(robustq, name) is not first[name]]
wrong += [n for n, m in robustq._EXPORTS.items()
          if getattr(robustq, n) is not getattr(importlib.import_module(m), n)]
assert callable(robustq.perturb) and callable(robustq.convert)
print(wrong)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
