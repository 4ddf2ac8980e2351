"""Server configuration: a TOML file, overridden by ``CTI_...`` environment variables, validated at start.

Every section is a frozen dataclass. ``load_config`` walks the TOML table into those dataclasses and
names the dotted key of anything unknown or of the wrong type, so an operator sees
``sip.udp_port: expected int, got 'abc'`` instead of a traceback.

Environment overrides use a double underscore between levels: ``CTI_SIP__UDP_PORT=5070`` sets
``sip.udp_port``; ``CTI_HTTP__PORT=9090`` sets ``http.port``. Values are parsed as TOML scalars
(``true``, ``5070``, ``"text"``); a bare word that is not valid TOML is taken as a string.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_CONFIG_PATH = Path("config/cti-server.toml")
ENV_PREFIX = "CTI_"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; ``key`` is its dotted name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


@dataclass(frozen=True)
class HttpConfig:
    """The aiohttp edge: REST API, socket.io and the softphone pages."""

    host: str = "127.0.0.1"
    port: int = 8080

    def __post_init__(self) -> None:
        check_port("port", self.port)


@dataclass(frozen=True)
class SipTimersConfig:
    """RFC 3261 section 17 timer bases, in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


@dataclass(frozen=True)
class SipUserConfig:
    """A SIP account that may REGISTER. ``password`` is plain text (warned about); ``ha1_md5`` /
    ``ha1_sha256`` are the RFC 8760 hashed forms ``H(username:realm:password)``."""

    username: str
    password: str = ""
    ha1_md5: str = ""
    ha1_sha256: str = ""

    def __post_init__(self) -> None:
        if not (self.password or self.ha1_md5 or self.ha1_sha256):
            raise ConfigError("password", f"user {self.username!r} needs password, ha1_md5 or ha1_sha256")


REGISTRAR_BINDINGS = ("memory", "redis")


@dataclass(frozen=True)
class SipRegistrarConfig:
    """Where the registrar keeps its bindings (``[sip.registrar]``).

    ``bindings``: ``memory`` (one process) or ``redis`` (every server process on that Redis sees every
    registered phone, so a call arriving at one process rings a phone registered with another).
    ``redis_url``: "" reuses ``routing.redis_url``. ``redis_prefix``: the keys' prefix. With Redis, a
    REGISTER holds its AOR's lock across processes: ``lock_lease`` seconds at most (a crashed holder blocks
    the AOR that long), and a REGISTER that waits ``lock_wait`` seconds for it gets 503.
    """

    bindings: str = "memory"
    redis_url: str = ""
    redis_prefix: str = "cti:sip:bindings:"
    lock_lease: float = 5.0
    lock_wait: float = 2.0

    def __post_init__(self) -> None:
        check_choice("bindings", self.bindings, REGISTRAR_BINDINGS)
        check_redis_url("redis_url", self.redis_url, allow_empty=True)
        if not self.redis_prefix:
            raise ConfigError("redis_prefix", "must not be empty")
        if self.lock_lease < 0.1:
            raise ConfigError("lock_lease", "must be >= 0.1 seconds (a REGISTER holds it a few round trips)")
        if self.lock_wait <= 0:
            raise ConfigError("lock_wait", "must be > 0 seconds")


