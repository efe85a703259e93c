"""Adversarial attacks behind one registry and one call shape: `attack(images, labels)` ->
adversarial images in [0,1] within the epsilon ball, with the model in eval mode.
PGD comes from torchattacks (projection to the ball and to [0,1] after every step)."""

import torch
import torchattacks
from torch import nn

from .seeding import derive_seed


def step_size(spec: dict, epsilon: float) -> float:
    """The PGD step: absolute (`step_size`, e.g. 2/255 as in the Safeguarding Attention paper) or
    relative (`step_size_factor` * epsilon / steps, so that every epsilon is reachable)."""
    if "step_size" in spec:
        return float(spec["step_size"])
    return float(spec["step_size_factor"]) * epsilon / spec["steps"]


def reach(spec: dict, epsilon: float) -> float:
    """The largest L-inf distance the attack can move a pixel: min(epsilon, steps * step)."""
    return min(epsilon, spec["steps"] * step_size(spec, epsilon))


def _pgd_linf(model: nn.Module, spec: dict, epsilon: float):
    return torchattacks.PGD(model, eps=epsilon, alpha=step_size(spec, epsilon), steps=spec["steps"],
                            random_start=spec.get("random_start", False))


ATTACKS = {"pgd_linf": _pgd_linf}


def attack(model: nn.Module, spec: dict, epsilon: float, images: torch.Tensor, labels: torch.Tensor,
           batch_size: int, seed: int, device) -> torch.Tensor:
    """Adversarial versions of `images` (in [0,1]) against `model` at radius `epsilon`."""
    if spec["method"] not in ATTACKS:
        raise ValueError(f"unknown attack method {spec['method']!r}; available: {', '.join(sorted(ATTACKS))}")
    model.eval()
    atk = ATTACKS[spec["method"]](model, spec, epsilon)
    torch.manual_seed(seed)  # random starts draw from the global generator inside torchattacks
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        out.append(atk(x, y).detach().cpu())
    return torch.cat(out) if out else images.clone()


def perturbation_norms(clean: torch.Tensor, adversarial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image L-inf and L2 norms of the perturbation, in float64."""
    delta = (adversarial.double() - clean.double()).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


def attack_seed(seed: int, classifier: str, attack_name: str, epsilon: float, shard: int) -> int:
    return derive_seed(seed, "attack", classifier, attack_name, float(epsilon), shard)
