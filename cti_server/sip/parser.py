"""Bytes to SIP messages: parse_message, stream framing, and answers for what does not parse.

RFC 3261 section 7 (message format), 7.3.1 (folding), 7.5 (framing), 18.3 (Content-Length on datagrams and
streams) and 8.2.2 / 16.3 (what an element checks). ``parse_message`` raises only
:class:`~cti_server.sip.errors.SipParseError`, whatever the bytes; the ``status`` of the error is what the
peer should be answered (400, 416, 505, 513). Header values are decoded as UTF-8 with surrogate escapes,
so undecodable octets survive a parse/serialize round trip unchanged.

What is checked eagerly (so that a message that parses is usable): the start line; Call-ID, CSeq (and
that its method matches the request's), From, To, the top Via, Contact, Max-Forwards, Content-Length,
Expires and Date; each of From, To, Call-ID, CSeq, Max-Forwards, Content-Length and Content-Type at most
once. Other typed headers (Route, Record-Route, the lower Vias...) are parsed when first read.
"""

from __future__ import annotations

import re
from typing import Final

from cti_server.sip.address import TOKEN_CHARS, common_name_addr, parse_name_addr
from cti_server.sip.errors import SipParseError
from cti_server.sip.headers import Headers, name_key
from cti_server.sip.memo import remember
from cti_server.sip.message import (
    SipRequest,
    SipResponse,
    cseq_memo,
    max_forwards_memo,
    new_tag,
    parse_cseq,
    parse_delta_seconds,
    reason_phrase,
    remembered_cseq,
    remembered_max_forwards,
)
from cti_server.sip.uri import SipUri, copy_uri, parse_uri
from cti_server.sip.via import parse_via

DEFAULT_MAX_MESSAGE_SIZE: Final = 65535
"""Largest message ``parse_message`` accepts by default (RFC 3261 18.1.1 bounds UDP at 65,535)."""

MAX_HEADER_LINES: Final = 512
"""Most header lines accepted in one message (a resource limit against header floods)."""

_METHOD_RE = re.compile(rf"[{TOKEN_CHARS}]+")
_HEADER_NAME_RE = re.compile(rf"[{TOKEN_CHARS}]+")
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
# The lookbehind starts a match only at the beginning of a blank run, so long runs stay linear.
_FOLD_RE = re.compile(r"(?<![ \t])[ \t]*\r\n[ \t]+")
_CONTENT_LENGTH_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]*")
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
_STREAM_CONTENT_LENGTH_RE = re.compile(rb"\r\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])"
                                       rb"[ \t]*:([^\r\n]*)")

_SINGLE_HEADERS: Final = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type"})
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")

SipMessage = SipRequest | SipResponse
_BYTES_TYPES: Final = (bytes, bytearray, memoryview)
_PARSER_BUGS: Final = (ValueError, LookupError, TypeError, ArithmeticError, AttributeError, AssertionError,
                       RecursionError)

# Mandatory in every request and response (RFC 3261 8.1.1); the error names every one missing.
_MANDATORY_NAMES: Final = {"call-id": "Call-ID", "cseq": "CSeq", "from": "From", "to": "To", "via": "Via"}
_MANDATORY_KEYS: Final = frozenset(_MANDATORY_NAMES)
_new_headers = object.__new__
# Header names exactly as they appear before the colon -> (key, canonical name), validated once.
_known_names: dict[str, tuple[str, str]] = {}


# Values a phone sends again and again (its Request-Line, "2 REGISTER", "70", "3600", "0", its To and
# Contact) are checked once and remembered: the check is a regular expression, the memo a dict look-up.
# Only immutable results are kept (a CSeq, ints, regex matches); a Request-URI is copied out. Each memo
# is emptied when it reaches its limit (sip/memo.py), so odd traffic cannot grow it.
_start_lines: dict[str, tuple[str, SipUri, None] | tuple[None, int, str]] = {}  # Request-URIs copied out
# Whole header lines -> their (key, name, value) entry: "Max-Forwards: 70", "CSeq: 1 INVITE", a phone's
# Contact... cost one look-up instead of a partition and a strip. Entries are immutable tuples, shared by
# the messages' Headers (which replace entries, never change one). Lines of headers whose values are new
# in every call are not kept (they would only push the others out).
_header_lines: dict[str, tuple[str, str, str]] = {}
_PER_CALL_KEYS: Final = frozenset({"via", "from", "to", "call-id"})
_MEMO_LINE_LENGTH: Final = 256  # longer lines (credentials, odd extensions) are parsed every time
_content_lengths: dict[str, int] = {}
_expires: dict[str, int] = {}


