"""The media relay between the two legs of a call (leg "a" and leg "b").

Each direction (``RelayDirection``, sans-IO: datagram in, datagram or None out) forwards the payload
untouched when both legs use the same codec, transcodes PCMU <-> PCMA with ``bytes.translate`` when they
differ, maps the RFC 4733 telephone-event payload type and feeds those packets to a ``DtmfDetector``.
What goes out to a leg is its endpoint's ``OutgoingStream`` (cti_server.media.stream): one SSRC with
continuous sequence numbers and timestamps whatever feeds it, the other leg, a new far-end SSRC after a
re-INVITE, the music-on-hold player, or another call's leg after a transfer.

The hot path reads only the 12-byte fixed header (``struct.unpack_from``) and returns the received bytes
object unchanged while the mapping is the identity (same codec, same payload types, the first source).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from cti_server.media.dtmf import DtmfDetector, DtmfDigit
from cti_server.media.endpoint import RtpEndpoint
from cti_server.media.g711 import CODECS, transcode_table
from cti_server.media.inband_dtmf import InbandDtmfDetector
from cti_server.media.moh import PacedPlayer
from cti_server.media.rtp import FIXED_HEADER, RtpPacket, RtpParseError
from cti_server.media.stream import OutgoingStream

log = structlog.get_logger(__name__)

AudioTap = Callable[[str, bytes], None]
"""Receives (source leg "a" or "b", 16-bit 8 kHz PCM of one packet) for every audio packet relayed."""
DigitHandler = Callable[[str, DtmfDigit], None]
"""Receives (leg the digit came from, the digit) once per key press."""

LEGS = ("a", "b")


@dataclass(frozen=True, slots=True)
class LegMedia:
    """What offer/answer settled for one leg: its codec and payload types (RFC 3264, RFC 4733)."""

    codec: str = "PCMU"
    payload_type: int = 0
    dtmf_payload_type: int | None = None
    ptime: int = 20
    clock_rate: int = 8000

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec: the relay handles {', '.join(CODECS)}, not {self.codec!r}")

    @property
    def samples_per_frame(self) -> int:
        """RTP timestamp units (and G.711 bytes) in one packet of ``ptime``."""
        return self.clock_rate * self.ptime // 1000


class RelayDirection:
    """Packets of one leg turned into packets for the other (sans-IO: ``process(datagram)``)."""

    def __init__(self, source_leg: str, source: LegMedia, target: LegMedia, stream: OutgoingStream,
                 on_digit: DigitHandler | None = None, inband_dtmf: bool = False) -> None:
        self.source_leg = source_leg
        self.stream = stream
        self.detector = DtmfDetector()
        self.on_digit = on_digit
        self.taps: list[AudioTap] = []
        self.inband_dtmf = inband_dtmf
        self.inband: InbandDtmfDetector | None = None
        self.muted = False
        self.forwarded = 0
        self.transcoded = 0
        self.dtmf_packets = 0
        self.dropped = 0
        self.configure(source, target)

    def configure(self, source: LegMedia, target: LegMedia) -> None:
        """Payload types and codecs of both legs (again after a re-INVITE)."""
        self.source_media = source
        self.target_media = target
        self.audio_in = source.payload_type
        self.audio_out = target.payload_type
        self.dtmf_in = source.dtmf_payload_type
        self.dtmf_out = target.dtmf_payload_type
        self.table = transcode_table(source.codec, target.codec)
        self.identity = self.table is None and self.audio_in == self.audio_out
        """Audio goes out in the payload type and codec it came in."""
        self.decoder = CODECS[source.codec]
        # Tones are looked for only where the peer cannot send RFC 4733 events (costly per packet).
        wants_inband = self.inband_dtmf and source.dtmf_payload_type is None
        if not wants_inband:
            self.inband = None
        elif self.inband is None:
            self.inband = InbandDtmfDetector()

    def process(self, data: bytes) -> bytes | None:
        """The datagram to send to the other leg, or None (muted by a player, or not relayable)."""
        stream = self.stream
        # The usual case, the first source's audio on the same codec and payload type: the datagram
        # itself, with no header parsed (its SSRC bytes and payload type are compared as they are).
        if (data[8:12] == stream.passthrough and data[1] & 0x7F == self.audio_in and self.identity
                and not self.taps and self.inband is None and not self.muted):
            stream.last_forwarded = data
            stream.last_time = stream.clock()
            self.forwarded += 1
            return data
        if len(data) < 12:
            self.dropped += 1
            return None
        first, second, seq, ts, ssrc = FIXED_HEADER.unpack_from(data)
        payload_type = second & 0x7F
        if payload_type == self.audio_in:
            out_type = self.audio_out
            table = self.table
            if self.taps or self.inband is not None:
                pcm = self.decoder.decode(_payload_of(data, first))
                for tap in self.taps:
                    tap(self.source_leg, pcm)
                if self.inband is not None:
                    for key in self.inband.feed(pcm):
                        self._report(DtmfDigit(key, ts, 0, 0))
        elif payload_type == self.dtmf_in:
            self.dtmf_packets += 1
            for digit in self.detector.receive(ts, _payload_of(data, first)):
                self._report(digit)
            if self.dtmf_out is None:
                self.dropped += 1
                return None
            out_type = self.dtmf_out
            table = None
        else:
            self.dropped += 1
            return None
        if self.muted:
            return None
        if stream.source != ssrc:
            stream.switch_source(ssrc, seq, ts, ssrc)
        out_seq = (seq + stream.seq_offset) & 0xFFFF
        out_ts = (ts + stream.ts_offset) & 0xFFFFFFFF
        stream.last_seq = out_seq
        stream.last_ts = out_ts
        stream.last_forwarded = None
        stream.last_time = stream.clock()
        self.forwarded += 1
        if (table is None and out_type == payload_type and out_seq == seq and out_ts == ts
                and stream.ssrc == ssrc and not stream.marker_pending):
            return data
        marker = second & 0x80
        if stream.marker_pending:
            marker = 0x80
            stream.marker_pending = False
        out_ssrc = stream.ssrc
        assert out_ssrc is not None
        if first == 0x80:  # no padding, extension or CSRCs: the payload starts at octet 12
            payload = data[12:]
            if table is not None:
                payload = payload.translate(table)
                self.transcoded += 1
            return FIXED_HEADER.pack(0x80, marker | out_type, out_seq, out_ts, out_ssrc) + payload
        return self._rewrite_general(data, marker, out_type, out_seq, out_ts, out_ssrc, table)

    def _report(self, digit: DtmfDigit) -> None:
        log.info("dtmf_digit", leg=self.source_leg, digit=digit.digit, duration=digit.duration,
                 inband=self.inband is not None)
        if self.on_digit is not None:
            self.on_digit(self.source_leg, digit)

    def _rewrite_general(self, data: bytes, marker: int, out_type: int, out_seq: int, out_ts: int,
                         out_ssrc: int, table: bytes | None) -> bytes | None:
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            self.dropped += 1
            return None
        packet.marker = bool(marker)
        packet.payload_type = out_type
        packet.sequence_number = out_seq
        packet.timestamp = out_ts
        packet.ssrc = out_ssrc
        if table is not None:
            packet.payload = packet.payload.translate(table)
            self.transcoded += 1
        return packet.serialize()


def _payload_of(data: bytes, first: int) -> bytes:
    if first == 0x80:
        return data[12:]
    try:
        return RtpPacket.parse(data).payload
    except RtpParseError:
        return b""


class _PlayerSource:
    """Numbers the frames of a player like an RTP source so OutgoingStream can map them."""

    def __init__(self, stream: OutgoingStream, send: Callable[[bytes], None], payload_type: int,
                 frame_samples: int) -> None:
        self.stream = stream
        self.send = send
        self.payload_type = payload_type
        self.frame_samples = frame_samples
        self.seq = 0
        self.ts = 0

    def send_frame(self, payload: bytes) -> None:
        """Send one frame as the next packet of the leg's outgoing stream."""
        stream = self.stream
        if stream.source is not self:
            stream.switch_source(self, self.seq, self.ts, None)
        out_seq = (self.seq + stream.seq_offset) & 0xFFFF
        out_ts = (self.ts + stream.ts_offset) & 0xFFFFFFFF
        marker = 0x80 if stream.marker_pending else 0
        stream.marker_pending = False
        stream.sent(out_seq, out_ts)
        assert stream.ssrc is not None
        self.send(FIXED_HEADER.pack(0x80, marker | self.payload_type, out_seq, out_ts, stream.ssrc) + payload)
        self.seq += 1
        self.ts += self.frame_samples


