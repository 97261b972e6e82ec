"""Notebook views: HTML tables of events and states, `store.history`, the event-model diagram."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import attrs
import pytest
from returns.result import Failure, Result, Success

from eventsourcing_fn import (
    Aggregate,
    Diagram,
    DocumentProjection,
    EventStore,
    History,
    Listener,
    ProcessManager,
    Projection,
    Recorded,
    Records,
    Send,
    Step,
    context,
    event_type,
)
from eventsourcing_fn.storage import Storage, memory_storage
from eventsourcing_fn.testing import given

NOTEBOOK = Path(__file__).parent.parent / "examples" / "notebook.ipynb"
SCRIPT = "<script>alert('x')</script>"


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
def deposit(command: Deposit, state: Account) -> list[Deposited]:
    return [Deposited(command.amount)]


@attrs.frozen
class Notify:
    text: str


@attrs.frozen
class Notified:
    text: str


mailbox = Aggregate("mailbox", initial=0)


@mailbox.evolve
def notified(state: int, event: Notified) -> int:
    return state + 1


@mailbox.decide
def notify(command: Notify, state: int):  # no return annotation: the diagram draws no edge
    return Notified(command.text)


totals = Projection("totals", initial=0)


@totals.on
def add(total: int, event: Deposited) -> int:
    return total + event.amount


@attrs.frozen
class Balance:
    owner: str
    amount: int = 0


balances = DocumentProjection("balances", doc_type=Balance)


@balances.on
def start(doc: Balance | None, event: Opened) -> Balance | None:
    return Balance(event.owner)


@balances.on
def credit(doc: Balance | None, event: Deposited) -> Balance | None:
    assert doc is not None
    return attrs.evolve(doc, amount=doc.amount + event.amount)


welcome = ProcessManager("welcome")


@welcome.react
def greet(state: None, event: Opened, record: Recorded[Any]) -> Iterator[Annotated[Send, Notify]]:
    yield Send(mailbox, record.stream_id, Notify(f"welcome, {event.owner}"))


def bank(storage: Storage | None = None) -> EventStore:
    return EventStore(
        storage,
        aggregates=[account, mailbox],
        projections=[totals, balances],
        process_managers=[welcome],
    )


def headers(view: str, table: int = -1) -> list[str]:
    """The column headers of one table (by default the last) in an HTML view."""
    head = view.split("<table")[1:][table].split("</thead>")[0]
    return re.findall(r"<th[^>]*>([^<]*)</th>", head.rsplit("<tr>", 1)[-1])


def edges(diagram: str) -> set[tuple[str, str]]:
    """The diagram's edges as (source label, target label), subgraphs by their title."""
    labels = dict(re.findall(r'^\s*(?:subgraph )?(\w+)[\[({>]+"([^"]*)"', diagram, re.M))
    pairs = re.findall(r"^\s*(\w+) -->(?:\|[^|]*\|)? (\w+)$", diagram, re.M)
    return {(labels[a], labels[b]) for a, b in pairs}