def parse_message(data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> SipMessage:
    """Parse one SIP message (RFC 3261 section 7) from a datagram or a framed stream message.

    Without Content-Length the body is the rest of ``data`` (a datagram, RFC 3261 18.3); bytes after
    Content-Length octets of body are ignored. Raises SipParseError (and nothing else) for any input.
    """
    try:
        return _parse(data, max_size)
    except SipParseError:
        raise
    except _PARSER_BUGS as error:
        # A parser bug must still look like bad input to the transport, never crash it.
        raise SipParseError(f"unparseable message ({type(error).__name__})") from error


def _parse(data: bytes, max_size: int) -> SipMessage:
    if not isinstance(data, _BYTES_TYPES):
        raise SipParseError("message must be bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise SipParseError(f"message larger than {max_size} bytes", status=513)
    start = 0
    while data.startswith(b"\r\n", start):  # RFC 3261 7.5: ignore CRLFs before the start line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if start >= len(data):
            raise SipParseError("empty message")
        raise SipParseError("no end of header section (missing empty line)")
    head = data[start:end].decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    lines = head.split("\r\n")
    joined = "".join(lines)  # a CR or LF left after the split is a bare one (two memchr scans, no counts)
    if "\r" in joined or "\n" in joined:
        raise SipParseError("bare CR or LF in header section")
    if len(lines) > MAX_HEADER_LINES + 1:
        raise SipParseError(f"more than {MAX_HEADER_LINES} header lines")
    # The start line first: a wrong SIP-Version is answered 505 whatever else is wrong (RFC 3261 8.2.2).
    start_line = lines[0]
    parsed_start = _start_lines.get(start_line)
    if parsed_start is None:
        parsed_start = remember(_start_lines, start_line, _parse_start_line(start_line))

    entries: list[tuple[str, str, str]] = []
    index: dict[str, list[str]] = {}  # key -> values of its lines in wire order (the Headers index)
    for line in lines[1:]:
        entry = _header_lines.get(line)
        if entry is None:
            written_name, colon, rest = line.partition(":")
            known = _known_names.get(written_name)
            if known is None or not colon:
                known = _header_name(line, written_name, colon)
            entry = (known[0], known[1], rest.strip(" \t"))
            if known[0] not in _PER_CALL_KEYS and len(line) <= _MEMO_LINE_LENGTH:
                remember(_header_lines, line, entry)
        key, name, value = entry
        values = index.get(key)
        if values is None:
            index[key] = [value]
        elif key in _SINGLE_HEADERS:
            raise SipParseError(f"more than one {name} header")
        else:
            values.append(value)
        entries.append(entry)
    missing = _MANDATORY_KEYS - index.keys()
    if missing:
        raise SipParseError("missing " + ", ".join(_MANDATORY_NAMES[key] for key in sorted(missing)))
    headers = _new_headers(Headers)  # Headers._from_entries(entries, index) without the call
    headers._entries = entries
    headers._index = index

    body_start = end + 4
    content_lengths = index.get("content-length")
    if content_lengths is None:
        body = data[body_start:]
    else:
        content_length = content_lengths[0]
        length = _content_lengths.get(content_length)
        if length is None:
            match = _CONTENT_LENGTH_RE.fullmatch(content_length)
            if match is None:
                raise SipParseError(f"invalid Content-Length: {content_length[:20]!r}")
            length = remember(_content_lengths, content_length, int(match.group(1)))
        if body_start + length > len(data):
            raise SipParseError(
                f"Content-Length {length} larger than the {len(data) - body_start} body bytes received")
        body = data[body_start:body_start + length]

    message: SipMessage
    if parsed_start[0] is None:
        message = SipResponse(parsed_start[1], parsed_start[2], headers, body, "SIP/2.0")
    else:
        message = SipRequest(parsed_start[0], copy_uri(parsed_start[1]), headers, body, "SIP/2.0")
    _check_headers(message, index)
    return message


def _check_version(version: str) -> None:
    match = _VERSION_RE.fullmatch(version)
    if match is None:
        raise SipParseError(f"invalid SIP-Version {version[:20]!r}")
    if match.group(1) != "2" or match.group(2) != "0":
        raise SipParseError(f"SIP version {version[:20]} not supported", status=505)


def _header_name(line: str, written_name: str, colon: str) -> tuple[str, str]:
    """(key, canonical name) of a header line's name not seen before (remembered), or SipParseError."""
    if not colon or not written_name:
        raise SipParseError(f"malformed header line {line[:40]!r}")
    raw_name = written_name.rstrip(" \t")
    if _HEADER_NAME_RE.fullmatch(raw_name) is None:
        raise SipParseError(f"invalid header name {raw_name[:40]!r}")
    known = name_key(raw_name)
    if len(_known_names) < 4096:
        _known_names[written_name] = known
    return known


def _parse_start_line(line: str) -> tuple[str, SipUri, None] | tuple[None, int, str]:
    """(method, Request-URI, None) of a Request-Line or (None, status, reason) of a Status-Line."""
    if line[:4].upper() == "SIP/":
        status, reason = _parse_status_line(line)
        return None, status, reason
    method, uri = _parse_request_line(line)
    return method, uri, None


def _parse_request_line(line: str) -> tuple[str, SipUri]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError("malformed Request-Line (need exactly: Method SP Request-URI SP SIP-Version)")
    method, uri_text, version = parts
    if _METHOD_RE.fullmatch(method) is None:
        raise SipParseError(f"invalid method {method[:40]!r}")
    _check_version(version)
    uri = parse_uri(uri_text)
    if uri.headers:
        raise SipParseError("Request-URI must not contain headers")
    return method, uri


def _parse_status_line(line: str) -> tuple[int, str]:
    version, _, rest = line.partition(" ")
    _check_version(version)
    code, _, reason = rest.partition(" ")
    if _STATUS_RE.fullmatch(code) is None:
        raise SipParseError(f"invalid Status-Code {code[:20]!r}")
    return int(code), reason


def _check_headers(message: SipMessage, index: dict[str, list[str]]) -> None:
    """The checks of RFC 3261 8.2.2 / 16.3 that every element needs before it can use a message.

    The typed values parsed here are stored in the message's accessor cache, so reading them later
    costs nothing.
    """
    cache = message._cache
    call_id = index["call-id"][0]
    if not call_id or " " in call_id or "\t" in call_id:
        raise SipParseError(f"invalid Call-ID {call_id[:40]!r}")
    raw = index["cseq"][0]
    cseq = cseq_memo.get(raw) or remembered_cseq(raw)
    cache["cseq"] = (raw, cseq)
    if isinstance(message, SipRequest):
        if cseq.method != message.method:
            raise SipParseError(f"CSeq method {cseq.method[:20]} does not match {message.method[:20]}")
        max_forwards = index.get("max-forwards")
        if max_forwards is not None:
            raw = max_forwards[0]
            if raw not in max_forwards_memo:
                remembered_max_forwards(raw)
    # From, To and Contact in the common [display-name] <sip:...>;params form (or a bare
    # sip:user@host:port) are validated by common_name_addr, whose parts are kept for the accessors to
    # build the objects from when read; any other form is parsed at once so that a bad one raises here.
    raw = index["from"][0]
    common = common_name_addr(raw)
    if common is not None:
        cache["from_common"] = (raw, common)
    else:
        cache["from"] = (raw, parse_name_addr(raw, "From"))
    raw = index["to"][0]
    common = common_name_addr(raw)
    if common is not None:
        cache["to_common"] = (raw, common)  # also answers to_tag without building To
    else:
        cache["to"] = (raw, parse_name_addr(raw, "To"))
    raw = index["via"][0]
    if not raw or "," in raw:
        top = message.headers.get("Via")  # the first list element, skipping empty ones
        if top is None:
            raise SipParseError("missing Via")
        raw = top
    cache["top_via"] = (raw, parse_via(raw))
    contacts = index.get("contact")
    if contacts is not None:
        commons = []
        for line in contacts:
            common = common_name_addr(line)
            if common is None:
                _ = message.contacts
                break
            commons.append(common)
        else:
            cache["contacts_common"] = (contacts.copy(), commons)
    expires = index.get("expires")
    if expires is not None:
        raw = expires[0]
        seconds = _expires.get(raw)
        if seconds is None:
            seconds = remember(_expires, raw, parse_delta_seconds(raw, "Expires"))
        cache["expires"] = (raw, seconds)
    date = index.get("date")
    if date is not None and _DATE_RE.fullmatch(date[0]) is None:
        raise SipParseError("invalid Date (RFC 1123 date in GMT required)")


def _is_common_name_addr(value: str) -> bool:
    """True when ``value`` has the common form of ``common_name_addr`` (valid, so its parse can wait)."""
    return common_name_addr(value) is not None


class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 section 18.3).

    ``feed`` returns the complete messages found so far; a CRLF CRLF keep-alive ping between messages
    (RFC 5626 section 3.5.1) is returned as ``b""`` (answer it with a single CRLF pong) and counted in
    ``keepalives``. A lone CRLF (a pong) is skipped. SipParseError (status 513 or 400) means the stream
    cannot be framed any more: close the connection.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.keepalives = 0
        self._buffer = bytearray()
        self._scan_from = 0  # where to resume looking for the end of the header section
        self._total: int | None = None  # size of the message at the buffer's start, once known

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message (or b"" ping marker) now complete."""
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        while buffer:
            if self._total is not None:
                if len(buffer) < self._total:
                    break
                out.append(bytes(buffer[:self._total]))
                del buffer[:self._total]
                self._total = None
                self._scan_from = 0
                continue
            if buffer[:1] == b"\r":
                if buffer[:4] == b"\r\n\r\n":
                    del buffer[:4]
                    self.keepalives += 1
                    out.append(b"")
                    continue
                if len(buffer) < 4 and b"\r\n\r\n".startswith(bytes(buffer)):
                    break  # maybe the start of a ping: wait for more
                if buffer[:2] == b"\r\n":
                    del buffer[:2]
                    continue
            end = buffer.find(b"\r\n\r\n", self._scan_from)
            if end < 0:
                if len(buffer) > self.max_message_size:
                    raise SipParseError("header section larger than the message size limit", status=513)
                self._scan_from = max(0, len(buffer) - 3)  # bytes fed one by one stay linear
                break
            header_end = end + 4
            match = _STREAM_CONTENT_LENGTH_RE.search(buffer, 0, end + 2)
            if match is None:
                raise SipParseError("missing Content-Length on a stream transport")
            length = match.group(1).strip(b" \t")
            if not length.isdigit() or len(length) > 10:
                raise SipParseError("invalid Content-Length on a stream transport")
            total = header_end + int(length)
            if total > self.max_message_size:
                raise SipParseError(f"message larger than {self.max_message_size} bytes", status=513)
            self._total = total
        return out


_RECOVER_HEADERS: Final = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
                           "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}
_VERSION_AT_END_RE = re.compile(r" [Ss][Ii][Pp]/[0-9]+\.[0-9]+ *$")
MAX_REASON_DETAIL: Final = 120


def response_for_unparseable(data: bytes, error: SipParseError) -> SipResponse | None:
    """Best effort: the error response to send for a request that did not parse (RFC 3261 8.2, 16.3).

    When ``data`` looks like a request (not ACK) and Via, From, To, Call-ID and CSeq can be recovered
    from its header lines (the top Via and CSeq well-formed, as the peer matches the answer by them;
    From, To and Call-ID are copied as sent, even when they are the fault), returns a response with
    ``error.status``, a reason phrase naming the fault (``Bad Request (missing Call-ID)``) and a
    ``Warning: 399`` header carrying it. None for responses, ACKs and garbage (which are dropped and
    logged by the caller).
    """
    try:
        return _response_for_unparseable(data, error)
    except _PARSER_BUGS:
        return None


def _response_for_unparseable(data: bytes, error: SipParseError) -> SipResponse | None:
    text = data[:DEFAULT_MAX_MESSAGE_SIZE].decode("utf-8", "surrogateescape").lstrip("\r\n")
    end = text.find("\r\n\r\n")
    if end >= 0:
        text = text[:end]
    text = _FOLD_RE.sub(" ", text)
    lines = text.split("\r\n")
    method, space, rest = lines[0].partition(" ")
    if not space or method == "ACK" or _METHOD_RE.fullmatch(method) is None \
            or _VERSION_AT_END_RE.search(rest) is None:
        return None
    found: dict[str, list[str]] = {}
    for line in lines[1:MAX_HEADER_LINES + 1]:
        name, colon, value = line.partition(":")
        canonical = _RECOVER_HEADERS.get(name.strip(" \t").lower())
        if not colon or canonical is None:
            continue
        value = value.strip(" \t")
        if not value or _CONTROL_CHARS_RE.search(value):
            continue
        found.setdefault(canonical, []).append(value)
    if any(name not in found for name in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    try:
        parse_via(found["Via"][0].split(",", 1)[0])
        parse_cseq(found["CSeq"][0])
    except SipParseError:
        # Without a usable top Via there is nowhere to send it (RFC 3261 18.2.2); without a usable
        # CSeq the peer cannot match it to its transaction (17.1.3).
        return None
    status = error.status if 400 <= error.status <= 699 else 400
    detail = _CONTROL_CHARS_RE.sub(" ", error.reason)[:MAX_REASON_DETAIL]
    detail = detail.encode("ascii", "replace").decode("ascii")
    headers = Headers()
    for value in found["Via"]:
        headers.add("Via", value)
    headers.add("From", found["From"][0])
    to_value = found["To"][0]
    if ";tag=" not in to_value.replace(" ", "").lower():
        to_value = f"{to_value};tag={new_tag()}"
    headers.add("To", to_value)
    headers.add("Call-ID", found["Call-ID"][0])
    headers.add("CSeq", found["CSeq"][0])
    quoted = detail.replace("\\", "\\\\").replace('"', '\\"')
    headers.add("Warning", f'399 cti-server "{quoted}"')
    return SipResponse(status, f"{reason_phrase(status)} ({detail})", headers)
