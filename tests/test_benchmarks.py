"""The benchmark harness and report: timing bookkeeping, targets, and the Markdown generated from
a run's JSON. Neither library is needed: these parts of `benchmarks/` use the standard library."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from suite import environment  # noqa: E402
from suite.config import Config  # noqa: E402
from suite.harness import Figure, Ratio, Results, interleave, percentile  # noqa: E402
from suite.report import render  # noqa: E402
from suite.targets import TARGETS, evaluate  # noqa: E402


def load_run_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure(subject: str, samples: tuple[float, ...], **kw: Any) -> Figure:
    defaults: dict[str, Any] = {
        "workload": "write",
        "backend": "sqlite",
        "metric": "events/s",
        "unit": "events/s",
        "sizes": {"streams": 10},
    }
    return Figure(subject=subject, samples=samples, **(defaults | kw))


def test_warmup_sizes_are_a_share_of_the_run_with_floors() -> None:
    cfg = Config()
    warm = cfg.warmup()
    assert warm is not None
    assert warm.streams == 1_000
    assert warm.catchup_events // warm.catchup_streams == cfg.catchup_events // cfg.catchup_streams
    assert warm.writers == cfg.writers
    assert warm.latency_threads == cfg.latency_threads
    tiny = Config(streams=30, inline_streams=12).warmup()
    assert tiny is not None
    assert tiny.streams == 20
    assert tiny.inline_streams == 10
    assert Config(warmup_scale=0).warmup() is None
    full = Config(warmup_scale=1)
    assert full.warmup() is full


def test_figures_keep_min_median_max_and_ratios_pair_the_repeats() -> None:
    ours = figure("ours", (30.0, 10.0, 20.0))
    theirs = figure("eventsourcing", (10.0, 10.0, 40.0))
    data = ours.to_json()
    assert (data["min"], data["median"], data["max"], data["repeats"]) == (10, 20, 30, 3)
    assert data["samples"] == [30.0, 10.0, 20.0]  # in repeat order
    ratio = Ratio("ours / eventsourcing", ours, theirs)
    assert ratio.value == 2.0  # the medians' ratio: 20 / 10
    assert ratio.per_repeat == (3.0, 1.0, 0.5)  # each repeat's own pair
    assert ratio.to_json()["of"] == {"case": "", "subject": "ours", "metric": "events/s"}


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert math.isnan(percentile([], 0.5))


def test_interleave_warms_each_side_up_then_runs_the_repeats_in_turn() -> None:
    calls: list[tuple[str, int]] = []

    @contextmanager
    def sides(cfg: Config) -> Any:
        calls.append(("setup", cfg.streams))

        def side(name: str) -> Any:
            return lambda: calls.append((name, cfg.streams)) or {"seconds": 1.0}

        yield {"a": side("a"), "b": side("b")}

    runs = interleave("test", Config(streams=1_000, repeats=2), sides)
    assert runs == {"a": [{"seconds": 1.0}] * 2, "b": [{"seconds": 1.0}] * 2}
    assert calls == [
        ("setup", 100),  # the warm-up, at a tenth of the sizes
        ("a", 100),
        ("b", 100),
        ("setup", 1_000),
        ("a", 1_000),
        ("b", 1_000),
        ("a", 1_000),
        ("b", 1_000),
    ]


def synthetic_run() -> dict[str, Any]:
    """A run's JSON as run.py writes it, with two workloads."""
    out = Results()
    ours = out.add(figure("ours", (30_000.0, 31_000.0, 29_000.0)))
    raw = out.add(figure("raw sqlite3", (50_000.0, 48_000.0, 52_000.0)))
    out.compare("ours / raw sqlite3", ours, raw, "%")
    one = out.add(
        figure(
            "ours", (0.2, 0.3, 0.25), workload="latency", metric="p99", unit="ms", case="1 thread"
        )
    )
    ten = out.add(
        figure(
            "ours", (0.5, 0.6, 0.7), workload="latency", metric="p99", unit="ms", case="10 threads"
        )
    )
    out.compare("ours: p99, 10 threads / 1 thread", ten, one)
    return {
        "format": 1,
        "note": "a before snapshot",
        "started": "2026-01-01T00:00:00+00:00",
        "seconds": 12.5,
        "argv": ["--quick"],
        "config": {**Config().sizes(), "latency_threads": [1, 10]},
        "environment": {
            "machine": {"cpu": "Test CPU", "cores": 2, "usable cores": 2, "memory bytes": 2**34},
            "python": {"version": "3.11.7", "implementation": "CPython"},
            "sqlite": "3.40.1",
            "postgresql": None,
            "packages": {"eventsourcing_fn": "0.1.0", "eventsourcing": "9.5.6"},
            "git": {
                "commit": "a" * 40,
                "dirty": True,
                "changed paths": 2,
                "library changed": False,
            },
            "load average at start": [0.5, 0.4, 0.3],
        },
        "workloads": {"write": "Write: streams.", "latency": "Latency: threads."},
        "figures": [f.to_json() for f in out.figures],
        "ratios": [r.to_json() for r in out.ratios],
        "errors": [],
    }


