"""Projections, process managers and listeners, inline in the command's transaction."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest
from bank import (
    Account,
    Close,
    Closed,
    Deposit,
    Deposited,
    Open,
    Opened,
    Withdraw,
    Withdrawn,
    account,
)
from conftest import StorageFactory
from reactive import (
    Balance,
    make_balances,
    make_closer,
    make_journal,
    make_rows,
    make_totals,
    query_rows,
)
from returns.result import Failure

from eventsourcing_fn import (
    Aggregate,
    ConfigurationError,
    DocumentProjection,
    EventStore,
    InfiniteLoopError,
    ProcessManager,
    ProcessManagerError,
    Projection,
    ProjectionError,
    Recorded,
    Send,
    context,
    replaying,
)
from eventsourcing_fn.storage import Storage, memory_storage


def sql_capable(storage: Storage) -> bool:
    return storage.connection is not None


def components(storage: Storage) -> list[Any]:
    made: list[Any] = [make_totals(), make_balances()]
    if sql_capable(storage):
        made.append(make_rows())
    return made


class TestReadYourWrites:
    def test_fold_projection_sees_the_command_at_once(self, storage: Storage) -> None:
        """A fold projection read right after execute includes that command's events."""
        totals = make_totals()
        store = EventStore(storage, aggregates=[account], projections=[totals])
        store.execute(account, "a", Open("ann"), Deposit(10)).unwrap()
        assert store.view(totals) == 10
        store.execute(account, "a", Withdraw(3)).unwrap()
        assert store.view(totals) == 7

    def test_documents_are_read_in_key_order(self, storage: Storage) -> None:
        """store.documents is a read-only mapping in key order; None from a handler deletes."""
        balances = make_balances()
        store = EventStore(storage, aggregates=[account], projections=[balances])
        for sid, owner in [("b", "bob"), ("a", "ann"), ("c", "cy")]:
            store.execute(account, sid, Open(owner), Deposit(len(owner))).unwrap()
        store.execute(account, "c", Close()).unwrap()
        docs = store.documents(balances)
        assert list(docs) == ["a", "b"]
        assert docs["a"] == Balance("ann", 3)
        assert docs.get("c") is None
        assert len(docs) == 2
        assert dict(docs.items()) == docs.all() == {"a": Balance("ann", 3), "b": Balance("bob", 3)}
        with pytest.raises(TypeError):
            docs["z"] = Balance("z")  # type: ignore[index]

    def test_sql_rows_match_the_document_projection(self, storage: Storage) -> None:
        """A SqlProjection's rows, written in the append's transaction, equal the documents."""
        if not sql_capable(storage):
            with pytest.raises(ConfigurationError, match="account_rows"):
                EventStore(storage, aggregates=[account], projections=[make_rows()])
            return
        balances = make_balances()
        store = EventStore(storage, aggregates=[account], projections=[balances, make_rows()])
        for i in range(5):
            store.execute(account, f"s{i}", Open(f"o{i}"), Deposit(i * 10), Withdraw(i)).unwrap()
        store.execute(account, "s3", Close()).unwrap()
        assert query_rows(store) == store.documents(balances).all()
        assert len(query_rows(store)) == 4


class TestFailures:
    def test_raising_projection_fails_the_command_and_appends_nothing(
        self, storage: Storage
    ) -> None:
        """A projection handler that raises is Failure(ProjectionError) naming what failed."""
        broken = Projection("broken", initial=0)

        @broken.on
        def explode(total: int, event: Deposited) -> int:
            raise RuntimeError("boom")

        totals = make_totals()
        store = EventStore(storage, aggregates=[account], projections=[totals, broken])
        store.execute(account, "a", Open("ann")).unwrap()
        result = store.execute(account, "a", Deposit(5))
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, ProjectionError)
        assert isinstance(error.reason, RuntimeError)
        for part in ("'broken'", "explode", "Deposited", "account/'a'", "position"):
            assert part in str(error)
        assert store.load(account, "a").version == 1
        assert store.view(totals) == 0
        assert [r.type for r in store.read_all()] == ["Opened"]

    def test_unregistered_component_is_a_configuration_error(self, storage: Storage) -> None:
        """Reading a component the store does not run is a ConfigurationError."""
        store = EventStore(storage, aggregates=[account])
        with pytest.raises(ConfigurationError, match="totals"):
            store.view(make_totals())

    def test_two_components_with_one_name_are_refused(self, storage: Storage) -> None:
        """Two components sharing a name would share state: the constructor refuses them."""
        with pytest.raises(ConfigurationError, match="totals"):
            EventStore(storage, projections=[make_totals()], process_managers=[_named("totals")])


