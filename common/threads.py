"""Awaiting work on a daemon thread, so a call stuck in the kernel (a hung disk) never holds
up the process's exit the way an executor's worker threads do (they are joined at exit); and
handing a thread's result to an event loop that may have closed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` on ``loop``, from another thread; dropped if the loop has closed (nobody
    waits any more)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def settle_future(
    future: asyncio.Future[T], result: T | None = None, error: BaseException | None = None
) -> None:
    """From another thread: ``future``'s error or result, set on its loop unless it is done by
    then (cancelled)."""

    def report() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(T, result))  # a T whenever no error is given

    call_in_loop(future.get_loop(), report)


async def in_daemon_thread(fn: Callable[..., T], *args: Any, name: str = "worker") -> T:
    """``fn(*args)`` on a new daemon thread; cancelling the await abandons the thread's result."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as caught:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, caught
        settle_future(future, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
