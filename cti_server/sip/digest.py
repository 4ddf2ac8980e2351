"""HTTP digest authentication for SIP (RFC 8760, RFC 7616, RFC 2617, RFC 3261 section 22), sans-IO.

``DigestAuthenticator`` builds challenges (one ``WWW-Authenticate`` value per algorithm, preferred
first, RFC 8760 section 2.3) and verifies ``Authorization`` values; the caller passes ``now`` so tests
own the clock. Nonces are self-validating: an issue time, a random salt and a MAC of both keyed by a
server secret, so no per-nonce state is needed to know that a nonce is ours and how old it is. An
expired nonce with an otherwise correct response gets a fresh challenge with ``stale=true`` (RFC 7616
section 3.3). A small bounded map of the highest nonce-count seen per nonce rejects replays with
qop=auth (RFC 7616 section 3.4); old phones that answer without qop (RFC 2069 style) are accepted
within the nonce lifetime.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import itertools
import os
import re
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from cti_server.config import SipUserConfig
from cti_server.sip.memo import remember
from cti_server.sip.message import random_bytes

log = structlog.get_logger(__name__)

try:  # CPython's own MD5 answers in about half the time of OpenSSL 3's (no provider look-up per hash)
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - a build without it
    _md5 = hashlib.md5

#: RFC 8760 section 2.2 algorithms we implement, by their ``algorithm`` token.
ALGORITHMS: dict[str, Callable[..., hashlib._Hash]] = {"MD5": _md5, "SHA-256": hashlib.sha256}
_HEX_LENGTH = {"MD5": 32, "SHA-256": 64}
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
_NONCE_SALT_BYTES = 8
_NONCE_MAC_BYTES = 16
_NONCE_BYTES = 8 + _NONCE_SALT_BYTES + _NONCE_MAC_BYTES


class DigestParseError(ValueError):
    """An ``Authorization`` value that RFC 7616 section 3.4 does not allow; ``reason`` names the fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hash_hex(algorithm: str, text: str) -> str:
    """``H(text)`` of RFC 7616 section 3.4.1 as lowercase hex (text encoded as UTF-8)."""
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``A1 = username:realm:password`` hashed (RFC 7616 section 3.4.2, non-session algorithms)."""
    return hash_hex(algorithm, f"{username}:{realm}:{password}")


_ha2s: dict[tuple[str, str], str] = {}


def compute_response(
    algorithm: str,
    ha1: str,
    *,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The ``response`` value: ``KD(HA1, nonce:nc:cnonce:qop:HA2)`` with qop=auth (RFC 7616 section
    3.4.1), or ``KD(HA1, nonce:HA2)`` without qop (RFC 2069 / RFC 2617 section 3.2.2.1)."""
    a2 = f"{method}:{uri}"
    ha2 = _ha2s.get((algorithm, a2))
    if ha2 is None:  # a phone registers with the same method and URI every time: hash it once
        ha2 = remember(_ha2s, (algorithm, a2), hash_hex(algorithm, a2), 1024)
    if qop is None:
        return hash_hex(algorithm, f"{ha1}:{nonce}:{ha2}")
    return hash_hex(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def quote(value: str) -> str:
    """A quoted-string (RFC 3261 section 25.1): backslash-escape ``"`` and ``\\``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------------
# Authorization header parsing


@dataclass(frozen=True)
class DigestCredentials:
    """The parameters of one ``Authorization: Digest ...`` value (RFC 7616 section 3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)


def parse_authorization(value: str) -> DigestCredentials:
    """Parse an ``Authorization`` / ``Proxy-Authorization`` value of the Digest scheme.

    Raises ``DigestParseError`` naming the fault: another scheme, a syntax error, a repeated or
    missing parameter, an unsupported algorithm or qop, a malformed nc or response.
    """
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() != "digest":
        raise DigestParseError(f"authorization scheme {scheme!r} is not Digest")
    params = parse_auth_params(rest)
    for name in _REQUIRED:
        if name not in params:
            raise DigestParseError(f"digest parameter {name!r} is missing")
    algorithm = params.get("algorithm", "MD5")
    canonical = _ALGORITHM_NAMES.get(algorithm) or _ALGORITHM_NAMES.get(algorithm.lower())
    if canonical is None:
        raise DigestParseError(f"digest algorithm {algorithm!r} is not supported")
    qop = params.get("qop")
    nc = params.get("nc")
    cnonce = params.get("cnonce")
    if qop is not None:
        if qop.lower() != "auth":
            raise DigestParseError(f"digest qop {qop!r} is not supported (only auth)")
        qop = "auth"
        if nc is None or cnonce is None:
            raise DigestParseError("digest qop=auth needs nc and cnonce")
        if len(nc) != 8 or not _is_hex(nc):
            raise DigestParseError(f"digest nc {nc!r} is not 8 hex digits")
    response = params["response"]
    if len(response) != _HEX_LENGTH[canonical] or not _is_hex(response):
        raise DigestParseError(f"digest response is not a {canonical} hex digest")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=response.lower(),
        algorithm=canonical,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        opaque=params.get("opaque"),
        params=params,
    )


