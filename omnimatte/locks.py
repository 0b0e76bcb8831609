"""Snakemake locks left behind by a killed run, removed once their owner is provably gone.

Snakemake locks a run's inputs and outputs in .snakemake/locks/ and removes the locks
when the run ends. A run killed outright (SIGKILL, an out-of-memory kill, a lost
session, a power cut) leaves them, and the next run stops with "Directory cannot be
locked" until `snakemake --unlock`. The lock files do not say who wrote them, so the
workflow records the owner of its own locks (host, process id and its start time)
when a run starts, and a later run removes only locks whose owner ran on this host and
no longer exists. Locks of unknown owners (a run on another host sharing the folder, a
run of another workflow) are left alone for `--unlock`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path

#: Where the owner of each lock file is recorded, beside Snakemake's own folders.
OWNERS = Path(".snakemake") / "omnimatte_lock_owners"
LOCKS = Path(".snakemake") / "locks"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused process id is told apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return owner.get("start") is None or _start_time(owner["pid"]) in (None, owner["start"])


def record_owner(lock_files: Iterable[str | os.PathLike], root: str | os.PathLike = ".") -> None:
    """Record this process as the owner of `lock_files` (called when a run has taken its locks)."""
    owners = Path(root) / OWNERS
    owners.mkdir(parents=True, exist_ok=True)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}
    for lock in lock_files:
        (owners / f"{Path(lock).name}.json").write_text(json.dumps(owner))


def remove_stale_locks(root: str | os.PathLike = ".") -> list[dict]:
    """Remove the lock files whose recorded owner ran on this host and has ended; return those owners.

    Owner records of locks that no longer exist (their run ended normally) are dropped.
    """
    owners, locks = Path(root) / OWNERS, Path(root) / LOCKS
    removed = []
    for record in sorted(owners.glob("*.lock.json")) if owners.is_dir() else []:
        lock = locks / record.name.removesuffix(".json")
        try:
            owner = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if lock.exists() and (owner.get("host") != socket.gethostname() or _alive(owner)):
            continue
        if lock.exists():
            lock.unlink(missing_ok=True)
            removed.append({**owner, "lock": str(lock)})
        record.unlink(missing_ok=True)
    return removed
