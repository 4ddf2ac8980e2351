"""SDP offer/answer (RFC 3264) for one call leg: codec choice by the configured preference, RFC 4733
telephone-event, stream directions and hold, on top of ``cti_server.sip.sdp``.

Sans-IO: ``LocalSdp`` holds our half of the exchange on one leg (our address and port, the o= line and
its version) and turns the peer's SDP into a ``NegotiatedMedia`` that says where to send, with which
codec and payload types (``leg_media`` for the relay), and whether the peer put the call on hold.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from cti_server.config import MediaConfig
from cti_server.media.g711 import CODECS
from cti_server.media.relay import LegMedia
from cti_server.sip.sdp import DIRECTIONS, MediaDescription, SessionDescription, parse_sdp

TELEPHONE_EVENT = "telephone-event"
HOLD_ADDRESSES = ("0.0.0.0", "::")
"""A c= address that means "do not send to me" (RFC 2543 hold, RFC 3264 section 8.4 tolerates it)."""
_RTP_PROFILES = ("RTP/AVP", "RTP/AVPF")


class OfferAnswerError(ValueError):
    """The peer's SDP cannot be used: ``status`` is the SIP response to send (488 Not Acceptable Here,
    RFC 3261 section 21.4.26, or 400 for a description that breaks RFC 3264)."""

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """What we offer and accept: codecs by preference, packetization, DTMF payload type."""

    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    ptime: int = 20
    dtmf_payload_type: int = 101

    @classmethod
    def from_config(cls, config: MediaConfig) -> MediaPolicy:
        """The ``[media]`` codecs, ptime and DTMF payload type."""
        return cls(config.codecs, config.ptime, config.dtmf_payload_type)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome of one offer/answer on a leg (RFC 3264 sections 6 and 7).

    ``remote_address`` is where the peer wants RTP (None when it gave port 0 or a hold address);
    ``remote_direction`` is the peer's direction as it wrote it, ``local_direction`` ours; ``on_hold``
    is true when the peer no longer wants to receive from us (sendonly, inactive or c=0.0.0.0).
    """

    codec: str
    payload_type: int
    dtmf_payload_type: int | None
    ptime: int
    remote_address: tuple[str, int] | None
    remote_rtcp_address: tuple[str, int] | None
    remote_direction: str
    local_direction: str
    on_hold: bool

    @property
    def leg_media(self) -> LegMedia:
        """The relay's view of this leg."""
        return LegMedia(self.codec, self.payload_type, self.dtmf_payload_type, self.ptime)

    @property
    def payload_types(self) -> frozenset[int]:
        """The payload types the peer may send us (for symmetric RTP latching)."""
        types = {self.payload_type}
        if self.dtmf_payload_type is not None:
            types.add(self.dtmf_payload_type)
        return frozenset(types)

    @property
    def sending(self) -> bool:
        """Whether we send media to the peer."""
        return self.local_direction in ("sendrecv", "sendonly") and self.remote_address is not None

    @property
    def receiving(self) -> bool:
        """Whether the peer sends media to us (a leg that does not is not timed out for silence)."""
        return self.local_direction in ("sendrecv", "recvonly")


def _direction(send: bool, receive: bool) -> str:
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(send, receive)]


def _sends(direction: str) -> bool:
    return direction in ("sendrecv", "sendonly")


def _receives(direction: str) -> bool:
    return direction in ("sendrecv", "recvonly")