class TestEnvelopeViews:
    def test_outcome_shows_events_state_and_cascade(self) -> None:
        """An Outcome renders its appended events, the state after them and its cascade."""
        outcome = bank().execute(account, "a", Open("ann"), Deposit(10)).unwrap()
        view = outcome._repr_html_()
        assert view.count("<table") == 3  # events, state, cascade
        for text in ("Opened", "Deposited", "owner=ann", "amount=10", "Notified", "mailbox/a"):
            assert text in view
        assert headers(view, table=1) == ["owner", "balance"]  # the state after the events
        assert ">10</td>" in view

    def test_recorded_shows_payload_and_envelope(self) -> None:
        """One Recorded renders its payload fields and every envelope field that is set."""
        store = bank()
        with context(actor_id="ann", metadata={"ip": "10.0.0.1"}):
            store.execute(account, "a", Open("ann")).unwrap()
        record = store.events(account, "a")[0]
        view = record._repr_html_()
        for text in ("Opened", "owner", "account/a", str(record.event_id), "ann", "10.0.0.1"):
            assert text in view
        assert "causation_id" not in view  # unset fields are left out

    def test_loaded_shows_version_and_state(self) -> None:
        """A Loaded renders its stream, version and state; version 0 says the stream is new."""
        store = bank()
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        view = store.load(account, "a", at_version=1)._repr_html_()
        assert "version 1" in view
        assert headers(view) == ["owner", "balance"]
        assert ">ann<" in view
        assert "no events yet" in store.load(account, "new")._repr_html_()

    def test_documents_show_a_row_per_key(self) -> None:
        """Documents render one row per key, a column per document field."""
        store = bank()
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        store.execute(account, "b", Open("bob")).unwrap()
        view = store.documents(balances)._repr_html_()
        assert headers(view) == ["key", "owner", "amount"]
        assert view.count("<tr>") == 3
        assert "2 documents" in view

    def test_plain_reprs_stay_short_and_html_free(self) -> None:
        """`repr` stays short plain text, many events or not; HTML is only in `_repr_html_`."""
        store = bank()
        outcome = store.execute(account, "a", Open("ann"), *[Deposit(1)] * 50).unwrap()
        values = [outcome, outcome.events[0], store.load(account, "a"), store.documents(balances)]
        for value in values:
            assert "<table" not in repr(value)
            assert len(repr(value)) < 400
        assert repr(outcome).startswith("Outcome('a', version=51, events=(Recorded(Opened(")
        assert "... (51 in all)" in repr(outcome)


class TestEscaping:
    def test_script_in_a_payload_is_text_everywhere(self) -> None:
        """A payload, metadata or id holding markup renders as text in every view."""
        store = bank()
        with context(actor_id=SCRIPT, metadata={SCRIPT: SCRIPT}):
            outcome = store.execute(account, SCRIPT, Open(SCRIPT), Deposit(1)).unwrap()
        views = [
            outcome._repr_html_(),
            outcome.events[0]._repr_html_(),
            store.load(account, SCRIPT)._repr_html_(),
            store.documents(balances)._repr_html_(),
            Records(store.read_all())._repr_html_(),
            store.history(account, SCRIPT)._repr_html_(),
        ]
        for view in views:
            assert "<script" not in view
            assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in view

    def test_long_values_are_cut(self) -> None:
        """A value longer than a cell's limit is cut with an ellipsis."""
        store = bank()
        store.execute(account, "a", Open("x" * 1000)).unwrap()
        view = Records(store.events(account, "a"))._repr_html_()
        assert "x" * 1000 not in view
        assert "…" in view


class TestRecords:
    def test_records_are_the_list_they_wrap(self) -> None:
        """Records equal the plain list of the same events, and slices stay Records."""
        store = bank()
        store.execute(account, "a", Open("ann"), Deposit(1), Deposit(2)).unwrap()
        events = store.events(account, "a")
        records = Records(events)
        assert records == events
        assert isinstance(records, list)
        assert isinstance(records[1:], Records)
        assert records[1:] == events[1:]
        assert records[0] is events[0]

    def test_table_has_the_envelope_columns(self) -> None:
        """The table shows position, stream, version, type, time, payload and metadata."""
        store = bank()
        with context(metadata={"ip": "10.0.0.1"}):
            store.execute(account, "a", Open("ann")).unwrap()
        view = Records(store.read_all())._repr_html_()
        assert headers(view) == [
            "position",
            "stream",
            "version",
            "type",
            "recorded_at",
            "payload",
            "metadata",
        ]
        assert "ip=10.0.0.1" in view
        assert "owner=ann" in view

    def test_upcast_type_shows_its_schema_version(self) -> None:
        """An event type past schema version 1 shows its version beside its name."""

        @event_type("Renamed", version=2)
        @attrs.frozen
        class Renamed:
            owner: str

        people = Aggregate("people", initial="")

        @people.evolve
        def renamed(state: str, event: Renamed) -> str:
            return event.owner

        @people.decide
        def rename(command: Open, state: str) -> Renamed:
            return Renamed(command.owner)

        store = EventStore(aggregates=[people])
        store.execute(people, "p", Open("ann")).unwrap()
        assert "Renamed v2" in Records(store.read_all())._repr_html_()

    def test_long_tables_show_head_and_tail(self) -> None:
        """A table of many events shows the first and last rows and counts the rest."""
        store = bank()
        store.execute(account, "a", Open("ann"), *[Deposit(n) for n in range(1, 100)]).unwrap()
        view = Records(store.events(account, "a"))._repr_html_()
        assert view.count("<tr>") == 1 + 40 + 1  # header, head and tail, the gap
        assert "60 more rows" in view
        assert "amount=99" in view
        assert "owner=ann" in view


