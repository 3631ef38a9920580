"""Run an extractor over a stream of RawDocuments in worker processes, with a hard per-document timeout.

Some pages hang or blow up HTML parsers, so no document is parsed in the calling process: a small pool of ``spawn``
workers (DuckDB and torch are not fork-safe) receives documents in small batches (fewer IPC round trips) and answers
one message per document, so the timeout still applies to each document. A worker that overruns is killed and
replaced; the rest of its batch is sent again. Output order equals input order, and memory stays bounded because
only a fixed number of documents is in flight or waiting to be emitted.

    runner = ExtractionRunner("trafilatura", {"favor_precision": True}, ExtractionConfig(timeout_s=10))
    for item in runner.run(source.iter_documents()):   # ExtractedDocument or Rejection
        ...
    runner.stats.as_dict()                              # documents_in, documents_out, rejected_<reason>
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from tqdm import tqdm

from catalog.errors import RereadError
from catalog.hashing import content_hash
from catalog.records import Rejection, StageStats
from catalog.variant import ExtractionConfig
from extract.extractors import DEFAULT_FOR_CONTENT_TYPE, Extractor, get_extractor
from extract.records import ExtractedDocument, RawDocument
from extract.sources import open_source, source_config_for_path

STAGE = "extract"
BATCH_SIZE = 8  # documents per message to a worker
WORKER_STARTUP_S = 120.0  # spawn + imports; generous because a cold start on a busy machine is slow
_SHUTDOWN_JOIN_S = 5.0
_READY = "ready"


class ExtractionWorkerError(RereadError):
    """An extraction worker process could not start."""


# ------------------------------------------------------------------ worker side
class ExtractorChoice:
    """Which extractor handles which content type: the configured one where it applies, else the content type's
    default (plain text and wikitext never go through an HTML extractor)."""

    def __init__(self, extractor_name: str, extractor_options: dict[str, Any]) -> None:
        self.main_name = extractor_name
        self._extractors: dict[str, Extractor] = {extractor_name: get_extractor(extractor_name, **extractor_options)}

    def name_for(self, content_type: str) -> str | None:
        if content_type in self._extractors[self.main_name].content_types:
            return self.main_name
        return DEFAULT_FOR_CONTENT_TYPE.get(content_type)

    def get(self, name: str) -> Extractor:
        if name not in self._extractors:
            self._extractors[name] = get_extractor(name)
        return self._extractors[name]


def _extract_one(extractor: Extractor, raw: RawDocument) -> tuple[str, str, str | None]:
    """(title, text, error): any exception of the extractor becomes an error text, never a dead worker."""
    try:
        title, text = extractor.extract(raw)
    except Exception as exc:  # a parser can raise anything: the document is rejected, the run goes on
        return "", "", f"{type(exc).__name__}: {exc}"
    return title or "", text or "", None


def _worker_main(conn: Connection, extractor_name: str, extractor_options: dict[str, Any]) -> None:
    """Worker process loop: receive batches of (index, extractor name, raw), answer one message per document."""
    choice = ExtractorChoice(extractor_name, extractor_options)
    conn.send(_READY)
    while True:
        batch = conn.recv()
        if batch is None:
            return
        for index, name, raw in batch:
            conn.send((index, *_extract_one(choice.get(name), raw)))


# ------------------------------------------------------------------ parent side
@dataclass
class _Worker:
    process: Any  # multiprocessing SpawnProcess
    conn: Connection
    started: float
    ready: bool = False
    in_flight: deque[int] = field(default_factory=deque)  # indices sent, answered in this order
    deadline: float = float("inf")  # when the first document in flight must be answered

    def stop(self) -> None:
        """Kill without waiting for the current document (it may be hung)."""
        self.process.kill()
        self.process.join(_SHUTDOWN_JOIN_S)
        self.conn.close()


@dataclass(slots=True)
class _Pending:
    raw: RawDocument
    extractor: str
    raw_hash: str


class ExtractionRunner:
    """Extract documents in ``cfg.workers`` spawn processes with ``cfg.timeout_s`` per document.

    Rejection reasons: ``too_large`` (over ``max_bytes``, never parsed), ``unsupported_content_type``, ``timeout``,
    ``worker_crashed``, ``extractor_error`` (with the exception text), ``empty_text`` (below ``min_chars``).
    Rejections arriving in the input stream (from sources) are passed through in place and counted.
    Workers live until ``close()`` (or the end of a ``with`` block); without one, each ``run`` closes them at its end.
    """

    def __init__(
        self,
        extractor_name: str = "trafilatura",
        extractor_options: dict[str, Any] | None = None,
        cfg: ExtractionConfig | None = None,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.extractor_name = extractor_name
        self.extractor_options = dict(extractor_options or {})
        self.cfg = cfg or ExtractionConfig()
        self.batch_size = batch_size
        self.stats = StageStats(stage=STAGE)
        self._choice = ExtractorChoice(extractor_name, self.extractor_options)  # fails early on a bad name/option
        self._versions: dict[str, str] = {}
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * self.cfg.workers
        self._in_context = False

    # -------------------------------------------------------------- public API
    def __enter__(self) -> ExtractionRunner:
        self._in_context = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._in_context = False
        self.close()

    def close(self) -> None:
        """Stop every worker process."""
        for slot, worker in enumerate(self._workers):
            if worker is None:
                continue
            if worker.ready and not worker.in_flight and worker.process.is_alive():
                try:
                    worker.conn.send(None)
                    worker.process.join(_SHUTDOWN_JOIN_S)
                except (OSError, EOFError):
                    pass
            worker.stop()  # kills one that did not exit on its own (a no-op for one that did)
            self._workers[slot] = None

    def version_of(self, extractor_name: str) -> str:
        if extractor_name not in self._versions:
            self._versions[extractor_name] = self._choice.get(extractor_name).version
        return self._versions[extractor_name]

    def run(self, docs: Iterable[RawDocument | Rejection]) -> Iterator[ExtractedDocument | Rejection]:
        """Extract every document; yields results (and passed-through rejections) in input order."""
        inputs = iter(docs)
        capacity = max(4 * self.batch_size * self.cfg.workers, 16)
        pending: dict[int, _Pending] = {}
        queue: deque[int] = deque()  # pending indices not yet sent to a worker
        done: dict[int, ExtractedDocument | Rejection] = {}
        read = emitted = 0
        exhausted = False
        try:
            with tqdm(desc=f"extract ({self.extractor_name})", unit="doc", disable=None) as bar:
                while True:
                    while not exhausted and len(pending) + len(done) < capacity:
                        item = next(inputs, None)
                        if item is None:
                            exhausted = True
                            break
                        self.stats.add("documents_in")
                        early = self._admit(read, item, pending, queue)
                        if early is not None:
                            done[read] = early
                        read += 1
                    while emitted in done:
                        result = done.pop(emitted)
                        self._count(result)
                        bar.update(1)
                        yield result
                        emitted += 1
                    if exhausted and emitted == read:
                        return
                    self._dispatch(queue, pending)
                    self._collect(queue, pending, done)
        finally:
            self._abandon_in_flight()
            if not self._in_context:
                self.close()

    # -------------------------------------------------------------- admission and results
    def _reject(self, raw: RawDocument, reason: str, detail: str = "") -> Rejection:
        return Rejection(
            stage=STAGE, source=raw.source, input_ref=raw.input_ref or raw.doc_id, reason=reason, detail=detail
        )

    def _admit(
        self, index: int, item: RawDocument | Rejection, pending: dict[int, _Pending], queue: deque[int]
    ) -> Rejection | None:
        """Queue a document for a worker, or return the Rejection it gets without being parsed."""
        if isinstance(item, Rejection):
            return item
        data = item.content_bytes()
        if len(data) > self.cfg.max_bytes:
            return self._reject(item, "too_large", f"{len(data)} bytes > max_bytes {self.cfg.max_bytes}")
        extractor = self._choice.name_for(item.content_type)
        if extractor is None:
            return self._reject(item, "unsupported_content_type", f"no extractor for {item.content_type!r}")
        pending[index] = _Pending(raw=item, extractor=extractor, raw_hash=content_hash(data))
        queue.append(index)
        return None

    def _result(self, job: _Pending, title: str, text: str, error: str | None) -> ExtractedDocument | Rejection:
        if error is not None:
            return self._reject(job.raw, "extractor_error", f"{job.extractor}: {error}")
        text = text.strip()
        if len(text) < max(self.cfg.min_chars, 1):
            return self._reject(job.raw, "empty_text", f"{job.extractor}: {len(text)} chars < min_chars")
        raw = job.raw
        return ExtractedDocument(
            doc_id=raw.doc_id,
            source_doc_id=raw.source_doc_id,
            source=raw.source,
            url=raw.url,
            title=(title or raw.title).strip(),
            text=text,
            extractor=job.extractor,
            extractor_version=self.version_of(job.extractor),
            raw_hash=job.raw_hash,
            input_ref=raw.input_ref,
        )

    def _count(self, result: ExtractedDocument | Rejection) -> None:
        if isinstance(result, Rejection):
            self.stats.add(f"rejected_{result.reason}")
        else:
            self.stats.add("documents_out")

    # -------------------------------------------------------------- worker pool
    def _start_worker(self, slot: int) -> _Worker:
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child_conn, self.extractor_name, self.extractor_options),
            name=f"reread-extract-{slot}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker = _Worker(process=process, conn=parent_conn, started=time.monotonic())
        self._workers[slot] = worker
        self.stats.add("workers_started")
        return worker

    def _dispatch(self, queue: deque[int], pending: dict[int, _Pending]) -> None:
        for slot in range(len(self._workers)):
            if not queue:
                return
            worker = self._workers[slot] or self._start_worker(slot)
            if not worker.ready or worker.in_flight:
                continue
            batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
            worker.conn.send([(i, pending[i].extractor, pending[i].raw) for i in batch])
            worker.in_flight.extend(batch)
            worker.deadline = time.monotonic() + self.cfg.timeout_s

    def _collect(self, queue: deque[int], pending: dict[int, _Pending], done: dict) -> None:
        """Wait for answers (or the nearest deadline) and handle them; kill workers that overran."""
        workers = [w for w in self._workers if w is not None]
        if not workers:
            return
        deadlines = [w.deadline for w in workers if w.in_flight]
        deadlines += [w.started + WORKER_STARTUP_S for w in workers if not w.ready]
        if not deadlines:  # nothing in flight and nobody starting: nothing to wait for
            return
        timeout = max(0.0, min(deadlines) - time.monotonic())
        for conn in wait([w.conn for w in workers], timeout=timeout):
            worker = next(w for w in workers if w.conn is conn)
            self._receive(worker, queue, pending, done)
        now = time.monotonic()
        for slot, worker in enumerate(self._workers):
            if worker is None:
                continue
            if not worker.ready and now > worker.started + WORKER_STARTUP_S:
                worker.stop()
                raise ExtractionWorkerError(
                    f"extractor {self.extractor_name!r}: worker did not start within {WORKER_STARTUP_S:.0f} s"
                )
            if worker.in_flight and now > worker.deadline:
                index = worker.in_flight.popleft()
                job = pending.pop(index)
                done[index] = self._reject(job.raw, "timeout", f"{job.extractor}: over {self.cfg.timeout_s} s")
                self._replace(slot, queue)

    def _receive(self, worker: _Worker, queue: deque[int], pending: dict[int, _Pending], done: dict) -> None:
        slot = self._workers.index(worker)
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message == _READY:
                    worker.ready = True
                    continue
                index, title, text, error = message
                expected = worker.in_flight.popleft()
                assert index == expected, f"worker answered {index}, expected {expected}"
                done[index] = self._result(pending.pop(index), title, text, error)
                worker.deadline = time.monotonic() + self.cfg.timeout_s
        except (EOFError, OSError):
            worker.process.join(_SHUTDOWN_JOIN_S)  # the pipe closed because the process is exiting: get its code
            if not worker.ready:
                worker.stop()
                raise ExtractionWorkerError(
                    f"extractor {self.extractor_name!r}: worker exited during start-up "
                    f"(exit code {worker.process.exitcode}); check the extractor name and options"
                ) from None
            if worker.in_flight:  # the document it was working on killed it (segfault, out of memory)
                index = worker.in_flight.popleft()
                job = pending.pop(index)
                done[index] = self._reject(
                    job.raw, "worker_crashed", f"{job.extractor}: exit code {worker.process.exitcode}"
                )
            self._replace(slot, queue)

    def _replace(self, slot: int, queue: deque[int]) -> None:
        """Kill the worker in ``slot`` and put the unanswered rest of its batch back at the front of the queue."""
        worker = self._workers[slot]
        if worker is None:
            return
        queue.extendleft(reversed(worker.in_flight))
        worker.in_flight.clear()
        worker.stop()
        self._workers[slot] = None
        self.stats.add("workers_replaced")

    def _abandon_in_flight(self) -> None:
        """A run that ends early (consumer stopped, error) leaves answers in flight: those workers are stale."""
        for slot, worker in enumerate(self._workers):
            if worker is not None and worker.in_flight:
                worker.in_flight.clear()
                worker.stop()
                self._workers[slot] = None


def extract_paths(
    paths: Sequence[str | Path],
    extractor_name: str = "trafilatura",
    extractor_options: dict[str, Any] | None = None,
    cfg: ExtractionConfig | None = None,
) -> Iterator[ExtractedDocument | Rejection]:
    """Extract loose files without a variant or catalog (the ``reread extract`` command): each path's source type is
    guessed from its name (WARC files give one result per record, HTML files one each)."""
    sources = [open_source(source_config_for_path(path)) for path in paths]
    documents = itertools.chain.from_iterable(source.iter_documents() for source in sources)
    yield from ExtractionRunner(extractor_name, extractor_options, cfg).run(documents)
