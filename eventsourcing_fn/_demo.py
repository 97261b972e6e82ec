"""The demo: a bank account told through commands, a rejection, events, state and time travel.

It writes only to a new file or to its own database, and deletes (`fresh`) only its own: a SQLite
file marked with the demo's `PRAGMA application_id` that holds nothing but the demo's account.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import attrs
from returns.result import Failure

from ._aggregate import Aggregate
from ._envelope import context
from ._errors import StorageError
from ._store import EventStore
from .storage import Storage, sqlite_storage
from .storage._sqlite import TABLES as SQLITE_TABLES

_STREAM = "acc-1"
# Written into the header of every database the demo makes: a file without it is not the demo's.
_DEMO_ID = int.from_bytes(b"esfd", "big")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_STORE_TABLES = frozenset(SQLITE_TABLES)


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
class Open:
    owner: str


@attrs.frozen
class Deposit:
    amount: int


@attrs.frozen
class Withdraw:
    amount: int


@attrs.frozen
class Account:
    owner: str | None = None
    balance: int = 0


class InsufficientFunds(Exception):
    """A withdrawal larger than the balance."""


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


@account.decide
def open_account(command: Open, state: Account) -> Opened | None:
    return None if state.owner is not None else Opened(command.owner)


@account.decide
def deposit(command: Deposit, state: Account) -> Deposited:
    return Deposited(command.amount)


@account.decide
def withdraw(command: Withdraw, state: Account) -> Withdrawn:
    if command.amount > state.balance:
        raise InsufficientFunds(f"balance {state.balance}, asked for {command.amount}")
    return Withdrawn(command.amount)


class NotTheDemosStore(Exception):
    """The store path holds something the demo did not make, or cannot hold a database."""


def run_demo(path: Path, *, fresh: bool = False, say: Callable[[str], None] = print) -> None:
    """Tell the bank-account story on a SQLite file; a second run continues it.

    Raises `NotTheDemosStore`, touching nothing, when `path` exists and is not the demo's own
    database (see the module docstring), or when no database can live at `path`.
    """
    existed = path.exists()
    if existed:
        _check_own(path)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            existed = False
    with EventStore(_open(path, new=not existed), aggregates=[account]) as store:
        before = store.load(account, _STREAM)
        say(f"store: SQLite file {path.resolve()}")
        if existed and before.version:
            say(f"the file exists: continuing at version {before.version} (--fresh restarts)")
        else:
            say("a new file: starting the story")
        with context(actor_id="teller-7", metadata={"channel": "demo"}):
            for command in (Open("ann"), Deposit(100), Withdraw(500), Withdraw(30)):
                result = store.execute(account, _STREAM, command)
                if isinstance(result, Failure):
                    say(f"  {command!r:<20} rejected: {result.failure().reason}")
                else:
                    outcome = result.unwrap()
                    made = ", ".join(f"{r.event!r}@v{r.version}" for r in outcome.events)
                    say(f"  {command!r:<20} -> {made or 'no events (already done)'}")
        now = store.load(account, _STREAM)
        say(f"state at version {now.version}: {now.state!r}")
        say("events:")
        for r in store.events(account, _STREAM):
            say(f"  #{r.position} v{r.version} {r.type:<10} {r.event!r} by {r.actor_id}")
        then = store.load(account, _STREAM, at_version=2)
        say(f"time travel, at version 2: {then.state!r}")


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
    """The demo's mark, the store's tables and no row but the demo account's."""
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
    return not any(
        conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
        for table in ("checkpoints", "documents")
    )
