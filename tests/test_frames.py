"""Frame extraction: range selection, working size, fps, and clear errors on bad videos."""

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte.errors import StageError
from omnimatte.frames import run_frames, working_size
from omnimatte.io import ffmpeg_binary, load_json, read_frames, write_video


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


@pytest.fixture
def truncated_video(tmp_path: Path) -> Path:
    """48 noise frames (H.264, header first), cut after 60 % of the bytes, as an interrupted download leaves it."""
    rng = np.random.default_rng(0)
    whole = tmp_path / "whole.mp4"
    write_video(whole, (rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(48)), fps=24)
    data = whole.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[:int(len(data) * 0.6)])
    return path


def test_truncated_video_stops_naming_both_counts(truncated_video: Path, tmp_path: Path):
    with pytest.raises(StageError) as err:
        run_frames("cut", truncated_video, tmp_path / "f", tmp_path / "i.json", width=96)
    # "[frames] sample 'cut': decoded 29 frames from .../truncated.mp4 but expected 48: the file announces 48 frames
    #  (start=0, end=None, stride=1); it is truncated or damaged
    #   fix: re-export or re-download the video; to go on with the frames that decode, set `frames: {allow_short: true}` ..."
    message = str(err.value)
    assert re.search(r"decoded (\d+) frames from .*truncated.mp4 but expected 48", message), message
    assert "allow_short: true" in err.value.fix
    assert not (tmp_path / "f").exists() and not (tmp_path / "i.json").exists()


def test_truncated_video_goes_on_with_a_warning_when_allowed(truncated_video: Path, tmp_path: Path, package_log):
    info = run_frames("cut", truncated_video, tmp_path / "f", tmp_path / "i.json", width=96, allow_short=True)
    assert 2 <= info["count"] < 48
    assert f"WARNING: decoded {info['count']} frames" in package_log.text and "frames.allow_short is set" in package_log.text


def test_audio_longer_than_the_video_is_not_a_truncation(ramp_video: Path, tmp_path: Path):
    # The container's duration is the audio's 3 s; the video stream holds 20 frames at 25 fps.
    with_audio = tmp_path / "with audio.mp4"
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-i", str(ramp_video), "-f", "lavfi", "-i", "sine=d=3",
                    "-c:v", "copy", "-c:a", "aac", str(with_audio)], check=True)
    info = run_frames("loud", with_audio, tmp_path / "f", tmp_path / "i.json", width=64)
    assert info["count"] == 20 and info["source_count"] == 20


def test_tiny_video_upscaled_is_warned_about(tmp_path: Path, package_log):
    video = tmp_path / "tiny.mp4"
    write_video(video, [np.full((30, 40, 3), i * 10, np.uint8) for i in range(4)], fps=10)
    info = run_frames("tiny", video, tmp_path / "f", tmp_path / "i.json", width=192)
    assert (info["width"], info["height"]) == (192, 144)
    # "tiny: WARNING: the source is 40x30 and the working size 192x144 upscales it 4.8x: that adds blur, not detail,
    #  and flow and homographies work worse on it; set frames.width near the source width (e.g. 48)"
    assert "the source is 40x30 and the working size 192x144 upscales it 4.8x" in package_log.text
    assert "set frames.width near the source width (e.g. 48)" in package_log.text


def test_video_stored_sideways_is_extracted_upright_at_its_shown_aspect(tmp_path: Path):
    # Phones store portrait video as landscape plus a rotation: 96x64 coded, shown 64x96.
    ramp = np.repeat(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], 64, axis=0).repeat(3, axis=2)
    coded = tmp_path / "coded.mp4"
    write_video(coded, [ramp] * 4, fps=10)
    sideways = tmp_path / "portrait.mp4"
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-display_rotation", "90", "-i", str(coded), "-c", "copy",
                    str(sideways)], check=True)
    info = run_frames("phone", sideways, tmp_path / "f", tmp_path / "i.json", width=64)
    assert (info["source_width"], info["source_height"], info["width"], info["height"]) == (64, 96, 64, 96)
    frame = read_frames(tmp_path / "f")[0, ..., 0].astype(int)
    upright = min(np.abs(frame - np.rot90(ramp[..., 0], k)).mean() for k in (1, 3))
    assert upright < 4, upright  # the ramp turned, not squashed


