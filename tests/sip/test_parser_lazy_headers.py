"""From, To and Contact in the common ``<sip:...>;params`` form are validated by the parser without being
parsed (RFC 3261 section 20.10, 20.20, 20.39): they parse when read, and a bad one still raises at once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti_server.sip.address import common_name_addr, name_addr_from_common, parse_name_addr
from cti_server.sip.errors import SipParseError
from cti_server.sip.message import SipRequest
from cti_server.sip.parser import _is_common_name_addr, parse_message


def register(from_: str, to: str, contact: str) -> bytes:
    return (f"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
            f"From: {from_}\r\nTo: {to}\r\nCall-ID: a@b\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: {contact}\r\nContent-Length: 0\r\n\r\n").encode()


def test_common_addresses_read_after_a_lazy_parse() -> None:
    message = parse_message(register("<sip:alice@example.com>;tag=1928", "<sip:alice@example.com:5070>",
                                     "<sip:alice@10.0.0.1:5062;transport=udp>;expires=60"))
    assert "from" not in message._cache  # validated, not built
    assert message.from_addr.uri.user == "alice" and message.from_tag == "1928"
    assert message.to_addr.uri.port == 5070 and message.to_tag is None
    contacts = message.contacts
    assert contacts != "*"
    assert contacts[0].uri.params == {"transport": "udp"} and contacts[0].params == {"expires": "60"}


@pytest.mark.parametrize("field", ["from", "to", "contact"])
def test_common_looking_address_with_bad_port_is_rejected_by_parse_message(field: str) -> None:
    good = "<sip:alice@example.com>;tag=1"
    bad = "<sip:alice@example.com:70000>;tag=1"
    values = {"from": good, "to": good, "contact": good, field: bad}
    with pytest.raises(SipParseError):
        parse_message(register(values["from"], values["to"], values["contact"]))


def test_second_contact_line_is_checked_too() -> None:
    data = register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>")
    data = data.replace(b"Content-Length", b"Contact: <sip:a@10.0.0.1;bad param>\r\nContent-Length")
    with pytest.raises(SipParseError):
        parse_message(data)


_PIECES = st.sampled_from(["<", ">", "sip:", "sips:", "tel:", "a", "@", "example.com", "10.0.0.1", ":",
                           "5060", "99999", ";", "tag", "=", "x", '"', " ", ",", "%41", "[::1]", "?h=v",
                           "Bob", "\t", "\\", "\u00f6"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_every_value_the_fast_check_accepts_parses(value: str) -> None:
    if _is_common_name_addr(value):
        parse_name_addr(value, "From")
    match = common_name_addr(value)
    if match is not None:  # and the object built from the match is the one the full parse gives
        assert name_addr_from_common(match) == parse_name_addr(value, "From")


@pytest.mark.parametrize(("value", "display_name"), [
    ("sipp <sip:sipp@127.0.0.1:5061>;tag=7SIPpTag007", "sipp"),
    ('"Alice Smith" <sip:alice@example.com;transport=udp>;tag=x', "Alice Smith"),
    ("Bob  Jones\t<sip:bob@example.com>", "Bob  Jones"),
    ('"" <sip:x@example.com>', ""),
    ('"a<b>" <sip:x@example.com:5060>', "a<b>"),
])
def test_display_names_take_the_fast_path(value: str, display_name: str) -> None:
    match = common_name_addr(value)
    assert match is not None
    built = name_addr_from_common(match)
    assert built == parse_name_addr(value, "From") and built.display_name == display_name


def test_bare_addr_spec_takes_the_fast_path() -> None:
    match = common_name_addr("sip:sipp@127.0.0.1:5061")  # sipp's Contact
    assert match is not None
    assert name_addr_from_common(match) == parse_name_addr("sip:sipp@127.0.0.1:5061", "Contact")


@pytest.mark.parametrize("value", ['"esc\\"aped" <sip:x@example.com>', "J\u00f6rg <sip:x@example.com>",
                                   "a <sip:x@example.com:70000>", "a b", "sip:a@example.com;tag=1",
                                   "sip:a,b@example.com", "sip:a@example.com:70000"])
def test_other_display_names_are_left_to_the_full_parse(value: str) -> None:
    assert common_name_addr(value) is None


def test_to_tag_of_a_validated_to_without_tag_is_none_without_a_parse() -> None:
    message = parse_message(register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>"))
    assert message.to_tag is None
    assert "to" not in message._cache


@pytest.mark.parametrize("to", ["<sip:a@example.com>;TAG=Abc", "<sip:a@example.com>;tag=abc;x=1"])
def test_to_tag_of_a_validated_to_with_tag_is_read(to: str) -> None:
    message = parse_message(register("<sip:a@example.com>;tag=1", to, "<sip:a@10.0.0.1>"))
    assert message.to_tag == to.split("=")[1].split(";")[0]


@pytest.mark.parametrize(("from_", "to", "tags"), [
    ("sipp <sip:sipp@10.0.0.1:5061>;tag=7SIPpTag007", "s <sip:a@example.com>;TAG=Abc",
     ("7SIPpTag007", "Abc")),
    ('"A" <sip:a@example.com>;x=1;tag=f', "<sip:a@example.com>;tag=t;x", ("f", "t")),
    ("<sip:a@example.com>;tag=1", "<sip:a@example.com>;x=tag", ("1", None)),
])
def test_tags_are_read_without_building_the_addresses(from_: str, to: str,
                                                      tags: tuple[str, str | None]) -> None:
    first = parse_message(register(from_.replace("tag=", "tag=seen"), to, "<sip:a@10.0.0.1>"))
    assert first.from_tag is not None  # a From address seen before takes the parser's shortcut
    message = parse_message(register(from_, to, "<sip:a@10.0.0.1>"))
    assert (message.from_tag, message.to_tag) == tags
    assert "from" not in message._cache and "to" not in message._cache
    assert (message.from_addr.tag, message.to_addr.tag) == tags


def test_to_tag_follows_a_to_header_changed_after_the_parse() -> None:
    message = parse_message(register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>"))
    message.headers.set("To", "<sip:a@example.com>;tag=later")
    assert message.to_tag == "later"


def test_values_remembered_across_messages_are_not_shared_mutable_state() -> None:
    data = register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>")
    first = parse_message(data)
    assert isinstance(first, SipRequest) and isinstance(first.contacts, list)
    first.uri.params["x"] = "1"
    first.to_addr.params["tag"] = "mine"
    first.contacts[0].uri.host = "10.9.9.9"
    second = parse_message(data)
    assert isinstance(second, SipRequest) and isinstance(second.contacts, list)
    assert second.uri.params == {}
    assert second.to_tag is None
    assert second.contacts[0].uri.host == "10.0.0.1"
    assert (second.cseq.number, second.expires, second.max_forwards) == (1, None, None)


@pytest.mark.parametrize("from_", ["<sip:a@example.com>;tag=2", "<sip:a@example.com>;tag=3;x=1",
                                   "<sip:a@example.com>;TAG=4", "<sip:a@example.com:5060>;tag=5"])
def test_a_from_whose_address_was_seen_is_read_like_any_other(from_: str) -> None:
    parse_message(register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>"))
    message = parse_message(register(from_, "<sip:a@example.com>", "<sip:a@10.0.0.1>"))
    assert message.from_addr == parse_name_addr(from_, "From")


@pytest.mark.parametrize("tag", ["", "a b", "x\u00e9", "a,b"])
def test_a_from_with_a_bad_tag_on_a_seen_address_still_raises(tag: str) -> None:
    parse_message(register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>"))
    with pytest.raises(SipParseError):
        parse_message(register(f"<sip:a@example.com>;tag={tag}", "<sip:a@example.com>", "<sip:a@10.0.0.1>"))


def test_call_id_cseq_and_top_via_follow_every_kind_of_header_edit() -> None:
    message = parse_message(register("<sip:a@example.com>;tag=1", "<sip:a@example.com>", "<sip:a@10.0.0.1>"))
    assert (message.call_id, message.cseq.number, message.top_via.branch) == ("a@b", 1, "z9hG4bK1")
    message.headers.set("Call-ID", " c@d ")
    message.headers.set("CSeq", "2 REGISTER")
    assert (message.call_id, message.cseq.number) == ("c@d", 2)
    message.headers.prepend("Via", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK2")
    assert message.top_via.branch == "z9hG4bK2"
    assert message.headers.remove_first("Via") is not None
    assert message.top_via.branch == "z9hG4bK1"
    message.headers.remove("Call-ID")
    with pytest.raises(SipParseError):
        _ = message.call_id
    message.headers.add("Call-ID", "e@f")
    assert message.call_id == "e@f"
    copy = message.headers.copy()
    copy.set("Call-ID", "g@h")
    assert message.call_id == "e@f"  # a copy's edit leaves the original's values alone
    message.headers = copy
    assert message.call_id == "g@h"


def test_tags_read_once_follow_later_from_and_to_edits() -> None:
    message = parse_message(register("<sip:a@example.com>;tag=1", "<sip:a@example.com>;tag=2",
                                     "<sip:a@10.0.0.1>"))
    assert (message.from_tag, message.to_tag) == ("1", "2")
    message.headers.set("From", "<sip:a@example.com>;tag=3")
    message.headers.set("To", "<sip:a@example.com>")
    assert (message.from_tag, message.to_tag) == ("3", None)
    message.headers.set("To", "Bob <sip:b@example.com>;x=1;tag=4")
    assert message.to_tag == "4" and message.to_addr.tag == "4"


@pytest.mark.parametrize("value", [
    "<sip:a@example.com>;tag=x", "Bob <sip:a@example.com:5060;transport=udp>;x=1;tag=y",
    '"x;tag=y" <sip:a@example.com>;tag=z', "<sip:a@example.com>;TAG=1;tag=2", "<sip:a@example.com>;tag=a:b",
    "<sip:a@example.com;tag=u>", "<sip:a@example.com>;tag=1;tag", "<sip:a@example.com>;tag=2;x=3",
])
def test_a_tag_added_to_a_remembered_address_reads_as_the_full_parse(value: str) -> None:
    address = value.rpartition(";tag=")[0]
    if address:
        common_name_addr(address)  # remembered, as after an earlier call from the same phone
    parts = common_name_addr(value)
    assert parts is not None
    expected = parse_name_addr(value, "From")
    assert name_addr_from_common(parts) == expected and parts.tag == expected.tag


@pytest.mark.parametrize("value", ["sip:a@example.com;tag=x", "<sip:a@example.com>;tag=",
                                   "<sip:a@example.com>;tag=a b", "<sip:a@example.com:70000>;tag=x"])
def test_a_tag_after_a_remembered_address_that_cannot_take_it_is_not_the_common_form(value: str) -> None:
    common_name_addr(value.rpartition(";tag=")[0])
    assert common_name_addr(value) is None
