"""Sample sheets: many videos as rows of config/samples.tsv, their objects as rows of config/objects.tsv.

The snakemake-workflows convention: one row per video (sample, video, start, end,
stride) and one row per object (sample, object, order back to front, and a mask
folder or a SAM prompt: box, points, labels, frame), each row checked against
workflow/schemas/{samples,objects}.schema.yaml. The sheets give the same samples a
config's `samples:` mapping gives, and the two can be used together. A bad cell stops
the workflow before any job runs, naming the sheet, its line and the column, since
with hundreds of rows "invalid config" alone does not say where to look.

Cells: box `x0,y0,x1,y1`; points `x,y;x,y`; labels `1;0` (one per point); an empty
cell is a column not given. Lines starting with `#` are comments.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from omnimatte.config_check import MASKS_OR_PROMPT

#: The sheets' columns, in the order the picker writes them.
SAMPLE_COLUMNS = ["sample", "video", "start", "end", "stride"]
OBJECT_COLUMNS = ["sample", "object", "order", "masks", "box", "points", "labels", "frame"]
INTEGER_COLUMNS = {"start", "end", "stride", "order", "frame"}
#: The schemas, where the workflow keeps them (this package runs from the checkout beside the Snakefile).
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "workflow" / "schemas"


class SheetError(ValueError):
    """A bad row of a sample sheet: the sheet, the line, the column and what is wrong."""

    def __init__(self, sheet: Path | str, line: int, row: str, column: str, problem: str) -> None:
        self.sheet, self.line, self.column = str(sheet), line, column
        super().__init__(f"{sheet} line {line} ({row}), column '{column}': {problem}")


def _numbers(cell: str) -> list[float] | None:
    try:
        values = [float(part) for part in re.split(r"[,\s]+", cell.strip()) if part]
    except ValueError:
        return None
    return [int(v) if v.is_integer() else v for v in values]


def parse_cell(column: str, cell: str) -> Any:
    """A cell's value: integers, coordinate lists, or the text itself when it does not parse (the schema then says why)."""
    cell = cell.strip()
    if column in INTEGER_COLUMNS:
        return int(cell) if re.fullmatch(r"[+-]?\d+", cell) else cell
    if column in ("box", "labels"):
        values = _numbers(cell.replace(";", ","))
        return values if values is not None else cell
    if column == "points":
        pairs = [_numbers(pair) for pair in re.split(r"[;]", cell) if pair.strip()]
        return pairs if all(p is not None for p in pairs) else cell
    return cell


def format_cell(column: str, value: list) -> str:
    """The cell the picker writes for a box (x0,y0,x1,y1), points (x,y;x,y) or labels (1;0): parse_cell reads it back."""
    if column == "points":
        return ";".join(",".join(f"{v:g}" for v in pair) for pair in value)
    return ("," if column == "box" else ";").join(f"{v:g}" for v in value)


def read_rows(text: str, sheet: Path | str = "the sheet") -> list[tuple[int, dict[str, str]]]:
    """The rows of a TSV text as (line number, {column: cell}) with empty cells left out; comments and blank lines skipped."""
    lines = text.splitlines()
    kept = [(number, line) for number, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not kept:
        return []
    width = len(kept[0][1].split("\t"))
    for number, line in kept[1:]:
        cells = line.split("\t")
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            raise SheetError(sheet, number, "a row", "-", f"{len(cells)} cells for the header's {width} columns: "
                             "separate cells with one tab each, and name every column in the header line")
    table = pd.read_csv(io.StringIO("\n".join(line for _, line in kept)), sep="\t", dtype=str, keep_default_na=False,
                        skip_blank_lines=False, index_col=False)
    table.columns = [str(c).strip() for c in table.columns]
    return [(kept[index + 1][0], {c: v for c, v in row.items() if str(v).strip()})
            for index, row in enumerate(table.to_dict("records"))]


def load_schema(name: str, schema_dir: Path) -> dict:
    return yaml.safe_load((Path(schema_dir) / f"{name}.schema.yaml").read_text())


def check_row(sheet: Path | str, line: int, row_name: str, cells: dict[str, str], schema: dict) -> dict[str, Any]:
    """One row's typed values, or a SheetError naming the first bad column."""
    values = {column: parse_cell(column, cell) for column, cell in cells.items()}
    unknown = [c for c in values if c not in schema["properties"]]
    if unknown:
        raise SheetError(sheet, line, row_name, unknown[0],
                         f"not a column of this sheet (columns: {', '.join(schema['properties'])})")
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(values),
                    key=lambda e: (not e.path, str(list(e.path))))  # a bad cell before a missing prompt
    if errors:
        error = errors[0]
        if error.path:
            column = str(error.path[0])
            problem = f"{error.message} (the cell reads {cells[column]!r})"
        elif error.validator == "required":
            column = re.search(r"'(\w+)'", error.message).group(1)
            problem = "is empty; it is required"
        else:  # anyOf over the prompt columns
            column = "masks/box/points"
            problem = "none given: an object needs a mask folder (masks) or a prompt (box and/or points)"
        raise SheetError(sheet, line, row_name, column, problem)
    return values


def load_sheets(samples_sheet: Path | str, objects_sheet: Path | str, schema_dir: Path = SCHEMA_DIR,
                known_samples: Iterable[str] = (), check_paths: bool = False) -> dict[str, dict]:
    """The samples of the two sheets as a config's `samples:` mapping ({name: {video, start, end, stride, objects}}).

    `known_samples` are the names the config's `samples:` already uses; a sheet row
    with one of them is refused rather than silently overriding it. With `check_paths`,
    a video or mask folder that does not exist (relative to the working directory) is
    refused at its row too, as the workflow plans: otherwise Snakemake's own "missing
    input" names the file but not where it was written.
    """
    for sheet in (Path(samples_sheet), Path(objects_sheet)):
        if not sheet.is_file():
            raise SheetError(sheet, 0, "the file", "-", "does not exist: create it (a header line is enough) or point "
                             "`sheets:` in the config at your sheet")
    return parse_sheets(Path(samples_sheet).read_text(), Path(objects_sheet).read_text(), samples_sheet, objects_sheet,
                        schema_dir, known_samples, check_paths)


def missing_path(path: str, kind: str) -> str | None:
    """Why `path` (a video, an image folder or a mask folder, relative to the working directory) cannot be read, or
    None where it exists."""
    if Path(path).exists():
        return None
    return (f"{kind} '{path}' does not exist (relative paths are read from {Path.cwd()}, the folder Snakemake runs "
            "in): correct the path or put the file there")


def prompts_outside_the_frame(sample: str, objects: dict[str, dict], video: str) -> dict[str, str]:
    """Per prompted object, what is wrong with its prompt against the video's frame size (masks.prompt_problems);
    nothing without the packages that read a video (OpenCV, ffmpeg: the masks stage checks it then). The video is
    only probed when some object has a prompt."""
    if all("masks" in spec for spec in objects.values()):
        return {}
    try:
        from omnimatte.masks import prompt_problems
    except ImportError:
        return {}
    return prompt_problems(sample, objects, Path(video))


def missing_config_paths(samples: dict[str, dict], made: Iterable[str | Path] = ()) -> list[str]:
    """The videos and mask folders of a config's `samples:` mapping that do not exist, each as `samples.<name>.<key>:
    why`. A demo sample's, and any path inside one of the folders `made` (which the workflow makes: the demos'), are
    not checked."""
    made = [Path(folder) for folder in made]
    problems = []
    for name, sample in samples.items():
        if "demo" in sample:
            continue
        paths = [("video", sample.get("video"), "the video")]
        paths += [(f"objects.{obj}.masks", spec.get("masks"), "the mask folder")
                  for obj, spec in (sample.get("objects") or {}).items()]
        problems += [f"samples.{name}.{key}: {problem}" for key, path, kind in paths
                     if path is not None and not any(Path(path).is_relative_to(folder) for folder in made)
                     and (problem := missing_path(path, kind))]
    return problems


