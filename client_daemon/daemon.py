"""The daemon: one generator, one generation thread, a WebSocket server on the loopback.

Usage (what ``promptus daemon`` does)::

    async with Daemon(load_generator("tiny"), DaemonSettings(port=9090)) as daemon:
        await daemon.serve_forever()
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve

from client_daemon.footprint import PROBE_CALLS, CannotMeasure, Footprint, measure_footprint
from client_daemon.muxer import H264Muxer
from client_daemon.pipeline import EngineStream, SessionPipeline, SliceSizer
from client_daemon.scheduler import SliceScheduler
from client_daemon.session import Session
from client_daemon.settings import DaemonSettings
from client_daemon.transport import PageConnection
from common.log_throttle import LogThrottle
from engines.colour import YUV420P
from engines.devices import describe_device
from prompts.init_state import InitStateError, parse_init_state
from prompts.stream_model import GeneratorMismatchError, LatentGeometry, check_generator
from wire.daemon import MAX_FRAME_DAEMON_RECEIVES, Open
from wire.errors import ErrorCode, ProtocolError

log = logging.getLogger(__name__)
# websockets logs every connection opened, closed or rejected (any web page can fetch() the
# daemon's port) at INFO: the daemon's server keeps only its warnings and errors
SOCKETS_LOG = logging.getLogger("client_daemon.sockets")
SOCKETS_LOG.setLevel(logging.WARNING)

# Frames leave the generator as planar YUV 4:2:0, converted on its device (in the compiled
# step on CUDA): half the host copy of RGB, and x264 takes them without a CPU conversion.
ENGINE_FRAME_FORMAT = YUV420P


class Backend(Protocol):
    """What the daemon needs from a generator's backend."""

    @property
    def max_batch(self) -> int: ...

    specialises_shapes: bool


class Generator(Protocol):
    """What the daemon needs from an ``engines`` generator."""

    generator_id: str
    context_tokens: int
    context_dim: int
    backend: Backend

    @property
    def name(self) -> str: ...

    @property
    def latent_geometry(self) -> LatentGeometry: ...

    @property
    def device(self) -> Any: ...

    def open_stream(self, **stream: Any) -> EngineStream: ...

    def warm_up(self, width: int, height: int, frames: int, frame_format: str) -> float: ...

    def release_memory(self) -> None: ...