def test_variable_frame_rate_is_warned_about(tmp_path: Path, package_log):
    # 30 frames at 30 fps, then 30 frames at 10 fps: 60 frames over 4 s, 15 fps on average.
    video = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=30:duration=2",
                    "-vf", "setpts='if(lt(N,30),N/30/TB,(30+(N-30)*3)/30/TB)'", "-fps_mode", "vfr", str(video)], check=True)
    info = run_frames("vfr", video, tmp_path / "f", tmp_path / "i.json", width=64)
    assert info["count"] == 60 and info["variable_frame_rate"]
    # "vfr: WARNING: .../vfr.mp4 has a variable frame rate (15.79 fps on average, 30 at most): every frame is kept
    #  once and the outputs play at the average rate, ..."
    assert "has a variable frame rate" in package_log.text and "30 at most" in package_log.text


def test_image_sequence_folder_is_read_in_number_order(tmp_path: Path):
    # frame_2.jpg must come before frame_10.jpg; the stride picks every other image.
    folder = tmp_path / "shot 1"
    folder.mkdir()
    for i in range(12):
        assert cv2.imwrite(str(folder / f"frame_{i}.png"), np.full((45, 80, 3), i * 20, np.uint8))
    info = run_frames("seq", folder, tmp_path / "f", tmp_path / "i.json", width=64, stride=2)
    frames = read_frames(tmp_path / "f")
    assert frames.shape == (6, 32, 64, 3) and (info["source_width"], info["source_height"]) == (80, 45)
    assert list(frames[:, 10, 10, 0]) == [0, 40, 80, 120, 160, 200]
    assert info["fps"] == 24.0 and info["source_count"] == 12


def test_image_sequence_with_mixed_names_is_refused(tmp_path: Path):
    folder = tmp_path / "shot"
    folder.mkdir()
    for name in ("a_0.png", "a_1.png", "b_2.png"):
        cv2.imwrite(str(folder / name), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(StageError) as err:
        run_frames("seq", folder, tmp_path / "f", tmp_path / "i.json", width=32)
    # "[frames] sample 'seq': cannot read the image sequence .../shot: mixed file naming (2 like a_0.png; 1 like b_2.png);
    #  the odd one(s) out: b_2.png"
    assert "cannot read the image sequence" in str(err.value) and "the odd one(s) out: b_2.png" in str(err.value)


def test_decoded_frames_keep_the_colours_encoded(tmp_path: Path):
    """Frames decoded from an H.264 clip, by the frames stage and by read_video, are within 0.3 levels of the frames
    encoded on average in every channel (ffmpeg's default YUV to RGB conversion made them 1.1 to 1.4 levels darker)."""
    from omnimatte.io import read_video

    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:128, 0:224].astype(np.float32)
    frames = []
    for t in range(6):
        colour = np.stack([110 + 90 * np.sin(xs / 37 + t / 5), 120 + 80 * np.cos(ys / 23 - t / 7),
                           100 + 70 * np.sin((xs + ys) / 51)], axis=-1)
        frames.append(np.clip(colour + rng.normal(0, 6, colour.shape), 0, 255).astype(np.uint8))
    frames = np.stack(frames)
    path = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", "224x128", "-r", "24", "-i", "pipe:", "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv420p",
                    str(path)], input=frames.tobytes(), check=True)
    run_frames("clip", path, tmp_path / "frames", tmp_path / "info.json", width=224)
    for decoded in (read_frames(tmp_path / "frames"), read_video(path)):
        bias = (decoded.astype(np.float64) - frames).mean(axis=(0, 1, 2))
        assert np.abs(bias).max() < 0.3, bias
