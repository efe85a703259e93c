"""The `attack` rule: adversarial examples of one shard."""

import logging

from dds.device import resolve_device
from dds.io import (
    ImageSet,
    read_images,
    write_images,
)

log = logging.getLogger(__name__)


def attack(
    *,
    eval,
    classifier,
    adversarial,
    spec: dict,
    attack_name: str,
    classifier_name: str,
    epsilon: float,
    shard: int,
    shard_size: int,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Attack shard `shard` of the evaluation sample at `epsilon`, with the per-image Linf and L2
    norms of the perturbation beside the adversarial images."""
    from dds.attacks import generate
    from dds.attacks.budget import reach
    from dds.data.sampling import shard_of
    from dds.models import classifiers

    dev = resolve_device(device)
    clean = shard_of(read_images(eval), shard, shard_size)
    model = classifiers.load_classifier(classifier, dev)
    adv = generate.attack(
        model,
        spec,
        epsilon,
        clean.images,
        clean.labels,
        batch_size,
        generate.attack_seed(seed, classifier_name, attack_name, epsilon, shard),
        dev,
    )
    linf, l2 = generate.perturbation_norms(clean.images, adv)
    log.info(
        "%s eps=%g on %s shard %d: max Linf %.5f (reach %.5f), mean L2 %.4f",
        attack_name,
        epsilon,
        classifier_name,
        shard,
        linf.max().item(),
        reach(spec, epsilon),
        l2.mean().item(),
    )
    write_images(adversarial, ImageSet(clean.idx, clean.labels, adv), {"linf": linf.numpy(), "l2": l2.numpy()})
