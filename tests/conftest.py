"""Pytest fixtures the test files share (plain helpers live in tests/helpers.py)."""

import logging
import shutil
from pathlib import Path

import pytest

from omnimatte.logs import get_logger
from tests.helpers import REPO


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
