"""The demo: a bank account told through commands, a rejection, events and their metadata, a
projection, a process manager's cascade, time travel and a replay.

It writes only to a new file or to its own database, and deletes (`fresh`) only its own: a SQLite
file marked with the demo's `PRAGMA application_id` that holds nothing but the demo's account.
`eventsourcing_fn._demo:bank` lends its definitions to the command line (`--app`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from pathlib import Path
from typing import Any

import attrs
from returns.result import Failure

from ._aggregate import Aggregate
from ._envelope import Recorded, context
from ._errors import StorageError, explain
from ._process import ProcessManager, Send
from ._projection import DocumentProjection
from ._store import EventStore
from .storage import Storage, sqlite_storage
from .storage._sqlite import TABLES as SQLITE_TABLES

_STREAM = "acc-1"
LARGE = 1000  # a deposit of at least this much is held for review
# Written into the header of every database the demo makes: a file without it is not the demo's.
_DEMO_ID = int.from_bytes(b"esfd", "big")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_STORE_TABLES = frozenset(SQLITE_TABLES)

Tick = Callable[[int, "int | None"], None]
Bar = Callable[[str, "int | None"], AbstractContextManager[Tick]]


@attrs.frozen
class Opened:
    owner: str


@attrs.frozen
class Deposited:
    amount: int


@attrs.frozen
class Withdrawn:
    amount: int


@attrs.frozen
class HoldPlaced:
    amount: int
    reason: str


@attrs.frozen
class Open:
    owner: str


@attrs.frozen
class Deposit:
    amount: int


@attrs.frozen
class Withdraw:
    amount: int


@attrs.frozen
class PlaceHold:
    amount: int
    reason: str


@attrs.frozen
class Account:
    owner: str | None = None
    balance: int = 0
    held: int = 0


class InsufficientFunds(Exception):
    """A withdrawal larger than what is available: the balance less what is on hold."""


account = Aggregate("account", initial=Account(), snapshot_every=5)


@account.evolve
def opened(state: Account, event: Opened) -> Account:
    return attrs.evolve(state, owner=event.owner)


@account.evolve
def deposited(state: Account, event: Deposited) -> Account:
    return attrs.evolve(state, balance=state.balance + event.amount)


@account.evolve
def withdrawn(state: Account, event: Withdrawn) -> Account:
    return attrs.evolve(state, balance=state.balance - event.amount)


@account.evolve
def hold_placed(state: Account, event: HoldPlaced) -> Account:
    return attrs.evolve(state, held=state.held + event.amount)


@account.decide
def open_account(command: Open, state: Account) -> Opened | None:
    return None if state.owner is not None else Opened(command.owner)


@account.decide
def deposit(command: Deposit, state: Account) -> Deposited:
    return Deposited(command.amount)


@account.decide
def withdraw(command: Withdraw, state: Account) -> Withdrawn:
    available = state.balance - state.held
    if command.amount > available:
        held = f" ({state.held} on hold)" if state.held else ""
        raise InsufficientFunds(f"{available} available{held}, asked for {command.amount}")
    return Withdrawn(command.amount)


@account.decide
def place_hold(command: PlaceHold, state: Account) -> HoldPlaced:
    return HoldPlaced(command.amount, command.reason)


@attrs.frozen
class Balance:
    owner: str
    balance: int = 0
    held: int = 0


balances = DocumentProjection("balances", doc_type=Balance)


@balances.on
def balance_opened(doc: Balance | None, event: Opened) -> Balance | None:
    return Balance(event.owner)


@balances.on
def balance_moved(doc: Balance | None, event: Deposited | Withdrawn) -> Balance | None:
    assert doc is not None
    amount = event.amount if isinstance(event, Deposited) else -event.amount
    return attrs.evolve(doc, balance=doc.balance + amount)


@balances.on
def balance_held(doc: Balance | None, event: HoldPlaced) -> Balance | None:
    assert doc is not None
    return attrs.evolve(doc, held=doc.held + event.amount)


holds: ProcessManager[None] = ProcessManager("holds")  # stateless: it only reacts


@holds.react
def hold_large_deposits(state: None, event: Deposited, record: Recorded[Any]) -> Send | None:
    if event.amount < LARGE:
        return None
    return Send(account, record.stream_id, PlaceHold(event.amount, "large deposit, in review"))


def _definitions(storage: Storage | None = None) -> EventStore:
    return EventStore(
        storage, aggregates=[account], projections=[balances], process_managers=[holds]
    )


bank = _definitions()  # in memory: what `--app eventsourcing_fn._demo:bank` lends the CLI


class NotTheDemosStore(Exception):
    """The store path holds something the demo did not make, or cannot hold a database."""


def run_demo(
    path: Path,
    *,
    fresh: bool = False,
    say: Callable[[str], None] = print,
    bar: Bar | None = None,
) -> None:
    """Tell the bank-account story on a SQLite file; a second run continues it.

    `bar(label, total)` makes the replay's progress display. Raises `NotTheDemosStore`,
    touching nothing, when `path` exists and is not the demo's own database (see the module
    docstring), or when no database can live at `path`.
    """
    existed = path.exists()
    if existed:
        _check_own(path)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            existed = False
    with _definitions(_open(path, new=not existed)) as store:
        before = store.load(account, _STREAM)
        say(f"store: SQLite file {path.resolve()}")
        if existed and before.version:
            say(f"the file exists: continuing at version {before.version} (--fresh restarts)")
        else:
            say("a new file: starting the story")
        visit = f"visit-{len({r.correlation_id for r in store.events(account, _STREAM)}) + 1}"
        start = store.storage.last_position()
        with context(actor_id="teller-7", correlation_id=visit, metadata={"channel": "demo"}):
            _commands(store, say, visit)
            _cascade(store, say)
        _metadata(store, say, [r for r in store.events(account, _STREAM) if r.position > start])
        _time_travel(store, say)
        _replay(store, say, bar)
        say("")
        say("Run the demo again to continue the story, or look around:")
        app = f"--store {path} --app {__name__}:bank"
        say(f"  eventsourcing-fn events account {_STREAM} {app}")
        say(f"  eventsourcing-fn state account {_STREAM} --at-version 3 {app}")


def _commands(store: EventStore, say: Callable[[str], None], visit: str) -> None:
    say("")
    say(f"Commands, each its own transaction (actor teller-7, correlation {visit}):")
    for command in (Open("ann"), Deposit(100), Withdraw(1000), Withdraw(30)):
        _execute(store, say, command)
    say("A projection, read right after the command:")
    say(f"  balances[{_STREAM!r}] = {store.documents(balances)[_STREAM]!r}")


def _execute(
    store: EventStore, say: Callable[[str], None], command: object
) -> Sequence[Recorded[Any]]:
    """Run one command on the account and say what came of it; its events, cascade included."""
    result = store.execute(account, _STREAM, command)
    if isinstance(result, Failure):
        reason = result.failure().reason
        say(f"  {command!r:<22} -> Failure: {explain(reason)}; nothing appended")
        return ()
    outcome = result.unwrap()
    made = ", ".join(f"{r.event!r} at v{r.version}" for r in outcome.events)
    say(f"  {command!r:<22} -> {made or 'no events (already done)'}")
    for r in outcome.cascade:
        say(f"  {'':<22}    and, by 'holds', in the same transaction: {r.event!r} at v{r.version}")
    return (*outcome.events, *outcome.cascade)


def _cascade(store: EventStore, say: Callable[[str], None]) -> None:
    say(f"A process manager: 'holds' puts a deposit of {LARGE} or more on hold:")
    _execute(store, say, Deposit(2500))
    say(f"  balances[{_STREAM!r}] = {store.documents(balances)[_STREAM]!r}")
    _execute(store, say, Withdraw(2000))


def _metadata(store: EventStore, say: Callable[[str], None], records: list[Recorded[Any]]) -> None:
    say("This visit's events, with their metadata:")
    positions = {str(r.event_id): r.position for r in records}
    for r in records:
        cause = positions.get(r.causation_id or "")
        why = f", caused by #{cause}" if cause is not None else ""
        say(
            f"  #{r.position} v{r.version} {r.event!r}: by {r.actor_id},"
            f" correlation {r.correlation_id}{why}, metadata {dict(r.metadata)}"
        )


def _time_travel(store: EventStore, say: Callable[[str], None]) -> None:
    now = store.load(account, _STREAM)
    then = store.load(account, _STREAM, at_version=2)
    say("Time travel: the same stream, folded up to a version:")
    say(f"  now, at version {now.version}: {now.state!r}")
    say(f"  at version 2: {then.state!r}")


def _replay(store: EventStore, say: Callable[[str], None], bar: Bar | None) -> None:
    say("A replay: 'balances' rebuilt from the whole log:")
    total = store.storage.count_after(0)
    with (bar or _no_bar)("replaying balances", total) as tick:
        done = store.replay(balances, progress=tick)
    doc = store.documents(balances)[_STREAM]
    say(f"  replayed {done} events; balances[{_STREAM!r}] = {doc!r}, as before")


def _no_bar(label: str, total: int | None) -> AbstractContextManager[Tick]:
    return nullcontext(lambda done, total: None)


def _open(path: Path, *, new: bool) -> Storage:
    """The storage at `path`; a `new` file is marked as the demo's own."""
    try:
        storage = sqlite_storage(path)
    except (StorageError, ValueError) as exc:
        raise NotTheDemosStore(str(exc)) from exc
    if new:
        try:
            with closing(sqlite3.connect(path)) as conn:
                conn.execute(f"PRAGMA application_id = {_DEMO_ID}")  # a constant int
                conn.commit()
        except sqlite3.Error as exc:
            storage.close()
            raise StorageError(f"SQLite database {str(path)!r}: marking it failed: {exc}") from exc
    return storage


