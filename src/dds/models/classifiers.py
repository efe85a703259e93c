"""Classifiers: timm models by name, with the input normalisation inside the model so that
every attack and denoiser works on [0,1] images; optionally with feature-denoising blocks
and PGD adversarial training; trained here, stored as safetensors."""

import json
import logging
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn

from dds.attacks import registry
from dds.attacks.generate import attack
from dds.batching import in_batches
from dds.clamping import clamp
from dds.io import DataFileError, ImageSet, load_tensors, save_tensors
from dds.models import training
from dds.models.feature_denoising import add_denoising_blocks
from dds.models.schedule import warmup_cosine
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


def resize_images(x: torch.Tensor, size: int, mode: str, straight_through: bool = False) -> torch.Tensor:
    """[0,1] images resized to size x size, differentiably. Bilinear and bicubic are
    antialiased, which for bicubic is PIL's kernel (a = -0.5), the one timm's preprocessing
    uses; bicubic overshoots, and is clipped to [0,1] as PIL clips 8-bit images (with
    `straight_through`, a clip the gradient passes, dds.clamping)."""
    if mode == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    out = F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=True)
    return clamp(out, 0, 1, straight_through) if mode == "bicubic" else out


class Normalized(nn.Module):
    """`net((resize(x) - mean) / std)`: takes images in [0,1] at the dataset's size.

    `resize` ({"size": S, "mode": "bilinear" | "bicubic" | "nearest"}) is the classifier's own
    input size. It lives inside the model so that every stage (attack, denoising,
    classification, certification, the adaptive attack) works on images at the dataset's
    size, which is the denoiser's size: the attack perturbs the image the denoiser sees, and
    the classifier, after the denoiser, resizes what it gets, as in the reference pipelines
    (CIFAR-10 32 -> 224, ImageNet 256 -> 384 for CoAtNet). `straight_through` (set by the
    adaptive attack only) passes the gradient through the resize's clip."""

    def __init__(self, net: nn.Module, mean, std, resize: dict | None = None):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.resize = dict(resize) if resize else None
        self.straight_through = False

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"this classifier takes [N, {self.mean.shape[1]}, H, W] images in [0,1], got shape "
                f"{tuple(x.shape)}: the images and the classifier come from different datasets"
            )
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize["size"],) * 2:
            x = resize_images(x, self.resize["size"], self.resize["mode"], self.straight_through)
        return self.net((x - self.mean) / self.std)


def build_classifier(
    model: str,
    kwargs: dict,
    in_chans: int,
    num_classes: int,
    mean,
    std,
    feature_denoising: dict | None = None,
    resize: dict | None = None,
) -> Normalized:
    """A timm model by name and keyword arguments (e.g. block_args={"attn_layer": "cbam"});
    `feature_denoising` ({"variant": "softmax" or "dot", "stages": [1, 2, 3, 4]}) appends a non-local
    denoising block to those stages of a timm ResNet. The blocks draw their initial weights
    after the timm model, so the ResNet's own initial weights do not depend on them."""
    if not timm.is_model(model):
        raise ValueError(f"unknown timm model {model!r}; see timm.list_models() for the allowed names")
    net = timm.create_model(model, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)
    if feature_denoising is not None:
        add_denoising_blocks(net, feature_denoising)
    return Normalized(net, mean, std, resize)


@torch.inference_mode()
def accuracy(model: nn.Module, data: ImageSet, batch_size: int, device) -> float:
    model.eval()

    def step(start, stop):
        return (model(data.images[start:stop].to(device)).argmax(1).cpu() == data.labels[start:stop]).sum().item()

    return sum(in_batches("accuracy", len(data), batch_size, step)) / len(data)


ADVERSARIAL_KEYS = ("epsilon", "steps", "step_size", "step_mode", "random_start", "fraction")


