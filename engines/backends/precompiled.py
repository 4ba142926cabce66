"""Precompiled group steps: ``torch.compile``'s ahead-of-time artifacts, cached on disk for a fast restart.

A warm ``torch.compile`` still runs Dynamo and AOT tracing of the whole UNet in every process
(about 45 s for SD-Turbo); ``torch.compile(...).aot_compile`` does all of it once and saves the
result (graph, guards, Inductor's code and kernels), and a later process loads it with
``torch.compiler.load_compiled_function`` in about a second. The weights stay out of the
artifact: the step module is an argument, so the loaded function computes with the live
parameters of whatever generator the process loaded.

Kept guards are the tensor ones (shapes, dtypes, devices, strides), read against plain
(not inference-mode) tensors; the code objects diffusers inspects cannot be serialised as
guards, and everything else they would check is in the artifact's key (generator, card, torch
and diffusers versions, the step's source, shapes, options). The backend checks a loaded step
against the eager one before using it, as it does an AOTInductor package.

A process that dies while loading an artifact (a crash in native code is not an exception)
leaves its marker file behind; the next start finds it, records the artifact as failing and
compiles instead, so one bad artifact costs at most one crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.backends.aot_cache import AotKey, StepArtifactCache

log = logging.getLogger(__name__)

PRECOMPILED_SUBFOLDER = "precompiled"  # under the compile cache folder
LOADING_SUFFIX = ".loading"  # marker: a process is loading the artifact (holds its pid)


class PrecompiledLoadCrashed(RuntimeError):
    """A process died while loading the artifact (its marker file was left behind)."""


def compile_options(mode: str) -> dict[str, Any]:
    """``torch.compile`` options of ``mode`` plus the guard filter a saved artifact needs."""
    keep = getattr(torch.compiler, "keep_tensor_guards_unsafe", None)
    if keep is None:
        raise RuntimeError(f"torch {torch.__version__} has no keep_tensor_guards_unsafe")
    options = dict(torch._inductor.list_mode_options(mode)) if mode != "default" else {}
    return {**options, "guard_filter_fn": keep}


@contextlib.contextmanager
def aot_compile_enabled() -> Iterator[None]:
    """``torch.compile(...).aot_compile`` switched on (torch 2.11 ships it off; later torches on)."""
    config = torch._dynamo.config
    if not hasattr(config, "enable_aot_compile"):
        yield
        return
    with config.patch(enable_aot_compile=True):
        yield


@contextlib.contextmanager
def plain_tensors() -> Iterator[None]:
    """Out of inference mode, without autograd: the mode a precompiled step was traced and is called in."""
    with torch.inference_mode(False), torch.no_grad():
        yield


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PrecompiledStepCache(StepArtifactCache):
    """``aot_compile`` artifacts of the step in ``root`` (``<compile cache>/precompiled``)."""

    suffix = ".pt"
    record_format = "promptus-precompiled-step"
    what = "precompiled step"

    def __init__(self, root: Path, mode: str = "default") -> None:
        super().__init__(root)
        self.mode = mode

    def marker(self, key: AotKey) -> Path:
        artifact, _ = self.paths(key)
        return artifact.with_name(artifact.name + LOADING_SUFFIX)

    def load(self, key: AotKey, module: nn.Module) -> Callable[..., Any] | None:
        """The cached step of ``key`` called with ``module``, or None (the reason is logged)."""
        marker = self.marker(key)
        if marker.exists():
            try:
                pid = int(marker.read_text(encoding="utf-8").strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid != os.getpid() and not _process_alive(pid):
                marker.unlink(missing_ok=True)
                self.mark_failed(
                    key, PrecompiledLoadCrashed(f"process {pid} died while loading it")
                )
                return None
        found = self.trusted(key)
        if found is None:
            return None
        artifact, _ = found
        started = time.perf_counter()
        marker.write_text(str(os.getpid()), encoding="utf-8")
        try:
            with artifact.open("rb") as handle, aot_compile_enabled(), plain_tensors():
                compiled = torch.compiler.load_compiled_function(handle)
        except Exception as error:  # noqa: BLE001 - any loader failure means: do not trust it
            log.warning(
                "precompiled step %s does not load (%s: %s): compiling again",
                artifact,
                type(error).__name__,
                str(error)[:300],
            )
            return None
        finally:
            marker.unlink(missing_ok=True)
        log.info(
            "loaded the precompiled step %s in %.1f s", artifact.name, time.perf_counter() - started
        )
        return _bound(compiled, module)

    def build(
        self, key: AotKey, module: nn.Module, example_inputs: tuple[torch.Tensor, ...]
    ) -> Callable[..., Any]:
        """Compile ``module``'s forward for ``example_inputs``' shapes, store it under ``key``; the
        compiled step, ready (nothing is compiled twice)."""
        artifact, _ = self.paths(key)
        started = time.perf_counter()
        forward = type(module).forward

        temporary = self.temporary(key)

        def trace_and_save() -> Any:
            with torch.no_grad(), aot_compile_enabled():
                inputs = tuple(t.clone() for t in example_inputs)
                compiler: Any = torch.compile(  # its aot_compile is not in torch's type hints yet
                    forward, fullgraph=True, dynamic=False, options=compile_options(self.mode)
                )
                compiled = compiler.aot_compile(((module, *inputs), {}))
                compiled.save_compiled_function(str(temporary))
                return compiled

        # Tensor guards take the dispatch keys of the mode they are built in: at the trace (the
        # compiled function of this process) and again when an artifact is loaded. Both must
        # describe plain tensors, what ``plain_tensors`` calls with. Traced in a thread of its
        # own (inference mode is per thread, and the backend builds from inside it) and loaded
        # under ``plain_tensors``; loaded inside inference mode, a fresh process's guards
        # expected no autograd key and refused every call (seen on an H200, reproduced on the CPU).
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="promptus-precompile") as pool:
                compiled = pool.submit(trace_and_save).result()
            os.replace(temporary, artifact)
        finally:
            temporary.unlink(missing_ok=True)
        self.write_record(key, compile_s=round(time.perf_counter() - started, 1), mode=self.mode)
        log.info("precompiled the step %s in %.1f s", artifact.name, time.perf_counter() - started)
        return _bound(compiled, module)


def _bound(compiled: Callable[..., Any], module: nn.Module) -> Callable[..., Any]:
    """``compiled`` as a step runner ``inputs -> outputs``: ``module`` first, plain tensors."""

    def run(*inputs: torch.Tensor) -> Any:
        with plain_tensors():
            return compiled(module, *inputs)

    return run
