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
WORKERS = PREFIX + "workers"
DEAD_LETTERS = PREFIX + "dead"


def job(job_id: str) -> str:
    return job_key_prefix + job_id


def result(job_id: str) -> str:
    return result_key_prefix + job_id


def in_progress(job_id: str) -> str:
    return in_progress_key_prefix + job_id


def retry(job_id: str) -> str:
    return retry_key_prefix + job_id


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


def rate(principal: str, window: int) -> str:
    """Requests one API key made in one rate-limit window, shared by every API process."""
    return f"{PREFIX}rate:{principal}:{window}"
