"""Ahead-of-time compiled group steps (AOTInductor), cached on disk so that a restart skips compiling.

``torch.compile`` re-runs Dynamo and AOT tracing of the whole UNet in every process (about 45 s
for SD-Turbo even with a warm Inductor cache). An AOTInductor package holds the compiled step
(kernels and their C++ wrapper); loading it takes a fraction of a second. The weights stay out
of the package: the live module's parameters are handed to the loaded model (``load_constants``),
so the package is small and never a second copy of the weights.

A package is keyed by everything that changes the code it holds: the generator id (architecture
and weights), the card and its compute capability, torch, CUDA and diffusers versions, the
step's own source, dtype, frame format, input shapes and backend options. Next to each package,
a JSON file records that key and the package's SHA-256. A package whose record is missing,
names another key or another checksum, or that fails to load, is logged and rebuilt; never
trusted.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.atomic import atomic_write_json
from engines.devices import card_name

log = logging.getLogger(__name__)

AOT_SUBFOLDER = "aot"  # under the compile cache folder
PACKAGE_SUFFIX = ".pt2"
RECORD_SUFFIX = ".json"
RECORD_FORMAT = "promptus-aot-step"
HASH_BLOCK_BYTES = 1 << 22
FOLDED_PREFIX = "_FOLDED_CONST_"  # AOTInductor's name for constants it derives from the weights
# Weights stay out of the package, and nothing derived from them is folded in at compile time
# (without runtime folding, a folded bias is baked in and the loaded weights only partly used).
PACKAGE_CONFIG = {
    "aot_inductor.package_constants_in_so": False,
    "aot_inductor.use_runtime_constant_folding": True,
}
# Where this torch has it: compile the C++ wrapper without optimising. It only launches kernels,
# and a captured CUDA graph replays them without it; optimising it is most of the compile time.
OPTIONAL_PACKAGE_CONFIG = {"aot_inductor.compile_wrapper_opt_level": "O0"}
# A package is first loaded by a throwaway process: torch 2.11's loader segfaulted on an H100
# (2026-11-27, docs/realtime.md), and a crash must take the probe down, never the daemon.
PROBE_TIMEOUT_S = 300.0
PROBE_CODE = "import sys, torch; torch._inductor.aoti_load_package(sys.argv[1])"


class RecordedBuildFailure(RuntimeError):
    """A build failure :class:`AotStepCache` has already recorded (and warned of)."""


def probe_load(package: Path) -> str | None:
    """Load ``package`` in a child process; why that failed (a crash, an error), or None."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE_CODE, str(package)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"loading it took over {PROBE_TIMEOUT_S:.0f} s in a probe process"
    if done.returncode == 0:
        return None
    how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
    return f"loading it ended a probe process ({how}): {done.stderr.strip()[-300:]}"