@dataclass(frozen=True)
class SipConfig:
    """SIP listeners, limits and the registrar's realm and users."""

    host: str = "127.0.0.1"
    udp_port: int = 5060
    tcp_port: int = 5060
    tls_port: int = 5061
    tls_certificate: str = ""
    tls_private_key: str = ""
    advertised_host: str = ""
    max_message_size: int = 65535
    tcp_idle_timeout: float = 300.0
    realm: str = "cti.local"
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    nonce_lifetime: int = 300
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts_per_user: int = 10
    user_agent: str = "cti-server"
    timers: SipTimersConfig = field(default_factory=SipTimersConfig)
    registrar: SipRegistrarConfig = field(default_factory=SipRegistrarConfig)
    users: tuple[SipUserConfig, ...] = ()

    def __post_init__(self) -> None:
        for name in ("udp_port", "tcp_port", "tls_port"):
            check_port(name, getattr(self, name))
        if self.max_message_size < 1500:
            raise ConfigError("max_message_size", "must be at least 1500 bytes")
        if self.tcp_idle_timeout <= 0:
            raise ConfigError("tcp_idle_timeout", f"must be > 0 seconds, got {self.tcp_idle_timeout}")
        for algorithm in self.digest_algorithms:
            check_choice("digest_algorithms", algorithm, ("SHA-256", "MD5"))
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ConfigError("min_expires", "need 0 < min_expires <= default_expires <= max_expires")
        if bool(self.tls_certificate) != bool(self.tls_private_key):
            raise ConfigError("tls_certificate", "tls_certificate and tls_private_key go together")


@dataclass(frozen=True)
class LogConfig:
    """Logging: ``format`` is ``auto`` (console on a terminal, JSON otherwise), ``console`` or ``json``."""

    level: str = "info"
    format: str = "auto"

    def __post_init__(self) -> None:
        check_choice("level", self.level, ("debug", "info", "warning", "error"))
        check_choice("format", self.format, ("auto", "console", "json"))


MEDIA_CODECS = ("PCMU", "PCMA")
RINGBACK_TONE_NAMES = ("north_america", "uk", "europe")  # cti_server.media.tones.RINGBACK_TONES


@dataclass(frozen=True)
class MediaConfig:
    """RTP media anchoring (RFC 3550 / 3264 / 4733 / 4961): port range, codecs, timers, music on hold."""

    host: str = "127.0.0.1"
    advertised_host: str = ""
    rtp_port_min: int = 20000
    rtp_port_max: int = 29999
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    ptime: int = 20
    dtmf_payload_type: int = 101
    symmetric_rtp: bool = True
    rtp_timeout: float = 60.0
    rtcp_interval: float = 5.0
    moh_file: str = ""
    ringback_tone: str = "north_america"
    relay_thread: bool = True
    receive_buffer_ms: int = 100

    def __post_init__(self) -> None:
        check_port("rtp_port_min", self.rtp_port_min)
        check_port("rtp_port_max", self.rtp_port_max)
        if self.rtp_port_min < 1024 or self.rtp_port_min % 2:
            raise ConfigError("rtp_port_min", f"expected an even port >= 1024, got {self.rtp_port_min}")
        if self.rtp_port_max < self.rtp_port_min + 1:
            raise ConfigError("rtp_port_max", "must be above rtp_port_min (each call leg takes two ports)")
        if not self.codecs:
            raise ConfigError("codecs", "name at least one codec")
        for codec in self.codecs:
            check_choice("codecs", codec, MEDIA_CODECS)
        if self.ptime not in (10, 20, 30, 40, 60):
            raise ConfigError("ptime", f"expected 10, 20, 30, 40 or 60 ms, got {self.ptime}")
        if not 96 <= self.dtmf_payload_type <= 127:
            raise ConfigError("dtmf_payload_type", f"expected a dynamic payload type 96-127, got "
                              f"{self.dtmf_payload_type}")
        if self.rtp_timeout < 0:
            raise ConfigError("rtp_timeout", "must be >= 0 (0 turns the timeout off)")
        if self.rtcp_interval < 0:
            raise ConfigError("rtcp_interval", "must be >= 0 (0 sends no RTCP reports)")
        check_choice("ringback_tone", self.ringback_tone, RINGBACK_TONE_NAMES)
        if self.receive_buffer_ms < 0:
            raise ConfigError("receive_buffer_ms", "must be >= 0 (0 keeps the kernel's default buffer)")


TRUNK_TRANSPORTS = ("udp", "tcp", "tls")
WAITING_SOUNDS = ("music", "ringback")

#: RFC 4028 section 4: Min-SE is never below 90 s. Tests lower this (monkeypatch) to run session timers
#: in seconds; nothing else should.
MIN_SE_FLOOR = 90


