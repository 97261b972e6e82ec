"""The command line: inspection changes nothing, runs apply events, mistakes exit 2 in one line."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import cli_app
import pytest
from bank import Deposit, Open, Withdraw, account
from conftest import POSTGRES_URL
from typer.testing import CliRunner

from eventsourcing_fn import Worker, context
from eventsourcing_fn.__main__ import main
from eventsourcing_fn.cli import app
from eventsourcing_fn.cli._errors import ReadOnlyStore
from eventsourcing_fn.cli._postgres_reader import postgres_reader
from eventsourcing_fn.cli._sqlite_reader import sqlite_reader
from eventsourcing_fn.storage import Storage, postgres_storage, sqlite_storage

TESTS = Path(__file__).parent
APP = ["--app", "cli_app:store"]
INSPECTIONS = [
    ["streams"],
    ["streams", "account"],
    ["events", "account", "acc-1"],
    ["tail", "--no-follow"],
    ["tail", "--no-follow", "--json", "--from", "3"],
    ["projections"],
    ["events", "account", "acc-1", *APP],
    ["state", "account", "acc-1", *APP],
    ["state", "account", "acc-1", "--at-version", "2", *APP],
    ["projections", *APP],
]


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.stderr
        return json.loads(self.stdout)


Cli = Callable[..., Ran]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The command line run in-process, in `tmp_path`."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Ran:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def shell(*args: str, cwd: Path, timeout: float = 60) -> Ran:
    """`python -m eventsourcing_fn ARGS` in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "eventsourcing_fn", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "200"}


def assert_refused(done: Ran, *words: str) -> None:
    """Exit code 2, one line on stderr holding each of `words`, no traceback, no output."""
    assert done.returncode == 2, done
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert all(word in done.stderr for word in words), done.stderr
    assert done.stdout == ""


def populate(storage: Storage, *, inline: bool = True) -> None:
    """acc-1: opened, filled, emptied (and closed by `closer`, inline); acc-2: opened, filled."""
    with (
        cli_app.definitions(storage, inline=inline) as store,
        context(actor_id="tester", correlation_id="c-1"),
    ):
        store.execute(account, "acc-1", Open("ann"), Deposit(10)).unwrap()
        store.execute(account, "acc-1", Withdraw(10)).unwrap()
        store.execute(account, "acc-2", Open("bob"), Deposit(5)).unwrap()


@attrs.frozen
class Backend:
    """A populated store: the options naming it, and a fingerprint of everything in it."""

    name: str
    args: list[str]
    fingerprint: Callable[[], object]
    storage: Callable[[], Storage]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _pg_fingerprint(schema: str) -> object:
    import psycopg

    with psycopg.connect(POSTGRES_URL) as conn:
        relations = conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY 1",
            (schema,),
        ).fetchall()
        rows = {
            table: conn.execute(
                f'SELECT to_jsonb(t)::text FROM "{schema}"."{table}" t ORDER BY 1'
            ).fetchall()
            for table in ("events", "snapshots", "checkpoints", "documents", "leases")
        }
    return relations, rows