@dataclass(frozen=True)
class AotKey:
    """What a compiled step depends on; equal keys mean the package is valid for this process."""

    generator_id: str
    device: str  # card name and compute capability, or "cpu"
    torch: str
    cuda: str | None
    diffusers: str
    code: str  # fingerprint of the step's source files
    dtype: str
    frame_format: str
    input_shapes: tuple[tuple[int, ...], ...]
    options: str  # backend options that change the graph (attention kernel, fp8 linears)

    def fields(self) -> dict[str, Any]:
        """The key as JSON-compatible fields (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    def file_stem(self) -> str:
        """A readable, unique file name: generator, shape, format, then a hash of everything."""
        digest = hashlib.sha256(json.dumps(self.fields(), sort_keys=True).encode()).hexdigest()[:16]
        shapes = "_".join("x".join(map(str, shape)) for shape in self.input_shapes if shape)
        readable = f"{self.generator_id}-{self.frame_format}-{shapes}"
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', readable)[:96]}-{digest}"


def device_description(device: torch.device) -> str:
    """``NVIDIA H100 80GB HBM3 sm90`` for a CUDA device, ``cpu`` otherwise."""
    if device.type != "cuda":
        return device.type
    major, minor = torch.cuda.get_device_capability(device)
    return f"{card_name(device)} sm{major}{minor}"


def source_fingerprint(modules: Sequence[Any]) -> str:
    """SHA-256 prefix of the source of ``modules``: a code change invalidates every package."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def package_config() -> dict[str, Any]:
    """Inductor settings of every package (the optional ones where this torch knows them)."""
    known = torch._inductor.config.get_config_copy()
    return {**PACKAGE_CONFIG, **{k: v for k, v in OPTIONAL_PACKAGE_CONFIG.items() if k in known}}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def module_constants(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers of ``module`` by fully qualified name (what AOTInductor calls constants)."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


class StepArtifactCache:
    """Compiled group steps kept on disk under ``root``: one artifact and one JSON record per key.

    The record names the key the artifact was made for and its SHA-256; an artifact is used only
    when both agree with this process, and a failed build is recorded so that a restart skips
    it. Subclasses say how an artifact is built and loaded.
    """

    suffix = ".bin"  # the artifact's file suffix
    record_format = "promptus-step-artifact"
    what = "compiled step"  # how log lines name an artifact

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self, key: AotKey) -> tuple[Path, Path]:
        """(artifact, record) of ``key``."""
        stem = key.file_stem()
        return self.root / f"{stem}{self.suffix}", self.root / f"{stem}{RECORD_SUFFIX}"

    def known_failure(self, key: AotKey) -> str | None:
        """Why building ``key`` failed before (recorded by :meth:`mark_failed`), or None."""
        _, record_path = self.paths(key)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(record, dict) and record.get("key") == key.fields() and "failed" in record:
            return str(record["failed"])
        return None

    def mark_failed(self, key: AotKey, error: BaseException) -> None:
        """Record that ``key`` cannot be built or loaded here, so the next start does not try again."""
        _, record_path = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        reason = f"{type(error).__name__}: {str(error)[:500]}"
        atomic_write_json(
            record_path, {"format": self.record_format, "key": key.fields(), "failed": reason}
        )
        log.warning(
            "building the %s %s failed (%s); recorded in %s",
            self.what,
            key.file_stem(),
            reason,
            record_path,
        )

    def write_record(self, key: AotKey, **facts: Any) -> dict[str, Any]:
        """Record the artifact just written for ``key`` (its checksum and ``facts``)."""
        artifact, record_path = self.paths(key)
        record = {
            "format": self.record_format,
            "key": key.fields(),
            "sha256": file_sha256(artifact),
            **facts,
        }
        atomic_write_json(record_path, record)
        return record

    def trusted(self, key: AotKey) -> tuple[Path, dict[str, Any]] | None:
        """(artifact, record) of ``key`` when its record and checksum agree; None, logged, when not."""
        artifact, record_path = self.paths(key)
        if not artifact.exists() and not record_path.exists():
            log.info(
                "no %s cached at %s: compiling it (once per card and version)", self.what, artifact
            )
            return None
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning(
                "%s cache record %s is unreadable (%s): compiling again",
                self.what,
                record_path,
                error,
            )
            return None
        if (
            not isinstance(record, dict)
            or record.get("format") != self.record_format
            or record.get("key") != key.fields()
        ):
            log.warning(
                "%s cache record %s was made for another generator, card or version: "
                "compiling again",
                self.what,
                record_path,
            )
            return None
        if "failed" in record:
            log.info("%s %s is recorded as failing: %s", self.what, artifact.name, record["failed"])
            return None
        try:
            checksum = file_sha256(artifact)
        except OSError as error:
            log.warning("%s %s is unreadable (%s): compiling again", self.what, artifact, error)
            return None
        if checksum != record.get("sha256"):
            log.warning(
                "%s %s is corrupted (SHA-256 %s..., the record says %s...): compiling again",
                self.what,
                artifact,
                checksum[:12],
                str(record.get("sha256"))[:12],
            )
            return None
        return artifact, record

    def load(self, key: AotKey, module: nn.Module) -> Callable[..., Any] | None:
        """The cached step of ``key`` computing with ``module``, or None (the reason is logged)."""
        raise NotImplementedError

    def build(
        self, key: AotKey, module: nn.Module, example_inputs: tuple[torch.Tensor, ...]
    ) -> Callable[..., Any]:
        """Compile ``module`` for ``example_inputs``' shapes and store it under ``key``; the step."""
        raise NotImplementedError

    def checked(
        self,
        key: AotKey,
        module: nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        agreement: Callable[[Callable[..., Any]], float],
        min_db: float,
    ) -> Callable[..., Any]:
        """The cached step of ``key`` (built on a miss) whose ``agreement`` with the eager step
        (frames PSNR) is at least ``min_db``; a build that fails or disagrees is recorded."""
        failure = self.known_failure(key)
        if failure is not None:
            raise RuntimeError(
                f"building it failed before on this card and version ({failure}); "
                f"delete {self.paths(key)[1]} to try again"
            )
        runner = self.load(key, module)
        if runner is not None:
            agreed = agreement(runner)
            if agreed >= min_db:
                return runner
            log.warning(
                "the cached %s disagrees with the eager step (frames at %.1f dB): compiling again",
                self.what,
                agreed,
            )
        try:
            runner = self.build(key, module, example_inputs)
            agreed = agreement(runner)
            if agreed < min_db:
                raise RuntimeError(
                    f"the compiled step disagrees with the eager step (frames at {agreed:.1f} dB)"
                )
        except RecordedBuildFailure:
            raise  # the cache's probe recorded it
        except Exception as error:
            self.mark_failed(key, error)  # a restart skips it at once instead of failing again
            raise
        return runner

    def temporary(self, key: AotKey) -> Path:
        """Where this process writes ``key``'s artifact before renaming it into place."""
        artifact, _ = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        return artifact.with_name(f".{artifact.name}.{os.getpid()}.tmp{self.suffix}")


