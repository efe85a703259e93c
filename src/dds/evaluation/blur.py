"""Gaussian-blur majority smoothing (Sethi 2023): classify an image as is (NS), blurred once
(SS) and blurred twice (DS); the final label is the one at least two of the three share, and
the image is rejected when all three differ. Also the additive noise of the blog's
experiment and the per-noise-level table."""

import logging
import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from dds.batching import in_batches
from dds.io import ImageSet, require_columns
from dds.seeding import image_normal

log = logging.getLogger(__name__)

REJECT = -1  # pred_maj of an image whose three predictions all differ
PER_IMAGE_COLUMNS = ["idx", "label", "pred_ns", "pred_ss", "pred_ds", "pred_maj"]
SUMMARY_COLUMNS = ["acc_ns", "acc_ss", "acc_ds", "acc_maj", "reject_rate", "n"]


def gaussian_blur(kernel_size: int, sigma: float) -> nn.Module:
    """kornia's GaussianBlur2d with a square `kernel_size` kernel of standard deviation `sigma`.

    Borders are padded in kornia's default mode, 'reflect' (mirror without repeating the edge
    pixel), so a constant image stays constant. Reflect padding needs images larger than
    kernel_size // 2 in each direction.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel_size must be an odd integer >= 3, got {kernel_size!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"blur sigma must be a finite number > 0, got {sigma!r}")
    # Imported here so that the table functions of this module work without kornia.
    from kornia.filters import GaussianBlur2d

    return GaussianBlur2d((kernel_size, kernel_size), (float(sigma), float(sigma)), border_type="reflect")


def majority_vote(p_ns: torch.Tensor, p_ss: torch.Tensor, p_ds: torch.Tensor) -> torch.Tensor:
    """Per image, the label at least two of the three predictions share, else REJECT (-1)."""
    if not (p_ns.shape == p_ss.shape == p_ds.shape):
        raise ValueError(
            f"majority_vote: prediction shapes differ: {tuple(p_ns.shape)}, {tuple(p_ss.shape)}, {tuple(p_ds.shape)}"
        )
    # If NS agrees with either other prediction, NS is the majority; otherwise only SS == DS can be.
    out = torch.where(p_ss == p_ds, p_ss, torch.full_like(p_ns, REJECT))
    return torch.where((p_ns == p_ss) | (p_ns == p_ds), p_ns, out)


@torch.inference_mode()
def blur_predictions(
    model: nn.Module, data: ImageSet, kernel_size: int, blur_sigma: float, batch_size: int, device
) -> pd.DataFrame:
    """One row per image: idx, label, predictions on the image (pred_ns), on it blurred once
    (pred_ss) and twice (pred_ds), and their majority (pred_maj, -1 = rejected); all int64."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    blur = gaussian_blur(kernel_size, blur_sigma).to(device)
    if len(data) and min(data.images.shape[-2:]) <= kernel_size // 2:
        raise ValueError(
            f"images of size {tuple(data.images.shape[-2:])} are too small for reflect padding "
            f"of a {kernel_size}x{kernel_size} blur kernel"
        )
    model.eval()

    def step(start, stop):
        x = data.images[start:stop].to(device)
        once = blur(x)
        return [model(view).argmax(1).cpu() for view in (x, once, blur(once))]

    batches = in_batches("blur", len(data), batch_size, step)
    p = {
        k: torch.cat([b[i] for b in batches]) if batches else torch.empty(0, dtype=torch.long)
        for i, k in enumerate(("ns", "ss", "ds"))
    }
    majority = majority_vote(p["ns"], p["ss"], p["ds"])
    return pd.DataFrame(
        {
            "idx": data.idx.numpy().astype(np.int64),
            "label": data.labels.numpy().astype(np.int64),
            "pred_ns": p["ns"].numpy().astype(np.int64),
            "pred_ss": p["ss"].numpy().astype(np.int64),
            "pred_ds": p["ds"].numpy().astype(np.int64),
            "pred_maj": majority.numpy().astype(np.int64),
        }
    )


