"""The Snakemake workflow: lint, dry-run DAG, config validation, and the tiny demo end to end."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from omnimatte.config_check import MASKS_OR_PROMPT
from omnimatte.imaging import psnr
from omnimatte.io import list_frames, read_frames, read_png, read_video, write_video
from tests.helpers import REPO, RULES, TINY, over, run_snakemake, write_config


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
        ("samples: {mine: {video: a.mp4, objects: {cat: {masks: m, box: [1, 2, 3, 4]}}}}",
         ["samples.mine.objects.cat", MASKS_OR_PROMPT,  # the masks stage refuses it in the same words
          "samples.mine.video: the video 'a.mp4' does not exist"]),  # and every problem is listed at once
    ],
)
def test_invalid_config_stops_before_any_job_naming_the_key(workdir: Path, config: str, expected: list[str]):
    result = run_snakemake(workdir, "-n", "--configfile", write_config(workdir, config), "--", "results/dog/omnimatte.mp4")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for word in expected:
        assert word in message, (word, message[-2000:])
    assert not (workdir / "results").exists()


def test_unknown_key_is_one_short_line_naming_it_not_the_schema(workdir: Path):
    config = write_config(workdir, "train: {stepz: 5, cpu: {nff: 8}}\nflow: {qqqq: 1}")
    result = run_snakemake(workdir, "-n", "--configfile", config, "--", "results/dog/omnimatte.mp4")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    # "Invalid config (your --configfile files merged over config/config.yaml):
    #    flow: unknown key 'qqqq'; the keys allowed here: model, weights, ...
    #    train: unknown key 'stepz'; did you mean 'steps'?
    #    train.cpu: unknown key 'nff'; did you mean 'nf'?"
    assert "train: unknown key 'stepz'; did you mean 'steps'?" in message
    assert "train.cpu: unknown key 'nff'; did you mean 'nf'?" in message
    assert "flow: unknown key 'qqqq'; the keys allowed here: " in message
    assert "Failed validating" not in message and len(message) < 2000, message


def test_bad_sample_and_object_names_are_explained_and_listed_at_once(workdir: Path):
    config = write_config(workdir, """
samples:
  my clip: {video: a.mp4, objects: {cat.1: {masks: m}, b b: {masks: m}, ok: {masks: m}}}
  take.2: {video: a.mp4, objects: {c: {masks: m}}}
""")
    result = run_snakemake(workdir, "-n", "--configfile", config, "--", "results/dog/omnimatte.mp4")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    # "samples: names may hold only letters (A-Z, a-z), digits, '_' and '-' (no spaces, dots or other signs);
    #  these are not: 'my clip', 'take.2'"
    rule = "names may hold only letters (A-Z, a-z), digits, '_' and '-' (no spaces, dots or other signs)"
    assert f"samples: {rule}; these are not: 'my clip', 'take.2'" in message
    assert f"samples.my clip.objects: {rule}; these are not: 'cat.1', 'b b'" in message
    assert "does not match" not in message


def test_schema_descriptions_do_not_turn_into_keys():
    # An unquoted description with a comma (`description: folder of masks, one per ...`) made a key of its tail.
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())

    def walk(node, path="schema"):
        if isinstance(node, dict):
            for key, value in node.items():
                assert value is not None, f"{path}.{key} has no value: a comma in an unquoted description?"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(schema)
    assert set(schema["$defs"]["object"]["properties"]["masks"]) == {"type", "description"}
    for sheet in ("samples", "objects"):  # the sample sheets' row schemas
        walk(yaml.safe_load((REPO / f"workflow/schemas/{sheet}.schema.yaml").read_text()), sheet)


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


def test_prompt_outside_the_frame_stops_before_sam_weights_are_fetched(workdir: Path):
    (workdir / "data").mkdir()
    write_video(workdir / "data/clip.mp4", [np.zeros((48, 64, 3), np.uint8)] * 3, fps=10)
    config = write_config(workdir, TINY + """
samples:
  prompted:
    video: data/clip.mp4
    objects:
      dog: {box: [10, 10, 400, 40], frame: 0}
masks: {sam_checkpoint: weights/missing_sam.pth}
""")
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "results/prompted/masks")
    assert result.returncode != 0
    # "samples.prompted.objects.dog: object 'dog': box [10, 10, 400, 40] lies outside the source frame 64x48
    #  (working 64x48); prompt coordinates are pixels of the source video: x in 0..64, y in 0..48; ..."
    assert ("samples.prompted.objects.dog: object 'dog': box [10, 10, 400, 40] lies outside the source frame 64x48"
            in result.stdout + result.stderr)
    assert not (workdir / "logs").exists()  # no job ran: no download, no frames


def test_a_mask_edited_in_place_remakes_the_masks(workdir: Path):
    data = workdir / "data"
    (data / "masks").mkdir(parents=True)
    write_video(data / "clip.mp4", [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(4)], fps=10)
    for i in range(4):
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 10 + 5 * i:30 + 5 * i] = 255
        (data / "masks" / f"{i:05d}.png").write_bytes(cv2.imencode(".png", mask)[1].tobytes())
    config = write_config(workdir, TINY + """
samples:
  walk: {video: data/clip.mp4, objects: {pup: {masks: data/masks}}}
