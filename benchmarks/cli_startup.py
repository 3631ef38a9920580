"""Start-up time of the ``reread`` command line: wall and CPU seconds of ``reread --help``, ``reread --version`` and
``reread theory --help`` (the lazily loaded group), each a fresh process, plus the heavy libraries each one imported
(there should be none). Target (issue 15): under 2 s on an idle 2-core machine.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 5]

Prints a table; writes ``benchmarks/results/cli_startup.json``. Wall times depend on the machine's load (the 1-minute
load average is recorded); CPU seconds much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results/cli_startup.json"
COMMANDS = (["--help"], ["--version"], ["theory", "--help"])
HEAVY = ("prefect", "torch", "faiss", "duckdb", "polars", "sentence_transformers", "transformers")
# Runs the CLI as the console script does, then reports which heavy modules it loaded (on stderr, after the output).
PROBE = (
    "import sys\nfrom flows.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
    f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
)


def _run(args: list[str]) -> tuple[float, float, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    loaded = result.stderr.rsplit("LOADED=", 1)[-1].strip()
    return wall, cpu, [m for m in loaded.split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _run(["--version"])  # warm the file cache: the first start reads every .pyc from disk
    rows = []
    for command in COMMANDS:
        runs = [_run(command) for _ in range(args.repeat)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        rows.append(
            {
                "command": "reread " + " ".join(command),
                "wall_s_median": round(statistics.median(walls), 3),
                "wall_s_max": round(max(walls), 3),
                "cpu_s_median": round(statistics.median(cpus), 3),
                "heavy_modules_loaded": sorted(set().union(*(r[2] for r in runs))),
                "under_2s": statistics.median(walls) < 2.0,
            }
        )
    print(f"{'command':<24} {'wall s (median)':>16} {'wall s (max)':>13} {'cpu s':>7}  heavy modules")
    for r in rows:
        heavy = ", ".join(r["heavy_modules_loaded"]) or "none"
        print(
            f"{r['command']:<24} {r['wall_s_median']:>16.3f} {r['wall_s_max']:>13.3f} {r['cpu_s_median']:>7.3f}  {heavy}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {"load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count(), "repeat": args.repeat, "rows": rows}
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"load average {document['load_average_1min']:.2f} on {document['cpus']} CPUs; wrote {RESULTS}")


if __name__ == "__main__":
    main()
