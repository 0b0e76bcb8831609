"""The output contract: the rule files spell the paths omnimatte/contract.py names, its loaders refuse what
does not fit and say what to rerun, and the files around the rules (env files, the command line) say what is true."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import omnimatte
from omnimatte.cli import build_parser, main
from omnimatte.contract import (
    FlowFiles,
    HomographyFiles,
    OmnimatteFiles,
    SampleResults,
    TrainFiles,
    load_camera,
    load_flow,
    load_frames_info,
)
from omnimatte.errors import StageError
from omnimatte.io import save_json, save_npy
from tests.conftest import REPO

RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
#: A path under a sample's results folder as the rule files spell it, up to the end of the string.
RESULTS_PATH = re.compile(r"results/\{(?:wildcards\.)?sample\}/[^\"'\s,)]+")


def normalised(path: str | Path) -> str:
    """results/{sample}/... with every wildcard after the sample's written `{}`, whatever a rule calls it."""
    tail = re.fullmatch(r"results/\{(?:wildcards\.)?sample\}/(.*)", str(path)).group(1)
    return "results/{sample}/" + re.sub(r"\{[^}]*\}", "{}", tail)


def rule_paths() -> set[str]:
    return {normalised(match) for file in RULE_FILES for match in RESULTS_PATH.findall(file.read_text())}


def contract_paths() -> set[str]:
    """The contract's paths, every one of which the rule files name (checkpoint.pt in train.smk's comment)."""
    r = SampleResults(Path("results/{sample}"))
    paths = [r.frames, r.frames_info, r.flow.folder, r.flow.forward, r.flow.backward, r.flow.confidence_forward,
             r.flow.confidence_backward, r.flow.info, r.masks, r.homography.folder, r.homography.homographies, r.homography.canvas,
             r.background_fit,
             r.omnimatte.folder, r.train.folder, r.train.checkpoint, r.train.model, r.train.losses_csv, r.train.losses_plot,
             r.train.summary, r.overview, r.preview("flow"), r.preview("masks"), r.preview("stabilised"), r.metrics,
             r.evaluation_sheet, r.edits, r.export.folder, r.report_sheet("{}"), r.runtimes_plot, r.runtimes_table,
             r.diagnostics, r.diagnostics_sheet, r.diagnostics_flags, r.diagnostics_table,
             OmnimatteFiles(r.second_seed / "omnimatte").folder, TrainFiles(r.second_seed / "train").folder,
             TrainFiles(r.second_seed / "train").model, TrainFiles(r.second_seed / "train").losses_csv,
             TrainFiles(r.second_seed / "train").losses_plot, TrainFiles(r.second_seed / "train").summary]
    return {normalised(path) for path in paths}


def test_the_rule_files_spell_the_contracts_paths():
    edits = normalised(SampleResults(Path("results/{sample}")).edits) + "/"
    spelled = rule_paths()
    unknown = {path for path in spelled - contract_paths() if not path.startswith(edits)}
    assert not unknown, f"paths in the rule files that omnimatte/contract.py does not name: {sorted(unknown)}"
    unused = contract_paths() - spelled
    assert not unused, f"paths of omnimatte/contract.py that no rule file names: {sorted(unused)}"


def test_env_files_name_the_rules_that_use_them():
    """Each envs/*.yaml's comment names, in backticks, exactly the rules whose `conda:` is that file."""
    users: dict[str, set[str]] = {}
    for file in RULE_FILES:
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", file.read_text(), re.M | re.S):
            env = re.search(r"conda:\s*\"\.\./\.\./envs/([\w.]+)\"", body)
            if env:
                users.setdefault(env.group(1), set()).add(name)
    assert set(users) == {path.name for path in (REPO / "envs").glob("*.yaml")}
    for env, rules in users.items():
        comment = "".join(line for line in (REPO / "envs" / env).read_text().splitlines() if line.startswith("#"))
        assert set(re.findall(r"`(\w+)`", comment)) == rules, env


def test_only_commands_with_settings_take_them(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    with_settings = {name for name, parser in commands.items() if parser.get_default("takes_settings")}
    assert with_settings == {"demo", "frames", "flow", "masks", "homography", "background-fit", "train", "render",
                             "stroboscope",
                             "replace-background", "retime", "export", "contact-sheet", "stills", "benchmark", "diagnose"}
    with pytest.raises(SystemExit) as refused:
        main(["remove", "--sample", "toy", "--omnimatte", "o", "--objects", "a", "--frames-info", "f.json",
              "--object", "a", "--out", "x.mp4", "--settings", '{"shift": 3}'])
    assert refused.value.code == 2
    assert "`omnimatte remove` has no settings, so --settings would be ignored" in capsys.readouterr().err


def test_the_command_says_its_version_and_which_commands_a_person_runs(capsys):
    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    assert shown.value.code == 0 and capsys.readouterr().out.strip() == f"omnimatte {omnimatte.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "The Snakemake workflow runs the stages" in text and "omnimatte pick VIDEO" in text
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"pick", "benchmark", "download-sam"} <= set(commands)  # the ones the help names by hand
    unexplained = [f"{name} {action.option_strings[0]}" for name, command in commands.items()
                   for action in command._actions if action.option_strings and action.help is None]
    assert unexplained == []  # every flag of every command says what it is
    suite_help = next(action.help for action in commands["benchmark"]._actions if "--suite" in action.option_strings)
    from omnimatte.benchmark import SUITES
    assert all(name in suite_help for name in (*SUITES, "rendered"))  # every suite named, none left out


def test_homographies_that_do_not_fit_say_which_file_and_what_to_rerun(tmp_path: Path):
    files = HomographyFiles(tmp_path / "homography")
    save_npy(files.homographies, np.repeat(np.eye(3)[None], 4, axis=0))
    save_json(files.canvas, {"width": 64, "height": 32, "num_frames": 4})
    camera = load_camera("edits", "toy", files)
    assert camera.canvas_size == (32, 64) and camera.homographies.dtype == np.float64
    with pytest.raises(StageError, match=r"homographies\.npy is float64 \(4, 3, 3\), expected float \(5, 3, 3\)") as error:
        save_json(files.canvas, {"width": 64, "height": 32})
        load_camera("train", "toy", files, num_frames=5)
    assert error.value.stage == "train" and "snakemake --forcerun homography" in error.value.fix
    save_json(files.canvas, {"width": 64, "height": 32, "num_frames": 5})
    with pytest.raises(StageError, match="canvas.json is for 5 frames, not 4"):
        load_camera("evaluate", "toy", files, num_frames=4)
    files.homographies.unlink()
    with pytest.raises(StageError, match="homographies.npy does not exist") as error:
        load_camera("edits", "toy", files)
    assert "run the homography stage first" in error.value.fix


def test_flow_of_other_frames_is_refused(tmp_path: Path):
    files = FlowFiles(tmp_path / "flow")
    for path in (files.forward, files.backward):
        save_npy(path, np.zeros((3, 8, 10, 2), np.float32))
    save_npy(files.confidence_forward, np.ones((3, 8, 10), np.float32))
    assert [a.shape for a in load_flow("train", "toy", files, 4, 8, 10)] == [(3, 8, 10, 2), (3, 8, 10, 2), (3, 8, 10)]
    with pytest.raises(StageError, match=r"forward\.npy is float32 \(3, 8, 10, 2\), expected float \(4, 8, 10, 2\)") as error:
        load_flow("train", "toy", files, 5, 8, 10)
    assert "rerun the flow stage" in error.value.fix


def test_frames_info_that_is_missing_or_damaged(tmp_path: Path):
    with pytest.raises(StageError, match="frames_info.json does not exist") as error:
        load_frames_info("edits", "toy", tmp_path / "frames_info.json")
    assert "run the frames stage first" in error.value.fix
    (tmp_path / "frames_info.json").write_text("[1, 2]")
    with pytest.raises(StageError, match="holds a list, not a JSON object"):
        load_frames_info("edits", "toy", tmp_path / "frames_info.json")
