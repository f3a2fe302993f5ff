"""A lean HTTP/1.1 transport for the async client: httpx's client layer (requests, responses,
timeouts, errors) on keep-alive connections of asyncio streams, without httpcore and anyio.

Why: the LangGraph benchmark's client spent about half its CPU in httpcore's connection pool
(every request scans every pooled connection: a poll and a getpeername each, through anyio's
attribute dicts): ~0.8 ms of CPU per request where this transport takes ~0.15 ms
(docs/benchmarks.md, LangGraph section).

Invariants:
- It speaks plain HTTP/1.1 to the API's own host: one request at a time per connection, the
  request head and body in one write; an answer is read by Content-Length, chunked, or until the
  server closes. A connection goes back to the pool only after a whole answer that did not ask to
  close it; any error or cancellation mid-exchange closes it (its state is unknown).
- A request that fails on a reused connection before any byte of the answer arrived (the server
  closed it while it was idle) is sent once more on a new connection: nothing was processed; that
  failure on a new connection is the caller's, as an httpx error of the same kind httpcore raises
  (ConnectError, ConnectTimeout, ReadTimeout, ReadError, WriteError, RemoteProtocolError), so the
  client's retry rules apply unchanged.
- `https` URLs, and every URL when a proxy is configured in the environment, go to httpx's own
  transport (`AsyncAgentlogClient` decides; `lean_transport_applies`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from collections.abc import Iterator

import httpx

MAX_IDLE_PER_HOST = 32
MAX_HEAD_BYTES = 64 * 1024
_Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def lean_transport_applies(*urls: str) -> bool:
    """Whether LeanAsyncTransport serves `urls`: plain http, and no proxy in the environment
    (httpx would route through it; this transport does not)."""
    if any(httpx.URL(url).scheme != "http" for url in urls):
        return False
    return not urllib.request.getproxies()  # what httpx reads its environment proxies from


class _Fresh(Exception):
    """A reused connection failed before the answer began: send again on a new one."""


class LeanAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_idle_per_host: int = MAX_IDLE_PER_HOST) -> None:
        self._idle: dict[tuple[str, int], list[_Streams]] = {}
        self._max_idle = max_idle_per_host
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"LeanAsyncTransport speaks plain http, not {request.url.scheme!r}")
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _head(request, body)
        key = (request.url.host, request.url.port or 80)
        streams = self._take_idle(key)
        if streams is not None:
            try:
                return await self._exchange(key, streams, head + body, timeouts, reused=True)
            except _Fresh:
                pass
        streams = await _connect(key, timeouts.get("connect"))
        return await self._exchange(key, streams, head + body, timeouts, reused=False)

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._idle.values():
            for _, writer in pool:
                writer.close()
        self._idle.clear()

    def _take_idle(self, key: tuple[str, int]) -> _Streams | None:
        pool = self._idle.get(key)
        while pool:
            reader, writer = pool.pop()
            if not writer.is_closing() and not reader.at_eof() and not reader._buffer:  # type: ignore[attr-defined]
                return reader, writer
            writer.close()
        return None

    def _give_back(self, key: tuple[str, int], streams: _Streams) -> None:
        pool = self._idle.setdefault(key, [])
        if self._closed or len(pool) >= self._max_idle:
            streams[1].close()
        else:
            pool.append(streams)

    async def _exchange(
        self, key: tuple[str, int], streams: _Streams, data: bytes, timeouts: dict[str, float | None], *, reused: bool
    ) -> httpx.Response:
        reader, writer = streams
        began = False
        try:
            with _errors(httpx.WriteError, httpx.WriteTimeout):
                writer.write(data)
                async with asyncio.timeout(timeouts.get("write")):
                    await writer.drain()
            with _errors(httpx.ReadError, httpx.ReadTimeout):
                async with asyncio.timeout(timeouts.get("read")):
                    first = await reader.read(1)
                    if not first:
                        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
                    began = True
                    status, reason, headers, content, keep = await _read_answer(first, reader)
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            writer.close()
            if reused and not began:
                raise _Fresh() from exc
            raise
        except BaseException:
            writer.close()
            raise
        if keep:
            self._give_back(key, streams)
        else:
            writer.close()
        return httpx.Response(
            status, headers=headers, content=content, extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason}
        )


@contextlib.contextmanager
def _errors(network: type[httpx.TransportError], timeout: type[httpx.TransportError]) -> Iterator[None]:
    """asyncio's failures as the httpx errors httpcore raises for them."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("Server disconnected in the middle of a response.") from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("the response head is too large") from exc
    except (OSError, ssl.SSLError) as exc:
        raise network(str(exc) or type(exc).__name__) from exc


async def _connect(key: tuple[str, int], timeout: float | None) -> _Streams:
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(key[0], key[1], limit=MAX_HEAD_BYTES)
    except TimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "timed out connecting") from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc


def _head(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            continue  # the body is read whole: it goes with a Content-Length
        if lowered == b"content-length":
            has_length = True
            value = str(len(body)).encode("ascii")
        lines.append(name + b": " + value)
    if not has_length and (body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS")):
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_answer(
    first: bytes, reader: asyncio.StreamReader
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
    """(status, reason, headers, body, whether the connection may be reused) of one answer."""
    while True:
        raw = first + await reader.readuntil(b"\r\n\r\n")
        first = b""
        lines = raw[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        status = int(parts[1])
        if not 100 <= status < 200 or status == 101:
            break  # an interim answer (100 Continue) is skipped
    reason = parts[2] if len(parts) > 2 else b""
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError(f"not a header line: {line[:80]!r}")
        value = value.strip()
        headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            if not value.isdigit():
                raise httpx.RemoteProtocolError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            keep = b"close" not in tokens and (keep or b"keep-alive" in tokens)
    if status in (204, 304) or status == 101:
        return status, reason, headers, b"", keep and status != 101
    if chunked:
        headers = [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]
        return status, reason, headers, await _read_chunked(reader), keep
    if length is not None:
        return status, reason, headers, await reader.readexactly(length), keep
    return status, reason, headers, await reader.read(), False  # delimited by the server's close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise httpx.RemoteProtocolError(f"bad chunk size {size_line[:40]!r}") from exc
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF")
