"""The least-privilege Redis ACL for the API and for the worker, stated once.

`python -m core.redis_acl` prints the `ACL SETUSER` lines for the configured QUEUE_NAME (the README shows
them; tests/test_redis_acl.py runs the whole flow as these users). Both users reach only the platform's
keys (arq's `arq:*`, the queue, and `platform:*`, see core/keys.py) and the command categories below;
neither can run FLUSHALL, CONFIG, KEYS, DEBUG, MONITOR, SHUTDOWN, ACL or touch another application's keys.
To grant more (issue 8's pub/sub, say), add it to ROLES here and nowhere else.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from core import keys
from settings import load_settings

# Commands both processes issue (directly, or inside the platform's Lua scripts, which Redis 7 checks too).
_DATA = ["+@read", "+@write", "+@scripting", "+@connection", "+@transaction", "-@dangerous", "-@admin"]
_SAFE_SCRIPT_ONLY = ["-script|flush", "-script|kill", "-function", "-fcall", "-fcall_ro"]


@dataclass(frozen=True)
class Role:
    """One Redis user: the commands it may run, beyond the key patterns every role gets."""

    name: str
    commands: tuple[str, ...]
    channels: tuple[str, ...] = ()  # pub/sub channel patterns (none yet)


ROLES = {
    "api": Role("platform-api", (*_DATA, *_SAFE_SCRIPT_ONLY)),
    # The worker also blocks on its wake list, arq logs INFO and DBSIZE once at start-up, and the claim script
    # reads Redis's clock (TIME) for per-function rate and concurrency limits.
    "worker": Role("platform-worker", (*_DATA, *_SAFE_SCRIPT_ONLY, "+@blocking", "+info", "+dbsize", "+time")),
}


def key_patterns(queue_name: str) -> list[str]:
    """Every key the platform reads or writes, as ACL key patterns."""
    patterns = {"~arq:*", f"~{keys.PREFIX}*", f"~{queue_name}", f"~{keys.health_check(queue_name)}"}
    return sorted(patterns)


def acl_rules(role: Role, queue_name: str, password: str) -> list[str]:
    """The arguments of `ACL SETUSER <role.name> ...`: reset first, so the rules are the whole truth."""
    channels = [f"&{pattern}" for pattern in role.channels]
    return [
        "reset",
        "on",
        f">{password}",
        *key_patterns(queue_name),
        "resetchannels",
        *channels,
        "-@all",
        *role.commands,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Print the least-privilege ACL SETUSER commands.")
    parser.add_argument("--api-password", default="<api-password>")
    parser.add_argument("--worker-password", default="<worker-password>")
    args = parser.parse_args()
    queue_name = load_settings().queue_name
    for role, password in ((ROLES["api"], args.api_password), (ROLES["worker"], args.worker_password)):
        print(f"ACL SETUSER {role.name} " + " ".join(acl_rules(role, queue_name, password)))


if __name__ == "__main__":
    main()
