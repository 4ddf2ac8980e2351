"""Media: RTP/RTCP (RFC 3550), G.711, RFC 4733 DTMF, port allocation, RTP endpoints and the relay
between call legs, music on hold, and SDP offer/answer (RFC 3264) codec selection.

How the call layer uses it, per call leg: ``RtpEndpoint.open(config.media.host, allocator, ...)``; a
``LocalSdp(address, endpoint.port, MediaPolicy.from_config(config.media))`` answers the peer's offer (or
makes ours); ``endpoint.set_remote(negotiated.remote_address, negotiated.payload_types)``; two legs are
joined with ``RtpRelay(a, neg_a.leg_media, b, neg_b.leg_media, on_digit=...)``; hold music is
``relay.start_player(leg, moh.frames(codec, ptime))``. Nothing here knows SIP dialogs.
"""

from cti_server.media.dtmf import DtmfDetector, DtmfDigit, TelephoneEvent, telephone_event_frames
from cti_server.media.endpoint import RtpEndpoint, SymmetricRtpLatch
from cti_server.media.g711 import CODECS, PCMA, PCMU, G711Codec
from cti_server.media.moh import MusicOnHold, PacedPlayer
from cti_server.media.offer_answer import LocalSdp, MediaPolicy, NegotiatedMedia, OfferAnswerError
from cti_server.media.ports import PortsExhausted, RtpPortAllocator
from cti_server.media.relay import LegMedia, RtpRelay
from cti_server.media.rtcp import ReceiverStatistics, parse_compound, serialize_compound
from cti_server.media.rtp import RtpPacket, RtpParseError

__all__ = [
    "CODECS",
    "PCMA",
    "PCMU",
    "DtmfDetector",
    "DtmfDigit",
    "G711Codec",
    "LegMedia",
    "LocalSdp",
    "MediaPolicy",
    "MusicOnHold",
    "NegotiatedMedia",
    "OfferAnswerError",
    "PacedPlayer",
    "PortsExhausted",
    "ReceiverStatistics",
    "RtpEndpoint",
    "RtpPacket",
    "RtpParseError",
    "RtpPortAllocator",
    "RtpRelay",
    "SymmetricRtpLatch",
    "TelephoneEvent",
    "parse_compound",
    "serialize_compound",
    "telephone_event_frames",
]
