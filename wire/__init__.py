"""The wire protocol of both WebSocket links, written once (spec: ``docs/protocol.md``).

- ``wire.framing``: limits, JSON and binary framing, field checks, the shared ``error`` message;
- ``wire.media``: page <-> media server;
- ``wire.daemon``: page <-> client daemon;
- ``wire.errors``: the error codes and ``ProtocolError``;
- ``wire.testing``: inputs for tests and benchmarks (a fixture stream's open, malformed HTTP).

Pure (no I/O): builds wire bytes and turns untrusted bytes into typed, validated messages.
"""