def _backend(request: pytest.FixtureRequest, tmp_path: Path, *, inline: bool) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "bank.db"
        populate(sqlite_storage(path), inline=inline)
        return Backend(
            "sqlite", ["--store", str(path)], lambda: _files(tmp_path), lambda: sqlite_storage(path)
        )
    schema = request.getfixturevalue("pg_schema")
    populate(postgres_storage(POSTGRES_URL, schema=schema), inline=inline)
    return Backend(
        "postgres",
        ["--store", POSTGRES_URL, "--schema", schema],
        lambda: _pg_fingerprint(schema),
        lambda: postgres_storage(POSTGRES_URL, schema=schema),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A store of each SQL backend holding the populated history, applied inline."""
    return _backend(request, tmp_path, inline=True)


@pytest.fixture(params=["sqlite", "postgres"])
def unapplied(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A store of each SQL backend holding the history, written by a store that is not inline."""
    return _backend(request, tmp_path, inline=False)


class TestInspection:
    def test_streams_with_versions(self, cli: Cli, backend: Backend) -> None:
        """`streams` lists each stream with its version; `streams TYPE` only that type's."""
        listed = cli("streams", "--json", *backend.args).json()
        assert [(s["stream_type"], s["stream_id"], s["version"]) for s in listed] == [
            ("account", "acc-1", 4),
            ("account", "acc-2", 2),
        ]
        assert cli("streams", "account", "--json", *backend.args).json() == listed
        table = cli("streams", *backend.args)
        assert "acc-1" in table.stdout
        assert "acc-2" in table.stdout

    def test_events_with_their_metadata(self, cli: Cli, backend: Backend) -> None:
        """`events` shows a stream's events with actor, correlation and causation."""
        events = cli("events", "account", "acc-1", "--json", *backend.args).json()
        assert [e["type"] for e in events] == ["Opened", "Deposited", "Withdrawn", "Closed"]
        assert [e["version"] for e in events] == [1, 2, 3, 4]
        assert {e["actor_id"] for e in events} == {"tester"}
        assert {e["correlation_id"] for e in events} == {"c-1"}
        assert events[3]["causation_id"] == events[2]["event_id"]  # closed by the manager
        assert events[1]["data"] == {"amount": 10}

    def test_events_decoded_by_the_app(self, cli: Cli, backend: Backend) -> None:
        """With --app the table shows typed events; without, the stored JSON."""
        decoded = cli("events", "account", "acc-1", *backend.args, *APP)
        assert "Deposited(amount=10)" in decoded.stdout
        raw = cli("events", "account", "acc-1", *backend.args)
        assert 'Deposited {"amount":10}' in raw.stdout

    def test_tail_prints_the_log(self, cli: Cli, backend: Backend) -> None:
        """`tail --no-follow` prints the log from `--from` on, raw without --app."""
        log = cli("tail", "--no-follow", "--json", *backend.args).json()
        assert [(e["stream_id"], e["version"]) for e in log] == [
            ("acc-1", 1),
            ("acc-1", 2),
            ("acc-1", 3),
            ("acc-1", 4),
            ("acc-2", 1),
            ("acc-2", 2),
        ]
        later = cli(
            "tail", "--no-follow", "--json", "--from", str(log[4]["position"]), *backend.args
        )
        assert [e["stream_id"] for e in later.json()] == ["acc-2", "acc-2"]
        lines = cli("tail", "--no-follow", *backend.args).stdout.splitlines()
        assert len(lines) == 6
        assert "account/acc-2 v2" in lines[-1]
        assert "Deposited" in lines[-1]

    def test_state_folded_by_the_app(self, cli: Cli, backend: Backend) -> None:
        """`state` folds the stream with the app's aggregate, now or at a version."""
        now = cli("state", "account", "acc-1", "--json", *backend.args, *APP).json()
        assert now == {
            "stream_type": "account",
            "stream_id": "acc-1",
            "version": 4,
            "state": {"owner": "ann", "balance": 0, "closed": True},
        }
        then = cli("state", "account", "acc-1", "--at-version", "2", "--json", *backend.args, *APP)
        assert then.json()["state"] == {"owner": "ann", "balance": 10, "closed": False}
        assert "Account(" in cli("state", "account", "acc-1", *backend.args, *APP).stdout

    def test_projections_checkpoints_and_lag(self, cli: Cli, unapplied: Backend) -> None:
        """`projections` shows each component's position and lag, before and after a worker."""
        before = cli("projections", "--json", *unapplied.args, *APP).json()
        assert [(p["name"], p["status"], p["lag"]) for p in before] == [
            ("totals", "not started", 5),
            ("owners", "not started", 5),
            ("closer", "not started", 5),
        ]
        ran = cli("worker", "--once", "--json", *unapplied.args, *APP).json()
        assert ran["applied"] > 0
        after = cli("projections", "--json", *unapplied.args, *APP).json()
        assert {(p["name"], p["status"], p["lag"]) for p in after} == {
            ("totals", "level", 0),
            ("owners", "level", 0),
            ("closer", "level", 0),
        }
        # Without --app the store's own checkpoints name the components.
        listed = cli("projections", "--json", *unapplied.args).json()
        assert [p["name"] for p in listed] == ["closer", "owners", "totals"]
        assert {p["kind"] for p in listed} == {None}

    def test_options_before_the_command(self, cli: Cli, backend: Backend) -> None:
        """Options may come before the command's name as well as after it."""
        before = cli(*backend.args, "--json", *APP, "state", "account", "acc-2").json()
        assert before["state"]["balance"] == 5

    def test_inspection_changes_nothing(self, cli: Cli, backend: Backend) -> None:
        """Every inspection command leaves the store exactly as it was (files byte-identical,
        no -wal or -shm created; on PostgreSQL every row and relation)."""
        before = backend.fingerprint()
        for command in INSPECTIONS:
            assert cli(*command, *backend.args).returncode == 0, command
        assert backend.fingerprint() == before

    def test_reads_a_store_being_written(self, cli: Cli, backend: Backend) -> None:
        """With a writer at work on the store, inspection sees each commit as it lands."""
        with cli_app.definitions(backend.storage()) as writer:
            writer.execute(account, "acc-3", Open("cy")).unwrap()
            assert len(cli("streams", "--json", *backend.args).json()) == 3
            writer.execute(account, "acc-4", Open("di")).unwrap()
            assert len(cli("streams", "--json", *backend.args).json()) == 4

    def test_with_typer_runner(self, backend: Backend) -> None:
        """The typer app runs under typer's CliRunner too, errors included."""
        runner = CliRunner()
        done = runner.invoke(app, ["streams", "--json", *backend.args])
        assert done.exit_code == 0
        assert len(json.loads(done.stdout)) == 2
        refused = runner.invoke(app, ["events", "nope", "x", *backend.args])
        assert refused.exit_code == 2
        assert refused.stderr.count("\n") == 1
        assert "unknown stream type 'nope'" in refused.stderr


class TestReadOnly:
    @pytest.mark.parametrize("command", INSPECTIONS, ids=" ".join)
    def test_missing_path_is_never_created(
        self, cli: Cli, tmp_path: Path, command: list[str]
    ) -> None:
        """A store path that does not exist is an error, never a new empty file."""
        assert_refused(cli(*command, "--store", "missing.db"), "'missing.db'", "no such file")
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("command", [["replay", "totals"], ["rebuild"], ["worker", "--once"]])
    def test_missing_path_for_a_run(self, cli: Cli, tmp_path: Path, command: list[str]) -> None:
        """Runs that write refuse a missing store too, rather than start an empty one."""
        assert_refused(cli(*command, "--store", "missing.db", *APP), "no such file")
        assert list(tmp_path.iterdir()) == []

    def test_sqlite_reader_refuses_writes(self, tmp_path: Path) -> None:
        """The SQLite reader's storage refuses every write; its connection is read-only."""
        populate(sqlite_storage(tmp_path / "bank.db"))
        reader = sqlite_reader(str(tmp_path / "bank.db"))
        with pytest.raises(ReadOnlyStore, match="read-only"):
            reader.storage.append([])
        with pytest.raises(ReadOnlyStore):
            reader.storage.lease("totals", "me", 1.0)
        connection = reader.storage.connection
        assert connection is not None
        with connection() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM events")
        assert reader.storage.count_after(0) == 6

    def test_postgres_session_is_read_only(self, pg_schema: str) -> None:
        """The PostgreSQL reader's session refuses writes at the server, whatever is asked."""
        import psycopg

        populate(postgres_storage(POSTGRES_URL, schema=pg_schema))
        reader = postgres_reader(POSTGRES_URL, pg_schema)
        try:
            connection = reader.storage.connection
            assert connection is not None
            with connection() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute(f'DELETE FROM "{pg_schema}".events')
            with pytest.raises(ReadOnlyStore):
                reader.storage.write_checkpoint(None)  # type: ignore[arg-type]
            assert reader.storage.count_after(0) == 6
        finally:
            reader.close()

    def test_postgres_missing_schema_not_created(self, cli: Cli, pg_schema: str) -> None:
        """Inspecting a schema that holds no store is an error, and creates nothing."""
        done = cli("streams", "--store", POSTGRES_URL, "--schema", pg_schema)
        assert_refused(done, repr(pg_schema), "holds no eventsourcing_fn store")
        import psycopg

        with psycopg.connect(POSTGRES_URL) as conn:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema,))
            assert found.fetchall() == []


