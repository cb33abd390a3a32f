"""Fallback start of the platform worker, used only when `arq worker.WorkerSettings` exits at start-up.

Does what arq's CLI does (import the settings, configure arq's logging, build the worker, run it), with
one difference: the worker's keyword arguments are filtered by arq's own `Worker` signature, so it still
starts when `worker.py` has swapped `arq.worker.Worker` for a subclass that takes `**kwargs`. The run's
notes say when this was needed.
"""

from __future__ import annotations

import inspect
import logging.config

import arq.worker
from arq.logs import default_log_config
from arq.worker import Worker as ArqWorker

import worker


def main() -> None:
    logging.config.dictConfig(default_log_config(verbose=False))
    accepted = set(inspect.signature(ArqWorker).parameters)
    kwargs = {k: v for k, v in worker.WorkerSettings.__dict__.items() if k in accepted}
    arq.worker.Worker(**kwargs).run()


if __name__ == "__main__":
    main()
