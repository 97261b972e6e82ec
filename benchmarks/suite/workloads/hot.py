"""One hot stream on PostgreSQL, ours only: P processes executing on the same stream.

Each spawned process runs `execute(tally, "hot", Bump(), max_retries=R)` and counts the version
conflicts (the retries) by wrapping `storage.append`; once with `postgres_storage(lock_streams=
True)`, which serialises commands on the stream's advisory lock, once without. The stream is
snapshotted every S events, so load time does not grow during the run. `eventsourcing` has no
equivalent of the retrying execute, and the raw driver no decide step, so neither is measured.
"""

from __future__ import annotations

import multiprocessing
import time
from functools import partial
from typing import Any

import attrs
from returns.result import Success

from eventsourcing_fn import EventStore
from eventsourcing_fn.storage import VersionConflict, postgres_storage

from ..config import Config
from ..domain import Bump, Start, tally_aggregate
from ..harness import Figure, Results, Sample, interleave, plain, values
from ..stores import drop_schema, unique


def hot_worker(
    dsn: str,
    schema: str,
    lock_streams: bool,
    cfg: Config,
    go: Any,
    results: Any,
) -> None:
    """One process: `hot_commands` executes on the stream "hot", counting version conflicts."""
    storage = postgres_storage(dsn, schema=schema, lock_streams=lock_streams)
    conflicts = 0
    append = storage.append

    def counting_append(batches: Any) -> Any:
        nonlocal conflicts
        try:
            return append(batches)
        except VersionConflict:
            conflicts += 1
            raise

    tally = tally_aggregate(cfg.hot_snapshot_every or None)
    store = EventStore(attrs.evolve(storage, append=counting_append), aggregates=[tally])
    ok = failed = 0
    go.wait()
    begin = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on Linux
    for _ in range(cfg.hot_commands):
        result = store.execute(tally, "hot", Bump(), max_retries=cfg.hot_retries)
        if isinstance(result, Success):
            ok += 1
        else:
            failed += 1
    results.put((begin, time.monotonic(), ok, failed, conflicts))
    store.close()


def hot_stream(cfg: Config, lock_streams: bool) -> Sample:
    tally = tally_aggregate(cfg.hot_snapshot_every or None)
    schema = unique("hot")
    setup = postgres_storage(cfg.dsn, schema=schema)  # creates the schema before the race
    EventStore(setup, aggregates=[tally]).execute(tally, "hot", Start("hot", 0)).unwrap()
    setup.close()
    spawn = multiprocessing.get_context("spawn")
    go = spawn.Barrier(cfg.processes)
    results = spawn.Queue()
    args = (cfg.dsn, schema, lock_streams, cfg, go, results)
    workers = [spawn.Process(target=hot_worker, args=args) for _ in range(cfg.processes)]
    try:
        for worker in workers:
            worker.start()
        got = [results.get(timeout=3600) for _ in workers]
        for worker in workers:
            worker.join()
    finally:
        drop_schema(cfg.dsn, schema)
    commands = sum(g[2] for g in got)
    return {
        "seconds": max(g[1] for g in got) - min(g[0] for g in got),
        "commands": commands,
        "failed": sum(g[3] for g in got),
        "conflicts/command": sum(g[4] for g in got) / max(commands, 1),
    }


def bench_hot(cfg: Config) -> Results:
    modes = {f"ours, lock_streams={lock}": lock for lock in (True, False)}
    runs = interleave(
        "hot stream on postgres",
        cfg,
        lambda c: plain({name: partial(hot_stream, c, lock) for name, lock in modes.items()}),
    )
    sizes = {
        "processes": cfg.processes,
        "commands per process": cfg.hot_commands,
        "max_retries": cfg.hot_retries,
        "snapshot_every": cfg.hot_snapshot_every or None,
    }
    out = Results()
    throughput = {}
    for subject in modes:
        got = runs[subject]
        samples = tuple(r["commands"] / r["seconds"] for r in got)
        throughput[subject] = out.add(
            Figure("hot", "postgres", subject, "commands/s", "commands/s", samples, sizes)
        )
        out.add(
            Figure(
                "hot",
                "postgres",
                subject,
                "version conflicts per command",
                "conflicts",
                values(got, "conflicts/command"),
                sizes,
                better="lower",
            )
        )
        out.add(
            Figure(
                "hot",
                "postgres",
                subject,
                "commands failed (retries exhausted)",
                "commands",
                values(got, "failed"),
                sizes,
                better="lower",
            )
        )
    locked, free = throughput.values()
    out.compare("lock_streams=True / lock_streams=False", locked, free)
    return out
