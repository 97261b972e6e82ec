"""Write, then load and fold: N streams x E events, one command (one transaction) per stream.

- ours: `store.execute(tally, None, Start(...))`, whose decide returns E events (1 `Started`,
  E - 1 `Incremented`); then `store.load(tally, id)` of every stream.
- eventsourcing: a new `@event` aggregate, `increment` E - 1 times, `app.save` once; then
  `app.repository.get(id)` (no snapshots, no cache). On SQLite a second figure runs theirs at
  `PRAGMA synchronous = NORMAL`, as ours: their default is FULL, an fsync per commit.
- raw driver: the same E rows per stream in our table (our DDL and pragmas), BEGIN, executemany,
  COMMIT, rows built before the clock starts; then per stream the same SELECT ... ORDER BY
  version, fetched (read) and fetched with each payload parsed by `json.loads` (read + decode).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any

from eventsourcing_fn import EventStore
from eventsourcing_fn.storage import sqlite_schema

from ..config import Config
from ..domain import EsTallies, EsTally, Start, Tally, tally_aggregate
from ..harness import Figure, Results, Sample, interleave, plain, rates, timed
from ..stores import (
    drop_schema,
    our_store,
    remove_sqlite,
    their_app,
    their_sqlite_synchronous_normal,
    unique,
)

try:
    import psycopg

    from eventsourcing_fn.storage import postgres_schema
except ImportError:
    psycopg = None  # type: ignore[assignment]


def ours_write(store: EventStore, tally: Any, cfg: Config) -> list[str]:
    command = Start("bench", cfg.events - 1)
    return [store.execute(tally, None, command).unwrap().stream_id for _ in range(cfg.streams)]


def ours_load(store: EventStore, tally: Any, ids: list[str], cfg: Config) -> None:
    for stream_id in ids:
        loaded = store.load(tally, stream_id)
    state: Tally = loaded.state
    assert state.count == cfg.events - 1, loaded


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


def ours_write_load(backend: str, cfg: Config) -> Sample:
    tally = tally_aggregate()
    with our_store(backend, cfg, tally) as store:
        write, ids = timed(lambda: ours_write(store, tally, cfg))
        load, _ = timed(lambda: ours_load(store, tally, ids, cfg))
    return {"write": write, "load+fold": load}


def theirs_write_load(backend: str, cfg: Config) -> Sample:
    with their_app(backend, cfg) as app:
        write, ids = timed(lambda: theirs_write(app, cfg))
        load, _ = timed(lambda: theirs_load(app, ids, cfg))
    return {"write": write, "load+fold": load}


def theirs_normal_write_load(backend: str, cfg: Config) -> Sample:
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


RAW_COLUMNS = (
    "stream_type, stream_id, version, type, schema_version, data, event_id, recorded_at,"
    " actor_id, correlation_id, causation_id, metadata"
)
_DATA = 6  # the payload's index in a selected row


def decode_all(rows: list[tuple[Any, ...]]) -> None:
    """What a reader adds to the driver's fetch at the least: each payload parsed."""
    loads = json.loads
    for row in rows:
        loads(row[_DATA])


def raw_sqlite(cfg: Config) -> Sample:
    """sqlite3 alone: our table and pragmas, one BEGIN IMMEDIATE/executemany/COMMIT per stream."""
    streams = raw_rows(cfg)
    params = [
        [(*r[:6], str(r[6]), r[7].isoformat(timespec="microseconds"), *r[8:]) for r in rows]
        for rows in streams
    ]
    insert = f"INSERT INTO events ({RAW_COLUMNS}) VALUES ({', '.join('?' * 12)})"
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

        def read(decode: bool) -> None:
            for rows in params:
                got = conn.execute(select, ("tally", rows[0][1], 0)).fetchall()
                if decode:
                    decode_all(got)
                assert len(got) == cfg.events

        return {
            "write": timed(write)[0],
            "read": timed(lambda: read(False))[0],
            "read+decode": timed(lambda: read(True))[0],
        }
    finally:
        conn.close()
        remove_sqlite(path)


def raw_psycopg(cfg: Config) -> Sample:
    """psycopg alone: our DDL, one transaction with executemany per stream, select per stream."""
    streams = raw_rows(cfg)
    schema = unique("raw")
    insert = (
        f'INSERT INTO "{schema}".events ({RAW_COLUMNS}, position) VALUES ({", ".join(["%s"] * 13)})'
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

            def read(decode: bool) -> None:
                with conn.cursor() as cur:
                    for rows in params:
                        cur.execute(select, ("tally", rows[0][1], 0))
                        got = cur.fetchall()
                        if decode:
                            decode_all(got)
                        assert len(got) == cfg.events

            return {
                "write": timed(write)[0],
                "read": timed(lambda: read(False))[0],
                "read+decode": timed(lambda: read(True))[0],
            }
    finally:
        drop_schema(cfg.dsn, schema)


RAW = {"sqlite": ("raw sqlite3", raw_sqlite), "postgres": ("raw psycopg", raw_psycopg)}
NORMAL = "eventsourcing, synchronous=NORMAL"


def bench_write_load(cfg: Config, backend: str) -> Results:
    """Ours, theirs (on SQLite also at synchronous=NORMAL) and the raw driver, interleaved."""
    raw_name, raw = RAW.get(backend, ("", None))

    def sides(c: Config) -> Any:
        found = {
            "ours": partial(ours_write_load, backend, c),
            "eventsourcing": partial(theirs_write_load, backend, c),
        }
        if backend == "sqlite":
            found[NORMAL] = partial(theirs_normal_write_load, backend, c)
        if raw is not None:
            found[raw_name] = partial(raw, c)
        return plain(found)

    runs = interleave(f"write + load on {backend}", cfg, sides)
    events = cfg.streams * cfg.events
    sizes = {"streams": cfg.streams, "events per stream": cfg.events}
    out = Results()

    def figure(workload: str, subject: str, measured: str, note: str = "") -> Figure:
        samples = rates(events, runs[subject], measured)
        return out.add(
            Figure(workload, backend, subject, "events/s", "events/s", samples, sizes, note=note)
        )

    ours = figure("write", "ours", "write")
    theirs = figure("write", "eventsourcing", "write")
    out.compare("ours / eventsourcing", ours, theirs)
    if backend == "sqlite":
        why = "theirs with PRAGMA synchronous=NORMAL, as ours (their default: FULL)"
        out.compare(
            "ours / eventsourcing at synchronous=NORMAL",
            ours,
            figure("write", NORMAL, "write", why),
        )
    if raw is not None:
        out.compare(f"ours / {raw_name}", ours, figure("write", raw_name, "write"), "%")
    ours = figure("load+fold", "ours", "load+fold")
    out.compare("ours / eventsourcing", ours, figure("load+fold", "eventsourcing", "load+fold"))
    if raw is not None:
        read = Figure(
            "load+fold",
            backend,
            f"{raw_name}, read",
            "events/s",
            "events/s",
            rates(events, runs[raw_name], "read"),
            sizes,
            note="the driver's fetch alone",
        )
        decode = Figure(
            "load+fold",
            backend,
            f"{raw_name}, read + decode",
            "events/s",
            "events/s",
            rates(events, runs[raw_name], "read+decode"),
            sizes,
            note="the fetch, then json.loads of each payload",
        )
        out.compare(f"ours / {read.subject}", ours, out.add(read), "%")
        out.compare(f"ours / {decode.subject}", ours, out.add(decode), "%")
    return out