class TestRuns:
    def test_replay_one_component(self, cli: Cli, backend: Backend) -> None:
        """`replay NAME` rebuilds one component from scratch and says how many events."""
        done = cli("replay", "owners", "--json", *backend.args, *APP).json()
        assert done["components"] == ["owners"]
        assert done["events"] == 6
        with cli_app.definitions(backend.storage(), inline=False) as store:
            assert store.documents(cli_app.owners).all() == {
                "acc-1": cli_app.Owner("ann"),
                "acc-2": cli_app.Owner("bob"),
            }
        said = cli("replay", "totals", *backend.args, *APP)
        assert "replayed 'totals': 6 events" in said.stdout

    def test_rebuild_every_component(self, cli: Cli, backend: Backend) -> None:
        """`rebuild` replays every projection and process manager."""
        done = cli("rebuild", "--json", *backend.args, *APP).json()
        assert done["components"] == ["totals", "owners", "closer"]
        assert done["events"] == 18  # each of three reads the six events
        listed = cli("projections", "--json", *backend.args, *APP).json()
        assert {p["status"] for p in listed} == {"level"}
        with cli_app.definitions(backend.storage(), inline=False) as store:
            assert store.view(cli_app.totals) == 15

    def test_worker_once_sends_commands(self, cli: Cli, unapplied: Backend) -> None:
        """`worker --once` applies what the components missed, the manager's commands included."""
        assert cli("worker", "--once", *unapplied.args, *APP).returncode == 0
        events = cli("events", "account", "acc-1", "--json", *unapplied.args).json()
        assert [e["type"] for e in events][-1] == "Closed"

    def test_app_without_store_runs_on_its_own_storage(self, cli: Cli) -> None:
        """With only --app, runs and inspection use the app's own store (here in memory)."""
        stream = f"mem-{uuid.uuid4().hex[:8]}"
        cli_app.store.execute(account, stream, Open("eve"), Deposit(3)).unwrap()
        assert cli("replay", "totals", *APP).returncode == 0
        assert cli_app.store.view(cli_app.totals) >= 3
        state = cli("state", "account", stream, "--json", *APP).json()
        assert state["state"]["owner"] == "eve"


