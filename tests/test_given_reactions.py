"""given / when / then for projections, document and SQL projections, and process managers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import attrs
import pytest
from bank import Closed, Deposit, Deposited, Opened, Withdrawn, account

from eventsourcing_fn import (
    Aggregate,
    DocumentProjection,
    ProcessManager,
    ProcessManagerError,
    Projection,
    ProjectionError,
    Recorded,
    Send,
    SqlProjection,
    event_type,
)
from eventsourcing_fn.testing import Scenario, given, raw, recorded


def side_by_side(message: str, left: str, right: str) -> bool:
    """Whether one line of `message` shows `left` and, to its right, `right`."""
    return any(
        left in line and line.find(right, line.index(left) + len(left)) != -1
        for line in message.splitlines()
    )


def marked(message: str, text: str) -> bool:
    """Whether the row showing `text` is marked `!` as a difference."""
    return any(line.startswith("!") and text in line for line in message.splitlines())


# -- the components under test --------------------------------------------------------------

totals = Projection("totals", initial=0)


@totals.on
def deposited(total: int, event: Deposited) -> int:
    return total + event.amount


@totals.on
def withdrawn(total: int, event: Withdrawn) -> int:
    return total - event.amount


moves = Projection("moves", initial=())


@moves.on
def moved(seen: tuple[int, ...], event: Deposited | Withdrawn) -> tuple[int, ...]:
    return (*seen, event.amount if isinstance(event, Deposited) else -event.amount)


journal = Projection("journal", initial=())


@journal.on
def deposit_line(
    lines: tuple[str, ...], event: Deposited, record: Recorded[Any]
) -> tuple[str, ...]:
    return (*lines, f"{record.stream_id}@{record.version}#{record.position}: +{event.amount}")


@journal.on
def other_line(lines: tuple[str, ...], event: object, record: Recorded[Any]) -> tuple[str, ...]:
    return (*lines, f"{record.stream_id}@{record.version}#{record.position}: {record.type}")


@attrs.frozen
class Balance:
    owner: str
    amount: int = 0


balances = DocumentProjection("balances", doc_type=Balance)


@balances.on
def balance_opened(doc: Balance | None, event: Opened) -> Balance:
    return Balance(event.owner)


@balances.on
def balance_deposited(doc: Balance | None, event: Deposited, record: Recorded[Any]) -> Balance:
    assert doc is not None, f"no document for {record.stream_id}"
    return attrs.evolve(doc, amount=doc.amount + event.amount)


@balances.on
def balance_closed(doc: Balance | None, event: Closed) -> None:
    return None


owners = DocumentProjection(
    "owners", doc_type=int, key=lambda event, record: event.owner.lower() or None
)


@owners.on
def owner_counted(count: int | None, event: Opened) -> int:
    return (count or 0) + 1


def create_accounts(conn: Any) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, owner TEXT, balance INT)"
    )


account_rows = SqlProjection("account_rows", setup=create_accounts)


@account_rows.on
def row_opened(conn: Any, event: Opened, record: Recorded[Any]) -> None:
    conn.execute("INSERT INTO accounts VALUES (?, ?, 0)", (record.stream_id, event.owner))


@account_rows.on
def row_moved(conn: Any, event: Deposited | Withdrawn, record: Recorded[Any]) -> None:
    amount = event.amount if isinstance(event, Deposited) else -event.amount
    conn.execute(
        "UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, record.stream_id)
    )


@attrs.frozen
class PaymentReceived:
    order_id: str


@attrs.frozen
class ItemsReserved:
    order_id: str


@attrs.frozen
class OrderCancelled:
    order_id: str


@attrs.frozen
class Ship:
    pass


@attrs.frozen
class Refund:
    reason: str


@attrs.frozen
class Note:
    text: str


@attrs.frozen
class Progress:
    paid: bool = False
    reserved: bool = False


order = Aggregate("order", initial=None)
order_twin = Aggregate("order", initial=None)  # another aggregate of the same name

shipping = ProcessManager(
    "shipping", initial=Progress(), key=lambda event, record: event.order_id or None
)


@shipping.on
def paid(state: Progress, event: PaymentReceived) -> Progress:
    return attrs.evolve(state, paid=True)


@shipping.on
def reserved(state: Progress, event: ItemsReserved) -> Progress | None:
    return attrs.evolve(state, reserved=True)


@shipping.on
def cancelled(state: Progress, event: OrderCancelled) -> None:
    return None  # forget the order


@shipping.react
def ship_when_ready(state: Progress, event: PaymentReceived | ItemsReserved) -> Iterator[Send]:
    if state.paid and state.reserved:
        yield Send(order, event.order_id, Ship())


batches = ProcessManager("batches", initial=0)


@batches.on
def count_payment(count: int, event: PaymentReceived) -> int:
    return count + 1


@batches.react
def ship_batch(count: int, event: PaymentReceived, record: Recorded[Any]) -> list[Send]:
    return [Send(order, "batch", Note(f"{count} paid"))] if count % 2 == 0 else []


refunds: ProcessManager[None] = ProcessManager("refunds")
states_seen: list[object] = []


@refunds.react
def refund(state: None, event: OrderCancelled, record: Recorded[Any]) -> Send:
    states_seen.append(state)
    return Send(order, event.order_id, Refund("cancelled"), expected_version=record.version)


auditor: ProcessManager[None] = ProcessManager("auditor")


@auditor.react
def audit(state: None, event: object, record: Recorded[Any]) -> Send:
    return Send(order, "audit", Note(f"{record.type}@{record.position}"))


# -- the tests --------------------------------------------------------------------------------


class TestRecorded:
    def test_defaults_make_a_given_stream_envelope(self) -> None:
        """recorded(event) is version 1 of stream given/given at position 1, with no metadata."""
        record = recorded(Deposited(5))
        assert (record.event, record.type, record.schema_version) == (Deposited(5), "Deposited", 1)
        assert (record.stream_type, record.stream_id, record.version) == ("given", "given", 1)
        assert record.position == 1
        assert record.recorded_at.tzinfo is UTC
        assert (record.actor_id, record.correlation_id, record.causation_id) == (None, None, None)
        assert record.metadata == {}

    def test_position_follows_the_version_unless_given(self) -> None:
        """Without position=, the position is the version; with it, the position given."""
        assert recorded(Deposited(1), version=3).position == 3
        assert recorded(Deposited(1), version=3, position=9).position == 9

    def test_event_ids_are_stable_and_distinct_per_stream_version(self) -> None:
        """The default event_id is the same on every call and differs by stream and version."""
        assert recorded(Deposited(1)).event_id == recorded(Deposited(2)).event_id
        ids = {
            recorded(Deposited(1), stream_id=s, version=v).event_id for s in "ab" for v in (1, 2)
        }
        assert len(ids) == 4

    def test_type_name_and_version_come_from_event_type(self) -> None:
        """An @event_type class is recorded under its stored name and schema version."""

        @event_type("Renamed", version=3)
        @attrs.frozen
        class Renamed:
            name: str

        record = recorded(Renamed("x"), stream_id="a", metadata={"k": "v"}, actor_id="ann")
        assert (record.type, record.schema_version) == ("Renamed", 3)
        assert (record.stream_id, record.actor_id, record.metadata) == ("a", "ann", {"k": "v"})


class TestGiven:
    def test_plain_events_stand_in_the_given_stream_at_their_place(self) -> None:
        """Plain events get stream given/given, version and position = their place in line."""
        given(journal, Opened("ann"), Deposited(5)).then_state(
            ("given@1#1: Opened", "given@2#2: +5")
        )

    def test_recorded_events_keep_their_envelope(self) -> None:
        """A Recorded event is handled with its own stream, version and position."""
        given(
            journal, Opened("ann"), recorded(Deposited(5), stream_id="a", version=4, position=7)
        ).then_state(("given@1#1: Opened", "a@4#7: +5"))

    def test_aggregates_still_get_an_aggregate_scenario(self) -> None:
        """given(aggregate, ...) is the aggregate scenario, unchanged."""
        scenario = given(account, Opened("ann"))
        assert isinstance(scenario, Scenario)
        scenario.when(Deposit(5)).then(Deposited(5))

    def test_raw_events_are_refused_for_reactions(self) -> None:
        """raw() needs an aggregate's upcasters, so projections and managers refuse it."""
        with pytest.raises(TypeError, match="upcasters"):
            given(totals, raw("Deposited", {"amount": 1}))
        with pytest.raises(TypeError, match="upcasters"):
            given(shipping).when(raw("PaymentReceived", {"order_id": "o1"}))

    def test_unknown_components_are_refused(self) -> None:
        """given() of something that is no component is a TypeError naming it."""
        with pytest.raises(TypeError, match="not 'totals'"):
            given("totals")  # type: ignore[call-overload]

    def test_a_connection_is_only_for_sql_projections(self) -> None:
        """connection= on any other component is a TypeError."""
        with pytest.raises(TypeError, match="SqlProjection"):
            given(totals, connection=sqlite3.connect(":memory:"))  # type: ignore[call-overload]

    def test_scenarios_have_short_reprs(self) -> None:
        """A scenario's repr names the component and counts its events."""
        assert repr(given(totals, Deposited(1))) == "given(Projection('totals'), 1 events)"
        assert repr(given(shipping, PaymentReceived("o")).when()) == (
            "given(ProcessManager('shipping'), 1 events).when(0 events)"
        )


