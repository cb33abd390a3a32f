"""One log format for everything in the process: structlog's own events and stdlib loggers
(uvicorn, arq) go through the same renderer, JSON in production and readable on a terminal.

The platform adds one handler to the root logger and leaves the host process's own handlers alone;
configuring again (the worker does, once arq's CLI has set up its logging) updates that handler.

Cheap per line, since a worker logs two lines per job: when the platform's handler is the only one an event
would reach (a worker or API process of its own), structlog's events are rendered (orjson) and written to its
stream directly, skipping stdlib's LogRecord and ProcessorFormatter round trip (most of a line's cost); with
any other handler in the way (a host's, pytest's) they go through stdlib logging as before, to every handler.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from settings import Settings

# The handlers arq's CLI (`arq.standard`) and uvicorn's CLI (`default`, `access`) put on their own loggers
# from their default logging configs: each would print every line a second time, in its own format.
LIBRARY_HANDLER_NAMES = frozenset({"arq.standard", "default", "access"})
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "arq")
# arq's modules log to these; under arq's CLI they write to the platform's handler only.
ARQ_MODULE_LOGGERS = ("arq.worker", "arq.jobs", "arq.connections", "arq.utils")
# Attributes other formatters leave on a shared record (uvicorn's terminal colours, a formatted copy).
FORMATTING_LEFTOVERS = ("color_message", "message", "asctime")


class PlatformHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The platform's handler; found again by its type, so configuring twice never adds a second one."""


def _orjson_dumps(value: Any, **options: Any) -> str:
    """JSON for one log line, by orjson (several times faster than `json`); what orjson refuses (an integer
    beyond 64 bits, say) goes through `json` with the same fallback for unknown types."""
    default = options.get("default")
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, default=default)


def _renderer(settings: Settings) -> Any:
    log_format = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    if log_format == "json":
        return structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    return structlog.dev.ConsoleRenderer()


class UtcTimestamp:
    """`timestamp` in ISO 8601, UTC, to the microsecond (what `TimeStamper(fmt="iso", utc=True)` writes), with
    the date and time of day formatted once a second rather than on every line."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        known, prefix = self._second
        if second != known:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._second = (second, prefix)
        event["timestamp"] = f"{prefix}{micros:06d}Z"
        return event


_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level names them


class Stamp(UtcTimestamp):
    """`level`, `logger` and `timestamp` of a structlog event in one step (add_log_level, add_logger_name and
    the timestamp, one call instead of three on every line)."""

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["level"] = _LEVEL_OF_METHOD.get(name, name)
        event["logger"] = logger.name
        return super().__call__(logger, name, event)


class DirectSink:
    """The last step of structlog's chain: write the event itself when the platform's handler is all it would
    reach, else hand it to stdlib logging (`ProcessorFormatter.wrap_for_formatter`) for every handler."""

    def __init__(self) -> None:
        self.handler: PlatformHandler | None = None
        self.render: Any = None

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        if "stack_info" in event:
            event = _STACK_INFO(logger, name, event)
        handler = self.handler
        if handler is None or not isinstance(logger, logging.Logger) or not _only_reaches(logger, handler):
            return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, name, event)
        if "exc_info" in event:
            event = structlog.processors.format_exc_info(logger, name, event)
        line = self.render(logger, name, event)
        handler.acquire()
        try:
            handler.stream.write(line + handler.terminator)
            handler.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream drops the line, as stdlib's handler does
            pass
        finally:
            handler.release()
        raise structlog.DropEvent


def _only_reaches(logger: logging.Logger, handler: PlatformHandler) -> bool:
    """Whether stdlib logging would hand this logger's records to `handler` alone, unfiltered."""
    root = logging.root
    if root.handlers != [handler] or handler.filters or handler.level or root.filters:
        return False
    current: logging.Logger | None = logger
    while current is not None and current is not root:
        if current.handlers or current.filters or not current.propagate or current.disabled:
            return False
        current = current.parent
    return True


SINK = DirectSink()
_STACK_INFO = structlog.processors.StackInfoRenderer(additional_ignores=["core.logging"])


def _drop_formatting_leftovers(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in FORMATTING_LEFTOVERS:
        event.pop(key, None)
    return event


def _platform_handler(root: logging.Logger) -> PlatformHandler:
    for handler in root.handlers:
        if isinstance(handler, PlatformHandler):
            # Follows a replaced stderr (a test runner's capture, say); the old one may be closed already,
            # and setStream() would flush it.
            handler.stream = sys.stderr
            return handler
    handler = PlatformHandler(sys.stderr)
    root.addHandler(handler)
    return handler


class _OnlyToPlatformHandler(logging.Filter):
    """On arq's module loggers under its CLI: hand each record to our handler, and to no other.

    arq's CLI runs `dictConfig` after importing the worker settings, and `arq --check` never comes back
    to us: that puts its own handler on the `arq` logger and resets the handlers and propagation of its
    children, but keeps their filters. Without this, every line of `arq --check` would print twice.
    """

    def __init__(self, handler: PlatformHandler, level: str) -> None:
        super().__init__()
        self.handler = handler
        self.levelno = logging.getLevelName(level)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.levelno:
            self.handler.handle(record)
        return False


def _under_arq_cli(handler: PlatformHandler, level: str) -> None:
    for name in ARQ_MODULE_LOGGERS:
        module_logger = logging.getLogger(name)
        for old in [f for f in module_logger.filters if isinstance(f, _OnlyToPlatformHandler)]:
            module_logger.removeFilter(old)
        module_logger.addFilter(_OnlyToPlatformHandler(handler, level))
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _one_line_for_redis_unreachable


def _one_line_for_redis_unreachable(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """Under arq's CLI, Redis out of reach (`arq --check` while it is down) is one line, then exit 1."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        structlog.get_logger("worker").error("redis.unreachable", error=str(error))
    else:
        sys.__excepthook__(kind, error, traceback)


def configure_logging(settings: Settings) -> None:
    """Configure structlog and route stdlib loggers through it, through one handler on the root logger."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        UtcTimestamp(),
    ]
    renderer = _renderer(settings)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # drop a filtered event before any work is done on it
            structlog.contextvars.merge_contextvars,
            Stamp(),  # the same fields as `shared`, in one step
            SINK,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_formatting_leftovers],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    root = logging.getLogger()
    handler = _platform_handler(root)
    handler.setFormatter(formatter)
    # Loggers cached before this call keep their processors: the sink they share is what changes.
    SINK.handler, SINK.render = handler, renderer
    root.setLevel(settings.log_level)
    for name in LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        for library_handler in list(library_logger.handlers):
            if library_handler.get_name() in LIBRARY_HANDLER_NAMES:
                library_logger.removeHandler(library_handler)
        library_logger.setLevel(logging.NOTSET)
        library_logger.propagate = True
    if _running_arq_cli():
        _under_arq_cli(handler, settings.log_level)


def _running_arq_cli() -> bool:
    """This process is `arq ...` (the console script or `python -m arq`), not merely one that imported arq's
    CLI module (a test suite does): only then does arq's dictConfig need working around."""
    program = sys.argv[0] if sys.argv else ""
    return "arq.cli" in sys.modules and (
        os.path.basename(program) == "arq" or program.endswith(os.path.join("arq", "__main__.py"))
    )