class TestHistory:
    def test_history_equals_folds_of_prefixes(self) -> None:
        """Each step's state is the fold of the stream up to and including its event."""
        store = bank()
        commands = [Open("ann"), Deposit(5), Deposit(7), Deposit(1)]
        store.execute(account, "a", *commands).unwrap()
        history = store.history(account, "a")
        events = store.events(account, "a")
        assert [step.record for step in history] == events
        for n, step in enumerate(history, start=1):
            assert step.state == account.fold(events[:n])
            assert step.state == store.load(account, "a", at_version=n).state

    def test_history_reads_the_stream_once(self) -> None:
        """The whole history comes from one read of the stream, folded as it goes."""
        storage = memory_storage()
        reads: list[str] = []

        def read_stream(stream_type: str, stream_id: str, *args: Any) -> Sequence[Any]:
            reads.append(stream_id)
            return storage.read_stream(stream_type, stream_id, *args)

        store = bank(attrs.evolve(storage, read_stream=read_stream))
        store.execute(account, "a", Open("ann"), Deposit(1), Deposit(2)).unwrap()
        reads.clear()
        assert len(store.history(account, "a")) == 3
        assert reads == ["a"]

    def test_steps_hold_record_and_state(self) -> None:
        """A step holds the record and the state after it; slices of a history are histories."""
        store = bank()
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        history = store.history(account, "a")
        first, before = history[0].record, history[0].state
        last, after = history[1].record, history[1].state
        assert (first.version, last.version) == (1, 2)
        assert (before, after) == (Account("ann", 0), Account("ann", 5))
        assert isinstance(history, History)
        assert isinstance(history[1:], History)
        assert history[1] == Step(last, after)

    def test_steps_are_table_rows(self) -> None:
        """Each step is a mapping of version, position, time, type, event and state after it."""
        store = bank()
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        rows = [dict(step) for step in store.history(account, "a")]
        recorded = store.events(account, "a")
        assert rows == [
            {
                "version": r.version,
                "position": r.position,
                "recorded_at": r.recorded_at,
                "type": r.type,
                "event": r.event,
                "state": state,
            }
            for r, state in zip(recorded, [Account("ann", 0), Account("ann", 5)], strict=True)
        ]
        assert rows[1]["type"] == "Deposited"

    def test_history_of_a_new_stream_is_empty(self) -> None:
        """A stream with no events has an empty history that still renders."""
        history = bank().history(account, "nobody")
        assert history == []
        assert "0 events" in history._repr_html_()

    def test_history_table_puts_state_fields_beside_events(self) -> None:
        """The table groups the event's columns and the state's fields, one row per event."""
        store = bank()
        store.execute(account, "a", Open("ann"), Deposit(5)).unwrap()
        view = store.history(account, "a")._repr_html_()
        assert '<th colspan="5">event</th><th colspan="2">state after it</th>' in view
        assert headers(view)[-2:] == ["owner", "balance"]
        assert "History of account/a: 2 events" in view


