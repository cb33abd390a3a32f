"""The API behind a real uvicorn (`service.server`'s config), for what only a socket shows: headers the
server adds, Host, slow clients, bodies refused while they stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from core.embedded_redis import free_port
from service.app import create_app
from service.server import config
from settings import Settings
from tests.support.waiting import wait_for


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    """Serve the app on 127.0.0.1:<port> in this event loop; yields the port."""
    port = free_port()
    server = uvicorn.Server(config(settings, app=create_app(settings), host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started or task.done()

    await wait_for(started, bool, timeout=10)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def exchange(port: int, request: bytes, *, timeout: float = 5) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or `timeout` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await read_answer(reader, timeout)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """One response: headers, then Content-Length bytes (or until the server closes)."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            None,
        )
        body = await reader.readexactly(length) if length is not None else await reader.read()
    return head + body
