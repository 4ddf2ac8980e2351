"""parse_message, StreamFramer and response_for_unparseable (RFC 3261 sections 7, 7.3.1, 7.5, 18.3, 8.2)."""

from __future__ import annotations

import pytest

from cti_server.sip import (
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_message,
    response_for_unparseable,
)

INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 11\r\n"
    b"\r\n"
    b"v=0\r\ns=-\r\nX"
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def replace(message: bytes, old: bytes, new: bytes) -> bytes:
    assert old in message
    return message.replace(old, new)


def test_request_parses_with_body_and_round_trips() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    assert request.method == "INVITE" and str(request.uri) == "sip:bob@biloxi.com"
    assert request.body == b"v=0\r\ns=-\r\nX"
    assert request.cseq.number == 314159 and request.from_tag == "1928301774"
    assert request.serialize() == INVITE
    assert parse_message(request.serialize()) == request


def test_response_parses() -> None:
    response = parse_message(RESPONSE)
    assert isinstance(response, SipResponse)
    assert (response.status, response.reason, response.to_tag) == (180, "Ringing", "a6c85cf")
    assert response.top_via.received == "192.0.2.1"
    assert response.serialize() == RESPONSE


def test_compact_names_folding_and_leading_crlf() -> None:
    data = (b"\r\n\r\nOPTIONS sip:b@c SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1,\r\n SIP/2.0/TCP g\r\n"
            b"t: <sip:b@c>\r\nf: <sip:a@c>;tag=1\r\ni: x@y\r\nCSeq: 1\r\n\tOPTIONS\r\nl: 0\r\n\r\n")
    request = parse_message(data)
    assert [v.host for v in request.vias] == ["h", "g"]
    assert request.call_id == "x@y" and request.cseq.method == "OPTIONS"
    assert request.headers.items()[0] == ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1, SIP/2.0/TCP g")


def test_missing_content_length_takes_rest_of_datagram() -> None:
    data = replace(INVITE, b"Content-Length: 11\r\n", b"")
    assert parse_message(data).body == b"v=0\r\ns=-\r\nX"


def test_bytes_after_content_length_are_ignored() -> None:
    assert parse_message(INVITE + b"garbage").body == b"v=0\r\ns=-\r\nX"


def test_binary_and_non_utf8_survive_round_trip() -> None:
    data = replace(INVITE, b"Contact:", b"X-Bin: \xff\xfe caf\xc3\xa9\r\nContact:")
    data = replace(data, b"v=0\r\ns=-\r\nX", b"\x00\x01\xff\r\n\r\n\x80X\x00\x00")
    message = parse_message(data)
    assert message.body == b"\x00\x01\xff\r\n\r\n\x80X\x00\x00"
    assert message.serialize() == data


