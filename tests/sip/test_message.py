"""SipRequest / SipResponse accessors, serialization and builders (RFC 3261 section 7, 8.1.1, 8.2.6)."""

from __future__ import annotations

import pytest

from cti_server.sip import (
    REASON_PHRASES,
    CSeq,
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_name_addr,
    parse_uri,
)


def invite() -> SipRequest:
    headers = Headers([
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP p1.example.com"),
        ("Via", "SIP/2.0/TCP p2.example.com;branch=z9hG4bKabc"),
        ("Max-Forwards", "70"),
        ("To", "Bob <sip:bob@biloxi.com>"),
        ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
        ("Contact", "<sip:alice@pc33.atlanta.com>"),
        ("Record-Route", "<sip:p1.example.com;lr>"),
        ("Timestamp", "54"),
        ("Expires", "300"),
        ("Content-Type", "application/sdp; charset=x"),
    ])
    return SipRequest("INVITE", parse_uri("sip:bob@biloxi.com"), headers, b"v=0\r\n")


def test_typed_accessors() -> None:
    request = invite()
    assert request.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert request.cseq == CSeq(314159, "INVITE")
    assert [v.host for v in request.vias] == ["pc33.atlanta.com", "p1.example.com", "p2.example.com"]
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.from_tag == "1928301774" and request.to_tag is None
    assert request.from_addr.display_name == "Alice"
    contacts = request.contacts
    assert contacts != "*" and contacts[0].uri.host == "pc33.atlanta.com"
    assert request.expires == 300 and request.max_forwards == 70
    assert request.content_type == "application/sdp; charset=x" and request.media_type == "application/sdp"


def test_cached_accessors_follow_header_edits() -> None:
    request = invite()
    assert request.top_via.host == "pc33.atlanta.com"
    request.headers.prepend("Via", "SIP/2.0/UDP new.example.com;branch=z9hG4bKnew")
    assert request.top_via.host == "new.example.com"
    assert len(request.vias) == 4
    request.headers.set("To", "<sip:bob@biloxi.com>;tag=abc")
    assert request.to_tag == "abc"


def test_missing_and_bad_headers_raise_parse_error() -> None:
    request = SipRequest("OPTIONS", parse_uri("sip:a@b"), Headers())
    for accessor in ("call_id", "cseq", "top_via", "from_addr", "to_addr"):
        with pytest.raises(SipParseError, match="missing"):
            getattr(request, accessor)
    assert request.vias == [] and request.contacts == [] and request.expires is None
    assert request.max_forwards is None
    request.headers.set("Max-Forwards", "256")
    with pytest.raises(SipParseError, match="Max-Forwards"):
        _ = request.max_forwards
    request.headers.set("CSeq", "2147483648 OPTIONS")
    with pytest.raises(SipParseError, match="CSeq"):
        _ = request.cseq
    request.headers.set("Expires", "99999999999999999999")
    assert request.expires == 2**32 - 1


def test_star_contact() -> None:
    request = invite()
    request.headers.set("Contact", "*")
    assert request.contacts == "*"
    request.headers.add("Contact", "<sip:a@b>")
    with pytest.raises(SipParseError):
        _ = request.contacts


def test_serialize_writes_content_length_from_body() -> None:
    request = invite()
    request.headers.add("Content-Length", "999")
    wire = request.serialize()
    head, body = wire.split(b"\r\n\r\n", 1)
    assert head.startswith(b"INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: ")
    assert head.endswith(b"\r\nContent-Length: 5") and b"999" not in head
    assert body == b"v=0\r\n"


