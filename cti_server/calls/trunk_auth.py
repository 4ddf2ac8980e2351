"""Answering a trunk's digest challenge on calls we send out (RFC 3261 section 22.2, RFC 7616 client side).

The trunk answers our INVITE with 401 (WWW-Authenticate) or 407 (Proxy-Authenticate); we retry with
Authorization / Proxy-Authorization computed from the trunk's configured username and password. The
hashing and parameter parsing are the server-side digest module's; this is only the client's half.
"""

from __future__ import annotations

import os

from cti_server.sip.digest import ALGORITHMS, compute_ha1, compute_response, parse_auth_params, quote


class ChallengeError(ValueError):
    """A challenge we cannot answer (other scheme, unknown algorithm, missing realm or nonce)."""


def authorization_for(
    challenge: str, *, method: str, uri: str, username: str, password: str, nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` value answering the ``WWW-Authenticate``/``Proxy-Authenticate`` ``challenge``."""
    scheme, _, rest = challenge.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ChallengeError(f"challenge scheme {scheme!r} is not Digest")
    params = parse_auth_params(rest)
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None or nonce is None:
        raise ChallengeError("challenge has no realm or nonce")
    algorithm_token = params.get("algorithm", "MD5")
    algorithm = next((a for a in ALGORITHMS if a.lower() == algorithm_token.lower()), None)
    if algorithm is None:
        raise ChallengeError(f"challenge algorithm {algorithm_token!r} is not supported")
    qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    ha1 = compute_ha1(algorithm, username, realm, password)
    parts = [
        f"Digest username={quote(username)}",
        f"realm={quote(realm)}",
        f"nonce={quote(nonce)}",
        f"uri={quote(uri)}",
        f"algorithm={algorithm}",
    ]
    if "auth" in qops:
        nc_text = f"{nc:08x}"
        cnonce = cnonce or os.urandom(8).hex()
        response = compute_response(algorithm, ha1, method=method, uri=uri, nonce=nonce, qop="auth",
                                    nc=nc_text, cnonce=cnonce)
        parts += [f"response={quote(response)}", "qop=auth", f"nc={nc_text}", f"cnonce={quote(cnonce)}"]
    else:
        response = compute_response(algorithm, ha1, method=method, uri=uri, nonce=nonce)
        parts.append(f"response={quote(response)}")
    if "opaque" in params:
        parts.append(f"opaque={quote(params['opaque'])}")
    return ", ".join(parts)


def pick_challenge(values: list[str]) -> str | None:
    """The first challenge with an algorithm we implement (servers list the preferred first)."""
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        try:
            algorithm = parse_auth_params(rest).get("algorithm", "MD5")
        except ValueError:
            continue
        if any(a.lower() == algorithm.lower() for a in ALGORITHMS):
            return value
    return None
