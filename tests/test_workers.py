"""Workers: write-only stores, one runner per component, exactly once, failover and fencing."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import workload
from bank import Close, Deposit, Open, account
from conftest import POSTGRES_URL, StorageFactory, drop_schema, require_postgres
from reactive import make_balances, make_closer, make_totals

from eventsourcing_fn import EventStore, Projection, Worker
from eventsourcing_fn.storage import Storage

HERE = Path(__file__).parent


class TestWriteOnlyStores:
    def test_inline_false_appends_without_applying(self, storage: Storage) -> None:
        """A store with inline=False appends; its views only read and stay where they are."""
        totals = make_totals()
        store = EventStore(storage, aggregates=[account], projections=[totals], inline=False)
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        assert store.view(totals) == 0
        assert store.view(totals) == 0  # reading never applies anything
        Worker(store).run_once()
        assert store.view(totals) == 5

    def test_run_once_brings_every_component_level(self, storage: Storage) -> None:
        """run_once applies the log to projections and managers, and what managers send."""
        totals, balances, closer = make_totals(), make_balances(), make_closer()
        store = EventStore(
            storage,
            aggregates=[account],
            projections=[totals, balances],
            process_managers=[closer],
            inline=False,
        )
        store.execute(account, "a", Open("ann"), Deposit(60)).unwrap()
        store.execute(account, "a", Deposit(40)).unwrap()
        store.execute(account, "b", Open("bob"), Deposit(7)).unwrap()
        worker = Worker(store)
        assert worker.run_once() > 0
        assert store.load(account, "a").state.closed  # the manager's command ran once
        assert store.documents(balances).all().keys() == {"b"}  # closing deleted "a"
        assert store.view(totals) == 107
        assert worker.run_once() == 0
        assert [r.type for r in store.events(account, "a")].count("Closed") == 1
        assert all(s.lag_events == 0 and s.active for s in worker.status())

    def test_a_second_worker_stands_by(self, storage_factory: StorageFactory) -> None:
        """While one worker holds a component's lease, another applies nothing to it."""
        totals = make_totals()
        first = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        second = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        active, standby = Worker(first, lease=30), Worker(second, lease=30)
        first.execute(account, "a", Open("ann"), Deposit(3)).unwrap()
        assert active.run_once() == 2
        first.execute(account, "a", Deposit(4)).unwrap()
        assert standby.run_once() == 0
        assert not standby.status()[0].active
        assert standby.status()[0].lag_events == 1
        assert active.run_once() == 1

    def test_standby_takes_over_once_the_lease_runs_out(
        self, storage_factory: StorageFactory
    ) -> None:
        """A worker that stops renewing loses its components to a standby after the lease."""
        totals = make_totals()
        first = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        second = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        gone, standby = Worker(first, lease=0.3, poll=0.1), Worker(second, lease=0.3, poll=0.1)
        first.execute(account, "a", Open("ann"), Deposit(3)).unwrap()
        gone.run_once()
        first.execute(account, "a", Deposit(4)).unwrap()
        assert standby.run_once() == 0
        time.sleep(0.4)
        assert standby.run_once() == 1
        assert second.view(totals) == 7
        assert gone.run_once() == 0  # its turn has passed: it applies nothing

    def test_close_hands_components_over_at_once(self, storage_factory: StorageFactory) -> None:
        """A worker that closes gives its leases up: a standby runs them without waiting."""
        totals = make_totals()
        first = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        second = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        leaving, standby = Worker(first, lease=30), Worker(second, lease=30)
        first.execute(account, "a", Open("ann")).unwrap()
        leaving.run_once()
        first.execute(account, "a", Deposit(2)).unwrap()
        assert standby.run_once() == 0
        leaving.close()
        assert standby.run_once() == 1

    def test_a_stale_runner_applies_nothing(self, storage_factory: StorageFactory) -> None:
        """A runner whose lease passed on while it was away rolls its batch back."""
        totals = make_totals()
        first = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        second = EventStore(
            storage_factory(), aggregates=[account], projections=[totals], inline=False
        )
        stale, fresh = Worker(first, lease=0.3, poll=0.1), Worker(second, lease=0.3, poll=0.1)
        first.execute(account, "a", Open("ann")).unwrap()
        stale.run_once()
        time.sleep(0.4)
        fresh.run_once()  # takes the lease
        first.execute(account, "a", Deposit(4)).unwrap()
        # The stale runner's guard inside its batch transaction sees the lease is not its own.
        component = stale.components[0]
        applied, _ = stale._step(component)
        assert applied == 0
        assert fresh.run_once() == 1
        assert second.view(totals) == 4


