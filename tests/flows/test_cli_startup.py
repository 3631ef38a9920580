"""The command line as a new user meets it: fast start (no heavy imports for help and read-only commands), a version,
bundled tasks and variants found from any working directory, quiet and pipe-friendly output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog.db import Catalog
from flows.cli import app

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("prefect", "torch", "faiss", "sentence_transformers", "duckdb", "polars", "eval.theory.experiments")


def _python(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def _modules_after(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    code = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom flows.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        f"print(json.dumps([r.exit_code, [m for m in {HEAVY!r} if m in sys.modules], r.output]))"
    )
    result = _python(code, cwd)
    assert result.returncode == 0, result.stderr
    return tuple(json.loads(result.stdout.splitlines()[-1]))  # type: ignore[return-value]


def test_help_and_version_load_no_heavy_library(tmp_path: Path) -> None:
    code, loaded, output = _modules_after(["--help"], tmp_path)
    assert code == 0 and loaded == []
    for command in ("build", "eval", "compare", "search", "runs", "theory", "mixture", "tts-report"):
        assert command in output
    code, loaded, output = _modules_after(["--version"], tmp_path)
    assert (code, loaded) == (0, [])
    assert output.startswith("reread ") and len(output.split()) == 2


def test_theory_experiments_are_listed_when_the_group_is_used() -> None:
    result = CliRunner().invoke(app, ["theory", "--help"])
    assert result.exit_code == 0, result.output
    assert "trade" in result.output


def test_importing_flows_changes_no_environment_variable(tmp_path: Path) -> None:
    code = (
        "import os, json\nbefore = dict(os.environ)\n"
        "import flows, flows.cli, flows.runtime, indexing.vector_index\n"
        "print(json.dumps(sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))))"
    )
    result = _python(code, tmp_path, env={"OMP_WAIT_POLICY": "", "DO_NOT_TRACK": ""})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_read_only_commands_start_no_prefect(tmp_path: Path) -> None:
    with Catalog.in_data_dir(tmp_path / "data") as catalog:
        catalog.finish_run(catalog.start_run("v", "build"), "completed", {})
    code, loaded, output = _modules_after(["runs", "--json", "--data-dir", str(tmp_path / "data")], tmp_path)
    assert code == 0, output
    assert "prefect" not in loaded and "torch" not in loaded
    assert json.loads(output)[0]["variant"] == "v"


def test_bundled_tasks_and_variants_resolve_from_another_directory(tmp_path: Path) -> None:
    code = (
        "from eval.tasks import resolve_task\nfrom flows.commands._common import resolve_variant\n"
        "from pathlib import Path\n"
        "print(resolve_task('mmlu').path.is_dir(), resolve_task('vaswani').name, resolve_variant(Path('vaswani')))"
    )
    result = _python(code, tmp_path, env={"REREAD_TASKS_DIR": ""})
    assert result.returncode == 0, result.stderr
    is_dir, name, variant = result.stdout.split()
    assert (is_dir, name) == ("True", "vaswani")
    assert Path(variant) == REPO / "sample_data" / "variants" / "vaswani.yaml"


def test_tasks_dir_env_overrides_the_bundled_tasks(tmp_path: Path, monkeypatch) -> None:
    from eval.tasks import resolve_task

    (tmp_path / "mine.yaml").write_text(
        "name: mine\nkind: qrels\nqueries: q.trec\nqrels: qrels\nsource: s\n", encoding="utf-8"
    )
    monkeypatch.setenv("REREAD_TASKS_DIR", str(tmp_path))
    assert resolve_task("mine").qrels == (tmp_path / "qrels").resolve()


def test_unknown_variant_names_the_input_and_the_bundled_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["search", "no-such-variant", "q", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    assert "no-such-variant: no such file, and not a bundled variant (" in message
    assert "sample, vaswani, vaswani-hnsw)" in message


def test_piped_tables_are_tab_separated_and_not_cut() -> None:
    import io

    from rich.console import Console
    from rich.table import Table

    from flows.commands._common import print_table

    table = Table(title="a [bold]title[/bold]")
    table.add_column("name")
    table.add_column("details")
    long_value = "x=" + "1" * 300
    table.add_row("first", long_value)
    table.add_row("second\tline", "[red]y[/red]")
    buffer = io.StringIO()
    print_table(table, Console(file=buffer))  # a file is not a terminal, like a pipe
    assert buffer.getvalue().splitlines() == ["# a title", "name\tdetails", f"first\t{long_value}", "second line\ty"]


def test_quiet_by_default_and_verbose_on_request(tmp_path: Path) -> None:
    code = (
        "import os, json\nfrom typer.testing import CliRunner\nfrom flows.cli import app\nimport sys\n"
        "CliRunner().invoke(app, sys.argv[1:] + ['runs', '--data-dir', 'nowhere'])\n"
        "keys = ('PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL', 'DO_NOT_TRACK', 'HF_HUB_DISABLE_PROGRESS_BARS')\n"
        "print(json.dumps([os.environ.get(k) for k in keys]))"
    )
    clean = {k: "" for k in ("REREAD_LOG_LEVEL", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "DO_NOT_TRACK")}
    clean["HF_HUB_DISABLE_PROGRESS_BARS"] = ""
    env = {k: v for k, v in os.environ.items() if k not in clean}
    quiet = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert json.loads(quiet.stdout.splitlines()[-1]) == ["WARNING", "1", "1"], quiet.stderr
    verbose = subprocess.run([sys.executable, "-c", code, "--verbose"], cwd=tmp_path,
                             env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert json.loads(verbose.stdout.splitlines()[-1]) == ["INFO", "1", None], verbose.stderr


@pytest.mark.slow
def test_a_flow_command_prints_its_report_and_no_prefect_noise(tmp_path: Path) -> None:
    """A real flow run through the CLI (Prefect's temporary server included): stdout is the report, stderr empty of
    INFO logs, the server banner, the telemetry notice and "Error logging to API" at exit."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COLUMNS": "100",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    }
    for key in ("REREAD_LOG_LEVEL", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_API_URL"):
        env.pop(key, None)
    args = ["theory", "trade", "--data-dir", str(tmp_path), "--set", "kmax=2", "--set", "reps=2", "--set", "ns=[10]"]
    result = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("trade: wrote ")
    for noise in ("INFO", "Starting temporary server", "telemetry", "Error logging to API", "Finished in state"):
        assert noise not in result.stderr
