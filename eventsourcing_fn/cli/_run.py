"""The commands that apply events: replay, rebuild, worker; and the demo."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from rich.logging import RichHandler

from .._reactions import Component
from .._store import EventStore
from .._worker import ComponentStatus, Worker
from . import _render as out
from ._errors import BadInput


def replay(store: EventStore, name: str, as_json: bool) -> None:
    """Rebuild one component from scratch, with a progress bar."""
    component = _component(store, name)
    expected = store.storage.count_after(0)
    started = time.monotonic()
    with out.progress_bar(f"replaying {name}", expected) as tick:
        done = store.replay(component, progress=tick)
    _report_run(f"replayed {name!r}", [name], done, time.monotonic() - started, as_json)


def rebuild(store: EventStore, as_json: bool) -> None:
    """Replay every checkpointed component from scratch, with one progress bar for them all."""
    names = [c.name for c in store._components]
    # One sequence covers every component: each of them reads the whole log.
    expected = store.storage.count_after(0) * len(names)
    started = time.monotonic()
    with out.progress_bar("rebuilding " + ", ".join(names), expected) as tick:
        done = store.rebuild(progress=tick)
    _report_run(
        "rebuilt " + (", ".join(names) or "nothing"),
        names,
        done,
        time.monotonic() - started,
        as_json,
    )


def _report_run(what: str, names: list[str], done: int, seconds: float, as_json: bool) -> None:
    if as_json:
        out.print_json({"components": names, "events": done, "seconds": round(seconds, 3)})
    else:
        out.say(f"{what}: {done} events in {seconds:.2f} s")


def _component(store: EventStore, name: str) -> Component:
    for component in store._components:
        if component.name == name:
            return component
    listed = ", ".join(c.name for c in store._components) or "none"
    raise BadInput(f"no projection or process manager named {name!r} in the app ({listed})")


def worker(
    store: EventStore, *, once: bool, poll: float, lease: float, batch: int, as_json: bool
) -> None:
    """Run the app's components: catch up once, or until Ctrl-C or SIGTERM."""
    try:
        runner = Worker(store, poll=poll, lease=lease, batch=batch)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    if not runner.components:
        raise BadInput("the app has no projections or process managers for a worker to run")
    _log_to_stderr()
    started = time.monotonic()
    applied: int | None = None  # a run until stopped is not counted: others may share it
    if once:
        try:
            applied = runner.run_once()
        finally:
            # run() gives its leases up when it ends; run_once() keeps them, and a second
            # `--once` within a lease's length would then find every component taken.
            runner.close()
    else:
        _run_with_progress(runner)
    statuses = runner.status()
    seconds = time.monotonic() - started
    if as_json:
        out.print_json(
            {
                "applied": applied,
                "seconds": round(seconds, 3),
                "components": [_status_json(s) for s in statuses],
            }
        )
    else:
        lags = ", ".join(f"{s.name} at {s.position} (lag {s.lag_events})" for s in statuses)
        out.say(f"worker stopped after {seconds:.1f} s: {lags}")


def _run_with_progress(runner: Worker) -> None:
    """`runner.run()` in this thread (it takes the signals), bars fed from `status()` meanwhile."""
    done = threading.Event()
    storage = runner.store.storage

    def watch() -> None:
        with out.new_progress() as progress:
            tasks = {c.name: progress.add_task(c.name, total=None) for c in runner.components}
            while not done.wait(0.25):
                total = storage.count_after(0)
                for status in runner.status():
                    progress.update(
                        tasks[status.name], total=total, completed=total - status.lag_events
                    )

    watcher = threading.Thread(target=watch, name="eventsourcing-fn progress", daemon=True)
    watcher.start()
    try:
        runner.run()
    finally:
        done.set()
        watcher.join()


def _status_json(s: ComponentStatus) -> dict[str, object]:
    return {
        "name": s.name,
        "position": s.position,
        "lag": s.lag_events,
        "lag_seconds": s.lag_seconds,
        "replaying": s.replaying,
        "last_error": s.last_error,
    }


def _log_to_stderr() -> None:
    """The worker's log (components taken over, faults and retries) on standard error."""
    log = logging.getLogger("eventsourcing_fn")
    if not log.handlers:
        log.addHandler(RichHandler(console=out.errors(), show_path=False))
        log.setLevel(logging.INFO)


def demo(path: Path, *, fresh: bool) -> None:
    """Tell the bank-account story, headings bold, progress bar on a terminal."""
    from .._demo import run_demo

    console = out.console()

    def say(line: str) -> None:
        heading = bool(line) and not line.startswith(" ")
        console.print(
            line,
            style="bold" if heading else None,
            markup=False,
            highlight=not heading,
            soft_wrap=True,  # the terminal wraps a long line; rich would cut it at 80 in a pipe
        )

    run_demo(path, fresh=fresh, say=say, bar=out.progress_bar)