class TestDiagram:
    def test_edges_run_from_commands_to_events_to_components(self) -> None:
        """decide annotations give command → event; handlers give event → component."""
        diagram = bank().diagram()
        assert diagram.startswith("flowchart LR\n")
        assert {
            ("Open", "Opened"),
            ("Deposit", "Deposited"),
            ("Deposited", "totals"),
            ("Opened", "balances"),
            ("Deposited", "balances"),
            ("Opened", "welcome"),
        } <= edges(diagram)

    def test_reaction_targets_come_from_annotated_send(self) -> None:
        """A reaction annotated `Annotated[Send, Command]` draws manager → command."""
        assert ("welcome", "Notify") in edges(bank().diagram())

    def test_unannotated_functions_draw_no_guessed_edge(self) -> None:
        """A decide without a return annotation is a comment naming it, not an edge."""
        diagram = bank().diagram()
        assert not {e for e in edges(diagram) if e[0] == "Notify"}
        assert "%% notify: its return annotation names no event class" in diagram

    def test_aggregates_are_boxes_of_their_commands_and_events(self) -> None:
        """Each aggregate is a subgraph holding its commands and events."""
        diagram = str(bank().diagram())
        box = diagram.split('subgraph a1["account"]')[1].split("end")[0]
        assert all(f'"{name}"' in box for name in ("Open", "Deposit", "Opened", "Deposited"))
        assert "Notified" not in box

    def test_results_unions_and_containers_unwrap_to_events(self) -> None:
        """Result, Success, Failure, Optional, unions, lists and tuples unwrap to classes."""

        @attrs.frozen
        class A:
            pass

        @attrs.frozen
        class B:
            pass

        @attrs.frozen
        class C:
            pass

        thing = Aggregate("thing", initial=0)

        @thing.evolve
        def any_event(state: int, event: A | B | C) -> int:
            return state + 1

        @thing.decide
        def first(command: A, state: int) -> Result[list[A], ValueError]:
            return Success([A()])

        @thing.decide
        def second(command: B, state: int) -> Success[B] | Failure[str] | None:
            return Success(B())

        @thing.decide
        def third(command: C, state: int) -> tuple[A | C, ...]:
            return (C(),)

        found = edges(EventStore(aggregates=[thing]).diagram())
        assert found == {("A", "A"), ("B", "B"), ("C", "A"), ("C", "C")}

    def test_postponed_annotations_in_a_function_body_resolve(self) -> None:
        """Names that only a test's own body defines still resolve (this module is postponed)."""

        @attrs.frozen
        class Ping:
            pass

        @attrs.frozen
        class Pinged:
            pass

        pinger = Aggregate("pinger", initial=0)

        @pinger.evolve
        def pinged(state: int, event: Pinged) -> int:
            return state + 1

        @pinger.decide
        def ping(command: Ping, state: int) -> list[Pinged]:
            return [Pinged()]

        assert edges(EventStore(aggregates=[pinger]).diagram()) == {("Ping", "Pinged")}

    def test_catch_all_handlers_take_every_event_of_each_aggregate(self) -> None:
        """A handler of `object` is one edge from each aggregate's box."""
        count = Projection("count", initial=0)

        @count.on
        def one(n: int, event: object) -> int:
            return n + 1

        audit = Listener("audit")

        @audit.on
        def log(event: Deposited) -> None:
            pass

        store = EventStore(aggregates=[account, mailbox], projections=[count], listeners=[audit])
        assert {("account", "count"), ("mailbox", "count"), ("Deposited", "audit")} <= edges(
            store.diagram()
        )

    def test_a_handler_of_a_base_class_takes_its_subclasses(self) -> None:
        """A handler annotated with a base class draws an edge from each event deriving it."""

        class Moved:
            pass

        @attrs.frozen
        class In(Moved):
            pass

        @attrs.frozen
        class Out(Moved):
            pass

        door = Aggregate("door", initial=0)

        @door.evolve
        def moved(state: int, event: In | Out) -> int:
            return state + 1

        traffic = Projection("traffic", initial=0)

        @traffic.on
        def count(n: int, event: Moved) -> int:
            return n + 1

        found = edges(EventStore(aggregates=[door], projections=[traffic]).diagram())
        assert found == {("In", "traffic"), ("Out", "traffic")}  # no node for Moved itself

    def test_names_are_escaped(self) -> None:
        """Names with quotes, brackets, newlines or spaces cannot break out of their label."""
        weird = 'a"] --> x[("b\nend\ndirection LR'
        tricky = Aggregate(weird, initial=0)

        @event_type(weird)
        @attrs.frozen
        class Happened:
            pass

        @tricky.evolve
        def happened(state: int, event: Happened) -> int:
            return state

        view = Projection(weird, initial=0)

        @view.on
        def seen(n: int, event: Happened) -> int:
            return n

        diagram = EventStore(aggregates=[tricky], projections=[view]).diagram()
        lines = diagram.splitlines()
        assert not re.search(r"direction\s", diagram)  # Mermaid would read a directive
        labels = re.findall(r'"([^"]*)"', diagram)
        assert labels
        assert all(re.fullmatch(r"[\w.#;-]*", label) for label in labels)
        assert "#34;#93;#32;--#62;" in diagram  # '"] ->' as Mermaid entity codes
        assert len(lines) == len(diagram.split("\n"))  # no stray newline from a name

    def test_diagram_renders_in_notebooks(self) -> None:
        """The diagram is Mermaid text that notebooks draw: Mermaid and Markdown MIME types."""
        diagram = bank().diagram()
        assert isinstance(diagram, Diagram)
        assert isinstance(diagram, str)
        assert str(diagram) == diagram
        assert type(str(diagram)) is str
        assert diagram._repr_markdown_() == f"```mermaid\n{diagram}\n```"
        bundle = diagram._repr_mimebundle_()
        assert bundle["text/vnd.mermaid"] == str(diagram)
        assert bundle["text/markdown"] == diagram._repr_markdown_()
        assert "http" not in "".join(bundle.values())  # nothing to fetch: works offline
        assert repr(diagram).startswith("<Diagram: flowchart LR,")
        assert len(repr(diagram)) < 60

    def test_an_empty_store_draws_an_empty_flowchart(self) -> None:
        """A store with nothing registered still gives valid Mermaid text."""
        assert EventStore().diagram().splitlines()[0] == "flowchart LR"


