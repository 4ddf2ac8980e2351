"""Our client-side digest answers verify against the server-side authenticator (RFC 7616)."""

from __future__ import annotations

import pytest

from cti_server.calls.trunk_auth import ChallengeError, authorization_for, pick_challenge
from cti_server.config import SipUserConfig
from cti_server.sip.digest import DigestAuthenticator, DigestUser


def authenticator(algorithms: tuple[str, ...]) -> DigestAuthenticator:
    user = DigestUser.from_config(SipUserConfig(username="trunkuser", password="s3cret"), "carrier")
    return DigestAuthenticator("carrier", {"trunkuser": user}, algorithms=algorithms, secret=b"k" * 32)


@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("MD5",)])
def test_answer_verifies(algorithms: tuple[str, ...]) -> None:
    server = authenticator(algorithms)
    challenge = pick_challenge(server.challenges(now=100.0))
    assert challenge is not None
    answer = authorization_for(challenge, method="INVITE", uri="sip:+15550100@carrier.example",
                               username="trunkuser", password="s3cret")
    assert server.verify("INVITE", [answer], now=101.0).ok


def test_wrong_password_fails() -> None:
    server = authenticator(("MD5",))
    challenge = server.challenges(now=100.0)[0]
    answer = authorization_for(challenge, method="INVITE", uri="sip:x@y", username="trunkuser", password="no")
    assert not server.verify("INVITE", [answer], now=101.0).ok


def test_unusable_challenges() -> None:
    assert pick_challenge(['Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-512']) is None
    with pytest.raises(ChallengeError):
        authorization_for('Basic realm="x"', method="INVITE", uri="sip:x", username="u", password="p")
    with pytest.raises(ChallengeError):
        authorization_for('Digest nonce="n"', method="INVITE", uri="sip:x", username="u", password="p")
