"""The output contract: the files each stage writes under results/{sample}/, and loaders that check what they read.

The stages and the command line name these files through here, so the stage that
writes a file and the ones that read it cannot disagree on where it is. The rule files spell the same paths as strings
(Snakemake needs them); tests/test_contract.py keeps them in step with this module.
Each loader stops with a StageError that names the file, what is wrong with it and
which stage to rerun, instead of an IndexError deep inside the stage that read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnimatte.camera import Camera
from omnimatte.errors import StageError

RESULTS = Path("results")


@dataclass(frozen=True)
class FlowFiles:
    """The flow stage's folder: (T-1, H, W, 2) float32 flows, (T-1, H, W) confidences in [0, 1], info.json last."""

    folder: Path

    @property
    def forward(self) -> Path:
        return self.folder / "forward.npy"

    @property
    def backward(self) -> Path:
        return self.folder / "backward.npy"

    @property
    def confidence_forward(self) -> Path:
        return self.folder / "confidence_forward.npy"

    @property
    def confidence_backward(self) -> Path:
        return self.folder / "confidence_backward.npy"

    @property
    def info(self) -> Path:
        return self.folder / "info.json"


@dataclass(frozen=True)
class HomographyFiles:
    """The homography stage's folder: (T, 3, 3) frame pixel -> canvas pixel, and the canvas's size and diagnostics."""

    folder: Path

    @property
    def homographies(self) -> Path:
        return self.folder / "homographies.npy"

    @property
    def canvas(self) -> Path:
        return self.folder / "canvas.json"


@dataclass(frozen=True)
class OmnimatteFiles:
    """The render stage's layers: one numbered PNG per frame in each folder, and its summary."""

    folder: Path

    @property
    def layers(self) -> Path:
        return self.folder / "layers"

    def layer(self, name: str) -> Path:
        """Object `name`'s RGBA frames, straight alpha."""
        return self.layers / name / "rgba"

    @property
    def background(self) -> Path:
        return self.folder / "background"

    @property
    def reconstruction(self) -> Path:
        return self.folder / "reconstruction"

    @property
    def summary(self) -> Path:
        """The render's figures: reconstruction PSNR, each layer's mean alpha and the rendering steps that ran."""
        return self.folder / "summary.json"


@dataclass(frozen=True)
class TrainFiles:
    """The train stage's own files; checkpoint.pt lives only while a run is unfinished."""

    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def model(self) -> Path:
        return self.folder / "model.pt"

    @property
    def losses_csv(self) -> Path:
        return self.folder / "losses.csv"

    @property
    def losses_plot(self) -> Path:
        return self.folder / "losses.png"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"


@dataclass(frozen=True)
class ExportFiles:
    """The export stage's folder: full-resolution PNG frames and ProRes 4444 movies per layer, and the plate."""

    folder: Path

    def layer_frames(self, name: str) -> Path:
        return self.folder / "layers" / name

    def layer_movie(self, name: str) -> Path:
        return self.folder / "layers" / f"{name}.mov"

    @property
    def background(self) -> Path:
        return self.folder / "background"

    @property
    def background_movie(self) -> Path:
        return self.folder / "background.mov"

    @property
    def info(self) -> Path:
        return self.folder / "info.json"


@dataclass(frozen=True)
class SampleResults:
    """Everything the pipeline writes for one sample, under `root` (results/{sample})."""

    root: Path

    @classmethod
    def of(cls, sample: str, results: Path = RESULTS) -> SampleResults:
        return cls(Path(results) / sample)

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def frames_info(self) -> Path:
        return self.root / "frames_info.json"

    @property
    def flow(self) -> FlowFiles:
        return FlowFiles(self.root / "flow")

    @property
    def masks(self) -> Path:
        """One folder of uint8 0/255 PNGs per object."""
        return self.root / "masks"

    @property
    def homography(self) -> HomographyFiles:
        return HomographyFiles(self.root / "homography")

    @property
    def background_fit(self) -> Path:
        """The registered background's fit (background_fit_stage.py), which the train and diagnose stages read."""
        return self.root / "background_fit.npz"

    @property
    def omnimatte(self) -> OmnimatteFiles:
        return OmnimatteFiles(self.root / "omnimatte")

    @property
    def train(self) -> TrainFiles:
        return TrainFiles(self.root / "train")

    @property
    def overview(self) -> Path:
        return self.root / "omnimatte.mp4"

    def preview(self, stage: str) -> Path:
        """What a stage did, to look at: flow, masks or stabilised (the homography's)."""
        return self.root / "previews" / f"{stage}.mp4"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def evaluation_sheet(self) -> Path:
        return self.root / "evaluation.png"

    @property
    def diagnostics(self) -> Path:
        """The diagnose stage's verdicts, findings and per-frame figures."""
        return self.root / "diagnostics.json"

    @property
    def diagnostics_sheet(self) -> Path:
        """Where and when each check flags the clip, drawn."""
        return self.root / "diagnostics.png"

    @property
    def diagnostics_flags(self) -> Path:
        """The regions the checks that are not ok flag per frame, packed (the overview video outlines them)."""
        return self.root / "diagnostics_flags.npz"

    @property
    def diagnostics_table(self) -> Path:
        """The report's table of the diagnose stage's findings."""
        return self.root / "report" / "diagnostics.html"

    @property
    def second_seed(self) -> Path:
        """A second training with another seed (diagnose.seeds): its omnimatte/ and train/ folders."""
        return self.root / "second_seed"

    @property
    def edits(self) -> Path:
        """One file per edit, named by the edit and its object(s)."""
        return self.root / "edits"

    @property
    def export(self) -> ExportFiles:
        return ExportFiles(self.root / "export")

    def report_sheet(self, sheet: str) -> Path:
        """A contact sheet of the overview or of a preview (overview, masks, flow)."""
        return self.root / "report" / f"{sheet}.jpg"

    @property
    def runtimes_plot(self) -> Path:
        return self.root / "report" / "runtimes.png"

    @property
    def runtimes_table(self) -> Path:
        return self.root / "report" / "runtimes.html"