class TestProjection:
    def test_state_is_the_fold_of_the_given_events(self) -> None:
        """then_state passes on the view the handlers fold the events into from initial."""
        given(totals, Deposited(5), Withdrawn(2), Deposited(1)).then_state(4)

    def test_no_events_leave_the_initial_view(self) -> None:
        """Given no events, the view is the projection's initial value."""
        given(totals).then_state(0)

    def test_events_without_a_handler_are_skipped(self) -> None:
        """Events no handler takes leave the view unchanged."""
        given(totals, Opened("ann"), Deposited(3), Closed()).then_state(3)

    def test_a_union_annotation_handles_each_member(self) -> None:
        """A handler annotated `A | B` receives events of both classes."""
        given(moves, Deposited(5), Opened("ann"), Withdrawn(2)).then_state((5, -2))

    def test_a_catch_all_takes_what_no_other_handler_claims(self) -> None:
        """An `object` handler sees every event except those a specific handler takes."""
        given(journal, Opened("ann"), Deposited(1), Closed()).then_state(
            ("given@1#1: Opened", "given@2#2: +1", "given@3#3: Closed")
        )

    def test_then_state_returns_the_scenario(self) -> None:
        """then_state returns the scenario, so expectations chain."""
        scenario = given(totals, Deposited(1))
        assert scenario.then_state(1) is scenario

    def test_wrong_state_shows_expected_and_actual_side_by_side(self) -> None:
        """A different view raises AssertionError with expected left and actual right."""
        with pytest.raises(AssertionError) as caught:
            given(totals, Deposited(5)).then_state(6)
        message = str(caught.value)
        assert side_by_side(message, "expected state", "actual state")
        assert side_by_side(message, "6", "5")
        assert marked(message, "6")


