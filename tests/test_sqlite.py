"""SQLite-specific behaviour: WAL, schema, several processes on one file, damaged files."""

from __future__ import annotations

import contextvars
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from eventsourcing_fn._errors import StorageDataError, StorageError, TransientStorageError
from eventsourcing_fn.storage import (
    Checkpoint,
    NewEvent,
    Storage,
    StreamAppend,
    _sqlite,
    sqlite_schema,
    sqlite_storage,
)
from eventsourcing_fn.storage._sqlite import _use_wal

NOBODY = 65534  # uid and gid a test run as root drops to: root may write any file


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


def bounded(work: Callable[[str], str], arg: str, *, unprivileged: bool = False) -> str:
    """`work(arg)` in a forked child: what it returned or raised; the test fails after 20 s."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_report, args=(send, unprivileged, work, arg))
    child.start()
    send.close()
    try:
        if not receive.poll(20):
            child.kill()
            pytest.fail(f"{work.__name__}({arg!r}) still running after 20 s")
        try:
            return receive.recv_bytes().decode()
        except EOFError:
            child.join(10)
            pytest.fail(f"{work.__name__}({arg!r}) died with exit code {child.exitcode}")
    finally:
        child.join(10)


def _report(send: Connection, unprivileged: bool, work: Callable[[str], str], arg: str) -> None:
    """Runs in the forked child: the outcome of `work(arg)` as text, down the pipe."""
    if unprivileged and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    try:
        outcome = work(arg)
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    send.send_bytes(outcome.encode())


def open_and_use(path: str) -> str:
    """Open a storage at `path`, append and read back: "ok" if all of it worked."""
    storage = sqlite_storage(path)
    try:
        fill(storage, 1)
        assert len(storage.read_all(0, 10)) == 2
    finally:
        storage.close()
    return "ok"


def switch_to_wal(uri: str) -> str:
    """Ask for WAL on a connection to the SQLite URI `uri`."""
    with sqlite3.connect(uri, uri=True, isolation_level=None) as conn:
        _use_wal(conn)
    return "ok"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged user can reach and write (tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="esfn-"))
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path)


class TestPaths:
    @pytest.mark.parametrize("name", ["", ":memory:"])
    def test_private_database_refused(self, name: str) -> None:
        """ "" and ":memory:" raise ValueError at once, pointing to memory_storage()."""
        outcome = bounded(open_and_use, name)
        assert outcome.startswith(f"ValueError: sqlite_storage({name!r})")
        assert "memory_storage()" in outcome

    @pytest.mark.parametrize(
        "uri",
        [
            "file:x.db",
            "file:x.db?immutable=1",
            "file:x.db?nolock=1",
            "file:x.db?mode=ro",
            "file:x.db?mode=memory",
            "file::memory:",
            "FILE:x.db?vfs=unix-none",
        ],
    )
    def test_uri_refused(self, uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A name starting with `file:` raises ValueError at once, naming it; no file appears."""
        monkeypatch.chdir(tmp_path)
        outcome = bounded(open_and_use, uri)
        assert outcome.startswith(f"ValueError: sqlite_storage({uri!r}): takes a file path")
        assert list(tmp_path.iterdir()) == []

    def test_uri_refused_as_path_object(self) -> None:
        """A PathLike spelling a URI is refused just as the string is."""
        with pytest.raises(ValueError, match="not a URI"):
            sqlite_storage(Path("file:x.db"))

    def test_file_named_like_a_uri_by_absolute_path(self, tmp_path: Path) -> None:
        """The absolute path of a file named like a URI opens that very file."""
        path = tmp_path / "file:x.db?immutable=1"
        assert bounded(open_and_use, str(path)) == "ok"
        assert [p.name for p in tmp_path.iterdir()] == [path.name]

    def test_question_mark_is_part_of_the_name(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In a name not starting with `file:`, `?nolock=1` is part of the file's name."""
        monkeypatch.chdir(tmp_path)
        assert bounded(open_and_use, "x.db?nolock=1") == "ok"
        assert [p.name for p in tmp_path.iterdir()] == ["x.db?nolock=1"]

    def test_directory_refused(self, tmp_path: Path) -> None:
        """A directory raises StorageError at once, naming it."""
        path = tmp_path / "dir"
        path.mkdir()
        outcome = bounded(open_and_use, str(path))
        assert (
            outcome
            == f"StorageError: SQLite database {str(path)!r}: is a directory, not a database file"
        )

    def test_missing_directory_refused(self, tmp_path: Path) -> None:
        """A path in a missing directory raises StorageError naming it, and creates nothing."""
        path = tmp_path / "missing" / "db"
        outcome = bounded(open_and_use, str(path))
        assert outcome.startswith(f"StorageError: SQLite database {str(path)!r}:")
        assert "is not an existing directory" in outcome
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("journal", ["wal", "delete"])
    def test_read_only_file_refused(self, shared_dir: Path, journal: str) -> None:
        """A file the store may only read raises StorageError at construction, unchanged."""
        path = shared_dir / "db"
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA journal_mode = {journal}")
            conn.executescript(sqlite_schema())
        conn.close()
        if os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)
        path.chmod(0o444)
        before = path.read_bytes()
        outcome = bounded(open_and_use, str(path), unprivileged=True)
        assert outcome.startswith(f"StorageError: SQLite database {str(path)!r}: opening failed")
        assert "readonly" in outcome
        assert path.read_bytes() == before

    def test_relative_path_fixed_at_construction(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative path keeps naming the file it named at construction after a chdir."""
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        monkeypatch.chdir(tmp_path / "a")
        storage = sqlite_storage("db")
        monkeypatch.chdir(tmp_path / "b")
        thread = threading.Thread(target=fill, args=(storage, 1))  # opens a new connection
        thread.start()
        thread.join()
        storage.close()
        assert list((tmp_path / "b").iterdir()) == []
        again = sqlite_storage(tmp_path / "a" / "db")
        assert len(again.read_all(0, 10)) == 2
        again.close()

    def test_wal_refused_by_sqlite_fails_at_once(self, tmp_path: Path) -> None:
        """A file SQLite keeps out of WAL fails at once, never asking again and again."""
        outcome = bounded(switch_to_wal, f"{tmp_path.as_uri()}/db?nolock=1")
        assert outcome.startswith("OperationalError: the file stays in journal mode 'delete'")


class TestDamagedFiles:
    def test_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not a SQLite database is a StorageDataError at construction, naming it."""
        path = tmp_path / "notes.txt"
        path.write_text("these are not the tables you are looking for\n" * 100)
        with pytest.raises(StorageDataError, match=r"notes\.txt"):
            sqlite_storage(path)

    @pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9])
    def test_truncated_database(self, tmp_path: Path, fraction: float) -> None:
        """A database file cut short is a StorageDataError at construction, naming the path."""
        storage = sqlite_storage(tmp_path / "good.db")
        fill(storage, 200)
        storage.close()  # checkpoints the WAL into the main file
        path = tmp_path / "cut.db"
        shutil.copy(tmp_path / "good.db", path)
        with path.open("r+b") as f:
            f.truncate(int(path.stat().st_size * fraction))
        with pytest.raises(StorageDataError, match=r"cut\.db"):
            sqlite_storage(path)


