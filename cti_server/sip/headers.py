"""SIP header fields: an ordered, case-insensitive multi-map (RFC 3261 section 7.3).

Header names are case-insensitive and have compact forms (RFC 3261 section 7.3.3, plus the compact forms
registered by later RFCs); both are stored under the canonical long name. Header fields whose grammar is a
comma-separated list (``1#`` / ``#`` in RFC 3261 section 25) can be split into their values with
:meth:`Headers.get_all`; header fields whose values may contain unquoted commas (authentication
challenges and credentials, Date, ...) are never split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

COMPACT_FORMS: dict[str, str] = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}
"""Compact header names (RFC 3261 section 7.3.3 and the IANA SIP parameters registry) -> long names."""

_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info",
    "Event", "Expires", "From", "Identity", "Identity-Info", "In-Reply-To", "Max-Forwards", "Min-Expires",
    "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
    "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Remote-Party-ID", "Replaces", "Reply-To",
    "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server", "Service-Route",
    "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State", "Supported",
    "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)

_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update({short: long for short, long in COMPACT_FORMS.items()})

MULTI_VALUE_HEADERS: frozenset[str] = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info",
        "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Proxy-Require",
        "Record-Route", "Reject-Contact", "Request-Disposition", "Require", "Route", "Service-Route",
        "Supported", "Unsupported", "Via", "Warning",
    )
)
"""Lower-case names of header fields whose values are comma-separated lists (RFC 3261 section 7.3.1).

WWW-Authenticate, Authorization, Proxy-Authenticate, Proxy-Authorization, Authentication-Info, Date,
Retry-After and every unknown header field are deliberately absent: their values contain unquoted commas
or their grammar is unknown to us.
"""

_name_cache: dict[str, tuple[str, str]] = {}
_NAME_CACHE_LIMIT = 2048


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name: long form, conventional capitalisation (RFC 3261 7.3.3).

    Unknown header names are returned as given (their case is kept for the wire).
    """
    return name_key(name)[1]


def name_key(name: str) -> tuple[str, str]:
    """(lower-case lookup key, canonical spelling) of a header name (RFC 3261 7.3.3), cached."""
    cached = _name_cache.get(name)
    if cached is not None:
        return cached
    lower = name.lower()
    canonical = _CANONICAL.get(lower, name)
    result = (canonical.lower(), canonical)
    if len(_name_cache) < _NAME_CACHE_LIMIT:
        _name_cache[name] = result
    return result


_keys: dict[str, str] = {}


