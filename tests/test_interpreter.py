"""Snakemake run as /path/to/venv/bin/snakemake without activating the venv: the jobs must use that
interpreter, whatever `python` is first on PATH (another one, or none at all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, TINY, write_config


@pytest.mark.parametrize("path_python", ["another", "none"])
def test_jobs_use_the_interpreter_that_runs_snakemake(workdir: Path, path_python: str):
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    marker = workdir / "wrong_python_ran"
    if path_python == "another":  # a python without the package, as a system python would be
        (bin_dir / "python").write_text(f"#!/bin/sh\ntouch {marker}\necho 'No module named omnimatte' >&2\nexit 1\n")
        (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    config = write_config(workdir, TINY)
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--cores", "1", "--configfile", config, "--", "results/dog/frames_info.json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "results" / "dog" / "frames_info.json").is_file()
    assert not marker.exists()