class RtpRelay:
    """Relays media between two ``RtpEndpoint`` legs of one call (leg "a" and leg "b").

    The relay does not own the endpoints: the call layer opens and closes them, and tells the relay
    about codec changes (``update_media``), hold music (``start_player`` / ``stop_player``) and who
    listens to the audio (``add_tap``). Digits reach ``on_digit`` from RFC 4733 events; with
    ``inband_dtmf`` also from tones (Goertzel) on a leg that negotiated no telephone-event.
    """

    def __init__(self, a: RtpEndpoint, a_media: LegMedia, b: RtpEndpoint, b_media: LegMedia, *,
                 call_id: str = "", on_digit: DigitHandler | None = None,
                 inband_dtmf: bool = False) -> None:
        if on_digit is not None and a.in_media_thread:
            on_digit = _on_loop(on_digit)
        self.endpoints = {"a": a, "b": b}
        self.media = {"a": a_media, "b": b_media}
        self.call_id = call_id
        self._log = log.bind(call_id=call_id)
        # streams[x] is what we send to leg x (owned by its endpoint, so it stays one stream when the
        # leg is bridged elsewhere); directions[x] handles what leg x sends.
        self.streams = {leg: self.endpoints[leg].outgoing for leg in LEGS}
        self.directions = {
            "a": RelayDirection("a", a_media, b_media, self.streams["b"], on_digit, inband_dtmf),
            "b": RelayDirection("b", b_media, a_media, self.streams["a"], on_digit, inband_dtmf),
        }
        self.players: dict[str, PacedPlayer] = {}
        self._forwarders = {"a": self._make_forwarder(self.directions["a"], b),
                            "b": self._make_forwarder(self.directions["b"], a)}
        a.on_rtp = self._forwarders["a"]
        b.on_rtp = self._forwarders["b"]
        a.relay_to(self.directions["a"].process, b)
        b.relay_to(self.directions["b"].process, a)

    @staticmethod
    def _make_forwarder(direction: RelayDirection, target: RtpEndpoint) -> Callable[[bytes], None]:
        process = direction.process
        send = target.send_rtp

        def forward(data: bytes) -> None:
            """Relay one datagram of the source leg to the target leg."""
            out = process(data)
            if out is not None:
                send(out)

        return forward

    def update_media(self, leg: str, media: LegMedia) -> None:
        """A re-INVITE changed the codec or payload types of ``leg``."""
        other = _other(leg)
        self.media[leg] = media
        self.directions[leg].configure(media, self.media[other])
        self.directions[other].configure(self.media[other], media)
        self._log.info("relay_media_updated", leg=leg, codec=media.codec, payload_type=media.payload_type)

    def add_tap(self, tap: AudioTap) -> None:
        """Hear the decoded audio of both directions (the recorder uses this)."""
        for direction in self.directions.values():
            direction.taps.append(tap)

    def remove_tap(self, tap: AudioTap) -> None:
        """Stop giving audio to ``tap``."""
        for direction in self.directions.values():
            if tap in direction.taps:
                direction.taps.remove(tap)

    def start_player(self, leg: str, frames: Sequence[bytes]) -> PacedPlayer:
        """Play ``frames`` (G.711 in the codec of ``leg``, e.g. ``MusicOnHold.frames(media.codec,
        media.ptime)``) to ``leg`` instead of the other leg's audio, in a loop, until ``stop_player``.
        Frames of another length than the leg's ptime are re-cut to it (G.711 is one byte a sample)."""
        media = self.media[leg]
        size = media.samples_per_frame
        if any(len(frame) != size for frame in frames):
            audio = b"".join(frames)
            audio += CODECS[media.codec].encode(bytes(2 * (-len(audio) % size)))  # pad with silence
            frames = [audio[i : i + size] for i in range(0, len(audio), size)]
        self.stop_player(leg)
        source = _PlayerSource(self.streams[leg], self.endpoints[leg].send_rtp, media.payload_type,
                               media.samples_per_frame)
        player = PacedPlayer(frames, media.ptime, source.send_frame)
        self.directions[_other(leg)].muted = True
        self.players[leg] = player
        player.start()
        self._log.info("relay_player_started", leg=leg)
        return player

    def stop_player(self, leg: str) -> None:
        """Back to relaying the other leg's audio to ``leg``."""
        player = self.players.pop(leg, None)
        if player is not None:
            player.stop()
            self._log.info("relay_player_stopped", leg=leg, frames=player.frames_sent)
        self.directions[_other(leg)].muted = False

    def stats(self) -> dict[str, dict[str, int]]:
        """Per source leg: packets forwarded, transcoded, DTMF, dropped; and endpoint counters."""
        out: dict[str, dict[str, int]] = {}
        for leg, direction in self.directions.items():
            out[leg] = {
                "forwarded": direction.forwarded,
                "transcoded": direction.transcoded,
                "dtmf_packets": direction.dtmf_packets,
                "dropped": direction.dropped,
                **self.endpoints[leg].counters.as_dict(),
            }
        return out

    def close(self) -> None:
        """Stop the players and detach from the endpoints (which the caller closes)."""
        for leg in list(self.players):
            self.stop_player(leg)
        for leg, direction in self.directions.items():
            for digit in direction.detector.flush():
                if direction.on_digit is not None:
                    direction.on_digit(leg, digit)
            endpoint = self.endpoints[leg]
            if endpoint.on_rtp is self._forwarders[leg]:  # a newer relay may own the leg already
                endpoint.on_rtp = None
                endpoint.relay_to(None, None)


def _on_loop(handler: DigitHandler) -> DigitHandler:
    """``handler`` called on the running event loop, whatever thread reports the digit."""
    loop = asyncio.get_running_loop()

    def report(leg: str, digit: DtmfDigit) -> None:
        loop.call_soon_threadsafe(handler, leg, digit)

    return report


def _other(leg: str) -> str:
    if leg not in LEGS:
        raise ValueError(f"leg must be 'a' or 'b', got {leg!r}")
    return "b" if leg == "a" else "a"
