"""The terms of the calibration objective (dds.diffusion.calibration), each a small pure
function of the classifier's probabilities or the denoiser's noise prediction."""

import torch
import torch.nn.functional as F
from torch import nn


def brier(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Consistency: per image, the mean over the m draws of ||p_i - onehot(y)||^2.
    p: [N, m, C] probabilities, y: [N] labels -> [N]."""
    onehot = F.one_hot(y, p.shape[-1]).to(p.dtype)
    return ((p - onehot[:, None]) ** 2).sum(-1).mean(-1)


def anti_consistency(p: torch.Tensor) -> torch.Tensor:
    """Anti-consistency: per image, ||pbar||^2 with pbar the mean of the m draws; 1/C at the
    uniform prediction, its minimum, and 1 for all draws on one class. p: [N, m, C] -> [N]."""
    return (p.mean(1) ** 2).sum(-1)


@torch.no_grad()
def majority_right(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Whether the majority vote of the m draws (argmax of the counts; a tie goes to the lowest
    class, as torch.argmax takes the first maximum) is the label. p: [N, m, C] -> bool [N]."""
    counts = F.one_hot(p.argmax(-1), p.shape[-1]).sum(1)
    return counts.argmax(-1) == y


def noised(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The forward diffusion: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, x0 in [-1,1]."""
    abar = alphas_cumprod.to(x0.device, x0.dtype)[t].view(-1, *([1] * (x0.ndim - 1)))
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def denoising_mse(
    eps_model: nn.Module, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """The DDPM objective at timesteps t on [0,1] images x: the mean squared error of the predicted
    epsilon (the first C output channels: networks with learned variance output 2C)."""
    x_t = noised(2 * x - 1, t, noise, alphas_cumprod)
    return F.mse_loss(eps_model(x_t, t)[:, : x.shape[1]], noise)


def group_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of values[mask]; 0 (still part of the graph) over an empty group."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def calibration_loss(
    p: torch.Tensor,
    y: torch.Tensor,
    mse: torch.Tensor,
    brier_weight: float,
    anti_weight: float,
    denoising_weight: float,
) -> tuple[torch.Tensor, dict]:
    """(loss, terms): brier_weight * the mean Brier term over the images the majority gets right
    + anti_weight * the mean anti-consistency over those it gets wrong + denoising_weight * mse.
    `terms` holds each unweighted term, the loss and the fraction right, as floats."""
    right = majority_right(p, y).to(p.dtype)
    terms = {"brier": group_mean(brier(p, y), right), "anti": group_mean(anti_consistency(p), 1 - right)}
    terms["denoising"] = mse
    loss = brier_weight * terms["brier"] + anti_weight * terms["anti"] + denoising_weight * mse
    return loss, {**{k: v.item() for k, v in terms.items()}, "loss": loss.item(), "right": right.mean().item()}
