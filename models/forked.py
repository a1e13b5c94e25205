"""Run independent pieces of offline work in forked processes (training, replay).

The two alert kinds share nothing until their results are merged: a principal's state
never depends on a resource's, and their peer groups differ. Offline, each side can run
in a process of its own. Processes are *forked*, so they inherit the work's inputs (a
million parsed events) instead of receiving them pickled; only the results travel back,
pickled by our own code in our own child processes. Where fork is unavailable, or with
``jobs=1``, the same function runs in this process, one item after the other.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Progress = Callable[[int], None]

# What forked workers inherit: (function, items, progress counter). Set only while
# ``map_forked`` runs.
_INHERITED: tuple[Any, ...] | None = None


def default_jobs() -> int:
    """Two processes (one per side) where there are two cores, else one."""
    return 2 if (multiprocessing.cpu_count() or 1) >= 2 else 1


def map_forked(
    work: Callable[[Item, Progress], Result],
    items: Sequence[Item],
    *,
    jobs: int,
    progress: Progress | None = None,
) -> list[Result]:
    """``[work(item, progress) for item in items]``, in up to ``jobs`` forked processes.

    ``progress`` receives the children's reports (summed through shared memory) in this
    process. An exception in a child is raised here.
    """
    report = progress or _ignore
    if jobs < 2 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [work(item, report) for item in items]
    global _INHERITED
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    _INHERITED = (work, items, counter)
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context) as pool:
            futures = [pool.submit(_run_inherited, index) for index in range(len(items))]
            pending, shown = set(futures), 0
            while pending:
                _, pending = wait(pending, timeout=0.5)
                done = counter.value
                if done > shown:
                    report(done - shown)
                    shown = done
            return [future.result() for future in futures]
    finally:
        _INHERITED = None


def _run_inherited(index: int) -> Any:
    if _INHERITED is None:
        raise RuntimeError("map_forked work runs only in processes forked by map_forked")
    work, items, counter = _INHERITED

    def progress(done: int) -> None:
        with counter.get_lock():
            counter.value += done

    return work(items[index], progress)


def _ignore(done: int) -> None:
    return None
