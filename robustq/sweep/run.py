"""Running a sweep: the missing cells in-process, in local worker processes or as Ray tasks.

:func:`run_sweep` validates the spec and data, records the plan in the
run's :class:`~robustq.sweep.store.ResultsStore` and stores each finished
row as it arrives, with a progress bar.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustq.errors import ConfigError, InputError
from robustq.fileio import write_json
from robustq.sweep.cells import (
    Cell,
    _cells,
    _preflight,
    _resolve,
    _Resolved,
    evaluate_cell,
    run_cell,
)
from robustq.sweep.spec import SweepSpec, _is_int, load_spec
from robustq.sweep.store import ResultsStore, _run_lock

_IN_FLIGHT_PER_WORKER = 2
# Imported once by the fork server, so each worker process starts with them loaded (~3 s saved).
_PRELOAD = (
    "robustq.sweep",
    "robustq.data",
    "robustq.convert",
    "robustq.perturb",
    "robustq.ensemble",
    "ai_edge_litert.interpreter",
)


def _worker_init(driver: Any) -> None:
    """Local worker start-up: exit as soon as the driver process is gone.

    ``driver`` is the read end of a pipe whose only write end the driver
    holds; it reads EOF when the driver exits for any reason (SIGKILL
    included), and the worker then exits at once instead of waiting forever
    for work that will never come.
    """
    import threading

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                driver.recv_bytes()
        os._exit(1)

    threading.Thread(target=watch, name="robustq-driver-watch", daemon=True).start()


def _worker_task(cell: Cell, variants_dir: str, splits_path: str) -> dict[str, Any]:
    """A local worker process's entry point (module level, so it pickles by reference)."""
    return run_cell(cell, variants_dir, splits_path)


# --------------------------------------------------------------------------- executors
EXECUTORS: tuple[str, ...] = ("local", "ray")
"""Where cells run: local worker processes (or in-process for one job), or Ray tasks."""

_OnRow = Callable[[dict[str, Any]], None]


def _run_in_process(cells: Sequence[Cell], resolved: _Resolved, on_row: _OnRow) -> None:
    for cell in cells:
        on_row(evaluate_cell(cell, resolved.blobs[cell.scheme], resolved.splits))