@dataclass(frozen=True)
class TrunkConfig:
    """A SIP trunk or PBX we exchange calls with (RFC 3261 section 16 peers, not registered users).

    ``allowed_sources`` lists the IP addresses or CIDR blocks that may send us calls as this trunk
    (empty: only ``host`` itself when it is an IP address). ``username``/``password`` answer the trunk's
    401/407 digest challenges (RFC 3261 section 22.2) on calls we send out. ``priority`` orders outbound
    failover: the lowest first, the next one on 503 or timeout. ``profile`` names an interop profile
    (``cti_server.calls.trunk_profiles``: header rewrites for that peer; "" = ``generic``).
    """

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    allowed_sources: tuple[str, ...] = ()
    username: str = ""
    password: str = ""
    realm: str = ""
    profile: str = ""
    priority: int = 100
    outbound: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name", "a trunk needs a name")
        if not self.host:
            raise ConfigError("host", f"trunk {self.name!r} needs a host")
        check_port("port", self.port)
        check_choice("transport", self.transport, TRUNK_TRANSPORTS)
        for source in self.allowed_sources:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise ConfigError("allowed_sources", f"not an IP address or CIDR block: {source!r}") from None
        if bool(self.username) != bool(self.password):
            raise ConfigError("username", f"trunk {self.name!r}: username and password go together")
        from cti_server.calls.trunk_profiles import profile_names  # here: cti_server.calls imports config

        if self.profile and self.profile not in profile_names():
            raise ConfigError("profile", f"trunk {self.name!r}: unknown profile {self.profile!r} "
                              f"(known: {', '.join(profile_names())})")


@dataclass(frozen=True)
class DidConfig:
    """A called number (DID) we answer: which call center it belongs to and whom it rings.

    ``number`` is matched on its digits (a leading ``+`` and separators are ignored). ``users`` are SIP
    usernames rung in parallel (their registered contacts, RFC 3261 section 16.6 forking); ``queue`` names a
    routing queue instead (``calls.queue_calls``: the call becomes a voice work item with ``priority`` and
    the minimum ``skills`` levels given here); ``waiting`` is what its callers hear while they wait:
    ``music`` (``media.moh_file``) or ``ringback`` (``media.ringback_tone``).
    """

    number: str
    call_center: str
    users: tuple[str, ...] = ()
    queue: str = ""
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    waiting: str = "music"

    def __post_init__(self) -> None:
        if not any(c.isdigit() for c in self.number):
            raise ConfigError("number", f"expected a phone number, got {self.number!r}")
        if not self.call_center:
            raise ConfigError("call_center", f"DID {self.number!r} needs a call_center")
        if bool(self.users) == bool(self.queue):
            raise ConfigError("users", f"DID {self.number!r}: give either users or queue")
        if self.priority < 0:
            raise ConfigError("priority", f"DID {self.number!r}: expected 0 or more, got {self.priority}")
        if any(level < 0 for level in self.skills.values()):
            raise ConfigError("skills", f"DID {self.number!r}: skill levels are 0 or more")
        check_choice("waiting", self.waiting, WAITING_SOUNDS)


