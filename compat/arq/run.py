"""Run arq 0.28.0's own test suite against the platform's worker: `make test-arq`, or
`.venv-arq/bin/python -m compat.arq.run [pytest args]` from the repository root.

arq's tests are not committed here: its sdist is downloaded from PyPI into `.cache/arq-sdist/` on first use,
checked against a pinned sha256, and only its `tests/` directory is extracted. The one edit made to them cuts
the Docker (testcontainers) Redis fixtures out of its conftest; `compat/arq/plugin.py` provides a local
redis-server in their place and points arq's `Worker` at the platform's class. See docs/arq-compatibility.md.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ARQ_VERSION = "0.28.0"
SDIST_NAME = f"arq-{ARQ_VERSION}.tar.gz"
SDIST_SHA256 = "a458188aefc2d7ee17d136f80d8fa8df1d6eba4ceebdead87e9f172d027dc311"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".cache" / "arq-sdist"
SUITE = CACHE / f"arq-{ARQ_VERSION}"  # the rootdir of the run: `tests/` inside it is importable as `tests`

# What the arq conftest gets its Redis from (a Docker container); plugin.py defines these instead.
DOCKER_FIXTURES = frozenset({"redis_container", "test_redis_host", "test_redis_port"})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_sdist() -> Path:
    """The pinned sdist, from the cache or downloaded with pip; a file with another hash is an error."""
    sdist = CACHE / SDIST_NAME
    if not sdist.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as download_dir:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                 f"arq=={ARQ_VERSION}", "--dest", download_dir],
                check=True,
            )  # fmt: skip
            shutil.move(Path(download_dir) / SDIST_NAME, sdist)
    found = sha256(sdist)
    if found != SDIST_SHA256:
        sys.exit(f"{sdist}: sha256 {found}, expected {SDIST_SHA256}; delete it to download it again")
    return sdist


def extract_tests(sdist: Path) -> Path:
    """A fresh copy of the sdist's `tests/` (and nothing else) under SUITE."""
    prefix = f"arq-{ARQ_VERSION}/tests/"
    shutil.rmtree(SUITE, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if member.name.startswith(prefix)]
        if not members:
            sys.exit(f"{sdist} has no {prefix}")
        archive.extractall(CACHE, members=members, filter="data")
    tests = SUITE / "tests"
    drop_docker_fixtures(tests / "conftest.py")
    return tests


def drop_docker_fixtures(conftest: Path) -> None:
    """Cut the testcontainers import and the fixtures built on it out of arq's conftest, leaving the rest
    as arq wrote it; fails loudly if they are not exactly where this expects them."""
    source = conftest.read_text()
    cut: list[tuple[int, int]] = []
    found: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("testcontainers"):
            cut.append((node.lineno, node.end_lineno or node.lineno))
        elif isinstance(node, ast.FunctionDef) and node.name in DOCKER_FIXTURES:
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            cut.append((first, node.end_lineno or node.lineno))
            found.add(node.name)
    if found != DOCKER_FIXTURES or len(cut) != len(DOCKER_FIXTURES) + 1:
        sys.exit(f"{conftest}: expected one testcontainers import and {sorted(DOCKER_FIXTURES)}, found {found}")
    lines = source.splitlines(keepends=True)
    for first, last in sorted(cut, reverse=True):
        del lines[first - 1 : last]
    header = "# Docker Redis fixtures removed by compat/arq/run.py; compat/arq/plugin.py provides them.\n"
    conftest.write_text(header + "".join(lines))


def main(pytest_args: list[str]) -> int:
    tests = extract_tests(fetch_sdist())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable, "-m", "pytest",
        "-c", str(HERE / "pytest.ini"), "--rootdir", str(SUITE),
        "-p", "compat.arq.plugin",
        "-q", "-rfEX",
        *pytest_args,
    ]  # fmt: skip
    if not any(arg.startswith(tests.name) for arg in pytest_args):
        command.append(tests.name)  # the whole suite unless a test path was given
    # cwd is the suite's root so `tests.test_cli` (arq's CLI tests name their settings that way) is arq's
    # `tests` package, and no `.env` of the repository reaches the platform's settings.
    return subprocess.run(command, cwd=SUITE, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
