"""Transaction matching keys, RFC 3261 17.1.3 (client) and 17.2.3 (server, with the RFC 2543 fallback).

A key is a hashable tuple; the stack keeps one dict of client transactions and one of server
transactions keyed by these. ACK and CANCEL find the INVITE they refer to with ``invite_key``.
"""

from __future__ import annotations

import re

from cti_server.sip.message import SipRequest, SipResponse

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 8.1.1.7: a branch starting with this was built by an RFC 3261 element and is unique."""

ServerKey = tuple[str, ...]
ClientKey = tuple[str, str]


def client_key(message: SipRequest | SipResponse) -> ClientKey:
    """17.1.3: the top Via branch plus the CSeq method (a CANCEL has the INVITE's branch)."""
    return (message.top_via.branch or "", message.cseq.method)


def server_key(request: SipRequest, method: str | None = None) -> ServerKey:
    """17.2.3: branch + sent-by + method (ACK counts as INVITE); RFC 2543 fallback without a cookie.

    ``method`` overrides the request's own, so a CANCEL looks up ``server_key(cancel, "INVITE")``.
    The RFC 2543 form is Request-URI, From tag, Call-ID, CSeq number, top Via and method; the To tag
    comparison the RFC also asks for is done by ``to_tag_matches`` (an ACK carries the response's tag).
    """
    match_method = method or ("INVITE" if request.method == "ACK" else request.method)
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), str(via.port or ""), match_method)
    return (
        "rfc2543",
        str(request.uri),
        request.from_tag or "",
        request.call_id,
        str(request.cseq.number),
        request.headers.get_all("Via")[0].strip(),
        match_method,
    )


def is_rfc2543_key(key: ServerKey) -> bool:
    """True for a key built by the RFC 2543 fallback (no magic cookie in the branch)."""
    return key[0] == "rfc2543"


def to_tag_matches(request: SipRequest, original_to_tag: str | None, response_to_tag: str | None) -> bool:
    """17.2.3 RFC 2543 rule for the To tag: an ACK carries the tag of our response, a retransmission
    the tag of the original request; a CANCEL is not compared (9.2)."""
    if request.method == "CANCEL":
        return True
    expected = response_to_tag if request.method == "ACK" else original_to_tag
    return request.to_tag == expected


_TOP_VIA_RE = re.compile(
    rb"^(?:via|v)[ \t]*:[ \t]*sip[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*[a-z0-9\-.!%*_+`'~]+[ \t]+"
    rb"(\[[0-9a-f:.]+\]|[a-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
    rb"((?:[ \t]*;[ \t]*[a-z0-9\-.!%*_+`'~]+(?:[ \t]*=[ \t]*[^;,\s\"]+)?)*)[ \t]*(?:,|\r\n)",
    re.IGNORECASE | re.MULTILINE,
)
# The usual top Via, written without blanks or other case, as the first header line. Where it matches,
# _TOP_VIA_RE matches there with the same groups (which only allows blanks and other case around the same
# parts), and no earlier position can match when the first line holds no LF and starts with no "v".
_PLAIN_TOP_VIA_RE = re.compile(
    rb"Via: SIP/2\.0/[A-Za-z0-9\-.!%*_+`'~]+ (\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?"
    rb"((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;,\s\"]+)?)*)(?:,|\r\n)"
)
_BRANCH_RE = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*(z9hG4bK[^;,\s]*)", re.IGNORECASE)
_REQUEST_METHOD_RE = re.compile(rb"([A-Za-z0-9\-.!%*_+`'~]+) ")


def server_key_from_bytes(data: bytes) -> ServerKey | None:
    """``server_key`` read straight from the bytes of a request, for absorbing retransmissions before
    a full parse (17.2.3 with the magic cookie only). None when the request is not simple enough to be
    sure: then the caller parses it and uses ``server_key``; a key returned here always equals that one.
    """
    method_match = _REQUEST_METHOD_RE.match(data)
    if method_match is None:
        return None
    header_end = data.find(b"\r\n\r\n")
    if header_end < 0:
        return None
    second_line = data.find(b"\n") + 1
    via = None
    if data[:1] not in _V:
        via = _PLAIN_TOP_VIA_RE.match(data, second_line, header_end + 2)
    if via is None:
        via = _TOP_VIA_RE.search(data, 0, header_end + 2)
        if via is None:
            return None
    params = via.group(3)
    if params.startswith(b";branch=z9hG4bK"):
        # what _BRANCH_RE finds at 0: the value up to the next ';' (a value holds no ',' or blank)
        branch = params[8:].partition(b";")[0]
    else:
        branch_match = _BRANCH_RE.search(params)
        if branch_match is None:
            return None
        branch = branch_match.group(1)
    host = via.group(1).decode("ascii").lower()
    if host.startswith("["):
        return None  # IPv6 sent-by: leave the normalisation of the address to the parser
    port = via.group(2)
    method = method_match.group(1).decode("ascii")
    return (
        branch.decode("ascii"),
        host,
        str(int(port)) if port else "",
        "INVITE" if method == "ACK" else method,
    )


_V = (b"v", b"V")
