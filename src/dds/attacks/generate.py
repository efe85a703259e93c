"""Adversarial attacks behind one registry and one call shape: `attack(images, labels)` ->
adversarial images in [0,1] within the epsilon ball of the method's norm, with the model in
eval mode. All come from torchattacks: PGD L-inf and L2 (projection to the ball and to
[0,1] after every step), FGSM, and AutoAttack (standard version)."""

import torch
import torchattacks
from torch import nn

from dds.attacks.budget import step_size
from dds.seeding import derive_seed


def _pgd_linf(model: nn.Module, spec: dict, epsilon: float, num_classes: int):
    return torchattacks.PGD(model, eps=epsilon, alpha=step_size(spec, epsilon), steps=spec["steps"],
                            random_start=spec.get("random_start", False))


def _pgd_l2(model: nn.Module, spec: dict, epsilon: float, num_classes: int):
    return torchattacks.PGDL2(model, eps=epsilon, alpha=step_size(spec, epsilon), steps=spec["steps"],
                              random_start=spec.get("random_start", False))


def _fgsm(model: nn.Module, spec: dict, epsilon: float, num_classes: int):
    return torchattacks.FGSM(model, eps=epsilon)


def _autoattack(norm: str):
    def make(model: nn.Module, spec: dict, epsilon: float, num_classes: int):
        # the standard version: APGD-CE, APGD-T, FAB-T, Square, each only on still-correct images
        return torchattacks.AutoAttack(model, norm=norm, eps=epsilon, version="standard", n_classes=num_classes,
                                       seed=0)
    return make


ATTACKS = {"pgd_linf": _pgd_linf, "pgd_l2": _pgd_l2, "fgsm": _fgsm, "autoattack_linf": _autoattack("Linf"),
           "autoattack_l2": _autoattack("L2")}


def attack(model: nn.Module, spec: dict, epsilon: float, images: torch.Tensor, labels: torch.Tensor,
           batch_size: int, seed: int, device) -> torch.Tensor:
    """Adversarial versions of `images` (in [0,1]) against `model` at radius `epsilon`."""
    if spec["method"] not in ATTACKS:
        raise ValueError(f"unknown attack method {spec['method']!r}; available: {', '.join(sorted(ATTACKS))}")
    model.eval()
    if epsilon == 0:
        return images.clone()  # the clean set; some attacks (AutoAttack) reject epsilon 0
    with torch.no_grad():
        num_classes = model(images[:1].to(device)).shape[1]
    atk = ATTACKS[spec["method"]](model, spec, epsilon, num_classes)
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
