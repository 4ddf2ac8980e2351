"""SDP session descriptions (RFC 4566): parse, serialize, and the helpers offer/answer needs (RFC 3264).

``parse_sdp`` accepts text or bytes (LF or CRLF line ends) and raises :class:`SdpParseError` naming the
line at fault; ``serialize()`` writes CRLF line ends in the order RFC 4566 section 5 requires. Attributes
keep their order; rtpmap/fmtp/ptime/direction helpers read and edit them (RFC 4566 section 6, RFC 3264
section 5.1 for the direction attributes, RFC 3551 for the static payload types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

DIRECTIONS: Final = ("sendrecv", "sendonly", "recvonly", "inactive")
"""The direction attributes of RFC 4566 section 6 / RFC 3264 section 5.1."""

STATIC_PAYLOAD_TYPES: Final[dict[int, tuple[str, int, int]]] = {
    0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1), 5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1), 7: ("LPC", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1),
    10: ("L16", 44100, 2), 11: ("L16", 44100, 1), 12: ("QCELP", 8000, 1), 13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1), 15: ("G728", 8000, 1), 16: ("DVI4", 11025, 1), 17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1), 25: ("CelB", 90000, 1), 26: ("JPEG", 90000, 1), 28: ("nv", 90000, 1),
    31: ("H261", 90000, 1), 32: ("MPV", 90000, 1), 33: ("MP2T", 90000, 1), 34: ("H263", 90000, 1),
}
"""Static RTP payload types (RFC 3551 section 6): payload type -> (encoding, clock rate, channels)."""

MAX_SDP_SIZE: Final = 65536
_LINE_KINDS: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
"""The <type> of a line, ``[a-z]`` (RFC 4566 section 5)."""
_HEAD_RE = re.compile(
    r"v=0\r?\n"
    r"o=([^ \r\n]+) ([0-9]{1,20}) ([0-9]{1,19}) ([^ \r\n]+) ([^ \r\n]+) ([^ \r\n]+)\r?\n"
    r"s=([^\r\n]*)\r?\n"
    r"(?:c=([^ \r\n]+) (IP4|IP6) ([^ /\r\n]+)\r?\n)?"
    r"(?:t=([0-9]{1,19}) ([0-9]{1,19})\r?\n)?"
)
"""The usual first lines (v= o= s=, then c= without TTL and t=) in one match: what the line-by-line
parse would make of them, in one step (no blanks to strip, numbers that fit their fields)."""
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_COMMON_TOKENS: Final = frozenset({
    "audio", "video", "application", "text", "message", "image",  # m= media
    "rtpmap", "fmtp", "ptime", "maxptime", "rtcp", "rtcp-mux", "rtcp-fb", "ssrc", "sendrecv", "sendonly",
    "recvonly", "inactive", "silenceSupp", "label", "mid", "setup", "connection", "fingerprint", "crypto",
    "ice-ufrag", "ice-pwd", "ice-options", "candidate", "end-of-candidates", "group", "msid",
    "msid-semantic", "extmap", "tool", "X-nat",
})  # fmt: skip
"""Names known to be tokens (``_TOKEN_RE``): most a= and m= lines skip the regex."""
_RTPMAP_RE = re.compile(r"([0-9]{1,3}) +([^/ ]+)/([0-9]{1,9})(?:/([0-9]{1,3}))? *")
_FMTP_RE = re.compile(r"([0-9]{1,3}) +(.*)")
_PTIME_RE = re.compile(r" *([0-9]{1,6})(?:\.[0-9]*)? *")

Attribute = tuple[str, str | None]


class SdpParseError(ValueError):
    """A session description RFC 4566 does not allow; ``reason`` names the line or field at fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Origin:
    """The o= line (RFC 4566 section 5.2)."""

    username: str = "-"
    session_id: str = "0"
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} {self.nettype} "
                f"{self.addrtype} {self.address}")


