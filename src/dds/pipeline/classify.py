"""The rule that classifies image sets without defence."""

from dds import layout
from dds.device import resolve_device
from dds.evaluation.classify import predictions as classify_predictions
from dds.evaluation.inference import load_prepared
from dds.io import (
    read_images,
    write_table,
)
from dds.precision import with_precision


def classify_undefended(
    *, images: list, classifier, predictions: list, batch_size: int, device: str, inference: dict | None = None
) -> None:
    """The classifier's predictions on each image set of `images` as it is, into the file of
    `predictions` at the same position. Every set is read first, so a bad file writes nothing."""
    from dds.evaluation.inference import resolve

    layout.expect_files("classify_undefended", len(images), f"{len(images)} image sets", predictions=predictions)
    dev = resolve_device(device)
    run = resolve(inference, dev)
    sources = [read_images(path) for path in images]
    model = load_prepared(classifier, dev, run)
    for source, path in zip(sources, predictions, strict=True):
        write_table(with_precision(classify_predictions(model, source, batch_size, dev), run.precision), path)
