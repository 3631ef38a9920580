"""``reread extract`` end to end, as a user runs it (the installed console script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.errors import ConfigError

REREAD = Path(sys.executable).parent / "reread"


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([REREAD, "extract", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_extract_json_lines_for_warc_records_and_html_files(fixtures_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.html").write_bytes(b"<html><body></body></html>")
    warc = fixtures_dir / "extract/warc/jwarc_cc.warc.gz"
    page = fixtures_dir / "extract/html/ba07d1e64775f4090e39116c382111f5a2cfe9528dd179673f4e9bfcea370c15.html"
    result = run_cli("--extractor", "resiliparse", "--json", warc, page, tmp_path / "empty.html")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [f"{warc}#0", str(page)]
    assert rows[0]["url"] == "http://commoncrawl.org/" and rows[0]["title"] == "Common Crawl"
    assert "open repository of web crawl data" in rows[0]["text"]
    assert "DMEXCO" in rows[1]["title"]
    assert f"rejected {tmp_path / 'empty.html'}: empty_text" in result.stderr


@pytest.mark.slow
def test_extract_plain_output_has_a_header_per_input(fixtures_dir: Path) -> None:
    page = fixtures_dir / "extract/html/ba07d1e64775f4090e39116c382111f5a2cfe9528dd179673f4e9bfcea370c15.html"
    result = run_cli("--extractor", "trafilatura", "--option", "favor_precision=true", page)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"==> {page} | Take C.A.R.E. - comwrap auf der DMEXCO 2018 <==\n")
    assert "Am 12. Bis 13. September startet wieder die DMEXCO 2018 in Köln" in result.stdout


def test_extract_reports_bad_input_as_config_errors(tmp_path: Path) -> None:
    # in-process: these fail before any worker starts, and flows.cli.main prints RereadErrors as "error: ..."
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["extract", str(tmp_path / "missing.html")])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == f"{tmp_path / 'missing.html'}: no such file"
    result = CliRunner().invoke(app, ["extract", "--option", "favour_precision=1", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "unknown option(s) favour_precision" in str(result.exception)
    result = CliRunner().invoke(app, ["extract", "--option", "no-equals-sign", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "expected KEY=VALUE" in str(result.exception)
