"""The benchmark suite behind `benchmarks/run.py` and `benchmarks/report.py`.

- `config`: the sizes of one run, and the smaller ones of its warm-up runs.
- `domain`: the events, aggregates, commands and projections every workload uses, once per
  library (ours and `eventsourcing`'s).
- `stores`: fresh stores of each library on each backend, removed after use.
- `harness`: warm-up, interleaved repeats, figures (min / median / max) and ratios.
- `workloads`: one module per workload, each measuring ours, `eventsourcing` and the raw driver.
- `environment`: the machine, the versions and the git commit of a run.
- `targets`, `report`: the goals, and the Markdown report generated from a run's JSON.

`harness`, `targets`, `environment` and `report` use the standard library only, so a report can
be generated where neither library is installed.
"""