@dataclass(frozen=True)
class CallsConfig:
    """B2BUA call control: trunks, the DID plan and the call timers.

    ``no_answer_timeout``: seconds a call rings before 480. ``trunk_timeout``: seconds without any
    response from a trunk before failing over to the next. ``ring_again_after``: seconds before a queued
    call rings again the phones of an agent who rejected it and is offered it again (nobody else fits).
    ``session_expires`` / ``min_se``: RFC 4028 session timer interval we ask for and the smallest we
    accept (>= 90). Overload shedding (``cti_server.calls.admission``): a new call beyond
    ``max_calls_per_second``, or while ``max_calls_in_setup`` calls still wait for their final answer,
    gets 503 with ``Retry-After: overload_retry_after``; 0 turns a limit off.
    """

    trunks: tuple[TrunkConfig, ...] = ()
    dids: tuple[DidConfig, ...] = ()
    no_answer_timeout: float = 60.0
    trunk_timeout: float = 4.0
    session_expires: int = 1800
    min_se: int = 90
    max_calls: int = 10000
    max_calls_per_second: float = 0.0
    max_calls_in_setup: int = 0
    overload_retry_after: int = 5
    ring_again_after: float = 5.0

    def __post_init__(self) -> None:
        names = [t.name for t in self.trunks]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError("trunks", f"trunk name {name!r} is used twice")
        numbers = ["".join(c for c in d.number if c.isdigit()) for d in self.dids]
        for number in numbers:
            if numbers.count(number) > 1:
                raise ConfigError("dids", f"DID {number!r} is listed twice")
        if self.no_answer_timeout <= 0:
            raise ConfigError("no_answer_timeout", "must be > 0 seconds")
        if self.trunk_timeout <= 0:
            raise ConfigError("trunk_timeout", "must be > 0 seconds")
        if self.min_se < MIN_SE_FLOOR:
            raise ConfigError("min_se", f"RFC 4028 needs at least {MIN_SE_FLOOR} seconds, got {self.min_se}")
        if self.session_expires < self.min_se:
            raise ConfigError("session_expires", "must be >= min_se")
        if self.max_calls < 1:
            raise ConfigError("max_calls", "must be >= 1")
        if self.max_calls_per_second < 0:
            raise ConfigError("max_calls_per_second", "must be >= 0 (0 = no limit)")
        if self.max_calls_in_setup < 0:
            raise ConfigError("max_calls_in_setup", "must be >= 0 (0 = no limit)")
        if self.overload_retry_after < 0:
            raise ConfigError("overload_retry_after", "must be >= 0 seconds")
        if self.ring_again_after < 0:
            raise ConfigError("ring_again_after", "must be >= 0 seconds")


@dataclass(frozen=True)
class WebhooksConfig:
    """Outgoing integrator webhooks: delivery timeout, retries with capped exponential backoff.

    Attempt ``n`` (1-based) that fails waits ``min(backoff_cap, backoff_base * 2**(n-1))`` seconds before
    the next; after ``max_attempts`` the delivery is marked failed. ``concurrency`` bounds parallel sends.
    """

    timeout: float = 5.0
    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    concurrency: int = 4
    poll_interval: float = 1.0
    max_response_chars: int = 500

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError("timeout", "must be > 0 seconds")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts", "must be >= 1")
        if self.backoff_base <= 0:
            raise ConfigError("backoff_base", "must be > 0 seconds")
        if self.backoff_cap < self.backoff_base:
            raise ConfigError("backoff_cap", "must be >= backoff_base")
        if self.concurrency < 1:
            raise ConfigError("concurrency", "must be >= 1")
        if self.poll_interval <= 0:
            raise ConfigError("poll_interval", "must be > 0 seconds")


@dataclass(frozen=True)
class ScreenPopConfig:
    """Caller-ID screen pops: the lookup deadline, match limits, imports and webhooks.

    ``deadline_ms``: longest the call waits for the CRM lookup; past it the pop is marked late and the
    call goes on. ``late_result_ms``: how much longer a late lookup may run to publish
    ``screenpop.resolved`` with the real answer. ``default_region``: ISO 3166 region for numbers without
    a country code when the call center names none.
    """

    deadline_ms: int = 200
    late_result_ms: int = 2000
    max_matches: int = 10
    default_region: str = "US"
    profile_cache_seconds: float = 30.0
    import_batch_size: int = 5000
    import_max_errors: int = 1000
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    def __post_init__(self) -> None:
        if self.deadline_ms < 1:
            raise ConfigError("deadline_ms", f"must be >= 1 ms, got {self.deadline_ms}")
        if self.late_result_ms < 0:
            raise ConfigError("late_result_ms", "must be >= 0 ms")
        if not 1 <= self.max_matches <= 100:
            raise ConfigError("max_matches", f"expected 1-100, got {self.max_matches}")
        if len(self.default_region) != 2 or not self.default_region.isupper():
            raise ConfigError("default_region", f"expected an ISO 3166 code, got {self.default_region!r}")
        if self.profile_cache_seconds < 0:
            raise ConfigError("profile_cache_seconds", "must be >= 0 seconds")
        if self.import_batch_size < 1:
            raise ConfigError("import_batch_size", "must be >= 1")
        if self.import_max_errors < 1:
            raise ConfigError("import_max_errors", "must be >= 1")


