"""How many compute threads a stage may start: no more than the CPUs it may use.

A job may use the fewest of: the CPUs in the process's affinity mask (taskset, SLURM's
cpusets), the CPUs its cgroup's quota pays for (a container's or a cluster job's
`cpu.max`, or cgroup v1's `cpu.cfs_quota_us`), the threads the job asked for (Snakemake's
`threads`, passed as `--threads`) and OMP_NUM_THREADS where the environment sets it (as
Snakemake does for every job). torch and OpenCV would otherwise start one thread per
CPU the machine has, or as many as asked: eight threads on two cores run a training step
at well under half the speed of two. Every command applies it
once at its start (`fit_threads`), before any stage starts a thread, and logs it once.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from omnimatte.logs import get_logger

log = get_logger("threads")

# What the numerical libraries a stage loads read for their thread pools (OpenMP, OpenBLAS, MKL,
# Accelerate, numexpr): set for libraries loaded later and for child processes.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class ThreadLimit:
    """The threads a stage may use (`count`) and each bound it was the least of, by name (None: no such bound)."""

    count: int
    bounds: dict[str, int | None]

    def describe(self) -> str:
        given = ", ".join(f"{name} {value}" for name, value in self.bounds.items() if value is not None)
        unbounded = [name for name, value in self.bounds.items() if value is None]
        return f"{self.count} thread(s): the least of {given}" + (f" (no {', no '.join(unbounded)})" if unbounded else "")


def affinity_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), or every CPU where the system does not say."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cgroup_paths(root: Path) -> dict[str, str]:
    """This process's cgroup per controller from /proc/self/cgroup: '' for the v2 hierarchy, else each v1 controller."""
    try:
        text = (root / "proc/self/cgroup").read_text()
    except OSError:
        return {}
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _folders_up(mount: Path, path: str) -> list[Path]:
    """The cgroup's own folder under `mount` and each above it, to the mount: a parent's quota binds its children.

    Inside a container the cgroup path names the host's hierarchy while the mount shows the container's own
    cgroup at the mount's root; then only the mount's root exists, and it is the one that counts.
    """
    parts = [part for part in path.strip("/").split("/") if part]
    folders = [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [folder for folder in folders if folder.is_dir()]


def _quota_v2(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def _quota_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1: no quota
        return None
    return quota / period


def cgroup_cpus(root: Path = Path("/")) -> int | None:
    """The CPUs this process's cgroup quota pays for, rounded down (at least 1); None without a quota.

    cgroup v2's cpu.max ("max 100000" or "200000 100000") and cgroup v1's cpu.cfs_quota_us over
    cpu.cfs_period_us, the least along the cgroup's path. `root` is the file system's root (tests give
    a folder of their own).
    """
    paths = _cgroup_paths(root)
    quotas: list[float] = []
    if "" in paths:
        for folder in _folders_up(root / "sys/fs/cgroup", paths[""]):
            quota = _quota_v2(folder)
            if quota is not None:
                quotas.append(quota)
    if "cpu" in paths:
        for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            mount = root / "sys/fs/cgroup" / name
            if mount.is_dir():
                for folder in _folders_up(mount, paths["cpu"]):
                    quota = _quota_v1(folder)
                    if quota is not None:
                        quotas.append(quota)
                break
    if not quotas:
        return None
    return max(1, math.floor(min(quotas)))


def _environment_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def thread_limit(requested: int = 0, root: Path = Path("/")) -> ThreadLimit:
    """The threads a stage may start: the least of its CPU affinity, its cgroup's quota (read under `root`),
    `requested` (0: no request) and OMP_NUM_THREADS."""
    bounds = {"CPU affinity": affinity_cpus(),
              "cgroup quota": cgroup_cpus(root),
              "threads asked for": requested if requested > 0 else None,
              "OMP_NUM_THREADS": _environment_threads()}
    return ThreadLimit(count=min(value for value in bounds.values() if value is not None), bounds=bounds)


def fit_threads(requested: int = 0, stage: str = "") -> ThreadLimit:
    """Cap every thread pool of this process (torch's, OpenCV's, OpenMP's and the BLAS libraries') and of its
    child processes at thread_limit(requested); logs the count and why, once per call."""
    limit = thread_limit(requested)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(limit.count)  # read by libraries as they load, torch's OpenMP among them
    import cv2  # cheap to load, and its pool ignores the variables above

    cv2.setNumThreads(limit.count)
    torch = sys.modules.get("torch")
    if torch is not None:  # loaded already: its pool read the variables before they were set
        torch.set_num_threads(limit.count)
    log.info("%s%s", f"{stage}: " if stage else "", limit.describe())
    return limit


@contextlib.contextmanager
def opencv_pool() -> Iterator[ThreadPoolExecutor]:
    """A pool for independent OpenCV calls (one frame pair each), with as many workers as OpenCV may use threads
    (fit_threads sets that); inside it OpenCV runs one thread per call, so the workers are all the threads."""
    import cv2

    workers = max(1, cv2.getNumThreads())
    cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            yield pool
    finally:
        cv2.setNumThreads(workers)
