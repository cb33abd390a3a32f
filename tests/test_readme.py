"""The README's commands run as written: every `make` target it names exists, every `.venv/bin/` tool it
names is installed, and its walk-through, run against `make run` (run_platform.py, on free ports), answers
with the status codes and the JSON fields the README shows."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.launcher import Launcher, start_launcher, wait_until_serving
from tests.support.processes import ROOT

README = (ROOT / "README.md").read_text()
README_API = "http://127.0.0.1:8000"
FAILING_JOB_SECTION = "A job that fails: retries, attempts, dead letters"


@dataclass
class Command:
    section: str
    text: str
    expected: list[str] = field(default_factory=list)


def fenced_blocks(language: str) -> list[tuple[str, list[str]]]:
    """(the heading above it, its lines) for every fenced block in that language, in README order."""
    blocks, section, inside = [], "", None
    for line in README.splitlines():
        if inside is None and line.startswith("#"):
            section = line.lstrip("#").strip()
        elif inside is None and line == f"```{language}":
            inside = []
        elif inside is not None and line == "```":
            blocks.append((section, inside))
            inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def console_commands() -> list[Command]:
    """Each `$ ` command of the console blocks (with its `\\` continuation lines) and the output shown."""
    commands: list[Command] = []
    for section, lines in fenced_blocks("console"):
        continued = False
        for line in lines:
            if line.startswith("$ "):
                commands.append(Command(section, line[2:]))
            elif continued:
                commands[-1].text += "\n" + line
            elif line.strip():
                commands[-1].expected.append(line)
            continued = line.endswith("\\")
    return commands


def make_targets() -> set[str]:
    spans = re.findall(r"`make ([^`]+)`", README)
    spans += [line for _, lines in fenced_blocks("sh") for line in lines if line.startswith("make ")]
    targets = set()
    for span in spans:
        words = span.removeprefix("make ").split("#")[0].split()
        targets.update(w for w in words if "=" not in w and not w.startswith("-"))
    return targets


def test_every_make_target_the_readme_names_exists() -> None:
    targets = make_targets()
    assert {"run", "test", "worker", "check-worker", "clean-data"} <= targets

    for target in sorted(targets):
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"make {target}: {done.stderr}"


def test_every_venv_tool_the_readme_names_is_installed() -> None:
    tools = set(re.findall(r"\.venv/bin/([\w-]+)", README))
    assert {"arq", "uvicorn"} <= tools
    if not (ROOT / ".venv" / "bin").is_dir():
        pytest.skip("no .venv here: the suite was not run through make")
    assert sorted(t for t in tools if not (ROOT / ".venv" / "bin" / t).exists()) == []


def test_the_readme_names_no_bare_arq_or_uvicorn_command_without_saying_where_it_runs() -> None:
    """`arq ...` alone answers "command not found" unless the virtualenv is active: every sh line uses make
    or .venv/bin/."""
    for _, lines in fenced_blocks("sh"):
        for line in lines:
            assert line.startswith(("make ", ".venv/bin/")), line


def json_keys(lines: list[str]) -> list[set[str]]:
    return [set(json.loads(line)) for line in lines if line.startswith("{")]


def check_answer(command: Command, output: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    where = f"\n$ {command.text}\n{output}"
    if command.expected and command.expected[0].startswith("HTTP/"):
        assert lines[0].split()[1] == command.expected[0].split()[1], where
    if command.expected and re.fullmatch(r"\d{3}", command.expected[-1]):
        assert lines[-1] == command.expected[-1], where
    assert json_keys(lines) == json_keys(command.expected), where


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[Launcher, httpx.AsyncClient]]:
    launcher = start_launcher(tmp_path, JOB_MODULES="jobs", LOG_FORMAT="json")
    try:
        async with httpx.AsyncClient(base_url=launcher.api_url, timeout=10) as client:
            await wait_until_serving(launcher, client)
            yield launcher, client
    finally:
        assert launcher.stop() == 0


def job_id(lines: list[str]) -> str | None:
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return str(found[-1]["job_id"]) if found and "job_id" in found[-1] else None


def run_commands(commands: list[Command], api_url: str) -> None:
    """Run each command in order; an id the platform generated replaces the README's in later commands."""
    assert commands
    ids = {README_API: api_url}
    for command in commands:
        script = command.text
        for readme_value, value in ids.items():
            script = script.replace(readme_value, value)
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"$ {command.text}\n{done.stderr}"
        check_answer(command, done.stdout)
        readme_id, actual_id = job_id(command.expected), job_id(done.stdout.splitlines())
        if readme_id and actual_id and readme_id != actual_id:
            ids[readme_id] = actual_id


WALK_THROUGH_SECTION = "Walk-through"


async def test_the_readme_walk_through_runs_as_written(platform: tuple[Launcher, httpx.AsyncClient]) -> None:
    """The walk-through's commands (other sections' consoles run other apps: `make example`, `jobctl`)."""
    launcher, _ = platform
    run_commands([c for c in console_commands() if c.section == WALK_THROUGH_SECTION], launcher.api_url)


async def test_the_readme_failing_job_walk_through_runs_as_written(
    platform: tuple[Launcher, httpx.AsyncClient],
) -> None:
    launcher, client = platform
    functions = {f["name"] for f in (await client.get("/v1/functions")).json()}
    if "charge_card" not in functions:
        pytest.skip("the demo job charge_card is not in jobs/ yet (requested from the lead)")
    run_commands([c for c in console_commands() if c.section == FAILING_JOB_SECTION], launcher.api_url)
