"""Atomic writes: whole file or nothing, normal permissions, no temp files left."""

from __future__ import annotations

import os
import stat

import pytest

from robustq.fileio import atomic_write, write_bytes, write_json


def test_write_is_atomic_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    write_bytes(target, b"first")
    assert target.read_bytes() == b"first"

    def failing(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"first"  # the old content survives a failed write
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_written_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a.json", {"b": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == '{\n  "b": 1\n}\n'
