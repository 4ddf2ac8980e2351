"""Fuzzing parse_message: any bytes give a message or SipParseError, never another exception (RFC 3261 7).

Inputs that once crashed the parser are kept in tests/sip/corpus/fuzz/ and replayed here. Set
SIP_FUZZ_EXAMPLES to run longer campaigns (the suite default stays small to keep the run fast).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cti_server.sip import SipParseError, SipRequest, StreamFramer, parse_message, response_for_unparseable

CORPUS = Path(__file__).parent / "corpus"
SEEDS = sorted((CORPUS / "rfc4475").glob("*.sip"))
REGRESSIONS = sorted((CORPUS / "fuzz").glob("*"))
EXAMPLES = int(os.environ.get("SIP_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECIAL = [b"\r\n", b"\r\n ", b";", b",", b'"', b"\\", b"<", b">", b":", b"@", b"[", b"]", b"=", b"?", b"%",
           b" ", b"\x00", b"\xff", b"\r", b"\n", b"0", b"9999999999999999999", b"-1", b"sip:", b"SIP/2.0"]


def exercise(data: bytes) -> None:
    """Parse, read every typed header, serialize and re-parse: only SipParseError may escape."""
    try:
        message = parse_message(data)
    except SipParseError as error:
        assert error.reason and 400 <= error.status <= 699
        response = response_for_unparseable(data, error)
        if response is not None:
            assert response.top_via is not None and response.cseq.number >= 0
            assert response.serialize().startswith(f"SIP/2.0 {response.status} ".encode())
            assert 400 <= response.status <= 699 and "\r" not in response.reason
        return
    for accessor in ("call_id", "cseq", "vias", "top_via", "from_addr", "to_addr", "from_tag", "to_tag",
                     "contacts", "expires", "content_type", "media_type"):
        try:
            getattr(message, accessor)
        except SipParseError:
            pass
    if isinstance(message, SipRequest):
        assert message.max_forwards is None or 0 <= message.max_forwards <= 255
    wire = message.serialize()
    again = parse_message(wire)
    assert again.serialize() == wire


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "flip", "truncate", "duplicate"]))
        if action == "insert":
            data[position:position] = draw(st.sampled_from(SPECIAL))
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 8))]
        elif action == "replace":
            data[position:position + 1] = draw(st.sampled_from(SPECIAL))
        elif action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del data[position:]
        elif action == "duplicate":
            data[position:position] = data[max(0, position - 40):position]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=1500))
def test_random_bytes_never_crash(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_start_line_never_crash(tail: bytes) -> None:
    exercise(b"INVITE sip:a@b SIP/2.0\r\n" + tail)
    exercise(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n" + tail)


@FUZZ
@given(mutated_messages())
def test_mutated_valid_messages_never_crash(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(mutated_messages(), st.lists(st.integers(1, 200), min_size=1, max_size=20))
def test_stream_framer_never_crashes(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(4096)
    position = 0
    try:
        for size in cuts:
            for message in framer.feed(data[position:position + size]):
                if message:
                    exercise(message)
            position += size
    except SipParseError:
        pass


@pytest.mark.parametrize("path", REGRESSIONS, ids=[path.name for path in REGRESSIONS])
def test_fuzz_regressions(path: Path) -> None:
    exercise(path.read_bytes())


def test_regression_corpus_is_not_empty() -> None:
    assert REGRESSIONS, "tests/sip/corpus/fuzz/ holds the inputs fuzzing once crashed on"


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=12), st.text(max_size=40))
def test_unicode_header_lines_never_crash(lines: list[tuple[str, str]], uri: str) -> None:
    mandatory = ("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\n"
                 "Call-ID: x\r\nCSeq: 1 INVITE\r\n")
    extra = "".join(f"{name}: {value}\r\n" for name, value in lines)
    for start in (f"INVITE {uri} SIP/2.0\r\n", "INVITE sip:a@b SIP/2.0\r\n", f"SIP/2.0 200 {uri}\r\n"):
        exercise((start + mandatory + extra + "\r\n").encode("utf-8", "surrogatepass"))
        exercise((start + extra + mandatory + "\r\n").encode("utf-8", "surrogatepass"))
