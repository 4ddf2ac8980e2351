"""``MediaAnchor`` over the media layer: one ``RtpEndpoint`` per leg, an ``RtpRelay`` per bridged pair.

SDP per leg (RFC 3264): our offers list the configured codecs (preferred first) and telephone-event
(RFC 4733); an answer to a peer's offer takes the first configured codec the offer has, mirrors its
direction (sendonly -> recvonly, section 6.1) and rejects every other stream with port 0 (section 6).
A peer that offers sendonly/inactive (or the old c=0.0.0.0, RFC 3264 section 8.4) is holding; the B2BUA
then asks for music on hold toward the other party, which the relay plays from ``MusicOnHold``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import structlog

from cti_server.calls.media_session import Answer, Direction, MediaError
from cti_server.config import MediaConfig
from cti_server.media.endpoint import RtpEndpoint
from cti_server.media.moh import MusicOnHold
from cti_server.media.ports import PortsExhausted, RtpPortAllocator
from cti_server.media.relay import LegMedia, RtpRelay
from cti_server.sip.sdp import (
    Connection,
    MediaDescription,
    Origin,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)

log = structlog.get_logger(__name__)

STATIC_TYPES = {"PCMU": 0, "PCMA": 8}
ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
                    "inactive": "inactive"}


@dataclass(eq=False)
class _AnchoredLeg:
    leg_id: str
    call_id: str
    endpoint: RtpEndpoint
    media: LegMedia | None = None
    relay: RtpRelay | None = None
    side: str = "a"
    session_id: int = field(default_factory=lambda: random.randint(1, 2**31))
    version: int = 1
    direction: str = "sendrecv"
    peer: _AnchoredLeg | None = None


class AnchoredMedia:
    """The media endpoints of every leg on this server (``MediaAnchor``)."""

    def __init__(self, config: MediaConfig, moh: MusicOnHold | None = None) -> None:
        self.config = config
        self.allocator = RtpPortAllocator(config.rtp_port_min, config.rtp_port_max)
        self.legs: dict[str, _AnchoredLeg] = {}
        self._moh = moh
        self.address = config.advertised_host or config.host

    # --- endpoints -------------------------------------------------------------------------------------

    async def open_leg(self, leg_id: str, call_id: str) -> None:
        try:
            endpoint = await RtpEndpoint.open(self.config.host, self.allocator,
                                              symmetric=self.config.symmetric_rtp, rtp_timeout=0.0,
                                              call_id=call_id, leg=leg_id)
        except (PortsExhausted, OSError) as exc:
            raise RuntimeError(f"no RTP port: {exc}") from exc
        self.legs[leg_id] = _AnchoredLeg(leg_id, call_id, endpoint)

    async def close_leg(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        if leg is None:
            return
        self._unbridge(leg)
        leg.endpoint.close()

    def leg_stats(self, leg_id: str) -> dict[str, object]:
        leg = self.legs.get(leg_id)
        if leg is None:
            return {}
        if leg.relay is not None:
            return dict(leg.relay.stats()[leg.side])
        return dict(leg.endpoint.counters.as_dict())

    # --- offer / answer ---------------------------------------------------------------------------------

    def offer(self, leg_id: str) -> bytes:
        leg = self._leg(leg_id)
        types = [STATIC_TYPES[c] for c in self.config.codecs]
        return self._description(leg, types, self.config.dtmf_payload_type, "sendrecv", []).serialize()

    def answer(self, leg_id: str, offer: bytes) -> Answer:
        try:
            return self._answer(self._leg(leg_id), offer)
        except SdpParseError as exc:
            raise MediaError(f"bad SDP: {exc.reason}") from None

    def _answer(self, leg: _AnchoredLeg, offer: bytes) -> Answer:
        sdp = _parse(offer)
        audio = _first_audio(sdp)
        rtpmaps = audio.rtpmaps
        chosen: tuple[str, int] | None = None
        for codec in self.config.codecs:
            for payload_type, (encoding, rate, _channels) in rtpmaps.items():
                if encoding.upper() == codec and rate == 8000 and payload_type in audio.payload_types:
                    chosen = (codec, payload_type)
                    break
            if chosen is not None:
                break
        if chosen is None:
            raise MediaError(f"no common codec (we take {', '.join(self.config.codecs)})")
        dtmf = _telephone_event(audio)
        offered = sdp.direction_of(audio)
        connection = sdp.connection_for(audio)
        if connection is not None and connection.address in ("0.0.0.0", "::"):
            offered = "inactive"  # RFC 2543 hold
        self._apply(leg, chosen[0], chosen[1], dtmf, audio, connection)
        leg.direction = ANSWER_DIRECTION.get(offered, "sendrecv")
        rejected = [m for m in sdp.media if m is not audio]
        body = self._description(leg, [chosen[1]], dtmf, leg.direction, rejected).serialize()
        return Answer(body, Direction(offered))

    def accept_answer(self, leg_id: str, answer: bytes) -> None:
        try:
            self._accept_answer(self._leg(leg_id), answer)
        except SdpParseError as exc:
            raise MediaError(f"bad SDP: {exc.reason}") from None

    def _accept_answer(self, leg: _AnchoredLeg, answer: bytes) -> None:
        sdp = _parse(answer)
        audio = _first_audio(sdp)
        rtpmaps = audio.rtpmaps
        ours = {STATIC_TYPES[c]: c for c in self.config.codecs}
        for payload_type in audio.payload_types:
            codec = ours.get(payload_type)
            encoding = rtpmaps.get(payload_type, ("", 0, 1))[0].upper()
            if codec is None and encoding in self.config.codecs:
                codec = encoding
            if codec is not None:
                dtmf = _telephone_event(audio)
                self._apply(leg, codec, payload_type, dtmf, audio, sdp.connection_for(audio))
                return
        raise MediaError("the answer has none of our codecs")

    def _apply(self, leg: _AnchoredLeg, codec: str, payload_type: int, dtmf: int | None,
               audio: MediaDescription, connection: Connection | None) -> None:
        media = LegMedia(codec=codec, payload_type=payload_type, dtmf_payload_type=dtmf,
                         ptime=audio.ptime or self.config.ptime)
        address = connection.address if connection is not None else None
        if address is not None and address not in ("0.0.0.0", "::") and audio.port:
            types = frozenset({payload_type} | ({dtmf} if dtmf is not None else set()))
            leg.endpoint.set_remote((address, audio.port), types)
        if media != leg.media:
            leg.media = media
            if leg.relay is not None:
                leg.relay.update_media(leg.side, media)

    def _description(self, leg: _AnchoredLeg, types: list[int], dtmf: int | None, direction: str,
                     rejected: list[MediaDescription]) -> SessionDescription:
        leg.version += 1
        ip_version = "IP6" if ":" in self.address else "IP4"
        formats = [str(t) for t in types] + ([str(dtmf)] if dtmf is not None else [])
        audio = MediaDescription("audio", leg.endpoint.port, "RTP/AVP", formats)
        for payload_type in types:
            name = "PCMU" if payload_type == 0 else "PCMA" if payload_type == 8 else None
            if name is not None:
                audio.add_attribute("rtpmap", f"{payload_type} {name}/8000")
        if dtmf is not None:
            audio.add_attribute("rtpmap", f"{dtmf} telephone-event/8000")
            audio.add_attribute("fmtp", f"{dtmf} 0-16")
        audio.add_attribute("ptime", str(self.config.ptime))
        audio.direction = direction
        media = [audio]
        for other in rejected:
            media.append(MediaDescription(other.media, 0, other.proto, other.formats[:1] or ["0"]))
        return SessionDescription(
            origin=Origin("cti", str(leg.session_id), leg.version, "IN", ip_version, self.address),
            session_name="cti-server",
            connection=Connection(self.address, ip_version),
            media=media,
        )

    # --- relay ------------------------------------------------------------------------------------------

    def bridge(self, first: str, second: str) -> None:
        a = self._leg(first)
        b = self._leg(second)
        if a.relay is not None and a.relay is b.relay:
            return
        self._unbridge(a)
        self._unbridge(b)
        relay = RtpRelay(a.endpoint, a.media or LegMedia(), b.endpoint, b.media or LegMedia(),
                         call_id=a.call_id)
        a.relay, a.side, a.peer = relay, "a", b
        b.relay, b.side, b.peer = relay, "b", a

    def hold(self, held_leg: str) -> None:
        leg = self._leg(held_leg)
        if leg.relay is None:
            return
        if self._moh is None:
            self._moh = MusicOnHold.from_config(self.config)
        codec = (leg.media or LegMedia()).codec
        leg.relay.start_player(leg.side, self._moh.frames(codec))

    def resume(self, held_leg: str) -> None:
        leg = self._leg(held_leg)
        if leg.relay is not None:
            leg.relay.stop_player(leg.side)

    def _unbridge(self, leg: _AnchoredLeg) -> None:
        relay = leg.relay
        if relay is None:
            return
        relay.close()
        if leg.peer is not None and leg.peer.relay is relay:
            leg.peer.relay = None
            leg.peer.peer = None
        leg.relay = None
        leg.peer = None

    def _leg(self, leg_id: str) -> _AnchoredLeg:
        leg = self.legs.get(leg_id)
        if leg is None:
            raise MediaError(f"leg {leg_id} has no media endpoint")
        return leg


def _parse(data: bytes) -> SessionDescription:
    try:
        return parse_sdp(data)
    except SdpParseError as exc:
        raise MediaError(f"bad SDP: {exc.reason}") from None


def _first_audio(sdp: SessionDescription) -> MediaDescription:
    for media in sdp.media:
        if media.media == "audio" and media.port != 0 and media.proto.upper().startswith("RTP/AVP"):
            return media
    raise MediaError("no audio stream in the SDP")


def _telephone_event(audio: MediaDescription) -> int | None:
    try:
        rtpmaps = audio.rtpmaps
    except SdpParseError:
        return None
    for payload_type, (encoding, rate, _channels) in rtpmaps.items():
        if encoding.lower() == "telephone-event" and rate == 8000:
            return payload_type
    return None
