"""Open-domain QA: the nq_open loader, short-answer grading (aliases, F1, contained, question echoes), the phrase
extractor, the titled passage format and task hashing by contents."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from eval.answers import extract_answer
from eval.benchmarks import read_benchmark
from eval.graders import CORRECT, INCORRECT, UNPARSED, make_grader
from eval.graders.normalized import answer_metrics, token_f1
from eval.prompts import build_prompt
from eval.tasks import load_task, task_hash


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_nq_open_loader_keeps_every_alias_and_rejects_bad_rows(tmp_path):
    path = _write(
        tmp_path / "q.jsonl",
        [
            {"id": "q1", "question": "who wrote hamlet", "answers": ["William Shakespeare", "Shakespeare"], "x": 1},
            {"id": "q2", "question": "capital of france", "answers": ["Paris"]},
            "{not json",
            {"id": "q3", "question": "no answers", "answers": []},
            {"id": "q4", "question": "bad alias", "answers": ["ok", 3]},
            {"id": "q1", "question": "duplicate", "answers": ["x"]},
            {"question": "no id", "answers": ["x"]},
        ],
    )
    loaded = read_benchmark("nq_open", path)
    assert [i.item_id for i in loaded.items] == ["q1", "q2"]
    assert loaded.items[0].accepted_answers == ("William Shakespeare", "Shakespeare")
    assert loaded.items[0].metadata == {"x": "1"}
    assert loaded.rejection_counts() == {
        "duplicate_id": 1,
        "malformed_answers": 1,
        "malformed_json": 1,
        "missing_field": 2,
    }


def test_bundled_nq_open_questions_load(shared_data):
    loaded = read_benchmark("nq_open", shared_data / "open_qa" / "nq_open_questions.jsonl")
    assert len(loaded.items) == 2000 and not loaded.rejections
    assert sum(len(i.aliases) > 0 for i in loaded.items) > 100  # many questions have several accepted answers


def test_exact_match_over_aliases_f1_and_contains():
    golds = ("William Shakespeare", "Shakespeare")
    assert answer_metrics("shakespeare.", golds) == {"exact_match": 1.0, "f1": 1.0, "contains": 1.0}
    sentence = answer_metrics("Hamlet was written by William Shakespeare in 1600.", golds)
    assert sentence["exact_match"] == 0.0 and sentence["contains"] == 1.0
    assert sentence["f1"] == pytest.approx(token_f1("Hamlet was written by William Shakespeare in 1600.", golds[0]))
    assert token_f1("the William Shakespeare", "William Shakespeare") == 1.0  # articles and case are normalized away
    assert token_f1("William Blake", "William Shakespeare") == pytest.approx(0.5)
    assert answer_metrics("", golds) == {"exact_match": 0.0, "f1": 0.0, "contains": 0.0}


def test_contains_does_not_credit_a_gold_that_the_question_holds():
    # NQ-open has such golds: repeating the question's words is no evidence of knowing the answer
    question = "what kind of animal is a sea lion"
    assert answer_metrics("A sea lion is an animal.", ["animal"], question)["contains"] == 0.0
    assert answer_metrics("animal", ["animal"], question)["exact_match"] == 1.0  # an exact answer still counts
    grader = make_grader("normalized", mode="contains")
    grades = grader.grade(["It is an animal", "a pinniped", ""], [("animal", "pinniped")] * 3, [question] * 3)
    assert [g.outcome for g in grades] == [INCORRECT, CORRECT, UNPARSED]
    exact = make_grader("normalized")
    assert [g.outcome for g in exact.grade(["The Pinniped!", "pinnipeds"], [("animal", "pinniped")] * 2)] == [
        CORRECT,
        INCORRECT,
    ]
    assert exact.equivalent("The Beatles", "beatles") and not exact.equivalent("Beatles", "Stones")


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("Answer: Wilhelm Röntgen.", "Wilhelm Röntgen"),
        ("\n\nMay 18, 2018\nIt was delayed.", "May 18, 2018"),
        ("The U.S. Navy. It was founded in 1775.", "The U.S. Navy"),
        ("   ", None),
    ],
)
def test_phrase_extractor_takes_the_first_sentence_of_the_first_line(response, answer):
    assert extract_answer("phrase", response) == answer


@dataclass
class _Hit:
    title: str
    text: str
    url: str = "https://en.wikipedia.org/wiki/X"
    source: str = "nq-gold"


def test_nq_open_prompt_shows_titles_without_citation_headers(tmp_path):
    (item,) = read_benchmark(
        "nq_open", _write(tmp_path / "q.jsonl", [{"id": "q", "question": "who?", "answers": ["a"]}])
    ).items
    system, user = build_prompt(item, [_Hit("Deadpool 2", "Deadpool 2 was released on May 18, 2018.")])
    assert "Title: Deadpool 2\nDeadpool 2 was released" in user.content
    assert "[1]" not in user.content and "https://" not in user.content and "nq-gold" not in user.content
    assert user.content.rstrip().endswith("not a sentence.") and "short answer" in system.content


def test_task_hash_follows_file_contents_not_paths(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write(tmp_path / folder / "q.jsonl", [{"id": "q", "question": "who?", "answers": ["a"]}])
        (tmp_path / folder / "t.yaml").write_text("name: t\nkind: qa\nbenchmark: nq_open\npath: q.jsonl\n")
    first, moved = load_task(tmp_path / "a" / "t.yaml"), load_task(tmp_path / "b" / "t.yaml")
    assert first.path != moved.path and task_hash(first) == task_hash(moved)
    _write(tmp_path / "b" / "q.jsonl", [{"id": "q", "question": "who?", "answers": ["b"]}])
    assert task_hash(load_task(tmp_path / "b" / "t.yaml")) != task_hash(first)
    (tmp_path / "a" / "t.yaml").write_text("name: t\nkind: qa\nbenchmark: nq_open\npath: q.jsonl\nmatch: contains\n")
    contains = load_task(tmp_path / "a" / "t.yaml")
    assert task_hash(contains) != task_hash(first)
    assert task_hash(contains, grading=False) == task_hash(first, grading=False)  # samples are not drawn again
