"""The one event bus every change of state goes through (see ARCHITECTURE.md)."""

from cti_server.events.bus import Event, EventBus, Subscription

__all__ = ["Event", "EventBus", "Subscription"]
