"""Classifiers: timm models by name, with the input normalisation inside the model so that
every attack and denoiser works on [0,1] images; trained here, stored as safetensors."""

import json
import logging
import time

import timm
import torch
from torch import nn

from .io import DataFileError, ImageSet, load_tensors, save_tensors
from .optim import warmup_cosine
from .seeding import derive_seed

log = logging.getLogger(__name__)


class Normalized(nn.Module):
    """`net((x - mean) / std)`: takes images in [0,1]."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def build_classifier(model: str, kwargs: dict, in_chans: int, num_classes: int, mean, std) -> Normalized:
    """A timm model by name and keyword arguments (e.g. block_args={"attn_layer": "cbam"})."""
    if not timm.is_model(model):
        raise ValueError(f"unknown timm model {model!r}; see timm.list_models() for the allowed names")
    net = timm.create_model(model, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)
    return Normalized(net, mean, std)


@torch.inference_mode()
def accuracy(model: nn.Module, data: ImageSet, batch_size: int, device) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device)
        correct += (model(x).argmax(1).cpu() == data.labels[start : start + batch_size]).sum().item()
    return correct / len(data)


def train_classifier(model: Normalized, train: ImageSet, heldout: ImageSet, epochs: int, batch_size: int,
                     lr: float, weight_decay: float, seed: int, device) -> dict:
    """AdamW with warm-up and cosine decay and cross-entropy; deterministic on CPU for a given seed.
    The last incomplete batch of each epoch is dropped (a batch of one breaks BatchNorm)."""
    torch.manual_seed(derive_seed(seed, "train-classifier"))
    order = torch.Generator().manual_seed(derive_seed(seed, "train-classifier-order"))
    model.to(device)
    batch_size = min(batch_size, len(train))
    steps_per_epoch = len(train) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = warmup_cosine(optimizer, epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(train), generator=order)
        total = 0.0
        for b in range(steps_per_epoch):
            pos = perm[b * batch_size : (b + 1) * batch_size]
            x, y = train.images[pos].to(device), train.labels[pos].to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(pos)
        log.info("epoch %d/%d: train loss %.4f (%.1f s)", epoch, epochs, total / len(train), time.perf_counter() - start)
    metrics = {
        "epochs": epochs,
        "train_accuracy": accuracy(model, train, 256, device),
        "heldout_accuracy": accuracy(model, heldout, 256, device),
        "train_images": len(train),
        "heldout_images": len(heldout),
        "seconds": round(time.perf_counter() - start, 2),
    }
    log.info("train accuracy %.4f, held-out accuracy %.4f", metrics["train_accuracy"], metrics["heldout_accuracy"])
    return metrics


def save_classifier(model: Normalized, path, spec: dict, in_chans: int, num_classes: int) -> None:
    """Weights plus everything needed to rebuild the model, in the safetensors metadata."""
    metadata = {
        "model": spec["model"],
        "kwargs": json.dumps(spec.get("kwargs", {}), sort_keys=True),
        "in_chans": str(in_chans),
        "num_classes": str(num_classes),
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
    model = build_classifier(meta["model"], json.loads(meta["kwargs"]), int(meta["in_chans"]),
                             int(meta["num_classes"]), state["mean"].flatten(), state["std"].flatten())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataFileError(f"{path}: weights do not fit {meta['model']}: {err}") from None
    return model.to(device).eval()
