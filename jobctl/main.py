"""`jobctl`: the platform's API from a terminal or a script.

It talks to a running API over HTTP (never to Redis), so it sees exactly what any client sees: arguments are
validated by the API, and errors are the API's own. URL and key come from `--url`/`--key` or `JOBS_API_URL`/
`JOBS_API_KEY` (sent as `Authorization: Bearer <key>`). `--json` prints the API's JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = {"complete", "failed", "aborted"}
POLL_S = 0.25


class Exit:
    """Exit codes, one per kind of outcome a script may want to tell apart."""

    OK = 0
    JOB_FAILED = 1  # the job ended failed or aborted
    USAGE = 2  # bad arguments, bad JSON, or the API answered 422
    NOT_FOUND = 3
    CONFLICT = 4  # the job id exists, or the job already finished
    AUTH = 5  # 401 or 403
    UNAVAILABLE = 6  # the API cannot be reached, timed out, or answered 5xx
    NOT_FINISHED = 7  # the job had not finished when the wait ran out


class CliError(Exception):
    def __init__(self, code: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


STATUS_EXIT = {401: Exit.AUTH, 403: Exit.AUTH, 404: Exit.NOT_FOUND, 409: Exit.CONFLICT, 422: Exit.USAGE}


def _detail(body: Any) -> str:
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" if isinstance(e, dict) else str(e)
            for e in detail
        )
    return str(detail)


class Api:
    """The API over HTTP, answers decoded, every failure a CliError with its exit code."""

    def __init__(self, url: str, key: str | None, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(Exit.UNAVAILABLE, f"the API at {self.http.base_url} timed out ({exc})") from None
        except httpx.HTTPError as exc:
            raise CliError(Exit.UNAVAILABLE, f"cannot reach the API at {self.http.base_url}: {exc}") from None
        except ValueError as exc:  # a value JSON cannot carry (a lone surrogate): nothing was sent
            raise CliError(Exit.USAGE, f"cannot send this as JSON: {exc}") from None
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            code = STATUS_EXIT.get(response.status_code, Exit.UNAVAILABLE if response.status_code >= 500 else 2)
            raise CliError(code, f"{response.status_code}: {_detail(body)}", body)
        return body


# --- output -------------------------------------------------------------------------------------------------


class Out:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console()
        self.errors = Console(stderr=True)

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")

    def show(self, value: Any, render: Callable[[Any], None]) -> None:
        if self.as_json:
            self.json(value)
        else:
            render(value)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.console.print(table)

    def fields(self, value: dict[str, Any], keys: Sequence[str]) -> None:
        for key in keys:
            if value.get(key) is not None:
                shown = value[key] if isinstance(value[key], str) else json.dumps(value[key], default=str)
                self.console.print(f"[bold]{key}[/bold]: {shown}", highlight=False, soft_wrap=True)


JOB_FIELDS = ("job_id", "function", "status", "tries", "kwargs", "enqueued_at", "scheduled_at", "started_at",
              "finished_at", "progress", "result", "error")  # fmt: skip


def job_exit(view: dict[str, Any]) -> int:
    status = view.get("status")
    if status == "complete":
        return Exit.OK
    return Exit.JOB_FAILED if status in FINISHED else Exit.NOT_FINISHED


# --- commands -----------------------------------------------------------------------------------------------


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    raw = args.kwargs
    if raw == "-":
        raw = sys.stdin.read()
    try:
        kwargs = json.loads(raw, parse_constant=_not_json) if raw else {}
    except ValueError as exc:
        raise CliError(Exit.USAGE, f"KWARGS is not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise CliError(Exit.USAGE, 'KWARGS must be a JSON object, e.g. \'{"name": "Ada"}\'')
    for pair in args.arg or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(Exit.USAGE, f"--arg takes NAME=VALUE, got {pair!r}")
        try:
            kwargs[name] = json.loads(value, parse_constant=_not_json)
        except ValueError:
            kwargs[name] = value  # a bare word is a string
    return kwargs


def _not_json(constant: str) -> Any:
    """Python's JSON reader takes NaN and Infinity; JSON (and the API) does not."""
    raise ValueError(f"{constant} is not a JSON value")


def cmd_enqueue(api: Api, out: Out, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"function": args.function, "kwargs": _kwargs(args)}
    for option in ("job_id", "defer_by", "defer_until", "priority"):
        if getattr(args, option) is not None:
            body[option] = getattr(args, option)
    accepted = api.call("POST", "/v1/jobs", json=body)
    return _queued(api, out, args, accepted, accepted["function"])