def _mp_context() -> Any:
    """A start method that never forks a process holding TensorFlow or LiteRT state.

    ``forkserver`` (POSIX) forks workers from a fresh server process that has
    imported this module once, so workers start fast; ``spawn`` elsewhere.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(_PRELOAD))
        return context
    return multiprocessing.get_context("spawn")


def _run_local(cells: Sequence[Cell], resolved: _Resolved, jobs: int, on_row: _OnRow) -> None:
    """Run cells in ``jobs`` worker processes; the driver stores each row as it completes."""
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    if jobs == 1 or len(cells) <= 1:
        _run_in_process(cells, resolved, on_row)
        return
    workers = min(jobs, len(cells))
    context = _mp_context()
    # Workers watch the read end; the write end never leaves this process (fds are not
    # inheritable), so its closing - on any exit, SIGKILL included - stops them.
    watch, alive = context.Pipe(duplex=False)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(watch,)
    )
    todo = iter(cells)
    pending: set[Future] = set()
    args = (str(resolved.variants_dir), str(resolved.splits_path))

    def refill() -> None:
        # a bounded window of submitted cells keeps the driver's memory flat in the grid size
        while len(pending) < workers * _IN_FLIGHT_PER_WORKER:
            cell = next(todo, None)
            if cell is None:
                return
            pending.add(pool.submit(_worker_task, cell, *args))

    try:
        refill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                on_row(future.result())
            refill()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        alive.close()  # stops the workers now, cells in flight included
        raise
    pool.shutdown(wait=True)
    alive.close()
    watch.close()


def _ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the Ray executor needs Ray: install robustq[ray] (pip install 'robustq[ray]')"
        ) from None
    return ray


def _run_ray(
    cells: Sequence[Cell],
    resolved: _Resolved,
    jobs: int | None,
    address: str | None,
    on_row: _OnRow,
) -> None:
    """Run cells as Ray tasks (same :func:`evaluate_cell`); the driver stores each row.

    Connects to the cluster at ``address``, or starts a local Ray instance
    with ``jobs`` CPUs when None (shut down afterwards). The variant bytes
    and the splits go to the object store once, so workers need no shared
    file system; robustq must be installed where the tasks run.
    """
    import logging

    ray = _ray_module()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=jobs or os.cpu_count() or 1, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot start or reach Ray at {address or 'local'}: {first}"
            ) from None
        started = True
    try:
        capacity = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=2)(evaluate_cell)
        splits_ref = ray.put(resolved.splits)
        blob_refs = {scheme: ray.put(blob) for scheme, blob in resolved.blobs.items()}
        todo = iter(cells)
        pending: list[Any] = []

        def refill() -> None:
            while len(pending) < capacity * _IN_FLIGHT_PER_WORKER:
                cell = next(todo, None)
                if cell is None:
                    return
                pending.append(task.remote(cell, blob_refs[cell.scheme], splits_ref))

        refill()
        while pending:
            done, rest = ray.wait(pending, num_returns=1)
            pending[:] = rest
            try:
                row = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            on_row(row)
            refill()
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- the sweep
@dataclass(frozen=True)
class SweepSummary:
    """What one :func:`run_sweep` call did: cells in the grid, already stored, computed now."""

    run_dir: Path
    total: int
    skipped: int
    computed: int
    seconds: float
    executor: str
    jobs: int


def _check_jobs(jobs: int | None) -> int:
    if jobs is None:
        return os.cpu_count() or 1
    if not _is_int(jobs) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1 (got {jobs!r})")
    return int(jobs)


def run_sweep(
    spec: SweepSpec | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
    extend: bool = False,
    progress: bool = True,
) -> SweepSummary:
    """Run every missing cell of a sweep into the run folder ``out_dir`` and return the counts.

    ``spec`` is a :class:`SweepSpec` or a spec file. The spec and the data
    are validated first (nothing is written before that); then the run's
    ``results.sqlite`` is created, or checked (a different spec is refused
    unless ``extend``, see :meth:`ResultsStore.prepare`); finished cells are
    skipped and the rest run with ``executor`` ``"local"`` (``jobs`` worker
    processes, default the CPU count; ``jobs=1`` in this process) or
    ``"ray"`` (tasks on the cluster at ``address``, or a local Ray instance
    with ``jobs`` CPUs). Each row is stored by this process as soon as its
    cell finishes, with a progress bar and ETA on stderr when ``progress``.
    Local workers are started with ``forkserver`` (``spawn`` off POSIX), so,
    as with any multiprocessing code, a script calling this with ``jobs`` > 1
    needs the ``if __name__ == "__main__":`` guard.
    """
    started = time.perf_counter()
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if executor == "ray":
        _ray_module()
    elif address is not None:
        raise ConfigError("address applies to the Ray executor only (executor='ray')")
    workers = _check_jobs(jobs)
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    resolved = _resolve(spec)
    _preflight(resolved)
    cells = _cells(resolved)
    run_dir = Path(out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"run folder {run_dir} is a file")
    with _run_lock(run_dir), ResultsStore(run_dir, create=True) as store:
        store.prepare(spec.to_dict(), resolved.fingerprint(), cells, extend)
        write_json(run_dir / "spec.json", {"spec": spec.to_dict(), **resolved.fingerprint()})
        finished = store.finished()
        todo = [cell for cell in cells if cell.key not in finished]
        bar = _progress(len(cells), len(cells) - len(todo), progress)
        computed = 0

        def on_row(row: dict[str, Any]) -> None:
            nonlocal computed
            store.add(row)
            computed += 1
            bar.update(1)

        try:
            if todo and executor == "local":
                _run_local(todo, resolved, workers, on_row)
            elif todo:
                _run_ray(todo, resolved, jobs, address, on_row)
        finally:
            bar.close()
    return SweepSummary(
        run_dir=run_dir,
        total=len(cells),
        skipped=len(cells) - len(todo),
        computed=computed,
        seconds=time.perf_counter() - started,
        executor=executor,
        jobs=workers,
    )


def _progress(total: int, done: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="cell",
        desc="sweep",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.05,
    )
