"""The bank account example, shared by the behaviour tests."""

from __future__ import annotations

import attrs
from returns.result import Failure, Result, Success

from eventsourcing_fn import Aggregate


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
class Closed:
    reason: str = "closed by owner"


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
class Close:
    pass


@attrs.frozen
class Account:
    owner: str | None = None
    balance: int = 0
    closed: bool = False


class AlreadyOpen(Exception):
    """Opening an account that is open."""


class NotOpen(Exception):
    """A command on an account that was never opened."""


@attrs.frozen
class Insufficient:
    """A rejection carried as a plain value, not an exception."""

    balance: int
    asked: int


def opened(state: Account, event: Opened) -> Account:
    return attrs.evolve(state, owner=event.owner)


def deposited(state: Account, event: Deposited) -> Account:
    return attrs.evolve(state, balance=state.balance + event.amount)


def withdrawn(state: Account, event: Withdrawn) -> Account:
    return attrs.evolve(state, balance=state.balance - event.amount)


def closed(state: Account, event: Closed) -> Account:
    return attrs.evolve(state, closed=True)


def open_account(command: Open, state: Account) -> Opened:
    if state.owner is not None:
        raise AlreadyOpen(state.owner)
    return Opened(command.owner)


def deposit(command: Deposit, state: Account) -> list[Deposited] | Failure[NotOpen]:
    if state.owner is None:
        return Failure(NotOpen())
    return [Deposited(command.amount)] if command.amount else []


def withdraw(command: Withdraw, state: Account) -> Result[Withdrawn, Insufficient]:
    if command.amount > state.balance:
        return Failure(Insufficient(state.balance, command.amount))
    return Success(Withdrawn(command.amount))


def close(command: Close, state: Account) -> Closed:
    return Closed()


def make_account(
    name: str = "account", *, snapshot_every: int | None = None, snapshot_version: int = 1
) -> Aggregate[Account]:
    """A fresh bank-account aggregate; closed accounts take no further commands."""
    agg = Aggregate(
        name,
        initial=Account(),
        snapshot_every=snapshot_every,
        snapshot_version=snapshot_version,
        terminal=lambda state: state.closed,
    )
    for evolve in (opened, deposited, withdrawn, closed):
        agg.evolve(evolve)
    for decide in (open_account, deposit, withdraw, close):
        agg.decide(decide)
    return agg


account = make_account()
