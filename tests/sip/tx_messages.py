"""Message builders shared by the transaction, transport and stack tests."""

from __future__ import annotations

from cti_server.sip.message import SipRequest, SipResponse, make_request, make_response

BRANCH = "z9hG4bK-test-1"


def request(method: str = "INVITE", *, branch: str | None = BRANCH, cseq: int = 1,
            via_host: str = "192.0.2.10:5060", call_id: str = "call-1@test",
            to_tag: str | None = None, extra: list[tuple[str, str]] | None = None) -> SipRequest:
    """A request as a UAC at ``via_host`` would send it."""
    via = f"SIP/2.0/UDP {via_host}" + (f";branch={branch}" if branch else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return make_request(method, "sip:bob@example.com", from_="<sip:alice@example.com>;tag=ft1", to=to,
                        call_id=call_id, cseq=cseq, via=via, headers=extra)


def response(req: SipRequest, status: int, to_tag: str | None = "tt1") -> SipResponse:
    """The response a UAS would send to ``req``."""
    return make_response(req, status, to_tag=to_tag if status > 100 else None)


def sip_request(method: str, port: int, *, branch: str = "z9hG4bKp1", call_id: str = "c1@peer",
                cseq: int = 1, rport: bool = False, via_port: int | None = None, to_tag: str | None = None,
                extra: str = "", body: bytes = b"") -> bytes:
    """The raw bytes of a request from a UDP peer at 127.0.0.1:``port`` (``extra``: header lines)."""
    via = f"SIP/2.0/UDP 127.0.0.1:{via_port or port};branch={branch}" + (";rport" if rport else "")
    to = "<sip:svc@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:svc@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:peer@127.0.0.1>;tag=pf\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body
