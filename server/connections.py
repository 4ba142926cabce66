"""Plain HTTP connections as untrusted input: sockets waiting for a request's headers are
counted per address and in all, malformed requests are counted and logged in one line per
address per interval, and failed accepts (out of file descriptors) likewise.

aiohttp itself closes a socket whose request headers are not complete within its keep-alive
timeout (counted from the accept, and again after each response); the server sets that to
``ServerSettings.header_timeout_s``. What aiohttp does not do is count: a client that holds
hundreds of half-sent requests takes a descriptor each until then. Here every accepted socket
counts as *waiting* (for its first request's headers, or idle between keep-alive requests)
until a request reaches the application, and again after it; a new socket of an address that
already has ``max_pending_per_address`` waiting ones, or past ``max_pending`` in all, is closed
at once. A WebSocket is a request in progress for its whole life: it is counted by
``server.addresses`` instead.

``GuardedRequestHandler`` is aiohttp's connection protocol with these hooks; ``server.run``
serves through it (``GuardedSite``). An application run another way (the tests'
``aiohttp_server``) simply has no guard: ``track_requests`` passes plain handlers through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from common.log_throttle import LogThrottle
from server.addresses import address_key

log = logging.getLogger(__name__)

ACCEPT_FAILURE = "socket.accept() out of system resource"  # asyncio's message for EMFILE/ENFILE
MAX_LOGGED_DETAIL = 80  # characters of a parser's complaint quoted in the log line


class ConnectionGuard:
    """Counts of sockets waiting for request headers, and the log lines about bad sockets."""

    def __init__(
        self, *, max_pending_per_address: int, max_pending: int, log_interval_s: float
    ) -> None:
        self.max_pending_per_address = max_pending_per_address  # 0: no limit per address
        self.max_pending = max_pending
        self.throttle = LogThrottle(log, log_interval_s)
        self._pending: dict[str, int] = {}
        self.pending = 0  # sockets waiting for request headers now
        self.refused_pending = 0  # sockets closed at accept: their address or the server was full
        self.malformed = 0  # requests that were not HTTP (answered 400, connection closed)
        self.accept_failures = 0  # accepts that failed (out of file descriptors)

    def pending_of(self, address: str) -> int:
        return self._pending.get(address, 0)

    def admit(self, address: str) -> str | None:
        """Count a new socket as waiting; the reason it must be closed instead, or None."""
        count = self._pending.get(address, 0)
        if self.max_pending_per_address and count >= self.max_pending_per_address:
            reason = (
                f"it has {count} sockets waiting for their request headers, the limit per "
                "address (promptus serve --max-pending-per-address)"
            )
        elif self.pending >= self.max_pending:
            reason = (
                f"the server has {self.pending} sockets waiting for their request headers, its "
                "limit (promptus serve --max-pending)"
            )
        else:
            self.wait(address)
            return None
        self.refused_pending += 1
        self.throttle.log(logging.WARNING, address, "closed a socket from %s: %s", address, reason)
        return reason

    def wait(self, address: str) -> None:
        """A socket of ``address`` waits for request headers (again)."""
        self._pending[address] = self._pending.get(address, 0) + 1
        self.pending += 1

    def stop_waiting(self, address: str) -> None:
        """A waiting socket of ``address`` got a request, or closed."""
        count = self._pending.get(address, 0) - 1
        if count > 0:
            self._pending[address] = count
        else:
            self._pending.pop(address, None)
        self.pending -= 1

    def malformed_request(self, address: str, error: HttpProcessingError) -> None:
        self.malformed += 1
        detail = " ".join(str(error.message).split())[:MAX_LOGGED_DETAIL]
        self.throttle.log(
            logging.WARNING,
            address,
            "malformed HTTP request from %s (answered 400): %s",
            address,
            detail,
        )

    def accept_failed(self, error: BaseException | None) -> None:
        self.accept_failures += 1
        self.throttle.log(
            logging.ERROR,
            "accept",
            "cannot accept connections: %s (the open-file limit is reached; see the "
            "start-up line about it)",
            error,
        )

    def handle_loop_exception(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        """Event loop exception handler: a failed accept is counted and logged in one line
        per interval (asyncio writes a traceback for each); anything else as asyncio would."""
        if context.get("message") == ACCEPT_FAILURE:
            self.accept_failed(context.get("exception"))
            return
        loop.default_exception_handler(context)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP protocol, counted by a ConnectionGuard; malformed requests are logged by
    the guard (one line, no traceback) instead of by aiohttp."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.address = "unknown"
        self.waiting = False
        self._quiet = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.address = address_key(peer[0] if isinstance(peer, tuple) else None)
        if self.guard.admit(self.address) is not None:
            self.force_close()
            return
        self.waiting = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.request_started()
        super().connection_lost(exc)

    def request_started(self) -> None:
        if self.waiting:
            self.waiting = False
            self.guard.stop_waiting(self.address)

    def request_ended(self) -> None:
        if not self.waiting and self.transport is not None and not self.transport.is_closing():
            self.waiting = True
            self.guard.wait(self.address)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        self.guard.malformed_request(self.address, exc)
        self._quiet = True  # aiohttp's traceback for it is not written
        try:
            return super().handle_error(request, status, exc, message)
        finally:
            self._quiet = False

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        if not self._quiet:
            super().log_exception(*args, **kwargs)


@web.middleware
async def track_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A request in progress does not count as a socket waiting for headers."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):
        return await handler(request)
    protocol.request_started()
    try:
        return await handler(request)
    finally:
        protocol.request_ended()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are GuardedRequestHandlers of ``guard``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        handler_options: dict[str, Any],
        reuse_port: bool = False,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._guard = guard
        self._handler_options = handler_options
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the asked one before the start)."""
        if isinstance(self._server, asyncio.Server) and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        manager = self._runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(
                manager, guard=self._guard, loop=loop, **self._handler_options
            )

        self._server = await loop.create_server(
            protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )
