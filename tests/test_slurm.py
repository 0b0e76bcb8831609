"""The tiny demo submitted to a real one-node SLURM cluster through profiles/slurm.

tests/slurm_cluster.sh starts munged, slurmctld and slurmd (Debian's packages) in a
scratch folder, which needs root. Where the packages or root are missing the test is
skipped with the reason, unless OMNIMATTE_REQUIRE_SLURM=1 (set by .ci/run): then it
fails, so CI never passes without having run it.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from omnimatte.io import list_frames
from tests.helpers import REPO, RULES, TINY, run_snakemake, write_config

CLUSTER_SCRIPT = REPO / "tests" / "slurm_cluster.sh"
CPU_PARTITION, GPU_PARTITION = "omnimatte_cpu", "omnimatte_gpu"  # as tests/slurm_cluster.sh names them

def _cannot_run(reason: str) -> None:
    if os.environ.get("OMNIMATTE_REQUIRE_SLURM") == "1":
        pytest.fail(f"OMNIMATTE_REQUIRE_SLURM=1 but the SLURM test cannot run: {reason}")
    pytest.skip(f"{reason} (install with `sudo tests/slurm_cluster.sh install`)")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running one-node cluster for this module; its folder (configuration and daemon logs)."""
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if shutil.which(tool) is None]
    if missing:
        _cannot_run(f"SLURM is not installed here (missing: {', '.join(missing)})")
    if os.geteuid() != 0:
        _cannot_run("the SLURM daemons must run as root")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(CLUSTER_SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, f"the test cluster did not start:\n{started.stdout}\n{started.stderr}"
        yield folder
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)