def _named(name: str) -> ProcessManager[Any]:
    manager = ProcessManager(name)

    @manager.react
    def nothing(state: None, event: Opened) -> None:
        return None

    return manager


class TestCatchUpAndReplay:
    def test_late_projection_catches_up_at_construction(
        self, storage_factory: StorageFactory
    ) -> None:
        """A projection added to a store that holds events is level before it answers."""
        storage = storage_factory()
        plain = EventStore(storage, aggregates=[account])
        for i in range(25):
            plain.execute(account, f"s{i % 4}", Open("x") if i < 4 else Deposit(i)).unwrap()
        totals, balances = make_totals(), make_balances()
        store = EventStore(storage_factory(), aggregates=[account], projections=[totals, balances])
        assert store.view(totals) == sum(range(4, 25))
        assert sum(d.amount for d in store.documents(balances).values()) == sum(range(4, 25))

    def test_replay_equals_the_live_view(self, storage: Storage) -> None:
        """Replaying from scratch gives what inline application gave, reporting progress."""
        made = components(storage)
        store = EventStore(storage, aggregates=[account], projections=made)
        for i in range(30):
            sid = f"s{i % 5}"
            store.execute(account, sid, Open(sid) if i < 5 else Deposit(i)).unwrap()
        live = (store.view(made[0]), store.documents(made[1]).all())
        rows = query_rows(store) if sql_capable(storage) else None
        calls: list[tuple[int, int | None]] = []
        for component in made:
            store.replay(component, progress=lambda done, total: calls.append((done, total)))
        assert (store.view(made[0]), store.documents(made[1]).all()) == live
        if rows is not None:
            assert query_rows(store) == rows
        assert calls[0] == (0, None)
        assert calls[-1] == (30, 30)

    def test_rebuild_and_catch_up_cover_every_component(self, storage: Storage) -> None:
        """rebuild replays all components; catch_up after it has nothing left to do."""
        made = components(storage)
        store = EventStore(storage, aggregates=[account], projections=made)
        store.execute(account, "a", Open("ann"), Deposit(4)).unwrap()
        seen: list[tuple[int, int | None]] = []
        assert store.rebuild(progress=lambda d, t: seen.append((d, t))) == 2 * len(made)
        assert seen[0] == (0, None)
        assert seen[-1][0] == seen[-1][1] == 2 * len(made)
        assert store.catch_up() == 0
        assert store.view(made[0]) == 4

    @pytest.mark.parametrize("storage_factory", ["sqlite", "postgres"], indirect=True)
    def test_state_survives_reopening_the_store(self, storage_factory: StorageFactory) -> None:
        """A new store over a new storage object on the same database reads the projections."""
        storage = storage_factory()
        totals = make_totals()
        EventStore(storage, aggregates=[account], projections=[totals]).execute(
            account, "a", Open("ann"), Deposit(9)
        ).unwrap()
        again = make_totals()
        reopened = EventStore(storage_factory(), aggregates=[account], projections=[again])
        assert reopened.view(again) == 9

    def test_replay_stream_rebuilds_one_stream(self, storage: Storage) -> None:
        """replay_stream refolds one stream's document from its events alone."""
        balances = make_balances()
        store = EventStore(storage, aggregates=[account], projections=[balances])
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        store.execute(account, "b", Open("bob"), Deposit(6)).unwrap()
        storage.put_documents("balances", [("a", '{"owner":"x","amount":0}')])
        store.replay_stream(balances, "a")
        assert store.documents(balances).all() == {"a": Balance("ann", 5), "b": Balance("bob", 6)}

    def test_replay_stream_needs_a_stream_key(self, storage: Storage) -> None:
        """A fold projection has no per-stream state to replay: a ConfigurationError."""
        totals = make_totals()
        store = EventStore(storage, aggregates=[account], projections=[totals])
        with pytest.raises(ConfigurationError, match="reset_stream"):
            store.replay_stream(totals, "a")

    def test_replaying_is_true_only_inside_replays(self, storage: Storage) -> None:
        """replaying() tells a handler whether it runs in a replay."""
        flags: list[bool] = []
        spy = Projection("spy", initial=0)

        @spy.on
        def note(count: int, event: Opened) -> int:
            flags.append(replaying())
            return count + 1

        store = EventStore(storage, aggregates=[account], projections=[spy])
        store.execute(account, "a", Open("ann")).unwrap()
        store.replay(spy)
        assert flags == [False, True]
        assert not replaying()


