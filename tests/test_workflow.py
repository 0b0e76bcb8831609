"""The Snakemake workflow: lint, dry-run DAG, config validation, and the tiny demo end to end."""

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from omnimatte.io import list_frames, read_png, read_video
from tests.conftest import run_snakemake

TINY = """
demo:
  dog: {preset: dog, n_frames: 10, width: 192, height: 112, seed: 0}
frames: {width: 192}
train: {steps: 16, batch_size: 2, nf: 8, checkpoint_every: 8, cpu: {steps: 16, batch_size: 2, nf: 8}}
threads: {flow: 2, masks: 2, train: 2}
"""
RULES = ("demo_clip", "frames", "flow", "masks", "homography", "train", "composite", "evaluate")


def write_config(workdir: Path, text: str, name: str = "extra.yaml") -> str:
    path = workdir / "config" / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_lint_is_clean(workdir: Path):
    result = run_snakemake(workdir, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_plans_every_stage_in_order(workdir: Path):
    result = run_snakemake(workdir, "-n", "results/dog/omnimatte.mp4", "results/dog/metrics.json")
    assert result.returncode == 0, result.stderr
    table = result.stdout
    for rule in RULES:
        assert f"\n{rule} " in table, rule
    # masks come before homography, so the objects are kept out of the feature matching
    homography_job = table.index("rule homography:")
    assert "results/dog/masks" in table[homography_job:table.index("\n\n", homography_job)]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("train: {steps: -5}", ["train", "steps"]),
        ("train: {stepz: 5}", ["stepz"]),
        ("frames: {width: 450}", ["width", "multiple"]),
        ("samples: {mine: {video: a.mp4, objects: {cat: {frame: 2}}}}", ["mine", "cat"]),
        ("samples: {mine: {video: a.mp4, objects: {cat: {masks: m, box: [1, 2, 3, 4]}}}}", ["samples.mine.objects.cat"]),
    ],
)
def test_invalid_config_stops_before_any_job_naming_the_key(workdir: Path, config: str, expected: list[str]):
    result = run_snakemake(workdir, "-n", "--configfile", write_config(workdir, config), "--", "results/dog/omnimatte.mp4")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for word in expected:
        assert word in message, (word, message[-2000:])
    assert not (workdir / "results").exists()


def test_prompted_object_without_sam_weights_says_both_ways_out(workdir: Path):
    config = write_config(workdir, TINY + """
samples:
  prompted:
    video: resources/demo/dog/video.mp4
    objects:
      dog: {box: [40, 30, 120, 90], frame: 0}
masks: {sam_checkpoint: weights/missing_sam.pth}
""")
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "results/prompted/masks")
    assert result.returncode != 0
    log = (workdir / "logs" / "sam_weights" / "download.log").read_text()
    assert "dl.fbaipublicfiles.com" in log and "weights/missing_sam.pth" in log
    assert "masks" in log  # the other way out: a mask folder for the object
    assert not (workdir / "results" / "prompted" / "masks").exists()


@pytest.mark.slow
def test_tiny_demo_end_to_end_then_a_user_video(workdir: Path):
    config = write_config(workdir, TINY)
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--",
                           "results/dog/omnimatte.mp4", "results/dog/metrics.json")
    assert result.returncode == 0, result.stderr[-3000:]
    dog = workdir / "results" / "dog"
    count = len(list_frames(dog / "frames"))
    assert count == 10
    assert read_png(dog / "frames" / "00000.png").shape == (112, 192, 3)
    for folder in ("masks/dog", "omnimatte/layers/dog/rgba", "omnimatte/background", "omnimatte/reconstruction"):
        names = [p.name for p in list_frames(dog / folder)]
        assert names == [f"{i:05d}.png" for i in range(count)], folder
    assert read_png(dog / "omnimatte/layers/dog/rgba/00003.png", mode="rgba").shape == (112, 192, 4)
    mask = read_png(dog / "masks/dog/00000.png", mode="gray")
    assert set(np.unique(mask)) <= {0, 255}
    for path in ("flow/forward.npy", "flow/backward.npy", "flow/info.json", "homography/homographies.npy",
                 "homography/canvas.json", "previews/flow.mp4", "previews/masks.mp4", "previews/stabilised.mp4",
                 "train/losses.csv", "train/losses.png"):
        assert (dog / path).is_file(), path
    overview = read_video(dog / "omnimatte.mp4")
    assert overview.shape == (count, 2 * 112, 3 * 192, 3)
    assert overview[:, 112:, :192].std() > 5  # the layer panel is not blank
    metrics = json.loads((dog / "metrics.json").read_text())
    assert set(metrics["objects"]["dog"]) >= {"soft_iou", "effect_recall", "alpha_leak", "mask_baseline"}
    assert {"summary", "median_baseline"} <= set(metrics) and (dog / "evaluation.png").is_file()
    for rule in RULES:
        assert (workdir / "logs" / rule / "dog.log").is_file(), rule
        if rule != "demo_clip":
            assert (workdir / "benchmarks" / rule / "dog.tsv").is_file(), rule
    again = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "results/dog/omnimatte.mp4")
    assert "Nothing to be done" in again.stdout + again.stderr

    # A user's own video with their own mask folder and a frame range, as rows of the sample sheets.
    data = workdir / "data"
    data.mkdir()
    shutil.copy(workdir / "resources/demo/dog/video.mp4", data / "walk.mp4")
    shutil.copytree(workdir / "resources/demo/dog/masks/dog", data / "walk_masks")
    with open(workdir / "config" / "samples.tsv", "a") as sheet:
        sheet.write("walk\tdata/walk.mp4\t1\t\t\n")
    with open(workdir / "config" / "objects.tsv", "a") as sheet:
        sheet.write("walk\tpup\t1\tdata/walk_masks\n")
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "results/walk/omnimatte.mp4")
    assert result.returncode == 0, result.stderr[-3000:]
    walk = workdir / "results" / "walk"
    assert len(list_frames(walk / "frames")) == 9  # start: 1 drops the first frame; masks follow the same selection
    assert len(list_frames(walk / "omnimatte/layers/pup/rgba")) == 9
    assert (walk / "omnimatte.mp4").is_file()
