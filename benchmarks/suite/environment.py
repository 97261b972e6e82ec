"""Where and on what a run took place: the machine, the versions and the git commit.

Standard library only; the PostgreSQL figures need psycopg and a reachable server, and are
left out (None) otherwise. Git is only read: `rev-parse` and a `status` that takes no lock.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LIBRARY = "eventsourcing_fn/"
PACKAGES = (
    "eventsourcing_fn",
    "eventsourcing",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "attrs",
    "cattrs",
    "returns",
)
PG_SETTINGS = ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable cores": usable,
        "memory bytes": memory_bytes(),
        "os": os_name(),
        "kernel": f"{platform.system()} {platform.release()}",
        "architecture": platform.machine(),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        import psycopg

        found["psycopg implementation"] = psycopg.pq.__impl__
    except ImportError:
        pass
    return found


def postgres(dsn: str) -> dict[str, Any] | None:
    """The server's version and its durability settings, as this run's sessions see them."""
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=5) as conn:
            version = conn.execute("SELECT version()").fetchone()
            short = conn.execute("SHOW server_version").fetchone()
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in PG_SETTINGS
            }
    except Exception:  # no driver or no server: the PostgreSQL workloads are skipped
        return None
    return {
        "version": short[0] if short else None,
        "description": version[0] if version else None,
        "settings": settings,
        "PGOPTIONS": os.environ.get("PGOPTIONS", ""),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def git() -> dict[str, Any]:
    """HEAD, and whether the working tree differs from it (and if so, in the library itself)."""
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=normal")
    changed = [line[3:] for line in (status or "").splitlines() if line.strip()]
    return {
        "commit": head.strip() if head else None,
        "dirty": bool(changed) if status is not None else None,
        "changed paths": len(changed),
        "library changed": any(LIBRARY in path for path in changed),
        "changes": changed[:50],
    }


def library_digest() -> str | None:
    """A SHA-256 of the library's source files (paths and contents): which working tree a run
    measured, even when it differs from the commit."""
    root = REPO / LIBRARY
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def gather(dsn: str | None) -> dict[str, Any]:
    return {
        "machine": machine(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres(dsn) if dsn else None,
        "packages": versions(),
        "git": git(),
        "library digest": library_digest(),
        "load average at start": load_average(),
    }
