"""Stage 1: decode a video into RGB frames at the working resolution.

Decoding runs through ffmpeg-python with the ffmpeg binary bundled by
imageio-ffmpeg, so no system ffmpeg is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
from tqdm import tqdm

from omnimatte.errors import StageError
from omnimatte.io import (
    SequenceNamingError,
    SourceAudio,
    atomic_dir,
    count_packets,
    decoded_as,
    ffmpeg_binary,
    frame_name,
    probe_video,
    save_json,
    sequence_images,
    write_png,
)
from omnimatte.logs import get_logger

STAGE = "frames"
log = get_logger(STAGE)

#: Frames a decode may fall short of the announced count (a rounded duration) before it counts as truncated.
SHORT_TOLERANCE = 1
#: A working width more than this times the source's is warned about (homography names it too, when it fails).
UPSCALE_WARNING = 2.0


def working_size(source_width: int, source_height: int, width: int, height: int | None) -> tuple[int, int]:
    """The working (width, height): `width` as given, height from the aspect, both multiples of 16."""
    if width % 16:
        raise ValueError(f"working width {width} is not a multiple of 16")
    if height is None:
        height = max(16, int(round(source_height * width / source_width / 16)) * 16)
    elif height % 16:
        raise ValueError(f"working height {height} is not a multiple of 16")
    return width, height


def selected_count(total: int, start: int, end: int | None, stride: int) -> int:
    """How many of `total` source frames [start, end) every `stride` selects; 0 when the total is unknown."""
    if not total:
        return 0
    last = total if end is None else min(end, total)
    return max(0, (last - start + stride - 1) // stride)


def decode_frames(video: Path, width: int, height: int, start: int = 0, end: int | None = None,
                  stride: int = 1) -> Iterator[np.ndarray]:
    """RGB frames [start, end) every `stride` of `video`, scaled to width x height (area filter).

    The one place that selects frames from a source video, so the working frames and
    anything later decoded at the source size (the full-resolution export) match. A
    folder is an image sequence, its images in the order of the numbers in their names.
    """
    if Path(video).is_dir():
        for path in sequence_images(Path(video))[start:end:stride]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 8 bits, as the decoded video frames
            if image is None:
                raise RuntimeError(f"cannot read the image {path}")
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    selection = f"gte(n,{start})*not(mod(n-{start},{stride}))"
    if end is not None:
        selection += f"*lt(n,{end})"
    process = (
        decoded_as(ffmpeg.input(str(video)).filter("select", selection), "rgb24")
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


def probe_source(sample: str, video: Path) -> dict:
    """probe_video of the sample's source, its failures as the frames stage's errors."""
    try:
        return probe_video(video)
    except ValueError as err:
        if video.is_dir():
            raise StageError(STAGE, sample, f"cannot read the image sequence {video}: {err}",
                             (f"{err.fix}; " if isinstance(err, SequenceNamingError) else "")
                             + "a `video` folder must hold one image per frame (PNG, JPEG, TIFF or BMP), named with one "
                             "pattern and one frame number each (e.g. 00000.png ...)") from err
        raise StageError(STAGE, sample, f"ffmpeg cannot read {video}: {err}",
                         "check that the file is a complete video (re-export or re-download it)") from err


def warn_about_source(sample: str, video: Path, probe: dict, out_w: int, out_h: int) -> bool:
    """Warn when the working size upscales the source or its frame rate varies; returns whether it varies."""
    upscale = out_w / probe["width"]
    if upscale > UPSCALE_WARNING:
        log.warning("%s: WARNING: the source is %dx%d and the working size %dx%d upscales it %.1fx: that adds blur, "
                    "not detail, and flow and homographies work worse on it; set frames.width near the source width "
                    "(e.g. %d)", sample, probe["width"], probe["height"], out_w, out_h, upscale,
                    max(32, -(-probe["width"] // 16) * 16))
    # The time base rate is the frame rate, or a multiple of it (field rate) for constant-rate video.
    ratio = probe["base_fps"] / probe["fps"] if probe["fps"] and probe["base_fps"] else 1.0
    variable = abs(ratio - round(ratio)) > 0.01
    if variable:
        log.warning("%s: WARNING: %s has a variable frame rate (%.4g fps on average, %.4g at most): every frame is "
                    "kept once and the outputs play at the average rate, so motion speeds up or slows down where "
                    "the rate changed; convert it to a constant rate first to keep its timing (e.g. ffmpeg -i in.mp4 "
                    "-fps_mode cfr -r %.4g out.mp4)", sample, video, probe["fps"], probe["base_fps"], probe["base_fps"])
    return variable


def extract_frames(sample: str, video: Path, out_dir: Path, size: tuple[int, int], start: int, end: int | None,
                   stride: int, announced: int, allow_short: bool) -> int:
    """Write the selected frames at `size` (width, height) into out_dir, which appears only when complete; returns
    their count. Fewer than the `announced` source frames select (0: unknown) stop the stage, or with `allow_short`
    go on with a warning."""
    expected = selected_count(announced, start, end, stride)
    count = 0
    with atomic_dir(out_dir) as tmp:
        with tqdm(total=expected or None, desc=f"{sample}: frames", unit="frame") as progress:
            try:
                for frame in decode_frames(video, *size, start, end, stride):
                    write_png(tmp / frame_name(count), frame)
                    count += 1
                    progress.update()
            except RuntimeError as err:
                raise StageError(STAGE, sample, str(err), "check that the file is a complete, readable video") from err
        if count < 2:
            raise StageError(STAGE, sample, f"{count} frame(s) decoded from {video} with start={start}, end={end}, stride={stride}",
                             "the clip needs at least 2 frames: check the file and the sample's start/end/stride")
        if expected and count < expected - SHORT_TOLERANCE:
            problem = (f"decoded {count} frames from {video} but expected {expected}: the file announces "
                       f"{announced} frames (start={start}, end={end}, stride={stride}); "
                       "it is truncated or damaged")
            if not allow_short:
                raise StageError(STAGE, sample, problem,
                                 "re-export or re-download the video; to go on with the frames that decode, "
                                 "set `frames: {allow_short: true}` in the config")
            log.warning("%s: WARNING: %s; going on with %d frames because frames.allow_short is set", sample, problem, count)
    return count


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
    allow_short: bool = False,
) -> dict:
    """Extract frames [start, end) every `stride` of `video` into out_dir/00000.png, ...

    Writes `info_path` (JSON) with the source and working sizes, the frame count,
    the frame rate of the extracted sequence as an exact ratio (the source's over
    the stride, e.g. 10000/1001) and whether the source has sound, which the final
    videos use to keep the source's timing and audio. Fewer frames than the file
    announces (a truncated download) stop the stage, or with `allow_short` go on
    with a warning: user masks and exports count on every frame.
    """
    video = Path(video)
    if not video.exists():
        raise StageError(STAGE, sample, f"video file {video} does not exist", "check the sample's `video` path in the config")
    if stride < 1 or start < 0 or (end is not None and end <= start):
        raise StageError(STAGE, sample, f"bad frame range start={start} end={end} stride={stride}",
                         "use start >= 0, end > start (or null for the last frame) and stride >= 1")
    probe = probe_source(sample, video)
    try:
        out_w, out_h = working_size(probe["width"], probe["height"], width, height)
    except ValueError as err:
        raise StageError(STAGE, sample, str(err), "set frames.width (and height) to multiples of 16 in the config") from err
    variable = warn_about_source(sample, video, probe, out_w, out_h)
    count = extract_frames(sample, video, out_dir, (out_w, out_h), start, end, stride, probe["estimated_frames"],
                           allow_short)
    source_count = count_packets(video) or probe["estimated_frames"]
    # Without a rate (an image sequence, or a video ffmpeg reports none for) the extracted frames play at
    # 24 fps whatever the stride; the source is then taken to run at 24 x stride, so that the sequence's
    # rate stays the source's over the stride.
    source_rate = probe["frame_rate"] or Fraction(24 * stride)
    if not probe["frame_rate"] and not video.is_dir():
        log.warning("%s: ffmpeg reports no frame rate for %s; the videos made from it play at 24 fps", sample, video)
    info = {
        "video": str(video),
        "source_width": probe["width"],
        "source_height": probe["height"],
        "source_fps": float(source_rate),
        "source_frame_rate": f"{source_rate.numerator}/{source_rate.denominator}",
        "audio": probe["audio"],
        "source_count": source_count,
        "width": out_w,
        "height": out_h,
        "count": count,
        "start": start,
        "end": end,
        "stride": stride,
        "fps": float(source_rate / stride),
        "frame_rate": f"{(source_rate / stride).numerator}/{(source_rate / stride).denominator}",
        "variable_frame_rate": variable,
    }
    save_json(info_path, info)
    log.info("%s: %d frames at %dx%d (source %dx%d, %s, %s)", sample, count, out_w, out_h, probe["width"], probe["height"],
             f"{info['source_frame_rate']} fps" if probe["frame_rate"] else "an image sequence, played at 24 fps"
             if video.is_dir() else "played at 24 fps", "with sound" if probe["audio"] else "no sound")
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