def test_make_response_copies_dialog_headers() -> None:
    request = invite()
    response = make_response(request, 180, to_tag="xyz", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    assert isinstance(response, SipResponse)
    assert response.reason == "Ringing"
    assert response.headers.get_lines("Via") == request.headers.get_lines("Via")
    assert response.to_tag == "xyz" and response.from_tag == "1928301774"
    assert response.call_id == request.call_id and response.cseq == request.cseq
    assert response.headers.get_all("Record-Route") == ["<sip:p1.example.com;lr>"]
    assert response.headers.items()[-1] == ("Contact", "<sip:bob@192.0.2.4>")
    assert "Timestamp" not in response.headers
    trying = make_response(request, 100)
    assert trying.headers.get("Timestamp") == "54" and trying.to_tag is None
    assert "Record-Route" not in make_response(request, 486).headers
    wire = make_response(request, 599, "Custom Reason").serialize()
    assert wire.startswith(b"SIP/2.0 599 Custom Reason\r\n")


def test_make_response_keeps_existing_to_tag() -> None:
    request = invite()
    request.headers.set("To", "<sip:bob@biloxi.com>;tag=old")
    assert make_response(request, 200, to_tag="new").to_tag == "old"
    with pytest.raises(ValueError):
        make_response(request, 700)


def test_reason_phrase_table() -> None:
    assert REASON_PHRASES[200] == "OK" and REASON_PHRASES[505] == "Version Not Supported"
    request = invite()
    assert make_response(request, 499).reason == "Bad Request"


def test_make_request_builds_mandatory_headers() -> None:
    via = Via("UDP", "192.0.2.1", 5060, {"branch": new_branch(), "rport": None})
    request = make_request(
        "OPTIONS", "sip:bob@biloxi.com",
        from_=parse_name_addr("<sip:alice@atlanta.com>;tag=" + new_tag()),
        to="<sip:bob@biloxi.com>", call_id=new_call_id("atlanta.com"), cseq=7, via=via,
        headers=[("Accept", "application/sdp")],
    )
    assert [name for name, _ in request.headers.items()] == [
        "Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Accept"]
    assert request.cseq == CSeq(7, "OPTIONS") and request.max_forwards == 70
    assert request.top_via == via
    assert request.call_id.endswith("@atlanta.com")


def test_identifiers_are_unique_and_well_formed() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith("z9hG4bK") and len(b) > 16 for b in branches)
    assert len({new_tag() for _ in range(100)}) == 100
    call_ids = {new_call_id("h") for _ in range(100)}
    assert len(call_ids) == 100
    assert all(c.endswith("@h") and len(c) == 26 and int(c[:24], 16) >= 0 for c in call_ids)


def test_equality_ignores_cache() -> None:
    first, second = invite(), invite()
    _ = first.vias
    assert first == second
    second.body = b""
    assert first != second


def test_builders_accept_headers_as_mapping_pairs_or_headers() -> None:
    request = invite()
    for extra in ({"Contact": "<sip:b@h>", "Allow": "INVITE, ACK"},
                  [("Contact", "<sip:b@h>"), ("Allow", "INVITE, ACK")],
                  Headers([("Contact", "<sip:b@h>"), ("Allow", "INVITE, ACK")])):
        response = make_response(request, 200, to_tag="t", headers=extra)
        assert response.headers.items()[-2:] == [("Contact", "<sip:b@h>"), ("Allow", "INVITE, ACK")]


def _lookups_follow_lines(headers: Headers) -> bool:
    """Every name's get_lines (what the index answers) is its lines' values in wire order, and no more."""
    names = {name for name, _ in headers.items()}
    return all(headers.get_lines(name) == [v for n, v in headers.items() if n == name] for name in names) \
        and "Route" not in names and headers.get_lines("Route") == []


def test_built_messages_answer_lookups_as_their_lines_say() -> None:
    request = invite()
    for response in (make_response(request, 180, to_tag="t", headers=[("Contact", "<sip:b@h>")]),
                     make_response(request, 100), make_response(request, 486, headers={"Via": "x"})):
        assert _lookups_follow_lines(response.headers)
        response.headers.add("Contact", "<sip:c@h>")
        response.headers.set("CSeq", "1 INVITE")
        assert _lookups_follow_lines(response.headers) and response.cseq == CSeq(1, "INVITE")
    built = make_request("OPTIONS", "sip:bob@biloxi.com", from_="<sip:a@b>;tag=1", to="<sip:b@c>",
                         call_id="c", cseq=2, via="SIP/2.0/UDP h;branch=z9hG4bK1",
                         headers=[("Max-Forwards", "5"), ("Accept", "application/sdp")])
    assert _lookups_follow_lines(built.headers) and built.max_forwards == 5
    no_via = SipRequest("INVITE", parse_uri("sip:b@c"), Headers([
        ("From", "<sip:a@b>;tag=1"), ("To", "<sip:b@c>"), ("Call-ID", "c"), ("CSeq", "1 INVITE")]))
    assert _lookups_follow_lines(make_response(no_via, 200).headers)


@pytest.mark.parametrize("name", ["To", "From", "Call-ID", "CSeq"])
def test_make_response_names_the_header_a_request_lacks(name: str) -> None:
    request = invite()
    request.headers.remove(name)
    with pytest.raises(SipParseError, match=f"missing {name}"):
        make_response(request, 200, to_tag="t")
