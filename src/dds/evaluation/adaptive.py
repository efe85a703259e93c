"""The adaptive attack evaluated beside the unaware one, the defence scored as the random
defence it is (docs/science.md §1.6): each image set classified through noise, denoiser and
classifier with the main tables' noise draw (one draw), and over k fresh draws (per image: the
share of draws classified right and the majority vote)."""

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from dds.attacks import adaptive as adaptive_attacks
from dds.attacks.generate import perturbation_norms
from dds.attacks.registry import step_size
from dds.batching import in_batches
from dds.diffusion.one_shot import image_noise
from dds.io import ImageSet
from dds.seeding import derive_seed, image_normal

log = logging.getLogger(__name__)

FIXED_NOISE = "adaptive-fixed-noise"
MASKED = "adaptive-single-masked"
BPDA = "adaptive-single-bpda"
# the settings each row records, NA where one does not apply (the clean images' attack, the
# unaware attack's EOT draws, clamps and gradient: it is made on the bare classifier)
SETTINGS = {
    "t_star": "Int64",
    "eval_draws": "Int64",
    "steps": "Int64",
    "step_size": "float64",
    "eot_draws": "Int64",
    "straight_through": "boolean",
    "bpda": "boolean",
}


class Variant(NamedTuple):
    """One adaptive attack: its kind (the table's label), target and gradient."""

    kind: str
    target: str
    straight_through: bool
    fixed_noise: bool = False
    bpda: bool = False


def evaluation_noise(idx: torch.Tensor, shape, seed: int, sigma: float, draw: int) -> torch.Tensor:
    """Standard normal noise of evaluation draw `draw`, seeded by (seed, sigma, draw, image
    index): neither the denoise stage's draw nor any the attack uses, and independent of batching."""
    return image_normal(idx, shape, seed, "adaptive-eval", float(sigma), draw)


@torch.inference_mode()
def defended_classes(defended, data: ImageSet, noise, batch_size: int, device) -> torch.Tensor:
    """The class `defended` gives each image of `data` with the noise `noise(idx, shape)`."""

    def step(start, stop):
        part = data.subset(start, stop)
        shape = defended.denoiser.noise_shape(part.images.shape[1:])
        z = defended(part.images.to(device), noise(part.idx, shape).to(device))
        return z.argmax(1).cpu()

    return torch.cat(in_batches("adaptive evaluation", len(data), batch_size, step))


def majority(preds: np.ndarray) -> np.ndarray:
    """Per column of `preds` ([draws, images] classes), the class most draws give; a tie goes
    to the lowest of the tied classes."""
    return np.array([np.bincount(column).argmax() for column in preds.T], dtype=np.int64)


def defended_predictions(
    defended,
    clean: ImageSet,
    images: torch.Tensor,
    kind: str,
    epsilon: float,
    draws: int,
    seed: int,
    batch_size: int,
    device,
) -> pd.DataFrame:
    """One row per image of `clean` as `images` (attacked by `kind` at `epsilon`): the class
    with the denoise stage's noise draw (pred_single), over `draws` fresh draws
    (evaluation_noise) the draws classified right (correct_draws, one flag per draw, and
    their share frac_correct) and the majority vote (pred_majority), and the perturbation's norms."""
    data = ImageSet(clean.idx, clean.labels, images)
    sigma = defended.denoiser.sigma
    single = defended_classes(defended, data, lambda i, shape: image_noise(i, shape, seed, sigma), batch_size, device)
    per_draw = np.stack(
        [
            defended_classes(
                defended, data, lambda i, shape, d=d: evaluation_noise(i, shape, seed, sigma, d), batch_size, device
            ).numpy()
            for d in range(draws)
        ]
    )
    labels = clean.labels.numpy()
    right, vote = per_draw == labels, majority(per_draw)
    linf, l2 = perturbation_norms(clean.images, images)
    return pd.DataFrame(
        {
            "idx": clean.idx.numpy(),
            "label": labels,
            "epsilon": float(epsilon),
            "attack": kind,
            "pred_single": single.numpy(),
            "correct_single": (single == clean.labels).numpy(),
            "correct_draws": list(right.T),
            "frac_correct": right.mean(0),
            "pred_majority": vote,
            "correct_majority": vote == labels,
            "linf": linf.numpy(),
            "l2": l2.numpy(),
        }
    )


