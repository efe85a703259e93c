"""The adaptive attack through noise, denoiser and classifier, and its table."""

import logging

import torch

from dds.device import resolve_device
from dds.diffusion.loading import load_denoiser
from dds.io import (
    ImageSet,
    first_images,
    read_images,
    read_tables,
    write_table,
    write_text,
)
from dds.reporting import attack_tables, figures
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


def adaptive(spec: dict, adaptive_spec: dict, attack_name: str, classifier_name: str, denoiser_name: str,
             sigma: float, seed: int, batch_size: int, device: str, eval_path, unaware_paths: dict, classifier_path,
             denoiser_path, out_path) -> None:
    """The adaptive (EOT) attack through noise, denoiser and classifier at one sigma, for
    each target and epsilon, on the first `num_images` evaluation images; the same images'
    unaware PGD examples (`unaware_paths`: epsilon -> shard paths) evaluated beside them.
    One row per (image, epsilon, attack): single-draw prediction (the noise draw of the
    denoise stage) and the smoothed classifier's PREDICT on fresh draws."""
    import numpy as np
    import pandas as pd

    from dds.attacks import adaptive as adaptive_attack
    from dds.attacks import generate as attacks
    from dds.diffusion.one_shot import denoise_images
    from dds.models import classifiers
    from dds.smoothing import bounds as smoothing
    from dds.smoothing.sampling import sample_counts

    dev = resolve_device(device)
    count, alpha = adaptive_spec["num_images"], adaptive_spec["alpha"]
    clean = read_images(eval_path).subset(0, count)
    model = classifiers.load_classifier(classifier_path, dev)
    denoiser = load_denoiser(denoiser_path, sigma, dev)
    defended = adaptive_attack.Defended(denoiser, model).to(dev)

    def evaluate(images: torch.Tensor, kind: str, epsilon: float) -> pd.DataFrame:
        data = ImageSet(clean.idx, clean.labels, images)
        single = model(denoise_images(denoiser, data, seed, batch_size, dev).to(dev)).argmax(1).cpu()
        smoothed = [smoothing.predict(sample_counts(denoiser, {"m": model}, data.images[i], int(data.idx[i]),
                                                    adaptive_spec["vote_draws"], "adaptive-vote", seed, batch_size,
                                                    dev)["m"], alpha)
                    for i in range(len(data))]
        linf, l2 = attacks.perturbation_norms(clean.images, images)
        return pd.DataFrame({
            "idx": clean.idx.numpy(), "label": clean.labels.numpy(), "epsilon": float(epsilon), "attack": kind,
            "pred_single": single.numpy(), "correct_single": (single == clean.labels).numpy(),
            "pred_smoothed": np.asarray(smoothed, dtype=np.int64),
            "correct_smoothed": np.asarray(smoothed) == clean.labels.numpy(),
            "linf": linf.numpy(), "l2": l2.numpy(),
        })

    frames = []
    with torch.inference_mode():
        frames.append(evaluate(clean.images, "clean", 0.0))
    for eps in adaptive_spec["epsilons"]:
        unaware = first_images(unaware_paths[float(eps)], count)
        if not torch.equal(unaware.idx, clean.idx):
            raise ValueError(f"the unaware adversarial set at epsilon {eps} does not hold the first {count} "
                             "evaluation images in order; delete it and rerun the attack rule")
        with torch.inference_mode():
            frames.append(evaluate(unaware.images, "unaware", eps))
        unaware_acc = frames[-1]["correct_single"].mean()
        for target in adaptive_spec["targets"]:
            adv = adaptive_attack.adaptive_attack(
                defended, spec, float(eps), clean.idx, clean.images, clean.labels, target,
                adaptive_spec["eot_draws"], adaptive_spec["draws_per_pass"],
                derive_seed(seed, "adaptive", classifier_name, attack_name, float(eps), target),
                max(1, batch_size // adaptive_spec["draws_per_pass"]), dev)  # batch_size samples per pass
            with torch.inference_mode():
                frames.append(evaluate(adv, f"adaptive-{target}", eps))
            log.info("eps=%g sigma=%g: single-draw accuracy unaware %.4f, adaptive (%s target) %.4f", eps, sigma,
                     unaware_acc, target, frames[-1]["correct_single"].mean())
    table = pd.concat(frames, ignore_index=True).assign(classifier=classifier_name, denoiser=denoiser_name,
                                                        attack_name=attack_name, sigma=float(sigma))
    write_table(table, out_path)


def adaptive_summary(dataset: str, paths, table_path, tex_path, png_path, svg_path) -> None:
    """The adaptive attack beside the unaware one: table, LaTeX and figure."""
    table = attack_tables.adaptive_table(read_tables(paths))
    write_table(table, table_path)
    caption = (f"{dataset}: single-draw denoised accuracy under the unaware PGD and under the adaptive attack "
               "through noise, denoiser and classifier (EOT)")
    write_text(attack_tables.latex_adaptive(table, caption, f"tab:{dataset}-adaptive"), tex_path)
    figures.adaptive_figure(table, png_path, svg_path)