@dataclass
class Connection:
    """A c= line (RFC 4566 section 5.7); ``ttl``/``count`` only for multicast addresses."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    def __str__(self) -> str:
        text = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            text += f"/{self.ttl}"
        if self.count is not None:
            text += f"/{self.count}"
        return text


def _attribute_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]


class _Attributes:
    """Ordered a= lines with lookup and the direction helper (RFC 4566 section 5.13, 6)."""

    attributes: list[Attribute]

    def get_attribute(self, name: str) -> str | None:
        """The value of the first ``a=name`` ("" for a flag attribute), or None when absent."""
        for attr_name, value in self.attributes:
            if attr_name == name:
                return value if value is not None else ""
        return None

    def get_attributes(self, name: str) -> list[str]:
        """The values of every ``a=name`` in order ("" for flags)."""
        return [value or "" for attr_name, value in self.attributes if attr_name == name]

    def add_attribute(self, name: str, value: str | None = None) -> None:
        """Append ``a=name[:value]``."""
        self.attributes.append((name, value))

    def remove_attribute(self, name: str) -> None:
        """Remove every ``a=name``."""
        self.attributes = [attr for attr in self.attributes if attr[0] != name]

    def _own_direction(self) -> str | None:
        for name, value in self.attributes:
            if value is None and name in DIRECTIONS:
                return name
        return None

    def _set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        self.attributes = [
            attr for attr in self.attributes if not (attr[1] is None and attr[0] in DIRECTIONS)]
        self.attributes.append((direction, None))


@dataclass
class MediaDescription(_Attributes):
    """One m= section with its c=, b= and a= lines (RFC 4566 section 5.14)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    attributes: list[Attribute] = field(default_factory=list)
    connection: Connection | None = None
    port_count: int | None = None
    title: str | None = None
    bandwidths: list[tuple[str, int]] = field(default_factory=list)
    key: str | None = None

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload types (for RTP/AVP-family protocols; non-numeric ones skipped)."""
        return [int(fmt) for fmt in self.formats if len(fmt) <= 3 and _is_digits(fmt)]

    @property
    def rtpmaps(self) -> dict[int, tuple[str, int, int]]:
        """payload type -> (encoding, clock rate, channels) from a=rtpmap (RFC 4566 section 6).

        Static payload types listed in the m= line without an rtpmap get their RFC 3551 values.
        Malformed rtpmap lines are skipped, as attributes a receiver does not understand are
        (RFC 4566 section 5.13): one bad line must not fail a whole offer.
        """
        result: dict[int, tuple[str, int, int]] = {}
        for value in self.get_attributes("rtpmap"):
            match = _RTPMAP_RE.fullmatch(value)
            if match is None:
                continue
            channels = int(match.group(4)) if match.group(4) else 1
            result[int(match.group(1))] = (match.group(2), int(match.group(3)), channels)
        for payload_type in self.payload_types:
            if payload_type not in result and payload_type in STATIC_PAYLOAD_TYPES:
                result[payload_type] = STATIC_PAYLOAD_TYPES[payload_type]
        return result

    @property
    def fmtps(self) -> dict[int, str]:
        """payload type -> format parameters from a=fmtp (RFC 4566 section 6); malformed lines skipped."""
        result: dict[int, str] = {}
        for value in self.get_attributes("fmtp"):
            match = _FMTP_RE.fullmatch(value)
            if match is None:
                continue
            result[int(match.group(1))] = match.group(2)
        return result

    @property
    def ptime(self) -> int | None:
        """a=ptime in whole milliseconds (RFC 4566 section 6), or None when absent or malformed."""
        value = self.get_attribute("ptime")
        match = _PTIME_RE.fullmatch(value) if value is not None else None
        return int(match.group(1)) if match is not None else None

    @property
    def direction(self) -> str:
        """This stream's direction attribute, "sendrecv" when it has none (RFC 3264 section 5.1).

        See :meth:`SessionDescription.direction_of` for the value that also considers the session level.
        """
        return self._own_direction() or "sendrecv"

    @direction.setter
    def direction(self, direction: str) -> None:
        self._set_direction(direction)

    def lines(self) -> list[str]:
        """The m= section as SDP lines, in RFC 4566 order (m i c b k a)."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.title is not None:
            out.append(f"i={self.title}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={kind}:{value}" for kind, value in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attribute_lines(self.attributes))
        return out


