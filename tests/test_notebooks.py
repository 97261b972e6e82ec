"""Experimenting in a notebook: re-run cells, later registrations, errors, and displays."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "experimenting.md"

MODEL = """
import attrs
from returns.result import Failure
from eventsourcing_fn import (
    Aggregate, DocumentProjection, EventStore, Projection, Recorded, Records,
)
from eventsourcing_fn.testing import given

@attrs.frozen
class Opened:
    owner: str

@attrs.frozen
class Deposited:
    amount: int

@attrs.frozen
class Open:
    owner: str

@attrs.frozen
class Deposit:
    amount: int

@attrs.frozen
class Account:
    owner: str | None = None
    balance: int = 0

class NotOpen(Exception):
    pass

account = Aggregate("account", initial=Account())

@account.evolve
def opened(state: Account, event: Opened) -> Account:
    return attrs.evolve(state, owner=event.owner)

@account.evolve
def deposited(state: Account, event: Deposited) -> Account:
    return attrs.evolve(state, balance=state.balance + event.amount)

@account.decide
def open_account(command: Open, state: Account) -> Opened:
    return Opened(command.owner)

@account.decide
def deposit(command: Deposit, state: Account) -> Deposited:
    if state.owner is None:
        return Failure(NotOpen())
    return Deposited(command.amount)

totals = Projection("totals", initial=0)

@totals.on
def total(view: int, event: Deposited) -> int:
    return view + event.amount
"""

DEPOSITED_CLASS = """
@attrs.frozen
class Deposited:
    amount: int
"""

BONUS_HANDLER = """
@account.evolve
def deposited(state: Account, event: Deposited) -> Account:
    return attrs.evolve(state, balance=state.balance + event.amount + 1)
"""

PLAIN_HANDLER = """
@account.evolve
def deposited(state: Account, event: Deposited) -> Account:
    return attrs.evolve(state, balance=state.balance + event.amount)
"""


class Notebook:
    """Cells run in one `__main__` namespace, as a notebook kernel runs them."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def run(self, source: str) -> None:
        """Run one cell."""
        code = compile(textwrap.dedent(source), "<cell>", "exec")
        exec(code, self.module.__dict__)  # the test's own cell text, not data

    def __getitem__(self, name: str) -> Any:
        return self.module.__dict__[name]


@pytest.fixture
def notebook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Notebook]:
    """A fresh `__main__` module (as a kernel has) holding the account model."""
    module = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", module)
    book = Notebook(module)
    book.run(MODEL)
    return book


def balance(nb: Notebook, stream_id: str = "a") -> int:
    """The balance the store loads for one account."""
    nb.run(f"_loaded = store.load(account, {stream_id!r})")
    result: int = nb["_loaded"].state.balance
    return result