def _queued(api: Api, out: Out, args: argparse.Namespace, accepted: dict[str, Any], label: str) -> int:
    """A job just queued: followed until it ends (`--follow`), else its id (or the whole answer with --json)."""
    if args.follow:
        if not out.as_json:
            out.errors.print(f"queued [bold]{accepted['job_id']}[/bold] ({label})", highlight=False)
        return follow(api, out, accepted["job_id"], args.max_wait)
    out.show(accepted, lambda a: out.console.print(a["job_id"], highlight=False))
    return Exit.OK


def cmd_show(api: Api, out: Out, args: argparse.Namespace) -> int:
    view = api.call("GET", f"/v1/jobs/{args.job_id}")
    out.show(view, lambda v: out.fields(v, JOB_FIELDS))
    return Exit.OK


def cmd_result(api: Api, out: Out, args: argparse.Namespace) -> int:
    outcome = api.call("GET", f"/v1/jobs/{args.job_id}/result", params={"wait": args.wait})

    def render(value: dict[str, Any]) -> None:
        if value["status"] == "complete":
            out.console.print_json(json.dumps(value["result"]))
        else:
            out.fields(value, ("status", "error"))

    out.show(outcome, render)
    return job_exit(outcome)


def follow(api: Api, out: Out, job_id: str, max_wait: float | None) -> int:
    """Poll the job until it ends, with a progress bar from its reported progress; exit code by outcome."""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    view = api.call("GET", f"/v1/jobs/{job_id}")
    live = not out.as_json
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out.errors, disable=not live, transient=False) as bar:
        task = bar.add_task(f"{job_id}: {view['status']}", total=None)
        while view["status"] not in FINISHED:
            progress = view.get("progress") or {}
            message = progress.get("message") or view["status"]
            bar.update(task, description=f"{job_id}: {message}", completed=progress.get("done") or 0,
                       total=progress.get("total"))  # fmt: skip
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
            view = api.call("GET", f"/v1/jobs/{job_id}")
        if view["status"] == "complete":
            total = (view.get("progress") or {}).get("total") or 1
            bar.update(task, description=f"{job_id}: complete", completed=total, total=total)
        else:
            bar.update(task, description=f"{job_id}: {view['status']}")
    code = job_exit(view)
    if out.as_json:
        out.json(view)
    elif view["status"] == "complete":
        out.console.print_json(json.dumps(view["result"]))
    elif view["status"] in FINISHED:
        out.errors.print(f"job {job_id} {view['status']}: {_detail(view.get('error') or {})}", highlight=False)
    else:
        out.errors.print(f"job {job_id} still {view['status']} after {max_wait}s", highlight=False)
    return code


def cmd_follow(api: Api, out: Out, args: argparse.Namespace) -> int:
    return follow(api, out, args.job_id, args.max_wait)


def cmd_abort(api: Api, out: Out, args: argparse.Namespace) -> int:
    view = api.call("POST", f"/v1/jobs/{args.job_id}/abort")
    out.show(view, lambda v: out.console.print(f"{v['job_id']}: {v['status']}", highlight=False))
    return Exit.OK


def cmd_functions(api: Api, out: Out, args: argparse.Namespace) -> int:
    if args.name:
        function = api.call("GET", f"/v1/functions/{args.name}")
        out.show(function, lambda f: out.console.print_json(json.dumps(f)))
        return Exit.OK
    functions = api.call("GET", "/v1/functions")
    out.show(
        functions,
        lambda fs: out.table(
            ("name", "arguments", "description"),
            [(f["name"], ", ".join(f["arguments_schema"].get("properties", {})), f["description"]) for f in fs],
        ),
    )
    return Exit.OK


def cmd_queues(api: Api, out: Out, args: argparse.Namespace) -> int:
    queues = api.call("GET", "/v1/queues")
    rows = [(q["name"], q["queued"], q["deferred"], q["in_progress"], q["workers"]) for q in queues]
    out.show(queues, lambda _: out.table(("queue", "queued", "deferred", "running", "workers"), rows))
    return Exit.OK


def cmd_workers(api: Api, out: Out, args: argparse.Namespace) -> int:
    workers = api.call("GET", "/v1/workers")
    rows = [
        (w["worker_id"], w["host"], w["pid"], w["last_seen"], w["jobs"]["ongoing"], w["jobs"]["complete"],
         w["jobs"]["failed"])
        for w in workers
    ]  # fmt: skip
    out.show(workers, lambda _: out.table(("worker", "host", "pid", "last seen", "running", "done", "failed"), rows))
    return Exit.OK


