"""PostgreSQL writers: notifications after commit, statements prepared on pooled connections."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import POSTGRES_URL, Make

from eventsourcing_fn.storage import (
    NewEvent,
    StreamAppend,
    VersionConflict,
)

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.postgres

_OLD_TRIGGER = """\
CREATE OR REPLACE FUNCTION "{schema}".notify_appended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('esfn_' || left(md5(TG_TABLE_SCHEMA), 20), '');
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER events_appended AFTER INSERT ON "{schema}".events
    FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_appended();
"""


def event(data: str) -> NewEvent:
    return NewEvent("Ticked", 1, data, uuid.uuid4(), datetime.now(UTC))


def batch(stream_id: str, expected: int | None, count: int = 1) -> StreamAppend:
    events = [event(f'{{"n": {n}}}') for n in range(count)]
    return StreamAppend("clock", stream_id, expected, events)


def triggers(schema: str) -> int:
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (schema,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def one_connection_pool() -> Any:
    return psycopg_pool.ConnectionPool(
        POSTGRES_URL, min_size=1, max_size=1, kwargs={"autocommit": True}
    )


class TestNotifications:
    def test_a_commit_with_appends_wakes_a_waiter(self, make: Make) -> None:
        """A waiter wakes once another storage's append has committed, and sees it."""
        writer, waiter = make(), make()
        assert not waiter.wait_for_events(0.05)  # listening from here on
        woke: list[bool] = []
        thread = threading.Thread(target=lambda: woke.append(waiter.wait_for_events(10)))
        thread.start()
        with writer.transaction():
            writer.append([batch("a", 0)])
        thread.join()
        assert woke == [True]
        assert [r.stream_id for r in waiter.read_all(0, 10)] == ["a"]

    def test_no_notification_without_appends(self, make: Make) -> None:
        """A write transaction that appends nothing (a document) notifies nobody."""
        writer, waiter = make(), make()
        assert not waiter.wait_for_events(0.05)
        with writer.transaction():
            writer.put_document("p", "k", "{}")
        assert not waiter.wait_for_events(0.2)

    def test_a_schema_of_an_earlier_version_loses_its_trigger(
        self, make: Make, pg_schema: str
    ) -> None:
        """The trigger earlier versions notified with is dropped when a storage opens."""
        make().close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(_OLD_TRIGGER.format(schema=pg_schema).encode())
        assert triggers(pg_schema) == 1
        storage = make()
        assert triggers(pg_schema) == 0
        storage.append([batch("a", 0)])
        assert [r.version for r in storage.read_stream("clock", "a", 0, None)] == [1]


class TestPrepared:
    @pytest.mark.parametrize("drop", ["DEALLOCATE ALL", "DISCARD ALL"])
    def test_statements_dropped_on_the_server_are_prepared_again(
        self, make: Make, drop: str
    ) -> None:
        """Appends go on when the pooled connection's prepared statements were dropped."""
        with one_connection_pool() as pool:
            storage = make(pool)
            storage.append([batch("a", 0)])
            with pool.connection() as conn:
                conn.execute(drop.encode())
            storage.append([batch("a", 1)])  # the INSERT's statement is gone: prepared again
            with pool.connection() as conn:
                conn.execute(drop.encode())
            with storage.transaction():
                storage.append([batch("b", 0, 2)])
            storage.append([batch("a", 2)])
            assert len(storage.read_all(0, 10)) == 5
            with pool.connection() as conn:
                conn.execute(drop.encode())
            versions = [(r.stream_id, r.version) for r in storage.read_all(0, 10)]
        assert versions == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("a", 3)]

    def test_a_refused_first_append_leaves_the_connection_usable(self, make: Make) -> None:
        """A stale expected version on a transaction's first write: a conflict, nothing kept."""
        with one_connection_pool() as pool:
            storage = make(pool)
            storage.append([batch("a", 0)])
            with pytest.raises(VersionConflict):
                storage.append([batch("a", 0)])
            storage.append([batch("a", 1, 2)])
            assert [r.version for r in storage.read_stream("clock", "a", 0, None)] == [1, 2, 3]

    def test_a_connection_in_another_encoding_still_appends(self, make: Make) -> None:
        """A pool whose connections talk another client encoding still stores text as given."""
        with psycopg_pool.ConnectionPool(
            POSTGRES_URL,
            min_size=1,
            max_size=1,
            kwargs={"autocommit": True, "options": "-c client_encoding=LATIN1"},
        ) as pool:
            storage = make(pool)
            storage.append([StreamAppend("clock", "é", 0, [event('{"name": "café"}')])])
            (row,) = storage.read_stream("clock", "é", 0, None)
        assert row.data == '{"name": "café"}'


class TestConcurrentWriters:
    def test_writers_and_a_tail_agree_on_every_event(self, make: Make) -> None:
        """Eight writers on new streams; a tail sees every event once, in position order."""
        storage = make()
        writers, commands, events = 8, 20, 5
        expected = writers * commands * events
        seen: list[int] = []
        done = threading.Event()

        def write(w: int) -> None:
            for c in range(commands):
                with storage.transaction():
                    storage.append([batch(f"{w}-{c}", 0, events)])

        def tail() -> None:
            last = 0
            while len(seen) < expected and not done.wait(0.001 if seen else 0):
                for row in storage.read_all(last, 1000):
                    seen.append(row.position)
                    last = row.position
            for row in storage.read_all(last, expected):
                seen.append(row.position)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        reader = threading.Thread(target=tail)
        for thread in [*threads, reader]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        reader.join()
        assert len(seen) == expected
        assert seen == sorted(set(seen))
        assert seen == [r.position for r in storage.read_all(0, expected)]