class TestErrorKinds:
    @pytest.fixture
    def impatient(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
        """A storage that waits 0.1 s, not 30 s, for another writer's lock."""
        monkeypatch.setattr(_sqlite, "_BUSY_TIMEOUT", 0.1)
        storage = sqlite_storage(tmp_path / "db")
        yield storage
        storage.close()

    def test_write_while_locked_is_transient(self, tmp_path: Path, impatient: Storage) -> None:
        """A write still locked out after the busy timeout is a TransientStorageError."""
        holder = sqlite3.connect(tmp_path / "db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer, holding the file's write lock
        try:
            with pytest.raises(TransientStorageError, match="database is locked"):
                impatient.append([StreamAppend("account", "s", 0, [new_event()])])
            with (
                pytest.raises(TransientStorageError, match="beginning a transaction"),
                impatient.transaction(),
            ):
                pass
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        impatient.append([StreamAppend("account", "s", 0, [new_event()])])  # a retry passes
        assert [row.version for row in impatient.read_stream("account", "s", 0, None)] == [1]

    @pytest.mark.parametrize(
        ("column", "value"),
        [("event_id", "not-a-uuid"), ("recorded_at", "yesterday"), ("event_id", 42)],
    )
    def test_corrupt_row_is_a_data_error(self, tmp_path: Path, column: str, value: object) -> None:
        """A row whose id or timestamp cannot be read is a StorageDataError naming the row."""
        storage = sqlite_storage(tmp_path / "db")
        rows = storage.append([StreamAppend("account", "s", 0, [new_event(), new_event()])])
        with sqlite3.connect(tmp_path / "db") as raw:  # past the store, as damage would
            raw.execute(  # column names come from the parameters above, never from input
                f"UPDATE events SET {column} = ? WHERE position = ?", (value, rows[1].position)
            )
        raw.close()
        where = f"stream account/'s' version 2 at position {rows[1].position}"
        with pytest.raises(StorageDataError, match=where):
            storage.read_all(0, 10)
        with pytest.raises(StorageDataError, match=where):
            storage.read_stream("account", "s", 0, None)
        assert storage.read_stream("account", "s", 0, 1) == rows[:1]
        storage.close()


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


class TestAppend:
    def test_append_larger_than_one_insert(self, tmp_path: Path) -> None:
        """An append of more rows than one INSERT statement takes lands whole, in order."""
        storage = sqlite_storage(tmp_path / "db")
        fill(storage, 1)
        big = [new_event(data=f'{{"n": {n}}}') for n in range(200)]
        rows = storage.append(
            [
                StreamAppend("account", "big", 0, big[:150]),
                StreamAppend("account", "s0", 2, big[150:]),
            ]
        )
        stored = storage.read_all(0, 1000)
        assert [r.position for r in stored] == list(range(1, 203))
        assert stored[2:] == list(rows)
        assert [r.data for r in rows] == [e.data for e in big]
        assert [r.version for r in storage.read_stream("account", "big", 0, None)] == list(
            range(1, 151)
        )
        assert [r.version for r in storage.read_stream("account", "s0", 0, None)][-1] == 52
        storage.close()


def one_event(storage: Storage, stream_id: str) -> int:
    """Append one event to a new stream; its position."""
    (row,) = storage.append([StreamAppend("account", stream_id, 0, [new_event()])])
    return row.position


def holding_a_transaction(storage: Storage, until: threading.Event) -> threading.Thread:
    """A thread inside `storage.transaction()` until `until` is set (at most 20 s), started
    and holding it when this returns."""
    inside = threading.Event()

    def hold() -> None:
        with storage.transaction():
            one_event(storage, "held")
            inside.set()
            until.wait(20)

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10), "the holding thread did not begin its transaction"
    return thread


class TestThreads:
    def test_threads_writing_through_one_storage_take_turns(self, tmp_path: Path) -> None:
        """Ten threads appending at once progress alike: none is left behind the others."""
        storage = sqlite_storage(tmp_path / "db")
        threads, appends = 10, 20
        done = [0] * threads
        when_first_finished: list[list[int]] = []
        guard = threading.Lock()
        start = threading.Barrier(threads)

        def work(n: int) -> None:
            start.wait(10)
            for i in range(appends):
                one_event(storage, f"{n}-{i}")
                done[n] += 1
            with guard:
                if not when_first_finished:
                    when_first_finished.append(list(done))

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert done == [appends] * threads
        assert min(when_first_finished[0]) >= appends // 2, when_first_finished
        assert len(storage.read_all(0, threads * appends + 1)) == threads * appends
        storage.close()

    def test_waiting_past_the_busy_timeout_for_another_thread_is_transient(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Waiting past the busy timeout for another thread's transaction is transient."""
        monkeypatch.setattr(_sqlite, "_BUSY_TIMEOUT", 0.1)
        storage = sqlite_storage(tmp_path / "db")
        release = threading.Event()
        holder = holding_a_transaction(storage, release)
        try:
            with pytest.raises(TransientStorageError, match="other threads"):
                one_event(storage, "late")
            with (
                pytest.raises(TransientStorageError, match="beginning a transaction"),
                storage.transaction(),
            ):
                pass
        finally:
            release.set()
            holder.join(10)
        one_event(storage, "late")
        assert [r.stream_id for r in storage.read_all(0, 10)] == ["held", "late"]
        storage.close()

    def test_write_from_another_context_of_the_writing_thread_fails_at_once(
        self, tmp_path: Path
    ) -> None:
        """A transaction's thread writing from outside the transaction fails, never waits."""
        storage = sqlite_storage(tmp_path / "db")
        with storage.transaction():
            one_event(storage, "inside")
            with pytest.raises(StorageError, match="within a transaction") as info:
                contextvars.Context().run(one_event, storage, "outside")
            assert not isinstance(info.value, TransientStorageError)
        assert [r.stream_id for r in storage.read_all(0, 10)] == ["inside"]
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