def parse_sheets(samples_text: str, objects_text: str, samples_sheet: Path | str, objects_sheet: Path | str,
                 schema_dir: Path = SCHEMA_DIR, known_samples: Iterable[str] = (), check_paths: bool = False
                 ) -> dict[str, dict]:
    """load_sheets on the sheets' texts; the names are for the messages."""
    known = set(known_samples)
    samples: dict[str, dict] = {}
    lines: dict[str, int] = {}
    schema = load_schema("samples", schema_dir)
    for line, cells in read_rows(samples_text, samples_sheet):
        row_name = f"sample '{cells.get('sample', '?')}'"
        values = check_row(samples_sheet, line, row_name, cells, schema)
        name = values.pop("sample")
        if name in samples:
            raise SheetError(samples_sheet, line, row_name, "sample", f"'{name}' is already on line {lines[name]}")
        if name in known:
            raise SheetError(samples_sheet, line, row_name, "sample",
                             f"'{name}' is also a sample under `samples:` in the config; rename one of them")
        if "end" in values and values["end"] <= values.get("start", 0):
            raise SheetError(samples_sheet, line, row_name, "end", f"{values['end']} is not after start {values.get('start', 0)}")
        if check_paths and (problem := missing_path(values["video"], "the video")):
            raise SheetError(samples_sheet, line, row_name, "video", problem)
        samples[name], lines[name] = values, line

    schema = load_schema("objects", schema_dir)
    objects: dict[str, list[tuple[int, int, str, dict]]] = {name: [] for name in samples}
    for line, cells in read_rows(objects_text, objects_sheet):
        row_name = f"sample '{cells.get('sample', '?')}', object '{cells.get('object', '?')}'"
        values = check_row(objects_sheet, line, row_name, cells, schema)
        sample, name, order = values.pop("sample"), values.pop("object"), values.pop("order")
        if sample not in samples:
            raise SheetError(objects_sheet, line, row_name, "sample",
                             f"'{sample}' is not a row of {samples_sheet} (it has: {', '.join(samples) or 'none'})")
        for other_order, other_line, other_name, _ in objects[sample]:
            if other_name == name:
                raise SheetError(objects_sheet, line, row_name, "object",
                                 f"'{name}' is already an object of '{sample}' on line {other_line}")
            if other_order == order:
                raise SheetError(objects_sheet, line, row_name, "order",
                                 f"{order} is also object '{other_name}'s (line {other_line}); "
                                 "give each object of a sample its own place, 1 nearest the background")
        if "masks" in values and ("box" in values or "points" in values):
            raise SheetError(objects_sheet, line, row_name, "masks", MASKS_OR_PROMPT)
        if check_paths and "masks" in values and (problem := missing_path(values["masks"], "the mask folder")):
            raise SheetError(objects_sheet, line, row_name, "masks", problem)
        if "labels" in values and len(values["labels"]) != len(values.get("points", [])):
            raise SheetError(objects_sheet, line, row_name, "labels",
                             f"{len(values['labels'])} label(s) for {len(values.get('points', []))} point(s): give one per point")
        if values.get("points") and "labels" not in values:
            values["labels"] = [1] * len(values["points"])
        if "masks" not in values:
            values.setdefault("frame", 0)
            if check_paths and (problem := prompts_outside_the_frame(sample, {name: values},
                                                                     samples[sample]["video"]).get(name)):
                raise SheetError(objects_sheet, line, row_name, "box" if "box" in values else "points", problem)
        objects[sample].append((order, line, name, values))
    for name, sample in samples.items():
        if not objects[name]:
            raise SheetError(samples_sheet, lines[name], f"sample '{name}'", "sample",
                             f"'{name}' has no object: add its objects as rows of {objects_sheet}")
        sample["objects"] = {obj: values for _, _, obj, values in sorted(objects[name])}
    return samples


