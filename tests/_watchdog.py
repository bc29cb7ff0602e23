"""A watchdog for hangs: when no test has made progress for a while, dump where everything is.

pytest's own ``faulthandler_timeout`` shows the threads' Python stacks, which for an asyncio program
only says "the loop is waiting in select()". What explains a hang there is the set of tasks still
pending and where each one is suspended, so this dumps both: every thread's stack (faulthandler)
and every running event loop's tasks with their coroutine stacks. It never fails or stops a test;
it only writes to stderr (and once per stall), so a hung CI run shows its culprit in the log.

The budget is ``CITIZEN_TEST_WATCHDOG_SECONDS`` (default 120; 0 turns it off).
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import io
import os
import sys
import threading
import time

import pytest

_DEFAULT_SECONDS = 120.0


class _Watchdog:
    def __init__(self, budget: float) -> None:
        self._budget = budget
        self._last_progress = time.monotonic()
        self._where = "session start"
        self._dumped_for = -1.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="test-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def progress(self, where: str) -> None:
        self._last_progress = time.monotonic()
        self._where = where

    def _watch(self) -> None:
        while not self._stop.wait(min(self._budget / 4, 10.0)):
            last = self._last_progress
            if time.monotonic() - last >= self._budget and self._dumped_for != last:
                self._dumped_for = last
                self._dump()

    def _dump(self) -> None:
        err = sys.__stderr__ or sys.stderr
        err.write(f"\n=== test watchdog: no progress for {self._budget:.0f} s; last: {self._where} ===\n")
        faulthandler.dump_traceback(file=err, all_threads=True)
        err.write(_describe_tasks())
        err.write("=== end of test watchdog dump ===\n")
        err.flush()


def _describe_tasks() -> str:
    """Every running loop's pending tasks with their stacks (read from another thread: this is a
    diagnostic snapshot, and the loop being inspected is the one that is stuck)."""
    out = io.StringIO()
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]
    for loop in loops:
        if not loop.is_running():
            continue
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while we copied it; one retry is enough here
            tasks = list(asyncio.all_tasks(loop))
        out.write(f"--- loop {loop!r}: {len(tasks)} pending tasks ---\n")
        for task in tasks:
            out.write(f"{task!r}\n")
            task.print_stack(limit=12, file=out)
    return out.getvalue()


_running: list[_Watchdog] = []  # at most one, for this pytest process


def pytest_configure(config: pytest.Config) -> None:
    budget = float(os.environ.get("CITIZEN_TEST_WATCHDOG_SECONDS", _DEFAULT_SECONDS))
    if budget > 0 and not _running:
        _running.append(_Watchdog(budget))
        _running[0].start()


def pytest_unconfigure(config: pytest.Config) -> None:
    while _running:
        _running.pop().stop()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    for watchdog in _running:
        watchdog.progress(f"{nodeid} (started)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for watchdog in _running:
        watchdog.progress(f"{report.nodeid} ({report.when}: {report.outcome})")
