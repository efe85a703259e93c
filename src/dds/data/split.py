"""The seeded, stratified split of a dataset into a training part and an evaluation sample."""

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from dds.io import ImageSet
from dds.seeding import derive_seed


def stratified_positions(labels: torch.Tensor, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified choice of `size` positions among 0..len(labels)-1: (rest, chosen),
    both sorted. Needs only the labels, so a large dataset can be sampled before decoding."""
    n_classes = len(torch.unique(labels))
    if not n_classes <= size <= len(labels) - n_classes:
        raise ValueError(
            f"dataset.eval_size={size} must lie between {n_classes} and {len(labels) - n_classes} "
            f"(the dataset has {len(labels)} images in {n_classes} classes)"
        )
    rest, chosen = train_test_split(
        np.arange(len(labels)),
        test_size=size,
        stratify=labels.numpy(),
        random_state=derive_seed(seed, "sample") % 2**32,
    )
    return np.sort(rest), np.sort(chosen)


def take(data: ImageSet, positions: np.ndarray) -> ImageSet:
    pos = torch.from_numpy(positions)
    return ImageSet(data.idx[pos], data.labels[pos], data.images[pos].contiguous())


def split(data: ImageSet, eval_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Stratified split into (train, eval); eval holds eval_size images, both sorted by idx."""
    train_pos, eval_pos = stratified_positions(data.labels, eval_size, seed)
    return take(data, train_pos), take(data, eval_pos)
