"""Worker processes with a hard timeout per task: the one home for work on untrusted input (HTML parsers, the math
parser) where a hang, a crash or a memory blow-up must cost one item, never the run.

    with TimeoutPool(make_handler, (config,), workers=2, timeout_s=10, name="extract") as pool:
        for item, answer in pool.map(items, payload_of):   # input order; payload_of(item) is None: passed through
            ...  # answer: what the handler returned, a TaskFailed (timeout, worker_crashed), or None (passed through)

Workers are ``spawn`` processes (the parent may hold threads, DuckDB, torch: fork is not safe). Each builds its
handler once with ``factory(*factory_args)`` (imports, models, warm-up: bounded by ``startup_s``, not by the task
timeout), then answers every payload with ``handler(payload)``; a handler catches what its own work may raise. Tasks
go out in batches of ``batch_size`` (fewer IPC round trips) and are answered one message each, so the timeout applies
to each task. A worker that overruns is killed and replaced and the unanswered rest of its batch is sent again; one
that dies (segfault, out of memory) costs only the task it was on. Answers come back in input order, and memory
stays bounded: only a fixed number of tasks is in flight or waiting to be emitted. Counters (``workers_started``,
``workers_replaced``) go to ``stats``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

from catalog.errors import RereadError
from catalog.processes import die_with_parent
from catalog.records import StageStats

T = TypeVar("T")
_READY = "ready"
_SHUTDOWN_JOIN_S = 5.0
_END = object()


class WorkerStartError(RereadError):
    """A worker process exited or hung while building its handler (a bad name or option, a missing package)."""


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """A task without an answer: ``timeout`` (its worker was killed) or ``worker_crashed`` (its worker died)."""

    reason: str
    detail: str


def _serve(conn: Connection, factory: Callable[..., Callable[[Any], Any]], factory_args: tuple, parent: int) -> None:
    """Worker process loop: build the handler, say ready, answer each (index, payload) of each batch."""
    die_with_parent(parent)  # a killed parent (SIGKILL, OOM) leaves no worker behind
    handler = factory(*factory_args)
    conn.send(_READY)
    while (batch := conn.recv()) is not None:
        for index, payload in batch:
            conn.send((index, handler(payload)))


@dataclass
class _Worker:
    process: Any  # multiprocessing SpawnProcess
    conn: Connection
    started: float
    ready: bool = False
    in_flight: deque[int] = field(default_factory=deque)  # task indices sent, answered in this order
    deadline: float = float("inf")  # when the first task in flight must be answered

    def stop(self) -> None:
        """Kill without waiting for the current task (it may be hung)."""
        self.process.kill()
        self.process.join(_SHUTDOWN_JOIN_S)
        self.conn.close()


class TimeoutPool(Generic[T]):
    """``workers`` spawn processes answering tasks with ``factory(*factory_args)``'s handler, ``timeout_s`` each."""

    def __init__(
        self,
        factory: Callable[..., Callable[[Any], Any]],
        factory_args: tuple = (),
        *,
        workers: int = 1,
        timeout_s: float,
        batch_size: int = 1,
        startup_s: float = 120.0,
        name: str = "worker",
        stats: StageStats | None = None,
    ) -> None:
        if workers < 1 or batch_size < 1 or timeout_s <= 0:
            raise ValueError(f"{name}: workers and batch_size must be >= 1 and timeout_s > 0")
        self.factory = factory
        self.factory_args = factory_args
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.startup_s = startup_s
        self.name = name
        self.stats = stats if stats is not None else StageStats(stage=name)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * workers

    def __enter__(self) -> TimeoutPool[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy or stuck ones are killed."""
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

    def map(self, items: Iterable[T], payload_of: Callable[[T], Any] = lambda item: item) -> Iterator[tuple[T, Any]]:
        """``(item, answer)`` for every item, in input order. An item whose ``payload_of`` is None is not sent (its
        answer is None); the others are answered by the handler, or get a TaskFailed."""
        inputs = iter(items)
        capacity = max(4 * self.batch_size * len(self._workers), 16)
        waiting: dict[int, tuple[T, Any]] = {}  # index -> (item, payload), until answered
        queue: deque[int] = deque()  # indices not yet sent to a worker
        done: dict[int, tuple[T, Any]] = {}
        read = emitted = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(waiting) + len(done) < capacity:
                    item = next(inputs, _END)
                    if item is _END:
                        exhausted = True
                        break
                    payload = payload_of(item)
                    if payload is None:
                        done[read] = (item, None)
                    else:
                        waiting[read] = (item, payload)
                        queue.append(read)
                    read += 1
                while emitted in done:
                    yield done.pop(emitted)
                    emitted += 1
                if exhausted and emitted == read:
                    return
                self._dispatch(queue, waiting)
                self._collect(queue, waiting, done)
        finally:
            self._abandon_in_flight()

    # -------------------------------------------------------------- worker pool
    def _start_worker(self, slot: int) -> _Worker:
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(child_conn, self.factory, self.factory_args, os.getpid()),
            name=f"reread-{self.name}-{slot}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker = _Worker(process=process, conn=parent_conn, started=time.monotonic())
        self._workers[slot] = worker
        self.stats.add("workers_started")
        return worker

    def _dispatch(self, queue: deque[int], waiting: dict[int, tuple[T, Any]]) -> None:
        for slot in range(len(self._workers)):
            if not queue:
                return
            worker = self._workers[slot]
            if worker is None:
                # start another process only for work the idle and starting ones cannot take in one batch each
                free = sum(1 for w in self._workers if w is not None and (not w.ready or not w.in_flight))
                if free * self.batch_size >= len(queue):
                    continue
                worker = self._start_worker(slot)
            if not worker.ready or worker.in_flight:
                continue
            batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
            worker.conn.send([(i, waiting[i][1]) for i in batch])
            worker.in_flight.extend(batch)
            worker.deadline = time.monotonic() + self.timeout_s

    def _finish(self, index: int, answer: Any, waiting: dict, done: dict) -> None:
        item, _ = waiting.pop(index)
        done[index] = (item, answer)

    def _collect(self, queue: deque[int], waiting: dict, done: dict) -> None:
        """Wait for answers (or the nearest deadline) and take them; kill workers that overran."""
        workers = [w for w in self._workers if w is not None]
        deadlines = [w.deadline for w in workers if w.in_flight]
        deadlines += [w.started + self.startup_s for w in workers if not w.ready]
        if not deadlines:  # nothing in flight and nobody starting: nothing to wait for
            return
        timeout = max(0.0, min(deadlines) - time.monotonic())
        for conn in wait([w.conn for w in workers], timeout=timeout):
            worker = next(w for w in workers if w.conn is conn)
            self._receive(worker, queue, waiting, done)
        now = time.monotonic()
        for slot, worker in enumerate(self._workers):
            if worker is None:
                continue
            if not worker.ready and now > worker.started + self.startup_s:
                worker.stop()
                self._workers[slot] = None
                raise WorkerStartError(f"{self.name}: worker did not start within {self.startup_s:.0f} s")
            if worker.in_flight and now > worker.deadline:
                self._finish(
                    worker.in_flight.popleft(), TaskFailed("timeout", f"over {self.timeout_s:g} s"), waiting, done
                )
                self._replace(slot, queue)

    def _receive(self, worker: _Worker, queue: deque[int], waiting: dict, done: dict) -> None:
        slot = self._workers.index(worker)
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message == _READY:
                    worker.ready = True
                    continue
                index, answer = message
                expected = worker.in_flight.popleft()
                assert index == expected, f"worker answered {index}, expected {expected}"
                self._finish(index, answer, waiting, done)
                worker.deadline = time.monotonic() + self.timeout_s
        except (EOFError, OSError):
            worker.process.join(_SHUTDOWN_JOIN_S)  # the pipe closed because the process is exiting: get its code
            if not worker.ready:
                worker.stop()
                self._workers[slot] = None
                raise WorkerStartError(
                    f"{self.name}: worker exited during start-up (exit code {worker.process.exitcode})"
                ) from None
            if worker.in_flight:  # the task it was working on killed it (segfault, out of memory)
                crashed = TaskFailed("worker_crashed", f"exit code {worker.process.exitcode}")
                self._finish(worker.in_flight.popleft(), crashed, waiting, done)
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
        """A map that ends early (consumer stopped, error) leaves answers in flight: those workers are stale."""
        for slot, worker in enumerate(self._workers):
            if worker is not None and worker.in_flight:
                worker.in_flight.clear()
                worker.stop()
                self._workers[slot] = None
