"""Component definitions: registration by annotation, pure folds, Send values."""

from __future__ import annotations

from typing import Any

import pytest
from bank import Close, Deposited, Opened, Withdrawn, account
from reactive import make_balances, make_totals

from eventsourcing_fn import (
    DocumentProjection,
    Listener,
    ProcessManager,
    Projection,
    Recorded,
    Send,
    SqlProjection,
)
from eventsourcing_fn.testing import recorded


class TestRegistration:
    def test_decorators_return_the_plain_function(self) -> None:
        """A registered handler is still the function it was, callable directly."""
        totals = Projection("t", initial=0)

        def add(total: int, event: Deposited) -> int:
            return total + event.amount

        assert totals.on(add) is add
        assert add(1, Deposited(2)) == 3

    @pytest.mark.parametrize(
        "make",
        [
            lambda: Projection("p", initial=0),
            lambda: DocumentProjection("d", doc_type=int),
            lambda: SqlProjection("s"),
            lambda: ProcessManager("m", initial=0),
        ],
        ids=["projection", "documents", "sql", "manager"],
    )
    def test_missing_annotation_is_a_type_error_naming_the_function(self, make: Any) -> None:
        """A handler whose event parameter has no annotation is refused at decoration."""
        component = make()

        def unannotated(view, event):  # type: ignore[no-untyped-def]
            return view

        with pytest.raises(TypeError, match="unannotated"):
            component.on(unannotated)

    def test_duplicate_handler_is_a_type_error(self) -> None:
        """Two handlers for one event class in one component are refused, naming both."""
        totals = Projection("t", initial=0)

        @totals.on
        def first(total: int, event: Deposited) -> int:
            return total

        def second(total: int, event: Deposited | Withdrawn) -> int:
            return total

        with pytest.raises(TypeError, match=r"second.*first"):
            totals.on(second)
        assert totals.apply(0, recorded(Withdrawn(1))) == 0  # all or none: Withdrawn not taken

    def test_wrong_arity_is_a_type_error(self) -> None:
        """Handlers take (view, event) or (view, event, record): anything else is refused."""
        totals = Projection("t", initial=0)

        def too_few(event: Deposited) -> int:
            return 0

        with pytest.raises(TypeError, match="too_few"):
            totals.on(too_few)

    def test_object_and_any_are_catch_alls(self) -> None:
        """`object` or `Any` takes every event that no specific handler takes."""
        seen = Projection("seen", initial=(), state_type=tuple[str, ...])

        @seen.on
        def deposits(names: tuple[str, ...], event: Deposited) -> tuple[str, ...]:
            return (*names, "deposit")

        @seen.on
        def others(names: tuple[str, ...], event: Any, record: Recorded[Any]) -> tuple[str, ...]:
            return (*names, record.type)

        records = [recorded(Opened("a")), recorded(Deposited(1)), recorded(Close())]
        assert seen.fold(records) == ("Opened", "deposit", "Close")

    def test_stateless_manager_has_no_fold(self) -> None:
        """A process manager without an initial state refuses `on` handlers."""
        manager = ProcessManager("m")

        def fold(state: None, event: Opened) -> None:
            return None

        with pytest.raises(TypeError, match="initial"):
            manager.on(fold)

    def test_listener_handlers_take_the_event_first(self) -> None:
        """Listener handlers take (event) or (event, record), registered by the event's type."""
        listener = Listener("l")

        @listener.on
        def one(event: Opened) -> None: ...

        @listener.after
        def two(event: Opened, record: Recorded[Any]) -> None: ...

        assert listener.first.get(Opened) is not None
        assert listener.then.get(Opened) is not None
        assert listener.first.get(Deposited) is None


class TestPureFolds:
    def test_projection_fold_runs_without_a_store(self) -> None:
        """Projection.fold folds envelopes from initial, a notebook needs nothing else."""
        totals = make_totals()
        assert totals.fold([recorded(Deposited(5)), recorded(Withdrawn(2))]) == 3

    def test_document_fold_keys_by_stream(self) -> None:
        """DocumentProjection.fold keeps one document per stream id, in key order."""
        balances = make_balances()
        docs = balances.fold(
            [
                recorded(Opened("bob"), stream_id="b"),
                recorded(Opened("ann"), stream_id="a"),
                recorded(Deposited(3), stream_id="a", version=2),
            ]
        )
        assert list(docs) == ["a", "b"]
        assert docs["a"].amount == 3


class TestSend:
    def test_send_is_a_value(self) -> None:
        """Sends compare by aggregate, stream, commands and expected version."""
        assert Send(account, "a", Close()) == Send(account, "a", Close())
        assert Send(account, "a", Close()) != Send(account, "b", Close())
        assert Send(account, "a", Close()) != Send(account, "a", Close(), expected_version=1)

    def test_send_repr_is_short(self) -> None:
        """A Send shows the aggregate by name, the stream and the commands."""
        assert repr(Send(account, "a", Close())) == "Send('account', 'a', Close())"
