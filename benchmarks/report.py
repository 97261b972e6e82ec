#!/usr/bin/env python3
"""Generate the Markdown report of a benchmark run from its JSON.

    python benchmarks/report.py benchmarks/results.json > benchmarks/RESULTS.md

Needs neither library: the standard library reads the JSON that `run.py --json` wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite.report import main

if __name__ == "__main__":
    main()
