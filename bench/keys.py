"""The benchmark's own Redis keys (arq's and the platform's keys come from `arq.constants` and `core.keys`)."""

READY_KEY = "bench:ready"  # a set: pids of raw arq workers that finished start-up
STAGING = "bench:staging"  # a sorted set no worker reads: the backlog before it is released onto the queue
