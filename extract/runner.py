"""Run an extractor over a stream of RawDocuments in worker processes, with a hard per-document timeout.

Some pages hang or blow up HTML parsers, so no document is parsed in the calling process: a
``catalog.workers.TimeoutPool`` of ``spawn`` workers receives documents in small batches and answers one message per
document, so the timeout applies to each document. A worker that overruns is killed and replaced. Output order
equals input order, and memory stays bounded.

    runner = ExtractionRunner("trafilatura", {"favor_precision": True}, ExtractionConfig(timeout_s=10))
    for item in runner.run(source.iter_documents()):   # ExtractedDocument or Rejection
        ...
    runner.stats.as_dict()                              # documents_in, documents_out, rejected_<reason>
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from catalog.errors import RereadError
from catalog.hashing import content_hash
from catalog.records import Rejection, StageStats
from catalog.variant import ExtractionConfig
from catalog.workers import TaskFailed, TimeoutPool, WorkerStartError
from extract.extractors import DEFAULT_FOR_CONTENT_TYPE, Extractor, get_extractor
from extract.records import ExtractedDocument, RawDocument
from extract.sources import open_source, source_config_for_path

STAGE = "extract"
BATCH_SIZE = 8  # documents per message to a worker
WORKER_STARTUP_S = 120.0  # spawn + imports; generous because a cold start on a busy machine is slow


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


def extraction_handler(
    extractor_name: str, extractor_options: dict[str, Any]
) -> Callable[[tuple[str, RawDocument]], tuple[str, str, str | None]]:
    """Built once in each worker process: answers (extractor name, raw document) with (title, text, error)."""
    choice = ExtractorChoice(extractor_name, extractor_options)
    return lambda task: _extract_one(choice.get(task[0]), task[1])


# ------------------------------------------------------------------ parent side
@dataclass(slots=True)
class _Admitted:
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
        self._pool = TimeoutPool(
            extraction_handler,
            (extractor_name, self.extractor_options),
            workers=self.cfg.workers,
            timeout_s=self.cfg.timeout_s,
            batch_size=batch_size,
            startup_s=WORKER_STARTUP_S,
            name=f"extract-{extractor_name}",
            stats=self.stats,
        )
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
        self._pool.close()

    def version_of(self, extractor_name: str) -> str:
        if extractor_name not in self._versions:
            self._versions[extractor_name] = self._choice.get(extractor_name).version
        return self._versions[extractor_name]

    def run(self, docs: Iterable[RawDocument | Rejection]) -> Iterator[ExtractedDocument | Rejection]:
        """Extract every document; yields results (and passed-through rejections) in input order."""
        admitted = (self._admit(item) for item in docs)
        try:
            with tqdm(desc=f"extract ({self.extractor_name})", unit="doc", disable=None) as bar:
                for job, answer in self._pool.map(admitted, _task_of):
                    result = self._result(job, answer)
                    self._count(result)
                    bar.update(1)
                    yield result
        except WorkerStartError as exc:
            raise ExtractionWorkerError(f"{exc}; check the extractor name and options") from None
        finally:
            if not self._in_context:
                self.close()

    # -------------------------------------------------------------- admission and results
    def _reject(self, raw: RawDocument, reason: str, detail: str = "") -> Rejection:
        return Rejection(
            stage=STAGE, source=raw.source, input_ref=raw.input_ref or raw.doc_id, reason=reason, detail=detail
        )

    def _admit(self, item: RawDocument | Rejection) -> _Admitted | Rejection:
        """A document for a worker, or the Rejection it gets without being parsed."""
        self.stats.add("documents_in")
        if isinstance(item, Rejection):
            return item
        data = item.content_bytes()
        if len(data) > self.cfg.max_bytes:
            return self._reject(item, "too_large", f"{len(data)} bytes > max_bytes {self.cfg.max_bytes}")
        extractor = self._choice.name_for(item.content_type)
        if extractor is None:
            return self._reject(item, "unsupported_content_type", f"no extractor for {item.content_type!r}")
        return _Admitted(raw=item, extractor=extractor, raw_hash=content_hash(data))

    def _result(self, job: _Admitted | Rejection, answer: Any) -> ExtractedDocument | Rejection:
        if isinstance(job, Rejection):
            return job
        if isinstance(answer, TaskFailed):  # timeout or worker_crashed
            return self._reject(job.raw, answer.reason, f"{job.extractor}: {answer.detail}")
        title, text, error = answer
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


def _task_of(job: _Admitted | Rejection) -> tuple[str, RawDocument] | None:
    """What a worker gets for an admitted document; None for a rejection (passed through in place)."""
    return None if isinstance(job, Rejection) else (job.extractor, job.raw)


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
