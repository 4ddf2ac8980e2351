"""Omni-channel routing: work items of every channel routed to agents by presence, capacity and skills.

The call layer enqueues voice items with ``RoutingEngine.enqueue(WorkItem(...))``; see
:mod:`cti_server.routing.engine` for the entry points and the events they publish.
"""

from cti_server.routing.clock import Clock, SimulatedClock, SystemClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import (
    Agent,
    ItemState,
    NotFound,
    PresenceStatus,
    Queue,
    RoutingConfig,
    RoutingConflict,
    RoutingInputError,
    Skill,
    SkillRelaxation,
    WorkItem,
)

__all__ = [
    "Agent",
    "Clock",
    "ItemState",
    "MemoryRoutingBackend",
    "NotFound",
    "PresenceStatus",
    "Queue",
    "RoutingConfig",
    "RoutingConflict",
    "RoutingEngine",
    "RoutingInputError",
    "SimulatedClock",
    "Skill",
    "SkillRelaxation",
    "SystemClock",
    "WorkItem",
]