""")
    target = ("--cores", "2", "--configfile", config, "--", "results/walk/masks")
    assert run_snakemake(workdir, *target).returncode == 0
    again = run_snakemake(workdir, "-n", *target)
    assert "Nothing to be done" in again.stdout + again.stderr  # an unchanged folder is left alone

    # Fix one mask in place: the folder's own modification time does not move, only the file's.
    folder_time = (data / "masks").stat().st_mtime_ns
    fixed = np.full((48, 64), 255, np.uint8)
    (data / "masks" / "00002.png").write_bytes(cv2.imencode(".png", fixed)[1].tobytes())
    assert (data / "masks").stat().st_mtime_ns == folder_time
    planned = run_snakemake(workdir, "-n", *target)
    assert "rule masks:" in planned.stdout, planned.stdout[-2000:]
    assert run_snakemake(workdir, *target).returncode == 0
    assert (read_png(workdir / "results/walk/masks/pup/00002.png", "gray") == 255).all()


def assert_metrics_score_the_written_files(sample: Path, truth: Path, metrics: dict) -> None:
    """metrics.json holds the scores of the files the workflow wrote, as the tests compute them from those files
    and the clip's ground truth; and the written reconstruction is the written layer over the written background
    (each rounded to 8 bits apart: the colour and the reconstruction by half a level, the alpha by half a step,
    which moves the composite by half a level at most)."""
    frames = read_frames(sample / "frames").astype(np.float64)
    background = read_frames(sample / "omnimatte/background")
    layer = read_frames(sample / "omnimatte/layers/dog/rgba", mode="rgba")
    reconstruction = read_frames(sample / "omnimatte/reconstruction")
    assert np.abs(over(background, [layer]) - reconstruction).max() <= 1.5
    assert metrics["reconstruction_psnr"] == pytest.approx(psnr(reconstruction, frames), abs=1e-6)
    assert metrics["background_psnr"] == pytest.approx(psnr(background, read_frames(truth / "background")), abs=1e-6)
    alpha = layer[..., 3] / 255.0
    true_alpha = read_frames(truth / "layers/dog/rgba", mode="rgba")[..., 3] / 255.0
    effect = read_frames(truth / "effects/dog", mode="gray") / 255.0
    mask = read_frames(sample / "masks/dog", mode="gray") / 255.0
    scores = metrics["objects"]["dog"]  # one object: every pixel of it shows
    for name, matte in (("layer", alpha), ("mask", mask)):
        got = scores if name == "layer" else scores["mask_baseline"]
        assert got["soft_iou"] == pytest.approx(np.minimum(matte, true_alpha).sum() / np.maximum(matte, true_alpha).sum())
        assert got["effect_recall"] == pytest.approx(np.minimum(matte, effect).sum() / effect.sum())
        assert got["alpha_leak"] == pytest.approx(np.clip(matte - true_alpha, 0, None).sum() / true_alpha.sum())
    assert scores["mask_baseline"]["effect_recall"] < 0.1  # the demo's shadow lies (over 90 %) outside its mask
    assert metrics["summary"]["soft_iou"] == scores["soft_iou"]


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
                 "background_fit.npz", "train/losses.csv", "train/losses.png"):
        assert (dog / path).is_file(), path
    overview = read_video(dog / "omnimatte.mp4")
    assert overview.shape == (count, 2 * 112, 3 * 192, 3)
    assert overview[:, 112:, :192].std() > 5  # the layer panel is not blank
    metrics = json.loads((dog / "metrics.json").read_text())
    assert set(metrics["objects"]["dog"]) >= {"soft_iou", "effect_recall", "alpha_leak", "mask_baseline"}
    assert {"summary", "median_baseline"} <= set(metrics) and (dog / "evaluation.png").is_file()
    assert_metrics_score_the_written_files(dog, workdir / "resources/demo/dog/gt", metrics)
    for rule in RULES:
        assert (workdir / "logs" / rule / "dog.log").is_file(), rule
        if rule != "demo_clip":
            assert (workdir / "benchmarks" / rule / "dog.tsv").is_file(), rule
    again = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "results/dog/omnimatte.mp4")
    assert "Nothing to be done" in again.stdout + again.stderr

    # A user's own video with their own mask folder and a frame range, as rows of the sample sheets; the names
    # have spaces and parentheses, as downloads and copies get them ("clip (1).mp4"), and the masks are numbered
    # without zero padding (mask_0.png ... mask_9.png).
    data = workdir / "my data"
    (data / "walk masks (1)").mkdir(parents=True)
    shutil.copy(workdir / "resources/demo/dog/video.mp4", data / "clip (1).mp4")
    for i, path in enumerate(list_frames(workdir / "resources/demo/dog/masks/dog")):
        shutil.copy(path, data / "walk masks (1)" / f"mask_{i}.png")
    with open(workdir / "config" / "samples.tsv", "a") as sheet:
        sheet.write("walk\tmy data/clip (1).mp4\t1\t\t\n")
    with open(workdir / "config" / "objects.tsv", "a") as sheet:
        sheet.write("walk\tpup\t1\tmy data/walk masks (1)\n")
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", "results/walk/omnimatte.mp4",
                           "results/walk/export")
    assert result.returncode == 0, result.stderr[-3000:]
    walk = workdir / "results" / "walk"
    assert len(list_frames(walk / "frames")) == 9  # start: 1 drops the first frame; masks follow the same selection
    demo_masks = read_frames(workdir / "resources/demo/dog/masks/dog", "gray")[1:] > 127
    assert np.array_equal(read_frames(walk / "masks/pup", "gray") > 127, demo_masks)  # in frame order
    assert len(list_frames(walk / "omnimatte/layers/pup/rgba")) == 9
    assert (walk / "omnimatte.mp4").is_file() and (walk / "export/layers/pup.mov").is_file()
