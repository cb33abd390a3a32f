"""Every Redis key the platform reads or writes; nothing else formats a key by hand.

arq's own keys keep arq's names so raw arq tools still see our jobs; the platform's additions live
under the `platform:` prefix.
"""

from __future__ import annotations

from arq.constants import (
    abort_jobs_ss,
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

PREFIX = "platform:"
ABORT_SET = abort_jobs_ss
# Prefixes of arq's per-job keys, for the scripts that find job ids as they go (the claim).
JOB_PREFIX = job_key_prefix
RESULT_PREFIX = result_key_prefix
LEASE_PREFIX = in_progress_key_prefix
TRY_PREFIX = retry_key_prefix
HOLDER_PREFIX = PREFIX + "holder:"
# Job ids the platform makes itself (cron ticks, fan-out children) start with this; the API refuses it from
# clients, so nobody can take such an id first and suppress the job.
PLATFORM_JOB_ID_PREFIX = "platform:"
WORKERS = PREFIX + "workers"
# Jobs finished per queue in buckets of THROUGHPUT_BUCKET_MS (`<prefix><queue>:<bucket number>`), written by the
# finish script and read by `GET /v1/queues`; each expires after an hour and a little.
THROUGHPUT_PREFIX = PREFIX + "throughput:"
THROUGHPUT_BUCKET_MS = 10_000
THROUGHPUT_TTL_S = 3_700
DEAD_LETTERS = PREFIX + "dead"
# A chained job's links (a hash: its children, and for a child its parent, function, kwargs, result argument
# and, until it is enqueued, its status); written only for jobs of a chain (core/chains.py).
CHAIN_PREFIX = PREFIX + "chain:"
# A unique job's lock: `<prefix><function>:<digest of the chosen arguments>` -> the job's id (core/unique.py).
UNIQUE_PREFIX = PREFIX + "unique:"


def job(job_id: str) -> str:
    return job_key_prefix + job_id


def result(job_id: str) -> str:
    return result_key_prefix + job_id


def in_progress(job_id: str) -> str:
    return in_progress_key_prefix + job_id


def retry(job_id: str) -> str:
    return retry_key_prefix + job_id


def throughput(queue_name: str, bucket: int) -> str:
    return f"{THROUGHPUT_PREFIX}{queue_name}:{bucket}"


def holder(job_id: str) -> str:
    """The token of the claim that holds a job (set by the claim, cleared by the claim's outcome). Unlike the
    lease it outlives a lapse, so a lapsed claim can tell whether anyone claimed the job since."""
    return f"{PREFIX}holder:{job_id}"


def progress(job_id: str) -> str:
    return f"{PREFIX}progress:{job_id}"


def worker(worker_id: str) -> str:
    return f"{PREFIX}worker:{worker_id}"


def cron_runs(name: str) -> str:
    return f"{PREFIX}cron:{name}"


def wake(queue_name: str) -> str:
    """Tokens the enqueue side pushes so a sleeping worker starts a new job at once."""
    return f"{PREFIX}wake:{queue_name}"


def health_check(queue_name: str) -> str:
    return queue_name + health_check_key_suffix


def attempts(job_id: str) -> str:
    return f"{PREFIX}attempts:{job_id}"


def dead_letter(job_id: str) -> str:
    return f"{PREFIX}dead:{job_id}"


def once(key: str) -> str:
    return f"{PREFIX}once:{key}"


def once_lock(key: str) -> str:
    return f"{PREFIX}once-lock:{key}"


def cron_ticks(name: str) -> str:
    """The ticks of a cron job that ran (a bounded sorted set), so a tick that never ran is counted as missed."""
    return f"{PREFIX}cron-ticks:{name}"


def cron_tick_job_id(name: str, tick_ms: int) -> str:
    return f"{PLATFORM_JOB_ID_PREFIX}cron:{name}:{tick_ms}"


def child_job_id(job_id: str) -> str:
    """The id of a job a job enqueues with an id of its own choosing (fan-out), in the platform's namespace."""
    return job_id if job_id.startswith(PLATFORM_JOB_ID_PREFIX) else f"{PLATFORM_JOB_ID_PREFIX}{job_id}"


def is_platform_job_id(job_id: str) -> bool:
    return job_id.startswith(PLATFORM_JOB_ID_PREFIX)


def rate(principal: str, window: int) -> str:
    """Requests one API key made in one rate-limit window, shared by every API process."""
    return f"{PREFIX}rate:{principal}:{window}"


CRON_PAUSED = PREFIX + "cron-paused"  # schedule name -> when it was paused (unix s); absent: running


def cron_pauses(name: str) -> str:
    """A schedule's past pauses (a bounded sorted set of "from:to" unix seconds), so ticks that fell in one are
    not counted as missed."""
    return f"{PREFIX}cron-pauses:{name}"


def cron_run_now_job_id(name: str, nonce: str) -> str:
    """A run-now job: its own id, never a tick's, so it cannot take (and suppress) a tick."""
    return f"{PLATFORM_JOB_ID_PREFIX}cron-run:{name}:{nonce}"


def chain(job_id: str) -> str:
    return CHAIN_PREFIX + job_id


def unique(function: str, digest: str) -> str:
    return f"{UNIQUE_PREFIX}{function}:{digest}"


def dashboard_session(token_digest: str) -> str:
    """A dashboard sign-in, by the SHA-256 of its cookie's token (the token itself is never stored)."""
    return f"{PREFIX}dashboard:session:{token_digest}"


# Priorities and per-function limits (core/priority.py, core/job_limits.py, core/lua/_flow.lua).
PRIORITY_PREFIX = PREFIX + "priority:"  # `<prefix><queue>:high|low`: waiting ids of that priority, scored by due time
JOB_RATE_PREFIX = PREFIX + "job-rate:"  # `<prefix><queue>:<function>`: recent starts, scored by start time
JOB_SLOTS_PREFIX = PREFIX + "job-slots:"  # `<prefix><queue>:<function>`: claim tokens, scored by lease expiry
JOB_LIMITED_PREFIX = PREFIX + "job-limited:"  # `<prefix><queue>:<function>`: the limit a claim passed it over for
JOB_WAITING_PREFIX = PREFIX + "job-waiting:"  # `<prefix><job id>`: its `limited` event was published (a while)


def priority(queue_name: str, level: str) -> str:
    return f"{PRIORITY_PREFIX}{queue_name}:{level}"


def job_limits(queue_name: str) -> str:
    """The queue's functions' limits (function -> "<rate n> <period ms> <concurrency>"), written by workers."""
    return f"{PREFIX}job-limits:{queue_name}"


def job_slots(queue_name: str, function: str) -> str:
    return f"{JOB_SLOTS_PREFIX}{queue_name}:{function}"


def job_rate(queue_name: str, function: str) -> str:
    return f"{JOB_RATE_PREFIX}{queue_name}:{function}"


def job_limited(queue_name: str, function: str) -> str:
    return f"{JOB_LIMITED_PREFIX}{queue_name}:{function}"
