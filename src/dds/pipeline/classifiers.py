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


def train_classifier(name: str, spec: dict, seed: int, device: str, train_path, eval_path, weights_path,
                     metrics_path, checkpoint_dir=None) -> None:
    """Train a classifier on the training images; `checkpoint_dir` keeps a checkpoint after every
    epoch (removed once the weights are written), from which a rerun after an interruption
    continues."""
    from dds.data import sampling as data
    from dds.models import classifiers, training

    train, heldout = read_images(train_path), read_images(eval_path)
    in_chans, num_classes = train.images.shape[1], int(train.labels.max()) + 1
    mean, std = train.images.mean((0, 2, 3)), train.images.std((0, 2, 3))
    torch.manual_seed(derive_seed(seed, "classifier-init", name))
    model = classifiers.build_classifier(spec["model"], spec["kwargs"], in_chans, num_classes, mean, std,
                                         spec.get("feature_denoising"), resize=spec.get("resize"))
    metrics = classifiers.train_classifier(model, train, heldout, spec["epochs"], spec["batch_size"], spec["lr"],
                                           spec["weight_decay"], derive_seed(seed, "classifier", name),
                                           resolve_device(device), spec.get("adversarial_training"),
                                           augment=spec.get("augment", False), checkpoint_dir=checkpoint_dir,
                                           identity={"spec": spec, "seed": seed, "train": data.fingerprint(train)})
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    classifiers.save_classifier(model, weights_path, spec, in_chans, num_classes)
    write_json(metrics, metrics_path)
    if checkpoint_dir is not None:
        training.discard_checkpoint(checkpoint_dir)


def pretrained_classifier(name: str, spec: dict, weights_path, metrics_path) -> None:
    """A timm classifier with its pretrained weights (cache or `spec["weights"]`), stored like
    a trained one, with its pretrained preprocessing (resize, mean, std) inside."""
    from dds.data.datasets import NUM_CLASSES
    from dds.models import classifiers, pretrained

    model = pretrained.load_pretrained(name, spec["model"], spec["kwargs"], spec.get("weights"), spec.get("resize"))
    if model.net.num_classes != NUM_CLASSES:
        raise ValueError(f"classifiers.{name}: {spec['model']} predicts {model.net.num_classes} classes; the "
                         f"ImageNet-1k validation labels need a head with {NUM_CLASSES}")
    classifiers.save_classifier(model, weights_path, spec, 3, model.net.num_classes)
    cfg = model.net.pretrained_cfg
    metrics = {"source": spec.get("weights") or f"timm pretrained ({cfg.get('hf_hub_id') or cfg.get('url')})",
               "parameters": sum(p.numel() for p in model.parameters()), "input_size": model.resize["size"],
               "interpolation": model.resize["mode"], "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    log.info("%s: %s, %d parameters, input resized to %d (%s)", name, metrics["source"], metrics["parameters"],
             metrics["input_size"], metrics["interpolation"])
    write_json(metrics, metrics_path)

