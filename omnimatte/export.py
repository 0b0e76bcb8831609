"""Full-resolution export for compositing tools.

The layers are made at the working resolution (about 448 px wide); a VFX artist
needs them at the source video's size. Each layer and the background are upsampled
(premultiplied, so edges keep their colour) and the fine detail the working
resolution lost is put back with the paper's detail transfer: the residual between
the full-resolution source frame and the upsampled composite goes into every layer,
attenuated by the layers in front of it. The background takes its share too (its
fine texture is most of the residual; `background_detail: false` keeps the plate as
the network made it), and the residual is divided per pixel by the sum of the shares
the composite sees, so the exported layers composite back to the source frame up
to 8-bit rounding and clipping.

    results/{sample}/export/
        layers/{object}/00000.png ...   RGBA, straight alpha, source size
        layers/{object}.mov             ProRes 4444 with alpha, the same frames, with the source's sound
        background/00000.png ...        RGB, source size: the background plate
        background.mov                  ProRes 4444, the plate, with the source's sound
        info.json                       sizes, frame selection, how closely the export recomposes the source
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from omnimatte.contract import ExportFiles
from omnimatte.edits import Layers
from omnimatte.errors import StageError
from omnimatte.frames import decode_frames, frame_rate, source_audio
from omnimatte.imaging import over, psnr_from_mse, to_uint8
from omnimatte.io import atomic_dir, frame_name, has_encoder, read_png, read_video, save_json, write_alpha_video, write_png
from omnimatte.logs import get_logger

STAGE = "export"
log = get_logger(STAGE)

ENCODER = "prores_ks"


def upsample(layer: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A premultiplied layer (H, W, 4) resized to `size` (width, height), its alpha on the 8-bit steps it is saved with.

    Quantising the alpha before the detail transfer lets the colours absorb the
    rounding, so the saved layers still composite to the source.
    """
    scaled = cv2.resize(layer, size, interpolation=cv2.INTER_CUBIC)
    alpha = np.round(np.clip(scaled[..., 3:], 0.0, 1.0) * 255.0) / 255.0
    return np.concatenate([np.clip(scaled[..., :3], 0.0, alpha), alpha], axis=2)