def test_report_puts_machine_versions_and_commit_first_then_a_table_per_workload() -> None:
    text = render(json.loads(json.dumps(synthetic_run())), "results.json")
    assert text.index("Test CPU") < text.index("## Targets") < text.index("## Write")
    assert "`" + "a" * 40 + "`" in text
    assert "**dirty**" in text
    assert "none in the library" in text
    assert "[ANALYSIS.md](ANALYSIS.md)" in text
    assert "> a before snapshot" in text
    assert "| sqlite | ours | events/s | 29,000 | 30,000 | 31,000 |" in text
    assert "| sqlite | ours / raw sqlite3 | 60% | 56% to 65% | ≥ 60% | **met** |" in text
    assert "ours: p99, 10 threads / 1 thread | 2.40x | 2.00x to 2.80x | ≤ 3.00x | **met** |" in text
    assert "PostgreSQL write vs raw psycopg" in text
    assert "not measured" in text
    assert "## Append latency" in text
    assert "## Load and fold" not in text


def test_every_target_names_a_ratio_form_and_an_operator() -> None:
    for target in TARGETS:
        assert target.op in (">=", "<=")
        assert target.form in ("x", "%", "cost")
    assert [r for _, r in evaluate([]) if r is not None] == []
    assert len(TARGETS) == 15


def test_run_and_report_scripts_print_the_same_markdown(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(synthetic_run()))
    via_report = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    via_run = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--report", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert via_report == via_run == render(synthetic_run(), "results.json")


def test_the_cli_keeps_its_options_and_adds_repeat_json_and_report() -> None:
    run = load_run_module()
    parse = run.parser()
    cfg = run.config(parse.parse_args(["--repeat", "5", "--latency-threads", "1,4"]), parse)
    assert cfg.repeats == 5
    assert cfg.latency_threads == (1, 4)
    quick = run.config(parse.parse_args(["--quick", "--repeat", "2"]), parse)
    assert quick.repeats == 2
    assert quick.streams == 300
    assert run.config(parse.parse_args(["--repeats", "4"]), parse).repeats == 4
    with pytest.raises(SystemExit):
        run.config(parse.parse_args(["--workloads", "nope"]), parse)


def test_environment_reads_the_commit_without_writing() -> None:
    git = environment.git()
    assert git["commit"] is None or len(git["commit"]) == 40
    assert git["dirty"] in (True, False, None)
    machine = environment.machine()
    assert machine["cores"]
    assert machine["cpu"]


def test_the_report_names_the_library_files_a_run_measured() -> None:
    digest = environment.library_digest()
    assert digest is None or len(digest) == 64
    data = synthetic_run()
    data["environment"]["library digest"] = "1" * 64
    data["library digest at end"] = "2" * 64
    data["argv"] = ["--repeat", "2", "--note", "a long sentence"]
    text = render(data)
    assert "SHA-256 `1111111111111111`" in text
    assert "**changed during the run**" in text
    assert "`python benchmarks/run.py --repeat 2 --note ...`" in text
