"""A dry run changes nothing on disk: no manifests, no lock clean-up, no outputs, on a fresh clone with user videos."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from omnimatte.io import write_video
from omnimatte.locks import LOCKS, OWNERS
from tests.helpers import REPO


def fresh_clone(root: Path) -> Path:
    """The repository's tracked files, as `git clone` leaves them."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / name).read_bytes())
    return root


def tree(root: Path) -> dict[str, tuple]:
    """Every folder and file under `root` with its size and times, but for what Snakemake and Python keep for
    themselves (.snakemake/ other than the locks and their owners; __pycache__)."""
    entries = {}
    for path in root.rglob("*"):
        name = path.relative_to(root).as_posix()
        snakemakes = name == ".snakemake" or name.startswith(".snakemake/") and (
            path.is_dir() or not name.startswith((LOCKS.as_posix() + "/", OWNERS.as_posix() + "/")))
        if not snakemakes and "__pycache__" not in path.parts:
            stat = path.stat()
            entries[name] = (path.is_dir(), stat.st_size if path.is_file() else 0, stat.st_mtime_ns)
    return entries


def png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".png", image)[1].tobytes())


def test_a_dry_run_on_a_fresh_clone_writes_nothing(tmp_path: Path):
    clone = fresh_clone(tmp_path / "clone")
    # A user's video with a mask folder, an image sequence, and a prompted object (its prompt is checked against
    # the video's header when the Snakefile is read).
    data = clone / "data"
    data.mkdir()
    write_video(data / "clip.mp4", [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(4)], fps=10)
    for i in range(4):
        png(data / "masks" / f"{i:05d}.png", np.full((48, 64), 255 * (i % 2), np.uint8))
        png(data / "shots" / f"shot_{i}.png", np.full((48, 64, 3), 30 * i, np.uint8))
    (clone / "config" / "extra.yaml").write_text("""
samples:
  walk: {video: data/clip.mp4, objects: {pup: {masks: data/masks}}}
  shots: {video: data/shots, objects: {pup: {masks: data/masks}}}
  prompted: {video: data/clip.mp4, objects: {dog: {box: [10, 10, 40, 40], frame: 0}}}
masks: {sam_checkpoint: weights/missing_sam.pth}
""")
    # A lock left by a killed run whose process has ended: a real run removes it, a dry run must not.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    (clone / LOCKS).mkdir(parents=True)
    (clone / LOCKS / "0.output.lock").write_text("results/walk/omnimatte.mp4\n")
    (clone / OWNERS).mkdir(parents=True)
    (clone / OWNERS / "0.output.lock.json").write_text(
        f'{{"host": "{os.uname().nodename}", "pid": {ended.pid}, "start": null}}')
    before = tree(clone)

    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/extra.yaml", "--",
                             "all", "edits", "exports"], cwd=clone, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for rule in ("sam_weights", "frames", "masks", "train", "remove", "export"):
        assert f"rule {rule}:" in result.stdout, rule  # the dry run did plan the work
    after = tree(clone)
    assert after == before, {name: (before.get(name), after.get(name))
                             for name in set(before) | set(after) if before.get(name) != after.get(name)}
