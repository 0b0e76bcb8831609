"""The README stills command on a hand-made finished sample."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte.composite import run_composite
from omnimatte.contract import HomographyFiles, load_camera
from omnimatte.edits import (
    Layers,
    run_colorpop,
    run_remove,
    run_replace_background,
    run_retime,
    run_stroboscope,
)
from omnimatte.errors import StageError
from omnimatte.export import run_export
from omnimatte.io import load_json, write_video
from omnimatte.report import run_runtimes
from omnimatte.stills import MAX_BYTES, make_stills
from tests.helpers import ball_and_box, write_benchmark, write_scene


def finish(root: Path) -> None:
    """Everything `snakemake all edits exports` leaves in results/{sample}/, made by the package directly."""
    layers, camera = Layers("toy", root / "omnimatte", ["ball", "box"]), load_camera("edits", "toy", HomographyFiles(root / "homography"))
    edits = root / "edits"
    run_composite("toy", root / "frames", root / "omnimatte", ["ball", "box"], root / "omnimatte.mp4", fps=24)
    run_remove(layers, "ball", edits / "remove_ball.mp4", fps=24)
    run_colorpop(layers, root / "frames", ["ball"], edits / "colorpop_ball.mp4", fps=24)
    run_stroboscope(layers, camera, "ball", edits / "stroboscope_ball.png", edits / "stroboscope_ball.mp4", fps=24,
                    interval=4)
    run_replace_background(layers, camera, edits / "background_green.mp4", fps=24, color=[0, 177, 64])
    run_retime(layers, camera, "ball", edits / "shift_ball.mp4", fps=24, shift=3)
    run_retime(layers, camera, "ball", edits / "freeze_ball.mp4", fps=24, freeze=0)
    write_video(root / "source.mp4", (cv2.imread(str(p))[..., ::-1] for p in sorted((root / "frames").glob("*.png"))),
                fps=24)
    run_export("toy", root / "source.mp4", load_json(root / "frames_info.json"), root / "omnimatte", ["ball", "box"],
               root / "export")
    run_runtimes("toy", [write_benchmark(root / "b" / "train" / "toy.tsv", 3.0)], root / "report" / "runtimes.png",
                 root / "report" / "runtimes.html")


def test_stills_of_a_finished_sample(tmp_path: Path):
    root = write_scene(ball_and_box(), tmp_path / "results" / "toy")
    with pytest.raises(StageError, match="snakemake --cores 2 all edits exports"):
        make_stills(root, tmp_path / "images")
    finish(root)
    paths = make_stills(root, tmp_path / "images", frame=3)
    assert [p.name for p in paths] == ["overview.jpg", "remove.jpg", "colorpop.jpg", "stroboscope.jpg",
                                       "background.jpg", "retime.jpg", "export.jpg", "runtimes.png"]
    for path in paths:
        assert 0 < path.stat().st_size <= MAX_BYTES, path
    remove = cv2.imread(str(tmp_path / "images" / "remove.jpg"))[..., ::-1].astype(int)
    assert remove.shape == (48, 2 * 64 + 4, 3)  # the input and the edit side by side
    removed, source = remove[20:26, 68 + 14:68 + 22], remove[20:26, 14:22]  # the ball on frame 3, below the label
    assert np.abs(source - (174, 30, 30)).mean() < 25 and np.abs(removed - (174, 30, 30)).mean() > 60
