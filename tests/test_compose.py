"""docker-compose.yml publishes the API on the host's 127.0.0.1 unless it is given API_KEYS: there is no Docker
engine in the suite, so the file is parsed as YAML, its variables are interpolated the way Compose does for
the forms it uses (`${VAR:-default}`), and the rule that makes a wider publication need keys (API_PUBLISH_HOST
is a setting the API checks at start-up) is tested on the API itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import Settings, SettingsError, load_settings
from tests.support.keys import ADMIN

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}` and `${VAR:-default}` (the only forms the file may use: checked below)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), value)
    return value


def api_service(env: dict[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)["services"]["api"]


def test_the_file_parses_and_uses_only_plain_variables() -> None:
    text = COMPOSE.read_text()
    document = yaml.safe_load(text)
    assert set(document["services"]) == {"redis", "api", "worker"}
    for expression in re.findall(r"\$\{[^}]*\}", text):
        assert VARIABLE.fullmatch(expression), f"{expression}: only ${{VAR}} and ${{VAR:-default}} are used"
    assert "ports" not in document["services"]["redis"]  # Redis is never published


def test_without_settings_the_api_is_published_on_loopback_only() -> None:
    [port] = api_service({})["ports"]
    assert port["host_ip"] == "127.0.0.1"
    assert str(port["published"]) == "8000"


def test_the_publish_host_reaches_the_api_which_refuses_it_without_keys() -> None:
    """Whatever API_PUBLISH_HOST the port is published on is what the API's own setting says, so the API can
    refuse to serve a wider publication without keys (below): nothing answers on every interface then."""
    for env in ({}, {"API_PUBLISH_HOST": "0.0.0.0"}, {"API_PUBLISH_HOST": "0.0.0.0", "API_KEYS": "[]"}):
        api = api_service(env)
        assert api["environment"]["API_PUBLISH_HOST"] == api["ports"][0]["host_ip"]
        assert api["environment"]["API_KEYS"] == env.get("API_KEYS", "")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "api.example.com"])
def test_a_wider_publication_needs_keys(host: str) -> None:
    with pytest.raises(SettingsError, match=r"invalid setting API_PUBLISH_HOST: .*API_KEYS"):
        load_settings(api_publish_host=host)
    assert load_settings(api_publish_host=host, api_keys=[ADMIN]).api_publish_host == host


@pytest.mark.parametrize("host", [None, "127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_a_loopback_publication_needs_no_keys(host: str | None) -> None:
    assert load_settings(api_publish_host=host).api_publish_host == host


def test_the_api_process_refuses_to_start_published_widely_without_keys(redis_server) -> None:
    from tests.support.processes import ROOT, process_env

    run = subprocess.run(
        [sys.executable, "-m", "service.main"],
        cwd=ROOT,
        env=process_env(redis_server.url, API_PUBLISH_HOST="0.0.0.0", API_PORT="1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    [line] = [text for text in (run.stdout + run.stderr).splitlines() if text.strip()]
    assert line.startswith("invalid setting API_PUBLISH_HOST:")


def test_settings_describe_it() -> None:
    assert Settings.model_fields["api_publish_host"].description
