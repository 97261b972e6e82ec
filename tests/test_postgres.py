"""PostgreSQL backend: gap safety under concurrent writers, schemas, pools, faults and locks."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import POSTGRES_URL, Make, drop_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsourcing_fn._errors import StorageError, TransientStorageError
from eventsourcing_fn.storage import (
    Checkpoint,
    NewEvent,
    OrderConflict,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    VersionConflict,
    _postgres,
    postgres_schema,
    postgres_storage,
)

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.postgres


def event(n: int = 0) -> NewEvent:
    return NewEvent("Ticked", 1, f'{{"n": {n}}}', uuid.uuid4(), datetime.now(UTC))


def event_with(**changes: Any) -> NewEvent:
    return event()._replace(**changes)


def batch(stream_id: str, expected: int | None, count: int = 1) -> StreamAppend:
    return StreamAppend("clock", stream_id, expected, [event(i) for i in range(count)])


def read_log(storage: Storage, count: int, after: int = 0) -> list[StoredEvent]:
    """The log after `after` once it holds `count` rows (or 10 s have passed).

    Any other session's open write transaction in the cluster holds `read_all` back until it
    ends (the price of gap safety), so a test waits for a commit to show rather than assume it.
    """
    deadline = time.monotonic() + 10
    while True:
        rows = list(storage.iter_all(after, 1000))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.01)


def sql(query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def terminate(application_name: str) -> int:
    """End every session of `application_name` from outside, as a server restart would; how many."""
    pids = [
        pid
        for (pid,) in sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", application_name
        )
    ]
    sql("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", pids)
    deadline = time.monotonic() + 10
    while sql("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", pids):
        assert time.monotonic() < deadline, "terminated sessions did not go away"
        time.sleep(0.01)
    return len(pids)


class TestGapSafety:
    def test_tailing_readers_see_every_commit_once_in_one_order(self, make: Make) -> None:
        """8 writers commit out of position order; 2 tailing readers each see all, once, alike."""
        committed: list[StoredEvent] = []
        commit_order: list[int] = []  # first position of each transaction, in commit order
        guard = threading.Lock()
        writers_done = threading.Event()
        deadline = time.monotonic() + 2.0

        def write(w: int) -> None:
            storage = make()  # each writer its own storage and pool, like separate processes
            rng = random.Random(w)
            i = 0
            while time.monotonic() < deadline:
                with storage.transaction():
                    rows = storage.append([batch(f"w{w}-{i % 3}", None, rng.randint(1, 3))])
                    time.sleep(rng.random() * 0.004)  # hold the xid open: commits interleave
                with guard:
                    committed.extend(rows)
                    commit_order.append(rows[0].position)
                i += 1

        def read(seen: list[StoredEvent]) -> None:
            storage = make()
            after = 0
            drained_by = None
            while True:
                rows = storage.read_all(after, 50)
                seen.extend(rows)
                if rows:
                    after = rows[-1].position
                    continue
                if writers_done.is_set():
                    # Done once every commit is seen; an event skipped below `after` never
                    # would be, so give up after a while (other sessions can delay the tail).
                    drained_by = drained_by or time.monotonic() + 10
                    if len(seen) >= len(committed) or time.monotonic() > drained_by:
                        return
                time.sleep(0.001)

        seen: tuple[list[StoredEvent], list[StoredEvent]] = ([], [])
        writers = [threading.Thread(target=write, args=(w,)) for w in range(8)]
        readers = [threading.Thread(target=read, args=(s,)) for s in seen]
        for t in writers + readers:
            t.start()
        for t in writers:
            t.join()
        writers_done.set()
        for t in readers:
            t.join(timeout=30)

        expected_ids = sorted(str(row.event_id) for row in committed)
        for rows in seen:
            ids = [str(row.event_id) for row in rows]
            assert len(ids) == len(set(ids)), "an event was delivered twice"
            assert sorted(ids) == expected_ids, "an event was missed"
            positions = [row.position for row in rows]
            assert positions == sorted(set(positions)), "positions not strictly increasing"
        assert seen[0] == seen[1]
        assert commit_order != sorted(commit_order), "no out-of-order commit: hazard not exercised"
        assert {r.event_id: r.position for r in committed} == {
            r.event_id: r.position for r in seen[0]
        }

    def test_open_writer_holds_back_later_commits(self, make: Make) -> None:
        """A later transaction's commit stays unread while an earlier one is open; then both."""
        slow, fast, reader = make(), make(), make()
        entered, release = threading.Event(), threading.Event()

        def hold_open() -> None:
            with slow.transaction():
                slow.append([batch("slow", 0)])
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=hold_open)
        holder.start()
        entered.wait(10)
        (later,) = fast.append([batch("fast", 0)])
        assert reader.read_stream("clock", "fast", 0, None) == [later]
        assert [r for r in reader.read_all(0, 10) if r.stream_id in ("slow", "fast")] == []
        release.set()
        holder.join()
        rows = read_log(reader, 2)
        assert [r.stream_id for r in rows] == ["slow", "fast"]
        assert rows[0].position < rows[1].position == later.position

    def test_own_rows_are_read_unless_an_older_writer_is_open(self, make: Make) -> None:
        """Inside a transaction read_all sees its own appends, but never past an older writer."""
        storage, older = make(), make()
        with storage.transaction():
            mine = storage.append([batch("mine", 0)])
            assert read_log(storage, 1) == mine  # once no other session's older writer is open
        entered, release = threading.Event(), threading.Event()

        def hold_open() -> None:
            with older.transaction():
                older.append([batch("older", 0)])
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=hold_open)
        holder.start()
        entered.wait(10)
        with storage.transaction():
            storage.append([batch("mine", 1)])
            assert storage.read_all(mine[-1].position, 10) == []
        release.set()
        holder.join()
        later = read_log(storage, 2, after=mine[-1].position)
        assert [(r.stream_id, r.version) for r in later] == [("older", 1), ("mine", 2)]