class Daemon:
    """Owns the generator and the generation thread; serves pages over WebSocket."""

    def __init__(
        self,
        generator: Generator,
        settings: DaemonSettings | None = None,
        *,
        probe_calls: Sequence[tuple[int, int, int]] | None = None,
    ) -> None:
        """``probe_calls`` (width, height, frames) are the model calls measured at start for the
        memory budget (default: two small ones). A backend that compiles per shape is measured
        only on the shapes given (those it was warmed up on): another would compile for a
        minute."""
        self.generator = generator
        self.settings = settings or DaemonSettings()
        self.device_name = describe_device(generator.device)
        if probe_calls is None and not generator.backend.specialises_shapes:
            probe_calls = PROBE_CALLS
        self.probe_calls = tuple(probe_calls or ())
        self.footprint: Footprint | None = None  # measured by start(); None: not measurable
        # one thread drives the generator: pages take turns on the GPU, slice by slice
        self._generation = SliceScheduler(after_failure=generator.release_memory)
        self._server: Server | None = None
        # lines pages can cause (refused origins, failed chunks): one per kind an interval
        self.refusals = LogThrottle(log)
        self.failures = LogThrottle(logging.getLogger("client_daemon.pipeline"))
        self.sessions = 0  # streams open now, at most settings.budget.max_sessions

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Measure what a model call costs here, then start listening."""
        try:
            if not self.probe_calls:
                raise CannotMeasure("the backend compiles per shape and no shape was warmed up")
            # on this thread, before serving: the main heap gives freed memory back to the
            # system (malloc_trim), so each measured call's pages are new; a thread's own heap
            # would hand the first probe's memory to the next and hide it
            self.footprint = measure_footprint(
                self.generator, self.probe_calls, ENGINE_FRAME_FORMAT
            )
        except CannotMeasure as error:
            log.warning("no memory budget per model call: %s", error)
        else:
            limit = self.settings.budget.call_limit(self.footprint)
            log.info(
                "a model call takes %s (measured); at most %.0f MiB per call "
                "(promptus daemon --max-call-mb), %.1f GiB free",
                self.footprint.describe(),
                limit / 2**20,
                self.footprint.available_bytes / 2**30,
            )
        self._server = await serve(
            self._serve_page,
            self.settings.host,
            self.settings.port,
            max_size=MAX_FRAME_DAEMON_RECEIVES,  # larger frames are cut with close code 1009
            compression=None,  # fMP4 and prompt chunks do not deflate; save the CPU
            logger=SOCKETS_LOG,
        )
        log.info("daemon listening on %s", self.url)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("the daemon is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def generator_id(self) -> str:
        """The id of the generator this daemon runs."""
        return self.generator.generator_id

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"ws://{host}:{self.port}"

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._generation.shutdown()

    async def _serve_page(self, websocket: ServerConnection) -> None:
        await PageConnection(websocket, self).run()

    def claim_session(self) -> None:
        """Count one more open stream; `busy` when the budget's max_sessions are open."""
        limit = self.settings.budget.max_sessions
        if self.sessions >= limit:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"this daemon already generates {limit} streams (promptus daemon --max-sessions); "
                "close another player or try again later",
            )
        self.sessions += 1

    def release_session(self) -> None:
        """A stream closed (its page left or failed to open)."""
        self.sessions -= 1

    async def open_stream(self, request: Open) -> tuple[Session, SessionPipeline, bytes, str]:
        """Check an `open` and build its session: (session, pipeline, init segment, MIME)."""
        setup = request.stream
        try:
            check_generator(setup.generator_id, self.generator.generator_id, "stream")
        except GeneratorMismatchError as error:
            raise ProtocolError(ErrorCode.GENERATOR_MISMATCH, str(error)) from None
        budget = self.settings.budget
        problem = budget.stream_problem(setup.width, setup.height, setup.chunk_frames)
        if problem is not None:
            raise ProtocolError(ErrorCode.BAD_FIELD, problem)
        call_frames = self.generator.backend.max_batch
        if self.footprint is not None:
            try:
                fits = budget.call_frames(self.footprint, setup.width, setup.height)
            except ValueError as error:  # the device cannot hold one frame's call
                raise ProtocolError(ErrorCode.BAD_FIELD, str(error)) from None
            call_frames = min(call_frames, fits)
        sizer = SliceSizer(
            call_frames,
            budget.slice_ms / 1000,
            adaptive=not self.generator.backend.specialises_shapes,
        )
        try:
            init_latent = parse_init_state(request.init_state)
        except InitStateError as error:
            raise ProtocolError(ErrorCode.BAD_FIELD, f"init state: {error}") from None
        expected = self.generator.latent_geometry.shape(setup.width, setup.height)
        if init_latent.shape != expected:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"init state has shape {list(init_latent.shape)}, a {setup.width}x{setup.height} "
                f"stream needs {list(expected)}",
            )
        open_engine_stream = functools.partial(
            self.generator.open_stream,
            width=setup.width,
            height=setup.height,
            noise_seed=setup.noise_seed,
            prev_latent_weight=setup.prev_latent_weight,
            prev_latent_rule=setup.prev_latent_rule,
            init_latent=init_latent,
            frame_format=ENGINE_FRAME_FORMAT,
            slice_frames=sizer.frames,
        )
        try:
            stream = await self._generation.call(open_engine_stream)
        except ValueError as error:
            raise ProtocolError(ErrorCode.BAD_FIELD, f"cannot open the stream: {error}") from None
        muxer = H264Muxer(setup.width, setup.height, setup.fps, self.settings.encoder)
        init_segment = await asyncio.get_running_loop().run_in_executor(None, muxer.init_segment)
        pipeline = SessionPipeline(
            stream,
            muxer,
            self._generation,
            depth=self.settings.queue_depth,
            sizer=sizer,
            failures=self.failures,
        )
        session = Session(
            setup,
            context_shape=(self.generator.context_tokens, self.generator.context_dim),
            max_group_frames=budget.max_group_frames,
        )
        return session, pipeline, init_segment, muxer.mime()
