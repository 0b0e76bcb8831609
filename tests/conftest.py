"""Shared helpers for tests that run the Snakemake workflow in a scratch working directory."""

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omnimatte.logs import get_logger

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with `workdir` as working directory; output captured as text."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory holding a copy of config/, as a user's deployment would."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path


@pytest.fixture
def package_log(caplog: pytest.LogCaptureFixture):
    """caplog for the package's records from INFO up, also once setup_logging (run by other tests) stops them
    propagating."""
    logger = get_logger()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