class TestDocumentProjection:
    def test_documents_are_keyed_by_the_recorded_stream_id(self) -> None:
        """then_documents passes on {key: doc}, the key being each event's stream id."""
        given(
            balances,
            recorded(Opened("ann"), stream_id="a"),
            recorded(Opened("bob"), stream_id="b"),
            recorded(Deposited(5), stream_id="a", version=2),
        ).then_documents({"a": Balance("ann", 5), "b": Balance("bob")})

    def test_plain_events_land_under_the_given_key(self) -> None:
        """Plain events belong to stream "given", so their document's key is "given"."""
        given(balances, Opened("ann"), Deposited(2)).then_documents({"given": Balance("ann", 2)})

    def test_a_handler_returning_none_deletes_the_document(self) -> None:
        """A None from the handler removes the document."""
        given(
            balances,
            recorded(Opened("ann"), stream_id="a"),
            recorded(Opened("bob"), stream_id="b"),
            recorded(Closed(), stream_id="a", version=2),
        ).then_documents({"b": Balance("bob")})

    def test_no_events_mean_no_documents(self) -> None:
        """Given no events, there are no documents."""
        given(balances).then_documents({})

    def test_a_key_function_picks_the_document(self) -> None:
        """A projection's own key(event, record) chooses the document, None skipping the event."""
        given(owners, Opened("Ann"), Opened("ann"), Opened("bob"), Opened("")).then_documents(
            {"bob": 1, "ann": 2}
        )

    def test_wrong_documents_show_the_differing_row(self) -> None:
        """Documents are listed in key order, expected left and actual right, differences marked."""
        with pytest.raises(AssertionError) as caught:
            given(
                balances,
                recorded(Opened("ann"), stream_id="a"),
                recorded(Opened("bob"), stream_id="b"),
            ).then_documents({"b": Balance("bob"), "a": Balance("ann", 1)})
        message = str(caught.value)
        assert side_by_side(message, "expected documents", "actual documents")
        assert side_by_side(
            message, "'a': Balance(owner='ann', amount=1)", "'a': Balance(owner='ann', amount=0)"
        )
        assert marked(message, "'a': Balance(owner='ann', amount=1)")
        assert not marked(message, "'b': Balance(owner='bob', amount=0)")


