"""The rule that denoises a set and classifies what it denoised."""

import logging

from dds.device import resolve_device
from dds.diffusion.loading import load_denoiser
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
    images,
    denoiser,
    classifier,
    denoised,
    predictions,
    sigma: float,
    seed: int,
    batch_size: int,
    device: str,
    inference: dict | None = None,
) -> None:
    """Denoise an image shard at `sigma`, write the denoised images, and classify them with
    the classifier the set was made for (one job instead of two: see rules/denoise.smk).
    Both models are loaded first, so a bad file stops the job before the denoising."""
    from dds.diffusion.one_shot import denoise_images
    from dds.evaluation.inference import resolve

    dev = resolve_device(device)
    run = resolve(inference, dev)
    source = read_images(images)
    model = load_prepared(classifier, dev, run)
    one_shot = load_denoiser(denoiser, sigma, dev, run)
    result = ImageSet(source.idx, source.labels, denoise_images(one_shot, source, seed, batch_size, dev))
    log.info("denoised %d images", len(source))
    # the denoised images name their precision too: the attention maps of them run in fp32
    write_images(denoised, result, {PRECISION: [run.precision] * len(result)})
    write_table(with_precision(classify_predictions(model, result, batch_size, dev), run.precision), predictions)
