"""Accuracy against the number of PGD iterations at one epsilon (Xie et al.'s Figure 6): the
attack rerun with each step count, its images classified undefended and denoised at each sigma."""

import logging

import pandas as pd
from torch import nn

from dds.attacks.generate import attack, attack_seed, perturbation_norms
from dds.diffusion.one_shot import denoise_images
from dds.io import ImageSet
from dds.models.classifiers import accuracy

log = logging.getLogger(__name__)

COLUMNS = ["classifier", "attack", "denoiser", "epsilon", "steps", "defence", "accuracy", "n", "linf_max", "l2_max"]


def iterations_sweep(
    model: nn.Module,
    denoisers: dict,
    clean: ImageSet,
    spec: dict,
    epsilon: float,
    steps_grid,
    names: dict,
    seed: int,
    batch_size: int,
    device,
) -> pd.DataFrame:
    """One row per (step count, defence): accuracy on `clean` attacked with `spec` at `epsilon`
    with that many steps, undefended ("none") and after each of `denoisers` (sigma -> denoiser,
    "sigma=<s>"; the noise draws of the main denoise stage), with the perturbations' largest norms.
    `names`: the classifier, attack and denoiser (table columns; the attack's seed)."""
    keys, rows = (names["classifier"], names["attack"], names["denoiser"]), []
    for steps in steps_grid:
        seed_steps = attack_seed(seed, names["classifier"], f"{names['attack']}-steps{steps}", epsilon, 0)
        adv = attack(
            model, {**spec, "steps": int(steps)}, epsilon, clean.images, clean.labels, batch_size, seed_steps, device
        )
        linf, l2 = perturbation_norms(clean.images, adv)
        attacked = ImageSet(clean.idx, clean.labels, adv)
        sets = {"none": attacked}
        sets.update(
            {
                f"sigma={s:g}": ImageSet(clean.idx, clean.labels, denoise_images(d, attacked, seed, batch_size, device))
                for s, d in denoisers.items()
            }
        )
        for defence, images in sets.items():
            acc = accuracy(model, images, batch_size, device)
            rows.append(
                (*keys, float(epsilon), int(steps), defence, acc, len(clean), float(linf.max()), float(l2.max()))
            )
        log.info(
            "%d steps: undefended accuracy %.4f, max Linf %.5f",
            steps,
            rows[-len(sets)][COLUMNS.index("accuracy")],
            float(linf.max()),
        )
    return pd.DataFrame(rows, columns=COLUMNS)
