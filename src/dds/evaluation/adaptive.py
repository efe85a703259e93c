"""The adaptive attack evaluated beside the unaware one (docs/science.md §1.6): each image set
classified through the defence with the main tables' single noise draw, and by the smoothed
classifier's PREDICT on fresh draws."""

import logging

import numpy as np
import pandas as pd
import torch
from torch import nn

from dds.attacks import adaptive as adaptive_attacks
from dds.attacks.generate import perturbation_norms
from dds.diffusion.one_shot import denoise_images
from dds.evaluation.classify import logits
from dds.io import ImageSet
from dds.seeding import derive_seed
from dds.smoothing.bounds import predict
from dds.smoothing.sampling import sample_counts

log = logging.getLogger(__name__)


@torch.inference_mode()
def defended_predictions(
    model: nn.Module,
    denoiser,
    clean: ImageSet,
    images: torch.Tensor,
    kind: str,
    epsilon: float,
    spec: dict,
    seed: int,
    batch_size: int,
    device,
) -> pd.DataFrame:
    """One row per image of `clean` as `images` (attacked by `kind` at `epsilon`): the
    single-draw prediction through denoiser and classifier (the denoise stage's noise draw), the
    smoothed classifier's PREDICT on `spec["vote_draws"]` fresh draws at level `spec["alpha"]`,
    and the perturbation's norms."""
    data = ImageSet(clean.idx, clean.labels, images)
    single = logits(model, denoise_images(denoiser, data, seed, batch_size, device), batch_size, device).argmax(1)
    smoothed = [
        predict(
            sample_counts(
                denoiser,
                {"m": model},
                data.images[i],
                int(data.idx[i]),
                spec["vote_draws"],
                "adaptive-vote",
                seed,
                batch_size,
                device,
            )["m"],
            spec["alpha"],
        )
        for i in range(len(data))
    ]
    linf, l2 = perturbation_norms(clean.images, images)
    return pd.DataFrame(
        {
            "idx": clean.idx.numpy(),
            "label": clean.labels.numpy(),
            "epsilon": float(epsilon),
            "attack": kind,
            "pred_single": single.numpy(),
            "correct_single": (single == clean.labels).numpy(),
            "pred_smoothed": np.asarray(smoothed, dtype=np.int64),
            "correct_smoothed": np.asarray(smoothed) == clean.labels.numpy(),
            "linf": linf.numpy(),
            "l2": l2.numpy(),
        }
    )


def adaptive_evaluation(
    model: nn.Module,
    denoiser,
    clean: ImageSet,
    unaware: dict,
    attack_spec: dict,
    spec: dict,
    names: dict,
    seed: int,
    batch_size: int,
    device,
) -> pd.DataFrame:
    """The adaptive (EOT) attack of `attack_spec` through noise, `denoiser` and `model`, for each
    target of `spec` and each epsilon of `unaware` (epsilon -> the unaware PGD images of `clean`),
    evaluated (defended_predictions) beside the clean and the unaware images. `names`: the
    classifier and attack (the attack's seed) and denoiser (table columns)."""
    sigma = denoiser.sigma
    defended = adaptive_attacks.Defended(denoiser, model).to(device)
    frames = [defended_predictions(model, denoiser, clean, clean.images, "clean", 0.0, spec, seed, batch_size, device)]
    for eps in sorted(unaware):
        if not torch.equal(unaware[eps].idx, clean.idx):
            raise ValueError(
                f"the unaware adversarial set at epsilon {eps} does not hold the first {len(clean)} "
                "evaluation images in order; delete it and rerun the attack rule"
            )
        frames.append(
            defended_predictions(
                model, denoiser, clean, unaware[eps].images, "unaware", eps, spec, seed, batch_size, device
            )
        )
        unaware_acc = frames[-1]["correct_single"].mean()
        for target in spec["targets"]:
            adv = adaptive_attacks.adaptive_attack(
                defended,
                attack_spec,
                float(eps),
                clean.idx,
                clean.images,
                clean.labels,
                target,
                spec["eot_draws"],
                spec["draws_per_pass"],
                derive_seed(seed, "adaptive", names["classifier"], names["attack"], float(eps), target),
                max(1, batch_size // spec["draws_per_pass"]),
                device,
            )  # batch_size samples per pass
            frames.append(
                defended_predictions(
                    model, denoiser, clean, adv, f"adaptive-{target}", eps, spec, seed, batch_size, device
                )
            )
            log.info(
                "eps=%g sigma=%g: single-draw accuracy unaware %.4f, adaptive (%s target) %.4f",
                eps,
                sigma,
                unaware_acc,
                target,
                frames[-1]["correct_single"].mean(),
            )
    return pd.concat(frames, ignore_index=True).assign(
        classifier=names["classifier"], denoiser=names["denoiser"], attack_name=names["attack"], sigma=float(sigma)
    )