def other_database() -> str:
    """The conninfo of a second database on the server, made once."""
    if not sql("SELECT 1 FROM pg_database WHERE datname = 'test_other'"):
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            sql("CREATE DATABASE test_other")
    return POSTGRES_URL.rsplit("/", 1)[0] + "/test_other"


@contextlib.contextmanager
def idle_writer(conninfo: str) -> Iterator[None]:
    """A session holding a write transaction open (idle in transaction) for the block."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TEMP TABLE held (x int)")
        conn.execute("INSERT INTO held VALUES (1)")  # an xid, kept until the block ends
        yield
        conn.rollback()


class TestLiveness:
    @pytest.mark.parametrize("where", ["another database", "another schema's store"])
    def test_open_write_transactions_elsewhere_do_not_hold_readers_back(
        self, make: Make, where: str, pg_schema: str
    ) -> None:
        """Only this store's own writers can delay its readers: an idle writer elsewhere can't."""
        storage = make()
        if where == "another database":
            held = idle_writer(other_database())
        else:
            other = make(schema=f"{pg_schema}_x")

            @contextlib.contextmanager
            def other_store_open() -> Iterator[None]:
                with other.transaction():
                    other.append([batch("held", None)])  # its appender lock and an xid
                    yield

            held = other_store_open()
        try:
            with held:
                stored = storage.append([batch("s", 0, 3)])
                started = time.monotonic()
                rows = read_log(storage, 3)
                assert [r.position for r in rows] == [r.position for r in stored]
                assert time.monotonic() - started < 1
        finally:
            if where != "another database":
                drop_schema(f"{pg_schema}_x")

    def test_own_writers_still_hold_readers_back(self, make: Make) -> None:
        """A writer of this store with an open transaction holds readers below its events."""
        first, second = make(), make()
        with first.transaction():
            first.append([batch("early", 0)])  # the older xid, not committed yet
            second.append([batch("late", 0)])  # committed, but after the open one's xid
            assert list(second.iter_all()) == []
        assert [r.stream_id for r in read_log(second, 2)] == ["early", "late"]

    def test_a_writer_ending_between_snapshot_and_lock_scan_is_not_skipped(
        self, make: Make
    ) -> None:
        """An appender that commits after the reader's snapshot, before its lock scan, is not
        taken for a non-appender: the reader stops below it rather than read past its events."""
        reader, slow, fast = make(), make(), make()
        queries = reader.read_all.__self__.q  # type: ignore[attr-defined]
        # Widen the window on purpose: the lock scan starts 0.5 s after the snapshot.
        queries["all"] = queries["all"].replace(
            "FROM pg_locks WHERE", "FROM pg_locks, (SELECT pg_sleep(0.5)) AS d WHERE", 1
        )
        appended, reading = threading.Event(), threading.Event()

        def write_slowly() -> None:
            with slow.transaction():
                slow.append([batch("older", 0)])  # the older xid
                appended.set()
                reading.wait(10)
                time.sleep(0.2)  # commit inside the reader's window

        thread = threading.Thread(target=write_slowly)
        thread.start()
        assert appended.wait(10)
        fast.append([batch("younger", 0)])  # committed before the reader's snapshot
        reading.set()
        seen = reader.read_all(0, 100)
        thread.join()
        # Reading "younger" now would put the cursor past "older", committed but unseen.
        assert seen == []
        assert [r.stream_id for r in reader.read_all(0, 100)] == ["older", "younger"]


class TestPositions:
    def test_positions_increase_and_read_all_pages_consistently(self, make: Make) -> None:
        """Append returns final positions; read_all pages through them in that order."""
        storage = make()
        appended: list[StoredEvent] = []
        for i in range(6):
            appended += storage.append([batch(f"s{i % 2}", None, 2), batch(f"t{i}", 0, 1)])
        positions = [row.position for row in appended]
        assert positions == sorted(set(positions))
        assert read_log(storage, len(appended)) == appended
        assert list(storage.iter_all(0, 4)) == appended
        assert storage.read_all(positions[4], 3) == appended[5:8]
        assert storage.read_all(positions[-1], 10) == []

    def test_rows_come_back_as_appended(self, make: Make) -> None:
        """JSON text, metadata, ids and aware UTC timestamps round-trip unchanged."""
        storage = make()
        new = NewEvent(
            "Ticked",
            2,
            '{"b":1,  "a": [1.50, "\\u00e9"]}',
            uuid.uuid4(),
            datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
            "ann",
            "corr",
            "cause",
            '{"k": "v"}',
        )
        (row,) = storage.append([StreamAppend("clock", "x", 0, [new])])
        (read,) = storage.read_stream("clock", "x", 0, None)
        assert read == row
        assert (read.data, read.metadata) == (new.data, new.metadata)
        assert read.recorded_at == new.recorded_at
        assert read.recorded_at.tzinfo is UTC

    def test_documents_come_in_code_point_order(self, make: Make) -> None:
        """all_documents sorts keys as Python does, whatever the database's collation."""
        storage = make()
        keys = ["b", "B", "a", "é", "_", "a b", "ab", "Z"]
        for key in keys:
            storage.put_document("docs", key, "{}")
        assert [key for key, _ in storage.all_documents("docs")] == sorted(keys)

    def test_too_many_events_in_one_transaction(
        self, make: Make, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """More events in one transaction than positions leave room for is a StorageError."""
        monkeypatch.setattr(_postgres, "_SHIFT", 8)
        storage = make()

        def overfill() -> None:
            with storage.transaction():
                storage.append([batch("a", 0, 5)])
                storage.append([batch("b", 0, 3)])

        with pytest.raises(StorageError, match="more than 7 events"):
            overfill()
        assert storage.read_all(0, 10) == []


class TestAppend:
    def test_conflict_on_second_stream_leaves_nothing(self, make: Make) -> None:
        """A stale expected version on one stream appends nothing of the others."""
        storage = make()
        storage.append([batch("b", 0)])
        with pytest.raises(VersionConflict) as info:
            storage.append([batch("a", 0, 2), batch("b", 0)])
        assert (info.value.stream_id, info.value.expected, info.value.actual) == ("b", 0, 1)
        with pytest.raises(VersionConflict):
            storage.append([batch("a", 0, 2), batch("b", 5)])
        assert storage.read_stream("clock", "a", 0, None) == []

    def test_conflict_inside_transaction_keeps_it_usable(self, make: Make) -> None:
        """After a conflict inside a transaction, later appends in it still commit."""
        storage = make()
        storage.append([batch("a", 0)])
        with storage.transaction():
            with pytest.raises(VersionConflict):
                storage.append([batch("b", 0), batch("a", 0)])
            storage.append([batch("a", 1)])
        assert [r.version for r in storage.read_stream("clock", "a", 0, None)] == [1, 2]
        assert storage.read_stream("clock", "b", 0, None) == []

    def test_racing_appends_at_any_version_all_land(self, make: Make) -> None:
        """Concurrent appends with no expected version retry until each lands after the end."""
        storage = make()

        def write() -> None:
            for _ in range(10):
                storage.append([batch("shared", None)])

        threads = [threading.Thread(target=write) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        versions = [r.version for r in storage.read_stream("clock", "shared", 0, None)]
        assert versions == list(range(1, 61))

    @pytest.mark.skipif(
        psycopg.pq.version() < 140000, reason="libpq before 14 has no pipeline mode"
    )
    def test_append_outside_a_transaction_is_two_round_trips(
        self, make: Make, tmp_path: Path
    ) -> None:
        """An append on its own waits for the server twice: BEGIN with the INSERT, then COMMIT."""
        with psycopg_pool.ConnectionPool(
            POSTGRES_URL, min_size=1, max_size=1, kwargs={"autocommit": True}
        ) as pool:
            storage = make(pool)
            for n in range(10):  # past the driver's preparing of statements it sees repeated
                storage.append([batch(f"warm-{n}", 0)])
            with pool.connection() as conn:  # the one connection the storage uses
                pass
            trace = tmp_path / "protocol.log"
            with trace.open("w") as out:
                conn.pgconn.trace(out.fileno())
                conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
                try:
                    storage.append([batch("a", 0, 3)])
                finally:
                    conn.pgconn.untrace()
            assert [r.version for r in storage.read_stream("clock", "a", 0, None)] == [1, 2, 3]
        sent = [line.split("\t")[2] for line in trace.read_text().splitlines() if line[:2] == "F\t"]
        assert sent.count("Sync") + sent.count("Query") == 2, sent

    def test_first_write_refused_by_the_server(self, make: Make) -> None:
        """A first write the server refuses is a StorageError; its transaction keeps nothing."""
        storage = make()
        with pytest.raises(StorageError, match="writing document"), storage.transaction():
            storage.put_document("p", "k", "{not json")
        with storage.transaction():
            with pytest.raises(StorageError), storage.savepoint():
                storage.put_document("p", "k", "{not json")
            storage.append([batch("a", 0)])
        assert storage.get_document("p", "k") is None
        assert [r.stream_id for r in read_log(storage, 1)] == ["a"]


class TestStreamOrder:
    def test_append_after_a_younger_transactions_commit_is_an_order_conflict(
        self, make: Make
    ) -> None:
        """A transaction may not append after a version that a younger one committed."""
        older, younger = make(), make()
        older.append([batch("s", 0)])
        with older.transaction():
            older.append([batch("x", 0)])  # the older transaction now has its xid
            writer = threading.Thread(target=lambda: younger.append([batch("s", 1)]))
            writer.start()
            writer.join()
            with pytest.raises(OrderConflict) as info:
                older.append([batch("s", 2)])
            assert (info.value.stream_id, info.value.expected, info.value.actual) == ("s", 2, 2)
            assert isinstance(info.value, VersionConflict)
            with pytest.raises(OrderConflict):
                older.append([batch("t", 0), batch("s", None)])  # at ANY too, and no loop
        older.append([batch("s", 2)])  # a new transaction comes after the younger one
        rows = read_log(older, 4)
        assert [r.version for r in rows if r.stream_id == "s"] == [1, 2, 3]
        assert [r.stream_id for r in rows if r.stream_id != "s"] == ["x"]  # `t` was undone

    def test_stale_version_wins_over_order(self, make: Make) -> None:
        """When the expected version is stale too, the conflict is a plain VersionConflict."""
        older, younger = make(), make()
        with older.transaction():
            older.append([batch("x", 0)])
            writer = threading.Thread(target=lambda: younger.append([batch("s", 0, 2)]))
            writer.start()
            writer.join()
            with pytest.raises(VersionConflict) as info:
                older.append([batch("s", 1)])
            assert type(info.value) is VersionConflict
            assert (info.value.expected, info.value.actual) == (1, 2)


class TestSchema:
    def test_tables_live_in_their_schema_and_schemas_are_isolated(
        self, make: Make, pg_schema: str
    ) -> None:
        """Each storage keeps its tables in its own schema and sees nothing of another's."""
        other = f"{pg_schema}_b"
        try:
            one, two = make(), make(schema=other)
            one.append([batch("a", 0)])
            assert two.read_all(0, 10) == []
            assert two.read_stream("clock", "a", 0, None) == []
            tables = sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " ORDER BY 1",
                pg_schema,
            )
            assert tables == [
                ("checkpoints",),
                ("documents",),
                ("events",),
                ("leases",),
                ("snapshots",),
            ]
        finally:
            two.close()
            drop_schema(other)

    def test_exported_ddl_runs_as_is(self, make: Make, pg_schema: str) -> None:
        """postgres_schema() is plain SQL that runs twice over and leaves a working store."""
        ddl = postgres_schema(pg_schema)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(ddl.encode())
            conn.execute(ddl.encode())
        storage = make()
        storage.append([batch("a", 0)])
        assert len(read_log(storage, 1)) == 1
        assert '"eventsourcing".' in postgres_schema()

    def test_concurrent_first_use_creates_the_schema_once(self, make: Make) -> None:
        """Four storages racing to create the same new schema all succeed."""
        barrier = threading.Barrier(4)
        made: list[Storage] = []
        errors: list[BaseException] = []

        def first_use() -> None:
            barrier.wait()
            try:
                made.append(make())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=first_use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        made[0].append([batch("a", 0)])
        assert [len(read_log(s, 1)) for s in made] == [1, 1, 1, 1]

    def test_import_works_without_psycopg(self) -> None:
        """Without the postgres extra the package imports; postgres_storage says what to install."""
        code = (
            "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None\n"
            "import eventsourcing_fn.storage as s\n"
            "try:\n    s.postgres_storage('postgresql://x')\n"
            "except ImportError as exc:\n    print(exc)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert "eventsourcing_fn[postgres]" in out

    @pytest.mark.parametrize(
        "schema",
        ["", "information_schema", "pg_catalog", "pg_mine", "PG_Mine", "a\0b", "é" * 32, "x" * 64],
    )
    def test_unusable_schema_names_are_refused_before_connecting(self, schema: str) -> None:
        """Reserved, empty, NUL-holding or over-63-byte schema names are a ValueError at once."""
        nowhere = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"  # never reached
        with pytest.raises(ValueError, match=r"postgres_storage\(schema="):
            postgres_storage(nowhere, schema=schema)
        with pytest.raises(ValueError, match=r"postgres_schema\(schema="):
            postgres_schema(schema)

    def test_schema_name_must_be_a_str(self) -> None:
        """A schema name that is not a str is a TypeError naming the argument."""
        with pytest.raises(TypeError, match=r"schema=b'bank'"):
            postgres_storage(POSTGRES_URL, schema=b"bank")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"schema=None"):
            postgres_schema(None)  # type: ignore[arg-type]

    def test_longest_schema_name_works(self, make: Make, pg_schema: str) -> None:
        """A schema name of exactly 63 bytes is kept whole."""
        name = pg_schema + "é" * ((63 - len(pg_schema)) // 2)
        name += "x" * (63 - len(name.encode()))
        try:
            make(schema=name).append([batch("a", 0)])
            assert sql("SELECT count(*) FROM pg_namespace WHERE nspname = %s", name) == [(1,)]
        finally:
            drop_schema(name)

    @pytest.mark.parametrize("suffix", ["%b", "%s", "%%", "%(x)s", '"%'])
    def test_percent_in_schema_name_works_end_to_end(
        self, make: Make, pg_schema: str, suffix: str
    ) -> None:
        """A schema name holding % (like a placeholder) stores and reads everything."""
        name = pg_schema + suffix
        try:
            storage = make(schema=name, lock_streams=True)
            with storage.transaction():
                rows = storage.append([batch("a", 0, 2)])
                storage.lock_stream("clock", "a")
                storage.write_checkpoint(Checkpoint("p", rows[-1].position, "{}"))
            storage.write_snapshot(StoredSnapshot("clock", "a", 2, 1, "{}"))
            storage.put_document("docs", "k", '{"v": 1}')
            assert storage.read_stream("clock", "a", 0, None) == rows
            assert read_log(storage, 2) == rows
            assert storage.read_checkpoint("p") == Checkpoint("p", rows[-1].position, "{}")
            assert storage.read_snapshot("clock", "a", None) is not None
            assert storage.all_documents("docs") == [("k", '{"v": 1}')]
            with pytest.raises(VersionConflict):
                storage.append([batch("a", 1)])
            ddl = postgres_schema(name)
            assert f'"{name.replace(chr(34), chr(34) * 2)}"."events"' in ddl
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(ddl.encode())  # the exported DDL runs as it is
        finally:
            drop_schema(name)


class TestErrorKinds:
    def test_exhausted_pool_is_transient(self, make: Make) -> None:
        """No connection free in the pool within its timeout is a TransientStorageError."""
        with psycopg_pool.ConnectionPool(POSTGRES_URL, min_size=1, max_size=1, timeout=0.2) as pool:
            storage = make(pool)
            caught: list[BaseException] = []

            def read_meanwhile() -> None:
                try:
                    storage.read_all(0, 1)
                except BaseException as exc:
                    caught.append(exc)

            with storage.transaction():
                storage.append([batch("a", 0)])  # the transaction holds the only connection
                reader = threading.Thread(target=read_meanwhile)
                reader.start()
                reader.join()
            (error,) = caught
            assert isinstance(error, TransientStorageError)
            assert isinstance(error.__cause__, psycopg_pool.PoolTimeout)
            assert [r.stream_id for r in storage.read_all(0, 1)] == ["a"]  # free again

    def test_lock_timeout_is_transient(self, make: Make, pg_schema: str) -> None:
        """A write that waits past lock_timeout for another session's lock is transient."""
        storage = make(f"{POSTGRES_URL}?options=-c%20lock_timeout%3D200")
        storage.write_checkpoint(Checkpoint("p", 1))
        checkpoints = psycopg.sql.Identifier(pg_schema, "checkpoints")
        with psycopg.connect(POSTGRES_URL) as holder:  # not autocommit: holds the row's lock
            holder.execute(
                psycopg.sql.SQL("SELECT 1 FROM {} WHERE name = %s FOR UPDATE").format(checkpoints),
                ("p",),
            )
            with pytest.raises(TransientStorageError, match="lock timeout") as info:
                storage.write_checkpoint(Checkpoint("p", 2))
            assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
            holder.rollback()
        storage.write_checkpoint(Checkpoint("p", 3))  # a retry passes
        assert storage.read_checkpoint("p") == Checkpoint("p", 3)

    def test_deadlock_is_transient(self, make: Make) -> None:
        """Two transactions locking two streams in opposite orders: the one chosen is transient."""
        storage = make(lock_streams=True)
        both_hold_one = threading.Barrier(2, timeout=10)
        outcomes: list[object] = []

        def lock(first: str, second: str) -> None:
            try:
                with storage.transaction():
                    storage.lock_stream("clock", first)
                    both_hold_one.wait()
                    storage.lock_stream("clock", second)
                outcomes.append("committed")
            except TransientStorageError as exc:
                outcomes.append(exc.__cause__)

        threads = [
            threading.Thread(target=lock, args=("a", "b")),
            threading.Thread(target=lock, args=("b", "a")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert "committed" in outcomes
        assert [type(o) for o in outcomes if o != "committed"] == [psycopg.errors.DeadlockDetected]

    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            ("SerializationFailure", TransientStorageError),
            ("DeadlockDetected", TransientStorageError),
            ("LockNotAvailable", TransientStorageError),
            ("AdminShutdown", TransientStorageError),
            ("UndefinedTable", StorageError),
            ("InvalidTextRepresentation", StorageError),
        ],
    )
    def test_driver_errors_map_by_kind(self, error: str, kind: type[StorageError]) -> None:
        """Each psycopg error maps to the kind a caller acts on: transient where retrying helps."""
        cause = getattr(psycopg.errors, error)("from the server")
        with (
            pytest.raises(StorageError, match=r"\(schema 's'\): testing failed") as info,
            _postgres._faults("s", "testing"),
        ):
            raise cause
        assert type(info.value) is kind
        assert info.value.__cause__ is cause


class TestConnections:
    def test_pool_passed_in_is_not_closed(self, make: Make) -> None:
        """close() leaves a caller's pool open; the storage still uses it until then."""
        with psycopg_pool.ConnectionPool(POSTGRES_URL, min_size=1, max_size=2) as pool:
            storage = make(pool)
            storage.append([batch("a", 0)])
            storage.close()
            assert not pool.closed
            with pool.connection() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)

    def test_pool_with_other_settings_still_works(self, make: Make) -> None:
        """A pool of non-autocommit connections in another time zone commits and reads UTC."""
        with psycopg_pool.ConnectionPool(
            POSTGRES_URL,
            min_size=1,
            max_size=2,
            kwargs={"options": "-c TimeZone=Asia/Kolkata"},
        ) as pool:
            storage = make(pool)
            (row,) = storage.append([batch("a", 0)])
            (read,) = make().read_stream("clock", "a", 0, None)  # another pool: committed
            assert read == row
            (again,) = read_log(storage, 1)
            assert again.recorded_at.tzinfo is UTC
            assert again.recorded_at == row.recorded_at
            with pool.connection() as conn:
                assert conn.autocommit is False

    def test_connection_killed_mid_transaction(self, make: Make) -> None:
        """A backend killed inside a transaction: transient, nothing kept, storage recovers."""
        app = f"esfn-{uuid.uuid4().hex[:8]}"
        with psycopg_pool.ConnectionPool(
            POSTGRES_URL, min_size=1, max_size=2, kwargs={"application_name": app}
        ) as pool:
            storage = make(pool)

            def killed_midway() -> None:
                with storage.transaction():
                    storage.append([batch("a", 0)])
                    (killed,) = sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = %s AND state = 'idle in transaction'",
                        app,
                    )
                    assert killed == (True,)
                    storage.append([batch("b", 0)])

            with pytest.raises(TransientStorageError, match="schema") as info:
                killed_midway()
            assert "clock/'b'" in str(info.value)
            assert isinstance(info.value.__cause__, psycopg.OperationalError)
            assert make().read_stream("clock", "a", 0, None) == []
            storage.append([batch("c", 0)])
            assert [r.stream_id for r in read_log(storage, 1)] == ["c"]

    def test_idle_connections_killed_are_replaced(self, make: Make) -> None:
        """Reads recover when the pool's idle connections were terminated (e.g. a restart)."""
        app = f"esfn-{uuid.uuid4().hex[:8]}"
        with psycopg_pool.ConnectionPool(
            POSTGRES_URL, min_size=1, max_size=1, kwargs={"application_name": app}
        ) as pool:
            storage = make(pool)
            storage.append([batch("a", 0)])
            sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                app,
            )
            assert len(storage.read_stream("clock", "a", 0, None)) == 1

    def test_bad_url_is_a_storage_error(self) -> None:
        """An unreachable server fails at once, as a transient StorageError naming the schema."""
        with pytest.raises(TransientStorageError, match="'nowhere'"):
            postgres_storage(
                "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", schema="nowhere"
            )

    def test_pools_heal_after_the_server_ends_idle_connections(self, make: Make) -> None:
        """After the server ends every pooled session, reads, appends and transactions work."""
        app = f"esfn-{uuid.uuid4().hex[:8]}"
        storage = make(f"{POSTGRES_URL}?application_name={app}")
        barrier = threading.Barrier(3)

        def hold_a_connection() -> None:
            with storage.transaction():
                storage.read_stream("clock", "a", 0, None)
                barrier.wait(10)  # three transactions at once: the pool grows to three

        threads = [threading.Thread(target=hold_a_connection) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (first,) = storage.append([batch("a", 0)])

        def in_transaction_read_first() -> None:
            with storage.transaction():
                head = storage.read_stream("clock", "a", 0, None)
                storage.append([batch("a", len(head))])

        def in_transaction_write_first() -> None:
            with storage.transaction():
                storage.append([batch("b", None)])

        calls: list[Callable[[], object]] = [
            lambda: storage.read_all(0, 10),
            lambda: storage.read_stream("clock", "a", 0, None),
            lambda: storage.append([batch("a", None)]),
            in_transaction_read_first,
            in_transaction_write_first,
            lambda: storage.read_checkpoint("nothing"),
        ]
        for call in calls:
            assert terminate(app) >= 1
            call()
        assert [r.version for r in storage.read_stream("clock", "a", 0, None)] == [1, 2, 3]
        assert [r.stream_id for r in read_log(storage, 4)] == ["a", "a", "a", "b"]
        assert first.version == 1

    def test_write_on_a_dead_connection_is_not_repeated(self, make: Make) -> None:
        """A write outside a transaction on a dead connection raises; the next call works."""
        app = f"esfn-{uuid.uuid4().hex[:8]}"
        storage = make(f"{POSTGRES_URL}?application_name={app}")
        storage.write_checkpoint(Checkpoint("p", 1))
        terminate(app)
        with pytest.raises(TransientStorageError, match="writing checkpoint 'p'"):
            storage.write_checkpoint(Checkpoint("p", 2))
        assert storage.read_checkpoint("p") == Checkpoint("p", 1)
        storage.write_checkpoint(Checkpoint("p", 3))
        assert storage.read_checkpoint("p") == Checkpoint("p", 3)

    @pytest.mark.parametrize("source", ["conninfo", "pool"])
    def test_one_storage_survives_fork(self, pg_schema: str, tmp_path: Path, source: str) -> None:
        """Forked children and parent share one storage: acked events stored, parent unharmed."""
        app = f"esfn-{uuid.uuid4().hex[:8]}"
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                FORK_SCRIPT,
                POSTGRES_URL,
                app,
                pg_schema,
                str(tmp_path),
                source,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert run.returncode == 0, run.stderr
        report = json.loads((tmp_path / "parent.json").read_text())
        assert report["statuses"] == [0] * CHILDREN, run.stderr
        assert report["sessions_before"], "the parent had no pooled session when it forked"
        assert report["sessions_after"] == report["sessions_before"], "a parent session ended"
        acked = set(report["parent"])
        for child in range(CHILDREN):
            mine = json.loads((tmp_path / f"child{child}.json").read_text())
            assert len(mine) == 20, run.stderr
            acked.update(mine)
        storage = postgres_storage(POSTGRES_URL, schema=pg_schema)
        try:
            stored = {str(r.event_id) for r in read_log(storage, len(acked))}
        finally:
            storage.close()
        assert acked <= stored, "an acknowledged event was not stored"
        assert len(report["after"]) == 3


CHILDREN = 4
# Parent and children append through the storage made before the fork, the parent from a
# thread that keeps going while it forks; every process reports the event ids it was told were
# stored. Half the children end as pre-fork servers end workers (os._exit); the others return
# through the code that made the storage (closing it, and closing a pool passed in, as leaving
# its `with` block would) and exit the interpreter normally.
FORK_SCRIPT = """
import json, os, sys, threading, uuid
from datetime import UTC, datetime
import psycopg
from psycopg_pool import ConnectionPool
from eventsourcing_fn.storage import NewEvent, StreamAppend, postgres_storage

url, app, schema, out, source = sys.argv[1:6]
url = f"{url}?application_name={app}"
pool = ConnectionPool(url, min_size=2, max_size=4) if source == "pool" else None
storage = postgres_storage(pool or url, schema=schema)

def sessions():
    with psycopg.connect(url.replace(app, "observer"), autocommit=True) as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid"
        return [pid for (pid,) in conn.execute(query, (app,))]

def append(stream, acked, count):
    for i in range(count):
        new = NewEvent("Ticked", 1, "{}", uuid.uuid4(), datetime.now(UTC))
        storage.append([StreamAppend("clock", stream, None, [new])])
        acked.append(str(new.event_id))
        assert storage.read_stream("clock", stream, 0, None)[-1].event_id == new.event_id

parent = []
append("parent", parent, 3)
stop = threading.Event()
def keep_appending():
    while not stop.is_set():
        append("parent", parent, 1)
thread = threading.Thread(target=keep_appending)
thread.start()
sessions_before = sessions()
pids = []
for child in range(CHILDREN):
    pid = os.fork()
    if pid == 0:
        acked, code = [], 0
        try:
            append(f"child{child}", acked, 20)
        except BaseException as exc:
            print(f"child {child}: {exc!r}", file=sys.stderr)
            code = 1
        with open(f"{out}/child{child}.json", "w") as f:
            json.dump(acked, f)
        if child % 2:
            os._exit(code)
        storage.close()
        if pool is not None:
            pool.close()
        sys.stderr.flush()
        sys.exit(code)
    pids.append(pid)
statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
stop.set()
thread.join()
sessions_after = [pid for pid in sessions() if pid in sessions_before]
after = []
append("after", after, 3)
report = {
    "statuses": statuses,
    "parent": parent + after,
    "after": after,
    "sessions_before": sessions_before,
    "sessions_after": sessions_after,
}
with open(f"{out}/parent.json", "w") as f:
    json.dump(report, f)
storage.close()
if pool is not None:
    pool.close()
""".replace("CHILDREN", str(CHILDREN))


class TestLockStreams:
    def test_second_writer_waits_for_the_first(self, make: Make) -> None:
        """With lock_streams, a second transaction locking the stream waits for the first."""
        first, second = make(lock_streams=True), make(lock_streams=True)
        locked = threading.Event()
        committed_at: list[float] = []

        def hold() -> None:
            with first.transaction():
                first.lock_stream("clock", "a")
                locked.set()
                time.sleep(0.3)
                first.append([batch("a", 0)])
            committed_at.append(time.monotonic())

        holder = threading.Thread(target=hold)
        holder.start()
        locked.wait(10)
        with second.transaction():
            second.lock_stream("clock", "a")
            acquired = time.monotonic()
            head = second.read_stream("clock", "a", 0, None)
            second.append([batch("a", len(head))])
        holder.join()
        assert acquired >= committed_at[0] - 0.01
        assert [r.version for r in second.read_stream("clock", "a", 0, None)] == [1, 2]

    def test_without_lock_streams_locking_is_a_no_op(self, make: Make) -> None:
        """With lock_streams off, lock_stream never blocks."""
        first, second = make(), make()
        with first.transaction():
            first.lock_stream("clock", "a")
            first.append([batch("a", 0)])
            started = time.monotonic()
            with second.transaction():
                second.lock_stream("clock", "a")
            assert time.monotonic() - started < 0.2

    def test_checkpoint_reads_in_a_transaction_serialise(self, make: Make) -> None:
        """Two transactions reading one checkpoint run one after the other (no lost update)."""
        from eventsourcing_fn.storage import Checkpoint

        storages = [make(), make()]
        storages[0].write_checkpoint(Checkpoint("count", 0, "0"))

        def bump(storage: Storage) -> None:
            for _ in range(10):
                with storage.transaction():
                    current = storage.read_checkpoint("count")
                    assert current is not None
                    assert current.state is not None
                    time.sleep(0.002)
                    n = int(current.state) + 1
                    storage.write_checkpoint(Checkpoint("count", n, str(n)))

        threads = [threading.Thread(target=bump, args=(s,)) for s in storages]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storages[0].read_checkpoint("count") == Checkpoint("count", 20, "20")


class TestNul:
    def test_nul_escaped_in_json_round_trips(self, make: Make) -> None:
        """Payload and metadata JSON holding the \\u0000 escape come back as written."""
        storage = make()
        data, metadata = '{"s": "a\\u0000b"}', '{"\\u0000k": "v\\u0000"}'
        new = NewEvent("Ticked", 1, data, uuid.uuid4(), datetime.now(UTC), metadata=metadata)
        (row,) = storage.append([StreamAppend("clock", "x", 0, [new])])
        (read,) = storage.read_stream("clock", "x", 0, None)
        assert (read.data, read.metadata) == (data, metadata) == (row.data, row.metadata)
        assert json.loads(read.data) == {"s": "a\0b"}

    @pytest.mark.parametrize(
        ("field", "append"),
        [
            ("stream_id", StreamAppend("clock", "a\0b", 0, [event()])),
            ("stream_type", StreamAppend("clo\0ck", "a", 0, [event()])),
            ("actor_id", StreamAppend("clock", "a", 0, [event(), event_with(actor_id="\0")])),
            ("causation_id", StreamAppend("clock", "a", None, [event_with(causation_id="\0")])),
            ("data", StreamAppend("clock", "a", 0, [event_with(data='"\0"')])),
        ],
    )
    def test_nul_in_text_is_refused_and_nothing_is_written(
        self, make: Make, field: str, append: StreamAppend
    ) -> None:
        """NUL where PostgreSQL keeps text is an error naming stream and field; nothing lands."""
        storage = make()
        with storage.transaction():
            storage.append([batch("before", 0)])
            with pytest.raises(StorageError, match=f"{field} holds a NUL") as info:
                storage.append([batch("other", 0), append])
            assert isinstance(info.value, ValueError)
            assert repr(append.stream_id) in str(info.value)
            storage.append([batch("after", 0)])  # the transaction is still usable
        assert [r.stream_id for r in read_log(storage, 2)] == ["before", "after"]

    def test_nul_in_other_text_is_refused(self, make: Make) -> None:
        """Snapshots, checkpoints and documents holding NUL in text are refused by field."""
        storage = make()
        writes: list[tuple[str, Callable[[], None]]] = [
            ("stream_id", lambda: storage.write_snapshot(StoredSnapshot("c", "\0", 1, 1, "{}"))),
            ("data", lambda: storage.write_snapshot(StoredSnapshot("c", "a", 1, 1, "\0"))),
            ("name", lambda: storage.write_checkpoint(Checkpoint("p\0", 1))),
            ("state", lambda: storage.write_checkpoint(Checkpoint("p", 1, "\0"))),
            ("key", lambda: storage.put_document("docs", "k\0", "{}")),
        ]
        for field, write in writes:
            with pytest.raises(ValueError, match=f"{field} holds a NUL"):
                write()
        assert storage.read_checkpoint("p") is None
        assert storage.all_documents("docs") == []

    def test_reading_with_nul_is_a_storage_error(self, make: Make) -> None:
        """Reading a stream id holding NUL is a StorageError and sends nothing."""
        storage = make()
        with storage.transaction():
            with pytest.raises(StorageError, match="reading stream clock/'a\\\\x00'"):
                storage.read_stream("clock", "a\0", 0, None)
            storage.append([batch("a", 0)])
        assert len(read_log(storage, 1)) == 1

    def test_nul_in_payload_and_metadata_round_trips_through_the_store(
        self, make: Make, pg_schema: str
    ) -> None:
        """An event store on PostgreSQL keeps NUL in payload strings and metadata values."""
        from bank import Open, account

        from eventsourcing_fn import EventStore, context

        store = EventStore(make(), aggregates=[account])
        with context(metadata={"note": "a\0b", "\0": 1}):
            store.execute(account, "acc", Open("ann\0")).unwrap()
        assert store.load(account, "acc").state.owner == "ann\0"
        (recorded,) = store.events(account, "acc")
        assert recorded.metadata == {"note": "a\0b", "\0": 1}
        ((data,),) = sql(f'SELECT data::text FROM "{pg_schema}".events')
        assert data == '{"owner":"ann\\u0000"}'  # the JSON escape, in a json column


_texts = st.text() | st.sampled_from(['a"b', "back\\slash", "tab\tnew\nline", "é ü ∑ 😀", "\x01"])


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.tuples(_texts, _texts, st.none() | _texts, st.none() | _texts), min_size=1),
    first=st.integers(min_value=0, max_value=1000),
)
def test_insert_events_are_the_json_a_dict_encoder_writes(
    kinds: list[tuple[str, str, str | None, str | None]], first: int
) -> None:
    """The events the INSERT receives read back as the objects a JSON encoder of dicts writes."""
    from eventsourcing_fn.storage._postgres import _insert_params

    at = datetime.now(UTC)
    events = [
        NewEvent(t, 2, data, uuid.uuid4(), at, actor, None, causation, '{"k": 1}')
        for t, data, actor, causation in kinds
    ]
    params = _insert_params([StreamAppend("s", "id", None, events)], first)
    expected = [
        {
            "stream": 1, "off": off, "n": first + off, "type": e.type,
            "schema_version": e.schema_version, "data": e.data, "event_id": str(e.event_id),
            "recorded_at": at.isoformat(), "actor_id": e.actor_id,
            "correlation_id": e.correlation_id, "causation_id": e.causation_id,
            "metadata": e.metadata,
        }
        for off, e in enumerate(events, start=1)
    ]  # fmt: skip
    assert json.loads(str(params["events"])) == expected