class AotStepCache(StepArtifactCache):
    """AOTInductor packages of the step in ``root`` (``<compile cache>/aot``), loaded or built on demand."""

    suffix = PACKAGE_SUFFIX
    record_format = RECORD_FORMAT
    what = "ahead-of-time step"

    def load(self, key: AotKey, module: nn.Module) -> Callable[..., Any] | None:
        """The cached step of ``key`` with ``module``'s weights, or None (the reason is logged)."""
        found = self.trusted(key)
        if found is None:
            return None
        package, record = found
        if not record.get("probed"):
            self._probe(key, package, record)
        try:
            return _load_package(package, module)
        except Exception as error:  # noqa: BLE001 - any loader failure means: do not trust it
            log.warning(
                "ahead-of-time package %s does not load (%s: %s): compiling again",
                package,
                type(error).__name__,
                str(error)[:300],
            )
            return None

    def build(
        self,
        key: AotKey,
        module: nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
    ) -> Callable[..., Any]:
        """Export and compile ``module`` for ``example_inputs``' shapes, store it under ``key``, load it."""
        package, _ = self.paths(key)
        started = time.perf_counter()
        with torch.inference_mode(False), torch.no_grad():
            inputs = tuple(
                t.clone() for t in example_inputs
            )  # plain tensors, not inference-mode ones
            exported = torch.export.export(module, inputs, strict=False)
            exported_s = time.perf_counter() - started
            temporary = self.temporary(key)
            try:
                torch._inductor.aoti_compile_and_package(
                    exported,
                    package_path=str(temporary),
                    inductor_configs=package_config(),
                )
                os.replace(temporary, package)
            finally:
                temporary.unlink(missing_ok=True)
        record = self.write_record(
            key,
            export_s=round(exported_s, 1),
            compile_s=round(time.perf_counter() - started - exported_s, 1),
        )
        log.info(
            "compiled the ahead-of-time step %s in %.1f s (export %.1f s)",
            package.name,
            time.perf_counter() - started,
            exported_s,
        )
        self._probe(key, package, record)
        return _load_package(package, module)

    def _probe(self, key: AotKey, package: Path, record: dict[str, Any]) -> None:
        """Load ``package`` in a throwaway process first; RecordedBuildFailure if it fails."""
        failure = probe_load(package)
        if failure is not None:
            error = RecordedBuildFailure(failure)
            self.mark_failed(key, error)
            raise error
        _, record_path = self.paths(key)
        atomic_write_json(record_path, {**record, "probed": True})


def _load_package(package: Path, module: nn.Module) -> Callable[..., Any]:
    """Load a package and give it ``module``'s weights (shared, not copied, where torch allows)."""
    load = torch._inductor.aoti_load_package
    # run_single_threaded: no inter-call event bookkeeping, which a CUDA-graph capture would trip over
    extra = (
        {"run_single_threaded": True}
        if "run_single_threaded" in inspect.signature(load).parameters
        else {}
    )
    compiled = load(str(package), **extra)
    constants = module_constants(module)
    # constants folded from the weights are computed by the loaded model on its first run
    wanted = [name for name in compiled.get_constant_fqns() if not name.startswith(FOLDED_PREFIX)]
    missing = [name for name in wanted if name not in constants]
    if missing:  # a constant nobody provides would be a null pointer at run time, not an error
        raise KeyError(f"the package needs weights the module lacks: {', '.join(missing[:5])}")
    shared = (
        {"user_managed": True}
        if "user_managed" in inspect.signature(compiled.load_constants).parameters
        else {}
    )
    compiled.load_constants(
        {name: constants[name] for name in wanted}, check_full_update=True, **shared
    )
    return compiled
