"""The sizes of one run, and the smaller sizes of its warm-up runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("memory", "sqlite", "postgres")
WORKLOADS = ("write", "load", "concurrent", "hot", "catchup", "inline", "latency")


@dataclass(frozen=True)
class Config:
    streams: int = 10_000
    events: int = 10
    repeats: int = 3
    writers: int = 8
    writer_commands: int = 250
    processes: int = 4
    hot_commands: int = 200
    hot_retries: int = 100
    hot_snapshot_every: int = 50
    catchup_events: int = 100_000
    catchup_streams: int = 1_000
    catchup_theirs: int = 10_000
    inline_commands: int = 5_000
    inline_streams: int = 300
    latency_threads: tuple[int, ...] = (1, 10)
    latency_seconds: float = 3.0
    warmup_scale: float = 0.1
    backends: tuple[str, ...] = BACKENDS
    workloads: tuple[str, ...] = WORKLOADS
    dsn: str = DEFAULT_DSN
    workdir: Path = Path()
    profile: bool = False

    def warmup(self) -> Config | None:
        """The sizes of a warm-up run: every size scaled by `warmup_scale`, with floors that keep
        each workload's shape (events per stream, writers, threads and processes unchanged).
        None when warm-up runs are switched off."""
        scale = self.warmup_scale
        if scale <= 0:
            return None
        if scale >= 1:
            return self

        def part(value: int, floor: int) -> int:
            return max(floor, min(value, round(value * scale)))

        streams = part(self.catchup_streams, 10)
        per_stream = max(1, self.catchup_events // self.catchup_streams)
        return dataclasses.replace(
            self,
            streams=part(self.streams, 20),
            writer_commands=part(self.writer_commands, 5),
            hot_commands=part(self.hot_commands, 5),
            catchup_streams=streams,
            catchup_events=streams * per_stream,
            catchup_theirs=part(self.catchup_theirs, 100),
            inline_commands=part(self.inline_commands, 50),
            inline_streams=part(self.inline_streams, 10),
            latency_seconds=max(0.2, self.latency_seconds * scale),
        )

    def sizes(self) -> dict[str, Any]:
        """The sizes, as recorded in the JSON (no paths, no connection string)."""
        skip = {"workdir", "dsn", "backends", "workloads", "profile"}
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip
        }
