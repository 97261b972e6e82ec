#!/usr/bin/env python3
"""eventsourcing_fn measured against the `eventsourcing` package (9.5) and the raw drivers.

    benchmarks/setup.sh                  # once: benchmarks/.venv-bench with both libraries
    python benchmarks/run.py             # everything, full size (re-runs itself in .venv-bench)
    python benchmarks/run.py --quick     # a small smoke run
    python benchmarks/run.py --help      # sizes, repeats, backends, workloads, --profile

Workloads (each result is the median of --repeats runs, every run on a fresh store; in catchup,
a fresh projection over the same log):
  write       N streams x E events, one command = one transaction per stream
  load        load and fold every one of those streams (no snapshots, no caches)
  concurrent  PostgreSQL: W writer threads appending, one thread tailing the global log;
              counts events the tail skipped (committed, yet never seen by it)
  hot         PostgreSQL: P processes executing on ONE stream with max_retries, with and
              without postgres_storage(lock_streams=True); commands/s and conflicts/command
  catchup     SQLite, PostgreSQL: a log of --catchup-events events (written once per library),
              then a new projection catching up with it: a fold (a running total) and a
              document projection (one document per stream); events/s of ours, of a
              hand-written loop on the same driver and table, and of `eventsourcing`'s
              projection runner (one commit per event: on the first --catchup-theirs events)
  inline      execute throughput (one command = one event = one transaction) with 0, 1 and 3
              inline projections, with a process manager sending one command per trigger,
              and with that same pair of commands in one transaction by hand
`raw` rows are the driver alone (sqlite3 / psycopg) writing and reading the same rows, the same
table, one transaction per stream: the physical limit for this machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import json
import multiprocessing
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

try:  # the comparison needs `eventsourcing`, installed only in benchmarks/.venv-bench
    from eventsourcing.application import Application
    from eventsourcing.dispatch import singledispatchmethod
    from eventsourcing.domain import Aggregate as EsAggregate
    from eventsourcing.domain import event
    from eventsourcing.persistence import InfrastructureFactory, Tracking
    from eventsourcing.projection import Projection as EsProjection
    from eventsourcing.projection import ProjectionRunner
    from eventsourcing.sqlite import SQLiteTrackingRecorder
    from eventsourcing.utils import Environment
except ImportError:
    _BENCH_PYTHON = Path(__file__).resolve().parent / ".venv-bench" / "bin" / "python"
    if not _BENCH_PYTHON.exists() or Path(sys.executable) == _BENCH_PYTHON:
        sys.exit("`eventsourcing` is not installed: run benchmarks/setup.sh first")
    os.execv(_BENCH_PYTHON, [str(_BENCH_PYTHON), *sys.argv])

import attrs
from returns.result import Success

from eventsourcing_fn import (
    Aggregate,
    DocumentProjection,
    EventStore,
    ProcessManager,
    Projection,
    Recorded,
    Send,
)
from eventsourcing_fn.storage import (
    NewEvent,
    Storage,
    StreamAppend,
    VersionConflict,
    memory_storage,
    sqlite_schema,
    sqlite_storage,
)

try:
    import psycopg
    from eventsourcing.postgres import PostgresTrackingRecorder
    from psycopg import sql

    from eventsourcing_fn.storage import postgres_schema, postgres_storage
except ImportError:  # without the postgres extra the PostgreSQL workloads are skipped
    psycopg = None  # type: ignore[assignment]
    PostgresTrackingRecorder = object  # type: ignore[assignment,misc]  # a base never used

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("memory", "sqlite", "postgres")
WORKLOADS = ("write", "load", "concurrent", "hot", "catchup", "inline")


# -- the domain, once per library ------------------------------------------------------------------


@attrs.frozen
class Started:
    name: str


@attrs.frozen
class Incremented:
    amount: int


@attrs.frozen
class Start:
    name: str
    increments: int


@attrs.frozen
class Bump:
    pass


@attrs.frozen
class Tally:
    name: str | None = None
    count: int = 0
    total: int = 0


def started(state: Tally, event: Started) -> Tally:
    return attrs.evolve(state, name=event.name)


def incremented(state: Tally, event: Incremented) -> Tally:
    return Tally(state.name, state.count + 1, state.total + event.amount)


def start(command: Start, state: Tally) -> list[Started | Incremented]:
    return [Started(command.name), *(Incremented(i) for i in range(1, command.increments + 1))]


def bump(command: Bump, state: Tally) -> Incremented:
    return Incremented(1)


def tally_aggregate(snapshot_every: int | None = None) -> Aggregate[Tally]:
    """Ours: a frozen state, two evolve and two decide functions."""
    tally = Aggregate("tally", initial=Tally(), snapshot_every=snapshot_every)
    tally.evolve(started)
    tally.evolve(incremented)
    tally.decide(start)
    tally.decide(bump)
    return tally


class EsTally(EsAggregate):
    """Theirs: the idiomatic `eventsourcing` aggregate with `@event` methods."""

    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total = 0

    @event("Incremented")
    def increment(self, amount: int) -> None:
        self.count += 1
        self.total += amount


class EsTallies(Application[uuid.UUID]):
    is_snapshotting_enabled = False


# -- configuration and stores ----------------------------------------------------------------------


@attrs.frozen
class Config:
    streams: int
    events: int
    repeats: int
    writers: int
    writer_commands: int
    processes: int
    hot_commands: int
    hot_retries: int
    hot_snapshot_every: int
    catchup_events: int
    catchup_streams: int
    catchup_theirs: int
    inline_commands: int
    inline_streams: int
    backends: tuple[str, ...]
    workloads: tuple[str, ...]
    dsn: str
    workdir: Path
    profile: bool


_names = iter(range(1_000_000))


def unique(prefix: str) -> str:
    return f"bench_{prefix}_{os.getpid()}_{next(_names)}"


def pg_execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def drop_schema(dsn: str, schema: str) -> None:
    pg_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def our_storage(
    backend: str, cfg: Config, *, lock_streams: bool = False, name: str | None = None
) -> Iterator[Storage]:
    """A fresh storage of this project on `backend`, in the file `workdir/<name>.db` or the
    schema `<name>`; closed, its file or schema removed afterwards."""
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    name = name or unique("fn")
    if backend == "memory":
        storage = memory_storage()
    elif backend == "sqlite":
        path = cfg.workdir / f"{name}.db"
        storage = sqlite_storage(path)
        cleanup = lambda: remove_sqlite(path)  # noqa: E731
    else:
        storage = postgres_storage(cfg.dsn, schema=name, lock_streams=lock_streams)
        cleanup = lambda: drop_schema(cfg.dsn, name)  # noqa: E731
    try:
        yield storage
    finally:
        storage.close()
        cleanup()


@contextmanager
def our_store(
    backend: str,
    cfg: Config,
    aggregate: Aggregate[Tally],
    *,
    lock_streams: bool = False,
    schema: str | None = None,
    others: Sequence[Aggregate[Any]] = (),
    projections: Sequence[Projection[Any] | DocumentProjection[Any]] = (),
    process_managers: Sequence[ProcessManager[Any]] = (),
) -> Iterator[EventStore]:
    """A fresh store of this project on `backend`; its file or schema is removed afterwards."""
    with our_storage(backend, cfg, lock_streams=lock_streams, name=schema) as storage:
        yield EventStore(
            storage,
            aggregates=[aggregate, *others],
            projections=projections,
            process_managers=process_managers,
        )


@contextmanager
def their_env(
    backend: str, cfg: Config, *, pool_size: int = 5, schema: str | None = None
) -> Iterator[dict[str, str]]:
    """Settings for a fresh `eventsourcing` database on `backend`, in their own env keys; the
    file or schema is removed afterwards. Their projection runner takes the same settings."""
    env = {"IS_SNAPSHOTTING_ENABLED": "n"}  # and no AGGREGATE_CACHE_MAXSIZE: no cache
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "memory":
        env["PERSISTENCE_MODULE"] = "eventsourcing.popo"
    elif backend == "sqlite":
        path = cfg.workdir / f"{unique('es')}.db"
        env |= {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        cleanup = lambda: remove_sqlite(path)  # noqa: E731
    else:
        name = schema or unique("es")
        pg_execute(cfg.dsn, f'CREATE SCHEMA "{name}"')  # theirs expects it to exist
        info = psycopg.conninfo.conninfo_to_dict(cfg.dsn)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": str(info.get("dbname", "postgres")),
            "POSTGRES_HOST": str(info.get("host", "127.0.0.1")),
            "POSTGRES_PORT": str(info.get("port", "5432")),
            "POSTGRES_USER": str(info.get("user", "postgres")),
            "POSTGRES_PASSWORD": str(info.get("password", "")),
            "POSTGRES_SCHEMA": name,
            "POSTGRES_POOL_SIZE": str(pool_size),
        }
        cleanup = lambda: drop_schema(cfg.dsn, name)  # noqa: E731
    try:
        yield env
    finally:
        cleanup()


@contextmanager
def their_app(
    backend: str, cfg: Config, *, pool_size: int = 5, schema: str | None = None
) -> Iterator[EsTallies]:
    """A fresh `eventsourcing` application on `backend`, configured by its own env settings."""
    with their_env(backend, cfg, pool_size=pool_size, schema=schema) as env:
        # Application(env=...) takes exactly the environment variables it would read from
        # os.environ; passing them here keeps them out of the process (and away from ours).
        app = EsTallies(env=env)
        try:
            yield app
        finally:
            app.close()


# -- workloads 1 and 2: write, then load and fold --------------------------------------------------


def ours_write(store: EventStore, tally: Aggregate[Tally], cfg: Config) -> list[str]:
    command = Start("bench", cfg.events - 1)
    return [store.execute(tally, None, command).unwrap().stream_id for _ in range(cfg.streams)]


def ours_load(store: EventStore, tally: Aggregate[Tally], ids: list[str], cfg: Config) -> None:
    for stream_id in ids:
        loaded = store.load(tally, stream_id)
    assert loaded.state.count == cfg.events - 1, loaded


def theirs_write(app: EsTallies, cfg: Config) -> list[uuid.UUID]:
    ids = []
    for _ in range(cfg.streams):
        tally = EsTally(name="bench")
        for amount in range(1, cfg.events):
            tally.increment(amount=amount)
        app.save(tally)
        ids.append(tally.id)
    return ids


def theirs_load(app: EsTallies, ids: list[uuid.UUID], cfg: Config) -> None:
    get = app.repository.get
    for tally_id in ids:
        tally = get(tally_id)
    assert tally.count == cfg.events - 1, vars(tally)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    begin = time.perf_counter()
    result = work()
    return time.perf_counter() - begin, result


def ours_write_load(backend: str, cfg: Config) -> tuple[float, float]:
    tally = tally_aggregate()
    with our_store(backend, cfg, tally) as store:
        write, ids = timed(lambda: ours_write(store, tally, cfg))
        load, _ = timed(lambda: ours_load(store, tally, ids, cfg))
    return write, load


def theirs_write_load(backend: str, cfg: Config) -> tuple[float, float]:
    with their_app(backend, cfg) as app:
        write, ids = timed(lambda: theirs_write(app, cfg))
        load, _ = timed(lambda: theirs_load(app, ids, cfg))
    return write, load


@contextmanager
def their_sqlite_synchronous_normal() -> Iterator[None]:
    """Theirs at our durability setting, for a fair second SQLite row.

    Their SQLite module leaves `PRAGMA synchronous` at FULL (an fsync per commit in WAL mode);
    ours sets NORMAL. No setting of theirs changes it, so this wraps their connection factory.
    """
    from eventsourcing.sqlite import SQLiteConnectionPool

    create = SQLiteConnectionPool._create_connection

    def create_normal(pool: SQLiteConnectionPool) -> Any:
        conn = create(pool)
        conn._sqlite_conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    SQLiteConnectionPool._create_connection = create_normal  # type: ignore[method-assign]
    try:
        yield
    finally:
        SQLiteConnectionPool._create_connection = create  # type: ignore[method-assign]


def theirs_normal_write_load(backend: str, cfg: Config) -> tuple[float, float]:
    with their_sqlite_synchronous_normal():
        return theirs_write_load(backend, cfg)


def raw_rows(cfg: Config) -> list[list[tuple[Any, ...]]]:
    """The rows our store writes, one list per stream, in our `events` column order."""
    now = datetime.now(UTC)
    streams = []
    for _ in range(cfg.streams):
        stream_id = str(uuid.uuid4())
        rows = [(stream_id, 1, "Started", '{"name":"bench"}')]
        rows += [
            (stream_id, v, "Incremented", f'{{"amount":{v - 1}}}') for v in range(2, cfg.events + 1)
        ]
        streams.append(
            [
                ("tally", sid, version, kind, 1, data, uuid.uuid4(), now, None, None, None, "{}")
                for sid, version, kind, data in rows
            ]
        )
    return streams


_RAW_COLUMNS = (
    "stream_type, stream_id, version, type, schema_version, data, event_id, recorded_at,"
    " actor_id, correlation_id, causation_id, metadata"
)


def raw_sqlite(cfg: Config) -> tuple[float, float]:
    """sqlite3 alone: our table and pragmas, one BEGIN IMMEDIATE/executemany/COMMIT per stream."""
    streams = raw_rows(cfg)
    params = [
        [(*r[:6], str(r[6]), r[7].isoformat(timespec="microseconds"), *r[8:]) for r in rows]
        for rows in streams
    ]
    insert = f"INSERT INTO events ({_RAW_COLUMNS}) VALUES ({', '.join('?' * 12)})"
    select = (
        "SELECT stream_type, stream_id, version, position, type, schema_version, data, event_id,"
        " recorded_at, actor_id, correlation_id, causation_id, metadata FROM events"
        " WHERE stream_type = ? AND stream_id = ? AND version > ? ORDER BY version"
    )
    path = cfg.workdir / f"{unique('raw')}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(sqlite_schema())

        def write() -> None:
            for rows in params:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert, rows)
                conn.execute("COMMIT")

        def read() -> None:
            for rows in params:
                assert len(conn.execute(select, ("tally", rows[0][1], 0)).fetchall()) == cfg.events

        return timed(write)[0], timed(read)[0]
    finally:
        conn.close()
        remove_sqlite(path)


def raw_psycopg(cfg: Config) -> tuple[float, float]:
    """psycopg alone: our DDL, one transaction with executemany per stream, select per stream."""
    streams = raw_rows(cfg)
    schema = unique("raw")
    insert = (
        f'INSERT INTO "{schema}".events ({_RAW_COLUMNS}, position)'
        f" VALUES ({', '.join(['%s'] * 13)})"
    )
    select = (
        "SELECT stream_type, stream_id, version, position, type, schema_version, data::text,"
        " event_id, recorded_at, actor_id, correlation_id, causation_id, metadata::text"
        f' FROM "{schema}".events WHERE stream_type = %s AND stream_id = %s AND version > %s'
        " ORDER BY version"
    )
    positions = iter(range(1, cfg.streams * cfg.events + 1))
    params = [[(*r, next(positions)) for r in rows] for rows in streams]
    try:
        with psycopg.connect(cfg.dsn, autocommit=True) as conn:
            conn.execute(postgres_schema(schema))

            def write() -> None:
                with conn.cursor() as cur:
                    for rows in params:
                        with conn.transaction():
                            cur.executemany(insert, rows)

            def read() -> None:
                with conn.cursor() as cur:
                    for rows in params:
                        cur.execute(select, ("tally", rows[0][1], 0))
                        assert len(cur.fetchall()) == cfg.events

            return timed(write)[0], timed(read)[0]
    finally:
        drop_schema(cfg.dsn, schema)


# -- workload 3: concurrent writers and a tailing reader -------------------------------------------


TAIL_TIMEOUT = 60.0  # seconds the tail may take, after the last commit, to see everything


@attrs.frozen
class Concurrent:
    seconds: float  # writers, from the start signal to the last commit
    events: int  # in the table at the end (read with plain SQL, not through the library)
    skipped: int  # committed, never seen by the tailing reader
    duplicates: int  # seen twice
    out_of_order: int  # seen after a higher position
    lag: float  # seconds from the last commit until the tail had seen as many events


def run_concurrent(
    write_one: Callable[[], None],
    positions_after: Callable[[int], Iterable[int]],
    cfg: Config,
) -> tuple[float, float, list[int]]:
    """W writer threads calling `write_one`, one thread tailing the log: (seconds, lag, seen).

    The tail follows `positions_after(last seen)` until it has seen as many events as were
    written, or TAIL_TIMEOUT after the last commit.
    """
    expected = cfg.writers * cfg.writer_commands * cfg.events
    go = threading.Barrier(cfg.writers + 1)
    ended: list[float] = []
    seen: list[int] = []
    caught_up: list[float] = []

    def writer() -> None:
        go.wait()
        for _ in range(cfg.writer_commands):
            write_one()

    def tail() -> None:
        last = 0
        while len(seen) < expected:
            if ended and time.perf_counter() - ended[0] > TAIL_TIMEOUT:
                return
            count = 0
            for position in positions_after(last):
                seen.append(position)
                last = position
                count += 1
            if not count:
                time.sleep(0.001)
        caught_up.append(time.perf_counter())

    threads = [threading.Thread(target=writer) for _ in range(cfg.writers)]
    reader = threading.Thread(target=tail)
    for thread in [*threads, reader]:
        thread.start()
    gc.collect()
    go.wait()
    begin = time.perf_counter()
    for thread in threads:
        thread.join()
    ended.append(time.perf_counter())
    reader.join()
    lag = max(0.0, caught_up[0] - ended[0]) if caught_up else float("inf")
    return ended[0] - begin, lag, seen


def concurrent_result(
    seconds: float, lag: float, seen: list[int], committed: list[int]
) -> Concurrent:
    return Concurrent(
        seconds,
        len(committed),
        skipped=len(set(committed) - set(seen)),
        duplicates=len(seen) - len(set(seen)),
        out_of_order=sum(1 for a, b in itertools.pairwise(seen) if b <= a),
        lag=lag,
    )


def positions_in(dsn: str, table: str, column: str) -> list[int]:
    """Ground truth: every position in the table, by plain SQL."""
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(f"SELECT {column} FROM {table}")]


def ours_concurrent(cfg: Config) -> Concurrent:
    tally = tally_aggregate()
    command = Start("bench", cfg.events - 1)
    schema = unique("fn")
    with our_store("postgres", cfg, tally, schema=schema) as store:

        def write_one() -> None:
            store.execute(tally, None, command).unwrap()

        def positions_after(after: int) -> Iterator[int]:
            for record in store.read_all(after=after):
                yield record.position

        seconds, lag, seen = run_concurrent(write_one, positions_after, cfg)
        committed = positions_in(cfg.dsn, f'"{schema}".events', "position")
    return concurrent_result(seconds, lag, seen, committed)


def theirs_concurrent(cfg: Config) -> Concurrent:
    # Their default PostgreSQL recorder: LOCK TABLE ... IN EXCLUSIVE MODE around each insert.
    schema = unique("es")
    with their_app("postgres", cfg, pool_size=cfg.writers + 2, schema=schema) as app:
        select = app.recorder.select_notifications
        to_event = app.mapper.to_domain_event

        def write_one() -> None:
            tally = EsTally(name="bench")
            for amount in range(1, cfg.events):
                tally.increment(amount=amount)
            app.save(tally)

        def positions_after(after: int) -> Iterator[int]:
            while notes := select(start=after, limit=1000, inclusive_of_start=False):
                for note in notes:
                    to_event(note)  # decode, as our read_all does
                    yield note.id
                after = notes[-1].id

        seconds, lag, seen = run_concurrent(write_one, positions_after, cfg)
        table = f'"{schema}"."{app.recorder.events_table_name}"'  # type: ignore[attr-defined]
        committed = positions_in(cfg.dsn, table, "notification_id")
    return concurrent_result(seconds, lag, seen, committed)


# -- workload 4: one hot stream, several processes -------------------------------------------------


def hot_worker(
    dsn: str,
    schema: str,
    lock_streams: bool,
    cfg: Config,
    go: Any,
    results: Any,
) -> None:
    """One process: `hot_commands` executes on the stream "hot", counting version conflicts."""
    storage = postgres_storage(dsn, schema=schema, lock_streams=lock_streams)
    conflicts = 0
    append = storage.append

    def counting_append(batches: Any) -> Any:
        nonlocal conflicts
        try:
            return append(batches)
        except VersionConflict:
            conflicts += 1
            raise

    tally = tally_aggregate(cfg.hot_snapshot_every or None)
    store = EventStore(attrs.evolve(storage, append=counting_append), aggregates=[tally])
    ok = failed = 0
    go.wait()
    begin = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on Linux
    for _ in range(cfg.hot_commands):
        result = store.execute(tally, "hot", Bump(), max_retries=cfg.hot_retries)
        if isinstance(result, Success):
            ok += 1
        else:
            failed += 1
    results.put((begin, time.monotonic(), ok, failed, conflicts))
    store.close()


@attrs.frozen
class Hot:
    seconds: float
    commands: int
    failed: int
    conflicts: int


def hot_stream(cfg: Config, lock_streams: bool) -> Hot:
    tally = tally_aggregate(cfg.hot_snapshot_every or None)
    schema = unique("hot")
    setup = postgres_storage(cfg.dsn, schema=schema)  # creates the schema before the race
    EventStore(setup, aggregates=[tally]).execute(tally, "hot", Start("hot", 0)).unwrap()
    setup.close()
    spawn = multiprocessing.get_context("spawn")
    go = spawn.Barrier(cfg.processes)
    results = spawn.Queue()
    args = (cfg.dsn, schema, lock_streams, cfg, go, results)
    workers = [spawn.Process(target=hot_worker, args=args) for _ in range(cfg.processes)]
    try:
        for worker in workers:
            worker.start()
        got = [results.get(timeout=3600) for _ in workers]
        for worker in workers:
            worker.join()
    finally:
        drop_schema(cfg.dsn, schema)
    begin = min(g[0] for g in got)
    end = max(g[1] for g in got)
    return Hot(
        end - begin,
        commands=sum(g[2] for g in got),
        failed=sum(g[3] for g in got),
        conflicts=sum(g[4] for g in got),
    )


# -- the projections of workloads 5 and 6 ----------------------------------------------------------


@attrs.frozen
class Balance:
    """The document of one tally stream."""

    name: str
    count: int = 0
    total: int = 0


def add_amount(total: int, event: Incremented) -> int:
    return total + event.amount


def open_balance(doc: Balance | None, event: Started) -> Balance | None:
    return Balance(event.name)


def credit_balance(doc: Balance | None, event: Incremented) -> Balance | None:
    assert doc is not None, "a stream starts with Started"
    return Balance(doc.name, doc.count + 1, doc.total + event.amount)


def count_event(count: int, event: object) -> int:
    return count + 1


def totals_projection(name: str = "totals") -> Projection[int]:
    """A fold of the whole log into one value: the sum of every amount."""
    totals = Projection(name, initial=0)
    totals.on(add_amount)
    return totals


def balances_projection(name: str = "balances") -> DocumentProjection[Balance]:
    """One document per stream (the default key: the stream id)."""
    balances = DocumentProjection(name, doc_type=Balance)
    balances.on(open_balance)
    balances.on(credit_balance)
    return balances


def counter_projection(name: str = "counter") -> Projection[int]:
    """An `object` handler: every event of every type and aggregate."""
    counter = Projection(name, initial=0)
    counter.on(count_event)
    return counter


# -- workload 5: catching a projection up with an existing log ------------------------------------


CATCHUP_KINDS = ("fold", "documents")
ROUND = 10  # events per stream in each round of the prepared log
APPEND_STREAMS = 100  # streams per append of a round
BATCH = 1000  # events per transaction of the hand-written loop: our Runner's batch too
PAGE = 500  # notifications per page of their pull loop: their subscription's page


def per_stream(cfg: Config) -> int:
    return cfg.catchup_events // cfg.catchup_streams


def rounds(cfg: Config) -> Iterator[range]:
    """The versions each append round writes to every stream, ROUND at a time."""
    events = per_stream(cfg)
    for first in range(1, events + 1, ROUND):
        yield range(first, min(first + ROUND, events + 1))


def log_order(cfg: Config) -> Iterator[tuple[int, int]]:
    """(stream index, version) of every event of the prepared log, in log order."""
    for versions in rounds(cfg):
        for stream in range(cfg.catchup_streams):
            for version in versions:
                yield stream, version


def expected(kind: str, cfg: Config, count: int) -> int:
    """What a projection holds after the first `count` events of the log: the total of the
    amounts (version v carries v - 1), or the number of documents (streams started)."""
    head = list(itertools.islice(log_order(cfg), count))
    if kind == "fold":
        return sum(version - 1 for _, version in head)
    return len({stream for stream, _ in head})


def log_event(version: int, now: datetime) -> NewEvent:
    """A tally stream's event as our store encodes it: Started, then Incremented(v - 1)."""
    if version == 1:
        return NewEvent("Started", 1, '{"name":"bench"}', uuid.uuid4(), now)
    return NewEvent("Incremented", 1, f'{{"amount":{version - 1}}}', uuid.uuid4(), now)


