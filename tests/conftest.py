"""Pytest fixtures the test files share (plain helpers live in tests/helpers.py)."""

import logging
import shutil
from pathlib import Path

import pytest

from omnimatte.logs import get_logger
from tests.helpers import REPO, TINY_SAM, build_sam_vit_tiny


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


@pytest.fixture(scope="session")
def tiny_sam() -> str:
    """The model type of a small untrained SAM (helpers.build_sam_vit_tiny), registered with segment_anything's
    builders for the session, so that load_sam and the masks stage build it as they build the official ones."""
    from segment_anything import sam_model_registry

    sam_model_registry[TINY_SAM] = build_sam_vit_tiny
    yield TINY_SAM
    del sam_model_registry[TINY_SAM]
