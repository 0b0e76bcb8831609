"""model.pt: the trained model, as the train stage writes it and the render stage reads it."""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path

import torch

from omnimatte.errors import StageError
from omnimatte.io import atomic_path
from omnimatte.render_switches import RENDER_ONLY
from omnimatte.train.settings import TrainConfig

# What model.pt holds: the weights, the settings they were trained with (the CPU's applied, the render-only
# switches left out: the render stage takes those from the config), the canvas size at the training scale,
# the objects back to front, and the digest of the inputs it was trained on (fingerprint.inputs_digest).
FIELDS = ("model", "config", "canvas_size", "object_names", "inputs")


def save_model(path: Path, model: torch.nn.Module, config: TrainConfig, canvas_size: tuple[int, int],
               object_names: list[str], inputs: str) -> None:
    """Write the trained `model` and what it was trained with to `path`, atomically."""
    trained_with = {key: value for key, value in dataclasses.asdict(config).items() if key not in RENDER_ONLY}
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "config": trained_with, "canvas_size": list(canvas_size),
                    "object_names": list(object_names), "inputs": inputs}, tmp)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainedModel:
    """model.pt as read back: `config` is the training's settings with `render_settings`' render-only switches."""

    state: dict[str, torch.Tensor]
    config: TrainConfig
    canvas_size: tuple[int, int]
    object_names: list[str]
    inputs: str


def load_model(stage: str, sample: str, path: Path, render_settings: TrainConfig, object_names: list[str],
               inputs: str) -> TrainedModel:
    """The trained model in `path`, for the `stage` reading it: refused unless it was trained for `object_names` on
    the inputs whose digest is `inputs`. Its settings are the training's, with the render-only switches of
    `render_settings` (the config's train section, for the device the stage runs on)."""
    rerun = "rerun the train stage (snakemake --forcerun train)"
    if not Path(path).is_file():
        raise StageError(stage, sample, f"the trained model {path} is missing", rerun)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise StageError(stage, sample, f"the trained model {path} cannot be read: {err}", rerun) from err
    missing = [name for name in FIELDS if not isinstance(stored, dict) or name not in stored]
    if missing:
        raise StageError(stage, sample, f"the trained model {path} lacks {', '.join(missing)}", rerun)
    if list(stored["object_names"]) != list(object_names):
        raise StageError(stage, sample, f"the trained model {path} is of objects {', '.join(stored['object_names'])}, "
                         f"not {', '.join(object_names)} (back to front)", rerun)
    if stored["inputs"] != inputs:
        raise StageError(stage, sample, f"the trained model {path} was trained on other frames, flow, homographies "
                         "or masks than these", rerun)
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(stored["config"]) - known)
    if unknown:
        raise StageError(stage, sample, f"the trained model {path} was trained with settings this version does not "
                         f"know: {', '.join(unknown)}", rerun)
    # The stored settings hold no rendering switch (save_model): those stay `render_settings`' own.
    config = dataclasses.replace(render_settings, **stored["config"])
    return TrainedModel(state=stored["model"], config=config, canvas_size=tuple(stored["canvas_size"]),
                        object_names=list(stored["object_names"]), inputs=stored["inputs"])
