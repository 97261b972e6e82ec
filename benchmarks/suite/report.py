"""The Markdown report of a run, generated from the JSON that `run.py --json` writes.

    python benchmarks/report.py benchmarks/results.json > benchmarks/RESULTS.md

Machine, versions and commit first, then the targets, then one section per workload: its
figures (min / median / max over the repeats) and its ratios, each beside its target when it has
one. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .targets import Target, evaluate

SECTIONS = {  # workload: title, in report order
    "write": "Write",
    "load+fold": "Load and fold",
    "concurrent": "Concurrent writers and a tailing reader",
    "hot": "One hot stream",
    "catch-up": "Catch-up of a new projection",
    "inline": "Inline components on execute",
    "latency": "Append latency",
}
PIVOTED = {"latency"}  # several metrics per side: one row per side, one column per metric
HOW_TO_RUN = """\
```sh
benchmarks/setup.sh                     # once: benchmarks/.venv-bench, both libraries
python benchmarks/run.py --json benchmarks/results.json     # every workload, default sizes
python benchmarks/report.py benchmarks/results.json > benchmarks/RESULTS.md
python benchmarks/run.py --quick        # a smoke run: small sizes, 1 repeat
python benchmarks/run.py --help         # sizes, --repeat, --backends, --workloads ...
```"""


def number(value: float | None) -> str:
    """A figure with as many digits as it needs, thousands separated."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "∞"
    size = abs(value)
    if size >= 100 or (value == int(value) and size >= 1) or value == 0:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def shown(value: float, form: str) -> str:
    """A ratio in its form: 2.05x ("x"), 41% ("%"), or what it costs, 42% ("cost")."""
    if math.isnan(value):
        return "-"
    if form == "%":
        return f"{value:.0%}"
    if form == "cost":
        return f"{1 - value:.0%}"
    return f"{value:.2f}x"


def spread(values: Sequence[float], form: str) -> str:
    """The lowest and highest of the ratios within one repeat."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    if form == "cost":  # the lowest cost comes with the highest ratio
        low, high = high, low
    first, last = shown(low, form), shown(high, form)
    return first if first == last else f"{first} to {last}"


def bound(target: Target, form: str) -> str:
    if form == "cost":  # "at least 70% of the throughput" reads "costs at most 30%"
        op = "≤" if target.op == ">=" else "≥"
        return f"{op} {1 - target.bound:.0%}"
    op = "≥" if target.op == ">=" else "≤"
    return f"{op} {shown(target.bound, form)}"


def verdict(target: Target, ratio: dict[str, Any] | None) -> str:
    if ratio is None:
        return "not measured"
    met = target.met(ratio["value"])
    return "-" if met is None else ("**met**" if met else "**missed**")


def table(headers: list[str], rows: Iterable[list[str]], right: Iterable[int] = ()) -> list[str]:
    """A Markdown table without the columns that are empty in every row."""
    rows = list(rows)
    keep = [i for i in range(len(headers)) if any(row[i] for row in rows)]
    aligned = set(right)
    lines = [
        "| " + " | ".join(headers[i] for i in keep) + " |",
        "|" + "|".join("---:" if i in aligned else "---" for i in keep) + "|",
    ]
    lines += ["| " + " | ".join(row[i] for i in keep) + " |" for row in rows]
    return lines


def gib(size: int | None) -> str:
    return f"{size / 2**30:.1f} GiB" if size else "-"


def library(start: str | None, end: str | None) -> str:
    """The digest of the library's sources the run imported, and whether they changed during it."""
    if not start:
        return "-"
    text = f"SHA-256 `{start[:16]}`"
    if end and end != start:
        text += f" at the start; **changed during the run** (`{end[:16]}` at the end)"
    return text


def command(argv: list[str]) -> str:
    """The command line, without the text of --note (the report shows it at its top)."""
    words, hide = ["python", "benchmarks/run.py"], False
    for arg in argv:
        if hide:
            words.append("...")
        elif arg.startswith("--note="):
            words.append("--note=...")
        else:
            words.append(shlex.quote(arg))
        hide = arg == "--note"
    return " ".join(words)