class TestSqlProjection:
    def test_rows_after_setup_and_handlers_on_in_memory_sqlite(self) -> None:
        """then_rows passes when the query returns the rows setup and the handlers wrote."""
        given(
            account_rows,
            recorded(Opened("ann"), stream_id="a"),
            recorded(Opened("bob"), stream_id="b"),
            recorded(Deposited(5), stream_id="a", version=2),
            recorded(Withdrawn(2), stream_id="a", version=3),
        ).then_rows(
            "SELECT id, owner, balance FROM accounts ORDER BY id",
            [("a", "ann", 3), ("b", "bob", 0)],
        )

    def test_query_returns_the_rows_as_tuples(self) -> None:
        """query(sql, params) returns what the handlers wrote, each row a tuple."""
        scenario = given(account_rows, Opened("ann"), Deposited(4))
        assert scenario.query("SELECT owner, balance FROM accounts WHERE id = ?", ("given",)) == [
            ("ann", 4)
        ]

    def test_then_rows_takes_query_parameters(self) -> None:
        """then_rows(sql, rows, params) runs the parameterised query."""
        given(account_rows, Opened("ann")).then_rows(
            "SELECT owner FROM accounts WHERE balance = :zero", [("ann",)], {"zero": 0}
        )

    def test_the_given_connection_is_written(self) -> None:
        """With connection=, the handlers write that connection, which the test may read."""
        conn = sqlite3.connect(":memory:")
        scenario = given(account_rows, Opened("ann"), connection=conn)
        assert scenario.connection is conn
        scenario.then_rows("SELECT owner FROM accounts", [("ann",)])
        assert conn.execute("SELECT balance FROM accounts").fetchall() == [(0,)]
        conn.close()

    def test_a_projection_without_setup_writes_existing_tables(self) -> None:
        """Without setup, handlers write the tables the caller's connection already has."""
        log = SqlProjection("log")

        @log.on
        def logged(conn: Any, event: object, record: Recorded[Any]) -> None:
            conn.execute("INSERT INTO log VALUES (?, ?)", (record.position, record.type))

        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE log (position INT, type TEXT)")
        given(log, Opened("ann"), Closed(), connection=conn).then_rows(
            "SELECT * FROM log ORDER BY position", [(1, "Opened"), (2, "Closed")]
        )
        conn.close()

    def test_handlers_run_once_however_many_expectations(self) -> None:
        """Chained expectations query one run: rows are not written twice."""
        scenario = given(account_rows, Opened("ann"))
        scenario.then_rows("SELECT count(*) FROM accounts", [(1,)]).then_rows(
            "SELECT count(*) FROM accounts", [(1,)]
        )

    def test_wrong_rows_show_expected_and_actual_side_by_side(self) -> None:
        """Different rows raise AssertionError with expected left and actual right."""
        with pytest.raises(AssertionError) as caught:
            given(account_rows, Opened("ann"), Deposited(5)).then_rows(
                "SELECT owner, balance FROM accounts", [("ann", 6)]
            )
        message = str(caught.value)
        assert side_by_side(message, "expected rows", "actual rows")
        assert side_by_side(message, "('ann', 6)", "('ann', 5)")
        assert marked(message, "('ann', 6)")


