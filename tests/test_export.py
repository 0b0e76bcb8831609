"""The full-resolution export: detail transfer, straight-alpha PNGs, ProRes 4444 alpha, frame selection.

The scene is the synthetic dog clip rendered at twice the working size: its exact
ground-truth layers, downscaled, stand in for a trained sample's layers, and the
rendered clip is the source video.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from omnimatte import export as export_module
from omnimatte.errors import StageError
from omnimatte.export import recompose, run_export, transfer_detail, upsample
from omnimatte.imaging import premultiply, psnr
from omnimatte.io import has_encoder, read_frames, read_video, write_frames, write_video
from omnimatte.synthetic import Clip, render_clip

SOURCE = (128, 80)  # the source video's width and height
WORKING = (64, 40)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return render_clip("dog", n_frames=10, width=SOURCE[0], height=SOURCE[1], seed=0)


def downscale_layer(rgba: np.ndarray) -> np.ndarray:
    """Straight RGBA shrunk to the working size the way a premultiplied image must be."""
    small = cv2.resize(premultiply(rgba), WORKING, interpolation=cv2.INTER_AREA)
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
    image = plate
    for layer in (back_out, front_out):
        image = layer[..., 3:] * layer[..., :3] + (1 - layer[..., 3:]) * image
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


def test_export_is_at_source_size_and_recomposes_the_source(clip: Clip, exported: tuple[Path, dict]):
    root, info = exported
    source = read_video(root / "source.mp4")
    background = read_frames(root / "export" / "background")
    layers = [read_frames(root / "export" / "layers" / name, mode="rgba") for name in clip.object_names]
    assert background.shape == (clip.n_frames, SOURCE[1], SOURCE[0], 3)
    assert layers[0].shape == (clip.n_frames, SOURCE[1], SOURCE[0], 4)
    exported_psnr = psnr(np.stack([recompose(background[t], [layer[t] for layer in layers])
                                   for t in range(clip.n_frames)]), source)
    assert exported_psnr > 45 and abs(exported_psnr - info["recomposition_psnr"]) < 0.1
    # The same layers only upsampled, without the detail transfer, lose the fine texture.
    working = root / "omnimatte"
    naive = []
    for t in range(clip.n_frames):
        plate = cv2.resize(read_frames(working / "background")[t], SOURCE, interpolation=cv2.INTER_CUBIC)
        image = plate.astype(np.float64)
        for name in clip.object_names:
            layer = upsample(premultiply(read_frames(working / "layers" / name / "rgba", mode="rgba")[t]), SOURCE)
            image = layer[..., :3] * 255 + (1 - layer[..., 3:]) * image
        naive.append(image)
    assert exported_psnr > psnr(np.stack(naive), source) + 10
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
