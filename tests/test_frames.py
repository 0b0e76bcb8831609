"""Frame extraction: range selection, working size, fps, and clear errors on bad videos."""

from pathlib import Path

import numpy as np
import pytest

from omnimatte.errors import StageError
from omnimatte.frames import run_frames, working_size
from omnimatte.io import load_json, read_frames, write_video


@pytest.fixture
def ramp_video(tmp_path: Path) -> Path:
    """20 frames whose brightness encodes the frame index (i * 12)."""
    frames = [np.full((90, 160, 3), i * 12, np.uint8) for i in range(20)]
    path = tmp_path / "ramp.mp4"
    write_video(path, frames, fps=25)
    return path


def test_extracts_range_with_stride_at_working_size(ramp_video: Path, tmp_path: Path):
    info = run_frames("ramp", ramp_video, tmp_path / "frames", tmp_path / "info.json", width=64, start=2, end=15, stride=3)
    frames = read_frames(tmp_path / "frames")
    assert frames.shape == (5, 32, 64, 3)  # 160x90 at width 64 -> 36 -> 32 (multiple of 16)
    kept = frames[:, 16, 32, 0].astype(int)
    assert np.abs(kept - np.array([2, 5, 8, 11, 14]) * 12).max() <= 4
    assert info == load_json(tmp_path / "info.json")
    assert info["count"] == 5 and info["fps"] == pytest.approx(25 / 3)
    assert (info["source_width"], info["source_height"]) == (160, 90)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"{i:05d}.png" for i in range(5)]


def test_working_size_keeps_aspect_on_multiples_of_16():
    assert working_size(1920, 1080, 448, None) == (448, 256)
    assert working_size(1280, 720, 320, 176) == (320, 176)
    with pytest.raises(ValueError):
        working_size(1920, 1080, 450, None)


def test_missing_video_names_sample_and_fix(tmp_path: Path):
    with pytest.raises(StageError) as err:
        run_frames("clipx", tmp_path / "nope.mp4", tmp_path / "f", tmp_path / "i.json")
    assert "clipx" in str(err.value) and "[frames]" in str(err.value) and "video" in err.value.fix
    assert not (tmp_path / "f").exists()


def test_unreadable_video(tmp_path: Path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(StageError, match="ffmpeg cannot read"):
        run_frames("bad", bad, tmp_path / "f", tmp_path / "i.json")
    assert not (tmp_path / "f").exists() and not (tmp_path / "i.json").exists()


def test_range_with_no_frames_leaves_nothing(ramp_video: Path, tmp_path: Path):
    with pytest.raises(StageError, match="at least 2 frames"):
        run_frames("ramp", ramp_video, tmp_path / "f", tmp_path / "i.json", width=64, start=50)
    assert not (tmp_path / "f").exists()
    assert not list(tmp_path.glob(".f.*"))  # no temporary folder left behind