def samples_of_config(config: dict, schema_dir: Path = SCHEMA_DIR, check_paths: bool = False) -> dict[str, dict]:
    """Every sample a workflow config names: its `samples:` mapping and the rows of the sheets under `sheets:`. With
    `check_paths`, a sheet row whose video or mask folder does not exist is refused by its sheet, line and column
    (the `samples:` mapping's paths: missing_config_paths)."""
    samples = dict(config.get("samples") or {})
    sheets = config.get("sheets") or {}
    if sheets:
        samples.update(load_sheets(sheets["samples"], sheets["objects"], schema_dir, known_samples=samples,
                                   check_paths=check_paths))
    if not samples:
        raise ValueError("no samples: add rows to the sample sheets (`sheets:` in the config) or a `samples:` mapping")
    return samples


def save_sample(samples_sheet: Path | str, objects_sheet: Path | str, sample: str, video: str,
                objects: list[dict[str, Any]], schema_dir: Path = SCHEMA_DIR) -> list[dict[str, str]]:
    """Write one sample's objects (back to front; each a name with a prompt, or a mask folder) into the objects
    sheet, replacing its old rows, and add its samples row when there is none. Both sheets are checked before either is written; returns the object rows."""
    samples_sheet, objects_sheet = Path(samples_sheet), Path(objects_sheet)
    samples_text = samples_sheet.read_text() if samples_sheet.is_file() else ""
    objects_text = objects_sheet.read_text() if objects_sheet.is_file() else ""
    if not any(cells.get("sample") == sample for _, cells in read_rows(samples_text, samples_sheet)):
        samples_text = _append(samples_text, SAMPLE_COLUMNS, [{"sample": sample, "video": video}])
    rows = []
    for order, spec in enumerate(objects, start=1):
        row = {"sample": sample, "object": spec["name"], "order": str(order)}
        if spec.get("masks"):  # an object with its own mask folder keeps it
            row["masks"] = str(spec["masks"])
        else:
            row["frame"] = str(spec.get("frame", 0))
        for key in ("box", "points", "labels"):
            if spec.get(key):
                row[key] = format_cell(key, spec[key])
        rows.append(row)
    objects_text = _append(_without_sample(objects_text, sample), OBJECT_COLUMNS, rows)
    parse_sheets(samples_text, objects_text, samples_sheet, objects_sheet, schema_dir)
    from omnimatte.io import atomic_path  # here: Snakemake imports this module to read the sheets, with no need of cv2

    for sheet, text in ((samples_sheet, samples_text), (objects_sheet, objects_text)):
        with atomic_path(sheet) as tmp:
            tmp.write_text(text)
    return rows


def _header(text: str, default: list[str]) -> list[str]:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return [c.strip() for c in line.split("\t")]
    return default


def _append(text: str, default_columns: list[str], rows: list[dict[str, str]]) -> str:
    columns = _header(text, default_columns)
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        text = text + ("" if not text or text.endswith("\n") else "\n") + "\t".join(columns) + "\n"
    missing = {key for row in rows for key in row} - set(columns)
    if missing:
        raise ValueError(f"the sheet has no column {', '.join(sorted(missing))}; add it to its header line")
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join("\t".join(row.get(c, "") for c in columns) + "\n" for row in rows)


def _without_sample(text: str, sample: str) -> str:
    """The sheet's text without the data rows of `sample` (comments, header and other rows kept as they are)."""
    columns = _header(text, OBJECT_COLUMNS)
    index = columns.index("sample") if "sample" in columns else 0
    header_seen, kept = False, []
    for line in text.splitlines(keepends=True):
        data = line.strip() and not line.lstrip().startswith("#")
        if data and header_seen and line.rstrip("\n").split("\t")[index].strip() == sample:
            continue
        header_seen = header_seen or bool(data)
        kept.append(line)
    return "".join(kept)
