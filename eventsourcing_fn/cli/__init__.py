"""The `eventsourcing-fn` command line: inspect a store, replay, run workers, see the demo.

Inspection (`streams`, `events`, `tail`, `state`, `projections`) opens the store read-only and
changes nothing in it; `replay`, `rebuild` and `worker` run an app's definitions (`--app
module:attr`) against its own store or the one `--store` names.
"""

from ._app import app, main

__all__ = ["app", "main"]
