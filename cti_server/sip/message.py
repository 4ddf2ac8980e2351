"""SIP requests and responses (RFC 3261 section 7), their typed header accessors, and builders.

Typed views of headers (``vias``, ``from_addr``, ``cseq``...) are parsed when first read and cached
against the raw header text, so editing ``headers`` never leaves a stale cached value behind.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from cti_server.sip.address import (
    NameAddr,
    common_name_addr,
    name_addr_from_common,
    parse_contact_list,
    parse_name_addr,
)
from cti_server.sip.errors import SipParseError
from cti_server.sip.headers import Headers, split_header_values
from cti_server.sip.memo import remember
from cti_server.sip.uri import SipUri, parse_uri
from cti_server.sip.via import BRANCH_MAGIC_COOKIE, Via, parse_via

SIP_VERSION = "SIP/2.0"

MAX_CSEQ = 2**31 - 1
"""CSeq sequence numbers must be below 2**31 (RFC 3261 section 8.1.1.5)."""

MAX_DELTA_SECONDS = 2**32 - 1
"""Largest delta-seconds value; larger Expires values are treated as this (RFC 3261 section 20.19)."""

DIALOG_CREATING_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
"""Methods whose 18x/2xx responses establish a dialog and so carry Record-Route back (RFC 3261 12.1.1)."""

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    607: "Unwanted", 608: "Rejected",
}
"""Default reason phrases (RFC 3261 section 21 and the IANA SIP response code registry)."""

_CSEQ_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")
_DIGITS_RE = re.compile(r"[ \t]*([0-9]+)[ \t]*")

_T = TypeVar("_T")


def reason_phrase(status: int) -> str:
    """The default reason phrase for ``status`` (RFC 3261 section 21), by class when unknown."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return REASON_PHRASES.get(status - status % 100, "Unknown")


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header field: sequence number and method (RFC 3261 section 20.16)."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(text: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must be below 2**31 (RFC 3261 section 8.1.1.5)."""
    match = _CSEQ_RE.fullmatch(text)
    if match is None:
        raise SipParseError(f"invalid CSeq: {text[:40]!r}")
    number = int(match.group(1))
    if number > MAX_CSEQ:
        raise SipParseError(f"CSeq number out of range: {match.group(1)}")
    return CSeq(number, match.group(2))


# CSeq and Max-Forwards values repeat ("1 INVITE", "70"): their parses (immutable) are remembered per
# text, here and by the parser, in bounded memos (sip/memo.py).
cseq_memo: dict[str, CSeq] = {}
max_forwards_memo: dict[str, int] = {}


def remembered_cseq(text: str) -> CSeq:
    """``parse_cseq(text)``, remembered in ``cseq_memo`` (look there first)."""
    return remember(cseq_memo, text, parse_cseq(text))


def remembered_max_forwards(text: str) -> int:
    """``parse_max_forwards(text)``, remembered in ``max_forwards_memo`` (look there first)."""
    return remember(max_forwards_memo, text, parse_max_forwards(text))


def parse_delta_seconds(text: str, what: str) -> int:
    """A delta-seconds value (RFC 3261 section 25.1); values over 2**32-1 are clamped to it."""
    match = _DIGITS_RE.fullmatch(text)
    if match is None:
        raise SipParseError(f"invalid {what}: {text[:40]!r}")
    digits = match.group(1)
    if len(digits) > 10:
        return MAX_DELTA_SECONDS
    return min(int(digits), MAX_DELTA_SECONDS)


