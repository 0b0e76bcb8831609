"""File helpers shared by the stages: atomic writes, frame folders, videos.

Every output is written under a temporary name next to its final path and renamed
when complete, so a job that is killed never leaves a file Snakemake would trust.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile makes private files (0600) and folders (0700); outputs get the usual
# permissions instead, so that others sharing results/ (a cluster's group) can read them.
_UMASK = _process_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; rename it onto `path` on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only when complete."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def frame_name(index: int) -> str:
    """The contract's frame file name: 00000.png, 00001.png, ..."""
    return f"{index:05d}.png"


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB, RGBA or single-channel uint8 image (RGB order) as PNG, atomically."""
    with atomic_path(path) as tmp:
        _imwrite(tmp, image)


def _imwrite(path: Path, image: np.ndarray) -> None:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def write_image(path: str | os.PathLike, image: np.ndarray, jpeg_quality: int = 90) -> None:
    """Write an RGB uint8 image as PNG or JPEG (by the suffix of `path`), atomically."""
    with atomic_path(path) as tmp:
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if Path(path).suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {path}")


def write_frames(folder: str | os.PathLike, images: Iterable[np.ndarray]) -> int:
    """Write images as 00000.png, 00001.png, ... into a folder that appears only when complete."""
    count = 0
    with atomic_dir(folder) as tmp:
        for count, image in enumerate(images, start=1):
            _imwrite(tmp / frame_name(count - 1), image)
    return count


def read_png(path: str | os.PathLike, mode: str = "rgb") -> np.ndarray:
    """Read a PNG as uint8: mode 'rgb' (H,W,3), 'rgba' (H,W,4) or 'gray' (H,W)."""
    flags = {"rgb": cv2.IMREAD_COLOR, "rgba": cv2.IMREAD_UNCHANGED, "gray": cv2.IMREAD_GRAYSCALE}[mode]
    image = cv2.imread(str(path), flags)
    if image is None:
        raise OSError(f"could not read image {path}")
    if mode == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if mode == "rgba":
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """The PNG files of a frame folder in frame order."""
    return sorted(Path(folder).glob("*.png"))


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def name_list(names: list[str], limit: int = 8) -> str:
    """Names for a message, comma-separated; a long list is cut after `limit`."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