@pytest.mark.parametrize(("old", "new", "reason", "status"), [
    (b"Content-Length: 11", b"Content-Length: 12", "Content-Length", 400),
    (b"Content-Length: 11", b"Content-Length: -1", "Content-Length", 400),
    (b"Content-Length: 11", b"Content-Length: 1x", "Content-Length", 400),
    (b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", "version", 505),
    (b"SIP/2.0\r\nVia", b"SIP/2.0x\r\nVia", "SIP-Version", 400),
    (b"INVITE sip", b"INV@TE sip", "method", 400),
    (b"INVITE sip:bob@biloxi.com", b"INVITE  sip:bob@biloxi.com", "Request-Line", 400),
    (b"INVITE sip:bob@biloxi.com", b"INVITE http://biloxi.com/", "scheme", 416),
    (b"sip:bob@biloxi.com SIP", b"sip:bob@biloxi.com?subject=x SIP", "headers", 400),
    (b"CSeq: 314159 INVITE", b"CSeq: 314159 OPTIONS", "CSeq method", 400),
    (b"CSeq: 314159 INVITE", b"CSeq: 4294967296 INVITE", "CSeq", 400),
    (b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", b"", "missing Call-ID", 400),
    (b"To: Bob <sip:bob@biloxi.com>\r\n", b"", "missing To", 400),
    (b"From: Alice", b"X-From: Alice", "missing From", 400),
    (b"CSeq: 314159 INVITE\r\n", b"", "missing CSeq", 400),
    (b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n", b"", "missing Via", 400),
    (b"Max-Forwards: 70", b"Max-Forwards: 256", "Max-Forwards", 400),
    (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nMax-Forwards: 69", "more than one Max-Forwards", 400),
    (b"Call-ID: a84b4c76e66710@pc33.atlanta.com", b"Call-ID: a b", "Call-ID", 400),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards 70\r\n", "malformed header line", 400),
    (b"Max-Forwards: 70\r\n", b"Max Forwards: 70\r\n", "header name", 400),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX: y\r\n", "bare CR or LF", 400),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\r\n", "bare CR or LF", 400),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n\nX: y\r\n", "bare CR or LF", 400),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 7\r0\r\n", "bare CR or LF", 400),
    (b"Contact: <sip:alice@pc33.atlanta.com>", b"Contact: <sip:alice@pc33.atlanta.com", "Contact", 400),
    (b"Max-Forwards: 70", b"Expires: soon", "Expires", 400),
    (b"Max-Forwards: 70", b"Date: Fri, 01 Jan 2010 16:00:00 EST", "Date", 400),
])
def test_invalid_requests(old: bytes, new: bytes, reason: str, status: int) -> None:
    with pytest.raises(SipParseError, match=reason) as info:
        parse_message(replace(INVITE, old, new))
    assert info.value.status == status


@pytest.mark.parametrize(("old", "new"), [
    (b"SIP/2.0 180 Ringing", b"SIP/2.0 4294967301 Ringing"),
    (b"SIP/2.0 180 Ringing", b"SIP/2.0 099 Ringing"),
    (b"SIP/2.0 180 Ringing", b"SIP/2.0 700 Ringing"),
    (b"SIP/2.0 180 Ringing", b"SIP/2.0 18 Ringing"),
    (b"CSeq: 314159 INVITE\r\n", b""),
])
def test_invalid_responses(old: bytes, new: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(replace(RESPONSE, old, new))


def test_empty_reason_phrase_is_accepted() -> None:
    response = parse_message(replace(RESPONSE, b"SIP/2.0 180 Ringing", b"SIP/2.0 180 "))
    assert isinstance(response, SipResponse) and response.reason == ""


@pytest.mark.parametrize("data", [
    b"", b"\r\n\r\n", b"\r\n", b"INVITE", b"\x00" * 100, bytes(range(256)), INVITE[:40], INVITE[:-20],
    b"SIP/2.0 200 OK\r\n\r\n", b"\xff\xfe\r\n\r\n", b":\r\n\r\n",
])
def test_garbage_and_truncated_raise_parse_error(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_oversize_is_513() -> None:
    big = replace(INVITE, b"Max-Forwards: 70", b"X-Pad: " + b"a" * 70000 + b"\r\nMax-Forwards: 70")
    with pytest.raises(SipParseError) as info:
        parse_message(big)
    assert info.value.status == 513
    assert parse_message(big, max_size=100_000).headers.get("X-Pad") == "a" * 70000


def test_too_many_header_lines() -> None:
    many = replace(INVITE, b"Max-Forwards: 70", b"X-A: 1\r\n" * 600 + b"Max-Forwards: 70")
    with pytest.raises(SipParseError, match="header lines"):
        parse_message(many)


def test_framer_splits_stream_by_content_length() -> None:
    framer = StreamFramer(4096)
    stream = INVITE + RESPONSE + INVITE
    out: list[bytes] = []
    for index in range(0, len(stream), 7):
        out.extend(framer.feed(stream[index:index + 7]))
    assert out == [INVITE, RESPONSE, INVITE]
    assert framer.buffered == 0


def test_framer_reports_keepalive_pings_and_skips_pongs() -> None:
    framer = StreamFramer(4096)
    assert framer.feed(b"\r\n\r\n") == [b""]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [b""]
    assert framer.feed(b"\r\n" + RESPONSE) == [RESPONSE]
    assert framer.keepalives == 2


def test_framer_requires_content_length() -> None:
    with pytest.raises(SipParseError, match="missing Content-Length"):
        StreamFramer(4096).feed(replace(RESPONSE, b"Content-Length: 0\r\n", b""))
    with pytest.raises(SipParseError, match="invalid Content-Length"):
        StreamFramer(4096).feed(replace(RESPONSE, b"Content-Length: 0", b"Content-Length: x"))


def test_framer_compact_content_length() -> None:
    message = replace(RESPONSE, b"Content-Length: 0", b"l: 3") + b"abc"
    assert StreamFramer(4096).feed(message + message) == [message, message]


def test_framer_limits() -> None:
    framer = StreamFramer(2000)
    with pytest.raises(SipParseError) as info:
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * 3000)
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        StreamFramer(2000).feed(replace(RESPONSE, b"Content-Length: 0", b"Content-Length: 5000"))
    assert info.value.status == 513


def test_response_for_unparseable_request() -> None:
    data = replace(INVITE, b"Max-Forwards: 70", b"Max-Forwards: 300")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    response = response_for_unparseable(data, info.value)
    assert response is not None and response.status == 400
    assert response.reason.startswith("Bad Request (invalid Max-Forwards")
    assert str(response.headers.get("Warning")).startswith('399 cti-server "invalid Max-Forwards')
    assert response.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert response.to_tag is not None and response.cseq.number == 314159
    wire = response.serialize()
    assert parse_message(wire).serialize() == wire


def test_response_for_unparseable_keeps_status_and_existing_to_tag() -> None:
    data = replace(replace(INVITE, b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia"), b"To: Bob <sip:bob@biloxi.com>",
                   b"To: Bob <sip:bob@biloxi.com>;tag=x")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    response = response_for_unparseable(data, info.value)
    assert response is not None and response.status == 505 and response.to_tag == "x"


@pytest.mark.parametrize("data", [
    RESPONSE, b"\x00\xff garbage", replace(INVITE, b"INVITE sip:bob@biloxi.com", b"ACK sip:bob@biloxi.com"),
    replace(INVITE, b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", b""),
    replace(INVITE, b"SIP/2.0/UDP pc33", b"SIP/2.0/UDP pc 33"),
])
def test_response_for_unparseable_gives_none_when_hopeless(data: bytes) -> None:
    assert response_for_unparseable(data, SipParseError("bad")) is None


def test_values_cached_by_the_parser_equal_fresh_accessor_results() -> None:
    data = replace(INVITE, b"Via: SIP/2.0/UDP pc33", b"Via: , SIP/2.0/UDP pc33")
    for message_bytes in (INVITE, RESPONSE, data):
        parsed = parse_message(message_bytes)
        fresh: SipRequest | SipResponse
        if isinstance(parsed, SipRequest):
            fresh = SipRequest(parsed.method, parsed.uri, parsed.headers.copy(), parsed.body)
        else:
            fresh = SipResponse(parsed.status, parsed.reason, parsed.headers.copy(), parsed.body)
        for accessor in ("cseq", "from_addr", "to_addr", "top_via", "vias", "contacts", "call_id"):
            assert getattr(parsed, accessor) == getattr(fresh, accessor), accessor


def test_framer_byte_by_byte_with_keepalives_between_messages() -> None:
    framer = StreamFramer(4096)
    stream = b"\r\n" + INVITE + b"\r\n\r\n" + RESPONSE + b"\r\n" + INVITE
    out: list[bytes] = []
    for index in range(len(stream)):
        out.extend(framer.feed(stream[index:index + 1]))
    assert out == [INVITE, b"", RESPONSE, INVITE]
    assert framer.keepalives == 1 and framer.buffered == 0


def test_version_is_checked_before_headers() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(b"OPTIONS sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP h\r\n\r\n")
    assert info.value.status == 505


def test_date_with_one_digit_day_is_accepted() -> None:
    data = replace(INVITE, b"Max-Forwards: 70", b"Date: Thu, 5 Nov 2026 06:00:00 GMT\r\nMax-Forwards: 70")
    assert parse_message(data).headers.get("Date") == "Thu, 5 Nov 2026 06:00:00 GMT"


def test_rfc3261_section_20_header_examples() -> None:
    data = (
        b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060 ;received=192.0.2.207\r\n"
        b" ;branch=z9hG4bK77asjd\r\n"
        b"From: \"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s\r\n"
        b"To: The Operator <sip:operator@cs.columbia.edu>;tag=287447\r\n"
        b"Contact: \"Mr. Watson\" <sip:watson@worcester.bell-telephone.com>\r\n"
        b"   ;q=0.7; expires=3600,\r\n"
        b"   \"Mr. Watson\" <mailto:watson@bell-telephone.com> ;q=0.1\r\n"
        b"i:f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.4\r\n"
        b"CSeq: 4711 INVITE\r\n"
        b"Max-Forwards: 6\r\n"
        b"Record-Route: <sip:server10.biloxi.com;lr>, <sip:bigbox3.site3.atlanta.com;lr>\r\n"
        b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
        b"Warning: 307 isi.edu \"Session parameter 'foo' not understood\","
        b" 301 isi.edu \"Incompatible, x\"\r\n"
        b"Retry-After: 120 (I'm in a meeting)\r\n"
        b"Subject:            lunch\r\n"
        b"subject      :      lunch\r\n"
        b"Subject            :lunch\r\n"
        b"Expires: 5\r\n"
        b"c: text/html; charset=ISO-8859-4\r\n"
        b"l: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    assert [v.received for v in message.vias] == [None, "192.0.2.207"]
    assert message.vias[1].branch == "z9hG4bK77asjd"
    assert message.from_addr.display_name == "A. G. Bell" and message.from_tag == "a48s"
    assert message.to_addr.display_name == "The Operator"
    contacts = message.contacts
    assert contacts != "*" and [c.params for c in contacts] == [{"q": "0.7", "expires": "3600"}, {"q": "0.1"}]
    assert contacts[1].uri.scheme == "mailto"
    assert message.headers.get_all("Record-Route") == [
        "<sip:server10.biloxi.com;lr>", "<sip:bigbox3.site3.atlanta.com;lr>"]
    assert len(message.headers.get_all("Warning")) == 2
    assert message.headers.get_all("Subject") == ["lunch", "lunch", "lunch"]
    assert message.expires == 5 and message.media_type == "text/html"


def test_a_parser_bug_still_surfaces_as_sip_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import cti_server.sip.parser as parser_module

    def broken(text: str) -> object:
        raise KeyError(text)

    monkeypatch.setattr(parser_module, "parse_via", broken)  # called for every message (not memoized)
    with pytest.raises(SipParseError, match="KeyError"):
        parse_message(INVITE)


def test_header_lines_seen_before_are_read_alike_and_not_shared() -> None:
    first = parse_message(INVITE)
    second = parse_message(INVITE)  # every line of it was seen before
    assert second.headers == first.headers and second.max_forwards == 70
    first.headers.set("Max-Forwards", "10")
    first.headers.set("Content-Type", "text/plain")
    assert (second.max_forwards, second.content_type) == (70, "application/sdp")
    with pytest.raises(SipParseError, match="more than one Max-Forwards"):
        parse_message(replace(INVITE, b"Max-Forwards: 70", b"Max-Forwards: 70\r\nMax-Forwards: 70"))
