"""Tests of the coarse-mask stage: propagation, SAM loading, user mask folders, bad input."""

from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from omnimatte import cli
from omnimatte.config_check import MASKS_OR_PROMPT
from omnimatte.errors import StageError
from omnimatte.io import read_frames, write_frames, write_png
from omnimatte.masks import (
    Prompt,
    download_sam_weights,
    interior_points,
    load_sam,
    mask_iou,
    propagate_masks,
    run_masks,
    warp_mask,
)
from tests.helpers import build_sam_vit_tiny

SIDE = 16
VELOCITY = (3, 2)  # px per frame, x and y


def square_mask(t: int, height: int = 64, width: int = 96, origin: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    x, y = origin[0] + VELOCITY[0] * t, origin[1] + VELOCITY[1] * t
    mask[y:y + SIDE, x:x + SIDE] = True
    return mask


def moving_square_video(count: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A red-textured square moving over a green texture, with its exact forward and backward flows."""
    rng = np.random.default_rng(0)
    height, width = 64, 96
    background = np.stack([rng.integers(0, 80, (height, width)), rng.integers(100, 200, (height, width)),
                           rng.integers(0, 255, (height, width))], axis=-1).astype(np.uint8)
    frames, truth = [], []
    for t in range(count):
        mask = square_mask(t)
        frame = background.copy()
        frame[mask] = np.stack([rng.integers(160, 255, SIDE * SIDE), rng.integers(0, 80, SIDE * SIDE),
                                rng.integers(0, 255, SIDE * SIDE)], axis=-1)
        frames.append(frame)
        truth.append(mask)
    forward = np.zeros((count - 1, height, width, 2), np.float32)
    backward = np.zeros((count - 1, height, width, 2), np.float32)
    for t in range(count - 1):
        forward[t][truth[t]] = VELOCITY
        backward[t][truth[t + 1]] = (-VELOCITY[0], -VELOCITY[1])
    return np.stack(frames), np.stack(truth), forward, backward


class RedInBox:
    """Stand-in for SAM: the reddish pixels inside the box. Records the boxes it was given."""

    def __init__(self) -> None:
        self.boxes: list[np.ndarray] = []

    def __call__(self, frame, box, points, labels):
        self.boxes.append(np.asarray(box))
        x0, y0, x1, y1 = np.round(box).astype(int)
        mask = np.zeros(frame.shape[:2], bool)
        crop = frame[y0:y1 + 1, x0:x1 + 1].astype(int)
        mask[y0:y1 + 1, x0:x1 + 1] = crop[..., 0] > crop[..., 1]
        return mask


def frames_info(count: int, width: int, height: int, scale: int = 1, **extra) -> dict:
    info = {"source_width": width * scale, "source_height": height * scale, "width": width, "height": height,
            "count": count, "start": 0, "stride": 1, "source_count": count}
    info.update(extra)
    return info


# --------------------------------------------------------------------------- 1. propagation


def test_warp_mask_moves_along_the_flow():
    mask = square_mask(0)
    flow = np.zeros(mask.shape + (2,), np.float32)
    flow[mask] = VELOCITY
    assert mask_iou(warp_mask(mask, flow), square_mask(1)) == 1.0
    half = np.zeros_like(flow)
    half[mask] = (1.5, 0.0)  # sub-pixel motion keeps the area, no holes
    assert abs(int(warp_mask(mask, half).sum()) - SIDE * SIDE) <= SIDE


def test_propagation_follows_a_moving_square_both_ways():
    frames, truth, forward, backward = moving_square_video()
    key = 6
    ys, xs = np.nonzero(truth[key])
    prompt = Prompt(frame=key, box=np.array([xs.min() - 2, ys.min() - 2, xs.max() + 2, ys.max() + 2], np.float32),
                    points=None, labels=None)
    segmenter = RedInBox()
    masks, kept = propagate_masks(frames, prompt, segmenter, forward, backward)
    ious = [mask_iou(m, t) for m, t in zip(masks, truth)]
    assert min(ious) > 0.9, ious
    assert kept == []
    # The prompts SAM gets on the other frames are centred on where the square really
    # is, which only holds if each direction used its own flow.
    order = list(range(key + 1, len(frames))) + list(range(key - 1, -1, -1))
    for t, box in zip(order, segmenter.boxes[1:]):
        ys, xs = np.nonzero(truth[t])
        assert abs((box[0] + box[2]) / 2 - xs.mean()) <= 1 and abs((box[1] + box[3]) / 2 - ys.mean()) <= 1, t


def test_propagation_keeps_the_warped_mask_when_the_segmenter_finds_nothing():
    frames, truth, forward, backward = moving_square_video(count=5)
    calls = []

    def first_then_nothing(frame, box, points, labels):
        calls.append(points)
        return truth[2] if len(calls) == 1 else np.zeros(frame.shape[:2], bool)

    masks, kept = propagate_masks(frames, Prompt(2, np.array([0, 0, 95, 63], np.float32), None, None),
                                  first_then_nothing, forward, backward)
    assert kept == [0, 1, 3, 4]
    assert min(mask_iou(m, t) for m, t in zip(masks, truth)) == 1.0
    assert all(len(p) >= 1 and all(truth[2].shape[1] > x >= 0 for x, _ in p) for p in calls[1:])


def test_interior_points_lie_deep_inside():
    mask = square_mask(0)
    points = interior_points(mask)
    assert 1 <= len(points) <= 3
    for x, y in points.astype(int):
        assert mask[y, x] and 12 <= x <= 22 and 12 <= y <= 22


# --------------------------------------------------------------------------- 2. SAM through the real loading path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_sam) -> Path:
    torch.manual_seed(0)
    model = build_sam_vit_tiny()
    path = tmp_path_factory.mktemp("sam") / "sam_vit_tiny.pth"
    torch.save(model.state_dict(), path)
    return path


def test_load_sam_gives_the_saved_parameters(tiny_checkpoint):
    saved = torch.load(tiny_checkpoint, weights_only=True)
    model = load_sam("vit_tiny", tiny_checkpoint)
    loaded = model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert not model.training


def test_load_sam_refuses_a_missing_checkpoint(tmp_path, tiny_sam):
    with pytest.raises(FileNotFoundError):
        load_sam("vit_tiny", tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):
        load_sam("vit_tiny", None)


def test_run_masks_with_sam_end_to_end(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    write_frames(tmp_path / "frames", frames)
    write_frames(tmp_path / "user", [square_mask(t, 48, 64, (4, 4)).astype(np.uint8) * 255 for t in range(3)])
    flow = np.zeros((2, 48, 64, 2), np.float32)
    np.save(tmp_path / "forward.npy", flow)
    np.save(tmp_path / "backward.npy", flow)
    objects = {"ball": {"masks": str(tmp_path / "user")}, "dog": {"box": [20, 16, 100, 80], "frame": 1}}
    run_masks("toy", tmp_path / "frames", objects, tmp_path / "masks", tmp_path / "preview.mp4",
              frames_info(3, 64, 48, scale=2), tmp_path / "forward.npy", tmp_path / "backward.npy",
              sam_model_type="vit_tiny", sam_checkpoint=tiny_checkpoint, device="cpu", fps=10)
    for name in objects:
        masks = read_frames(tmp_path / "masks" / name, "gray")
        assert masks.shape == (3, 48, 64)
        assert set(np.unique(masks)) <= {0, 255}
    assert sorted(p.name for p in (tmp_path / "masks" / "dog").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert np.array_equal(read_frames(tmp_path / "masks" / "ball", "gray") > 127,
                          np.stack([square_mask(t, 48, 64, (4, 4)) for t in range(3)]))
    video = cv2.VideoCapture(str(tmp_path / "preview.mp4"))
    decoded = 0
    while video.read()[0]:
        decoded += 1
    assert decoded == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_broken_or_mismatched_checkpoint_is_a_stage_error(tmp_path, tiny_checkpoint):
    write_frames(tmp_path / "frames", np.zeros((2, 32, 32, 3), np.uint8))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    state = torch.load(tiny_checkpoint, weights_only=True)
    state.pop("mask_decoder.iou_token.weight")
    mismatched = tmp_path / "mismatched.pth"
    torch.save(state, mismatched)
    for checkpoint in (truncated, mismatched):
        with pytest.raises(StageError) as err:
            run_masks("toy", tmp_path / "frames", {"cat": {"box": [1, 1, 10, 10]}}, tmp_path / "masks",
                      tmp_path / "preview.mp4", frames_info(2, 32, 32), sam_model_type="vit_tiny",
                      sam_checkpoint=checkpoint, device="cpu")
        assert str(checkpoint) in str(err.value) and "vit_tiny" in str(err.value)


# --------------------------------------------------------------------------- 3. missing weights


def test_missing_checkpoint_says_how_to_get_weights_or_skip_sam(tmp_path):
    write_frames(tmp_path / "frames", np.zeros((2, 32, 32, 3), np.uint8))
    checkpoint = tmp_path / "weights" / "sam_vit_b.pth"
    url = "https://example.org/sam_vit_b.pth"
    for given in (checkpoint, None):
        with pytest.raises(StageError) as err:
            run_masks("toy", tmp_path / "frames", {"cat": {"box": [1, 1, 10, 10]}}, tmp_path / "masks",
                      tmp_path / "preview.mp4", frames_info(2, 32, 32), sam_checkpoint=given, sam_url=url)
        message = str(err.value)
        assert url in message and "masks" in message and "'cat'" in message and "snakemake" in message
        if given is not None:
            assert str(checkpoint) in message and f"curl -L -o {checkpoint} {url}" in message
    assert not (tmp_path / "masks").exists()


def test_download_offline_names_url_and_destination(tmp_path):
    with socket.socket() as s:  # a local port with nobody listening: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/sam.pth"
    with pytest.raises(StageError) as err:  # expected offline: the CLI logs it in one line, without a traceback
        download_sam_weights(url, tmp_path / "sam.pth")
    assert url in str(err.value) and str(tmp_path / "sam.pth") in str(err.value) and "by hand" in err.value.fix
    assert str(err.value).startswith("[masks] could not download") and list(tmp_path.iterdir()) == []
    log_file = tmp_path.parent / "download.log"
    assert cli.main(["download-sam", "--url", url, "--dest", str(tmp_path / "sam.pth"), "--log", str(log_file)]) == 1
    assert "Traceback" not in log_file.read_text() and "by hand" in log_file.read_text()


def test_download_writes_the_file(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights" * 1000)
    download_sam_weights(source.as_uri(), tmp_path / "out" / "sam.pth")
    assert (tmp_path / "out" / "sam.pth").read_bytes() == source.read_bytes()


# --------------------------------------------------------------------------- 4. user mask folders


def _run_user_masks(tmp_path: Path, info: dict, count: int = 4) -> None:
    write_frames(tmp_path / "frames", np.zeros((count, 48, 64, 3), np.uint8))
    run_masks("toy", tmp_path / "frames", {"person": {"masks": str(tmp_path / "user")}}, tmp_path / "masks",
              tmp_path / "preview.mp4", info)


def test_user_masks_pass_through(tmp_path):
    masks = [square_mask(t, 48, 64, (2, 2)) for t in range(4)]
    write_frames(tmp_path / "user", [m.astype(np.uint8) * 200 for m in masks])  # any 8-bit: >127 is object
    _run_user_masks(tmp_path, frames_info(4, 64, 48))
    assert np.array_equal(read_frames(tmp_path / "masks" / "person", "gray"), np.stack(masks).astype(np.uint8) * 255)
    assert (tmp_path / "preview.mp4").stat().st_size > 0


def test_user_masks_at_source_size_and_count_are_resized_and_selected(tmp_path):
    # 9 source frames at 2x size; frames 1, 3, 5, 7 were extracted (start 1, stride 2).
    source = []
    for i in range(9):
        mask = np.zeros((96, 128, 3), np.uint8)
        mask[10:30, 8 * i:8 * i + 20] = (255, 0, 0)  # a red RGB mask still counts
        source.append(mask)
    write_frames(tmp_path / "user", source)
    _run_user_masks(tmp_path, frames_info(4, 64, 48, scale=2, source_count=9, start=1, stride=2))
    masks = read_frames(tmp_path / "masks" / "person", "gray") > 127
    for t, i in enumerate([1, 3, 5, 7]):
        expected = cv2.resize(source[i][..., 0], (64, 48), interpolation=cv2.INTER_NEAREST) > 127
        assert np.array_equal(masks[t], expected)


def test_user_masks_wrong_count(tmp_path):
    write_frames(tmp_path / "user", np.zeros((3, 48, 64), np.uint8))
    with pytest.raises(StageError) as err:
        _run_user_masks(tmp_path, frames_info(4, 64, 48, scale=2, source_count=20))
    message = str(err.value)
    assert "[masks]" in message and "'toy'" in message and "'person'" in message
    assert "holds 3" in message and "expected 4" in message and "20" in message and "fix:" in message
    assert not (tmp_path / "masks").exists()


def test_user_masks_wrong_size(tmp_path):
    write_frames(tmp_path / "user", np.zeros((4, 50, 64), np.uint8))
    with pytest.raises(StageError) as err:
        _run_user_masks(tmp_path, frames_info(4, 64, 48, scale=2))
    assert "64x50" in str(err.value) and "64x48" in str(err.value) and "128x96" in str(err.value)


def test_user_masks_unreadable_file(tmp_path):
    write_frames(tmp_path / "user", np.zeros((4, 48, 64), np.uint8))
    (tmp_path / "user" / "00002.png").write_bytes(b"not a png")
    with pytest.raises(StageError, match="00002.png"):
        _run_user_masks(tmp_path, frames_info(4, 64, 48))


def _numbered_masks(folder: Path, names: list[str]) -> list[np.ndarray]:
    """One mask per name, each with its own column band, so the order can be read back."""
    folder.mkdir()
    masks = []
    for i, name in enumerate(names):
        mask = np.zeros((48, 64), np.uint8)
        mask[:, 4 * i:4 * i + 4] = 255
        write_png(folder / name, mask)
        masks.append(mask)
    return masks


def test_user_masks_without_zero_padding_are_ordered_by_number(tmp_path):
    # mask_0.png ... mask_11.png sort as text to 0, 1, 10, 11, 2, ...: frame 2 would get mask 10.
    masks = _numbered_masks(tmp_path / "user", [f"mask_{i}.png" for i in range(12)])
    _run_user_masks(tmp_path, frames_info(12, 64, 48), count=12)
    assert np.array_equal(read_frames(tmp_path / "masks" / "person", "gray"), np.stack(masks))


def test_user_mask_folder_with_a_stray_file_is_refused_naming_it(tmp_path):
    # One PNG more than the 12 frames of a 12-frame video: neither one per extracted nor per source frame.
    _numbered_masks(tmp_path / "user", [f"mask_{i}.png" for i in range(13)])
    with pytest.raises(StageError) as err:
        _run_user_masks(tmp_path, frames_info(12, 64, 48, source_count=12), count=12)
    # "[masks] sample 'toy': object 'person': mask folder .../user holds 13 PNG file(s); expected 12
    #  (one per extracted frame); the 1 beyond 12: mask_12.png"
    message = str(err.value)
    assert "holds 13 PNG file(s); expected 12 (one per extracted frame)" in message
    assert "the 1 beyond 12: mask_12.png" in message and "fix:" in message
    assert not (tmp_path / "masks").exists()


@pytest.mark.parametrize(
    "names, needle, fix",
    [
        ([f"{i:05d}.png" for i in range(4)] + ["00002 (1).png"], "the odd one(s) out: 00002 (1).png",
         "rename the odd one(s) out to the pattern of the others"),
        ([f"mask_{i}.png" for i in range(3)] + ["frame_3.png"], "mixed file naming (3 like mask_0.png; 1 like frame_3.png)",
         "rename the odd one(s) out"),
        (["mask_0.png", "mask_1.png", "mask_01.png", "mask_2.png"], "the same frame number: mask_01.png, mask_1.png",
         "keep one file per frame number"),
        (["a_0.png", "a_1.png", "a_3.png", "a_4.png"], "the numbers skip 2 (between a_0.png and a_4.png)",
         "add the missing file(s) a_2.png"),
        ([f"{i:05d}.png" for i in (0, 1, 2, 4, 6)], "the numbers skip 3, 5", "add the missing file(s) 00003.png, 00005.png"),
        ([f"m{i}.png" for i in range(4)] + ["cover.png"], "without a frame number: cover.png",
         "give each file the folder's pattern"),
    ],
)
def test_user_mask_folder_with_mixed_or_ambiguous_names_is_refused(tmp_path, names, needle, fix):
    _numbered_masks(tmp_path / "user", names)
    with pytest.raises(StageError) as err:
        _run_user_masks(tmp_path, frames_info(4, 64, 48))
    # "[masks] sample 'toy': object 'person': cannot tell the frame order of mask folder ...: <needle>", then what to do
    assert "cannot tell the frame order of mask folder" in str(err.value) and needle in str(err.value)
    assert fix in err.value.fix, err.value.fix


# --------------------------------------------------------------------------- 5. bad prompts and input


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"box": [10, 10, 140, 40]}, "outside the source frame 128x96 (working 64x48)"),
        ({"points": [[10, 10], [10, 97]], "labels": [1, 0]}, "outside the source frame 128x96"),
        ({"box": [-1, 0, 10, 10]}, "outside"),
        ({"box": [10, 10, 20, 20], "frame": 2}, "key frame 2"),
        ({"box": [10, 10, 20, 20], "frame": -1}, "key frame -1"),
        ({"frame": 0}, "neither a mask folder nor a prompt"),
        ({"box": [30, 10, 20, 20]}, "x0 < x1"),
        ({"points": [[10, 10]], "labels": [1, 1]}, "labels"),
        ({"boxes": [1, 1, 5, 5]}, "unknown settings"),
        ({"masks": ""}, "not a folder path"),
        ({"masks": "m", "box": [1, 1, 5, 5]}, MASKS_OR_PROMPT),  # refused as the workflow's config check does
        ("person", "expected settings"),
    ],
)
def test_bad_prompts(tmp_path, spec, needle):
    write_frames(tmp_path / "frames", np.zeros((2, 48, 64, 3), np.uint8))
    with pytest.raises(StageError) as err:
        run_masks("toy", tmp_path / "frames", {"car": spec}, tmp_path / "masks", tmp_path / "preview.mp4",
                  frames_info(2, 64, 48, scale=2), sam_checkpoint=tmp_path / "sam.pth")
    assert needle in str(err.value) and "'car'" in str(err.value)


def test_empty_frames_dir(tmp_path):
    (tmp_path / "frames").mkdir()
    with pytest.raises(StageError, match="no PNG frames"):
        run_masks("toy", tmp_path / "frames", {"car": {"box": [1, 1, 5, 5]}}, tmp_path / "masks",
                  tmp_path / "preview.mp4", frames_info(0, 64, 48))


def label_box(preview: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """The filled box of `colour` in the preview (x, y, width, height): the largest area of exactly that colour once
    the thin outlines drawn in it are opened away."""
    exact = np.all(preview == colour, axis=-1).astype(np.uint8)
    opened = cv2.morphologyEx(exact, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(opened)
    assert count > 1, f"no label box of colour {colour}"
    x, y, width, height, _ = stats[1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])]
    return int(x), int(y), int(width), int(height)


def test_preview_frame_is_labelled(tmp_path):
    """Each object's mask carries a box in its colour at the mask's top left, written with its name: the writing
    follows the name (swap the names and the boxes swap their writing), not the object's place or colour."""
    from omnimatte.masks import PALETTE, compose_preview

    frames, truth, _, _ = moving_square_video(count=1)
    other = np.zeros_like(truth[0])
    other[40:60, 50:90] = True
    masks, names = [other, truth[0]], ["background_car", "ball"]
    preview = compose_preview(frames[0], masks, names)
    assert preview.shape[1] >= 320 and preview.dtype == np.uint8
    write_png(tmp_path / "preview.png", preview)
    scale = preview.shape[1] // frames.shape[2]
    writing = {}
    for index, (mask, name) in enumerate(zip(masks, names)):
        x, y, width, height = label_box(preview, PALETTE[index])
        ys, xs = np.nonzero(mask)
        top, left = ys.min() * scale, xs.min() * scale
        assert abs(x - left) <= 2, (name, x, left)
        assert top - 8 <= y + height <= top + 4 or top <= y <= top + 8, (name, y, height, top)  # just above or inside
        ink = np.all(preview[y:y + height, x:x + width] < 90, axis=-1)  # dark writing on the coloured box
        assert ink.sum() >= 4 * len(name), name  # a few strokes a letter at least
        writing[name] = ink
    assert writing["background_car"].shape[1] > writing["ball"].shape[1]  # the longer name takes the wider box
    swapped = compose_preview(frames[0], masks, names[::-1])
    for index, name in enumerate(names[::-1]):
        x, y, width, height = label_box(swapped, PALETTE[index])
        assert np.array_equal(np.all(swapped[y:y + height, x:x + width] < 90, axis=-1), writing[name]), name
