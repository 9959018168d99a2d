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

from training.errors import ConfigError, WordvecError

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
# The table's indexes by name, each with the statement that creates it.
INDEXES = {
    name: f"CREATE INDEX IF NOT EXISTS {name} ON jobs ({columns})"
    for name, columns in [
        ("jobs_status", "status, created_at"),
        ("jobs_submitter", "submitter, created_at"),
    ]
}


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
    makes a commit survive power loss. A write waits up to `lock_wait`
    seconds for the write lock.
    """

    def __init__(self, path: Path, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_wait = lock_wait

    def describe(self) -> str:
        return str(self.path)

    @contextmanager
    def connect(self) -> Iterator[Session]:
        db = sqlite3.connect(self.path, timeout=self.lock_wait, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={round(self.lock_wait * 1000)}")
            yield Session(db, "?")
        except sqlite3.OperationalError as exc:
            # SQLITE_BUSY after the busy timeout: the same passing condition
            # as PostgreSQL's lock timeout (a 503, a retried attempt).
            primary = exc.sqlite_errorcode & 0xFF  # the extended code's base
            if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise _busy_sqlite(self.describe(), self.lock_wait) from exc
            raise
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
            for index in INDEXES.values():
                db.execute(index)


class PostgresBackend:
    """The job table in a PostgreSQL database, shared by several machines.

    A write transaction locks the table in SHARE ROW EXCLUSIVE mode: that
    mode conflicts with itself and with every INSERT, UPDATE and DELETE,
    but not with SELECT, so it is SQLite's BEGIN IMMEDIATE again (one writer
    at a time, readers go on). Row locks (SELECT ... FOR UPDATE) would not
    do: create()'s limit checks count rows that do not exist yet. A
    statement waits up to `lock_wait` seconds for a lock (lock_timeout).
    """

    def __init__(self, url: str, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "WORDVEC_DATABASE_URL names PostgreSQL, but psycopg is not "
                "installed; install wordvec with the `postgres` extra "
                "(pip install 'wordvec[postgres]')"
            ) from exc
        self.url = url
        self.lock_wait = lock_wait

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
                options=f"-c lock_timeout={round(self.lock_wait * 1000)}ms"
                " -c idle_in_transaction_session_timeout="
                f"{IDLE_IN_TRANSACTION_SECONDS}s",
            )
        except psycopg.OperationalError as exc:
            raise _unreachable(self.describe(), exc) from exc
        try:
            yield Session(db, "%s")
        except psycopg.errors.LockNotAvailable as exc:
            raise _busy(self.describe(), self.lock_wait) from exc
        except psycopg.OperationalError as exc:
            # The server went away, or ended the session.
            raise _unreachable(self.describe(), exc) from exc
        finally:
            db.close()

    def transaction(self) -> AbstractContextManager[Session]:
        return _write_transaction(
            self.connect(), "BEGIN", "LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE"
        )

    def create_schema(self) -> None:
        # ALTER TABLE and CREATE INDEX lock the table against writers even
        # when there is nothing to do, so they run only for what is missing.
        # Two processes creating at once would race (CREATE ... IF NOT EXISTS
        # is not atomic in PostgreSQL); an advisory lock, freed at commit,
        # makes them take turns.
        with self.connect() as db:
            if _missing_schema(db) == ([], []):
                return
            db.execute("BEGIN")
            db.execute("SELECT pg_advisory_xact_lock(hashtext('wordvec.jobs'))")
            db.execute(table_ddl("DOUBLE PRECISION"))
            columns, indexes = _missing_schema(db)
            for column in columns:
                kind = ADDED_COLUMNS[column].format(real="DOUBLE PRECISION")
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
            for name in indexes:
                db.execute(INDEXES[name])
            db.execute("COMMIT")
        if columns or indexes:
            added = ", ".join([*columns, *indexes])
            logger.info("job table in %s: added %s", self.describe(), added)


def _missing_schema(db: Session) -> tuple[list[str], list[str]]:
    """Return the added columns and the indexes the PostgreSQL job table
    lacks; all of them (and the table) when there is no table yet. Reads the
    catalogs only, so it waits for no lock on the table."""
    present = {
        row["column_name"]
        for row in db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'jobs'"
        )
    }
    indexed = {
        row["indexname"]
        for row in db.execute(
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = 'jobs'"
        )
    }
    if not present:
        return list(ADDED_COLUMNS), list(INDEXES)
    columns = [column for column in ADDED_COLUMNS if column not in present]
    return columns, [name for name in INDEXES if name not in indexed]


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


class DatabaseUnavailable(WordvecError):
    """The job database cannot be reached (wrong address, down, refused), or
    did not grant a lock in time (JobTableBusy).

    A passing condition, not bad input: the API answers 503 and a worker
    retries the attempt. The CLI reports it in one line at start-up, as it
    does every WordvecError. `summary` says what happened without the
    database's address, for a job's error.
    """

    summary = "the job database could not be reached"


class JobTableBusy(DatabaseUnavailable):
    """A statement waited the lock wait for a lock on the job table and gave
    up: another session held the lock all that time."""

    summary = "a lock on the job table was not granted within the lock wait"


def _unreachable(where: str, cause: Exception) -> DatabaseUnavailable:
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return DatabaseUnavailable(
        f"cannot connect to the job database {where}: {reason}; check "
        "WORDVEC_DATABASE_URL and that the server accepts connections"
    )


def _busy(where: str, lock_wait: float) -> JobTableBusy:
    return JobTableBusy(
        f"a lock on the job table in {where} was not granted within {lock_wait:g} s "
        "(the lock wait): another session held it; look for a long transaction "
        "on the table (pg_stat_activity) and retry"
    )


def _busy_sqlite(where: str, lock_wait: float) -> JobTableBusy:
    return JobTableBusy(
        f"the job table {where} stayed locked for {lock_wait:g} s (the lock "
        "wait): another process held its write lock; retry"
    )


def make_backend(
    path: Path, database_url: str | None, lock_wait: float = LOCK_WAIT_SECONDS
) -> Backend:
    """Return PostgreSQL at `database_url` when one is given, else SQLite at
    `path`; a write waits up to `lock_wait` seconds for the table's lock.
    Raises ConfigError for a URL of another database."""
    if database_url is None or not database_url.strip():
        return SqliteBackend(path, lock_wait)
    check_database_url(database_url)
    return PostgresBackend(database_url, lock_wait)


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
