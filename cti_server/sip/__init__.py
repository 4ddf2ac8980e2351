"""The sans-IO SIP core (RFC 3261): messages, URIs, SDP, digest auth, transactions, registrar.

Bytes go in, parsed objects and bytes come out; the asyncio transports in ``transport`` are the only
part that touches sockets.
"""

from cti_server.sip.errors import SipParseError

__all__ = ["SipParseError"]