def check_adversarial_spec(spec: dict) -> None:
    """Raise a ValueError naming the key when an `adversarial_training` spec is unusable."""
    missing, unknown = sorted(set(ADVERSARIAL_KEYS) - set(spec)), sorted(set(spec) - set(ADVERSARIAL_KEYS))
    if missing or unknown:
        raise ValueError(
            f"adversarial_training: missing {missing}, unknown {unknown}; give exactly {list(ADVERSARIAL_KEYS)}"
        )
    rules = [
        ("epsilon", 0 < spec["epsilon"] <= 1, "an L-inf radius in (0, 1]"),
        ("steps", isinstance(spec["steps"], int) and spec["steps"] >= 1, "an integer >= 1"),
        ("step_size", spec["step_size"] > 0, "a positive number (the step, or its multiple of epsilon/steps)"),
        ("step_mode", spec["step_mode"] in ("absolute", "relative"), "'absolute' or 'relative'"),
        ("random_start", isinstance(spec["random_start"], bool), "true or false"),
        ("fraction", 0 < spec["fraction"] <= 1, "the share of adversarial images per batch, in (0, 1]"),
    ]
    for key, ok, allowed in rules:
        if not ok:
            raise ValueError(f"adversarial_training.{key}: {spec[key]!r}; allowed: {allowed}")


def _training_attack(spec: dict) -> dict:
    """The registry's PGD L-inf spec of an adversarial-training spec."""
    return {"method": "pgd_linf", **{k: spec[k] for k in ("steps", "step_size", "step_mode", "random_start")}}


