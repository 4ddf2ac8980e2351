"""The Via header field (RFC 3261 section 20.42, RFC 3581, RFC 5118)."""

from __future__ import annotations

import pytest

from cti_server.sip import SipParseError, Via, parse_via


def test_typical_via() -> None:
    via = parse_via("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport")
    assert via == Via("UDP", "pc33.atlanta.com", 5066, {"branch": "z9hG4bK776asdhds", "rport": None})
    assert via.branch == "z9hG4bK776asdhds" and via.rport == "" and via.received is None
    assert str(via) == "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport"


def test_lws_around_slashes_and_lower_case_transport() -> None:
    via = parse_via("SIP  /   2.0 /udp 192.0.2.2;branch=390skdjuw")
    assert via.transport == "UDP" and via.host == "192.0.2.2" and via.port is None


def test_received_and_rport_values_and_ipv6() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::9:1]:5060;received=2001:db8::9:255;rport=5061;branch=z9hG4bKx")
    assert via.host == "2001:db8::9:1" and via.port == 5060
    assert via.received == "2001:db8::9:255" and via.rport == "5061"
    assert str(via) == "SIP/2.0/TCP [2001:db8::9:1]:5060;received=2001:db8::9:255;rport=5061;branch=z9hG4bKx"


@pytest.mark.parametrize("text", [
    "", "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host;;",
    "SIP/2.0/UDP 192.0.2.15;;", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP host junk", "SIP/2.0/UDP [::1",
    "SIP/2.0/UDP 2001:db8::1", ";", "SIP/2.0/UDP host;branch=",
])
def test_invalid_vias_raise(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


def test_other_sent_protocol_is_kept() -> None:
    via = parse_via("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
    assert via.protocol == "SIP/7.0" and str(via) == "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"
    assert parse_via("SIP/2.0/TCP h").protocol == "SIP/2.0"


@pytest.mark.parametrize(("params", "expected"), [
    ("", {}), (";branch=z9hG4bK1", {"branch": "z9hG4bK1"}),
    (";BRANCH=z9hG4bK2;rport", {"branch": "z9hG4bK2", "rport": None}),
    (" ; branch = z9hG4bK3", {"branch": "z9hG4bK3"}), (';x="a b"', {"x": '"a b"'}),
    (";branch=z9hG4bK-4.1;rport", {"branch": "z9hG4bK-4.1", "rport": None}),
    (";branch=a:b", {"branch": "a:b"}), (";branch=a;rport=5", {"branch": "a", "rport": "5"}),
    (";branch=a;rport;x", {"branch": "a", "rport": None, "x": None}),
    (";branch=a;branch=b", {"branch": "b"}), (";branch=a;RPORT", {"branch": "a", "rport": None}),
])
def test_a_remembered_sent_by_reads_every_kind_of_parameters(params: str,
                                                             expected: dict[str, str | None]) -> None:
    parse_via("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK0")  # its sent-by is remembered from now on
    assert parse_via(f"SIP/2.0/UDP 192.0.2.7:5062{params}") == Via("UDP", "192.0.2.7", 5062, expected)
    for bad in (";", ";branch=", ";a;;b", ";a=b c", ";branch=;rport", ";branch=a b", ";branch=a;",
                ";branch=\u00e9"):
        with pytest.raises(SipParseError):
            parse_via(f"SIP/2.0/UDP 192.0.2.7:5062{bad}")
