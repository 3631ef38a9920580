"""Bad-input figures: answer extraction time on degenerate model outputs, and reading damaged gzip sources.

1. Every answer extractor on the outputs that used to stall an evaluation ("Answer:" + spaces + "!", newlines after
   "Answer:", ``\\boxed{`` repeated unclosed, ...) at 10 KB, 100 KB and 1 MB: best of 3 runs. Linear time shows as a
   ~10x step per row; the issue's reproductions took 88 s to "never" at 300-8,000 repetitions before.
2. A multi-member ``.jsonl.gz`` read line by line with ``extract.sources.compressed.iter_lines`` against the standard
   ``gzip`` module (throughput, MB/s of decompressed data), and the same file with one member damaged: how many
   records each way recovers (the gzip module stops at the damage).

    .venv/bin/python benchmarks/robustness.py [--mb 50]

Prints two tables; writes ``benchmarks/results/robustness.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
import zlib
from pathlib import Path

from eval.answers import ANSWER_EXTRACTORS
from extract.sources.compressed import Damage, iter_lines

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks/results/robustness.json"
SIZES = (10_000, 100_000, 1_000_000)
CASES = {
    "Answer: + spaces + !": lambda n: "Answer:" + " " * n + "!",
    "Answer: + newlines": lambda n: "Answer:" + "\n" * n,
    "\\boxed{ repeated": lambda n: "\\boxed{" * (n // 7),
    "Answer: A repeated": lambda n: "Answer: A " * (n // 10),
    "final answer is + spaces": lambda n: "The final answer is x" + " " * n + "y",
}


def best_of(runs: int, fn, *args) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def extraction_table() -> list[dict]:
    rows = []
    for case, make in CASES.items():
        for size in SIZES:
            text = make(size)
            row = {"case": case, "chars": len(text)}
            for name, extractor in ANSWER_EXTRACTORS.items():
                row[name] = best_of(3, extractor, text)
            rows.append(row)
    return rows


def gzip_figures(megabytes: int, folder: Path) -> dict:
    line = json.dumps({"text": "a line of a pre-training corpus " * 8}).encode() + b"\n"
    per_member = max(1, (4 << 20) // len(line))  # ~4 MB members, as parallel writers and bgzip make
    lines_total = (megabytes << 20) // len(line)
    members = [gzip.compress(line * min(per_member, lines_total - i)) for i in range(0, lines_total, per_member)]
    clean = folder / "clean.jsonl.gz"
    clean.write_bytes(b"".join(members))
    damaged_member = bytearray(members[len(members) // 2])
    for i in range(200, 260):
        damaged_member[i] ^= 0xA5
    damaged = folder / "damaged.jsonl.gz"
    damaged.write_bytes(
        b"".join(members[: len(members) // 2]) + bytes(damaged_member) + b"".join(members[len(members) // 2 + 1 :])
    )

    def ours(path: Path) -> tuple[int, int]:
        lines = damages = 0
        for item in iter_lines(path):
            if isinstance(item, Damage):
                damages += 1
            else:
                lines += 1
        return lines, damages

    def standard(path: Path) -> tuple[int, int]:
        lines = 0
        try:
            with gzip.open(path, "rb") as f:
                for _ in f:
                    lines += 1
        except (OSError, EOFError, zlib.error):
            return lines, 1
        return lines, 0

    figures = {"megabytes": megabytes, "members": len(members), "lines": lines_total}
    for name, reader in (("iter_lines", ours), ("gzip module", standard)):
        start = time.perf_counter()
        reader(clean)
        seconds = time.perf_counter() - start
        recovered, errors = reader(damaged)
        figures[name] = {"mb_per_s": megabytes / seconds, "damaged_lines_recovered": recovered, "errors": errors}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=50, help="decompressed size of the gzip test file")
    args = parser.parse_args()

    rows = extraction_table()
    names = list(ANSWER_EXTRACTORS)
    print(f"{'degenerate output':28} {'chars':>9} " + " ".join(f"{n + ' (ms)':>20}" for n in names))
    for row in rows:
        print(f"{row['case']:28} {row['chars']:>9} " + " ".join(f"{row[n] * 1000:>20.2f}" for n in names))

    with tempfile.TemporaryDirectory() as tmp:
        figures = gzip_figures(args.mb, Path(tmp))
    print(f"\n.jsonl.gz of {figures['megabytes']} MB, {figures['members']} members, {figures['lines']} lines; "
          "one member damaged in the second file")  # fmt: skip
    print(f"{'reader':14} {'MB/s':>8} {'lines read from the damaged file':>34} {'errors':>7}")
    for name in ("iter_lines", "gzip module"):
        f = figures[name]
        print(f"{name:14} {f['mb_per_s']:>8.0f} {f['damaged_lines_recovered']:>34} {f['errors']:>7}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"answer_extraction_s": rows, "gzip": figures}, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
