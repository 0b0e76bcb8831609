"""Luma and chroma (imaging/luma_chroma.py): whether a clip's chroma is interpolated from half resolution is read
from its frames, whatever container or file they came in."""

import cv2
import numpy as np

from omnimatte.imaging.luma_chroma import RGB_TO_YCBCR, chroma_at_half_resolution
from omnimatte.io import read_video, write_video
from tests.helpers import colourful_ground


def clip(frames: int = 4, height: int = 128, width: int = 160) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of a colourful ground with detail down to the pixel, shifted a few pixels a frame."""
    rng = np.random.default_rng(0)
    fine = cv2.GaussianBlur(rng.integers(0, 256, (height, width + 4 * frames, 3)).astype(np.float32), (0, 0), 1.0)
    ground = ((fine - fine.mean()) * 3 + colourful_ground(height, width + 4 * frames)).clip(0, 255).astype(np.uint8)
    return np.stack([ground[:, 4 * t:4 * t + width] for t in range(frames)])


def chroma_halved(frames: np.ndarray) -> np.ndarray:
    """Frames with their chroma averaged over 2x2 pixels and interpolated back, as a 4:2:0 decoder gives them."""
    out = []
    for frame in frames.astype(np.float32):
        planes = frame @ RGB_TO_YCBCR.T
        height, width = planes.shape[:2]
        for c in (1, 2):
            half = cv2.resize(planes[..., c], (width // 2, height // 2), interpolation=cv2.INTER_AREA)
            planes[..., c] = cv2.resize(half, (width, height), interpolation=cv2.INTER_LINEAR)
        out.append(np.clip(planes @ np.linalg.inv(RGB_TO_YCBCR).T, 0, 255).round().astype(np.uint8))
    return np.stack(out)


def test_lossless_frames_have_their_chroma_at_full_resolution_and_4_2_0_frames_do_not():
    frames = clip()
    assert not chroma_at_half_resolution(frames)
    assert chroma_at_half_resolution(chroma_halved(frames))


def test_frames_scaled_down_from_a_4_2_0_source_have_their_chroma_at_full_resolution():
    """Halving a 4:2:0 clip's size brings its chroma to the frames' own resolution."""
    halved = chroma_halved(clip(height=256, width=320))
    smaller = np.stack([cv2.resize(f, (160, 128), interpolation=cv2.INTER_AREA) for f in halved])
    assert not chroma_at_half_resolution(smaller)


def test_an_h264_round_trip_at_the_clips_size_halves_its_chroma(tmp_path):
    frames = clip()
    write_video(tmp_path / "clip.mp4", frames, 24, crf=18)
    decoded = read_video(tmp_path / "clip.mp4")
    assert decoded.shape == frames.shape
    assert chroma_at_half_resolution(decoded)
