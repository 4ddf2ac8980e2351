"""SIP transports on asyncio, RFC 3261 section 18: UDP, TCP and TLS listeners and connections.

A thin edge: it moves bytes and nothing else. Every message that arrives is handed to one callback
``on_message(data, flow)``; a ``Flow`` (RFC 5626's word for a path to one peer) is what the stack
sends answers on. UDP: one datagram is one message. TCP/TLS: a ``StreamFramer`` cuts the byte stream
by Content-Length; a CRLF keep-alive ping is answered with a CRLF pong (RFC 5626 4.4.1); a stream
that breaks the framing or the size cap is closed. Connections are kept by peer address and reused
for requests to that peer (RFC 3261 18.1.1, 18.2.2) until they sit idle for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from asyncio.trsock import TransportSocket
from collections.abc import Callable
from typing import Protocol, cast

import structlog

from cti_server.sip.errors import SipParseError
from cti_server.sip.parser import StreamFramer
from cti_server.sip.stats import SipStats

log = structlog.get_logger(__name__)

Address = tuple[str, int]
CRLF_PONG = b"\r\n"


class Flow(Protocol):
    """A path to one peer over one transport, on which messages can be sent (RFC 5626 3.1)."""

    @property
    def transport(self) -> str:
        """"udp", "tcp" or "tls"."""
        ...

    @property
    def reliable(self) -> bool:
        """True for TCP and TLS (RFC 3261 17: no retransmissions)."""
        ...

    @property
    def remote(self) -> Address:
        """The peer's (host, port)."""
        ...

    @property
    def local(self) -> Address:
        """Our (host, port) of this flow."""
        ...

    def send(self, data: bytes) -> None:
        """Send one serialized message; raises OSError / ConnectionError when it cannot."""
        ...

    @property
    def is_closed(self) -> bool:
        """True once the connection is gone (always False for UDP)."""
        ...


MessageCallback = Callable[[bytes, Flow], None]


class UdpFlow:
    """The UDP socket plus one peer address (RFC 3261 18.1.1 / 18.2.2 unreliable transport)."""

    __slots__ = ("_endpoint", "remote")

    transport = "udp"
    reliable = False

    def __init__(self, endpoint: UdpEndpoint, remote: Address) -> None:
        self._endpoint = endpoint
        self.remote = remote

    @property
    def local(self) -> Address:
        return self._endpoint.local

    @property
    def is_closed(self) -> bool:
        return False

    def send(self, data: bytes) -> None:
        """Send one datagram to the peer."""
        self._endpoint.sendto(data, self.remote)


