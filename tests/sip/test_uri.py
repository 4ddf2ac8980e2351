"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966, RFC 5118)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti_server.sip import SipParseError, SipUri, parse_uri
from cti_server.sip.uri import unescape


def test_full_sip_uri() -> None:
    uri = parse_uri("sip:alice:secret@atlanta.com:5061;transport=TCP;lr;maddr=239.255.255.1?subject=hi&x=y")
    assert uri == SipUri("sip", "alice", "secret", "atlanta.com", 5061,
                         {"transport": "TCP", "lr": None, "maddr": "239.255.255.1"},
                         {"subject": "hi", "x": "y"})
    assert uri.transport == "tcp"
    assert str(uri) == "sip:alice:secret@atlanta.com:5061;transport=TCP;lr;maddr=239.255.255.1?subject=hi&x=y"


@pytest.mark.parametrize("text", [
    "sip:atlanta.com", "SIPS:bob@biloxi.com", "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:alice@192.0.2.4", "sip:[2001:db8::10]:5070", "sip:alice@[::1]", "sip:host.example.com.",
    "sip:%61lice@atlanta.com;transport=tcp", "sip:user;par=u%40example.net@example.com",
    "sip:sips%3Auser%40example.com@example.net", "sip:null-%00-null@example.com",
    "sip:!~*'()&=+$,;?/@example.com",
])
def test_valid_uris_round_trip(text: str) -> None:
    uri = parse_uri(text)
    assert parse_uri(str(uri)) == uri


def test_ipv6_host_is_bare_and_serialized_with_brackets() -> None:
    uri = parse_uri("sip:[2001:db8::10]:5070")
    assert uri.host == "2001:db8::10" and uri.port == 5070
    assert str(uri) == "sip:[2001:db8::10]:5070"
    assert uri.host_port == "[2001:db8::10]:5070"


def test_user_with_semicolon_and_escapes() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com" and uri.params == {}
    escaped = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert unescape(escaped.user or "") == "sips:user@example.com"


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert uri.scheme == "tel" and uri.user == "+1-201-555-0123" and uri.host == ""
    assert uri.params == {"phone-context": "example.com"}
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_unknown_scheme_is_416_unless_any_scheme() -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri("http://example.com/")
    assert info.value.status == 416
    other = parse_uri("mailto:alice@example.com", any_scheme=True)
    assert other.scheme == "mailto" and str(other) == "mailto:alice@example.com"


@pytest.mark.parametrize("text", [
    "", "sip:", "example.com", "<sip:a@b>", "sip:a@", "sip:a@b:", "sip:a@b:65536", "sip:a@b:port",
    "sip:a@2001:db8::1", "sip:a@[2001:db8::1", "sip:a@[zz::1]", "sip:a b@c", "sip:a@b c", "sip:a@b;;x",
    "sip:a@b;=x", "sip:a@b?x", "sip:a@256.1.1.1", "sip:a@-bad.com", "sip:a@b;x=y z", "tel:", "tel:12 34",
    "sip:a@b_c.com", "sip:user@host.123",
])
def test_invalid_uris_raise(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_overlong_uri_is_rejected() -> None:
    with pytest.raises(SipParseError, match="too long"):
        parse_uri("sip:" + "a" * 9000 + "@b")


_USER_CHARS = "abcXYZ019-_.!~*'()&=+$,/;?%:@"
_HOST_CHARS = "abz09-."


@settings(max_examples=300, deadline=None)
@given(st.text(_USER_CHARS, max_size=12), st.text(_HOST_CHARS, min_size=1, max_size=12),
       st.one_of(st.none(), st.integers(0, 70000)), st.text(_USER_CHARS + "[]", max_size=16))
def test_common_uri_fast_path_agrees_with_full_parser(user: str, host: str, port: int | None,
                                                      params: str) -> None:
    """parse_uri's one-regex path for lower-case sip: must give what the full grammar gives ("SIP:")."""
    text = "sip:" + (f"{user}@" if user else "") + host + (f":{port}" if port is not None else "")
    text += f";{params}" if params else ""
    results: list[object] = []
    for candidate in (text, "SIP" + text[3:]):
        try:
            results.append(parse_uri(candidate))
        except SipParseError as error:
            results.append(error.status)
    assert results[0] == results[1]


def test_non_ascii_digits_are_not_a_port() -> None:
    with pytest.raises(SipParseError):
        parse_uri("sip:a@b:\u0665\u0660\u0666\u0660")
