"""Snakemake locks of a killed run are removed when their owner has provably ended, and only then."""

import json
import os
import subprocess
import sys
from pathlib import Path

from omnimatte.locks import LOCKS, OWNERS, record_owner, remove_stale_locks


def make_lock(root: Path, name: str) -> Path:
    lock = root / LOCKS / name
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("results/dog/omnimatte.mp4\n")
    return lock


def test_a_lock_whose_run_has_ended_is_removed_a_live_or_foreign_one_is_kept(tmp_path: Path):
    dead, live, foreign, unknown = (make_lock(tmp_path, f"{i}.output.lock") for i in range(4))
    # The owner of `dead` is a process that has exited, as a Snakemake run killed with SIGKILL has.
    subprocess.run([sys.executable, "-c", "import sys; from omnimatte.locks import record_owner; "
                    "record_owner([sys.argv[1]], sys.argv[2])", str(dead), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    record_owner([live], tmp_path)  # this test's own process: alive
    record_owner([foreign], tmp_path)
    record = tmp_path / OWNERS / f"{foreign.name}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "host": "another-host", "pid": 1}))

    removed = remove_stale_locks(tmp_path)
    assert [owner["lock"] for owner in removed] == [str(dead)]
    assert not dead.exists() and live.exists() and foreign.exists() and unknown.exists()
    assert not (tmp_path / OWNERS / f"{dead.name}.json").exists()

    live.unlink()  # the live run ended normally: its record goes with the next check
    assert remove_stale_locks(tmp_path) == [] and not (tmp_path / OWNERS / f"{live.name}.json").exists()
