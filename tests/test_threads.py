"""The thread limit: CPU affinity, cgroup quotas (v2 and v1), the job's threads and OMP_NUM_THREADS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnimatte.threads import affinity_cpus, cgroup_cpus, thread_limit
from tests.helpers import REPO


def fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    """A file system root holding /proc/self/cgroup and the given files under /sys/fs/cgroup."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        path = tmp_path / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_cgroup_v2_quota_is_rounded_down_and_a_parent_binds(tmp_path):
    root = fake_root(tmp_path, "0::/jobs/job1/step\n", {
        "cpu.max": "max 100000\n",
        "jobs/cpu.max": "350000 100000\n",
        "jobs/job1/cpu.max": "max 100000\n",
        "jobs/job1/step/cpu.max": "max 100000\n",
    })
    assert cgroup_cpus(root) == 3
    (root / "sys/fs/cgroup/jobs/job1/step/cpu.max").write_text("150000 100000\n")
    assert cgroup_cpus(root) == 1


def test_cgroup_v2_without_a_quota_and_a_quota_under_one_cpu(tmp_path):
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert cgroup_cpus(root) is None
    (root / "sys/fs/cgroup/cpu.max").write_text("20000 100000\n")
    assert cgroup_cpus(root) == 1  # a fifth of a CPU still runs one thread


def test_cgroup_v2_inside_a_container_reads_the_mount_root(tmp_path):
    """The path names the host's hierarchy; the container sees its own cgroup at the mount's root."""
    root = fake_root(tmp_path, "0::/kubepods/burstable/pod1/abc\n", {"cpu.max": "200000 100000\n"})
    assert cgroup_cpus(root) == 2


def test_cgroup_v1_quota(tmp_path):
    cgroup = "4:memory:/job\n3:cpu,cpuacct:/slurm/job7\n1:name=systemd:/\n"
    root = fake_root(tmp_path, cgroup, {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/slurm/job7/cpu.cfs_quota_us": "400000\n",
        "cpu,cpuacct/slurm/job7/cpu.cfs_period_us": "100000\n",
    })
    assert cgroup_cpus(root) == 4
    (root / "sys/fs/cgroup/cpu,cpuacct/slurm/job7/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpus(root) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpus(tmp_path) is None


def test_the_limit_is_the_least_bound(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = affinity_cpus()
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert thread_limit(0, root).count == cpus
    assert thread_limit(8 * cpus, root).count == cpus  # Snakemake's --cores 8 on a smaller machine
    assert thread_limit(1, root).count == 1
    (root / "sys/fs/cgroup/cpu.max").write_text("100000 100000\n")
    limit = thread_limit(8 * cpus, root)
    assert limit.count == 1 and limit.bounds["cgroup quota"] == 1
    assert "cgroup quota 1" in limit.describe()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (root / "sys/fs/cgroup/cpu.max").write_text("max 100000\n")
    assert thread_limit(0, root).count == 1


def test_a_command_caps_torch_and_opencv_and_logs_it(tmp_path, monkeypatch):
    """`--threads` far beyond the machine: torch, loaded after the cap or before it, and OpenCV run no more
    threads than the process may use; the log says how many and why."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    limit = thread_limit(64).count
    script = ("import sys, cv2; from omnimatte.cli import main; code = main(sys.argv[1:]); import torch; "
              "print(torch.get_num_threads(), cv2.getNumThreads())")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)
    out = tmp_path / "demo"
    command = [sys.executable, "-c", script, "demo", "--out", str(out), "--threads", "64", "--settings",
               json.dumps({"preset": "bounce", "n_frames": 3, "width": 64, "height": 32})]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(limit), str(limit)]
    assert f"demo: {limit} thread(s): the least of CPU affinity {affinity_cpus()}" in result.stderr
    assert "threads asked for 64" in result.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_affinity_of_one_cpu_gives_one_thread(tmp_path):
    """As `taskset -c 0` or a cluster's cpuset would run it."""
    script = ("import os, torch; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from omnimatte.threads import fit_threads; fit_threads(8); print(torch.get_num_threads())")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


def test_the_opencv_pool_has_a_worker_per_thread_and_opencv_one_thread_inside():
    import cv2

    from omnimatte.threads import opencv_pool

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        with opencv_pool() as pool:
            assert pool._max_workers == 2 and cv2.getNumThreads() == 1
            assert list(pool.map(lambda n: n * n, range(5))) == [0, 1, 4, 9, 16]
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_the_path_tracer_renders_on_the_capped_threads():
    """drjit's pool, which Mitsuba renders on, reads no environment variable: the renderer caps it itself,
    at what the command's cap left in OMP_NUM_THREADS."""
    pytest.importorskip("mitsuba")
    script = "from omnimatte.rendered.renderer import _mitsuba; import drjit; _mitsuba(); print(drjit.thread_count())"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]