def environment(data: dict[str, Any], source: str) -> list[str]:
    env = data.get("environment", {})
    machine, git = env.get("machine", {}), env.get("git", {})
    packages, pg = env.get("packages", {}), env.get("postgresql")
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        where = "the library among them" if git.get("library changed") else "none in the library"
        state = f"working tree **dirty**: {git.get('changed paths')} changed paths, {where}"
    elif git.get("dirty") is None:
        state = "working tree state unknown"
    else:
        state = "clean working tree"
    loads = [env.get("load average at start"), data.get("load average at end")]
    load = "; ".join(
        f"{when} {', '.join(f'{x:.2f}' for x in value)}"
        for when, value in zip(("start", "end"), loads, strict=True)
        if value
    )
    if pg:
        settings = ", ".join(f"{k}={v}" for k, v in pg.get("settings", {}).items())
        options = f", PGOPTIONS=`{pg['PGOPTIONS']}`" if pg.get("PGOPTIONS") else ""
        postgres = f"{pg.get('description') or pg.get('version')}; {settings}{options}"
    else:
        postgres = "not reached: its workloads were skipped"
    psycopg = packages.get("psycopg")
    if psycopg and packages.get("psycopg implementation"):
        psycopg += f" ({packages['psycopg implementation']} implementation)"
    if packages.get("psycopg-pool"):
        psycopg = f"{psycopg}, psycopg-pool {packages['psycopg-pool']}"
    others = ", ".join(
        f"{n} {packages[n]}" for n in ("attrs", "cattrs", "returns") if packages.get(n)
    )
    python = env.get("python", {})
    rows = [
        ["commit", f"`{commit}` ({state})"],
        ["library files", library(env.get("library digest"), data.get("library digest at end"))],
        ["started", f"{data.get('started', '?')}, {number(data.get('seconds'))} s in all"],
        ["command", f"`{command(data.get('argv', []))}`"],
        ["CPU", f"{machine.get('cpu', '?')}, {machine.get('architecture', '')}"],
        ["cores", f"{machine.get('cores')} ({machine.get('usable cores')} usable by the run)"],
        ["memory", gib(machine.get("memory bytes"))],
        ["OS", f"{machine.get('os', '?')}, {machine.get('kernel', '')}"],
        ["load average (1, 5, 15 min)", load or "-"],
        ["Python", f"{python.get('version', '?')} ({python.get('implementation', '')})"],
        ["SQLite", env.get("sqlite", "?")],
        ["PostgreSQL", postgres],
        ["eventsourcing_fn", packages.get("eventsourcing_fn") or "-"],
        ["eventsourcing", packages.get("eventsourcing") or "-"],
        ["psycopg", psycopg or "-"],
        ["other packages", others or "-"],
    ]
    lines = [
        "# Benchmarks: eventsourcing_fn vs `eventsourcing` vs the raw drivers",
        "",
        f"Generated by `benchmarks/report.py` from `{source}`: regenerate it rather than edit it."
        " The analysis written by hand (where the time goes, why targets are missed, fairness"
        " notes, earlier runs) is in [ANALYSIS.md](ANALYSIS.md).",
        "",
    ]
    if data.get("note"):
        lines += [f"> {data['note']}", ""]
    lines += ["## Machine, versions and commit", "", *table(["", ""], rows), ""]
    return lines


def method(data: dict[str, Any]) -> list[str]:
    sizes = data.get("config", {})
    repeats, scale = sizes.get("repeats", "?"), sizes.get("warmup_scale", 0)
    warm = (
        f"one untimed warm-up run per side at {scale:.0%} of the sizes"
        if 0 < scale < 1
        else ("one untimed warm-up run per side at full size" if scale else "no warm-up run")
    )
    return [
        "## How the figures are taken",
        "",
        f"* Each workload runs {warm}, then {repeats} repeats in which every side (ours,"
        " `eventsourcing`, the raw driver ...) runs once in turn, so the sides of a repeat share"
        " the machine's load. Every run starts from a fresh SQLite file or PostgreSQL schema"
        " (catch-up: a fresh projection over a log written once).",
        "* **min / median / max** are over the repeats.",
        "* A **ratio** divides the medians of two figures of this run. **per repeat** gives the"
        " lowest and highest ratio of the same two figures within one repeat.",
        "* **cost** is the throughput lost against the reference: 1 - ratio.",
        "",
    ]


def targets_section(data: dict[str, Any]) -> list[str]:
    rows = []
    for target, ratio in evaluate(data.get("ratios", [])):
        form = target.form
        rows.append(
            [
                target.label,
                f"{target.workload}, {target.backend}"
                + (f", {target.case}" if target.case else ""),
                f"{ratio['name']}" if ratio else target.ratio,
                shown(ratio["value"], form) if ratio else "-",
                spread(ratio["per_repeat"], form) if ratio else "-",
                bound(target, form),
                verdict(target, ratio),
            ]
        )
    headers = ["target", "workload", "ratio", "measured", "per repeat", "target", "met?"]
    return ["## Targets", "", *table(headers, rows, right=(3, 4)), ""]


