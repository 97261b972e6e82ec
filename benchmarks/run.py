#!/usr/bin/env python3
"""eventsourcing_fn measured against the `eventsourcing` package (9.5) and the raw drivers.

    benchmarks/setup.sh                  # once: benchmarks/.venv-bench with both libraries
    python benchmarks/run.py             # everything, full size (re-runs itself in .venv-bench)
    python benchmarks/run.py --quick     # a small smoke run
    python benchmarks/run.py --json benchmarks/results.json   # also every figure, as JSON
    python benchmarks/run.py --report benchmarks/results.json # only the report of such a file
    python benchmarks/run.py --help      # sizes, repeats, backends, workloads, --profile

Workloads (each figure: one warm-up run, then the min / median / max of --repeat runs, the
sides interleaved; every run on a fresh store, in catchup a fresh projection over the same log):
  write       N streams x E events, one command = one transaction per stream
  load        load and fold every one of those streams (no snapshots, no caches)
  concurrent  PostgreSQL: W writer threads appending, one thread tailing the global log;
              counts events the tail skipped (committed, yet never seen by it)
  hot         PostgreSQL: P processes executing on ONE stream with max_retries, with and
              without postgres_storage(lock_streams=True); commands/s and conflicts/command
  catchup     SQLite, PostgreSQL: a log of --catchup-events events (written once per library),
              then a new projection catching up with it: a fold (a running total) and a
              document projection (one document per stream); events/s of ours, of a
              hand-written loop on the same driver and table, and of `eventsourcing`'s
              projection runner (one commit per event: on the first --catchup-theirs events)
  inline      execute throughput (one command = one event = one transaction) with 0, 1 and 3
              inline projections, with a process manager sending one command per trigger,
              and with that same pair of commands in one transaction by hand
  latency     SQLite, PostgreSQL: p50 / p99 / max latency of one-event appends by 1 and by 10
              threads sharing one storage, throughput, and the appends per thread (fairness)
`raw` figures are the driver alone (sqlite3 / psycopg) writing and reading the same rows, the
same table, one transaction per stream: the physical limit for this machine.

The report (Markdown, on stdout) is what `benchmarks/report.py` makes of the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from suite.config import BACKENDS, DEFAULT_DSN, WORKLOADS, Config  # noqa: E402

BENCH_PYTHON = HERE / ".venv-bench" / "bin" / "python"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arg = parse.add_argument
    arg("--streams", type=int, default=10_000, help="streams written and loaded (10000)")
    arg("--events", type=int, default=10, help="events per stream, one command each (10)")
    arg(
        "--repeat",
        "--repeats",
        dest="repeats",
        type=int,
        default=3,
        help="timed runs per figure, after a warm-up run; min / median / max are shown (3)",
    )
    arg(
        "--warmup-scale",
        type=float,
        default=0.1,
        help="sizes of each side's untimed warm-up run, as a share of the sizes; 1: full size,"
        " 0: no warm-up (0.1)",
    )
    arg("--writers", type=int, default=8, help="concurrent writer threads (8)")
    arg("--writer-commands", type=int, default=250, help="commands per writer thread (250)")
    arg("--processes", type=int, default=4, help="processes on the hot stream (4)")
    arg("--hot-commands", type=int, default=200, help="commands per hot-stream process (200)")
    arg("--hot-retries", type=int, default=100, help="max_retries on the hot stream (100)")
    arg("--hot-snapshot-every", type=int, default=50, help="hot stream snapshots, 0: none (50)")
    arg("--catchup-events", type=int, default=100_000, help="events in the catch-up log (100000)")
    arg("--catchup-streams", type=int, default=1_000, help="streams of that log (1000)")
    arg(
        "--catchup-theirs",
        type=int,
        default=10_000,
        help="events `eventsourcing` projects of that log: it commits per event (10000)",
    )
    arg("--inline-commands", type=int, default=5_000, help="commands per inline run (5000)")
    arg("--inline-streams", type=int, default=300, help="streams they go round (300)")
    arg(
        "--latency-threads",
        default="1,10",
        help="comma-separated writer thread counts of the latency workload (1,10)",
    )
    arg(
        "--latency-seconds",
        type=float,
        default=3.0,
        help="seconds each latency run appends for (3)",
    )
    arg("--backends", default=",".join(BACKENDS), help="comma-separated subset of %(default)s")
    arg("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of %(default)s")
    arg("--dsn", default=DEFAULT_DSN, help="PostgreSQL conninfo (%(default)s)")
    arg(
        "--pg-async-commit",
        action="store_true",
        help="PGOPTIONS='-c synchronous_commit=off' for every PostgreSQL session of the run"
        " (ours, theirs and raw alike): the libraries' cost without the commit flush",
    )
    arg("--quick", action="store_true", help="smoke run: small sizes and 1 repeat, unless given")
    arg("--profile", action="store_true", help="then profile ours in each workload (cProfile)")
    arg("--json", type=Path, metavar="FILE", help="write every figure and the environment here")
    arg("--note", default="", help="a sentence the report shows at its top")
    arg(
        "--report",
        type=Path,
        metavar="FILE",
        help="only print the Markdown report of a JSON file written by --json, and exit",
    )
    return parse


def config(args: argparse.Namespace, parse: argparse.ArgumentParser) -> Config:
    if args.quick:  # small sizes, unless given
        quick = {
            "streams": 300,
            "repeats": 1,
            "writer_commands": 20,
            "hot_commands": 20,
            "catchup_events": 5_000,
            "catchup_streams": 100,
            "catchup_theirs": 1_000,
            "inline_commands": 300,
            "inline_streams": 50,
            "latency_seconds": 0.5,
        }
        for name, value in quick.items():
            if getattr(args, name) == parse.get_default(name):
                setattr(args, name, value)
    backends = tuple(b for b in args.backends.split(",") if b)
    workloads = tuple(w for w in args.workloads.split(",") if w)
    for given, known in ((backends, BACKENDS), (workloads, WORKLOADS)):
        if unknown := set(given) - set(known):
            parse.error(f"unknown {sorted(unknown)}: choose from {', '.join(known)}")
    try:
        threads = tuple(int(n) for n in args.latency_threads.split(",") if n)
    except ValueError:
        parse.error(f"--latency-threads {args.latency_threads!r}: comma-separated integers")
    if args.repeats < 1:
        parse.error("--repeat must be at least 1")
    return Config(
        streams=args.streams,
        events=args.events,
        repeats=args.repeats,
        writers=args.writers,
        writer_commands=args.writer_commands,
        processes=args.processes,
        hot_commands=args.hot_commands,
        hot_retries=args.hot_retries,
        hot_snapshot_every=args.hot_snapshot_every,
        catchup_events=args.catchup_events,
        catchup_streams=args.catchup_streams,
        catchup_theirs=args.catchup_theirs,
        inline_commands=args.inline_commands,
        inline_streams=args.inline_streams,
        latency_threads=threads,
        latency_seconds=args.latency_seconds,
        warmup_scale=args.warmup_scale,
        backends=backends,
        workloads=workloads,
        dsn=args.dsn,
        profile=args.profile,
    )


def in_bench_environment() -> None:
    """Re-run this command under benchmarks/.venv-bench unless `eventsourcing` is importable."""
    if importlib.util.find_spec("eventsourcing") is not None:
        return
    if not BENCH_PYTHON.exists() or Path(sys.executable) == BENCH_PYTHON:
        sys.exit("`eventsourcing` is not installed: run benchmarks/setup.sh first")
    os.execv(BENCH_PYTHON, [str(BENCH_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def measure(cfg: Config, data: dict[str, Any]) -> list[str]:
    """Every selected workload on every backend it applies to; figures, ratios, descriptions and
    errors go into `data` as they come. Returns the backends measured."""
    from suite.harness import Results, note
    from suite.workloads import catchup, concurrent, hot, inline, latency, write_load

    postgres = data["environment"]["postgresql"] is not None
    if "postgres" in cfg.backends and not postgres:
        data["errors"].append({"what": "postgres", "error": f"unreachable at {cfg.dsn}: skipped"})
    backends = [b for b in cfg.backends if b != "postgres" or postgres]
    sql = [b for b in backends if b != "memory"]
    chosen = set(cfg.workloads)
    kept = {"write"} & chosen | ({"load+fold"} if "load" in chosen else set())
    plan: list[tuple[str, Any, Callable[[], Results]]] = []
    if kept:
        plan += [
            (f"write + load on {b}", write_load, lambda b=b: write_load.bench_write_load(cfg, b))
            for b in backends
        ]
    if postgres and "concurrent" in chosen:
        plan.append(
            ("concurrent on postgres", concurrent, lambda: concurrent.bench_concurrent(cfg))
        )
    if postgres and "hot" in chosen:
        plan.append(("hot stream on postgres", hot, lambda: hot.bench_hot(cfg)))
    if "catchup" in chosen:
        plan += [
            (f"catch-up on {b}", catchup, lambda b=b: catchup.bench_catchup(cfg, b)) for b in sql
        ]
    if "inline" in chosen:
        plan += [
            (f"inline on {b}", inline, lambda b=b: inline.bench_inline(cfg, b)) for b in backends
        ]
    if "latency" in chosen:
        plan += [
            (f"latency on {b}", latency, lambda b=b: latency.bench_latency(cfg, b)) for b in sql
        ]
    for label, module, work in plan:
        note(label)
        try:
            results = work()
        except Exception as exc:  # one broken workload must not lose the others' figures
            traceback.print_exc()
            data["errors"].append({"what": label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if module is write_load:
            results.figures = [f for f in results.figures if f.workload in kept]
            results.ratios = [r for r in results.ratios if r.of.workload in kept]
        for figure in results.figures:
            data["workloads"].setdefault(figure.workload, describe(module, figure.workload))
        data["figures"] += [f.to_json() for f in results.figures]
        data["ratios"] += [r.to_json() for r in results.ratios]
    return backends


def describe(module: Any, workload: str) -> str:
    if workload == "load+fold":
        return "The streams of the write workload, loaded and folded by each side (see Write)."
    return str(module.__doc__ or "")


def main(argv: list[str] | None = None) -> None:
    parse = parser()
    args = parse.parse_args(argv)
    if args.report:
        from suite.report import render

        sys.stdout.write(render(json.loads(args.report.read_text()), args.report.name))
        return
    cfg = config(args, parse)
    in_bench_environment()
    if args.pg_async_commit:  # read by libpq, so by both libraries' connections and raw psycopg
        os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    from suite import environment
    from suite.harness import note
    from suite.report import render

    cfg = dataclasses.replace(cfg, workdir=Path(tempfile.mkdtemp(prefix="eventsourcing_fn_bench_")))
    postgres = "postgres" in cfg.backends
    data: dict[str, Any] = {
        "format": 1,
        "note": args.note,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "config": {**cfg.sizes(), "backends": cfg.backends, "workloads": cfg.workloads},
        "environment": environment.gather(cfg.dsn if postgres else None),
        "workloads": {},
        "figures": [],
        "ratios": [],
        "errors": [],
    }
    began = time.perf_counter()
    backends: list[str] = []
    try:
        backends = measure(cfg, data)
    except BaseException as exc:
        data["errors"].append({"what": "the run", "error": f"interrupted: {exc!r}"})
        raise
    finally:
        data["seconds"] = time.perf_counter() - began
        data["load average at end"] = environment.load_average()
        data["library digest at end"] = environment.library_digest()
        if args.json:
            args.json.write_text(json.dumps(data, indent=1) + "\n")
            note(f"figures written to {args.json}")
        shutil.rmtree(cfg.workdir, ignore_errors=True)
    sys.stdout.write(render(data, args.json.name if args.json else "this run"))
    if cfg.profile:
        from suite.profiling import profile_all

        workdir = Path(tempfile.mkdtemp(prefix="eventsourcing_fn_profile_"))
        try:
            profile_all(dataclasses.replace(cfg, workdir=workdir), backends)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
