"""SDP parse/serialize (RFC 4566) and the offer/answer helpers (RFC 3264 5.1, RFC 3551)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti_server.sip.sdp import (
    Connection,
    MediaDescription,
    Origin,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)

OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844527 IN IP4 atlanta.example.com\r\n"
    "s=-\r\n"
    "i=A call\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "b=AS:128\r\n"
    "t=0 0\r\n"
    "a=sendrecv\r\n"
    "m=audio 49172 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "m=video 51372 RTP/AVP 31 32\r\n"
    "c=IN IP4 192.0.2.102\r\n"
    "a=rtpmap:32 MPV/90000\r\n"
    "a=recvonly\r\n"
)


def test_parse_session_and_media_fields() -> None:
    sdp = parse_sdp(OFFER.encode())
    assert sdp.origin == Origin("alice", "2890844526", 2890844527, "IN", "IP4", "atlanta.example.com")
    assert sdp.session_name == "-" and sdp.information == "A call"
    assert sdp.connection == Connection("192.0.2.101")
    assert sdp.bandwidths == [("AS", 128)] and sdp.times == [(0, 0)]
    assert sdp.direction == "sendrecv"
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 49172, "RTP/AVP")
    assert audio.formats == ["0", "8", "101"]
    assert audio.connection is None and sdp.connection_for(audio) == Connection("192.0.2.101")
    assert sdp.connection_for(video) == Connection("192.0.2.102")
    assert audio.rtpmaps == {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 101: ("telephone-event", 8000, 1)}
    assert audio.fmtps == {101: "0-16"} and audio.ptime == 20
    assert video.rtpmaps == {31: ("H261", 90000, 1), 32: ("MPV", 90000, 1)}
    assert audio.direction == "sendrecv" and video.direction == "recvonly"
    assert sdp.direction_of(video) == "recvonly" and sdp.direction_of(audio) == "sendrecv"


def test_round_trip_is_byte_exact() -> None:
    assert parse_sdp(OFFER).serialize() == OFFER.encode()
    assert str(parse_sdp(OFFER.replace("\r\n", "\n"))) == OFFER


def test_direction_setter_replaces_existing_attribute() -> None:
    sdp = parse_sdp(OFFER)
    audio = sdp.media[0]
    audio.direction = "sendonly"
    assert audio.direction == "sendonly" and audio.get_attributes("sendonly") == [""]
    audio.direction = "inactive"
    assert [name for name, _ in audio.attributes].count("sendonly") == 0
    assert "a=inactive\r\n" in str(sdp)
    with pytest.raises(ValueError):
        audio.direction = "both"
    sdp.direction = "inactive"
    assert sdp.direction_of(sdp.media[1]) == "recvonly"


def test_session_level_direction_applies_to_media_without_one() -> None:
    sdp = parse_sdp(OFFER.replace("a=sendrecv", "a=sendonly"))
    assert sdp.direction_of(sdp.media[0]) == "sendonly"
    assert sdp.media[0].direction == "sendrecv"


def test_build_and_serialize() -> None:
    audio = MediaDescription("audio", 4000, "RTP/AVP", ["0", "101"])
    audio.add_attribute("rtpmap", "101 telephone-event/8000")
    audio.add_attribute("fmtp", "101 0-15")
    audio.direction = "sendrecv"
    sdp = SessionDescription(origin=Origin("cti", "1", 1, "IN", "IP4", "192.0.2.1"),
                             connection=Connection("192.0.2.1"), media=[audio])
    assert str(sdp) == (
        "v=0\r\no=cti 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        "a=sendrecv\r\n")
    assert parse_sdp(str(sdp)) == sdp


def test_attribute_helpers() -> None:
    media = parse_sdp(OFFER).media[0]
    assert media.get_attribute("ptime") == "20" and media.get_attribute("nothing") is None
    media.remove_attribute("rtpmap")
    assert media.rtpmaps == {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1)}
    assert media.payload_types == [0, 8, 101]


def test_multicast_ipv6_port_count_and_other_lines() -> None:
    text = ("v=0\no=- 1 1 IN IP6 2001:db8::1\ns=Seminar\nu=http://example.com/s\ne=j@example.com\n"
            "p=+1 617 555-6011\nc=IN IP4 224.2.1.1/127/3\nt=2873397496 2873404696\nr=7d 1h 0 25h\n"
            "z=2882844526 -1h\nk=prompt\nm=audio 49170/2 RTP/AVP 96\ni=audio\nc=IN IP6 FF15::101/3\n"
            "b=CT:64\nk=clear:x\na=rtpmap:96 opus/48000/2\na=ptime:20.5\n")
    sdp = parse_sdp(text)
    assert sdp.connection == Connection("224.2.1.1", "IP4", "IN", 127, 3)
    media = sdp.media[0]
    assert media.port_count == 2 and media.title == "audio" and media.key == "clear:x"
    assert media.connection == Connection("FF15::101", "IP6", "IN", None, 3)
    assert media.rtpmaps == {96: ("opus", 48000, 2)} and media.ptime == 20
    assert sdp.times == [(2873397496, 2873404696)] and sdp.repeats == ["7d 1h 0 25h"]
    assert str(sdp) == text.replace("\n", "\r\n")


def test_missing_t_line_is_tolerated() -> None:
    sdp = parse_sdp("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 0\r\n")
    assert sdp.times == [(0, 0)] and "t=0 0" in str(sdp)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("o=- 1 1 IN IP4 h\r\nv=0\r\n", "first line"),
    ("v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n", "version"),
    ("v=0\r\ns=-\r\n", "missing o="),
    ("v=0\r\no=- 1 1 IN IP4 h\r\n", "missing s="),
    ("v=0\r\no=- 1 IN IP4 h\r\ns=-\r\n", "o= line"),
    ("v=0\r\no=- x 1 IN IP4 h\r\ns=-\r\n", "sess-id"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n", "missing c="),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n", "port"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nm=audio 1 RTP/AVP\r\n", "m= line"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4\r\n", "c= line"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h/x\r\n", "TTL"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nb=AS\r\n", "b= line"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=now 0\r\n", "t= start"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nx=1\r\n", "unknown"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\ns=-\r\n", "media section"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ns=again\r\n", "more than one"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nbogus\r\n", "type"),
    ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\na=:x\r\n", "attribute name"),
])
def test_invalid_sdp(text: str, reason: str) -> None:
    with pytest.raises(SdpParseError, match=reason):
        parse_sdp(text)


def test_malformed_rtpmap_fmtp_ptime_are_ignored() -> None:
    base = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nm=audio 1 RTP/AVP 0 96\r\n"
    media = parse_sdp(base + "a=rtpmap:96 opus\r\na=rtpmap:0 PCMU/8000\r\na=fmtp:x y\r\na=fmtp:96 a=1\r\n"
                      "a=ptime:soon\r\n").media[0]
    assert media.rtpmaps == {0: ("PCMU", 8000, 1)}
    assert media.fmtps == {96: "a=1"}
    assert media.ptime is None
    for bad in ("inf", "-20", "nan", ""):
        assert parse_sdp(base + f"a=ptime:{bad}\r\n").media[0].ptime is None
    assert parse_sdp(base + "a=ptime:30.5\r\n").media[0].ptime == 30


def test_sdp_error_is_a_value_error_with_reason() -> None:
    with pytest.raises(ValueError) as info:
        parse_sdp(b"\xff")
    assert isinstance(info.value, SdpParseError) and info.value.reason


def test_oversize_sdp() -> None:
    with pytest.raises(SdpParseError, match="larger"):
        parse_sdp(b"v=0\r\n" + b"a=x\r\n" * 20000)


def test_rfc4475_bodies_parse() -> None:
    body = ("v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n"
            "m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n")
    sdp = parse_sdp(body)
    assert [m.media for m in sdp.media] == ["audio", "video"]
    assert sdp.media[1].rtpmaps == {31: ("H261", 90000, 1)}  # "a=rtpmap:31 LPC" lacks a clock rate
    assert sdp.media[0].rtpmaps == {0: ("PCMU", 8000, 1), 12: ("QCELP", 8000, 1)}


SDP_PIECES = ["v=0", "o=- 1 1 IN IP4 h", "s=-", "c=IN IP4 192.0.2.1", "c=IN IP6 ::1/3", "t=0 0",
              "m=audio 4000 RTP/AVP 0 8", "m=video 0/2 RTP/AVP 31", "a=rtpmap:0 PCMU/8000",
              "a=rtpmap:x", "a=fmtp:101 0-16", "a=ptime:20", "a=sendonly", "b=AS:64", "i=x", "k=clear:y",
              "x=1", "", "=", "a=", "m=", "c=IN IP4 1.2.3.4/300", "o=", "\u00e9=1", "a=ptime:-1",
              "a=ptime:inf", "a=ptime:nan", "a=ptime:1e9", "m=audio 1 RTP/AVP \u00b2 \u0663 1234",
              "t=\u00b2 0", "o=- \u00b2 1 IN IP4 h", "m=audio \u00b2 RTP/AVP 0"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.sampled_from(SDP_PIECES), max_size=12).map(lambda lines: "\r\n".join(lines))))
def test_parse_sdp_raises_only_sdp_parse_error(data: bytes | str) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpParseError as error:
        assert error.reason
        return
    for media in sdp.media:
        for accessor in ("rtpmaps", "fmtps", "ptime", "payload_types", "direction"):
            try:
                getattr(media, accessor)
            except SdpParseError:
                pass
    assert parse_sdp(sdp.serialize()).serialize() == sdp.serialize()


def test_trailing_blanks_in_structured_lines_are_tolerated() -> None:
    sdp = parse_sdp("v=0\r\no=- 1 1 IN IP4 h \r\ns=-\r\nc=IN IP4 192.0.2.1 \r\nt=0 0 \r\n"
                    "m=audio 4000 RTP/AVP 0 8 \r\n")
    assert sdp.media[0].formats == ["0", "8"] and sdp.connection is not None
    assert sdp.connection.address == "192.0.2.1"


@pytest.mark.parametrize("head", [
    "v=0\r\no=- 1 2 IN IP4 h\r\ns=x y\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n",
    "v=0\no=alice 2890844526 18446744073709551615 IN IP6 ::1\ns=\nc=IN IP6 2001:db8::1\nt=3 4\n",
    "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nt=0 0\r\nc=IN IP4 192.0.2.1\r\n",
    "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 224.2.1.1/127/3\r\nt=0 0\r\n",
    "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=18446744073709551615 0\r\n",
])
def test_usual_first_lines_parse_as_the_same_lines_with_blanks(head: str) -> None:
    # The first lines of the common shape are read in one step; with trailing blanks (which structured
    # lines may have) they are read line by line. Both readings must agree.
    media = "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
    blank = "".join(f"{line} \n" if line[:1] in "oct" else f"{line}\n" for line in head.splitlines())
    assert parse_sdp(head + media) == parse_sdp(blank + media)
    assert parse_sdp(head + media).serialize() == parse_sdp(blank + media).serialize()


@pytest.mark.parametrize("text", [
    "v=0\r\no=- 1 99999999999999999999 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\n",
    "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=18446744073709551616 0\r\n",
    "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ns=-\r\nt=0 0\r\n",
    "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\nv=0\r\n",
])
def test_usual_first_lines_keep_their_limits(text: str) -> None:
    with pytest.raises(SdpParseError):
        parse_sdp(text)


def test_common_names_are_tokens() -> None:
    from cti_server.sip.sdp import _COMMON_TOKENS, _TOKEN_RE

    assert all(_TOKEN_RE.fullmatch(name) for name in _COMMON_TOKENS)
