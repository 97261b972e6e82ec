"""Laws of the reactions: live equals replay equals the fold of the log, under concurrency too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bank import Close, Deposit, Open, Withdraw, account
from conftest import POSTGRES_URL, StorageFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactive import make_balances, make_totals
from returns.result import Success

from eventsourcing_fn import EventStore
from eventsourcing_fn.storage import memory_storage

commands = st.one_of(
    st.builds(Open, st.sampled_from(["ann", "bob"])),
    st.builds(Deposit, st.integers(0, 50)),
    st.builds(Withdraw, st.integers(0, 50)),
    st.just(Close()),
)
plans = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.lists(commands, min_size=1, max_size=3)),
    max_size=15,
)


def folded(store: EventStore) -> tuple[int, dict[str, Any]]:
    """The totals and balances computed from the log alone, with the projections' own folds."""
    records = list(store.read_all())
    return make_totals().fold(records), make_balances().fold(records)


class TestLiveEqualsTheLog:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plan=plans)
    def test_live_views_are_the_fold_of_the_whole_log(
        self, plan: list[tuple[str, list[object]]]
    ) -> None:
        """For any command sequence, inline views equal folding the log, and so does replay."""
        totals, balances = make_totals(), make_balances()
        store = EventStore(memory_storage(), aggregates=[account], projections=[totals, balances])
        for sid, cmds in plan:
            store.execute(account, sid, *cmds)
        live = (store.view(totals), store.documents(balances).all())
        assert live == folded(store)
        store.rebuild()
        assert (store.view(totals), store.documents(balances).all()) == live


@pytest.mark.parametrize("storage_factory", ["sqlite", "postgres"], indirect=True)
class TestManyWriters:
    def test_eight_writer_threads_count_every_event_once(
        self, storage_factory: StorageFactory
    ) -> None:
        """8 threads, each with its own store and storage object, keep the views exact."""
        totals, balances = make_totals(), make_balances()
        stores = [
            EventStore(storage_factory(), aggregates=[account], projections=[totals, balances])
            for _ in range(8)
        ]
        stores[0].execute(account, "shared", Open("all")).unwrap()
        errors: list[BaseException] = []

        def write(store: EventStore, n: int) -> None:
            try:
                for i in range(15):
                    store.execute(account, f"own-{n}", Deposit(1) if i else Open(f"o{n}"))
                    result = store.execute(account, "shared", Deposit(1), max_retries=50)
                    if not isinstance(result, Success):
                        errors.append(result.failure())
                        return
            except BaseException as exc:  # reported below, with the thread's failure
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        store = stores[0]
        assert (store.view(totals), store.documents(balances).all()) == folded(store)
        assert store.view(totals) == 8 * 14 + 8 * 15
        for s in stores:
            s.close()

    def test_replay_beside_live_writers_misses_nothing(
        self, storage_factory: StorageFactory
    ) -> None:
        """Writers leave a component under replay to it; the replay ends level with the log."""
        totals, balances = make_totals(), make_balances()
        store = EventStore(storage_factory(), aggregates=[account], projections=[totals, balances])
        for i in range(60):
            store.execute(account, f"s{i}", Open("x"), *[Deposit(1)] * 40).unwrap()
        writers = [
            EventStore(storage_factory(), aggregates=[account], projections=[totals, balances])
            for _ in range(3)
        ]
        stop = threading.Event()
        errors: list[BaseException] = []

        def write(writer: EventStore, n: int) -> None:
            try:
                writer.execute(account, f"w{n}", Open("w")).unwrap()
                for _ in range(150):  # bounded, and usually cut short by the replay's end
                    if stop.is_set():
                        break
                    writer.execute(account, f"w{n}", Deposit(1)).unwrap()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
        for thread in threads:
            thread.start()
        try:
            store.replay(balances)
            store.replay(totals)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert errors == []
        assert (store.view(totals), store.documents(balances).all()) == folded(store)
        for writer in writers:
            writer.close()


