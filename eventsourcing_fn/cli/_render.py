"""Output: rich tables and lines for people, one JSON document for programs, progress bars."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.padding import Padding
from rich.pretty import Pretty
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..storage import StoredEvent
from ._readonly import StreamInfo

Tick = Callable[[int, "int | None"], None]


_PIPE_WIDTH = 160  # rich's 80 columns off a terminal would cut every table short


def console() -> Console:
    """The console on standard output, made when needed (so a captured stdout is the one used)."""
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = _PIPE_WIDTH
    return out


def say(text: str) -> None:
    """A plain line for people: names in it are never read as rich markup."""
    console().print(text, markup=False, soft_wrap=True)


def errors() -> Console:
    """The console on standard error: progress bars, so standard output stays the result."""
    return Console(stderr=True, highlight=False)


def print_json(document: object) -> None:
    """One JSON document on standard output."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(document: object) -> None:
    """One JSON document on one line (a followed log emits one per event)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _short(value: str | None) -> str:
    """A UUID cut to its first 8 characters (enough to tell events apart on a screen)."""
    if value is None:
        return ""
    return value[:8] if len(value) == 36 and value.count("-") == 4 else value


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def event_json(row: StoredEvent) -> dict[str, Any]:
    """An event in its stored form, payload and metadata parsed."""
    return {
        "position": row.position,
        "stream_type": row.stream_type,
        "stream_id": row.stream_id,
        "version": row.version,
        "type": row.type,
        "schema_version": row.schema_version,
        "data": json.loads(row.data),
        "event_id": str(row.event_id),
        "recorded_at": row.recorded_at.isoformat(),
        "actor_id": row.actor_id,
        "correlation_id": row.correlation_id,
        "causation_id": row.causation_id,
        "metadata": json.loads(row.metadata),
    }


def _payload(row: StoredEvent, event: object | None) -> str:
    """The decoded event's repr, or the stored JSON when the app cannot read it (or no app)."""
    return repr(event) if event is not None else f"{row.type} {row.data}"


def streams_table(streams: Sequence[StreamInfo]) -> Table:
    """Streams with their versions and when they last changed."""
    table = Table("type", "stream id", "version", "updated (UTC)", title_justify="left")
    for s in streams:
        table.add_row(Text(s.stream_type), Text(s.stream_id), str(s.version), _when(s.updated))
    return table


def events_table(rows: Sequence[tuple[StoredEvent, object | None]]) -> Table:
    """Events with their envelope: position, version, who, why, metadata."""
    table = Table(
        "#", "v", "event", "recorded (UTC)", "actor", "correlation", "caused by", "metadata"
    )
    for row, event in rows:
        table.add_row(
            str(row.position),
            str(row.version),
            Text(_payload(row, event)),
            _when(row.recorded_at),
            Text(row.actor_id or ""),
            Text(_short(row.correlation_id)),
            Text(_short(row.causation_id)),
            Text("" if row.metadata == "{}" else row.metadata),
        )
    return table


def event_line(row: StoredEvent, event: object | None) -> Text:
    """One line of a followed log."""
    line = Text()
    line.append(f"#{row.position} ", style="dim")
    line.append(f"{row.stream_type}/{row.stream_id}", style="cyan")
    line.append(f" v{row.version}  ")
    line.append(_payload(row, event), style="bold")
    if row.actor_id:
        line.append(f"  by {row.actor_id}", style="dim")
    return line


def state_view(stream_type: str, stream_id: str, version: int, state: object) -> Group:
    """An aggregate's state at a version."""
    heading = Text()
    heading.append(f"{stream_type}/{stream_id}", style="cyan")
    heading.append(f" at version {version}:")
    return Group(heading, Padding(Pretty(state), (0, 0, 0, 2)))


def standings_table(standings: Sequence[dict[str, Any]]) -> Table:
    """Components with their checkpoint and lag."""
    table = Table("name", "kind", "position", "lag (events)", "behind", "status")
    for s in standings:
        behind = s["lag_seconds"]
        table.add_row(
            Text(s["name"]),
            s["kind"] or "",
            str(s["position"]),
            str(s["lag"]),
            "" if behind is None else f"{behind:.1f} s",
            _status_text(s["status"]),
        )
    return table


def _status_text(status: str) -> Text:
    style = {"level": "green", "behind": "yellow", "replaying": "magenta"}.get(status, "dim")
    return Text(status, style=style)


def new_progress() -> Progress:
    """A progress display on standard error, shown only on a terminal."""
    err = errors()
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )


@contextmanager
def progress_bar(label: str, expected: int | None) -> Iterator[Tick]:
    """A bar fed by a store's `progress(done, total)`; `expected` stands in for an unknown total."""
    with new_progress() as progress:
        task = progress.add_task(label, total=expected)

        def tick(done: int, total: int | None) -> None:
            if total is None and expected is not None and done > expected:
                total = done  # more than counted: events appended meanwhile
            progress.update(task, completed=done, total=total or expected)

        yield tick
