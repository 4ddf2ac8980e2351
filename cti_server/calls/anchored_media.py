"""``MediaAnchor`` over the media layer: one ``RtpEndpoint`` per leg, an ``RtpRelay`` per bridged pair.

SDP per leg (RFC 3264) is the media layer's ``LocalSdp`` (cti_server/media/offer_answer.py): our offers
list the configured codecs (preferred first) and telephone-event (RFC 4733); an answer to a peer's offer
takes the first configured codec the offer has, mirrors its direction (sendonly -> recvonly, section 6.1)
and rejects every other stream with port 0 (section 6).
A peer that offers sendonly/inactive (or the old c=0.0.0.0, RFC 3264 section 8.4) is holding; the B2BUA
then asks for music on hold toward the other party, which the relay plays from ``MusicOnHold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from cti_server.calls.media_session import Answer, Direction, MediaError
from cti_server.config import MediaConfig
from cti_server.media.endpoint import MediaSocketPoller, RtpEndpoint, receive_buffer_size
from cti_server.media.moh import LoopedSound, MusicOnHold, ringback_from_config
from cti_server.media.offer_answer import LocalSdp, MediaPolicy, NegotiatedMedia, OfferAnswerError
from cti_server.media.ports import PortsExhausted, RtpPortAllocator
from cti_server.media.relay import LegMedia, RtpRelay
from cti_server.sip.sdp import SdpParseError, SessionDescription, parse_sdp

log = structlog.get_logger(__name__)

_DIRECTIONS: dict[str, Direction] = {direction.value: direction for direction in Direction}
"""Direction by its SDP name: a dict lookup instead of an Enum call per offer and answer."""


@dataclass(eq=False)
class _AnchoredLeg:
    leg_id: str
    call_id: str
    endpoint: RtpEndpoint
    sdp: LocalSdp
    media: LegMedia | None = None
    relay: RtpRelay | None = None
    side: str = "a"
    peer: _AnchoredLeg | None = None
    peer_sends: bool = True  # the peer's last offer or answer was sendrecv/sendonly with an address


class AnchoredMedia:
    """The media endpoints of every leg on this server (``MediaAnchor``)."""

    def __init__(self, config: MediaConfig, moh: MusicOnHold | None = None) -> None:
        self.config = config
        MediaSocketPoller.threaded = config.relay_thread
        self.receive_buffer = receive_buffer_size(config.receive_buffer_ms, config.ptime)
        self.allocator = RtpPortAllocator(config.rtp_port_min, config.rtp_port_max, start_at_random=True)
        self.legs: dict[str, _AnchoredLeg] = {}
        self._moh = moh
        self._ringback: LoopedSound | None = None
        self.address = config.advertised_host or config.host
        self.policy = MediaPolicy.from_config(config)

    # --- endpoints -------------------------------------------------------------------------------------

    async def open_leg(self, leg_id: str, call_id: str) -> None:
        try:
            endpoint = await RtpEndpoint.open(self.config.host, self.allocator,
                                              symmetric=self.config.symmetric_rtp, rtp_timeout=0.0,
                                              call_id=call_id, leg=leg_id,
                                              receive_buffer=self.receive_buffer)
        except (PortsExhausted, OSError) as exc:
            raise RuntimeError(f"no RTP port: {exc}") from exc
        sdp = LocalSdp(self.address, endpoint.port, self.policy)
        self.legs[leg_id] = _AnchoredLeg(leg_id, call_id, endpoint, sdp)

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

    def packets_received(self, leg_id: str) -> int | None:
        leg = self.legs.get(leg_id)
        return None if leg is None else leg.endpoint.counters.packets_received

    def peer_sends(self, leg_id: str) -> bool:
        leg = self.legs.get(leg_id)
        return True if leg is None else leg.peer_sends

    # --- offer / answer (cti_server.media.offer_answer) ---------------------------------------------------

    def offer(self, leg_id: str) -> bytes:
        return self._leg(leg_id).sdp.offer()

    def answer(self, leg_id: str, offer: bytes) -> Answer:
        leg = self._leg(leg_id)
        try:
            negotiated = leg.sdp.answer(_parse(offer))
        except OfferAnswerError as exc:
            raise MediaError(exc.reason) from None
        except SdpParseError as exc:
            raise MediaError(f"bad SDP: {exc.reason}") from None
        self._apply(leg, negotiated)
        # A peer that gives no address to send to (the old c=0.0.0.0) is holding (RFC 3264 section 8.4).
        offered = "inactive" if negotiated.remote_address is None else negotiated.remote_direction
        return Answer(leg.sdp.serialized, _DIRECTIONS[offered])

    def accept_answer(self, leg_id: str, answer: bytes) -> None:
        leg = self._leg(leg_id)
        try:
            negotiated = leg.sdp.accept_answer(_parse(answer))
        except OfferAnswerError as exc:
            raise MediaError(exc.reason) from None
        except SdpParseError as exc:
            raise MediaError(f"bad SDP: {exc.reason}") from None
        self._apply(leg, negotiated)

    def _apply(self, leg: _AnchoredLeg, negotiated: NegotiatedMedia) -> None:
        # A peer that gives no address (the old c=0.0.0.0 hold) is taken as inactive (RFC 3264 8.4).
        leg.peer_sends = negotiated.remote_address is not None \
            and _DIRECTIONS[negotiated.remote_direction].peer_sends
        media = negotiated.leg_media
        if negotiated.remote_address is not None:
            leg.endpoint.set_remote(negotiated.remote_address, negotiated.payload_types)
        if media != leg.media:
            leg.media = media
            if leg.relay is not None:
                leg.relay.update_media(leg.side, media)

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

    def hold(self, held_leg: str, sound: str = "music") -> None:
        leg = self._leg(held_leg)
        if leg.relay is None:
            return
        codec = (leg.media or LegMedia()).codec
        leg.relay.start_player(leg.side, self._sound(sound).frames(codec))

    def _sound(self, name: str) -> LoopedSound:
        """``music`` (media.moh_file) or ``ringback`` (media.ringback_tone), loaded on first use."""
        if name == "ringback":
            if self._ringback is None:
                self._ringback = ringback_from_config(self.config)
            return self._ringback
        if name != "music":
            raise MediaError(f"no such sound to play: {name!r}")
        if self._moh is None:
            self._moh = MusicOnHold.from_config(self.config)
        return self._moh

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