def variants(spec: dict) -> list[Variant]:
    """The adaptive attacks `spec` asks for: each target; with compare_masked, the single target
    with masked gradients; with compare_bpda, the single target with BPDA; with fixed_noise, the
    diagnostic against the single target with the evaluation's own draw."""
    through = spec["straight_through"]
    out = [Variant(f"adaptive-{target}", target, through) for target in spec["targets"]]
    if spec["compare_masked"] and through:
        out.append(Variant(MASKED, "single", False))
    if spec["compare_bpda"]:
        out.append(Variant(BPDA, "single", through, bpda=True))
    if spec["fixed_noise"]:
        out.append(Variant(FIXED_NOISE, "single", through, fixed_noise=True))
    return out


def adaptive_evaluation(
    model,
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
    """The adaptive (EOT) attacks of `spec` (variants) with the PGD of `attack_spec` through
    noise, `denoiser` and `model`, at each epsilon of `unaware` (epsilon -> the unaware PGD
    images of `clean`), evaluated (defended_predictions) beside the clean and the unaware
    images, each row with the defence's and the attack's settings (SETTINGS). `names`: the
    classifier and attack (the attack's seed) and denoiser (table columns)."""
    sigma, draws = denoiser.sigma, spec["eval_draws"]
    defended = adaptive_attacks.Defended(denoiser, model).to(device).eval()

    def evaluate(images, kind, eps, steps=None, step=None, eot=None, through=None, bpda=None):
        rows = defended_predictions(defended, clean, images, kind, eps, draws, seed, batch_size, device)
        return rows.assign(
            t_star=denoiser.t,
            eval_draws=draws,
            steps=steps,
            step_size=step,
            eot_draws=eot,
            straight_through=through,
            bpda=bpda,
        )

    def fixed(idx, shape, step, k):  # the evaluation's single draw at every step
        return image_noise(idx, shape, seed, sigma)

    frames = [evaluate(clean.images, "clean", 0.0)]
    for eps in sorted(unaware):
        if not torch.equal(unaware[eps].idx, clean.idx):
            raise ValueError(
                f"the unaware adversarial set at epsilon {eps} does not hold the first {len(clean)} "
                "evaluation images in order; delete it and rerun the attack rule"
            )
        pgd = {"steps": attack_spec["steps"], "step": step_size(attack_spec, eps)}
        frames.append(evaluate(unaware[eps].images, "unaware", eps, **pgd))
        unaware_acc = frames[-1]["correct_single"].mean()
        for kind, target, through, fixed_noise, bpda in variants(spec):
            eot = 1 if fixed_noise else spec["eot_draws"]
            per_pass = min(eot, spec["draws_per_pass"])
            adv = adaptive_attacks.adaptive_attack(
                defended,
                attack_spec,
                float(eps),
                clean.idx,
                clean.images,
                clean.labels,
                target,
                eot,
                per_pass,
                derive_seed(seed, "adaptive", names["classifier"], names["attack"], float(eps), target),
                max(1, batch_size // per_pass),  # batch_size samples per pass
                device,
                straight_through=through,
                bpda=bpda,
                noise=fixed if fixed_noise else None,
            )
            frames.append(evaluate(adv, kind, eps, **pgd, eot=eot, through=through, bpda=bpda))
            log.info(
                "eps=%g sigma=%g %s: one-draw accuracy %.4f (unaware %.4f), mean over %d draws %.4f",
                eps,
                sigma,
                kind,
                frames[-1]["correct_single"].mean(),
                unaware_acc,
                draws,
                frames[-1]["frac_correct"].mean(),
            )
    table = pd.concat(frames, ignore_index=True).astype(SETTINGS)
    return table.assign(
        classifier=names["classifier"], denoiser=names["denoiser"], attack_name=names["attack"], sigma=float(sigma)
    )