class TestProcessManagerSends:
    def test_a_keyed_manager_sends_once_its_key_is_ready(self) -> None:
        """Each event is folded into its key's state, then reacted to with the state after."""
        given(shipping, PaymentReceived("o1"), ItemsReserved("o1")).then_sends(
            Send(order, "o1", Ship())
        )

    def test_keys_keep_separate_states(self) -> None:
        """Events of different keys never combine their states."""
        given(shipping, PaymentReceived("o1"), ItemsReserved("o2")).then_sends()
        given(shipping, PaymentReceived("o1"), ItemsReserved("o2"), ItemsReserved("o1")).then_sends(
            Send(order, "o1", Ship())
        )

    def test_every_given_event_is_reacted_to_in_order(self) -> None:
        """Without when, the sends are those of every given event, in order."""
        given(
            shipping,
            PaymentReceived("o1"),
            PaymentReceived("o2"),
            ItemsReserved("o2"),
            ItemsReserved("o1"),
        ).then_sends(Send(order, "o2", Ship()), Send(order, "o1", Ship()))

    def test_given_events_before_when_are_history_folded_only(self) -> None:
        """With when, given events shape the state but their reactions send nothing."""
        given(shipping, PaymentReceived("o1")).when(ItemsReserved("o1")).then_sends(
            Send(order, "o1", Ship())
        )
        given(shipping, PaymentReceived("o1"), ItemsReserved("o1")).when().then_sends()

    def test_when_again_adds_events_to_react_to(self) -> None:
        """A second when appends events that are reacted to, as the first's are."""
        given(shipping, PaymentReceived("o1")).when(PaymentReceived("o2")).when(
            ItemsReserved("o1"), ItemsReserved("o2")
        ).then_sends(Send(order, "o1", Ship()), Send(order, "o2", Ship()))

    def test_when_events_follow_the_given_ones_in_the_stream(self) -> None:
        """Plain when events continue the given stream's versions and positions."""
        given(auditor, Opened("ann")).when(Deposited(1), Closed()).then_sends(
            Send(order, "audit", Note("Deposited@2")), Send(order, "audit", Note("Closed@3"))
        )

    def test_a_key_of_none_means_the_event_is_ignored(self) -> None:
        """An event whose key is None is neither folded nor reacted to."""
        given(shipping, PaymentReceived(""), ItemsReserved(""), ItemsReserved("o1")).then_sends()
        given(shipping, PaymentReceived(""), ItemsReserved("")).then_state({})

    def test_an_unkeyed_manager_folds_one_shared_state(self) -> None:
        """Without key, every event folds into the one state its reactions see."""
        given(
            batches, PaymentReceived("o1"), PaymentReceived("o2"), PaymentReceived("o3")
        ).then_sends(Send(order, "batch", Note("2 paid")))

    def test_a_stateless_manager_reacts_with_state_none(self) -> None:
        """A manager without initial reacts to each event with state None; one Send is fine."""
        states_seen.clear()
        given(refunds, OrderCancelled("o1"), Opened("ann"), OrderCancelled("o2")).then_sends(
            Send(order, "o1", Refund("cancelled"), expected_version=1),
            Send(order, "o2", Refund("cancelled"), expected_version=3),
        )
        assert states_seen == [None, None]

    def test_a_catch_all_reaction_sees_every_event_with_its_record(self) -> None:
        """An `object` reaction taking the record reacts to every event."""
        given(auditor, Opened("ann"), recorded(Deposited(1), position=8)).then_sends(
            Send(order, "audit", Note("Opened@1")), Send(order, "audit", Note("Deposited@8"))
        )

    def test_then_sends_returns_the_scenario(self) -> None:
        """then_sends returns the scenario, so expectations chain."""
        scenario = given(batches, PaymentReceived("o1"), PaymentReceived("o2"))
        assert scenario.then_sends(Send(order, "batch", Note("2 paid"))).then_state(2) is scenario

    def test_wrong_sends_show_expected_and_actual_side_by_side(self) -> None:
        """Different sends raise AssertionError with expected left and actual right, marked."""
        with pytest.raises(AssertionError) as caught:
            given(shipping, PaymentReceived("o1"), ItemsReserved("o1")).then_sends(
                Send(order, "o2", Ship())
            )
        message = str(caught.value)
        assert side_by_side(message, "expected sends", "actual sends")
        assert side_by_side(message, "Send('order', 'o2', Ship())", "Send('order', 'o1', Ship())")
        assert marked(message, "Send('order', 'o2', Ship())")

    def test_missing_sends_are_shown_against_an_empty_cell(self) -> None:
        """Expecting no sends when some were made lists the actual ones, marked."""
        with pytest.raises(AssertionError) as caught:
            given(shipping, PaymentReceived("o1"), ItemsReserved("o1")).then_sends()
        assert marked(str(caught.value), "Send('order', 'o1', Ship())")

    def test_expected_version_is_part_of_a_send(self) -> None:
        """A send with another expected_version does not match."""
        with pytest.raises(AssertionError) as caught:
            given(refunds, OrderCancelled("o1")).then_sends(
                Send(order, "o1", Refund("cancelled"), expected_version=2)
            )
        assert side_by_side(str(caught.value), "expected_version=2", "expected_version=1")

    def test_a_send_to_another_aggregate_of_the_same_name_differs(self) -> None:
        """Sends compare aggregates by identity; alike text is called out in the message."""
        with pytest.raises(AssertionError, match="alike as text"):
            given(shipping, PaymentReceived("o1"), ItemsReserved("o1")).then_sends(
                Send(order_twin, "o1", Ship())
            )


