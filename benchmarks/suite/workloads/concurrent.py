"""Concurrent writers on PostgreSQL, with one thread tailing the global log.

W writer threads (each on its own pooled connection) execute commands on new streams while one
thread tails the log and decodes what it reads. Ours tails with `store.read_all(after=last)`;
theirs with `recorder.select_notifications(start=last, inclusive_of_start=False)` plus
`mapper.to_domain_event`, on their default recorder, which takes `LOCK TABLE ... IN EXCLUSIVE
MODE` on every insert. Correctness is counted too: a tail event is skipped when plain
`SELECT position FROM events` (not the library) finds it and the tail never saw it.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial

import psycopg

from ..config import Config
from ..domain import EsTally, Start, tally_aggregate
from ..harness import Figure, Results, Sample, interleave, plain, rates, values
from ..stores import our_store, their_app, unique

TAIL_TIMEOUT = 60.0  # seconds the tail may take, after the last commit, to see everything


def run_concurrent(
    write_one: Callable[[], None],
    positions_after: Callable[[int], Iterable[int]],
    cfg: Config,
) -> tuple[float, float, list[int]]:
    """W writer threads calling `write_one`, one thread tailing the log: (seconds, lag, seen).

    The tail follows `positions_after(last seen)` until it has seen as many events as were
    written, or TAIL_TIMEOUT after the last commit.
    """
    expected = cfg.writers * cfg.writer_commands * cfg.events
    go = threading.Barrier(cfg.writers + 1)
    ended: list[float] = []
    seen: list[int] = []
    caught_up: list[float] = []

    def writer() -> None:
        go.wait()
        for _ in range(cfg.writer_commands):
            write_one()

    def tail() -> None:
        last = 0
        while len(seen) < expected:
            if ended and time.perf_counter() - ended[0] > TAIL_TIMEOUT:
                return
            count = 0
            for position in positions_after(last):
                seen.append(position)
                last = position
                count += 1
            if not count:
                time.sleep(0.001)
        caught_up.append(time.perf_counter())

    threads = [threading.Thread(target=writer) for _ in range(cfg.writers)]
    reader = threading.Thread(target=tail)
    for thread in [*threads, reader]:
        thread.start()
    gc.collect()
    go.wait()
    begin = time.perf_counter()
    for thread in threads:
        thread.join()
    ended.append(time.perf_counter())
    reader.join()
    lag = max(0.0, caught_up[0] - ended[0]) if caught_up else float("inf")
    return ended[0] - begin, lag, seen


def outcome(seconds: float, lag: float, seen: list[int], committed: list[int]) -> Sample:
    return {
        "seconds": seconds,
        "events": len(committed),  # in the table at the end, read with plain SQL
        "skipped": len(set(committed) - set(seen)),  # committed, never seen by the tail
        "duplicates": len(seen) - len(set(seen)),  # seen twice
        "out of order": sum(1 for a, b in itertools.pairwise(seen) if b <= a),
        "lag": lag,  # seconds from the last commit until the tail had seen as many events
    }


def positions_in(dsn: str, table: str, column: str) -> list[int]:
    """Ground truth: every position in the table, by plain SQL."""
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(f"SELECT {column} FROM {table}")]


def ours_concurrent(cfg: Config) -> Sample:
    tally = tally_aggregate()
    command = Start("bench", cfg.events - 1)
    schema = unique("fn")
    with our_store("postgres", cfg, tally, schema=schema) as store:

        def write_one() -> None:
            store.execute(tally, None, command).unwrap()

        def positions_after(after: int) -> Iterator[int]:
            for record in store.read_all(after=after):
                yield record.position

        seconds, lag, seen = run_concurrent(write_one, positions_after, cfg)
        committed = positions_in(cfg.dsn, f'"{schema}".events', "position")
    return outcome(seconds, lag, seen, committed)


def theirs_concurrent(cfg: Config) -> Sample:
    # Their default PostgreSQL recorder: LOCK TABLE ... IN EXCLUSIVE MODE around each insert.
    schema = unique("es")
    with their_app("postgres", cfg, pool_size=cfg.writers + 2, schema=schema) as app:
        select = app.recorder.select_notifications
        to_event = app.mapper.to_domain_event

        def write_one() -> None:
            tally = EsTally(name="bench")
            for amount in range(1, cfg.events):
                tally.increment(amount=amount)
            app.save(tally)

        def positions_after(after: int) -> Iterator[int]:
            while notes := select(start=after, limit=1000, inclusive_of_start=False):
                for note in notes:
                    to_event(note)  # decode, as our read_all does
                    yield note.id
                after = notes[-1].id

        seconds, lag, seen = run_concurrent(write_one, positions_after, cfg)
        table = f'"{schema}"."{app.recorder.events_table_name}"'  # type: ignore[attr-defined]
        committed = positions_in(cfg.dsn, table, "notification_id")
    return outcome(seconds, lag, seen, committed)


def bench_concurrent(cfg: Config) -> Results:
    sides = {"ours": ours_concurrent, "eventsourcing": theirs_concurrent}
    runs = interleave(
        "concurrent writers + tail on postgres",
        cfg,
        lambda c: plain({name: partial(side, c) for name, side in sides.items()}),
    )
    sizes = {
        "writers": cfg.writers,
        "commands per writer": cfg.writer_commands,
        "events per command": cfg.events,
    }
    out = Results()
    events = cfg.writers * cfg.writer_commands * cfg.events
    throughput = {}
    for subject in sides:
        got = runs[subject]
        throughput[subject] = out.add(
            Figure(
                "concurrent",
                "postgres",
                subject,
                "events/s",
                "events/s",
                rates(events, got, "seconds"),
                sizes,
                note="writers, from the start signal to the last commit",
            )
        )
        wrong = tuple(r["skipped"] + r["duplicates"] + r["out of order"] for r in got)
        out.add(
            Figure(
                "concurrent",
                "postgres",
                subject,
                "tail: skipped + duplicated + reordered",
                "events",
                wrong,
                sizes,
                better="lower",
            )
        )
        out.add(
            Figure(
                "concurrent",
                "postgres",
                subject,
                "tail lag after the last commit",
                "s",
                values(got, "lag"),
                sizes,
                better="lower",
            )
        )
    out.compare("ours / eventsourcing", throughput["ours"], throughput["eventsourcing"])
    return out