def prepare_ours(storage: Storage, cfg: Config) -> None:
    """Our log, written fast with `storage.append`: each round gives every stream its next
    ROUND events, so streams interleave as in a live system (a batch of 1,000 events of the
    log touches 100 streams). One append (one transaction) per APPEND_STREAMS streams of a
    round: PostgreSQL joins a batch's events to its streams with a nested loop (streams x
    events rows), so one append of 1,000 streams x 10 events takes 6 s, 100 of them 0.1 s."""
    ids = [str(uuid.uuid4()) for _ in range(cfg.catchup_streams)]
    now = datetime.now(UTC)
    for versions in rounds(cfg):
        events = {v: log_event(v, now) for v in versions}  # payloads only depend on v
        for first in range(0, len(ids), APPEND_STREAMS):
            storage.append(
                [
                    StreamAppend(
                        "tally",
                        sid,
                        versions[0] - 1,
                        [attrs.evolve(events[v], event_id=uuid.uuid4()) for v in versions],
                    )
                    for sid in ids[first : first + APPEND_STREAMS]
                ]
            )


def prepare_theirs(app: EsTallies, cfg: Config) -> None:
    """The same log in `eventsourcing`, in the same order: each round, every aggregate saved
    in one `save` (one transaction)."""
    tallies = [EsTally(name="bench") for _ in range(cfg.catchup_streams)]
    for versions in rounds(cfg):
        for tally in tallies:
            for version in versions:
                if version > 1:
                    tally.increment(amount=version - 1)
        app.save(*tallies)