_TOKEN_RE = r"[-.!%*_+`'~0-9A-Za-z]+"
_AUTH_PARAM_RE = re.compile(
    rf'[ \t\r\n,]*({_TOKEN_RE})[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN_RE}))[ \t]*(?:,|\Z)'
)
_ESCAPED_RE = re.compile(r"\\(.)")
# What phones send: ``name=value`` or ``name="value"`` without backslashes, separated by commas. The
# whole list is checked with one match, then its pairs are read with one findall (``_AUTH_PARAM_RE``
# would take the same text one parameter at a time).
_SIMPLE_AUTH_PARAM = rf'{_TOKEN_RE}=(?:"[^"\\]*"|{_TOKEN_RE})'
_SIMPLE_AUTH_PARAMS_RE = re.compile(
    rf"[ \t]*{_SIMPLE_AUTH_PARAM}(?:[ \t]*,[ \t]*{_SIMPLE_AUTH_PARAM})*[ \t]*")
_SIMPLE_AUTH_PAIR_RE = re.compile(rf'({_TOKEN_RE})=(?:"([^"\\]*)"|({_TOKEN_RE}))')
_ALGORITHM_NAMES: dict[str, str] = {**{a: a for a in ALGORITHMS}, **{a.lower(): a for a in ALGORITHMS}}


def parse_auth_params(text: str) -> dict[str, str]:
    """``auth-param *(COMMA auth-param)`` with token or quoted-string values (RFC 7235 section 2.1);
    parameter names are lowercased, quoted values unescaped. Commas inside quotes are kept.

    A regular expression takes well-formed input in one pass (the registrar's hot path); anything
    it does not take goes through the character walk below, which names the fault.
    """
    if _SIMPLE_AUTH_PARAMS_RE.fullmatch(text) is not None:
        pairs = _SIMPLE_AUTH_PAIR_RE.findall(text)
        simple = {name.lower(): quoted or token for name, quoted, token in pairs}
        if len(simple) == len(pairs):
            return simple  # else a repeated name: the walk below names it
    params: dict[str, str] = {}
    position, length = 0, len(text)
    match = _AUTH_PARAM_RE.match
    while position < length:
        found = match(text, position)
        if found is None:
            if text[position:].strip(" \t\r\n,"):
                return _parse_auth_params_slowly(text)
            break
        name = found.group(1).lower()
        if name in params:
            raise DigestParseError(f"digest parameter {name!r} appears twice")
        quoted = found.group(2)
        if quoted is None:
            params[name] = found.group(3)
        else:
            params[name] = _ESCAPED_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        position = found.end()
    if not params:
        raise DigestParseError("digest credentials have no parameters")
    return params


