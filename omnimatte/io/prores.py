"""ProRes 4444 with alpha: the layers as movies that compositing tools open with their transparency."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

from omnimatte.io.audio import SourceAudio, audio_args
from omnimatte.io.files import atomic_path
from omnimatte.io.video import ffmpeg_binary, rate_text


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
            command += audio_args(audio, "pcm_s16le")
        command += ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-alpha_bits", "16",
                    "-vendor", "apl0", "-f", "mov", str(tmp)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed (exit {result.returncode}) writing {path}: {result.stderr.strip()[-500:]}")
