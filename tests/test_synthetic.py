"""Tests of the synthetic clip generator: exact ground truth, shadow outside the mask,
a panning camera, determinism, the files it writes and argument checks."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
import pytest

from omnimatte.io import ffmpeg_binary, load_json, read_frames
from omnimatte.logs import get_logger
from omnimatte.synthetic import PRESETS, Clip, make_demo, render_clip, write_clip

TINY = {"n_frames": 10, "width": 96, "height": 64}


@pytest.fixture(scope="module")
def clip() -> Clip:
    """The default demo clip (48 frames, 448x256)."""
    return render_clip("dog")


@pytest.fixture(scope="module")
def tiny() -> Clip:
    return render_clip("dog", **TINY)


def composite(clip: Clip) -> np.ndarray:
    """The stored layers over the stored background, back to front, in float."""
    out = clip.background.astype(np.float64)
    for name in clip.object_names:
        layer = clip.layers[name].astype(np.float64)
        a = layer[..., 3:] / 255.0
        out = a * layer[..., :3] + (1.0 - a) * out
    return out


def test_presets_and_shapes(clip: Clip) -> None:
    assert "dog" in PRESETS
    t, h, w = 48, 256, 448
    assert clip.frames.shape == (t, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.background.shape == (t, h, w, 3)
    assert clip.object_names == ["dog"]
    assert clip.layers["dog"].shape == (t, h, w, 4) and clip.layers["dog"].dtype == np.uint8
    assert clip.effects["dog"].shape == (t, h, w) and clip.masks["dog"].shape == (t, h, w)
    assert set(np.unique(clip.masks["dog"])) <= {0, 255}
    assert clip.fps == 24.0
    assert clip.camera.shape == (t, 3, 3)


@pytest.mark.parametrize("which", ["clip", "tiny"])
def test_composite_identity(which: str, request: pytest.FixtureRequest) -> None:
    c: Clip = request.getfixturevalue(which)
    assert np.abs(composite(c) - c.frames).max() <= 2.0
    # The object really is in the frames: they differ from the clean plate.
    assert np.abs(c.frames.astype(int) - c.background).max() > 50


@pytest.mark.parametrize("which", ["clip", "tiny"])
def test_shadow_is_sizable_and_outside_the_mask(which: str, request: pytest.FixtureRequest) -> None:
    c: Clip = request.getfixturevalue(which)
    effect = c.effects["dog"].astype(np.float64) / 255.0
    mask = c.masks["dog"] > 0
    assert effect.max() > 0.4  # darkens the ground by ~half at its core
    assert (effect * ~mask).sum() / effect.sum() > 0.7
    # Comparable in area to the dog itself.
    alpha = c.layers["dog"][..., 3].astype(np.float64) / 255.0
    dog = (alpha - effect).clip(0) > 0.5
    assert (effect > 0.1).sum() > 0.5 * dog.sum()
    # The shadow darkens the frames where it lies.
    core = effect > 0.3
    assert c.frames[core].mean() < 0.8 * c.background[core].mean()


@pytest.mark.parametrize("which", ["clip", "tiny"])
def test_mask_covers_the_dog(which: str, request: pytest.FixtureRequest) -> None:
    c: Clip = request.getfixturevalue(which)
    alpha = c.layers["dog"][..., 3].astype(np.float64)
    own = np.where(c.effects["dog"] == 0, alpha, 0.0)  # the layer's alpha that is not shadow
    mask = c.masks["dog"] > 0
    assert own.sum() > 0
    assert (own * mask).sum() / own.sum() > 0.95
    # A coarse mask, not a full-frame one.
    assert mask.mean() < 0.25


def test_camera_pans(clip: Clip) -> None:
    bg = clip.background
    assert np.abs(bg[0].astype(int) - bg[-1]).mean() > 10
    gray = [cv2.cvtColor(bg[t], cv2.COLOR_RGB2GRAY).astype(np.float64) for t in (0, 4)]
    window = cv2.createHanningWindow(gray[0].shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(gray[0], gray[1], window)
    # Where the world point at frame 0's centre appears in frame 4, by the true camera.
    centre = np.array([(clip.width - 1) / 2, (clip.height - 1) / 2, 1.0])
    moved = clip.camera[4] @ np.linalg.inv(clip.camera[0]) @ centre
    expected = moved[:2] - centre[:2]
    assert abs(expected[0]) > 4  # a real pan
    assert np.hypot(dx - expected[0], dy - expected[1]) < 1.0


def test_background_has_features(clip: Clip) -> None:
    orb = cv2.ORB_create(nfeatures=2000)
    keypoints = orb.detect(cv2.cvtColor(clip.background[0], cv2.COLOR_RGB2GRAY), None)
    assert len(keypoints) > 500


def test_deterministic(tiny: Clip) -> None:
    again = render_clip("dog", **TINY)
    assert np.array_equal(again.frames, tiny.frames)
    assert np.array_equal(again.layers["dog"], tiny.layers["dog"])
    assert np.array_equal(again.masks["dog"], tiny.masks["dog"])
    other = render_clip("dog", seed=1, **TINY)
    assert not np.array_equal(other.frames, tiny.frames)


def decode(path: Path) -> bytes:
    out, _ = (
        ffmpeg.input(str(path))
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-loglevel", "error")
        .run(cmd=ffmpeg_binary(), capture_stdout=True, capture_stderr=True)
    )
    return out


def test_write_clip(tiny: Clip, tmp_path: Path) -> None:
    out = tmp_path / "dog"
    write_clip(tiny, out)
    t, h, w = tiny.n_frames, tiny.height, tiny.width
    raw = decode(out / "video.mp4")
    assert len(raw) == t * h * w * 3
    video = np.frombuffer(raw, np.uint8).reshape(t, h, w, 3)
    assert np.abs(video.astype(int) - tiny.frames).mean() < 6  # lossy, but the same clip

    folders = ["masks/dog", "gt/frames", "gt/background", "gt/layers/dog/rgba", "gt/effects/dog"]
    for folder in folders:
        names = sorted(p.name for p in (out / folder).iterdir())
        assert names == [f"{i:05d}.png" for i in range(t)], folder
    assert np.array_equal(read_frames(out / "masks/dog", "gray"), tiny.masks["dog"])
    assert np.array_equal(read_frames(out / "gt/background"), tiny.background)
    assert np.array_equal(read_frames(out / "gt/layers/dog/rgba", "rgba"), tiny.layers["dog"])
    assert np.array_equal(read_frames(out / "gt/effects/dog", "gray"), tiny.effects["dog"])

    info = load_json(out / "gt/info.json")
    assert {k: info[k] for k in ("preset", "n_frames", "width", "height", "fps", "seed", "objects")} == {
        "preset": "dog", "n_frames": t, "width": w, "height": h, "fps": 24.0, "seed": 0, "objects": ["dog"],
    }


def test_make_demo_logs(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = get_logger("demo")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        make_demo(tmp_path / "demo", n_frames=8, width=64, height=64, seed=3)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert (tmp_path / "demo/video.mp4").stat().st_size > 0
    assert load_json(tmp_path / "demo/gt/info.json")["seed"] == 3
    assert any("video.mp4" in r.getMessage() and "gt/" in r.getMessage() for r in records)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"preset": "cat"},
        {"width": 100},
        {"height": 60},
        {"width": 32},
        {"n_frames": 5},
        {"n_frames": 8.5},
        {"seed": -1},
        {"width": True},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        render_clip(**{**TINY, **kwargs})


# ---------------------------------------------------------------------- the benchmark presets

SMALL = {"n_frames": 12, "width": 192, "height": 112}


@pytest.fixture(scope="module")
def presets() -> dict[str, Clip]:
    """Every preset at a small size."""
    return {name: render_clip(name, **SMALL) for name in PRESETS}


def test_there_are_six_presets_with_one_to_three_objects(presets: dict[str, Clip]) -> None:
    assert len(PRESETS) >= 6
    counts = {name: len(c.object_names) for name, c in presets.items()}
    assert set(counts.values()) == {1, 2, 3}, counts
    assert all(PRESETS[name].description for name in PRESETS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_ground_truth_is_exact(name: str, presets: dict[str, Clip]) -> None:
    c = presets[name]
    assert np.abs(composite(c) - c.frames).max() <= 0.5 + 1e-6  # only the final rounding
    for layer in c.layers.values():
        assert (layer[layer[..., 3] == 0] == 0).all()  # no colour where there is no alpha


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_effects_lie_outside_the_coarse_masks(name: str, presets: dict[str, Clip]) -> None:
    c = presets[name]
    for obj in c.object_names:
        effect = c.effects[obj].astype(np.float64)
        assert effect.max() > 0.3 * 255, obj  # a real effect, not a faint one
        outside = (effect * (c.masks[obj] == 0)).sum() / effect.sum()
        assert outside > 0.85, (obj, outside)
        # The effect changes the frames where it lies, beyond the object's mask.
        strong = (effect > 0.25 * 255) & (c.masks[obj] == 0)
        change = np.abs(c.frames.astype(int) - c.background)[strong].mean()
        assert change > 8, (obj, change)
        assert all(c.masks[obj][t].any() for t in range(c.n_frames)), obj


def test_masks_cover_what_shows_of_each_object() -> None:
    """A mask holds the visible part of its object, as a segmenter would see it: deep
    inside the part that an opaque object in front hides, it does not reach."""
    c = render_clip("crossing", 24, 224, 128)
    far, near = (c.layers[n][..., 3].astype(np.float64) / 255 for n in c.object_names)
    far_own = np.where(c.effects["far_walker"] == 0, far, 0.0)
    near_own = np.where(c.effects["near_walker"] == 0, near, 0.0)
    hidden = (far_own > 0.5) & (near_own > 0.99)
    shown = far_own * (1 - near)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))  # wider than the masks' dilation
    near_shown = np.stack([cv2.dilate((s > 0.05).astype(np.uint8), kernel) for s in shown]).astype(bool)
    deep = hidden & ~near_shown
    assert deep.sum() > 30  # the near walker really hides part of the far one
    assert not (c.masks["far_walker"] > 0)[deep].any()
    assert (shown * (c.masks["far_walker"] > 0)).sum() / shown.sum() > 0.95


@pytest.mark.parametrize("name", ["crossing", "trio"])
def test_objects_occlude_each_other(name: str, presets: dict[str, Clip]) -> None:
    c = presets[name]
    own = {n: np.where(c.effects[n] == 0, c.layers[n][..., 3], 0) > 128 for n in c.object_names}
    pairs = [(a, b) for i, a in enumerate(c.object_names) for b in c.object_names[i + 1:] if (own[a] & own[b]).any()]
    assert len(pairs) >= (1 if len(c.object_names) == 2 else 2), pairs


def test_camera_motions_differ(presets: dict[str, Clip]) -> None:
    def zoom(m: np.ndarray) -> float:
        return float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))

    static = presets["bounce"].camera
    assert np.allclose(static, static[0])
    assert np.abs(presets["bounce"].background[0].astype(int) - presets["bounce"].background[-1]).max() == 0
    reflection = presets["reflection"].camera
    assert zoom(reflection[-1]) > 1.25 * zoom(reflection[0])  # zooms in
    trio = presets["trio"].camera
    assert zoom(trio[-1]) < 0.95 * zoom(trio[0])  # zooms out
    rolls = [np.degrees(np.arctan2(m[1, 0], m[0, 0])) for m in presets["crossing"].camera]
    assert rolls[0] < -2 and rolls[-1] > 2  # rolls through a few degrees
    dust = presets["dust"].camera
    assert (dust[0][0, 2] - dust[-1][0, 2]) > 0.8 * SMALL["width"]  # a long pan


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_deterministic(name: str, presets: dict[str, Clip]) -> None:
    again = render_clip(name, **SMALL)
    assert np.array_equal(again.frames, presets[name].frames)
    assert not np.array_equal(render_clip(name, seed=1, **SMALL).frames, presets[name].frames)
