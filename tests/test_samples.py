"""Sample sheets: rows into samples, a bad row named by sheet, line and column, the picker's writes, the workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omnimatte.io import write_video
from omnimatte.samples import SheetError, load_sheets, missing_config_paths, save_sample, samples_of_config
from tests.helpers import run_snakemake

SAMPLES_HEADER = "sample\tvideo\tstart\tend\tstride\n"
OBJECTS_HEADER = "sample\tobject\torder\tmasks\tbox\tpoints\tlabels\tframe\n"


def write_sheets(root: Path, samples: str, objects: str) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "samples.tsv").write_text("# comment line\n" + SAMPLES_HEADER + samples)
    (root / "objects.tsv").write_text(OBJECTS_HEADER + objects)
    return root / "samples.tsv", root / "objects.tsv"


def test_rows_become_samples_with_objects_back_to_front(tmp_path):
    sheets = write_sheets(tmp_path, "skate\tdata/skate.mp4\t5\t120\t2\nwalk\tdata/walk.mp4\t\t\t\n",
                          "skate\trider\t2\t\t410,120,620,700\t\t\t3\n"
                          "skate\tboard\t1\tdata/board\n"
                          "walk\tdog\t1\t\t\t900,620;960.5,640\t1;0\t10\n"
                          "skate\tdog\t3\t\t\t12,14\t\t\n")
    samples = load_sheets(*sheets)
    assert samples["skate"]["video"] == "data/skate.mp4"
    assert (samples["skate"]["start"], samples["skate"]["end"], samples["skate"]["stride"]) == (5, 120, 2)
    assert list(samples["skate"]["objects"]) == ["board", "rider", "dog"]  # by `order`, not by line
    assert samples["skate"]["objects"]["board"] == {"masks": "data/board"}
    assert samples["skate"]["objects"]["rider"] == {"box": [410, 120, 620, 700], "frame": 3}
    assert samples["skate"]["objects"]["dog"] == {"points": [[12, 14]], "labels": [1], "frame": 0}
    assert samples["walk"] == {"video": "data/walk.mp4",
                               "objects": {"dog": {"points": [[900, 620], [960.5, 640]], "labels": [1, 0], "frame": 10}}}


@pytest.mark.parametrize(("samples", "objects", "where"), [
    ("skate\tdata/s.mp4\t0\t\t0\n", "skate\tdog\t1\tm\n", ("samples.tsv line 3", "'skate'", "column 'stride'")),
    ("skate\tdata/s.mp4\t10\t5\t\n", "skate\tdog\t1\tm\n", ("samples.tsv line 3", "column 'end'")),
    ("sk ate\tdata/s.mp4\n", "", ("samples.tsv line 3", "column 'sample'")),
    ("skate\t\n", "", ("samples.tsv line 3", "column 'video'", "required")),
    ("skate\tdata/s.mp4\nskate\tdata/t.mp4\n", "skate\tdog\t1\tm\n", ("samples.tsv line 4", "column 'sample'", "line 3")),
    ("skate\tdata/s.mp4\n", "", ("samples.tsv line 3", "no object")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\t\t1,2,3\n", ("objects.tsv line 2", "object 'dog'", "column 'box'", "1,2,3")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\t\t1,2,x,4\n", ("objects.tsv line 2", "column 'box'")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\t\t\t1,2;3\t1;1\n", ("objects.tsv line 2", "column 'points'")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\t\t\t1,2;3,4\t1\n", ("objects.tsv line 2", "column 'labels'", "one per point")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\t\t\t1,2\t2\n", ("objects.tsv line 2", "column 'labels'")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\n", ("objects.tsv line 2", "masks/box/points")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\tm\t1,2,3,4\n", ("objects.tsv line 2", "column 'masks'", "not both")),
    ("skate\tdata/s.mp4\n", "skate\tdog\tfirst\tm\n", ("objects.tsv line 2", "column 'order'")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\tm\nskate\tcat\t1\tn\n", ("objects.tsv line 3", "column 'order'", "'dog'")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\tm\nskate\tdog\t2\tn\n", ("objects.tsv line 3", "column 'object'")),
    ("skate\tdata/s.mp4\n", "walk\tdog\t1\tm\n", ("objects.tsv line 2", "column 'sample'", "skate")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\t\t\t\t\t-1\n", ("objects.tsv line 2", "column 'frame'")),
    ("skate\tdata/s.mp4\n", "skate\tdog\t1\tm\t\t\t\t\t0\n", ("objects.tsv line 2", "9 cells", "8 columns")),
])
def test_a_bad_row_is_named_by_sheet_line_and_column(tmp_path, samples, objects, where):
    with pytest.raises(SheetError) as error:
        load_sheets(*write_sheets(tmp_path, samples, objects))
    for part in where:
        assert part in str(error.value), (part, str(error.value))


def test_as_the_workflow_plans_a_missing_video_or_mask_folder_is_named_by_its_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are read from the working directory, as Snakemake runs
    (tmp_path / "data" / "board").mkdir(parents=True)
    (tmp_path / "data" / "skate.mp4").write_bytes(b"")
    good = ("skate\tdata/skate.mp4\n", "skate\tboard\t1\tdata/board\n")
    assert load_sheets(*write_sheets(tmp_path / "a", *good), check_paths=True)["skate"]["video"] == "data/skate.mp4"
    with pytest.raises(SheetError) as error:
        load_sheets(*write_sheets(tmp_path / "b", "skate\tdata/sakte.mp4\n", good[1]), check_paths=True)
    assert all(part in str(error.value) for part in ("samples.tsv line 3", "column 'video'", "'data/sakte.mp4' does not "
                                                     "exist", str(tmp_path))), str(error.value)
    with pytest.raises(SheetError) as error:
        load_sheets(*write_sheets(tmp_path / "c", good[0], "skate\tboard\t1\tdata/bord\n"), check_paths=True)
    assert all(part in str(error.value) for part in ("objects.tsv line 2", "object 'board'", "column 'masks'",
                                                     "'data/bord'")), str(error.value)
    assert load_sheets(*write_sheets(tmp_path / "d", "skate\tdata/sakte.mp4\n", good[1]))  # the sheets alone: no check
    config = {"samples": {"walk": {"video": "data/wlak.mp4", "objects": {"dog": {"masks": "data/board"},
                                                                          "cat": {"masks": "data/cta"}}},
                          "dog": {"demo": "dog", "video": "resources/demo/dog/video.mp4",  # the workflow makes it
                                  "objects": {"dog": {"masks": "resources/demo/dog/masks/dog"}}}}}
    problems = missing_config_paths(config["samples"])
    assert [problem.split(": the")[0] for problem in problems] == ["samples.walk.video", "samples.walk.objects.cat.masks"]
    assert "the video 'data/wlak.mp4' does not exist" in problems[0] and "'data/cta'" in problems[1]
    config["samples"]["walk"]["video"] = "resources/demo/dog/video.mp4"  # made by the workflow's demo rule
    assert len(missing_config_paths(config["samples"], made=["resources/demo/dog"])) == 1  # only data/cta left


def test_as_the_workflow_plans_a_prompt_outside_the_frame_is_named_by_its_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_video(tmp_path / "data/clip.mp4", [np.zeros((48, 64, 3), np.uint8)] * 3, fps=10)
    sheets = write_sheets(tmp_path, "walk\tdata/clip.mp4\n", "walk\tdog\t1\t\t10,10,400,40\n"
                                                           "walk\tcat\t2\t\t\t5,5\n")
    assert load_sheets(*sheets)["walk"]["objects"]["dog"]["box"] == [10, 10, 400, 40]  # the sheets alone: no check
    with pytest.raises(SheetError) as error:
        load_sheets(*sheets, check_paths=True)
    # "objects.tsv line 2 (sample 'walk', object 'dog'), column 'box': object 'dog': box [10, 10, 400, 40] lies
    #  outside the source frame 64x48 ..."
    assert all(part in str(error.value) for part in ("objects.tsv line 2", "object 'dog'", "column 'box'",
                                                     "lies outside the source frame 64x48")), str(error.value)
    sheets = write_sheets(tmp_path, "walk\tdata/clip.mp4\n", "walk\tcat\t1\t\t\t70,5\n")
    with pytest.raises(SheetError, match="line 2 .* column 'points'"):
        load_sheets(*sheets, check_paths=True)


def test_config_samples_and_sheets_together_and_no_name_twice(tmp_path):
    sheets = write_sheets(tmp_path, "skate\tdata/s.mp4\n", "skate\tdog\t1\tm\n")
    config = {"samples": {"dog": {"video": "v.mp4", "objects": {"dog": {"masks": "m"}}}},
              "sheets": {"samples": str(sheets[0]), "objects": str(sheets[1])}}
    assert list(samples_of_config(config)) == ["dog", "skate"]
    config["samples"]["skate"] = config["samples"].pop("dog")
    with pytest.raises(SheetError, match="also a sample under `samples:`"):
        samples_of_config(config)


def test_saving_replaces_a_samples_objects_and_keeps_the_rest(tmp_path):
    sheets = write_sheets(tmp_path, "walk\tdata/w.mp4\n", "walk\tdog\t1\tm\n")
    objects = [{"name": "board", "box": [10, 20.5, 30, 40], "frame": 2},
               {"name": "rider", "points": [[5, 6], [7, 8]], "labels": [1, 0], "frame": 0}]
    rows = save_sample(*sheets, "skate", "data/skate.mp4", objects)
    assert [row["object"] for row in rows] == ["board", "rider"]
    samples = load_sheets(*sheets)
    assert samples["skate"]["objects"] == {"board": {"box": [10, 20.5, 30, 40], "frame": 2},
                                           "rider": {"points": [[5, 6], [7, 8]], "labels": [1, 0], "frame": 0}}
    assert samples["walk"]["objects"] == {"dog": {"masks": "m"}}
    save_sample(*sheets, "skate", "data/skate.mp4", objects[1:])  # saving again replaces the sample's rows
    assert list(load_sheets(*sheets)["skate"]["objects"]) == ["rider"]
    assert sheets[0].read_text().startswith("# comment line\n") and sheets[0].read_text().count("\nskate\t") == 1
    before = [sheet.read_text() for sheet in sheets]
    with pytest.raises(SheetError, match="column 'object'"):
        save_sample(*sheets, "skate", "data/skate.mp4", [{"name": "no good", "box": [1, 2, 3, 4]}])
    assert [sheet.read_text() for sheet in sheets] == before  # nothing written


def plan_skate(workdir: Path, video: str):
    """A dry run of every sample after adding a sheet row whose video is `video` (data/skate.mp4 and the board's
    mask folder exist)."""
    (workdir / "data" / "board").mkdir(parents=True)
    (workdir / "data" / "skate.mp4").write_bytes(b"")
    with open(workdir / "config" / "samples.tsv", "a") as sheet:
        sheet.write(f"skate\t{video}\t0\t\t2\n")
    with open(workdir / "config" / "objects.tsv", "a") as sheet:
        sheet.write("skate\tboard\t1\tdata/board\n")
    return run_snakemake(workdir, "-n", "all")


def test_the_workflow_plans_sheet_samples_beside_the_demo(workdir):
    result = plan_skate(workdir, "data/skate.mp4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "results/skate/omnimatte.mp4" in result.stdout and "results/dog/omnimatte.mp4" in result.stdout


def test_a_bad_row_stops_the_workflow_before_any_job(workdir):
    with open(workdir / "config" / "samples.tsv", "a") as sheet:
        sheet.write("skate\tdata/skate.mp4\t0\t\t-2\n")
    result = run_snakemake(workdir, "--cores", "1", "all")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "config/samples.tsv line 5 (sample 'skate'), column 'stride'" in message, message[-2000:]
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def test_a_mistyped_video_path_stops_the_workflow_at_its_row(workdir):
    """Not Snakemake's "missing input" for the frames rule: the sheet, line and column, before any job."""
    result = plan_skate(workdir, "data/sakte.mp4")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "config/samples.tsv line 5 (sample 'skate'), column 'video'" in message, message[-2000:]
    assert "'data/sakte.mp4' does not exist" in message and "MissingInputException" not in message
