"""Laws of the store, checked on generated command sequences over the in-memory store."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from bank import Close, Deposit, Open, Withdraw, account, make_account
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Success

from eventsourcing_fn import EventStore

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