class TestProcessManagerState:
    def test_a_keyed_manager_state_is_a_dict_of_keys(self) -> None:
        """then_state({key: state}) checks every key's state after all events."""
        given(shipping, PaymentReceived("o1"), ItemsReserved("o2")).then_state(
            {"o1": Progress(paid=True), "o2": Progress(reserved=True)}
        )

    def test_key_picks_one_state(self) -> None:
        """then_state(state, key=k) checks the state of key k alone."""
        given(shipping, PaymentReceived("o1"), ItemsReserved("o2")).then_state(
            Progress(paid=True), key="o1"
        )

    def test_an_untouched_key_is_at_initial(self) -> None:
        """A key no event reached has the manager's initial state."""
        given(shipping, PaymentReceived("o1")).then_state(Progress(), key="o9")

    def test_a_fold_returning_none_drops_the_key(self) -> None:
        """A None from a fold drops the key's state, as the store deletes it."""
        given(shipping, PaymentReceived("o1"), OrderCancelled("o1")).then_state({})
        given(
            shipping, PaymentReceived("o1"), OrderCancelled("o1"), ItemsReserved("o1")
        ).then_state({"o1": Progress(reserved=True)})

    def test_history_and_when_events_both_fold(self) -> None:
        """then_state after when is the state after the history and the when events."""
        given(shipping, PaymentReceived("o1")).when(ItemsReserved("o1")).then_state(
            Progress(paid=True, reserved=True), key="o1"
        )

    def test_an_unkeyed_manager_has_one_state(self) -> None:
        """For a manager without key, then_state checks its one state."""
        given(batches, PaymentReceived("o1"), Opened("x"), PaymentReceived("o2")).then_state(2)

    def test_a_stateless_manager_has_no_state_to_check(self) -> None:
        """then_state on a manager without initial is a TypeError."""
        with pytest.raises(TypeError, match="stateless"):
            given(refunds, OrderCancelled("o1")).then_state(None)

    def test_a_keyed_manager_wants_a_dict_or_a_key(self) -> None:
        """A keyed manager's then_state with neither a dict nor key= is a TypeError."""
        with pytest.raises(TypeError, match="key"):
            given(shipping, PaymentReceived("o1")).then_state(Progress(paid=True))

    def test_an_unkeyed_manager_refuses_a_key(self) -> None:
        """key= on a manager that keeps one state is a TypeError."""
        with pytest.raises(TypeError, match="one state"):
            given(batches).then_state(0, key="o1")

    def test_wrong_states_show_expected_and_actual_side_by_side(self) -> None:
        """Different states are listed by key, expected left and actual right, marked."""
        with pytest.raises(AssertionError) as caught:
            given(shipping, PaymentReceived("o1"), ItemsReserved("o2")).then_state(
                {"o1": Progress(paid=True), "o2": Progress()}
            )
        message = str(caught.value)
        assert side_by_side(message, "expected states", "actual states")
        assert side_by_side(
            message,
            "'o2': Progress(paid=False, reserved=False)",
            "'o2': Progress(paid=False, reserved=True)",
        )
        assert not marked(message, "'o1'")

    def test_a_wrong_single_state_shows_both(self) -> None:
        """A different state of one key shows expected and actual side by side."""
        with pytest.raises(AssertionError) as caught:
            given(batches, PaymentReceived("o1")).then_state(2)
        assert side_by_side(str(caught.value), "2", "1")


def boom(total: int, event: Deposited) -> int:
    if event.amount < 0:
        raise ValueError("negative amount")
    return total + event.amount


fragile = Projection("fragile", initial=0)
fragile.on(boom)


