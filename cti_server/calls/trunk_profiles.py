"""Trunk interop profiles: per-trunk rewrites of the SIP header sets we send and receive.

A trunk in ``[[calls.trunks]]`` names a ``profile``; the B2BUA hands what it sends to that trunk (the
INVITE, refreshes, its answers to the trunk's INVITEs) to the profile's ``outgoing`` and what the trunk
sends (its INVITE before the call is set up, re-INVITEs/UPDATEs, its 2xx to ours) to ``incoming``, so a
peer's quirks are fixed up at the edge of call control and the SIP layer stays plain RFC 3261. Both get
the whole message (Request-URI or status included) and change it in place.

Built in:

- ``generic`` (also what ``""`` means): nothing is changed;
- ``no_session_timer``: for peers whose RFC 4028 support is broken (re-INVITE storms, 422 loops): we
  neither ask for session timers (no Session-Expires / Min-SE, no ``timer`` in Supported) nor take
  their request, so no timer runs on that leg and the call lasts until a BYE.

Vendor adapters (``adapters/cisco`` and the like) add theirs with ``register_profile``, or, to be there
before the config is read, as an installed package's entry point in the group ``cti_server.trunk_profiles``
(``cisco = "cti_cisco.profile:PROFILE"``, a ``TrunkProfile``), loaded on first use. Config loading asks
``profile_names``, so an unknown name is an error naming the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

import structlog

from cti_server.sip.headers import Headers
from cti_server.sip.message import SipRequest, SipResponse

log = structlog.get_logger(__name__)

SipMessage = SipRequest | SipResponse
Rewrite = Callable[[SipMessage], None]

ENTRY_POINT_GROUP = "cti_server.trunk_profiles"


def _unchanged(_message: SipMessage) -> None:
    return None


@dataclass(frozen=True)
class TrunkProfile:
    """How to rewrite the headers of requests to (``outgoing``) and from (``incoming``) a trunk."""

    name: str
    outgoing: Rewrite = _unchanged
    incoming: Rewrite = _unchanged
    description: str = ""


DEFAULT_PROFILE = "generic"

SESSION_TIMER_HEADERS = ("Session-Expires", "Min-SE")  # Headers matches compact forms (x) too


def strip_session_timer(message: SipMessage) -> None:
    """``without_session_timer`` on a message's headers."""
    without_session_timer(message.headers)


def without_session_timer(headers: Headers) -> None:
    """Drop RFC 4028 from a header set: Session-Expires, Min-SE and ``timer`` in Supported/Require."""
    for name in SESSION_TIMER_HEADERS:
        headers.remove(name)
    for name in ("Supported", "Require"):
        options = headers.get_all(name)
        kept = [o for o in options if o.strip().lower() != "timer"]
        if kept != options:
            headers.remove(name)
            if kept:
                headers.add(name, ", ".join(kept))


_PROFILES: dict[str, TrunkProfile] = {}
_plugins_loaded = False


def register_profile(profile: TrunkProfile, *, replace: bool = False) -> None:
    """Make ``profile`` available to trunks by its name (an adapter calls this when it is imported)."""
    if not profile.name:
        raise ValueError("a trunk profile needs a name")
    if profile.name in _PROFILES and not replace:
        raise ValueError(f"trunk profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile


def load_plugins() -> None:
    """Register the profiles of installed packages (entry point group ``cti_server.trunk_profiles``),
    once; one that fails to load is logged and left out (its name is then unknown to the config)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            profile = entry.load()
            if not isinstance(profile, TrunkProfile):
                raise TypeError(f"{entry.value} is not a TrunkProfile")
            register_profile(profile, replace=True)
        except Exception as exc:
            log.error("trunk_profile_plugin_failed", entry_point=entry.name, error=str(exc))


def profile_names() -> list[str]:
    """The registered profile names, sorted."""
    load_plugins()
    return sorted(_PROFILES)


def get_profile(name: str) -> TrunkProfile:
    """The profile called ``name`` (``""`` is the default); KeyError when none is registered."""
    load_plugins()
    return _PROFILES[name or DEFAULT_PROFILE]


register_profile(TrunkProfile(DEFAULT_PROFILE, description="plain RFC 3261: headers unchanged"))
register_profile(TrunkProfile(
    "no_session_timer", outgoing=strip_session_timer, incoming=strip_session_timer,
    description="no RFC 4028 session timers on this trunk's calls",
))


__all__ = [
    "DEFAULT_PROFILE",
    "ENTRY_POINT_GROUP",
    "TrunkProfile",
    "get_profile",
    "load_plugins",
    "profile_names",
    "register_profile",
    "strip_session_timer",
    "without_session_timer",
]
