"""When the loss weights and the learning rate change during training, for a clip of any length.

The authors count in epochs: the alpha L1 term stops after epoch 200. With a fixed
budget of steps that point moves with the clip's length (an epoch of a 300-frame clip
is 75 steps of 4 pairs, so epoch 200 would be step 15,000), and a budget that ends
before it gives layers without their effects. Here the switch comes at epoch 200 or
earlier, where needed to leave `share_after_alpha_l1` of the budget after it: the
layers take their effects only once the term is off, so that share is guaranteed
whatever the clip's length. The mask term follows the authors: cut 10x once its error
falls below the threshold (checked at the end of each epoch), off at twice that step;
from then on, with `object_alpha_floor`, a floor under each layer's mean alpha inside its
mask takes its place at the cut weight, so no layer can lose its object. With a final
learning-rate fraction below 1, the rate falls along a cosine to it after the L1 switch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omnimatte.train.settings import TrainConfig


def steps_per_epoch(num_frames: int, batch_size: int) -> int:
    pairs = max(1, num_frames - 1)
    return max(1, math.ceil(pairs / min(batch_size, pairs)))


def alpha_l1_off_step(config: TrainConfig, num_frames: int) -> int:
    """The step after which the alpha L1 term is off: epoch alpha_l1_rolloff_epoch, or earlier to leave its share."""
    by_epoch = config.alpha_l1_rolloff_epoch * steps_per_epoch(num_frames, config.batch_size)
    by_share = math.floor(config.steps * (1.0 - config.share_after_alpha_l1))
    return min(by_epoch, by_share)


def learning_rate_factor(step: int, l1_off_step: int, config: TrainConfig) -> float:
    """The learning rate's multiplier for `step` (0-based): 1 until the L1 switch, then a cosine to the final fraction."""
    final = config.final_learning_rate_fraction
    if final >= 1.0 or step < l1_off_step or config.steps <= l1_off_step:
        return 1.0
    progress = min(1.0, (step - l1_off_step) / max(1, config.steps - l1_off_step))
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

    def update(self, step: int, epoch_steps: int, l1_off_step: int, mask_error: float | None,
               config: TrainConfig) -> list[str]:
        """Apply the schedule after `step` steps; `mask_error` is the unweighted mask term at an epoch's end while
        waiting_for_mask_threshold(), else None. Returns what changed, for the log."""
        changes: list[str] = []
        if self.alpha_l1 > 0 and step >= l1_off_step:
            self.alpha_l1 = 0.0
            changes.append(f"alpha L1 term off at step {step} (epoch {step / epoch_steps:.0f}); "
                           f"{config.steps - step} steps ({1 - step / config.steps:.0%}) remain")
        if step % epoch_steps:
            return changes
        if self.waiting_for_mask_threshold():
            if step > epoch_steps and mask_error is not None and mask_error < config.mask_threshold:
                self.mask_rolloff_step = step
                self.mask *= 0.1
                changes.append(f"mask term cut to {self.mask:g} (its error {mask_error:.3g} fell below "
                               f"{config.mask_threshold:g}); off at step {2 * step}")
        elif self.mask > 0 and self.mask_rolloff_step >= 0 and step >= 2 * self.mask_rolloff_step:
            if config.object_alpha_floor > 0:
                self.object_floor = self.mask
                changes.append(f"mask term off; each layer's mean alpha inside its mask is held at "
                               f"{config.object_alpha_floor:g} or more (weight {self.object_floor:g})")
            else:
                changes.append("mask term off")
            self.mask = 0.0
        return changes
