"""A record of the files in a user's folder, so Snakemake notices a file edited in place.

Snakemake judges a folder input by the folder's own modification time, which moves
when a file is added or removed but not when one is rewritten in place. The Snakefile
brings a manifest of the folder up to date on every run and the rule depends on it.
Standard library only: the Snakefile runs this in Snakemake's own environment.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def update_manifest(folder: str | os.PathLike, manifest: str | os.PathLike) -> None:
    """Record each file of `folder` (name, size, modification time) in `manifest`.

    The manifest is rewritten, atomically, only when its content changes, so its own
    modification time moves only then.
    """
    entries = sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in Path(folder).iterdir() if p.is_file())
    text = json.dumps({"folder": str(folder), "files": entries}, indent=1) + "\n"
    manifest = Path(manifest)
    if manifest.is_file() and manifest.read_text() == text:
        return
    manifest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{manifest.name}.", suffix=".tmp", dir=manifest.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, manifest)
    finally:
        Path(tmp).unlink(missing_ok=True)
