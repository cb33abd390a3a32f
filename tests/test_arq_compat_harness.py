"""The harness that runs arq's own test suite against the platform's worker (compat/arq, `make test-arq`):
the parts that can break without arq's suite noticing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from compat.arq.expectations import EXPECTED_FAILURES_UNTIL_REBUILD, SKIPS
from compat.arq.run import drop_docker_fixtures

DOCS = Path(__file__).resolve().parent.parent / "docs" / "arq-compatibility.md"

# The shape of arq 0.28.0's tests/conftest.py around its Docker fixtures.
ARQ_STYLE_CONFTEST = """import pytest
from testcontainers.redis import RedisContainer

from arq.worker import Worker


@pytest.fixture(scope='session')
def redis_container(redis_version: str):
    with RedisContainer(f'redis:{redis_version}') as redis:
        yield redis


@pytest.fixture(scope='session')
def test_redis_host(redis_container) -> str:
    return redis_container.get_container_host_ip()


@pytest.fixture(scope='session')
def test_redis_port(redis_container) -> int:
    return redis_container.get_exposed_port(redis_container.port)


@pytest.fixture(scope='session')
def test_redis_settings(test_redis_host: str, test_redis_port: int):
    return (test_redis_host, test_redis_port)
"""


def top_level_names(source: str) -> set[str]:
    return {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


def test_docker_fixtures_are_cut_from_arqs_conftest_and_the_rest_kept(tmp_path: Path) -> None:
    conftest = tmp_path / "conftest.py"
    conftest.write_text(ARQ_STYLE_CONFTEST)

    drop_docker_fixtures(conftest)

    rewritten = conftest.read_text()
    assert top_level_names(rewritten) == {"test_redis_settings"}
    assert "testcontainers" not in rewritten
    assert "from arq.worker import Worker" in rewritten


def test_a_conftest_without_the_docker_fixtures_is_refused(tmp_path: Path) -> None:
    conftest = tmp_path / "conftest.py"
    conftest.write_text("import pytest\n\n\ndef test_redis_host():\n    return 'x'\n")

    with pytest.raises(SystemExit, match="expected one testcontainers import"):
        drop_docker_fixtures(conftest)


def test_no_arq_test_is_both_skipped_and_expected_to_fail() -> None:
    assert not set(SKIPS) & set(EXPECTED_FAILURES_UNTIL_REBUILD)
    assert all(reason.strip() for reason in [*SKIPS.values(), *EXPECTED_FAILURES_UNTIL_REBUILD.values()])


def test_docs_list_every_skipped_and_expected_failure() -> None:
    docs = DOCS.read_text()
    missing = [test for test in [*SKIPS, *EXPECTED_FAILURES_UNTIL_REBUILD] if f"`{test}`" not in docs]
    assert not missing, f"docs/arq-compatibility.md does not list {missing}"
