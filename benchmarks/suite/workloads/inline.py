"""Inline components on execute: throughput with 0, 1 and 3 projections and a process manager.

Every repeat builds a fresh store per setup, with aggregates `tally` and `order`; the streams are
opened first, outside the timing, with `Start`, so each stream's document exists. Then C commands
run round robin over the streams, each one `execute`, one transaction, one event. Short streams
and no snapshots: a command loads at most C / streams + 1 events. The setups:

- none: `Bump` on a tally stream (one `Incremented`);
- 1 projection: the same with `totals` (a fold);
- 3 projections: `totals`, `balances` (a document per stream) and `counter` (an `object`
  handler that counts every event);
- process manager: `Place` on an order stream; a stateless manager reacts to `Placed` with
  `Send(tally, record.stream_id, Bump())`, so the transaction appends to two streams;
- 2 commands by hand: the same `Place` and `Bump` in one `store.transaction()`, no component:
  the reference for the process manager's own cost.

Ours only: `eventsourcing` 9.5 runs projections outside the command's transaction.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from eventsourcing_fn import DocumentProjection, EventStore, Projection

from ..config import Config
from ..domain import (
    Bump,
    Place,
    Start,
    Tally,
    balances_projection,
    counter_projection,
    fulfilment,
    order_aggregate,
    tally_aggregate,
    totals_projection,
)
from ..harness import Figure, Results, Sample, interleave, plain, rates, timed
from ..stores import our_store

# What runs inline with each command; the last two execute Place on an order stream, the others
# Bump on a tally stream.
INLINE_SETUPS = ("none", "1 projection", "3 projections", "process manager", "2 commands by hand")
WHAT = {
    "none": "Bump on a tally stream, no component",
    "1 projection": "+ totals (fold)",
    "3 projections": "+ totals (fold), balances (documents), counter (object handler)",
    "process manager": "Place on an order stream; the manager sends Bump to tally/<same id>",
    "2 commands by hand": "Place + Bump in one store.transaction(), no component",
}


def ours_inline(backend: str, cfg: Config, setup: str) -> Sample:
    tally, order = tally_aggregate(), order_aggregate()
    projections: list[Projection[Any] | DocumentProjection[Any]] = []
    if setup in ("1 projection", "3 projections"):
        projections.append(totals_projection())
    if setup == "3 projections":
        projections += [balances_projection(), counter_projection()]
    managers = [fulfilment(tally)] if setup == "process manager" else []
    ids = [f"s{i}" for i in range(cfg.inline_streams)]
    with our_store(
        backend, cfg, tally, others=[order], projections=projections, process_managers=managers
    ) as store:
        for sid in ids:  # untimed: every tally stream opened, and its document with it
            store.execute(tally, sid, Start("bench", 0)).unwrap()
        seconds, _ = timed(lambda: inline_commands(store, setup, tally, order, ids, cfg))
        check_inline(store, tally, ids, projections, cfg)
    return {"seconds": seconds}


def inline_commands(
    store: EventStore,
    setup: str,
    tally: Any,
    order: Any,
    ids: list[str],
    cfg: Config,
) -> None:
    """Round robin over the streams, so streams stay short: no snapshots, and a command loads
    at most inline_commands / inline_streams + 1 events."""
    for i in range(cfg.inline_commands):
        sid = ids[i % len(ids)]
        if setup == "process manager":
            store.execute(order, sid, Place(1)).unwrap()  # the manager adds Bump on tally/sid
        elif setup == "2 commands by hand":
            with store.transaction():
                store.execute(order, sid, Place(1)).unwrap()
                store.execute(tally, sid, Bump()).unwrap()
        else:
            store.execute(tally, sid, Bump()).unwrap()


def check_inline(
    store: EventStore,
    tally: Any,
    ids: list[str],
    projections: list[Projection[Any] | DocumentProjection[Any]],
    cfg: Config,
) -> None:
    """Outside the timing: every command counted in the streams and in every projection."""
    states: list[Tally] = [store.load(tally, sid).state for sid in ids]
    bumps = sum(state.count for state in states)
    assert bumps == cfg.inline_commands, bumps
    for projection in projections:
        if isinstance(projection, DocumentProjection):
            assert len(store.documents(projection)) == len(ids)
        else:
            every = len(ids) if projection.name == "counter" else 0  # + the Started events
            assert store.view(projection) == cfg.inline_commands + every, projection


def bench_inline(cfg: Config, backend: str) -> Results:
    """Every setup on a fresh store, interleaved per repeat."""
    runs = interleave(
        f"inline components on {backend}",
        cfg,
        lambda c: plain(
            {setup: partial(ours_inline, backend, c, setup) for setup in INLINE_SETUPS}
        ),
    )
    sizes = {"commands": cfg.inline_commands, "streams": cfg.inline_streams}
    out = Results()
    figures = {
        setup: out.add(
            Figure(
                "inline",
                backend,
                "ours",
                "commands/s",
                "commands/s",
                rates(cfg.inline_commands, runs[setup], "seconds"),
                sizes,
                case=setup,
                note=WHAT[setup],
            )
        )
        for setup in INLINE_SETUPS
    }
    for setup in ("1 projection", "3 projections", "2 commands by hand"):
        out.compare(f"{setup} / none", figures[setup], figures["none"], "cost")
    out.compare(
        "process manager / 2 commands by hand",
        figures["process manager"],
        figures["2 commands by hand"],
        "%",
    )
    return out
