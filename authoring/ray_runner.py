"""The Ray runner: authoring tasks spread over a Ray cluster (the ``cluster`` extra).

One Ray task per submitted task, asking for the task's GPUs (``num_gpus``) or CPU slots
(``num_cpus``); Ray places it on any node with them free. A task whose worker process or node
dies is re-run up to ``retries`` times (Ray's ``max_retries``); a task that raises is not
re-run (the error goes back to the driver, which reports it). GPU tasks get a fresh worker
process each (Ray's default for GPU tasks), so every task starts with a clean GPU.

Only this module imports ``ray``; lower floors never do (``pyproject.toml``'s import contract).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import ray

from authoring.runner import (
    DEFAULT_RETRIES,
    ClusterError,
    Completed,
    TaskHandle,
    TaskResources,
    first_line,
)

PROBE_SECONDS = 3.0  # a ray:// address that does not answer a TCP connect in this time is dead


def _probe(address: str) -> None:
    """Refuse at once (one line) a ray:// address nothing listens on, instead of Ray's retries."""
    parsed = urlparse(address)
    if not parsed.hostname or parsed.port is None:
        raise ClusterError(f"--cluster {address}: expected ray://HOST:PORT")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=PROBE_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {reason}") from None


class RayRunner:
    """Tasks as Ray tasks; see the module docstring."""

    def __init__(
        self,
        cluster: str,
        *,
        local_cpus: int | None = None,
        local_gpus: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if ray.is_initialized():
            ray.shutdown()
        # Workers of a local cluster inherit this process's environment (PYTHONPATH included);
        # the nodes of a remote one need the same version of the project installed.
        settings: dict[str, Any] = {"include_dashboard": None, "log_to_driver": True}
        try:
            if cluster == "local":
                ray.init(num_cpus=local_cpus, num_gpus=local_gpus, **settings)
            elif cluster == "auto":
                ray.init(address="auto", **settings)
            else:
                _probe(cluster)
                ray.init(address=cluster, **settings)
        except ClusterError:
            raise
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            raise ClusterError(
                f"cannot use the Ray cluster --cluster {cluster}: {first_line(error)}"
            ) from None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 0))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        self.description = f"ray ({cluster}): {nodes} node(s), {self.gpus} GPUs, {self.cpus} CPUs"
        self.retries = retries
        self._pending: dict[Any, TaskHandle] = {}
        self._remote: dict[Callable[..., Any], Any] = {}

    def put(self, value: Any) -> Any:
        return ray.put(value)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str,
        resources: TaskResources,
        tag: Any = None,
    ) -> TaskHandle:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = ray.remote(fn)
        ref = remote.options(
            name=name,
            num_gpus=resources.gpus,
            num_cpus=resources.cpus,
            max_retries=self.retries,
            retry_exceptions=False,
        ).remote(*args)
        handle = TaskHandle(name, tag, ref=ref)
        self._pending[ref] = handle
        return handle

    def as_completed(self) -> Iterator[Completed]:
        while self._pending:
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            for ref in ready:
                handle = self._pending.pop(ref, None)
                if handle is None:  # cancelled meanwhile
                    continue
                seconds = time.perf_counter() - handle.submitted_at
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    # The task raised: hand back its own exception (a UserError stays one).
                    cause = getattr(error, "cause", None)
                    own = cause if isinstance(cause, BaseException) else error
                    yield Completed(handle, error=own, seconds=seconds)
                    continue
                except ray.exceptions.RayError as error:  # worker/node died past the retries
                    yield Completed(handle, error=error, seconds=seconds)
                    continue
                yield Completed(handle, value, seconds=seconds)

    def cancel(self, handle: TaskHandle) -> None:
        if self._pending.pop(handle.ref, None) is not None:
            ray.cancel(handle.ref, force=True)

    def close(self) -> None:
        for ref in list(self._pending):
            ray.cancel(ref, force=True)
        self._pending.clear()
        ray.shutdown()
