"""The demo: a bank account told through commands, a rejection, events, state and time travel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
from returns.result import Failure

from ._aggregate import Aggregate
from ._envelope import context
from ._store import EventStore
from .storage import sqlite_storage


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


def run_demo(path: Path, *, fresh: bool = False, say: Callable[[str], None] = print) -> None:
    """Tell the bank-account story on a SQLite file; a second run continues it."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    existed = path.exists()
    with EventStore(sqlite_storage(path), aggregates=[account]) as store:
        before = store.load(account, "acc-1")
        say(f"store: SQLite file {path.resolve()}")
        if existed and before.version:
            say(f"the file exists: continuing at version {before.version} (--fresh restarts)")
        else:
            say("a new file: starting the story")
        with context(actor_id="teller-7", metadata={"channel": "demo"}):
            for command in (Open("ann"), Deposit(100), Withdraw(500), Withdraw(30)):
                result = store.execute(account, "acc-1", command)
                if isinstance(result, Failure):
                    say(f"  {command!r:<20} rejected: {result.failure().reason}")
                else:
                    outcome = result.unwrap()
                    made = ", ".join(f"{r.event!r}@v{r.version}" for r in outcome.events)
                    say(f"  {command!r:<20} -> {made or 'no events (already done)'}")
        now = store.load(account, "acc-1")
        say(f"state at version {now.version}: {now.state!r}")
        say("events:")
        for r in store.events(account, "acc-1"):
            say(f"  #{r.position} v{r.version} {r.type:<10} {r.event!r} by {r.actor_id}")
        then = store.load(account, "acc-1", at_version=2)
        say(f"time travel, at version 2: {then.state!r}")
