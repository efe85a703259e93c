"""Predictions of a classifier on an image set, as a table."""

import logging

import numpy as np
import pandas as pd
import torch
from torch import nn

from dds.batching import in_batches
from dds.io import ImageSet

log = logging.getLogger(__name__)


@torch.inference_mode()
def logits(model: nn.Module, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    model.eval()
    out = in_batches(
        "classify", len(images), batch_size, lambda start, stop: model(images[start:stop].to(device)).float().cpu()
    )
    return torch.cat(out) if out else torch.empty((0, 0))


def predictions(model: nn.Module, data: ImageSet, batch_size: int, device) -> pd.DataFrame:
    """One row per image: idx, label, pred, correct, logits (the accuracy is logged)."""
    z = logits(model, data.images, batch_size, device)
    pred = z.argmax(1) if len(z) else torch.empty(0, dtype=torch.long)
    if len(pred):
        log.info("accuracy %.4f on %d images", (pred == data.labels).float().mean().item(), len(pred))
    return pd.DataFrame(
        {
            "idx": data.idx.numpy().astype(np.int64),
            "label": data.labels.numpy().astype(np.int64),
            "pred": pred.numpy().astype(np.int64),
            "correct": (pred == data.labels).numpy(),
            "logits": list(z.numpy().astype(np.float32)),
        }
    )