class UdpEndpoint(asyncio.DatagramProtocol):
    """The UDP listener: each datagram is one message (RFC 3261 18.3 does not apply to UDP)."""

    def __init__(self, on_message: MessageCallback, stats: SipStats) -> None:
        self._on_message = on_message
        self._stats = stats
        self._transport: asyncio.DatagramTransport | None = None
        self._drain: socket.socket | None = None
        self.local: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        listening = transport.get_extra_info("socket")
        _enlarge_receive_buffer(listening)
        if isinstance(listening, TransportSocket):
            # asyncio's own loop reads one datagram per wake-up (uvloop's libuv already reads up to
            # 32): a second descriptor on the same (non-blocking) socket, read after each datagram the
            # loop hands us, makes a burst cost one wake-up of the event loop instead of one each.
            self._drain = listening.dup()
            self._drain.setblocking(False)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._receive(data, addr)
        drain = self._drain
        if drain is None:
            return
        for _ in range(UDP_DRAIN_BATCH):
            if self._transport is None or self._transport.is_closing():
                return
            try:
                data, addr = drain.recvfrom(MAX_DATAGRAM_SIZE)
            except (BlockingIOError, InterruptedError):
                return  # the kernel queue is empty: back to the event loop
            except OSError as exc:
                self.error_received(exc)
                return
            self._receive(data, addr)

    def _receive(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._stats["udp_datagrams_in"] += 1
        remote = (str(addr[0]), int(addr[1]))
        self._on_message(data, UdpFlow(self, remote))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: count, the transaction's timers handle the rest.
        self._stats["transport_errors"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drain is not None:
            self._drain.close()
            self._drain = None

    def sendto(self, data: bytes, remote: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("UDP listener is closed")
        self._transport.sendto(data, remote)
        self._stats["udp_datagrams_out"] += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._drain is not None:
            self._drain.close()
            self._drain = None


UDP_DRAIN_BATCH = 31
"""Datagrams read straight from the socket after the one the event loop delivered (then the loop gets
its turn back, so timers and other connections are never held up by more than a bounded burst)."""

MAX_DATAGRAM_SIZE = 65536
"""Receive buffer for one datagram: the largest UDP payload (RFC 3261 18.1.1) fits."""

UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
"""Bytes of kernel buffer for the UDP socket: a burst of ~10,000 requests waits there while the event
loop is busy instead of being dropped (Kamailio and Asterisk raise it for the same reason)."""


def _enlarge_receive_buffer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    force = getattr(socket, "SO_RCVBUFFORCE", None)  # Linux, beyond net.core.rmem_max when privileged
    for option in (force, socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:
            continue


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: framing by Content-Length (RFC 3261 18.3) and CRLF keep-alives."""

    reliable = True

    def __init__(self, pool: ConnectionPool, transport_name: str) -> None:
        self._pool = pool
        self.transport = transport_name
        self._framer = StreamFramer(pool.max_message_size)
        self._stream: asyncio.Transport | None = None
        self.remote: Address = ("", 0)
        self.local: Address = ("", 0)
        self.last_activity = 0.0
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.remote = (str(peer[0]), int(peer[1]))
        self.local = (str(sock[0]), int(sock[1]))
        self.last_activity = self._pool.now()
        self._pool.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._pool.now()
        stats = self._pool.stats
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            stats["stream_framing_errors"] += 1
            log.warning("sip_stream_closed", transport=self.transport, remote=self.remote, reason=exc.reason)
            self.close()
            return
        for message in messages:
            if not message:  # a CRLF CRLF ping: answer with a CRLF pong (RFC 5626 4.4.1)
                stats["keepalives_in"] += 1
                self._write(CRLF_PONG)
                continue
            self._pool.on_message(message, self)

    def send(self, data: bytes) -> None:
        """Write one message; ConnectionError if the connection is gone."""
        if self._closed or self._stream is None or self._stream.is_closing():
            raise ConnectionError(f"{self.transport} connection to {self.remote} is closed")
        self.last_activity = self._pool.now()
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self._stream is not None and not self._stream.is_closing():
            self._stream.write(data)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._mark_closed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_closed()

    def _mark_closed(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.remove(self)


class ConnectionPool:
    """Open TCP/TLS connections by (transport, peer address), reused both ways and closed when idle."""

    def __init__(self, on_message: MessageCallback, stats: SipStats, max_message_size: int,
                 idle_timeout: float, client_tls: ssl.SSLContext | None) -> None:
        self.on_message = on_message
        self.stats = stats
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self._client_tls = client_tls
        self._connections: dict[tuple[str, Address], StreamConnection] = {}
        self._loop = asyncio.get_running_loop()
        self._sweeper: asyncio.TimerHandle | None = None
        self._schedule_sweep()

    def now(self) -> float:
        return self._loop.time()

    def add(self, connection: StreamConnection) -> None:
        self._connections[(connection.transport, connection.remote)] = connection
        self.stats["connections_opened"] += 1

    def remove(self, connection: StreamConnection) -> None:
        key = (connection.transport, connection.remote)
        if self._connections.get(key) is connection:
            del self._connections[key]
        self.stats["connections_closed"] += 1

    def get(self, transport: str, remote: Address) -> StreamConnection | None:
        """An open connection to ``remote``, or None."""
        connection = self._connections.get((transport, remote))
        return None if connection is None or connection.is_closed else connection

    def __len__(self) -> int:
        return len(self._connections)

    async def connect(self, transport: str, remote: Address, connect_timeout: float) -> StreamConnection:
        """Reuse the open connection to ``remote`` or open a new one (RFC 3261 18.1.1)."""
        existing = self.get(transport, remote)
        if existing is not None:
            return existing
        tls = None
        if transport == "tls":
            tls = self._client_tls or ssl.create_default_context()
        _, protocol = await asyncio.wait_for(
            self._loop.create_connection(lambda: StreamConnection(self, transport), remote[0], remote[1],
                                         ssl=tls),
            connect_timeout,
        )
        return protocol

    def close_all(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._connections.values()):
            connection.close()

    def _schedule_sweep(self) -> None:
        self._sweeper = self._loop.call_later(max(self.idle_timeout / 4, 0.05), self._sweep)

    def _sweep(self) -> None:
        deadline = self.now() - self.idle_timeout
        for connection in list(self._connections.values()):
            if connection.last_activity < deadline:
                self.stats["connections_idle_closed"] += 1
                connection.close()
        self._schedule_sweep()


def server_tls_context(certificate: str, private_key: str) -> ssl.SSLContext:
    """The TLS context of the SIPS listener (RFC 3261 26.3.1: TLS 1.2 or later)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, private_key)
    return context


class SipTransports:
    """The listeners of one SIP stack: UDP, TCP and (with a certificate) TLS on ``host``."""

    def __init__(self, host: str, *, udp_port: int, tcp_port: int, tls_port: int | None,
                 tls_context: ssl.SSLContext | None, on_message: MessageCallback, stats: SipStats,
                 max_message_size: int, idle_timeout: float,
                 client_tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self._ports = (udp_port, tcp_port, tls_port)
        self._tls_context = tls_context
        self._on_message = on_message
        self._stats = stats
        self._max_message_size = max_message_size
        self._idle_timeout = idle_timeout
        self._client_tls = client_tls
        self.udp: UdpEndpoint | None = None
        self.pool: ConnectionPool | None = None
        self._servers: list[asyncio.Server] = []
        self.udp_address: Address | None = None
        self.tcp_address: Address | None = None
        self.tls_address: Address | None = None

    async def start(self) -> None:
        """Bind every listener; raises OSError (after closing what was opened) if a port is taken."""
        loop = asyncio.get_running_loop()
        udp_port, tcp_port, tls_port = self._ports
        try:
            _, endpoint = await loop.create_datagram_endpoint(
                lambda: UdpEndpoint(self._on_message, self._stats), local_addr=(self.host, udp_port))
            self.udp = endpoint
            self.udp_address = endpoint.local
            self.pool = ConnectionPool(self._on_message, self._stats, self._max_message_size,
                                       self._idle_timeout, self._client_tls)
            pool = self.pool
            tcp = await loop.create_server(lambda: StreamConnection(pool, "tcp"), self.host, tcp_port)
            self._servers.append(tcp)
            self.tcp_address = _bound(tcp)
            if self._tls_context is not None and tls_port is not None:
                tls = await loop.create_server(lambda: StreamConnection(pool, "tls"), self.host, tls_port,
                                               ssl=self._tls_context)
                self._servers.append(tls)
                self.tls_address = _bound(tls)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the listeners and every open connection."""
        for server in self._servers:
            server.close()
        if self.pool is not None:
            self.pool.close_all()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.udp is not None:
            self.udp.close()
            self.udp = None

    def local_address(self, transport: str) -> Address | None:
        """The bound address of the listener for ``transport``."""
        return {"udp": self.udp_address, "tcp": self.tcp_address, "tls": self.tls_address}.get(transport)

    def udp_flow(self, remote: Address) -> Flow:
        """The UDP socket towards ``remote`` (responses to a received/rport address, 18.2.2)."""
        if self.udp is None:
            raise ConnectionError("UDP listener is not running")
        return UdpFlow(self.udp, remote)

    async def flow_to(self, transport: str, remote: Address, connect_timeout: float) -> Flow:
        """A flow to ``remote``: the UDP socket, or a reused / new TCP or TLS connection."""
        if transport == "udp":
            if self.udp is None:
                raise ConnectionError("UDP listener is not running")
            return UdpFlow(self.udp, remote)
        if transport not in ("tcp", "tls") or self.pool is None:
            raise ConnectionError(f"transport {transport!r} is not available")
        return await self.pool.connect(transport, remote, connect_timeout)


def _bound(server: asyncio.Server) -> Address:
    sockname = server.sockets[0].getsockname()
    return (str(sockname[0]), int(sockname[1]))
