"""HTTP load generator, run as its own process: N concurrent keep-alive clients POST for a fixed time.

`python -m bench.http_load --url http://127.0.0.1:PORT/v1/jobs --body '{...}' --client raw|httpx` prints one
JSON line: requests/s, p50/p99 in ms, statuses. `raw` is a minimal asyncio HTTP/1.1 client on uvloop (when
installed) that sends pre-encoded requests; `httpx` is httpx.AsyncClient, to show how much the client costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IO_TIMEOUT_S = 10.0


@dataclass
class Tally:
    """What the clients saw in the measured window (after warm-up)."""

    measure_from: float
    stop_at: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    def record(self, started: float, status: int) -> None:
        if started >= self.measure_from:
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] += 1


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError("response without Content-Length")
    await reader.readexactly(length)
    return status


async def _raw_client(url: str, body: bytes, tally: Tally, headers: tuple[str, ...] = ()) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{header}\r\n" for header in headers)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    async with asyncio.timeout(IO_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, port)
    try:
        while (started := time.perf_counter()) < tally.stop_at:
            writer.write(request)
            async with asyncio.timeout(IO_TIMEOUT_S):
                status = await _read_response(reader)
            tally.record(started, status)
    finally:
        writer.close()


async def _run_raw(url: str, body: bytes, concurrency: int, tally: Tally, headers: tuple[str, ...] = ()) -> None:
    clients = (_raw_client(url, body, tally, headers) for _ in range(concurrency))
    results = await asyncio.gather(*clients, return_exceptions=True)
    tally.errors += sum(isinstance(r, BaseException) for r in results)


async def _run_httpx(url: str, body: bytes, concurrency: int, tally: Tally) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=IO_TIMEOUT_S) as client:

        async def one_client() -> None:
            while (started := time.perf_counter()) < tally.stop_at:
                response = await client.post(url, content=body, headers=headers)
                tally.record(started, response.status_code)

        results = await asyncio.gather(*(one_client() for _ in range(concurrency)), return_exceptions=True)
    tally.errors += sum(isinstance(r, BaseException) for r in results)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def measure(
    url: str,
    body: bytes,
    client: str,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    headers: tuple[str, ...] = (),
) -> dict[str, object]:
    started = time.perf_counter()
    tally = Tally(measure_from=started + warmup_s, stop_at=started + warmup_s + duration_s)
    if client == "raw":
        await _run_raw(url, body, concurrency, tally, headers)
    else:
        runner: Callable[[str, bytes, int, Tally], Awaitable[None]] = _run_httpx
        await runner(url, body, concurrency, tally)
    latencies = sorted(tally.latencies)
    return {
        "client": client,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "concurrency": concurrency,
        "requests": len(latencies),
        "rps": len(latencies) / duration_s,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "errors": tally.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", default='{"function": "noop", "kwargs": {}}')
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--header", action="append", default=[], help="extra `Name: value` header (raw client)")
    args = parser.parse_args()
    coroutine = measure(
        args.url, args.body.encode(), args.client, args.concurrency, args.duration, args.warmup, tuple(args.header)
    )
    try:
        import uvloop

        result = uvloop.run(coroutine)
    except ImportError:
        result = asyncio.run(coroutine)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
