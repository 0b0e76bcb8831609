"""Timing and sound: a 29.97 fps clip with a tone keeps its exact rate (30000/1001 over the stride) and, in
the edits that span the clip and the export's .mov, the sound of the selected range, in sync."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from omnimatte.cli import main
from omnimatte.frames import run_frames
from omnimatte.io import ffmpeg_binary, probe_video, read_frames, read_video, write_frames

NTSC = Fraction(30000, 1001)
START, STRIDE, SOURCE_FRAMES = 15, 2, 66  # frames 15, 17, ..., 65: 26 frames from 0.5005 s on
COUNT = (SOURCE_FRAMES - START + STRIDE - 1) // STRIDE
RATE = 48000
BEEP = 1760  # the sine source beeps at 4 x 440 Hz for a few hundredths of a second at each whole second


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, dict]:
    """A 29.97 fps test pattern with a 440 Hz tone that beeps every second, and its frames info."""
    root = tmp_path_factory.mktemp("ntsc")
    video = root / "ntsc.mp4"
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=128x80:rate=30000/1001",
                    "-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:sample_rate={RATE}",
                    "-frames:v", str(SOURCE_FRAMES), "-t", "2.3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(video)], check=True)
    info = run_frames("ntsc", video, root / "frames", root / "frames_info.json", width=64, start=START, stride=STRIDE)
    frames = read_frames(root / "frames")
    layer = np.zeros(frames.shape[:3] + (4,), np.uint8)
    layer[:, 8:24, 8:24] = (255, 0, 0, 255)
    write_frames(root / "omnimatte" / "background", frames)
    write_frames(root / "omnimatte" / "reconstruction", frames)
    write_frames(root / "omnimatte" / "layers" / "square" / "rgba", layer)
    return video, info


def sound_of(path: Path) -> np.ndarray:
    """The first audio stream of a file as mono float samples at RATE."""
    pcm = subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
                          "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"], capture_output=True, check=True).stdout
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0


def beep_times(samples: np.ndarray, window: int = 480) -> list[float]:
    """Seconds at which the beep's frequency is loud, one per beep (10 ms windows)."""
    times = np.arange(len(samples) // window)
    spectrum = np.abs(np.fft.rfft(samples[: len(times) * window].reshape(-1, window), axis=1))
    band = round(BEEP * window / RATE)
    loud = spectrum[:, band] > 0.5 * spectrum[:, band].max()
    starts = [t for t in times if loud[t] and (t == 0 or not loud[t - 1])]
    return [t * window / RATE for t in starts]


def test_frames_info_holds_the_exact_rate_and_the_sound(clip):
    _, info = clip
    assert info["source_frame_rate"] == "30000/1001"
    assert Fraction(info["frame_rate"]) == NTSC / STRIDE
    assert info["audio"] is True and info["count"] == COUNT


def edit(clip, tmp_path: Path, command: str, *extra: str) -> Path:
    video, _ = clip
    root = video.parent
    out = tmp_path / f"{command}.mp4"
    assert main([command, "--sample", "ntsc", "--omnimatte", str(root / "omnimatte"), "--objects", "square",
                 "--frames-info", str(root / "frames_info.json"), "--out", str(out), *extra]) == 0
    return out


@pytest.mark.parametrize("command,extra", [
    ("remove", ("--object", "square")),
    ("colorpop", ("--frames", "FRAMES", "--keep", "square")),
])
def test_edits_keep_the_rate_and_carry_the_sound_of_the_range(clip, tmp_path, command, extra):
    video, _ = clip
    extra = tuple(str(video.parent / "frames") if value == "FRAMES" else value for value in extra)
    out = edit(clip, tmp_path, command, *extra)
    probe = probe_video(out)
    assert probe["frame_rate"] == NTSC / STRIDE  # exact, not 14.99 or 15
    assert len(read_video(out)) == COUNT
    span = COUNT * STRIDE / NTSC  # 26 frames of 2/29.97 s
    assert probe["audio"] and abs(probe["duration"] - float(span)) < 0.05
    sound = sound_of(out)
    assert abs(len(sound) / RATE - float(span)) < 0.05
    # The source beeps at 1 s and 2 s; the clip starts at frame 15 (0.5005 s), so the beeps come at 0.4995 s
    # and 1.4995 s: the sound is that of the selected range, in step with the frames.
    first = float(1 - START / NTSC)
    assert beep_times(sound) == pytest.approx([first, first + 1], abs=0.025)


def test_overview_keeps_the_exact_rate(clip, tmp_path):
    video, _ = clip
    root, out = video.parent, tmp_path / "omnimatte.mp4"
    assert main(["composite", "--sample", "ntsc", "--frames", str(root / "frames"), "--frames-info",
                 str(root / "frames_info.json"), "--omnimatte", str(root / "omnimatte"), "--objects", "square",
                 "--out", str(out)]) == 0
    assert probe_video(out)["frame_rate"] == NTSC / STRIDE


def test_export_movies_keep_the_rate_and_the_sound(clip, tmp_path):
    video, _ = clip
    root, out = video.parent, tmp_path / "export"
    assert main(["export", "--sample", "ntsc", "--video", str(video), "--frames-info", str(root / "frames_info.json"),
                 "--omnimatte", str(root / "omnimatte"), "--objects", "square", "--out", str(out)]) == 0
    info = json.loads((out / "info.json").read_text())
    assert info["frame_rate"] == "15000/1001" and info["sound"] is True
    for movie in (out / "background.mov", out / "layers" / "square.mov"):
        probe = probe_video(movie)
        assert probe["frame_rate"] == NTSC / STRIDE and probe["audio"], movie
        sound = sound_of(movie)
        assert abs(len(sound) / RATE - float(COUNT * STRIDE / NTSC)) < 0.01  # PCM: no encoder padding
        assert beep_times(sound) == pytest.approx([float(1 - START / NTSC), float(2 - START / NTSC)], abs=0.025)


def test_a_silent_source_gives_silent_edits(tmp_path):
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(4)]
    write_frames(tmp_path / "omnimatte" / "background", frames)
    write_frames(tmp_path / "omnimatte" / "layers" / "square" / "rgba", [np.zeros((48, 64, 4), np.uint8)] * 4)
    (tmp_path / "frames_info.json").write_text(json.dumps({"video": "gone.mp4", "audio": False, "count": 4,
                                                           "frame_rate": "24000/1001", "fps": 23.976}))
    out = tmp_path / "remove.mp4"
    assert main(["remove", "--sample", "quiet", "--omnimatte", str(tmp_path / "omnimatte"), "--objects", "square",
                 "--frames-info", str(tmp_path / "frames_info.json"), "--object", "square", "--out", str(out)]) == 0
    probe = probe_video(out)
    assert probe["frame_rate"] == Fraction(24000, 1001) and not probe["audio"]
