"""The routing data model: work items, agents, queues, routing configurations, presence statuses, skills.

Plain dataclasses with ``to_dict``/``from_dict`` so the same shapes travel through the REST API, the
event bus and the Redis backend (JSON). Validation raises :class:`RoutingInputError` naming the field,
which the API turns into a 400.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

STANDARD_CHANNELS = ("voice", "chat", "email", "case", "message")
ALL_CHANNELS = "*"
MAX_PRIORITY = 99
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class RoutingInputError(ValueError):
    """A routing object or request is invalid; ``field`` names what is wrong (API answers 400)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class RoutingConflict(RuntimeError):
    """The request does not fit the current state (accepting an item not offered to you...): API 409."""


class NotFound(LookupError):
    """No such item, agent, queue, status, skill or routing configuration: API 404."""


class ItemState(StrEnum):
    """Life of a work item: queued -> offered -> assigned -> closed, or withdrawn while not assigned."""

    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


OPEN_STATES = frozenset({ItemState.QUEUED, ItemState.OFFERED, ItemState.ASSIGNED})


class RoutingModelName(StrEnum):
    """How an agent is chosen among those that fit: fewest active items, or most free capacity."""

    LEAST_ACTIVE = "least_active"
    MOST_AVAILABLE = "most_available"


@dataclass
class OfferRecord:
    """One push of an item to an agent and how it ended (accepted, declined, timeout, withdrawn, moved)."""

    agent: str
    offered_at: float
    outcome: str = ""
    reason: str = ""
    ended_at: float | None = None


