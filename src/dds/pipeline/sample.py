"""The `sample` rule: the training images and the evaluation sample."""

import logging

from dds.io import (
    write_images,
    write_json,
)

log = logging.getLogger(__name__)


def sample(spec: dict, seed: int, train_path, eval_path, manifest_path) -> None:
    """The training images and the evaluation sample of the config's `dataset` section."""
    from dds.data import sampling as data

    train, evaluation = data.sample_splits(spec, seed)
    write_images(train_path, train)
    write_images(eval_path, evaluation)
    write_json(data.manifest(train, evaluation, spec["name"], spec["image_size"], seed), manifest_path)
    log.info("%s: %d training and %d evaluation images of shape %s", spec["name"], len(train), len(evaluation),
             tuple(evaluation.images.shape[1:]))

