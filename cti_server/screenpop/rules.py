"""Screen-pop rules per call center and the pop they produce (the Salesforce Open CTI softphone layout idea).

A call center says what to pop for each outcome of the caller lookup:

- one match: ``record`` (open the contact), ``search`` (a search pre-filled with the number) or ``nothing``;
- several matches: ``list`` (the agent picks one), ``search`` or ``nothing``;
- no match: ``new_contact`` (a new-contact form with the number filled in), ``search`` or ``nothing``.

``ScreenPop`` is the answer: a JSON-safe object (``to_dict``/``from_dict``) that rides on the call and its
events, so the softphone, the REST API and webhooks all see the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SINGLE_MATCH_ACTIONS = ("record", "search", "nothing")
MULTIPLE_MATCH_ACTIONS = ("list", "search", "nothing")
NO_MATCH_ACTIONS = ("new_contact", "search", "nothing")

# Outcomes of one lookup.
SINGLE = "single"
MULTIPLE = "multiple"
NONE = "none"
INVALID_NUMBER = "invalid_number"
LATE = "late"
ERROR = "error"
OUTCOMES = (SINGLE, MULTIPLE, NONE, INVALID_NUMBER, LATE, ERROR)


class RulesError(ValueError):
    """Screen-pop rules that cannot be used; ``field`` names the offending key."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ScreenPopRules:
    """What one call center pops for one, several and no matching contacts."""

    single_match: str = "record"
    multiple_matches: str = "list"
    no_match: str = "new_contact"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("single_match", SINGLE_MATCH_ACTIONS),
            ("multiple_matches", MULTIPLE_MATCH_ACTIONS),
            ("no_match", NO_MATCH_ACTIONS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise RulesError(name, f"expected one of {', '.join(allowed)}, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ScreenPopRules:
        """Rules from stored JSON; missing keys take the defaults, unknown keys are an error."""
        if not data:
            return cls()
        known = {"single_match", "multiple_matches", "no_match"}
        for key, value in data.items():
            if key not in known:
                raise RulesError(key, f"unknown rule (known: {', '.join(sorted(known))})")
            if not isinstance(value, str):
                raise RulesError(key, f"expected a string, got {type(value).__name__}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, str]:
        return {
            "single_match": self.single_match,
            "multiple_matches": self.multiple_matches,
            "no_match": self.no_match,
        }

    def action_for(self, outcome: str) -> str:
        """The action for a lookup ``outcome``; an unread number or a late/failed lookup offers a search."""
        if outcome == SINGLE:
            return self.single_match
        if outcome == MULTIPLE:
            return self.multiple_matches
        if outcome in (NONE, INVALID_NUMBER):
            return self.no_match
        return "search"


@dataclass(frozen=True)
class ContactMatch:
    """One contact whose phone numbers include the caller's number."""

    contact_id: str
    display_name: str
    matched_number: str
    number_label: str | None = None
    email: str | None = None
    account_id: str | None = None
    account_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "display_name": self.display_name,
            "matched_number": self.matched_number,
            "number_label": self.number_label,
            "email": self.email,
            "account_id": self.account_id,
            "account_name": self.account_name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContactMatch:
        return cls(
            contact_id=str(data["contact_id"]),
            display_name=str(data.get("display_name", "")),
            matched_number=str(data.get("matched_number", "")),
            number_label=data.get("number_label"),
            email=data.get("email"),
            account_id=data.get("account_id"),
            account_name=data.get("account_name"),
        )


@dataclass(frozen=True)
class ScreenPop:
    """The answer to "who is calling": outcome, the action the rules chose and what to show.

    ``late`` is true when the lookup missed its deadline: the call went on with a search pop and a
    ``screenpop.resolved`` event may follow with the real answer. ``prefill`` holds the fields of the
    new-contact form or the search (the caller's number in E.164).
    """

    call_center_id: str
    caller: str
    number: str | None
    outcome: str
    action: str
    matches: tuple[ContactMatch, ...] = ()
    more_matches: bool = False
    late: bool = False
    elapsed_ms: float = 0.0
    call_id: str | None = None
    error: str | None = None
    prefill: Mapping[str, str] = field(default_factory=dict)

    @property
    def contact_id(self) -> str | None:
        """The matched contact when exactly one matched, else None."""
        return self.matches[0].contact_id if self.outcome == SINGLE and self.matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form carried on the call, its events and the REST answer."""
        return {
            "call_center_id": self.call_center_id,
            "call_id": self.call_id,
            "caller": self.caller,
            "number": self.number,
            "outcome": self.outcome,
            "action": self.action,
            "contact_id": self.contact_id,
            "matches": [m.to_dict() for m in self.matches],
            "more_matches": self.more_matches,
            "late": self.late,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "error": self.error,
            "prefill": dict(self.prefill),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScreenPop:
        """Rebuild a pop carried on an event (the call-log writer reads ``call.ended`` this way)."""
        outcome = str(data.get("outcome", NONE))
        if outcome not in OUTCOMES:
            raise RulesError("outcome", f"expected one of {', '.join(OUTCOMES)}, got {outcome!r}")
        return cls(
            call_center_id=str(data.get("call_center_id", "")),
            caller=str(data.get("caller", "")),
            number=data.get("number"),
            outcome=outcome,
            action=str(data.get("action", "nothing")),
            matches=tuple(ContactMatch.from_dict(m) for m in data.get("matches") or ()),
            more_matches=bool(data.get("more_matches", False)),
            late=bool(data.get("late", False)),
            elapsed_ms=float(data.get("elapsed_ms", 0.0)),
            call_id=data.get("call_id"),
            error=data.get("error"),
            prefill={str(k): str(v) for k, v in (data.get("prefill") or {}).items()},
        )


def build_pop(
    rules: ScreenPopRules,
    *,
    call_center_id: str,
    caller: str,
    number: str | None,
    matches: list[ContactMatch],
    max_matches: int,
    call_id: str | None = None,
    elapsed_ms: float = 0.0,
) -> ScreenPop:
    """Apply ``rules`` to a finished lookup (``matches`` may hold one more than ``max_matches``)."""
    if number is None:
        outcome = INVALID_NUMBER
    elif not matches:
        outcome = NONE
    elif len(matches) == 1:
        outcome = SINGLE
    else:
        outcome = MULTIPLE
    action = rules.action_for(outcome)
    # Matches ride along whatever the action: the call log and integrators need them.
    shown = tuple(matches[:max_matches])
    prefill = {"phone": number} if number and action in ("new_contact", "search") else {}
    return ScreenPop(
        call_center_id=call_center_id,
        caller=caller,
        number=number,
        outcome=outcome,
        action=action,
        matches=shown,
        more_matches=len(matches) > max_matches,
        call_id=call_id,
        elapsed_ms=elapsed_ms,
        prefill=prefill,
    )


def unfinished_pop(
    *,
    call_center_id: str,
    caller: str,
    number: str | None,
    late: bool,
    error: str | None = None,
    call_id: str | None = None,
    elapsed_ms: float = 0.0,
) -> ScreenPop:
    """The pop for a lookup that missed its deadline (``late``) or failed: a search with the number."""
    return ScreenPop(
        call_center_id=call_center_id,
        caller=caller,
        number=number,
        outcome=LATE if late else ERROR,
        action="search",
        late=late,
        error=error,
        call_id=call_id,
        elapsed_ms=elapsed_ms,
        prefill={"phone": number} if number else {},
    )
