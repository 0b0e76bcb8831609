"""Which files of a user's folder the stages read: the images of an image sequence, the PNGs of a mask folder.

The workflow declares them as a rule's inputs file by file, so a file edited in place, added
or removed remakes what was made from the folder (Snakemake judges a folder input by the
folder's own time, which a file rewritten in place does not move). Standard library only:
the Snakefile imports this in Snakemake's own environment.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The still-image files an image sequence (a `video` given as a folder) may hold.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: The files a user's mask folder holds.
MASK_SUFFIXES = (".png",)


def folder_files(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of `folder` whose suffix (in any case) is one of `suffixes`, hidden ones (`.name`, e.g. macOS `._`
    copies) left out, in name order; none when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))