def train_classifier(
    model: Normalized,
    train: ImageSet,
    heldout: ImageSet,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device,
    adversarial: dict | None = None,
    augment: bool = False,
    checkpoint_dir=None,
    identity: dict | None = None,
) -> dict:
    """AdamW with warm-up and cosine decay and cross-entropy; deterministic on CPU for a given seed.
    The last incomplete batch of each epoch is dropped (a batch of one breaks BatchNorm).
    `augment`: random crop (padding 4) and horizontal flip of every training batch. On CUDA
    the forward and backward passes run in mixed precision (dds.models.training.mixed_precision).
    `checkpoint_dir`: a checkpoint is written there after every epoch, and a run finds the
    last one there and continues from it (when `identity`, a JSON-able description of the
    run, is the same), ending with the same weights as an uninterrupted run.

    `adversarial` (keys ADVERSARIAL_KEYS) trains with PGD L-inf from the attack registry: in
    each batch the first `fraction` of the (shuffled) images are replaced by their PGD versions
    at radius `epsilon`. They are crafted with the model in eval mode (torchattacks' default,
    as in the evaluation attacks), so crafting neither uses nor updates BatchNorm's batch
    statistics; the update itself runs in train mode on the mixed batch. The metrics then add
    the held-out accuracy under that same PGD."""
    if adversarial is not None:
        check_adversarial_spec(adversarial)
    torch.manual_seed(derive_seed(seed, "train-classifier"))
    order = torch.Generator().manual_seed(derive_seed(seed, "train-classifier-order"))
    crops = torch.Generator().manual_seed(derive_seed(seed, "train-classifier-augment"))
    model.to(device)
    batch_size = min(batch_size, len(train))
    steps_per_epoch = len(train) // batch_size
    optimizer = training.adamw(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = warmup_cosine(optimizer, epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    amp_dtype, scaler = training.mixed_precision(torch.device(device))
    generators = {"order": order, "augment": crops}
    done = (
        0
        if checkpoint_dir is None
        else training.load_checkpoint(checkpoint_dir, identity, model, optimizer, schedule, scaler, generators)
    )
    if adversarial is not None:
        pgd = registry.build(model, _training_attack(adversarial), adversarial["epsilon"], model.net.num_classes)
        adversarial_count = max(1, round(adversarial["fraction"] * batch_size))  # a fraction > 0 is never none
    start = time.perf_counter()
    for epoch in range(done + 1, epochs + 1):
        model.train()
        perm = torch.randperm(len(train), generator=order)
        total = 0.0
        for b in range(steps_per_epoch):
            pos = perm[b * batch_size : (b + 1) * batch_size]
            x, y = train.images[pos].to(device), train.labels[pos].to(device)
            if augment:
                x = training.augment_batch(x, crops)
            if adversarial is not None:
                x = torch.cat([pgd(x[:adversarial_count], y[:adversarial_count]), x[adversarial_count:]])
            with training.autocast(torch.device(device), amp_dtype):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            schedule.step()
            total += loss.item() * len(pos)
            if steps_per_epoch >= 40 and (b + 1) % (steps_per_epoch // 4) == 0 and b + 1 < steps_per_epoch:
                log.info(
                    "epoch %d/%d: batch %d/%d, train loss %.4f (%.1f s)",
                    epoch,
                    epochs,
                    b + 1,
                    steps_per_epoch,
                    total / ((b + 1) * batch_size),
                    time.perf_counter() - start,
                )
        log.info(
            "epoch %d/%d: train loss %.4f (%.1f s)", epoch, epochs, total / len(train), time.perf_counter() - start
        )
        if checkpoint_dir is not None:
            training.save_checkpoint(checkpoint_dir, epoch, identity, model, optimizer, schedule, scaler, generators)
    metrics = {
        "epochs": epochs,
        "train_accuracy": accuracy(model, train, 256, device),
        "heldout_accuracy": accuracy(model, heldout, 256, device),
        "train_images": len(train),
        "heldout_images": len(heldout),
        "seconds": round(time.perf_counter() - start, 2),
    }
    log.info("train accuracy %.4f, held-out accuracy %.4f", metrics["train_accuracy"], metrics["heldout_accuracy"])
    if adversarial is not None:
        adv = attack(
            model,
            _training_attack(adversarial),
            adversarial["epsilon"],
            heldout.images,
            heldout.labels,
            256,
            derive_seed(seed, "train-classifier-robust"),
            device,
        )
        metrics["adversarial_training"] = dict(adversarial)
        metrics["heldout_robust_accuracy"] = accuracy(model, ImageSet(heldout.idx, heldout.labels, adv), 256, device)
        log.info(
            "held-out accuracy under the training PGD (eps %g): %.4f",
            adversarial["epsilon"],
            metrics["heldout_robust_accuracy"],
        )
    return metrics


def save_classifier(model: Normalized, path, spec: dict, in_chans: int, num_classes: int) -> None:
    """Weights plus everything needed to rebuild the model, in the safetensors metadata."""
    metadata = {
        "model": spec["model"],
        "kwargs": json.dumps(spec.get("kwargs", {}), sort_keys=True),
        "feature_denoising": json.dumps(spec.get("feature_denoising"), sort_keys=True),
        "in_chans": str(in_chans),
        "num_classes": str(num_classes),
        "resize": json.dumps(model.resize, sort_keys=True),
    }
    save_tensors(model.state_dict(), path, metadata)


def load_classifier(path, device="cpu") -> Normalized:
    """Rebuild a classifier saved by save_classifier, strictly (every key and shape must match)."""
    state, meta = load_tensors(path)
    missing = {"model", "kwargs", "in_chans", "num_classes"} - set(meta)
    if missing:
        raise DataFileError(f"{path}: safetensors metadata lacks {sorted(missing)}; it was not written by dds")
    if "mean" not in state or "std" not in state:
        raise DataFileError(f"{path}: no normalisation tensors 'mean' and 'std'; it was not written by dds")
    # files from before feature denoising have no such key: plain models
    feature_denoising = json.loads(meta.get("feature_denoising", "null"))
    model = build_classifier(
        meta["model"],
        json.loads(meta["kwargs"]),
        int(meta["in_chans"]),
        int(meta["num_classes"]),
        state["mean"].flatten(),
        state["std"].flatten(),
        feature_denoising,
        resize=json.loads(meta.get("resize", "null")),
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataFileError(f"{path}: weights do not fit {meta['model']}: {err}") from None
    return model.to(device).eval()
