"""When the loss weights and the learning rate change during training, for a clip of any length.

Every change is placed by a fraction of `steps`, the run's expected length, not by
epochs, so a clip of 24 frames and one of 240 go through the same phases in the same
steps; the stopping rule (stopping.py) ends the run once every phase has run and the
layers have settled, before `steps` or after it (up to `max_steps`).

The mask term follows the authors: cut 10x once its error falls below the threshold
(checked at the end of each epoch), off at twice that step; it is cut at the latest at
half the alpha L1 switch, so that it is off by the switch. From then on, with
`object_alpha_floor`, a floor under each layer's mean alpha inside its mask takes its
place at the cut weight, so no layer can lose its object. The alpha L1 term is off from
`alpha_l1_off_fraction` of `steps`: the layers take their effects only once it is off.
With a final learning-rate fraction below 1, the rate falls along a cosine from the L1
switch to that fraction at `steps`, and stays there if the run goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omnimatte.train.settings import TrainConfig


def steps_per_epoch(num_frames: int, batch_size: int) -> int:
    pairs = max(1, num_frames - 1)
    return max(1, math.ceil(pairs / min(batch_size, pairs)))


def alpha_l1_off_step(config: TrainConfig) -> int:
    """The step after which the alpha L1 term is off: alpha_l1_off_fraction of the expected length."""
    return max(1, round(config.alpha_l1_off_fraction * config.steps))


def mask_cut_deadline(config: TrainConfig) -> int:
    """The step by which the mask term is cut whatever its error: half the L1 switch, so it is off by the switch."""
    return max(1, alpha_l1_off_step(config) // 2)


def decay_end_step(config: TrainConfig) -> int:
    """The step by which the learning rate has reached its final fraction (0 without a decay)."""
    return config.steps if config.final_learning_rate_fraction < 1.0 else 0


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """The learning rate's multiplier for `step` (0-based): 1 until the L1 switch, then a cosine to the final
    fraction at `steps`, and the final fraction after it."""
    final = config.final_learning_rate_fraction
    l1_off = alpha_l1_off_step(config)
    if final >= 1.0 or step < l1_off:
        return 1.0
    progress = min(1.0, (step - l1_off) / max(1, config.steps - l1_off))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(kw_only=True)
class LossWeights:
    """The loss weights that change during training, kept in checkpoints."""

    mask: float
    alpha_l1: float
    mask_rolloff_step: int = -1  # step at which the mask term was reduced; off at twice that
    object_floor: float = 0.0  # the weight of the floor under each layer's object once the mask term is off

    def waiting_for_mask_threshold(self) -> bool:
        """Whether the schedule still needs the mask error (the only term it reads back from the device)."""
        return self.mask > 0 and self.mask_rolloff_step < 0

    def phases_done(self, step: int, config: TrainConfig) -> bool:
        """Whether every phase of the schedule has run by `step`: the mask term and the alpha L1 term off, and the
        learning rate at its final fraction."""
        return self.mask == 0 and self.alpha_l1 == 0 and step >= decay_end_step(config)

    def update(self, step: int, epoch_steps: int, mask_error: float | None, config: TrainConfig) -> list[str]:
        """Apply the schedule after `step` steps; `mask_error` is the unweighted mask term at an epoch's end while
        waiting_for_mask_threshold(), else None. Returns what changed, for the log."""
        changes: list[str] = []
        l1_off = alpha_l1_off_step(config)
        if self.alpha_l1 > 0 and step >= l1_off:
            self.alpha_l1 = 0.0
            changes.append(f"alpha L1 term off at step {step} (epoch {step / epoch_steps:.0f}, "
                           f"{step / config.steps:.0%} of the expected {config.steps} steps)")
        if self.waiting_for_mask_threshold():
            at_epoch_end = step % epoch_steps == 0
            if at_epoch_end and step > epoch_steps and mask_error is not None and mask_error < config.mask_threshold:
                self._cut_mask(step, f"its error {mask_error:.3g} fell below {config.mask_threshold:g}", changes)
            elif step >= mask_cut_deadline(config):
                self._cut_mask(step, "half the alpha L1 switch, whatever its error", changes)
        elif self.mask > 0 and self.mask_rolloff_step >= 0 and step >= 2 * self.mask_rolloff_step:
            if config.object_alpha_floor > 0:
                self.object_floor = self.mask
                changes.append(f"mask term off; each layer's mean alpha inside its mask is held at "
                               f"{config.object_alpha_floor:g} or more (weight {self.object_floor:g})")
            else:
                changes.append("mask term off")
            self.mask = 0.0
        return changes

    def _cut_mask(self, step: int, why: str, changes: list[str]) -> None:
        self.mask_rolloff_step = step
        self.mask *= 0.1
        changes.append(f"mask term cut to {self.mask:g} ({why}); off at step {2 * step}")
