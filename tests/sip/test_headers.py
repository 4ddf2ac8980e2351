"""Headers: case-insensitive multi-map, compact forms, list splitting (RFC 3261 section 7.3)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cti_server.sip.headers import COMPACT_FORMS, Headers, canonical_name, split_header_values


def test_compact_and_case_insensitive_names_map_to_long_names() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("CALL-id", "x@y"), ("l", "0"), ("cseq", "1 INVITE")])
    assert headers.items() == [("Via", "SIP/2.0/UDP a"), ("Call-ID", "x@y"), ("Content-Length", "0"),
                               ("CSeq", "1 INVITE")]
    assert headers.get("i") == "x@y"
    assert headers.get("Call-Id") == "x@y"
    assert "VIA" in headers and "v" in headers and "Route" not in headers


def test_every_compact_form_is_canonical() -> None:
    for short, long in COMPACT_FORMS.items():
        assert canonical_name(short) == long
        assert canonical_name(short.upper()) == long


def test_unknown_header_keeps_its_spelling() -> None:
    headers = Headers([("X-My-Header", "1")])
    assert headers.items() == [("X-My-Header", "1")]
    assert headers.get("x-my-header") == "1"


def test_get_all_splits_list_headers_outside_quotes_and_angles() -> None:
    headers = Headers()
    headers.add("Contact", '"Doe, John" <sip:j@a.com;x=1,2>, <sip:b@c>;q=0.5')
    headers.add("m", "sip:c@d")
    assert headers.get_all("Contact") == ['"Doe, John" <sip:j@a.com;x=1,2>', "<sip:b@c>;q=0.5", "sip:c@d"]
    assert headers.get("Contact") == '"Doe, John" <sip:j@a.com;x=1,2>'


def test_authorization_and_date_are_never_split() -> None:
    value = 'Digest username="a", realm="b", nonce="c", uri="sip:x", response="d"'
    headers = Headers([("Authorization", value), ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
                       ("X-Unknown", "a, b")])
    assert headers.get_all("authorization") == [value]
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.get_all("X-Unknown") == ["a, b"]


def test_split_drops_empty_elements_and_handles_escaped_quotes() -> None:
    assert split_header_values("a,, b ,") == ["a", "b"]
    assert split_header_values(r'"x\", y" <sip:a>, b') == [r'"x\", y" <sip:a>', "b"]
    assert split_header_values("   ") == []


def test_set_replaces_all_in_place_prepend_remove_copy() -> None:
    headers = Headers([("Via", "1"), ("To", "t"), ("Via", "2")])
    headers.set("via", "3")
    assert headers.items() == [("Via", "3"), ("To", "t")]
    headers.prepend("Via", "0")
    assert headers.get_all("Via") == ["0", "3"]
    copy = headers.copy()
    headers.remove("v")
    assert "Via" not in headers
    assert copy.get_all("Via") == ["0", "3"]
    assert len(copy) == 3 and list(copy) == ["Via", "Via", "To"]
    headers.set("Route", "<sip:r>")
    assert headers.items()[-1] == ("Route", "<sip:r>")


def test_remove_first_pops_one_list_value() -> None:
    headers = Headers([("Route", "<sip:a;lr>, <sip:b;lr>"), ("Route", "<sip:c;lr>")])
    assert headers.remove_first("Route") == "<sip:a;lr>"
    assert headers.get_all("Route") == ["<sip:b;lr>", "<sip:c;lr>"]
    assert headers.remove_first("Route") == "<sip:b;lr>"
    assert headers.remove_first("Route") == "<sip:c;lr>"
    assert headers.remove_first("Route") is None


def test_equality_ignores_name_spelling_but_not_order() -> None:
    assert Headers([("i", "x")]) == Headers([("Call-ID", "x")])
    assert Headers([("To", "a"), ("From", "b")]) != Headers([("From", "b"), ("To", "a")])


_NAMES = st.sampled_from(["Via", "v", "To", "Contact", "m", "Route", "X-Custom", "x-custom"])
_VALUES = st.sampled_from(["a", "b, c", " ", "d"])
_EDITS = st.lists(st.tuples(st.sampled_from(["add", "set", "prepend", "remove", "remove_first", "get"]),
                            _NAMES, _VALUES), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_EDITS)
def test_lookups_after_any_edits_match_a_fresh_copy(edits: list[tuple[str, str, str]]) -> None:
    """The lookup index stays in step with the lines whatever edits come between lookups."""
    headers = Headers([("Via", "z"), ("To", "t")])
    for operation, name, value in edits:
        if operation in ("add", "set", "prepend"):
            getattr(headers, operation)(name, value)
        elif operation == "get":
            headers.get(name)
        else:
            getattr(headers, operation)(name)
        fresh = Headers(headers.items())
        for probe in ("Via", "To", "Contact", "Route", "X-Custom"):
            assert headers.get(probe) == fresh.get(probe)
            assert headers.get_all(probe) == fresh.get_all(probe)
            assert headers.get_lines(probe) == fresh.get_lines(probe)
            assert headers.count(probe) == fresh.count(probe)
            assert (probe in headers) == (probe in fresh)
