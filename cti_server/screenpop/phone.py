"""Phone numbers to E.164 (ITU-T E.164, RFC 3966 ``tel:`` URIs), the one form the CRM store indexes.

A caller arrives as whatever the trunk sent: ``+14155550100``, ``sip:0207946001@gw;user=phone``,
``tel:+44-20-7946-0018``, ``(415) 555-0100``. ``normalize_number`` reads national forms with the call
center's default region through the phonenumbers library and returns ``+<country code><number>``.

Numbers already written in E.164 take a fast path that checks the country code and the possible lengths
from phonenumbers' metadata without the full parser, and so do ten-digit North American numbers in a
NANP region: bulk imports normalize tens of thousands of numbers a second and the parser alone manages
about 30,000 on an idle core.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_VISUAL_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")
_MAX_INPUT = 64
_NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])


class PhoneNumberError(ValueError):
    """A phone number could not be read; ``reason`` says why in words an integrator understands."""

    def __init__(self, number: str, reason: str) -> None:
        super().__init__(f"{number!r}: {reason}")
        self.number = number
        self.reason = reason


def number_from_caller(caller: str) -> str:
    """The number part of a caller id: strips ``sip:``/``sips:``/``tel:``, the host and URI parameters.

    RFC 3261 section 19.1.1 puts the telephone number in the user part of a SIP URI; RFC 3966 section 3
    lets a ``tel:`` URI carry visual separators and ``;`` parameters after it.
    """
    text = caller.strip()
    if "<" not in text and ":" not in text and "@" not in text and ";" not in text:
        return text  # a bare number (most imported ones): nothing below would change it
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    lowered = text.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.split("@", 1)[0]
    return text.split(";", 1)[0]


@functools.lru_cache(maxsize=512)
def _possible_national_lengths(country_code: int) -> frozenset[int]:
    """Lengths a national number of ``country_code`` may have, from phonenumbers' metadata."""
    lengths: set[int] = set()
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        if region == "001":
            metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(country_code)
        else:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.general_desc is not None:
            lengths.update(metadata.general_desc.possible_length or ())
    return frozenset(lengths)


@functools.lru_cache(maxsize=512)
def _national_prefix_pattern(country_code: int) -> re.Pattern[str] | None:
    """The national prefixes the parser strips after ``country_code`` (all its regions' metadata)."""
    patterns: list[str] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        if region == "001":
            metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(country_code)
        else:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.national_prefix_for_parsing:
            if metadata.national_prefix_for_parsing not in patterns:
                patterns.append(metadata.national_prefix_for_parsing)
    # One pattern for the 25 regions of +1: a match tried 25 times cost more than the parse it saves.
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


@functools.lru_cache(maxsize=2048)
def _country_code_facts(prefix: str) -> tuple[frozenset[int], re.Pattern[str] | None] | None:
    """(possible national lengths, national prefixes) when ``prefix`` (1-3 digits) is a country code."""
    code = int(prefix)
    if code not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        return None
    return _possible_national_lengths(code), _national_prefix_pattern(code)


def _fast_e164(text: str) -> str | None:
    """``text`` itself when it is already a possible E.164 number, else None (take the slow path)."""
    return _possible_e164(text) if _E164.fullmatch(text) else None


def _possible_e164(text: str) -> str | None:
    """``_fast_e164`` of a ``text`` that matches ``_E164``."""
    # Country codes are prefix-free (ITU-T E.164): at most one of the 1-3 digit prefixes is one.
    for end in (2, 3, 4):
        facts = _country_code_facts(text[1:end])
        if facts is not None:
            lengths, national_prefix = facts
            national = text[end:]
            # The parser strips a national prefix even after the country code (+62 0806...,
            # +86 11000...): any number starting with one takes the slow path.
            if len(national) not in lengths or (national_prefix and national_prefix.match(national)):
                return None
            return text
    return None


def _fast_nanp(digits: str, region: str) -> str | None:
    """A North American national number (``4155550100``, ``14155550100``) read in a NANP region.

    ITU-T E.164 country code 1: ten digits, the area code and exchange starting 2-9 are what the
    parser would accept as possible; anything else takes the slow path.
    """
    if region.upper() not in _NANP_REGIONS or not digits.isdigit():
        return None
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) == 10 and digits[0] in "23456789" and digits[3] in "23456789":
        return "+1" + digits
    return None


def normalize_number(raw: str, default_region: str) -> str:
    """``raw`` in E.164 (``+14155550100``); national forms are read in ``default_region`` (ISO 3166).

    Raises PhoneNumberError when the text is not a phone number or has an impossible length for its
    country. Validity of the number range is not required: a new range must not stop a screen pop.
    Answers are remembered (up to ``NORMALIZED_CACHE_SIZE`` of them; an import repeats switchboard
    numbers, a call center sees the same callers again).
    """
    key = (raw, default_region)
    known = _normalized.get(key)
    if known is not None:
        return known
    if raw[:1] == "+" and _E164.fullmatch(raw):
        # Already E.164 as given (most imported and trunk numbers): nothing to strip or compact.
        number = _possible_e164(raw) or _normalize(raw, default_region)
    else:
        number = _normalize(raw, default_region)
    if len(_normalized) >= NORMALIZED_CACHE_SIZE:
        _normalized.clear()
    _normalized[key] = number
    return number


NORMALIZED_CACHE_SIZE = 65536
"""Normalizations remembered by ``normalize_number`` (the whole cache is dropped when it is full)."""
_normalized: dict[tuple[str, str], str] = {}


def _normalize(raw: str, default_region: str) -> str:
    text = number_from_caller(raw)
    if not text:
        raise PhoneNumberError(raw, "empty number")
    if len(text) > _MAX_INPUT:
        raise PhoneNumberError(raw[:_MAX_INPUT], f"longer than {_MAX_INPUT} characters")
    compact = text.translate(_VISUAL_SEPARATORS)
    fast = _fast_e164(compact) or _fast_nanp(compact, default_region)
    if fast is not None:
        return fast
    # An international prefix written as 00 is common on trunks; phonenumbers handles it per region.
    try:
        parsed = phonenumbers.parse(text, default_region.upper())
    except NumberParseException as exc:
        raise PhoneNumberError(raw, _parse_reason(exc)) from None
    if not phonenumbers.is_possible_number(parsed):
        raise PhoneNumberError(raw, "not a possible number for its country (wrong length)")
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def try_normalize(raw: str, default_region: str) -> str | None:
    """``normalize_number`` that answers None instead of raising (anonymous or garbled caller ids)."""
    try:
        return normalize_number(raw, default_region)
    except PhoneNumberError:
        return None


def is_region(code: str) -> bool:
    """True when ``code`` is a region phonenumbers knows (used to validate a call center's region)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def _parse_reason(exc: NumberParseException) -> str:
    reasons = {
        NumberParseException.INVALID_COUNTRY_CODE: "no country code and no usable default region",
        NumberParseException.NOT_A_NUMBER: "not a phone number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "not a phone number")
