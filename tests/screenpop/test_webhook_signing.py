"""Webhook signatures (HMAC-SHA256 over timestamp and body) and the capped exponential backoff."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from cti_server.webhooks.signing import SignatureError, new_secret, retry_delay, sign, signed_headers, verify

BODY = b'{"topic":"call.ended","data":{}}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, BODY) == f"v1={expected}"


def test_verify_accepts_a_fresh_signature_and_a_rotation_list() -> None:
    headers = signed_headers("s3cret", 1700000000, BODY)
    verify("s3cret", headers["X-CTI-Timestamp"], headers["X-CTI-Signature"], BODY, now=1700000010)
    rotated = "v1=deadbeef, " + headers["X-CTI-Signature"]
    verify("s3cret", "1700000000", rotated, BODY, now=1700000000)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now", "reason"),
    [
        ("other", "1700000000", BODY, 1700000000, "does not match"),
        ("s3cret", "1700000000", BODY + b" ", 1700000000, "does not match"),
        ("s3cret", "1700000001", BODY, 1700000000, "does not match"),
        ("s3cret", "1700000000", BODY, 1700001000, "tolerance"),
        ("s3cret", "soon", BODY, 1700000000, "not an integer"),
        ("s3cret", None, BODY, 1700000000, "missing X-CTI-Timestamp"),
    ],
)
def test_verify_refuses_tampering_and_replays(
    secret: str, timestamp: str | None, body: bytes, now: float, reason: str
) -> None:
    signature = sign("s3cret", 1700000000, BODY)
    with pytest.raises(SignatureError) as info:
        verify(secret, timestamp, signature, body, now=now)
    assert reason in info.value.reason


def test_secrets_are_random_and_long() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and len(first) > 40


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [retry_delay(n, base=1.0, cap=30.0) for n in range(1, 8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert retry_delay(10_000, base=1.0, cap=300.0) == 300.0
    with pytest.raises(ValueError):
        retry_delay(0, base=1.0, cap=2.0)
