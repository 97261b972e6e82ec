#!/usr/bin/env python3
"""eventsourcing_fn measured against the `eventsourcing` package (9.5) and the raw drivers.

    benchmarks/setup.sh                  # once: benchmarks/.venv-bench with both libraries
    python benchmarks/run.py             # everything, full size (re-runs itself in .venv-bench)
    python benchmarks/run.py --quick     # a small smoke run
    python benchmarks/run.py --help      # sizes, repeats, backends, workloads, --profile

Workloads (each result is the median of --repeats runs, every run on a fresh store):
  write       N streams x E events, one command = one transaction per stream
  load        load and fold every one of those streams (no snapshots, no caches)
  concurrent  PostgreSQL: W writer threads appending, one thread tailing the global log;
              counts events the tail skipped (committed, yet never seen by it)
  hot         PostgreSQL: P processes executing on ONE stream with max_retries, with and
              without postgres_storage(lock_streams=True); commands/s and conflicts/command
`raw` rows are the driver alone (sqlite3 / psycopg) writing and reading the same rows, the same
table, one transaction per stream: the physical limit for this machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:  # the comparison needs `eventsourcing`, installed only in benchmarks/.venv-bench
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate as EsAggregate
    from eventsourcing.domain import event
except ImportError:
    _BENCH_PYTHON = Path(__file__).resolve().parent / ".venv-bench" / "bin" / "python"
    if not _BENCH_PYTHON.exists() or Path(sys.executable) == _BENCH_PYTHON:
        sys.exit("`eventsourcing` is not installed: run benchmarks/setup.sh first")
    os.execv(_BENCH_PYTHON, [str(_BENCH_PYTHON), *sys.argv])

import attrs
from returns.result import Success

from eventsourcing_fn import Aggregate, EventStore
from eventsourcing_fn.storage import (
    VersionConflict,
    memory_storage,
    sqlite_schema,
    sqlite_storage,
)

try:
    import psycopg

    from eventsourcing_fn.storage import postgres_schema, postgres_storage
except ImportError:  # without the postgres extra the PostgreSQL workloads are skipped
    psycopg = None  # type: ignore[assignment]

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("memory", "sqlite", "postgres")
WORKLOADS = ("write", "load", "concurrent", "hot")


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
def our_store(
    backend: str,
    cfg: Config,
    aggregate: Aggregate[Tally],
    *,
    lock_streams: bool = False,
    schema: str | None = None,
) -> Iterator[EventStore]:
    """A fresh store of this project on `backend`; its file or schema is removed afterwards."""
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "memory":
        storage = memory_storage()
    elif backend == "sqlite":
        path = cfg.workdir / f"{unique('fn')}.db"
        storage = sqlite_storage(path)
        cleanup = lambda: remove_sqlite(path)  # noqa: E731
    else:
        name = schema or unique("fn")
        storage = postgres_storage(cfg.dsn, schema=name, lock_streams=lock_streams)
        cleanup = lambda: drop_schema(cfg.dsn, name)  # noqa: E731
    store = EventStore(storage, aggregates=[aggregate])
    try:
        yield store
    finally:
        store.close()
        cleanup()


@contextmanager
def their_app(
    backend: str, cfg: Config, *, pool_size: int = 5, schema: str | None = None
) -> Iterator[EsTallies]:
    """A fresh `eventsourcing` application on `backend`, configured by its own env settings."""
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
    # Application(env=...) takes exactly the environment variables it would read from
    # os.environ; passing them here keeps them out of the process (and away from ours).
    app = EsTallies(env=env)
    try:
        yield app
    finally:
        app.close()
        cleanup()


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


# -- running, reporting ----------------------------------------------------------------------------


def rate(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def number(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print(line)
    for row in rows:
        cells = [str(c).rjust(w) if i >= 2 else str(c).ljust(w) for i, (c, w) in
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
    arg("--backends", default=",".join(BACKENDS), help="comma-separated subset of %(default)s")
    arg("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of %(default)s")
    arg("--dsn", default=DEFAULT_DSN, help="PostgreSQL conninfo (%(default)s)")
    arg(
        "--pg-async-commit",
        action="store_true",
        help="PGOPTIONS='-c synchronous_commit=off' for every PostgreSQL session of the run"
        " (ours, theirs and raw alike): the libraries' cost without the commit flush",
    )
    arg("--quick", action="store_true", help="smoke run: 300 streams, 1 repeat, small races")
    arg("--profile", action="store_true", help="then profile our write and load (cProfile)")
    args = parser.parse_args(argv)
    if args.pg_async_commit:  # read by libpq, so by both libraries' connections and raw psycopg
        os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    if args.quick:
        args.streams, args.repeats, args.writer_commands, args.hot_commands = 300, 1, 20, 20
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
    print(versions(pg), "|", "PGOPTIONS=" + os.environ.get("PGOPTIONS", ""))
    print(
        f"{cfg.streams:,} streams x {cfg.events} events, median of {cfg.repeats};"
        f" {cfg.writers} writers x {cfg.writer_commands} commands x {cfg.events} events;"
        f" hot stream: {cfg.processes} processes x {cfg.hot_commands} commands,"
        f" max_retries={cfg.hot_retries}, snapshot_every={cfg.hot_snapshot_every or None}"
    )
    rows: list[list[str]] = []
    hot: list[list[str]] = []
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
        print(f"\nevents/s (higher is better), {time.perf_counter() - began:.0f}s in all\n")
        headers = ["workload", "backend", "ours", "eventsourcing", "ours/theirs"]
        print_table([*headers, "raw driver", "ours/raw", "notes"], rows)
        if hot:
            print("\nhot stream, ours only: commands/s and version conflicts per command\n")
            print_table(["mode", "writers", "commands/s", "conflicts/cmd", "failed"], hot)
        if cfg.profile:
            for backend in backends:
                profile_ours(cfg, backend)
    finally:
        shutil.rmtree(cfg.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
