"""Where the job table lives: SQLite in the data directory, or PostgreSQL.

JobStore (app/jobs/store.py) writes its SQL once, in SQLite's dialect with
`?` placeholders; a backend here supplies what differs: how to connect,
how to take the table's write lock, the column types and the placeholder
style. Both backends give the same guarantee to a write transaction: no
other write to the table runs between its first read and its commit, so
every read-then-write (idempotency and limit checks before an insert, the
lease check before a success, the sweep's scan and recovery) sees a table
nobody else changes under it. Plain reads never wait for a writer.
"""

import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from training.errors import ConfigError

logger = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql", "postgres")
# Seconds a statement waits for the write lock before it gives up, on both
# backends (SQLite's busy timeout, PostgreSQL's lock_timeout).
LOCK_WAIT_SECONDS = 30
# Seconds a PostgreSQL session may sit inside a transaction waiting for its
# client (a worker stopped, or its machine gone, inside fenced_success)
# before the server ends it and frees the write lock. The block it waits
# for is a rename or two; its commit then fails and the switch is undone.
IDLE_IN_TRANSACTION_SECONDS = 60

_COLUMNS = """
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    upload TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    enqueued_at {real},
    started_at {real},
    finished_at {real},
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease TEXT,
    worker TEXT,
    heartbeat_at {real},
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress TEXT,
    base_version TEXT,
    result_version TEXT,
    result TEXT,
    error TEXT,
    submitter TEXT,
    attempt_started_at {real}"""
# Columns added after the first release, for tables created before them.
ADDED_COLUMNS = {"submitter": "TEXT", "attempt_started_at": "{real}"}
INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_submitter ON jobs (submitter, created_at)",
)


def table_ddl(real: str) -> str:
    """Return CREATE TABLE for the job table with `real` as the float type."""
    return f"CREATE TABLE IF NOT EXISTS jobs ({_COLUMNS.format(real=real)}\n)"


class Cursor(Protocol):
    """What JobStore uses of a DB-API cursor; rows are read by column name."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Session:
    """One open connection, taking SQL in SQLite's `?` placeholder style."""

    def __init__(self, connection: Any, placeholder: str) -> None:
        self.connection = connection
        self._placeholder = placeholder

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.connection.execute(self._sql(sql), args)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.connection.cursor().executemany(self._sql(sql), rows)

    def _sql(self, sql: str) -> str:
        # No statement of the store holds a literal `?` or `%`, so a plain
        # replace is safe and psycopg needs no escaping.
        return sql if self._placeholder == "?" else sql.replace("?", self._placeholder)


class Backend(Protocol):
    """A database that can hold the job table."""

    def describe(self) -> str: ...

    def connect(self) -> AbstractContextManager[Session]: ...

    def transaction(self) -> AbstractContextManager[Session]: ...

    def create_schema(self) -> None: ...


