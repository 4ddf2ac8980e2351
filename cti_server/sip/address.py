"""name-addr and addr-spec with header parameters: From, To, Contact, Route... (RFC 3261 section 20.10, 25.1).

A URI that is not enclosed in ``<>`` (addr-spec form) ends at the first ';': everything after it is a
header parameter (RFC 3261 section 20), and such a URI may not contain ',', '?' or ';' of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from cti_server.sip.errors import SipParseError
from cti_server.sip.headers import split_header_values
from cti_server.sip.memo import remember
from cti_server.sip.uri import FAST_URI_PATTERN, MAX_URI_LENGTH, SipUri, parse_uri, split_simple_params

TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN_RE = re.compile(rf"[{TOKEN_CHARS}]+")
_QUOTED_DISPLAY_RE = re.compile(r'[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*<')
# Unquoted display names: tokens, leniently also with non-ASCII letters (phones send "Jörg <sip:..>").
_DISPLAY_CHARS = TOKEN_CHARS + "\u0080-\U0010ffff"
_TOKEN_DISPLAY_RE = re.compile(rf"[ \t]*((?:[{_DISPLAY_CHARS}]+)(?:[ \t]+[{_DISPLAY_CHARS}]+)*)?[ \t]*<")
_QUOTED_PAIR_RE = re.compile(r"\\(.)")
QUOTED_STRING = r'"(?:[^"\\]|\\.)*"'
_PARAM_RE = re.compile(
    rf"[ \t]*;[ \t]*([{TOKEN_CHARS}]+)"
    rf"(?:[ \t]*=[ \t]*({QUOTED_STRING}|\[[0-9A-Fa-f:.]+\]|[{TOKEN_CHARS}:]+))?[ \t]*"
)
SIMPLE_PARAMS_RE = re.compile(rf"(?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}:]+)?)+")
"""One or more ``;name`` / ``;name=value``: token names, values of token characters and colons."""
_NEEDS_QUOTING_RE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
_QUOTE_RE = re.compile(r'(["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f])')


# ``<sip:user@host:port;uri-params>;tag=x``: the form nearly every phone and trunk sends in From, To and
# Contact. A value matching it (with the port checked, see ``common_name_addr``) is exactly one that
# parse_name_addr accepts (URI through the fast URI path, parameters through the simple-parameter
# path), and ``name_addr_from_common`` builds the same NameAddr from its parts. Groups 1-5 are those of
# FAST_URI_PATTERN, group 6 the header parameters.
_COMMON_NAME_ADDR_RE = re.compile(
    rf"<{FAST_URI_PATTERN}>((?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}:]+)?)*)")


# A display name before the common form (``sipp <sip:...>``, ``"Alice Smith" <sip:...>``): ASCII tokens
# separated by blanks, or a quoted string without escapes; what parse_name_addr takes as the display
# name is the text before the blanks before "<" (quotes removed).
_COMMON_DISPLAY_RE = re.compile(rf'(?:"[^"\\]*"|[{TOKEN_CHARS}]+(?:[ \t]+[{TOKEN_CHARS}]+)*)[ \t]*(?=<)')
# A bare addr-spec (sipp's ``Contact: sip:sipp@host:port``), the same groups with no parameters.
_COMMON_ADDR_SPEC_RE = re.compile(rf"{FAST_URI_PATTERN}()")


class CommonNameAddr(NamedTuple):
    """The parts of a From, To or Contact value in the common form (see ``common_name_addr``), as
    validated text: what ``parse_name_addr`` would build a NameAddr from, without building it."""

    display_name: str | None
    scheme: str
    user: str | None
    host: str
    port: int | None
    uri_params: str
    """``;name=value...`` of the URI, or ""."""
    params: str
    """``;name=value...`` after the URI (header parameters), or "", where a last ``;tag=`` parameter
    may be left out: ``tag`` has its value."""
    tag: str | None
    """The ``tag`` header parameter (the last one's value, as the parameter dict keeps it), or None."""


# Results for values seen before (an address a phone repeats, a To without tag...). Only immutable
# results are kept; emptied when it reaches its limit (sip/memo.py), so odd traffic cannot grow it.
_commons: dict[str, CommonNameAddr] = {}
_new_tuple = tuple.__new__


def common_name_addr(value: str) -> CommonNameAddr | None:
    """The parts of ``value`` when it has the common ``[display-name] <sip:...>;params`` form, or is a
    bare ``sip:user@host:port`` (so it is valid), else None.

    ``<common form>;tag=token`` (a From or To whose address repeats with a new tag per call) is the
    address's remembered result plus the tag: appending a token-valued parameter keeps a common form
    common, and the last ``;tag=`` can only start the last parameter when what follows it is a token.
    """
    known = _commons.get(value)
    if known is not None:
        return known
    if len(value) > MAX_URI_LENGTH:
        return None
    address, separator, tag = value.rpartition(";tag=")
    if separator and ((tag.isalnum() and tag.isascii()) or _TOKEN_RE.fullmatch(tag) is not None):
        base = _commons.get(address)
        if base is None:
            base = _match_common(address)
            if base is None:
                return None
            remember(_commons, address, base)
        if base.display_name is None and address[:1] != "<":
            return None  # a bare addr-spec: its ";" would start header parameters, which needs <>
        return _new_tuple(CommonNameAddr, (*base[:7], tag))  # the address's parts, this tag
    common = _match_common(value)
    if common is not None:
        remember(_commons, value, common)
    return common


def _match_common(value: str) -> CommonNameAddr | None:
    if value[:1] == "<":
        match = _COMMON_NAME_ADDR_RE.fullmatch(value)
    else:
        display = _COMMON_DISPLAY_RE.match(value)
        if display is not None:
            match = _COMMON_NAME_ADDR_RE.fullmatch(value, display.end())
        elif ";" in value or "," in value:  # an addr-spec's ";" starts header parameters, "," needs <>
            return None
        else:
            match = _COMMON_ADDR_SPEC_RE.fullmatch(value)
    if match is None:
        return None
    scheme, user, host, port_text, uri_params, params = match.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return None
    start = match.start()
    display_name = None
    if start:
        display_name = value[:start].rstrip(" \t")
        if display_name[:1] == '"':
            display_name = display_name[1:-1]
    tag = split_simple_params(params).get("tag") if params else None
    return CommonNameAddr(display_name, scheme, user, host, port, uri_params or "", params or "", tag)


def name_addr_from_common(common: CommonNameAddr) -> NameAddr:
    """The NameAddr of a ``common_name_addr`` result: what parse_name_addr gives for the same text."""
    uri_params = common.uri_params
    params_text = common.params
    uri = SipUri(common.scheme, common.user, None, common.host, common.port,
                 split_simple_params(uri_params) if uri_params else {}, {})
    params = split_simple_params(params_text) if params_text else {}
    tag = common.tag
    if tag is not None:
        params["tag"] = tag  # the last tag wins, in the place of the first (as in the full parse)
    return NameAddr(common.display_name, uri, params)


def parse_header_params(text: str, what: str) -> dict[str, str | None]:
    """``*( SEMI generic-param )`` (RFC 3261 section 25.1): names lower-cased, values kept as written.

    Quoted-string values keep their quotes so that they serialize back unchanged.
    """
    if SIMPLE_PARAMS_RE.fullmatch(text) is not None:  # the common case: one match, then plain splits
        return split_simple_params(text)
    params: dict[str, str | None] = {}
    position = 0
    length = len(text)
    while position < length:
        match = _PARAM_RE.match(text, position)
        if match is None:
            if not text[position:].strip(" \t"):
                break  # trailing blanks
            raise SipParseError(f"invalid parameter in {what}: {text[position:position + 40]!r}")
        params[match.group(1).lower()] = match.group(2)
        position = match.end()
    return params


def format_params(params: dict[str, str | None]) -> str:
    """``;name=value;flag`` for header or Via parameters."""
    if not params:
        return ""
    return "".join([f";{name}" if value is None else f";{name}={value}" for name, value in params.items()])


def quote_string(text: str) -> str:
    """A quoted-string (RFC 3261 section 25.1) holding ``text``: '"', '\\' and controls as quoted-pairs."""
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")  # no quoted-pair can carry CR or LF
    if _NEEDS_QUOTING_RE.search(text):
        text = _QUOTE_RE.sub(r"\\\1", text)
    return f'"{text}"'


def unquote_string(text: str) -> str:
    """The content of a quoted-string value (with its quotes) with quoted-pairs decoded; others unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        return _QUOTED_PAIR_RE.sub(r"\1", inner) if "\\" in inner else inner
    return text


@dataclass(slots=True)
class NameAddr:
    """A name-addr or addr-spec with its header parameters (RFC 3261 section 20.10, 20.20, 20.39).

    ``display_name`` is the decoded display name (quotes and escapes removed) or None; ``params`` are
    the header parameters after the URI (``tag``, ``expires``, ``q``...), names lower-case.
    """

    display_name: str | None
    uri: SipUri
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 section 19.3) or None."""
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f"{quote_string(self.display_name)} " if self.display_name else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str, what: str = "address") -> NameAddr:
    """Parse ``( name-addr / addr-spec ) *( SEMI generic-param )`` (RFC 3261 section 25.1).

    Raises SipParseError naming ``what`` (the header) for anything the grammar does not allow.
    """
    display_name: str | None = None
    if text[:1] == "<":
        end = text.find(">", 1)
        if end < 0:
            raise SipParseError(f"missing '>' in {what}")
        uri = _parse_address_uri(text[1:end], what)
        params = parse_header_params(text[end + 1:], what) if end + 1 < len(text) else {}
        return NameAddr(None, uri, params)
    if "<" in text:
        quoted = _QUOTED_DISPLAY_RE.match(text)
        if quoted is not None:
            inner = quoted.group(1)
            display_name = _QUOTED_PAIR_RE.sub(r"\1", inner) if "\\" in inner else inner
            start = quoted.end()
        else:
            tokens = _TOKEN_DISPLAY_RE.match(text)
            if tokens is None:
                if text.lstrip(" \t").startswith('"'):
                    raise SipParseError(f"unterminated quoted display name in {what}")
                raise SipParseError(f"invalid display name in {what}: {text[:64]!r}")
            display_name = tokens.group(1)
            start = tokens.end()
        end = text.find(">", start)
        if end < 0:
            raise SipParseError(f"missing '>' in {what}")
        uri = _parse_address_uri(text[start:end], what)
        params = parse_header_params(text[end + 1:], what) if end + 1 < len(text) else {}
        return NameAddr(display_name, uri, params)
    stripped = text.strip(" \t")
    if stripped.startswith('"'):
        raise SipParseError(f"display name without <URI> in {what}: {text[:64]!r}")
    uri_text, semicolon, param_text = stripped.partition(";")
    uri_text = uri_text.rstrip(" \t")
    if "?" in uri_text or "," in uri_text:
        raise SipParseError(f"URI with '?' or ',' must be enclosed in <> in {what}")
    uri = _parse_address_uri(uri_text, what)
    params = parse_header_params(";" + param_text, what) if semicolon else {}
    return NameAddr(None, uri, params)


def _parse_address_uri(text: str, what: str) -> SipUri:
    try:
        return parse_uri(text, any_scheme=True)
    except SipParseError as error:
        raise SipParseError(f"{what}: {error.reason}") from None


def parse_contact_list(text: str, what: str = "Contact") -> list[NameAddr] | Literal["*"]:
    """A Contact header value: ``"*"`` or a comma-separated list of addresses (RFC 3261 section 20.10)."""
    if text.strip(" \t") == "*":
        return "*"
    values = split_header_values(text)
    if not values:
        raise SipParseError(f"empty {what}")
    return [parse_name_addr(value, what) for value in values]
