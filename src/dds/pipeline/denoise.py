"""The rule that denoises a set and classifies what it denoised."""

import logging

from dds import layout
from dds.device import resolve_device
from dds.diffusion.loading import load_denoisers
from dds.evaluation.classify import predictions as classify_predictions
from dds.evaluation.inference import load_prepared
from dds.io import (
    ImageSet,
    read_images,
    write_images,
    write_table,
)
from dds.precision import PRECISION, with_precision

log = logging.getLogger(__name__)


def denoise_and_classify(
    *,
    images: list,
    denoiser,
    classifier,
    denoised: list,
    predictions: list,
    sigmas: list,
    seed: int,
    batch_size: int,
    device: str,
    inference: dict | None = None,
) -> None:
    """Denoise each image set of `images` at each sigma, write the denoised images and classify
    them with the classifier the sets were made for (one job for a classifier's sets: see
    rules/denoise.smk). Output k is set k // len(sigmas) at sigma k % len(sigmas), the order of
    every_set in rules/common.smk. Every input is read and both models are loaded first, so a
    bad file stops the job before anything is written."""
    from dds.diffusion.one_shot import denoise_images
    from dds.evaluation.inference import resolve

    sets = f"{len(images)} image sets at {len(sigmas)} sigmas"
    layout.expect_files(
        "denoise_and_classify", len(images) * len(sigmas), sets, denoised=denoised, predictions=predictions
    )
    dev = resolve_device(device)
    run = resolve(inference, dev)
    sources = [read_images(path) for path in images]
    model = load_prepared(classifier, dev, run)
    denoisers = load_denoisers(denoiser, sigmas, dev, run)
    outputs = iter(zip(denoised, predictions, strict=True))
    for path, source in zip(images, sources, strict=True):
        for sigma in sigmas:
            denoised_path, predictions_path = next(outputs)
            result = ImageSet(
                source.idx, source.labels, denoise_images(denoisers[sigma], source, seed, batch_size, dev)
            )
            log.info("%s: denoised %d images at sigma %g", path, len(source), sigma)
            # the denoised images name their precision too: the attention maps of them run in fp32
            write_images(denoised_path, result, {PRECISION: [run.precision] * len(result)})
            table = classify_predictions(model, result, batch_size, dev)
            write_table(with_precision(table, run.precision), predictions_path)
