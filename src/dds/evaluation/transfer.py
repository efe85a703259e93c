"""Transfer between classifiers: adversarial examples made on one classifier, classified by every one."""

import pandas as pd

from dds.models.classifiers import accuracy

COLUMNS = ["attack", "denoiser", "source", "target", "epsilon", "defence", "accuracy", "n"]


def transfer_accuracy(models: dict, sets, names: dict, batch_size: int, device) -> pd.DataFrame:
    """One row per (image set, target): the accuracy of each of `models` (target name -> model)
    on each of `sets` (an iterable of (epsilon, defence, ImageSet)); `names`: the attack, denoiser and source
    classifier the sets come from (table columns)."""
    keys = (names["attack"], names["denoiser"], names["source"])
    rows = [
        (*keys, target, eps, defence, accuracy(model, images, batch_size, device), len(images))
        for eps, defence, images in sets
        for target, model in models.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)
