"""Reruns through Snakemake: a failed stage and its fix, --forcerun train, a rendering switch changed, and training
killed mid-way.

Each test starts from a copy of one working directory where the tiny demo has run up
to the masks, so the stages upstream of homography are computed once for the module.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, TINY, run_snakemake, write_config

pytestmark = pytest.mark.slow

TARGETS = ("results/dog/omnimatte.mp4", "results/dog/metrics.json")
UPSTREAM = ("resources/demo/dog", "results/dog/frames", "results/dog/frames_info.json", "results/dog/flow",
            "results/dog/masks", "logs/demo_clip", "logs/frames", "logs/flow", "logs/masks")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory where the tiny demo has run up to the masks (demo clip, frames, flow, masks)."""
    folder = tmp_path_factory.mktemp("upstream")
    shutil.copytree(REPO / "config", folder / "config")
    config = write_config(folder, TINY)
    result = run_snakemake(folder, "--cores", "2", "--configfile", config, "--", "results/dog/masks",
                           "results/dog/flow/forward.npy")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture
def run_dir(upstream: Path, tmp_path: Path) -> Path:
    """A copy of the upstream working directory; file times are kept, so Snakemake sees it as it was."""
    return Path(shutil.copytree(upstream, tmp_path / "run", symlinks=True))


def modification_times(root: Path, paths: tuple[str, ...]) -> dict[str, int]:
    times = {}
    for path in paths:
        files = [root / path] if (root / path).is_file() else sorted((root / path).rglob("*"))
        times.update({str(f.relative_to(root)): f.stat().st_mtime_ns for f in files if f.is_file()})
    assert times, paths
    return times


