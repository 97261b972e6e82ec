#!/usr/bin/env python3
"""Workers on PostgreSQL: apply rate, end-to-end lag, failover time.

    .venv/bin/python benchmarks/workers.py            # full size
    .venv/bin/python benchmarks/workers.py --quick    # a smoke run

- apply: events/s one Worker applies to a document projection (one document per stream) over
  N events already in the log, beside the raw driver doing the same work by hand: read 1,000 rows
  at a time, decode, count per stream in memory, upsert the touched documents and a checkpoint
  once per batch, one transaction per batch.
- lag: a writer appends at a steady rate (500/s) while a worker (LISTEN/NOTIFY wake-ups) applies
  a fold projection; the time from each append's commit to the moment the worker's transaction
  that applied it committed, p50/p99/max.
- failover: two worker processes, the active one killed with SIGKILL; seconds until the standby
  holds the lease.
Results are printed as a Markdown table, with the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import attrs
import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from eventsourcing_fn import (  # noqa: E402
    Aggregate,
    DocumentProjection,
    EventStore,
    Projection,
    Worker,
)
from eventsourcing_fn.storage import NewEvent, StreamAppend, postgres_storage  # noqa: E402

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@attrs.frozen
class Ticked:
    n: int


@attrs.frozen
class Tick:
    n: int


clock = Aggregate("clock", initial=0)


@clock.evolve
def ticked(state: int, event: Ticked) -> int:
    return state + 1


@clock.decide
def tick(command: Tick, state: int) -> Ticked:
    return Ticked(command.n)


def make_counts() -> DocumentProjection[int]:
    counts = DocumentProjection("counts", doc_type=int)

    @counts.on
    def count(n: int | None, event: Ticked) -> int:
        return (n or 0) + 1

    return counts


def drop(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def fill(schema: str, events: int, streams: int) -> None:
    storage = postgres_storage(DSN, schema=schema)
    now = datetime.now(UTC)
    per = events // streams
    for start in range(0, streams, 100):
        storage.append(
            [
                StreamAppend(
                    "clock",
                    f"s{i}",
                    None,
                    [NewEvent("Ticked", 1, f'{{"n":{k}}}', uuid.uuid4(), now) for k in range(per)],
                )
                for i in range(start, min(start + 100, streams))
            ]
        )
    storage.close()


def ours_apply(events: int, streams: int) -> float:
    schema = f"bench_w_{uuid.uuid4().hex[:8]}"
    try:
        fill(schema, events, streams)
        store = EventStore(
            postgres_storage(DSN, schema=schema),
            aggregates=[clock],
            projections=[make_counts()],
            inline=False,
        )
        worker = Worker(store, batch=1000)
        started = time.perf_counter()
        applied = worker.run_once()
        seconds = time.perf_counter() - started
        assert applied == events, (applied, events)
        store.close()
        return events / seconds
    finally:
        drop(schema)


def raw_apply(events: int, streams: int) -> float:
    schema = f"bench_r_{uuid.uuid4().hex[:8]}"
    try:
        fill(schema, events, streams)
        name = sql.Identifier
        read = sql.SQL(
            "SELECT position, stream_id, data::text FROM {} WHERE position > %s"
            " ORDER BY position LIMIT 1000"
        ).format(name(schema, "events"))
        get = sql.SQL(
            "SELECT key, data::text FROM {} WHERE projection = 'raw' AND key = ANY(%s)"
        ).format(name(schema, "documents"))
        put = sql.SQL(
            "INSERT INTO {} (projection, key, data) SELECT 'raw', k, d::json"
            " FROM unnest(%s::text[], %s::text[]) AS t(k, d)"
            " ON CONFLICT (projection, key) DO UPDATE SET data = excluded.data"
        ).format(name(schema, "documents"))
        mark = sql.SQL(
            "INSERT INTO {} (name, position) VALUES ('raw', %s)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        ).format(name(schema, "checkpoints"))
        started = time.perf_counter()
        done = after = 0
        with psycopg.connect(DSN) as conn:
            while True:
                with conn.transaction():
                    rows = conn.execute(read, (after,)).fetchall()
                    if not rows:
                        break
                    counts: dict[str, int] = {}
                    for _, sid, data in rows:
                        json.loads(data)
                        counts[sid] = counts.get(sid, 0) + 1
                    keys = list(counts)
                    for key, text in conn.execute(get, (keys,)).fetchall():
                        counts[key] += json.loads(text)
                    conn.execute(put, (keys, [json.dumps(counts[k]) for k in keys]))
                    after = rows[-1][0]
                    conn.execute(mark, (after,))
                done += len(rows)
        seconds = time.perf_counter() - started
        assert done == events
        return events / seconds
    finally:
        drop(schema)


def lag(rate: int, seconds: float) -> dict[str, float]:
    """Append at `rate`/s; each event's commit-to-applied delay, from the worker's side."""
    schema = f"bench_l_{uuid.uuid4().hex[:8]}"
    applied_at: dict[int, float] = {}
    totals = Projection("totals", initial=0)

    @totals.on
    def note(total: int, event: Ticked) -> int:
        return total + 1

    try:
        writer = EventStore(
            postgres_storage(DSN, schema=schema),
            aggregates=[clock],
            projections=[totals],
            inline=False,
        )
        worker_store = EventStore(
            postgres_storage(DSN, schema=schema),
            aggregates=[clock],
            projections=[totals],
            inline=False,
        )
        worker = Worker(worker_store, poll=0.5, lease=3)
        committed: dict[int, float] = {}
        stop = threading.Event()

        def watch() -> None:
            # The view's value tells how many events the worker's commits have applied so far.
            seen = 0
            while not stop.is_set() or seen < len(committed):
                value = worker_store.view(totals)
                now = time.perf_counter()
                for n in range(seen, value):
                    applied_at[n] = now
                seen = value
                time.sleep(0.001)

        runner = threading.Thread(target=worker.run)
        watcher = threading.Thread(target=watch)
        runner.start()
        watcher.start()
        lock = threading.Lock()
        writers = 4  # one PostgreSQL commit takes a few ms: several writers keep the rate
        start = time.perf_counter()
        total = int(rate * seconds)

        def write(first: int) -> None:
            for n in range(first, total, writers):
                target = start + n / rate
                if (delay := target - time.perf_counter()) > 0:
                    time.sleep(delay)
                writer.execute(clock, f"s{n % 20}", Tick(n), max_retries=10).unwrap()
                with lock:
                    committed[n] = time.perf_counter()

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.perf_counter() + 10
        while len(applied_at) < len(committed) and time.perf_counter() < deadline:
            time.sleep(0.01)
        stop.set()
        watcher.join()
        worker.stop()
        runner.join()
        # The k-th commit is applied once the view counts k events (the worker applies in log
        # order, which follows the commits up to concurrent ones): a slight overestimate.
        commits = sorted(committed.values())
        delays = sorted(
            (applied_at[k] - commits[k]) * 1000 for k in range(len(commits)) if k in applied_at
        )
        achieved = len(committed) / (max(committed.values()) - start)
        writer.close()
        worker_store.close()
        return {
            "rate": achieved,
            "p50": statistics.median(delays),
            "p99": delays[int(len(delays) * 0.99) - 1],
            "max": delays[-1],
            "missing": len(committed) - len(delays),
        }
    finally:
        drop(schema)


def failover() -> float:
    schema = f"bench_f_{uuid.uuid4().hex[:8]}"
    target = DSN
    script = str(HERE.parent / "tests" / "workload.py")
    procs = []
    try:
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        subprocess.run([sys.executable, script, "write", target, schema, "10"], check=True, env=env)
        for _ in range(2):
            proc = subprocess.Popen(
                [sys.executable, script, "work", target, schema, "3.0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            assert proc.stdout is not None
            proc.stdout.readline()
            procs.append(proc)
        query = sql.SQL(
            "SELECT owner FROM {} WHERE name = 'placed' AND expires > clock_timestamp()"
        )
        query = query.format(sql.Identifier(schema, "leases"))

        def owner() -> str | None:
            with psycopg.connect(DSN) as conn:
                row = conn.execute(query).fetchone()
                return row[0] if row else None

        while (first := owner()) is None:
            time.sleep(0.05)
        victim = next(p for p in procs if p.pid == int(first.split(":")[1]))
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.perf_counter()
        while owner() in (None, first):
            time.sleep(0.02)
        return time.perf_counter() - killed
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        drop(schema)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    events, streams, seconds, repeats = (
        (5_000, 100, 2.0, 1) if args.quick else (100_000, 1_000, 10.0, 3)
    )
    ours = statistics.median(ours_apply(events, streams) for _ in range(repeats))
    raw = statistics.median(raw_apply(events, streams) for _ in range(repeats))
    lags = lag(500, seconds)
    times = [failover() for _ in range(repeats)]
    with psycopg.connect(DSN) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores;"
        f" Python {platform.python_version()}; PostgreSQL {pg}; psycopg {psycopg.__version__}"
    )
    print()
    print("| workload | ours | raw driver | ours / raw | target |")
    print("|---|---|---|---|---|")
    print(
        f"| worker applies a document projection ({events:,} events, {streams:,} streams) |"
        f" {ours:,.0f} events/s | {raw:,.0f} events/s | {ours / raw:.0%} | ≥ 50% |"
    )
    print(
        f"| end-to-end lag at {lags['rate']:.0f} appends/s, {seconds:.0f} s (LISTEN/NOTIFY) |"
        f" p50 {lags['p50']:.1f} ms, p99 {lags['p99']:.1f} ms, max {lags['max']:.1f} ms,"
        f" {lags['missing']:.0f} not applied | | | p99 < 100 ms |"
    )
    print(
        f"| failover after SIGKILL (lease 3 s, poll 0.2 s), {repeats} runs |"
        f" {', '.join(f'{t:.2f} s' for t in times)} | | | < 5 s |"
    )


if __name__ == "__main__":
    main()