def _check_own(path: Path) -> None:
    """Raise `NotTheDemosStore` unless `path` is a database the demo made, holding only its own."""
    untouched = "it is left untouched: choose another store path"
    refusal = f"{str(path)!r} exists and is not a database this demo made; {untouched}"
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise NotTheDemosStore(f"{str(path)!r} is {kind}; {untouched}")
    with path.open("rb") as f:
        if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:  # not even SQLite: never open it as one
            raise NotTheDemosStore(refusal)
    try:
        # Read-only: looking must not change a file that may be someone else's.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            ours = _holds_only_the_demo(conn)
    except sqlite3.Error:
        ours = False
    if not ours:
        raise NotTheDemosStore(refusal)


def _holds_only_the_demo(conn: sqlite3.Connection) -> bool:
    """The demo's mark, the store's tables, and no row but those of the demo's own account."""
    if conn.execute("PRAGMA application_id").fetchone()[0] != _DEMO_ID:
        return False
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables != _STORE_TABLES:
        return False
    own = (account.name, _STREAM)
    for table in ("events", "snapshots"):
        streams = conn.execute(f"SELECT DISTINCT stream_type, stream_id FROM {table}").fetchall()
        if any(tuple(row) != own for row in streams):
            return False
    checkpoints = {row[0] for row in conn.execute("SELECT name FROM checkpoints")}
    documents = set(conn.execute("SELECT DISTINCT projection, key FROM documents").fetchall())
    return checkpoints <= {balances.name, holds.name} and documents <= {(balances.name, _STREAM)}
