"""The client daemon: the viewer's local generator, from prompt chunks to fragmented MP4.

Run it with ``promptus daemon`` (``promptus.commands.daemon``); see ``docs/daemon.md``. Modules,
one job each:

- ``daemon``: the WebSocket server on the loopback; holds the generator, the generation thread
  and the count of open streams (``busy`` past ``--max-sessions``); checks an ``open``.
- ``transport``: one page's WebSocket connection (Origin check, idle timeout, error replies).
- ``session``: one page's stream and the order and switch-prefix rules of its chunks (pure).
- ``pipeline``: one page's chunks -> generation -> encoding, off the event loop.
- ``scheduler``: the one generation thread, shared fairly in time by every page.
- ``muxer``: the codec layer, PyAV H.264 -> fMP4 segments (one per GOP).
- ``mp4``: ISO-BMFF box reading, the codec string, tfdt (pure).
- ``footprint``: what one model call costs on the device, measured at start.
- ``settings``: ``DaemonSettings`` and the ``Budget`` of what pages may make it allocate.
- ``ready``: the ready file that tells programs where a listening daemon is.
- ``run``: run a daemon until a signal and announce it.
- ``client``: a Python page (tests, benchmarks, the emulator).
"""
