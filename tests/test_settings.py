"""`settings.py`: documented defaults, comma-separated lists, and a bad variable is a one-line error
that names it (`SettingsError`, a SystemExit, so the process stops at start-up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer variable and no `.env` file may leak into these tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_as_documented() -> None:
    settings = load_settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.queue_name == "arq:queue"
    assert settings.job_timeout_seconds == 300
    assert settings.keep_result_seconds == 86_400
    assert settings.job_expires_seconds == 30 * 86_400
    assert settings.max_tries == 5
    assert settings.max_jobs == 50
    assert settings.redis_max_connections == 64
    assert settings.shutdown_grace_seconds == 30
    assert settings.health_check_interval_seconds == 10
    assert settings.redis_timeout_seconds == 2.0
    assert settings.result_wait_max_seconds == 30
    assert settings.heartbeat_every_seconds == 60
    assert settings.log_level == "INFO"
    assert settings.log_format is None
    assert settings.job_modules == ["jobs"]
    assert settings.data_dir == ".data"
    assert settings.api_host == "127.0.0.1"
    assert settings.api_port == 8000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_JOBS", "0"),
        ("MAX_JOBS", "many"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("REDIS_URL", "http://localhost:6379/0"),
        ("REDIS_URL", "redis://host:6379/"),  # arq's from_dsn reads the empty db as int('')
        ("REDIS_URL", "redis://host:6379/x"),
        ("REDIS_URL", "redis://host:port/0"),
        ("KEEP_RESULT_SECONDS", "0"),  # a result would be gone the moment it is made
        ("JOB_EXPIRES_SECONDS", "0"),
        ("HEALTH_CHECK_INTERVAL_SECONDS", "21"),  # three missed beats must stay within a minute
        ("HEARTBEAT_EVERY_SECONDS", "7"),
        ("JOB_MODULES", " , "),
        ("API_PORT", "70000"),
    ],
)
def test_invalid_variable_raises_settings_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"invalid setting {variable}:")
    assert "\n" not in message
    assert isinstance(raised.value, SystemExit)  # uncaught, Python prints the message once and exits 1


def test_every_invalid_variable_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_JOBS", "0")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert {line.split(":")[0] for line in lines} == {"invalid setting MAX_JOBS", "invalid setting LOG_FORMAT"}


def test_job_modules_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_MODULES", "jobs, x.y")
    assert load_settings().job_modules == ["jobs", "x.y"]


@pytest.mark.parametrize("url", ["redis://h:1/0", "rediss://:secret@h:6380/2", "unix:///run/redis.sock"])
def test_redis_url_accepts_redis_rediss_and_unix(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert load_settings().redis_url == url


def test_log_level_is_case_insensitive_and_empty_log_format_means_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("LOG_FORMAT", "")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.log_format is None


@pytest.mark.parametrize(("value", "valid"), [("1", True), ("15", True), ("60", True), ("120", True), ("90", False)])
def test_heartbeat_schedule_must_fit_a_cron(monkeypatch: pytest.MonkeyPatch, value: str, valid: bool) -> None:
    monkeypatch.setenv("HEARTBEAT_EVERY_SECONDS", value)
    if valid:
        assert load_settings().heartbeat_every_seconds == int(value)
    else:
        with pytest.raises(SettingsError, match="HEARTBEAT_EVERY_SECONDS"):
            load_settings()


def test_dotenv_file_is_read_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_JOBS=3\nQUEUE_NAME=from-dotenv\n")
    monkeypatch.setenv("QUEUE_NAME", "from-environment")
    settings = load_settings()
    assert settings.max_jobs == 3
    assert settings.queue_name == "from-environment"


def test_overrides_take_precedence_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_JOBS", "3")
    assert load_settings(max_jobs=7).max_jobs == 7


def test_worker_with_invalid_setting_exits_with_one_line_naming_it() -> None:
    import subprocess
    import sys

    from tests.support.processes import ROOT

    env = {"PATH": "/usr/bin:/bin", "MAX_JOBS": "zero", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "arq", "worker.WorkerSettings"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        "invalid setting MAX_JOBS: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_bad_redis_url_names_the_variable_and_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://host:6379/")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith("invalid setting REDIS_URL: Value error, not a valid Redis URL (")


def test_health_check_interval_of_twenty_seconds_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_CHECK_INTERVAL_SECONDS", "20")
    assert load_settings().health_check_interval_seconds == 20