class TestScenarioViews:
    def test_projection_scenario_shows_given_events_and_state(self) -> None:
        """given(projection, ...) renders the given events and the resulting state."""
        view = given(totals, Deposited(1), Deposited(2)).then_state(3)._repr_html_()
        assert "amount=1" in view
        assert "amount=2" in view
        assert ">3<" in view

    def test_document_scenario_shows_documents(self) -> None:
        """given(document_projection, ...) renders the resulting documents by key."""
        view = given(balances, Opened("ann"), Deposited(4))._repr_html_()
        assert headers(view) == ["key", "owner", "amount"]
        assert ">4<" in view

    def test_failing_scenario_shows_the_error(self) -> None:
        """A handler that raises renders as the failure the store would report."""
        view = given(balances, Deposited(4))._repr_html_()  # no document to credit
        assert "fails" in view
        assert "AssertionError" in view


class TestNotebook:
    def test_example_notebook_runs_and_shows_tables(
        self, tmp_path: Path, jupyter_kernel: str
    ) -> None:
        """examples/notebook.ipynb runs top to bottom in this interpreter and shows tables."""
        nbformat = pytest.importorskip("nbformat")
        nbclient = pytest.importorskip("nbclient")
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
        client = nbclient.NotebookClient(
            notebook,
            kernel_name=jupyter_kernel,
            timeout=60,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()  # raises CellExecutionError on a cell that fails
        outputs = [
            out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
        ]
        assert not [out for out in outputs if out.output_type == "error"]
        assert any("<table" in out.get("data", {}).get("text/html", "") for out in outputs)
        assert any("text/vnd.mermaid" in out.get("data", {}) for out in outputs)
        assert outputs[-1].text.strip() == sys.executable
