"""Catch-up of a new projection over an existing log, on SQLite and PostgreSQL.

The log holds S tally streams of E/S events each: `Started`, then `Incremented(amount=v-1)` for
versions 2..E/S. It is written once per library in rounds of 10 events per stream, every stream
in each round, so streams interleave as in a live system (a batch of 1,000 events touches 100
streams). The repeats run on that log: every repeat catches up a projection new to it.

- ours: the time of `EventStore(storage, aggregates=[tally], projections=[p])`, which catches a
  component new to a non-empty log up inside the constructor, one transaction per 1,000 events
  with the checkpoint. The fold is a running total; the documents one `Balance` per stream.
- hand-written: the same driver on the same file or schema, reading our `events` table; one
  transaction per batch of 1,000 events: the checkpoint (locked `FOR UPDATE` on PostgreSQL),
  the 4 columns a fold needs, `json.loads` into dicts, fold in memory, for documents read the
  touched ones and upsert them, then upsert the checkpoint with its state and commit.
- eventsourcing: 9.5's `Projection` subclasses writing a materialised view that commits once per
  event with its tracking record. On PostgreSQL their `ProjectionRunner`; on SQLite, which has
  no subscription, the runner's loop without its threads. It processes only the first
  `catchup_theirs` events of the same log (its rate does not depend on the log's length); on
  SQLite also at `synchronous=NORMAL`, as ours.
"""

from __future__ import annotations

import gc
import itertools
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import attrs
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.projection import Projection as EsProjection
from eventsourcing.projection import ProjectionRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from eventsourcing_fn import DocumentProjection, EventStore
from eventsourcing_fn.storage import NewEvent, Storage, StreamAppend

from ..config import Config
from ..domain import (
    Balance,
    EsTallies,
    EsTally,
    balances_projection,
    tally_aggregate,
    totals_projection,
)
from ..harness import Figure, Results, Sides, interleave, note, rates, timed
from ..stores import our_storage, their_env, their_sqlite_synchronous_normal, unique

try:
    import psycopg
    from eventsourcing.postgres import PostgresTrackingRecorder
    from psycopg import sql
except ImportError:  # without psycopg only SQLite is measured
    PostgresTrackingRecorder = object  # type: ignore[assignment,misc]  # a base never used

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
                        [events[v]._replace(event_id=uuid.uuid4()) for v in versions],
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


def theirs_normal_catchup(env: dict[str, str], kind: str, cfg: Config, last: int) -> float:
    with their_sqlite_synchronous_normal():
        return theirs_catchup("sqlite", env, kind, cfg, last)


NORMAL = "eventsourcing, synchronous=NORMAL"


def theirs_count(cfg: Config) -> int:
    """How many events of the log `eventsourcing` projects: it commits once per event."""
    return min(cfg.catchup_theirs, cfg.catchup_events)


@attrs.frozen
class Logs:
    """The same log written by each library, on one backend."""

    storage: Storage  # ours
    where: str  # our SQLite file's stem or PostgreSQL schema, for the hand-written path
    env: dict[str, str]  # theirs
    last: int  # the notification id of the last event theirs projects


@contextmanager
def logs(backend: str, cfg: Config) -> Iterator[Logs]:
    where = unique("fn")
    with our_storage(backend, cfg, name=where) as storage, their_env(backend, cfg) as env:
        ours, _ = timed(lambda: prepare_ours(storage, cfg))
        app = EsTallies(env=env)
        try:
            theirs, _ = timed(lambda: prepare_theirs(app, cfg))
            last = app.recorder.select_notifications(1, theirs_count(cfg))[-1].id
        finally:
            app.close()
        note(
            f"  {backend}: logs of {cfg.catchup_events:,} events written in {ours:.1f}s (ours)"
            f" and {theirs:.1f}s (theirs)"
        )
        yield Logs(storage, where, env, last)


def seconds_of(work: Callable[[], float]) -> dict[str, float]:
    return {"seconds": work()}


def bench_catchup(cfg: Config, backend: str) -> Results:
    """Per repeat and kind, interleaved: ours, the hand-written loop and theirs (on SQLite also
    at synchronous=NORMAL), each catching up a new projection over the same log."""

    @contextmanager
    def sides(c: Config) -> Iterator[Sides]:
        with logs(backend, c) as log:
            found: dict[str, Callable[[], dict[str, float]]] = {}
            for kind in CATCHUP_KINDS:
                found[f"{kind}: ours"] = partial(
                    seconds_of, partial(ours_catchup, log.storage, kind, c)
                )
                found[f"{kind}: hand-written"] = partial(
                    seconds_of, partial(hand_catchup, backend, c, log.where, kind)
                )
                found[f"{kind}: eventsourcing"] = partial(
                    seconds_of, partial(theirs_catchup, backend, log.env, kind, c, log.last)
                )
                if backend == "sqlite":
                    found[f"{kind}: {NORMAL}"] = partial(
                        seconds_of, partial(theirs_normal_catchup, log.env, kind, c, log.last)
                    )
            yield found

    runs = interleave(f"catch-up on {backend}", cfg, sides)
    count = theirs_count(cfg)
    sizes = {
        "events in the log": cfg.catchup_events,
        "streams": cfg.catchup_streams,
        "events eventsourcing projects": count,
        "events per transaction (ours, hand-written)": BATCH,
    }
    out = Results()
    for kind in CATCHUP_KINDS:

        def figure(subject: str, events: int, note: str = "", kind: str = kind) -> Figure:
            samples = rates(events, runs[f"{kind}: {subject}"], "seconds")
            return out.add(
                Figure(
                    "catch-up",
                    backend,
                    subject,
                    "events/s",
                    "events/s",
                    samples,
                    sizes,
                    case=kind,
                    note=note,
                )
            )

        first = f"on the first {count:,} events" if count < cfg.catchup_events else ""
        ours = figure("ours", cfg.catchup_events)
        out.compare("ours / hand-written", ours, figure("hand-written", cfg.catchup_events), "%")
        out.compare("ours / eventsourcing", ours, figure("eventsourcing", count, first))
        if backend == "sqlite":
            normal = figure(NORMAL, count, first)
            out.compare("ours / eventsourcing at synchronous=NORMAL", ours, normal)
    return out