class TestRerunHandlerCell:
    def test_edited_evolve_replaces_the_old_body(self, notebook: Notebook) -> None:
        """Re-running an edited evolve cell replaces the handler the store folds with."""
        notebook.run("store = EventStore(aggregates=[account])")
        notebook.run("store.execute(account, 'a', Open('ann'), Deposit(10)).unwrap()")
        notebook.run(BONUS_HANDLER)
        assert balance(notebook) == 11
        notebook.run(PLAIN_HANDLER)
        assert balance(notebook) == 10

    def test_edited_decide_and_projection_handler_replace_theirs(self, notebook: Notebook) -> None:
        """Decide and projection handler cells run again replace their earlier bodies too."""
        notebook.run("store = EventStore(aggregates=[account], projections=[totals])")
        notebook.run("""
            @account.decide
            def deposit(command: Deposit, state: Account) -> list[Deposited]:
                return [Deposited(command.amount), Deposited(command.amount)]

            @totals.on
            def total(view: int, event: Deposited) -> int:
                return view + 100 * event.amount
        """)
        notebook.run("store.execute(account, 'a', Open('ann'), Deposit(1)).unwrap()")
        assert balance(notebook) == 2
        notebook.run("_view = store.view(totals)")
        assert notebook["_view"] == 200

    def test_edited_handler_may_change_the_classes_it_handles(self, notebook: Notebook) -> None:
        """A re-run handler annotated differently drops its old classes."""
        notebook.run("""
            @attrs.frozen
            class Refunded:
                amount: int

            @account.evolve
            def deposited(state: Account, event: Refunded) -> Account:
                return state
        """)
        assert notebook["account"].handles_event(notebook["Refunded"])
        assert not notebook["account"].handles_event(notebook["Deposited"])

    def test_a_different_function_for_a_class_stays_an_error(self, notebook: Notebook) -> None:
        """A new function name for a class that has an evolve is refused, worded "an evolve"."""
        with pytest.raises(TypeError, match=r"already has an evolve for Deposited \(deposited\)"):
            notebook.run("""
                @account.evolve
                def deposited_again(state: Account, event: Deposited) -> Account:
                    return state
            """)

    def test_two_handlers_of_one_name_in_a_function_body_are_a_duplicate(self) -> None:
        """Outside `__main__`, two same-named functions in one body are two definitions."""
        from bank import Account, Deposited

        from eventsourcing_fn import Aggregate

        aggregate = Aggregate("local", initial=Account())

        def handler(state: Account, event: Deposited) -> Account:
            return state

        aggregate.evolve(handler)
        first = handler

        def handler(state: Account, event: Deposited) -> Account:
            return state

        assert handler is not first
        with pytest.raises(TypeError, match="already has an evolve for Deposited"):
            aggregate.evolve(handler)

    def test_a_reloaded_module_replaces_its_handlers(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """importlib.reload of a module registering handlers replaces them, no duplicate."""
        (tmp_path / "reloaded_model.py").write_text(
            textwrap.dedent("""
                import attrs
                from eventsourcing_fn import Aggregate

                @attrs.frozen
                class Ticked:
                    n: int

                counter = Aggregate("counter", initial=0)

                @counter.evolve
                def ticked(state: int, event: Ticked) -> int:
                    return state + event.n
            """)
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        module = importlib.import_module("reloaded_model")
        counter = module.counter
        module = importlib.reload(module)  # a new Ticked and ticked, one aggregate object kept
        assert module.counter is not counter
        counter.evolve(module.ticked)  # the new function replaces the old one on the old object
        assert counter.fold([module.Ticked(2)]) == 2
        assert counter.event_classes == (module.Ticked,)


class TestRerunClassCell:
    def test_rerun_event_class_and_cells_below(self, notebook: Notebook) -> None:
        """A re-run event class replaces the old one: no "claimed by both", reads as new."""
        notebook.run("store = EventStore(aggregates=[account])")
        notebook.run("store.execute(account, 'a', Open('ann'), Deposit(10)).unwrap()")
        notebook.run(DEPOSITED_CLASS)
        notebook.run(PLAIN_HANDLER)
        notebook.run("store.execute(account, 'a', Deposit(5)).unwrap()")
        notebook.run("_events = [r.event for r in store.events(account, 'a')]")
        assert [type(e) for e in notebook["_events"][1:]] == [notebook["Deposited"]] * 2
        assert balance(notebook) == 15
        notebook.run("EventStore(aggregates=[account]).load(account, 'x')")  # a new store too

    def test_rerun_event_class_alone_keeps_its_handlers(self, notebook: Notebook) -> None:
        """Events of a re-run class still reach the handlers registered for the old one."""
        notebook.run("store = EventStore(aggregates=[account], projections=[totals])")
        notebook.run(DEPOSITED_CLASS)
        notebook.run("store.execute(account, 'a', Open('ann'), Deposit(4)).unwrap()")
        assert balance(notebook) == 4
        notebook.run("_view = store.view(totals)")
        assert notebook["_view"] == 4

    def test_then_state_names_the_stale_state_class(self, notebook: Notebook) -> None:
        """Two states that print alike but differ in class: the message names the stale one."""
        notebook.run("""
            @attrs.frozen
            class Account:
                owner: str | None = None
                balance: int = 0
        """)
        with pytest.raises(AssertionError) as failed:
            notebook.run("given(account, Opened('ann')).then_state(Account('ann', 0))")
        message = str(failed.value)
        assert "the actual Account is an instance of the class from an earlier run" in message
        assert "re-run the cells that use Account" in message

    def test_two_classes_of_one_name_in_two_modules_are_told_apart(self) -> None:
        """Two different classes claiming one type name are named with their modules."""
        from eventsourcing_fn import Aggregate, ConfigurationError, EventStore

        one = types.new_class("Ticked", exec_body=lambda ns: ns.update(__module__="one"))
        two = types.new_class("Ticked", exec_body=lambda ns: ns.update(__module__="two"))
        first, second = Aggregate("first", initial=0), Aggregate("second", initial=0)
        first.evolve(_handler_for(one))
        second.evolve(_handler_for(two))
        with pytest.raises(ConfigurationError, match=r"both one\.Ticked and two\.Ticked"):
            EventStore(aggregates=[first, second])


def _handler_for(cls: type) -> Any:
    def handle(state: int, event: Any) -> int:
        return state

    handle.__annotations__ = {"state": int, "event": cls, "return": int}
    return handle


class TestLaterRegistrations:
    def test_store_sees_an_event_type_added_after_it(self, notebook: Notebook) -> None:
        """A command and event registered after the store was built work, data kept."""
        notebook.run("store = EventStore(aggregates=[account])")
        notebook.run("store.execute(account, 'a', Open('ann'), Deposit(10)).unwrap()")
        notebook.run("""
            @attrs.frozen
            class Withdrawn:
                amount: int

            @attrs.frozen
            class Withdraw:
                amount: int

            @account.evolve
            def withdrawn(state: Account, event: Withdrawn) -> Account:
                return attrs.evolve(state, balance=state.balance - event.amount)

            @account.decide
            def withdraw(command: Withdraw, state: Account) -> Withdrawn:
                return Withdrawn(command.amount)
        """)
        notebook.run("_outcome = store.execute(account, 'a', Withdraw(3)).unwrap()")
        assert notebook["_outcome"].state.balance == 7
        notebook.run("_types = [r.type for r in store.read_all()]")
        assert notebook["_types"] == ["Opened", "Deposited", "Withdrawn"]

    def test_store_sees_an_upcaster_added_after_it(self) -> None:
        """An upcaster registered after the store exists reads older stored versions."""
        import attrs

        from eventsourcing_fn import Aggregate, EventStore, event_type
        from eventsourcing_fn.storage import NewEvent, StreamAppend, memory_storage

        @event_type("Ticked", version=2)
        @attrs.frozen
        class Ticked:
            n: int

        counter = Aggregate("counter", initial=0)

        @counter.evolve
        def ticked(state: int, event: Ticked) -> int:
            return state + event.n

        storage = memory_storage()
        store = EventStore(storage, aggregates=[counter])
        old = NewEvent("Ticked", 1, '{"count": 3}', _uuid(), _now())
        storage.append([StreamAppend("counter", "c", None, [old])])

        @counter.upcast("Ticked", from_version=1)
        def count_to_n(data: dict[str, Any]) -> dict[str, Any]:
            return {"n": data["count"]}

        assert store.load(counter, "c").state == 3


def _uuid() -> Any:
    import uuid

    return uuid.uuid4()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


class TestNotebookErrors:
    def test_a_rebuilt_aggregate_asks_to_rerun_the_store_cell(self, notebook: Notebook) -> None:
        """A different Aggregate object of the store's name: re-run the store cell."""
        from eventsourcing_fn import ConfigurationError

        notebook.run("store = EventStore(aggregates=[account], projections=[totals])")
        notebook.run("account = Aggregate('account', initial=Account())")
        with pytest.raises(ConfigurationError) as failed:
            notebook.run("store.execute(account, 'a', Open('ann'))")
        assert str(failed.value) == (
            "a different Aggregate('account') object than this store was built with: "
            "re-run the store cell (or build the store after the aggregate)"
        )
        notebook.run("totals = Projection('totals', initial=0)")
        with pytest.raises(ConfigurationError, match=r"a different .*totals.* re-run the store"):
            notebook.run("store.view(totals)")

    def test_a_command_list_hints_at_star_commands(self, notebook: Notebook) -> None:
        """Commands passed as one list are a ConfigurationError hinting at *commands."""
        from eventsourcing_fn import ConfigurationError

        notebook.run("store = EventStore(aggregates=[account])")
        with pytest.raises(ConfigurationError, match=r"\*commands"):
            notebook.run("store.execute(account, 'a', [Open('ann'), Deposit(1)])")

    def test_a_reason_without_message_reads_as_its_type(self, notebook: Notebook) -> None:
        """An exception with no message shows as (NotOpen), not (NotOpen: )."""
        notebook.run("store = EventStore(aggregates=[account])")
        notebook.run("_error = store.execute(account, 'a', Deposit(1)).failure()")
        assert str(notebook["_error"]).endswith("rejected (NotOpen)")

    def test_public_errors_show_their_public_path(self, notebook: Notebook) -> None:
        """A traceback names eventsourcing_fn.CommandError, not a private module."""
        notebook.run("store = EventStore(aggregates=[account])")
        notebook.run("_error = store.execute(account, 'a', Deposit(1)).failure()")
        line = traceback.format_exception_only(notebook["_error"])[-1]
        assert line.startswith("eventsourcing_fn.CommandError: aggregate 'account'")
        import eventsourcing_fn

        for name in eventsourcing_fn.__all__:
            value = getattr(eventsourcing_fn, name)
            if isinstance(value, type) and issubclass(value, Exception):
                assert value.__module__ == "eventsourcing_fn", name

    def test_errors_are_their_kinds(self) -> None:
        """Wiring errors are TypeErrors too; storage faults split into transient and data."""
        from eventsourcing_fn import (
            ConfigurationError,
            StorageDataError,
            StorageError,
            TransientStorageError,
        )

        assert issubclass(ConfigurationError, TypeError)
        assert issubclass(TransientStorageError, StorageError)
        assert issubclass(StorageDataError, StorageError)
        assert not issubclass(TransientStorageError, StorageDataError)


class TestAllOrNothing:
    def test_a_union_failing_on_one_member_registers_none(self, notebook: Notebook) -> None:
        """`event: Closed | Deposited` refused for Deposited leaves Closed unregistered too."""
        notebook.run("@attrs.frozen\nclass Closed:\n    pass\n")
        with pytest.raises(TypeError, match="already has an evolve for Deposited"):
            notebook.run("""
                @account.evolve
                def closed_or_deposited(state: Account, event: Closed | Deposited) -> Account:
                    return state
            """)
        assert not notebook["account"].handles_event(notebook["Closed"])

    @pytest.mark.parametrize("annotation", ["object", "Any"])
    def test_aggregates_refuse_a_catch_all(self, notebook: Notebook, annotation: str) -> None:
        """An evolve or decide annotated object/Any is a TypeError naming the function."""
        for kind, params in [("evolve", "state: Account, event"), ("decide", "command")]:
            second = "" if kind == "evolve" else ", state: Account"
            with pytest.raises(TypeError, match=f"{kind} everything: .*specific classes"):
                notebook.run(f"""
                    from typing import Any
                    @account.{kind}
                    def everything({params}: {annotation}{second}) -> Any:
                        return None
                """)

    def test_components_still_take_every_event(self, notebook: Notebook) -> None:
        """Projections keep the object/Any catch-all."""
        notebook.run("""
            from typing import Any
            counted = Projection("counted", initial=0)
            @counted.on
            def count(view: int, event: Any) -> int:
                return view + 1
            _store = EventStore(aggregates=[account], projections=[counted])
            _store.execute(account, 'a', Open('ann'), Deposit(1)).unwrap()
        """)
        notebook.run("_view = _store.view(counted)")
        assert notebook["_view"] == 2


class TestDisplays:
    def test_values_have_short_reprs_and_tables(self, notebook: Notebook) -> None:
        """Outcome, Loaded, Recorded, Records, the store, a Failure's error and scenarios show."""
        notebook.run("""
            store = EventStore(aggregates=[account], projections=[totals])
            _outcome = store.execute(account, 'a', Open('ann'), Deposit(5)).unwrap()
            _loaded = store.load(account, 'a')
            _records = store.events(account, 'a')
            _failure = store.execute(account, 'b', Deposit(1))
            _scenario = given(account, Opened('ann')).when(Deposit(5)).then(Deposited(5))
        """)
        outcome, loaded, records = notebook["_outcome"], notebook["_loaded"], notebook["_records"]
        error, scenario, store = (
            notebook["_failure"].failure(),
            notebook["_scenario"],
            notebook["store"],
        )
        assert repr(outcome).startswith("Outcome('a', version=2, events=(Recorded(Opened(")
        assert (
            repr(loaded)
            == "Loaded(stream_id='a', version=2, state=Account(owner='ann', balance=5))"
        )
        assert repr(records[0]) == "Recorded(Opened(owner='ann'), account/a@1, position=1)"
        assert repr(error).startswith("CommandError(reason=NotOpen(), ")
        assert repr(notebook["_failure"]).endswith("command Deposit rejected (NotOpen)>")
        assert repr(scenario) == (
            "given(account, Opened(owner='ann')).when(Deposit(amount=5)).then(Deposited(amount=5))"
        )
        assert repr(store) == ("EventStore(memory, aggregates=['account'], components=['totals'])")
        tables = {
            "outcome": outcome._repr_html_(),
            "loaded": loaded._repr_html_(),
            "record": records[0]._repr_html_(),
            "records": records._repr_html_(),
            "store": store._repr_html_(),
            "error": error._repr_html_(),
            "scenario": scenario._repr_html_(),
        }
        assert all("<table" in html for html in tables.values()), tables
        assert "Deposited" in tables["outcome"]
        assert "balance" in tables["outcome"]
        assert re.search(r"reason.*NotOpen", tables["error"], re.S)
        assert tables["error"].index("reason") < tables["error"].index("message")
        assert "eventsourcing_fn.CommandError" in tables["error"]
        assert "Open, Deposit" in tables["store"]
        assert "totals" in tables["store"]
        assert "passed: then(Deposited(amount=5))" in tables["scenario"]

    def test_a_rejected_scenario_shows_the_reason(self, notebook: Notebook) -> None:
        """A scenario whose command is rejected shows the reason instead of events."""
        notebook.run("_scenario = given(account).when(Deposit(5))")
        assert "<b>rejected</b>: NotOpen" in notebook["_scenario"]._repr_html_()


class TestSnapshotsOutsidePytest:
    def test_snapshot_text_is_what_the_snapshot_file_holds(self) -> None:
        """snapshot_text() equals the text stored for the same scenario's syrupy snapshot."""
        from bank import Deposit, Opened, Withdraw, account

        from eventsourcing_fn.testing import given

        stored = (ROOT / "tests" / "__snapshots__" / "test_testing.ambr").read_text()
        text = given(account, Opened("ann")).when(Deposit(5), Withdraw(2)).snapshot_text()
        indented = textwrap.indent(text, "  ")
        assert indented in stored
        assert "event_id" not in text
        assert "position" not in text

    def test_then_with_a_non_event_says_what_it_takes(self, notebook: Notebook) -> None:
        """then() with a list or a command is a TypeError saying it wants events or a fixture."""
        with pytest.raises(
            TypeError, match=r"then\(\) takes the expected events .*then\(\*events\)"
        ):
            notebook.run("given(account, Opened('ann')).when(Deposit(5)).then([Deposited(5)])")
        with pytest.raises(TypeError, match="Deposit is a command: commands go in when"):
            notebook.run("given(account, Opened('ann')).when(Deposit(5)).then(Deposit(5))")


def page_cells() -> list[str]:
    """The python blocks of the experimenting page, one cell each."""
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_experimenting_page_runs_as_a_notebook(tmp_path: Path, jupyter_kernel: str) -> None:
    """The docs page runs cell by cell on a real kernel: edits, re-runs, later types, tables."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(cell) for cell in page_cells()]
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=jupyter_kernel,
        timeout=60,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on a cell that fails
    shown = {
        cell.source.strip().splitlines()[-1]: out.get("data", {})
        for cell in notebook.cells
        for out in cell.outputs
        if out.output_type == "execute_result"
    }
    for last_line in [
        "outcome",
        'store.load(account, "acc-1")',
        'store.events(account, "acc-1")',
        "rejected",
        'store.history(account, "acc-1")',
        "store",
        "scenario",
    ]:
        assert "<table" in shown[last_line].get("text/html", ""), last_line
    printed = "".join(out.get("text", "") for cell in notebook.cells for out in cell.outputs)
    failure = shown["rejected"]["text/html"]
    assert "Failure: eventsourcing_fn.CommandError" in failure
    assert failure.index("reason") < failure.index("message")
    assert "already has an evolve for Withdrawn" in printed
    assert "'type': 'Deposited'" in printed
