"""The client daemon: the viewer's local generator, from prompt chunks to fragmented MP4.

Run it with ``promptus daemon`` (``promptus.commands.daemon``); see ``docs/daemon.md``. Modules,
one job each: ``daemon`` (server, generator, generation thread), ``transport`` (one page's
WebSocket connection, Origin check), ``session`` (order and prefix rules), ``pipeline``
(generation -> encoding off the event loop), ``muxer`` (PyAV H.264 -> fMP4 segments),
``mp4`` (box reading, codec string), ``client`` (a Python page), ``settings``.
"""
