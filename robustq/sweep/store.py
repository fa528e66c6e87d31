"""The sweep's SQLite results store: spec, plan and one row per finished cell, kill-safe."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from robustq.errors import ConfigError, InputError
from robustq.sweep.cells import Cell
from robustq.sweep.spec import _SPEC_KEYS, NO_DATA_NOISE, _canonical, _plain, _sha256

RESULTS_FILE = "results.sqlite"
"""The results database inside a run folder."""

_STORE_FORMAT = "robustq-sweep"
_STORE_VERSION = 1


# --------------------------------------------------------------------------- the results store
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsStore:
    """The SQLite results database of one run folder (``results.sqlite``).

    Tables: ``meta`` (format, current spec and its hash), ``specs`` (every
    spec the run has used), ``plan`` (the current grid: key, position and
    the cell) and ``results`` (one JSON row per finished cell, ``key``
    PRIMARY KEY). The database is in WAL mode with full synchronisation and
    every row is written in its own transaction, so a process killed at any
    moment leaves each row either absent or whole, never twice. Only the
    sweep driver writes; readers may look at any time.
    """

    def __init__(self, run_dir: str | os.PathLike[str], create: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILE
        if not self.path.exists():
            if not create:
                raise InputError(f"no sweep results in {self.run_dir} (no {RESULTS_FILE})")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS specs (
                    hash TEXT PRIMARY KEY, spec TEXT NOT NULL, stored_at TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS plan (
                    key TEXT PRIMARY KEY, position INTEGER NOT NULL, cell TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS results (
                    key TEXT PRIMARY KEY, row TEXT NOT NULL, finished_at TEXT NOT NULL);
                """
            )
            stored = self.meta().get("format")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path} is not a robustq results database ({exc})") from None
        if stored not in (None, _STORE_FORMAT):
            raise InputError(f"{self.path} is not a robustq results database")

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (empty for a new store)."""
        return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

    def spec(self) -> dict[str, Any] | None:
        """The stored spec (as written by :meth:`prepare`), or None for a new store."""
        text = self.meta().get("spec")
        return None if text is None else json.loads(text)

    def prepare(
        self,
        spec: Mapping[str, Any],
        identity: Mapping[str, Any],
        cells: Sequence[Cell],
        extend: bool,
    ) -> None:
        """Record the run's spec and plan, or check them against the stored ones.

        ``identity`` is the spec without paths plus the data hashes; its hash
        decides whether the spec changed. A new store records everything in
        one transaction. The same identity again: nothing to do (resume). A
        different one: ConfigError, unless ``extend`` and every cell of the
        stored plan is still in the new grid (the old rows stay valid
        because equal keys mean equal inputs); then the new spec and plan
        replace the old ones and every row is kept.
        """
        identity_hash = _sha256(_canonical(identity))
        meta = self.meta()
        if meta.get("spec_hash") == identity_hash:
            return
        if meta:
            old_identity = json.loads(meta["identity"])
            if not extend:
                raise ConfigError(
                    f"{self.run_dir} holds a sweep with a different spec "
                    f"({_differences(old_identity, identity)}); pass extend to add cells to it, "
                    "or use a new run folder"
                )
            planned = {cell.key for cell in cells}
            dropped = [
                json.loads(text)
                for key, text in self._db.execute("SELECT key, cell FROM plan")
                if key not in planned
            ]
            dropped_rows = [key for key in self.finished() if key not in planned]
            if dropped or dropped_rows:
                count = len(dropped) or len(dropped_rows)
                example = _cell_label(dropped[0]) if dropped else dropped_rows[0]
                raise ConfigError(
                    f"cannot extend {self.run_dir}: the new spec drops {count} of its cells "
                    f"(e.g. {example}; {_differences(old_identity, identity)}); "
                    "extending may only add cells"
                )
        with self._transaction() as db:
            spec_text = _canonical(dict(spec))
            values = {
                "format": _STORE_FORMAT,
                "version": str(_STORE_VERSION),
                "spec": spec_text,
                "identity": _canonical(dict(identity)),
                "spec_hash": identity_hash,
                "updated_at": _now(),
            }
            if not meta:
                values["created_at"] = values["updated_at"]
            db.executemany(
                "INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", list(values.items())
            )
            db.execute(
                "INSERT OR REPLACE INTO specs(hash, spec, stored_at) VALUES (?, ?, ?)",
                (identity_hash, spec_text, values["updated_at"]),
            )
            db.execute("DELETE FROM plan")
            db.executemany(
                "INSERT INTO plan(key, position, cell) VALUES (?, ?, ?)",
                [(c.key, i, _canonical(c.to_dict())) for i, c in enumerate(cells)],
            )

    def finished(self) -> set[str]:
        """Keys of the cells whose rows are stored."""
        return {key for (key,) in self._db.execute("SELECT key FROM results")}

    def add(self, row: Mapping[str, Any]) -> bool:
        """Store one finished cell's row in its own transaction; False if its key was there."""
        text = json.dumps(_plain(dict(row)), allow_nan=True)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO results(key, row, finished_at) VALUES (?, ?, ?)",
                (row["key"], text, _now()),
            )
        return cursor.rowcount == 1

    def delete(self, keys: Iterable[str]) -> int:
        """Forget the rows of ``keys`` (they are recomputed by the next run); return how many."""
        with self._transaction() as db:
            cursor = db.executemany("DELETE FROM results WHERE key = ?", [(k,) for k in keys])
        return cursor.rowcount

    def counts(self) -> tuple[int, int]:
        """(finished cells, planned cells)."""
        done = self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        planned = self._db.execute("SELECT COUNT(*) FROM plan").fetchone()[0]
        return int(done), int(planned)

    def frame(self) -> pd.DataFrame:
        """Every stored row as a DataFrame, in grid order (``finished_at`` added)."""
        query = (
            "SELECT r.row, r.finished_at FROM results r LEFT JOIN plan p ON p.key = r.key "
            "ORDER BY p.position IS NULL, p.position, r.key"
        )
        rows = []
        for text, finished_at in self._db.execute(query):
            row = json.loads(text)
            row["finished_at"] = finished_at
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            # rows stored before the data-noise axis existed were on the data as stored
            for column, value in (("data_noise", ""), ("data_noise_label", NO_DATA_NOISE)):
                frame[column] = frame[column].fillna(value) if column in frame else value
            if "data_noise_seed" not in frame:
                frame["data_noise_seed"] = 0
        if "layer" in frame:
            frame["layer"] = frame["layer"].astype("Int64")
        return frame


def _cell_label(data: Mapping[str, Any]) -> str:
    try:
        return Cell(**data).label
    except (TypeError, ConfigError):
        return str(data.get("key", "?"))


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A short list of what differs between two run identities."""
    changes: list[str] = []
    if old.get("splits_sha256") != new.get("splits_sha256"):
        changes.append("the splits' data differ")
    old_v, new_v = old.get("variants_sha256", {}), new.get("variants_sha256", {})
    for scheme in sorted(set(old_v) & set(new_v)):
        if old_v[scheme] != new_v[scheme]:
            changes.append(f"the {scheme} variant differs")
    old_s, new_s = old.get("spec", {}), new.get("spec", {})
    keys = [k for k in _SPEC_KEYS if old_s.get(k) != new_s.get(k) and k in set(old_s) | set(new_s)]
    if keys:
        changes.append("changed: " + ", ".join(keys))
    return "; ".join(changes) or "changed spec"


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder: one driver (the only writer) at a time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the single-writer rule is the user's
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".sweep.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another sweep is running in {run_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
