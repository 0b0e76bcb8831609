"""The GPU path, exercised on the CPU: benchmarks/gpu_check.py as a smoke run, no device chosen behind the
settings' back, and every tensor that training and rendering make placed by the model's device and dtype."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from omnimatte.background_fit import BackgroundFitSettings
from omnimatte.benchmark import prepare_synthetic
from omnimatte.render import RenderSettings, render_frame, render_pass
from omnimatte.train import TrainConfig
from omnimatte.train.loop import optimisation_step, start_training
from tests.helpers import REPO

CHECKS = ["bf16", "float32", "resume", "paper settings", "full suite: dog"]


def test_the_gpu_check_runs_on_the_cpu_as_a_smoke_run(tmp_path: Path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--json",
                           str(tmp_path / "check.json")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "check.json").read_text())
    assert [row["check"] for row in report["rows"]] == CHECKS and all(row["ok"] for row in report["rows"])
    assert report["title"] in done.stdout and "cores" in report["title"]  # the CPU named, as a GPU would be
    for row in report["rows"]:
        assert f"| {row['check']} | yes | {row['result']} | {row['figures']} |" in done.stdout
    resume = report["rows"][2]
    assert resume["result"] == "killed after step 3, resumed from step 2 to 6"
    assert "max |resumed - straight| 0.00e+00" in resume["figures"]  # on the CPU, exactly the uninterrupted run


def test_the_package_never_picks_a_device_itself():
    """No `.cuda()`, no `.to("cuda")`, no default device: every placement follows a device the settings resolved
    (devices.resolve_device) or a tensor already placed."""
    found = []
    for path in sorted((REPO / "omnimatte").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            literal_cuda = any(isinstance(arg, ast.Constant) and str(arg.value).startswith("cuda")
                               for arg in [*node.args, *(keyword.value for keyword in node.keywords)])
            if (node.func.attr == "cuda" or node.func.attr == "set_default_device"
                    or (node.func.attr == "to" and literal_cuda)):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found


class Placements(TorchDispatchMode):
    """Every tensor an operation returns, counted by (operation, device type, dtype)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            # A Python number an operation takes (torch.where(mask, 1.0, x)) becomes a 0-dim CPU tensor of the
            # default dtype, which never changes the other operand's device or dtype: not a placement.
            if isinstance(tensor, torch.Tensor) and not (func is torch.ops.aten.scalar_tensor.default
                                                         and tensor.dim() == 0):
                self.seen[(str(func), tensor.device.type, tensor.dtype)] += 1
        return out

    def strays(self, device: torch.device, float_dtypes: set[torch.dtype]) -> list:
        return sorted({(op, kind, str(dtype)) for (op, kind, dtype) in self.seen
                       if kind != device.type or (dtype.is_floating_point and dtype not in float_dtypes)})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = TrainConfig(nf=8, batch_size=2, steps=10, device="cpu", cpu={})
    _, video, _ = prepare_synthetic(tmp_path_factory.mktemp("demo"), "dog", 8, 192, 112, config.trimap_band,
                                    torch.device("cpu"), "none", canvas_plate=True,
                                    background_fit=BackgroundFitSettings())
    return config, video


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_every_tensor_training_and_rendering_make_follows_the_models_device_and_dtype(demo, bf16: bool):
    """Run with the default device set to `meta` and the default dtype to float64: a tensor made without naming
    its device or dtype (which on a GPU would land on the CPU, or in float64) shows up in the trace. The model
    is float32 on the CPU; under bf16 autocast, bfloat16 is the only other float dtype allowed."""
    config, video = demo
    config = TrainConfig(**{**config.__dict__, "bf16": bf16})
    device = torch.device("cpu")
    state = start_training(video, config, device)
    state.model.train()
    step = (state.model, state.model, state.optimizer, video, config, state.weights, state.generator)
    optimisation_step(*step)  # Adam makes its state on the first step (its step counts on the CPU, by design)
    allowed = {torch.float32, torch.bfloat16} if bf16 else {torch.float32}
    placements = Placements()
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.device("meta"), placements:
            for _ in range(2):
                terms = optimisation_step(*step)
            state.model.eval()
            frame = render_frame(render_pass(state.model, video, RenderSettings.from_config(config)), 3)
    finally:
        torch.set_default_dtype(previous_dtype)
    assert torch.isfinite(terms["total"]) and frame.alpha.dtype == torch.float32
    assert sum(placements.seen.values()) > 1000  # the trace saw the steps and the rendering
    assert placements.strays(device, allowed) == [], placements.strays(device, allowed)