class TestBadInput:
    def test_not_a_database(self, cli: Cli, tmp_path: Path) -> None:
        """A text file, an empty file and a directory are refused and left as they were."""
        (tmp_path / "notes.txt").write_text("my notes\n")
        (tmp_path / "empty.db").write_bytes(b"")
        (tmp_path / "folder").mkdir()
        assert_refused(cli("streams", "--store", "notes.txt"), "not a SQLite database")
        assert_refused(cli("streams", "--store", "empty.db"), "empty file")
        assert_refused(cli("streams", "--store", "folder"), "is a directory")
        assert (tmp_path / "notes.txt").read_text() == "my notes\n"
        assert (tmp_path / "empty.db").read_bytes() == b""

    @pytest.mark.parametrize("command", [["streams"], ["replay", "totals", *APP]])
    def test_another_programs_database(self, cli: Cli, tmp_path: Path, command: list[str]) -> None:
        """A SQLite database that is not a store is refused, by runs too, and left untouched."""
        with sqlite3.connect(tmp_path / "other.db") as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
        conn.close()
        before = _files(tmp_path)
        assert_refused(cli(*command, "--store", "other.db"), "not an eventsourcing_fn store")
        assert _files(tmp_path) == before

    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("postgresql://postgres@127.0.0.1:1/test", ["cannot connect", "127.0.0.1:1"]),
            ("postgresql://postgres@127.0.0.1:notaport/test", ["cannot connect", "port"]),
            ("postgresql://postgres@127.0.0.1/test?nonsense=1", ["nonsense"]),
        ],
        ids=["unreachable", "bad-port", "bad-option"],
    )
    def test_bad_url(self, cli: Cli, url: str, words: list[str]) -> None:
        """An unreachable or malformed URL is one line and exit code 2."""
        assert_refused(cli("streams", "--store", url), *words)

    def test_password_kept_out_of_messages(self, cli: Cli) -> None:
        """A URL's password never shows in a message."""
        done = cli("streams", "--store", "postgresql://ann:s3cret@127.0.0.1:1/test")
        assert_refused(done, "ann@127.0.0.1:1")
        assert "s3cret" not in done.stderr

    @pytest.mark.parametrize(
        ("reference", "words"),
        [
            ("no_such_module:store", ["no module named 'no_such_module'"]),
            ("cli_app:nope", ["no attribute 'nope'"]),
            ("cli_app:not_a_store", ["is a str, not an EventStore"]),
            ("cli_app", ["expected module:attribute"]),
        ],
        ids=["module", "attribute", "not-a-store", "no-colon"],
    )
    def test_bad_app(self, cli: Cli, tmp_path: Path, reference: str, words: list[str]) -> None:
        """A wrong --app reference is one line and exit code 2."""
        populate(sqlite_storage(tmp_path / "bank.db"))
        done = cli("state", "account", "acc-1", "--store", "bank.db", "--app", reference)
        assert_refused(done, repr(reference), *words)

    def test_unknown_names(self, cli: Cli, backend: Backend) -> None:
        """An unknown stream type or component name is one line and exit code 2."""
        assert_refused(cli("events", "nope", "x", *backend.args), "unknown stream type 'nope'")
        assert_refused(cli("streams", "nope", *backend.args), "unknown stream type 'nope'")
        assert_refused(cli("state", "nope", "x", *backend.args, *APP), "unknown stream type 'nope'")
        assert_refused(cli("replay", "nope", *backend.args, *APP), "'nope'", "totals")

    def test_arguments(self, cli: Cli, tmp_path: Path) -> None:
        """Missing or bad arguments and options: one line, exit code 2."""
        populate(sqlite_storage(tmp_path / "bank.db"))
        store = ["--store", "bank.db"]
        assert_refused(cli("state", "account", "acc-1", *store), "needs --app")
        assert_refused(cli("replay", "totals", *store), "needs --app")
        assert_refused(cli("streams"), "no store")
        assert_refused(cli("nonsense"), "nonsense")
        assert_refused(cli(), "Missing command")
        assert_refused(cli("events", "account", *store), "Missing argument")
        negative = cli("state", "account", "a", "--at-version", "-1", *store, *APP)
        assert_refused(negative, "--at-version")
        assert_refused(cli("streams", "--schema", "x", *store), "--schema")
        assert_refused(cli("demo", "--json"), "the demo takes only")
        done = cli("streams", "--store", POSTGRES_URL, "--schema", "pg_nope")
        assert_refused(done, "pg_nope")


