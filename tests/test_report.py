"""Runtimes from benchmark files, contact sheets, and the edits, export and report of the tiny demo
through Snakemake end to end."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from omnimatte.contract import HomographyFiles, load_camera
from omnimatte.edits import (
    Layers,
    colorpop,
    frozen,
    remove_object,
    replace_background,
    replacement_background,
    retime,
    shifted,
    stroboscope_frames,
    stroboscope_image,
)
from omnimatte.errors import StageError
from omnimatte.imaging import psnr
from omnimatte.io import list_frames, read_frames, read_png, read_video, write_video
from omnimatte.report import contact_sheet, run_runtimes
from tests.helpers import BENCHMARK_HEADER, TINY, run_snakemake, write_benchmark, write_config


def test_runtimes_plot_and_table(tmp_path: Path):
    paths = [write_benchmark(tmp_path / "benchmarks" / stage / "clip.tsv", seconds)
             for stage, seconds in (("frames", 1.3), ("flow", 8.5), ("train", 751.0))]
    paths.append(write_benchmark(tmp_path / "benchmarks" / "composite" / "clip.tsv", 0.4, rss="NA"))
    stages = run_runtimes("clip", paths, tmp_path / "runtimes.png", tmp_path / "runtimes.html")
    assert [s["stage"] for s in stages] == ["frames", "flow", "train", "composite"]
    assert stages[3]["max_rss_mb"] is None
    table = (tmp_path / "runtimes.html").read_text()
    cells = re.findall(r"<tr><td>(\w+)</td><td>([\d.]+)</td>", table)
    assert cells == [("frames", "1.3"), ("flow", "8.5"), ("train", "751.0"), ("composite", "0.4")]
    assert "<th>761.2</th>" in table  # the total
    plot = read_png(tmp_path / "runtimes.png")
    assert plot.shape[1] == 800 and plot.std() > 10


def test_runtimes_names_an_unreadable_benchmark(tmp_path: Path):
    empty = tmp_path / "benchmarks" / "train" / "clip.tsv"
    empty.parent.mkdir(parents=True)
    empty.write_text(BENCHMARK_HEADER)
    with pytest.raises(StageError, match="forcerun train"):
        run_runtimes("clip", [empty], tmp_path / "r.png", tmp_path / "r.html")


def test_contact_sheet_stacks_evenly_spaced_frames(tmp_path: Path):
    frames = [np.full((32, 48, 3), 20 * t, np.uint8) for t in range(10)]
    write_video(tmp_path / "clip.mp4", frames, fps=24)
    sheet = contact_sheet(tmp_path / "clip.mp4", tmp_path / "sheet.png", count=4)
    assert sheet.shape == (4 * (22 + 32), 48, 3)
    rows = [sheet[22 + i * 54 + 10, 40, 0] for i in range(4)]  # frames 0, 3, 6 and 9
    assert np.allclose(rows, [0, 60, 120, 180], atol=4)
    assert read_png(tmp_path / "sheet.png").shape == sheet.shape


@pytest.mark.slow
def test_edits_export_and_report_of_the_tiny_demo(workdir: Path):
    """The demo clip made at twice the working size, so the export really brings the layers back up."""
    demo = "dog: {preset: dog, n_frames: 10, width: 192, height: 112, seed: 0}"
    assert demo in TINY
    config = write_config(workdir, TINY.replace(demo, demo.replace("192", "384").replace("112", "224")) + """
edits: {shift: 3, freeze: 2, stroboscope: {interval: 3}}
""")
    targets = ["edits", "exports", "report_figures"]
    result = run_snakemake(workdir, "--cores", "2", "--configfile", config, "--", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    dog = workdir / "results" / "dog"
    info = json.loads((dog / "frames_info.json").read_text())
    count, height, width = info["count"], info["height"], info["width"]
    assert (width, height, info["source_width"]) == (192, 112, 384)

    # Each edit is the one its target names, with the config's settings: the MP4s match what the
    # package computes from the same layers (their content is checked exactly in test_edits.py).
    layers = Layers("dog", dog / "omnimatte", ["dog"])
    camera = load_camera("edits", "dog", HomographyFiles(dog / "homography"))
    frames = read_frames(dog / "frames")
    green = replacement_background(layers, camera, color=[0, 177, 64])
    expected = {"remove_dog": remove_object(layers, "dog"), "colorpop_dog": colorpop(layers, dog / "frames", ["dog"]),
                "stroboscope_dog": stroboscope_frames(layers, camera, "dog", 3),
                "shift_dog": retime(layers, camera, "dog", shifted(count, 3)),
                "freeze_dog": retime(layers, camera, "dog", frozen(2)),
                "background_green": replace_background(layers, green)}
    for name, made in expected.items():
        video = read_video(dog / "edits" / f"{name}.mp4")
        assert video.shape == (count, height, width, 3), name
        exact = np.stack(list(made))
        assert psnr(video, exact) > max(22.0, psnr(video, frames) + 3), name
    still = read_png(dog / "edits" / "stroboscope_dog.png").astype(int)
    assert np.abs(still - stroboscope_image(layers, camera, "dog", 3, count // 2)).max() <= 1

    export = dog / "export"
    exported = json.loads((export / "info.json").read_text())
    assert (exported["width"], exported["height"], exported["count"]) == (384, 224, count)
    assert exported["recomposition_psnr"] > 40
    layer = read_frames(export / "layers" / "dog", mode="rgba")
    assert layer.shape == (count, 224, 384, 4)
    movie = read_video(export / "layers" / "dog.mov", mode="rgba")
    assert np.abs(movie[..., 3].astype(int) - layer[..., 3]).max() <= 1
    assert len(list_frames(export / "background")) == count and (export / "background.mov").is_file()

    for sheet in ("overview", "masks", "flow"):
        assert read_png(dog / "report" / f"{sheet}.jpg").shape[0] > height, sheet
    table = (dog / "report" / "runtimes.html").read_text()
    for stage in ("demo_clip", "frames", "flow", "masks", "homography", "background_fit", "train", "composite"):
        assert f"<td>{stage}</td>" in table, stage

    report = run_snakemake(workdir, "--configfile", config, "--report", "report.html", "--", "report_figures", "edits")
    assert report.returncode == 0, report.stderr[-3000:]
    page = (workdir / "report.html").read_text()
    for name in ("overview.jpg", "masks.jpg", "flow.jpg", "losses.png", "runtimes.png", "runtimes.html",
                 "remove_dog.mp4", "stroboscope_dog.png"):
        assert name in page, name
    bundle = run_snakemake(workdir, "--configfile", config, "--report", "report.zip", "--", "report_figures")
    assert bundle.returncode == 0, bundle.stderr[-3000:]
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("runtimes.png") for name in names) and any(name.endswith("losses.png") for name in names)
