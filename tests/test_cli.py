"""`jobctl`, the installed console script, against the real API served by uvicorn with a worker running."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from core.embedded_redis import RedisProcess
from jobctl.main import Api, Exit
from tests.support.processes import start_worker, stop_process
from tests.support.serving import served

JOBCTL = str(Path(sys.executable).parent / "jobctl")


@pytest.fixture(scope="module")
def api_url(redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("cli") / "api.log"
    with served("service.main:app", redis_server.url, log) as (url, _process):
        yield url


def jobctl(url: str, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "JOBS_API_URL": url, **env}
    return subprocess.run(
        [JOBCTL, *args], input=stdin, capture_output=True, text=True, env=environment, timeout=60, check=False
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def worker_process(redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    process = start_worker(redis_server.url, tmp_path_factory.mktemp("cli") / "worker.log")
    yield
    stop_process(process)


@pytest.fixture
def cli(api_url: str, worker_process: None, redis: ArqRedis) -> Any:
    return lambda *args, **kw: jobctl(api_url, *args, **kw)


def test_enqueue_with_json_kwargs_then_show_and_result(cli: Any) -> None:
    done = cli("enqueue", "send_welcome_email", '{"email": "ada@example.com", "name": "Ada"}', "--job-id", "w1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "w1"
    result = cli("result", "w1", "--wait", "5", "--json")
    assert result.returncode == Exit.OK
    assert as_json(result)["result"]["to"] == "ada@example.com"
    show = cli("show", "w1", "--json")
    assert as_json(show)["status"] == "complete"
    assert "status: complete" in cli("show", "w1").stdout


def test_arguments_from_flags_and_stdin(cli: Any) -> None:
    done = cli("enqueue", "echo", "-", "--json", stdin='{"value": [1, 2]}')
    assert done.returncode == 0, done.stderr
    job_id = as_json(done)["job_id"]
    assert as_json(cli("result", job_id, "--wait", "5", "--json"))["result"] == [1, 2]
    flags = cli("enqueue", "send_welcome_email", "--arg", "email=bo@example.com", "-a", "name=Bo", "--json")
    assert flags.returncode == 0, flags.stderr


def test_invalid_kwargs_are_the_apis_422_and_exit_2(cli: Any) -> None:
    done = cli("enqueue", "send_welcome_email", '{"email": "nope"}')
    assert done.returncode == Exit.USAGE
    assert "kwargs.email" in done.stderr and "kwargs.name" in done.stderr
    assert cli("enqueue", "send_welcome_email", "{not json").returncode == Exit.USAGE
    assert cli("enqueue", "no_such_function").returncode == Exit.USAGE
    bad = cli("enqueue", "echo", "{}", "--json")
    assert as_json(bad)["error"]["response"]["detail"][0]["loc"] == ["body", "kwargs", "value"]
    assert cli("frobnicate").returncode == Exit.USAGE


@pytest.mark.parametrize("kwargs", ['{"value": NaN}', '{"value": -Infinity}', '{"value": "\\ud800"}'])
def test_kwargs_json_cannot_carry_are_a_clear_error_not_a_traceback(cli: Any, kwargs: str) -> None:
    done = cli("enqueue", "echo", kwargs)
    assert done.returncode == Exit.USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("jobctl: error:")


def test_follow_shows_progress_until_the_job_ends(cli: Any) -> None:
    done = cli("enqueue", "generate_report", '{"report_id": "r", "rows": 300}', "--follow")
    assert done.returncode == Exit.OK, done.stderr
    assert "complete" in done.stderr  # the progress bar's last state
    assert json.loads(done.stdout)["rows"] == 300
    followed = cli("enqueue", "generate_report", '{"report_id": "r", "rows": 300}', "--follow", "--json")
    assert as_json(followed)["status"] == "complete"
    assert as_json(followed)["progress"]["done"] == 300


def test_a_failed_job_exits_1_and_an_unfinished_one_7(cli: Any) -> None:
    failed = cli("enqueue", "fail_always", '{"message": "boom"}', "--follow")
    assert failed.returncode == Exit.JOB_FAILED
    assert "failed" in failed.stderr and "boom" in failed.stderr
    slow = cli("enqueue", "sleep_for", '{"seconds": 30}', "--json")
    job_id = as_json(slow)["job_id"]
    assert cli("follow", job_id, "--max-wait", "0.5").returncode == Exit.NOT_FINISHED
    assert cli("result", job_id).returncode == Exit.NOT_FINISHED
    assert cli("abort", job_id).returncode == Exit.OK
    assert cli("result", job_id, "--wait", "5").returncode == Exit.JOB_FAILED


def test_not_found_conflict_and_unreachable_have_their_own_exit_codes(cli: Any) -> None:
    assert cli("show", "missing").returncode == Exit.NOT_FOUND
    cli("enqueue", "echo", '{"value": 1}', "--job-id", "dup", "--defer-by", "60")
    assert cli("enqueue", "echo", '{"value": 1}', "--job-id", "dup").returncode == Exit.CONFLICT
    assert cli("abort", "dup").returncode == Exit.OK
    assert cli("abort", "dup").returncode == Exit.CONFLICT  # already finished (aborted)
    down = jobctl("http://127.0.0.1:9", "queues")
    assert down.returncode == Exit.UNAVAILABLE
    assert "cannot reach the API" in down.stderr


def test_lists_functions_queues_workers_and_cron(cli: Any) -> None:
    functions = cli("functions", "--json")
    assert "send_welcome_email" in {f["name"] for f in as_json(functions)}
    assert "send_welcome_email" in cli("functions").stdout
    assert as_json(cli("functions", "echo", "--json"))["name"] == "echo"
    assert cli("functions", "nope").returncode == Exit.NOT_FOUND
    assert as_json(cli("queues", "--json"))[0]["name"] == "arq:queue"
    for command in ("queues", "workers", "cron"):
        done = cli(command)
        assert done.returncode == 0, done.stderr
    assert isinstance(as_json(cli("workers", "--json")), list)
    assert "record_heartbeat" in {c["name"] for c in as_json(cli("cron", "--json"))}


def test_cron_pause_resume_and_run_now(cli: Any) -> None:
    paused = cli("cron", "pause", "prune_stale_records", "--json")
    assert paused.returncode == Exit.OK, paused.stderr
    assert as_json(paused)["paused"] is True and as_json(paused)["next_run"] is None
    listed = {c["name"]: c for c in as_json(cli("cron", "list", "--json"))}
    assert listed["prune_stale_records"]["paused"] is True and listed["record_heartbeat"]["paused"] is False
    assert "paused" in cli("cron").stdout
    resumed = cli("cron", "resume", "prune_stale_records")
    assert resumed.returncode == Exit.OK, resumed.stderr
    assert "prune_stale_records: running, next run" in resumed.stdout
    run = cli("cron", "run", "prune_stale_records", "--follow", "--max-wait", "20", "--json")
    assert run.returncode == Exit.OK, run.stderr
    view = as_json(run)
    assert view["status"] == "complete" and view["job_id"].startswith("platform:cron-run:prune_stale_records:")
    queued = cli("cron", "run", "record_heartbeat")
    assert queued.returncode == Exit.OK and queued.stdout.startswith("platform:cron-run:record_heartbeat:")
    for action in ("pause", "resume", "run"):
        missing = cli("cron", action, "no_such_schedule", "--json")
        assert missing.returncode == Exit.NOT_FOUND
        assert as_json(missing)["error"]["exit_code"] == Exit.NOT_FOUND
    assert cli("cron", "pause").returncode == Exit.USAGE  # the name is required


def test_dead_letters_list_show_requeue_and_delete(cli: Any) -> None:
    for job_id in ("d1", "d2"):
        cli("enqueue", "fail_always", '{"message": "no"}', "--job-id", job_id, "--follow")
    page = as_json(cli("dead", "list", "--json"))
    assert {item["job_id"] for item in page["items"]} == {"d1", "d2"}
    assert "d1" in cli("dead", "list").stdout
    assert as_json(cli("dead", "show", "d1", "--json"))["function"] == "fail_always"
    requeued = cli("dead", "requeue", "d1", "--json")
    assert as_json(requeued)["requeued"] == ["d1"]
    assert cli("dead", "requeue", "nope").returncode == Exit.NOT_FOUND
    assert cli("dead", "delete").returncode == Exit.USAGE  # neither ids, --function nor --all
    assert as_json(cli("dead", "delete", "d2", "--json"))["deleted"] == 1
    assert cli("dead", "delete", "d2").returncode == Exit.NOT_FOUND
    assert as_json(cli("dead", "delete", "--all", "--json"))["deleted"] >= 0


def test_key_is_sent_as_a_bearer_token() -> None:
    api = Api("http://example.invalid", "s3cret", 5)
    assert api.http.headers["Authorization"] == "Bearer s3cret"
    assert "authorization" not in Api("http://example.invalid", None, 5).http.headers
