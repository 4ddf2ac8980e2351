"""What call control needs from the media layer for one call: an interface, so the B2BUA never reads SDP.

Every leg of a call gets its own media endpoint (media anchoring): its own SDP offer/answer with its peer
(RFC 3264), so a hold or a codec change on one leg is answered locally and the relay joins whichever
two legs are bridged. The implementation over ``cti_server.media`` is ``anchored_media``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class MediaError(Exception):
    """An offer or answer we cannot use (no common codec, bad SDP): the B2BUA answers 488 / ends the leg."""


class Direction(StrEnum):
    """RFC 3264 section 5.1 / 8.4 stream direction, as the peer offered it."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def peer_sends(self) -> bool:
        """The peer that offered this direction sends RTP (sendrecv or sendonly)."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def is_hold(self) -> bool:
        """The peer stops listening to us: it put the call on hold (section 8.4)."""
        return self in (Direction.SENDONLY, Direction.INACTIVE)


@dataclass(frozen=True)
class Answer:
    """Our SDP answer to a peer's offer, and the direction the peer offered (hold detection)."""

    sdp: bytes
    offered: Direction


class MediaAnchor(Protocol):
    """The media endpoints of every call leg, by leg id: offer/answer per leg, the relay between two legs,
    music on hold. One per server, so a transfer can bridge legs of two different calls."""

    async def open_leg(self, leg_id: str, call_id: str) -> None:
        """Allocate the endpoint (RTP/RTCP ports) of a new leg of call ``call_id``."""
        ...

    def offer(self, leg_id: str) -> bytes:
        """Our SDP offer to the leg's peer (our address and port, our codecs by preference)."""
        ...

    def answer(self, leg_id: str, offer: bytes) -> Answer:
        """Answer the peer's ``offer`` on the leg; raise MediaError when nothing fits (488)."""
        ...

    def accept_answer(self, leg_id: str, answer: bytes) -> None:
        """Take the peer's answer to our offer on the leg; raise MediaError when it is unusable."""
        ...

    def bridge(self, first: str, second: str) -> None:
        """Relay media between two legs (transcoding when their codecs differ); ends earlier bridges
        and music on hold of either leg."""
        ...

    def hold(self, held_leg: str, sound: str = "music") -> None:
        """Stop relaying to ``held_leg`` and play ``sound`` to it: ``music`` (on hold, media.moh_file)
        or ``ringback`` (a queued caller's wait, media.ringback_tone)."""
        ...

    def resume(self, held_leg: str) -> None:
        """Stop the music and relay again."""
        ...

    async def close_leg(self, leg_id: str) -> None:
        """Release the leg's endpoint and ports (unknown or closed legs are ignored)."""
        ...

    def leg_stats(self, leg_id: str) -> dict[str, object]:
        """Packet counters of one leg (JSON-safe), for the call's end event and tests."""
        ...

    def packets_received(self, leg_id: str) -> int | None:
        """RTP packets the leg's endpoint received so far (None: no such leg), for the media watchdog."""
        ...

    def peer_sends(self, leg_id: str) -> bool:
        """Whether the leg's peer said it sends RTP (sendrecv/sendonly) in its last offer or answer;
        True before any negotiation and for unknown legs."""
        ...