class TestGlobalHandlers:
    def test_object_handler_sees_every_event_with_its_record(self, storage: Storage) -> None:
        """An `object` handler receives every event of every stream, with its envelope."""
        log = Projection("log", initial=[], state_type=list[str])

        @log.on
        def every(seen: list[str], event: object, record: Recorded[Any]) -> list[str]:
            return [*seen, f"{record.stream_id}@{record.version}:{record.type}"]

        store = EventStore(storage, aggregates=[account], projections=[log])
        store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        store.execute(account, "b", Open("bob")).unwrap()
        assert store.view(log) == ["a@1:Opened", "a@2:Deposited", "b@1:Opened"]


# -- process managers -----------------------------------------------------------------------


@attrs.frozen
class Ordered:
    account_id: str
    amount: int


@attrs.frozen
class PlaceOrder:
    account_id: str
    amount: int


@attrs.frozen
class Order:
    placed: bool = False


def make_orders() -> tuple[Aggregate[Order], ProcessManager[Any]]:
    """Orders that charge an account: placing one sends Withdraw to the account."""
    order = Aggregate("order", initial=Order())

    @order.evolve
    def ordered(state: Order, event: Ordered) -> Order:
        return Order(placed=True)

    @order.decide
    def place(command: PlaceOrder, state: Order) -> Ordered:
        return Ordered(command.account_id, command.amount)

    billing = ProcessManager("billing")

    @billing.react
    def charge(state: None, event: Ordered) -> Send:
        return Send(account, event.account_id, Withdraw(event.amount))

    return order, billing


