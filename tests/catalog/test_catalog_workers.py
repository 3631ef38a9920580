"""catalog.workers.TimeoutPool: the one process-with-timeout worker pool (extraction and math grading use it)."""

from __future__ import annotations

import pytest

from catalog.workers import TaskFailed, TimeoutPool, WorkerStartError


@pytest.fixture
def handlers(fixtures_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(fixtures_dir / "workers"))  # spawned workers inherit sys.path
    import pool_handlers

    return pool_handlers


def test_answers_in_input_order_with_passed_through_items_in_place(handlers):
    items = [0.0, None, 0.02, 0.0, None, 0.01] * 5
    with TimeoutPool(handlers.sleeper, (1.0,), workers=2, timeout_s=30, batch_size=3, name="t") as pool:
        out = list(pool.map(items))
    assert [item for item, _ in out] == items
    assert [answer for _, answer in out if answer is None] == [None] * 10
    assert [answer[1] for item, answer in out if item is not None] == [i for i in items if i is not None]
    # two batches or more start both workers (which one answers a batch depends on start-up speed, not asserted)
    assert pool.stats.as_dict() == {"workers_started": 2}


def test_one_task_starts_one_worker(handlers):
    with TimeoutPool(handlers.sleeper, (1.0,), workers=4, timeout_s=30, name="t") as pool:
        assert [answer[1] for _, answer in pool.map([0.0])] == [0.0]
        assert pool.stats.as_dict() == {"workers_started": 1}


def test_overrun_and_crash_cost_one_task_each(handlers):
    items = [0.0, 60.0, 0.0, "crash", 0.0]
    with TimeoutPool(handlers.sleeper, (1.0,), workers=1, timeout_s=1.5, batch_size=5, name="t") as pool:
        answers = [answer for _, answer in pool.map(items)]
    assert answers[1] == TaskFailed("timeout", "over 1.5 s")
    assert answers[3] == TaskFailed("worker_crashed", "exit code 3")
    assert [a[1] for i, a in enumerate(answers) if i in (0, 2, 4)] == [0.0, 0.0, 0.0]  # the rest of each batch resent
    assert pool.stats.as_dict() == {"workers_started": 3, "workers_replaced": 2}


def test_a_worker_that_cannot_start_is_a_clear_error(handlers):
    with TimeoutPool(handlers.broken_start, workers=1, timeout_s=5, name="embedder-x") as pool:
        with pytest.raises(WorkerStartError, match=r"embedder-x: worker exited during start-up \(exit code 1\)"):
            list(pool.map([1]))


@pytest.mark.slow
def test_math_grader_grades_in_parallel():
    from eval.graders import CORRECT, INCORRECT, MathGrader

    predictions = [r"\sqrt{4}", r"\frac{6}{3}", "x+x", r"2\cdot 1", r"\sqrt{9}", r"(1+1)^1"]
    with MathGrader(timeout_s=30, workers=2) as grader:
        grades = grader.grade(predictions, ["2", "2", "2x", "2", "2", "2"])
        assert [g.outcome for g in grades] == [CORRECT, CORRECT, CORRECT, CORRECT, INCORRECT, CORRECT]
        assert grader._pool.stats.as_dict() == {"workers_started": 2}  # five parser tasks: both processes graded
