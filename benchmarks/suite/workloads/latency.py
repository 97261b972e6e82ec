"""Append latency with 1 and with 10 writer threads sharing one storage, beside throughput.

For `latency_seconds`, each thread appends one event at a time to a stream of its own, at the
version after its last, and times every append; the latency of an append includes building its
one row (a few microseconds). Reported per side: appends/s over all threads, p50 / p99 / max
latency over every append of the run, and the fewest and most appends one thread completed
(their spread shows how fairly the storage serves its writers).

- ours: one `sqlite_storage` / `postgres_storage` shared by the threads; `storage.append` of one
  `StreamAppend` with its expected version.
- eventsourcing: one application's recorder shared by the threads; `recorder.insert_events`
  of one `StoredEvent` (their default SQLite setting, `synchronous=FULL`; on PostgreSQL their
  table lock per insert).
- raw driver: a connection per thread on our schema (our pragmas on SQLite), one INSERT of the
  same row per transaction (on PostgreSQL at the position ours would give it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from typing import Any

from eventsourcing.persistence import StoredEvent as EsStoredEvent

from eventsourcing_fn.storage import NewEvent, StreamAppend, sqlite_schema

from ..config import Config
from ..harness import Figure, Results, Sample, Sides, interleave, percentile, values
from ..stores import drop_schema, our_storage, remove_sqlite, their_app, unique

try:
    import psycopg

    from eventsourcing_fn.storage import postgres_schema
except ImportError:
    psycopg = None  # type: ignore[assignment]

# Per thread, set up in that thread before the start: (append once, clean up).
Appender = tuple[Callable[[], None], Callable[[], None]]
RAW = {"sqlite": "raw sqlite3", "postgres": "raw psycopg"}
BUSY_TIMEOUT = 30.0  # seconds a raw SQLite writer waits for the write lock, as ours does


def run_threads(threads: int, seconds: float, appender: Callable[[int], Appender]) -> Sample:
    """`threads` threads appending for `seconds`, each through `appender(its index)`."""
    go = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        mine = latencies[index]
        clock = time.perf_counter
        close: Callable[[], None] = lambda: None  # noqa: E731
        try:
            append, close = appender(index)
            go.wait()
            deadline = clock() + seconds
            while (begin := clock()) < deadline:
                append()
                mine.append(clock() - begin)
        except BaseException as exc:
            failures.append(exc)
            go.abort()
        finally:
            close()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    with suppress(threading.BrokenBarrierError):  # a thread failed: raised below
        go.wait()
    begin = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - begin
    if failures:
        raise failures[0]
    every = sorted(t for mine in latencies for t in mine)
    counts = [len(mine) for mine in latencies]
    return {
        "appends/s": len(every) / elapsed,
        "p50": percentile(every, 0.50) * 1000,
        "p99": percentile(every, 0.99) * 1000,
        "max": every[-1] * 1000,
        "fewest per thread": min(counts),
        "most per thread": max(counts),
    }


def now() -> datetime:
    return datetime.now(UTC)


def ours_latency(backend: str, cfg: Config, threads: int) -> Sample:
    with our_storage(backend, cfg) as storage:

        def appender(index: int) -> Appender:
            stream = f"t{index}-{uuid.uuid4()}"
            version = 0

            def append() -> None:
                nonlocal version
                event = NewEvent("Incremented", 1, '{"amount":1}', uuid.uuid4(), now())
                storage.append([StreamAppend("tally", stream, version, [event])])
                version += 1

            return append, lambda: None

        return run_threads(threads, cfg.latency_seconds, appender)


def theirs_latency(backend: str, cfg: Config, threads: int) -> Sample:
    with their_app(backend, cfg, pool_size=max(5, threads + 2)) as app:
        recorder = app.recorder
        topic = "suite.domain:EsTally.Incremented"

        def appender(index: int) -> Appender:
            originator = uuid.uuid4()
            version = 0

            def append() -> None:
                nonlocal version
                version += 1
                recorder.insert_events([EsStoredEvent(originator, version, topic, b'{"amount":1}')])

            return append, lambda: None

        return run_threads(threads, cfg.latency_seconds, appender)


_COLUMNS = (
    "stream_type, stream_id, version, type, schema_version, data, event_id, recorded_at,"
    " actor_id, correlation_id, causation_id, metadata"
)


def raw_sqlite_latency(cfg: Config, threads: int) -> Sample:
    path = cfg.workdir / f"{unique('raw')}.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.executescript(sqlite_schema())
    setup.close()
    insert = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"

    def appender(index: int) -> Appender:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
        conn.execute("PRAGMA synchronous = NORMAL")
        stream = f"t{index}-{uuid.uuid4()}"
        version = 0

        def append() -> None:
            nonlocal version
            version += 1
            row = (
                "tally",
                stream,
                version,
                "Incremented",
                1,
                '{"amount":1}',
                str(uuid.uuid4()),
                now().isoformat(timespec="microseconds"),
                None,
                None,
                None,
                "{}",
            )
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, row)
            conn.execute("COMMIT")

        return append, conn.close

    try:
        return run_threads(threads, cfg.latency_seconds, appender)
    finally:
        remove_sqlite(path)


def raw_psycopg_latency(cfg: Config, threads: int) -> Sample:
    schema = unique("raw")
    insert = (
        f'INSERT INTO "{schema}".events ({_COLUMNS}, position)'
        f" VALUES ({', '.join(['%s'] * 12)}, pg_current_xact_id()::text::bigint * 1048576 + 1)"
    )
    try:
        with psycopg.connect(cfg.dsn, autocommit=True) as conn:
            conn.execute(postgres_schema(schema))

        def appender(index: int) -> Appender:
            conn = psycopg.connect(cfg.dsn, autocommit=True)
            stream = f"t{index}-{uuid.uuid4()}"
            version = 0

            def append() -> None:
                nonlocal version
                version += 1
                row = (
                    "tally",
                    stream,
                    version,
                    "Incremented",
                    1,
                    '{"amount":1}',
                    uuid.uuid4(),
                    now(),
                    None,
                    None,
                    None,
                    "{}",
                )
                with conn.transaction():
                    conn.execute(insert, row)

            return append, conn.close

        return run_threads(threads, cfg.latency_seconds, appender)
    finally:
        drop_schema(cfg.dsn, schema)


def threads_case(threads: int) -> str:
    return f"{threads} thread" if threads == 1 else f"{threads} threads"


METRICS = {  # name: (unit, better)
    "appends/s": ("appends/s", "higher"),
    "p50": ("ms", "lower"),
    "p99": ("ms", "lower"),
    "max": ("ms", "lower"),
    "fewest per thread": ("appends", ""),
    "most per thread": ("appends", ""),
}


def bench_latency(cfg: Config, backend: str) -> Results:
    raw = {"sqlite": raw_sqlite_latency, "postgres": raw_psycopg_latency}[backend]
    subjects: dict[str, Callable[[Config, int], Sample]] = {
        "ours": partial(ours_latency, backend),
        "eventsourcing": partial(theirs_latency, backend),
        RAW[backend]: raw,
    }

    @contextmanager
    def sides(c: Config) -> Iterator[Sides]:
        yield {
            f"{threads_case(n)}: {subject}": partial(run, c, n)
            for n in c.latency_threads
            for subject, run in subjects.items()
        }

    runs = interleave(f"append latency on {backend}", cfg, sides)
    out = Results()
    figures: dict[tuple[str, str, str], Figure] = {}
    for n in cfg.latency_threads:
        case = threads_case(n)
        sizes: dict[str, Any] = {
            "threads": n,
            "seconds": cfg.latency_seconds,
            "events per append": 1,
        }
        for subject in subjects:
            got = runs[f"{case}: {subject}"]
            for metric, (unit, better) in METRICS.items():
                figures[case, subject, metric] = out.add(
                    Figure(
                        "latency",
                        backend,
                        subject,
                        metric,
                        unit,
                        values(got, metric),
                        sizes,
                        case=case,
                        better=better,
                    )
                )
        for other in list(subjects)[1:]:
            out.compare(
                f"appends/s: ours / {other}",
                figures[case, "ours", "appends/s"],
                figures[case, other, "appends/s"],
                "%" if other == RAW[backend] else "x",
            )
    one = threads_case(1)
    for n in cfg.latency_threads:
        if n == 1 or 1 not in cfg.latency_threads:
            continue
        for subject in subjects:
            out.compare(
                f"{subject}: p99, {threads_case(n)} / {one}",
                figures[threads_case(n), subject, "p99"],
                figures[one, subject, "p99"],
            )
    return out
