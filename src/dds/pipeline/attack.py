"""The `attack` rule: adversarial examples of one shard."""

import logging

from dds.device import resolve_device
from dds.io import (
    ImageSet,
    read_images,
    write_images,
)

log = logging.getLogger(__name__)


def shard_of(images: ImageSet, shard: int, shard_size: int) -> ImageSet:
    part = images.subset(shard * shard_size, (shard + 1) * shard_size)
    if len(part) == 0:
        raise ValueError(f"shard {shard} is empty: the evaluation sample has {len(images)} images "
                         f"and shards hold {shard_size}")
    return part


def attack(spec: dict, attack_name: str, classifier_name: str, epsilon: float, shard: int, shard_size: int,
           seed: int, batch_size: int, device: str, eval_path, classifier_path, out_path) -> None:
    from dds.attacks import generate as attacks
    from dds.attacks.budget import reach
    from dds.models import classifiers

    dev = resolve_device(device)
    clean = shard_of(read_images(eval_path), shard, shard_size)
    model = classifiers.load_classifier(classifier_path, dev)
    adv = attacks.attack(model, spec, epsilon, clean.images, clean.labels, batch_size,
                         attacks.attack_seed(seed, classifier_name, attack_name, epsilon, shard), dev)
    linf, l2 = attacks.perturbation_norms(clean.images, adv)
    log.info("%s eps=%g on %s shard %d: max Linf %.5f (reach %.5f), mean L2 %.4f", attack_name, epsilon,
             classifier_name, shard, linf.max().item(), reach(spec, epsilon), l2.mean().item())
    write_images(out_path, ImageSet(clean.idx, clean.labels, adv), {"linf": linf.numpy(), "l2": l2.numpy()})

