"""The async client's lean HTTP/1.1 transport (agentlog/client/transport.py) against a scripted
server on loopback in this process: keep-alive reuse, the ways an answer is delimited, an idle
connection the server closed (sent again, once, on a new one), and every failure as the httpx
error the client's retry rules know."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from agentlog.client import AsyncAgentlogClient
from agentlog.client.transport import LeanAsyncTransport, lean_transport_applies

Answer = Callable[[bytes, bytes], bytes | None]  # (head, body) -> raw answer, or None to hang up


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


class Server:
    """Answers each request with the next of `answers` (the last one repeats); counts connections
    and keeps what it received."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append((head, body))
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1](head, body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def url(self, path: str = "/v1/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Answer]], Awaitable[Server]]]:
    """Starts a Server on a free loopback port; stops them all after the test."""
    made: list[tuple[asyncio.Server, Server]] = []

    async def start(answers: list[Answer]) -> Server:
        server = Server(answers)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        made.append((listening, server))
        return server

    yield start
    for listening, server in made:
        listening.close()
        for writer in server.writers:
            writer.close()


async def test_requests_reuse_one_connection_and_arrive_whole(serve) -> None:
    server = await serve([lambda head, body: ok(b'{"echo":%s}' % body)])
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        for n in range(3):
            response = await client.post(server.url("/v1/s?a=1"), json={"n": n}, headers={"X-Test": "yes"})
            assert response.status_code == 200
            assert response.json() == {"echo": {"n": n}}
    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /v1/s?a=1 HTTP/1.1\r\n")
    assert b"x-test: yes" in head.lower() and b"content-length: 7" in head.lower()
    assert body == b'{"n":0}'


async def test_chunked_and_close_delimited_answers(serve) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=1\r\nefg\r\n0\r\n\r\n"
    server = await serve(
        [lambda h, b: chunked, lambda h, b: b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close"]
    )
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        assert (await client.get(server.url())).content == b"abcdefg"
        assert (await client.get(server.url())).content == b"until-close"
        assert (await client.get(server.url())).content == b"until-close"
    assert server.connections == 2  # the chunked answer kept its connection; "close" did not


async def test_an_idle_connection_the_server_closed_is_replaced_once(serve) -> None:
    server = await serve([lambda h, b: ok(b"1"), lambda h, b: None, lambda h, b: ok(b"3")])
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        assert (await client.get(server.url())).content == b"1"
        # the server reads the second request and hangs up without answering: sent again on a new one
        assert (await client.get(server.url())).content == b"3"
    assert server.connections == 2
    assert len(server.requests) == 3


async def test_failures_are_the_httpx_errors_the_retry_rules_know(serve) -> None:
    hang_up_midway = await serve(
        [lambda h, b: b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 10\r\n\r\nabc"]
    )
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(hang_up_midway.url())  # a new connection: the caller's to retry
    never = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await never.wait()

    listening = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=LeanAsyncTransport(), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
    finally:
        never.set()
        listening.close()
    async with httpx.AsyncClient(transport=LeanAsyncTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")  # nothing listens there now


def test_the_client_uses_it_for_plain_http_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert lean_transport_applies("http://127.0.0.1:8000", "http://127.0.0.1:8001")
    assert not lean_transport_applies("https://agentlog.example", "http://127.0.0.1:8001")
    client = AsyncAgentlogClient("key")
    assert isinstance(client._http._transport, LeanAsyncTransport)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not lean_transport_applies("http://127.0.0.1:8000")
    assert not isinstance(AsyncAgentlogClient("key")._http._transport, LeanAsyncTransport)
