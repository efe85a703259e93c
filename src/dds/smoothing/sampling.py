"""Monte Carlo sampling for denoised smoothing, fused: each batch of noise draws is
denoised once and classified by every classifier that shares the denoiser and sigma (the
UNet costs far more than the classifiers). Then CERTIFY and PREDICT per classifier.

Noise draw j of image `idx` at `sigma` comes from a block of BLOCK draws seeded by (seed,
sigma, idx, phase, j // BLOCK): no draw depends on the batch size, on the shard, or on
the other images, so every per-example result is the same however the work is split.
"""

import logging
import time

import numpy as np
import pandas as pd
import torch

from dds.batching import in_batches
from dds.io import ImageSet
from dds.seeding import derive_seed
from dds.smoothing import bounds

log = logging.getLogger(__name__)

BLOCK = 64


def noise_draws(shape, seed: int, sigma: float, idx: int, phase: str, start: int, stop: int) -> torch.Tensor:
    """Standard normal draws start..stop-1 of one image's stream for `phase`."""
    parts = []
    for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        gen = torch.Generator().manual_seed(derive_seed(seed, "certify", float(sigma), int(idx), phase, block))
        draws = torch.randn((BLOCK, *shape), generator=gen)
        lo, hi = max(start, block * BLOCK) - block * BLOCK, min(stop, (block + 1) * BLOCK) - block * BLOCK
        parts.append(draws[lo:hi])
    return torch.cat(parts)


@torch.inference_mode()
def sample_counts(
    denoiser, classifiers: dict, image: torch.Tensor, idx: int, num: int, phase: str, seed: int, batch_size: int, device
) -> dict[str, np.ndarray]:
    """Class counts of each classifier's predictions on `num` denoised noisy copies of `image`."""

    def step(start, stop):
        shape = denoiser.noise_shape(image.shape)  # a multi-step chain's noise too
        noise = noise_draws(shape, seed, denoiser.sigma, idx, phase, start, stop).to(device)
        denoised = denoiser(image.to(device).expand(stop - start, *image.shape), noise)
        found = {}
        for name, model in classifiers.items():
            logits = model(denoised)
            found[name] = torch.bincount(logits.argmax(1), minlength=logits.shape[1])
        return found

    batches = in_batches("certify sampling", num, batch_size, step)
    # counted on the device, copied once: a copy per batch would make a GPU wait for each batch
    return {name: sum(b[name] for b in batches).cpu().numpy() for name in classifiers}


def certify_images(
    denoiser, classifiers: dict, data: ImageSet, n0: int, n: int, alpha: float, seed: int, batch_size: int, device
) -> dict[str, pd.DataFrame]:
    """Per classifier, one row per image: idx label predict radius correct time (the customary
    columns; correct is 0/1 per row), nA n pA_lower, the PREDICT answer on the same n draws
    (`smoothed_predict`), and the counts of both phases (for the multi-scale cascade).
    `time` is the image's sampling time, shared by the classifiers."""
    for model in classifiers.values():
        model.eval()
    rows = {name: [] for name in classifiers}
    for i in range(len(data)):
        idx, label, image = int(data.idx[i]), int(data.labels[i]), data.images[i]
        start = time.perf_counter()
        counts0 = sample_counts(denoiser, classifiers, image, idx, n0, "selection", seed, batch_size, device)
        counts = sample_counts(denoiser, classifiers, image, idx, n, "estimation", seed, batch_size, device)
        seconds = time.perf_counter() - start
        for name in classifiers:
            cert = bounds.certify(counts0[name], counts[name], denoiser.sigma, alpha)
            rows[name].append(
                {
                    "idx": idx,
                    "label": label,
                    "predict": cert.predict,
                    "radius": cert.radius,
                    "correct": int(cert.predict == label),
                    "time": seconds,
                    "nA": cert.nA,
                    "n": n,
                    "pA_lower": cert.pA_lower,
                    "smoothed_predict": bounds.predict(counts[name], alpha),
                    "counts0": counts0[name].astype(np.int64),
                    "counts": counts[name].astype(np.int64),
                }
            )
        if (i + 1) % 10 == 0 or i + 1 == len(data):
            log.info("certified %d/%d images at sigma=%g (%.2f s per image)", i + 1, len(data), denoiser.sigma, seconds)
    return {name: pd.DataFrame(r) for name, r in rows.items()}
