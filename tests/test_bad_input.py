"""Every bad input file dds was tried with, in one table (the README summarises it): each
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

from dds.diffusion.ddpm import build_scheduler, save_ddpm
from dds.io import DataFileError, ImageSet, load_tensors, read_json, save_tensors, write_images
from dds.models.classifiers import build_classifier, save_classifier
from dds.pipeline.classify import predict
from dds.pipeline.denoise import denoise
from dds.pipeline.denoisers import fetch_checkpoint

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


def retamper(path, change):
    tensors, meta = load_tensors(path)
    change(tensors)
    save_tensors(tensors, path, meta)


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


def labels_file_too_short(tmp):
    from test_datasets import SYNSETS, write_flat  # the flat official ImageNet layout, made by the tests

    classes = write_flat(tmp / "val", n=6)
    (tmp / "labels.txt").write_text("\n".join(SYNSETS[c] for c in classes[:5]) + "\n")
    return tmp / "val", tmp / "labels.txt"


def random_bytes(tmp):
    path = tmp / "x.parquet"
    path.write_bytes(bytes(range(256)) * 8)
    return path


# name: (which input is bad, how to make it, error class, text the message must hold)
IMAGE_CASES = {
    "missing shard": ("images", lambda tmp: tmp / "absent.parquet", DataFileError, ["file not found"]),
    "truncated shard": ("images", truncated, DataFileError, ["not a readable Parquet file", FIX]),
    "random bytes": ("images", random_bytes, DataFileError, ["not a readable Parquet file"]),
    "shard changed after writing": ("images", lambda tmp: edit_shard(shard(tmp / "i.parquet"), "image",
                                                                     lambda b: bytes([b[0] ^ 1]) + b[1:])
                                    or tmp / "i.parquet", DataFileError, ["does not match the sha256", FIX]),
    "label changed after writing": ("images", lambda tmp: edit_shard(shard(tmp / "i.parquet"), "label",
                                                                     lambda v: v + 1)
                                    or tmp / "i.parquet", DataFileError, ["does not match the sha256"]),
    "float64 image bytes": ("images", float64_rows, DataFileError, ["row 1 holds 2048 bytes, expected 1024"]),
    "NaN pixel": ("images", value(float("nan")), DataFileError, ["NaN or Inf"]),
    "Inf pixel": ("images", value(float("inf")), DataFileError, ["NaN or Inf"]),
    "pixel above 1": ("images", value(1.5), DataFileError, ["outside [0, 1]"]),
    "negative pixel": ("images", value(-0.1), DataFileError, ["outside [0, 1]"]),
    "not written by dds": ("images", lambda tmp: pq.write_table(pa.table({"idx": [0], "label": [0], "image": [b""]}),
                                                                 tmp / "p.parquet") or tmp / "p.parquet",
                           DataFileError, ["not written by dds.io.write_images"]),
    "3-channel images, 1-channel classifier": ("images", lambda tmp: shard(tmp / "rgb.parquet",
                                                                            torch.rand(4, 3, 16, 16)),
                                              ValueError, ["takes [N, 1, H, W]", "(4, 3, 16, 16)",
                                                           "different datasets"]),
    "classifier missing": ("classifier", lambda tmp: tmp / "absent.safetensors", DataFileError, ["file not found"]),
    "classifier missing a key": ("classifier", lambda tmp: retamper(classifier(tmp / "c.safetensors"),
                                                                    lambda t: t.pop("net.fc.weight"))
                                 or tmp / "c.safetensors", DataFileError, ["net.fc.weight"]),
    "classifier with a wrong shape": ("classifier", lambda tmp: retamper(classifier(tmp / "c.safetensors"),
                                                                         lambda t: t.update({"net.fc.bias": torch.zeros(11)}))
                                      or tmp / "c.safetensors", DataFileError, ["net.fc.bias"]),
    "classifier with an unexpected key": ("classifier", lambda tmp: retamper(classifier(tmp / "c.safetensors"),
                                                                             lambda t: t.update({"net.x": torch.zeros(1)}))
                                          or tmp / "c.safetensors", DataFileError, ["net.x"]),
    "classifier as a crafted pickle": ("classifier", crafted_pickle, DataFileError,
                                       ["not a readable safetensors file"]),
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
        predict(8, "cpu", paths["images"], paths["classifier"], out)
    message = str(info.value)
    for text in texts:
        assert text in message, f"{text!r} not in {message!r}"
    if error is DataFileError:
        assert str(paths[which]) in message  # the file is named
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))  # no output, no temp
    assert not (bad / "pwned").exists()  # nothing in a file is ever executed


def test_bad_denoiser_file_stops_denoising(tmp_path, tiny_unet):
    images = shard(tmp_path / "images.parquet", torch.rand(4, 1, 8, 8))
    weights = denoiser(tmp_path / "ddpm.safetensors", tiny_unet)
    retamper(weights, lambda t: t.pop(next(k for k in t if "conv_in" in k)))
    out, predictions = tmp_path / "out" / "denoised.parquet", tmp_path / "out" / "predictions.parquet"
    with pytest.raises(DataFileError) as info:
        denoise(0.25, 0, 4, "cpu", images, weights, classifier(tmp_path / "clf.safetensors"), out, predictions)
    assert str(weights) in str(info.value)
    assert not out.exists() and not predictions.exists()


def test_bad_classifier_file_stops_denoising_before_it_starts(tmp_path, tiny_unet, monkeypatch):
    import dds.diffusion.one_shot

    images = shard(tmp_path / "images.parquet", torch.rand(4, 1, 8, 8))
    weights = denoiser(tmp_path / "ddpm.safetensors", tiny_unet)
    clf = classifier(tmp_path / "clf.safetensors")
    retamper(clf, lambda t: t.pop("net.fc.weight"))
    monkeypatch.setattr(dds.diffusion.one_shot, "denoise_images", lambda *a: pytest.fail("denoised with a bad classifier"))
    out, predictions = tmp_path / "out" / "denoised.parquet", tmp_path / "out" / "predictions.parquet"
    with pytest.raises(DataFileError) as info:
        denoise(0.25, 0, 4, "cpu", images, weights, clf, out, predictions)
    assert str(clf) in str(info.value)
    assert not out.exists() and not predictions.exists()


def test_corrupt_json_record(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"epochs": 8,')
    with pytest.raises(DataFileError, match="not valid JSON") as info:
        read_json(path)
    assert str(path) in str(info.value) and "rerun the rule" in str(info.value)


def test_label_file_that_does_not_match_the_images(tmp_path):
    from dds.data.datasets import index_imagenet_val

    root, labels = labels_file_too_short(tmp_path)
    with pytest.raises(DataFileError) as info:
        index_imagenet_val(root, labels, require_all_classes=False)
    message = str(info.value)
    assert str(labels) in message and "5 labels for 6 images" in message


def test_download_with_the_wrong_sha256_leaves_nothing(tmp_path):
    source = tmp_path / "checkpoint.pt"
    source.write_bytes(b"not the published checkpoint")
    out = tmp_path / "data" / "checkpoints" / "cifar10_uncond_50M_500K.pt"
    with pytest.raises(DataFileError) as info:
        fetch_checkpoint(source.as_uri(), "ab" * 32, out)
    assert "ab" * 32 in str(info.value)
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


def test_table_is_summarised_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Faults, bad input and untrusted files", 1)[1].split("\n## ", 1)[0]
    for case in IMAGE_CASES:
        assert case in section, f"README's bad-input table lacks {case!r}"


def test_outputs_stay_under_results_or_the_checkpoint_folder():
    """Every output path pattern lies under results/<dataset>/ (or, for downloaded official
    checkpoints, data/checkpoints/), and the names that fill the patterns cannot climb out."""
    import yaml

    from dds import layout
    from dds.config import ConfigError, validate

    patterns = {k: v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and "{" in v}
    assert len(patterns) > 20
    for name, pattern in patterns.items():
        assert pattern == layout.ROOT or pattern.startswith((layout.ROOT + "/", "data/checkpoints/")), name
        assert ".." not in pattern and not pattern.startswith("/"), name
    repo = Path(__file__).resolve().parents[1]
    schema = repo / "workflow" / "schemas" / "config.schema.yaml"
    for key in ("classifiers", "denoisers", "attacks"):
        config = yaml.safe_load((repo / "config.yaml").read_text())
        config[key]["../../etc"] = next(iter(config[key].values()))
        with pytest.raises(ConfigError, match=r"\.\./\.\./etc"):
            validate(config, schema)
    # the one path part that is not a name: the official checkpoint, one of a known list
    config = yaml.safe_load((repo / "config.yaml").read_text())
    config["denoisers"] = {"official": {"kind": "openai", "checkpoint": "../../etc/x", "url": "https://example.org/x"}}
    with pytest.raises(ConfigError, match=r"'\.\./\.\./etc/x' is not an OpenAI checkpoint dds knows"):
        validate(config, schema)
