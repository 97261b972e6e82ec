"""Random interleavings of concurrent transactions: every reader sees each stream in version order.

Threads run drawn programs of transactions, each with its own storage object on one database,
appending at the version they loaded and retrying a lost race in a new transaction. A drawn
schedule orders their steps as far as the database lets it: a thread waiting on a lock keeps its
turn only briefly, then the others go on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from conftest import POSTGRES_URL, drop_schema, require_postgres
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventsourcing_fn.storage import (
    NewEvent,
    Storage,
    StoredEvent,
    StreamAppend,
    VersionConflict,
    memory_storage,
    postgres_storage,
    sqlite_storage,
)

STREAMS = 3
TYPE = "counter"
TURN_WAIT = 0.02  # seconds a step waits for its turn before it goes anyway
ATTEMPTS = 50  # transactions a thread tries before the test gives up on it
INTERLEAVINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # each example makes its own
)


@attrs.frozen
class Plan:
    """Per thread, its transactions (the streams each appends to, in turn); then the schedule."""

    programs: tuple[tuple[tuple[int, ...], ...], ...]
    schedule: tuple[int, ...]  # one thread index per step: each append, then each commit


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    # Streams in ascending order within a transaction, as lock-ordering writers do: two
    # transactions appending to the same streams in opposite orders would deadlock instead.
    transaction = st.lists(st.integers(0, STREAMS - 1), min_size=1, max_size=3).map(sorted)
    program = st.lists(transaction, min_size=1, max_size=3)
    programs = draw(st.lists(program, min_size=2, max_size=3))
    steps = [t for t, txs in enumerate(programs) for tx in txs for _ in range(len(tx) + 1)]
    schedule = draw(st.permutations(steps))
    return Plan(tuple(tuple(tuple(tx) for tx in txs) for txs in programs), tuple(schedule))


# Thread 0 writes stream 1 first (so it has begun), thread 1 then appends to stream 0 and
# commits, and thread 0 appends to stream 0 after the version thread 1 committed.
ORDER_HAZARD = Plan(programs=(((1, 0),), ((0,),)), schedule=(0, 1, 1, 0, 0))


class Turns:
    """Runs steps in the schedule's order, as far as threads blocked in the database allow."""

    def __init__(self, schedule: Sequence[int]) -> None:
        self.pending = list(schedule)
        self.changed = threading.Condition()

    def wait(self, me: int) -> None:
        """Until it is `me`'s turn: a step blocked on a lock holds the turn only so long."""
        with self.changed:
            self.changed.wait_for(
                lambda: not self.pending or self.pending[0] == me or me not in self.pending,
                timeout=TURN_WAIT,
            )

    def done(self, me: int) -> None:
        with self.changed:
            if me in self.pending:
                self.pending.remove(me)
            self.changed.notify_all()

    @contextmanager
    def step(self, me: int) -> Iterator[None]:
        self.wait(me)
        try:
            yield
        finally:
            self.done(me)

    def leave(self, me: int) -> None:
        with self.changed:
            self.pending = [t for t in self.pending if t != me]
            self.changed.notify_all()


def new_event() -> NewEvent:
    return NewEvent("Counted", 1, "{}", uuid.uuid4(), datetime.now(UTC))


def run_program(
    storage: Storage,
    me: int,
    program: Sequence[Sequence[int]],
    turns: Turns,
    committed: list[StoredEvent],
) -> None:
    """Each transaction appends one event per stream at the version it loads, then commits."""
    try:
        for streams in program:
            for _ in range(ATTEMPTS):
                rows: list[StoredEvent] = []
                committing = False
                try:
                    with storage.transaction():
                        for stream in streams:
                            with turns.step(me):
                                sid = f"s{stream}"
                                loaded = storage.read_stream(TYPE, sid, 0, None)
                                version = loaded[-1].version if loaded else 0
                                rows += storage.append(
                                    [StreamAppend(TYPE, sid, version, [new_event()])]
                                )
                        turns.wait(me)
                        committing = True  # the commit's step ends once it has committed
                except VersionConflict:  # an OrderConflict too: a new transaction will do
                    continue
                finally:
                    if committing:
                        turns.done(me)
                committed.extend(rows)
                break
            else:
                raise AssertionError(f"thread {me}: {ATTEMPTS} transactions lost their race")
    finally:
        turns.leave(me)


def tail(storage: Storage, seen: list[StoredEvent], writers_done: threading.Event) -> None:
    """Follow the log in small pages until the writers are done and nothing new shows."""
    after = 0
    while True:
        rows = storage.read_all(after, 3)
        seen.extend(rows)
        if rows:
            after = rows[-1].position
        elif writers_done.is_set():
            return
        else:
            time.sleep(0.001)


def assert_in_version_order(view: Sequence[StoredEvent]) -> None:
    """Positions strictly increase; each stream shows versions 1, 2, 3... with none missing."""
    positions = [row.position for row in view]
    assert positions == sorted(set(positions)), "positions do not strictly increase"
    versions: dict[str, list[int]] = defaultdict(list)
    for row in view:
        versions[row.stream_id].append(row.version)
    for sid, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"stream {sid} read as versions {seen}"


def read_everything(storage: Storage, count: int) -> list[StoredEvent]:
    """The whole log once it holds `count` rows: another session's open transaction anywhere
    on a PostgreSQL server holds the log back until it ends, so wait for the rows to show."""
    deadline = time.monotonic() + 10
    while True:
        rows = list(storage.iter_all())
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.01)


def run_plan(make: Callable[[], Storage], plan: Plan) -> None:
    storages = [make() for _ in plan.programs]
    reader = make()
    turns = Turns(plan.schedule)
    committed: list[StoredEvent] = []
    tailed: list[StoredEvent] = []
    writers_done = threading.Event()
    writers = [
        threading.Thread(target=run_program, args=(storage, me, program, turns, committed))
        for me, (storage, program) in enumerate(zip(storages, plan.programs, strict=True))
    ]
    follower = threading.Thread(target=tail, args=(reader, tailed, writers_done))
    for thread in [*writers, follower]:
        thread.start()
    for thread in writers:
        thread.join(60)
    writers_done.set()
    follower.join(60)
    assert len(committed) == sum(len(tx) for txs in plan.programs for tx in txs)

    assert_in_version_order(tailed)
    for storage in [*storages, reader]:
        everything = read_everything(storage, len(committed))
        assert_in_version_order(everything)
        assert {r.event_id for r in everything} == {r.event_id for r in committed}
    for row in committed:  # append reported the positions the log holds
        assert row in everything


@contextmanager
def database(backend: str, folder: Path) -> Iterator[Callable[[], Storage]]:
    """Makes storages on one new, empty database of `backend`; closes them after the block."""
    made: list[Storage] = []
    shared = memory_storage()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    path = folder / f"{schema}.db"

    def make() -> Storage:
        if backend == "memory":
            return shared  # one memory storage is the whole database
        storage = (
            sqlite_storage(path)
            if backend == "sqlite"
            else postgres_storage(POSTGRES_URL, schema=schema)
        )
        made.append(storage)
        return storage

    try:
        yield make
    finally:
        for storage in made:
            storage.close()
        if backend == "postgres":
            drop_schema(schema)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    return str(request.param)


@INTERLEAVINGS
@given(plan=plans())
@example(plan=ORDER_HAZARD)
def test_every_reader_sees_each_stream_in_version_order(
    backend: str, tmp_path: Path, plan: Plan
) -> None:
    """Any interleaving: every reader sees each stream's versions in order, at rising positions."""
    with database(backend, tmp_path) as make:
        run_plan(make, plan)
