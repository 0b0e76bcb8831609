"""Videos through the ffmpeg binary bundled with imageio-ffmpeg: probing, decoding and H.264 encoding.

No system ffmpeg (or ffprobe) is needed. A `video` that is a folder is an image sequence.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from omnimatte.folders import IMAGE_SUFFIXES
from omnimatte.io.audio import SourceAudio, audio_args
from omnimatte.io.files import atomic_path, numbered_pngs


#: The scaler flags with which decoded YUV frames become RGB. With ffmpeg's default (fast, inexact) conversion, the
#: frames of an H.264 clip came out 1.1 to 1.4 levels of 255 darker than the frames encoded (the rendered suite's
#: clips, losslessly encoded and at crf 20 alike); with accurate rounding and the chroma interpolated at full
#: resolution they are within 0.1 level of them on average, and 2.9 instead of 3.6 levels RMS when lossless.
RGB_CONVERSION_FLAGS = "accurate_rnd+full_chroma_int"


def decoded_as(stream, pix_fmt: str):
    """An ffmpeg-python stream converted to `pix_fmt` (rgb24, rgba) at its own size with RGB_CONVERSION_FLAGS, so
    that later filters (a resize) work on exact RGB."""
    return stream.filter("scale", flags=RGB_CONVERSION_FLAGS).filter("format", pix_fmt)


def ffmpeg_binary() -> str:
    """The ffmpeg executable bundled with imageio-ffmpeg, so no system ffmpeg is needed."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def rate_text(fps: float | Fraction | str) -> str:
    """A frame rate as ffmpeg takes it: an exact ratio such as 30000/1001 stays exact."""
    if isinstance(fps, float):  # 14.985014985... is 15000/1001: rates are ratios with small denominators
        fps = Fraction(fps).limit_denominator(1001)
    fps = Fraction(fps)
    return f"{fps.numerator}/{fps.denominator}"


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float | Fraction | str, crf: int = 18,
                audio: SourceAudio | None = None) -> int:
    """Encode RGB uint8 frames as an H.264 MP4 that common players open; returns the frame count.

    `fps` may be a ratio (30000/1001) and is kept exact. With `audio`, that stretch
    of the source's sound goes along as AAC. Odd sizes are padded to even, as
    yuv420p requires.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    height, width = first.shape[:2]
    count = 0
    with atomic_path(path) as tmp:
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", rate_text(fps),
                   "-i", "pipe:"]
        if audio is not None:
            command += audio_args(audio, "aac") + ["-b:a", "192k"]
        command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
                    "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for frame in itertools.chain([first], frames):
                if frame.shape[:2] != (height, width) or frame.dtype != np.uint8:
                    raise ValueError(f"frame {count} of {path} is {frame.shape} {frame.dtype}, expected {(height, width, 3)} uint8")
                process.stdin.write(np.ascontiguousarray(frame[..., :3]).tobytes())
                count += 1
        finally:
            process.stdin.close()
            stderr = process.stderr.read().decode(errors="replace")
            code = process.wait()
        if code != 0:
            raise RuntimeError(f"ffmpeg failed (exit {code}) writing {path}: {stderr.strip()[-500:]}")
    return count


def sequence_images(folder: Path) -> list[Path]:
    """The images of an image sequence in frame order (see numbered_pngs); ValueError when there are none."""
    images = [path for _, path in numbered_pngs(folder, IMAGE_SUFFIXES)]
    if not images:
        raise ValueError(f"the folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def probe_video(path: Path) -> dict:
    """Width, height (as shown, rotation applied), the frame rate as an exact ratio (frame_rate, and as
    fps), base_fps (the stream's time base rate, above the average for variable frame rate), the frame
    count the file announces, and whether there is sound. A folder is an image sequence.

    ffprobe is not bundled with imageio-ffmpeg, so this reads what `ffmpeg -i` prints:
    the stream lines, the header, and the frame rate as an exact ratio (30000/1001,
    where the stream line says 29.97) from the showinfo filter on the first frame.
    """
    if Path(path).is_dir():
        return _probe_sequence(Path(path))
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-vf", "showinfo",
               "-frames:v", "1", "-f", "null", "-"]
    banner = subprocess.run(command, capture_output=True, text=True).stderr
    stream = re.search(r"Stream #\S+.*?Video: .*", banner)
    if stream is None:
        raise ValueError(banner.strip().splitlines()[-1] if banner.strip() else "ffmpeg printed nothing")
    size = re.search(r", (\d{2,5})x(\d{2,5})", stream.group(0))
    fps = re.search(r", ([\d.]+) (?:fps|tbr)", stream.group(0))  # the average rate (the time base rate without one)
    base = re.search(r", ([\d.]+) tbr", stream.group(0))
    exact = re.search(r"config in time_base: \S+ frame_rate: (\d+)/(\d+)", banner)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", banner)
    if size is None:
        raise ValueError(f"no frame size in ffmpeg's stream line: {stream.group(0)}")
    average = Fraction(fps.group(1)) if fps else Fraction(0)
    if exact and int(exact.group(1)) > 0 and int(exact.group(2)) > 0:
        rate = Fraction(int(exact.group(1)), int(exact.group(2)))
    else:
        rate = average
    # showinfo's rate is the stream's time base rate: for a variable frame rate (or a field rate) it
    # is above the average, and the frames, each kept once, play at the average.
    if average and rate and abs(rate / average - 1) > 0.01:
        rate = average.limit_denominator(1001)
    info = {"width": int(size.group(1)), "height": int(size.group(2)), "fps": float(rate), "frame_rate": rate,
            "base_fps": float(base.group(1)) if base else 0.0,
            "audio": re.search(r"Stream #\S+.*?Audio: ", banner) is not None}
    # Phone videos are often stored sideways with a rotation to show them upright; ffmpeg
    # decodes them upright, so the size that counts (for the aspect, prompts, masks) is the shown one.
    rotation = re.search(r"rotation of (-?[\d.]+) degrees", banner[stream.start():])
    if rotation and round(float(rotation.group(1))) % 180 == 90:
        info["width"], info["height"] = info["height"], info["width"]
    seconds = 0.0
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    info["duration"] = seconds
    # The video stream's own frame count from the container (OpenCV reads it from the
    # header): a longer audio track makes the container's duration overstate it.
    capture = cv2.VideoCapture(str(path))
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    info["estimated_frames"] = declared if declared > 0 else int(round(seconds * info["fps"])) if info["fps"] else 0
    return info


def _probe_sequence(folder: Path) -> dict:
    """probe_video for an image sequence: the first image's size; the frame rate is unknown (0); no sound."""
    images = sequence_images(folder)
    first = cv2.imread(str(images[0]), cv2.IMREAD_COLOR)
    if first is None:
        raise ValueError(f"cannot read the image {images[0]}")
    return {"width": first.shape[1], "height": first.shape[0], "fps": 0.0, "frame_rate": Fraction(0),
            "base_fps": 0.0, "audio": False, "duration": 0.0, "estimated_frames": len(images)}


def count_packets(path: str | os.PathLike) -> int | None:
    """How many video frames the file really holds (its packets, read without decoding); None if unknown."""
    if Path(path).is_dir():
        return len(sequence_images(Path(path)))
    result = subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                             "-f", "null", "-"], capture_output=True, text=True)
    frames = re.findall(r"frame=\s*(\d+)", result.stderr)
    return int(frames[-1]) if result.returncode == 0 and frames else None


def read_video(path: str | os.PathLike, mode: str = "rgb", max_frames: int | None = None) -> np.ndarray:
    """Decode a video (or its first `max_frames`) into uint8 frames: mode 'rgb' (T,H,W,3) or 'rgba' (T,H,W,4)."""
    import ffmpeg

    pix_fmt, channels = {"rgb": ("rgb24", 3), "rgba": ("rgba", 4)}[mode]
    info = probe_video(Path(path))
    limit = {"vframes": max_frames} if max_frames else {}
    out, _ = (decoded_as(ffmpeg.input(str(path)), pix_fmt).output("pipe:", format="rawvideo", pix_fmt=pix_fmt, **limit)
              .global_args("-loglevel", "error").run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True))
    return np.frombuffer(out, np.uint8).reshape(-1, info["height"], info["width"], channels)


def has_encoder(name: str) -> bool:
    """Whether the bundled ffmpeg was built with the video encoder `name` (e.g. 'prores_ks')."""
    listing = subprocess.run([ffmpeg_binary(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines() if line.startswith(" V"))
