"""The backends' fast paths: the narrow stream read that loading uses, and the lock that lets
one storage's threads write in the order they asked."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import attrs
import pytest
from bank import Deposit, Open, account

from eventsourcing_fn import EventStore
from eventsourcing_fn.storage import NewEvent, Storage, StoredEvent
from eventsourcing_fn.storage._shared import FairLock

SQL_BACKENDS = ["sqlite", "postgres"]


def new_event(kind: str = "Happened", data: str = "{}", schema_version: int = 1) -> NewEvent:
    return NewEvent(kind, schema_version, data, uuid.uuid4(), datetime.now(UTC))


@pytest.mark.parametrize("storage_factory", SQL_BACKENDS, indirect=True)
class TestPayloads:
    def test_load_folds_the_narrow_rows(self, storage: Storage) -> None:
        """A load on a SQL backend gives the state and version of the stream's events."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "a", Open("ann"), Deposit(5), Deposit(7)).unwrap()
        loaded = store.load(account, "a")
        assert (loaded.version, loaded.state) == (3, account.fold(store.events(account, "a")))
        assert store.load(account, "a", at_version=2).version == 2
        assert store.load(account, "missing").version == 0


def test_a_wrapped_read_stream_sees_every_load(storage: Storage) -> None:
    """A wrapper put in place of read_stream sees the read of every load, on every backend."""
    seen: list[tuple[str, int, int | None]] = []
    read_stream = storage.read_stream

    def logged(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        seen.append((stream_id, after, up_to))
        return read_stream(stream_type, stream_id, after, up_to)

    store = EventStore(attrs.evolve(storage, read_stream=logged), aggregates=[account])
    store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
    seen.clear()
    assert store.load(account, "a").version == 2
    assert store.load(account, "a", at_version=1).version == 1
    assert seen == [("a", 0, None), ("a", 0, 1)]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def take_in_child(lock: FairLock) -> None:
    """Runs in a forked child: exit 0 when the lock could be taken."""
    sys.exit(0 if lock.acquire(5) else 1)


class TestFairLock:
    def test_waiters_get_the_lock_in_the_order_they_asked(self) -> None:
        """Threads queued for a FairLock hold it one at a time, first asked first served."""
        lock = FairLock()
        assert lock.acquire(1)
        order: list[int] = []

        def take(n: int) -> None:
            assert lock.acquire(10)
            order.append(n)
            lock.release()

        threads = []
        for n in range(6):
            threads.append(threading.Thread(target=take, args=(n,)))
            threads[-1].start()
            wait_until(lambda n=n: len(lock._waiters) == n + 1, f"thread {n} did not queue")
        lock.release()
        for thread in threads:
            thread.join(10)
        assert order == list(range(6))
        assert lock.acquire(0.1)  # free again once every waiter has had its turn

    def test_waiter_whose_time_runs_out_leaves_the_queue(self) -> None:
        """A waiter whose timeout passes raises TimeoutError, and the lock then passes over it."""
        lock = FairLock()
        assert lock.acquire(1)
        outcomes: list[str] = []

        def impatient() -> None:
            try:
                lock.acquire(0.05)
                outcomes.append("held")
            except TimeoutError:
                outcomes.append("timed out")

        thread = threading.Thread(target=impatient)
        thread.start()
        thread.join(10)
        assert outcomes == ["timed out"]
        assert not lock._waiters
        lock.release()
        assert lock.acquire(0.1)

    def test_holder_asking_again_is_told_it_holds_it(self) -> None:
        """The holding thread asking again gets False at once and still holds the lock."""
        lock = FairLock()
        assert lock.acquire(1)
        assert lock.acquire(1) is False
        taken: list[bool] = []
        other = threading.Thread(target=lambda: taken.append(lock.acquire(10)))
        other.start()
        wait_until(lambda: len(lock._waiters) == 1, "the other thread did not queue")
        lock.release()
        other.join(10)
        assert taken == [True]

    def test_lock_held_by_a_thread_is_free_in_a_forked_child(self) -> None:
        """A child forked while another thread holds the lock can take it: that thread is gone."""
        lock = FairLock()
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            lock.acquire(1)
            held.set()
            done.wait(20)
            lock.release()

        thread = threading.Thread(target=hold)
        thread.start()
        assert held.wait(10)
        context = multiprocessing.get_context("fork")
        child = context.Process(target=take_in_child, args=(lock,))
        try:
            child.start()
            child.join(20)
            assert child.exitcode == 0
        finally:
            done.set()
            thread.join(10)
