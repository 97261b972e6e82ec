"""SQLite-specific behaviour: WAL, schema, several processes on one file, damaged files."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from eventsourcing_fn._errors import StorageError
from eventsourcing_fn.storage import (
    Checkpoint,
    NewEvent,
    Storage,
    StreamAppend,
    sqlite_schema,
    sqlite_storage,
)


def new_event(**overrides: object) -> NewEvent:
    """A serialized event with fresh id and timestamp."""
    fields: dict[str, object] = {
        "type": "Happened",
        "schema_version": 1,
        "data": "{}",
        "event_id": uuid.uuid4(),
        "recorded_at": datetime.now(UTC),
    }
    fields.update(overrides)
    return NewEvent(**fields)  # type: ignore[arg-type]


def fill(storage: Storage, streams: int, per_stream: int = 2) -> None:
    """Append `per_stream` events to each of `streams` streams."""
    for i in range(streams):
        events = [new_event(data=f'{{"i": {i}, "pad": "{"x" * 200}"}}') for _ in range(per_stream)]
        storage.append([StreamAppend("account", f"s{i}", 0, events)])


class TestFile:
    def test_wal_mode(self, tmp_path: Path) -> None:
        """The database file is in WAL mode."""
        sqlite_storage(tmp_path / "db").close()
        with sqlite3.connect(tmp_path / "db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_schema_idempotent(self, tmp_path: Path) -> None:
        """Opening an existing database again keeps its schema and rows."""
        first = sqlite_storage(tmp_path / "db")
        fill(first, 3)
        second = sqlite_storage(tmp_path / "db")
        assert len(list(second.iter_all())) == 6
        first.close()
        second.close()

    def test_plain_sqlite_can_run_the_schema(self, tmp_path: Path) -> None:
        """`sqlite_schema()` run twice by plain sqlite3 makes a database the storage uses."""
        with sqlite3.connect(tmp_path / "db") as conn:
            conn.executescript(sqlite_schema())
            conn.executescript(sqlite_schema())
        storage = sqlite_storage(tmp_path / "db")
        fill(storage, 1)
        assert [r.version for r in storage.read_stream("account", "s0", 0, None)] == [1, 2]
        storage.close()

    def test_path_like_accepted(self, tmp_path: Path) -> None:
        """Both str and PathLike paths open the same file."""
        fill(a := sqlite_storage(tmp_path / "db"), 1)
        b = sqlite_storage(str(tmp_path / "db"))
        assert len(b.read_all(0, 10)) == 2
        a.close()
        b.close()


class TestDamagedFiles:
    def test_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not a SQLite database fails at construction, naming the path."""
        path = tmp_path / "notes.txt"
        path.write_text("these are not the tables you are looking for\n" * 100)
        with pytest.raises(StorageError, match=r"notes\.txt"):
            sqlite_storage(path)

    @pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9])
    def test_truncated_database(self, tmp_path: Path, fraction: float) -> None:
        """A database file cut short fails at construction, naming the path."""
        storage = sqlite_storage(tmp_path / "good.db")
        fill(storage, 200)
        storage.close()  # checkpoints the WAL into the main file
        path = tmp_path / "cut.db"
        shutil.copy(tmp_path / "good.db", path)
        with path.open("r+b") as f:
            f.truncate(int(path.stat().st_size * fraction))
        with pytest.raises(StorageError, match=r"cut\.db"):
            sqlite_storage(path)


