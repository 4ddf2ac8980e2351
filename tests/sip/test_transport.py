"""TCP and TLS transports (RFC 3261 18.3, RFC 5626 4.4.1) through the running stack on loopback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cti_server.events import EventBus
from cti_server.sip.message import SipResponse, make_request, make_response
from cti_server.sip.parser import StreamFramer, parse_message
from cti_server.sip.stack import IncomingRequest, SipComponent
from tests.conftest import free_port, make_config
from tests.sip.tx_messages import sip_request

WAIT = 2.0


async def start_stack(**sip: object) -> SipComponent:
    component = SipComponent(make_config(sip=sip), EventBus())
    await component.start()
    return component


@pytest.fixture
async def stack() -> AsyncIterator[SipComponent]:
    component = await start_stack(max_message_size=1500)
    yield component
    await component.stop()


async def read_message(reader: asyncio.StreamReader, framer: StreamFramer) -> bytes:
    while True:
        data = await asyncio.wait_for(reader.read(65535), WAIT)
        if not data:
            raise ConnectionError("closed")
        messages = framer.feed(data)
        if messages:
            return messages[0]


async def read_response(reader: asyncio.StreamReader) -> SipResponse:
    message = parse_message(await read_message(reader, StreamFramer()))
    assert isinstance(message, SipResponse)
    return message


def tcp_request(method: str, port: int, branch: str = "z9hG4bKt1") -> bytes:
    return sip_request(method, port, branch=branch).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")


async def test_tcp_options_answered_on_the_same_connection_and_split_writes(stack: SipComponent) -> None:
    assert stack.tcp_address is not None
    reader, writer = await asyncio.open_connection(*stack.tcp_address)
    port = writer.get_extra_info("sockname")[1]
    data = tcp_request("OPTIONS", port)
    writer.write(data[:20])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(data[20:] + tcp_request("OPTIONS", port, branch="z9hG4bKt2"))  # and a second one
    first = await read_response(reader)
    assert first.status == 200 and first.top_via.received is None
    assert stack.stats["connections_opened"] == 1
    writer.close()


async def test_tcp_crlf_ping_gets_a_pong(stack: SipComponent) -> None:
    assert stack.tcp_address is not None
    reader, writer = await asyncio.open_connection(*stack.tcp_address)
    writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
    assert stack.stats["keepalives_in"] == 1
    writer.close()


@pytest.mark.parametrize("bad", [
    b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKa\r\n\r\n",  # no Content-Length
    b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 999999\r\n\r\n",  # over max_message_size
])
async def test_tcp_framing_error_closes_the_connection(stack: SipComponent, bad: bytes) -> None:
    assert stack.tcp_address is not None
    reader, writer = await asyncio.open_connection(*stack.tcp_address)
    writer.write(bad)
    assert await asyncio.wait_for(reader.read(), WAIT) == b""  # EOF: the server closed it
    assert stack.stats["stream_framing_errors"] == 1
    writer.close()
    # The listener still serves new connections.
    reader, writer = await asyncio.open_connection(*stack.tcp_address)
    writer.write(tcp_request("OPTIONS", writer.get_extra_info("sockname")[1]))
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_idle_tcp_connection_is_closed() -> None:
    component = await start_stack(tcp_idle_timeout=0.3)
    try:
        assert component.tcp_address is not None
        reader, writer = await asyncio.open_connection(*component.tcp_address)
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the server when idle
        assert component.stats["connections_idle_closed"] == 1
        writer.close()
    finally:
        await component.stop()


async def test_request_to_a_tcp_peer_reuses_its_connection(stack: SipComponent) -> None:
    """A peer that connected to us gets our request on that connection (RFC 3261 18.1.1 / RFC 5923)."""
    assert stack.tcp_address is not None
    reader, writer = await asyncio.open_connection(*stack.tcp_address)
    local = writer.get_extra_info("sockname")
    writer.write(tcp_request("OPTIONS", local[1]))
    await read_response(reader)
    request = make_request("MESSAGE", f"sip:peer@127.0.0.1:{local[1]};transport=tcp",
                           from_="<sip:svc@127.0.0.1>;tag=s", to="<sip:peer@127.0.0.1>", call_id="r1",
                           cseq=1, via="SIP/2.0/TCP x")
    task = asyncio.ensure_future(stack.send_request(request, ("tcp", local[0], local[1])))
    received = parse_message(await read_message(reader, StreamFramer()))
    assert received.top_via.transport == "TCP" and received.top_via.port == stack.tcp_address[1]
    writer.write(make_response(received, 200, to_tag="p").serialize())  # type: ignore[arg-type]
    assert (await asyncio.wait_for(task, WAIT)).status == 200
    assert stack.stats["connections_opened"] == 1
    writer.close()


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    return str(cert), str(key)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
async def test_tls_listener_answers_options(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls_port = free_port(socket.SOCK_STREAM)
    component = await start_stack(tls_certificate=cert, tls_private_key=key, tls_port=tls_port)
    try:
        assert component.tls_address is not None
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(*component.tls_address, ssl=client)
        data = sip_request("OPTIONS", writer.get_extra_info("sockname")[1]).replace(b"/UDP", b"/TLS")
        writer.write(data)
        response = await read_response(reader)
        assert response.status == 200
        writer.close()
    finally:
        await component.stop()


async def test_response_reopens_a_connection_when_the_request_connection_closed(stack: SipComponent) -> None:
    """RFC 3261 18.2.2: connection gone -> connect to the source address and the Via sent-by port."""
    assert stack.tcp_address is not None
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await got.put(await read_message(reader, StreamFramer()))
        writer.close()

    listener = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    listen_port = listener.sockets[0].getsockname()[1]
    release = asyncio.Event()

    async def slow_message(incoming: IncomingRequest) -> None:
        await release.wait()
        incoming.respond(make_response(incoming.request, 200, to_tag="t"))

    stack.register_handler("MESSAGE", slow_message)
    try:
        _reader, writer = await asyncio.open_connection(*stack.tcp_address)
        writer.write(sip_request("MESSAGE", listen_port).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.1)
        release.set()
        response = parse_message(await asyncio.wait_for(got.get(), WAIT))
        assert isinstance(response, SipResponse) and response.status == 200
    finally:
        listener.close()
