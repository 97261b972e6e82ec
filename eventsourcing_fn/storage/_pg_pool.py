"""The connections of one PostgreSQL storage: a pool per process, healed when connections die.

A process forked after the storage was made (a pre-fork server's worker) must not touch the
parent's connections: they are the parent's sessions, on sockets both processes hold. The first
call in the child builds a pool of its own; the parent's pool object is kept referenced and
never used, closed or finalised there, and right after `os.fork()` every inherited socket is
pointed at /dev/null so nothing the child does with its copies can reach the server.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

# Every connection any storage of this process has used. Process-wide because a fork is: a
# forked child has to find them all, whichever storage or pool they came from.
_SEEN: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
_POOLS: weakref.WeakSet[Connections] = weakref.WeakSet()


def configure(conn: psycopg.Connection[Any]) -> None:
    """Set up a connection of a pool the storage owns."""
    _SEEN.add(conn)
    conn.execute("SET TIME ZONE 'UTC'")  # timestamptz then loads as datetime(tzinfo=UTC)
    if not conn.autocommit:
        conn.commit()  # a pool discards a connection its configure leaves in a transaction


def open_pool(conninfo: str, name: str) -> ConnectionPool[Any]:
    """The pool a storage opens for a conninfo string."""
    return ConnectionPool(
        conninfo,
        min_size=1,
        max_size=16,
        kwargs={"autocommit": True},
        configure=configure,
        name=name,
        open=True,
    )


def _after_fork_in_child() -> None:
    # libpq's PQfinish sends Terminate on the socket (ending the parent's session), and a pool
    # closing or checking a connection sends queries into the parent's conversation: after
    # this, whatever the child sends on an inherited socket goes nowhere, and reads see EOF.
    conns = list(_SEEN)
    _SEEN.clear()
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for conn in conns:
            try:
                fd = conn.pgconn.socket
            except psycopg.Error:
                continue  # closed: the fd is no longer this connection's
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    for connections in list(_POOLS):
        connections.lock = threading.Lock()  # a thread that no longer exists may hold it


os.register_at_fork(after_in_child=_after_fork_in_child)


class Lease:
    """A connection taken from a pool: put back to that pool, as it was found."""

    __slots__ = ("conn", "pool", "restore", "returned")

    def __init__(self, conn: psycopg.Connection[Any], pool: ConnectionPool[Any], restore: bool):
        self.conn = conn
        self.pool = pool
        self.restore = restore  # it was not in autocommit mode when taken
        self.returned = False


class Connections:
    """The pool of one storage in the current process, handing out autocommit connections."""

    def __init__(self, pool: ConnectionPool[Any], *, own: bool) -> None:
        self.pool = pool
        self.own = own
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.inherited: list[ConnectionPool[Any]] = []
        _POOLS.add(self)

    def current(self) -> ConnectionPool[Any]:
        """This process's pool: a forked child's first call makes its own."""
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    # Kept, so the parent's pool is never finalised here (that would signal
                    # worker threads that do not exist and close the parent's connections).
                    self.inherited.append(self.pool)
                    self.pool, self.own, self.pid = _copy(self.pool), True, os.getpid()
        return self.pool

    def take(self) -> Lease:
        """A connection in autocommit mode (a statement outside BEGIN is its own)."""
        pool = self.current()
        conn = pool.getconn()
        if not self.own:
            _SEEN.add(conn)  # a pool passed in was not configured by us
        restore = not conn.autocommit  # a pool passed in may hand out non-autocommit ones
        if restore:
            conn.autocommit = True
        return Lease(conn, pool, restore)

    def give(self, lease: Lease) -> None:
        """Put a connection back, rolled back and in its own autocommit mode."""
        conn = lease.conn
        if lease.returned:
            return  # a dead one, swapped out of a transaction that then failed
        lease.returned = True
        if lease.pool is not self.current():
            return  # taken before a fork, and this is the child: the connection is the parent's
        status = conn.pgconn.transaction_status
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                conn.execute(b"ROLLBACK")
            except psycopg.Error:
                conn.close()  # unusable: the pool replaces closed connections
        if lease.restore and not conn.closed:
            conn.autocommit = False
        lease.pool.putconn(conn)  # the pool drops a broken one and opens another

    @contextmanager
    def borrow(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for the block, put back after it."""
        lease = self.take()
        try:
            yield lease.conn
        finally:
            self.give(lease)

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not pooled), in autocommit mode, as the pool would make."""
        pool = self.current()
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
        conn = psycopg.connect(conninfo, **{**(kwargs or {}), "autocommit": True})
        _SEEN.add(conn)  # made unusable in a forked child, like the pooled ones
        return conn

    def heal(self) -> None:
        """Replace the idle connections that died (a server restart kills them all at once)."""
        self.current().check()

    def close(self) -> None:
        """Close the pool if the storage owns it (in a forked child, the child's own)."""
        if self.own and self.pid == os.getpid():
            self.pool.close()


def _copy(pool: ConnectionPool[Any]) -> ConnectionPool[Any]:
    """A new pool connecting as `pool` does (its callbacks are its owner's and stay behind)."""
    return ConnectionPool(
        pool.conninfo,
        kwargs=pool.kwargs,
        min_size=pool.min_size,
        max_size=pool.max_size,
        name=pool.name,
        timeout=pool.timeout,
        max_lifetime=pool.max_lifetime,
        max_idle=pool.max_idle,
        reconnect_timeout=pool.reconnect_timeout,
        connection_class=pool.connection_class,
        configure=configure,
        open=True,
    )
