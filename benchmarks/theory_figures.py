"""Wall time of every `reread theory <experiment>` figure (target: under a minute each on 2 cores).

Runs each experiment flow in one process (one Prefect temporary server, whose start-up is timed separately, as the CLI
pays it once per command), prints a table and writes benchmarks/results/theory_figures.json.

    .venv/bin/python benchmarks/theory_figures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "theory_figures.json"
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder of the figures (default: a temp dir)")
    args = parser.parse_args()

    from flows.runtime import offline_defaults

    offline_defaults()
    from prefect import flow

    from flows.theory import THEORY_FLOWS

    out = args.out or Path(tempfile.mkdtemp(prefix="theory-figures-"))

    @flow(name="theory-benchmark-warmup")
    def warmup() -> None:
        """Starts the temporary server, so its start-up is not billed to the first experiment."""

    start = time.perf_counter()
    warmup()
    server_s = time.perf_counter() - start
    rows = []
    for name, experiment_flow in THEORY_FLOWS.items():
        start = time.perf_counter()
        outputs = experiment_flow(out / name)
        seconds = time.perf_counter() - start
        rows.append(
            {"experiment": name, "seconds": round(seconds, 2), "with_server_start_s": round(seconds + server_s, 2)}
        )
        rows[-1]["png_bytes"] = Path(outputs["png"]).stat().st_size

    print(f"\nPrefect temporary server start-up: {server_s:.1f} s (paid once per CLI command)")
    print(f"{'experiment':<14}{'flow s':>9}{'+ server s':>12}{'< 60 s':>8}")
    for row in rows:
        ok = "yes" if row["with_server_start_s"] < TARGET_S else "NO"
        print(f"{row['experiment']:<14}{row['seconds']:>9.1f}{row['with_server_start_s']:>12.1f}{ok:>8}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"server_start_s": round(server_s, 2), "cpu_count": os.cpu_count(), "target_s": TARGET_S, "rows": rows},
            indent=1,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