class TestHandlerFailures:
    def test_a_raising_handler_fails_the_expectation_naming_handler_and_event(self) -> None:
        """A handler that raises makes then_state fail, naming the handler and the event."""
        with pytest.raises(AssertionError) as caught:
            given(fragile, Deposited(1), Deposited(-1)).then_state(1)
        message = str(caught.value)
        assert side_by_side(message, "expected state", "but a handler failed")
        assert side_by_side(message, "1", "ProjectionError")
        assert "on boom" in message
        assert "Deposited(amount=-1), given/given@2" in message
        assert "ValueError: negative amount" in message

    def test_the_failure_is_chained_to_the_handlers_exception(self) -> None:
        """The AssertionError's cause is the exception, so the traceback shows the handler."""
        with pytest.raises(AssertionError) as caught:
            given(fragile, Deposited(-1)).then_state(0)
        assert isinstance(caught.value.__cause__, ValueError)

    def test_then_fails_passes_on_the_exception_or_the_store_error(self) -> None:
        """then_fails(X) passes when the handler raised an X, or X is the store's error type."""
        given(fragile, Deposited(-1)).then_fails(ValueError).then_fails(ProjectionError)

    def test_then_fails_when_nothing_failed_shows_the_outcome(self) -> None:
        """then_fails on a run where no handler failed raises, showing what it made."""
        with pytest.raises(AssertionError) as caught:
            given(fragile, Deposited(2)).then_fails(ValueError)
        assert side_by_side(str(caught.value), "ValueError", "2")

    def test_then_fails_with_another_error_shows_both(self) -> None:
        """A failure of another type raises, expected failure left and actual right."""
        with pytest.raises(AssertionError) as caught:
            given(fragile, Deposited(-1)).then_fails(KeyError)
        assert side_by_side(str(caught.value), "KeyError", "ValueError: negative amount")

    def test_a_raising_key_function_is_named(self) -> None:
        """A document key that raises fails the scenario, naming the key function."""
        broken = DocumentProjection("broken", doc_type=int, key=lambda event, record: event.nope)

        @broken.on
        def count(doc: int | None, event: Opened) -> int:
            return 1

        with pytest.raises(AssertionError, match=r"key .*<lambda>.* AttributeError"):
            given(broken, Opened("ann")).then_documents({})

    def test_a_key_that_is_not_a_string_fails(self) -> None:
        """A key function returning a non-str fails the scenario as it fails the store."""
        numbered = ProcessManager("numbered", initial=0, key=lambda event, record: 7)

        @numbered.on
        def seen(count: int, event: Opened) -> int:
            return count + 1

        given(numbered, Opened("ann")).then_fails(TypeError).then_fails(ProcessManagerError)

    def test_a_raising_reaction_is_a_process_manager_error(self) -> None:
        """A reaction that raises fails then_sends, naming the reaction and the event."""
        strict: ProcessManager[None] = ProcessManager("strict")

        @strict.react
        def refuse(state: None, event: OrderCancelled) -> None:
            raise RuntimeError(f"cannot cancel {event.order_id}")

        with pytest.raises(AssertionError) as caught:
            given(strict, OrderCancelled("o1")).then_sends()
        message = str(caught.value)
        assert "ProcessManagerError: process manager 'strict': react" in message
        assert "refuse failed on Recorded(OrderCancelled(order_id='o1')" in message
        given(strict, OrderCancelled("o1")).then_fails(RuntimeError)

    def test_a_reaction_producing_no_send_fails(self) -> None:
        """A reaction that yields something other than a Send fails the scenario."""
        sloppy: ProcessManager[None] = ProcessManager("sloppy")

        @sloppy.react
        def wrong(state: None, event: OrderCancelled) -> list[object]:
            return [Refund("oops")]

        given(sloppy, OrderCancelled("o1")).then_fails(TypeError)

    def test_a_history_fold_that_raises_fails_too(self) -> None:
        """A fold that raises on a history event fails the scenario as well."""
        picky = ProcessManager("picky", initial=0)

        @picky.on
        def fold(count: int, event: Opened) -> int:
            raise ValueError("no")

        given(picky, Opened("ann")).when().then_fails(ValueError)

    def test_a_failing_setup_is_named(self) -> None:
        """A SqlProjection whose setup raises fails before any event, naming setup."""

        def bad_ddl(conn: Any) -> None:
            conn.execute("CREATE TABLE")

        broken = SqlProjection("broken", setup=bad_ddl)
        with pytest.raises(AssertionError) as caught:
            given(broken, Opened("ann")).then_rows("SELECT 1", [(1,)])
        message = str(caught.value)
        assert "setup" in message
        assert "bad_ddl failed before any event" in message
        assert "OperationalError" in message
