"""SIP errors that carry what the peer should be told."""

from __future__ import annotations


class SipParseError(ValueError):
    """Bytes that RFC 3261 does not allow as a SIP message.

    ``reason`` says what is wrong (it goes into the 400 reason phrase / a Warning header);
    ``status`` is the response to answer with where one can be sent (400, 413, 416, 505, 513...).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
