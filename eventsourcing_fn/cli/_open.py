"""What `--store`, `--app` and `--schema` name: an app's definitions, a store to read or run."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import attrs

from .._errors import EventSourcingError, StorageError
from .._process import ProcessManager
from .._reactions import Component
from .._store import EventStore
from ..storage import Storage, postgres_storage, sqlite_storage
from ._errors import BadInput, one_line
from ._postgres_reader import is_postgres_url, postgres_reader, postgres_where
from ._readonly import Reader, app_reader
from ._sqlite_reader import sqlite_reader

DEFAULT_SCHEMA = "eventsourcing"


@attrs.frozen
class Options:
    """The options every command takes, before or after its name."""

    store: str | None = None
    app: str | None = None
    json: bool = False
    schema: str | None = None

    def merged(self, later: Options) -> Options:
        """These options overridden by those given `later` (after the command's name)."""
        return Options(
            store=later.store if later.store is not None else self.store,
            app=later.app if later.app is not None else self.app,
            json=self.json or later.json,
            schema=later.schema if later.schema is not None else self.schema,
        )


@attrs.frozen
class Inspection:
    """A store opened read-only, and the app's aggregates over it (None without `--app`)."""

    reader: Reader
    store: EventStore | None
    components: list[Component] | None  # the app's; None: the store's checkpoints name them

    def close(self) -> None:
        """Release the reader's connections."""
        self.reader.close()


def load_app(reference: str) -> EventStore:
    """The `EventStore` that `module:attribute` names, importing the module."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise BadInput(f"--app {reference!r}: expected module:attribute, e.g. myapp.store:store")
    # As `python -m` does, so a module beside the user resolves with the installed script too.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise BadInput(f"--app {reference!r}: no module named {exc.name!r}") from exc
        raise BadInput(f"--app {reference!r}: importing it failed: {one_line(exc)}") from exc
    except Exception as exc:  # the user's module failed at import: say how, in one line
        why = f"{type(exc).__name__}: {one_line(exc)}"
        raise BadInput(f"--app {reference!r}: importing it failed: {why}") from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise BadInput(
                f"--app {reference!r}: {module_name} has no attribute {attribute!r}"
            ) from None
    if not isinstance(found, EventStore):
        kind = type(found).__name__
        raise BadInput(f"--app {reference!r}: is a {kind}, not an EventStore")
    return found


def rebind(
    app: EventStore, storage: Storage, *, components: bool = True, inline: bool = False
) -> EventStore:
    """A store over `storage` with `app`'s definitions (only its aggregates, if not
    `components`). Not inline by default, so building it applies nothing by itself."""
    registered = app._components if components else []
    default_converter = app.codec._default
    return EventStore(
        storage,
        aggregates=list(app._aggregates.values()),
        projections=[c for c in registered if not isinstance(c, ProcessManager)],
        process_managers=[c for c in registered if isinstance(c, ProcessManager)],
        listeners=app._listeners if components else (),
        inline=inline,
        converter=None if default_converter else app.codec.converter,
    )


def inspect(options: Options) -> Inspection:
    """Open the store read-only; with `--app`, its aggregates can decode and fold events."""
    app = load_app(options.app) if options.app is not None else None
    if options.store is not None:
        reader = _open_reader(options.store, options.schema)
    elif app is not None:
        reader = app_reader(app.storage, f"the {app.storage.name} storage of --app {options.app}")
    else:
        raise BadInput("no store: give --store PATH_OR_URL, or --app module:attribute")
    if app is None:
        return Inspection(reader, None, None)
    try:
        store = rebind(app, reader.storage, components=False)
    except BaseException:
        reader.close()
        raise
    return Inspection(reader, store, list(app._components))


def _open_reader(store: str, schema: str | None) -> Reader:
    if is_postgres_url(store):
        return postgres_reader(store, schema or DEFAULT_SCHEMA)
    if schema is not None:
        raise BadInput(f"--schema is for a PostgreSQL store, and {store!r} is a file")
    return sqlite_reader(store)


def open_app(options: Options, command: str) -> tuple[EventStore, bool]:
    """The app's store, or its definitions over `--store`, for commands that apply events;
    and whether the store is one opened here (for the caller to close)."""
    if options.app is None:
        raise BadInput(f"{command} needs --app module:attribute: the app's projections run it")
    app = load_app(options.app)
    if options.store is None:
        return app, False
    # Checked read-only first: a store path that is missing, or some other program's database,
    # is refused before anything could create or change it.
    _open_reader(options.store, options.schema).close()
    try:
        if is_postgres_url(options.store):
            schema = options.schema or DEFAULT_SCHEMA
            storage = postgres_storage(options.store, schema=schema)
        else:
            storage = sqlite_storage(options.store)
    except (StorageError, ValueError, ImportError) as exc:
        where = (
            postgres_where(options.store, options.schema or DEFAULT_SCHEMA)
            if is_postgres_url(options.store)
            else repr(options.store)
        )
        raise BadInput(f"{where}: {one_line(exc)}") from exc
    try:
        return rebind(app, storage), True
    except EventSourcingError:
        storage.close()
        raise
