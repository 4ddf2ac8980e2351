"""SDP offer/answer (RFC 3264): codec choice by preference, telephone-event, directions, hold."""

from __future__ import annotations

import pytest

from cti_server.config import MediaConfig
from cti_server.media.offer_answer import LocalSdp, MediaPolicy, OfferAnswerError
from cti_server.media.relay import LegMedia
from cti_server.sip.sdp import SessionDescription, parse_sdp


def offer(media_lines: str, connection: str = "192.0.2.5",
          session_attributes: str = "") -> SessionDescription:
    text = (
        "v=0\r\no=phone 1 1 IN IP4 192.0.2.5\r\ns=-\r\n"
        f"c=IN IP4 {connection}\r\nt=0 0\r\n{session_attributes}{media_lines}"
    )
    return parse_sdp(text)


AUDIO = ("m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
         "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")


def local(policy: MediaPolicy | None = None) -> LocalSdp:
    return LocalSdp("203.0.113.1", 20000, policy or MediaPolicy(), session_id="42", version=7)


def test_answer_picks_our_preferred_codec_and_keeps_offered_payload_types() -> None:
    answer, media = local().create_answer(offer(AUDIO))
    assert (media.codec, media.payload_type, media.dtmf_payload_type) == ("PCMU", 0, 101)
    assert media.remote_address == ("192.0.2.5", 40000)
    assert media.remote_rtcp_address == ("192.0.2.5", 40001)
    assert media.leg_media == LegMedia("PCMU", 0, 101, 20)
    assert media.payload_types == frozenset({0, 101})
    (audio,) = answer.media
    assert (audio.port, audio.formats) == (20000, ["0", "101"])
    assert audio.rtpmaps[101] == ("telephone-event", 8000, 1)
    assert audio.direction == "sendrecv"
    assert answer.connection is not None and answer.connection.address == "203.0.113.1"
    # What we send parses back as the same description.
    assert parse_sdp(answer.serialize()).lines() == answer.lines()


def test_preference_from_config_puts_pcma_first() -> None:
    policy = MediaPolicy.from_config(MediaConfig(codecs=("PCMA", "PCMU"), dtmf_payload_type=96))
    _answer, media = local(policy).create_answer(offer(AUDIO))
    assert (media.codec, media.payload_type) == ("PCMA", 8)


def test_dynamic_payload_type_for_g711_and_no_telephone_event() -> None:
    _answer, media = local().create_answer(offer("m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\n"))
    assert (media.codec, media.payload_type, media.dtmf_payload_type) == ("PCMU", 96, None)


@pytest.mark.parametrize(
    ("offered", "answered", "on_hold"),
    [("sendrecv", "sendrecv", False), ("sendonly", "recvonly", True), ("inactive", "inactive", True),
     ("recvonly", "sendonly", False)],
)
def test_answer_direction_follows_rfc3264_section_6_1(offered: str, answered: str, on_hold: bool) -> None:
    answer, media = local().create_answer(offer(AUDIO + f"a={offered}\r\n"))
    assert media.remote_direction == offered
    assert media.local_direction == answered == answer.media[0].direction
    assert media.on_hold is on_hold


def test_session_level_direction_applies_to_the_stream() -> None:
    _answer, media = local().create_answer(offer(AUDIO, session_attributes="a=sendonly\r\n"))
    assert media.local_direction == "recvonly" and media.on_hold


def test_c_zero_hold_means_do_not_send() -> None:
    answer, media = local().create_answer(offer(AUDIO, connection="0.0.0.0"))
    assert media.on_hold
    assert media.remote_address is None
    assert not media.sending and media.receiving
    assert answer.media[0].direction == "recvonly"


def test_we_hold_in_our_answer_and_offer() -> None:
    sdp = local()
    _answer, media = sdp.create_answer(offer(AUDIO), hold=True)
    assert media.local_direction == "sendonly"
    ours = sdp.create_offer(hold=True)
    assert ours.media[0].direction == "sendonly"