class TestFaults:
    def test_a_raising_handler_keeps_the_checkpoint_and_resumes_once_fixed(
        self, storage: Storage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A fault rolls the batch back, is logged and reported, and is retried after a backoff."""
        broken = [True]
        flaky = Projection("flaky", initial=0)

        @flaky.on
        def add(total: int, event: object) -> int:
            if broken[0]:
                raise RuntimeError("downstream is down")
            return total + 1

        store = EventStore(storage, aggregates=[account], projections=[flaky], inline=False)
        store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        worker = Worker(store, max_backoff=0.05)
        with caplog.at_level(logging.ERROR, logger="eventsourcing_fn"):
            assert worker.run_once() == 0
        (status,) = worker.status()
        assert status.position == 0
        assert status.lag_events == 2
        assert status.last_error is not None
        assert "downstream is down" in status.last_error
        assert "'flaky'" in caplog.text
        assert "add" in caplog.text
        broken[0] = False
        time.sleep(0.06)
        assert worker.run_once() == 2
        assert store.view(flaky) == 2
        assert worker.status()[0].last_error is None

    def test_a_rejected_sent_command_is_logged_and_skipped(
        self, storage: Storage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A worker logs a command its aggregate rejects, and goes on past the trigger."""
        closer = make_closer()
        store = EventStore(storage, aggregates=[account], process_managers=[closer], inline=False)
        store.execute(account, "a", Open("ann"), Deposit(100)).unwrap()
        store.execute(account, "a", Close()).unwrap()  # closed already: the manager's Close fails
        with caplog.at_level(logging.WARNING, logger="eventsourcing_fn"):
            assert Worker(store).run_once() == 3
        assert "rejected" in caplog.text
        assert "'closer'" in caplog.text
        assert Worker(store).status()[0].lag_events == 0


class TestRunLoop:
    def test_run_returns_after_stop(self, storage: Storage) -> None:
        """run() applies new events as they come and returns once stop() is called."""
        totals = make_totals()
        store = EventStore(storage, aggregates=[account], projections=[totals], inline=False)
        worker = Worker(store, poll=0.05, lease=1)
        thread = threading.Thread(target=worker.run)
        thread.start()
        store.execute(account, "a", Open("ann"), Deposit(9)).unwrap()
        deadline = time.monotonic() + 10
        while store.view(totals) != 9 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.stop()
        thread.join(10)
        assert not thread.is_alive()
        assert store.view(totals) == 9

    def test_sigterm_stops_a_worker_process(self, tmp_path: Path) -> None:
        """A worker process stops on SIGTERM, exit code 0, releasing its leases."""
        target = str(tmp_path / "events.db")
        proc = start_worker(target, "unused", lease=5.0)
        wait_for(lambda: lease_owners(target, "unused"), 10, "the worker's run loop")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert lease_owners(target, "unused") == {}


# -- several processes ---------------------------------------------------------------------------


def start_worker(target: str, schema: str, lease: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "workload.py"), "work", target, schema, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    return proc


def start_writer(target: str, schema: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "workload.py"), "write", target, schema, str(count)],
        text=True,
    )


def lease_owners(target: str, schema: str) -> dict[str, str]:
    """Component name -> owner of each unexpired lease."""
    if "://" in target:
        import psycopg
        from psycopg import sql

        query = sql.SQL("SELECT name, owner FROM {} WHERE expires > clock_timestamp()").format(
            sql.Identifier(schema, "leases")
        )
        with psycopg.connect(target) as conn:
            return dict(conn.execute(query).fetchall())
    with contextlib.closing(sqlite3.connect(target)) as conn:
        rows = conn.execute("SELECT name, owner FROM leases WHERE expires > ?", (time.time(),))
        return dict(rows.fetchall())


def owner_pid(owner: str) -> int:
    return int(owner.split(":")[1])


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting {seconds} s for {what}")


def assert_exactly_once(target: str, schema: str) -> None:
    """Every Placed event counted once, and billed once, in the store's own database."""
    store = workload.store_for(target, schema)
    try:
        placed = [r for r in store.read_all() if r.type == "Placed"]
        charged = [r for r in store.read_all() if r.type == "Charged"]
        counts = store.documents(store._components[0])
        per_stream: dict[str, int] = {}
        for record in placed:
            per_stream[record.stream_id] = per_stream.get(record.stream_id, 0) + 1
        assert counts.all() == dict(sorted(per_stream.items()))
        assert sorted(c.event.order for c in charged) == sorted(r.stream_id for r in placed)
    finally:
        store.close()


def level(target: str, schema: str) -> bool:
    store = workload.store_for(target, schema)
    try:
        storage = store.storage
        return all(
            (cp := storage.read_checkpoint(name)) is not None
            and storage.count_after(cp.position) == 0
            for name in ("placed", "billing")
        )
    finally:
        store.close()


