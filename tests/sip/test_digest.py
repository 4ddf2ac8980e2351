"""Digest authentication (RFC 8760 / RFC 7616 / RFC 2617), driven without sockets on a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti_server.config import SipUserConfig
from cti_server.sip.digest import (
    AuthOutcome,
    DigestAuthenticator,
    DigestParseError,
    DigestUser,
    NonceMint,
    NonceState,
    compute_ha1,
    compute_response,
    parse_auth_params,
    parse_authorization,
    quote,
    users_from_config,
)

REALM = "cti.local"
NOW = 1_700_000_000.0


# RFC 7616 section 3.9.1: the example exchange, for both MD5 and SHA-256.
RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "nc": "00000001",
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, expected: str) -> None:
    v = RFC7616
    ha1 = compute_ha1(algorithm, v["username"], v["realm"], v["password"])
    response = compute_response(
        algorithm, ha1, method=v["method"], uri=v["uri"], nonce=v["nonce"], qop="auth", nc=v["nc"],
        cnonce=v["cnonce"],
    )
    assert response == expected


def test_rfc2069_response_without_qop() -> None:
    # RFC 2617 section 3.2.2.1: KD(H(A1), nonce ":" H(A2)) when no qop is sent.
    import hashlib

    ha1 = hashlib.md5(b"bob:r:pw").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    expected = hashlib.md5(f"{ha1}:abc:{ha2}".encode()).hexdigest()
    assert compute_response("MD5", ha1, method="REGISTER", uri="sip:r", nonce="abc") == expected


# --- parsing ------------------------------------------------------------------------------------


def test_parse_authorization_with_quotes_commas_and_escapes() -> None:
    creds = parse_authorization(
        'Digest username="al\\"ice", realm="a, b", nonce="n1", uri="sip:cti.local",'
        ' response="' + "a" * 64 + '", algorithm=SHA-256, qop=auth, nc=0000000a,'
        ' cnonce="x,y", opaque="op"'
    )
    assert creds.username == 'al"ice'
    assert creds.realm == "a, b"
    assert creds.algorithm == "SHA-256"
    assert creds.qop == "auth"
    assert creds.nc == "0000000a"
    assert creds.cnonce == "x,y"
    assert creds.opaque == "op"


def test_parse_authorization_defaults_to_md5_and_accepts_lowercase_scheme() -> None:
    creds = parse_authorization(
        'digest username="1001",realm="cti.local",nonce="n",uri="sip:x",response="' + "0" * 32 + '"'
    )
    assert creds.algorithm == "MD5"
    assert creds.qop is None


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        ('Basic dXNlcjpwYXNz', "not Digest"),
        ('Digest realm="r", nonce="n", uri="u", response="' + "0" * 32 + '"', "'username' is missing"),
        ('Digest username="a", username="b"', "appears twice"),
        ('Digest username="a', "unterminated"),
        ("Digest username", "has no value"),
        ('Digest username="a" realm="b"', "expected a comma"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="' + "0" * 32 + '", algorithm=SHA-512',
         "not supported"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="' + "0" * 32 + '", qop=auth',
         "needs nc and cnonce"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="' + "0" * 32
         + '", qop=auth, nc=1, cnonce="c"', "8 hex digits"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="' + "0" * 32 + '", qop=auth-int,'
         ' nc=00000001, cnonce="c"', "only auth"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="zz"', "hex digest"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="' + "0" * 32 + '", algorithm=SHA-256',
         "SHA-256 hex digest"),
        ("Digest ", "no parameters"),
        ('Digest =x', "malformed digest parameter name"),
    ],
)
def test_parse_authorization_rejects_malformed(value: str, reason_part: str) -> None:
    with pytest.raises(DigestParseError) as info:
        parse_authorization(value)
    assert reason_part in info.value.reason


def test_parse_auth_params_tolerates_whitespace_and_empty_items() -> None:
    assert parse_auth_params(' a = "1" ,, b=tok , c=""') == {"a": "1", "b": "tok", "c": ""}


def test_quote_escapes() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert parse_auth_params("x=" + quote('a"b\\c')) == {"x": 'a"b\\c'}


# --- nonces -------------------------------------------------------------------------------------


def test_nonce_is_valid_then_stale_and_foreign_nonces_are_invalid() -> None:
    mint = NonceMint(b"k" * 32, lifetime=300)
    nonce = mint.issue(NOW)
    assert mint.check(nonce, NOW + 299) is NonceState.VALID
    assert mint.check(nonce, NOW + 300) is NonceState.STALE
    assert NonceMint(b"other" * 8, 300).check(nonce, NOW) is NonceState.INVALID
    assert mint.check("not-base64!!", NOW) is NonceState.INVALID
    assert mint.check("", NOW) is NonceState.INVALID
    tampered = nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB")
    assert mint.check(tampered, NOW) is NonceState.INVALID
    assert mint.issue(NOW) != nonce  # salted: unique even within one second


def test_nonce_from_the_future_is_invalid() -> None:
    mint = NonceMint(b"k" * 32, lifetime=300)
    assert mint.check(mint.issue(NOW + 60), NOW) is NonceState.INVALID


def test_nonce_survives_a_new_authenticator_with_the_same_secret() -> None:
    users = {"1001": DigestUser.from_config(SipUserConfig("1001", password="pw"), REALM)}
    a = DigestAuthenticator(REALM, users, secret=b"s" * 32)
    b = DigestAuthenticator(REALM, users, secret=b"s" * 32)
    header = a.challenges(NOW)[0]
    auth = answer(header, "1001", "pw", nc=1)
    assert b.verify("REGISTER", [auth], NOW).ok


# --- challenge and verification ------------------------------------------------------------------


def make_authenticator(**kwargs: object) -> DigestAuthenticator:
    users = users_from_config(
        [SipUserConfig("1001", password="secret1001"),
         SipUserConfig("1002", ha1_sha256=compute_ha1("SHA-256", "1002", REALM, "pw2")),
         SipUserConfig("1003", ha1_md5=compute_ha1("MD5", "1003", REALM, "pw3").upper())],
        REALM,
    )
    return DigestAuthenticator(REALM, users, nonce_lifetime=300, **kwargs)  # type: ignore[arg-type]


def answer(challenge: str, username: str, password: str, *, nc: int | None = None, method: str = "REGISTER",
           uri: str = "sip:cti.local", realm: str = REALM, cnonce: str = "c0ffee",
           include_opaque: bool = True) -> str:
    """What a phone would send back for ``challenge`` (an independent client-side computation)."""
    params = parse_auth_params(challenge.partition(" ")[2])
    algorithm = params["algorithm"]
    ha1 = compute_ha1(algorithm, username, realm, password)
    qop = "auth" if nc is not None else None
    nc_text = f"{nc:08x}" if nc is not None else None
    response = compute_response(algorithm, ha1, method=method, uri=uri, nonce=params["nonce"], qop=qop,
                                nc=nc_text, cnonce=cnonce if qop else None)
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{params["nonce"]}"', f'uri="{uri}"',
             f'response="{response}"', f"algorithm={algorithm}"]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if include_opaque:
        parts.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(parts)


def test_challenges_one_per_algorithm_preferred_first() -> None:
    auth = make_authenticator()
    values = auth.challenges(NOW)
    assert len(values) == 2
    first, second = (parse_auth_params(v.partition(" ")[2]) for v in values)
    assert (first["algorithm"], second["algorithm"]) == ("SHA-256", "MD5")
    assert first["realm"] == REALM and first["qop"] == "auth"
    assert first["nonce"] == second["nonce"]
    assert "stale" not in first
    stale = parse_auth_params(auth.challenges(NOW, stale=True)[0].partition(" ")[2])
    assert stale["stale"] == "true"


@pytest.mark.parametrize("index", [0, 1])
def test_correct_answer_with_qop_is_accepted_for_each_algorithm(index: int) -> None:
    auth = make_authenticator()
    challenge = auth.challenges(NOW)[index]
    result = auth.verify("REGISTER", [answer(challenge, "1001", "secret1001", nc=1)], NOW + 1)
    assert result.outcome is AuthOutcome.OK
    assert result.username == "1001"


def test_rfc2069_answer_without_qop_is_accepted_and_reusable() -> None:
    auth = make_authenticator()
    header = answer(auth.challenges(NOW)[1], "1001", "secret1001", nc=None)
    assert auth.verify("REGISTER", [header], NOW).ok
    assert auth.verify("REGISTER", [header], NOW + 10).ok  # no nc: reuse allowed within the lifetime


def test_stored_hashes_are_used() -> None:
    auth = make_authenticator()
    sha, md5 = auth.challenges(NOW)
    assert auth.verify("REGISTER", [answer(sha, "1002", "pw2", nc=1)], NOW).ok
    # 1002 only has a SHA-256 hash: an MD5 answer cannot be checked.
    assert auth.verify("REGISTER", [answer(md5, "1002", "pw2", nc=1)], NOW).outcome is AuthOutcome.FAILED
    # Upper-case stored hex is accepted.
    md5 = auth.challenges(NOW)[1]
    assert auth.verify("REGISTER", [answer(md5, "1003", "pw3", nc=1)], NOW).ok


def test_wrong_password_unknown_user_and_wrong_method_fail() -> None:
    auth = make_authenticator()
    ch = auth.challenges(NOW)[0]
    assert auth.verify("REGISTER", [answer(ch, "1001", "nope", nc=1)], NOW).outcome is AuthOutcome.FAILED
    assert auth.verify("REGISTER", [answer(ch, "9999", "x", nc=1)], NOW).outcome is AuthOutcome.FAILED
    signed_for_invite = answer(ch, "1001", "secret1001", nc=2, method="INVITE")
    assert auth.verify("REGISTER", [signed_for_invite], NOW).outcome is AuthOutcome.FAILED


def test_expired_nonce_with_correct_answer_is_stale_but_wrong_answer_is_failed() -> None:
    auth = make_authenticator()
    ch = auth.challenges(NOW)[0]
    late = NOW + 301
    stale = auth.verify("REGISTER", [answer(ch, "1001", "secret1001", nc=1)], late)
    assert stale.outcome is AuthOutcome.STALE
    assert auth.verify("REGISTER", [answer(ch, "1001", "bad", nc=1)], late).outcome is AuthOutcome.FAILED


def test_replayed_nonce_count_is_stale_and_higher_count_is_accepted() -> None:
    auth = make_authenticator()
    ch = auth.challenges(NOW)[0]
    first = answer(ch, "1001", "secret1001", nc=1)
    assert auth.verify("REGISTER", [first], NOW).ok
    replay = auth.verify("REGISTER", [first], NOW + 1)
    assert replay.outcome is AuthOutcome.STALE
    assert "replayed" in replay.reason
    assert auth.verify("REGISTER", [answer(ch, "1001", "secret1001", nc=2)], NOW + 2).ok


def test_foreign_nonce_and_wrong_opaque_fail() -> None:
    auth = make_authenticator()
    other = make_authenticator()
    ch = other.challenges(NOW)[0]
    result = auth.verify("REGISTER", [answer(ch, "1001", "secret1001", nc=1)], NOW)
    assert result.outcome is AuthOutcome.FAILED
    assert "nonce" in result.reason or "opaque" in result.reason
    own = auth.challenges(NOW)[0]
    tampered = answer(own, "1001", "secret1001", nc=1).replace(f'opaque="{auth.opaque}"', 'opaque="x"')
    assert auth.verify("REGISTER", [tampered], NOW).outcome is AuthOutcome.FAILED
    # Opaque omitted (some phones do): still accepted.
    assert auth.verify("REGISTER", [answer(own, "1001", "secret1001", nc=1, include_opaque=False)], NOW).ok


def test_credentials_for_other_realms_are_ignored() -> None:
    auth = make_authenticator()
    ch = auth.challenges(NOW)[0]
    foreign = answer(ch, "1001", "secret1001", nc=1, realm="elsewhere")
    assert auth.verify("REGISTER", [foreign], NOW).outcome is AuthOutcome.MISSING
    assert auth.verify("REGISTER", [foreign, answer(ch, "1001", "secret1001", nc=1)], NOW).ok
    assert auth.verify("REGISTER", [], NOW).outcome is AuthOutcome.MISSING


def test_malformed_credentials_are_reported() -> None:
    result = make_authenticator().verify("REGISTER", ['Digest username="x'], NOW)
    assert result.outcome is AuthOutcome.MALFORMED
    assert "unterminated" in result.reason


def test_algorithm_not_offered_fails() -> None:
    auth = make_authenticator(algorithms=("SHA-256",))
    md5_like = make_authenticator(algorithms=("MD5",), secret=None)
    ch = md5_like.challenges(NOW)[0]
    result = auth.verify("REGISTER", [answer(ch, "1001", "secret1001", nc=1)], NOW)
    assert result.outcome is AuthOutcome.FAILED


def test_unknown_algorithm_in_config_is_refused() -> None:
    with pytest.raises(ValueError, match="SHA-512"):
        DigestAuthenticator(REALM, {}, algorithms=("SHA-512",))


def test_plain_password_warning_names_users_once() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        users = [SipUserConfig("1001", password="x"), SipUserConfig("1002", ha1_md5="0" * 32)]
        users_from_config(users, REALM)
    warnings = [e for e in logs if e["event"] == "sip_plaintext_passwords"]
    assert len(warnings) == 1
    assert warnings[0]["users"] == ["1001"]


@given(st.text(alphabet=' \t,="\\abcAZ09-_.:/@', max_size=60))
def test_fast_and_slow_auth_param_parsers_agree(text: str) -> None:
    from cti_server.sip.digest import _parse_auth_params_slowly

    def outcome(parse: Callable[[str], dict[str, str]]) -> object:
        try:
            return parse(text)
        except DigestParseError:
            return "error"

    assert outcome(parse_auth_params) == outcome(_parse_auth_params_slowly)


async def test_authenticate_looks_up_unknown_users_and_caches_the_answer() -> None:
    asked: list[str] = []
    store_user = DigestUser("2001", {"SHA-256": compute_ha1("SHA-256", "2001", REALM, "pw")})

    async def lookup(username: str) -> DigestUser | None:
        asked.append(username)
        return store_user if username == "2001" else None

    auth = make_authenticator(lookup=lookup)
    ch = auth.challenges(NOW)[0]
    assert (await auth.authenticate("REGISTER", [answer(ch, "2001", "pw", nc=1)], NOW)).ok
    assert (await auth.authenticate("REGISTER", [answer(ch, "2001", "pw", nc=2)], NOW + 1)).ok
    failed = await auth.authenticate("REGISTER", [answer(ch, "2999", "pw", nc=3)], NOW + 2)
    assert failed.outcome is AuthOutcome.FAILED
    # Static users never reach the lookup; the store is asked again once the cache entry is old.
    assert (await auth.authenticate("REGISTER", [answer(ch, "1001", "secret1001", nc=4)], NOW + 3)).ok
    assert (await auth.authenticate("REGISTER", [answer(ch, "2001", "pw", nc=5)], NOW + 60)).ok
    assert asked == ["2001", "2999", "2001"]
    # The synchronous verify knows only the static users.
    assert auth.verify("REGISTER", [answer(ch, "2001", "pw", nc=6)], NOW + 61).outcome is AuthOutcome.FAILED


def test_nonce_count_ledger_stays_bounded_and_forgets_oldest_first() -> None:
    from cti_server.sip.digest import NonceCountLedger

    ledger = NonceCountLedger(lifetime=300, max_entries=100)
    for i in range(100):
        assert ledger.accept(f"n{i}", 1, NOW)
    assert len(ledger) == 100
    assert ledger.accept("new", 1, NOW + 1)  # full, nothing expired: the oldest tenth goes
    assert len(ledger) == 91
    assert ledger.accept("n0", 1, NOW + 1)  # forgotten, so accepted again (its expiry still guards it)
    assert not ledger.accept("n50", 1, NOW + 1)  # still remembered: a replay
    for i in range(200, 209):
        ledger.accept(f"n{i}", 1, NOW + 400)  # everything older than the lifetime is dropped first
    assert ledger.accept("n999", 1, NOW + 400)
    assert len(ledger) <= 100
    assert not ledger.accept("n205", 1, NOW + 401)
