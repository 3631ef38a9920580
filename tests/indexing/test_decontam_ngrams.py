"""Decontamination against real benchmark questions planted into real corpus text (C4, arXiv, Vaswani)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from buildplan.questions import load_questions, questions_of
from catalog.errors import ConfigError
from catalog.variant import BenchmarkRef, DecontaminationConfig
from eval.benchmarks import BenchmarkItem, load_benchmark
from indexing.decontaminate import DecontaminationFilter, Decontaminator, KeyPolicy, Match
from indexing.normalize import InputTableError, word_tokens

GPQA_PASSWORD = "deserted-untie-orchid"  # published by the GPQA authors; the loader takes it as an option


# Tests using these fixtures are marked slow (tests/conftest.py): corpus reads 11,500 real documents, decontaminator
# indexes the real benchmarks; test_decontam_properties.py keeps decontamination in the quick loop.
SLOW_FIXTURES = ("corpus", "decontaminator")


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> list[str]:
    """Real documents: 100 C4 pages, 20 arXiv papers, 11,429 Vaswani abstracts."""
    samples = shared_data / "pretraining_samples"
    texts = [json.loads(line)["text"] for line in open(samples / "c4_sample.jsonl", encoding="utf-8")]
    texts += [json.loads(line)["text"] for line in open(samples / "arxiv_redpajama_sample.jsonl", encoding="utf-8")]
    trec = (shared_data / "retrieval" / "vaswani_npl" / "doc-text.trec").read_text(encoding="utf-8")
    texts += re.findall(r"<DOC>\s*<DOCNO>.*?</DOCNO>(.*?)</DOC>", trec, re.S)
    return texts


@pytest.fixture(scope="module")
def config(shared_data: Path) -> DecontaminationConfig:
    return DecontaminationConfig(
        benchmarks=(
            BenchmarkRef(name="mmlu", path=shared_data / "mmlu"),
            BenchmarkRef(name="math500", path=shared_data / "math500"),
            BenchmarkRef(name="simpleqa", path=shared_data / "simpleqa"),
            BenchmarkRef(name="gpqa", path=shared_data / "gpqa", options={"password": GPQA_PASSWORD}),
        )
    )


@pytest.fixture(scope="module")
def decontaminator(config: DecontaminationConfig) -> Decontaminator:
    return Decontaminator.from_questions(load_questions(config))


@pytest.fixture(scope="module")
def items(decontaminator: Decontaminator, shared_data: Path) -> dict[str, dict[str, str]]:
    """Question text by benchmark and item id (for the items the decontaminator indexed)."""
    loaded = {
        "mmlu": load_benchmark("mmlu", shared_data / "mmlu"),
        "math500": load_benchmark("math500", shared_data / "math500"),
        "simpleqa": load_benchmark("simpleqa", shared_data / "simpleqa"),
        "gpqa": load_benchmark("gpqa", shared_data / "gpqa", password=GPQA_PASSWORD),
    }
    return {name: {i.item_id: i.question for i in its} for name, its in loaded.items()}


def _pick(items: dict[str, str], lo: int, hi: int, prefix: str = "") -> tuple[str, str]:
    """The first ASCII item (by id, starting with ``prefix``) whose question has lo..hi tokens."""
    for item_id in sorted(i for i in items if i.startswith(prefix)):
        q = items[item_id]
        if lo <= len(word_tokens(q)) <= hi and q.isascii():
            return item_id, q
    raise AssertionError(f"no question with {lo}-{hi} tokens")


def _plant(doc: str, snippet: str) -> str:
    """``snippet`` inserted at a word break near the middle of a real document."""
    cut = doc.find(" ", len(doc) // 2)
    return f"{doc[:cut]} {snippet} {doc[cut:]}"


def _reformat(question: str) -> str:
    """Light reformatting a copy might carry: punctuation dropped, upper case, words split over lines and spaces."""
    words = re.sub(r"[^\w\s]", " ", question).upper().split()
    return "".join(w + ("\n" if i % 3 == 2 else "  \t ") for i, w in enumerate(words))


def _table(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"doc_id": [f"doc-{i}" for i in range(len(texts))], "text": texts, "source": "test"})


def test_the_real_corpus_alone_has_no_hits(decontaminator: Decontaminator, corpus: list[str]):
    step = DecontaminationFilter(decontaminator)
    result = step.run(_table(corpus))
    assert result.kept.height == len(corpus) == 11549
    assert result.hits.height == 0
    assert step.summary()["items_found"].to_list() == [0, 0, 0, 0]
    assert step.summary()["template_keys"].to_list()[0] > 0  # MMLU's instruction templates were left out


def test_planted_questions_exact_and_reformatted_are_removed(decontaminator, corpus, items):
    mmlu_id, mmlu_q = _pick(items["mmlu"], 30, 40)
    math_id, math_q = _pick(items["math500"], 40, 60)
    gpqa_id, gpqa_q = _pick(items["gpqa"], 20, 40)
    simpleqa_id, simpleqa_q = _pick(items["simpleqa"], 14, 20)
    planted = {
        0: mmlu_q,
        1: _reformat(mmlu_q),
        2: math_q,
        3: _reformat(math_q),
        4: gpqa_q.replace(" ", "\n"),
        5: _reformat(simpleqa_q),
    }
    texts = [_plant(doc, planted[i]) if i in planted else doc for i, doc in enumerate(corpus[:120])]
    step = DecontaminationFilter(decontaminator)
    result = step.run(_table(texts))

    assert result.kept.height == 120 - len(planted)
    assert set(result.kept["doc_id"]) == {f"doc-{i}" for i in range(120) if i not in planted}
    hits = {(r["doc_id"], r["benchmark"], r["item_id"]): r["n_hits"] for r in result.hits.iter_rows(named=True)}
    n_windows = {
        q: len(word_tokens(q)) - n + 1 for q, n in ((mmlu_q, 16), (math_q, 26), (gpqa_q, 13), (simpleqa_q, 13))
    }
    assert hits == {
        ("doc-0", "mmlu", mmlu_id): n_windows[mmlu_q],
        ("doc-1", "mmlu", mmlu_id): n_windows[mmlu_q],
        ("doc-2", "math500", math_id): n_windows[math_q],
        ("doc-3", "math500", math_id): n_windows[math_q],
        ("doc-4", "gpqa", gpqa_id): n_windows[gpqa_q],
        ("doc-5", "simpleqa", simpleqa_id): n_windows[simpleqa_q],
    }
    assert result.hits["chunk_id"].null_count() == result.hits.height


def test_an_overlap_one_token_short_of_n_is_kept(decontaminator, corpus, items):
    mmlu_id, mmlu_q = _pick(items["mmlu"], 30, 40)
    math_id, math_q = _pick(items["math500"], 40, 60)
    mmlu_tokens, math_tokens = word_tokens(mmlu_q), word_tokens(math_q)
    snippets = [
        " ".join(mmlu_tokens[:15]),  # n-1 = 15 leading tokens
        " ".join(mmlu_tokens[-15:]),
        " ".join(mmlu_tokens[5:20]),
        " ".join(math_tokens[:25]),  # n-1 = 25
        " ".join(math_tokens[10:35]),
    ]
    exactly_n = [" ".join(mmlu_tokens[5:21]), " ".join(math_tokens[10:36])]
    texts = [_plant(corpus[i], s) for i, s in enumerate(snippets + exactly_n)]
    step = DecontaminationFilter(decontaminator)
    result = step.run(_table(texts))
    assert result.kept["doc_id"].to_list() == [f"doc-{i}" for i in range(5)]
    assert sorted(result.hits.select("doc_id", "item_id", "n_hits").rows()) == [
        ("doc-5", mmlu_id, 1),
        ("doc-6", math_id, 1),
    ]


def test_a_question_shorter_than_n_is_one_whole_question_key(decontaminator, items):
    item_id, question = _pick(items["simpleqa"], 9, 11)
    tokens = word_tokens(question)
    assert decontaminator.find(f"Quiz night. {question} Nobody knew.") == [Match("simpleqa", item_id, 2, len(tokens))]
    assert decontaminator.find("Quiz night. " + " ".join(tokens[:-1]) + " nobody knew") == []
    assert decontaminator.find("Quiz night. " + " ".join(tokens[1:]) + " nobody knew") == []


def test_find_reports_token_offsets_of_every_window(decontaminator, items):
    item_id, question = _pick(items["mmlu"], 20, 25)
    n_tokens = len(word_tokens(question))
    matches = decontaminator.find("Alpha, beta -- gamma! " + question)
    assert [m.offset for m in matches] == list(range(3, 3 + n_tokens - 16 + 1))
    assert {(m.benchmark, m.item_id, m.length) for m in matches} == {("mmlu", item_id, 16)}


def test_questions_below_min_tokens_are_reported_not_indexed(decontaminator, corpus):
    summary = {r["benchmark"]: r for r in DecontaminationFilter(decontaminator).summary().iter_rows(named=True)}
    too_short = [r for r in decontaminator.rejections if r.reason == "question_too_short"]
    assert len(too_short) == sum(r["items_too_short"] for r in summary.values())
    assert summary["mmlu"]["items_checked"] + summary["mmlu"]["items_too_short"] == 14042
    assert summary["gpqa"]["items_checked"] + summary["gpqa"]["items_too_short"] == 198
    # Why the floor exists: one-word MMLU questions such as "Theories" match ordinary arXiv prose.
    theories = Decontaminator.from_questions(
        questions_of({"mmlu": [_item("human_aging/60", "Theories")]}), policy=KeyPolicy(min_question_tokens=1)
    )
    hit_docs = DecontaminationFilter(theories).run(_table(corpus[:120])).hits
    assert hit_docs.height > 0
    floor = Decontaminator.from_questions(questions_of({"mmlu": [_item("human_aging/60", "Theories")]}))
    assert floor.rejections[0].reason == "question_too_short"
    assert DecontaminationFilter(floor).run(_table(corpus[:120])).hits.height == 0


def _item(item_id: str, question: str, benchmark: str = "mmlu") -> BenchmarkItem:
    return BenchmarkItem(benchmark=benchmark, item_id=item_id, question=question, answer="A", choices=("a",) * 4)


def test_drop_chunk_removes_only_the_contaminated_chunk(decontaminator, corpus, items):
    item_id, question = _pick(items["mmlu"], 30, 40)
    doc = corpus[3]
    thirds = [doc[: len(doc) // 3], _plant(doc[len(doc) // 3 : 2 * len(doc) // 3], question), doc[2 * len(doc) // 3 :]]
    chunks = pl.DataFrame({"chunk_id": ["c0", "c1", "c2"], "doc_id": ["d3"] * 3, "text": thirds})
    step = DecontaminationFilter(decontaminator, action="drop_chunk")
    result = step.run(chunks)
    assert result.kept["chunk_id"].to_list() == ["c0", "c2"]
    assert result.hits.select("benchmark", "item_id", "doc_id", "chunk_id").rows() == [("mmlu", item_id, "d3", "c1")]
    assert step.stats.as_dict() == {"chunks_in": 3, "chunks_out": 2, "chunks_removed": 1}


def test_stream_accumulates_hits_and_the_per_benchmark_summary(decontaminator, corpus, items):
    (id_a, q_a), (id_b, q_b) = _pick(items["mmlu"], 30, 40), _pick(items["mmlu"], 41, 60, prefix="high_school_biology/")
    math_id, math_q = _pick(items["math500"], 40, 60)
    first = _table([_plant(corpus[0], q_a), corpus[1], _plant(corpus[2], math_q)])
    second = _table([_plant(corpus[4], q_a), _plant(corpus[5], q_b), corpus[6]]).with_columns(pl.col("doc_id") + "-b")
    step = DecontaminationFilter(decontaminator)
    kept = list(step.run_stream([first, second]))
    assert [k["doc_id"].to_list() for k in kept] == [["doc-1"], ["doc-2-b"]]
    per_item = step.hits().group_by("item_id").agg(pl.col("doc_id").sort()).sort("item_id").rows()
    assert sorted(per_item) == sorted([(id_a, ["doc-0", "doc-0-b"]), (id_b, ["doc-1-b"]), (math_id, ["doc-2"])])
    summary = {r["benchmark"]: r for r in step.summary().iter_rows(named=True)}
    assert summary["mmlu"]["items_found"] == 2
    assert summary["mmlu"]["rate"] == pytest.approx(2 / summary["mmlu"]["items_checked"])
    assert summary["math500"]["items_found"] == 1
    assert summary["simpleqa"]["items_found"] == summary["gpqa"]["items_found"] == 0
    assert step.stats.as_dict() == {"documents_in": 6, "documents_out": 2, "documents_removed": 4}


def test_ngram_override_from_the_config(shared_data: Path, items):
    math_id, math_q = _pick(items["math500"], 40, 60)
    excerpt = " ".join(word_tokens(math_q)[7:17])  # 10 tokens from the middle of the problem
    default = Decontaminator.from_questions(
        load_questions(DecontaminationConfig(benchmarks=(BenchmarkRef(name="math500", path=shared_data / "math500"),)))
    )
    ten = Decontaminator.from_questions(
        load_questions(
            DecontaminationConfig(benchmarks=(BenchmarkRef(name="math500", path=shared_data / "math500", ngram=10),))
        )
    )
    assert default.find(f"In class: {excerpt}.") == []
    assert ten.find(f"In class: {excerpt}.") == [Match("math500", math_id, 2, 10)]


def test_bad_tables_and_configs_are_clear_errors(decontaminator, shared_data: Path):
    with pytest.raises(InputTableError, match="lacks column"):
        DecontaminationFilter(decontaminator).run(pl.DataFrame({"doc_id": ["a"], "body": ["x"]}))
    with pytest.raises(InputTableError, match="chunk_id"):
        DecontaminationFilter(decontaminator, action="drop_chunk").run(_table(["x"]))
    with pytest.raises(ConfigError, match="unknown action"):
        DecontaminationFilter(decontaminator, action="drop_sentence")
    twice = BenchmarkRef(name="math500", path=shared_data / "math500")
    with pytest.raises(ConfigError, match="repeated"):
        Decontaminator.from_questions(load_questions(DecontaminationConfig(benchmarks=(twice, twice))))


def test_null_and_empty_texts_are_kept(decontaminator):
    table = pl.DataFrame(
        {"doc_id": ["a", "b", "c"], "text": [None, "", "!!!"]}, schema={"doc_id": pl.String, "text": pl.String}
    )
    assert DecontaminationFilter(decontaminator).run(table).kept.height == 3


def test_instruction_templates_shared_by_many_items_are_not_keys(decontaminator, corpus, items):
    scenarios = {k: q for k, q in items["mmlu"].items() if k.startswith("moral_scenarios/")}
    assert len(scenarios) == 895
    item_id, question = sorted(scenarios.items())[0]
    boilerplate = question.split("Scenario 1")[0]
    assert sum(q.startswith(boilerplate) for q in scenarios.values()) == 895
    step = DecontaminationFilter(decontaminator)
    result = step.run(_table([_plant(corpus[0], boilerplate), _plant(corpus[1], question)]))
    assert result.kept["doc_id"].to_list() == ["doc-0"]  # the shared instruction alone is no question
    # The full question names its own item, not all 895; moral_scenarios/606 also starts "as of 2020? Scenario 1 |
    # I slammed on my breaks to", a 16-gram the two questions really share.
    found = set(result.hits["item_id"])
    assert found == {item_id, "moral_scenarios/606"}
    assert step.summary().filter(pl.col("benchmark") == "mmlu")["items_found"].item() == 2


def test_a_passage_shared_by_a_few_questions_counts_for_each_of_them(decontaminator, corpus, items):
    history = {k: q for k, q in items["mmlu"].items() if k.startswith("high_school_us_history/")}
    passage_of = {k: q.split("\n")[1] for k, q in history.items() if q.count("\n") >= 2}
    passage = passage_of["high_school_us_history/23"]
    sharing = sorted(k for k, p in passage_of.items() if p == passage)
    assert 2 <= len(sharing) <= 6
    result = DecontaminationFilter(decontaminator).run(_table([_plant(corpus[0], passage)]))
    assert sorted(result.hits["item_id"]) == sharing