STORE_URL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg", "postgresql")


@dataclass(frozen=True)
class StoreConfig:
    """The CRM and directory store (SQLAlchemy): a SQLite file by default, PostgreSQL by URL.

    ``url``: ``sqlite+aiosqlite:///var/cti-server.db`` (a path relative to the working directory) or
    ``postgresql+asyncpg://user@host:5432/db``. SQLite is migrated automatically at start; PostgreSQL
    with ``cti-server admin migrate``. ``pool_size``: connections kept open (PostgreSQL). ``echo`` logs SQL.
    """

    url: str = "sqlite+aiosqlite:///var/cti-server.db"
    pool_size: int = 5
    echo: bool = False

    def __post_init__(self) -> None:
        scheme = self.url.split("://", 1)[0] if "://" in self.url else ""
        check_choice("url", scheme, STORE_URL_SCHEMES)
        if not 1 <= self.pool_size <= 1000:
            raise ConfigError("pool_size", f"expected 1-1000, got {self.pool_size}")


@dataclass(frozen=True)
class AuthConfig:
    """Web authentication: session lifetime, cookie flags and the argon2id password-hash cost (RFC 9106).

    ``password_memory_kib`` / ``password_time_cost`` are argon2id's m and t parameters; the defaults are
    the m=64 MiB, t=3 of RFC 9106 section 4's second recommended option (with one lane: p=1). After
    ``login_max_failures`` wrong passwords for one username from one address, logins from there are
    refused with 429 for ``login_lockout`` seconds. A resolved session token or API key is remembered
    for ``credential_cache_seconds``; admin changes made through this server forget them at once.
    """

    session_lifetime: int = 43200
    cookie_secure: bool = False
    password_memory_kib: int = 65536
    password_time_cost: int = 3
    login_max_failures: int = 5
    login_lockout: int = 300
    credential_cache_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.credential_cache_seconds < 0:
            raise ConfigError("credential_cache_seconds", "must be >= 0 seconds (0 turns the cache off)")
        if self.login_max_failures < 1:
            raise ConfigError("login_max_failures", f"must be >= 1, got {self.login_max_failures}")
        if self.login_lockout < 0:
            raise ConfigError("login_lockout", f"must be >= 0 seconds, got {self.login_lockout}")
        if self.session_lifetime < 60:
            raise ConfigError("session_lifetime", f"must be >= 60 seconds, got {self.session_lifetime}")
        if self.password_memory_kib < 8:
            raise ConfigError("password_memory_kib", f"must be >= 8 KiB, got {self.password_memory_kib}")
        if self.password_time_cost < 1:
            raise ConfigError("password_time_cost", f"must be >= 1, got {self.password_time_cost}")


