"""The rule that classifies a set without defence."""

import logging

from dds.device import resolve_device
from dds.evaluation.classify import predictions as classify_predictions
from dds.evaluation.inference import load_prepared
from dds.io import (
    read_images,
    write_table,
)

log = logging.getLogger(__name__)


def predict(batch_size: int, device: str, images_path, classifier_path, out_path,
            inference: dict | None = None) -> None:
    from dds.evaluation.inference import resolve

    dev = resolve_device(device)
    images = read_images(images_path)
    model = load_prepared(classifier_path, dev, resolve(inference, dev))
    write_table(classify_predictions(model, images, batch_size, dev), out_path)

