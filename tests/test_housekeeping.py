"""Housekeeping: `make clean-data` wipes what make run's embedded Redis kept and `make clean` does not;
CI runs the same lint (format check included), type check and test targets a developer does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import ROOT


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_make_clean_data_removes_the_embedded_redis_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "redis" / "appendonlydir").mkdir(parents=True)
    (data_dir / "redis" / "appendonlydir" / "appendonly.aof.1.incr.aof").write_text("*1\r\n")

    done = make("clean-data", f"DATA_DIR={data_dir}")

    assert done.returncode == 0, done.stderr
    assert not data_dir.exists()


def test_make_clean_leaves_the_data_alone() -> None:
    dry_run = make("-n", "clean").stdout
    assert "rm -rf" in dry_run
    assert ".data" not in dry_run


def test_ci_runs_lint_with_the_format_check_typecheck_and_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    steps = [line for line in script.splitlines() if line.startswith("make ")]
    assert steps == ["make install", "make lint", "make typecheck", "make test"]
    assert "ruff format --check ." in make("-n", "lint").stdout
