"""Attention maps under attack and denoising, and their table."""

import logging

import torch

from dds.device import resolve_device
from dds.io import (
    first_images,
    read_tables,
    write_table,
)

log = logging.getLogger(__name__)


def attention(classifier_name: str, spec: dict, batch_size: int, device: str, classifier_path,
              adversarial_paths: dict, denoised_paths: dict, table_path, png_path) -> None:
    """Where the classifier looks on its first `spec["num_images"]` evaluation images: maps
    (Grad-CAM, and CBAM's spatial attention where the model has it) of the clean images, of
    their PGD versions at each epsilon, and of those denoised at each sigma; per image and
    condition the rank correlation and top-k overlap with the clean map; and a figure grid
    (Grad-CAM) of the first images. `adversarial_paths`: epsilon (0 included) -> shards;
    `denoised_paths`: (sigma, epsilon) -> shards."""
    import math

    import pandas as pd

    from dds.evaluation import attention_maps
    from dds.models import classifiers

    dev = resolve_device(device)
    count = spec["num_images"]
    model = classifiers.load_classifier(classifier_path, dev)
    clean = first_images(adversarial_paths[0.0], count)
    sets = [("adversarial", float(e), math.nan, first_images(adversarial_paths[float(e)], count)) for e in spec["epsilons"]]
    sets += [("denoised", e, s, first_images(paths, count)) for (s, e), paths in sorted(denoised_paths.items())]
    for *_, images in sets:
        if not torch.equal(images.idx, clean.idx):
            raise ValueError("attention: an image set does not hold the first evaluation images in order; "
                             "delete it and rerun the rule that makes it")
    frames, gradcam = [], []
    for method in attention_maps.methods_for(model):
        reference = attention_maps.attention_maps(method, model, clean.images, clean.labels, batch_size)
        maps = [attention_maps.attention_maps(method, model, images.images, clean.labels, batch_size)
                for *_, images in sets]
        frames += [attention_maps.attention_shift(reference, m).assign(
            idx=clean.idx.numpy(), classifier=classifier_name, method=method, condition=condition, epsilon=eps,
            sigma=sigma) for (condition, eps, sigma, _), m in zip(sets, maps)]
        if method == "gradcam":
            gradcam = [reference, *maps]
        log.info("%s: %s maps of %d images in %d conditions", classifier_name, method, len(clean), len(sets) + 1)
    write_table(pd.concat(frames, ignore_index=True), table_path)
    # the figure: Grad-CAM of the clean images, attacked at each epsilon, denoised (largest epsilon) at each sigma
    k, largest = spec["figure_images"], max(map(float, spec["epsilons"]))
    columns = [("clean", clean.images[:k], gradcam[0][:k])]
    columns += [(f"PGD eps={eps:g}" if condition == "adversarial" else f"eps={eps:g}, sigma={sigma:g}",
                 images.images[:k], maps[:k])
                for (condition, eps, sigma, images), maps in zip(sets, gradcam[1:])
                if condition == "adversarial" or eps == largest]
    attention_maps.attention_figure(columns, png_path)


def attention_summary(paths, table_path) -> None:
    """How far attention moves under attack and comes back after denoising, per classifier,
    method, condition, epsilon and sigma."""
    from dds.evaluation.attention_maps import attention_shift_table

    write_table(attention_shift_table(read_tables(paths)), table_path)