@contextlib.contextmanager
def backend(kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(target, schema) of a fresh store of `kind`."""
    if kind == "sqlite":
        yield str(tmp_path / "events.db"), "unused"
        return
    require_postgres()
    schema = f"test_w_{uuid.uuid4().hex[:10]}"
    try:
        yield POSTGRES_URL, schema
    finally:
        drop_schema(schema)


def kill_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_killed_workers_fail_over_and_apply_every_event_once(kind: str, tmp_path: Path) -> None:
    """Three workers, the active one killed with SIGKILL twice while writers append: a standby
    takes over within 5 s each time, and every event is applied exactly once."""
    with backend(kind, tmp_path) as (target, schema):
        workload.store_for(target, schema).close()  # the schema, before anyone races for it
        workers = [start_worker(target, schema, lease=1.0) for _ in range(3)]
        writers = [start_writer(target, schema, 1500) for _ in range(2)]
        try:
            for _ in range(2):
                time.sleep(1.0)
                owner = wait_for(lambda: lease_owners(target, schema).get("placed"), 10, "a runner")
                victim = next(p for p in workers if p.pid == owner_pid(owner))
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                killed_at = time.monotonic()
                wait_for(
                    lambda owner=owner: (
                        (o := lease_owners(target, schema).get("placed")) and o != owner
                    ),
                    10,
                    "a standby to take over",
                )
                assert time.monotonic() - killed_at < 5
            assert [w.wait(120) for w in writers] == [0, 0]
            wait_for(lambda: level(target, schema), 60, "the last worker to finish")
        finally:
            kill_all(workers + writers)
        assert_exactly_once(target, schema)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_paused_runner_applies_nothing_twice(kind: str, tmp_path: Path) -> None:
    """The active worker paused (SIGSTOP) past its lease: the standby takes over; resumed, the
    paused one applies nothing twice and no checkpoint moves backwards."""
    with backend(kind, tmp_path) as (target, schema):
        workload.store_for(target, schema).close()
        workers = [start_worker(target, schema, lease=1.0) for _ in range(2)]
        positions: list[int] = []
        watching = threading.Event()

        def watch() -> None:
            store = workload.store_for(target, schema)
            while not watching.is_set():
                checkpoint = store.storage.read_checkpoint("placed")
                if checkpoint is not None:
                    positions.append(checkpoint.position)
                time.sleep(0.02)
            store.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        writer = start_writer(target, schema, 800)
        try:
            time.sleep(0.5)
            owner = wait_for(lambda: lease_owners(target, schema).get("placed"), 10, "a runner")
            paused = next(p for p in workers if p.pid == owner_pid(owner))
            os.kill(paused.pid, signal.SIGSTOP)
            if kind == "postgres":  # SQLite: a pause inside a write blocks the file for all
                wait_for(
                    lambda owner=owner: (
                        (o := lease_owners(target, schema).get("placed")) and o != owner
                    ),
                    10,
                    "the standby to take over",
                )
            else:
                time.sleep(2.5)
            os.kill(paused.pid, signal.SIGCONT)
            assert writer.wait(120) == 0
            wait_for(lambda: level(target, schema), 60, "the workers to finish")
        finally:
            watching.set()
            watcher.join()
            kill_all([*workers, writer])
        assert_exactly_once(target, schema)
        assert positions == sorted(positions)


class TestPostgresConnections:
    def test_worker_recovers_when_its_connections_are_terminated(self, pg_schema: str) -> None:
        """pg_terminate_backend on the worker's LISTEN and work connections: it reconnects,
        and events appended meanwhile are applied within seconds."""
        from test_postgres import terminate

        from eventsourcing_fn.storage import postgres_storage

        app = f"worker_{pg_schema}"
        totals = make_totals()
        worker_side = postgres_storage(f"{POSTGRES_URL}?application_name={app}", schema=pg_schema)
        writer_side = postgres_storage(POSTGRES_URL, schema=pg_schema)
        store = EventStore(worker_side, aggregates=[account], projections=[totals], inline=False)
        writer = EventStore(writer_side, aggregates=[account], projections=[totals], inline=False)
        worker = Worker(store, poll=0.1, lease=1.0)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            writer.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
            wait_for(lambda: writer.view(totals) == 1, 10, "the first deposit")
            assert terminate(app) >= 2  # the pooled work connection(s) and the LISTEN one
            writer.execute(account, "a", Deposit(2)).unwrap()
            wait_for(lambda: writer.view(totals) == 3, 10, "the deposit after the cut")
        finally:
            worker.stop()
            thread.join(10)
            worker_side.close()
            writer_side.close()
        assert not thread.is_alive()

    def test_an_idle_writer_elsewhere_does_not_delay_a_worker(self, pg_schema: str) -> None:
        """A write transaction left open in another database: the worker still applies new
        events within a second."""
        from test_postgres import idle_writer, other_database

        from eventsourcing_fn.storage import postgres_storage

        totals = make_totals()
        storage = postgres_storage(POSTGRES_URL, schema=pg_schema)
        store = EventStore(storage, aggregates=[account], projections=[totals], inline=False)
        worker = Worker(store)
        try:
            with idle_writer(other_database()):
                store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
                started = time.monotonic()
                wait_for(lambda: worker.run_once() or store.view(totals) == 5, 5, "the deposit")
                assert store.view(totals) == 5
                assert time.monotonic() - started < 1
        finally:
            storage.close()
