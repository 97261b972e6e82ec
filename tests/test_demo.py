"""The demo tells its story on SQLite, continues it on a second run, and spares other files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from eventsourcing_fn.__main__ import main
from eventsourcing_fn._demo import _STORE_TABLES, run_demo
from eventsourcing_fn.storage import NewEvent, StreamAppend, sqlite_schema, sqlite_storage


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Ran]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The command line run in-process with `tmp_path` as working directory."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Ran:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def assert_refused(done: Ran, *names: str) -> None:
    """Exit code 2, one line on stderr naming each of `names`, no traceback, nothing on stdout."""
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert all(name in done.stderr for name in names)
    assert done.stdout == ""


def other_apps_database(path: Path) -> None:
    """A SQLite database of some other application, in the default rollback-journal mode."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('buy milk')")
    conn.close()


def test_demo_starts_then_continues(tmp_path: Path) -> None:
    """A first run starts a new file; a second run says it continues the same story."""
    path = tmp_path / "demo.db"
    first: list[str] = []
    second: list[str] = []
    run_demo(path, say=first.append)
    run_demo(path, say=second.append)
    assert str(path.resolve()) in first[0]
    assert "a new file" in first[1]
    assert "continuing at version 5" in second[1]
    assert "  now, at version 5: Account(owner='ann', balance=2570, held=2500)" in first
    assert "  now, at version 9: Account(owner='ann', balance=5140, held=5000)" in second


def test_demo_tells_every_part(tmp_path: Path) -> None:
    """Commands, a rejection as a Failure, a projection read at once, a cascade, metadata, time
    travel and a replay with its progress."""
    said: list[str] = []
    ticks: list[tuple[int, int | None]] = []

    @contextmanager
    def bar(label: str, total: int | None) -> Iterator[Callable[[int, int | None], None]]:
        assert (label, total) == ("replaying balances", 5)
        yield lambda done, total: ticks.append((done, total))

    run_demo(tmp_path / "demo.db", say=said.append, bar=bar)
    text = "\n".join(said)
    assert "Deposit(amount=100)    -> Deposited(amount=100) at v2" in text
    assert "-> Failure: InsufficientFunds: 100 available, asked for 1000; nothing appended" in text
    assert "  balances['acc-1'] = Balance(owner='ann', balance=70, held=0)" in said
    assert "by 'holds', in the same transaction: HoldPlaced(amount=2500" in text
    assert "InsufficientFunds: 70 available (2500 on hold), asked for 2000" in text
    hold = next(line for line in said if line.startswith("  #5 v5 HoldPlaced"))
    assert "by teller-7, correlation visit-1, caused by #4" in hold
    assert "metadata {'channel': 'demo'}" in hold
    assert "  at version 2: Account(owner='ann', balance=100, held=0)" in said
    assert ticks[-1] == (5, 5)
    assert any(line.startswith("  replayed 5 events") for line in said)


