"""The `sample` rule: the training images and the evaluation sample."""

import logging

from dds.io import (
    write_images,
    write_json,
)

log = logging.getLogger(__name__)


def sample(*, train, eval, manifest, dataset: dict, seed: int) -> None:
    """The training images and the evaluation sample of the config's `dataset` section."""
    from dds.data import sampling

    training, evaluation = sampling.sample_splits(dataset, seed)
    write_images(train, training)
    write_images(eval, evaluation)
    write_json(sampling.manifest(training, evaluation, dataset["name"], dataset["image_size"], seed), manifest)
    log.info(
        "%s: %d training and %d evaluation images of shape %s",
        dataset["name"],
        len(training),
        len(evaluation),
        tuple(evaluation.images.shape[1:]),
    )
