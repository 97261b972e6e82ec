"""Command line: `python -m eventsourcing_fn demo` (and the `eventsourcing-fn` script)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; 0 on success, 2 on a bad argument (argparse's own exit code)."""
    parser = argparse.ArgumentParser(prog="eventsourcing-fn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="tell the bank-account story on a SQLite file")
    demo.add_argument("--store", type=Path, default=Path("eventsourcing_fn_demo.db"))
    demo.add_argument("--fresh", action="store_true", help="delete the file first")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.store, fresh=args.fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