class TestFaults:
    def test_failed_append_names_path_and_stream(self, tmp_path: Path) -> None:
        """A sqlite3 error in append is a StorageError naming the file and stream; no rows."""
        storage = sqlite_storage(tmp_path / "db")
        bad = new_event(data=object())  # not bindable: sqlite3 refuses it mid-insert
        with pytest.raises(StorageError, match=r"db.*account/'s1'"):
            storage.append([StreamAppend("account", "s1", 0, [new_event(), bad])])
        assert storage.read_all(0, 10) == []
        storage.close()

    def test_caught_fault_still_rolls_back(self, tmp_path: Path) -> None:
        """A storage fault swallowed inside a transaction makes the whole transaction roll back."""
        storage = sqlite_storage(tmp_path / "db")

        def swallow_a_fault() -> None:
            with storage.transaction():
                fill(storage, 1)
                with pytest.raises(StorageError):
                    storage.append([StreamAppend("account", "x", 0, [new_event(data=object())])])

        with pytest.raises(StorageError, match="rolled back"):
            swallow_a_fault()
        assert storage.read_all(0, 10) == []
        storage.close()

    def test_use_after_close(self, tmp_path: Path) -> None:
        """A closed storage raises StorageError naming the path."""
        storage = sqlite_storage(tmp_path / "db")
        storage.close()
        with pytest.raises(StorageError, match="db"):
            storage.read_all(0, 1)

    def test_close_closes_every_thread_connection(self, tmp_path: Path) -> None:
        """After close, connections from all threads are closed: SQLite removes the WAL file."""
        storage = sqlite_storage(tmp_path / "db")
        thread = threading.Thread(target=fill, args=(storage, 2))
        thread.start()
        thread.join()
        storage.read_all(0, 1)
        storage.close()
        assert not (tmp_path / "db-wal").exists()

    def test_non_utc_timestamp_stored_as_utc(self, tmp_path: Path) -> None:
        """An aware non-UTC recorded_at reads back as the same instant in UTC."""
        storage = sqlite_storage(tmp_path / "db")
        at = datetime(2024, 6, 1, 12, 0, 0, 7, tzinfo=timezone(timedelta(hours=2)))
        storage.append([StreamAppend("account", "s", 0, [new_event(recorded_at=at)])])
        (row,) = storage.read_all(0, 1)
        assert row.recorded_at == at
        assert row.recorded_at.tzinfo is UTC
        storage.close()


CHILD = """
import os, sys, time, uuid
from datetime import UTC, datetime
from eventsourcing_fn.storage import NewEvent, StreamAppend, sqlite_storage

path, name, go, appends = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
open(f"{go}.{name}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
storage = sqlite_storage(path)  # the file is new: every child creates the schema at once

def ev():
    return NewEvent("Happened", 1, "{}", uuid.uuid4(), datetime.now(UTC))

for i in range(appends):
    storage.append([
        StreamAppend("t", f"{name}-{i}", 0, [ev(), ev()]),
        StreamAppend("t", "shared", None, [ev()]),
    ])
storage.close()
"""


class TestProcesses:
    def test_concurrent_processes_lose_nothing(self, tmp_path: Path) -> None:
        """Processes appending to one new file at once lose no event; positions stay unique."""
        path, go, children, appends = tmp_path / "db", tmp_path / "go", 3, 200
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), f"p{n}", str(go), str(appends)]
            )
            for n in range(children)
        ]
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"go.p{n}").exists() for n in range(children)):
            assert time.monotonic() < deadline, "children did not start"
            time.sleep(0.005)
        go.touch()
        assert [proc.wait(timeout=60) for proc in procs] == [0] * children
        storage = sqlite_storage(path)
        rows = list(storage.iter_all())
        positions = [r.position for r in rows]
        assert len(rows) == children * appends * 3
        assert positions == sorted(set(positions))
        shared = storage.read_stream("t", "shared", 0, None)
        assert [r.version for r in shared] == list(range(1, children * appends + 1))
        for n in range(children):
            for i in range(appends):
                assert len(storage.read_stream("t", f"p{n}-{i}", 0, None)) == 2
        storage.close()

    def test_storage_survives_fork(self, tmp_path: Path) -> None:
        """A storage opened before fork() works in the child and, afterwards, in the parent."""
        storage = sqlite_storage(tmp_path / "db")
        fill(storage, 1)
        child = multiprocessing.get_context("fork").Process(target=_child_writes, args=(storage,))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        storage.write_checkpoint(Checkpoint("parent", 1))
        assert storage.read_checkpoint("child") == Checkpoint("child", 2)
        assert len(storage.read_all(0, 10)) == 2
        storage.close()


def _child_writes(storage: Storage) -> None:
    """Runs in a forked child: write through the inherited storage."""
    storage.write_checkpoint(Checkpoint("child", 2))
