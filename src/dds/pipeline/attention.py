"""Attention maps under attack and denoising, and their table."""

import logging
import math

from dds import layout
from dds.io import first_images, read_tables, write_table

log = logging.getLogger(__name__)


def attention_maps(
    *,
    classifier,
    adversarial,
    denoised,
    table,
    png,
    classifier_name: str,
    denoiser_name: str,
    spec: dict,
    batch_size: int,
    device: str,
) -> None:
    """Where the classifier looks on its first `spec["num_images"]` evaluation images: maps
    (Grad-CAM, and CBAM's spatial attention where the model has it) of the clean images
    (`adversarial` at epsilon 0), of their PGD versions at each epsilon, and of those `denoised`
    at each sigma; per image and condition the rank correlation and top-k overlap with the clean
    map; and a figure grid (Grad-CAM) of the first `spec["figure_images"]` images."""
    from dds.device import resolve_device
    from dds.evaluation.attention_maps import attention_under_attack
    from dds.models.classifiers import load_classifier
    from dds.precision import GRADIENT_PRECISION, combined, precision_of, with_precision
    from dds.reporting.attack_figures import attention_grid_figure

    dev = resolve_device(device)
    count = spec["num_images"]
    model = load_classifier(classifier, dev)
    attacked = layout.group(adversarial, layout.ADVERSARIAL, "epsilon")
    clean = first_images(attacked[0.0], count)
    sets = [
        ("adversarial", eps, math.nan, first_images(paths, count)) for eps, paths in sorted(attacked.items()) if eps > 0
    ]
    sets += [
        ("denoised", eps, sigma, first_images(paths, count))
        for (sigma, eps), paths in sorted(layout.group(denoised, layout.DENOISED, "sigma", "epsilon").items())
    ]
    per_image, gradcam = attention_under_attack(model, clean, sets, classifier_name, batch_size)
    # the maps in fp32, of images denoised in `inference.precision`
    per_image = per_image.assign(denoiser=denoiser_name)
    write_table(with_precision(per_image, combined([GRADIENT_PRECISION, precision_of(denoised)])), table)
    attention_grid_figure(clean, sets, gradcam, spec["figure_images"], png)


def attention_table(*, maps, table) -> None:
    """How far attention moves under attack and comes back after denoising, per classifier,
    denoiser, method, condition, epsilon and sigma."""
    from dds.precision import precision_of, with_precision
    from dds.reporting.attack_tables import attention_shift_table

    write_table(with_precision(attention_shift_table(read_tables(maps)), precision_of(maps)), table)
