"""The PGD iteration sweep and its table."""

import logging

from dds.device import resolve_device
from dds.diffusion.loading import load_denoiser
from dds.io import (
    ImageSet,
    read_images,
    read_tables,
    write_table,
)
from dds.reporting import figures

log = logging.getLogger(__name__)


def iterations(spec: dict, attack_name: str, classifier_name: str, denoiser_name: str, epsilon: float, steps_grid,
               count: int,
               sigmas, seed: int, batch_size: int, device: str, eval_path, classifier_path, denoiser_path,
               out_path) -> None:
    """Accuracy against PGD iterations at one epsilon (Xie et al.'s Figure 6): the attack rerun
    with each step count on the first `count` evaluation images, undefended and denoised at
    each sigma (the noise draws of the main denoise stage)."""
    import pandas as pd

    from dds.attacks import generate as attacks
    from dds.diffusion.one_shot import denoise_images
    from dds.evaluation import classify
    from dds.models import classifiers

    dev = resolve_device(device)
    clean = read_images(eval_path).subset(0, count)
    model = classifiers.load_classifier(classifier_path, dev)
    denoisers = {float(s): load_denoiser(denoiser_path, float(s), dev) for s in sigmas}
    rows = []
    for steps in steps_grid:
        adv = attacks.attack(model, {**spec, "steps": int(steps)}, epsilon, clean.images, clean.labels, batch_size,
                             attacks.attack_seed(seed, classifier_name, f"{attack_name}-steps{steps}", epsilon, 0),
                             dev)
        linf, l2 = attacks.perturbation_norms(clean.images, adv)
        attacked = ImageSet(clean.idx, clean.labels, adv)
        sets = {"none": attacked}
        sets.update({f"sigma={s:g}": ImageSet(clean.idx, clean.labels, denoise_images(d, attacked, seed, batch_size, dev))
                     for s, d in denoisers.items()})
        for defence, images in sets.items():
            acc = float(classify.classify_predictions(model, images, batch_size, dev)["correct"].mean())
            rows.append({"classifier": classifier_name, "attack": attack_name, "denoiser": denoiser_name,
                         "epsilon": float(epsilon),
                         "steps": int(steps), "defence": defence, "accuracy": acc, "n": len(clean),
                         "linf_max": float(linf.max()), "l2_max": float(l2.max())})
        log.info("%d steps: undefended accuracy %.4f, max Linf %.5f", steps, rows[-len(sets)]["accuracy"],
                 float(linf.max()))
    write_table(pd.DataFrame(rows), out_path)


def iterations_summary(paths, table_path, png_path, svg_path) -> None:
    """The PGD iteration sweeps of every classifier in one table and figure."""
    table = read_tables(paths)
    write_table(table, table_path)
    figures.iterations_figure(table, png_path, svg_path)

