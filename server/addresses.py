"""What one client address may hold: a few sockets, and a byte budget for the manifests its
`hello` messages make the server send.

An address is the TCP peer's IPv4 address, or the /64 prefix of an IPv6 address (the block
one host or home network is usually given, so rotating addresses inside it gains nothing).
Behind a reverse proxy every viewer has the proxy's address: limit per address there
(e.g. nginx ``limit_conn``) and raise or disable these limits (docs/server.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from server.rate_limit import TokenBucket

IPV6_PREFIX = 64  # bits of an IPv6 address that name one client
SWEEP_EVERY = 1024  # admissions between sweeps of idle addresses


def address_key(peer: str | None) -> str:
    """The key a per-address limit counts against."""
    if not peer:
        return "unknown"
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer  # a Unix socket path or similar: one key each
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


@dataclass
class _Address:
    sockets: int
    manifests: TokenBucket  # bytes


class AddressLimits:
    """Sockets per address (0 = no limit) and each address's manifest byte budget."""

    def __init__(
        self,
        *,
        max_sockets: int,
        manifest_bytes_per_s: float,
        manifest_burst_bytes: float,
    ) -> None:
        self.max_sockets = max_sockets
        self.manifest_bytes_per_s = manifest_bytes_per_s
        self.manifest_burst_bytes = manifest_burst_bytes
        self._addresses: dict[str, _Address] = {}
        self._admitted = 0
        self.refused_sockets = 0  # sockets refused by the per-address limit
        self.refused_manifests = 0  # hellos refused by the manifest budget

    def __len__(self) -> int:
        return len(self._addresses)

    def admit(self, key: str, now: float) -> bool:
        """Count one more socket of ``key``; False (nothing counted) when it has its maximum."""
        state = self._addresses.get(key)
        if state is None:
            bucket = TokenBucket(self.manifest_bytes_per_s, self.manifest_burst_bytes, now)
            state = self._addresses[key] = _Address(0, bucket)
        if self.max_sockets and state.sockets >= self.max_sockets:
            self.refused_sockets += 1
            return False
        state.sockets += 1
        self._admitted += 1
        if self._admitted % SWEEP_EVERY == 0:
            self._sweep(now)
        return True

    def leave(self, key: str, now: float) -> None:
        """One socket of ``key`` closed; an address with none left and nothing spent is forgotten."""
        state = self._addresses.get(key)
        if state is None:
            return
        state.sockets -= 1
        if state.sockets <= 0 and state.manifests.full(now):
            del self._addresses[key]

    def spend_manifest(self, key: str, size: int, now: float) -> float | None:
        """Charge a manifest of ``size`` bytes to ``key``; None when afforded, else the seconds
        until it would be (the hello is refused)."""
        state = self._addresses.get(key)
        if state is None:  # not admitted through this object (tests); nothing to charge
            return None
        cost = min(float(size), self.manifest_burst_bytes)  # a manifest over the burst costs all
        if state.manifests.allow(now, cost):
            return None
        self.refused_manifests += 1
        return state.manifests.wait_s(now, cost)

    def _sweep(self, now: float) -> None:
        """Forget addresses with no socket whose budget has refilled (memory stays bounded by
        the addresses seen within one refill time)."""
        idle = [
            key
            for key, state in self._addresses.items()
            if state.sockets <= 0 and state.manifests.full(now)
        ]
        for key in idle:
            del self._addresses[key]
