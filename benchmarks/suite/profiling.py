"""`--profile`: our side of a workload once more under cProfile, timed by CPU.

Time spent waiting on a database shows as the gap between wall and CPU; the shares printed are
of the CPU this process spent. Printed to stdout after the report.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from functools import partial
from pathlib import Path

from eventsourcing_fn import EventStore

from .config import Config
from .domain import (
    Start,
    balances_projection,
    counter_projection,
    order_aggregate,
    tally_aggregate,
    totals_projection,
)
from .harness import timed
from .stores import our_storage, our_store, unique
from .workloads.catchup import CATCHUP_KINDS, prepare_ours
from .workloads.inline import inline_commands
from .workloads.write_load import ours_load, ours_write


def print_profile(title: str, profile: cProfile.Profile, wall: float, top: int = 15) -> None:
    """Top functions by own CPU time, then ours by cumulative CPU time; shares of the total."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]

    def where(func: tuple[str, int, str]) -> str:
        path, line, name = func
        path = path.split("site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        return f"{path}:{line}({name})" if line else name

    print(f"\n### {title}: {wall:.2f}s wall, {total:.2f}s CPU in this process (profiled)")
    print("own CPU time (tottime):")
    for func, (_, calls, tt, ct, _) in sorted(entries.items(), key=lambda e: -e[1][2])[:top]:
        print(f"  {tt / total:6.1%} own {ct / total:6.1%} cum {calls:>9,} calls  {where(func)}")
    print("eventsourcing_fn functions by cumulative CPU time:")
    ours = [e for e in entries.items() if "eventsourcing_fn" in e[0][0]]
    for func, (_, calls, tt, ct, _) in sorted(ours, key=lambda e: -e[1][3])[:top]:
        print(f"  {ct / total:6.1%} cum {tt / total:6.1%} own {calls:>9,} calls  {where(func)}")


def profile_write_load(cfg: Config, backend: str) -> None:
    """Our write and load once more under cProfile."""
    tally = tally_aggregate()
    with our_store(backend, cfg, tally) as store:
        profile = cProfile.Profile(time.process_time)
        wall, ids = timed(lambda: profile.runcall(ours_write, store, tally, cfg))
        print_profile(f"ours, write on {backend}", profile, wall)
        profile = cProfile.Profile(time.process_time)
        wall, _ = timed(lambda: profile.runcall(ours_load, store, tally, ids, cfg))
        print_profile(f"ours, load+fold on {backend}", profile, wall)


def profile_catchup(cfg: Config, backend: str) -> None:
    """Our catch-up of each kind once more under cProfile, on a log of the configured size."""
    with our_storage(backend, cfg) as storage:
        prepare_ours(storage, cfg)
        for kind in CATCHUP_KINDS:
            tally = tally_aggregate()
            name = unique(kind)
            projection = totals_projection(name) if kind == "fold" else balances_projection(name)
            profile = cProfile.Profile(time.process_time)
            build = partial(EventStore, storage, aggregates=[tally], projections=[projection])
            wall, _ = timed(partial(profile.runcall, build))
            print_profile(f"ours, catch-up of {kind} on {backend}", profile, wall)


def profile_inline(cfg: Config, backend: str) -> None:
    """Our execute with the 3 inline projections once more under cProfile."""
    tally, order = tally_aggregate(), order_aggregate()
    projections = [totals_projection(), balances_projection(), counter_projection()]
    ids = [f"s{i}" for i in range(cfg.inline_streams)]
    with our_store(backend, cfg, tally, others=[order], projections=projections) as store:
        for sid in ids:
            store.execute(tally, sid, Start("bench", 0)).unwrap()
        profile = cProfile.Profile(time.process_time)
        run = inline_commands
        wall, _ = timed(
            lambda: profile.runcall(run, store, "3 projections", tally, order, ids, cfg)
        )
        print_profile(f"ours, execute with 3 inline projections on {backend}", profile, wall)


def profile_all(cfg: Config, backends: list[str]) -> None:
    for backend in backends:
        if {"write", "load"} & set(cfg.workloads):
            profile_write_load(cfg, backend)
        if "catchup" in cfg.workloads and backend != "memory":
            profile_catchup(cfg, backend)
        if "inline" in cfg.workloads:
            profile_inline(cfg, backend)
