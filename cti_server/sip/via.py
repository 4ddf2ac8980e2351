"""The Via header field value (RFC 3261 section 20.42 and 18.2.1; rport per RFC 3581).

``sent-protocol`` is any ``token/token/token`` as the grammar allows (LWS around the slashes too, RFC 4475
wsinv); ``protocol`` keeps name/version ("SIP/2.0"), the transport is stored upper-case. ``host`` is bare
(an IPv6 address without brackets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cti_server.sip.address import SIMPLE_PARAMS_RE, TOKEN_CHARS, format_params, parse_header_params
from cti_server.sip.errors import SipParseError
from cti_server.sip.memo import remember
from cti_server.sip.uri import HOST_PATTERN, format_host, parse_host, parse_port, split_simple_params

BRANCH_MAGIC_COOKIE = "z9hG4bK"
"""Prefix of every RFC 3261 branch (section 8.1.1.7); without it the peer is RFC 2543."""

_VIA_RE = re.compile(
    rf"[ \t]*([{TOKEN_CHARS}]+)[ \t]*/[ \t]*([{TOKEN_CHARS}]+)[ \t]*/[ \t]*([{TOKEN_CHARS}]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]+))?"
)

# What nearly every element sends: ``SIP/2.0/UDP host:port;params`` with a host name or IPv4 address and
# simple parameters: the sent-protocol and sent-by (before the first ';', remembered per text: an element
# repeats it in every request) checked in one match, the parameters in another. A value matching both is
# one the general path accepts, and it gives the same Via. Groups: transport, host, port (up to 5
# digits, may exceed 65535).
_COMMON_SENT_BY_RE = re.compile(rf"SIP/2\.0/([A-Z]+) ({HOST_PATTERN})(?::([0-9]{{1,5}}))?")
_MEMO_LIMIT = 1024
# What SIMPLE_PARAMS_RE takes in a parameter value: token characters and ':'.
_VALUE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~:"
_sent_bys: dict[str, tuple[str, str, int | None]] = {}


@dataclass(slots=True)
class Via:
    """One via-parm: transport, sent-by host and port, and the via parameters (RFC 3261 section 20.42).

    ``params`` names are lower-case; values are kept as written (``rport`` without value maps to None).
    ``protocol`` is the sent-protocol's name/version, "SIP/2.0" for every RFC 3261 element.
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 section 8.1.1.7) or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address (RFC 3261 section 18.2.1) or None; IPv6 without brackets.

        RFC 5118 section 4.5: ``received=[2001:db8::1]`` is accepted as well as the grammar's bare form.
        """
        value = self.params.get("received")
        if value is not None and value[:1] == "[" and value[-1:] == "]":
            return value[1:-1]
        return value

    @property
    def rport(self) -> str | None:
        """``rport`` (RFC 3581): None if absent, "" if present without a value, else the value."""
        if "rport" not in self.params:
            return None
        return self.params["rport"] or ""

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter or None."""
        return self.params.get("maddr")

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as written in the header."""
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(text: str) -> Via:
    """Parse one via-parm (RFC 3261 section 25.1); a comma-separated Via line must be split first."""
    sent_by_text, semicolon, _ = text.partition(";")
    sent_by = _sent_bys.get(sent_by_text) or _common_sent_by(sent_by_text)
    if sent_by is not None:
        if not semicolon:
            return Via(sent_by[0], sent_by[1], sent_by[2], {})
        param_text = text[len(sent_by_text):]
        if param_text.startswith(";branch="):
            # ";branch=token" or ";branch=token;rport", what nearly every Via carries: the dict the
            # simple-parameter path gives, without its match and split
            branch, semicolon, rest = param_text[8:].partition(";")
            if branch and not branch.strip(_VALUE_CHARS) and (not semicolon or rest == "rport"):
                params: dict[str, str | None] = {"branch": branch}
                if semicolon:
                    params["rport"] = None
                return Via(sent_by[0], sent_by[1], sent_by[2], params)
        if SIMPLE_PARAMS_RE.fullmatch(param_text) is not None:
            return Via(sent_by[0], sent_by[1], sent_by[2], split_simple_params(param_text))
    match = _VIA_RE.match(text)
    if match is None:
        raise SipParseError(f"invalid Via: {text[:80]!r}")
    name, version, transport, host_text, port_text = match.groups()
    protocol = "SIP/2.0" if name == "SIP" and version == "2.0" else f"{name}/{version}"
    host = parse_host(host_text, "Via sent-by")
    port = parse_port(port_text, "Via port") if port_text is not None else None
    rest = text[match.end():]
    params = parse_header_params(rest, "Via") if rest.strip(" \t") else {}
    return Via(transport.upper(), host, port, params, protocol)


def _common_sent_by(text: str) -> tuple[str, str, int | None] | None:
    """(transport, host, port) of ``SIP/2.0/TRANSPORT host[:port]`` in the common form, remembered."""
    match = _COMMON_SENT_BY_RE.fullmatch(text)
    if match is None:
        return None
    transport, host, port_text = match.groups()
    port = int(port_text) if port_text is not None else None
    if port is not None and port > 65535:
        return None
    return remember(_sent_bys, text, (transport, host, port), _MEMO_LIMIT)
