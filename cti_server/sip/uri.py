"""SIP, SIPS and tel URIs (RFC 3261 section 19.1 and 25.1, RFC 3966, IPv6 references per RFC 5118).

``user``, ``password``, parameter values and header values are kept exactly as they were written (escaped
form, RFC 3261 section 19.1.2) so that a URI serializes back byte for byte; :func:`unescape` gives the
decoded text. ``host`` is the bare host: an IPv6 address has no brackets (``str()`` adds them back).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from cti_server.sip.errors import SipParseError

MAX_URI_LENGTH = 8192
"""Longest URI text accepted; longer ones raise SipParseError (a resource limit, not an RFC rule)."""

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+")
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*")
_PARAMCHARS_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})+")
_HEADERCHARS_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})*")
_HOSTNAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
_HOSTNAME_RE = re.compile(_HOSTNAME)
_IPV4_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_IPV4_STRICT = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_IPV4_STRICT_RE = re.compile(_IPV4_STRICT)
# IPv4 first: sre tries a host name against "127.0.0.1" label by label before failing on the last one.
# Either order accepts the same text with the same groups, as a host ends at ':', ';', '>' or the end.
HOST_PATTERN: Final = rf"(?:{_IPV4_STRICT}|{_HOSTNAME})"
"""A host name or IPv4 address that ``parse_host`` accepts as it is (IPv6 references not included)."""
_PORT_RE = re.compile(r"[0-9]{1,5}")
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()pPwW]+")
_OPAQUE_RE = re.compile(r"[A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]#]*")

SIP_SCHEMES = frozenset({"sip", "sips", "tel"})

# The common shape (lower-case scheme, plain user, host name or IPv4, port, simple params) in one match;
# anything else (passwords, escapes, IPv6, URI headers, ';' or '?' in the user) takes the full path.
FAST_URI_PATTERN: Final = (
    rf"(sips?):(?:([{_UNRESERVED}&=+$,/]+)@)?({HOST_PATTERN})(?::([0-9]{{1,5}}))?"
    rf"((?:;[{_UNRESERVED}\[\]/:&+$]+(?:=[{_UNRESERVED}\[\]/:&+$]+)?)*)"
)
"""The common SIP URI (no password, escapes, headers or IPv6) whose every part is valid; groups: scheme,
user, host, port (digits, may exceed 65535), parameters."""
_FAST_URI_RE = re.compile(FAST_URI_PATTERN)


def unescape(text: str) -> str:
    """Decode %HH escapes (RFC 3261 section 19.1.2); undecodable octets become U+FFFD."""
    return unquote(text, errors="replace") if "%" in text else text


def parse_host(text: str, what: str = "host") -> str:
    """Validate ``host`` of RFC 3261 section 25.1 (hostname, IPv4address or IPv6reference).

    Returns the bare host (IPv6 without brackets); raises SipParseError naming ``what``.
    """
    if not text:
        raise SipParseError(f"empty {what}")
    if text[0] == "[":
        if text[-1] != "]":
            raise SipParseError(f"unterminated IPv6 reference in {what}: {text[:64]!r}")
        address = text[1:-1]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            # RFC 5118 4.10: RFC 3261's ABNF allows an extra colon before an embedded IPv4 address
            # ("2001:db8:::192.0.2.1"); tolerate it and keep the corrected form.
            corrected = address.replace(":::", "::", 1)
            try:
                ipaddress.IPv6Address(corrected)
            except ValueError:
                raise SipParseError(f"invalid IPv6 address in {what}: {text[:64]!r}") from None
            return corrected
        return address
    if _HOSTNAME_RE.fullmatch(text) is not None or _IPV4_STRICT_RE.fullmatch(text) is not None:
        return text
    if _IPV4_RE.fullmatch(text) is not None:
        raise SipParseError(f"invalid IPv4 address in {what}: {text[:64]!r}")
    if ":" in text:
        raise SipParseError(f"IPv6 address in {what} must be enclosed in []: {text[:64]!r}")
    raise SipParseError(f"invalid {what}: {text[:64]!r}")


def format_host(host: str) -> str:
    """The host as written in a URI or Via: IPv6 addresses get their brackets back."""
    return f"[{host}]" if ":" in host else host


def parse_port(text: str, what: str = "port") -> int:
    """A port number 0..65535 (RFC 3261 section 25.1 ``port = 1*DIGIT``)."""
    if _PORT_RE.fullmatch(text) is None:
        raise SipParseError(f"invalid {what}: {text[:32]!r}")
    port = int(text)
    if port > 65535:
        raise SipParseError(f"{what} out of range: {port}")
    return port


def split_hostport(text: str, what: str = "host") -> tuple[str, int | None]:
    """Split and validate ``hostport`` (RFC 3261 section 25.1)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {what}: {text[:64]!r}")
        host_text, rest = text[: end + 1], text[end + 1:]
        if not rest:
            return parse_host(host_text, what), None
        if rest[0] != ":":
            raise SipParseError(f"invalid {what}: {text[:64]!r}")
        return parse_host(host_text, what), parse_port(rest[1:], f"{what} port")
    host_text, colon, port_text = text.partition(":")
    if colon:
        if ":" in port_text:
            raise SipParseError(f"IPv6 address in {what} must be enclosed in []: {text[:64]!r}")
        return parse_host(host_text, what), parse_port(port_text, f"{what} port")
    return parse_host(host_text, what), None


