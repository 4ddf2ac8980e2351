"""Trunks: which peer an INVITE came from, and the order outbound calls try them in.

An INVITE is taken as a trunk call only when its source IP address is in the trunk's
``allowed_sources`` (addresses or CIDR blocks; empty means the trunk's ``host`` when that is an IP
address). This is the edge allow-list that keeps strangers from making toll calls through us; everything
else must authenticate as a registered user (RFC 3261 section 22).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from cti_server.config import TrunkConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trunk_destination(trunk: TrunkConfig) -> tuple[str, str, int]:
    """``(transport, host, port)`` for ``SipComponent.send_request`` (RFC 3263 resolution is the stack's)."""
    return (trunk.transport, trunk.host, trunk.port)


SOURCE_CACHE_SIZE = 4096
"""Source addresses whose trunk (or none) is remembered."""


class TrunkDirectory:
    """The configured trunks: source address matching and outbound failover order."""

    def __init__(self, trunks: Iterable[TrunkConfig]) -> None:
        self.trunks = list(trunks)
        self._sources: list[tuple[Network, TrunkConfig]] = []
        self._by_source: dict[str, TrunkConfig | None] = {}  # every INVITE asks; parsing IPs costs
        for trunk in self.trunks:
            sources = list(trunk.allowed_sources) or _host_as_network(trunk.host)
            for source in sources:
                self._sources.append((ipaddress.ip_network(source, strict=False), trunk))

    def trunk_for_source(self, address: str) -> TrunkConfig | None:
        """The trunk allowed to send from IP ``address``, or None (not a trunk: authenticate or 403)."""
        if address in self._by_source:
            return self._by_source[address]
        found = self._match_source(address)
        if len(self._by_source) >= SOURCE_CACHE_SIZE:
            self._by_source.clear()  # a flood of distinct sources cannot grow it without bound
        self._by_source[address] = found
        return found

    def _match_source(self, address: str) -> TrunkConfig | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for network, trunk in self._sources:
            if ip.version == network.version and ip in network:
                return trunk
        return None

    def by_name(self, name: str) -> TrunkConfig | None:
        """The trunk called ``name``."""
        return next((t for t in self.trunks if t.name == name), None)

    def outbound_order(self) -> list[TrunkConfig]:
        """Trunks that carry outbound calls, lowest ``priority`` first (config order breaks ties)."""
        return sorted((t for t in self.trunks if t.outbound), key=lambda t: t.priority)


def _host_as_network(host: str) -> list[str]:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return []
    return [host.strip("[]")]
