"""Timing: warm-up, interleaved repeats, figures (min / median / max) and ratios.

Every workload hands `interleave` its sides (ours, theirs, the raw driver ...), each a callable
that runs the workload once and returns its measurements. `interleave` runs each side once at the
warm-up sizes (untimed, the result dropped), then, per repeat, every side once in turn, so the
sides of one repeat run under the same load of the machine. A `Figure` is one measurement of one
side over the repeats; a `Ratio` divides the medians of two figures of the same run and keeps the
ratio within each repeat beside it.

Standard library only, as `report` reads what this writes.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from .config import Config

Sample = Mapping[str, float]  # one run of one side: its measurements by name
Sides = Mapping[str, Callable[[], Sample]]  # the sides of a workload, each run with no argument


def note(message: str) -> None:
    """Progress, on stderr: stdout carries the report."""
    print(message, file=sys.stderr, flush=True)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds `work` took on the wall clock (after a garbage collection), and its result."""
    gc.collect()
    begin = time.perf_counter()
    result = work()
    return time.perf_counter() - begin, result


def percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted values: the smallest value with at least `share`
    of all values at or below it."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@contextmanager
def plain(sides: Sides) -> Iterator[Sides]:
    """Sides that need nothing set up around their runs."""
    yield sides


def interleave(
    label: str,
    cfg: Config,
    sides_for: Callable[[Config], AbstractContextManager[Sides]],
) -> dict[str, list[Sample]]:
    """Each side's samples, `cfg.repeats` of them, after one warm-up run per side.

    `sides_for(sizes)` yields the sides for those sizes (the warm-up sizes, then the run's), and
    may set up what they share (a prepared log, say) and tear it down afterwards.
    """
    warm = cfg.warmup()
    if warm is not None:
        with sides_for(warm) as sides:
            for name, side in sides.items():
                seconds, _ = timed(side)
                note(f"  {label}: warm-up {name} ({seconds:.2f}s)")
    runs: dict[str, list[Sample]] = {}
    with sides_for(cfg) as sides:
        for i in range(cfg.repeats):
            for name, side in sides.items():
                sample = side()
                runs.setdefault(name, []).append(sample)
                shown = ", ".join(f"{k} {v:,.4g}" for k, v in sample.items())
                note(f"  {label} run {i + 1}/{cfg.repeats}: {name}: {shown}")
    return runs


@dataclass(frozen=True)
class Figure:
    """One measurement of one side over the repeats of a run."""

    workload: str  # "write", "load+fold", "concurrent", "hot", "catch-up", "inline", "latency"
    backend: str  # "memory", "sqlite", "postgres"
    subject: str  # who was measured: "ours", "eventsourcing", "raw sqlite3", ...
    metric: str  # what: "events/s", "p99", ...
    unit: str  # "events/s", "ms", ...
    samples: tuple[float, ...]  # one per repeat, in repeat order
    sizes: Mapping[str, Any]  # the sizes this workload ran at
    case: str = ""  # a variant of the workload: "fold", "10 threads", "3 projections", ...
    better: str = "higher"  # "higher", "lower", or "" (a count to read, not to rank)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    def key(self) -> tuple[str, str, str, str, str]:
        return (self.workload, self.backend, self.case, self.subject, self.metric)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "backend": self.backend,
            "case": self.case,
            "subject": self.subject,
            "metric": self.metric,
            "unit": self.unit,
            "better": self.better,
            "min": min(self.samples, default=math.nan),
            "median": self.median,
            "max": max(self.samples, default=math.nan),
            "repeats": len(self.samples),
            "samples": list(self.samples),
            "sizes": dict(self.sizes),
            "note": self.note,
        }


@dataclass(frozen=True)
class Ratio:
    """`of` against `to`, two figures of the same run: the ratio of their medians, and the
    ratio within each repeat (both sides of repeat i ran back to back)."""

    name: str  # "ours / eventsourcing", ...
    of: Figure
    to: Figure
    form: str = "x"  # shown as "2.05x" ("x"), "41%" ("%") or "cost 42%" ("cost": 1 - ratio)
    per_repeat: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        pairs = zip(self.of.samples, self.to.samples, strict=False)
        object.__setattr__(self, "per_repeat", tuple(a / b for a, b in pairs if b))

    @property
    def value(self) -> float:
        return self.of.median / self.to.median if self.to.median else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.of.workload,
            "backend": self.of.backend,
            "case": self.of.case if self.of.case == self.to.case else "",
            "name": self.name,
            "form": self.form,
            "value": self.value,
            "per_repeat": list(self.per_repeat),
            "of": dict(zip(("case", "subject", "metric"), self.of.key()[2:], strict=True)),
            "to": dict(zip(("case", "subject", "metric"), self.to.key()[2:], strict=True)),
        }


@dataclass
class Results:
    """What a workload measured: its figures and the ratios between them."""

    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def compare(self, name: str, of: Figure, to: Figure, form: str = "x") -> Ratio:
        result = Ratio(name, of, to, form)
        self.ratios.append(result)
        return result

    def extend(self, other: Results) -> None:
        self.figures += other.figures
        self.ratios += other.ratios


def rates(count: float, runs: Sequence[Sample], metric: str) -> tuple[float, ...]:
    """`count` per second of each run's `metric` (seconds)."""
    return tuple(count / run[metric] for run in runs)


def values(runs: Sequence[Sample], metric: str) -> tuple[float, ...]:
    return tuple(run[metric] for run in runs)