@dataclass(slots=True)
class SipUri:
    """A sip:, sips: or tel: URI (RFC 3261 section 19.1, RFC 3966).

    For tel: URIs ``user`` holds the telephone number and ``host`` is "". For an absolute URI of another
    scheme (accepted only where RFC 3261 allows any absoluteURI, e.g. in Contact or To with
    ``any_scheme=True``) ``opaque`` holds everything after the colon and the other fields are empty.
    Parameter names are stored lower-case (they compare case-insensitively); values are kept escaped.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    @property
    def transport(self) -> str | None:
        """The ``transport`` URI parameter, lower-case, or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def host_port(self) -> str:
        """``host[:port]`` as written in a URI."""
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def is_secure(self) -> bool:
        """True for sips: URIs (RFC 3261 section 19.1)."""
        return self.scheme == "sips"

    def __str__(self) -> str:
        scheme = self.scheme
        if self.opaque is None and self.password is None and not self.headers and scheme != "tel":
            # the usual sip:user@host:port;params, written without the general path's list of parts
            host = self.host
            if ":" in host:
                host = f"[{host}]"
            text = f"{scheme}:{host}" if self.user is None else f"{scheme}:{self.user}@{host}"
            if self.port is not None:
                text = f"{text}:{self.port}"
            params = self.params
            if params:
                text += "".join([f";{name}" if value is None else f";{name}={value}"
                                 for name, value in params.items()])
            return text
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts.append(":" + self.password)
                parts.append("@")
            parts.append(self.host_port)
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            parts.append("?" + "&".join(f"{name}={value}" for name, value in self.headers.items()))
        return "".join(parts)


def copy_uri(uri: SipUri) -> SipUri:
    """An independent copy of ``uri`` (its own params and headers dicts), for every parsed Request-URI,
    dialog and in-dialog request: the constructor of the slotted class, not ``dataclasses.replace``
    (which goes over ``fields()``, ~4x slower)."""
    return SipUri(uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params.copy(),
                  uri.headers.copy(), uri.opaque)


def _parse_params(text: str, uri_text: str) -> dict[str, str | None]:
    """``*( ";" uri-parameter )`` with the leading ';' already removed."""
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, equals, value = item.partition("=")
        if _PARAMCHARS_RE.fullmatch(name) is None:
            raise SipParseError(f"invalid URI parameter {item[:32]!r} in {uri_text[:64]!r}")
        if equals:
            if _PARAMCHARS_RE.fullmatch(value) is None:
                raise SipParseError(f"invalid URI parameter value {item[:32]!r} in {uri_text[:64]!r}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def _parse_headers(text: str, uri_text: str) -> dict[str, str]:
    """``"?" header *( "&" header )`` with the '?' already removed."""
    headers: dict[str, str] = {}
    for item in text.split("&"):
        name, equals, value = item.partition("=")
        if not equals or not name or _HEADERCHARS_RE.fullmatch(name) is None \
                or _HEADERCHARS_RE.fullmatch(value) is None:
            raise SipParseError(f"invalid URI header {item[:32]!r} in {uri_text[:64]!r}")
        headers[name] = value
    return headers


def split_simple_params(text: str) -> dict[str, str | None]:
    """``;name=value;flag...`` already validated by a pattern: names lower-cased, values as written."""
    params: dict[str, str | None] = {}
    for item in text[1:].split(";"):
        name, equals, value = item.partition("=")
        params[name.lower()] = value if equals else None
    return params


def _common_uri(match: re.Match[str]) -> SipUri:
    """A SipUri from a match of _FAST_URI_RE (whose parts, host included, are already validated)."""
    scheme, user, host, port_text, param_text = match.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise SipParseError(f"URI host port out of range: {port}")
    params = split_simple_params(param_text) if param_text else {}
    return SipUri(scheme, user, None, host, port, params, {})


def parse_uri(text: str, *, any_scheme: bool = False) -> SipUri:
    """Parse a SIP-URI / SIPS-URI (RFC 3261 section 19.1.1) or a tel URI (RFC 3966).

    With ``any_scheme`` other absolute URIs are accepted as opaque (RFC 3261 section 25.1 absoluteURI);
    otherwise an unknown scheme raises SipParseError with status 416 (Unsupported URI Scheme).
    """
    if len(text) > MAX_URI_LENGTH:
        raise SipParseError("URI too long")
    fast = _FAST_URI_RE.fullmatch(text)
    if fast is not None:
        return _common_uri(fast)
    match = _SCHEME_RE.match(text)
    if match is None:
        raise SipParseError(f"invalid URI (no scheme): {text[:64]!r}")
    scheme = match.group(1).lower()
    rest = text[match.end():]
    if scheme not in SIP_SCHEMES:
        if any_scheme and rest and _OPAQUE_RE.fullmatch(rest) is not None:
            return SipUri(scheme, None, None, "", None, {}, {}, opaque=rest)
        raise SipParseError(f"unsupported URI scheme {scheme!r}", status=416)
    if scheme == "tel":
        number, semicolon, param_text = rest.partition(";")
        if _TEL_NUMBER_RE.fullmatch(number) is None:
            raise SipParseError(f"invalid telephone number in {text[:64]!r}")
        params = _parse_params(param_text, text) if semicolon else {}
        return SipUri("tel", number, None, "", None, params, {})

    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        user_text, colon, password_text = userinfo.partition(":")
        if _USER_RE.fullmatch(user_text) is None:
            raise SipParseError(f"invalid user part in URI {text[:64]!r}")
        if colon:
            if _PASSWORD_RE.fullmatch(password_text) is None:
                raise SipParseError(f"invalid password in URI {text[:64]!r}")
            password = password_text
        user = user_text
    rest, question, header_text = rest.partition("?")
    hostport, semicolon, param_text = rest.partition(";")
    host, port = split_hostport(hostport, "URI host")
    params = _parse_params(param_text, text) if semicolon else {}
    headers = _parse_headers(header_text, text) if question else {}
    return SipUri(scheme, user, password, host, port, params, headers)
