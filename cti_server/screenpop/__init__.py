"""Caller-ID screen pops: phone normalization, per-call-center rules, the deadline-bound lookup."""

from cti_server.screenpop.lookup import (
    CallCenterProfile,
    ContactDirectory,
    ScreenPopLookup,
    UnknownCallCenter,
)
from cti_server.screenpop.phone import PhoneNumberError, normalize_number
from cti_server.screenpop.rules import ContactMatch, ScreenPop, ScreenPopRules

__all__ = [
    "CallCenterProfile",
    "ContactDirectory",
    "ContactMatch",
    "PhoneNumberError",
    "ScreenPop",
    "ScreenPopLookup",
    "ScreenPopRules",
    "UnknownCallCenter",
    "normalize_number",
]
