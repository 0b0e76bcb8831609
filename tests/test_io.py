"""The atomic writers every stage uses: nothing half-written is left, and outputs get ordinary permissions."""

import os
import stat
from pathlib import Path

import pytest

from omnimatte import io
from omnimatte.io.files import _UMASK


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_path_writes_whole_files_with_the_umask_permissions(tmp_path: Path):
    target = tmp_path / "out" / "metrics.json"
    with io.atomic_path(target) as tmp:
        tmp.write_text("{}")
        assert not target.exists()  # only the temporary name exists while writing
    assert target.read_text() == "{}"
    assert mode(target) == 0o666 & ~_UMASK  # not tempfile's private 0600
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "broken.json") as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["out"]  # neither the file nor its temporary


def test_atomic_dir_replaces_a_folder_only_when_complete(tmp_path: Path):
    target = tmp_path / "frames"
    with io.atomic_dir(target) as tmp:
        (tmp / "00000.png").write_bytes(b"one")
    assert mode(target) == 0o777 & ~_UMASK
    with pytest.raises(RuntimeError), io.atomic_dir(target) as tmp:
        (tmp / "00000.png").write_bytes(b"two")
        raise RuntimeError("killed")
    assert (target / "00000.png").read_bytes() == b"one"  # the old folder stands until a new one is whole
    assert sorted(os.listdir(tmp_path)) == ["frames"]
