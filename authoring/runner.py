"""Where authoring tasks run: in this process, one after another, or on a Ray cluster.

A task is a plain function and its arguments (picklable), submitted with the resources it
asks for; the driver collects tasks as they complete, each with its value or its error, and
may submit more meanwhile. Both runners give the same results for the same tasks; the Ray
runner (``authoring.ray_runner``, the ``cluster`` extra) spreads them over every GPU or core
of a cluster and retries a task whose worker or node died.

``authoring.cluster.open_runner(cluster)`` picks one from the ``--cluster`` value:

- ``none``: ``LocalRunner``, this process, tasks in submission order (no extra needed);
- ``local``: a Ray cluster started on this machine's GPUs or cores;
- ``auto``: the Ray cluster this machine belongs to (``ray start`` ran here);
- ``ray://HOST:PORT``: a remote Ray cluster through Ray Client.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.errors import UserError

DEFAULT_RETRIES = 3  # re-runs of a task whose worker or node died (not of a task that raised)


class ClusterError(UserError, RuntimeError):
    """The cluster cannot be used (unknown address, unreachable, Ray not installed)."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when the message is empty."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@dataclass(frozen=True)
class TaskResources:
    """What one task asks for: whole GPUs, or CPU slots (its torch threads)."""

    gpus: int = 0
    cpus: int = 1

    @property
    def device(self) -> str:
        """The torch device a task with these resources computes on."""
        return "cuda" if self.gpus else "cpu"


@dataclass(eq=False)
class TaskHandle:
    """A submitted task; ``tag`` is the driver's own note (what the task is for)."""

    name: str
    tag: Any = None
    submitted_at: float = field(default_factory=time.perf_counter)
    ref: Any = None  # the runner's reference (a Ray ObjectRef, or the pending call)


@dataclass(frozen=True)
class Completed:
    """A finished task: its value, or the error that ended it (after any retries)."""

    handle: TaskHandle
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0  # wall time from submission to completion seen by the driver

    @property
    def ok(self) -> bool:
        return self.error is None


class TaskRunner(Protocol):
    """Runs tasks; ``as_completed`` yields them as they finish, including tasks submitted
    while iterating."""

    description: str  # for the progress line, e.g. "ray: 4 GPUs, 64 CPUs"
    gpus: int  # GPUs the tasks can use (0: CPU slots only)
    cpus: int

    def put(self, value: Any) -> Any:
        """Share a large argument between tasks (the object store); pass the result to submit."""
        ...

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str,
        resources: TaskResources,
        tag: Any = None,
    ) -> TaskHandle: ...

    def as_completed(self) -> Iterator[Completed]: ...

    def cancel(self, handle: TaskHandle) -> None:
        """Stop a task that has not completed (it will not be yielded)."""
        ...

    def close(self) -> None: ...


class LocalRunner:
    """Runs each task in this process when ``as_completed`` reaches it, in submission order."""

    def __init__(self) -> None:
        self.description = "this process"
        self.gpus = 0
        self.cpus = 1
        try:
            import torch

            self.gpus = torch.cuda.device_count()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        self._queue: deque[tuple[TaskHandle, Callable[..., Any], tuple[Any, ...]]] = deque()

    def put(self, value: Any) -> Any:
        return value

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str,
        resources: TaskResources,
        tag: Any = None,
    ) -> TaskHandle:
        handle = TaskHandle(name, tag)
        self._queue.append((handle, fn, args))
        return handle

    def as_completed(self) -> Iterator[Completed]:
        while self._queue:
            handle, fn, args = self._queue.popleft()
            try:
                value = fn(*args)
            except Exception as error:  # reported per task, like a remote task's failure
                yield Completed(
                    handle, error=error, seconds=time.perf_counter() - handle.submitted_at
                )
                continue
            yield Completed(handle, value, seconds=time.perf_counter() - handle.submitted_at)

    def cancel(self, handle: TaskHandle) -> None:
        self._queue = deque(item for item in self._queue if item[0] is not handle)

    def close(self) -> None:
        self._queue.clear()
