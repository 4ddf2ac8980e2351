"""RFC 3261 section 12 dialogs: creation on both sides, route sets, CSeq order, in-dialog requests."""

from __future__ import annotations

import pytest

from cti_server.sip.dialog import Dialog, DialogError, DialogState
from cti_server.sip.headers import Headers
from cti_server.sip.message import SipRequest, SipResponse, make_response
from cti_server.sip.uri import parse_uri


def invite(record_route: list[str] | None = None) -> SipRequest:
    headers = Headers([
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc"),
        ("From", '"Alice" <sip:alice@example.com>;tag=a1'),
        ("To", "<sip:bob@example.org>"),
        ("Call-ID", "call-1@192.0.2.1"),
        ("CSeq", "314 INVITE"),
        ("Contact", "<sip:alice@192.0.2.1:5060;transport=udp>"),
        ("Max-Forwards", "70"),
    ])
    for value in record_route or []:
        headers.add("Record-Route", value)
    return SipRequest("INVITE", parse_uri("sip:bob@example.org"), headers)


def test_uas_dialog_from_invite() -> None:
    request = invite(["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
    dialog = Dialog.as_uas(request, local_tag="b1")
    assert dialog.id.call_id == "call-1@192.0.2.1"
    assert (dialog.local_tag, dialog.remote_tag) == ("b1", "a1")
    assert str(dialog.remote_target) == "sip:alice@192.0.2.1:5060;transport=udp"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert dialog.remote_cseq == 314 and dialog.local_cseq == 0
    assert dialog.state is DialogState.EARLY

    bye = dialog.create_request("BYE")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:alice@192.0.2.1:5060;transport=udp"  # loose routing: target stays
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert bye.from_tag == "b1" and bye.to_tag == "a1"
    assert bye.from_addr.uri.user == "bob" and bye.to_addr.display_name == "Alice"
    assert bye.cseq.number == 1 and bye.cseq.method == "BYE"
    assert bye.call_id == "call-1@192.0.2.1"
    assert "Via" not in bye.headers
    assert str(dialog.next_hop()) == "sip:p1.example.com;lr"


def test_uac_dialog_reverses_route_set_and_takes_contact_of_response() -> None:
    request = invite()
    response = make_response(request, 200, to_tag="b9", headers=[
        ("Contact", "<sip:bob@198.51.100.2:5062>"),
        ("Record-Route", "<sip:p1.example.com;lr>"),
        ("Record-Route", "<sip:p2.example.com;lr>"),
    ])
    dialog = Dialog.as_uac(request, response)
    assert dialog.state is DialogState.CONFIRMED
    assert (dialog.local_tag, dialog.remote_tag) == ("a1", "b9")
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert str(dialog.remote_target) == "sip:bob@198.51.100.2:5062"
    ack = dialog.create_ack(314)
    assert ack.cseq.number == 314 and ack.cseq.method == "ACK"
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n",
                                     headers=Headers([("Content-Type", "application/sdp")]))
    assert reinvite.cseq.number == 315
    assert reinvite.headers.get("Content-Type") == "application/sdp"
    assert reinvite.body == b"v=0\r\n"


def test_strict_router_gets_request_uri_and_target_as_last_route() -> None:
    request = invite()
    response = make_response(request, 200, to_tag="b9", headers=[
        ("Contact", "<sip:bob@198.51.100.2>"), ("Record-Route", "<sip:strict.example.com>")])
    dialog = Dialog.as_uac(request, response)
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:bob@198.51.100.2>"]


def test_early_dialog_confirmed_by_2xx_takes_its_route_set_and_target() -> None:
    request = invite()
    ringing = make_response(request, 180, to_tag="b9", headers=[("Contact", "<sip:bob@10.0.0.1>")])
    dialog = Dialog.as_uac(request, ringing)
    assert dialog.state is DialogState.EARLY
    ok = make_response(request, 200, to_tag="b9", headers=[
        ("Contact", "<sip:bob@10.0.0.2>"), ("Record-Route", "<sip:p.example.com;lr>")])
    dialog.confirm(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:bob@10.0.0.2"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p.example.com;lr"]


def in_dialog(method: str, cseq: int, contact: str | None = None) -> SipRequest:
    headers = Headers([
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx"),
        ("From", "<sip:alice@example.com>;tag=a1"), ("To", "<sip:bob@example.org>;tag=b1"),
        ("Call-ID", "call-1@192.0.2.1"), ("CSeq", f"{cseq} {method}")])
    if contact:
        headers.add("Contact", contact)
    return SipRequest(method, parse_uri("sip:bob@203.0.113.5"), headers)


def test_remote_cseq_must_rise_and_target_refresh() -> None:
    dialog = Dialog.as_uas(invite(), local_tag="b1", confirmed=True)
    ack = in_dialog("ACK", 314)
    dialog.receive_request(ack)  # ACK reuses the INVITE's number
    reinvite = in_dialog("INVITE", 315, contact="<sip:alice@192.0.2.99>")
    assert dialog.matches(reinvite)
    dialog.receive_request(reinvite)
    assert str(dialog.remote_target) == "sip:alice@192.0.2.99"
    with pytest.raises(DialogError) as info:
        dialog.receive_request(in_dialog("BYE", 315))
    assert info.value.status == 500
    dialog.receive_request(in_dialog("BYE", 316))
    assert dialog.remote_cseq == 316


def test_matching_and_bad_input() -> None:
    dialog = Dialog.as_uas(invite(), local_tag="b1")
    assert not dialog.matches(in_dialog("BYE", 400).__class__(
        "BYE", parse_uri("sip:x@y"), Headers([("From", "<sip:a@b>;tag=zz"), ("To", "<sip:b@c>;tag=b1"),
                                               ("Call-ID", "call-1@192.0.2.1"), ("CSeq", "1 BYE")])))
    no_tag = invite()
    no_tag.headers.set("From", "<sip:alice@example.com>")
    with pytest.raises(DialogError):
        Dialog.as_uas(no_tag, local_tag="b1")
    no_contact = invite()
    no_contact.headers.remove("Contact")
    with pytest.raises(DialogError):
        Dialog.as_uas(no_contact, local_tag="b1")
    request = invite()
    with pytest.raises(DialogError):
        Dialog.as_uac(request, SipResponse(200, "OK", request.headers.copy()))  # To without tag


def test_terminated_dialog_refuses_new_requests() -> None:
    dialog = Dialog.as_uas(invite(), local_tag="b1", confirmed=True)
    dialog.terminate()
    with pytest.raises(DialogError) as info:
        dialog.create_request("BYE")
    assert info.value.status == 481
    with pytest.raises(DialogError):
        dialog.create_request("CANCEL")


def test_in_dialog_requests_answer_lookups_as_their_lines_say() -> None:
    dialog = Dialog.as_uas(invite(["<sip:p1.example.com;lr>"]), local_tag="b1")
    extra = Headers([("Contact", "<sip:bob@192.0.2.4>"), ("Route", "<sip:extra.example.com;lr>")])
    for request in (dialog.create_request("BYE"), dialog.create_request("INFO", headers=extra)):
        items = request.headers.items()
        for name in {name for name, _ in items}:
            assert request.headers.get_lines(name) == [v for n, v in items if n == name]
