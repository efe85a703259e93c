"""The datasets dds samples from, the sample of a config's `dataset` section and its manifest."""

from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from dds.data.split import split, stratified_positions, take
from dds.io import ImageSet, fingerprint


def load_digits(image_size: int) -> ImageSet:
    """scikit-learn's handwritten digits (1797 real 8x8 images, 10 classes), scaled to
    [0,1] and resized bilinearly to image_size x image_size, one channel."""
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return ImageSet(
        idx=torch.arange(len(x), dtype=torch.int64),
        labels=torch.from_numpy(digits.target.astype(np.int64)),
        images=x.clamp(0, 1).contiguous(),
    )


DATASETS = {"digits": load_digits}


def load_dataset(name: str, image_size: int) -> ImageSet:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](image_size)


def sample_splits(spec: dict, seed: int) -> tuple[ImageSet, ImageSet]:
    """(training images, evaluation sample) of the config's `dataset` section. digits: a
    stratified split; cifar10: the whole training split, and a stratified sample of the test
    split; imagenet: no training images (its classifiers are pretrained), and a stratified
    sample of the validation images, decoded at image_size."""
    from dds.data import datasets

    name, size = spec["name"], spec["eval_size"]
    if name == "cifar10":
        md5 = spec.get("md5")
        test = datasets.load_cifar10(spec["root"], train=False, download=spec["download"], md5=md5)
        evaluation = take(test, stratified_positions(test.labels, size, seed)[1])
        return datasets.load_cifar10(spec["root"], train=True, md5=md5), evaluation
    if name == "imagenet":
        evaluation = datasets.load_imagenet_val(
            spec["root"], size, seed, spec["image_size"], spec.get("labels_file"), spec["require_all_classes"]
        )
        return take(evaluation, np.arange(0)), evaluation
    return split(load_dataset(name, spec["image_size"]), size, seed)


def manifest(train: ImageSet, evaluation: ImageSet, name: str, image_size: int, seed: int) -> dict:
    def describe(part):
        counts = Counter(part.labels.tolist())
        return {
            "count": len(part),
            "per_class": {str(k): counts[k] for k in sorted(counts)},
            "sha256": fingerprint(part),
        }

    return {
        "dataset": name,
        "image_size": image_size,
        "shape": list(train.images.shape[1:]),
        "seed": seed,
        "train": describe(train),
        "eval": describe(evaluation),
    }


def shard_of(images: ImageSet, shard: int, shard_size: int) -> ImageSet:
    """Shard `shard` of the evaluation sample: its images [shard * shard_size, (shard + 1) * shard_size)."""
    part = images.subset(shard * shard_size, (shard + 1) * shard_size)
    if len(part) == 0:
        raise ValueError(
            f"shard {shard} is empty: the evaluation sample has {len(images)} images and shards hold {shard_size}"
        )
    return part
