"""Command line: `python -m eventsourcing_fn demo` (and the `eventsourcing-fn` script)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

_FRESH_HELP = (
    "start over: delete the store first, but only if it is this demo's own database (a SQLite"
    " file the demo marked and that holds nothing but the demo's account); any other file is"
    " left untouched and the demo exits with 2"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; 0 on success, 2 on a bad store or argument (argparse's own exit code)."""
    parser = argparse.ArgumentParser(prog="eventsourcing-fn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="tell the bank-account story on a SQLite file",
        description="Tell the bank-account story on a SQLite file: a new one, or one an earlier"
        " demo run made (it continues the story). The demo never writes to or deletes a file"
        " it did not make.",
    )
    demo.add_argument(
        "--store",
        type=Path,
        default=Path("eventsourcing_fn_demo.db"),
        help="the demo's database file (default: %(default)s)",
    )
    demo.add_argument("--fresh", action="store_true", help=_FRESH_HELP)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import NotTheDemosStore, run_demo
        from ._errors import StorageError

        try:
            run_demo(args.store, fresh=args.fresh)
        except (NotTheDemosStore, StorageError) as exc:
            # A bad store is the user's to fix, not a bug: one line, no traceback.
            print(f"{parser.prog} demo: error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
