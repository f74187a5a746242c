"""Admission control: blocking work is admitted, run on its own bounded pool and given a time budget.

The server has three kinds of costly work, each with its own limit:

* **analyses** (decode + model), a :class:`Lane` of ``max_analyses`` threads;
* **look-ups** (library search, provider search, preview download), a :class:`Lane`
  of ``max_lookups`` threads with a per-request time budget (``lookup_timeout_s``);
* **uploads** being received, an :class:`AnalysisLimiter` with no queue, taken
  before the first body byte is read.

A request beyond a limit is refused at once with :class:`ServerBusyError`
(HTTP 503 with ``Retry-After``) instead of piling up; one past its time budget
gets a 504. A slot is only given back when its work really finished, so work
abandoned at its deadline still counts until its thread is free again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from genrify.errors import GenrifyError


class ServerBusyError(GenrifyError):
    """Too many requests of one kind are running or waiting; try again after ``retry_after`` seconds."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


class AnalysisTimeoutError(GenrifyError):
    """An analysis took longer than the configured limit."""

    status_code = 504


class LookupTimeoutError(GenrifyError):
    """A search or look-up took longer than the configured limit."""

    status_code = 504


class AnalysisLimiter:
    """At most ``capacity`` tasks at once, at most ``max_waiting`` waiting for a slot (``what`` names them).

    Thread-safe; :meth:`try_acquire` and :meth:`release` work from any thread,
    :meth:`acquire` from the event loop (it polls every 20 ms while waiting).
    """

    def __init__(self, capacity: int, *, max_waiting: int = 0, wait_timeout: float = 10.0, retry_after: int = 2,
                 what: str = "analyses"):
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        self.retry_after = retry_after
        self.what = what
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0

    def try_acquire(self) -> bool:
        """Take a slot if one is free at once."""
        with self._lock:
            if self.running < self.capacity:
                self.running += 1
                return True
            return False

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.running = max(0, self.running - 1)

    async def acquire(self) -> None:
        """Take a slot, waiting up to ``wait_timeout`` s when there is room to wait; else :class:`ServerBusyError`."""
        if self.try_acquire():
            return
        with self._lock:
            if self.waiting >= self.max_waiting:
                raise self._busy()
            self.waiting += 1
        try:
            deadline = time.monotonic() + self.wait_timeout
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                if self.try_acquire():
                    return
            raise self._busy()
        finally:
            with self._lock:
                self.waiting -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with limiter.slot():`` holds one slot for the block."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def stats(self) -> dict:
        """``running``, ``waiting`` and ``capacity``, for ``/healthz``."""
        return {"running": self.running, "waiting": self.waiting, "capacity": self.capacity}

    def _busy(self) -> ServerBusyError:
        return ServerBusyError(
            f"the server is busy ({self.running} {self.what} running, {self.waiting} waiting); try again shortly",
            retry_after=self.retry_after,
        )


def _lower_priority(nice: int) -> None:
    """Run the calling thread ``nice`` steps below the process (a no-op where threads cannot be niced apart)."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):  # not Linux, or not allowed: the lane's limits still hold
        pass


class Lane:
    """A limiter, a thread pool of exactly its capacity and a time budget for each task.

    ``noun`` names one task in the timeout message ("the analysis took longer than 120 s");
    ``timeout_error`` is the error raised at the deadline. ``nice``: how much lower than the rest of the
    server its threads run (Linux schedules threads apart), for work that may keep a core busy for
    a while and must not delay the event loop that answers every other request.
    """

    def __init__(self, *, name: str, noun: str, capacity: int, max_waiting: int, wait_timeout: float,
                 timeout_s: float, retry_after: int, timeout_error: type[GenrifyError], nice: int = 0):
        self.limiter = AnalysisLimiter(capacity, max_waiting=max_waiting, wait_timeout=wait_timeout,
                                       retry_after=retry_after, what=name)
        self.executor = concurrent.futures.ThreadPoolExecutor(capacity, thread_name_prefix=f"genrify-{name}",
                                                              initializer=_lower_priority, initargs=(nice,))
        self.noun, self.timeout_s, self.timeout_error = noun, timeout_s, timeout_error

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run blocking ``fn`` on this lane's pool, within its limiter and its time budget."""
        await self.limiter.acquire()
        try:
            future = self.executor.submit(fn)
        except BaseException:
            self.limiter.release()
            raise
        # The slot follows the thread, not the request: abandoned work still holds it until it ends.
        future.add_done_callback(lambda _: self.limiter.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise self.timeout_error(f"the {self.noun} took longer than {self.timeout_s:g} s") from None

    def close(self) -> None:
        """Stop taking work; queued work is cancelled, running work is left to finish."""
        self.executor.shutdown(wait=False, cancel_futures=True)
