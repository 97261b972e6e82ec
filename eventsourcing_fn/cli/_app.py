"""The `eventsourcing-fn` commands and their options; errors become one line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .._errors import ConfigurationError, EventSourcingError, StorageError, explain
from .._store import EventStore
from . import _inspect, _run
from ._errors import BadInput, one_line
from ._open import Inspection, Options, inspect, open_app
from ._postgres_reader import is_postgres_url

PROG = "eventsourcing-fn"
_DEMO_STORE = "eventsourcing_fn_demo.db"
_FRESH_HELP = (
    "Start over: delete the store first, but only if it is this demo's own database (a SQLite"
    " file the demo marked and that holds nothing but the demo's account); any other file is"
    " left untouched and the demo exits with 2."
)
_command: ContextVar[str | None] = ContextVar("eventsourcing_fn_cli_command", default=None)


class _Group(TyperGroup):
    """Reports every error in one line on stderr, with exit code 2 for the user's mistakes."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        code = _exit_code(
            lambda: super(_Group, self).main(
                args,
                prog_name or PROG,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def _exit_code(run: Callable[[], Any]) -> int:
    token = _command.set(None)
    try:
        result = run()
        return result if isinstance(result, int) else 0
    except (BadInput, ConfigurationError) as exc:
        return _fail(_where(), str(exc), 2)
    except EventSourcingError as exc:  # a fault while running: named, one line, no traceback
        return _fail(_where(), f"{explain(exc)}", 1)
    except typer.Abort:
        return _fail(PROG, "aborted", 1)
    except Exception as exc:
        # Typer's usage errors are click's, which newer typers vendor: known by their shape.
        message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if message is None or not isinstance(code, int):
            raise
        where = getattr(getattr(exc, "ctx", None), "command_path", None) or PROG
        return _fail(where, f"{message()} (see --help)" if code == 2 else message(), code)
    finally:
        _command.reset(token)


def _where() -> str:
    command = _command.get()
    return f"{PROG} {command}" if command else PROG


def _fail(where: str, message: str, code: int) -> int:
    print(f"{where}: error: {one_line(message)}", file=sys.stderr)
    return code


app = typer.Typer(
    name=PROG,
    cls=_Group,
    add_completion=False,
    help="Inspect an eventsourcing_fn store, replay its projections, run workers, or see the"
    " demo. Options may come before or after the command.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_PANEL = "Store options (before or after the command)"
Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="PATH_OR_URL",
        help="A SQLite file or a postgresql:// URL (with --app: instead of the app's own).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
App = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE:ATTR",
        help="An EventStore object: its aggregates, projections and process managers.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON document instead of tables.", rich_help_panel=_PANEL
    ),
]
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        help="The PostgreSQL schema of the store (default: eventsourcing).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]


def _options(
    ctx: typer.Context, store: str | None, app_ref: str | None, as_json: bool, schema: str | None
) -> Options:
    """The options given before the command, overridden by those given after it."""
    _command.set(ctx.info_name)
    before = ctx.obj if isinstance(ctx.obj, Options) else Options()
    return before.merged(Options(store, app_ref, as_json, schema))


@contextmanager
def _inspecting(options: Options) -> Iterator[Inspection]:
    inspection = inspect(options)
    try:
        yield inspection
    finally:
        inspection.close()


@contextmanager
def _running(options: Options, command: str) -> Iterator[EventStore]:
    store, owned = open_app(options, command)
    try:
        yield store
    finally:
        if owned:
            store.close()


@app.callback()
def _before_command(
    ctx: typer.Context,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    ctx.obj = Options(store, app_ref, as_json, schema)


@app.command()
def demo(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option("--fresh", help=_FRESH_HELP)] = False,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Tell the bank-account story on a SQLite file (default: eventsourcing_fn_demo.db).

    A new file, or one an earlier demo run made: the story continues. The demo never writes to
    or deletes a file it did not make.
    """
    from .._demo import NotTheDemosStore

    options = _options(ctx, store, app_ref, as_json, schema)
    if options.app is not None or options.json or options.schema is not None:
        raise BadInput("the demo takes only --store PATH and --fresh")
    path = options.store or _DEMO_STORE
    if is_postgres_url(path):
        raise BadInput("the demo runs on a SQLite file: give --store a file path")
    try:
        _run.demo(Path(path), fresh=fresh)
    except (NotTheDemosStore, StorageError) as exc:
        raise BadInput(str(exc)) from exc


@app.command()
def streams(
    ctx: typer.Context,
    stream_type: Annotated[str | None, typer.Argument(metavar="TYPE", show_default=False)] = None,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """List streams (of one TYPE, or all) with their versions."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _inspecting(options) as inspection:
        _inspect.streams(inspection, stream_type, options.json)


@app.command()
def events(
    ctx: typer.Context,
    stream_type: Annotated[str, typer.Argument(metavar="TYPE", show_default=False)],
    stream_id: Annotated[str, typer.Argument(metavar="ID")],
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Show the events of one stream with their metadata (decoded when --app is given)."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _inspecting(options) as inspection:
        _inspect.events(inspection, stream_type, stream_id, options.json)


@app.command()
def tail(
    ctx: typer.Context,
    start: Annotated[
        int, typer.Option("--from", metavar="POSITION", min=0, help="The first position shown.")
    ] = 0,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Print what is there and stop.")
    ] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.01, help="Seconds between looks.")] = 0.5,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Follow the global log until Ctrl-C (with --json: one JSON object per line)."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _inspecting(options) as inspection:
        _inspect.tail(inspection, start, not no_follow, poll, options.json)


@app.command()
def state(
    ctx: typer.Context,
    stream_type: Annotated[str, typer.Argument(metavar="TYPE", show_default=False)],
    stream_id: Annotated[str, typer.Argument(metavar="ID")],
    at_version: Annotated[
        int | None,
        typer.Option("--at-version", metavar="N", min=0, help="The state after N events."),
    ] = None,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Fold one stream with the app's aggregate (needs --app): its state now, or at a version."""
    options = _options(ctx, store, app_ref, as_json, schema)
    if options.app is None:
        raise BadInput("state needs --app module:attribute: the app's evolve functions fold it")
    with _inspecting(options) as inspection:
        _inspect.state(inspection, stream_type, stream_id, at_version, options.json)


@app.command()
def projections(
    ctx: typer.Context,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Show each projection's and process manager's checkpoint and lag."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _inspecting(options) as inspection:
        _inspect.projections(inspection, options.json)


@app.command()
def replay(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Rebuild one projection or process manager from scratch (needs --app)."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _running(options, "replay") as running:
        _run.replay(running, name, options.json)


@app.command()
def rebuild(
    ctx: typer.Context,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Rebuild every projection and process manager from scratch (needs --app)."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _running(options, "rebuild") as running:
        _run.rebuild(running, options.json)


@app.command()
def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Catch up once, then stop.")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Longest sleep between looks.")] = 0.5,
    lease: Annotated[
        float, typer.Option("--lease", help="Seconds a component's lease lasts.")
    ] = 3.0,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Events per transaction.")] = 500,
    store: Store = None,
    app_ref: App = None,
    as_json: Json = False,
    schema: Schema = None,
) -> None:
    """Run the app's projections and process managers until Ctrl-C or SIGTERM (needs --app)."""
    options = _options(ctx, store, app_ref, as_json, schema)
    with _running(options, "worker") as running:
        _run.worker(running, once=once, poll=poll, lease=lease, batch=batch, as_json=options.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: the process's arguments); the exit code."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    code: int = command.main(args, PROG, standalone_mode=False)
    return code
