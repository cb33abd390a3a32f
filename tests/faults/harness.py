"""The fault-injection harness: a redis-server with an append-only file, the real API under uvicorn, real
`arq worker.WorkerSettings` processes watched by a supervisor that restarts the ones that die, clients
that post jobs and record every answer, and the ledger the jobs write outside Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis.asyncio

from core.embedded_redis import RedisProcess, free_port, start_redis
from tests.support.processes import ROOT, process_env, start_worker, stop_process
from tests.support.waiting import wait_for

T = TypeVar("T")
JOB_MODULES = "jobs,tests.support.sample_jobs,tests.faults.fault_jobs"
FIGURES_PREFIX = "FAULT-FIGURES"
START_TIMEOUT_S = 20.0
# A job whose `end` line came this shortly before its worker was killed may have run again legitimately: its
# worker died between the job's return and the transaction that records its result.
UNRECORDED_WINDOW_S = 1.0


def report(test: str, form: str, **figures: Any) -> None:
    """Print one test's measured figures on one line, found in `pytest -s` output by the prefix."""
    print(FIGURES_PREFIX, json.dumps({"test": test, "form": form, **figures}), flush=True)


@dataclass(frozen=True)
class Entry:
    """One ledger line: `start`/`end` of a job try, or a cron `tick`."""

    kind: str
    name: str
    pid: int
    job_try: int
    at: float


