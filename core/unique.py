"""Unique jobs: `@job(unique=("report_id",))` allows one job per value of those arguments while one is queued or
running. The enqueue script sets the lock (`platform:unique:<function>:<digest>` -> the job's id) atomically with
the job, or answers with the job that holds it; the job's end (finish or abort script) releases it, fenced (only
the lock still naming that job). The lock expires with the job's own payload, and a lock whose job is gone
(neither its payload nor a claim exists) is taken over: it is never stuck. A kept result does not hold it.

A function without `unique` makes no lock, reads none, and its payload carries nothing more."""

from __future__ import annotations

import hashlib
from typing import Any

from core import keys
from core.exact_json import dumps_exact
from core.registry import JobSpec


def lock_key(spec: JobSpec, wire_kwargs: dict[str, Any]) -> str | None:
    """The job's uniqueness key from its validated (JSON-form) arguments; None for a function without one."""
    names = spec.options.unique
    if not names:
        return None
    chosen = dumps_exact([wire_kwargs.get(name) for name in names])
    return keys.unique(spec.name, hashlib.sha256(chosen).hexdigest()[:32])