@dataclass(frozen=True)
class RoutingEngineConfig:
    """The omni-channel routing engine (cti_server/routing): where its state lives and its timers.

    ``backend``: ``memory`` (one process) or ``redis`` (several processes share queues, presence and
    timers at ``redis_url`` under ``redis_prefix``; socket.io then also fans out through that Redis).
    ``default_push_timeout_s`` / ``default_service_level_threshold_s`` shape the ``default`` routing
    configuration created at first start. ``scan_depth``: waiting items or candidate agents looked at
    per queue in one routing step. ``timer_poll_s``: how often a node looks for due timers set by
    other nodes. ``figures_window_s``: the window of the live queue figures; ``figures_interval_s``:
    how often ``queue.figures`` events go to supervisors (0 = never).
    """

    backend: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "cti:routing:"
    default_push_timeout_s: float = 30.0
    default_service_level_threshold_s: float = 20.0
    scan_depth: int = 1000
    timer_poll_s: float = 0.25
    figures_window_s: float = 3600.0
    figures_interval_s: float = 5.0
    history_retention_s: float = 604800.0
    finished_items_kept: int = 10000

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, ("memory", "redis"))
        check_redis_url("redis_url", self.redis_url)
        if not self.redis_prefix:
            raise ConfigError("redis_prefix", "must not be empty")
        for name in ("default_push_timeout_s", "default_service_level_threshold_s", "figures_interval_s"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("timer_poll_s", "figures_window_s", "history_retention_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if self.scan_depth < 1:
            raise ConfigError("scan_depth", f"must be >= 1, got {self.scan_depth}")
        if self.finished_items_kept < 0:
            raise ConfigError("finished_items_kept", f"must be >= 0, got {self.finished_items_kept}")


EVENT_LOOPS = ("auto", "asyncio", "uvloop")


@dataclass(frozen=True)
class ServerConfig:
    """The process itself: which asyncio event loop ``cti-server run`` runs on, and how long its
    shutdown waits for work in flight."""

    # auto: uvloop when it is installed (a runtime dependency), else asyncio's own loop.
    event_loop: str = "auto"
    # Seconds each shutdown step lets work in flight (event handlers, store reads) finish before it is
    # cancelled; a task that outlives its cancel gets this long again (cti_server/shutdown.py).
    shutdown_grace: float = 2.0

    def __post_init__(self) -> None:
        check_choice("event_loop", self.event_loop, EVENT_LOOPS)
        if not 0 <= self.shutdown_grace <= 60:
            raise ConfigError("shutdown_grace", f"must be 0-60 seconds, got {self.shutdown_grace}")


@dataclass(frozen=True)
class Config:
    """The whole server configuration."""

    http: HttpConfig = field(default_factory=HttpConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    log: LogConfig = field(default_factory=LogConfig)
    screenpop: ScreenPopConfig = field(default_factory=ScreenPopConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    routing: RoutingEngineConfig = field(default_factory=RoutingEngineConfig)
    server: ServerConfig = field(default_factory=ServerConfig)


_T = TypeVar("_T")


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (default: config/cti-server.toml if present), apply ``CTI_`` overrides, validate."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None or DEFAULT_CONFIG_PATH.exists():
        file_path = path or DEFAULT_CONFIG_PATH
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("", f"configuration file not found: {file_path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"{file_path} is not valid TOML: {exc}") from exc
    _apply_env_overrides(data, env)
    return build_section(Config, data, "")


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    """Validate an in-memory mapping (tests and tools build configs this way)."""
    return build_section(Config, dict(data), "")


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        target = data
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(".".join(parts), f"environment variable {name} overrides a non-table")
            target = nxt
        target[parts[-1]] = _parse_env_value(raw)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def build_section(cls: type[_T], data: Any, key: str) -> _T:
    """Build dataclass ``cls`` from a TOML table, naming ``key`` (dotted) in every error."""
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(_join(key, unknown[0]), f"unknown key (known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, _join(key, name))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(_join(key, missing[0]), "required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # __post_init__ checks name the field only; give it its full dotted path.
        raise ConfigError(_join(key, exc.key), str(exc).split(": ", 1)[-1]) from None


def check_port(name: str, value: int) -> None:
    """Raise ConfigError unless ``value`` is a TCP/UDP port (0 means 'pick a free one')."""
    if not 0 <= value <= 65535:
        raise ConfigError(name, f"expected a port 0-65535, got {value}")


def check_redis_url(name: str, value: str, *, allow_empty: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a Redis URL (or "" when ``allow_empty``)."""
    if allow_empty and not value:
        return
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(name, f"expected redis://, rediss:// or unix://, got {value!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(name, f"expected one of {', '.join(choices)}, got {value!r}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, key)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}")
        (item_hint, _ellipsis) = typing.get_args(hint)
        return tuple(_coerce(item_hint, item, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {type(value).__name__}")
        _k, item_hint = typing.get_args(hint)
        return {str(k): _coerce(item_hint, v, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    return value
