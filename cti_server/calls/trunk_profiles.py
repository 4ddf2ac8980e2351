"""Trunk interop profiles: per-trunk rewrites of the SIP header sets we send and receive.

A trunk in ``[[calls.trunks]]`` names a ``profile``; the B2BUA hands every INVITE it sends to that trunk
to the profile's ``outgoing`` and every new INVITE from it to ``incoming`` (before routing reads it), so a
peer's quirks are fixed up at the edge of call control and the SIP layer stays plain RFC 3261.

Built in:

- ``generic`` (also what ``""`` means): nothing is changed;
- ``no_session_timer``: for peers whose RFC 4028 support is broken (re-INVITE storms, 422 loops): we
  neither ask for session timers (no Session-Expires / Min-SE, no ``timer`` in Supported) nor take
  their request, so no timer runs on that leg and the call lasts until a BYE.

Vendor adapters (``adapters/cisco`` and the like) add theirs with ``register_profile``; config loading
asks ``profile_names`` so an unknown name is an error naming the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cti_server.sip.headers import Headers

Rewrite = Callable[[Headers], None]


def _unchanged(_headers: Headers) -> None:
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


def register_profile(profile: TrunkProfile, *, replace: bool = False) -> None:
    """Make ``profile`` available to trunks by its name (an adapter calls this when it is imported)."""
    if not profile.name:
        raise ValueError("a trunk profile needs a name")
    if profile.name in _PROFILES and not replace:
        raise ValueError(f"trunk profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile


def profile_names() -> list[str]:
    """The registered profile names, sorted."""
    return sorted(_PROFILES)


def get_profile(name: str) -> TrunkProfile:
    """The profile called ``name`` (``""`` is the default); KeyError when none is registered."""
    return _PROFILES[name or DEFAULT_PROFILE]


register_profile(TrunkProfile(DEFAULT_PROFILE, description="plain RFC 3261: headers unchanged"))
register_profile(TrunkProfile(
    "no_session_timer", outgoing=without_session_timer, incoming=without_session_timer,
    description="no RFC 4028 session timers on this trunk's calls",
))


__all__ = [
    "DEFAULT_PROFILE",
    "TrunkProfile",
    "get_profile",
    "profile_names",
    "register_profile",
    "without_session_timer",
]
