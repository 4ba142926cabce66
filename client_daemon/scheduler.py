"""The daemon's one generation thread, shared fairly by every page.

Work is a generator: each ``next()`` runs one slice (at most the backend's batch of frames of
one generation group, ``engines``' ``iter_slices``) and its return value is the work's result.
The thread runs one slice of each waiting piece of work in turn (round-robin), so a page with
a long chunk delays another page by about one slice per turn, not by its whole chunk. Work
whose future is cancelled (its page left) stops at the next slice boundary; after a failed or
abandoned piece of work the thread hands freed memory back (``after_failure``) before the
next slice, so a failure never leaves the daemon above its idle memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from common.threads import call_in_loop, settle_future

log = logging.getLogger(__name__)

T = TypeVar("T")
Steps = Generator[Any, None, T]  # each next() is one slice; StopIteration carries the result


class _Work:
    """One submitted generator and the asyncio future that reports its end."""

    def __init__(
        self, steps: Steps[Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.steps = steps
        self.future = future
        self.loop = loop
        self.started = False
        self.cancelled = False  # set on the event loop when the future is cancelled

    def on_future_done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.cancelled = True

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        """Report the end on the future's event loop (from the generation thread)."""
        settle_future(self.future, result, error)

    def abandon(self) -> None:
        """Stop the work where it is (its cleanup runs) and cancel its future."""
        self.steps.close()
        call_in_loop(self.loop, self.future.cancel)


def single_step(fn: Callable[..., T], *args: Any) -> Steps[T]:
    """A function call as work of one slice."""
    return fn(*args)
    yield  # unreachable: the yield makes this function a generator


class SliceScheduler:
    """Runs submitted work on one thread, one slice of each piece of work in turn."""

    def __init__(
        self,
        *,
        after_failure: Callable[[], None] | None = None,
        name: str = "promptus-generate",
    ) -> None:
        self._queue: deque[_Work] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._after_failure = after_failure
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, steps: Steps[T]) -> asyncio.Future[T]:
        """Queue ``steps``; the future has its result (or error) once the last slice ran.
        Cancelling the future stops the work at the next slice boundary."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        work = _Work(steps, future, loop)
        future.add_done_callback(work.on_future_done)
        with self._wake:
            if self._closed:
                raise RuntimeError("the generation thread has shut down")
            self._queue.append(work)
            self._wake.notify()
        return future

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run one function call on the generation thread, in turn with everyone's slices."""
        return self.submit(single_step(fn, *args))

    def shutdown(self, *, wait: bool = False) -> None:
        """Stop: queued work is abandoned; a running slice finishes first (``wait`` waits for it)."""
        with self._wake:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._wake.notify()
        for work in dropped:
            work.abandon()
        if wait:
            self._thread.join()

    def _next_work(self) -> _Work | None:
        with self._wake:
            while not self._queue and not self._closed:
                self._wake.wait()
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        while (work := self._next_work()) is not None:
            if work.cancelled:  # its page left: stop here, give back what it held
                work.abandon()
                if work.started:
                    self._release()
                continue
            work.started = True
            try:
                next(work.steps)
            except StopIteration as done:
                work.settle(result=done.value)
                continue
            except BaseException as error:  # noqa: BLE001 - reported through the future
                self._release()  # before the page hears of it: memory is back to idle by then
                work.settle(error=error)
                continue
            with self._wake:
                if not self._closed:
                    self._queue.append(work)  # to the back: everyone else's slice comes first
                    continue
            work.abandon()

    def _release(self) -> None:
        if self._after_failure is not None:
            try:
                self._after_failure()
            except Exception:  # noqa: BLE001 - housekeeping must not stop the thread
                log.exception("releasing memory after a failed generation failed")