class TestSubprocess:
    def test_inspection_from_the_shell(self, backend: Backend, tmp_path: Path) -> None:
        """`python -m eventsourcing_fn` inspects both backends and exits 0."""
        listed = shell("streams", "--json", *backend.args, cwd=tmp_path).json()
        assert [s["stream_id"] for s in listed] == ["acc-1", "acc-2"]
        state = shell("state", "account", "acc-2", *backend.args, *APP, "--json", cwd=tmp_path)
        assert state.json()["state"]["balance"] == 5
        table = shell("events", "account", "acc-1", *backend.args, *APP, cwd=tmp_path)
        assert table.returncode == 0
        assert "Withdrawn(amount=10)" in table.stdout

    def test_errors_from_the_shell(self, tmp_path: Path) -> None:
        """From the shell, a bad store is one line on stderr and exit code 2, nothing created."""
        assert_refused(
            shell("events", "account", "a", "--store", "gone.db", cwd=tmp_path), "gone.db"
        )
        assert_refused(shell("streams", "--store", "gone.db", *APP, cwd=tmp_path), "gone.db")
        assert list(tmp_path.iterdir()) == []

    def test_replay_from_the_shell(self, backend: Backend, tmp_path: Path) -> None:
        """`replay` runs from the shell on both backends."""
        done = shell("replay", "closer", "--json", *backend.args, *APP, cwd=tmp_path)
        assert done.json()["events"] == 6

    def test_tail_follows_until_interrupted(self, backend: Backend, tmp_path: Path) -> None:
        """`tail` prints the log, then each new event as it commits, until Ctrl-C: exit 0."""
        args = ["tail", "--json", "--poll", "0.05", *backend.args]
        with _Running(args, tmp_path) as tail:
            seen = [json.loads(tail.line()) for _ in range(6)]
            assert [e["stream_id"] for e in seen][-1] == "acc-2"
            with cli_app.definitions(backend.storage()) as writer:
                writer.execute(account, "acc-9", Open("zed")).unwrap()
            assert json.loads(tail.line())["stream_id"] == "acc-9"
            assert tail.interrupt() == 0

    def test_worker_runs_until_interrupted(self, unapplied: Backend, tmp_path: Path) -> None:
        """`worker` applies the log and keeps at it until Ctrl-C, then exits 0."""
        args = ["worker", "--poll", "0.05", "--lease", "1", *unapplied.args, *APP]
        with _Running(args, tmp_path) as worker:
            _wait_level(unapplied, worker)
            with cli_app.definitions(unapplied.storage(), inline=False) as writer:
                writer.execute(account, "acc-5", Open("fay"), Deposit(7)).unwrap()
            _wait_level(unapplied, worker)
            assert worker.interrupt() == 0
            assert "worker stopped" in worker.rest()
        with cli_app.definitions(unapplied.storage(), inline=False) as store:
            assert store.view(cli_app.totals) == 22


def _wait_level(backend: Backend, worker: _Running) -> None:
    """Until every component has applied the whole log (read as a worker's status reads it)."""
    with cli_app.definitions(backend.storage(), inline=False) as store:
        watcher = Worker(store)
        for _ in range(600):
            statuses = watcher.status()
            if all(s.lag_events == 0 for s in statuses):
                return
            time.sleep(0.05)
    raise AssertionError(f"components never caught up: {statuses}; {worker.stop()}")


class _Running:
    """A command running in a process of its own, its output read line by line."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventsourcing_fn", *args],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in stdout], daemon=True).start()

    def __enter__(self) -> _Running:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def line(self, timeout: float = 30) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output; stderr: {self._stderr()}") from None

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def rest(self) -> str:
        self.proc.wait(timeout=30)
        time.sleep(0.1)  # the reader thread drains what is left
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return "".join(out)

    def stop(self) -> str:
        """Kill the command; what it wrote on stderr."""
        self.proc.kill()
        self.proc.wait()
        return self._stderr()

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()
