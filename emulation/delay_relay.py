"""A TCP relay that adds a fixed one-way delay in each direction (the base delay of full mode).

This kernel has no ``netem``, so ``tc`` can shape rate and queue but not delay. The relay runs in
the server's namespace in front of the media server: every byte it reads is written out
``delay_ms`` later, in order. A request therefore pays two one-way delays before its answer starts,
as on a path with that round trip. (It terminates TCP, so the shaped hop's congestion control sees
the short RTT of the veth, not the base delay; the chunk-level latency is what the player sees.)

    python -m emulation.delay_relay --listen 0.0.0.0:8000 --target 127.0.0.1:8080 --delay-ms 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

READ_BYTES = 64 * 1024  # bytes per read
MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024  # bytes held per direction before reading pauses
CONNECT_TIMEOUT_S = 10.0


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copies reader -> writer, each piece ``delay_s`` after it was read (bounded memory)."""
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    room = asyncio.Semaphore(MAX_IN_FLIGHT_BYTES // READ_BYTES)

    async def deliver() -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
            room.release()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(READ_BYTES):
            await room.acquire()
            queue.put_nowait((time.monotonic() + delay_s, data))
        queue.put_nowait(None)
        await sender
        if writer.can_write_eof():
            with contextlib.suppress(OSError):  # the peer may already be gone
                writer.write_eof()
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender


async def _handle(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: tuple[str, int],
    delay_s: float,
) -> None:
    try:
        server_r, server_w = await asyncio.wait_for(
            asyncio.open_connection(*target), CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        client_w.close()
        return
    try:
        await asyncio.gather(_pump(client_r, server_w, delay_s), _pump(server_r, client_w, delay_s))
    except OSError:  # a peer reset or vanished: drop this connection only
        pass
    finally:
        for w in (client_w, server_w):
            w.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], delay_ms: float) -> None:
    """Relays connections on ``listen`` to ``target`` until cancelled."""
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, target, delay_ms / 1000.0), listen[0], listen[1]
    )
    print(
        f"delay relay {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}, {delay_ms} ms each way",
        flush=True,
    )
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--target", type=_address, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, args.target, args.delay_ms))


if __name__ == "__main__":
    main()
