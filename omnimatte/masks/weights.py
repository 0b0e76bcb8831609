"""SAM's pretrained weights: where the official checkpoints are, downloading one, and what to do without it.

A prompted object needs SAM's trained weights; a SAM with random weights would give
meaningless masks, so a missing checkpoint stops the stage and says both ways out:
download the weights, or give the object a mask folder.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from omnimatte.errors import StageError
from omnimatte.io import atomic_path
from omnimatte.logs import get_logger

STAGE = "masks"
log = get_logger(STAGE)

# The official checkpoints (https://github.com/facebookresearch/segment-anything#model-checkpoints).
SAM_URLS: dict[str, str] = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}


def download_sam_weights(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download SAM weights from `url` to `dest` under a temporary name, renamed when complete.

    Used by the Snakemake download rule; offline it fails with a StageError (one line in the log, no traceback:
    being offline is expected here) that says where to put the file by hand.
    """
    dest = Path(dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
            expected = int(response.headers.get("Content-Length") or 0)
            written = 0
            with open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    written += len(chunk)
            if expected and written != expected:
                raise OSError(f"incomplete download: {written} of {expected} bytes")
            log.info("downloaded %s (%.1f MB) to %s", url, written / 1e6, dest)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise StageError(STAGE, None, f"could not download SAM weights from {url} to {dest}: {err}",
                         f"on a machine with internet, download {url} and put the file at {dest} by hand "
                         f"(e.g. curl -L -o {dest} {url}), or give the objects mask folders (`masks: path`) to skip "
                         "SAM") from err


def missing_checkpoint(sample: str, names: list[str], model_type: str, checkpoint: Path | None, url: str | None) -> StageError:
    where = str(checkpoint) if checkpoint is not None else "<the configured sam checkpoint path>"
    source = url or "the official checkpoints listed at https://github.com/facebookresearch/segment-anything#model-checkpoints"
    objects = ", ".join(f"'{n}'" for n in names)
    return StageError(
        STAGE, sample,
        f"object(s) {objects} need SAM ({model_type}) but its checkpoint {where} does not exist; "
        "a SAM without its trained weights would give meaningless masks, so none is used",
        f"either (1) download the official weights from {source} to {where}: `snakemake` does this with its "
        f"download rule when online, or by hand: curl -L -o {where} {url or '<url>'}; "
        f"or (2) give each such object a mask folder (`masks: path/to/folder` in the sample's object config) to skip SAM",
    )
