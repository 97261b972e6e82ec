"""Bank: transfers between accounts, run by a process manager, compensated when a credit fails.

A transfer debits its source, then credits its target. When the target cannot take the money
(closed, or never opened) the source is refunded: the transfer is compensated. When the source
cannot pay, the transfer is declined and nothing moves. Money is never created or lost, whatever
the transfers and however they end. `accounts.py` holds the account aggregate, `transfers.py`
the transfer aggregate and the process manager; this module wires them and tells the story.

Why are refusals events (`DebitRefused`, `CreditRefused`) rather than rejected commands? A process
manager cannot react to a rejection: inline, a rejected command fails its whole cascade (the
transfer would just roll back), and in a `Worker` (`inline=False`), where every step commits on
its own, a rejection is only logged and skipped, leaving the money debited and never refunded. A
refusal recorded as an event is something the process can react to, in both modes alike. It is
recorded on the account it was meant for, also one never opened.

    python -m examples.bank [STORE] [--schema NAME]
"""

from __future__ import annotations

from collections.abc import Sequence

from returns.result import Result

from eventsourcing_fn import EventSourcingError, EventStore, Outcome
from eventsourcing_fn.storage import Storage

from .._story import storage_from, told
from .accounts import Close, Open, account
from .transfers import StartTransfer, Transfer, transfer, transfer_process


def send_money(
    store: EventStore, source: str, target: str, amount: int
) -> Result[Outcome[Transfer], EventSourcingError]:
    """Start a transfer under a new id; inline, it has settled when this returns."""
    return store.execute(transfer, None, StartTransfer(source, target, amount))


def open_bank(storage: Storage | None = None, *, inline: bool = True) -> EventStore:
    """A store with the bank's aggregates and its transfer process."""
    return EventStore(
        storage, aggregates=[account, transfer], process_managers=[transfer_process], inline=inline
    )


# -- the story -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Open accounts, send money around, and show that none was created or lost."""
    with (
        storage_from(argv, "bank", "Transfers with compensation.") as storage,
        open_bank(storage) as store,
    ):
        ids: dict[str, str] = {}
        for owner, money in [("ann", 100), ("bob", 50), ("carol", 0)]:
            ids[owner] = store.execute(account, None, Open(owner, money)).unwrap().stream_id
            print(f"open {owner}'s account with {money}")
        print(f"close carol's account: {told(store.execute(account, ids['carol'], Close()))}")
        ids["dave"] = "never-opened-" + ids["ann"][:8]
        for source, target, amount in [
            ("ann", "bob", 30),
            ("ann", "bob", 500),
            ("ann", "carol", 20),
            ("bob", "dave", 10),
        ]:
            result = send_money(store, ids[source], ids[target], amount)
            ended = store.load(transfer, result.unwrap().stream_id).state
            because = f" ({ended.reason})" if ended.reason else ""
            print(f"send {amount} {source} -> {target}: {ended.status.value}{because}")
            print(f"  {told(result)}")
        balances = {o: store.load(account, ids[o]).state.balance for o in ("ann", "bob", "carol")}
        print(f"balances: {balances}, total {sum(balances.values())} (150 deposited)")
        print(f"transfers in flight: {len(store.documents(transfer_process))}")
    return 0