WRITER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}]
    from bank import Deposit, Open, account
    from reactive import make_balances, make_totals
    from eventsourcing_fn import EventStore
    from eventsourcing_fn.storage import postgres_storage, sqlite_storage

    target, n = sys.argv[1], int(sys.argv[2])
    storage = sqlite_storage(target) if "://" not in target else postgres_storage(
        target, schema=sys.argv[3]
    )
    store = EventStore(storage, aggregates=[account], projections=[make_totals(), make_balances()])
    store.execute(account, f"p{{n}}", Open(f"p{{n}}")).unwrap()
    for _ in range(20):
        store.execute(account, f"p{{n}}", Deposit(1)).unwrap()
        store.execute(account, "shared", Deposit(1), max_retries=100).unwrap()
    storage.close()
    """
)


def run_writers(target: str, schema: str, count: int) -> None:
    tests = str(Path(__file__).parent)
    script = WRITER.format(tests=tests)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, target, str(n), schema])
        for n in range(count)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * count


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_four_writer_processes_count_every_event_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """4 processes writing with inline projections leave views equal to the log's fold."""
    from conftest import drop_schema, require_postgres

    schema = f"test_procs_{os.getpid()}"
    if backend == "postgres":
        require_postgres()
        request.addfinalizer(lambda: drop_schema(schema))
        from eventsourcing_fn.storage import postgres_storage

        target = POSTGRES_URL
        make = lambda: postgres_storage(POSTGRES_URL, schema=schema)  # noqa: E731
    else:
        from eventsourcing_fn.storage import sqlite_storage

        target = str(tmp_path / "events.db")
        make = lambda: sqlite_storage(target)  # noqa: E731
    first = EventStore(make(), aggregates=[account])
    first.execute(account, "shared", Open("all")).unwrap()
    run_writers(target, schema, 4)
    totals, balances = make_totals(), make_balances()
    store = EventStore(make(), aggregates=[account], projections=[totals, balances])
    assert store.view(totals) == 4 * 40
    assert (store.view(totals), store.documents(balances).all()) == folded(store)
    store.close()
    first.close()


REPLAYER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}]
    from bank import account
    from reactive import make_balances
    from eventsourcing_fn import EventStore
    from eventsourcing_fn.storage import sqlite_storage

    balances = make_balances()
    store = EventStore(sqlite_storage(sys.argv[1]), aggregates=[account], projections=[balances])
    print("ready", flush=True)
    store.replay(balances, progress=lambda done, total: print(done, flush=True))
    """
)


@pytest.mark.slow
def test_killed_replay_resumes_from_its_last_batch(tmp_path: Path) -> None:
    """A replay killed with SIGKILL mid-way resumes from its last committed batch, exactly."""
    from eventsourcing_fn.storage import NewEvent, StreamAppend, sqlite_storage

    path = str(tmp_path / "big.db")
    storage = sqlite_storage(path)
    rows = []
    now = datetime.now(UTC)
    for i in range(50_000):
        sid = f"s{i % 500}"
        kind, data = ("Opened", '{"owner":"o"}') if i < 500 else ("Deposited", '{"amount":1}')
        rows.append((sid, NewEvent(kind, 1, data, uuid.uuid4(), now)))
    by_stream: dict[str, list[NewEvent]] = {}
    for sid, event in rows:
        by_stream.setdefault(sid, []).append(event)
    storage.append([StreamAppend("account", sid, None, evs) for sid, evs in by_stream.items()])
    balances = make_balances()
    clean = EventStore(storage, aggregates=[account], projections=[balances])
    expected = clean.documents(balances).all()
    proc = subprocess.Popen(
        [sys.executable, "-c", REPLAYER.format(tests=str(Path(__file__).parent)), path],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    progressed = 0
    while progressed < 5_000:  # a few batches committed, the replay well under way
        progressed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    checkpoint = storage.read_checkpoint("balances")
    assert checkpoint is not None
    # Died mid-way, after committing some batches: the checkpoint still marks the replay
    # (a negative position, -cursor - 1) so writers leave the component to it.
    assert 0 < -checkpoint.position - 1 < 50_000
    again = make_balances()
    resumed = EventStore(storage, aggregates=[account], projections=[again])
    assert resumed.documents(again).all() == expected
    assert sum(b.amount for b in expected.values()) == 49_500
    storage.close()
