"""Adversarial attacks of the registry (dds.attacks.registry) behind one call shape:
adversarial images in [0,1] within the epsilon ball of the method's norm, with the model in
eval mode; their perturbation norms and seeds."""

import torch
from torch import nn

from dds.attacks import registry
from dds.batching import in_batches
from dds.seeding import derive_seed


def attack(
    model: nn.Module,
    spec: dict,
    epsilon: float,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    seed: int,
    device,
) -> torch.Tensor:
    """Adversarial versions of `images` (in [0,1]) against `model` at radius `epsilon`."""
    registry.method(spec["method"])  # an unknown method fails before any work
    model.eval()
    if epsilon == 0:
        return images.clone()  # the clean set; some attacks (AutoAttack) reject epsilon 0
    with torch.no_grad():
        num_classes = model(images[:1].to(device)).shape[1]
    atk = registry.build(model, spec, epsilon, num_classes)

    def step(start, stop):
        # torchattacks draws random starts (and AutoAttack its own draws) from the global
        # generators, one tensor per batch, so no per-image seeding can reach them; seeded per
        # batch start, a batch halved after an out-of-memory error draws like a run at that size
        torch.manual_seed(derive_seed(seed, "attack-batch", start))
        return atk(images[start:stop].to(device), labels[start:stop].to(device)).detach().cpu()

    out = in_batches("attack", len(images), batch_size, step)
    return torch.cat(out) if out else images.clone()


def perturbation_norms(clean: torch.Tensor, adversarial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image L-inf and L2 norms of the perturbation, in float64."""
    delta = (adversarial.double() - clean.double()).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


def attack_seed(seed: int, classifier: str, attack_name: str, epsilon: float, shard: int) -> int:
    return derive_seed(seed, "attack", classifier, attack_name, float(epsilon), shard)
