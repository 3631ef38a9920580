"""The DuckDB catalog: one file, one writer process, readers read-only.

A writer that finds the file locked by another process waits for it (saying so on stderr) up to a lock timeout
(``--lock-timeout``, env ``REREAD_LOCK_TIMEOUT``), then fails with ``CatalogLockedError``. A reader never needs the
lock: while a writer holds the file it reads a snapshot (a copy of the file and its write-ahead log as of the last
commit), so ``reread search`` and ``reread runs`` work during a build.

Bulk data (documents, chunks, vectors) lives in Parquet/npy artifacts that workers write; the catalog records what
exists, where, keyed by content hashes, plus runs, rejections and reports. Registration of an artifact and its detail rows
happens in one transaction, so a run killed at any point leaves either all of an artifact's rows or none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from catalog.errors import CatalogLockedError, CatalogSchemaError, RereadError, StorageError, is_disk_full
from catalog.processes import process_alive
from catalog.records import Rejection

SCHEMA_VERSION = 1
CATALOG_FILE = "catalog.duckdb"

# Each statement is idempotent: a writer runs them all on every open, so a table added later (fetch_records) appears
# in an existing catalog of the same version. Adding a table keeps SCHEMA_VERSION; changing an existing one bumps it.
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, variant VARCHAR, command VARCHAR, status VARCHAR,
        started_at TIMESTAMP, finished_at TIMESTAMP, stats JSON)""",
    # Run liveness (added columns keep the schema version: older catalogs gain them, NULL for their runs): the
    # process that runs it, its last heartbeat, and the Prefect flow run it belongs to.
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid BIGINT",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMP",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS flow_run_id VARCHAR",
    """CREATE TABLE IF NOT EXISTS sources (
        variant VARCHAR, source VARCHAR, type VARCHAR, path VARCHAR, config_hash VARCHAR, fingerprint VARCHAR,
        registered_at TIMESTAMP, PRIMARY KEY (variant, source))""",
    """CREATE TABLE IF NOT EXISTS stage_outputs (
        artifact_key VARCHAR PRIMARY KEY, stage VARCHAR, stage_version VARCHAR, config_hash VARCHAR,
        input_hash VARCHAR, variant VARCHAR, shard VARCHAR, path VARCHAR, row_count BIGINT, content_hash VARCHAR,
        stats JSON, run_id VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS raw_documents (
        doc_id VARCHAR, raw_hash VARCHAR, source VARCHAR, url VARCHAR, title VARCHAR, input_ref VARCHAR,
        n_bytes BIGINT, content_type VARCHAR, artifact_key VARCHAR, PRIMARY KEY (doc_id, raw_hash))""",
    """CREATE TABLE IF NOT EXISTS extracted_texts (
        doc_id VARCHAR, raw_hash VARCHAR, extractor VARCHAR, extractor_version VARCHAR, text_hash VARCHAR,
        n_chars BIGINT, artifact_key VARCHAR, PRIMARY KEY (doc_id, raw_hash, extractor, extractor_version))""",
    """CREATE TABLE IF NOT EXISTS rejections (
        artifact_key VARCHAR, run_id VARCHAR, stage VARCHAR, source VARCHAR, input_ref VARCHAR, reason VARCHAR,
        detail VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS contamination_hits (
        artifact_key VARCHAR, benchmark VARCHAR, item_id VARCHAR, doc_id VARCHAR, chunk_id VARCHAR, n_hits BIGINT)""",
    """CREATE TABLE IF NOT EXISTS contamination_summary (
        artifact_key VARCHAR, benchmark VARCHAR, items_checked BIGINT, items_found BIGINT, rate DOUBLE,
        items_too_short BIGINT, template_keys BIGINT)""",
    """CREATE TABLE IF NOT EXISTS eval_samples (
        artifact_key VARCHAR, variant VARCHAR, task VARCHAR, reader VARCHAR, strategy VARCHAR, question_id VARCHAR,
        sample_index BIGINT, prompt_index BIGINT, seed BIGINT, prompt_tokens BIGINT, completion_tokens BIGINT,
        text VARCHAR, answer VARCHAR, outcome VARCHAR, correct BOOLEAN, answer_class BIGINT, chunk_ids VARCHAR[],
        query_tokens BIGINT, rerank_pair_tokens BIGINT)""",
    # each passage's document id in its source, beside chunk_ids (added after the table; old catalogs gain it)
    "ALTER TABLE eval_samples ADD COLUMN IF NOT EXISTS source_doc_ids VARCHAR[]",
    # Every document dedup removed: which duplicate (exact or near) of which kept document.
    """CREATE TABLE IF NOT EXISTS dedup_removals (
        artifact_key VARCHAR, doc_id VARCHAR, kind VARCHAR, kept_doc_id VARCHAR)""",
    # Every artifact a run made or took as it was: a build's whole lineage, outputs that another run or variant
    # registered first included (stage_outputs.run_id names only the run that registered an output).
    """CREATE TABLE IF NOT EXISTS run_artifacts (
        run_id VARCHAR, artifact_key VARCHAR, PRIMARY KEY (run_id, artifact_key))""",
    """CREATE TABLE IF NOT EXISTS datastores (
        variant VARCHAR PRIMARY KEY, variant_path VARCHAR, index_key VARCHAR, chunk_keys JSON, embed_key VARCHAR,
        built_at TIMESTAMP, run_id VARCHAR)""",
    # One embed artifact per chunk part (embed stage 2); embed_key stays for datastores recorded before (one for all).
    "ALTER TABLE datastores ADD COLUMN IF NOT EXISTS embed_keys JSON",
    # The latest fetch of every URL of a crawl source (the crawl folder's fetch-records.parquet, mirrored).
    """CREATE TABLE IF NOT EXISTS fetch_records (
        variant VARCHAR, source VARCHAR, url VARCHAR, final_url VARCHAR, outcome VARCHAR, change VARCHAR,
        status BIGINT, reason VARCHAR, detail VARCHAR, etag VARCHAR, last_modified VARCHAR, content_hash VARCHAR,
        content_type VARCHAR, bytes BIGINT, redirects BIGINT, warc_file VARCHAR, fetched_at TIMESTAMP, run_id VARCHAR,
        PRIMARY KEY (variant, source, url))""",
]

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "lock on file")
LOCK_TIMEOUT_ENV = "REREAD_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 600.0
_LOCK_POLL_S = 0.5
_SNAPSHOT_TRIES = 20