class _MessageBase:
    """Typed header accessors shared by requests and responses (RFC 3261 section 7.3 and 20)."""

    headers: Headers
    body: bytes
    _cache: dict[str, tuple[Any, Any]]

    def _cached(self, key: str, raw: _T, build: Callable[[_T], Any]) -> Any:
        """Parse ``raw`` with ``build`` unless it was already parsed from equal raw text."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]
        value = build(raw)
        self._cache[key] = (raw, value)
        return value

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name}")
        return value

    # The accessors below read the Headers index directly: ``headers.get(name)`` of a header that is
    # never split (Call-ID, CSeq, From, To) is the first line's value, and of Via it is that value too
    # when it holds one non-blank element (else they fall back to ``headers.get``).

    def _line(self, key: str, name: str) -> str:
        """``_required(name)`` of a header that is never split, ``key`` its lower-case name."""
        headers = self.headers
        index = headers._index
        values = (index if index is not None else headers._lookup()).get(key)
        if values is None:
            raise SipParseError(f"missing {name}")
        return values[0]

    @property
    def call_id(self) -> str:
        """The Call-ID header field (RFC 3261 section 20.8)."""
        headers = self.headers
        index = headers._index
        values = (index if index is not None else headers._lookup()).get("call-id")
        if values is None:
            raise SipParseError("missing Call-ID")
        return values[0].strip()

    @property
    def cseq(self) -> CSeq:
        """The CSeq header field (RFC 3261 section 20.16)."""
        headers = self.headers
        index = headers._index
        values = (index if index is not None else headers._lookup()).get("cseq")
        if values is None:
            raise SipParseError("missing CSeq")
        raw = values[0]
        hit = self._cache.get("cseq")
        if hit is not None and hit[0] == raw:
            result: CSeq = hit[1]
            return result
        result = cseq_memo.get(raw) or remembered_cseq(raw)
        self._cache["cseq"] = (raw, result)
        return result

    @property
    def vias(self) -> list[Via]:
        """Every Via value, topmost first (RFC 3261 section 20.42)."""
        raw = self.headers.get_lines("Via")
        result: list[Via] = self._cached("vias", raw, _parse_vias)
        return result

    @property
    def top_via(self) -> Via:
        """The topmost Via (RFC 3261 section 18.2.1); SipParseError when there is none."""
        headers = self.headers
        index = headers._index
        values = (index if index is not None else headers._lookup()).get("via")
        if values is None:
            raise SipParseError("missing Via")
        raw = values[0]
        if "," in raw or not raw.strip():
            raw = self._required("Via")
        hit = self._cache.get("top_via")
        if hit is not None and hit[0] == raw:
            result: Via = hit[1]
            return result
        result = parse_via(raw)
        self._cache["top_via"] = (raw, result)
        return result

    def _name_addr(self, key: str, common_key: str, raw: str, what: str) -> NameAddr:
        """From or To: cached, else built from the parser's match of the common form, else parsed."""
        cache = self._cache
        hit = cache.get(key)
        if hit is not None and hit[0] == raw:
            result: NameAddr = hit[1]
            return result
        common = cache.get(common_key)
        parts = common[1] if common is not None and common[0] == raw else common_name_addr(raw)
        # the common form (a From the parser only checked, one set since) is built from its parts
        value = name_addr_from_common(parts) if parts is not None else parse_name_addr(raw, what)
        cache[key] = (raw, value)
        return value

    @property
    def from_addr(self) -> NameAddr:
        """The From header field (RFC 3261 section 20.20)."""
        return self._name_addr("from", "from_common", self._line("from", "From"), "From")

    @property
    def to_addr(self) -> NameAddr:
        """The To header field (RFC 3261 section 20.39)."""
        return self._name_addr("to", "to_common", self._line("to", "To"), "To")

    def _tag(self, key: str, common_key: str, raw: str, what: str) -> str | None:
        """The tag of From or To: of the address if built, else of its common form (no URI or address
        built; remembered for the next read), else of the parsed address."""
        cache = self._cache
        hit = cache.get(key)
        if hit is not None and hit[0] == raw:
            tag: str | None = hit[1].tag
            return tag
        common = cache.get(common_key)
        if common is not None and common[0] == raw:
            tag = common[1].tag
            return tag
        parts = common_name_addr(raw)
        if parts is None:
            return self._name_addr(key, common_key, raw, what).tag
        cache[common_key] = (raw, parts)
        return parts.tag

    @property
    def from_tag(self) -> str | None:
        """The From tag (RFC 3261 section 19.3)."""
        return self._tag("from", "from_common", self._line("from", "From"), "From")

    @property
    def to_tag(self) -> str | None:
        """The To tag (RFC 3261 section 19.3)."""
        return self._tag("to", "to_common", self._line("to", "To"), "To")

    @property
    def contacts(self) -> list[NameAddr] | Literal["*"]:
        """The Contact header fields: ``"*"`` or every address (RFC 3261 section 20.10); [] if none."""
        raw = self.headers.get_lines("Contact")
        cache = self._cache
        hit = cache.get("contacts")
        if hit is not None and hit[0] == raw:
            result: list[NameAddr] | Literal["*"] = hit[1]
            return result
        common = cache.get("contacts_common")
        if common is not None and common[0] == raw:
            result = [name_addr_from_common(parts) for parts in common[1]]
        else:
            result = _parse_contacts(raw)
        cache["contacts"] = (raw, result)
        return result

    @property
    def expires(self) -> int | None:
        """The Expires header field in seconds (RFC 3261 section 20.19), or None when absent."""
        raw = self.headers.get("Expires")
        if raw is None:
            return None
        result: int = self._cached("expires", raw, _parse_expires)
        return result

    @property
    def content_type(self) -> str | None:
        """The Content-Type header field (RFC 3261 section 20.15) as written, or None."""
        value = self.headers.get("Content-Type")
        return value.strip() if value is not None else None

    @property
    def media_type(self) -> str | None:
        """The Content-Type's ``type/subtype`` lower-case, without parameters, or None."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower()

    def _serialize(self, start_line: str) -> bytes:
        body = self.body
        lines = [start_line]
        append = lines.append
        for _, name, value in self.headers._entries:
            if name != "Content-Length":
                append(f"{name}: {value}")
        append(f"Content-Length: {len(body)}\r\n\r\n")  # and the empty line
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


def _parse_vias(lines: list[str]) -> list[Via]:
    vias: list[Via] = []
    for line in lines:
        vias.extend(parse_via(value) for value in split_header_values(line))
    return vias


def _parse_expires(text: str) -> int:
    return parse_delta_seconds(text, "Expires")


def _parse_contacts(lines: list[str]) -> list[NameAddr] | Literal["*"]:
    contacts: list[NameAddr] = []
    for line in lines:
        parsed = parse_contact_list(line)
        if parsed == "*":
            if len(lines) > 1:
                raise SipParseError("Contact '*' must be the only Contact")
            return "*"
        contacts.extend(parsed)
    return contacts


@dataclass
class SipRequest(_MessageBase):
    """A SIP request: Request-Line, header fields and body (RFC 3261 section 7.1)."""

    method: str
    uri: SipUri
    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION
    _cache: dict[str, tuple[Any, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def max_forwards(self) -> int | None:
        """The Max-Forwards header field (0..255, RFC 3261 section 20.22), or None when absent."""
        raw = self.headers.get("Max-Forwards")
        if raw is None:
            return None
        hops = max_forwards_memo.get(raw)
        return hops if hops is not None else remembered_max_forwards(raw)

    def serialize(self) -> bytes:
        """The wire form, with Content-Length written from the body (RFC 3261 section 7.1, 20.14)."""
        return self._serialize(f"{self.method} {self.uri} {self.version}")



@dataclass
class SipResponse(_MessageBase):
    """A SIP response: Status-Line, header fields and body (RFC 3261 section 7.2)."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION
    _cache: dict[str, tuple[Any, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def serialize(self) -> bytes:
        """The wire form, with Content-Length written from the body (RFC 3261 section 7.2, 20.14)."""
        return self._serialize(f"{self.version} {self.status} {self.reason}")


def parse_max_forwards(text: str) -> int:
    """Max-Forwards: an integer 0..255 (RFC 3261 section 20.22)."""
    match = _DIGITS_RE.fullmatch(text)
    if match is None or len(match.group(1)) > 10 or int(match.group(1)) > 255:
        raise SipParseError(f"invalid Max-Forwards: {text[:40]!r}")
    return int(match.group(1))


class _RandomPool:
    """Bytes from ``os.urandom`` read 4 KiB at a time: a tag or nonce salt costs a slice instead of a
    system call. Cryptographically random all the same; a forked child starts with a fresh pool."""

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            end = self._at + count
            if end > len(self._pool):
                self._pool = os.urandom(max(self.SIZE, count))
                end = count
            chunk = self._pool[end - count:end]
            self._at = end
            return chunk

    def reset(self) -> None:
        self._pool = b""
        self._at = 0


_random_pool = _RandomPool()
os.register_at_fork(after_in_child=_random_pool.reset)


def random_bytes(count: int) -> bytes:
    """``count`` cryptographically random bytes (``os.urandom``, read in blocks)."""
    return _random_pool.take(count)


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie plus 80 random bits (section 8.1.1.7)."""
    return BRANCH_MAGIC_COOKIE + _random_pool.take(10).hex()


def new_tag() -> str:
    """A fresh From/To tag with 64 random bits (RFC 3261 section 19.3)."""
    return _random_pool.take(8).hex()


def new_call_id(host: str) -> str:
    """A fresh globally unique Call-ID ``random@host`` (RFC 3261 section 8.1.1.4)."""
    return f"{_random_pool.take(12).hex()}@{host}"


HeaderSource = Headers | Mapping[str, str] | Iterable[tuple[str, str]]
"""Extra header fields for the builders: a Headers, a mapping, or (name, value) pairs in order."""


def _extra_headers(headers: HeaderSource | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.items()
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: HeaderSource | None = None,
    body: bytes = b"",
) -> SipResponse:
    """Build a response to ``request`` (RFC 3261 section 8.2.6).

    Copies every Via (in order), From, To (adding ``to_tag`` when To has no tag), Call-ID and CSeq; the
    Timestamp for 100 (section 8.2.6.1); Record-Route for 101..299 responses to dialog-creating requests
    (section 12.1.1). ``headers`` are appended after those; put Content-Type there when giving a body.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status must be 100..699, got {status}")
    request_headers = request.headers
    index = request_headers._index
    if index is None:
        index = request_headers._lookup()
    entries = [("via", "Via", value) for value in index.get("via", ())]
    to_value = request._line("to", "To")
    if to_tag is not None and request.to_tag is None:
        to_value = f"{to_value};tag={to_tag}"
    entries += (("from", "From", request._line("from", "From")), ("to", "To", to_value),
                ("call-id", "Call-ID", request._line("call-id", "Call-ID")),
                ("cseq", "CSeq", request._line("cseq", "CSeq")))
    out = Headers._from_entries(entries)
    if status == 100:
        timestamp = request.headers.get("Timestamp")
        if timestamp is not None:
            out.add("Timestamp", timestamp)
    if 100 < status < 300 and request.method in DIALOG_CREATING_METHODS:
        for value in index.get("record-route", ()):
            out.add("Record-Route", value)
    for name, value in _extra_headers(headers):
        out.add(name, value)
    return SipResponse(status, reason if reason is not None else reason_phrase(status), out, body)


def make_request(
    method: str,
    uri: SipUri | str,
    *,
    from_: NameAddr | str,
    to: NameAddr | str,
    call_id: str,
    cseq: int,
    via: Via | str,
    headers: HeaderSource | None = None,
    body: bytes = b"",
    max_forwards: int = 70,
) -> SipRequest:
    """Build a UAC request with the mandatory header fields of RFC 3261 section 8.1.1.

    Max-Forwards is added unless ``headers`` carries one; ``headers`` come after the mandatory ones.
    """
    request_uri = parse_uri(uri) if isinstance(uri, str) else uri
    extra = _extra_headers(headers)
    entries = [("via", "Via", str(via))]
    if not any(name.lower() == "max-forwards" for name, _ in extra):
        entries.append(("max-forwards", "Max-Forwards", str(max_forwards)))
    entries += (("from", "From", str(from_)), ("to", "To", str(to)), ("call-id", "Call-ID", call_id),
                ("cseq", "CSeq", f"{cseq} {method}"))
    out = Headers._from_entries(entries)
    for name, value in extra:
        out.add(name, value)
    return SipRequest(method, request_uri, out, body)