def test_other_streams_rejected_with_port_zero_in_order() -> None:
    video = "m=video 40002 RTP/AVP 34\r\n"
    g729 = "m=audio 40004 RTP/AVP 18\r\n"
    answer, media = local().create_answer(offer(video + g729 + AUDIO + "m=audio 40006 RTP/AVP 0\r\n"))
    assert [(m.media, m.port) for m in answer.media] == [("video", 0), ("audio", 0), ("audio", 20000),
                                                         ("audio", 0)]
    assert answer.media[0].formats == ["34"]
    assert media.remote_address == ("192.0.2.5", 40000)


def test_no_common_codec_is_488_naming_what_was_offered() -> None:
    with pytest.raises(OfferAnswerError) as info:
        local().create_answer(offer("m=audio 4000 RTP/AVP 18 9\r\n"))
    assert info.value.status == 488
    assert "G729" in info.value.reason and "G722" in info.value.reason


def test_rtcp_attribute_sets_the_rtcp_address() -> None:
    _answer, media = local().create_answer(offer(AUDIO + "a=rtcp:53020 IN IP4 198.51.100.9\r\n"))
    assert media.remote_rtcp_address == ("198.51.100.9", 53020)


def test_offer_lists_codecs_by_preference_and_version_moves_only_on_change() -> None:
    sdp = local()
    first = sdp.create_offer()
    (audio,) = first.media
    assert audio.formats == ["0", "8", "101"]
    assert audio.fmtps == {101: "0-15"}
    assert audio.ptime == 20
    assert first.origin.session_version == 7
    assert sdp.create_offer().origin.session_version == 7
    assert sdp.create_offer(hold=True).origin.session_version == 8
    assert sdp.create_offer(hold=True).origin.session_version == 8


def test_serialized_is_the_last_description_built_with_its_version() -> None:
    sdp = local()
    assert sdp.create_offer().serialize() == sdp.serialized
    assert sdp.create_offer(hold=True).serialize() == sdp.serialized
    assert sdp.create_answer(offer(AUDIO))[0].serialize() == sdp.serialized
    assert b"o=cti-server 42 9 IN IP4 203.0.113.1\r\n" in sdp.serialized  # hold, then the answer


def test_accept_answer_uses_the_answerers_first_codec() -> None:
    sdp = local()
    sdp.create_offer()
    answer = offer("m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    media = sdp.accept_answer(answer)
    assert (media.codec, media.payload_type, media.dtmf_payload_type) == ("PCMA", 8, 101)
    assert media.remote_address == ("192.0.2.5", 5000)
    assert media.local_direction == "sendrecv"


def test_accept_answer_to_our_hold_and_rejections() -> None:
    sdp = local()
    with pytest.raises(OfferAnswerError, match="no offer"):
        sdp.accept_answer(offer(AUDIO))
    sdp.create_offer(hold=True)
    media = sdp.accept_answer(offer("m=audio 5000 RTP/AVP 0\r\na=recvonly\r\n"))
    assert media.local_direction == "sendonly" and not media.on_hold
    with pytest.raises(OfferAnswerError, match="rejected"):
        sdp.accept_answer(offer("m=audio 0 RTP/AVP 0\r\n"))
    with pytest.raises(OfferAnswerError, match="none of the codecs"):
        sdp.accept_answer(offer("m=audio 5000 RTP/AVP 18\r\n"))


def test_session_id_and_version_are_drawn_as_randrange_draws_them() -> None:
    import random

    state = random.getstate()
    try:
        random.seed(7)
        expected = [(str(random.randrange(1, 2**62)), random.randrange(1, 2**31)) for _ in range(200)]
        random.seed(7)
        made = [LocalSdp("203.0.113.1", 20000) for _ in range(200)]
    finally:
        random.setstate(state)
    assert [(sdp.session_id, sdp.version) for sdp in made] == expected
