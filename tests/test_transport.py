"""Behind real uvicorn: no `server` header, Host checked, security headers, 413 before a big body is read,
408 for a slow body, and a connection whose headers never complete is closed."""

from __future__ import annotations

import asyncio
import time

import httpx
from arq.connections import ArqRedis

from settings import Settings
from tests.conftest import make_settings
from tests.support.keys import ENQUEUE_KEY, ENQUEUER, READ_KEY, READER
from tests.support.server import exchange, read_answer, serving

BODY = b'{"function": "echo", "kwargs": {"value": 1}}'


def post_head(length: int | None = None, host: str = "127.0.0.1", chunked: bool = False) -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return f"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()


def slow_settings(redis_url: str) -> Settings:
    return make_settings(
        redis_url,
        allowed_hosts=["localhost", "127.0.0.1", "::1"],
        body_read_timeout_seconds=0.5,
        header_read_timeout_seconds=0.5,
    )


async def test_no_server_header_and_security_headers(settings: Settings, redis: ArqRedis) -> None:
    async with serving(settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for response in (await client.get("/health"), await client.get("/v1/queues"), await client.get("/nope")):
            assert "server" not in response.headers
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none'
            assert response.headers["referrer-policy"] == "no-referrer"
        docs = await client.get("/docs")
        assert "<script>" not in docs.text and "'unsafe-inline'" not in docs.headers["content-security-policy"]


async def test_unexpected_host_is_400(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, allowed_hosts=["localhost", "127.0.0.1", "::1"])
    async with serving(settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/v1/queues")).status_code == 200
        assert (await client.get("/v1/queues", headers={"Host": f"localhost:{port}"})).status_code == 200
        rebound = await client.get("/v1/queues", headers={"Host": f"attacker.example:{port}"})
        assert rebound.status_code == 400
        assert rebound.json()["detail"][0]["type"] == "invalid_host"
        assert (await client.get("/health", headers={"Host": "attacker.example"})).status_code == 400


async def test_host_tricks_and_two_host_headers_are_400(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, allowed_hosts=["localhost", "127.0.0.1", "::1"])
    tricks = [b"[127.0.0.1].evil.example:80", b"[::1]evil.example", b"[localhost]", b"[::1]:80x"]
    async with serving(settings) as port:
        answers = [await exchange(port, b"GET /v1/queues HTTP/1.1\r\nHost: " + host + b"\r\n\r\n") for host in tricks]
        two = await exchange(port, b"GET /v1/queues HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
        ipv6 = await exchange(port, b"GET /v1/queues HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n")
    assert all(answer.startswith(b"HTTP/1.1 400") for answer in answers), [a[:12] for a in answers]
    assert two.startswith(b"HTTP/1.1 400") and b"more than one Host header" in two
    assert ipv6.startswith(b"HTTP/1.1 200")


async def test_default_allowed_hosts_are_the_loopback_names() -> None:
    assert Settings().allowed_hosts == ["localhost", "127.0.0.1", "::1"]


async def test_declared_oversized_body_is_413_without_reading_it(settings: Settings, redis: ArqRedis) -> None:
    async with serving(settings) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post_head(100 * 1024 * 1024) + b"{" * 1024)  # announces 100 MB, sends 1 KB
        await writer.drain()
        answer = await read_answer(reader, timeout=5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in answer.lower()


async def test_chunked_body_is_413_while_it_streams(settings: Settings, redis: ArqRedis) -> None:
    async with serving(settings) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post_head(chunked=True))
        chunk = b"x" * 65536
        answer = b""
        sent = 0
        for _ in range(200):  # up to 12.5 MB; the answer must come long before
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 1)
                answer = await asyncio.wait_for(reader.read(4096), 0.01)
            except (TimeoutError, ConnectionError):
                pass
            if answer:
                break
        writer.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent <= 3 * settings.max_request_bytes


async def test_slow_body_is_408(redis_server, redis: ArqRedis) -> None:
    async with serving(slow_settings(redis_server.url)) as port:
        started = time.monotonic()
        answer = await exchange(port, post_head(len(BODY)) + BODY[:10], timeout=5)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 3


async def test_many_slow_bodies_at_once_are_each_408_and_others_are_served(redis_server, redis: ArqRedis) -> None:
    """Fifty slow-body connections (one shared timer, service/read_deadlines.py): each is answered 408 within
    a quarter past the timeout, while a prompt request on the side is served."""
    async with serving(slow_settings(redis_server.url)) as port:
        started = time.monotonic()
        slow = [asyncio.create_task(exchange(port, post_head(len(BODY)) + BODY[:10], timeout=5)) for _ in range(50)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            prompt = await client.post("/v1/jobs", content=BODY, headers={"Content-Type": "application/json"})
        answers = await asyncio.gather(*slow)
        elapsed = time.monotonic() - started
    assert prompt.status_code == 202
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), {a[:12] for a in answers}
    assert elapsed < 3
    assert await redis.zcard("arq:queue") == 1  # only the prompt request's job


async def test_connection_with_slow_headers_is_closed(redis_server, redis: ArqRedis) -> None:
    async with serving(slow_settings(redis_server.url)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server
        writer.close()
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await idle_reader.read() == b""  # a connection that never sends a byte, too
        idle_writer.close()
    assert time.monotonic() - started < 4


def chunked_post(trailer: bytes, headers: bytes = b"") -> bytes:
    """POST /v1/jobs with a chunked body whose last chunk carries `trailer` fields."""
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + headers
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(BODY), BODY, trailer)


async def test_chunked_trailers_never_reach_the_app(redis_server, redis: ArqRedis) -> None:
    """httptools hands trailers over as more headers: a key, or a content type, sent after the body must not
    change what the request was (it did, when the trailer came in the same packet as the body)."""
    settings = make_settings(redis_server.url, api_keys=[ENQUEUER, READER])
    async with serving(settings) as port:
        keyed_by_trailer = await exchange(port, chunked_post(f"X-API-Key: {ENQUEUE_KEY}\r\n".encode()))
        scope_by_trailer = await exchange(
            port,
            chunked_post(f"Authorization: Bearer {ENQUEUE_KEY}\r\n".encode(), f"X-API-Key: {READ_KEY}\r\n".encode()),
        )
        type_by_trailer = await exchange(
            port, chunked_post(b"Content-Type: text/plain\r\n", f"X-API-Key: {ENQUEUE_KEY}\r\n".encode())
        )
    assert keyed_by_trailer.startswith(b"HTTP/1.1 401")
    assert scope_by_trailer.startswith(b"HTTP/1.1 403")
    assert type_by_trailer.startswith(b"HTTP/1.1 202")
    assert await redis.zcard("arq:queue") == 1


async def test_request_heads_over_max_header_bytes_are_431(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, max_header_bytes=16 << 10)
    get = b"GET /v1/queues HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    async with serving(settings) as port:
        one_big = await exchange(port, get + b"X-Pad: " + b"a" * (20 << 10) + b"\r\n\r\n")
        many = await exchange(port, get + b"".join(b"X-%d: 1\r\n" % i for i in range(5000)) + b"\r\n")
        # A header that never ends: refused while it streams, long before the header deadline (10 s).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(get + b"X-Pad: ")
        refused = b""
        for _ in range(64):  # 4 KB at a time, up to 256 KB
            try:
                writer.write(b"b" * 4096)
                await writer.drain()
                refused = await asyncio.wait_for(reader.read(), 0.05)
            except (TimeoutError, ConnectionError):
                continue
            if refused:
                break
        writer.close()
        elapsed = time.monotonic() - started
        # Under the limit, however it is cut up, and a big body in the same packet as the head: served.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for piece in (get, b"X-Pad: ", *[b"c" * 1024] * 12, b"\r\n\r\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.005)
        under = await read_answer(reader, 5)
        writer.close()
        body = b'{"function": "echo", "kwargs": {"value": "' + b"d" * (60 << 10) + b'"}}'
        big_body = await exchange(port, post_head(len(body)) + body)
    for answer in (one_big, many, refused):
        assert answer.startswith(b"HTTP/1.1 431"), answer[:60]
        assert b"x-content-type-options: nosniff" in answer.lower()
        assert b'"type": "headers_too_large"' in answer
    assert elapsed < 5
    assert under.startswith(b"HTTP/1.1 200")
    assert big_body.startswith(b"HTTP/1.1 202")


async def test_what_uvicorn_cannot_parse_is_400_in_the_error_shape(settings: Settings, redis: ArqRedis) -> None:
    async with serving(settings) as port:
        answer = await exchange(port, b"GET /v1/queues HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x00b\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"content-security-policy: default-src 'none'" in answer.lower()
    assert b'"type": "invalid_http"' in answer