def lock_timeout_default() -> float:
    """Seconds a writer waits for the catalog lock: ``REREAD_LOCK_TIMEOUT`` when set, else 10 minutes."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise RereadError(f"{LOCK_TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None


def _is_lock_error(exc: duckdb.Error) -> bool:
    return any(marker in str(exc) for marker in _LOCK_MARKERS)


def _holder(exc: duckdb.Error) -> str:
    match = re.search(r"\(PID (\d+)\)", str(exc))
    return f"process {match.group(1)}" if match else "another process"


def _file_state(path: Path) -> tuple:
    wal = path.with_name(path.name + ".wal")
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None for p in (path, wal))


def _snapshot(path: Path) -> Path:
    """A private copy of the catalog file and its write-ahead log, taken while neither changed (a writer commits
    between tries): DuckDB replays the copied log on open, so the copy holds every committed transaction."""
    folder = Path(tempfile.mkdtemp(prefix="reread-catalog-snapshot-"))
    copy = folder / path.name
    for _ in range(_SNAPSHOT_TRIES):
        before = _file_state(path)
        try:
            shutil.copyfile(path, copy)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
            else:
                copy.with_name(copy.name + ".wal").unlink(missing_ok=True)
        except FileNotFoundError:  # the log was checkpointed away while copying
            continue
        if _file_state(path) == before:
            return copy
        time.sleep(0.1)
    shutil.rmtree(folder, ignore_errors=True)
    raise CatalogLockedError(f"{path}: a writer changed the catalog during every snapshot attempt; try again")


@dataclass(frozen=True)
class StageOutput:
    """One registered artifact: what stage made it, from what, where it lives and how many rows it has."""

    artifact_key: str
    stage: str
    stage_version: str
    config_hash: str
    input_hash: str
    variant: str
    shard: str
    path: str
    row_count: int
    content_hash: str
    stats: dict[str, Any]
    run_id: str | None = None


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> None:
    """Run a statement to completion (DuckDB 2 refuses new work while a result is unfinished)."""
    con.execute(sql, list(params) if params else []).complete()


def _fetchone(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
    rows = con.execute(sql, list(params) if params else []).fetchall()  # fetchall finishes the result
    return rows[0] if rows else None


def _link_run_artifact(con: duckdb.DuckDBPyConnection, run_id: str, artifact_key: str) -> None:
    _exec(con, "INSERT OR IGNORE INTO run_artifacts VALUES (?, ?)", [run_id, artifact_key])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


HEARTBEAT_S = 30.0
# A run whose heartbeat is this old is dead wherever it ran (another machine, or a pid since reused): ten missed beats.
STALE_AFTER_S = 10 * HEARTBEAT_S


def run_is_dead(run: dict[str, Any], now: datetime | None = None) -> bool:
    """A ``running`` run whose process is gone: it ran on this machine and its pid is not alive, or its heartbeat
    (or start, for runs recorded before heartbeats) is older than ``STALE_AFTER_S``."""
    if run["status"] != "running":
        return False
    if run.get("pid") and run.get("host") == socket.gethostname() and not process_alive(int(run["pid"])):
        return True
    last_sign = run.get("heartbeat_at") or run["started_at"]
    return ((now or _now()) - last_sign).total_seconds() > STALE_AFTER_S


class Catalog:
    """A connection to the catalog file. Open read-write in exactly one process (the flow's), read-only elsewhere.

    Thread-safe: every statement goes through one connection under a lock (DuckDB connections are not shareable
    across threads without cursors, and funnelling writes through one place is the point).
    """

    # One DuckDB connection per catalog file per process, shared by every Catalog object on it: DuckDB refuses a
    # second connection to a file with another configuration (a read-only reader inside the writing flow), and a
    # single connection is the single writer. Reference-counted; the last close() closes it.
    # (connection, statement lock, reference count, read-only, snapshot folder to delete on the last close)
    _open: dict[Path, tuple[duckdb.DuckDBPyConnection, threading.RLock, list[int], bool, Path | None]] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str | Path, read_only: bool = False, lock_timeout: float | None = None):
        """``read_only``: read the file, or a snapshot of it while another process writes it. A writer waits up to
        ``lock_timeout`` seconds (default ``lock_timeout_default()``) for another writer to finish."""
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise RereadError(f"{self.path}: no catalog here yet (run `reread ingest` or `reread build` first)")
        key = self.path.resolve()
        with Catalog._open_lock:
            shared = Catalog._open.get(key)
            if shared is not None and not read_only and shared[3]:
                raise RereadError(f"{self.path}: open read-only in this process; close it before writing")
            if shared is None:
                if read_only:
                    con, snapshot = self._connect_reader()
                else:
                    con, snapshot = (
                        self._connect_writer(lock_timeout_default() if lock_timeout is None else lock_timeout),
                        None,
                    )
                shared = (con, threading.RLock(), [0], read_only, snapshot)
                Catalog._open[key] = shared
            self._con, self._lock, self._refs, _, self._snapshot = shared
            self._refs[0] += 1
        self._key = key
        self._closed = False
        self._heartbeats: dict[str, tuple[threading.Event, threading.Thread]] = {}
        self._check_or_create_schema()

    def _connect(self, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        config = {"threads": 2, "autoinstall_known_extensions": False, "autoload_known_extensions": False}
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            if _is_lock_error(exc):
                raise
            if is_disk_full(exc):
                raise StorageError(
                    f"{self.path}: no space left on the data dir's filesystem to open the catalog; free space and "
                    "run again"
                ) from None
            raise RereadError(
                f"{self.path}: cannot open the catalog ({exc}); if the file is damaged, restore it from a backup "
                "or start a new --data-dir (the artifacts under artifacts/ stay usable)"
            ) from None

    def _connect_writer(self, lock_timeout: float) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + lock_timeout
        announced = False
        while True:
            try:
                return self._connect(self.path, read_only=False)
            except duckdb.Error as exc:
                if time.monotonic() >= deadline:
                    raise CatalogLockedError(
                        f"{self.path}: the catalog is locked by {_holder(exc)} (a build, refresh or evaluation "
                        f"writing it); gave up after waiting {lock_timeout:g} s (--lock-timeout)"
                    ) from None
                if not announced:  # not print(): a Prefect flow with log_prints would turn it into a log record
                    sys.stderr.write(
                        f"waiting for the catalog lock: {self.path} is being written by {_holder(exc)}; "
                        f"waiting up to {lock_timeout:g} s (--lock-timeout)\n"
                    )
                    sys.stderr.flush()
                    announced = True
                time.sleep(_LOCK_POLL_S)

    def _connect_reader(self) -> tuple[duckdb.DuckDBPyConnection, Path | None]:
        try:
            return self._connect(self.path, read_only=True), None
        except duckdb.Error:  # a writer holds it: read what it has committed so far
            pass
        copy = _snapshot(self.path)
        try:
            return self._connect(copy, read_only=True), copy.parent
        except BaseException:
            shutil.rmtree(copy.parent, ignore_errors=True)
            raise

    @classmethod
    def in_data_dir(cls, data_dir: str | Path, read_only: bool = False, lock_timeout: float | None = None) -> Catalog:
        return cls(Path(data_dir) / CATALOG_FILE, read_only=read_only, lock_timeout=lock_timeout)

    @property
    def is_snapshot(self) -> bool:
        """Reading a copy because another process was writing the file when this one opened it."""
        return self._snapshot is not None

    # ---------------------------------------------------------------- schema
    def _check_or_create_schema(self) -> None:
        with self._lock:
            has_meta = _fetchone(self._con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'")[
                0
            ]
            if has_meta:
                row = _fetchone(self._con, "SELECT value FROM meta WHERE key = 'schema_version'")
                version = int(row[0]) if row else None
                if version != SCHEMA_VERSION:
                    raise CatalogSchemaError(
                        f"{self.path}: catalog schema version {version}, this Reread needs {SCHEMA_VERSION}; "
                        "use a new --data-dir or migrate the catalog"
                    )
            elif self.read_only:
                raise CatalogSchemaError(f"{self.path}: not a Reread catalog (no meta table)")
            if self.read_only:
                return
            with self.transaction():
                for stmt in _SCHEMA:
                    _exec(self._con, stmt)
                if not has_meta:
                    _exec(self._con, "INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    @property
    def schema_version(self) -> int:
        return int(self.query_one("SELECT value FROM meta WHERE key = 'schema_version'")[0])

    # ---------------------------------------------------------------- plumbing
    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A full disk is an error naming the catalog, not a DuckDB traceback."""
        try:
            yield
        except duckdb.Error as exc:
            if is_disk_full(exc):
                raise StorageError(
                    f"{self.path}: no space left on the data dir's filesystem to write the catalog; free space "
                    "and run again (the last committed state is kept)"
                ) from None
            raise

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock, self._writing():
            _exec(self._con, "BEGIN TRANSACTION")
            try:
                yield self._con
            except BaseException:
                with suppress(duckdb.Error):  # a connection that failed mid-write may refuse even the rollback
                    _exec(self._con, "ROLLBACK")
                raise
            _exec(self._con, "COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self._lock, self._writing():
            _exec(self._con, sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        with self._lock:
            relation = self._con.sql(sql, params=list(params) if params else None)
            return relation.pl() if relation is not None else pl.DataFrame()

    def query_one(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        with self._lock:
            return _fetchone(self._con, sql, params or [])

    def close(self) -> None:
        for run_id in list(self._heartbeats):
            self._stop_heartbeat(run_id)
        with Catalog._open_lock:
            if self._closed:
                return
            self._closed = True
            self._refs[0] -= 1
            if self._refs[0] == 0:
                del Catalog._open[self._key]
                with self._lock:
                    self._con.close()
                if self._snapshot is not None:
                    shutil.rmtree(self._snapshot, ignore_errors=True)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not self.read_only:
            for run_id in list(self._heartbeats):  # runs the exception cut short
                status = "failed" if isinstance(exc, Exception) else "interrupted"  # Ctrl-C, SystemExit
                with suppress(duckdb.Error):
                    self.finish_run(run_id, status, {"error": f"{type(exc).__name__}: {exc}"})
        self.close()

    # ---------------------------------------------------------------- runs
    def start_run(self, variant: str, command: str, flow_run_id: str | None = None) -> str:
        """Record a run of this process, with a heartbeat every ``HEARTBEAT_S`` until ``finish_run``. A run this
        Catalog object leaves unfinished is recorded failed when an exception leaves its ``with`` block."""
        run_id = uuid.uuid4().hex[:12]
        now = _now()
        self.execute(
            "INSERT INTO runs (run_id, variant, command, status, started_at, host, pid, heartbeat_at, flow_run_id)"
            " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            [run_id, variant, command, now, socket.gethostname(), os.getpid(), now, flow_run_id],
        )
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(run_id, stop), name=f"heartbeat-{run_id}", daemon=True)
        self._heartbeats[run_id] = (stop, beat)
        beat.start()
        return run_id

    def _heartbeat(self, run_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            with self._lock:
                if stop.is_set():  # finished (or the connection closed) while this beat waited for the lock
                    return
                with suppress(duckdb.Error):  # a missed beat is harmless; the next one (or finish_run) follows
                    _exec(self._con, "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [_now(), run_id])

    def _stop_heartbeat(self, run_id: str) -> None:
        """Stop the run's heartbeat thread. Not joined: the caller may hold the connection's lock (inside a
        transaction), which a beat in progress waits for; the thread checks ``stop`` under the lock and ends."""
        stop, _ = self._heartbeats.pop(run_id, (None, None))
        if stop is not None:
            stop.set()

    def finish_run(self, run_id: str, status: str, stats: dict[str, Any] | None = None) -> None:
        self._stop_heartbeat(run_id)
        self.execute(
            "UPDATE runs SET status = ?, finished_at = ?, stats = ? WHERE run_id = ?",
            [status, _now(), json.dumps(stats or {}, default=str), run_id],
        )

    def recent_runs(self, limit: int = 20) -> pl.DataFrame:
        """The latest runs; a ``running`` run whose process is gone (see ``run_is_dead``) shows as ``interrupted``."""
        runs = self.query("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", [limit])
        if runs.height == 0:
            return runs
        dead = [run_is_dead(row) for row in runs.iter_rows(named=True)]
        return runs.with_columns(
            status=pl.when(pl.Series(dead, dtype=pl.Boolean)).then(pl.lit("interrupted")).otherwise(pl.col("status"))
        )

    def interrupt_dead_runs(self) -> list[dict[str, Any]]:
        """Record every ``running`` run whose process is gone as ``interrupted`` (ended at its last heartbeat);
        returns those runs (with their ``flow_run_id``, for the orchestrator to mark crashed too)."""
        running = self.query("SELECT * FROM runs WHERE status = 'running'")
        dead = [row for row in running.iter_rows(named=True) if run_is_dead(row)]
        for row in dead:
            self.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, stats = ? WHERE run_id = ?",
                [
                    row.get("heartbeat_at") or row["started_at"],
                    json.dumps({"error": f"the process ({row.get('host')} pid {row.get('pid')}) ended mid-run"}),
                    row["run_id"],
                ],
            )
        return dead

    # ---------------------------------------------------------------- sources
    def register_source(self, variant: str, source: str, type_: str, path: str, config_hash: str, fingerprint: str):
        with self.transaction() as con:
            _exec(con, "DELETE FROM sources WHERE variant = ? AND source = ?", [variant, source])
            _exec(
                con,
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                [variant, source, type_, path, config_hash, fingerprint, _now()],
            )

    # ---------------------------------------------------------------- crawl fetch records
    def register_fetch_records(
        self, variant: str, source: str, run_id: str | None, records: list[dict[str, Any]]
    ) -> int:
        """Replace a crawl source's fetch records with ``records`` (``FetchRecord.as_row()`` dicts: the latest
        record of every URL, ``CrawlResult.latest_records()``) in one transaction; returns the rows stored.

        Keys that are not columns (``depth``) are ignored; ``fetched_at`` is an ISO 8601 time (stored as UTC)."""
        with self.transaction() as con:
            _exec(con, "DELETE FROM fetch_records WHERE variant = ? AND source = ?", [variant, source])
            if records:
                frame = pl.DataFrame(records, infer_schema_length=None).with_columns(
                    pl.lit(variant).alias("variant"), pl.lit(source).alias("source"), pl.lit(run_id).alias("run_id")
                )
                self._insert_frame(con, "fetch_records", frame)
            return _fetchone(
                con, "SELECT count(*) FROM fetch_records WHERE variant = ? AND source = ?", [variant, source]
            )[0]

    def fetch_records(self, variant: str, source: str) -> list[dict[str, Any]]:
        """A crawl source's latest fetch record per URL, as dicts by URL (empty when it was never crawled)."""
        if not self.query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fetch_records'")[0]:
            return []  # a catalog made before the table, opened read-only: it has no fetch records
        return self.query(
            "SELECT * FROM fetch_records WHERE variant = ? AND source = ? ORDER BY url", [variant, source]
        ).to_dicts()

    # ---------------------------------------------------------------- artifacts
    def find_output(self, artifact_key: str) -> StageOutput | None:
        with self._lock:
            row = _fetchone(
                self._con,
                "SELECT artifact_key, stage, stage_version, config_hash, input_hash, variant, shard, path, row_count,"
                " content_hash, stats, run_id FROM stage_outputs WHERE artifact_key = ?",
                [artifact_key],
            )
        if row is None:
            return None
        return StageOutput(*row[:10], stats=json.loads(row[10] or "{}"), run_id=row[11])

    def register_output(
        self,
        output: StageOutput,
        *,
        rejections: Iterable[Rejection] = (),
        detail_tables: dict[str, pl.DataFrame] | None = None,
    ) -> bool:
        """Register an artifact with its rejections and detail rows in one transaction.

        Returns False (and writes nothing) when the artifact key is already registered, so re-registering after a
        crash between writing and registering never duplicates rows.
        """
        rejection_rows = [r.as_row() for r in rejections]
        with self.transaction() as con:
            if output.run_id is not None:
                _link_run_artifact(con, output.run_id, output.artifact_key)
            exists = _fetchone(con, "SELECT 1 FROM stage_outputs WHERE artifact_key = ?", [output.artifact_key])
            if exists:
                return False
            _exec(
                con, "INSERT INTO stage_outputs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    output.artifact_key, output.stage, output.stage_version, output.config_hash, output.input_hash,
                    output.variant, output.shard, output.path, output.row_count, output.content_hash,
                    json.dumps(output.stats, default=str), output.run_id, _now(),
                ],
            )  # fmt: skip
            if rejection_rows:
                frame = pl.DataFrame(rejection_rows).with_columns(
                    pl.lit(output.artifact_key).alias("artifact_key"), pl.lit(output.run_id).alias("run_id")
                )
                self._insert_frame(con, "rejections", frame)
            for table, frame in (detail_tables or {}).items():
                if frame.height:
                    self._insert_frame(
                        con, table, frame.with_columns(pl.lit(output.artifact_key).alias("artifact_key"))
                    )
        return True

    def link_run_artifact(self, run_id: str, artifact_key: str) -> None:
        """Record that the run used an artifact already registered (by it or by another run)."""
        with self.transaction() as con:
            _link_run_artifact(con, run_id, artifact_key)

    def _insert_frame(self, con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
        missing = [c for c in columns if c not in frame.columns]
        incoming = frame.with_columns([pl.lit(None).alias(c) for c in missing]).select(columns).to_arrow()
        has_key = _fetchone(
            con,
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        )[0]
        verb = "INSERT OR IGNORE" if has_key else "INSERT"
        con.register("_incoming", incoming)  # a view on the Arrow table, not transactional: unregistered below
        try:
            _exec(con, f"{verb} INTO {table} SELECT * FROM _incoming")
        finally:
            with suppress(duckdb.Error):  # inside an aborted transaction the rollback cleans up instead
                con.unregister("_incoming")

    def insert_rows(self, table: str, frame: pl.DataFrame) -> None:
        """Insert a frame into a catalog table (columns matched by name, absent ones NULL), duplicates ignored."""
        with self.transaction() as con:
            self._insert_frame(con, table, frame)

    def stage_output_keys(
        self, variant: str, stage: str, stage_version: str, config_hash: str, shard: str = ""
    ) -> list[str]:
        """Keys of the variant's registered outputs of ``stage`` (for ``shard``) made by ``stage_version`` under
        ``config_hash``, newest first: the earlier work a rebuild may reuse."""
        return self.query(
            "SELECT artifact_key FROM stage_outputs WHERE stage = ? AND variant = ? AND shard = ? AND config_hash = ?"
            " AND stage_version = ? ORDER BY created_at DESC",
            [stage, variant, shard, config_hash, stage_version],
        )["artifact_key"].to_list()

    # ---------------------------------------------------------------- datastores
    def register_datastore(
        self,
        variant: str,
        variant_path: str,
        index_key: str,
        chunk_keys: list[str],
        embed_keys: list[str],
        run_id: str,
    ) -> None:
        with self.transaction() as con:
            _exec(con, "DELETE FROM datastores WHERE variant = ?", [variant])
            _exec(
                con,
                "INSERT INTO datastores (variant, variant_path, index_key, chunk_keys, embed_keys, built_at, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [variant, variant_path, index_key, json.dumps(chunk_keys), json.dumps(embed_keys), _now(), run_id],
            )

    def datastore_variants(self) -> list[str]:
        """The variants that have a datastore, the most recently built first."""
        with self._lock:
            rows = self._con.execute("SELECT variant FROM datastores ORDER BY built_at DESC").fetchall()
        return [row[0] for row in rows]

    def datastore(self, variant: str) -> dict[str, Any] | None:
        """The variant's datastore: its index, chunk and embed artifact keys (``embed_keys``, one per chunk part;
        a datastore recorded before those has its one ``embed_key`` there), when it was built and by which run."""
        with self._lock:
            # a catalog of before embed_keys, opened read-only, has not gained the column yet
            has_list = _fetchone(
                self._con,
                "SELECT count(*) FROM information_schema.columns"
                " WHERE table_name = 'datastores' AND column_name = 'embed_keys'",
            )[0]
            embed_keys = "coalesce(embed_keys, to_json([embed_key]))" if has_list else "to_json([embed_key])"
            row = _fetchone(
                self._con,
                f"SELECT variant, variant_path, index_key, chunk_keys, {embed_keys}, built_at, run_id"
                " FROM datastores WHERE variant = ?",
                [variant],
            )
        if row is None:
            return None
        keys = ("variant", "variant_path", "index_key", "chunk_keys", "embed_keys", "built_at", "run_id")
        record = dict(zip(keys, row, strict=True))
        record["embed_keys"] = json.loads(record["embed_keys"])
        record["chunk_keys"] = json.loads(record["chunk_keys"])
        return record
