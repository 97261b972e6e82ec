"""Runnable example applications of eventsourcing_fn: `python -m examples.<name> [STORE]`."""
