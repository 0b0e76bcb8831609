"""Stage 1: decode a video into RGB frames at the working resolution.

Decoding runs through ffmpeg-python with the ffmpeg binary bundled by
imageio-ffmpeg, so no system ffmpeg is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np
from tqdm import tqdm

from omnimatte.errors import StageError
from omnimatte.io import (
    SourceAudio,
    atomic_dir,
    ffmpeg_binary,
    frame_name,
    probe_video,
    save_json,
    write_png,
)
from omnimatte.logs import get_logger

STAGE = "frames"
log = get_logger(STAGE)


def working_size(source_width: int, source_height: int, width: int, height: int | None) -> tuple[int, int]:
    """The working (width, height): `width` as given, height from the aspect, both multiples of 16."""
    if width % 16:
        raise ValueError(f"working width {width} is not a multiple of 16")
    if height is None:
        height = max(16, int(round(source_height * width / source_width / 16)) * 16)
    elif height % 16:
        raise ValueError(f"working height {height} is not a multiple of 16")
    return width, height


def decode_frames(video: Path, width: int, height: int, start: int = 0, end: int | None = None,
                  stride: int = 1) -> Iterator[np.ndarray]:
    """RGB frames [start, end) every `stride` of `video`, scaled to width x height (area filter).

    The one place that selects frames from a source video, so the working frames and
    anything later decoded at the source size (the full-resolution export) match.
    """
    selection = f"gte(n,{start})*not(mod(n-{start},{stride}))"
    if end is not None:
        selection += f"*lt(n,{end})"
    process = (
        ffmpeg.input(str(video))
        .filter("select", selection)
        .filter("scale", width, height, flags="area")
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        .global_args("-loglevel", "error", "-nostdin")
        .run_async(pipe_stdout=True, pipe_stderr=True, cmd=ffmpeg_binary())
    )
    frame_bytes = width * height * 3
    while True:
        chunk = process.stdout.read(frame_bytes)
        if len(chunk) < frame_bytes:
            break
        yield np.frombuffer(chunk, np.uint8).reshape(height, width, 3)
    stderr = process.stderr.read().decode(errors="replace")
    code = process.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed decoding {video} (exit {code}): {stderr.strip()[-500:]}")


def run_frames(
    sample: str,
    video: Path,
    out_dir: Path,
    info_path: Path,
    width: int = 448,
    height: int | None = None,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
) -> dict:
    """Extract frames [start, end) every `stride` of `video` into out_dir/00000.png, ...

    Writes `info_path` (JSON) with the source and working sizes, the frame count,
    the frame rate of the extracted sequence as an exact ratio (the source's over
    the stride, e.g. 10000/1001) and whether the source has sound, which the final
    videos use to keep the source's timing and audio.
    """
    video = Path(video)
    if not video.is_file():
        raise StageError(STAGE, sample, f"video file {video} does not exist", "check the sample's `video` path in the config")
    if stride < 1 or start < 0 or (end is not None and end <= start):
        raise StageError(STAGE, sample, f"bad frame range start={start} end={end} stride={stride}",
                         "use start >= 0, end > start (or null for the last frame) and stride >= 1")
    try:
        probe = probe_video(video)
    except ValueError as err:
        raise StageError(STAGE, sample, f"ffmpeg cannot read {video}: {err}",
                         "check that the file is a complete video (re-export or re-download it)") from err
    try:
        out_w, out_h = working_size(probe["width"], probe["height"], width, height)
    except ValueError as err:
        raise StageError(STAGE, sample, str(err), "set frames.width (and height) to multiples of 16 in the config") from err

    expected = probe["estimated_frames"]
    if expected:
        last = expected if end is None else min(end, expected)
        expected = max(0, (last - start + stride - 1) // stride)
    count = 0
    with atomic_dir(out_dir) as tmp:
        with tqdm(total=expected or None, desc=f"{sample}: frames", unit="frame") as progress:
            try:
                for frame in decode_frames(video, out_w, out_h, start, end, stride):
                    write_png(tmp / frame_name(count), frame)
                    count += 1
                    progress.update()
            except RuntimeError as err:
                raise StageError(STAGE, sample, str(err), "check that the file is a complete, readable video") from err
        if count < 2:
            raise StageError(STAGE, sample, f"{count} frame(s) decoded from {video} with start={start}, end={end}, stride={stride}",
                             "the clip needs at least 2 frames: check the file and the sample's start/end/stride")
    source_rate = probe["frame_rate"] or Fraction(24)
    if not probe["frame_rate"]:
        log.warning("%s: ffmpeg reports no frame rate for %s; the videos made from it play at 24 fps", sample, video)
    info = {
        "video": str(video),
        "source_width": probe["width"],
        "source_height": probe["height"],
        "source_fps": float(source_rate),
        "source_frame_rate": f"{source_rate.numerator}/{source_rate.denominator}",
        "audio": probe["audio"],
        "source_count": probe["estimated_frames"],
        "width": out_w,
        "height": out_h,
        "count": count,
        "start": start,
        "end": end,
        "stride": stride,
        "fps": float(source_rate / stride),
        "frame_rate": f"{(source_rate / stride).numerator}/{(source_rate / stride).denominator}",
    }
    save_json(info_path, info)
    log.info("%s: %d frames at %dx%d (source %dx%d, %s fps, %s)", sample, count, out_w, out_h,
             probe["width"], probe["height"], info["source_frame_rate"], "with sound" if probe["audio"] else "no sound")
    return info


def frame_rate(frames_info: dict) -> Fraction:
    """The extracted sequence's exact frame rate; frames infos written before it was recorded give their fps."""
    if frames_info.get("frame_rate"):
        return Fraction(frames_info["frame_rate"])
    return Fraction(frames_info.get("fps") or 24.0).limit_denominator(1001)


def source_audio(stage: str, sample: str, frames_info: dict) -> SourceAudio | None:
    """The source's sound over the time the extracted frames cover (start/end/stride as times), or None when it has none.

    Frame i of the sequence shows source frame start + i * stride and lasts stride
    source frames, so the clip spans [start, start + count * stride) source frames.
    """
    if not frames_info.get("audio"):
        return None
    video = Path(frames_info["video"])
    if not video.is_file():
        raise StageError(stage, sample, f"the source video {video}, whose sound this video carries, does not exist",
                         "restore the file at that path (or fix the sample's `video` and rerun from the frames stage)")
    source_rate = Fraction(frames_info["source_frame_rate"])
    start = int(frames_info.get("start") or 0)
    covered = int(frames_info["count"]) * int(frames_info.get("stride") or 1)
    return SourceAudio(video, start / source_rate, covered / source_rate)