class TestProcessManagers:
    def test_cascade_across_two_aggregates_propagates_ids(self, storage: Storage) -> None:
        """A sent command runs in the trigger's transaction with causation and correlation."""
        order, billing = make_orders()
        totals = make_totals()
        store = EventStore(
            storage, aggregates=[account, order], projections=[totals], process_managers=[billing]
        )
        store.execute(account, "acc", Open("ann"), Deposit(50)).unwrap()
        with context(actor_id="clerk", correlation_id="req-1"):
            outcome = store.execute(order, "o1", PlaceOrder("acc", 20)).unwrap()
        (trigger,) = outcome.events
        (charged,) = outcome.cascade
        assert charged.event == Withdrawn(20)
        assert charged.causation_id == str(trigger.event_id)
        assert (charged.correlation_id, charged.actor_id) == ("req-1", "clerk")
        assert store.load(account, "acc").state == Account("ann", 30)
        assert store.view(totals) == 30

    def test_correlation_defaults_to_the_trigger_event(self, storage: Storage) -> None:
        """Without a correlation id, a sent command correlates to its trigger's event id."""
        order, billing = make_orders()
        store = EventStore(storage, aggregates=[account, order], process_managers=[billing])
        store.execute(account, "acc", Open("ann"), Deposit(50)).unwrap()
        outcome = store.execute(order, "o1", PlaceOrder("acc", 20)).unwrap()
        assert outcome.cascade[0].correlation_id == str(outcome.events[0].event_id)

    def test_rejected_sent_command_rolls_back_the_trigger(self, storage: Storage) -> None:
        """A sent command its aggregate rejects fails the trigger; nothing is appended."""
        order, billing = make_orders()
        store = EventStore(storage, aggregates=[account, order], process_managers=[billing])
        store.execute(account, "acc", Open("ann"), Deposit(5)).unwrap()
        result = store.execute(order, "o1", PlaceOrder("acc", 20))
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, ProcessManagerError)
        assert "'billing'" in str(error)
        assert "Withdraw" in str(error)
        assert "Ordered" in str(error)
        assert store.load(order, "o1").version == 0
        assert store.load(account, "acc").version == 2

    def test_failed_cascade_inside_a_transaction_leaves_the_block_going(
        self, storage: Storage
    ) -> None:
        """Inside transaction(), a failed cascade undoes that command alone; the block goes on."""
        order, billing = make_orders()
        totals = make_totals()
        store = EventStore(
            storage, aggregates=[account, order], projections=[totals], process_managers=[billing]
        )
        with store.transaction():
            store.execute(account, "acc", Open("ann"), Deposit(5)).unwrap()
            failed = store.execute(order, "o1", PlaceOrder("acc", 20))
            store.execute(order, "o2", PlaceOrder("acc", 2)).unwrap()
        assert isinstance(failed.failure(), ProcessManagerError)
        assert store.load(order, "o1").version == 0
        assert store.load(order, "o2").version == 1
        assert store.load(account, "acc").state == Account("ann", 3)
        assert store.view(totals) == 3

    def test_keyed_state_is_folded_before_reacting(self, storage: Storage) -> None:
        """Reactions see the state after the event's fold: the 100th unit closes the account."""
        closer = make_closer()
        store = EventStore(storage, aggregates=[account], process_managers=[closer])
        store.execute(account, "a", Open("ann"), Deposit(60)).unwrap()
        outcome = store.execute(account, "a", Deposit(40)).unwrap()
        assert [r.event for r in outcome.cascade] == [Closed()]
        assert store.load(account, "a").state.closed
        assert store.documents(closer).all() == {"a": 100}

    def test_infinite_loop_is_stopped(self, storage: Storage) -> None:
        """A manager that answers an event with the same event fails with InfiniteLoopError."""
        echo = ProcessManager("echo")

        @echo.react
        def again(state: None, event: Deposited, record: Recorded[Any]) -> Send:
            return Send(account, record.stream_id, Deposit(event.amount))

        store = EventStore(storage, aggregates=[account], process_managers=[echo])
        store.execute(account, "a", Open("ann")).unwrap()
        result = store.execute(account, "a", Deposit(1))
        assert isinstance(result.failure(), InfiniteLoopError)
        assert "'echo'" in str(result.failure())
        assert store.load(account, "a").version == 1

    def test_runaway_cascade_is_bounded(self, storage: Storage) -> None:
        """A cascade that never repeats an event still stops at the depth bound."""
        grow = ProcessManager("grow")

        @grow.react
        def more(state: None, event: Deposited, record: Recorded[Any]) -> Send:
            return Send(account, record.stream_id, Deposit(event.amount + 1))

        store = EventStore(storage, aggregates=[account], process_managers=[grow])
        store.execute(account, "a", Open("ann")).unwrap()
        result = store.execute(account, "a", Deposit(1))
        assert isinstance(result.failure(), InfiniteLoopError)
        assert "deeper" in str(result.failure())
        assert store.load(account, "a").version == 1

    def test_replay_refolds_without_reacting(self, storage: Storage) -> None:
        """Replaying a process manager rebuilds its state and sends nothing."""
        closer = make_closer()
        store = EventStore(storage, aggregates=[account], process_managers=[closer])
        store.execute(account, "a", Open("ann"), Deposit(100)).unwrap()
        store.execute(account, "b", Open("bob"), Deposit(30)).unwrap()
        before = len(list(store.read_all()))
        store.replay(closer)
        assert len(list(store.read_all())) == before
        assert store.documents(closer).all() == {"a": 100, "b": 30}


