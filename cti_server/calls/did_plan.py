"""The DID plan: which call center and target a called number belongs to.

Numbers are compared on their digits, so ``+1 (555) 0100``, ``15550100`` and ``tel:+15550100`` are the
same DID. A trunk that sends the national form of an E.164 DID (or the other way round) still matches
when one number ends with the other and the shorter has at least ``MIN_SUFFIX_DIGITS`` digits and the
match is unique.
"""

from __future__ import annotations

from collections.abc import Iterable

from cti_server.config import DidConfig

MIN_SUFFIX_DIGITS = 7


def digits_of(number: str) -> str:
    """The digits of a dialled number, dropping ``+``, separators and URI parameters."""
    return "".join(c for c in number.split(";", 1)[0] if c.isdigit())


class DidPlan:
    """Called number -> ``DidConfig`` (call center and users or queue)."""

    def __init__(self, dids: Iterable[DidConfig]) -> None:
        self._by_digits = {digits_of(did.number): did for did in dids}

    def __len__(self) -> int:
        return len(self._by_digits)

    def lookup(self, number: str) -> DidConfig | None:
        """The DID for ``number`` (exact digits first, then a unique suffix match), or None."""
        digits = digits_of(number)
        if not digits:
            return None
        exact = self._by_digits.get(digits)
        if exact is not None:
            return exact
        candidates = [
            did
            for known, did in self._by_digits.items()
            if min(len(known), len(digits)) >= MIN_SUFFIX_DIGITS
            and (known.endswith(digits) or digits.endswith(known))
        ]
        return candidates[0] if len(candidates) == 1 else None
