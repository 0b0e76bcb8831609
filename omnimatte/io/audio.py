"""The source's sound in the videos made from a clip: the stretch its frames cover, as ffmpeg arguments."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


@dataclass(frozen=True)
class SourceAudio:
    """The stretch of a source video's sound that a clip's frames cover, so an edit plays in sync with it."""

    path: Path
    start: Fraction  # seconds from the source's first frame
    duration: Fraction  # seconds


def audio_args(audio: SourceAudio, codec: str) -> list[str]:
    """ffmpeg arguments that add the source's sound over [start, start + duration) as the second input.

    Silence pads it where the source's sound ends before its last frame does, so
    the sound covers the clip exactly.
    """
    duration = f"{float(audio.duration):.6f}"
    return ["-ss", f"{float(audio.start):.6f}", "-t", duration, "-i", str(audio.path),
            "-map", "0:v", "-map", "1:a", "-c:a", codec, "-af", f"apad=whole_dur={duration}"]
