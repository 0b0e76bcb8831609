"""Tests of the flow stage: DIS accuracy, RAFT weight loading through the real path, the
fallback policy, outputs and bad-input errors. RAFT runs here with random weights saved
to a checkpoint, which tests the plumbing, not flow quality."""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

from omnimatte import flow as flow_module
from omnimatte.errors import StageError
from omnimatte.flow import WeightsUnavailable, consistency_confidence, hub_cache_path, load_raft, raft_flow, run_flow
from omnimatte.io import load_json, write_frames, write_png
from omnimatte.logs import get_logger

SHIFT = (3, -2)  # content moves 3 px right and 2 px up per frame


def textured_base(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smoothed colour noise: texture every flow method can track."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted_frames(count: int, height: int = 96, width: int = 128) -> list[np.ndarray]:
    """Crops of one texture whose content moves by SHIFT each frame (new texture enters at the edge)."""
    dx, dy = SHIFT
    base = textured_base(height + 40 + abs(dy) * count, width + 40 + abs(dx) * count)
    y0, x0 = 20 + abs(dy) * count, 20 + abs(dx) * count
    # frame t at (x, y) shows base at (x0 - t*dx + x, y0 - t*dy + y), so content moves by +SHIFT
    return [base[y0 - t * dy : y0 - t * dy + height, x0 - t * dx : x0 - t * dx + width].copy() for t in range(count)]


@pytest.fixture
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache and no reachable network (a proxy on a closed local port)."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A randomly initialised raft_small saved as a state dict file."""
    torch.manual_seed(0)
    state = raft_small(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "raft_small_random.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture
def flow_records() -> Iterator[list[logging.LogRecord]]:
    """Records of the flow logger, caught on the logger itself since the package logger may not propagate."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = get_logger("flow")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def assert_same_parameters(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = net.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key].cpu(), value), key


# --------------------------------------------------------------------------- 1. DIS and confidence


def test_dis_recovers_known_shift(tmp_path: Path) -> None:
    frames = shifted_frames(3)
    write_frames(tmp_path / "frames", frames)
    info = run_flow("shift", tmp_path / "frames", tmp_path / "flow", tmp_path / "flow.mp4", weights="none")
    assert info["method"] == "dis" and info["fallback_reason"] is None

    forward = np.load(tmp_path / "flow" / "forward.npy")
    backward = np.load(tmp_path / "flow" / "backward.npy")
    conf_f = np.load(tmp_path / "flow" / "confidence_forward.npy")
    conf_b = np.load(tmp_path / "flow" / "confidence_backward.npy")
    interior = (slice(None), slice(12, -12), slice(12, -12))
    np.testing.assert_allclose(np.median(forward[interior], axis=(0, 1, 2)), SHIFT, atol=0.3)
    np.testing.assert_allclose(np.median(backward[interior], axis=(0, 1, 2)), [-SHIFT[0], -SHIFT[1]], atol=0.3)
    assert conf_f[interior].mean() > 0.9 and conf_b[interior].mean() > 0.9
    # Forward: content at the right and top edges leaves the frame. Backward: the
    # newly revealed left and bottom edges have no source in the previous frame.
    assert conf_f[:, :, -3:].max() == 0 and conf_f[:, :2, :].max() == 0
    assert conf_b[:, :, :3].max() == 0 and conf_b[:, -2:, :].max() == 0


def test_consistency_confidence_exact_flows() -> None:
    height, width = 20, 30
    forward = np.broadcast_to(np.float32(SHIFT), (height, width, 2)).copy()
    conf = consistency_confidence(forward, -forward, threshold=1.0)
    assert conf.dtype == np.float32 and conf.shape == (height, width)
    assert np.all(conf[2:, : width - 3] == 1.0)
    assert np.all(conf[:, width - 3 :] == 0.0) and np.all(conf[:2] == 0.0)
    # A backward flow that does not bring pixels back is not trusted.
    assert consistency_confidence(forward, np.zeros_like(forward), threshold=1.0).max() == 0.0
    half_wrong = -forward + np.float32([0.5, 0.0])
    np.testing.assert_allclose(consistency_confidence(forward, half_wrong, threshold=1.0)[5, 5], 0.5, atol=1e-5)


# --------------------------------------------------------------------------- 2. weight loading


def test_load_raft_from_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_checkpoint) -> None:
    _, state = small_checkpoint
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / Path(Raft_Small_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    assert hub_cache_path(Raft_Small_Weights.DEFAULT.url) == cached

    net = load_raft("raft_small", "DEFAULT", "cpu")
    assert not net.training
    assert_same_parameters(net, state)


def test_load_raft_from_path(small_checkpoint) -> None:
    path, state = small_checkpoint
    assert_same_parameters(load_raft("raft_small", str(path), "cpu"), state)


def test_load_raft_offline_fails_naming_the_cache_and_the_url(offline_torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        load_raft("raft_small", "DEFAULT", "cpu")
    expected = offline_torch_home / "hub" / "checkpoints" / Path(Raft_Small_Weights.DEFAULT.url).name
    message = str(caught.value)
    assert str(expected) in message and Raft_Small_Weights.DEFAULT.url in message
    assert caught.value.cache_path == expected
    assert not any(expected.parent.iterdir())  # no partial download left behind


@pytest.fixture
def silent_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A proxy that takes every connection and never answers, as a network that drops packets after the handshake;
    it hangs up after HANG_UP_S, so a download without a timeout ends too, with another error."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def take() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            threading.Timer(HANG_UP_S, connection.close).start()

    threading.Thread(target=take, daemon=True).start()
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen keeps the proxies of its first use otherwise
    yield
    listener.close()
    for connection in held:
        connection.close()


HANG_UP_S = 20.0


def test_load_raft_gives_up_on_a_network_that_never_answers(offline_torch_home: Path, silent_proxy,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The download runs under a socket timeout (torch hub's urlopen has none), so a silent network ends it with
    WeightsUnavailable saying so, and the process's default timeout is left as it was."""
    monkeypatch.setattr(flow_module, "DOWNLOAD_SOCKET_TIMEOUT_S", 0.5)
    assert socket.getdefaulttimeout() is None
    with pytest.raises(WeightsUnavailable, match="the download failed .*timed out"):
        load_raft("raft_small", "DEFAULT", "cpu")
    assert socket.getdefaulttimeout() is None


def test_load_raft_rejects_missing_or_mismatched_checkpoint(tmp_path: Path, small_checkpoint) -> None:
    with pytest.raises(WeightsUnavailable, match="no checkpoint file"):
        load_raft("raft_small", str(tmp_path / "missing.pth"), "cpu")
    path, _ = small_checkpoint
    with pytest.raises(WeightsUnavailable, match="does not fit raft_large"):
        load_raft("raft_large", str(path), "cpu")  # never a half-loaded, partly random RAFT
    with pytest.raises(ValueError, match="unknown weights"):
        load_raft("raft_small", "C_T_V9", "cpu")


# --------------------------------------------------------------------------- 3. end to end


def test_run_flow_raft_small_end_to_end(tmp_path: Path, small_checkpoint) -> None:
    path, _ = small_checkpoint
    frames = shifted_frames(5, height=48, width=64)
    write_frames(tmp_path / "frames", frames)
    out, preview = tmp_path / "flow", tmp_path / "preview" / "flow.mp4"
    info = run_flow("tiny", tmp_path / "frames", out, preview, model="raft_small", weights=str(path), device="cpu", batch_size=3, num_flow_updates=2)

    assert info == load_json(out / "info.json")
    assert info["method"] == "raft_small" and info["fallback_reason"] is None
    assert info["weights"] == str(path.resolve())
    assert (info["num_frames"], info["height"], info["width"]) == (5, 48, 64)
    assert 0.0 <= info["mean_confidence"] <= 1.0
    for name in ("forward", "backward"):
        array = np.load(out / f"{name}.npy")
        assert array.shape == (4, 48, 64, 2) and array.dtype == np.float32 and np.isfinite(array).all()
        conf = np.load(out / f"confidence_{name}.npy")
        assert conf.shape == (4, 48, 64) and conf.dtype == np.float32
        assert conf.min() >= 0.0 and conf.max() <= 1.0
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries
    video = cv2.VideoCapture(str(preview))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    ok, image = video.read()
    assert ok and image.shape[1] == 3 * 64


def test_raft_flow_pads_sizes_that_are_not_multiples_of_8(small_checkpoint) -> None:
    path, _ = small_checkpoint
    net = load_raft("raft_small", str(path), "cpu")
    frames = np.stack(shifted_frames(3, height=36, width=60))
    forward, backward = raft_flow(net, frames, torch.device("cpu"), batch_size=1, num_flow_updates=1)
    assert forward.shape == backward.shape == (2, 36, 60, 2)


def test_run_flow_falls_back_to_dis_when_weights_unavailable(tmp_path: Path, offline_torch_home: Path, flow_records) -> None:
    write_frames(tmp_path / "frames", shifted_frames(3, height=48, width=64))
    preview = tmp_path / "flow.mp4"
    info = run_flow("nocache", tmp_path / "frames", tmp_path / "flow", preview, model="raft_small")

    assert info["method"] == "dis"
    assert info["weights"] is None and info["weights_requested"] == "DEFAULT"
    assert Raft_Small_Weights.DEFAULT.url in info["fallback_reason"]
    assert load_json(tmp_path / "flow" / "info.json")["fallback_reason"] == info["fallback_reason"]
    warnings = [r.getMessage() for r in flow_records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "RAFT weights were unavailable" in warnings[0] and "DIS" in warnings[0]
    assert str(offline_torch_home / "hub" / "checkpoints") in warnings[0]
    assert preview.stat().st_size > 0
    assert np.load(tmp_path / "flow" / "forward.npy").shape == (2, 48, 64, 2)


# --------------------------------------------------------------------------- 4. bad input


def _bad_frames(kind: str, folder: Path) -> None:
    good = shifted_frames(3, height=32, width=48)
    if kind == "missing":
        return
    folder.mkdir(parents=True)
    if kind == "one frame":
        write_png(folder / "00000.png", good[0])
    elif kind == "unreadable":
        write_png(folder / "00000.png", good[0])
        (folder / "00001.png").write_bytes(b"not a png")
    elif kind == "sizes differ":
        write_png(folder / "00000.png", good[0])
        write_png(folder / "00001.png", good[1][:16])
    elif kind == "gap":
        write_png(folder / "00000.png", good[0])
        write_png(folder / "00002.png", good[1])


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("missing", "does not exist"),
        ("empty", "no PNG frames"),
        ("one frame", "at least 2"),
        ("unreadable", "cannot be read"),
        ("sizes differ", "same size"),
        ("gap", "not numbered"),
    ],
)
def test_bad_frames_raise_stage_error(tmp_path: Path, kind: str, problem: str) -> None:
    frames = tmp_path / "frames"
    _bad_frames(kind, frames)
    with pytest.raises(StageError, match=problem) as caught:
        run_flow("badsample", frames, tmp_path / "flow", tmp_path / "flow.mp4", weights="none")
    assert caught.value.stage == "flow" and "badsample" in str(caught.value) and caught.value.fix
    assert not (tmp_path / "flow").exists()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"model": "raft_huge"}, "unknown flow model"),
        ({"weights": "C_T_V9"}, "unknown weights"),
        ({"batch_size": 0}, "must be >= 1"),
        ({"consistency_threshold": 0.0}, "must be > 0"),
        ({"device": "tpu9"}, "device"),
    ],
)
def test_bad_settings_raise_stage_error(tmp_path: Path, kwargs: dict, problem: str) -> None:
    write_frames(tmp_path / "frames", shifted_frames(2, height=32, width=48))
    with pytest.raises(StageError, match=problem) as caught:
        run_flow("badsample", tmp_path / "frames", tmp_path / "flow", tmp_path / "flow.mp4", **kwargs)
    assert "badsample" in str(caught.value)