@dataclass
class LocalSdp:
    """Our side of offer/answer on one leg: builds our offers and answers, reads the peer's.

    The o= session version goes up by one each time what we describe changes (RFC 3264 section 8);
    ``hold=True`` describes us as sendonly (we play music, we do not listen: section 8.4).

    ``offer`` and ``answer`` write our description straight as text (``serialized``), without building
    the objects of ``cti_server.sip.sdp`` (twice per call, that was about a tenth of the SDP work);
    ``create_offer`` and ``create_answer`` also return it parsed, as a ``SessionDescription``.
    """

    address: str
    port: int
    policy: MediaPolicy = field(default_factory=MediaPolicy)
    session_id: str = field(default_factory=lambda: str(_random_below_power_of_two(62)))
    version: int = field(default_factory=lambda: _random_below_power_of_two(31))
    _last_body: str | None = field(default=None, init=False, repr=False)
    serialized: bytes = field(default=b"", init=False, repr=False)
    """The last offer or answer built, as it goes on the wire."""
    _offered_types: frozenset[int] | None = field(default=None, init=False, repr=False)
    _offered_direction: str = field(default="sendrecv", init=False, repr=False)

    def create_offer(self, hold: bool = False) -> SessionDescription:
        """Our offer (``offer``) as a session description."""
        self.offer(hold)
        return parse_sdp(self.serialized)

    def create_answer(self, offer: SessionDescription, hold: bool = False
                      ) -> tuple[SessionDescription, NegotiatedMedia]:
        """Our answer (``answer``) as a session description, and what was negotiated."""
        negotiated = self.answer(offer, hold)
        return parse_sdp(self.serialized), negotiated

    def offer(self, hold: bool = False) -> bytes:
        """Our offer: one audio stream with our codecs by preference and telephone-event."""
        policy = self.policy
        formats, names, self._offered_types = _offer_codecs(policy)
        direction = self._offered_direction = "sendonly" if hold else "sendrecv"
        return self._describe(self._audio(formats, names, policy.dtmf_payload_type, policy.ptime, direction))

    def answer(self, offer: SessionDescription, hold: bool = False) -> NegotiatedMedia:
        """Answer ``offer`` (RFC 3264 section 6) into ``serialized``: the first audio stream with a codec we
        support is accepted, every other m= line is rejected with port 0; raise OfferAnswerError (488)
        when no audio stream can be accepted."""
        answers: list[str] = []
        negotiated: NegotiatedMedia | None = None
        for offered in offer.media:
            choice = None if negotiated is not None else self._choose(offered)
            if choice is None:
                answers.append(f"m={offered.media} 0 {offered.proto} {' '.join(offered.formats)}\r\n")
                continue
            codec, payload_type, dtmf_type = choice
            remote_direction = offer.direction_of(offered)
            remote_address, rtcp_address = self._remote(offer, offered)
            peer_receives = _receives(remote_direction) and remote_address is not None
            local_direction = _direction(peer_receives, _sends(remote_direction) and not hold)
            ptime = offered.ptime or self.policy.ptime
            answers.append(self._audio([payload_type], {payload_type: codec}, dtmf_type, ptime,
                                       local_direction, proto=offered.proto))
            negotiated = NegotiatedMedia(
                codec=codec, payload_type=payload_type, dtmf_payload_type=dtmf_type, ptime=ptime,
                remote_address=remote_address, remote_rtcp_address=rtcp_address,
                remote_direction=remote_direction, local_direction=local_direction,
                on_hold=not peer_receives,
            )
        if negotiated is None:
            offered_codecs = sorted({name for m in offer.media for name, _, _ in m.rtpmaps.values()})
            raise OfferAnswerError(
                f"no audio stream with a codec we accept ({', '.join(self.policy.codecs)}); "
                f"offered: {', '.join(offered_codecs) or 'none'}"
            )
        self._describe("".join(answers))
        return negotiated

    def accept_answer(self, answer: SessionDescription) -> NegotiatedMedia:
        """Read the peer's answer to our last offer (RFC 3264 section 7): the first codec it lists that
        we offered is used; raise OfferAnswerError when it rejected or changed the audio stream."""
        ours = self._offered_types
        if ours is None:
            raise OfferAnswerError("an answer came but we made no offer", status=400)
        if not answer.media:
            raise OfferAnswerError("the answer has no m= line for our audio offer", status=400)
        media = answer.media[0]
        if media.media != "audio" or media.port == 0:
            raise OfferAnswerError("the peer rejected our audio stream")
        rtpmaps = media.rtpmaps
        chosen: tuple[str, int] | None = None
        for payload_type in media.payload_types:
            name = rtpmaps.get(payload_type, ("", 0, 0))[0].upper()
            if payload_type in ours and name in CODECS and rtpmaps[payload_type][1] == 8000:
                chosen = (name, payload_type)
                break
        if chosen is None:
            raise OfferAnswerError("the answer names none of the codecs we offered")
        dtmf_type = _telephone_event_type(media, rtpmaps)
        remote_direction = answer.direction_of(media)
        remote_address, rtcp_address = self._remote(answer, media)
        our_direction = self._offered_direction
        peer_receives = _receives(remote_direction) and remote_address is not None
        local_direction = _direction(_sends(our_direction) and peer_receives,
                                     _receives(our_direction) and _sends(remote_direction))
        return NegotiatedMedia(
            codec=chosen[0], payload_type=chosen[1],
            dtmf_payload_type=dtmf_type if dtmf_type in ours else None,
            ptime=media.ptime or self.policy.ptime, remote_address=remote_address,
            remote_rtcp_address=rtcp_address, remote_direction=remote_direction,
            local_direction=local_direction, on_hold=not peer_receives,
        )

    def _choose(self, offered: MediaDescription) -> tuple[str, int, int | None] | None:
        if offered.media != "audio" or offered.port == 0 or offered.proto not in _RTP_PROFILES:
            return None
        rtpmaps = offered.rtpmaps
        by_name: dict[str, int] = {}
        for payload_type in offered.payload_types:
            name, rate, _channels = rtpmaps.get(payload_type, ("", 0, 0))
            if name.upper() in CODECS and rate == 8000:
                by_name.setdefault(name.upper(), payload_type)
        for name in self.policy.codecs:
            if name in by_name:
                return name, by_name[name], _telephone_event_type(offered, rtpmaps)
        return None

    @staticmethod
    def _remote(session: SessionDescription, media: MediaDescription
                ) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
        connection = session.connection_for(media)
        if connection is None or connection.address in HOLD_ADDRESSES or media.port == 0:
            return None, None
        rtcp = (connection.address, media.port + 1)
        rtcp_attribute = media.get_attribute("rtcp")  # RFC 3605: a=rtcp:port [IN IP4 address]
        if rtcp_attribute:
            parts = rtcp_attribute.split()
            if parts[0].isdigit() and int(parts[0]) <= 65535:
                rtcp = (parts[3] if len(parts) >= 4 else connection.address, int(parts[0]))
        return (connection.address, media.port), rtcp

    def _audio(self, formats: list[int], names: dict[int, str], dtmf_type: int | None, ptime: int,
               direction: str, proto: str = "RTP/AVP") -> str:
        """Our audio m= section as text (CRLF-ended lines in RFC 4566 order: m=, then a=)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        listed = " ".join([str(pt) for pt in (formats if dtmf_type is None else [*formats, dtmf_type])])
        lines = [f"m=audio {self.port} {proto} {listed}\r\n"]
        lines += [f"a=rtpmap:{payload_type} {names[payload_type]}/8000\r\n" for payload_type in formats]
        if dtmf_type is not None:
            lines.append(f"a=rtpmap:{dtmf_type} {TELEPHONE_EVENT}/8000\r\na=fmtp:{dtmf_type} 0-15\r\n")
        lines.append(f"a=ptime:{ptime}\r\na={direction}\r\n")
        return "".join(lines)

    def _describe(self, media: str) -> bytes:
        """Our whole description around ``media`` (its m= sections) into ``serialized``; the o= version
        goes up when anything after the o= line changed since the last one (RFC 3264 section 8)."""
        address = self.address
        addrtype = "IP6" if ":" in address else "IP4"
        body = f"s=cti-server\r\nc=IN {addrtype} {address}\r\nt=0 0\r\n{media}"
        if self._last_body is not None and body != self._last_body:
            self.version += 1
        self._last_body = body
        self.serialized = (f"v=0\r\no=cti-server {self.session_id} {self.version} IN {addrtype} {address}\r\n"
                           f"{body}").encode("utf-8", "surrogateescape")
        return self.serialized


def _random_below_power_of_two(bits: int) -> int:
    """``random.randrange(1, 2**bits)``, drawing the same numbers (its rejection sampling: getrandbits
    until below 2**bits - 1) without its argument handling (half a microsecond, twice per leg)."""
    limit = (1 << bits) - 1
    value = random.getrandbits(bits)
    while value >= limit:
        value = random.getrandbits(bits)
    return value + 1


@functools.lru_cache(maxsize=64)
def _offer_codecs(policy: MediaPolicy) -> tuple[list[int], dict[int, str], frozenset[int]]:
    """The codecs' payload types of our offer by preference, their encoding names, and every payload type
    the offer lists (telephone-event too) as an answer to it is read (``MediaDescription.payload_types``)."""
    names = {CODECS[name].payload_type: name for name in policy.codecs}
    listed = MediaDescription("audio", 0, "RTP/AVP", [str(pt) for pt in [*names, policy.dtmf_payload_type]])
    return list(names), names, frozenset(listed.payload_types)


def _telephone_event_type(media: MediaDescription, rtpmaps: dict[int, tuple[str, int, int]]
                          ) -> int | None:
    """The RFC 4733 payload type ``media`` lists (``rtpmaps``: its ``rtpmaps``, read once by the caller)."""
    listed: list[int] | None = None
    for payload_type, (name, rate, _channels) in rtpmaps.items():
        if name.lower() == TELEPHONE_EVENT and rate == 8000:
            listed = media.payload_types if listed is None else listed
            if payload_type in listed:
                return payload_type
    return None
