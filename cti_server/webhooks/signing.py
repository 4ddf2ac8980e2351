"""Webhook signatures and retry timing, without I/O.

Each delivery is a POST whose body is the JSON event. The server signs ``<timestamp>.<body>`` with
HMAC-SHA256 (RFC 2104, FIPS 180-4) under the subscription's secret and sends::

    X-CTI-Timestamp: 1764136800
    X-CTI-Signature: v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body, compares in constant
time, and refuses timestamps older than a few minutes (replay). Putting the timestamp inside the MAC
means an old body cannot be replayed with a fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TIMESTAMP_HEADER = "X-CTI-Timestamp"
SIGNATURE_HEADER = "X-CTI-Signature"
EVENT_HEADER = "X-CTI-Event"
DELIVERY_HEADER = "X-CTI-Delivery"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300


class SignatureError(ValueError):
    """A webhook request whose signature or timestamp does not check out; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_secret() -> str:
    """A fresh signing secret for a subscription (256 random bits, URL-safe text)."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CTI-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Timestamp and signature headers for one delivery attempt."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Check a received webhook (what an integrator's receiver does); raises SignatureError.

    ``signature_header`` may hold several comma-separated ``v1=`` values (during a secret rotation).
    """
    if not timestamp_header:
        raise SignatureError(f"missing {TIMESTAMP_HEADER}")
    if not signature_header:
        raise SignatureError(f"missing {SIGNATURE_HEADER}")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not an integer") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp outside the {tolerance} s tolerance")
    expected = sign(secret, timestamp, body)
    for candidate in signature_header.split(","):
        if hmac.compare_digest(candidate.strip(), expected):
            return
    raise SignatureError("signature does not match")


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    # Past 2**62 the float overflows long before any sane cap; clamp the exponent first.
    return float(min(cap, base * 2 ** min(attempt - 1, 62)))
