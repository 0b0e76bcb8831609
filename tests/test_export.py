"""The full-resolution export: detail transfer, straight-alpha PNGs, ProRes 4444 alpha, frame selection.

The scene is the synthetic dog clip rendered at twice the working size: its exact
ground-truth layers, downscaled, stand in for a trained sample's layers, and the
rendered clip is the source video. The exported layers are checked against the source
with the tests' own compositing (tests/helpers.py `over`), at 2x, at a 4x upscale and
at 1080p.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte import export as export_module
from omnimatte.errors import StageError
from omnimatte.export import run_export, transfer_detail, upsample
from omnimatte.imaging import premultiply, psnr
from omnimatte.io import has_encoder, read_frames, read_video, write_frames, write_video
from omnimatte.synthetic import Clip, render_clip
from tests.helpers import over

SOURCE = (128, 80)  # the source video's width and height
WORKING = (64, 40)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return render_clip("dog", n_frames=10, width=SOURCE[0], height=SOURCE[1], seed=0)


def downscale_layer(rgba: np.ndarray, working: tuple[int, int] = WORKING) -> np.ndarray:
    """Straight RGBA shrunk to the working size the way a premultiplied image must be."""
    small = cv2.resize(premultiply(rgba), working, interpolation=cv2.INTER_AREA)
    alpha = small[..., 3:]
    colour = np.where(alpha > 0, small[..., :3] / np.maximum(alpha, 1e-6), 0)
    return (np.concatenate([colour, alpha], axis=2).clip(0, 1) * 255 + 0.5).astype(np.uint8)


def write_sample(clip: Clip, root: Path, selection: slice = slice(None)) -> dict:
    """The source video, and working-size layers for the frames `selection` picks; returns frames_info."""
    write_video(root / "source.mp4", clip.frames, fps=24)
    picked = range(clip.n_frames)[selection]
    layers = {name: [downscale_layer(clip.layers[name][t]) for t in picked] for name in clip.object_names}
    for name, frames in layers.items():
        write_frames(root / "omnimatte" / "layers" / name / "rgba", frames)
    write_frames(root / "omnimatte" / "background",
                 [cv2.resize(clip.background[t], WORKING, interpolation=cv2.INTER_AREA) for t in picked])
    return {"source_width": SOURCE[0], "source_height": SOURCE[1], "start": picked.start, "end": picked.stop,
            "stride": picked.step, "fps": 24.0 / picked.step, "count": len(picked)}


def test_transfer_detail_composites_back_exactly_and_spares_hidden_layers():
    rng = np.random.default_rng(0)
    frame = rng.random((6, 6, 3)).astype(np.float32) * 0.6 + 0.2
    background = np.full((6, 6, 3), 0.5, np.float32)
    back = np.zeros((6, 6, 4), np.float32)
    back[..., :3], back[..., 3:] = 0.3 * 0.5, 0.5
    front = np.zeros((6, 6, 4), np.float32)
    front[:, :3, :3], front[:, :3, 3:] = 0.8, 1.0  # opaque over the left half
    plate, (back_out, front_out) = transfer_detail(frame, background, [back, front])
    image = over(plate, [back_out, front_out])
    assert np.abs(image - frame).max() < 1e-5
    assert np.allclose(back_out[:, :3, :3], 0.3)  # hidden behind an opaque layer: untouched
    assert np.allclose(front_out[:, :3, :3], frame[:, :3])  # the opaque front layer takes the whole residual
    plate_only, _ = transfer_detail(frame, background, [back, front], background_detail=False)
    assert np.allclose(plate_only, background)


@pytest.fixture(scope="module")
def exported(clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("export")
    info = write_sample(clip, root)
    result = run_export("toy", root / "source.mp4", info, root / "omnimatte", clip.object_names, root / "export")
    return root, result


def assert_recomposes_the_source(export: Path, source: np.ndarray, names: list[str], info: dict) -> np.ndarray:
    """The exported PNGs, composited by the tests' own `over`, give the source frames to within 8-bit rounding
    wherever the export did not have to clip a value; and the PSNR the export reports is theirs. Returns the
    composite.

    Why half a level: the export quantises each alpha before the detail transfer (export.upsample), so only
    the colours are rounded when written, each by at most half a level; a composite is a weighted mean of
    the colours that show at a pixel (the weights, alpha times the transmittance in front, sum to 1), so its
    error is at most half a level too. A colour the detail transfer pushed past 0 or 255 is clipped, and
    only where one of the values that show at a pixel sits at 0 or 255 may the error be larger."""
    background = read_frames(export / "background").astype(np.float64)
    layers = [read_frames(export / "layers" / name, mode="rgba") for name in names]
    assert background.shape == source.shape and all(layer.shape[:3] == source.shape[:3] for layer in layers)
    composite = np.stack([over(background[t], [layer[t] for layer in layers]) for t in range(len(source))])
    error = np.abs(composite - source)
    clipped = (background == 0) | (background == 255)
    for layer in layers:
        clipped |= (layer[..., 3:] > 0) & ((layer[..., :3] == 0) | (layer[..., :3] == 255))
    assert error[~clipped].max() <= 0.5 + 1e-6, error[~clipped].max()
    assert psnr(composite, source) == pytest.approx(info["recomposition_psnr"], abs=0.01)
    return composite


def test_export_is_at_source_size_and_recomposes_the_source(clip: Clip, exported: tuple[Path, dict]):
    root, info = exported
    source = read_video(root / "source.mp4")
    assert source.shape == (clip.n_frames, SOURCE[1], SOURCE[0], 3)
    composite = assert_recomposes_the_source(root / "export", source, clip.object_names, info)
    layers = [read_frames(root / "export" / "layers" / name, mode="rgba") for name in clip.object_names]
    # The same layers only upsampled, without the detail transfer, lose the fine texture.
    working = root / "omnimatte"
    naive = []
    for t in range(clip.n_frames):
        plate = cv2.resize(read_frames(working / "background")[t], SOURCE, interpolation=cv2.INTER_CUBIC)
        upsampled = []
        for name in clip.object_names:
            layer = upsample(premultiply(read_frames(working / "layers" / name / "rgba", mode="rgba")[t]), SOURCE)
            alpha = layer[..., 3:]
            upsampled.append(np.concatenate([np.where(alpha > 0, layer[..., :3] / np.maximum(alpha, 1e-6), 0) * 255,
                                             alpha], axis=2))  # straight, colour in levels
        naive.append(over(plate, upsampled))
    assert psnr(composite, source) > psnr(np.stack(naive), source) + 10
    # The detail lands in the layer that owns it: the dog layer is close to its ground truth in colour.
    dog = layers[0].astype(np.float64)
    truth = clip.layers["dog"].astype(np.float64)
    solid = (truth[..., 3] > 250) & (dog[..., 3] > 250)
    assert np.abs(dog[..., :3][solid] - truth[..., :3][solid]).mean() < 6
    # and the background plate gets its texture back: closer to the clean plate than the upsampled one
    plate = read_frames(root / "export" / "background")
    upsampled = np.stack([cv2.resize(frame, SOURCE, interpolation=cv2.INTER_CUBIC)
                          for frame in read_frames(working / "background")])
    assert psnr(plate, clip.background) > psnr(upsampled, clip.background) + 0.5


def test_export_recomposes_a_source_four_times_the_working_size(tmp_path: Path):
    """The dog clip rendered at 256x160 over layers made at 64x40."""
    source, working = (256, 160), (64, 40)
    clip = render_clip("dog", n_frames=8, width=source[0], height=source[1], seed=0)
    write_video(tmp_path / "source.mp4", clip.frames, fps=24)
    for name in clip.object_names:
        write_frames(tmp_path / "omnimatte" / "layers" / name / "rgba",
                     [downscale_layer(layer, working) for layer in clip.layers[name]])
    write_frames(tmp_path / "omnimatte" / "background",
                 [cv2.resize(plate, working, interpolation=cv2.INTER_AREA) for plate in clip.background])
    info = {"source_width": source[0], "source_height": source[1], "start": 0, "end": None, "stride": 1,
            "fps": 24.0, "count": clip.n_frames}
    result = run_export("toy", tmp_path / "source.mp4", info, tmp_path / "omnimatte", clip.object_names,
                        tmp_path / "export")
    assert (result["width"], result["height"], result["working_width"]) == (256, 160, 64)
    assert_recomposes_the_source(tmp_path / "export", read_video(tmp_path / "source.mp4"), clip.object_names, result)


def test_export_recomposes_a_1080p_source(tmp_path: Path):
    """Two frames of 1920x1080 over layers made at 480x270 (the dog clip's own, at that size): the source is the
    clip's frames enlarged, with a fine grain no working-size layer holds, as a camera's detail."""
    working, source = (480, 270), (1920, 1080)
    clip = render_clip("dog", n_frames=8, width=480, height=272, seed=0)  # heights come in steps of 16
    picked = slice(0, 2)
    grain = np.random.default_rng(0).normal(0.0, 6.0, (source[1], source[0], 3))
    frames = [np.clip(cv2.resize(frame[:working[1]], source, interpolation=cv2.INTER_CUBIC) + grain, 0, 255)
              .astype(np.uint8) for frame in clip.frames[picked]]
    write_video(tmp_path / "source.mp4", frames, fps=24)
    for name in clip.object_names:
        write_frames(tmp_path / "omnimatte" / "layers" / name / "rgba",
                     [layer[:working[1]] for layer in clip.layers[name][picked]])
    write_frames(tmp_path / "omnimatte" / "background", [plate[:working[1]] for plate in clip.background[picked]])
    info = {"source_width": source[0], "source_height": source[1], "start": 0, "end": None, "stride": 1,
            "fps": 24.0, "count": 2}
    result = run_export("toy", tmp_path / "source.mp4", info, tmp_path / "omnimatte", clip.object_names,
                        tmp_path / "export")
    assert (result["width"], result["height"], result["count"]) == (1920, 1080, 2)
    decoded = read_video(tmp_path / "source.mp4")
    composite = assert_recomposes_the_source(tmp_path / "export", decoded, clip.object_names, result)
    assert psnr(composite, decoded) > psnr(np.stack([cv2.resize(frame[:working[1]], source, interpolation=cv2.INTER_CUBIC)
                                                     for frame in clip.frames[picked]]), decoded) + 10  # the grain


def test_alpha_video_decodes_back_to_the_layer_alpha(clip: Clip, exported: tuple[Path, dict]):
    root, _ = exported
    for name in clip.object_names:
        pngs = read_frames(root / "export" / "layers" / name, mode="rgba").astype(int)
        movie = read_video(root / "export" / "layers" / f"{name}.mov", mode="rgba").astype(int)
        assert movie.shape == pngs.shape
        assert 0 < pngs[..., 3].mean() < 250  # a real matte, not all clear or all opaque
        assert np.abs(movie[..., 3] - pngs[..., 3]).max() <= 1
        visible = pngs[..., 3] > 0
        assert np.abs(movie[..., :3] - pngs[..., :3])[visible].mean() < 2
    plate = read_video(root / "export" / "background.mov", mode="rgba")
    assert (plate[..., 3] == 255).all()


def test_export_follows_the_frame_selection(clip: Clip, tmp_path: Path):
    info = write_sample(clip, tmp_path, slice(1, None, 3))  # frames 1, 4, 7 of the source
    result = run_export("toy", tmp_path / "source.mp4", info, tmp_path / "omnimatte", clip.object_names,
                        tmp_path / "export")
    assert result["count"] == 3 and result["fps"] == 8.0
    assert result["recomposition_psnr"] > 45  # it recomposes exactly these source frames, so they were picked
    assert len(read_video(tmp_path / "export" / "layers" / "dog.mov", mode="rgba")) == 3


def test_background_detail_off_keeps_the_plate_as_made(clip: Clip, tmp_path: Path):
    info = write_sample(clip, tmp_path, slice(0, 4))
    result = run_export("toy", tmp_path / "source.mp4", info, tmp_path / "omnimatte", clip.object_names,
                        tmp_path / "export", background_detail=False)
    plate = read_frames(tmp_path / "export" / "background")
    upsampled = np.stack([cv2.resize(frame, SOURCE, interpolation=cv2.INTER_CUBIC)
                          for frame in read_frames(tmp_path / "omnimatte" / "background")])
    assert np.abs(plate.astype(int) - upsampled).max() <= 1
    assert not result["background_detail"] and result["recomposition_psnr"] < 40  # the plate's lost texture stays lost


def test_export_stops_on_a_source_that_does_not_match(clip: Clip, tmp_path: Path):
    info = write_sample(clip, tmp_path, slice(0, None, 2))
    info["stride"] = 1  # the layers were made from every other frame, the source now gives all of them
    with pytest.raises(StageError, match="more frames than the 5 layer frames"):
        run_export("toy", tmp_path / "source.mp4", info, tmp_path / "omnimatte", clip.object_names, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(StageError, match="does not exist"):
        run_export("toy", tmp_path / "moved.mp4", info, tmp_path / "omnimatte", clip.object_names, tmp_path / "export")


def test_export_needs_the_prores_encoder(clip: Clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert has_encoder("prores_ks") and not has_encoder("no_such_encoder")
    info = write_sample(clip, tmp_path, slice(0, 2))
    monkeypatch.setattr(export_module, "has_encoder", lambda name: False)
    with pytest.raises(StageError, match="no prores_ks encoder"):
        run_export("toy", tmp_path / "source.mp4", info, tmp_path / "omnimatte", clip.object_names, tmp_path / "export")