def ours_catchup(storage: Storage, kind: str, cfg: Config) -> float:
    """A store built with a projection new to the log: it catches up when constructed."""
    tally = tally_aggregate()
    projection = (
        totals_projection(unique(kind)) if kind == "fold" else balances_projection(unique(kind))
    )
    seconds, store = timed(
        lambda: EventStore(storage, aggregates=[tally], projections=[projection])
    )
    if isinstance(projection, DocumentProjection):
        docs = store.documents(projection)
        got = len(docs)
        last = per_stream(cfg) - 1
        assert docs[next(iter(docs))] == Balance("bench", last, last * (last + 1) // 2)
    else:
        got = store.view(projection)
    assert got == expected(kind, cfg, cfg.catchup_events), (kind, got)
    return seconds  # the store is not closed: closing it would close the shared storage


# The hand-written path: the driver alone, reading our events table. Per batch, one transaction:
# the checkpoint (with the fold's state), 1,000 events (the 4 columns a fold needs), JSON decoded
# to dicts and folded in memory, then the state or the touched documents (read first, then
# upserted in one statement) and the checkpoint written.


def hand_total(total: int, rows: list[tuple[Any, ...]]) -> int:
    """The running total after a batch of (position, stream_id, type, data) rows."""
    for _, _, kind, data in rows:
        if kind == "Incremented":
            total += json.loads(data)["amount"]
    return total


def hand_documents(docs: dict[str, dict[str, Any]], rows: list[tuple[Any, ...]]) -> None:
    """Fold a batch of rows into the documents they touch (loaded already; new ones absent)."""
    for _, stream_id, kind, data in rows:
        payload = json.loads(data)
        if kind == "Started":
            docs[stream_id] = {"name": payload["name"], "count": 0, "total": 0}
        elif kind == "Incremented":
            doc = docs[stream_id]
            doc["count"] += 1
            doc["total"] += payload["amount"]


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


_HAND_SQLITE = """
CREATE TABLE IF NOT EXISTS hand_checkpoints (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, state TEXT
);
CREATE TABLE IF NOT EXISTS hand_documents (
    projection TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (projection, key)
);
"""


def hand_sqlite(path: Path, kind: str, name: str) -> tuple[float, int]:
    """sqlite3 alone, at our pragmas, one BEGIN IMMEDIATE ... COMMIT per batch."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")  # as ours; the file is in WAL mode already
    conn.executescript(_HAND_SQLITE)
    select = (
        "SELECT position, stream_id, type, data FROM events"
        " WHERE position > ? ORDER BY position LIMIT ?"
    )
    upsert_docs = (
        "INSERT INTO hand_documents (projection, key, data) VALUES (?, ?, ?)"
        " ON CONFLICT (projection, key) DO UPDATE SET data = excluded.data"
    )
    upsert_checkpoint = (
        "INSERT INTO hand_checkpoints (name, position, state) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = excluded.state"
    )

    def batch() -> int:
        conn.execute("BEGIN IMMEDIATE")
        found = conn.execute(
            "SELECT position, state FROM hand_checkpoints WHERE name = ?", (name,)
        ).fetchone()
        after, state = found or (0, None)
        rows = conn.execute(select, (after, BATCH)).fetchall()
        if rows and kind == "fold":
            state = str(hand_total(int(state or 0), rows))
        elif rows:
            keys = sorted({row[1] for row in rows})
            marks = ",".join("?" * len(keys))
            query = (
                f"SELECT key, data FROM hand_documents WHERE projection = ? AND key IN ({marks})"
            )
            docs = {key: json.loads(data) for key, data in conn.execute(query, (name, *keys))}
            hand_documents(docs, rows)
            conn.executemany(upsert_docs, [(name, key, compact(docs[key])) for key in keys])
        if rows:
            conn.execute(upsert_checkpoint, (name, rows[-1][0], state))
        conn.execute("COMMIT")
        return len(rows)

    try:
        seconds, _ = timed(lambda: all(iter(batch, 0)))  # batches until one is empty
        if kind == "fold":
            query, params = "SELECT state FROM hand_checkpoints WHERE name = ?", (name,)
        else:
            query, params = "SELECT count(*) FROM hand_documents WHERE projection = ?", (name,)
        return seconds, int(conn.execute(query, params).fetchone()[0])
    finally:
        conn.close()


_HAND_POSTGRES = """
CREATE TABLE IF NOT EXISTS {schema}.hand_checkpoints (
    name text PRIMARY KEY, position bigint NOT NULL, state text
);
CREATE TABLE IF NOT EXISTS {schema}.hand_documents (
    projection text NOT NULL, key text COLLATE "C" NOT NULL, data json NOT NULL,
    PRIMARY KEY (projection, key)
);
"""


def hand_postgres(dsn: str, schema: str, kind: str, name: str) -> tuple[float, int]:
    """psycopg alone, with what ours does too: the checkpoint row locked (FOR UPDATE), the
    documents read with `= ANY` and upserted with one `unnest` statement, json columns."""

    def q(text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=sql.Identifier(schema))  # type: ignore[arg-type]

    checkpoint = q(
        "SELECT position, state FROM {schema}.hand_checkpoints WHERE name = %s FOR UPDATE"
    )
    select = q(
        "SELECT position, stream_id, type, data::text FROM {schema}.events"
        " WHERE position > %s ORDER BY position LIMIT %s"
    )
    read_docs = q(
        "SELECT key, data::text FROM {schema}.hand_documents"
        " WHERE projection = %s AND key = ANY(%s)"
    )
    upsert_docs = q(
        "INSERT INTO {schema}.hand_documents (projection, key, data)"
        " SELECT %s, k, d::json FROM unnest(%s::text[], %s::text[]) AS t(k, d)"
        " ON CONFLICT (projection, key) DO UPDATE SET data = excluded.data"
    )
    upsert_checkpoint = q(
        "INSERT INTO {schema}.hand_checkpoints (name, position, state) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = excluded.state"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q(_HAND_POSTGRES))

        def batch() -> int:
            with conn.transaction():
                after, state = conn.execute(checkpoint, (name,)).fetchone() or (0, None)
                rows = conn.execute(select, (after, BATCH)).fetchall()
                if rows and kind == "fold":
                    state = str(hand_total(int(state or 0), rows))
                elif rows:
                    keys = sorted({row[1] for row in rows})
                    docs = {k: json.loads(d) for k, d in conn.execute(read_docs, (name, keys))}
                    hand_documents(docs, rows)
                    conn.execute(upsert_docs, (name, keys, [compact(docs[k]) for k in keys]))
                if rows:
                    conn.execute(upsert_checkpoint, (name, rows[-1][0], state))
            return len(rows)

        seconds, _ = timed(lambda: all(iter(batch, 0)))
        if kind == "fold":
            query = q("SELECT state FROM {schema}.hand_checkpoints WHERE name = %s")
        else:
            query = q("SELECT count(*) FROM {schema}.hand_documents WHERE projection = %s")
        row = conn.execute(query, (name,)).fetchone()
        return seconds, int(row[0]) if row else 0


def hand_catchup(backend: str, cfg: Config, where: str, kind: str) -> float:
    name = unique(kind)
    if backend == "sqlite":
        seconds, got = hand_sqlite(cfg.workdir / f"{where}.db", kind, name)
    else:
        seconds, got = hand_postgres(cfg.dsn, where, kind, name)
    assert got == expected(kind, cfg, cfg.catchup_events), (kind, got)
    return seconds


# Theirs: 9.5's projection module. A `Projection` is handed (domain event, tracking) pairs and
# writes a materialised view: a tracking recorder with tables of its own, whose every update
# commits with the event's tracking record, so each event is one transaction.


class EsSqliteView(SQLiteTrackingRecorder):
    """Their materialised view on SQLite: a total and one row per tally."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS es_totals (name TEXT PRIMARY KEY, total INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS es_balances (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " count INTEGER NOT NULL, total INTEGER NOT NULL)",
        ]

    def add_total(self, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            self._insert_tracking(c, tracking)
            c.execute(
                "INSERT INTO es_totals VALUES ('total', ?)"
                " ON CONFLICT (name) DO UPDATE SET total = total + excluded.total",
                (amount,),
            )

    def open_balance(self, tally_id: str, name: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            self._insert_tracking(c, tracking)
            c.execute("INSERT INTO es_balances VALUES (?, ?, 0, 0)", (tally_id, name))

    def credit_balance(self, tally_id: str, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            self._insert_tracking(c, tracking)
            c.execute(
                "UPDATE es_balances SET count = count + 1, total = total + ? WHERE id = ?",
                (amount, tally_id),
            )

    def result(self, kind: str) -> int:
        query = (
            "SELECT sum(total) FROM es_totals"
            if kind == "fold"
            else ("SELECT count(*) FROM es_balances")
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(query)
            return int(c.fetchone()[0] or 0)

    def reset(self, application_name: str) -> None:
        """Forget what was projected, for the next run on the same log."""
        with self.datastore.transaction(commit=True) as c:
            c.execute("DELETE FROM tracking WHERE application_name = ?", (application_name,))
            c.execute("DELETE FROM es_totals")
            c.execute("DELETE FROM es_balances")


class EsPostgresView(PostgresTrackingRecorder):
    """Their materialised view on PostgreSQL: the same tables and statements."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = sql.Identifier(datastore.schema)
        self.totals = sql.SQL("{}.es_totals").format(schema)
        self.balances = sql.SQL("{}.es_balances").format(schema)
        self.tracking = sql.SQL("{}.{}").format(schema, sql.Identifier(self.tracking_table_name))
        self.sql_create_statements += [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, total bigint NOT NULL)"
            ).format(self.totals),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, name text NOT NULL,"
                " count bigint NOT NULL, total bigint NOT NULL)"
            ).format(self.balances),
        ]
        self.add_total_sql = sql.SQL(
            "INSERT INTO {} AS t VALUES ('total', %s)"
            " ON CONFLICT (name) DO UPDATE SET total = t.total + excluded.total"
        ).format(self.totals)
        self.open_sql = sql.SQL("INSERT INTO {} VALUES (%s, %s, 0, 0)").format(self.balances)
        self.credit_sql = sql.SQL(
            "UPDATE {} SET count = count + 1, total = total + %s WHERE id = %s"
        ).format(self.balances)

    def add_total(self, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(self.add_total_sql, (amount,), prepare=True)

    def open_balance(self, tally_id: str, name: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(self.open_sql, (tally_id, name), prepare=True)

    def credit_balance(self, tally_id: str, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(self.credit_sql, (amount, tally_id), prepare=True)

    def result(self, kind: str) -> int:
        query = sql.SQL(
            "SELECT sum(total) AS n FROM {}" if kind == "fold" else ("SELECT count(*) AS n FROM {}")
        ).format(self.totals if kind == "fold" else self.balances)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query)
            return int(curs.fetchone()["n"] or 0)

    def reset(self, application_name: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                sql.SQL("DELETE FROM {} WHERE application_name = %s").format(self.tracking),
                (application_name,),
            )
            curs.execute(sql.SQL("DELETE FROM {}").format(self.totals))
            curs.execute(sql.SQL("DELETE FROM {}").format(self.balances))


class EsTotals(EsProjection[Any]):
    """Their fold: each Incremented adds to one row; any other event is only tracked."""

    name = "es_totals"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register(EsTally.Incremented)  # type: ignore[attr-defined]
    def incremented(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.add_total(domain_event.amount, tracking)


class EsBalances(EsProjection[Any]):
    """Their documents: one row per tally, inserted by Started, updated by Incremented."""

    name = "es_balances"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register(EsTally.Started)  # type: ignore[attr-defined]
    def started(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.open_balance(str(domain_event.originator_id), domain_event.name, tracking)

    @process_event.register(EsTally.Incremented)  # type: ignore[attr-defined]
    def incremented(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.credit_balance(str(domain_event.originator_id), domain_event.amount, tracking)


def theirs_catchup_runner(env: dict[str, str], kind: str, last_id: int) -> tuple[float, int]:
    """PostgreSQL: their `ProjectionRunner` (application, subscription, processing thread) until
    the view has tracked `last_id`, polled every 10 ms from here."""
    projection = EsTotals if kind == "fold" else EsBalances
    gc.collect()
    begin = time.perf_counter()
    with ProjectionRunner(
        application_class=EsTallies,
        projection_class=projection,
        view_class=EsPostgresView,
        env=env,
    ) as runner:
        view = runner.view
        while (view.max_tracking_id(runner.app_name) or 0) < last_id:
            runner.run_forever(timeout=0.01)  # re-raises an error of the processing thread
        seconds = time.perf_counter() - begin
    got = view.result(kind)  # the runner stopped at once, maybe a few events past last_id
    view.reset(runner.app_name)
    view.datastore.close()
    return seconds, got


def theirs_catchup_pull(env: dict[str, str], kind: str, count: int) -> tuple[float, int]:
    """SQLite: 9.5's `ProjectionRunner` needs a subscription, which its SQLite recorder does not
    offer (NotImplementedError), so this is the runner's loop without its threads: pages of
    notifications, each event mapped and handed to the projection with its tracking."""
    projection_class = EsTotals if kind == "fold" else EsBalances
    gc.collect()
    begin = time.perf_counter()
    app = EsTallies(env=env)
    factory = InfrastructureFactory[Any].construct(env=Environment(projection_class.name, env))
    view = factory.tracking_recorder(EsSqliteView)
    projection = projection_class(view=view)
    to_event, done, last = app.mapper.to_domain_event, 0, 0
    while done < count:
        page = app.recorder.select_notifications(last, PAGE, inclusive_of_start=False)
        for notification in page[: count - done]:
            projection.process_event(to_event(notification), Tracking(app.name, notification.id))
        done += min(len(page), count - done)
        last = page[-1].id
    seconds = time.perf_counter() - begin
    got = view.result(kind)
    view.reset(app.name)
    factory.close()
    app.close()
    return seconds, got


def theirs_catchup(backend: str, env: dict[str, str], kind: str, cfg: Config, last: int) -> float:
    count = min(cfg.catchup_theirs, cfg.catchup_events)
    if backend == "postgres":
        seconds, got = theirs_catchup_runner(env, kind, last)
        assert got >= expected(kind, cfg, count), (kind, got)  # the runner may go a bit further
    else:
        seconds, got = theirs_catchup_pull(env, kind, count)
        assert got == expected(kind, cfg, count), (kind, got)
    return seconds


# -- workload 6: inline projections and a process manager on execute -------------------------------


@attrs.frozen
class Place:
    amount: int


@attrs.frozen
class Placed:
    amount: int


def placed(state: int, event: Placed) -> int:
    return state + 1


def place(command: Place, state: int) -> Placed:
    return Placed(command.amount)


def order_aggregate() -> Aggregate[int]:
    order = Aggregate("order", initial=0)
    order.evolve(placed)
    order.decide(place)
    return order


def fulfilment(tally: Aggregate[Tally]) -> ProcessManager[None]:
    """Stateless: each Placed order sends one Bump to the tally stream of the same id."""
    manager: ProcessManager[None] = ProcessManager("fulfilment")

    def bump_tally(state: None, event: Placed, record: Recorded[Any]) -> Send:
        return Send(tally, record.stream_id, Bump())

    manager.react(bump_tally)
    return manager


# What runs inline with each command; the last two execute Place on an order stream, the others
# Bump on a tally stream.
INLINE_SETUPS = ("none", "1 projection", "3 projections", "process manager", "2 commands by hand")


def ours_inline(backend: str, cfg: Config, setup: str) -> float:
    tally, order = tally_aggregate(), order_aggregate()
    projections: list[Projection[Any] | DocumentProjection[Any]] = []
    if setup in ("1 projection", "3 projections"):
        projections.append(totals_projection())
    if setup == "3 projections":
        projections += [balances_projection(), counter_projection()]
    managers = [fulfilment(tally)] if setup == "process manager" else []
    ids = [f"s{i}" for i in range(cfg.inline_streams)]
    with our_store(
        backend, cfg, tally, others=[order], projections=projections, process_managers=managers
    ) as store:
        for sid in ids:  # untimed: every tally stream opened, and its document with it
            store.execute(tally, sid, Start("bench", 0)).unwrap()
        seconds, _ = timed(lambda: inline_commands(store, setup, tally, order, ids, cfg))
        check_inline(store, tally, ids, projections, cfg)
    return seconds


def inline_commands(
    store: EventStore,
    setup: str,
    tally: Aggregate[Tally],
    order: Aggregate[int],
    ids: list[str],
    cfg: Config,
) -> None:
    """Round robin over the streams, so streams stay short: no snapshots, and a command loads
    at most inline_commands / inline_streams + 1 events."""
    for i in range(cfg.inline_commands):
        sid = ids[i % len(ids)]
        if setup == "process manager":
            store.execute(order, sid, Place(1)).unwrap()  # the manager adds Bump on tally/sid
        elif setup == "2 commands by hand":
            with store.transaction():
                store.execute(order, sid, Place(1)).unwrap()
                store.execute(tally, sid, Bump()).unwrap()
        else:
            store.execute(tally, sid, Bump()).unwrap()


def check_inline(
    store: EventStore,
    tally: Aggregate[Tally],
    ids: list[str],
    projections: list[Projection[Any] | DocumentProjection[Any]],
    cfg: Config,
) -> None:
    bumps = sum(store.load(tally, sid).state.count for sid in ids)
    assert bumps == cfg.inline_commands, bumps
    for projection in projections:
        if isinstance(projection, DocumentProjection):
            assert len(store.documents(projection)) == len(ids)
        else:
            every = len(ids) if projection.name == "counter" else 0  # + the Started events
            assert store.view(projection) == cfg.inline_commands + every, projection


# -- running, reporting ----------------------------------------------------------------------------


def rate(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def number(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Label columns (the first two) and a trailing text column flush left, figures right."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    left = {0, 1, len(headers) - 1} if headers[-1] in ("notes", "what runs") else {0, 1}
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print(line)
    for row in rows:
        cells = [str(c).ljust(w) if i in left else str(c).rjust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=True))]  # fmt: skip
        print("  ".join(cells).rstrip())


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_write_load(cfg: Config, backend: str) -> list[list[str]]:
    """Workloads 1 and 2 on one backend: ours, theirs and the raw driver, interleaved."""
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "theirs": [], "raw": [], "normal": []}
    raw = {"sqlite": raw_sqlite, "postgres": raw_psycopg}.get(backend)
    normal = backend == "sqlite"
    for i in range(cfg.repeats):
        for side, work in (
            ("ours", lambda: ours_write_load(backend, cfg)),
            ("theirs", lambda: theirs_write_load(backend, cfg)),
            ("normal", (lambda: theirs_normal_write_load(backend, cfg)) if normal else None),
            ("raw", (lambda: raw(cfg)) if raw else None),
        ):
            if work is None:
                continue
            write, load = work()
            runs[side].append((write, load))
            note(f"  {backend} run {i + 1}: {side:6} write {write:7.2f}s  load {load:7.2f}s")
    events = cfg.streams * cfg.events
    rows = []
    for index, workload in enumerate(("write", "load+fold")):
        ours, theirs = (rate(events, [r[index] for r in runs[s]]) for s in ("ours", "theirs"))
        physical = rate(events, [r[index] for r in runs["raw"]]) if runs["raw"] else None
        rows.append(
            [
                workload,
                backend,
                number(ours),
                number(theirs),
                ratio(ours, theirs),
                number(physical),
                f"{ours / physical:.0%}" if physical else "-",
                "",
            ]
        )
    if runs["normal"]:  # write only: synchronous does not touch reads
        ours = rate(events, [r[0] for r in runs["ours"]])
        theirs = rate(events, [r[0] for r in runs["normal"]])
        why = "theirs with PRAGMA synchronous=NORMAL, as ours (their default: FULL)"
        rows.insert(1, ["write", backend, number(ours), number(theirs), ratio(ours, theirs),
                        "", "", why])  # fmt: skip
    return rows


def bench_concurrent(cfg: Config) -> list[list[str]]:
    runs: dict[str, list[Concurrent]] = {"ours": [], "theirs": []}
    for i in range(cfg.repeats):
        for side, work in (("ours", ours_concurrent), ("theirs", theirs_concurrent)):
            result = work(cfg)
            runs[side].append(result)
            note(
                f"  concurrent run {i + 1}: {side:6} {result.events} events in"
                f" {result.seconds:.2f}s, skipped {result.skipped},"
                f" duplicates {result.duplicates}, out of order {result.out_of_order},"
                f" tail lag {result.lag:.3f}s"
            )
    ours, theirs = (
        rate(runs[s][0].events, [r.seconds for r in runs[s]]) for s in ("ours", "theirs")
    )
    skipped = {s: sum(r.skipped + r.duplicates + r.out_of_order for r in runs[s]) for s in runs}
    lag = {s: max(r.lag for r in runs[s]) for s in runs}
    return [
        [
            f"{cfg.writers} writers + tail",
            "postgres",
            number(ours),
            number(theirs),
            ratio(ours, theirs),
            "-",
            "-",
            f"skipped+dup+reordered: ours {skipped['ours']}, theirs {skipped['theirs']};"
            f" worst tail lag: ours {lag['ours']:.2f}s, theirs {lag['theirs']:.2f}s",
        ]
    ]


def bench_hot(cfg: Config) -> list[list[str]]:
    rows = []
    for lock_streams in (True, False):
        runs = []
        for i in range(cfg.repeats):
            result = hot_stream(cfg, lock_streams)
            runs.append(result)
            note(
                f"  hot run {i + 1}: lock_streams={lock_streams} {result.commands} commands in"
                f" {result.seconds:.2f}s, {result.conflicts} conflicts, {result.failed} failed"
            )
        commands = statistics.median(r.commands for r in runs)
        conflicts = statistics.median(r.conflicts / max(r.commands, 1) for r in runs)
        rows.append(
            [
                f"lock_streams={lock_streams}",
                f"{cfg.processes} processes",
                f"{commands / statistics.median(r.seconds for r in runs):,.0f}",
                f"{conflicts:.2f}",
                str(sum(r.failed for r in runs)),
            ]
        )
    return rows


def bench_catchup(cfg: Config, backend: str) -> list[list[str]]:
    """Workload 5 on one backend: each log written once per library, then per repeat and kind,
    interleaved: ours, the hand-written loop and theirs (on SQLite also at synchronous=NORMAL)."""
    runs: dict[tuple[str, str], list[float]] = defaultdict(list)
    count = min(cfg.catchup_theirs, cfg.catchup_events)
    where = unique("fn")
    with our_storage(backend, cfg, name=where) as storage, their_env(backend, cfg) as env:
        seconds, _ = timed(lambda: prepare_ours(storage, cfg))
        app = EsTallies(env=env)
        try:
            theirs, _ = timed(lambda: prepare_theirs(app, cfg))
            last = app.recorder.select_notifications(1, count)[-1].id
        finally:
            app.close()
        note(f"  {backend}: logs written in {seconds:.1f}s (ours) and {theirs:.1f}s (theirs)")
        for i in range(cfg.repeats):
            for kind in CATCHUP_KINDS:
                for side, work in (
                    ("ours", partial(ours_catchup, storage, kind, cfg)),
                    ("hand", partial(hand_catchup, backend, cfg, where, kind)),
                    ("theirs", partial(theirs_catchup, backend, env, kind, cfg, last)),
                    ("normal", partial(theirs_normal_catchup, env, kind, cfg, last)
                               if backend == "sqlite" else None),
                ):  # fmt: skip
                    if work is None:
                        continue
                    seconds = work()
                    runs[kind, side].append(seconds)
                    events = count if side in ("theirs", "normal") else cfg.catchup_events
                    note(f"  {backend} run {i + 1}: {kind:9} {side:6} {events:,} events in"
                         f" {seconds:6.2f}s, {events / seconds:9,.0f}/s")  # fmt: skip
    rows = []
    for kind in CATCHUP_KINDS:
        ours, hand = (rate(cfg.catchup_events, runs[kind, s]) for s in ("ours", "hand"))
        theirs = rate(count, runs[kind, "theirs"])
        notes = []
        if count < cfg.catchup_events:
            notes.append(f"theirs on the first {count:,} events")
        if runs[kind, "normal"]:
            notes.append(f"theirs at synchronous=NORMAL: {rate(count, runs[kind, 'normal']):,.0f}")
        rows.append(
            [
                kind,
                backend,
                number(ours),
                number(hand),
                f"{ours / hand:.0%}",
                number(theirs),
                ratio(ours, theirs),
                "; ".join(notes),
            ]
        )
    return rows


def theirs_normal_catchup(env: dict[str, str], kind: str, cfg: Config, last: int) -> float:
    with their_sqlite_synchronous_normal():
        return theirs_catchup("sqlite", env, kind, cfg, last)


def bench_inline(cfg: Config, backend: str) -> list[list[str]]:
    """Workload 6 on one backend: every setup on a fresh store, interleaved per repeat."""
    runs: dict[str, list[float]] = defaultdict(list)
    for i in range(cfg.repeats):
        for setup in INLINE_SETUPS:
            seconds = ours_inline(backend, cfg, setup)
            runs[setup].append(seconds)
            note(f"  {backend} run {i + 1}: {setup:18} {cfg.inline_commands:,} commands in"
                 f" {seconds:6.2f}s, {cfg.inline_commands / seconds:7,.0f}/s")  # fmt: skip
    rates = {setup: rate(cfg.inline_commands, runs[setup]) for setup in INLINE_SETUPS}
    what = {
        "none": "Bump on a tally stream, no component",
        "1 projection": "+ totals (fold)",
        "3 projections": "+ totals (fold), balances (documents), counter (object handler)",
        "process manager": "Place on an order stream; the manager sends Bump to tally/<same id>:"
        f" {rates['process manager'] / rates['2 commands by hand']:.0%} of the row below",
        "2 commands by hand": "Place + Bump in one store.transaction(), no component",
    }
    return [
        [
            setup,
            backend,
            number(rates[setup]),
            f"{rates[setup] / rates['none'] - 1:+.0%}" if setup != "none" else "",
            what[setup],
        ]
        for setup in INLINE_SETUPS
    ]


def print_profile(title: str, profile: cProfile.Profile, wall: float, top: int = 15) -> None:
    """Top functions by own CPU time, then ours by cumulative CPU time; shares of the total."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]

    def where(func: tuple[str, int, str]) -> str:
        path, line, name = func
        path = path.split("site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        return f"{path}:{line}({name})" if line else name

    print(f"\n### {title}: {wall:.2f}s wall, {total:.2f}s CPU in this process (profiled)")
    print("own CPU time (tottime):")
    for func, (_, calls, tt, ct, _) in sorted(entries.items(), key=lambda e: -e[1][2])[:top]:
        print(f"  {tt / total:6.1%} own {ct / total:6.1%} cum {calls:>9,} calls  {where(func)}")
    print("eventsourcing_fn functions by cumulative CPU time:")
    ours = [e for e in entries.items() if "eventsourcing_fn" in e[0][0]]
    for func, (_, calls, tt, ct, _) in sorted(ours, key=lambda e: -e[1][3])[:top]:
        print(f"  {ct / total:6.1%} cum {tt / total:6.1%} own {calls:>9,} calls  {where(func)}")


def profile_ours(cfg: Config, backend: str) -> None:
    """Our write and load once more under cProfile, timed by CPU: time waiting on the database
    shows as the gap between wall and CPU, and the shares are of the CPU this process spent."""
    tally = tally_aggregate()
    with our_store(backend, cfg, tally) as store:
        profile = cProfile.Profile(time.process_time)
        wall, ids = timed(lambda: profile.runcall(ours_write, store, tally, cfg))
        print_profile(f"ours, write on {backend}", profile, wall)
        profile = cProfile.Profile(time.process_time)
        wall, _ = timed(lambda: profile.runcall(ours_load, store, tally, ids, cfg))
        print_profile(f"ours, load+fold on {backend}", profile, wall)


def profile_catchup(cfg: Config, backend: str) -> None:
    """Our catch-up of each kind once more under cProfile, on a log of the configured size."""
    with our_storage(backend, cfg) as storage:
        prepare_ours(storage, cfg)
        for kind in CATCHUP_KINDS:
            tally = tally_aggregate()
            projection = (
                totals_projection(unique(kind))
                if kind == "fold"
                else (balances_projection(unique(kind)))
            )
            profile = cProfile.Profile(time.process_time)
            build = partial(EventStore, storage, aggregates=[tally], projections=[projection])
            wall, _ = timed(partial(profile.runcall, build))
            print_profile(f"ours, catch-up of {kind} on {backend}", profile, wall)


def profile_inline(cfg: Config, backend: str) -> None:
    """Our execute with the 3 inline projections once more under cProfile."""
    tally, order = tally_aggregate(), order_aggregate()
    projections = [totals_projection(), balances_projection(), counter_projection()]
    ids = [f"s{i}" for i in range(cfg.inline_streams)]
    with our_store(backend, cfg, tally, others=[order], projections=projections) as store:
        for sid in ids:
            store.execute(tally, sid, Start("bench", 0)).unwrap()
        profile = cProfile.Profile(time.process_time)
        run = inline_commands
        wall, _ = timed(
            lambda: profile.runcall(run, store, "3 projections", tally, order, ids, cfg)
        )
        print_profile(f"ours, execute with 3 inline projections on {backend}", profile, wall)


def postgres_version(dsn: str) -> str | None:
    if psycopg is None:
        return None
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except psycopg.Error as exc:
        note(f"PostgreSQL unreachable at {dsn} ({exc}): its workloads are skipped")
        return None


def versions(pg: str | None) -> str:
    from importlib.metadata import version

    parts = [
        f"Python {sys.version.split()[0]}",
        f"SQLite {sqlite3.sqlite_version}",
        f"PostgreSQL {pg or 'n/a'}",
        *(f"{p} {version(p)}" for p in ("eventsourcing_fn", "eventsourcing", "psycopg")),
        f"{os.cpu_count()} CPUs",
    ]
    return ", ".join(parts)


def parse(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arg = parser.add_argument
    arg("--streams", type=int, default=10_000, help="streams written and loaded (10000)")
    arg("--events", type=int, default=10, help="events per stream, one command each (10)")
    arg("--repeats", type=int, default=3, help="runs per measurement; the median is shown (3)")
    arg("--writers", type=int, default=8, help="concurrent writer threads (8)")
    arg("--writer-commands", type=int, default=250, help="commands per writer thread (250)")
    arg("--processes", type=int, default=4, help="processes on the hot stream (4)")
    arg("--hot-commands", type=int, default=200, help="commands per hot-stream process (200)")
    arg("--hot-retries", type=int, default=100, help="max_retries on the hot stream (100)")
    arg("--hot-snapshot-every", type=int, default=50, help="hot stream snapshots, 0: none (50)")
    arg("--catchup-events", type=int, default=100_000, help="events in the catch-up log (100000)")
    arg("--catchup-streams", type=int, default=1_000, help="streams of that log (1000)")
    arg(
        "--catchup-theirs",
        type=int,
        default=10_000,
        help="events `eventsourcing` projects of that log: it commits per event (10000)",
    )
    arg("--inline-commands", type=int, default=5_000, help="commands per inline run (5000)")
    arg("--inline-streams", type=int, default=300, help="streams they go round (300)")
    arg("--backends", default=",".join(BACKENDS), help="comma-separated subset of %(default)s")
    arg("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of %(default)s")
    arg("--dsn", default=DEFAULT_DSN, help="PostgreSQL conninfo (%(default)s)")
    arg(
        "--pg-async-commit",
        action="store_true",
        help="PGOPTIONS='-c synchronous_commit=off' for every PostgreSQL session of the run"
        " (ours, theirs and raw alike): the libraries' cost without the commit flush",
    )
    arg("--quick", action="store_true", help="smoke run: small sizes, 1 repeat, small races")
    arg("--profile", action="store_true", help="then profile ours in each workload (cProfile)")
    args = parser.parse_args(argv)
    if args.pg_async_commit:  # read by libpq, so by both libraries' connections and raw psycopg
        os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    if args.quick:
        args.streams, args.repeats, args.writer_commands, args.hot_commands = 300, 1, 20, 20
        args.catchup_events, args.catchup_streams, args.catchup_theirs = 5_000, 100, 1_000
        args.inline_commands, args.inline_streams = 300, 50
    backends = tuple(b for b in args.backends.split(",") if b)
    workloads = tuple(w for w in args.workloads.split(",") if w)
    for given, known in ((backends, BACKENDS), (workloads, WORKLOADS)):
        if unknown := set(given) - set(known):
            parser.error(f"unknown {sorted(unknown)}: choose from {', '.join(known)}")
    return Config(
        streams=args.streams,
        events=args.events,
        repeats=args.repeats,
        writers=args.writers,
        writer_commands=args.writer_commands,
        processes=args.processes,
        hot_commands=args.hot_commands,
        hot_retries=args.hot_retries,
        hot_snapshot_every=args.hot_snapshot_every,
        catchup_events=args.catchup_events,
        catchup_streams=args.catchup_streams,
        catchup_theirs=args.catchup_theirs,
        inline_commands=args.inline_commands,
        inline_streams=args.inline_streams,
        backends=backends,
        workloads=workloads,
        dsn=args.dsn,
        workdir=Path(),  # set by main once the arguments are good
        profile=args.profile,
    )


def main(argv: list[str] | None = None) -> None:
    cfg = parse(argv)
    cfg = attrs.evolve(cfg, workdir=Path(tempfile.mkdtemp(prefix="eventsourcing_fn_bench_")))
    pg = postgres_version(cfg.dsn) if "postgres" in cfg.backends else None
    backends = [b for b in cfg.backends if b != "postgres" or pg]
    sql_backends = [b for b in backends if b != "memory"]  # catch-up compares SQL drivers
    print(versions(pg), "|", "PGOPTIONS=" + os.environ.get("PGOPTIONS", ""))
    print(
        f"{cfg.streams:,} streams x {cfg.events} events, median of {cfg.repeats};"
        f" {cfg.writers} writers x {cfg.writer_commands} commands x {cfg.events} events;"
        f" hot stream: {cfg.processes} processes x {cfg.hot_commands} commands,"
        f" max_retries={cfg.hot_retries}, snapshot_every={cfg.hot_snapshot_every or None};"
        f" catch-up: {cfg.catchup_events:,} events in {cfg.catchup_streams:,} streams"
        f" (theirs: the first {min(cfg.catchup_theirs, cfg.catchup_events):,});"
        f" inline: {cfg.inline_commands:,} commands over {cfg.inline_streams} streams"
    )
    rows: list[list[str]] = []
    hot: list[list[str]] = []
    catchup: list[list[str]] = []
    inline: list[list[str]] = []
    began = time.perf_counter()
    try:
        if {"write", "load"} & set(cfg.workloads):
            for backend in backends:
                note(f"write + load on {backend}")
                rows += [r for r in bench_write_load(cfg, backend)
                         if r[0].split("+")[0] in cfg.workloads]  # fmt: skip
        if pg and "concurrent" in cfg.workloads:
            note("concurrent writers + tailing reader on postgres")
            rows += bench_concurrent(cfg)
        if pg and "hot" in cfg.workloads:
            note("hot stream on postgres")
            hot = bench_hot(cfg)
        if "catchup" in cfg.workloads:
            for backend in sql_backends:
                note(f"catch-up on {backend}")
                catchup += bench_catchup(cfg, backend)
        if "inline" in cfg.workloads:
            for backend in backends:
                note(f"inline components on {backend}")
                inline += bench_inline(cfg, backend)
        print(f"\n{time.perf_counter() - began:.0f}s in all")
        if rows:
            print("\nevents/s (higher is better)\n")
            headers = ["workload", "backend", "ours", "eventsourcing", "ours/theirs"]
            print_table([*headers, "raw driver", "ours/raw", "notes"], rows)
        if hot:
            print("\nhot stream, ours only: commands/s and version conflicts per command\n")
            print_table(["mode", "writers", "commands/s", "conflicts/cmd", "failed"], hot)
        if catchup:
            print(
                f"\ncatch-up of a new projection over {cfg.catchup_events:,} events: events/s"
                f" (higher is better); hand-written: the driver alone, batches of {BATCH:,}\n"
            )
            headers = ["projection", "backend", "ours", "hand-written", "ours/hand"]
            print_table([*headers, "eventsourcing", "ours/theirs", "notes"], catchup)
        if inline:
            print(
                f"\ninline components: commands/s, {cfg.inline_commands:,} commands over"
                f" {cfg.inline_streams} streams, one transaction each\n"
            )
            print_table(["components", "backend", "commands/s", "vs none", "what runs"], inline)
        if cfg.profile:
            for backend in backends:
                if {"write", "load"} & set(cfg.workloads):
                    profile_ours(cfg, backend)
                if "catchup" in cfg.workloads and backend in sql_backends:
                    profile_catchup(cfg, backend)
                if "inline" in cfg.workloads:
                    profile_inline(cfg, backend)
    finally:
        shutil.rmtree(cfg.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
