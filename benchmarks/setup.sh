#!/usr/bin/env bash
# Create benchmarks/.venv-bench: this project (editable, with its PostgreSQL extra) next to the
# `eventsourcing` package it is measured against. Kept apart from the project's dev environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3.11}"
if [ ! -x "$here/.venv-bench/bin/python" ]; then
    "$python" -m venv "$here/.venv-bench"
fi
"$here/.venv-bench/bin/pip" install -q -e "$here/..[postgres]" \
    'eventsourcing[postgres]>=9.5,<9.6'
"$here/.venv-bench/bin/python" -c \
    'import importlib.metadata as m; print("eventsourcing", m.version("eventsourcing"))'
