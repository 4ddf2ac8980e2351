"""Who is calling: the caller id of an inbound INVITE.

The most trusted source wins: P-Asserted-Identity (RFC 3325 section 9.1, set by a trusted network),
then Remote-Party-ID (draft-ietf-sip-privacy-04, still sent by many PBXs and Cisco gateways), then
From (RFC 3261 section 20.20). Privacy (RFC 3323 ``Privacy: id`` or RPID ``privacy=full``) is kept as a
flag: the number is still known to us, but must not be shown to the callee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cti_server.sip.address import NameAddr, parse_name_addr
from cti_server.sip.errors import SipParseError
from cti_server.sip.message import SipRequest

SOURCES = ("p-asserted-identity", "remote-party-id", "from")


@dataclass(frozen=True)
class CallerId:
    """A caller's number and display name, the header they came from, and whether they asked privacy."""

    number: str
    name: str | None = None
    source: str = "from"
    private: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for events."""
        return {"number": self.number, "name": self.name, "source": self.source, "private": self.private}


def number_of(addr: NameAddr) -> str:
    """The user part of a SIP/tel URI without its parameters (``+15550100;npdi`` -> ``+15550100``)."""
    user = addr.uri.user or ""
    return user.split(";", 1)[0]


def caller_id_of(request: SipRequest) -> CallerId:
    """The caller id of ``request`` (RFC 3325 > RPID > From); unparsable headers are passed over."""
    privacy = (request.headers.get("Privacy") or "").lower()
    private = any(token.strip() in ("id", "user") for token in privacy.split(";"))

    pai = _first_identity(request.headers.get_all("P-Asserted-Identity"))
    if pai is not None:
        return CallerId(number_of(pai), pai.display_name or None, "p-asserted-identity", private)

    for value in request.headers.get_all("Remote-Party-ID"):
        try:
            rpid = parse_name_addr(value)
        except SipParseError:
            continue
        party = (rpid.params.get("party") or "calling").lower()
        if party != "calling" or not number_of(rpid):
            continue
        rpid_private = (rpid.params.get("privacy") or "off").lower() not in ("off", "")
        name = rpid.display_name or None
        return CallerId(number_of(rpid), name, "remote-party-id", private or rpid_private)

    sender = request.from_addr
    return CallerId(number_of(sender), sender.display_name or None, "from", private)


def _first_identity(values: list[str]) -> NameAddr | None:
    """RFC 3325 allows one sip/sips and one tel identity; prefer the tel one (a number for sure)."""
    found: list[NameAddr] = []
    for value in values:
        try:
            addr = parse_name_addr(value)
        except SipParseError:
            continue
        if number_of(addr):
            found.append(addr)
    for addr in found:
        if addr.uri.scheme == "tel":
            return addr
    return found[0] if found else None
