"""When training is done, measured from the run itself.

Every `stop_check_every` steps a few fixed frames of the clip are rendered at the training
size, without jitter (CheckFrames), and the check measures how much their layers moved since
the last check: the share of each layer's alpha that changed (the largest over the layers
judges; each layer's is kept, so the log can name the layer still moving) and the mean change of the
reconstruction (0..1 per channel). Training stops once every
phase of the schedule has run (schedule.py) and `stop_patience` checks in a row since then
have had both changes within their tolerances; `min_steps` and `max_steps` bound it.

The check frames are rendered with an exponential moving average of the weights
(`stop_average_decay` per step), not the weights of the last step: at a constant learning
rate each step's batch and jitter move the layers by a few hundredths every check however
long the run, so a change measured on the last step's weights falls within a tolerance by
chance; the average keeps the trend (an effect entering a layer, an object leaving one) and
drops the steps' noise. The average only judges: the layers are rendered from the trained
weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from omnimatte.model import Omnimatte
from omnimatte.model.compositing import identity_grid
from omnimatte.train.settings import TrainConfig
from omnimatte.train.video import VideoTensors


def check_frame_indices(num_frames: int, count: int) -> list[int]:
    """`count` frames spread evenly over the clip, the first and last among them (every frame of a shorter clip)."""
    if count >= num_frames:
        return list(range(num_frames))
    if count == 1:
        return [num_frames // 2]
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


class CheckFrames:
    """The fixed frames the stopping rule renders: whole frames at the training size, as rendering sees them."""

    def __init__(self, video: VideoTensors, count: int) -> None:
        self.indices = torch.tensor(check_frame_indices(video.num_frames, count), device=video.frames.device)
        height, width = video.frames.shape[-2:]
        self.masks = video.masks[self.indices]
        self.flow = video.flow[self.indices]
        self.background_grid = video.background_grid[self.indices].contiguous()
        self.background_flow = video.background_flow[self.indices]
        self.view_grid = identity_grid(len(self.indices), height, width, video.frames.device)

    @torch.no_grad()
    def render(self, model: Omnimatte) -> tuple[torch.Tensor, torch.Tensor]:
        """The layers' alphas (K, L, 1, h, w) in [0, 1] and the reconstruction (K, 3, h, w) in [-1, 1], in float32."""
        was_training = model.training
        model.eval()
        inputs = model.layer_inputs(self.masks, self.flow, self.background_grid)
        out = model(inputs, self.background_grid, self.background_flow, self.indices, self.view_grid)
        model.train(was_training)
        return out["layer_alpha"].float(), out["rgb"].float()


@dataclass
class Change:
    """How much the check frames' layers moved between two checks."""

    layer_alpha: tuple[float, ...]  # each layer's share of its alpha that changed: sum |a - a'| / sum a', back to front
    reconstruction: float  # the mean absolute change of the reconstruction, 0..1 per channel

    @property
    def alpha(self) -> float:
        """The largest share of a layer's alpha that changed, over the check frames: what the rule judges."""
        return max(self.layer_alpha)

    def within(self, alpha_tolerance: float, reconstruction_tolerance: float) -> bool:
        return self.alpha <= alpha_tolerance and self.reconstruction <= reconstruction_tolerance


def measure_change(alpha: torch.Tensor, rgb: torch.Tensor, previous_alpha: torch.Tensor,
                   previous_rgb: torch.Tensor) -> Change:
    """The change from (previous_alpha, previous_rgb) to (alpha, rgb), as CheckFrames.render gives them."""
    moved = (alpha - previous_alpha).abs().sum(dim=(0, 2, 3, 4))
    held = previous_alpha.sum(dim=(0, 2, 3, 4)).clamp(min=1.0)  # a layer of less than a pixel's alpha: absolute
    return Change(layer_alpha=tuple((moved / held).tolist()),
                  reconstruction=float((rgb - previous_rgb).abs().mean() * 0.5))