class SqliteBackend:
    """The job table in one SQLite file (WAL, synchronous=FULL).

    Each call opens its own connection: they are cheap and must not cross
    threads. WAL lets readers run while a writer commits, and synchronous=FULL
    makes a commit survive power loss.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return str(self.path)

    @contextmanager
    def connect(self) -> Iterator[Session]:
        db = sqlite3.connect(self.path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
            yield Session(db, "?")
        finally:
            db.close()

    def transaction(self) -> AbstractContextManager[Session]:
        # BEGIN IMMEDIATE takes the write lock up front, so a read-then-write
        # (idempotency check, claim) cannot interleave with another writer.
        return _write_transaction(self.connect(), "BEGIN IMMEDIATE")

    def create_schema(self) -> None:
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(table_ddl("REAL"))
            present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    kind = kind.format(real="REAL")
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
            for index in INDEXES:
                db.execute(index)


class PostgresBackend:
    """The job table in a PostgreSQL database, shared by several machines.

    A write transaction locks the table in SHARE ROW EXCLUSIVE mode: that
    mode conflicts with itself and with every INSERT, UPDATE and DELETE,
    but not with SELECT, so it is SQLite's BEGIN IMMEDIATE again (one writer
    at a time, readers go on). Row locks (SELECT ... FOR UPDATE) would not
    do: create()'s limit checks count rows that do not exist yet.
    """

    def __init__(self, url: str) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "WORDVEC_DATABASE_URL names PostgreSQL, but psycopg is not "
                "installed; install wordvec with the `postgres` extra "
                "(pip install 'wordvec[postgres]')"
            ) from exc
        self.url = url

    def describe(self) -> str:
        return redact_url(self.url)

    # TODO: a connection per call costs a TCP (and TLS) handshake on every
    # job request; a psycopg_pool pool per process would save it, once job
    # request rates are high enough for that to show.
    @contextmanager
    def connect(self) -> Iterator[Session]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            db = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=10,
                # Notice a server that went away mid-statement within ~25 s.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                options=f"-c lock_timeout={LOCK_WAIT_SECONDS}s"
                " -c idle_in_transaction_session_timeout="
                f"{IDLE_IN_TRANSACTION_SECONDS}s",
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(self.describe(), exc) from exc
        try:
            yield Session(db, "%s")
        except psycopg.OperationalError as exc:
            # The server went away, or the write lock did not come in time.
            raise DatabaseUnavailable(self.describe(), exc) from exc
        finally:
            db.close()

    def transaction(self) -> AbstractContextManager[Session]:
        return _write_transaction(
            self.connect(), "BEGIN", "LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE"
        )

    def create_schema(self) -> None:
        # Two processes starting at once would race on CREATE TABLE IF NOT
        # EXISTS (it is not atomic in PostgreSQL); an advisory lock, freed at
        # commit, makes them take turns.
        with self.connect() as db:
            db.execute("BEGIN")
            db.execute("SELECT pg_advisory_xact_lock(hashtext('wordvec.jobs'))")
            db.execute(table_ddl("DOUBLE PRECISION"))
            for column, kind in ADDED_COLUMNS.items():
                kind = kind.format(real="DOUBLE PRECISION")
                db.execute(f"ALTER TABLE jobs ADD COLUMN IF NOT EXISTS {column} {kind}")
            for index in INDEXES:
                db.execute(index)
            db.execute("COMMIT")


@contextmanager
def _write_transaction(
    connection: AbstractContextManager[Session], begin: str, *then: str
) -> Iterator[Session]:
    """Run `begin` and the statements `then` that take the write lock, yield
    the session, and commit, or roll back on any exception."""
    with connection as db:
        db.execute(begin)
        try:
            for statement in then:
                db.execute(statement)
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class DatabaseUnavailable(ConfigError):
    """The job database cannot be reached (wrong address, down, refused) or
    did not grant its write lock in time. A ConfigError, so that the CLI
    reports it in one line at start-up; the API answers 503."""

    def __init__(self, where: str, cause: Exception) -> None:
        reason = " ".join(str(cause).split()) or type(cause).__name__
        super().__init__(
            f"cannot connect to the job database {where}: {reason}; check "
            "WORDVEC_DATABASE_URL and that the server accepts connections"
        )


def make_backend(path: Path, database_url: str | None) -> Backend:
    """Return PostgreSQL at `database_url` when one is given, else SQLite at
    `path`. Raises ConfigError for a URL of another database."""
    if database_url is None or not database_url.strip():
        return SqliteBackend(path)
    check_database_url(database_url)
    return PostgresBackend(database_url)


def check_database_url(url: str) -> str:
    """Return `url` if it names a PostgreSQL database; raise ConfigError
    (ValueError) saying what is accepted otherwise."""
    scheme = urlsplit(url).scheme
    if scheme not in POSTGRES_SCHEMES or not re.match(r"^[a-z]+://", url):
        raise ConfigError(
            f"WORDVEC_DATABASE_URL {redact_url(url)!r} is not supported; leave it "
            "unset for SQLite in the data directory or give "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    return url


def redact_url(url: str) -> str:
    """Return `url` with its password, if any, replaced by `***`."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "(unreadable URL)"