def transfer_detail(frame: np.ndarray, background: np.ndarray, layers: list[np.ndarray],
                    background_detail: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """Put the residual between `frame` and the composite into the layers, each attenuated by those in front.

    frame, background: (H, W, 3) float in [0, 1]; layers: premultiplied (H, W, 4), back
    to front. Returns the background and the layers as straight RGBA, clipped to [0, 1].
    Layer i gets g * T_i * residual, T_i being the transmittance of the layers in front
    of it; the composite then changes by g * residual * (sum_i alpha_i T_i^2 + T_bg^2), so
    g = 1 / that sum makes it equal the frame.
    """
    composite = background
    for layer in layers:
        composite = over(composite, layer)
    residual = frame - composite
    seen = np.ones(frame.shape[:2] + (1,), np.float32)  # transmittance of everything in front so far
    transmittance = []
    for layer in reversed(layers):
        transmittance.append(seen)
        seen = seen * (1.0 - layer[..., 3:])
    transmittance.reverse()
    share = sum(layer[..., 3:] * t * t for layer, t in zip(layers, transmittance))
    if background_detail:
        share = share + seen * seen
    gain = np.where(share > 1e-6, 1.0 / np.maximum(share, 1e-6), 0.0)
    straight = []
    for layer, t in zip(layers, transmittance):
        alpha = layer[..., 3:]
        colour = np.where(alpha > 0, layer[..., :3] / np.maximum(alpha, 1e-6) + gain * t * residual, 0.0)
        straight.append(np.concatenate([np.clip(colour, 0.0, 1.0), alpha], axis=2))
    if background_detail:
        background = background + gain * seen * residual
    return np.clip(background, 0.0, 1.0), straight


def recompose(background: np.ndarray, layers: list[np.ndarray]) -> np.ndarray:
    """Straight-alpha uint8 layers over a uint8 background, back to front, as float in [0, 255]."""
    image = background.astype(np.float64)
    for layer in layers:
        alpha = layer[..., 3:].astype(np.float64) / 255.0
        image = alpha * layer[..., :3] + (1.0 - alpha) * image
    return image


def run_export(sample: str, video: Path, frames_info: dict, omnimatte_dir: Path, object_names: list[str], out_dir: Path,
               background_detail: bool = True) -> dict:
    """Write results/{sample}/export/ (see the module docstring) and return its info."""
    if not has_encoder(ENCODER):
        raise StageError(STAGE, sample, f"the ffmpeg bundled with imageio-ffmpeg has no {ENCODER} encoder",
                         "update it (pip install -U imageio-ffmpeg); its Linux, macOS and Windows builds include ProRes")
    video = Path(video)
    if not video.exists():
        raise StageError(STAGE, sample, f"source video {video} does not exist",
                         "the export reads the source at full resolution: restore the file or fix the sample's `video`")
    layers = Layers(sample, omnimatte_dir, object_names, stage=STAGE)
    size = (int(frames_info["source_width"]), int(frames_info["source_height"]))
    log.info("%s: exporting %d layer(s) and the background from %dx%d to %dx%d", sample, len(object_names),
             layers.width, layers.height, *size)
    squared_error, count = 0.0, 0
    with atomic_dir(out_dir) as tmp:
        files = ExportFiles(tmp)
        frames = decode_frames(video, *size, frames_info.get("start", 0), frames_info.get("end"),
                               frames_info.get("stride", 1))
        for t, frame in enumerate(tqdm(frames, total=layers.num_frames, desc=f"{sample}: export", unit="frame")):
            if t >= layers.num_frames:
                raise StageError(STAGE, sample, f"{video} gives more frames than the {layers.num_frames} layer frames",
                                 "the source changed since the frames were extracted: rerun the pipeline "
                                 f"(snakemake --forcerun frames results/{sample}/export)")
            background = cv2.resize(layers.background(t), size, interpolation=cv2.INTER_CUBIC)
            full = [upsample(layers.layer(name, t), size) for name in object_names]
            background, straight = transfer_detail(frame.astype(np.float32) / 255.0, background, full, background_detail)
            background_u8, layers_u8 = to_uint8(background), [to_uint8(layer) for layer in straight]
            write_png(files.background / frame_name(t), background_u8)
            for name, layer in zip(object_names, layers_u8):
                write_png(files.layer_frames(name) / frame_name(t), layer)
            squared_error += float(np.mean((recompose(background_u8, layers_u8) - frame) ** 2))
            count += 1
        if count != layers.num_frames:
            raise StageError(STAGE, sample, f"{video} gives {count} frames for {layers.num_frames} layer frames",
                             f"the source changed since the frames were extracted: rerun the pipeline "
                             f"(snakemake --forcerun frames results/{sample}/export)")
        fps, audio = frame_rate(frames_info), source_audio(STAGE, sample, {**frames_info, "video": str(video)})
        for name in object_names:
            write_alpha_video(files.layer_movie(name), files.layer_frames(name), fps, audio)
            check_alpha(sample, files.layer_movie(name), files.layer_frames(name) / frame_name(0))
        write_alpha_video(files.background_movie, files.background, fps, audio)
        recomposition_psnr = psnr_from_mse(squared_error / count)
        info = {"sample": sample, "objects": list(object_names), "source_video": str(video),
                "width": size[0], "height": size[1], "working_width": layers.width, "working_height": layers.height,
                "count": count, "fps": float(fps), "frame_rate": f"{fps.numerator}/{fps.denominator}",
                "sound": audio is not None, "start": frames_info.get("start", 0), "end": frames_info.get("end"),
                "stride": frames_info.get("stride", 1), "background_detail": background_detail,
                "alpha": "straight", "video_codec": "ProRes 4444 (prores_ks, yuva444p10le, 16-bit alpha)",
                "recomposition_psnr": round(recomposition_psnr, 2)}
        save_json(files.info, info)
    log.info("%s: wrote %s; the exported layers recompose the source at %.1f dB PSNR", sample, out_dir, recomposition_psnr)
    return info


def check_alpha(sample: str, movie: Path, first_png: Path) -> None:
    """Decode the movie's first frame and make sure its alpha is the PNG's, so no tool gets an opaque layer."""
    decoded = read_video(movie, mode="rgba", max_frames=1)[0, ..., 3].astype(int)
    expected = read_png(first_png, mode="rgba")[..., 3].astype(int)
    if decoded.shape != expected.shape or np.abs(decoded - expected).max() > 2:
        raise StageError(STAGE, sample, f"the alpha of {movie.name} does not decode back to the layer's alpha",
                         "the bundled ffmpeg mishandles ProRes 4444 alpha: update imageio-ffmpeg")
