"""name-addr / addr-spec with header parameters (RFC 3261 section 20.10, 20.20, 20.39, 25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti_server.sip import NameAddr, SipParseError, parse_contact_list, parse_name_addr, parse_uri
from cti_server.sip.address import parse_header_params


def test_quoted_display_name_with_escapes() -> None:
    addr = parse_name_addr(r'"Alice \"Al\" Smith" <sip:alice@atlanta.com>;tag=1928301774')
    assert addr.display_name == 'Alice "Al" Smith'
    assert addr.uri == parse_uri("sip:alice@atlanta.com")
    assert addr.tag == "1928301774"
    assert str(addr) == r'"Alice \"Al\" Smith" <sip:alice@atlanta.com>;tag=1928301774'


def test_token_display_name_and_no_space_before_angle() -> None:
    assert parse_name_addr("Bob  Smith <sip:bob@biloxi.com>").display_name == "Bob  Smith"
    addr = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert addr.display_name == "caller" and addr.tag == "323"


def test_addr_spec_params_belong_to_the_header() -> None:
    addr = parse_name_addr("sip:alice@atlanta.com;transport=tcp;tag=88sja8x")
    assert addr.display_name is None
    assert addr.uri.params == {}
    assert addr.params == {"transport": "tcp", "tag": "88sja8x"}
    bracketed = parse_name_addr("<sip:alice@atlanta.com;transport=tcp>;tag=88sja8x")
    assert bracketed.uri.params == {"transport": "tcp"} and bracketed.params == {"tag": "88sja8x"}


def test_param_values_quoted_token_and_ipv6() -> None:
    addr = parse_name_addr('<sip:a@b>;+sip.instance="<urn:uuid:1234>";expires=3600;received=[2001:db8::1];lr')
    assert addr.params == {"+sip.instance": '"<urn:uuid:1234>"', "expires": "3600",
                           "received": "[2001:db8::1]", "lr": None}
    assert parse_name_addr(str(addr)) == addr


def test_str_quotes_display_name() -> None:
    addr = NameAddr('a "b" \\ c', parse_uri("sip:x@y"), {"tag": "1"})
    assert str(addr) == r'"a \"b\" \\ c" <sip:x@y>;tag=1'
    assert parse_name_addr(str(addr)) == addr


def test_other_schemes_allowed_in_name_addr() -> None:
    addr = parse_name_addr("<http://www.example.com/alice/photo.jpg>;purpose=icon")
    assert addr.uri.scheme == "http" and addr.params == {"purpose": "icon"}


@pytest.mark.parametrize("text", [
    '"unterminated <sip:a@b>', "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
    "< sip:a@b >", "<sip:a@b", "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    "<sip:a@b>;;tag=1", "<sip:a@b>;tag=1;", "<sip:a@b> junk", '"x" sip:a@b', "", "<>",
    "sip:a@b;tag=x y", "sip:a@b, sip:c@d",
])
def test_invalid_addresses_raise(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text, "To")


def test_contact_list_and_star() -> None:
    assert parse_contact_list(" * ") == "*"
    contacts = parse_contact_list('<sip:a@b>;expires=60, "C, D" <sip:c@d>;q=0.7')
    assert contacts != "*"
    assert [c.uri.user for c in contacts] == ["a", "c"]
    assert contacts[0].params == {"expires": "60"} and contacts[1].display_name == "C, D"
    with pytest.raises(SipParseError):
        parse_contact_list(" , ")


def test_unquoted_non_ascii_display_name_is_accepted_leniently() -> None:
    addr = parse_name_addr("J\u00f6rg M\u00fcller <sip:joerg@example.de>;tag=9")
    assert addr.display_name == "J\u00f6rg M\u00fcller" and addr.tag == "9"
    with pytest.raises(SipParseError):
        parse_name_addr("J\u00f6rg, M\u00fcller <sip:joerg@example.de>")


@settings(max_examples=300, deadline=None)
@given(st.text("abZ09-.!%*_+`'~:;= \t\"[]<>", max_size=30))
def test_simple_param_path_agrees_with_full_grammar(text: str) -> None:
    """The one-regex path of parse_header_params gives what the general loop gives (forced by a blank)."""
    try:
        fast: object = parse_header_params(text, "X")
    except SipParseError:
        fast = "error"
    try:
        slow: object = parse_header_params(text + " ", "X")
    except SipParseError:
        slow = "error"
    assert fast == slow
