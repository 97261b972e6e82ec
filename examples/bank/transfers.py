"""Transfers: the transfer aggregate, and the process that debits, credits, refunds and settles.

The process reacts to each step with the next command:

    TransferStarted -> Debit the source     DebitRefused  -> Decline (nothing moved)
    Debited         -> Credit the target    CreditRefused -> Refund the source
    Credited        -> Complete             Refunded      -> Compensate
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import attrs

from eventsourcing_fn import Aggregate, ProcessManager, Recorded, Send

from .accounts import (
    Credit,
    Credited,
    CreditRefused,
    Debit,
    Debited,
    DebitRefused,
    InvalidAmount,
    Refund,
    Refunded,
    account,
)


class Status(enum.Enum):
    NEW = "new"
    STARTED = "started"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    DECLINED = "declined"


@attrs.frozen
class TransferStarted:
    source: str
    target: str
    amount: int


@attrs.frozen
class TransferCompleted:
    pass


@attrs.frozen
class TransferCompensated:
    reason: str


@attrs.frozen
class TransferDeclined:
    reason: str


@attrs.frozen
class StartTransfer:
    source: str
    target: str
    amount: int


@attrs.frozen
class Complete:
    pass


@attrs.frozen
class Compensate:
    reason: str


@attrs.frozen
class Decline:
    reason: str


@attrs.frozen
class Transfer:
    status: Status = Status.NEW
    amount: int = 0
    reason: str | None = None


class SameAccount(Exception):
    """A transfer needs two different accounts."""


transfer = Aggregate(
    "transfer", initial=Transfer(), terminal=lambda t: t.status not in (Status.NEW, Status.STARTED)
)


@transfer.evolve
def transfer_started(state: Transfer, event: TransferStarted) -> Transfer:
    return Transfer(Status.STARTED, event.amount)


@transfer.evolve
def transfer_completed(state: Transfer, event: TransferCompleted) -> Transfer:
    return attrs.evolve(state, status=Status.COMPLETED)


@transfer.evolve
def transfer_compensated(state: Transfer, event: TransferCompensated) -> Transfer:
    return attrs.evolve(state, status=Status.COMPENSATED, reason=event.reason)


@transfer.evolve
def transfer_declined(state: Transfer, event: TransferDeclined) -> Transfer:
    return attrs.evolve(state, status=Status.DECLINED, reason=event.reason)


@transfer.decide
def start(command: StartTransfer, state: Transfer) -> TransferStarted:
    if state.status is not Status.NEW:
        raise ValueError("this transfer has started already")
    if command.amount <= 0:
        raise InvalidAmount(command.amount)
    if command.source == command.target:
        raise SameAccount(command.source)
    return TransferStarted(command.source, command.target, command.amount)


@transfer.decide
def settle(
    command: Complete | Compensate | Decline, state: Transfer
) -> TransferCompleted | TransferCompensated | TransferDeclined:
    if state.status is not Status.STARTED:
        raise ValueError(f"a {state.status.value} transfer cannot settle")
    if isinstance(command, Complete):
        return TransferCompleted()
    if isinstance(command, Compensate):
        return TransferCompensated(command.reason)
    return TransferDeclined(command.reason)


# -- the process ---------------------------------------------------------------------------


@attrs.frozen
class InFlight:
    """What the process remembers of a transfer until it settles."""

    source: str = ""
    target: str = ""
    amount: int = 0
    refused_because: str = ""


AccountStep = Debited | DebitRefused | Credited | CreditRefused | Refunded
Settled = TransferCompleted | TransferCompensated | TransferDeclined


def transfer_of(event: object, record: Recorded[Any]) -> str:
    """Account events name their transfer; a transfer's own events are on its stream."""
    return event.transfer_id if isinstance(event, AccountStep) else record.stream_id


transfer_process = ProcessManager("transfers", initial=InFlight(), key=transfer_of)


@transfer_process.on
def remember(state: InFlight, event: TransferStarted) -> InFlight:
    return InFlight(event.source, event.target, event.amount)


@transfer_process.on
def note_refusal(state: InFlight, event: CreditRefused) -> InFlight:
    return attrs.evolve(state, refused_because=event.reason)


@transfer_process.on
def forget(state: InFlight, event: Settled) -> None:
    return None  # settled: nothing left to remember


@transfer_process.react
def next_step(
    state: InFlight, event: TransferStarted | AccountStep, record: Recorded[Any]
) -> Iterator[Send]:
    tid = transfer_of(event, record)
    if isinstance(event, TransferStarted):
        yield Send(account, event.source, Debit(tid, event.amount))
    elif isinstance(event, Debited):
        yield Send(account, state.target, Credit(tid, event.amount))
    elif isinstance(event, DebitRefused):
        yield Send(transfer, tid, Decline(event.reason))
    elif isinstance(event, Credited):
        yield Send(transfer, tid, Complete())
    elif isinstance(event, CreditRefused):
        yield Send(account, state.source, Refund(tid, state.amount))
    else:
        yield Send(transfer, tid, Compensate(state.refused_because))
