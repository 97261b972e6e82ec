"""`python -m eventsourcing_fn` and the `eventsourcing-fn` script: the command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: the process's arguments); the exit code."""
    from .cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