class TestListeners:
    def test_every_on_runs_before_any_after_per_event(self, storage: Storage) -> None:
        """Listeners run after commit: per event, each `on` and then each `after`."""
        journal, seen = make_journal()
        store = EventStore(storage, aggregates=[account], listeners=[journal])
        store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        assert seen == ["on:Opened", "after:Opened", "on:Deposited", "after:Deposited"]

    def test_listeners_run_after_the_transaction_commits(self, storage: Storage) -> None:
        """Inside transaction(), listeners wait for the commit; a rollback drops them."""
        journal, seen = make_journal()
        store = EventStore(storage, aggregates=[account], listeners=[journal])
        with store.transaction():
            store.execute(account, "a", Open("ann")).unwrap()
            assert seen == []
        assert seen == ["on:Opened", "after:Opened"]

        def rolled_back() -> None:
            with store.transaction():
                store.execute(account, "b", Open("bob")).unwrap()
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            rolled_back()
        assert seen == ["on:Opened", "after:Opened"]

    def test_raising_listener_is_logged_and_the_command_succeeds(
        self, storage: Storage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A listener that raises is logged with its name, handler and position."""
        from eventsourcing_fn import Listener

        loud = Listener("loud")

        @loud.on
        def shout(event: Opened) -> None:
            raise RuntimeError("listener down")

        store = EventStore(storage, aggregates=[account], listeners=[loud])
        with caplog.at_level(logging.ERROR, logger="eventsourcing_fn"):
            outcome = store.execute(account, "a", Open("ann")).unwrap()
        assert outcome.version == 1
        assert "'loud'" in caplog.text
        assert "shout" in caplog.text
        assert "position" in caplog.text

    def test_listeners_never_run_in_replays(self, storage: Storage) -> None:
        """Replays and rebuilds re-fold projections without calling listeners."""
        journal, seen = make_journal()
        totals = make_totals()
        store = EventStore(storage, aggregates=[account], projections=[totals], listeners=[journal])
        store.execute(account, "a", Open("ann"), Deposit(3)).unwrap()
        seen.clear()
        store.rebuild()
        assert seen == []
        assert store.view(totals) == 3


class TestMemoryOnly:
    def test_sql_projection_on_memory_is_a_configuration_error(self) -> None:
        """Memory storage has no SQL tables: a SqlProjection there is refused at once."""
        with pytest.raises(ConfigurationError, match="account_rows"):
            EventStore(memory_storage(), aggregates=[account], projections=[make_rows()])

    def test_document_projection_with_a_custom_key(self) -> None:
        """key=(event, record) -> str groups documents by any value of the event."""
        owners = DocumentProjection("owners", doc_type=int, key=lambda e, r: e.owner)

        @owners.on
        def count(n: int | None, event: Opened) -> int:
            return (n or 0) + 1

        store = EventStore(aggregates=[account], projections=[owners])
        for sid, owner in [("a", "ann"), ("b", "ann"), ("c", "bob")]:
            store.execute(account, sid, Open(owner)).unwrap()
        assert store.documents(owners).all() == {"ann": 2, "bob": 1}


class TestSqlTablesOnPostgres:
    @pytest.mark.parametrize("storage_factory", ["postgres"], indirect=True)
    def test_sql_projection_tables_live_in_the_stores_schema(
        self, storage_factory: StorageFactory
    ) -> None:
        """Unqualified tables of a SQL projection are made and found in the store's schema."""
        storage = storage_factory()
        store = EventStore(storage, aggregates=[account], projections=[make_rows()])
        store.execute(account, "a", Open("ann")).unwrap()
        with store.connection() as conn:
            (schema,) = conn.execute(
                "SELECT table_schema FROM information_schema.tables"
                " WHERE table_name = 'account_rows'"
            ).fetchone()
            assert schema == conn.execute("SELECT current_schema()").fetchone()[0]
        assert query_rows(store) == {"a": Balance("ann", 0)}
