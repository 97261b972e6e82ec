"""The goals the report holds each run against: a ratio of two figures of the same run, and the
bound it should reach. Standard library only.

A target names a ratio by its workload, backend, case and name, as the workloads compute them;
`evaluate` finds it among a run's ratios and tells whether it is met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    workload: str
    backend: str
    ratio: str  # the name of the ratio, as its workload computes it
    op: str  # ">=" or "<="
    bound: float  # in the ratio's own terms: 0.6 for "at least 60%"
    label: str
    case: str = ""
    form: str = "x"  # how the ratio reads: "x" (2.05x), "%" (41%), "cost" (1 - ratio, 42%)

    def met(self, value: float) -> bool | None:
        if math.isnan(value):
            return None
        return value >= self.bound if self.op == ">=" else value <= self.bound


BACKEND_NAMES = {"memory": "memory", "sqlite": "SQLite", "postgres": "PostgreSQL"}

TARGETS = (
    Target("write", "memory", "ours / eventsourcing", ">=", 3.0, "memory write vs eventsourcing"),
    Target(
        "write",
        "sqlite",
        "ours / raw sqlite3",
        ">=",
        0.60,
        "SQLite write vs raw sqlite3 (same rows, one transaction per stream)",
        form="%",
    ),
    Target(
        "write",
        "sqlite",
        "ours / eventsourcing at synchronous=NORMAL",
        ">=",
        2.5,
        "SQLite write vs eventsourcing, both at synchronous=NORMAL",
    ),
    Target(
        "load+fold",
        "sqlite",
        "ours / raw sqlite3, read + decode",
        ">=",
        0.70,
        "SQLite load+fold vs raw sqlite3 read + decode",
        form="%",
    ),
    Target(
        "write",
        "postgres",
        "ours / raw psycopg",
        ">=",
        0.75,
        "PostgreSQL write vs raw psycopg",
        form="%",
    ),
    Target(
        "load+fold",
        "postgres",
        "ours / raw psycopg, read",
        ">=",
        0.75,
        "PostgreSQL load+fold vs raw psycopg (read)",
        form="%",
    ),
    Target(
        "concurrent",
        "postgres",
        "ours / eventsourcing",
        ">=",
        3.0,
        "concurrent PostgreSQL writers vs eventsourcing",
    ),
    *(
        Target(
            "catch-up",
            backend,
            "ours / hand-written",
            ">=",
            0.50,
            f"catch-up of {what} on {BACKEND_NAMES[backend]} vs the hand-written driver path",
            case=kind,
            form="%",
        )
        for backend in ("sqlite", "postgres")
        for kind, what in (("fold", "a fold"), ("documents", "documents"))
    ),
    *(
        Target(
            "inline",
            backend,
            "3 projections / none",
            ">=",
            0.70,
            f"inline on {BACKEND_NAMES[backend]}: what 3 projections cost in throughput",
            form="cost",
        )
        for backend in ("memory", "sqlite", "postgres")
    ),
    Target(
        "latency",
        "sqlite",
        "ours: p99, 10 threads / 1 thread",
        "<=",
        3.0,
        "SQLite append p99 with 10 threads vs with 1 thread",
    ),
)


def find(ratios: list[dict[str, Any]], target: Target) -> dict[str, Any] | None:
    for ratio in ratios:
        if (ratio["workload"], ratio["backend"], ratio.get("case", ""), ratio["name"]) == (
            target.workload,
            target.backend,
            target.case,
            target.ratio,
        ):
            return ratio
    return None


def evaluate(ratios: list[dict[str, Any]]) -> list[tuple[Target, dict[str, Any] | None]]:
    """Every target beside the ratio of this run it is about (None: not measured)."""
    return [(target, find(ratios, target)) for target in TARGETS]
