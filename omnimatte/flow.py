"""Optical flow stage: forward/backward flow between consecutive frames plus confidence.

Omnimatte feeds each layer the flow inside its mask and supervises the predicted flow
only where the flow is trustworthy, so this stage writes, for every consecutive frame
pair, the forward flow (t -> t+1), the backward flow (t+1 -> t) and a per-pixel
forward-backward consistency confidence for each.

Flow comes from torchvision's RAFT. When RAFT's pretrained weights cannot be had
(no cached checkpoint and no network), the stage falls back to OpenCV's DIS flow,
says so in a WARNING, in info.json and in the preview video. A randomly initialised
RAFT is never run: weights are always loaded with strict=True.

Outputs in the stage folder (all written atomically):
    forward.npy              (T-1, H, W, 2) float32, pixels (dx, dy); index t: t -> t+1
    backward.npy             (T-1, H, W, 2) float32; index t: t+1 -> t
    confidence_forward.npy   (T-1, H, W) float32 in [0, 1]
    confidence_backward.npy  (T-1, H, W) float32 in [0, 1]
    info.json                method, weights, fallback_reason, sizes, mean confidence
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from omnimatte.contract import FlowFiles
from omnimatte.devices import resolve_device
from omnimatte.errors import StageError
from omnimatte.imaging import draw_label
from omnimatte.io import (
    frame_name,
    list_frames,
    read_png,
    save_json,
    save_npy,
    write_video,
)
from omnimatte.logs import get_logger

STAGE = "flow"
RAFT_MODELS = ("raft_large", "raft_small")
DIS_METHOD = "dis"
RAFT_MIN_SIZE = 128  # torchvision RAFT: 8 * 2 ** (correlation levels - 1) * 2
# Per blocking socket operation, not the whole download: a real download keeps
# going, but a connection that is silently dropped fails instead of hanging.
DOWNLOAD_SOCKET_TIMEOUT_S = 30.0

log = get_logger("flow")


class WeightsUnavailable(RuntimeError):
    """RAFT's pretrained weights could not be loaded (missing file, failed download, bad checkpoint).

    The message says where the weights were expected and where to get them, so the
    fallback warning can tell the user exactly what to do.
    """

    def __init__(self, model: str, weights: str, reason: str, cache_path: Path | None = None, url: str | None = None) -> None:
        self.model = model
        self.weights = weights
        self.reason = reason
        self.cache_path = cache_path
        self.url = url
        message = f"{model} weights '{weights}' unavailable: {reason}."
        if url is not None:
            message += f" Download {url} to {cache_path} (torch hub's cache, under $TORCH_HOME), or pass weights=<path to a state dict>."
        elif cache_path is not None:
            message += f" Put a {model} state dict at {cache_path}, or use weights=DEFAULT to load torchvision's checkpoint."
        super().__init__(message)


# --------------------------------------------------------------------------- RAFT


def _raft_builder(model: str) -> tuple[Any, type[Enum]]:
    """The torchvision constructor and weights enum of a RAFT variant."""
    from torchvision.models import optical_flow

    if model == "raft_large":
        return optical_flow.raft_large, optical_flow.Raft_Large_Weights
    if model == "raft_small":
        return optical_flow.raft_small, optical_flow.Raft_Small_Weights
    raise ValueError(f"unknown flow model '{model}'; choose one of {', '.join(RAFT_MODELS)}")


def _weights_member(model: str, weights: str) -> Any | None:
    """The weights enum member named by `weights` ('DEFAULT', 'C_T_V2', ...), or None for a file path."""
    _, enum = _raft_builder(model)
    members = enum.__members__
    if weights.upper() in members:
        return members[weights.upper()]
    looks_like_path = any(sep in weights for sep in ("/", "\\")) or Path(weights).suffix != "" or Path(weights).exists()
    if not looks_like_path:
        raise ValueError(f"unknown weights '{weights}' for {model}; use one of {', '.join(members)}, 'none', or a checkpoint file path")
    return None


def hub_cache_path(url: str) -> Path:
    """Where torch hub keeps (and first looks for) the checkpoint downloaded from `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets a timeout while downloading, unless the user set one already.

    torch hub's urlopen has no timeout, so a network that drops packets would hang
    the stage for minutes instead of falling back.
    """
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or the common {'state_dict': ...}/{'model': ...} wrappers."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        return {k.removeprefix("module."): v for k, v in obj.items()}
    raise TypeError(f"expected a state dict, got {type(obj).__name__}")


def load_raft(model: str, weights: str, device: str | torch.device) -> torch.nn.Module:
    """Build a RAFT model with pretrained weights, in eval mode on `device`.

    `weights` is a weights enum name ('DEFAULT', 'C_T_V2', ...), loaded through
    torchvision (torch hub's cache first, then a download), or a path to a saved state
    dict. Raises WeightsUnavailable when the weights cannot be had, and ValueError for
    an unknown model or weights name.
    """
    builder, _ = _raft_builder(model)
    member = _weights_member(model, weights)
    if member is not None:
        url = member.url
        cache_path = hub_cache_path(url)
        source = f"{type(member).__name__}.{member.name}"
        try:
            with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
                state = member.get_state_dict(progress=True, check_hash=True, weights_only=True)
        except Exception as exc:  # urllib, hash and unpickling errors all mean "no weights"
            reason = f"not in the torch hub cache and the download failed ({type(exc).__name__}: {exc})"
            if cache_path.exists():
                reason = f"the cached checkpoint could not be read ({type(exc).__name__}: {exc})"
            raise WeightsUnavailable(model, weights, reason, cache_path, url) from exc
    else:
        path = Path(weights).expanduser()
        cache_path, url, source = path, None, str(path)
        if not path.is_file():
            raise WeightsUnavailable(model, weights, f"no checkpoint file at {path}", path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsUnavailable(model, weights, f"could not read {path} ({type(exc).__name__}: {exc})", path) from exc

    try:
        net = builder(weights=None)
        net.load_state_dict(_unwrap_state_dict(state), strict=True)
    except (RuntimeError, TypeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsUnavailable(model, weights, f"checkpoint {source} does not fit {model}: {first_line}", cache_path, url) from exc
    log.info("loaded %s weights from %s", model, source)
    return net.to(device).eval()


def _weights_description(model: str, weights: str) -> tuple[str, str]:
    """The weights actually used: in full for info.json, and short for the preview label."""
    member = _weights_member(model, weights)
    if member is None:
        path = Path(weights).expanduser().resolve()
        return str(path), path.name
    return f"{type(member).__name__}.{member.name}", member.name


def raft_flow(
    net: torch.nn.Module,
    frames: np.ndarray,
    device: torch.device,
    batch_size: int = 4,
    num_flow_updates: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward RAFT flow of consecutive frames (T,H,W,3 uint8).

    Each model call runs `batch_size` frame pairs in both directions. Frames are
    edge-padded to what torchvision's RAFT accepts (multiples of 8, at least 128 px,
    since its correlation pyramid downsamples 1/8 features three more times), and the
    flow is cropped back.
    """
    from torchvision.models.optical_flow import Raft_Large_Weights

    # Every RAFT weights entry uses the same preset (uint8 -> float in [-1, 1]).
    transforms = Raft_Large_Weights.DEFAULT.transforms()
    num_pairs, height, width = len(frames) - 1, frames.shape[1], frames.shape[2]
    pad_h = max(RAFT_MIN_SIZE, height + (-height) % 8) - height
    pad_w = max(RAFT_MIN_SIZE, width + (-width) % 8) - width
    forward = np.empty((num_pairs, height, width, 2), np.float32)
    backward = np.empty_like(forward)
    with torch.inference_mode():
        for start in tqdm(range(0, num_pairs, batch_size), desc="RAFT flow", unit="batch"):
            stop = min(start + batch_size, num_pairs)
            clip = torch.from_numpy(frames[start : stop + 1]).permute(0, 3, 1, 2).to(device)
            first, second = transforms(clip[:-1], clip[1:])
            image1 = torch.cat([first, second])
            image2 = torch.cat([second, first])
            if pad_h or pad_w:
                image1 = F.pad(image1, (0, pad_w, 0, pad_h), mode="replicate")
                image2 = F.pad(image2, (0, pad_w, 0, pad_h), mode="replicate")
            flow = net(image1, image2, num_flow_updates=num_flow_updates)[-1]
            flow = flow[:, :, :height, :width].permute(0, 2, 3, 1).float().cpu().numpy()
            count = stop - start
            forward[start:stop] = flow[:count]
            backward[start:stop] = flow[count:]
    return forward, backward


# --------------------------------------------------------------------------- DIS


def dis_flow(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flow of consecutive frames with OpenCV's DIS (medium preset, grayscale).

    The fallback when RAFT's weights are unavailable: no learned weights, CPU only,
    good on textured rigid motion, weaker on large or non-rigid motion.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    num_pairs, height, width = len(frames) - 1, frames.shape[1], frames.shape[2]
    forward = np.empty((num_pairs, height, width, 2), np.float32)
    backward = np.empty_like(forward)
    for t in tqdm(range(num_pairs), desc="DIS flow", unit="pair"):
        forward[t] = dis.calc(gray[t], gray[t + 1], None)
        backward[t] = dis.calc(gray[t + 1], gray[t], None)
    return forward, backward


# --------------------------------------------------------------------------- confidence


def consistency_confidence(flow: np.ndarray, flow_back: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Forward-backward consistency confidence of one flow field (H,W,2) -> (H,W) in [0, 1].

    err(x) = |flow(x) + flow_back(x + flow(x))|, with flow_back sampled bilinearly.
    As in the Omnimatte authors' confidence script, confidence falls linearly from 1
    at err = 0 to 0 at err >= threshold; pixels whose target leaves the frame get 0,
    since nothing in the other frame can confirm them.
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    target_x = grid_x + flow[..., 0]
    target_y = grid_y + flow[..., 1]
    back_at_target = cv2.remap(flow_back.astype(np.float32), target_x, target_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.linalg.norm(flow + back_at_target, axis=-1)
    confidence = np.clip(1.0 - err / threshold, 0.0, 1.0)
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return (confidence * inside).astype(np.float32)


def confidences(forward: np.ndarray, backward: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of every forward and backward flow field, (T-1,H,W) each."""
    conf_forward = np.stack([consistency_confidence(f, b, threshold) for f, b in zip(forward, backward)])
    conf_backward = np.stack([consistency_confidence(b, f, threshold) for f, b in zip(forward, backward)])
    return conf_forward, conf_backward


# --------------------------------------------------------------------------- preview


def flow_to_color(flow: np.ndarray, max_magnitude: float) -> np.ndarray:
    """Colour-wheel picture of a flow field: hue = direction, saturation = speed up to `max_magnitude`.

    One scale for the whole video (instead of per-frame normalisation) keeps the
    colours comparable from frame to frame.
    """
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = np.clip(magnitude / max_magnitude * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def preview_frame(frame: np.ndarray, flow: np.ndarray, confidence: np.ndarray, title: str, index: int, max_magnitude: float, warn: bool) -> np.ndarray:
    """One preview image: a title bar over [frame t | forward flow colour | confidence]."""
    height, width = frame.shape[:2]
    scale = float(np.clip(width / 600, 0.3, 0.5))
    bar = int(round(40 * scale)) + 6
    panels = [frame, flow_to_color(flow, max_magnitude), np.repeat((np.clip(confidence, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)]
    captions = [f"frame {index}", f"flow {index}->{index + 1}", "confidence"]
    image = np.zeros((bar + height, 3 * width, 3), np.uint8)
    image[:bar] = (150, 30, 30) if warn else (40, 40, 40)
    for i, (panel, caption) in enumerate(zip(panels, captions)):
        image[bar:, i * width : (i + 1) * width] = panel
        draw_label(image, caption, (i * width + 4, bar + height - 5), scale)
    draw_label(image, title, (4, bar - 6), scale, box=None)
    return image


def write_preview(path: Path, frames: np.ndarray, forward: np.ndarray, confidence: np.ndarray, title: str, warn: bool, fps: float) -> None:
    """The preview MP4: one image per frame pair, so a user sees at a glance whether the flow is sane."""
    magnitude = np.linalg.norm(forward, axis=-1)
    max_magnitude = max(float(np.percentile(magnitude, 99)), 1.0)
    title = f"{title} | colour scale {max_magnitude:.1f}px"
    images = (preview_frame(frames[t], forward[t], confidence[t], title, t, max_magnitude, warn) for t in range(len(forward)))
    write_video(path, images, fps=fps)


# --------------------------------------------------------------------------- stage


def _read_input_frames(sample: str, frames_dir: Path) -> np.ndarray:
    """All frames as (T,H,W,3) uint8, or a StageError that says what is wrong and how to fix it."""
    rerun = "re-run the frames stage for this sample (delete its frames/ folder first)"
    if not frames_dir.is_dir():
        raise StageError(STAGE, sample, f"frames folder {frames_dir} does not exist", rerun)
    paths = list_frames(frames_dir)
    if not paths:
        raise StageError(STAGE, sample, f"no PNG frames in {frames_dir}", rerun)
    if len(paths) < 2:
        raise StageError(STAGE, sample, f"only {len(paths)} frame in {frames_dir}; flow needs at least 2", "use a video with at least 2 frames (check the frame range / fps settings)")
    expected = [frame_name(i) for i in range(len(paths))]
    if [p.name for p in paths] != expected:
        stray = next(p.name for p, e in zip(paths, expected) if p.name != e)
        raise StageError(STAGE, sample, f"frames in {frames_dir} are not numbered 00000.png.. contiguously (found {stray})", f"remove stray files from {frames_dir} or {rerun}")
    frames = []
    for path in paths:
        try:
            frame = read_png(path, "rgb")
        except OSError:
            raise StageError(STAGE, sample, f"frame {path} cannot be read as an image", rerun) from None
        if frames and frame.shape != frames[0].shape:
            raise StageError(STAGE, sample, f"frame {path.name} is {frame.shape[1]}x{frame.shape[0]} but {paths[0].name} is {frames[0].shape[1]}x{frames[0].shape[0]}", f"all frames must have the same size; {rerun}")
        frames.append(frame)
    return np.stack(frames)


def _check_settings(sample: str, model: str, weights: str, batch_size: int, num_flow_updates: int, consistency_threshold: float) -> None:
    """Reject bad settings before any work, with the fix in the message."""
    if model not in RAFT_MODELS:
        raise StageError(STAGE, sample, f"unknown flow model '{model}'", f"set the flow model to one of {', '.join(RAFT_MODELS)}")
    if weights.lower() != "none":
        try:
            _weights_member(model, weights)
        except ValueError as exc:
            raise StageError(STAGE, sample, str(exc), "set weights to DEFAULT, a weights name listed above, a checkpoint path, or none") from None
    if batch_size < 1 or num_flow_updates < 1:
        raise StageError(STAGE, sample, f"batch_size={batch_size} and num_flow_updates={num_flow_updates} must be >= 1", "use positive values (defaults: 4 and 12)")
    if not consistency_threshold > 0:
        raise StageError(STAGE, sample, f"consistency_threshold={consistency_threshold} must be > 0", "use a positive threshold in pixels (default 1.0)")


def run_flow(
    sample: str,
    frames_dir: Path,
    out_dir: Path,
    preview_path: Path,
    model: str = "raft_large",
    weights: str | None = "DEFAULT",
    device: str = "auto",
    batch_size: int = 4,
    num_flow_updates: int = 12,
    consistency_threshold: float = 1.0,
    fps: float = 24.0,
) -> dict[str, Any]:
    """Compute forward/backward flow and confidence for a sample's frames; returns info.json's content.

    model: 'raft_large' or 'raft_small'. weights: a torchvision weights name
    ('DEFAULT', 'C_T_V2', ...), a state-dict file path, or 'none' for DIS without
    RAFT. If the RAFT weights are unavailable, DIS is used and a warning is logged.
    """
    frames_dir, out_dir, preview_path = Path(frames_dir), Path(out_dir), Path(preview_path)
    weights = "none" if weights is None else str(weights)  # YAML 'null' means no RAFT too
    _check_settings(sample, model, weights, batch_size, num_flow_updates, consistency_threshold)
    use_raft = weights.lower() != "none"
    torch_device = resolve_device(STAGE, sample, device)
    frames = _read_input_frames(sample, frames_dir)
    num_frames, height, width = frames.shape[:3]
    log.info("sample '%s': %d frames of %dx%d", sample, num_frames, width, height)

    started = time.perf_counter()
    net, fallback_reason, weights_used, weights_label = None, None, None, ""
    if use_raft:
        try:
            net = load_raft(model, weights, torch_device)
            weights_used, weights_label = _weights_description(model, weights)
        except WeightsUnavailable as exc:
            fallback_reason = str(exc)
            log.warning(
                "sample '%s': RAFT weights were unavailable, so OpenCV DIS optical flow is used instead (lower quality). %s",
                sample,
                fallback_reason,
            )
    else:
        log.info("sample '%s': weights='none', using OpenCV DIS optical flow instead of RAFT", sample)

    if net is not None:
        method = model
        forward, backward = raft_flow(net, frames, torch_device, batch_size, num_flow_updates)
        del net
    else:
        method = DIS_METHOD
        forward, backward = dis_flow(frames)
    conf_forward, conf_backward = confidences(forward, backward, consistency_threshold)
    seconds = time.perf_counter() - started

    files = FlowFiles(out_dir)
    save_npy(files.forward, forward)
    save_npy(files.backward, backward)
    save_npy(files.confidence_forward, conf_forward)
    save_npy(files.confidence_backward, conf_backward)

    if method == DIS_METHOD:
        title = "DIS fallback: RAFT weights unavailable" if fallback_reason else "DIS (RAFT disabled)"
    else:
        title = f"{method} ({weights_label})"
    write_preview(preview_path, frames, forward, conf_forward, title, warn=fallback_reason is not None, fps=fps)

    info: dict[str, Any] = {
        "method": method,
        "weights": weights_used,
        "weights_requested": weights,
        "fallback_reason": fallback_reason,
        "device": str(torch_device) if method != DIS_METHOD else "cpu",
        "num_flow_updates": num_flow_updates if method != DIS_METHOD else None,
        "consistency_threshold": consistency_threshold,
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "mean_confidence": float((conf_forward.mean() + conf_backward.mean()) / 2),
        "mean_confidence_forward": float(conf_forward.mean()),
        "mean_confidence_backward": float(conf_backward.mean()),
        "seconds": round(seconds, 3),
    }
    save_json(files.info, info)  # last, so its presence means the folder is complete
    log.info("sample '%s': %s flow done in %.1fs, mean confidence %.3f", sample, method, seconds, info["mean_confidence"])
    return info

