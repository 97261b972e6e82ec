"""One module per workload; each `bench_*` function measures ours, `eventsourcing` and the raw
driver side by side on one backend (or on PostgreSQL only) and returns its `Results`."""