def test_demo_fresh_restarts(tmp_path: Path) -> None:
    """--fresh deletes the file (checkpoints and documents included) and starts over."""
    path = tmp_path / "demo.db"
    assert main(["demo", "--store", str(path)]) == 0
    out = subprocess.run(
        [sys.executable, "-m", "eventsourcing_fn", "demo", "--store", str(path), "--fresh"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "a new file" in out
    assert "now, at version 5" in out


def test_store_option_before_the_command(cli: Cli, tmp_path: Path) -> None:
    """`--store` may come before `demo`, as with every command."""
    done = cli("--store", "mine.db", "demo")
    assert done.returncode == 0
    assert (tmp_path / "mine.db").exists()


def test_bad_arguments_exit_2() -> None:
    """An unknown command exits with 2 and a one-line message, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "eventsourcing_fn", "nonsense"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "No such command 'nonsense'" in done.stderr


class TestForeignFiles:
    @pytest.mark.parametrize("fresh", [[], ["--fresh"]], ids=["continue", "fresh"])
    @pytest.mark.parametrize("kind", ["text", "sqlite"])
    def test_foreign_file_untouched(
        self, cli: Cli, tmp_path: Path, kind: str, fresh: list[str]
    ) -> None:
        """A store path holding another program's file exits 2 and leaves it byte-identical."""
        path = tmp_path / ("notes.txt" if kind == "text" else "notes.db")
        if kind == "text":
            path.write_text("these are my notes\n")
        else:
            other_apps_database(path)
        before = path.read_bytes()
        done = cli("demo", "--store", path.name, *fresh)
        assert_refused(done, repr(path.name), "not a database this demo made")
        assert path.read_bytes() == before
        assert list(tmp_path.iterdir()) == [path]  # no journal or WAL files left beside it

    def test_store_not_made_by_the_demo_is_kept(self, cli: Cli, tmp_path: Path) -> None:
        """--fresh refuses a store of this library the demo did not make, even an empty one."""
        sqlite_storage(tmp_path / "app.db").close()
        before = (tmp_path / "app.db").read_bytes()
        assert_refused(cli("demo", "--store", "app.db", "--fresh"), "'app.db'")
        assert (tmp_path / "app.db").read_bytes() == before

    def test_demo_store_holding_more_is_kept(self, cli: Cli, tmp_path: Path) -> None:
        """--fresh refuses the demo's own file once it holds events of any other stream."""
        path = tmp_path / "demo.db"
        run_demo(path, say=lambda line: None)
        storage = sqlite_storage(path)
        event = NewEvent("Happened", 1, "{}", uuid.uuid4(), datetime.now(UTC))
        storage.append([StreamAppend("order", "o-1", 0, [event])])
        storage.close()
        before = path.read_bytes()
        assert_refused(cli("demo", "--store", "demo.db", "--fresh"), "'demo.db'")
        assert path.read_bytes() == before

    @pytest.mark.parametrize("fresh", [[], ["--fresh"]], ids=["continue", "fresh"])
    def test_directory_store(self, cli: Cli, tmp_path: Path, fresh: list[str]) -> None:
        """A directory as store exits 2 with one line saying so; the directory stays."""
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "keep").write_text("x")
        done = cli("demo", "--store", "dir", *fresh)
        assert_refused(done, "'dir' is a directory")
        assert [p.name for p in (tmp_path / "dir").iterdir()] == ["keep"]

    @pytest.mark.parametrize("fresh", [[], ["--fresh"]], ids=["continue", "fresh"])
    def test_missing_parent_directory(self, cli: Cli, tmp_path: Path, fresh: list[str]) -> None:
        """A store in a missing directory exits 2 with one line naming it; nothing is created."""
        done = cli("demo", "--store", "missing/demo.db", *fresh)
        assert_refused(done, "'missing/demo.db'", "is not an existing directory")
        assert list(tmp_path.iterdir()) == []

    def test_uri_store(self, cli: Cli, tmp_path: Path) -> None:
        """A URI as store exits 2 with one line; no file appears."""
        done = cli("demo", "--store", "file:demo.db?mode=memory")
        assert_refused(done, "not a URI")
        assert list(tmp_path.iterdir()) == []

    def test_store_tables_are_the_schema(self) -> None:
        """The tables the demo expects in its file are exactly those `sqlite_schema()` creates."""
        conn = sqlite3.connect(":memory:")
        conn.executescript(sqlite_schema())
        made = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
        assert made == _STORE_TABLES

    def test_refusal_from_the_shell(self, tmp_path: Path) -> None:
        """`python -m eventsourcing_fn demo --fresh` on a text file: exit 2, one line, file kept."""
        (tmp_path / "notes.txt").write_text("these are my notes\n")
        done = subprocess.run(
            [sys.executable, "-m", "eventsourcing_fn", "demo", "--fresh", "--store", "notes.txt"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_refused(Ran(done.returncode, done.stdout, done.stderr), "'notes.txt'")
        assert (tmp_path / "notes.txt").read_text() == "these are my notes\n"
