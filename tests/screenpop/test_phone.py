"""Caller numbers to E.164: SIP/tel URIs, national forms in the call center's region, the fast path."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti_server.screenpop.phone import (
    PhoneNumberError,
    is_region,
    normalize_number,
    number_from_caller,
    try_normalize,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+14155550100", "US", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.0100", "US", "+14155550100"),
        ("sip:+14155550100@trunk.example.com;user=phone", "GB", "+14155550100"),
        ("<sip:02079460018@10.0.0.1:5060>", "GB", "+442079460018"),
        ("tel:+44-20-7946-0018;phone-context=example.com", "US", "+442079460018"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("00442079460018", "DE", "+442079460018"),
        ("011 44 20 7946 0018", "US", "+442079460018"),
        ("+49 30 901820", "US", "+4930901820"),
        # the parser strips China's national prefix 11xxx even after +86: the fast path must not keep it
        ("+86110000000000", "US", "+860000000"),
    ],
)
def test_numbers_are_normalized_to_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_number(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty number"),
        ("anonymous", "not a phone number"),
        ("+1415555010", "wrong length"),
        ("1" * 80, "longer than"),
    ],
)
def test_unreadable_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(PhoneNumberError) as info:
        normalize_number(raw, "US")
    assert reason in info.value.reason
    assert try_normalize(raw, "US") is None


def test_caller_uri_gives_its_user_part() -> None:
    assert number_from_caller("sips:+15550100@h;transport=tls") == "+15550100"
    assert number_from_caller("  4155550100 ") == "4155550100"


def test_regions_are_checked_against_phonenumbers() -> None:
    assert is_region("gb") and is_region("US")
    assert not is_region("XX")


@given(
    code=st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
    national=st.integers(min_value=10**3, max_value=10**14),
)
def test_fast_path_agrees_with_the_parser(code: int, national: int) -> None:
    raw = f"+{code}{national}"
    try:
        parsed = phonenumbers.parse(raw, None)
        expected = (
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_possible_number(parsed)
            else None
        )
    except phonenumbers.NumberParseException:
        expected = None
    assert try_normalize(raw, "US") == expected


@given(
    region=st.sampled_from(["US", "CA", "JM"]),
    digits=st.text(alphabet="0123456789", min_size=9, max_size=12),
    style=st.sampled_from(["{d}", "({a}) {b}-{c}", "1-{d}"]),
)
def test_nanp_fast_path_agrees_with_the_parser(region: str, digits: str, style: str) -> None:
    raw = style.format(d=digits, a=digits[:3], b=digits[3:6], c=digits[6:])
    try:
        parsed = phonenumbers.parse(raw, region)
        expected = (
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_possible_number(parsed)
            else None
        )
    except phonenumbers.NumberParseException:
        expected = None
    assert try_normalize(raw, region) == expected


@given(
    user=st.text(alphabet="+0123456789 -.()abc", max_size=20),
    scheme=st.sampled_from(["", "sip:", "SIPS:", "tel:"]),
    host=st.sampled_from(["", "@gw.example.com"]),
    params=st.sampled_from(["", ";user=phone"]),
    angle=st.booleans(),
    space=st.sampled_from(["", " ", "\t"]),
)
def test_caller_ids_with_and_without_uri_parts_give_the_same_number(
    user: str, scheme: str, host: str, params: str, angle: bool, space: str
) -> None:
    """A bare number and the same number in a SIP or tel URI read alike (the bare form skips the
    URI handling)."""
    uri = f"{scheme}{user}{host}{params}"
    if angle and scheme:
        uri = f"<{uri}>"
    bare = number_from_caller(f"{space}{user}{space}")
    assert bare == user.strip()
    if scheme and user.strip() == user and user:
        assert number_from_caller(f"{space}{uri}{space}") == bare