class Ledger:
    """The file the test jobs append to (see fault_jobs.py); it survives any crash of Redis or a worker."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def entries(self) -> list[Entry]:
        lines = self.path.read_text().split("\n")[:-1]  # a line still being written has no newline yet
        entries = []
        for line in lines:
            kind, name, pid, job_try, at = line.split(" ")
            entries.append(Entry(kind, name, int(pid), int(job_try), float(at)))
        return entries

    def by_token(self, kind: str) -> dict[str, list[Entry]]:
        found: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.entries():
            if entry.kind == kind:
                found[entry.name].append(entry)
        return found

    def ended(self) -> set[str]:
        return {entry.name for entry in self.entries() if entry.kind == "end"}

    def open_starts(self, pid: int) -> set[str]:
        """Tokens a process started and has not ended (its jobs in flight, as far as the ledger knows)."""
        started, ended = set(), set()
        for entry in self.entries():
            if entry.pid == pid and entry.kind == "start":
                started.add(entry.name)
            elif entry.pid == pid and entry.kind == "end":
                ended.add(entry.name)
        return started - ended


@dataclass(frozen=True)
class Signalled:
    """A signal the test sent to a worker process."""

    pid: int
    sig: str
    at: float


@dataclass(frozen=True)
class Exited:
    """A worker that exited without being asked to (the supervisor restarted it)."""

    pid: int
    code: int
    at: float


@dataclass
class WorkerSlot:
    process: subprocess.Popen[bytes]
    stopping: bool = False  # stopped on purpose: the supervisor leaves it be


@dataclass
class Answer:
    """What one POST /v1/jobs got: an HTTP status, or the transport error when the API did not answer."""

    at: float
    elapsed_s: float
    status: int | None
    error: str | None = None
    retry_after: str | None = None


class Platform:
    """Redis, the API and the workers of one test, each a real process; every one is stopped in `close`."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.ledger = Ledger(root / "ledger.txt")
        self.env = {"JOB_MODULES": JOB_MODULES, "FAULT_LEDGER": str(self.ledger.path), **env}
        self.redis_port = free_port()
        self.api_port = free_port()
        self.redis: RedisProcess | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.slots: list[WorkerSlot] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.restarts: list[Exited] = []
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            timeout=30,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._supervisor: asyncio.Task[None] | None = None
        self._spawned = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_redis(self) -> RedisProcess:
        """redis-server on this platform's port and data dir, append-only with fsync on every write."""
        self.redis = start_redis(
            self.redis_port,
            self.root / "redis",
            appendonly=True,
            appendfsync="always",
            log_file=self.root / "redis.log",
        )
        return self.redis

    async def start(self, workers: int) -> None:
        self.start_redis()
        api_log = (self.root / "api.log").open("ab")
        command = [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1"]
        self.api = subprocess.Popen(
            [*command, "--port", str(self.api_port), "--no-access-log"],
            cwd=ROOT,
            env=process_env(self.redis_url, **self.env),
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        api_log.close()
        self.processes.append(self.api)
        await wait_for(self._health_status, lambda status: status == 200, timeout=START_TIMEOUT_S, interval=0.05)
        self.slots = [WorkerSlot(self._spawn_worker()) for _ in range(workers)]
        await self.wait_until_listed([slot.process.pid for slot in self.slots])
        self._supervisor = asyncio.create_task(self._supervise())

    async def _health_status(self) -> int:
        try:
            return (await self.client.get("/health")).status_code
        except httpx.TransportError as exc:
            if self.api is not None and self.api.poll() is not None:
                tail = self.log_tail("api.log")
                raise AssertionError(f"the API exited with {self.api.returncode}: {tail}") from exc
            return 0

    def _spawn_worker(self) -> subprocess.Popen[bytes]:
        self._spawned += 1
        process = start_worker(self.redis_url, self.root / f"worker-{self._spawned}.log", **self.env)
        self.processes.append(process)
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / name
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    async def wait_until_listed(self, pids: list[int], timeout: float = START_TIMEOUT_S) -> None:
        """Until every one of these worker processes shows in `GET /v1/workers` (its heartbeat is in Redis)."""

        async def listed() -> set[int]:
            for slot in self.slots:
                if slot.process.pid in pids and slot.process.poll() is not None:
                    raise AssertionError(f"worker {slot.process.pid} exited with {slot.process.returncode}")
            return {w["pid"] for w in (await self.client.get("/v1/workers")).json()}

        await wait_for(listed, lambda found: set(pids) <= found, timeout=timeout, interval=0.1)

    async def _supervise(self) -> None:
        """Restart any worker that exits without being asked to, like a process manager would."""
        while True:
            for slot in self.slots:
                code = slot.process.poll()
                if code is not None and not slot.stopping:
                    self.restarts.append(Exited(slot.process.pid, code, time.time()))
                    slot.process = self._spawn_worker()
            await asyncio.sleep(0.05)

    @property
    def worker_pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots]

    def signal_worker(self, index: int, sig: signal.Signals) -> Signalled:
        process = self.slots[index].process
        at = time.time()
        process.send_signal(sig)
        return Signalled(process.pid, sig.name, at)

    async def stop_worker(self, index: int, *, timeout: float, replace: bool) -> tuple[Signalled, int]:
        """SIGTERM one worker and wait for it to exit; returns the signal sent and its exit code."""
        slot = self.slots[index]
        slot.stopping = True
        sent = self.signal_worker(index, signal.SIGTERM)

        async def exit_code() -> int | None:
            return slot.process.poll()

        code = await wait_for(exit_code, lambda found: found is not None, timeout=timeout, interval=0.05)
        assert code is not None
        if replace:
            slot.process, slot.stopping = self._spawn_worker(), False
        return sent, code

    async def pause_redis(self, seconds: float, *, writes_only: bool = False) -> float:
        """`CLIENT PAUSE <ms> ALL|WRITE` from a client of its own; returns the monotonic time the pause ends."""
        client = redis.asyncio.Redis(host="127.0.0.1", port=self.redis_port)
        try:
            await client.client_pause(int(seconds * 1000), all=not writes_only)
            return time.monotonic() + seconds
        finally:
            await client.aclose()

    async def post_job(self, function: str, **kwargs: Any) -> tuple[Answer, str | None]:
        """POST /v1/jobs; returns the answer and the job id when accepted (202)."""
        started = time.monotonic()
        at = time.time()
        try:
            response = await self.client.post("/v1/jobs", json={"function": function, "kwargs": kwargs})
        except httpx.HTTPError as exc:
            return Answer(at, time.monotonic() - started, None, type(exc).__name__), None
        answer = Answer(at, time.monotonic() - started, response.status_code, None, response.headers.get("retry-after"))
        return answer, response.json()["job_id"] if response.status_code == 202 else None

    async def dead_job_ids(self) -> set[str]:
        found: set[str] = set()
        offset = 0
        while True:
            page = (await self.client.get("/v1/dead", params={"offset": offset, "limit": 500})).json()
            found.update(item["job_id"] for item in page["items"])
            offset += 500
            if offset >= page["total"]:
                return found

    async def job_statuses(self, job_ids: list[str]) -> dict[str, str]:
        gate = asyncio.Semaphore(16)

        async def status(job_id: str) -> tuple[str, str]:
            async with gate:
                response = await self.client.get(f"/v1/jobs/{job_id}")
            return job_id, response.json()["status"] if response.status_code == 200 else str(response.status_code)

        return dict(await asyncio.gather(*(status(job_id) for job_id in job_ids)))

    async def close(self) -> dict[int, int]:
        """Stop everything this platform started; returns each worker's exit code by pid."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
        workers = [p for p in self.processes if p is not self.api]
        for slot in self.slots:
            slot.stopping = True
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a SIGSTOPped worker cannot handle SIGTERM
                process.send_signal(signal.SIGTERM)
        codes = {p.pid: stop_process(p, signal.SIGTERM, timeout=30) for p in workers}
        if self.api is not None:
            stop_process(self.api, signal.SIGTERM, timeout=10)
        if self.redis is not None:
            self.redis.stop()
        await self.client.aclose()
        alive = [p.pid for p in self.processes if p.poll() is None]
        assert alive == [], f"processes left running: {alive}"
        return codes


@asynccontextmanager
async def in_background(coroutine: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """Run a coroutine as a task for the block; cancelled on the way out if the block ends early."""
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def running_platform(root: Path, *, workers: int = 1, **env: str) -> AsyncIterator[Platform]:
    """Redis + API + `workers` worker processes with these extra environment variables, stopped on exit."""
    platform = Platform(root, env)
    try:
        await platform.start(workers)
        yield platform
    finally:
        await platform.close()


@dataclass
class Load:
    """Clients posting `ledger_job`s, each under a fresh token; records every answer and accepted job."""

    platform: Platform
    prefix: str
    seconds: Callable[[int], float]
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> token
    accepted_at: dict[str, float] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    _next: int = 0

    async def run(
        self, clients: int, *, total: int | None = None, until: asyncio.Event | None = None, pace_s: float = 0.0
    ) -> None:
        """Post with `clients` concurrent clients, each waiting `pace_s` between posts, until `total` posts
        were made or `until` is set."""
        assert total is not None or until is not None

        async def client() -> None:
            while (total is None or self._next < total) and not (until is not None and until.is_set()):
                n, self._next = self._next, self._next + 1
                token = f"{self.prefix}-{n}"
                answer, job_id = await self.platform.post_job("ledger_job", token=token, seconds=self.seconds(n))
                self.answers.append(answer)
                if job_id is not None:
                    self.accepted[job_id] = token
                    self.accepted_at[job_id] = answer.at
                elif answer.status is not None:
                    await asyncio.sleep(0.05)  # a real client would wait Retry-After; keep probing faster
                if pace_s:
                    await asyncio.sleep(pace_s)

        await asyncio.gather(*(client() for _ in range(clients)))

    def statuses(self) -> Counter[str]:
        return Counter(str(a.status) if a.status is not None else a.error or "?" for a in self.answers)


@dataclass
class Outcome:
    """Where every accepted job ended up, counted through the API and the ledger."""

    accepted: int
    complete: int
    dead: int
    lost: list[str]
    duplicates: dict[str, list[Entry]]


async def settle(platform: Platform, accepted: dict[str, str], *, timeout: float) -> Outcome:
    """Wait (up to `timeout`) for every accepted job to finish, then count lost jobs and duplicate runs.

    Lost: accepted (202), yet neither complete nor in `/v1/dead` by the deadline. Duplicate: a token with
    more than one `start` line in the ledger.
    """
    deadline = time.monotonic() + timeout
    tokens = set(accepted.values())

    async def ended() -> int:
        return len(tokens & platform.ledger.ended())

    with suppress(AssertionError):  # a job that never ends is counted as lost below, not failed on here
        await wait_for(ended, lambda n: n == len(tokens), timeout=timeout, interval=0.25)
    remaining = list(accepted)
    statuses: dict[str, str] = {}
    dead: set[str] = set()
    while remaining:
        statuses.update(await platform.job_statuses(remaining))
        dead = await platform.dead_job_ids()
        remaining = [j for j in accepted if statuses[j] != "complete" and j not in dead]
        if not remaining or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    starts = platform.ledger.by_token("start")
    return Outcome(
        accepted=len(accepted),
        complete=sum(1 for j in accepted if statuses.get(j) == "complete"),
        dead=sum(1 for j in accepted if j in dead),
        lost=remaining,
        duplicates={t: s for t, s in starts.items() if t in tokens and len(s) > 1},
    )


def unexplained_duplicates(
    outcome: Outcome, ledger: Ledger, signalled: list[Signalled], *, unrecorded_window_s: float = UNRECORDED_WINDOW_S
) -> dict[str, list[Entry]]:
    """Duplicates that were not in flight when their worker was killed or stopped.

    In flight: the first `start` came from a signalled process that wrote no `end` for it, or (after a
    SIGKILL) wrote it less than `unrecorded_window_s` before the signal: the job returned and the worker
    died before recording it. After a SIGTERM pass 0: a job that ended in the grace period is recorded.
    """
    signalled_at = {s.pid: s.at for s in signalled}
    ends = {(e.name, e.pid, e.job_try): e.at for e in ledger.entries() if e.kind == "end"}
    unexplained = {}
    for token, starts in outcome.duplicates.items():
        first = min(starts, key=lambda e: e.at)
        end = ends.get((token, first.pid, first.job_try))
        at = signalled_at.get(first.pid)
        in_flight = at is not None and (end is None or 0 <= at - end < unrecorded_window_s)
        if not in_flight:
            unexplained[token] = starts
    return unexplained


def duplicates_outside_outages(
    outcome: Outcome, ledger: Ledger, outages: list[tuple[float, float]]
) -> dict[str, list[Entry]]:
    """Duplicates that were not in flight during a Redis outage `(down at, back at)`: a job whose first try
    started before Redis came back and had not ended (or ended at most UNRECORDED_WINDOW_S before Redis went
    down, so its result could not be written) may run again once its lease has run out."""
    ends = {(e.name, e.pid, e.job_try): e.at for e in ledger.entries() if e.kind == "end"}
    unexplained = {}
    for token, starts in outcome.duplicates.items():
        first = min(starts, key=lambda e: e.at)
        end = ends.get((token, first.pid, first.job_try))
        if not any(first.at <= back and (end is None or end >= down - UNRECORDED_WINDOW_S) for down, back in outages):
            unexplained[token] = starts
    return unexplained


@dataclass(frozen=True)
class Recovery:
    """What became of the jobs a killed worker had in flight."""

    in_flight: int
    restarted_s: float | None  # from the kill until the last of them started again elsewhere
    completed_s: float | None  # from the kill until the last of them completed elsewhere


def recovery(ledger: Ledger, kill: Signalled, tokens: set[str]) -> Recovery:
    """Measure how long a killed worker's jobs (among `tokens`) took to start again and to complete;
    None when one of them never did."""
    entries = ledger.entries()
    in_flight = {e.name for e in entries if e.pid == kill.pid and e.kind == "start" and e.name in tokens}
    in_flight -= {e.name for e in entries if e.pid == kill.pid and e.kind == "end"}
    first: dict[str, dict[str, float]] = {"start": {}, "end": {}}
    for e in entries:
        if e.kind in first and e.name in in_flight and e.at > kill.at:
            first[e.kind].setdefault(e.name, e.at)

    def last(kind: str) -> float | None:
        if len(first[kind]) < len(in_flight):
            return None
        return round(max(first[kind].values(), default=kill.at) - kill.at, 2)

    return Recovery(len(in_flight), last("start"), last("end"))
