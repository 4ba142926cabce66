"""Counters of one server process, rendered in the Prometheus text exposition format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from wire.errors import ErrorCode


@dataclass
class Metrics:
    """Plain counters; the server bumps them, `/metrics` renders them."""

    viewers: int = 0
    connections_total: int = 0
    bytes_sent_total: int = 0
    chunks_served_total: int = 0
    prefixes_served_total: int = 0
    dropped_messages_total: int = 0  # over the rate limit
    unmasked_frames_total: int = 0  # connections closed for an unmasked client frame
    messages_total: Counter[str] = field(default_factory=Counter)
    errors_total: Counter[str] = field(default_factory=Counter)

    def count_error(self, code: ErrorCode) -> None:
        self.errors_total[str(code)] += 1

    def count_unmasked(self) -> None:
        self.unmasked_frames_total += 1

    def render(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> str:
        """Prometheus text: our counters plus ``gauges`` (name -> (help, read function))."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        metric("promptus_viewers", "gauge", "Open viewer WebSockets.", [("", self.viewers)])
        metric(
            "promptus_connections_total",
            "counter",
            "Viewer WebSockets accepted.",
            [("", self.connections_total)],
        )
        metric(
            "promptus_bytes_sent_total",
            "counter",
            "Bytes of chunk messages sent.",
            [("", self.bytes_sent_total)],
        )
        metric(
            "promptus_chunks_served_total",
            "counter",
            "Chunk messages sent.",
            [("", self.chunks_served_total)],
        )
        metric(
            "promptus_prefixes_served_total",
            "counter",
            "Chunk messages sent with a switch prefix.",
            [("", self.prefixes_served_total)],
        )
        metric(
            "promptus_dropped_messages_total",
            "counter",
            "Client messages (pings and pongs too) dropped by the rate limit.",
            [("", self.dropped_messages_total)],
        )
        metric(
            "promptus_unmasked_frames_total",
            "counter",
            "Connections closed (1002) for an unmasked client frame.",
            [("", self.unmasked_frames_total)],
        )
        metric(
            "promptus_messages_total",
            "counter",
            "Client messages received, by type.",
            [(f'{{type="{kind}"}}', n) for kind, n in sorted(self.messages_total.items())],
        )
        metric(
            "promptus_errors_total",
            "counter",
            "Protocol errors sent, by code.",
            [(f'{{code="{code}"}}', self.errors_total.get(str(code), 0)) for code in ErrorCode],
        )
        for name, (help_text, read) in gauges.items():
            metric(name, "gauge", help_text, [("", read())])
        return "\n".join(lines) + "\n"
