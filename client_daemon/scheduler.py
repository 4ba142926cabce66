"""The daemon's one generation thread, shared fairly *in time* by every page.

Work is a generator: each ``next()`` runs one slice (a model call on a few frames of one
generation group, ``engines``' ``iter_slices``) and its return value is the work's result.
Every piece of work has an *owner* (a page's pipeline); the thread measures how long each
slice takes and runs next the waiting work whose owner has used the least generation time
(start-time fair queueing: an owner that arrives, or comes back after being idle, starts at the
current virtual time, so idling banks no credit). A page whose slices are slow (large frames)
therefore gets as much time as a page whose slices are quick, not as many slices: the quick
page's chunk waits for at most the slice under way, then runs until it has used as much. Work
whose future is cancelled (its page left) stops at the next slice boundary; after a failed or
abandoned piece of work the thread hands freed memory back (``after_failure``) before the
next slice, so a failure never leaves the daemon above its idle memory.

On CUDA a slice's time is what the host waits for it (launches are asynchronous; each slice's
context copy waits for the work queued before it), so the shares are approximate there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Generator, Hashable
from typing import Any, TypeVar

from common.threads import call_in_loop, settle_future

log = logging.getLogger(__name__)

T = TypeVar("T")
Steps = Generator[Any, None, T]  # each next() is one slice; StopIteration carries the result


class _Work:
    """One submitted generator and the asyncio future that reports its end."""

    def __init__(
        self,
        steps: Steps[Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        owner: Hashable,
    ) -> None:
        self.steps = steps
        self.future = future
        self.loop = loop
        self.owner = owner
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


class _Anonymous:
    """The owner of work submitted without one (identity only)."""


def single_step(fn: Callable[..., T], *args: Any) -> Steps[T]:
    """A function call as work of one slice."""
    return fn(*args)
    yield  # unreachable: the yield makes this function a generator


class SliceScheduler:
    """Runs submitted work on one thread, slice by slice, the owner that used least time first."""

    def __init__(
        self,
        *,
        after_failure: Callable[[], None] | None = None,
        name: str = "promptus-generate",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._queue: list[_Work] = []  # in the order submitted (ties go to the earlier)
        self._used: dict[Hashable, float] = {}  # generation seconds per owner (virtual time)
        self._virtual = 0.0  # the used time of the owner whose slice ran last
        self._forgotten: set[Hashable] = set()  # owners to drop once their queued work is gone
        self._clock = clock
        self._wake = threading.Condition()
        self._closed = False
        self._after_failure = after_failure
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, steps: Steps[T], owner: Hashable | None = None) -> asyncio.Future[T]:
        """Queue ``steps`` for ``owner`` (whose time it is charged to; None: an owner of its
        own); the future has its result (or error) once the last slice ran. Cancelling the
        future stops the work at the next slice boundary."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        work = _Work(steps, future, loop, owner if owner is not None else _Anonymous())
        future.add_done_callback(work.on_future_done)
        with self._wake:
            if self._closed:
                raise RuntimeError("the generation thread has shut down")
            self._used[work.owner] = max(self._used.get(work.owner, 0.0), self._virtual)
            self._queue.append(work)
            self._wake.notify()
        return future

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run one function call on the generation thread, in turn with everyone's slices."""
        return self.submit(single_step(fn, *args))

    def forget(self, owner: Hashable) -> None:
        """``owner`` submits no more work (its page left): drop its time, now or once its
        queued work is gone (nothing here keeps a reference to it then)."""
        with self._wake:
            if any(work.owner == owner for work in self._queue):
                self._forgotten.add(owner)
            else:
                self._used.pop(owner, None)

    def used_s(self, owner: Hashable) -> float:
        """Generation seconds charged to ``owner`` (its virtual time)."""
        with self._wake:
            return self._used.get(owner, 0.0)

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
        """The waiting work whose owner used the least time (the earliest of equals)."""
        with self._wake:
            while not self._queue and not self._closed:
                self._wake.wait()
            if not self._queue:
                return None

            def used(i: int) -> float:  # a forgotten owner's last work (it leaves) counts as new
                return self._used.get(self._queue[i].owner, self._virtual)

            work = self._queue.pop(min(range(len(self._queue)), key=used))
            self._virtual = self._used.get(work.owner, self._virtual)
            return work

    def _run(self) -> None:
        while self._run_one():
            pass

    def _run_one(self) -> bool:
        """Run the next slice; False once shut down. (A method of its own: the thread keeps
        no reference to a piece of work, nor to its owner, between slices.)"""
        work = self._next_work()
        if work is None:
            return False
        if work.cancelled:  # its page left: stop here, give back what it held
            work.abandon()
            if work.started:
                self._release()
            self._done(work)
            return True
        work.started = True
        started = self._clock()
        try:
            next(work.steps)
        except StopIteration as done:
            self._charge(work, started)
            work.settle(result=done.value)
            self._done(work)
            return True
        except BaseException as error:  # noqa: BLE001 - reported through the future
            self._charge(work, started)
            self._release()  # before the page hears of it: memory is back to idle by then
            work.settle(error=error)
            self._done(work)
            return True
        self._charge(work, started)
        with self._wake:
            if not self._closed:
                self._queue.append(work)  # waits for its turn again
                return True
        work.abandon()
        return True

    def _charge(self, work: _Work, started: float) -> None:
        with self._wake:
            if work.owner in self._used:  # not forgotten meanwhile
                self._used[work.owner] += self._clock() - started

    def _done(self, work: _Work) -> None:
        """An anonymous owner's time goes with its only work; a named one's stays until it is
        forgotten and its last queued work is done."""
        owner = work.owner
        with self._wake:
            if isinstance(owner, _Anonymous):
                self._used.pop(owner, None)
            elif owner in self._forgotten and not any(w.owner == owner for w in self._queue):
                self._forgotten.discard(owner)
                self._used.pop(owner, None)

    def _release(self) -> None:
        if self._after_failure is not None:
            try:
                self._after_failure()
            except Exception:  # noqa: BLE001 - housekeeping must not stop the thread
                log.exception("releasing memory after a failed generation failed")