def cmd_cron(api: Api, out: Out, args: argparse.Namespace) -> int:
    crons = api.call("GET", "/v1/cron")
    rows = [
        (c["name"], json.dumps(c["schedule"]), c.get("tz"), json.dumps(c.get("kwargs") or {}),
         "paused" if c.get("paused") else c["next_run"], (c.get("last_run") or {}).get("status"), c.get("missed_runs"))
        for c in crons
    ]  # fmt: skip
    columns = ("schedule", "fields", "tz", "kwargs", "next run", "last status", "missed")
    out.show(crons, lambda _: out.table(columns, rows))
    return Exit.OK


def cmd_cron_state(api: Api, out: Out, args: argparse.Namespace) -> int:
    view = api.call("POST", f"/v1/cron/{quote(args.name, safe='')}/{args.cron_command}")
    state = "paused" if view["paused"] else f"running, next run {view['next_run']}"
    out.show(view, lambda v: out.console.print(f"{v['name']}: {state}", highlight=False))
    return Exit.OK


def cmd_cron_run(api: Api, out: Out, args: argparse.Namespace) -> int:
    accepted = api.call("POST", f"/v1/cron/{quote(args.name, safe='')}/run")
    return _queued(api, out, args, accepted, args.name)


def cmd_dead_list(api: Api, out: Out, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    if args.function:
        params["function"] = args.function
    page = api.call("GET", "/v1/dead", params=params)
    rows = [(d["job_id"], d["function"], d["tries"], d["reason"], d["failed_at"]) for d in page["items"]]
    title = f"dead letters {page['offset'] + 1}-{page['offset'] + len(rows)} of {page['total']}"
    out.show(page, lambda _: out.table(("job", "function", "tries", "reason", "failed at"), rows, title=title))
    return Exit.OK


def cmd_dead_show(api: Api, out: Out, args: argparse.Namespace) -> int:
    letter = api.call("GET", f"/v1/dead/{args.job_id}")
    out.show(letter, lambda d: out.console.print_json(json.dumps(d)))
    return Exit.OK


def _selector(args: argparse.Namespace, allow_all: bool) -> None:
    chosen = sum([bool(args.job_ids), args.function is not None, allow_all and bool(args.all)])
    if chosen != 1:
        options = "JOB_ID..., --function" + (" or --all" if allow_all else "")
        raise CliError(Exit.USAGE, f"give exactly one of {options}")


def cmd_dead_requeue(api: Api, out: Out, args: argparse.Namespace) -> int:
    _selector(args, allow_all=False)
    body = {"job_ids": args.job_ids} if args.job_ids else {"function": args.function}
    outcome = api.call("POST", "/v1/dead/requeue", json=body)

    def render(o: dict[str, Any]) -> None:
        out.console.print(f"requeued {len(o['requeued'])}: {' '.join(o['requeued'])}", highlight=False)
        for job_id in o["not_found"]:
            out.errors.print(f"not found: {job_id}", highlight=False)
        for job_id, why in o["not_requeued"].items():
            out.errors.print(f"not requeued: {job_id}: {why}", highlight=False)

    out.show(outcome, render)
    missed = outcome["not_found"] or outcome["not_requeued"]
    return Exit.NOT_FOUND if missed and not outcome["requeued"] else Exit.OK


def cmd_dead_delete(api: Api, out: Out, args: argparse.Namespace) -> int:
    _selector(args, allow_all=True)
    if args.job_ids:
        deleted, missing = 0, []
        for job_id in args.job_ids:
            try:
                api.call("DELETE", f"/v1/dead/{job_id}")
                deleted += 1
            except CliError as exc:
                if exc.code != Exit.NOT_FOUND:
                    raise
                missing.append(job_id)
        result: dict[str, Any] = {"deleted": deleted, "not_found": missing}
    else:
        params = {"function": args.function} if args.function else {"all": "true"}
        result = api.call("DELETE", "/v1/dead", params=params)
    out.show(result, lambda r: out.console.print(f"deleted {r['deleted']}", highlight=False))
    return Exit.NOT_FOUND if result.get("not_found") and not result["deleted"] else Exit.OK


# --- arguments ----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=f"API base URL [$JOBS_API_URL, {DEFAULT_URL}]")
    common.add_argument("--key", default=argparse.SUPPRESS, help="API key, sent as a bearer token [$JOBS_API_KEY]")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="HTTP timeout in seconds [30]")

    root = _Parser(
        prog="jobctl",
        description="Enqueue, inspect and follow jobs, and manage dead letters, through the platform's API.",
        epilog="exit codes: 0 ok, 1 job failed or aborted, 2 usage or invalid input (422), 3 not found, "
        "4 conflict (id exists, already finished), 5 unauthorized, 6 API unreachable or 5xx, 7 job not finished",
        parents=[common],
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, run: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_, parents=[common])
        sub.set_defaults(run=run)
        return sub

    enqueue = command("enqueue", cmd_enqueue, "Enqueue a function with JSON kwargs (validated by the API).")
    enqueue.add_argument("function")
    enqueue.add_argument("kwargs", nargs="?", default="", metavar="KWARGS", help="a JSON object; '-' reads stdin")
    enqueue.add_argument("-a", "--arg", action="append", metavar="NAME=VALUE", help="one argument; VALUE is JSON "
                         "or a bare string; repeatable, and wins over KWARGS")  # fmt: skip
    enqueue.add_argument("--job-id")
    enqueue.add_argument("--priority", choices=("high", "default", "low"), help="the job's priority [its function's]")
    group = enqueue.add_mutually_exclusive_group()
    group.add_argument("--defer-by", type=float, metavar="SECONDS")
    group.add_argument("--defer-until", metavar="ISO_TIME")
    enqueue.add_argument("-f", "--follow", action="store_true", help="then follow it until it ends")
    enqueue.add_argument("--max-wait", type=float, help="with --follow: give up after this many seconds")

    show = command("show", cmd_show, "Show a job: status, arguments, progress, result or error.")
    show.add_argument("job_id")
    follow_ = command("follow", cmd_follow, "Follow a job with a live progress bar until it ends.")
    follow_.add_argument("job_id")
    follow_.add_argument("--max-wait", type=float, help="give up after this many seconds (exit 7)")
    result = command("result", cmd_result, "A job's result, waiting up to --wait seconds for it.")
    result.add_argument("job_id")
    result.add_argument("--wait", type=float, default=0)
    abort = command("abort", cmd_abort, "Abort a queued, deferred or running job.")
    abort.add_argument("job_id")
    functions = command("functions", cmd_functions, "List the registered functions, or show one.")
    functions.add_argument("name", nargs="?")
    command("queues", cmd_queues, "Show the queue: due, deferred, running, workers.")
    command("workers", cmd_workers, "List live workers.")
    cron = command("cron", cmd_cron, "List cron schedules, or pause, resume or run one now.")
    cron_commands = cron.add_subparsers(dest="cron_command", metavar="ACTION", parser_class=_Parser)

    def cron_command(name: str, run: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        sub = cron_commands.add_parser(name, help=help_, description=help_, parents=[common])
        sub.set_defaults(run=run)
        if name != "list":
            sub.add_argument("name", help="the schedule's name (see `jobctl cron`)")
        return sub

    cron_command("list", cmd_cron, "List cron schedules: fields, time zone, kwargs, next and last run.")
    cron_command("pause", cmd_cron_state, "Pause a schedule: its ticks are not enqueued, on any worker.")
    cron_command("resume", cmd_cron_state, "Resume a paused schedule from its next tick.")
    run_now = cron_command("run", cmd_cron_run, "Run a schedule once now, with its kwargs.")
    run_now.add_argument("-f", "--follow", action="store_true", help="then follow the run until it ends")
    run_now.add_argument("--max-wait", type=float, help="with --follow: give up after this many seconds")

    dead = commands.add_parser("dead", help="Dead letters: list, show, requeue, delete.", parents=[common])
    dead_commands = dead.add_subparsers(dest="dead_command", required=True, metavar="ACTION", parser_class=_Parser)

    def dead_command(name: str, run: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        sub = dead_commands.add_parser(name, help=help_, description=help_, parents=[common])
        sub.set_defaults(run=run)
        return sub

    listing = dead_command("list", cmd_dead_list, "List dead letters, newest first.")
    listing.add_argument("--function")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=50)
    dead_show = dead_command("show", cmd_dead_show, "Show one dead letter with its attempts.")
    dead_show.add_argument("job_id")
    requeue = dead_command("requeue", cmd_dead_requeue, "Requeue dead letters by id, or all of one function.")
    requeue.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    requeue.add_argument("--function")
    delete = dead_command("delete", cmd_dead_delete, "Delete dead letters by id, of one function, or all.")
    delete.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    delete.add_argument("--function")
    delete.add_argument("--all", action="store_true")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Out(getattr(args, "json", False))
    url = getattr(args, "url", None) or os.environ.get("JOBS_API_URL") or DEFAULT_URL
    key = getattr(args, "key", None) or os.environ.get("JOBS_API_KEY") or None
    api = Api(url, key, getattr(args, "timeout", 30.0))
    try:
        code: int = args.run(api, out, args)
        return code
    except CliError as exc:
        if out.as_json:
            out.json({"error": {"message": str(exc), "exit_code": exc.code, "response": exc.body}})
        out.errors.print(f"jobctl: error: {exc}", highlight=False, markup=False)
        return exc.code
    except KeyboardInterrupt:
        return 130
    finally:
        api.http.close()
