"""Transaction matching (RFC 3261 17.1.3, 17.2.3) including the RFC 2543 fallback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cti_server.sip.errors import SipParseError
from cti_server.sip.matching import (
    _BRANCH_RE,
    _REQUEST_METHOD_RE,
    _TOP_VIA_RE,
    client_key,
    is_rfc2543_key,
    server_key,
    server_key_from_bytes,
    to_tag_matches,
)
from cti_server.sip.message import SipRequest
from cti_server.sip.parser import parse_message
from tests.sip.tx_messages import request, response


def test_client_key_is_branch_and_cseq_method() -> None:
    invite = request("INVITE")
    assert client_key(response(invite, 180)) == client_key(invite) == ("z9hG4bK-test-1", "INVITE")
    cancel = request("CANCEL")  # same branch as the INVITE (9.1), its own transaction
    assert client_key(response(cancel, 200)) == ("z9hG4bK-test-1", "CANCEL") != client_key(invite)


def test_server_key_matches_retransmissions_and_ack_to_the_invite() -> None:
    invite = request("INVITE")
    assert server_key(request("INVITE")) == server_key(invite)
    assert server_key(request("ACK", to_tag="tt1")) == server_key(invite)  # ACK for a non-2xx
    assert not is_rfc2543_key(server_key(invite))


def test_server_key_cancel_is_its_own_transaction_but_finds_the_invite() -> None:
    invite = request("INVITE")
    cancel = request("CANCEL")
    assert server_key(cancel) != server_key(invite)
    assert server_key(cancel, "INVITE") == server_key(invite)


def test_server_key_separates_same_branch_from_different_sent_by() -> None:
    a = request("OPTIONS", via_host="192.0.2.10:5060")
    b = request("OPTIONS", via_host="192.0.2.11:5060")
    c = request("OPTIONS", via_host="192.0.2.10:5070")
    assert len({server_key(a), server_key(b), server_key(c)}) == 3
    assert server_key(request("OPTIONS", via_host="HOST.example.com")) == server_key(
        request("OPTIONS", via_host="host.example.com"))


def test_rfc2543_fallback_without_magic_cookie() -> None:
    invite = request("INVITE", branch=None)
    key = server_key(invite)
    assert is_rfc2543_key(key)
    assert server_key(request("INVITE", branch=None)) == key
    assert server_key(request("ACK", branch=None, to_tag="tt1")) == key
    assert server_key(request("INVITE", branch=None, cseq=2)) != key
    assert server_key(request("INVITE", branch=None, call_id="other@test")) != key
    assert server_key(request("INVITE", branch=None, via_host="192.0.2.99")) != key
    assert server_key(request("CANCEL", branch=None), "INVITE") == key
    old_style = request("INVITE", branch="1234")  # a branch without the cookie is RFC 2543 too
    assert is_rfc2543_key(server_key(old_style))


def test_rfc2543_to_tag_rules() -> None:
    ack = request("ACK", branch=None, to_tag="tt1")
    assert to_tag_matches(ack, None, "tt1")
    assert not to_tag_matches(ack, None, "other")
    assert to_tag_matches(request("INVITE", branch=None), None, "tt1")
    assert not to_tag_matches(request("INVITE", branch=None, to_tag="zz"), None, "tt1")
    assert to_tag_matches(request("CANCEL", branch=None, to_tag="zz"), None, "tt1")


def corpus_messages() -> list[bytes]:
    root = Path(__file__).parent / "corpus"
    return [path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()]


def test_server_key_from_bytes_equals_server_key_or_declines() -> None:
    found = 0
    samples = [request(m).serialize() for m in ("INVITE", "OPTIONS", "REGISTER", "BYE")]
    samples.append(request("ACK", to_tag="tt1").serialize())
    samples.append(b"OPTIONS sip:a SIP/2.0\r\nv : SIP / 2.0 / udp HOST.Example.com:05060 ;rport; "
                   b"branch=z9hG4bKx, SIP/2.0/UDP other\r\nf: <sip:a@b>;tag=1\r\nt: <sip:b@c>\r\ni: c\r\n"
                   b"CSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")
    for data in [*samples, *corpus_messages()]:
        try:
            message = parse_message(data)
        except SipParseError:
            continue
        if not isinstance(message, SipRequest):
            continue
        fast = server_key_from_bytes(data)
        if fast is not None:
            found += 1
            assert fast == server_key(message), data[:200]
    assert found >= len(samples)


@given(st.binary(max_size=300))
def test_server_key_from_bytes_never_raises(data: bytes) -> None:
    server_key_from_bytes(b"OPTIONS sip:x SIP/2.0\r\nVia: " + data + b"\r\n\r\n")
    server_key_from_bytes(data)


def _key_by_search(data: bytes) -> tuple[str, ...] | None:
    """server_key_from_bytes as one general search for the top Via and its branch (the reference)."""
    method = _REQUEST_METHOD_RE.match(data)
    header_end = data.find(b"\r\n\r\n")
    if method is None or header_end < 0:
        return None
    via = _TOP_VIA_RE.search(data, 0, header_end + 2)
    branch = _BRANCH_RE.search(via.group(3)) if via is not None else None
    if via is None or branch is None or via.group(1).startswith(b"["):
        return None
    port = via.group(2)
    name = method.group(1).decode("ascii")
    return (branch.group(1).decode("ascii"), via.group(1).decode("ascii").lower(),
            str(int(port)) if port else "", "INVITE" if name == "ACK" else name)


_VIA_PIECES = st.sampled_from([
    "Via: ", "v: ", "VIA:", "Via: SIP/2.0/UDP ", "SIP/2.0/TCP ", "host.example.com", "10.0.0.1", "[::1]",
    ":5060", ":99999", ";branch=z9hG4bK", ";BRANCH=z9hG4bK", ";branch=x", "abc", ";rport",
    ";received=1.2.3.4", " ", "\t", ",", "\r\n", "\n", '"', ";", "=",
    "Via: SIP/2.0/UDP a;branch=z9hG4bKfirst\r\n"])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["INVITE", "ACK", "v", "V", "Via:"]), st.lists(_VIA_PIECES, max_size=12).map("".join))
def test_server_key_from_bytes_finds_what_a_search_finds(method: str, headers: str) -> None:
    data = f"{method} sip:x SIP/2.0\r\n{headers}\r\nCSeq: 1 {method}\r\n\r\n".encode()
    assert server_key_from_bytes(data) == _key_by_search(data)


def test_the_usual_top_via_and_its_odd_neighbours_give_the_searched_key() -> None:
    for headers in ("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport",
                    "Via: SIP/2.0/UDP Host.example.com;rport;branch=z9hG4bKb,SIP/2.0/UDP c",
                    "Via: SIP/2.0/UDP h:5060;branch=z9hG4bKc;received=1.2.3.4",
                    "Via: SIP/2.0/UDP h;branch=z9hG4bK\r\nVia: SIP/2.0/UDP h2;branch=z9hG4bKd",
                    "Via: SIP/2.0/UDP h:99999;branch=z9hG4bKe", "Via: SIP/2.0/UDP h;branch=z9hG4bKf;x=\"q\""):
        for first_line in ("INVITE sip:x SIP/2.0", "v sip:x SIP/2.0",
                           "INVITE sip:x\nv: SIP/2.0/UDP z;branch=z9hG4bKz"):
            data = f"{first_line}\r\n{headers}\r\nCSeq: 1 INVITE\r\n\r\n".encode()
            assert server_key_from_bytes(data) == _key_by_search(data), data