#: The still-image files an image sequence (a `video` given as a folder) may hold.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def numbered_pngs(folder: str | os.PathLike, suffixes: tuple[str, ...] = (".png",)) -> list[tuple[int, Path]]:
    """A user's PNG (or `suffixes`) sequence as (number, path) ordered by the number in the names, not as text.

    `mask_2.png` comes before `mask_10.png`. The number is the last run of digits in
    the name; every file must share the same text around it (`mask_` ... ``), and the
    numbers must be distinct and consecutive, so a stray or misnamed file cannot
    shift frames silently. Hidden files (`.name.png`, e.g. macOS `._` copies) are
    skipped. Raises ValueError listing the offending names.
    """
    paths = [p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")]
    unnumbered = sorted(p.name for p in paths if not _NUMBERED.match(p.stem))
    if unnumbered:
        raise ValueError(f"file name(s) without a frame number: {name_list(unnumbered)}")
    patterns: dict[tuple[str, str], list[str]] = {}
    numbered = []
    for path in paths:
        prefix, digits, suffix = _NUMBERED.match(path.stem).groups()
        patterns.setdefault((prefix, suffix + path.suffix), []).append(path.name)
        numbered.append((int(digits), path))
    if len(patterns) > 1:
        groups = sorted(patterns.values(), key=len, reverse=True)
        kinds = "; ".join(f"{len(g)} like {sorted(g)[0]}" for g in groups)
        odd = sorted(name for group in groups[1:] for name in group)
        raise ValueError(f"mixed file naming ({kinds}); the odd one(s) out: {name_list(odd)}")
    numbered.sort(key=lambda item: (item[0], item[1].name))
    uses = collections.Counter(number for number, _ in numbered)
    repeated = [path.name for number, path in numbered if uses[number] > 1]
    if repeated:
        raise ValueError(f"ambiguous names, several files carry the same frame number: {name_list(repeated)}")
    missing = [n for n in range(numbered[0][0], numbered[-1][0]) if n not in uses] if numbered else []
    if missing:
        raise ValueError(f"the numbers skip {name_list([str(n) for n in missing])} "
                         f"(between {numbered[0][1].name} and {numbered[-1][1].name})")
    return numbered


def read_frames(folder: str | os.PathLike, mode: str = "rgb") -> np.ndarray:
    """Read a whole frame folder into one uint8 array (T,H,W[,C])."""
    paths = list_frames(folder)
    if not paths:
        raise FileNotFoundError(f"no PNG frames in {folder}")
    return np.stack([read_png(p, mode) for p in paths])


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """np.save, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_json(path: str | os.PathLike, data: Any) -> None:
    """Write pretty JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def ffmpeg_binary() -> str:
    """The ffmpeg executable bundled with imageio-ffmpeg, so no system ffmpeg is needed."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class SourceAudio:
    """The stretch of a source video's sound that a clip's frames cover, so an edit plays in sync with it."""

    path: Path
    start: Fraction  # seconds from the source's first frame
    duration: Fraction  # seconds


def rate_text(fps: float | Fraction | str) -> str:
    """A frame rate as ffmpeg takes it: an exact ratio such as 30000/1001 stays exact."""
    if isinstance(fps, float):  # 14.985014985... is 15000/1001: rates are ratios with small denominators
        fps = Fraction(fps).limit_denominator(1001)
    fps = Fraction(fps)
    return f"{fps.numerator}/{fps.denominator}"


def _audio_args(audio: SourceAudio, codec: str) -> list[str]:
    """ffmpeg arguments that add the source's sound over [start, start + duration) as the second input.

    Silence pads it where the source's sound ends before its last frame does, so
    the sound covers the clip exactly.
    """
    duration = f"{float(audio.duration):.6f}"
    return ["-ss", f"{float(audio.start):.6f}", "-t", duration, "-i", str(audio.path),
            "-map", "0:v", "-map", "1:a", "-c:a", codec, "-af", f"apad=whole_dur={duration}"]


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
            command += _audio_args(audio, "aac") + ["-b:a", "192k"]
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


def sequence_images(folder: Path) -> list[Path]:
    """The images of an image sequence in frame order (see numbered_pngs); ValueError when there are none."""
    images = [path for _, path in numbered_pngs(folder, IMAGE_SUFFIXES)]
    if not images:
        raise ValueError(f"the folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


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
    out, _ = (ffmpeg.input(str(path)).output("pipe:", format="rawvideo", pix_fmt=pix_fmt, **limit)
              .global_args("-loglevel", "error").run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True))
    return np.frombuffer(out, np.uint8).reshape(-1, info["height"], info["width"], channels)


def has_encoder(name: str) -> bool:
    """Whether the bundled ffmpeg was built with the video encoder `name` (e.g. 'prores_ks')."""
    listing = subprocess.run([ffmpeg_binary(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines() if line.startswith(" V"))


def write_alpha_video(path: str | os.PathLike, frames_dir: str | os.PathLike, fps: float | Fraction | str,
                      audio: SourceAudio | None = None) -> None:
    """Encode a folder of RGBA (or RGB) PNGs as ProRes 4444 with alpha in a .mov, atomically.

    ProRes 4444 (prores_ks, yuva444p10le, 16-bit alpha) is what compositing tools
    (Nuke, After Effects, Resolve, Premiere) read with transparency; its alpha
    plane decodes back within one 8-bit step. `fps` is kept exact; with `audio` the
    source's sound for the same stretch goes along as 16-bit PCM, as editors expect in a .mov.
    """
    with atomic_path(path) as tmp:
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                   "-framerate", rate_text(fps), "-i", str(Path(frames_dir) / "%05d.png")]
        if audio is not None:
            command += _audio_args(audio, "pcm_s16le")
        command += ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-alpha_bits", "16",
                    "-vendor", "apl0", "-f", "mov", str(tmp)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed (exit {result.returncode}) writing {path}: {result.stderr.strip()[-500:]}")
