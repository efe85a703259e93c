"""The rule that classifies a set without defence."""

from dds.device import resolve_device
from dds.evaluation.classify import predictions as classify_predictions
from dds.evaluation.inference import load_prepared
from dds.io import (
    read_images,
    write_table,
)
from dds.precision import with_precision


def classify_undefended(
    *, images, classifier, predictions, batch_size: int, device: str, inference: dict | None = None
) -> None:
    """The classifier's predictions on an image set as it is."""
    from dds.evaluation.inference import resolve

    dev = resolve_device(device)
    run = resolve(inference, dev)
    source = read_images(images)
    model = load_prepared(classifier, dev, run)
    write_table(with_precision(classify_predictions(model, source, batch_size, dev), run.precision), predictions)
