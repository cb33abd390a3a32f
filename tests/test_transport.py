"""Behind real uvicorn: no `server` header, Host checked, security headers, 413 before a big body is read,
408 for a slow body, and a connection whose headers never complete is closed."""

from __future__ import annotations

import asyncio
import time

import httpx
from arq.connections import ArqRedis

from settings import Settings
from tests.conftest import make_settings
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
