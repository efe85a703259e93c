"""Every bad input file dds was tried with, in one table (docs/faults.md summarises it): each
case makes the bad file, runs the real stage that reads it, and checks the error class, that
the message names the file and says what to do, and that no output was written.

Bad config values have their own table: BAD in tests/test_config.py."""

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import tamper
from dds.diffusion.ddpm import build_scheduler, save_ddpm
from dds.io import DataFileError, ImageSet, write_images
from dds.models.classifiers import build_classifier, save_classifier
from dds.pipeline.classify import classify_undefended
from dds.pipeline.denoise import denoise_and_classify

FIX = "delete it and rerun the rule that makes it"


def shard(path, images=None, n=6):
    images = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0)) if images is None else images
    write_images(path, ImageSet(torch.arange(len(images)), torch.arange(len(images)) % 10, images))
    return path


def classifier(path):
    torch.manual_seed(0)
    model = build_classifier("resnet18", {}, 1, 10, [0.5], [0.25])
    save_classifier(model, path, {"model": "resnet18", "kwargs": {}}, 1, 10)
    return path


def denoiser(path, tiny_unet):
    save_ddpm(tiny_unet, build_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"}), path)
    return path


def edit_shard(path, column, change):
    """Rewrite one column of a shard, keeping its metadata (shape, recorded sha256)."""
    table = pq.read_table(path)
    values = [change(v) if i == 1 else v for i, v in enumerate(table.column(column).to_pylist())]
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, column, pa.array(values, type=table.schema.field(column).type)), path)


def truncated(tmp):
    path = shard(tmp / "images.parquet")
    path.write_bytes(path.read_bytes()[:300])
    return path


def float64_rows(tmp):
    """Images stored as float64 bytes under a float32 shape: every row twice too long."""
    path = shard(tmp / "images.parquet")
    edit_shard(path, "image", lambda b: np.frombuffer(b, "<f4").astype("<f8").tobytes())
    return path


def value(v):
    def make(tmp):
        images = torch.rand(6, 1, 16, 16)
        images[2, 0, 3, 3] = v
        return shard(tmp / "images.parquet", images)

    return make