class WeightAverage:
    """An exponential moving average of a model's weights: a copy of the model whose parameters follow the
    trained ones, keeping `decay` of itself each step (0: the last step's weights)."""

    def __init__(self, model: Omnimatte, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def follow(self, model: Omnimatte) -> None:
        """Move the average's parameters towards `model`'s after a step."""
        averaged = list(self.model.parameters())
        trained = [parameter.detach() for parameter in model.parameters()]
        torch._foreach_lerp_(averaged, trained, 1.0 - self.decay)

    @torch.no_grad()
    def take_buffers(self, model: Omnimatte) -> None:
        """The trained model's buffers (a batch norm's statistics), which are not averaged."""
        for average_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            average_buffer.copy_(buffer)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


class StoppingRule:
    """Reads the checks and says when training is done; its state (the weights' average, the last check's frames
    and every check's measures) goes into checkpoints, so a resumed run stops where an uninterrupted one would."""

    def __init__(self, video: VideoTensors, config: TrainConfig, model: Omnimatte) -> None:
        self.config = config
        self.layer_names = list(video.object_names)
        self.frames = CheckFrames(video, config.stop_check_frames)
        self.average = WeightAverage(model, config.stop_average_decay)
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None
        # step, seconds, alpha_change, layer_alpha_change (per layer name), reconstruction_change, within, phases_done
        self.checks: list[dict] = []

    def follow(self, model: Omnimatte) -> None:
        """After every step: the average takes in the step's weights."""
        self.average.follow(model)

    def due(self, step: int) -> bool:
        return step % self.config.stop_check_every == 0

    def settled_checks(self) -> int:
        """How many checks in a row, up to the last, had both changes within their tolerances after every phase of
        the schedule had run (the layers change after a switch: a check before it does not count)."""
        count = 0
        for check in reversed(self.checks):
            if not (check["within"] and check["phases_done"]):
                break
            count += 1
        return count

    def check(self, step: int, seconds: float, model: Omnimatte, phases_done: bool) -> str | None:
        """Render the check frames with the average of `model`'s weights and measure their change since the last
        check; returns why training stops now, or None to go on."""
        self.average.take_buffers(model)
        alpha, rgb = self.frames.render(self.average.model)
        if self.previous is not None:
            change = measure_change(alpha, rgb, *self.previous)
            self.checks.append({"step": step, "seconds": round(seconds, 3), "alpha_change": round(change.alpha, 6),
                                "layer_alpha_change": {name: round(share, 6) for name, share
                                                       in zip(self.layer_names, change.layer_alpha)},
                                "reconstruction_change": round(change.reconstruction, 7),
                                "within": change.within(self.config.stop_alpha_tolerance,
                                                        self.config.stop_reconstruction_tolerance),
                                "phases_done": phases_done})
        self.previous = (alpha, rgb)
        settled = self.settled_checks()
        if phases_done and step >= self.config.min_steps and settled >= self.config.stop_patience:
            return (f"settled: {settled} checks in a row within the tolerances (alpha "
                    f"{self.config.stop_alpha_tolerance:g}, reconstruction {self.config.stop_reconstruction_tolerance:g})"
                    f" after every phase of the schedule")
        return None

    def still_moving(self) -> str:
        """The last check's changes over their tolerances, for the log and the ceiling's stop reason: which layers'
        alphas and whether the reconstruction ('' before the first check or when every change is within)."""
        if not self.checks:
            return ""
        last = self.checks[-1]
        moving = [f"{name}'s layer {share:.1%} of its alpha" for name, share
                  in sorted(last.get("layer_alpha_change", {}).items(), key=lambda item: -item[1])
                  if share > self.config.stop_alpha_tolerance]
        if last["reconstruction_change"] > self.config.stop_reconstruction_tolerance:
            moving.append(f"the reconstruction {last['reconstruction_change']:.5f}")
        return ", ".join(moving)

    def state_dict(self) -> dict:
        return {"average": self.average.state_dict(), "previous": self.previous, "checks": self.checks}

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state["average"])
        self.previous = state["previous"]
        self.checks = state["checks"]