# ----------------------------------------------------------------------------- loaders


def _missing(stage: str, sample: str, path: Path, maker: str) -> StageError:
    return StageError(stage, sample, f"{path} does not exist", f"run the {maker} stage first (snakemake --forcerun {maker})")


def load_json_file(stage: str, sample: str, path: Path, maker: str) -> dict:
    """A JSON object that stage `maker` wrote."""
    path = Path(path)
    if not path.is_file():
        raise _missing(stage, sample, path, maker)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StageError(stage, sample, f"cannot read {path}: {err}",
                         f"it is damaged: rerun the {maker} stage (snakemake --forcerun {maker})") from err
    if not isinstance(data, dict):
        raise StageError(stage, sample, f"{path} holds a {type(data).__name__}, not a JSON object",
                         f"rerun the {maker} stage (snakemake --forcerun {maker})")
    return data


def load_frames_info(stage: str, sample: str, path: Path) -> dict:
    """frames_info.json: the source and working sizes, frame count, selection and rates."""
    return load_json_file(stage, sample, path, "frames")


def _read_npy(stage: str, sample: str, path: Path, maker: str, mmap: bool = False) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise _missing(stage, sample, path, maker)
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as err:
        raise StageError(stage, sample, f"cannot read {path}: {err}",
                         f"it is damaged: rerun the {maker} stage (snakemake --forcerun {maker})") from err


def _check_array(stage: str, sample: str, path: Path, array: np.ndarray, shape: tuple[int, ...], maker: str) -> None:
    if array.shape != tuple(shape) or not np.issubdtype(array.dtype, np.floating):
        raise StageError(stage, sample, f"{path} is {array.dtype} {array.shape}, expected float {tuple(shape)}",
                         f"it is stale for these frames: rerun the {maker} stage (snakemake --forcerun {maker})")


def load_array(stage: str, sample: str, path: Path, shape: tuple[int, ...], maker: str, mmap: bool = False) -> np.ndarray:
    """A .npy file that stage `maker` wrote, refused unless it holds floats of `shape`."""
    array = _read_npy(stage, sample, path, maker, mmap)
    _check_array(stage, sample, path, array, shape, maker)
    return array


def load_flow_field(stage: str, sample: str, path: Path, num_frames: int, height: int, width: int,
                    mmap: bool = False) -> np.ndarray:
    """One of the flow stage's (T-1, H, W, 2) flows."""
    return load_array(stage, sample, path, (num_frames - 1, height, width, 2), "flow", mmap)


def load_flow(stage: str, sample: str, flow: FlowFiles, num_frames: int, height: int, width: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What training reads of the flow stage: forward flow, backward flow and forward confidence."""
    return (load_flow_field(stage, sample, flow.forward, num_frames, height, width),
            load_flow_field(stage, sample, flow.backward, num_frames, height, width),
            load_array(stage, sample, flow.confidence_forward, (num_frames - 1, height, width), "flow"))


def load_camera(stage: str, sample: str, homography: HomographyFiles, num_frames: int | None = None,
                canvas: dict | None = None) -> Camera:
    """The homography stage's camera: one homography per frame (num_frames of them, when given) and the canvas size.
    `canvas`: canvas.json's contents where the caller has read them already (read here otherwise)."""
    if canvas is None:
        canvas = load_json_file(stage, sample, homography.canvas, "homography")
    rerun = "rerun the homography stage (snakemake --forcerun homography)"
    try:
        canvas_size = (int(canvas["height"]), int(canvas["width"]))
    except (KeyError, TypeError, ValueError) as err:
        raise StageError(stage, sample, f"{homography.canvas} gives no canvas width and height", rerun) from err
    if min(canvas_size) < 1:
        raise StageError(stage, sample, f"{homography.canvas} gives a canvas of {canvas_size[1]}x{canvas_size[0]}", rerun)
    homographies = _read_npy(stage, sample, homography.homographies, "homography")
    count = num_frames if num_frames is not None else canvas.get("num_frames", len(homographies))
    if canvas.get("num_frames", count) != count:
        raise StageError(stage, sample, f"{homography.canvas} is for {canvas['num_frames']} frames, not {count}", rerun)
    _check_array(stage, sample, homography.homographies, homographies, (count, 3, 3), "homography")
    if not np.isfinite(homographies).all():
        raise StageError(stage, sample, f"{homography.homographies} holds values that are not finite", rerun)
    return Camera(homographies.astype(np.float64), canvas_size)