def _key_of(name: str) -> str:
    """The lower-case lookup key of a header name (``name_key(name)[0]``), from a flat cache."""
    key = _keys.get(name)
    if key is None:
        key = name_key(name)[0]
        if len(_keys) < _NAME_CACHE_LIMIT:
            _keys[name] = key
    return key


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value on commas outside quoted strings and ``<>`` (RFC 3261 7.3.1).

    Empty elements (``a,,b``) are dropped, as the ``#rule`` of RFC 3261 section 25 allows them.
    """
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [part for part in (p.strip() for p in value.split(",")) if part]
    parts: list[str] = []
    current: list[str] = []
    for piece in _LIST_PIECE_RE.findall(value):
        if piece == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(piece)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


# A quoted string (possibly unterminated), an <...> (possibly unclosed), a run of other text, or a comma.
_LIST_PIECE_RE = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?$)|<[^>]*>?|[^,"<]+|,', re.DOTALL)


class Headers:
    """An ordered, case-insensitive multi-map of SIP header fields (RFC 3261 section 7.3).

    Every header line is kept in wire order as (canonical name, value); compact names are stored under
    their long names. ``get``/``get_all`` split comma-separated list headers (:data:`MULTI_VALUE_HEADERS`).
    Lookups go through an index of the lines' values by lower-case name, built on the first lookup (the
    parser hands one over ready-made), kept up to date by ``add`` and dropped by the other edits.
    """

    __slots__ = ("_entries", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        # Each entry is (lower-case key, canonical name, value).
        self._entries: list[tuple[str, str, str]] = []
        self._index: dict[str, list[str]] | None = None
        if items is not None:
            for name, value in items:
                self.add(name, value)

    @classmethod
    def _from_entries(
        cls, entries: list[tuple[str, str, str]], index: dict[str, list[str]] | None = None
    ) -> Headers:
        """Build from already canonicalised (key, name, value) entries (the parser's fast path);
        ``index`` (key -> values in wire order) must describe exactly ``entries`` when given."""
        headers = cls.__new__(cls)
        headers._entries = entries
        headers._index = index
        return headers

    def _lookup(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key, _, value in self._entries:
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)
        self._index = index
        return index

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (the first list element for list headers), or None."""
        key = _keys.get(name) or _key_of(name)
        index = self._index
        values = (index if index is not None else self._lookup()).get(key)
        if values is None:
            return None
        if key in MULTI_VALUE_HEADERS:
            for value in values:
                if "," in value or not value.strip():
                    parts = split_header_values(value)
                    if not parts:
                        continue
                    return parts[0]
                return value
            return None
        return values[0]

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` in wire order; list headers are split on commas."""
        key = _keys.get(name) or _key_of(name)
        index = self._index
        values = (index if index is not None else self._lookup()).get(key)
        if values is None:
            return []
        if key in MULTI_VALUE_HEADERS:
            split: list[str] = []
            for value in values:
                split.extend(split_header_values(value))
            return split
        return values.copy()

    def get_lines(self, name: str) -> list[str]:
        """Every header line's value of ``name`` in wire order, never split."""
        index = self._index
        values = (index if index is not None else self._lookup()).get(_keys.get(name) or _key_of(name))
        return [] if values is None else values.copy()

    def count(self, name: str) -> int:
        """How many header lines named ``name`` there are."""
        index = self._index
        values = (index if index is not None else self._lookup()).get(_keys.get(name) or _key_of(name))
        return 0 if values is None else len(values)

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one line holding ``value`` (kept at the first one's place)."""
        key, canonical = _name_cache.get(name) or name_key(name)
        lines = self._index.get(key) if self._index is not None else None
        single = lines is not None and len(lines) == 1  # known to be the only line: no others to drop
        if self._index is not None:
            self._index[key] = [value]
        for index, entry in enumerate(self._entries):
            if entry[0] == key:
                self._entries[index] = (key, canonical, value)
                if not single:
                    self._entries[index + 1:] = [e for e in self._entries[index + 1:] if e[0] != key]
                return
        self._entries.append((key, canonical, value))

    def add(self, name: str, value: str) -> None:
        """Append a ``name: value`` header line."""
        key, canonical = _name_cache.get(name) or name_key(name)
        self._entries.append((key, canonical, value))
        index = self._index
        if index is not None:
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)

    def prepend(self, name: str, value: str) -> None:
        """Insert a ``name: value`` header line before every other line (e.g. a new top Via)."""
        key, canonical = _name_cache.get(name) or name_key(name)
        self._entries.insert(0, (key, canonical, value))
        self._index = None

    def remove(self, name: str) -> None:
        """Remove every ``name`` header line (no error when there is none)."""
        key = name_key(name)[0]
        self._entries = [entry for entry in self._entries if entry[0] != key]
        self._index = None

    def remove_first(self, name: str) -> str | None:
        """Remove the first list value of ``name`` (e.g. the top Via or Route) and return it."""
        key = name_key(name)[0]
        for index, (entry_key, canonical, value) in enumerate(self._entries):
            if entry_key != key:
                continue
            parts = split_header_values(value) if key in MULTI_VALUE_HEADERS else [value]
            if not parts:
                continue
            if len(parts) == 1:
                del self._entries[index]
            else:
                self._entries[index] = (key, canonical, ", ".join(parts[1:]))
            self._index = None
            return parts[0]
        return None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        index = self._index
        return (_keys.get(name) or _key_of(name)) in (index if index is not None else self._lookup())

    def items(self) -> list[tuple[str, str]]:
        """Every header line as (canonical name, value) in wire order."""
        return [(name, value) for _, name, value in self._entries]

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers._from_entries(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return (name for _, name, _ in self._entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._entries] == [(k, v) for k, _, v in other._entries]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"
