"""The sans-IO SIP core (RFC 3261): messages, URIs, SDP, digest auth, transactions, registrar.

Bytes go in, parsed objects and bytes come out; the asyncio transports in ``transport`` are the only
part that touches sockets.
"""

from cti_server.sip.address import NameAddr, parse_contact_list, parse_name_addr
from cti_server.sip.errors import SipParseError
from cti_server.sip.headers import COMPACT_FORMS, Headers
from cti_server.sip.message import (
    REASON_PHRASES,
    CSeq,
    SipRequest,
    SipResponse,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
)
from cti_server.sip.parser import StreamFramer, parse_message, response_for_unparseable
from cti_server.sip.sdp import MediaDescription, SdpParseError, SessionDescription, parse_sdp
from cti_server.sip.uri import SipUri, parse_uri
from cti_server.sip.via import Via, parse_via

__all__ = [
    "COMPACT_FORMS",
    "REASON_PHRASES",
    "CSeq",
    "Headers",
    "MediaDescription",
    "NameAddr",
    "SdpParseError",
    "SessionDescription",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "Via",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_contact_list",
    "parse_message",
    "parse_name_addr",
    "parse_sdp",
    "parse_uri",
    "parse_via",
    "response_for_unparseable",
]
