"""One RTP endpoint per call leg: a UDP socket pair (RTP on an even port, RTCP on the next) with
symmetric RTP latching (RFC 4961), counters and media timeout detection.

The latching rules are the sans-IO ``SymmetricRtpLatch``. ``RtpEndpoint`` is the asyncio edge: it hands
each accepted RTP datagram to ``on_rtp`` unparsed and sends with ``socket.sendto`` directly (a full socket
buffer drops the packet and counts it, as UDP would).

Once latched, a second socket on the same RTP port (SO_REUSEPORT) is connected to the far end: the kernel
gives it that peer's datagrams, and ``send``/``recv`` on it skip the address handling of ``sendto``/
``recvfrom`` (about a fifth of the per-packet cost in bench/rtp_relay_bench.py). Datagrams from anyone
else still reach the first socket, where the latching rules reject them or relatch (NAT rebinding).
A relay (``relay_to``) is served on that socket without a handler call: the reader transforms the
datagram and sends it out of the target endpoint itself (two Python calls per packet instead of four:
about 1.5 of 8.5 µs of Python time per relayed packet in bench/rtp_relay_bench.py).

Reading: hundreds of calls mean thousands of sockets, each readable 50 times a second. Registering each
with the event loop costs a loop callback per packet; instead all media sockets of a loop sit in one
epoll set (``MediaSocketPoller``) that is itself the loop's only reader, so one loop callback serves every
socket that became readable. Each ready socket is read once per round (level-triggered: a socket with
more queued comes back in the next round), which avoids a failing ``recvfrom`` per packet.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import random
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from cti_server.media.ports import RtpPortAllocator
from cti_server.media.rtcp import (
    SDES_CNAME,
    Bye,
    RtcpPacket,
    RtcpParseError,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_compound,
    serialize_compound,
)
from cti_server.media.rtp import FIXED_HEADER_SIZE, RTP_VERSION
from cti_server.media.stream import OutgoingStream
from cti_server.sip.timer_slots import TimerSlots

log = structlog.get_logger(__name__)

Address = tuple[str, int]
_MAX_DATAGRAM = 2048
_DRAIN_AFTER_LATCH = 256
"""At most this many datagrams queued before a latch are served at once (a flood cannot hold the thread)."""
_REUSE_PORT: int = getattr(socket, "SO_REUSEPORT", 0)
_KERNEL_BYTES_PER_DATAGRAM = 1024
"""What Linux charges a socket's receive buffer for one queued G.711 RTP datagram (the sk_buff's
truesize: 830-910 bytes for a 172-byte datagram on loopback; NIC drivers may charge more)."""


def receive_buffer_size(milliseconds: int, ptime: int) -> int:
    """The ``SO_RCVBUF`` value that lets a media socket queue about ``milliseconds`` of audio in packets of
    ``ptime`` ms (0: leave the kernel default, about 256 such packets, i.e. seconds of audio).

    A relay that falls behind should drop what it cannot serve, not queue seconds of audio that comes too
    late to be played (bench/README.md, "RTP relay"). Linux doubles the value set for its bookkeeping
    (socket(7)), hence half the kernel's charge per datagram; it also enforces a minimum of about two
    datagrams.
    """
    if milliseconds <= 0:
        return 0
    return math.ceil(milliseconds / ptime) * _KERNEL_BYTES_PER_DATAGRAM // 2


class MediaSocketPoller:
    """One epoll set holding every media socket of an event loop, served by a media thread of its own
    (``threaded``, the default) or registered with the loop as a single reader; ``for_loop`` returns the
    loop's poller. Without epoll (not Linux) sockets are registered with the loop one by one.

    The media thread: SIP work on the loop (a burst of call set-ups, a slow handler) no longer holds RTP
    back. In bench/b2bua_media_bench.py at 250 calls set up at 100/s, the relay's p99 transit went from
    41 to 6 ms. Endpoint handlers, relaying, taps and ``on_rtp``/``on_rtcp`` then run on that thread
    (``RtpEndpoint.in_media_thread``); digits reach the relay's ``on_digit`` on the loop.

    Batching (interrupt coalescing): the first packet after a quiet spell wakes the poller at once;
    while packets keep coming it polls every ``batch_interval`` seconds on a timer instead, serving all
    that arrived meanwhile in one go, so under load the process wakes 1/batch_interval times a second
    rather than paying a wake-up, epoll calls and a loop iteration per packet. A packet waits at most
    ``batch_interval`` (1 ms by default: far below any jitter buffer, see bench/README.md).
    """

    batch_interval = 0.001
    idle_linger = 2.0
    """Seconds the media thread outlives its last socket before the poller closes: calls that come and
    go one at a time (the B2BUA bench, a quiet office) would otherwise start and join a thread each."""
    threaded = True
    """Serve the sockets from a thread of their own instead of the event loop (``_run_thread``); the
    server sets it from ``media.relay_thread``. A poller keeps the mode it was built with."""
    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaSocketPoller] = (
        weakref.WeakKeyDictionary()
    )
    _last: MediaSocketPoller | None = None  # the last one for_loop returned (one loop per process, usually)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handlers: dict[int, Callable[[], None]] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._rearm: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._idle_since: float | None = None  # threaded: when the last socket went (None: some are open)
        self.timer_slots = TimerSlots(loop)
        """The loop's shared slots for the endpoints' timers (they outlive the poller if need be)."""
        if self._epoll is None:
            return
        if self.threaded:
            self._wake = os.pipe()
            self._epoll.register(self._wake[0], select.EPOLLIN)
            # The server shortens the GIL switch interval at start-up (event_loop.tune_switch_interval)
            # so that this thread does not wait 5 ms for the GIL behind SIP work.
            self._thread = threading.Thread(target=self._run_thread, args=(self._epoll, self._wake[0]),
                                            name="media", daemon=True)
            self._thread.start()
        else:
            loop.add_reader(self._epoll.fileno(), self._on_ready)

    @property
    def in_thread(self) -> bool:
        """Whether the handlers run on the media thread (not the event loop's)."""
        return self._thread is not None

    def _run_thread(self, epoll: select.epoll, wake: int) -> None:
        """The media thread: wait for a readable socket, serve every ready one, and while packets keep
        coming sleep ``batch_interval`` between rounds (the same coalescing as on the loop). Blocking
        in epoll and sleeping release the GIL, so the event loop runs the SIP work meanwhile; when the
        thread wants the GIL back it gets it within the switch interval."""
        handlers = self._handlers
        timeout = -1.0
        while True:
            try:
                ready = epoll.poll(timeout if timeout >= 0 or handlers else self.idle_linger / 4)
            except (OSError, ValueError):  # closed from this thread (its last socket went)
                return
            idle_since = self._idle_since
            if (not ready and not handlers and idle_since is not None
                    and time.monotonic() - idle_since >= self.idle_linger):
                try:
                    self._loop.call_soon_threadsafe(self._close_if_idle)
                except RuntimeError:  # the loop is closed: nobody else will close the poller
                    self.close()
                    return
                self._idle_since = None  # asked once; a new socket would reset it anyway
            for fd, _events in ready:
                handler = handlers.get(fd)
                if handler is not None:
                    try:
                        handler()
                    except Exception:
                        log.exception("media_handler_failed", fd=fd)
                elif fd == wake:
                    return
            if ready:
                time.sleep(self.batch_interval)
                timeout = 0.0
            else:
                timeout = -1.0

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> MediaSocketPoller:
        """The poller of ``loop``, created on first use."""
        poller = cls._last
        if poller is not None and poller._loop is loop and poller._epoll is not None:
            return poller
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls(loop)
        cls._last = poller
        return poller

    def add(self, fd: int, handler: Callable[[], None]) -> None:
        """Call ``handler`` whenever ``fd`` is readable (level-triggered)."""
        self._handlers[fd] = handler
        self._idle_since = None
        if self._epoll is None:
            self._loop.add_reader(fd, handler)
        else:
            self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        """Stop watching ``fd``; the last removal closes the poller (the media thread's: after
        ``idle_linger`` seconds without a new socket)."""
        if self._handlers.pop(fd, None) is None:
            return
        if self._epoll is None:
            self._loop.remove_reader(fd)
        else:
            self._epoll.unregister(fd)
        if not self._handlers:
            if self._thread is None:
                self.close()
            else:  # the media thread lingers for the next call, then closes the poller (_run_thread)
                self._idle_since = time.monotonic()

    def _close_if_idle(self) -> None:
        if not self._handlers:
            self.close()

    def close(self) -> None:
        """Unregister from the loop (or stop the media thread); the next ``for_loop`` builds a new poller."""
        if self._rearm is not None:
            self._rearm.cancel()
            self._rearm = None
        thread, self._thread = self._thread, None
        if thread is not None and self._wake is not None:
            os.write(self._wake[1], b"x")
            if thread is not threading.current_thread():
                thread.join()
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        elif self._epoll is not None:
            self._loop.remove_reader(self._epoll.fileno())
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._by_loop.get(self._loop) is self:
            del self._by_loop[self._loop]
        if MediaSocketPoller._last is self:
            MediaSocketPoller._last = None

    def _serve(self) -> bool:
        epoll = self._epoll
        if epoll is None:
            return False
        ready = epoll.poll(0)
        handlers = self._handlers
        for fd, _events in ready:
            handler = handlers.get(fd)
            if handler is not None:
                handler()
        return bool(ready)

    def _on_ready(self) -> None:
        if self.batch_interval <= 0 or self._epoll is None:
            self._serve()
            return
        # Busy from now on: poll on a timer, without the reader (no epoll_ctl per batch).
        self._loop.remove_reader(self._epoll.fileno())
        self._serve()
        self._rearm = self._loop.call_later(self.batch_interval, self._tick)

    def _tick(self) -> None:
        self._rearm = None
        if self._epoll is None:
            return
        if self._serve():
            self._rearm = self._loop.call_later(self.batch_interval, self._tick)
        else:
            # Idle: wake up on the next packet.
            self._loop.add_reader(self._epoll.fileno(), self._on_ready)


class SymmetricRtpLatch:
    """Where to send a leg's RTP, and which sources to accept from (RFC 4961 symmetric RTP).

    With ``enabled``, the first valid RTP packet (payload type among those negotiated) latches the
    destination onto its source address. After that only the latched source is accepted, except a packet
    from a new address with the latched SSRC and a negotiated payload type, which relatches (the NAT
    binding of the phone changed). ``expect`` is called with each new SDP (answer, re-INVITE): when the
    signalled address changes the latch is released and the next valid packet latches again; hold and
    resume on the same address keep it. Without ``enabled`` RTP goes to the signalled address and every
    valid packet is accepted.
    """

    def __init__(self, enabled: bool = True, signalled: Address | None = None,
                 payload_types: frozenset[int] = frozenset()) -> None:
        self.enabled = enabled
        self.signalled = signalled
        self.payload_types = payload_types
        self.source: Address | None = None
        self.ssrc: int | None = None
        self.relatches = 0
        self.destination: Address | None = signalled
        """Where RTP for this leg goes now (kept up to date: the send path reads it per packet)."""

    def _latch(self, source: Address | None, ssrc: int | None) -> None:
        self.source = source
        self.ssrc = ssrc
        self.destination = source if self.enabled and source is not None else self.signalled

    def expect(self, signalled: Address | None, payload_types: frozenset[int]) -> None:
        """New remote description: the address and payload types from the SDP."""
        moved = signalled != self.signalled
        self.signalled = signalled
        self.payload_types = payload_types
        if moved:
            self._latch(None, None)

    def release(self) -> None:
        """Forget the latched source; the next valid packet latches again."""
        self._latch(None, None)

    def accept(self, source: Address, payload_type: int, ssrc: int) -> bool:
        """Whether a valid RTP packet from ``source`` belongs to this leg; latches as a side effect."""
        if not self.enabled:
            return True
        if source == self.source:
            self.ssrc = ssrc
            return True
        if self.payload_types and payload_type not in self.payload_types:
            return False
        if self.source is None:
            self._latch(source, ssrc)
            return True
        if ssrc == self.ssrc:
            self._latch(source, ssrc)
            self.relatches += 1
            return True
        return False


@dataclass(slots=True)
class RtpCounters:
    """What moved through one endpoint (Kamailio-style statistics, readable while running)."""

    packets_received: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    bytes_sent: int = 0
    invalid_packets: int = 0
    rejected_source: int = 0
    send_dropped: int = 0
    rtcp_received: int = 0
    rtcp_invalid: int = 0
    rtcp_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a JSON-safe dict (for stats and logs)."""
        # Read at each call's end (three times per leg): a dict display is 2.5 times as fast as a
        # comprehension over __slots__ (tests/media pin that it names every field, in order).
        return {"packets_received": self.packets_received, "bytes_received": self.bytes_received,
                "packets_sent": self.packets_sent, "bytes_sent": self.bytes_sent,
                "invalid_packets": self.invalid_packets, "rejected_source": self.rejected_source,
                "send_dropped": self.send_dropped, "rtcp_received": self.rtcp_received,
                "rtcp_invalid": self.rtcp_invalid, "rtcp_sent": self.rtcp_sent}


class _ReportTimer:
    """The RTCP report timer of one endpoint in its loop's ``TimerSlots`` (``handle``: the armed entry).
    A closed endpoint lets go of it, and the slot holding the entry no longer holds the endpoint."""

    __slots__ = ("endpoint", "handle")

    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint: RtpEndpoint | None = endpoint
        self.handle: object | None = None


def _report_due(timer: _ReportTimer) -> None:
    if timer.endpoint is not None:
        timer.endpoint._send_report()


RtpHandler = Callable[[bytes], None]
RtpTransform = Callable[[bytes], "bytes | None"]


class RtpEndpoint:
    """The RTP/RTCP sockets of one call leg (RFC 3550 section 11: RTCP on RTP port + 1).

    Build with ``await RtpEndpoint.open(...)``; set ``on_rtp`` to receive each accepted RTP datagram
    (bytes, unparsed) and ``on_timeout`` to hear when no RTP came for ``rtp_timeout`` seconds while
    ``expect_media`` is true (a held leg that sends nothing sets it false). What the endpoint sends is
    one ``outgoing`` stream (cti_server.media.stream), reported in RTCP sender reports every
    ``rtcp_interval`` seconds; received RTCP is parsed, counted and given to ``on_rtcp``. ``close``
    says BYE and frees the ports.
    """

    # Slots: an endpoint has 32 attributes, past what an instance dict shares its keys for (30 in CPython
    # 3.11), so each one made resized a dict of its own (two per call, plus the attribute reads per packet).
    __slots__ = ("__weakref__", "_bound_log", "_closed", "_cname", "_last_change", "_loop", "_peer_sock",
                 "_poller", "_release", "_report_timer", "_rtcp_sock", "_rtp_sock", "_seen_packets",
                 "_timed_out", "_timer", "call_id", "counters", "expect_media", "last_sender_report",
                 "latch", "leg", "local_address", "on_rtcp", "on_rtp", "on_timeout", "outgoing",
                 "receive_buffer", "relay_target", "relay_transform", "rtcp_destination", "rtcp_interval",
                 "rtcp_source", "rtp_timeout")

    def __init__(self, rtp_sock: socket.socket, rtcp_sock: socket.socket, *, symmetric: bool,
                 rtp_timeout: float, call_id: str, leg: str,
                 release: Callable[[], None] | None = None, rtcp_interval: float = 0.0,
                 receive_buffer: int = 0) -> None:
        self._rtp_sock = rtp_sock
        self.receive_buffer = receive_buffer
        """SO_RCVBUF of the RTP sockets (``receive_buffer_size``; 0: the kernel default)."""
        self._rtcp_sock = rtcp_sock
        self.local_address: Address = rtp_sock.getsockname()[:2]
        self.latch = SymmetricRtpLatch(enabled=symmetric)
        self.rtcp_source: Address | None = None
        self.counters = RtpCounters()
        self.outgoing = OutgoingStream(time.monotonic)
        self.rtp_timeout = rtp_timeout
        self.expect_media = True
        self.call_id = call_id
        self.leg = leg
        self.on_rtp: RtpHandler | None = None
        # Set together by relay_to(): the connected-socket reader sends transform(datagram) to the
        # target itself (the relay's hot path, see _on_peer_readable).
        self.relay_transform: RtpTransform | None = None
        self.relay_target: RtpEndpoint | None = None
        self.on_rtcp: Callable[[list[RtcpPacket]], None] | None = None
        self.on_timeout: Callable[[RtpEndpoint], None] | None = None
        self.last_sender_report: SenderReport | None = None
        self._release = release
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._peer_sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False
        self._seen_packets = 0
        self._last_change = self._loop.time()
        self._bound_log: Any = None  # bound on first use (see _log): most endpoints never log
        self._poller = MediaSocketPoller.for_loop(self._loop)
        self._poller.add(rtp_sock.fileno(), self._on_rtp_readable)
        self._poller.add(rtcp_sock.fileno(), self._on_rtcp_readable)
        if rtp_timeout > 0:
            self._schedule_timeout_check()
        self.rtcp_interval = rtcp_interval
        self.rtcp_destination: Address | None = None
        self._cname = f"cti-server@{self.local_address[0]}".encode()
        self._report_timer: _ReportTimer | None = None
        if rtcp_interval > 0:
            self._schedule_report()

    @classmethod
    async def open(cls, host: str, allocator: RtpPortAllocator, *, symmetric: bool = True,
                   rtp_timeout: float = 0.0, call_id: str = "", leg: str = "",
                   rtcp_interval: float = 5.0, attempts: int = 16,
                   receive_buffer: int = 0) -> RtpEndpoint:
        """Bind an RTP/RTCP pair from ``allocator`` on ``host``; a pair some other process holds is
        given back and the next one tried (up to ``attempts``). Every ``rtcp_interval`` seconds (0 = never)
        the endpoint sends an RTCP sender report about what it sent. ``receive_buffer`` is the RTP
        sockets' SO_RCVBUF (``receive_buffer_size``; 0 keeps the kernel default)."""
        last_error: OSError | None = None
        for _ in range(attempts):
            port = allocator.allocate()
            try:
                rtp_sock, rtcp_sock = _bind_pair(host, port, receive_buffer)
            except OSError as exc:
                allocator.release(port)
                last_error = exc
                continue
            return cls(rtp_sock, rtcp_sock, symmetric=symmetric, rtp_timeout=rtp_timeout,
                       call_id=call_id, leg=leg, release=functools.partial(allocator.release, port),
                       rtcp_interval=rtcp_interval, receive_buffer=receive_buffer)
        raise OSError(f"no bindable RTP port pair on {host} after {attempts} attempts: {last_error}")

    @property
    def in_media_thread(self) -> bool:
        """Whether ``on_rtp``, ``on_rtcp`` and relaying run on the media thread rather than the event
        loop (``MediaSocketPoller.threaded``): a handler there must not touch asyncio objects directly."""
        return self._poller.in_thread

    @property
    def _log(self) -> Any:
        """The module logger bound to this endpoint's call, leg and port, made on first use."""
        bound = self._bound_log
        if bound is None:
            bound = self._bound_log = log.bind(call_id=self.call_id, leg=self.leg, port=self.local_address[1])
        return bound

    @property
    def port(self) -> int:
        """Our RTP port (RTCP is port + 1)."""
        return self.local_address[1]

    def set_remote(self, address: Address | None, payload_types: frozenset[int] = frozenset(),
                   rtcp_address: Address | None = None) -> None:
        """The far end's RTP address and payload types from its SDP (offer, answer or re-INVITE), and
        its RTCP address when the SDP names one (a=rtcp, RFC 3605; else RTP port + 1)."""
        self.rtcp_destination = rtcp_address
        before = self.latch.source
        self.latch.expect(address, payload_types)
        if before is not None and self.latch.source is None:
            self._close_peer_socket()
            self._log.info("rtp_latch_released", signalled=address)

    def relay_to(self, transform: RtpTransform | None, target: RtpEndpoint | None) -> None:
        """Relay what this leg sends: each accepted RTP datagram goes out of ``target`` as
        ``transform(datagram)`` (None: not sent). ``on_rtp`` must still be set to the same effect: it
        serves datagrams that arrive before the latch, and this serves the latched source's socket
        with fewer Python calls per packet (no handler, no ``send_rtp``). ``relay_to(None, None)``
        stops it."""
        self.relay_transform = transform
        self.relay_target = target

    def send_rtp(self, data: bytes) -> None:
        """Send one RTP datagram to the leg's current destination (nothing to send to yet: counted)."""
        peer = self._peer_sock
        if peer is not None:
            try:
                peer.send(data)
            except OSError:
                self.counters.send_dropped += 1
                return
            self.counters.packets_sent += 1
            self.counters.bytes_sent += len(data)
            return
        destination = self.latch.destination
        if destination is None or self._closed:
            self.counters.send_dropped += 1
            return
        try:
            self._rtp_sock.sendto(data, destination)
        except OSError:
            # Full buffer (BlockingIOError) or an ICMP error from an earlier datagram: UDP drops it.
            self.counters.send_dropped += 1
            return
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(data)

    def send_rtcp(self, data: bytes) -> None:
        """Send one RTCP compound datagram to the latched RTCP source or signalled RTP port + 1."""
        destination = self.rtcp_source or self.rtcp_destination
        if destination is None:
            rtp_destination = self.latch.destination
            if rtp_destination is None:
                return
            destination = (rtp_destination[0], rtp_destination[1] + 1)
        try:
            self._rtcp_sock.sendto(data, destination)
            self.counters.rtcp_sent += 1
        except OSError:
            self.counters.send_dropped += 1

    def _on_rtp_readable(self) -> None:
        # One datagram per round, except right after latching: what is queued here then came before the
        # connected socket existed, so it is older than anything that socket will get and is served now,
        # in order, before the poller reads the connected socket (no reordering at the latch).
        if self._serve_rtp_datagram():
            for _ in range(_DRAIN_AFTER_LATCH):
                if self._serve_rtp_datagram() is None:
                    break

    def _serve_rtp_datagram(self) -> bool | None:
        """Read and handle one datagram of the RTP socket: None when there was none, True when it
        latched onto a new source, else False."""
        try:
            data, source = self._rtp_sock.recvfrom(_MAX_DATAGRAM)
        except OSError:
            return None  # nothing queued after all, or an ICMP error report for something we sent
        counters = self.counters
        if len(data) < 12 or data[0] >> 6 != RTP_VERSION:
            counters.invalid_packets += 1
            return False
        latch = self.latch
        latched = False
        if source != latch.source:
            was_latched = latch.source
            if not latch.accept(source, data[1] & 0x7F, int.from_bytes(data[8:12], "big")):
                counters.rejected_source += 1
                return False
            if latch.source is not None and latch.source != was_latched:
                self._log.info("rtp_latched", source=source, previous=was_latched)
                self._open_peer_socket(latch.source)
                latched = self._peer_sock is not None
        counters.packets_received += 1
        counters.bytes_received += len(data)
        handler = self.on_rtp
        if handler is not None:
            handler(data)
        return latched

    def _on_peer_readable(self) -> None:
        # The connected socket only ever gets datagrams from the latched source: no latch check needed.
        peer = self._peer_sock
        if peer is None:
            return
        try:
            data = peer.recv(_MAX_DATAGRAM)
        except OSError:
            return
        counters = self.counters
        if len(data) < 12 or data[0] >> 6 != RTP_VERSION:
            counters.invalid_packets += 1
            return
        counters.packets_received += 1
        counters.bytes_received += len(data)
        transform = self.relay_transform
        if transform is None:
            handler = self.on_rtp
            if handler is not None:
                handler(data)
            return
        out = transform(data)
        target = self.relay_target
        if out is None or target is None:
            return
        # target.send_rtp(out) inlined for the common case of a latched target.
        target_peer = target._peer_sock
        if target_peer is None:
            target.send_rtp(out)
            return
        try:
            target_peer.send(out)
        except OSError:
            target.counters.send_dropped += 1
            return
        sent = target.counters
        sent.packets_sent += 1
        sent.bytes_sent += len(out)

    def _open_peer_socket(self, source: Address) -> None:
        """A socket on our RTP port connected to the latched source (SO_REUSEPORT): the kernel hands it
        that source's datagrams, and send() on it skips the per-packet address handling of sendto()."""
        self._close_peer_socket()
        if not _REUSE_PORT or self._closed:
            return
        sock = socket.socket(self._rtp_sock.family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _REUSE_PORT, 1)
            if self.receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.setblocking(False)
            sock.bind(self._rtp_sock.getsockname())
            sock.connect(source)
        except OSError as exc:
            sock.close()
            self._log.debug("rtp_peer_socket_failed", source=source, error=str(exc))
            return
        self._peer_sock = sock
        self._poller.add(sock.fileno(), self._on_peer_readable)
        if self._closed:  # closed by the loop thread meanwhile (this runs on the media thread)
            self._close_peer_socket()

    def _close_peer_socket(self) -> None:
        peer = self._peer_sock
        if peer is not None:
            self._peer_sock = None
            self._poller.remove(peer.fileno())
            peer.close()

    def _on_rtcp_readable(self) -> None:
        try:
            data, source = self._rtcp_sock.recvfrom(_MAX_DATAGRAM)
        except OSError:
            return
        try:
            packets = parse_compound(data)
        except RtcpParseError as exc:
            self.counters.rtcp_invalid += 1
            self._log.debug("rtcp_invalid", source=source, reason=str(exc))
            return
        self.counters.rtcp_received += 1
        latched = self.latch.destination
        if latched is None or source[0] == latched[0]:
            self.rtcp_source = source
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.last_sender_report = packet
        if self.on_rtcp is not None:
            self.on_rtcp(packets)

    def sender_report(self) -> list[RtcpPacket]:
        """An SR about the stream we send (RFC 3550 section 6.4.1) with our CNAME (section 6.5.1);
        empty while we have sent nothing."""
        stream = self.outgoing
        ssrc = stream.ssrc
        if ssrc is None or not self.counters.packets_sent:
            return []
        # The RTP timestamp that corresponds to "now", extrapolated from the last packet sent.
        elapsed = round((stream.clock() - stream.last_time) * stream.clock_rate)
        _last_seq, last_ts = stream.last_position()
        payload_octets = self.counters.bytes_sent - FIXED_HEADER_SIZE * self.counters.packets_sent
        return [
            SenderReport(ssrc, ntp_timestamp(time.time()), (last_ts + elapsed) & 0xFFFFFFFF,
                         self.counters.packets_sent & 0xFFFFFFFF, payload_octets & 0xFFFFFFFF),
            SourceDescription((SdesChunk(ssrc, ((SDES_CNAME, self._cname),)),)),
        ]

    def _schedule_report(self) -> None:
        # Randomized around the interval (RFC 3550 section 6.3.1) so a thousand legs do not report at once.
        delay = self.rtcp_interval * random.uniform(0.5, 1.5)
        timer = self._report_timer
        if timer is None:
            timer = self._report_timer = _ReportTimer(self)
        timer.handle = self._poller.timer_slots.arm(timer, self._loop.time() + delay, _report_due)

    def _send_report(self) -> None:
        report = self.sender_report()
        if report:
            self.send_rtcp(serialize_compound(report))
        if not self._closed:
            self._schedule_report()

    def _schedule_timeout_check(self) -> None:
        interval = min(1.0, self.rtp_timeout / 4)
        self._timer = self._loop.call_later(interval, self._check_timeout)

    def _check_timeout(self) -> None:
        now = self._loop.time()
        if self.counters.packets_received != self._seen_packets or not self.expect_media:
            self._seen_packets = self.counters.packets_received
            self._last_change = now
            self._timed_out = False
        elif not self._timed_out and now - self._last_change >= self.rtp_timeout:
            self._timed_out = True
            self._log.warning("rtp_timeout", seconds=self.rtp_timeout, **self.counters.as_dict())
            if self.on_timeout is not None:
                self.on_timeout(self)
        if not self._closed:
            self._schedule_timeout_check()

    def close(self) -> None:
        """Stop reading, close both sockets and give the port pair back (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._report_timer is not None:
            self._report_timer.handle = None
            self._report_timer.endpoint = None
            report = self.sender_report()
            if report and self.outgoing.ssrc is not None:  # RFC 3550 section 6.6: say goodbye
                self.send_rtcp(serialize_compound([*report, Bye((self.outgoing.ssrc,))]))
        self._close_peer_socket()
        for sock in (self._rtp_sock, self._rtcp_sock):
            self._poller.remove(sock.fileno())
            sock.close()
        if self._release is not None:
            self._release()
        if log.is_enabled_for(logging.DEBUG):  # else neither the bound logger nor the counters' dict
            self._log.debug("rtp_endpoint_closed", **self.counters.as_dict())


def _bind_pair(host: str, port: int, receive_buffer: int = 0) -> tuple[socket.socket, socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    rtp = socket.socket(family, socket.SOCK_DGRAM)
    rtcp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if _REUSE_PORT:
            # Lets the connected per-peer socket share the port (see RtpEndpoint._open_peer_socket).
            rtp.setsockopt(socket.SOL_SOCKET, _REUSE_PORT, 1)
        if receive_buffer:
            rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        rtp.setblocking(False)
        rtcp.setblocking(False)
        rtp.bind((host, port))
        rtcp.bind((host, port + 1))
    except OSError:
        rtp.close()
        rtcp.close()
        raise
    return rtp, rtcp