def test_profile_sets_what_a_cluster_run_needs():
    """Runs everywhere: the settings the SLURM test below relies on are in the shipped profile."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1 and profile["rerun-incomplete"] is True and profile["latency-wait"] >= 30
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(profile["default-resources"])
    train = profile["set-resources"]["train"]
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(train)
    assert train["slurm_partition"] != profile["default-resources"]["slurm_partition"]
    # Every rule that asks for a GPU is sent to the GPU partition, not the default one.
    gpu_rules = {name for file in (REPO / "workflow" / "rules").glob("*.smk")
                 for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", file.read_text(), re.M | re.S)
                 if re.search(r"^\s+gpu=1,", body, re.M)}
    assert gpu_rules == {"train", "render", "train_second_seed", "render_second_seed"}
    for rule in gpu_rules:
        assert profile["set-resources"][rule]["slurm_partition"] == train["slurm_partition"], rule
    local = yaml.safe_load((REPO / "profiles" / "local" / "config.yaml").read_text())
    assert local["resources"]["gpu"] >= 1


def cluster_profile(folder: Path) -> Path:
    """profiles/slurm with the test cluster's partition names and short status polling; all else as shipped."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = CPU_PARTITION
    for resources in profile["set-resources"].values():  # the rules that ask for a GPU
        if resources.get("slurm_partition") == "gpu":
            resources["slurm_partition"] = GPU_PARTITION
    profile.update({
        "slurm-status-command": "squeue",  # no accounting daemon, so nothing for sacct to read
        "slurm-init-seconds-before-status-checks": 2,
        "seconds-between-status-checks": 2,
        "slurm-keep-successful-logs": True,  # the per-job logs are part of the evidence below
    })
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def slurm_jobs(run_id: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, record) for each SLURM job of this Snakemake run, in submission order.

    The controller keeps finished jobs for MinJobAge (10 minutes on the test cluster).
    """
    listing = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True, check=True)
    jobs = []
    for line in listing.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobName") == run_id:
            rule = re.fullmatch(r"rule_(\w+?)_wildcards_\w+", fields["Comment"]).group(1)
            jobs.append((rule, fields))
    return sorted(jobs, key=lambda job: int(job[1]["JobId"]))


def run_id_of(output: str) -> str:
    return re.search(r"SLURM run ID: (\S+)", output).group(1)


@dataclass
class ClusterRun:
    workdir: Path
    profile: Path
    config: str
    output: str


@pytest.fixture(scope="module")
def demo_run(slurm_cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> ClusterRun:
    """The tiny demo, submitted once through the profile; the tests below read what it left."""
    workdir = tmp_path_factory.mktemp("slurm_demo")
    shutil.copytree(REPO / "config", workdir / "config")
    profile = cluster_profile(workdir / "profile")
    config = write_config(workdir, TINY)
    result = run_snakemake(workdir, "--profile", str(profile), "--configfile", config, "--",
                           "results/dog/omnimatte.mp4", "results/dog/metrics.json", timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return ClusterRun(workdir, profile, config, output)


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_demo_runs_as_one_slurm_job_per_rule(demo_run: ClusterRun):
    dog = demo_run.workdir / "results" / "dog"
    assert (dog / "omnimatte.mp4").is_file() and (dog / "metrics.json").is_file()
    assert len(list_frames(dog / "omnimatte/layers/dog/rgba")) == 10

    jobs = dict(slurm_jobs(run_id_of(demo_run.output)))
    assert sorted(jobs) == sorted(RULES) and len(jobs) == len(RULES), demo_run.output[-4000:]
    for rule, job in jobs.items():
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", (rule, job)
        assert (demo_run.workdir / ".snakemake/slurm_logs" / f"rule_{rule}" / "dog" / f"{job['JobId']}.log").is_file()
        assert (demo_run.workdir / "logs" / rule / "dog.log").is_file(), rule
    # the profile's resources reach sbatch: partitions, the GPU request, memory and wall time
    train = jobs.pop("train")
    assert train["Partition"] == GPU_PARTITION
    assert "gpu:1" in train["TresPerJob"]
    assert train["MinMemoryNode"] == "32000M" and train["TimeLimit"] == "12:00:00"
    render = jobs.pop("render")
    assert render["Partition"] == GPU_PARTITION and "gpu:1" in render["TresPerJob"]
    assert render["MinMemoryNode"] == "16000M" and render["TimeLimit"] == "01:00:00"
    for rule, job in jobs.items():
        assert job["Partition"] == CPU_PARTITION and "gpu" not in job.get("TresPerJob", ""), (rule, job)
        assert job["TimeLimit"] == "01:00:00", (rule, job)
    assert jobs["flow"]["MinMemoryNode"] == "8000M" and jobs["frames"]["MinMemoryNode"] == "4000M"


@pytest.mark.slurm
@pytest.mark.slow
def test_train_job_stopped_by_sigterm_is_resubmitted_and_resumes(demo_run: ClusterRun):
    """SIGTERM to the running train job, as SLURM sends on preemption and at the time limit.

    The job checkpoints and fails; the profile's retries submit it again and it resumes.
    """
    steps = 12
    longer = write_config(demo_run.workdir, f"train: {{steps: {steps}, min_steps: {steps}, max_steps: {steps}, "
                          f"checkpoint_every: 2, cpu: {{steps: {steps}, min_steps: {steps}, max_steps: {steps}}}}}",
                          name="longer.yaml")
    checkpoint = demo_run.workdir / "results/dog/train/checkpoint.pt"
    transcript = demo_run.workdir / "preempted.txt"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(demo_run.workdir),
               "--profile", str(demo_run.profile), "--configfile", demo_run.config, longer, "--forcerun", "train",
               "--", "results/dog/omnimatte.mp4"]
    with open(transcript, "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists():
            assert run.poll() is None, transcript.read_text()[-4000:]
            assert time.monotonic() < deadline, "training wrote no checkpoint within 5 minutes"
            time.sleep(0.1)
        running = subprocess.run(["squeue", "--noheader", "--states=RUNNING", "--name", run_id_of(transcript.read_text()),
                                  "--format=%i %k"], capture_output=True, text=True, check=True).stdout.split()
        job_id = running[running.index("rule_train_wildcards_dog") - 1]
        subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    output = transcript.read_text()
    assert run.returncode == 0, output[-4000:]

    jobs = slurm_jobs(run_id_of(output))
    assert [rule for rule, _ in jobs] == ["train", "train", "render", "diagnose", "composite"], jobs
    (_, stopped), (_, resumed) = jobs[:2]
    assert stopped["JobId"] == job_id and stopped["JobState"] == "FAILED" and resumed["JobState"] == "COMPLETED"
    stopped_log = (demo_run.workdir / ".snakemake/slurm_logs/rule_train/dog" / f"{job_id}.log").read_text()
    step = int(re.search(r"stopped by SIGTERM after step (\d+);", stopped_log).group(1))
    assert f"resuming from step {step} (" in (demo_run.workdir / "logs/train/dog.log").read_text()
    assert (demo_run.workdir / "results/dog/train/losses.csv").read_text().splitlines()[-1].startswith(f"{steps},")
    assert not checkpoint.exists()