def _parse_auth_params_slowly(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "= \t,":
            i += 1
        name = text[start:i].lower()
        if not name or not _is_token(name):
            raise DigestParseError(f"malformed digest parameter name near {text[start : start + 20]!r}")
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise DigestParseError(f"digest parameter {name!r} has no value")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            value, i = _read_quoted(text, i, name)
        else:
            start = i
            while i < n and text[i] not in ", \t":
                i += 1
            value = text[start:i]
            if not value or not _is_token(value):
                raise DigestParseError(f"digest parameter {name!r} has a malformed value")
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise DigestParseError(f"expected a comma after digest parameter {name!r}")
        if name in params:
            raise DigestParseError(f"digest parameter {name!r} appears twice")
        params[name] = value
    if not params:
        raise DigestParseError("digest credentials have no parameters")
    return params


def _read_quoted(text: str, i: int, name: str) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise DigestParseError(f"digest parameter {name!r} has an unterminated quoted string")


_TOKEN_FULL = re.compile(_TOKEN_RE)
_HEX_FULL = re.compile(r"[0-9a-fA-F]*")


def _is_token(text: str) -> bool:
    return _TOKEN_FULL.fullmatch(text) is not None


def _is_hex(text: str) -> bool:
    return _HEX_FULL.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------
# Nonces


class NonceState(enum.Enum):
    """What a nonce check found: ours and fresh, ours but expired, or not ours at all."""

    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


class NonceMint:
    """Self-validating nonces: ``base64url(issued_at | salt | MAC(issued_at | salt))``, the MAC being
    keyed BLAKE2s (RFC 7693) under a key derived from ``secret``, cut to 16 bytes.

    Any server holding ``secret`` can check a nonce without state (RFC 7616 section 3.3 suggests a
    time stamp and a private key); the salt keeps every nonce unique for nonce-count tracking.
    Keyed BLAKE2s costs about a third of an HMAC-SHA256 through OpenSSL, and every registration
    takes two (issue and check).
    """

    def __init__(self, secret: bytes, lifetime: float) -> None:
        self._key = hashlib.sha256(b"cti-server nonce key:" + secret).digest()
        self.lifetime = lifetime

    def issue(self, now: float) -> str:
        """A new nonce stamped with ``now`` (seconds, the caller's clock)."""
        body = struct.pack(">Q", int(now)) + random_bytes(_NONCE_SALT_BYTES)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii").rstrip("=")

    def check(self, nonce: str, now: float) -> NonceState:
        """VALID when the MAC matches and the nonce is younger than ``lifetime``."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return NonceState.INVALID
        if len(raw) != _NONCE_BYTES:
            return NonceState.INVALID
        body, mac = raw[:-_NONCE_MAC_BYTES], raw[-_NONCE_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return NonceState.INVALID
        issued_at = self.issued_at(raw)
        if issued_at > now + 5:  # issued in the future: not a clock we trust
            return NonceState.INVALID
        return NonceState.VALID if now - issued_at < self.lifetime else NonceState.STALE

    @staticmethod
    def issued_at(raw: bytes) -> int:
        value: int = struct.unpack(">Q", raw[:8])[0]
        return value

    def _mac(self, body: bytes) -> bytes:
        return hashlib.blake2s(body, key=self._key, digest_size=_NONCE_MAC_BYTES).digest()


class NonceCountLedger:
    """Highest nonce-count seen per nonce, so a replayed ``nc`` is refused (RFC 7616 section 3.4).

    Bounded: entries older than the nonce lifetime are dropped, and beyond ``max_entries`` the oldest
    go first (a replay of an evicted nonce is then caught only by its expiry).
    """

    def __init__(self, lifetime: float, max_entries: int = 200_000) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._seen: dict[str, tuple[int, float]] = {}

    def accept(self, nonce: str, nc: int, now: float) -> bool:
        """True (and remembered) when ``nc`` is higher than any count seen with ``nonce``."""
        previous = self._seen.get(nonce)
        if previous is not None and nc <= previous[0]:
            return False
        if previous is None and len(self._seen) >= self.max_entries:
            self._prune(now)
        self._seen[nonce] = (nc, previous[1] if previous else now)
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        # Entries are in first-seen order, so the expired ones are at the front; when none has
        # expired yet, drop the oldest tenth at once so a full ledger costs O(1) per new nonce.
        horizon = now - self.lifetime
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest][1] >= horizon:
                break
            del seen[oldest]
        if len(seen) >= self.max_entries:
            for key in list(itertools.islice(seen, max(1, self.max_entries // 10))):
                del seen[key]


# ---------------------------------------------------------------------------------------------
# Users and verification


@dataclass(frozen=True)
class DigestUser:
    """One account's HA1 per algorithm (``H(username:realm:password)``, RFC 8760 section 2.5)."""

    username: str
    ha1: Mapping[str, str]

    @classmethod
    def from_config(cls, user: SipUserConfig, realm: str) -> DigestUser:
        """HA1s from a plain password (both algorithms) or the stored ``ha1_md5`` / ``ha1_sha256``."""
        ha1: dict[str, str] = {}
        if user.password:
            for algorithm in ALGORITHMS:
                ha1[algorithm] = compute_ha1(algorithm, user.username, realm, user.password)
        if user.ha1_md5:
            ha1["MD5"] = user.ha1_md5.lower()
        if user.ha1_sha256:
            ha1["SHA-256"] = user.ha1_sha256.lower()
        return cls(user.username, ha1)


UserLookup = Callable[[str], Awaitable[DigestUser | None]]
"""``await lookup(username)``: an account that is not in the configuration (the store's), or None."""


def users_from_config(users: Iterable[SipUserConfig], realm: str) -> dict[str, DigestUser]:
    """The account table for ``DigestAuthenticator``; warns once about plain-text passwords."""
    table = {u.username: DigestUser.from_config(u, realm) for u in users}
    plain = sorted(u.username for u in users if u.password)
    if plain:
        log.warning(
            "sip_plaintext_passwords",
            users=plain,
            hint="store sip.users[].ha1_sha256 / ha1_md5 instead of password",
        )
    return table


class AuthOutcome(enum.Enum):
    """Result of checking one request's credentials."""

    OK = "ok"  # authenticated as ``username``
    MISSING = "missing"  # no credentials for our realm: challenge (401)
    FAILED = "failed"  # unknown user, wrong password, foreign nonce: challenge again (401)
    STALE = "stale"  # correct response but the nonce expired or nc replayed: challenge with stale=true
    MALFORMED = "malformed"  # credentials that do not parse: 400


@dataclass(frozen=True)
class AuthResult:
    """What ``DigestAuthenticator.verify`` decided, with a reason for logs and the 400 phrase."""

    outcome: AuthOutcome
    username: str | None = None
    reason: str = ""
    algorithm: str | None = None  # of an OK result: what the peer answered with
    qop: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


_NO_CREDENTIALS = AuthResult(AuthOutcome.MISSING, reason="no credentials for our realm")


class DigestAuthenticator:
    """Server side of RFC 8760 digest: challenges and verification for one realm.

    ``algorithms`` are offered in order (preferred first); ``secret`` signs nonces (random per
    process unless given, so several nodes that share it accept each other's nonces).
    """

    def __init__(
        self,
        realm: str,
        users: Mapping[str, DigestUser],
        *,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        nonce_lifetime: float = 300,
        secret: bytes | None = None,
        lookup: UserLookup | None = None,
        lookup_cache_seconds: float = 10.0,
    ) -> None:
        self.realm = realm
        self.users = dict(users)
        self.lookup = lookup
        self.lookup_cache_seconds = lookup_cache_seconds
        self._looked_up: dict[str, tuple[float, DigestUser | None]] = {}
        self.algorithms = tuple(algorithms)
        for algorithm in self.algorithms:
            if algorithm not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        secret = secret if secret is not None else os.urandom(32)
        self.nonces = NonceMint(secret, nonce_lifetime)
        self.nonce_counts = NonceCountLedger(nonce_lifetime)
        self.opaque = hmac.new(secret, b"opaque:" + realm.encode(), hashlib.sha256).hexdigest()[:24]
        # Everything but the nonce is fixed per algorithm: format it once (RFC 7616 section 3.3 order).
        self._challenge_parts = [
            (f"Digest realm={quote(realm)}, nonce=", f', opaque="{self.opaque}", algorithm={a}, qop="auth"')
            for a in self.algorithms
        ]

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values, one per algorithm in preference order, sharing one nonce."""
        nonce = self.nonces.issue(now)  # base64url: nothing in it needs quoting
        suffix = ", stale=true" if stale else ""
        return [f'{head}"{nonce}"{tail}{suffix}' for head, tail in self._challenge_parts]

    def verify(self, method: str, authorizations: Iterable[str], now: float) -> AuthResult:
        """Check the ``Authorization`` values of a request against our realm and the static users.

        Values for other realms are ignored (RFC 3261 section 22.4); the first one for ours decides.
        """
        found = self._credentials_for_realm(authorizations)
        if isinstance(found, AuthResult):
            return found
        return self._verify_credentials(method, found, now, self.users.get(found.username))

    async def authenticate(self, method: str, authorizations: Iterable[str], now: float) -> AuthResult:
        """``verify``, and for a user that is not among the static ones, ``await lookup(username)``
        (the store's accounts), remembered for ``lookup_cache_seconds`` (found or not)."""
        found = self._credentials_for_realm(authorizations)
        if isinstance(found, AuthResult):
            return found
        user = self.users.get(found.username)
        if user is None and self.lookup is not None:
            user = await self._look_up(found.username, now)
        return self._verify_credentials(method, found, now, user)

    async def _look_up(self, username: str, now: float) -> DigestUser | None:
        assert self.lookup is not None
        cached = self._looked_up.get(username)
        if cached is not None and now - cached[0] < self.lookup_cache_seconds:
            return cached[1]
        user = await self.lookup(username)
        if len(self._looked_up) >= 10_000:
            self._looked_up.clear()
        self._looked_up[username] = (now, user)
        return user

    def _credentials_for_realm(self, authorizations: Iterable[str]) -> DigestCredentials | AuthResult:
        for value in authorizations:
            try:
                creds = parse_authorization(value)
            except DigestParseError as exc:
                return AuthResult(AuthOutcome.MALFORMED, reason=exc.reason)
            if creds.realm == self.realm:
                return creds
        return _NO_CREDENTIALS

    def _verify_credentials(
        self, method: str, creds: DigestCredentials, now: float, user: DigestUser | None
    ) -> AuthResult:
        if creds.algorithm not in self.algorithms:
            return AuthResult(AuthOutcome.FAILED, creds.username, f"algorithm {creds.algorithm} not offered")
        if creds.opaque is not None and not hmac.compare_digest(creds.opaque, self.opaque):
            return AuthResult(AuthOutcome.FAILED, creds.username, "opaque does not match")
        nonce_state = self.nonces.check(creds.nonce, now)
        if nonce_state is NonceState.INVALID:
            return AuthResult(AuthOutcome.FAILED, creds.username, "nonce was not issued by us")
        ha1 = user.ha1.get(creds.algorithm) if user is not None else None
        if ha1 is None:
            # Hash anyway so unknown users take as long as known ones.
            compute_response(creds.algorithm, "0" * _HEX_LENGTH[creds.algorithm], method=method,
                             uri=creds.uri, nonce=creds.nonce, qop=creds.qop, nc=creds.nc,
                             cnonce=creds.cnonce)
            return AuthResult(AuthOutcome.FAILED, creds.username, "unknown user or no hash for algorithm")
        expected = compute_response(
            creds.algorithm,
            ha1,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        if not hmac.compare_digest(expected.encode("ascii"), creds.response.encode("ascii")):
            return AuthResult(AuthOutcome.FAILED, creds.username, "wrong response (password)")
        if nonce_state is NonceState.STALE:
            return AuthResult(AuthOutcome.STALE, creds.username, "nonce expired")
        if creds.nc is not None and not self.nonce_counts.accept(creds.nonce, int(creds.nc, 16), now):
            return AuthResult(AuthOutcome.STALE, creds.username, "nonce-count replayed")
        return AuthResult(AuthOutcome.OK, creds.username, algorithm=creds.algorithm, qop=creds.qop)
