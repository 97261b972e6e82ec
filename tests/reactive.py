"""Components over the bank account, shared by the reaction tests."""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs
from bank import Close, Closed, Deposited, Opened, Withdrawn, account

from eventsourcing_fn import (
    Aggregate,
    DocumentProjection,
    Listener,
    ProcessManager,
    Projection,
    Recorded,
    Send,
    SqlProjection,
)


@attrs.frozen
class Balance:
    owner: str
    amount: int = 0


def make_totals() -> Projection[int]:
    """The sum of every deposit minus every withdrawal."""
    totals = Projection("totals", initial=0)

    @totals.on
    def deposited(total: int, event: Deposited) -> int:
        return total + event.amount

    @totals.on
    def withdrawn(total: int, event: Withdrawn) -> int:
        return total - event.amount

    return totals


def make_balances() -> DocumentProjection[Balance]:
    """One Balance document per account stream; closing an account deletes it."""
    balances = DocumentProjection("balances", doc_type=Balance)

    @balances.on
    def opened(doc: Balance | None, event: Opened) -> Balance | None:
        return Balance(event.owner)

    @balances.on
    def moved(doc: Balance | None, event: Deposited | Withdrawn) -> Balance | None:
        assert doc is not None
        delta = event.amount if isinstance(event, Deposited) else -event.amount
        return attrs.evolve(doc, amount=doc.amount + delta)

    @balances.on
    def closed(doc: Balance | None, event: Closed) -> Balance | None:
        return None

    return balances


def make_rows() -> SqlProjection:
    """The balances again, as rows of the user's own table (SQLite and PostgreSQL)."""

    def setup(conn: Any) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS account_rows"
            " (id TEXT PRIMARY KEY, owner TEXT NOT NULL, amount INTEGER NOT NULL)"
        )

    def reset(conn: Any) -> None:
        conn.execute("DELETE FROM account_rows")

    def reset_stream(conn: Any, stream_id: str) -> None:
        conn.execute(_sql(conn, "DELETE FROM account_rows WHERE id = ?"), (stream_id,))

    rows = SqlProjection("account_rows", setup=setup, reset=reset, reset_stream=reset_stream)

    @rows.on
    def opened(conn: Any, event: Opened, record: Recorded[Any]) -> None:
        conn.execute(
            _sql(conn, "INSERT INTO account_rows (id, owner, amount) VALUES (?, ?, 0)"),
            (record.stream_id, event.owner),
        )

    @rows.on
    def moved(conn: Any, event: Deposited | Withdrawn, record: Recorded[Any]) -> None:
        delta = event.amount if isinstance(event, Deposited) else -event.amount
        conn.execute(
            _sql(conn, "UPDATE account_rows SET amount = amount + ? WHERE id = ?"),
            (delta, record.stream_id),
        )

    @rows.on
    def closed(conn: Any, event: Closed, record: Recorded[Any]) -> None:
        conn.execute(_sql(conn, "DELETE FROM account_rows WHERE id = ?"), (record.stream_id,))

    return rows


def _sql(conn: Any, text: str) -> str:
    """The statement in the connection's parameter style (sqlite3: ?, psycopg: %s)."""
    return text if isinstance(conn, sqlite3.Connection) else text.replace("?", "%s")


def query_rows(store: Any) -> dict[str, Balance]:
    """The account_rows table as Balance documents by id."""
    with store.connection() as conn:
        rows = conn.execute("SELECT id, owner, amount FROM account_rows ORDER BY id").fetchall()
    return {row[0]: Balance(row[1], row[2]) for row in rows}


def make_closer(target: Aggregate[Any] = account) -> ProcessManager[Any]:
    """Closes every account whose balance reaches exactly 100 (a stateless reaction)."""
    closer = ProcessManager("closer", initial=0, key=lambda event, record: record.stream_id)

    @closer.on
    def count(balance: int, event: Deposited | Withdrawn) -> int:
        return balance + (event.amount if isinstance(event, Deposited) else -event.amount)

    @closer.react
    def close(balance: int, event: Deposited, record: Recorded[Any]) -> Send | None:
        return Send(target, record.stream_id, Close()) if balance == 100 else None

    return closer


def make_journal() -> tuple[Listener, list[str]]:
    """A listener noting `on:<type>` and `after:<type>` for every event."""
    seen: list[str] = []
    journal = Listener("journal")

    @journal.on
    def on(event: object, record: Recorded[Any]) -> None:
        seen.append(f"on:{record.type}")

    @journal.after
    def after(event: object) -> None:
        seen.append(f"after:{type(event).__name__}")

    return journal, seen
