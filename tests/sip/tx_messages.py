"""Message builders shared by the transaction and stack tests."""

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
