"""Laws of the store, checked on generated command sequences and stored histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise, takewhile
from tempfile import TemporaryDirectory
from typing import Any
from uuid import uuid4

from bank import Close, Deposit, Open, Withdraw, account, make_account
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Success

from eventsourcing_fn import EventStore
from eventsourcing_fn.storage import NewEvent, StreamAppend, memory_storage, sqlite_storage

commands = st.one_of(
    st.builds(Open, st.sampled_from(["ann", "bob"])),
    st.builds(Deposit, st.integers(0, 50)),
    st.builds(Deposit, st.integers(0, 50)),
    st.builds(Withdraw, st.integers(0, 50)),
    st.just(Close()),
)
# Each batch is one execute: a stream id and the commands it carries.
batches = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.lists(commands, min_size=1, max_size=4)),
    max_size=12,
)
LAWS = settings(max_examples=50, deadline=None)


def run_batches(store: EventStore, agg: Any, plan: list[tuple[str, list[object]]]) -> None:
    """Execute every batch, rejected or not."""
    for sid, cmds in plan:
        store.execute(agg, sid, *cmds)


class TestLaws:
    @LAWS
    @given(plan=batches)
    def test_execute_state_is_the_fold_of_its_events_over_the_prior_state(
        self, plan: list[tuple[str, list[object]]]
    ) -> None:
        """fold(prior state, appended events) == outcome.state == the state loaded afterwards."""
        store = EventStore(aggregates=[account])
        for sid, cmds in plan:
            prior = store.load(account, sid)
            result = store.execute(account, sid, *cmds)
            if isinstance(result, Success):
                outcome = result.unwrap()
                assert account.fold(outcome.events, prior.state) == outcome.state
                assert outcome.version == prior.version + len(outcome.events)
                assert store.load(account, sid).state == outcome.state
            else:
                assert store.load(account, sid) == prior

    @LAWS
    @given(plan=batches, every=st.integers(1, 5))
    def test_snapshot_plus_tail_equals_the_full_fold(
        self, plan: list[tuple[str, list[object]]], every: int
    ) -> None:
        """With snapshot_every=k, every load (and every at_version) equals folding all events."""
        agg = make_account(snapshot_every=every)
        store = EventStore(aggregates=[agg])
        run_batches(store, agg, plan)
        for sid in ("a", "b", "c"):
            events = store.events(agg, sid)
            loaded = store.load(agg, sid)
            assert (loaded.version, loaded.state) == (len(events), agg.fold(events))
            for version in range(len(events) + 1):
                at = store.load(agg, sid, at_version=version)
                assert (at.version, at.state) == (version, agg.fold(events[:version]))

    @LAWS
    @given(plan=batches)
    def test_versions_are_one_to_n_and_positions_increase(
        self, plan: list[tuple[str, list[object]]]
    ) -> None:
        """Each stream's versions are exactly 1..n; the log's positions strictly increase."""
        store = EventStore(aggregates=[account])
        run_batches(store, account, plan)
        for sid in ("a", "b", "c"):
            versions = [r.version for r in store.events(account, sid)]
            assert versions == list(range(1, len(versions) + 1))
        positions = [r.position for r in store.read_all()]
        assert all(a < b for a, b in pairwise(positions))
        assert sum(store.load(account, s).version for s in "abc") == len(positions)

    @LAWS
    @given(
        amounts=st.lists(st.integers(1, 9), min_size=1, max_size=8),
        offsets=st.lists(st.integers(-5, 5), min_size=9, max_size=9),
        at=st.integers(-6, 12),
        backend=st.sampled_from(["memory", "sqlite"]),
    )
    def test_load_at_time_is_the_fold_of_a_prefix(
        self, amounts: list[int], offsets: list[int], at: int, backend: str
    ) -> None:
        """With clocks that run backwards, load(at=t) is the fold of the stream's longest
        prefix recorded at or before t: never a later version without the ones before it."""
        base = datetime(2026, 1, 1, tzinfo=UTC)
        stamps = [base + timedelta(seconds=o) for o in offsets]
        kinds = [("Opened", '{"owner":"ann"}')] + [
            ("Deposited", f'{{"amount":{a}}}') for a in amounts
        ]
        rows = [
            NewEvent(t, 1, d, uuid4(), stamp) for (t, d), stamp in zip(kinds, stamps, strict=False)
        ]
        with TemporaryDirectory() as tmp:
            storage = memory_storage() if backend == "memory" else sqlite_storage(f"{tmp}/e.db")
            storage.append([StreamAppend("account", "a", None, rows)])
            store = EventStore(storage, aggregates=[account])
            moment = base + timedelta(seconds=at)
            events = store.events(account, "a")
            prefix = list(takewhile(lambda r: r.recorded_at <= moment, events))
            loaded = store.load(account, "a", at=moment)
            assert (loaded.version, loaded.state) == (len(prefix), account.fold(prefix))
            storage.close()
