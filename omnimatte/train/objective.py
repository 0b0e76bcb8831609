"""The training objective: the paper's terms, weighted by the settings and the schedule, summed."""

from __future__ import annotations

import torch

from omnimatte import losses
from omnimatte.model import Omnimatte
from omnimatte.train.batch import Batch
from omnimatte.train.schedule import LossWeights
from omnimatte.train.settings import TrainConfig

# The objective's terms, each with its label on the progress bar (short, and one per term).
PROGRESS_LABELS = {"total": "total", "reconstruction": "recon", "alpha_reg": "sparse", "mask": "mask", "flow": "flow",
                   "alpha_warp": "warp", "camera_adjustment": "camera"}
LOSS_NAMES = tuple(PROGRESS_LABELS)


def mask_term(alpha: torch.Tensor, trimaps: torch.Tensor, weights: LossWeights, config: TrainConfig) -> torch.Tensor:
    """The mask term while the schedule has it on; after it, the floor under each layer's object, if set."""
    if weights.mask > 0:
        return weights.mask * losses.mask_loss(alpha, trimaps)
    if weights.object_floor > 0:
        return weights.object_floor * losses.object_floor_loss(alpha, trimaps, config.object_alpha_floor)
    return alpha.new_zeros(())


def compute_losses(out: dict[str, torch.Tensor], batch: Batch, weights: LossWeights, config: TrainConfig,
                   model: Omnimatte) -> dict[str, torch.Tensor]:
    alpha = out["layer_alpha"]
    if config.alpha_reg_target == "composited":
        regularized = losses.self_composited_alpha(alpha)
    else:
        regularized = losses.alpha_coverage(alpha)
    pairs = batch.pairs
    terms = {
        "reconstruction": losses.reconstruction_loss(out["rgb"], batch.image),
        "alpha_reg": losses.alpha_regularization(regularized, weights.alpha_l1, config.lambda_alpha_l0),
        "mask": mask_term(alpha, batch.trimaps, weights, config),
        "flow": config.lambda_flow * losses.flow_loss(out["flow"], batch.flow, batch.confidence),
        "alpha_warp": config.lambda_alpha_warp * losses.alpha_warp_loss(
            alpha[:pairs], alpha[pairs:], out["layer_flow"][:pairs]),
    }
    if model.camera is not None:
        terms["camera_adjustment"] = config.lambda_camera_adjustment * model.camera.regularization()
    else:
        terms["camera_adjustment"] = alpha.new_zeros(())
    terms["total"] = sum(terms.values())
    return terms