def jobs_planned(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table: how many jobs of each rule the run scheduled."""
    table = output[output.index("Job stats:"):]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table[:table.index("total")], re.MULTILINE)
    return {rule: int(count) for rule, count in rows}


def snakemake(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(run_dir, "--cores", "2", "--configfile", str(run_dir / "config" / "extra.yaml"), *args)


def test_failed_stage_stops_the_run_then_only_it_and_its_dependents_rerun(run_dir: Path):
    before = modification_times(run_dir, UPSTREAM)
    # Settings no pair of frames can meet (neither the features nor a dense alignment, whose correlation a moving
    # camera's frames never bring to exactly 1): the homography stage must fail and say why.
    bad = write_config(run_dir, "homography: {min_inliers: 100000, dense_min_correlation: 1.0}", name="bad.yaml")
    failed = run_snakemake(run_dir, "--cores", "2", "--configfile", str(run_dir / "config" / "extra.yaml"), bad,
                           "--", *TARGETS)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "Error in rule homography" in output and "logs/homography/dog.log" in output, output[-3000:]
    log = (run_dir / "logs/homography/dog.log").read_text()
    assert "[homography] sample 'dog'" in log and "too few features" in log and "fix:" in log, log
    assert not (run_dir / "results/dog/homography/homographies.npy").exists()
    assert not (run_dir / "logs/train").exists() and not (run_dir / "results/dog/omnimatte").exists()

    fixed = snakemake(run_dir, "--", *TARGETS)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert jobs_planned(fixed.stdout + fixed.stderr) == {"homography": 1, "background_fit": 1, "train": 1,
                                                          "render": 1, "diagnose": 1, "composite": 1, "evaluate": 1}
    assert modification_times(run_dir, UPSTREAM) == before
    assert (run_dir / "results/dog/omnimatte.mp4").is_file() and (run_dir / "results/dog/metrics.json").is_file()

    # --forcerun train retrains (and remakes what reads its layers) but recomputes no flow, homography, masks or
    # background fit.
    kept = UPSTREAM + ("results/dog/homography", "logs/homography", "results/dog/background_fit.npz",
                       "logs/background_fit")
    before = modification_times(run_dir, kept)
    model_time = (run_dir / "results/dog/train/model.pt").stat().st_mtime_ns
    forced = snakemake(run_dir, "--forcerun", "train", "--", *TARGETS)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert jobs_planned(forced.stdout + forced.stderr) == {"train": 1, "render": 1, "diagnose": 1, "composite": 1,
                                                           "evaluate": 1}
    assert modification_times(run_dir, kept) == before
    assert (run_dir / "results/dog/train/model.pt").stat().st_mtime_ns > model_time

    # A rendering switch changed in the config renders the trained model again (and remakes what reads its layers):
    # no training.
    kept = kept + ("results/dog/train", "logs/train")
    before = modification_times(run_dir, kept)
    switched = write_config(run_dir, "train: {fit_shadows: false}", name="switched.yaml")
    rendered = run_snakemake(run_dir, "--cores", "2", "--configfile", str(run_dir / "config" / "extra.yaml"), switched,
                             "--", *TARGETS)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert jobs_planned(rendered.stdout + rendered.stderr) == {"render": 1, "diagnose": 1, "composite": 1,
                                                               "evaluate": 1}
    assert modification_times(run_dir, kept) == before
    summary = json.loads((run_dir / "results/dog/omnimatte/summary.json").read_text())
    assert summary["render_settings"]["fit_shadows"] is False


def train_process(snakemake_pid: int) -> int | None:
    """The pid of the `python -m omnimatte train` process under this Snakemake run, while it runs."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    pending = [snakemake_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            try:
                arguments = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"omnimatte" in arguments and b"train" in arguments:
                return child
            pending.append(child)
    return None


def kill_training_after_checkpoint(run_dir: Path, config: str, kill: signal.Signals, newer_than: int = 0,
                                   args: tuple[str, ...] = ()) -> int:
    """Run Snakemake (with `args`); once a checkpoint newer than `newer_than` (ns) exists, send `kill` to the
    train process.

    Returns the step the checkpoint holds once the run has ended (failed).
    """
    checkpoint = run_dir / "results/dog/train/checkpoint.pt"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(run_dir),
               "--cores", "2", "--configfile", str(run_dir / "config" / "extra.yaml"), config, *args, "--", TARGETS[0]]
    transcript = run_dir / f"snakemake-{kill.name}.txt"  # a file, not a pipe that could fill up and stall the run
    with open(transcript, "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    try:
        while not (checkpoint.exists() and checkpoint.stat().st_mtime_ns > newer_than):
            assert run.poll() is None, "the run ended before training wrote a checkpoint:\n" + transcript.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.05)
        pid = train_process(run.pid)
        assert pid is not None, "no `omnimatte train` process under the Snakemake run"
        os.kill(pid, kill)
        run.wait(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    output = transcript.read_text()
    assert run.returncode != 0 and "Error in rule train" in output, output[-3000:]
    assert not (run_dir / "results/dog/train/model.pt").exists()  # outputs only appear complete
    return torch.load(checkpoint, weights_only=False)["step"]


def test_training_killed_by_sigterm_or_sigkill_resumes_from_its_checkpoint(run_dir: Path):
    steps = 24
    longer = write_config(run_dir, f"train: {{steps: {steps}, min_steps: {steps}, max_steps: {steps}, "
                          f"checkpoint_every: 2, "
                          f"cpu: {{steps: {steps}, min_steps: {steps}, max_steps: {steps}}}}}",
                          name="longer.yaml")
    log = run_dir / "logs/train/dog.log"

    # SIGTERM, as SLURM sends on preemption and at the time limit: a checkpoint of the current step, then exit.
    stopped_at = kill_training_after_checkpoint(run_dir, longer, signal.SIGTERM)
    assert 2 <= stopped_at < steps
    assert f"stopped by SIGTERM after step {stopped_at};" in log.read_text()

    # SIGKILL leaves no chance to save: the next run goes back to the last periodic checkpoint.
    checkpoint_time = (run_dir / "results/dog/train/checkpoint.pt").stat().st_mtime_ns
    killed_at = kill_training_after_checkpoint(run_dir, longer, signal.SIGKILL, newer_than=checkpoint_time)
    assert f"resuming from step {stopped_at} (" in log.read_text()
    assert stopped_at < killed_at < steps and killed_at % 2 == 0

    # The background fit is as ready to run as training after the homographies; whether Snakemake ran it before the
    # kill is its scheduler's choice. Done, it is not run again; not done, it runs now.
    fitted = (run_dir / "results/dog/background_fit.npz").exists()
    result = run_snakemake(run_dir, "--cores", "2", "--configfile", str(run_dir / "config" / "extra.yaml"), longer,
                           "--", TARGETS[0])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from step {killed_at} (" in log.read_text()
    assert jobs_planned(result.stdout + result.stderr) == {"train": 1, "render": 1, "diagnose": 1, "composite": 1,
                                                           **({} if fitted else {"background_fit": 1})}
    train_dir = run_dir / "results/dog/train"
    assert not (train_dir / "checkpoint.pt").exists()
    assert (train_dir / "losses.csv").read_text().splitlines()[-1].startswith(f"{steps},")
    assert (run_dir / "results/dog/omnimatte.mp4").is_file()


def kill_whole_run_when(run_dir: Path, config: str, path: Path) -> str:
    """Run Snakemake and SIGKILL it with all its jobs once `path` exists, as a closed session, an out-of-memory
    kill or a power cut ends it: nothing gets to clean up. Returns what Snakemake printed."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(run_dir),
               "--cores", "2", "--configfile", str(run_dir / "config" / "extra.yaml"), config, "--", TARGETS[0]]
    transcript = run_dir / "snakemake-killed.txt"
    with open(transcript, "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while not path.exists():
            assert run.poll() is None, "the run ended before " + str(path) + ":\n" + transcript.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no {path} within 10 minutes"
            time.sleep(0.01)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    return transcript.read_text()


def test_after_a_kill_running_the_same_command_again_finishes_the_run(run_dir: Path):
    steps = 24
    longer = write_config(run_dir, f"train: {{steps: {steps}, min_steps: {steps}, max_steps: {steps}, "
                          f"checkpoint_every: 2, "
                          f"cpu: {{steps: {steps}, min_steps: {steps}, max_steps: {steps}}}}}",
                          name="longer.yaml")
    assert snakemake(run_dir, longer, "--", TARGETS[0]).returncode == 0

    # A `--forcerun train` killed mid-way: Snakemake deleted the old model, the job's output. Snakemake does not
    # remake an output whose inputs are missing, so without the train log as an input of render the old layers
    # and overview passed for current: "Nothing to be done (all requested files are present and up to date)".
    kill_training_after_checkpoint(run_dir, longer, signal.SIGTERM, args=("--forcerun", "train"))
    planned = snakemake(run_dir, longer, "-n", "--", TARGETS[0])
    assert "Nothing to be done" not in planned.stdout + planned.stderr
    assert jobs_planned(planned.stdout + planned.stderr) == {"train": 1, "render": 1, "diagnose": 1, "composite": 1}

    # The same command, killed outright (Snakemake and its jobs) once training has written the model but before
    # Snakemake has checked it: the lock stays, and the model is an output of an unfinished job.
    model = run_dir / "results/dog/train/model.pt"
    kill_whole_run_when(run_dir, longer, model)
    assert model.exists() and list((run_dir / ".snakemake/locks").glob("*.lock"))
    # Without the workflow profile (profiles/default: rerun-incomplete) Snakemake would stop with
    # "IncompleteFilesException: The files below seem to be incomplete. ..."
    copy = Path(shutil.copytree(run_dir, run_dir.parent / "copy", symlinks=True))
    bare = run_snakemake(copy, "-n", "--workflow-profile", "none", "--configfile", str(copy / "config/extra.yaml"),
                         str(copy / "config/longer.yaml"), "--", TARGETS[0])
    assert "IncompleteFilesException" in bare.stdout + bare.stderr, (bare.stdout + bare.stderr)[-3000:]

    # Run the same command again: the dead run's lock is removed and the unfinished training is done again.
    again = snakemake(run_dir, longer, "--", TARGETS[0])
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    # "Removed .snakemake/locks/0.input.lock: the Snakemake run that held it (process N on HOST) was killed
    #  without unlocking."
    assert re.search(r"Removed \.snakemake/locks/\d+\.\w+\.lock: the Snakemake run that held it", output), output[-3000:]
    assert jobs_planned(output) == {"train": 1, "render": 1, "diagnose": 1, "composite": 1}
    assert (run_dir / "results/dog/omnimatte/layers/dog/rgba/00000.png").is_file()
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(run_dir, longer, "-n", "--", TARGETS[0]))
