"""Accounts: money in and out, and refusals recorded as events the transfer process reacts to."""

from __future__ import annotations

import attrs

from eventsourcing_fn import Aggregate


@attrs.frozen
class Opened:
    owner: str


@attrs.frozen
class Deposited:
    amount: int


@attrs.frozen
class Closed:
    pass


@attrs.frozen
class Debited:
    transfer_id: str
    amount: int


@attrs.frozen
class DebitRefused:
    transfer_id: str
    reason: str


@attrs.frozen
class Credited:
    transfer_id: str
    amount: int


@attrs.frozen
class CreditRefused:
    transfer_id: str
    reason: str


@attrs.frozen
class Refunded:
    transfer_id: str
    amount: int


@attrs.frozen
class Open:
    owner: str
    deposit: int = 0


@attrs.frozen
class Deposit:
    amount: int


@attrs.frozen
class Close:
    pass


@attrs.frozen
class Debit:
    transfer_id: str
    amount: int


@attrs.frozen
class Credit:
    transfer_id: str
    amount: int


@attrs.frozen
class Refund:
    transfer_id: str
    amount: int


@attrs.frozen
class Account:
    owner: str | None = None
    balance: int = 0
    closed: bool = False


class AlreadyOpen(Exception):
    """The account is open already."""


class NotOpen(Exception):
    """No such account, or it is closed."""


class InvalidAmount(Exception):
    """Amounts are positive."""


class NotEmpty(Exception):
    """An account closes only once its balance is zero."""


account = Aggregate("account", initial=Account())


@account.evolve
def opened(state: Account, event: Opened) -> Account:
    return Account(event.owner)


@account.evolve
def money_in(state: Account, event: Deposited | Credited | Refunded) -> Account:
    return attrs.evolve(state, balance=state.balance + event.amount)


@account.evolve
def money_out(state: Account, event: Debited) -> Account:
    return attrs.evolve(state, balance=state.balance - event.amount)


@account.evolve
def closed(state: Account, event: Closed) -> Account:
    return attrs.evolve(state, closed=True)


@account.evolve
def refused(state: Account, event: DebitRefused | CreditRefused) -> Account:
    return state


@account.decide
def open_account(command: Open, state: Account) -> list[Opened | Deposited]:
    if state.owner is not None:
        raise AlreadyOpen(state.owner)
    if command.deposit < 0:
        raise InvalidAmount(command.deposit)
    return [Opened(command.owner), *([Deposited(command.deposit)] if command.deposit else [])]


@account.decide
def deposit(command: Deposit, state: Account) -> Deposited:
    if state.owner is None or state.closed:
        raise NotOpen()
    if command.amount <= 0:
        raise InvalidAmount(command.amount)
    return Deposited(command.amount)


@account.decide
def close(command: Close, state: Account) -> list[Closed]:
    if state.owner is None:
        raise NotOpen()
    if state.balance:
        raise NotEmpty(f"balance {state.balance}")
    return [] if state.closed else [Closed()]


@account.decide
def debit(command: Debit, state: Account) -> Debited | DebitRefused:
    why = _unavailable(state)
    if why is None and state.balance < command.amount:
        why = f"insufficient funds: balance {state.balance}, asked {command.amount}"
    if why is not None:
        return DebitRefused(command.transfer_id, why)
    return Debited(command.transfer_id, command.amount)


@account.decide
def credit(command: Credit, state: Account) -> Credited | CreditRefused:
    why = _unavailable(state)
    if why is not None:
        return CreditRefused(command.transfer_id, why)
    return Credited(command.transfer_id, command.amount)


@account.decide
def refund(command: Refund, state: Account) -> Refunded:
    return Refunded(command.transfer_id, command.amount)  # the money came from here: always


def _unavailable(state: Account) -> str | None:
    if state.owner is None:
        return "no such account"
    return "account closed" if state.closed else None