def add_noise(data: ImageSet, level: float, seed: int) -> ImageSet:
    """Images plus Gaussian noise of standard deviation `level`, clamped to [0,1].

    Each image gets its own generator, seeded from (seed, level, idx), so its noise does not
    depend on which shard or batch it is in. Level 0 returns `data` itself.
    """
    if not math.isfinite(level) or level < 0:
        raise ValueError(f"noise level must be a finite number >= 0, got {level!r}")
    if level == 0 or len(data) == 0:
        return data
    noise = image_normal(data.idx, data.images.shape[1:], seed, "blur-noise", float(level))
    noisy = (data.images + level * noise.to(data.images.device, data.images.dtype)).clamp(0, 1)
    return ImageSet(data.idx, data.labels, noisy)


def _summary(group: pd.DataFrame) -> dict:
    accepted = group[group["pred_maj"] != REJECT]
    return {
        "acc_ns": float((group["pred_ns"] == group["label"]).mean()),
        "acc_ss": float((group["pred_ss"] == group["label"]).mean()),
        "acc_ds": float((group["pred_ds"] == group["label"]).mean()),
        # NaN, not 0, when every image was rejected: there is no accepted image to be right about.
        "acc_maj": float((accepted["pred_maj"] == accepted["label"]).mean()) if len(accepted) else math.nan,
        "reject_rate": 1.0 - len(accepted) / len(group),
        "n": len(group),
    }


def blur_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per group of the key columns (every column not a per-image one, e.g. classifier,
    source, noise_level, epsilon): acc_ns, acc_ss, acc_ds, acc_maj, reject_rate, n.

    acc_ns/ss/ds are over all images of the group; acc_maj is over the images NOT rejected,
    and reject_rate is the fraction rejected. That is how the blog's numbers must have been
    computed: a correct majority needs two of the three predictions correct, so over all
    images acc_maj <= (acc_ns + acc_ss + acc_ds) / 2, which at noise 0.375 is
    (0.0902 + 0.3097 + 0.3220) / 2 = 0.36 < the published 0.4118. Over the accepted images it
    is 0.4118 * (1 - 0.3076) = 0.285 of all images, within that bound. acc_maj is NaN for a
    group whose images were all rejected.
    """
    require_columns(results, PER_IMAGE_COLUMNS, "blur_table")
    keys = [c for c in results.columns if c not in PER_IMAGE_COLUMNS]
    if results.empty:
        return pd.DataFrame(columns=keys + SUMMARY_COLUMNS)
    duplicated = results[results.duplicated(keys + ["idx"])]
    if len(duplicated):
        where = {k: duplicated.iloc[0][k] for k in keys}
        raise ValueError(
            f"blur_table: image idx {int(duplicated.iloc[0]['idx'])} appears more than once "
            f"in the group {where}; were the same shards read twice?"
        )
    if not keys:
        return pd.DataFrame([_summary(results)], columns=SUMMARY_COLUMNS)
    rows = [
        {**dict(zip(keys, key)), **_summary(group)} for key, group in results.groupby(keys, sort=True, dropna=False)
    ]
    return pd.DataFrame(rows, columns=keys + SUMMARY_COLUMNS)


DEFENCE_COLUMNS = ["classifier", "attack", "epsilon", "defence", "accuracy", "reject_rate"]


def compare_defences(accuracy: pd.DataFrame, blur: pd.DataFrame) -> pd.DataFrame:
    """Per classifier and attack epsilon, the accuracy under each defence: none, diffusion
    denoising at each sigma (from the accuracy tables), single blur and the blur majority vote
    (from the blur tables' attacked rows; the majority keeps its reject rate)."""
    attacked = blur.query("source == 'attack'")
    keys = ["classifier", "attack", "epsilon"]
    several = accuracy["denoiser"].nunique() > 1
    parts = [accuracy.drop_duplicates(keys).assign(defence="none", accuracy=accuracy["pgd_acc"])]
    parts += [
        rows.assign(defence=f"{d + ' ' if several else ''}diffusion sigma={s:g}", accuracy=rows["denoised_acc"])
        for (d, s), rows in accuracy.groupby(["denoiser", "sigma"])
    ]
    parts += [
        attacked.drop(columns="reject_rate").assign(defence="blur single", accuracy=attacked["acc_ss"]),
        attacked.assign(defence="blur majority", accuracy=attacked["acc_maj"]),
    ]
    table = pd.concat([p.reindex(columns=DEFENCE_COLUMNS) for p in parts], ignore_index=True)
    return table.sort_values(keys + ["defence"], ignore_index=True)
