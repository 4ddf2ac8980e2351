"""Caller id precedence: P-Asserted-Identity, then Remote-Party-ID, then From; privacy kept as a flag."""

from __future__ import annotations

from cti_server.calls.caller_id import CallerId, caller_id_of
from cti_server.sip.headers import Headers
from cti_server.sip.message import SipRequest
from cti_server.sip.uri import parse_uri


def invite(*extra: tuple[str, str]) -> SipRequest:
    headers = Headers([
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
        ("From", '"From Name" <sip:+15550001@trunk.example>;tag=1'),
        ("To", "<sip:+15550100@cti.local>"), ("Call-ID", "c"), ("CSeq", "1 INVITE"),
        *extra,
    ])
    return SipRequest("INVITE", parse_uri("sip:+15550100@cti.local"), headers)


def test_from_when_nothing_else() -> None:
    assert caller_id_of(invite()) == CallerId("+15550001", "From Name", "from", False)


def test_p_asserted_identity_wins_and_tel_is_preferred() -> None:
    request = invite(
        ("Remote-Party-ID", '"RPID" <sip:5550002@gw>;party=calling;screen=yes'),
        ("P-Asserted-Identity", '"Asserted" <sip:5550003@carrier>'),
        ("P-Asserted-Identity", "<tel:+15550004>"),
    )
    assert caller_id_of(request) == CallerId("+15550004", None, "p-asserted-identity", False)


def test_remote_party_id_before_from_but_only_the_calling_party() -> None:
    request = invite(
        ("Remote-Party-ID", "<sip:5550009@gw>;party=called"),
        ("Remote-Party-ID", '"Gateway Caller" <sip:5550002;npdi@gw>;party=calling;privacy=full'),
    )
    assert caller_id_of(request) == CallerId("5550002", "Gateway Caller", "remote-party-id", True)


def test_privacy_header_and_garbage_identities() -> None:
    request = invite(("Privacy", "id;critical"), ("P-Asserted-Identity", "<<<garbage"),
                     ("Remote-Party-ID", "not a uri at all"))
    caller = caller_id_of(request)
    assert caller.source == "from" and caller.private
    assert caller.to_dict() == {"number": "+15550001", "name": "From Name", "source": "from", "private": True}