@dataclass
class SessionDescription(_Attributes):
    """A whole session description (RFC 4566 section 5): session-level fields and media sections.

    Fields this class does not interpret (u=, e=, p=, r=, z=, k=) are kept as raw text and written back.
    """

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    times: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])
    media: list[MediaDescription] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    bandwidths: list[tuple[str, int]] = field(default_factory=list)
    repeats: list[str] = field(default_factory=list)
    zone: str | None = None
    key: str | None = None
    version: int = 0

    @property
    def direction(self) -> str | None:
        """The session-level direction attribute, or None when there is none."""
        return self._own_direction()

    @direction.setter
    def direction(self, direction: str) -> None:
        self._set_direction(direction)

    def direction_of(self, media: MediaDescription) -> str:
        """A stream's direction: its own attribute, else the session's, else sendrecv (RFC 3264 5.1)."""
        return media._own_direction() or self._own_direction() or "sendrecv"

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The c= that applies to ``media``: its own, else the session-level one (RFC 4566 5.7)."""
        return media.connection or self.connection

    def lines(self) -> list[str]:
        """Every SDP line in RFC 4566 order."""
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={email}" for email in self.emails)
        out.extend(f"p={phone}" for phone in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={kind}:{value}" for kind, value in self.bandwidths)
        for start, stop in self.times or [(0, 0)]:
            out.append(f"t={start} {stop}")
        out.extend(f"r={repeat}" for repeat in self.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attribute_lines(self.attributes))
        for media in self.media:
            out.extend(media.lines())
        return out

    def __str__(self) -> str:
        return "\r\n".join(self.lines()) + "\r\n"

    def serialize(self) -> bytes:
        """The description as bytes with CRLF line ends (RFC 4566 section 5)."""
        return str(self).encode("utf-8", "surrogateescape")


def _is_digits(text: str) -> bool:
    """``text`` is one or more of 0-9 (``str.isdigit`` alone also takes digits ``int`` refuses, "²")."""
    return text.isascii() and text.isdigit()


def _int_field(text: str, what: str, maximum: int) -> int:
    if len(text) <= 20 and text.isascii() and text.isdigit():
        value = int(text)
        if value <= maximum:
            return value
    raise SdpParseError(f"invalid {what}: {text[:30]!r}")


def _parse_origin(value: str) -> Origin:
    parts = value.split(" ")
    if len(parts) != 6 or not all(parts):
        raise SdpParseError(f"invalid o= line: {value[:60]!r}")
    username, session_id, version, nettype, addrtype, address = parts
    if not _is_digits(session_id):
        raise SdpParseError(f"invalid o= sess-id: {session_id[:30]!r}")
    return Origin(username, session_id, _int_field(version, "o= sess-version", 2**64 - 1),
                  nettype, addrtype, address)


def _parse_connection(value: str) -> Connection:
    parts = value.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SdpParseError(f"invalid c= line: {value[:60]!r}")
    nettype, addrtype, address_text = parts
    address, *extra = address_text.split("/")
    if not address or len(extra) > 2:
        raise SdpParseError(f"invalid c= address: {address_text[:60]!r}")
    ttl = count = None
    if addrtype == "IP4" and extra:
        ttl = _int_field(extra[0], "c= TTL", 255)
        if len(extra) == 2:
            count = _int_field(extra[1], "c= address count", 65535)
    elif addrtype == "IP6" and extra:
        if len(extra) > 1:
            raise SdpParseError(f"invalid c= address (IP6 has no TTL): {address_text[:60]!r}")
        count = _int_field(extra[0], "c= address count", 65535)
    elif extra:
        raise SdpParseError(f"invalid c= address: {address_text[:60]!r}")
    return Connection(address, addrtype, nettype, ttl, count)


def _parse_bandwidth(value: str) -> tuple[str, int]:
    kind, colon, amount = value.partition(":")
    if not colon or _TOKEN_RE.fullmatch(kind) is None:
        raise SdpParseError(f"invalid b= line: {value[:60]!r}")
    return kind, _int_field(amount, "b= bandwidth", 2**64 - 1)


def _parse_media(value: str) -> MediaDescription:
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise SdpParseError(f"invalid m= line: {value[:60]!r}")
    media, port_text, proto, *formats = parts
    if media not in _COMMON_TOKENS and _TOKEN_RE.fullmatch(media) is None:
        raise SdpParseError(f"invalid m= media: {media[:30]!r}")
    port_part, slash, count_part = port_text.partition("/")
    port = _int_field(port_part, "m= port", 65535)
    port_count = _int_field(count_part, "m= port count", 65535) if slash else None
    return MediaDescription(media, port, proto, formats, port_count=port_count)


def _parse_attribute(value: str) -> Attribute:
    name, colon, attr_value = value.partition(":")
    if name not in _COMMON_TOKENS and _TOKEN_RE.fullmatch(name) is None:
        raise SdpParseError(f"invalid a= attribute name: {name[:30]!r}")
    return (name, attr_value if colon else None)


def parse_sdp(data: str | bytes) -> SessionDescription:
    """Parse a session description (RFC 4566 section 5); raises SdpParseError naming the fault.

    v=, o= and s= are required in that order; a missing t= is tolerated (t=0 0 is assumed); every
    m= section needs a c= unless the session has one (section 5.7).
    """
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_SDP_SIZE:
            raise SdpParseError(f"SDP larger than {MAX_SDP_SIZE} bytes")
        text = bytes(data).decode("utf-8", "surrogateescape")
    else:
        text = data
        if len(text) > MAX_SDP_SIZE:
            raise SdpParseError(f"SDP larger than {MAX_SDP_SIZE} bytes")
    session = SessionDescription(times=[])
    seen: set[str] = set()  # of v, o and s
    number = 0  # of the last line read
    head = _HEAD_RE.match(text)
    if head is not None:
        user, session_id, version, nettype, addrtype, address, name, c_net, c_type, c_address, start, stop = (
            head.groups())
        session.origin = Origin(user, session_id, int(version), nettype, addrtype, address)
        session.session_name = name
        number = 3
        if c_address is not None:
            session.connection = Connection(c_address, c_type, c_net)
            number += 1
        if start is not None:
            session.times.append((int(start), int(stop)))
            number += 1
        seen.update("vos")
        text = text[head.end():]
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines and not number:
        raise SdpParseError("empty SDP")
    current: MediaDescription | None = None
    for line in lines:
        number += 1
        kind = line[:1]
        if line[1:2] != "=" or kind not in _LINE_KINDS:
            raise SdpParseError(f"line {number}: not <type>=<value>: {line[:40]!r}")
        value = line[2:]
        if kind == "a" and number > 1:  # most lines: no strip, the same at both levels
            (session if current is None else current).attributes.append(_parse_attribute(value))
            continue
        if kind in "ocmtb":
            value = value.strip(" ")  # trailing blanks some endpoints send in structured lines
        if number == 1 and kind != "v":
            raise SdpParseError("the first line must be v=")
        if kind == "m":
            current = _parse_media(value)
            session.media.append(current)
            continue
        if current is not None:
            _parse_media_line(current, kind, value, number)
            continue
        if kind in "vos":
            if kind in seen:
                raise SdpParseError(f"line {number}: more than one {kind}= line")
            seen.add(kind)
        _parse_session_line(session, kind, value, number)
    for required in "os":
        if required not in seen:
            raise SdpParseError(f"missing {required}= line")
    if session.connection is None:
        for media in session.media:
            if media.connection is None:
                raise SdpParseError(f"missing c= for m={media.media} (and no session-level c=)")
    if not session.times:
        session.times = [(0, 0)]
    return session


def _parse_session_line(session: SessionDescription, kind: str, value: str, number: int) -> None:
    if kind == "v":
        if value != "0":
            raise SdpParseError(f"unsupported SDP version v={value[:10]}")
    elif kind == "o":
        session.origin = _parse_origin(value)
    elif kind == "s":
        session.session_name = value
    elif kind == "c":
        session.connection = _parse_connection(value)
    elif kind == "t":
        start, _, stop = value.partition(" ")
        session.times.append(
            (_int_field(start, "t= start", 2**64 - 1), _int_field(stop, "t= stop", 2**64 - 1)))
    elif kind == "i":
        session.information = value
    elif kind == "u":
        session.uri = value
    elif kind == "e":
        session.emails.append(value)
    elif kind == "p":
        session.phones.append(value)
    elif kind == "b":
        session.bandwidths.append(_parse_bandwidth(value))
    elif kind == "r":
        session.repeats.append(value)
    elif kind == "z":
        session.zone = value
    elif kind == "k":
        session.key = value
    elif kind == "a":
        session.attributes.append(_parse_attribute(value))
    else:
        raise SdpParseError(f"line {number}: unknown or misplaced {kind}= line at session level")


def _parse_media_line(media: MediaDescription, kind: str, value: str, number: int) -> None:
    if kind == "c":
        media.connection = _parse_connection(value)
    elif kind == "i":
        media.title = value
    elif kind == "b":
        media.bandwidths.append(_parse_bandwidth(value))
    elif kind == "k":
        media.key = value
    elif kind == "a":
        media.attributes.append(_parse_attribute(value))
    else:
        raise SdpParseError(f"line {number}: {kind}= line not allowed in a media section")