@dataclass
class WorkItem:
    """A unit of work of any channel waiting for, offered to or handled by an agent.

    ``size`` is in the agent's capacity units; ``skills`` maps skill name to the minimum level needed.
    Times are seconds on the engine's clock. ``record`` names the CRM record the work concerns.
    ``backoff_agent`` declined the item (or let its offer time out) last; until ``backoff_until`` they
    are not offered it again while another agent who could take it is present (decline_backoff_s).
    """

    id: str
    channel: str
    queue: str
    call_center: str
    size: int = 1
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    record: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    state: ItemState = ItemState.QUEUED
    queued_at: float = 0.0
    agent: str | None = None
    offer_no: int = 0
    offers: list[OfferRecord] = field(default_factory=list)
    declined_by: list[str] = field(default_factory=list)
    accepted_at: float | None = None
    hold_s: float = 0.0
    hold_since: float | None = None
    ended_at: float | None = None
    closed_at: float | None = None
    close_reason: str = ""
    backoff_agent: str | None = None
    backoff_until: float | None = None

    def validate(self) -> None:
        """Raise RoutingInputError naming the first bad field."""
        check_name("id", self.id)
        check_channel("channel", self.channel)
        check_name("queue", self.queue)
        check_name("call_center", self.call_center)
        check_int("size", self.size, 1, 1_000_000)
        check_int("priority", self.priority, 0, MAX_PRIORITY)
        check_skill_levels("skills", self.skills)
        if self.record is not None and not isinstance(self.record, str):
            raise RoutingInputError("record", "expected a string")
        if not isinstance(self.data, dict):
            raise RoutingInputError("data", "expected an object")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (API bodies, events, Redis); written out because it is on the hot path."""
        return {
            "id": self.id, "channel": self.channel, "queue": self.queue, "call_center": self.call_center,
            "size": self.size, "priority": self.priority, "skills": dict(self.skills), "record": self.record,
            "data": dict(self.data), "created": self.created, "state": str(self.state),
            "queued_at": self.queued_at, "agent": self.agent, "offer_no": self.offer_no,
            "offers": [
                {"agent": o.agent, "offered_at": o.offered_at, "outcome": o.outcome, "reason": o.reason,
                 "ended_at": o.ended_at}
                for o in self.offers
            ],
            "declined_by": list(self.declined_by), "accepted_at": self.accepted_at, "hold_s": self.hold_s,
            "hold_since": self.hold_since, "ended_at": self.ended_at, "closed_at": self.closed_at,
            "close_reason": self.close_reason, "backoff_agent": self.backoff_agent,
            "backoff_until": self.backoff_until,
        }

    def summary(self) -> dict[str, Any]:
        """The fields events carry (no offer history or payload): cheap enough for every routing step."""
        return {
            "id": self.id, "channel": self.channel, "queue": self.queue, "call_center": self.call_center,
            "size": self.size, "priority": self.priority, "record": self.record, "created": self.created,
            "state": str(self.state), "agent": self.agent, "offer_no": self.offer_no,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkItem:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["state"] = ItemState(values.get("state", "queued"))
        values["offers"] = [OfferRecord(**o) for o in values.get("offers", [])]
        return cls(**values)


@dataclass
class Agent:
    """An agent as routing sees them: presence status, capacity, skills, queues, and the work they hold.

    ``capacity`` is the total units; ``channel_caps`` caps the units of one channel (absent = capacity).
    ``items`` holds the ids of items offered to or assigned to the agent; ``used`` their total size.
    """

    id: str
    call_center: str
    capacity: int = 1
    channel_caps: dict[str, int] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    name: str = ""
    status: str = "Offline"
    status_since: float = 0.0
    used: int = 0
    used_by_channel: dict[str, int] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Raise RoutingInputError naming the first bad field."""
        check_name("id", self.id)
        check_name("call_center", self.call_center)
        check_int("capacity", self.capacity, 1, 1_000_000)
        if not isinstance(self.channel_caps, dict):
            raise RoutingInputError("channel_caps", "expected an object of channel -> units")
        for channel, cap in self.channel_caps.items():
            check_channel("channel_caps", channel)
            check_int(f"channel_caps.{channel}", cap, 0, 1_000_000)
        check_skill_levels("skills", self.skills)
        if not isinstance(self.queues, list):
            raise RoutingInputError("queues", "expected a list of queue ids")
        for queue in self.queues:
            check_name("queues", queue)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (written out: it goes with every agent event)."""
        return {
            "id": self.id, "call_center": self.call_center, "capacity": self.capacity,
            "channel_caps": dict(self.channel_caps), "skills": dict(self.skills), "queues": list(self.queues),
            "name": self.name, "status": self.status, "status_since": self.status_since, "used": self.used,
            "used_by_channel": dict(self.used_by_channel), "items": list(self.items),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agent:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class SkillRelaxation:
    """After an item waited ``after_s`` in the queue, its need for the skill drops to ``level`` (0 = none)."""

    after_s: float
    level: int = 0


@dataclass
class Queue:
    """A queue of one call center, routed by its routing configuration, with overflow and skill relaxation."""

    id: str
    call_center: str
    routing_config: str
    name: str = ""
    overflow_queue: str | None = None
    overflow_after_s: float | None = None
    skill_relaxation: dict[str, SkillRelaxation] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise RoutingInputError naming the first bad field."""
        check_name("id", self.id)
        check_name("call_center", self.call_center)
        check_name("routing_config", self.routing_config)
        if (self.overflow_queue is None) != (self.overflow_after_s is None):
            raise RoutingInputError("overflow_queue", "overflow_queue and overflow_after_s go together")
        if self.overflow_queue is not None:
            check_name("overflow_queue", self.overflow_queue)
            if self.overflow_queue == self.id:
                raise RoutingInputError("overflow_queue", "a queue cannot overflow into itself")
            check_number("overflow_after_s", self.overflow_after_s, 0.0)
        for skill, rule in self.skill_relaxation.items():
            check_name("skill_relaxation", skill)
            check_number(f"skill_relaxation.{skill}.after_s", rule.after_s, 0.0)
            check_int(f"skill_relaxation.{skill}.level", rule.level, 0, 100)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Queue:
        """Inverse of :meth:`to_dict` (also parses API bodies; bad shapes raise RoutingInputError)."""
        values = dict(data)
        relax = values.get("skill_relaxation", {}) or {}
        if not isinstance(relax, dict):
            raise RoutingInputError("skill_relaxation", "expected an object of skill -> {after_s, level}")
        rules: dict[str, SkillRelaxation] = {}
        for skill, rule in relax.items():
            if not isinstance(rule, dict):
                raise RoutingInputError(f"skill_relaxation.{skill}", "expected {after_s, level}")
            rules[skill] = SkillRelaxation(after_s=rule.get("after_s"), level=rule.get("level", 0))  # type: ignore[arg-type]
        values["skill_relaxation"] = rules
        return build(cls, values)


