"""Session-wide fixtures: paths to the real shared data, the bundled embedder, a Prefect test harness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline everywhere: nothing may reach a hub at test time, and faiss/torch must not oversubscribe 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SAMPLE_DATA = REPO_ROOT / "sample_data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the repository (``../shared/data``); tests using it skip when it is absent."""
    path = Path(os.environ.get("REREAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary server and database) for the whole session: its first start migrates a
    database, which takes tens of seconds, so tests that run flows share it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
