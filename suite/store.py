"""The only door to DuckDB: short units of work under a cross-process lock.

DuckDB allows one read-write process or many read-only ones per file, never both, so no
process keeps the file open: `read()` and `write()` open it, do the work and close it,
under a shared (readers) or exclusive, writer-preferring (writers) `flock`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from suite.errors import StoreError
from suite.home import Home, resolve_home
from suite.migrations import MIGRATIONS, Migration

log = logging.getLogger("aiops.store")

DEFAULT_LOCK_TIMEOUT = 300.0


class _FileLock:
    """One `flock` on one open file description (so threads of one process exclude each
    other too), polled so that a wait can time out with a readable error."""

    def __init__(self, path: Path, exclusive: bool, timeout: float) -> None:
        self.path = path
        self.exclusive = exclusive
        self.timeout = timeout
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        op = (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.timeout
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, op)
                self.fd = fd
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(fd)
                kind = "exclusive" if self.exclusive else "shared"
                raise StoreError(
                    f"store busy: waited {self.timeout:.0f} s for the {kind} lock {self.path}; "
                    "another aiops process holds it (a stuck worker or a long query?)"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def _wrap_duckdb_error(e: duckdb.Error, sql: str | None = None) -> StoreError:
    title = type(e).__name__.replace("Exception", " error").replace("Error error", "error")
    first = str(e).strip().splitlines()[0] if str(e).strip() else title
    where = f"\n  in: {sql.strip()[:300]}" if sql else ""
    return StoreError(f"DuckDB {title.strip()}: {first}{where}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT on an open connection; ROLLBACK (and re-raise) on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class Store:
    """`with store.read() as con:` / `with store.write() as con:`; queries return polars."""

    def __init__(
        self,
        home: Home | str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.home = home if isinstance(home, Home) else resolve_home(home)
        self.lock_timeout = lock_timeout
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.home.db_path

    # -- locking --------------------------------------------------------------------
    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.home.root.mkdir(parents=True, exist_ok=True)
        # The gate makes writers preferred: a waiting writer holds it, so new readers
        # queue behind the writer instead of starving it.
        gate = _FileLock(self.path.with_name(self.path.name + ".gate"), True, self.lock_timeout)
        data = _FileLock(
            self.path.with_name(self.path.name + ".lock"), exclusive, self.lock_timeout
        )
        gate.acquire()
        try:
            data.acquire()
        finally:
            gate.release()
        try:
            yield
        finally:
            data.release()

    # -- units of work --------------------------------------------------------------
    @contextmanager
    def _connection(self, *, exclusive: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """The only duckdb.connect in the suite: under the lock, closed after the work."""
        with self._locked(exclusive=exclusive):
            try:
                con = duckdb.connect(str(self.path), read_only=not exclusive)
            except duckdb.Error as e:
                raise _wrap_duckdb_error(e) from None
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for one unit of work; other readers may run at once."""
        self.ensure_schema()
        with self._connection(exclusive=False) as con:
            yield con

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, alone on the file; keep the work inside short."""
        self.ensure_schema()
        with self._write_unlocked_schema() as con:
            yield con

    @contextmanager
    def _write_unlocked_schema(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connection(exclusive=True) as con:
            yield con

    # -- schema ---------------------------------------------------------------------
    def ensure_schema(self) -> list[str]:
        """Apply missing migrations (once per process); returns the names applied."""
        if self._schema_ready:
            return []
        with self._schema_lock:
            if self._schema_ready:
                return []
            if not self._missing_migrations():
                self._schema_ready = True
                return []
            applied = self._migrate(MIGRATIONS)
            self._schema_ready = True
            return applied

    def _missing_migrations(self) -> list[str]:
        """Names not yet applied, checked under the shared lock so a new reader does not
        wait behind other readers for the exclusive one."""
        if not self.path.exists():
            return [m.name for m in MIGRATIONS]
        with self._connection(exclusive=False) as con:
            try:
                done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
            except duckdb.CatalogException:
                done = set()
        return [m.name for m in MIGRATIONS if m.name not in done]

    def _migrate(self, migrations: Sequence[Migration]) -> list[str]:
        with self._write_unlocked_schema() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
            )
            done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
            applied = []
            for m in migrations:
                if m.name in done:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    for stmt in m.statements:
                        con.execute(stmt)
                    con.execute(
                        "INSERT INTO schema_migrations VALUES (?, now()::TIMESTAMP)", [m.name]
                    )
                    con.execute("COMMIT")
                except duckdb.Error as e:
                    con.execute("ROLLBACK")
                    raise StoreError(f"migration {m.name} failed: {e}") from None
                log.info("applied migration %s", m.name)
                applied.append(m.name)
            return applied

    # -- queries --------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run read-only SQL and return a polars DataFrame."""
        with self.read() as con:
            try:
                return con.sql(sql, params=params).pl()
            except duckdb.Error as e:
                raise _wrap_duckdb_error(e, sql) from None
            except AttributeError:
                # A statement with no result (e.g. SET) gives no relation.
                return pl.DataFrame()

    def query_arrow(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> pa.Table:
        with self.read() as con:
            try:
                rel = con.sql(sql, params=params)
            except duckdb.Error as e:
                raise _wrap_duckdb_error(e, sql) from None
            if rel is None:
                return pa.table({})
            try:
                return rel.to_arrow_table()
            except duckdb.Error as e:
                raise _wrap_duckdb_error(e, sql) from None

    def applied_migrations(self) -> list[str]:
        with self.read() as con:
            rows = con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
        return [r[0] for r in rows]