@dataclass
class RoutingConfig:
    """How the queues that use it are served (Omni-Channel's routing configuration).

    ``routing_priority``: 1 is served first when an agent could take work from several queues.
    ``push_timeout_s``: an offer not accepted in time goes to the next agent (0 = wait forever).
    ``after_call_work_s``: wrap-up time after the conversation during which the item still holds capacity.
    ``service_level_threshold_s``: answered within this counts toward the service level.
    ``decline_backoff_s``: after an agent declines an item or lets its offer time out, the item is not
    offered to that agent again for this long while another agent who could take it (a queue member
    whose presence status allows the channel and who has the skills, busy or not) is present; it waits
    for them instead, and when the back-off ends it is routed again (0 = off: the decliner gets it back
    at once when nobody else fits).
    """

    id: str
    routing_priority: int = 1
    model: RoutingModelName = RoutingModelName.LEAST_ACTIVE
    push_timeout_s: float = 30.0
    after_call_work_s: float = 0.0
    service_level_threshold_s: float = 20.0
    decline_backoff_s: float = 0.0

    def validate(self) -> None:
        """Raise RoutingInputError naming the first bad field."""
        check_name("id", self.id)
        check_int("routing_priority", self.routing_priority, 1, 1000)
        try:
            self.model = RoutingModelName(self.model)
        except ValueError:
            raise RoutingInputError("model", "expected least_active or most_available") from None
        check_number("push_timeout_s", self.push_timeout_s, 0.0)
        check_number("after_call_work_s", self.after_call_work_s, 0.0)
        check_number("service_level_threshold_s", self.service_level_threshold_s, 0.0)
        check_number("decline_backoff_s", self.decline_backoff_s, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutingConfig:
        """Inverse of :meth:`to_dict`."""
        return build(cls, data)


@dataclass
class PresenceStatus:
    """An admin-defined presence status and the channels it makes the agent available for ('*' = all)."""

    name: str
    channels: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Raise RoutingInputError naming the first bad field."""
        check_name("name", self.name)
        if not isinstance(self.channels, list):
            raise RoutingInputError("channels", "expected a list of channels")
        for channel in self.channels:
            if channel != ALL_CHANNELS:
                check_channel("channels", channel)

    def allows(self, channel: str) -> bool:
        """Whether an agent in this status may be offered work of ``channel``."""
        return ALL_CHANNELS in self.channels or channel in self.channels

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PresenceStatus:
        """Inverse of :meth:`to_dict`."""
        return build(cls, data)


@dataclass
class Skill:
    """A skill agents hold at a level and items may require."""

    name: str
    description: str = ""

    def validate(self) -> None:
        """Raise RoutingInputError naming the first bad field."""
        check_name("name", self.name)
        if not isinstance(self.description, str):
            raise RoutingInputError("description", "expected a string")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Skill:
        """Inverse of :meth:`to_dict`."""
        return build(cls, data)


DEFAULT_STATUSES = (
    PresenceStatus("Available", [ALL_CHANNELS]),
    PresenceStatus("Available for voice", ["voice"]),
    PresenceStatus("Busy", []),
    PresenceStatus("Break", []),
    PresenceStatus("Offline", []),
)


_D = TypeVar("_D")


def build(cls: type[_D], data: Any) -> _D:
    """Construct dataclass ``cls`` from a JSON object, naming unknown or missing fields; then validate."""
    if not isinstance(data, dict):
        raise RoutingInputError("body", "expected a JSON object")
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(data) - known)
    if unknown:
        raise RoutingInputError(unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
    try:
        obj = cls(**data)
    except TypeError as exc:
        missing = re.search(r"argument: '(\w+)'", str(exc))
        name = missing.group(1) if missing else "body"
        raise RoutingInputError(name, "required field is missing") from None
    obj.validate()  # type: ignore[attr-defined]
    return obj


def check_name(field_name: str, value: Any) -> None:
    """Ids and names: 1-128 characters of letters, digits and ``_.:@-``."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise RoutingInputError(field_name, f"expected an identifier (letters, digits, _.:@-), got {value!r}")


def check_channel(field_name: str, value: Any) -> None:
    """A channel: one of the standard ones or a custom lower-case name."""
    if not isinstance(value, str) or not _CHANNEL.match(value):
        raise RoutingInputError(field_name, f"expected a channel name like 'chat', got {value!r}")


def check_int(field_name: str, value: Any, low: int, high: int) -> None:
    """An integer in ``[low, high]`` (booleans are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RoutingInputError(field_name, f"expected an integer {low}-{high}, got {value!r}")


def check_number(field_name: str, value: Any, low: float) -> None:
    """A number at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise RoutingInputError(field_name, f"expected a number >= {low}, got {value!r}")


def check_skill_levels(field_name: str, value: Any) -> None:
    """An object of skill name -> level 0-100."""
    if not isinstance(value, dict):
        raise RoutingInputError(field_name, "expected an object of skill -> level")
    for skill, level in value.items():
        check_name(field_name, skill)
        check_int(f"{field_name}.{skill}", level, 0, 100)
