"""SIP dialogs (RFC 3261 section 12), sans-IO.

A ``Dialog`` is the state two user agents share after an INVITE: Call-ID and the two tags, the local and
remote URIs, the remote target (the peer's Contact, refreshed by target-refresh requests), the route set
(from Record-Route, section 12.1.1 for the UAS and 12.1.2 for the UAC) and the CSeq counters. It builds
in-dialog requests (section 12.2.1.1: Request-URI and Route for loose and strict routers) and checks the
CSeq order of requests it receives (section 12.2.2). It never touches a socket: the caller sends what it
builds and passes in what it receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from cti_server.sip.address import NameAddr, parse_name_addr
from cti_server.sip.headers import Headers
from cti_server.sip.message import SipRequest, SipResponse
from cti_server.sip.uri import SipUri, copy_uri

#: Requests that refresh the remote target (RFC 3261 section 12.2, RFC 3311, RFC 3515 NOTIFY does not).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})


class DialogState(StrEnum):
    """Section 12: a dialog is early (after 1xx with a To tag), confirmed (after 2xx) or terminated."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogError(ValueError):
    """A message that cannot create or belong to a dialog; ``status`` is the response to send (400/500)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class DialogId:
    """Section 12: Call-ID, local tag and remote tag identify a dialog (from our side)."""

    call_id: str
    local_tag: str
    remote_tag: str


@dataclass
class Dialog:
    """One side of a SIP dialog (RFC 3261 section 12)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipUri
    route_set: list[NameAddr] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY
    # (local_uri, remote_uri, local tag, remote tag, From text, To text): every in-dialog request
    # carries the same From and To, so they are formatted once while those four stay the same.
    _from_to: tuple[NameAddr, NameAddr, str, str, str, str] | None = field(
        default=None, init=False, repr=False, compare=False)

    # --- creation ------------------------------------------------------------------------------------

    @classmethod
    def as_uas(cls, request: SipRequest, local_tag: str, *, confirmed: bool = False) -> Dialog:
        """The dialog a UAS creates when it answers ``request`` with a To tag (section 12.1.1).

        Route set: the request's Record-Route values in order; remote target: its Contact.
        """
        remote_tag = request.from_tag
        if not remote_tag:
            raise DialogError("From has no tag")
        target = _single_contact(request.contacts, "request")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.to_addr),
            remote_uri=_without_tag(request.from_addr),
            remote_target=target,
            route_set=[parse_name_addr(v) for v in request.headers.get_all("Record-Route")],
            local_cseq=0,
            remote_cseq=request.cseq.number,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
        )

    @classmethod
    def as_uac(cls, request: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a UAC creates from a 1xx (with To tag) or 2xx to ``request`` (section 12.1.2).

        Route set: the response's Record-Route values in reverse; remote target: its Contact.
        """
        local_tag = request.from_tag
        remote_tag = response.to_tag
        if not local_tag:
            raise DialogError("request From has no tag")
        if not remote_tag:
            raise DialogError("response To has no tag")
        target = _single_contact(response.contacts, "response")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_addr),
            remote_uri=_without_tag(request.to_addr),
            remote_target=target,
            route_set=list(reversed([parse_name_addr(v) for v in response.headers.get_all("Record-Route")])),
            local_cseq=request.cseq.number,
            remote_cseq=None,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )

    # --- state -----------------------------------------------------------------------------------------

    @property
    def id(self) -> DialogId:
        """The dialog id from our side."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    def confirm(self, response: SipResponse | None = None) -> None:
        """A 2xx arrived (UAC) or was sent (UAS): the dialog is confirmed (section 12.1).

        For a UAC the route set of an early dialog is recomputed from the 2xx (section 12.2.1.2 says the
        2xx's Record-Route is authoritative) and its Contact becomes the remote target.
        """
        if response is not None:
            routes = response.headers.get_all("Record-Route")
            self.route_set = list(reversed([parse_name_addr(v) for v in routes]))
            self.refresh_target(response)
        self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        """BYE sent or received, or the INVITE failed: no more requests in this dialog."""
        self.state = DialogState.TERMINATED

    def refresh_target(self, message: SipRequest | SipResponse) -> None:
        """Take the Contact of a target refresh request or its 2xx as the new remote target (12.2)."""
        contacts = message.contacts
        if contacts == "*" or not contacts:
            return
        self.remote_target = _copy_uri(contacts[0].uri)

    def receive_request(self, request: SipRequest) -> None:
        """Check an in-dialog request from the peer (section 12.2.2) and update the remote CSeq.

        A CSeq lower than (or, but for ACK/CANCEL, equal to) the last one gets ``DialogError`` with
        status 500; a target refresh request updates the remote target.
        """
        number = request.cseq.number
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_cseq is not None and number <= self.remote_cseq:
                raise DialogError(f"CSeq {number} is not above {self.remote_cseq}", 500)
            self.remote_cseq = number
        if request.method in TARGET_REFRESH:
            self.refresh_target(request)

    def matches(self, message: SipRequest | SipResponse, *, incoming_request: bool = True) -> bool:
        """Whether ``message`` belongs to this dialog: for a request from the peer, our tag is in To."""
        if message.call_id != self.call_id:
            return False
        if incoming_request:
            return message.to_tag == self.local_tag and message.from_tag == self.remote_tag
        return message.from_tag == self.local_tag and message.to_tag == self.remote_tag

    # --- building requests ------------------------------------------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        headers: Headers | None = None,
        body: bytes = b"",
        cseq: int | None = None,
    ) -> SipRequest:
        """A request within the dialog (section 12.2.1.1), without Via (the transaction layer adds it).

        The local CSeq goes up by one, except for ACK (and CANCEL), which reuse ``cseq`` of the request they
        belong to. Request-URI and Route follow the route set: loose routing (first route has ``lr``)
        keeps the remote target as Request-URI; a strict router gets the first route as Request-URI and
        the remote target appended as the last Route.
        """
        if self.state is DialogState.TERMINATED and method not in ("ACK",):
            raise DialogError(f"cannot send {method} in a terminated dialog", 481)
        if method in ("ACK", "CANCEL"):
            if cseq is None:
                raise DialogError(f"{method} needs the CSeq of the request it belongs to")
            number = cseq
        else:
            self.local_cseq = self.local_cseq + 1 if cseq is None else cseq
            number = self.local_cseq
        uri, routes = self._request_uri_and_routes()
        from_text, to_text = self._from_to_text()
        entries = [("route", "Route", route) for route in routes] if routes else []
        entries += (("from", "From", from_text), ("to", "To", to_text), ("call-id", "Call-ID", self.call_id),
                    ("cseq", "CSeq", f"{number} {method}"), ("max-forwards", "Max-Forwards", "70"))
        out = Headers._from_entries(entries)
        if headers is not None:
            for name, value in headers.items():
                out.add(name, value)
        return SipRequest(method, uri, out, body)

    def create_ack(
        self, invite_cseq: int, *, headers: Headers | None = None, body: bytes = b""
    ) -> SipRequest:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_cseq`` (section 13.2.2.4)."""
        return self.create_request("ACK", headers=headers, body=body, cseq=invite_cseq)

    def _from_to_text(self) -> tuple[str, str]:
        cached = self._from_to
        if (cached is None or cached[0] is not self.local_uri or cached[1] is not self.remote_uri
                or cached[2] != self.local_tag or cached[3] != self.remote_tag):
            cached = (self.local_uri, self.remote_uri, self.local_tag, self.remote_tag,
                      str(_with_tag(self.local_uri, self.local_tag)),
                      str(_with_tag(self.remote_uri, self.remote_tag)))
            self._from_to = cached
        return cached[4], cached[5]

    def next_hop(self) -> SipUri:
        """Where requests in this dialog go first (RFC 3263 resolves this URI): first route or target."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def _request_uri_and_routes(self) -> tuple[SipUri, list[str]]:
        if not self.route_set:
            return _copy_uri(self.remote_target), []
        first = self.route_set[0]
        if "lr" in first.uri.params:
            return _copy_uri(self.remote_target), [str(r) for r in self.route_set]
        strict_uri = replace(first.uri, params=dict(first.uri.params), headers={})
        routes = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        return strict_uri, routes


def _single_contact(contacts: list[NameAddr] | str, what: str) -> SipUri:
    if contacts == "*" or not contacts or isinstance(contacts, str):
        raise DialogError(f"{what} has no Contact to use as remote target")
    return _copy_uri(contacts[0].uri)


_copy_uri = copy_uri


def _without_tag(addr: NameAddr) -> NameAddr:
    params = addr.params
    if not params or (len(params) == 1 and "tag" in params):  # no parameters, or only the tag
        params = {}
    else:
        params = {k: v for k, v in params.items() if k.lower() != "tag"}
    return NameAddr(addr.display_name, _copy_uri(addr.uri), params)


def _with_tag(addr: NameAddr, tag: str) -> NameAddr:
    return NameAddr(addr.display_name, addr.uri, {**addr.params, "tag": tag})
