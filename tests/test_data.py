"""Datasets, the seeded stratified split and the sample manifest."""

from collections import Counter

import numpy as np
import pytest
import torch

from dds.data.sampling import fingerprint, load_dataset, load_digits, manifest
from dds.data.split import split
from dds.io import ImageSet, read_images, read_json
from dds.pipeline.sample import sample


def test_load_digits_16(digits8):
    data = load_digits(16)
    assert len(data) == 1797
    assert data.images.shape == (1797, 1, 16, 16)
    assert data.images.dtype == torch.float32 and data.images.is_contiguous()
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.images.max() > 0.9  # not squashed
    assert torch.equal(data.idx, torch.arange(1797))
    assert data.labels.dtype == torch.int64 and set(data.labels.tolist()) == set(range(10))
    assert torch.equal(data.labels, digits8.labels)


def test_load_digits_native_size_is_exact(digits8):
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    assert digits8.images.shape == (1797, 1, 8, 8)
    expected = torch.from_numpy(raw.images.astype(np.float32) / 16.0).unsqueeze(1)
    assert torch.equal(digits8.images, expected)
    assert torch.equal(digits8.labels, torch.from_numpy(raw.target.astype(np.int64)))


def test_load_dataset_by_name():
    assert torch.equal(load_dataset("digits", 8).images, load_digits(8).images)
    with pytest.raises(ValueError, match="mnist"):
        load_dataset("mnist", 8)


@pytest.mark.parametrize("eval_size", [10, 300, 1000])
def test_split_is_stratified_disjoint_and_covering(digits8, eval_size):
    train, evaluation = split(digits8, eval_size, seed=0)
    assert len(evaluation) == eval_size and len(train) == len(digits8) - eval_size
    total = Counter(digits8.labels.tolist())
    got = Counter(evaluation.labels.tolist())
    for label, n in total.items():
        assert abs(got[label] - eval_size * n / len(digits8)) <= 1, (label, got[label])
    t_idx, e_idx = set(train.idx.tolist()), set(evaluation.idx.tolist())
    assert not t_idx & e_idx
    assert t_idx | e_idx == set(digits8.idx.tolist())
    for part in (train, evaluation):
        assert torch.equal(part.idx, part.idx.sort().values)  # sorted by idx
        assert torch.equal(part.images, digits8.images[part.idx])  # rows stay together
        assert torch.equal(part.labels, digits8.labels[part.idx])


def test_split_is_deterministic_per_seed(digits8):
    a_train, a_eval = split(digits8, 300, seed=0)
    b_train, b_eval = split(digits8, 300, seed=0)
    assert torch.equal(a_eval.idx, b_eval.idx) and torch.equal(a_train.idx, b_train.idx)
    _, c_eval = split(digits8, 300, seed=1)
    assert not torch.equal(a_eval.idx, c_eval.idx)
    assert len(set(a_eval.idx.tolist()) & set(c_eval.idx.tolist())) < 300


@pytest.mark.parametrize("eval_size", [-1, 0, 9, 1797 - 9, 1797, 5000])
def test_split_rejects_eval_size_out_of_range(digits8, eval_size):
    with pytest.raises(ValueError, match="eval_size"):
        split(digits8, eval_size, seed=0)


def test_split_accepts_extremes(digits8):
    _, evaluation = split(digits8, 10, seed=0)
    assert sorted(evaluation.labels.tolist()) == list(range(10))
    train, _ = split(digits8, 1797 - 10, seed=0)
    assert sorted(train.labels.tolist()) == list(range(10))


def test_fingerprint_sees_every_part(digits8):
    part = digits8.subset(0, 20)
    base = fingerprint(part)
    assert base == fingerprint(ImageSet(part.idx.clone(), part.labels.clone(), part.images.clone()))
    images = part.images.clone()
    images[3, 0, 4, 4] = torch.nextafter(images[3, 0, 4, 4], torch.tensor(2.0))
    labels = part.labels.clone()
    labels[0] = (labels[0] + 1) % 10
    idx = part.idx.clone()
    idx[0] = 9999
    for changed in (
        ImageSet(part.idx, part.labels, images),
        ImageSet(part.idx, labels, part.images),
        ImageSet(idx, part.labels, part.images),
    ):
        assert fingerprint(changed) != base


def test_manifest_is_consistent(digits8):
    train, evaluation = split(digits8, 300, seed=3)
    m = manifest(train, evaluation, "digits", 8, 3)
    assert m["dataset"] == "digits" and m["image_size"] == 8 and m["seed"] == 3
    assert m["shape"] == [1, 8, 8]
    for key, part in (("train", train), ("eval", evaluation)):
        assert m[key]["count"] == len(part)
        assert sum(m[key]["per_class"].values()) == len(part)
        assert m[key]["per_class"] == {str(k): v for k, v in sorted(Counter(part.labels.tolist()).items())}
        assert m[key]["sha256"] == fingerprint(part)
        assert len(m[key]["sha256"]) == 64
    assert m["train"]["sha256"] != m["eval"]["sha256"]


def test_sample_stage_files_match_manifest(tmp_path):
    paths = [tmp_path / "train.parquet", tmp_path / "eval.parquet", tmp_path / "manifest.json"]
    sample(
        train=paths[0],
        eval=paths[1],
        manifest=paths[2],
        dataset={"name": "digits", "image_size": 8, "eval_size": 100},
        seed=5,
    )
    train, evaluation, m = read_images(paths[0]), read_images(paths[1]), read_json(paths[2])
    assert m["train"]["count"] == len(train) == 1697 and m["eval"]["count"] == len(evaluation) == 100
    assert m["train"]["sha256"] == fingerprint(train)
    assert m["eval"]["sha256"] == fingerprint(evaluation)
    expected_train, expected_eval = split(load_digits(8), 100, 5)
    assert torch.equal(evaluation.idx, expected_eval.idx) and torch.equal(evaluation.images, expected_eval.images)


def test_sample_takes_the_training_split_and_a_stratified_test_sample(cifar_sample):
    train, evaluation = (read_images(p) for p in cifar_sample)
    assert len(train) == 40 and torch.equal(train.idx, torch.arange(40))
    assert len(evaluation) == 20 and evaluation.images.shape[1:] == (3, 32, 32)
    assert evaluation.idx.max() < 60  # positions in the test split
