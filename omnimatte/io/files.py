"""Files every stage writes and reads: atomic writes, PNG frames and frame folders, user image sequences, JSON and NumPy.

Every output is written under a temporary name next to its final path and renamed
when complete, so a job that is killed never leaves a file Snakemake would trust.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from omnimatte.folders import MASK_SUFFIXES, folder_files


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile makes private files (0600) and folders (0700); outputs get the usual
# permissions instead, so that others sharing results/ (a cluster's group) can read them.
_UMASK = _process_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; rename it onto `path` on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only when complete."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def frame_name(index: int) -> str:
    """The contract's frame file name: 00000.png, 00001.png, ..."""
    return f"{index:05d}.png"


def write_png(path: str | os.PathLike, image: np.ndarray, *, atomic: bool = True) -> None:
    """Write an RGB, RGBA or single-channel uint8 image (RGB order) as PNG.

    Atomically by default; atomic=False writes `path` directly, for files inside a folder that
    is itself written atomically (atomic_dir), where a temporary per file would only cost time.
    """
    if not atomic:
        _write_png_now(Path(path), image)
        return
    with atomic_path(path) as tmp:
        _write_png_now(tmp, image)


def _write_png_now(path: Path, image: np.ndarray) -> None:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def write_image(path: str | os.PathLike, image: np.ndarray, jpeg_quality: int = 90) -> None:
    """Write an RGB uint8 image as PNG or JPEG (by the suffix of `path`), atomically."""
    with atomic_path(path) as tmp:
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if Path(path).suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {path}")


def write_frames(folder: str | os.PathLike, images: Iterable[np.ndarray]) -> int:
    """Write images as 00000.png, 00001.png, ... into a folder that appears only when complete."""
    count = 0
    with atomic_dir(folder) as tmp:
        for count, image in enumerate(images, start=1):
            write_png(tmp / frame_name(count - 1), image, atomic=False)
    return count


def read_png(path: str | os.PathLike, mode: str = "rgb") -> np.ndarray:
    """Read a PNG as uint8: mode 'rgb' (H,W,3), 'rgba' (H,W,4) or 'gray' (H,W)."""
    flags = {"rgb": cv2.IMREAD_COLOR, "rgba": cv2.IMREAD_UNCHANGED, "gray": cv2.IMREAD_GRAYSCALE}[mode]
    image = cv2.imread(str(path), flags)
    if image is None:
        raise OSError(f"could not read image {path}")
    if mode == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if mode == "rgba":
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """The PNG files of a frame folder in frame order."""
    return sorted(Path(folder).glob("*.png"))


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def name_list(names: list[str], limit: int = 8) -> str:
    """Names for a message, comma-separated; a long list is cut after `limit`."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class SequenceNamingError(ValueError):
    """Why a numbered file sequence cannot be put in frame order (the message), and what to do about it (`fix`)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


def numbered_pngs(folder: str | os.PathLike, suffixes: tuple[str, ...] = MASK_SUFFIXES) -> list[tuple[int, Path]]:
    """A user's PNG (or `suffixes`) sequence as (number, path) ordered by the number in the names, not as text.

    `mask_2.png` comes before `mask_10.png`. The number is the last run of digits in
    the name; every file must share the same text around it (`mask_` ... ``), and the
    numbers must be distinct and consecutive, so a stray or misnamed file cannot
    shift frames silently. Hidden files (`.name.png`, e.g. macOS `._` copies) are
    skipped. Raises SequenceNamingError (a ValueError) naming the offending files and what to do.
    """
    paths = folder_files(folder, suffixes)
    unnumbered = sorted(p.name for p in paths if not _NUMBERED.match(p.stem))
    if unnumbered:
        raise SequenceNamingError(f"file name(s) without a frame number: {name_list(unnumbered)}",
                                  "give each file the folder's pattern with its frame number, or move it out")
    patterns: dict[tuple[str, str], list[str]] = {}
    numbered = []
    for path in paths:
        prefix, digits, suffix = _NUMBERED.match(path.stem).groups()
        patterns.setdefault((prefix, suffix + path.suffix), []).append(path.name)
        numbered.append((int(digits), path))
    if len(patterns) > 1:
        groups = sorted(patterns.values(), key=len, reverse=True)
        kinds = "; ".join(f"{len(g)} like {sorted(g)[0]}" for g in groups)
        odd = sorted(name for group in groups[1:] for name in group)
        raise SequenceNamingError(f"mixed file naming ({kinds}); the odd one(s) out: {name_list(odd)}",
                                  "rename the odd one(s) out to the pattern of the others, or move them out")
    numbered.sort(key=lambda item: (item[0], item[1].name))
    uses = collections.Counter(number for number, _ in numbered)
    repeated = [path.name for number, path in numbered if uses[number] > 1]
    if repeated:
        raise SequenceNamingError(f"ambiguous names, several files carry the same frame number: {name_list(repeated)}",
                                  "keep one file per frame number: remove or renumber the others")
    missing = [n for n in range(numbered[0][0], numbered[-1][0]) if n not in uses] if numbered else []
    if missing:
        (prefix, tail), = patterns
        digits = _NUMBERED.match(numbered[0][1].stem).group(2)
        width = len(digits) if digits.startswith("0") else 1  # zero-padded names keep their width
        absent = [f"{prefix}{str(n).zfill(width)}{tail}" for n in missing]
        raise SequenceNamingError(f"the numbers skip {name_list([str(n) for n in missing])} "
                                  f"(between {numbered[0][1].name} and {numbered[-1][1].name})",
                                  f"add the missing file(s) {name_list(absent)}, one for each frame, or renumber the "
                                  "files so that their numbers follow on")
    return numbered


def read_frames(folder: str | os.PathLike, mode: str = "rgb") -> np.ndarray:
    """Read a whole frame folder into one uint8 array (T,H,W[,C])."""
    paths = list_frames(folder)
    if not paths:
        raise FileNotFoundError(f"no PNG frames in {folder}")
    return np.stack([read_png(p, mode) for p in paths])


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """np.save, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_json(path: str | os.PathLike, data: Any) -> None:
    """Write pretty JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())
