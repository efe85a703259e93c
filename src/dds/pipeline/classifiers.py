"""The classifier rules: train one here, or take a pretrained one."""

import logging

import torch

from dds.device import resolve_device
from dds.io import (
    read_images,
    write_json,
)
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


def train_classifier(
    *, train, eval, weights, metrics, name: str, spec: dict, seed: int, device: str, checkpoint=None
) -> None:
    """Train classifier `name` on the training images; `checkpoint` keeps a checkpoint after every
    epoch (removed once the weights are written), from which a rerun after an interruption
    continues."""
    from dds.data import sampling
    from dds.models import classifiers, training

    train_set, heldout = read_images(train), read_images(eval)
    in_chans, num_classes = train_set.images.shape[1], int(train_set.labels.max()) + 1
    mean, std = train_set.images.mean((0, 2, 3)), train_set.images.std((0, 2, 3))
    torch.manual_seed(derive_seed(seed, "classifier-init", name))
    model = classifiers.build_classifier(
        spec["model"],
        spec["kwargs"],
        in_chans,
        num_classes,
        mean,
        std,
        spec.get("feature_denoising"),
        resize=spec.get("resize"),
    )
    record = classifiers.train_classifier(
        model,
        train_set,
        heldout,
        spec["epochs"],
        spec["batch_size"],
        spec["lr"],
        spec["weight_decay"],
        derive_seed(seed, "classifier", name),
        resolve_device(device),
        spec.get("adversarial_training"),
        augment=spec.get("augment", False),
        checkpoint_dir=checkpoint,
        identity={"spec": spec, "seed": seed, "train": sampling.fingerprint(train_set)},
    )
    record["parameters"] = sum(p.numel() for p in model.parameters())
    classifiers.save_classifier(model, weights, spec, in_chans, num_classes)
    write_json(record, metrics)
    if checkpoint is not None:
        training.discard_checkpoint(checkpoint)


def pretrained_classifier(*, source, weights, metrics, name: str, spec: dict) -> None:
    """A timm classifier with its pretrained weights (timm's cache, or the file `source` when the
    config names one), stored like a trained one, with its pretrained preprocessing (resize,
    mean, std) inside."""
    from dds.models import classifiers, pretrained

    source = str(source) if source else None
    model = pretrained.load_pretrained(name, spec["model"], spec["kwargs"], source, spec.get("resize"))
    pretrained.require_imagenet_head(model, name, spec["model"])
    classifiers.save_classifier(model, weights, spec, 3, model.net.num_classes)
    record = pretrained.describe(model, source)
    log.info(
        "%s: %s, %d parameters, input resized to %d (%s)",
        name,
        record["source"],
        record["parameters"],
        record["input_size"],
        record["interpolation"],
    )
    write_json(record, metrics)