class Marker:
    """Unpickling this would create a file: a crafted checkpoint."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def crafted_pickle(tmp):
    path = tmp / "weights.safetensors"
    path.write_bytes(pickle.dumps({"net.fc.weight": Marker(tmp / "pwned")}))
    return path


def random_bytes(tmp):
    path = tmp / "x.parquet"
    path.write_bytes(bytes(range(256)) * 8)
    return path


# name: (which input is bad, how to make it, error class, text the message must hold)
IMAGE_CASES = {
    "missing shard": ("images", lambda tmp: tmp / "absent.parquet", DataFileError, ["file not found"]),
    "truncated shard": ("images", truncated, DataFileError, ["not a readable Parquet file", FIX]),
    "random bytes": ("images", random_bytes, DataFileError, ["not a readable Parquet file"]),
    "shard changed after writing": (
        "images",
        lambda tmp: (
            edit_shard(shard(tmp / "i.parquet"), "image", lambda b: bytes([b[0] ^ 1]) + b[1:]) or tmp / "i.parquet"
        ),
        DataFileError,
        ["does not match the sha256", FIX],
    ),
    "label changed after writing": (
        "images",
        lambda tmp: edit_shard(shard(tmp / "i.parquet"), "label", lambda v: v + 1) or tmp / "i.parquet",
        DataFileError,
        ["does not match the sha256"],
    ),
    "float64 image bytes": ("images", float64_rows, DataFileError, ["row 1 holds 2048 bytes, expected 1024"]),
    "NaN pixel": ("images", value(float("nan")), DataFileError, ["NaN or Inf"]),
    "Inf pixel": ("images", value(float("inf")), DataFileError, ["NaN or Inf"]),
    "pixel above 1": ("images", value(1.5), DataFileError, ["outside [0, 1]"]),
    "negative pixel": ("images", value(-0.1), DataFileError, ["outside [0, 1]"]),
    "not written by dds": (
        "images",
        lambda tmp: (
            pq.write_table(pa.table({"idx": [0], "label": [0], "image": [b""]}), tmp / "p.parquet") or tmp / "p.parquet"
        ),
        DataFileError,
        ["not written by dds.io.write_images"],
    ),
    "3-channel images, 1-channel classifier": (
        "images",
        lambda tmp: shard(tmp / "rgb.parquet", torch.rand(4, 3, 16, 16)),
        ValueError,
        ["takes [N, 1, H, W]", "(4, 3, 16, 16)", "different datasets"],
    ),
    "classifier missing": ("classifier", lambda tmp: tmp / "absent.safetensors", DataFileError, ["file not found"]),
    "classifier missing a key": (
        "classifier",
        lambda tmp: (
            tamper(classifier(tmp / "c.safetensors"), lambda t: t.pop("net.fc.weight")) or tmp / "c.safetensors"
        ),
        DataFileError,
        ["net.fc.weight"],
    ),
    "classifier with a wrong shape": (
        "classifier",
        lambda tmp: (
            tamper(classifier(tmp / "c.safetensors"), lambda t: t.update({"net.fc.bias": torch.zeros(11)}))
            or tmp / "c.safetensors"
        ),
        DataFileError,
        ["net.fc.bias"],
    ),
    "classifier with an unexpected key": (
        "classifier",
        lambda tmp: (
            tamper(classifier(tmp / "c.safetensors"), lambda t: t.update({"net.x": torch.zeros(1)}))
            or tmp / "c.safetensors"
        ),
        DataFileError,
        ["net.x"],
    ),
    "classifier as a crafted pickle": (
        "classifier",
        crafted_pickle,
        DataFileError,
        ["not a readable safetensors file"],
    ),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_bad_input_to_a_stage(tmp_path, case):
    which, make, error, texts = IMAGE_CASES[case]
    paths = {"images": shard(tmp_path / "good.parquet"), "classifier": classifier(tmp_path / "good.safetensors")}
    bad = tmp_path / "bad"
    bad.mkdir()
    paths[which] = make(bad)
    out = tmp_path / "out" / "predictions.parquet"
    with pytest.raises(error) as info:
        classify_undefended(
            images=[paths["images"]], classifier=paths["classifier"], predictions=[out], batch_size=8, device="cpu"
        )
    message = str(info.value)
    for text in texts:
        assert text in message, f"{text!r} not in {message!r}"
    if error is DataFileError:
        assert str(paths[which]) in message  # the file is named
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))  # no output, no temp
    assert not (bad / "pwned").exists()  # nothing in a file is ever executed


def denoising_stops_naming(tmp_path, weights, clf, culprit):
    """denoise_and_classify with these files fails naming `culprit` and writes nothing."""
    out, predictions = tmp_path / "out" / "denoised.parquet", tmp_path / "out" / "predictions.parquet"
    with pytest.raises(DataFileError) as info:
        denoise_and_classify(
            images=[shard(tmp_path / "images.parquet", torch.rand(4, 1, 8, 8))],
            denoiser=weights,
            classifier=clf,
            denoised=[out],
            predictions=[predictions],
            sigmas=[0.25],
            seed=0,
            batch_size=4,
            device="cpu",
        )
    assert str(culprit) in str(info.value)
    assert not out.exists() and not predictions.exists()


def test_bad_denoiser_file_stops_denoising(tmp_path, tiny_unet):
    weights = denoiser(tmp_path / "ddpm.safetensors", tiny_unet)
    tamper(weights, lambda t: t.pop(next(k for k in t if "conv_in" in k)))
    denoising_stops_naming(tmp_path, weights, classifier(tmp_path / "clf.safetensors"), culprit=weights)


def test_bad_classifier_file_stops_denoising_before_it_starts(tmp_path, tiny_unet, monkeypatch):
    import dds.diffusion.one_shot

    clf = classifier(tmp_path / "clf.safetensors")
    tamper(clf, lambda t: t.pop("net.fc.weight"))
    monkeypatch.setattr(
        dds.diffusion.one_shot, "denoise_images", lambda *a: pytest.fail("denoised with a bad classifier")
    )
    denoising_stops_naming(tmp_path, denoiser(tmp_path / "ddpm.safetensors", tiny_unet), clf, culprit=clf)