def figure_rows(figures: list[dict[str, Any]]) -> list[list[str]]:
    metrics = any(f["metric"] != f["unit"] for f in figures)  # else the unit says it all
    return [
        [
            f["backend"],
            f.get("case", ""),
            f["subject"],
            f["metric"] if metrics else "",
            f["unit"],
            number(f["min"]),
            number(f["median"]),
            number(f["max"]),
            f.get("note", ""),
        ]
        for f in figures
    ]


def pivot(figures: list[dict[str, Any]]) -> list[str]:
    """One row per backend, case and subject; a column per metric: median, then min to max."""
    metrics: list[str] = []
    cells: dict[tuple[str, str, str], dict[str, str]] = {}
    units: dict[str, str] = {}
    for f in figures:
        if f["metric"] not in metrics:
            metrics.append(f["metric"])
        units[f["metric"]] = f["unit"]
        low, mid, high = (number(f[k]) for k in ("min", "median", "max"))
        text = mid if low == high else f"{mid} ({low} to {high})"
        cells.setdefault((f["backend"], f.get("case", ""), f["subject"]), {})[f["metric"]] = text
    headers = ["backend", "case", "subject"]
    headers += [
        m if m == units[m] or units[m] == "appends" else f"{m} ({units[m]})" for m in metrics
    ]
    rows = [[*key, *(row.get(m, "") for m in metrics)] for key, row in cells.items()]
    return table(headers, rows, right=range(3, 3 + len(metrics)))


def ratio_rows(ratios: list[dict[str, Any]], data: dict[str, Any]) -> list[list[str]]:
    targets = {
        (t.workload, t.backend, t.case, t.ratio): t for t, r in evaluate(data["ratios"]) if r
    }
    rows = []
    for r in ratios:
        target = targets.get((r["workload"], r["backend"], r.get("case", ""), r["name"]))
        rows.append(
            [
                r["backend"],
                r.get("case", ""),
                r["name"] + (" (cost)" if r["form"] == "cost" else ""),
                shown(r["value"], r["form"]),
                spread(r["per_repeat"], r["form"]),
                bound(target, target.form) if target else "",
                verdict(target, r) if target else "",
            ]
        )
    return rows


def sizes_of(figures: list[dict[str, Any]]) -> str:
    seen: list[str] = []
    for f in figures:
        text = ", ".join(
            f"{k} {number(v) if isinstance(v, int | float) else v}"
            for k, v in f.get("sizes", {}).items()
        )
        if text and text not in seen:
            seen.append(text)
    return "; ".join(seen)


def workload_section(name: str, data: dict[str, Any]) -> list[str]:
    figures = [f for f in data.get("figures", []) if f["workload"] == name]
    if not figures:
        return []
    ratios = [r for r in data.get("ratios", []) if r["workload"] == name]
    lines = [f"## {SECTIONS.get(name, name)}", ""]
    about = data.get("workloads", {}).get(name)
    if about:
        lines += [about.strip(), ""]
    lines += [f"Sizes: {sizes_of(figures)}.", ""]
    if name in PIVOTED:
        lines += [*pivot(figures), ""]
    else:
        headers = ["backend", "case", "subject", "metric", "unit", "min", "median", "max", "note"]
        lines += [*table(headers, figure_rows(figures), right=(5, 6, 7)), ""]
    if ratios:
        headers = ["backend", "case", "ratio", "of medians", "per repeat", "target", "met?"]
        lines += [*table(headers, ratio_rows(ratios, data), right=(3, 4)), ""]
    return lines


def render(data: dict[str, Any], source: str = "results.json") -> str:
    lines = environment(data, source)
    lines += method(data)
    lines += targets_section(data)
    names = list(SECTIONS) + sorted(
        {f["workload"] for f in data.get("figures", [])} - set(SECTIONS)
    )
    for name in names:
        lines += workload_section(name, data)
    if data.get("errors"):
        lines += ["## Errors", ""]
        lines += [f"* {e['what']}: `{e['error']}`" for e in data["errors"]]
        lines += [""]
    lines += ["## How to run", "", HOW_TO_RUN, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="a run's JSON, written by run.py --json")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text())
    sys.stdout.write(render(data, args.json.name))
