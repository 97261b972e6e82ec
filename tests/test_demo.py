"""The demo tells its story on SQLite and continues it on a second run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventsourcing_fn.__main__ import main


def test_demo_starts_then_continues(tmp_path: Path) -> None:
    """A first run starts a new file; a second run says it continues the same story."""
    path = tmp_path / "demo.db"
    first: list[str] = []
    second: list[str] = []
    from eventsourcing_fn._demo import run_demo

    run_demo(path, say=first.append)
    run_demo(path, say=second.append)
    assert str(path.resolve()) in first[0]
    assert "a new file" in first[1]
    assert any("rejected" in line and "balance 100" in line for line in first)
    assert "state at version 3: Account(owner='ann', balance=70)" in first
    assert "time travel, at version 2: Account(owner='ann', balance=100)" in first
    assert "continuing at version 3" in second[1]
    assert "state at version 5: Account(owner='ann', balance=140)" in second


def test_demo_fresh_restarts(tmp_path: Path) -> None:
    """--fresh deletes the file and starts over."""
    path = tmp_path / "demo.db"
    assert main(["demo", "--store", str(path)]) == 0
    out = subprocess.run(
        [sys.executable, "-m", "eventsourcing_fn", "demo", "--store", str(path), "--fresh"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "a new file" in out
    assert "state at version 3" in out


def test_bad_arguments_exit_2() -> None:
    """An unknown command exits with 2 and a one-line message, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "eventsourcing_fn", "nonsense"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "invalid choice" in done.stderr
