"""CIFAR-10 through torchvision's reader and ImageNet validation folders, on tiny copies made
here in the official formats (no download)."""

from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10

from dds.data.datasets import (
    imagenet_synsets,
    index_imagenet_val,
    load_cifar10,
    load_image,
    load_imagenet_val,
)
from dds.io import DataFileError
from dds.rehearsal.standins import cifar10_md5, write_cifar10, write_devkit_meta
from dds.rehearsal.standins import md5_file as md5

SYNSETS = imagenet_synsets()

# ---------------------------------------------------------------- CIFAR-10


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    """The tiny copy, with torchvision's md5 table pointed at its files (its real md5 check runs)."""
    batches = write_cifar10(tmp_path, per_batch=4, test_size=20)
    folder = tmp_path / "cifar-10-batches-py"
    train = [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", train)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    return tmp_path, batches


def as_images(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255)


def test_cifar10_test_split_loads_through_torchvision(tiny_cifar10):
    root, batches = tiny_cifar10
    data = load_cifar10(root)
    x, labels = batches["test_batch"]
    assert data.images.shape == (20, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.images.is_contiguous()
    assert torch.equal(data.images, as_images(x))  # channel planes become NCHW exactly
    assert data.labels.tolist() == labels and data.labels.dtype == torch.int64
    assert torch.equal(data.idx, torch.arange(20))


def test_cifar10_train_split_concatenates_the_five_batches(tiny_cifar10):
    root, batches = tiny_cifar10
    data = load_cifar10(root, train=True)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    assert torch.equal(data.images, as_images(np.concatenate([batches[n][0] for n in names])))
    assert data.labels.tolist() == [label for n in names for label in batches[n][1]]


def test_cifar10_missing_gives_one_clear_message(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_cifar10(tmp_path / "data")
    message = str(err.value)
    assert message.count("\n") == 0
    assert f"{tmp_path}/data/cifar-10-batches-py lacks data_batch_1" in message
    for part in ("test_batch", "batches.meta", CIFAR10.url, CIFAR10.tgz_md5, "download: true"):
        assert part in message


def test_cifar10_offline_download_gives_the_same_instructions(tmp_path, monkeypatch):
    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(DataFileError, match="could not be downloaded.*no network.*cifar-10-python.tar.gz"):
        load_cifar10(tmp_path, download=True)


def test_cifar10_corrupt_files_fail_the_md5_check(tmp_path):
    write_cifar10(tmp_path, per_batch=4, test_size=20)  # md5s differ from the official ones
    with pytest.raises(DataFileError, match="corrupt or not the official ones.*delete"):
        load_cifar10(tmp_path)


def test_cifar10_copy_of_your_own_is_read_with_its_md5_table(tmp_path):
    batches = write_cifar10(tmp_path, per_batch=4, test_size=20)
    table = cifar10_md5(tmp_path)
    data = load_cifar10(tmp_path, md5=table)
    assert torch.equal(data.images, as_images(batches["test_batch"][0]))
    assert len(load_cifar10(tmp_path, train=True, md5=table)) == 20
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("ab") as f:
        f.write(b"x")  # the checks still run: a changed file is refused
    with pytest.raises(DataFileError, match="not the ones dataset.md5 names.*delete"):
        load_cifar10(tmp_path, md5=table)


# ---------------------------------------------------------------- ImageNet validation

CLASSES = [0, 1, 500, 999]  # class indices used by the tiny trees


def color(n: int) -> tuple:
    """A distinct solid colour per image, so a decoded image can be traced back to its file."""
    return (40 * (n % 6) + 20, 40 * (n // 6 % 6) + 20, 200)


def write_image(path, n, size=(40, 30)):
    Image.new("RGB", size, color(n)).save(path, quality=95)


def trace(images: torch.Tensor) -> list[int]:
    """The image numbers of decoded solid-colour images."""
    found = []
    for img in images:
        rgb = (img.mean(dim=(1, 2)) * 255).tolist()
        found.append(next(n for n in range(36) if all(abs(a - b) < 4 for a, b in zip(rgb, color(n), strict=True))))
    return found


@pytest.fixture
def class_folders(tmp_path):
    """4 synset folders x 3 images; returns (root, {image number: class index})."""
    root, truth = tmp_path / "val", {}
    for k, cls in enumerate(CLASSES):
        (root / SYNSETS[cls]).mkdir(parents=True)
        for j in range(3):
            n = 3 * k + j
            write_image(root / SYNSETS[cls] / f"img_{j}.JPEG", n)
            truth[n] = cls
    return root, truth


def test_class_folder_layout_loads_with_correct_labels(class_folders):
    root, truth = class_folders
    files = index_imagenet_val(root, require_all_classes=False)
    assert files.labels.tolist() == [cls for cls in CLASSES for _ in range(3)]
    data = load_imagenet_val(root, None, seed=0, image_size=16, require_all_classes=False)
    assert data.images.shape == (12, 3, 16, 16) and data.images.dtype == torch.float32
    assert data.labels.tolist() == [truth[n] for n in trace(data.images)]
    assert torch.equal(data.idx, torch.arange(12))


def test_sampling_is_seeded_and_stratified(class_folders):
    root, truth = class_folders
    a = load_imagenet_val(root, 4, seed=0, image_size=16, require_all_classes=False)
    b = load_imagenet_val(root, 4, seed=0, image_size=16, require_all_classes=False)
    assert torch.equal(a.idx, b.idx) and torch.equal(a.images, b.images)
    assert sorted(a.labels.tolist()) == CLASSES  # one per class
    assert a.labels.tolist() == [truth[n] for n in trace(a.images)]


def test_all_1000_class_folders_map_to_the_classifier_order(tmp_path):
    for synset in SYNSETS:
        (tmp_path / synset).mkdir()
        (tmp_path / synset / "a.JPEG").touch()  # indexing does not decode
    files = index_imagenet_val(tmp_path)
    assert files.labels.tolist() == list(range(1000))
    assert SYNSETS[:2] == ["n01440764", "n01443537"] and SYNSETS[-1] == "n15075141"


def test_incomplete_or_foreign_class_folders_are_refused(class_folders):
    root, _ = class_folders
    with pytest.raises(DataFileError, match="cover 4 classes, ImageNet-1k has 1000"):
        index_imagenet_val(root)
    (root / "tench").mkdir()
    write_image(root / "tench" / "x.JPEG", 0)
    with pytest.raises(DataFileError, match="not ImageNet-1k classes, e.g. tench"):
        index_imagenet_val(root, require_all_classes=False)


def write_flat(root, n=6):
    """The flat official layout; image i has class CLASSES[i % 4]."""
    root.mkdir(parents=True)
    for i in range(1, n + 1):
        write_image(root / f"ILSVRC2012_val_{i:08d}.JPEG", i)
    return [CLASSES[i % 4] for i in range(1, n + 1)]


def test_flat_layout_with_devkit_ground_truth(tmp_path):
    root = tmp_path / "val"
    expected = write_flat(root)
    devkit = tmp_path / "devkit" / "data"
    devkit.mkdir(parents=True)
    write_devkit_meta(devkit / "meta.mat")
    truth = devkit / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("".join(f"{1000 - cls}\n" for cls in expected))  # id of class k is 1000 - k here
    data = load_imagenet_val(root, None, seed=0, image_size=16, labels_file=truth, require_all_classes=False)
    assert data.labels.tolist() == expected
    assert trace(data.images) == [1, 2, 3, 4, 5, 6]
    assert torch.equal(data.idx, torch.arange(6))  # official number minus one


def test_flat_layout_with_one_synset_per_line(tmp_path):
    root = tmp_path / "val"
    expected = write_flat(root)
    labels = tmp_path / "synsets.txt"
    labels.write_text("\n".join(SYNSETS[c] for c in expected) + "\n")
    assert index_imagenet_val(root, labels, require_all_classes=False).labels.tolist() == expected


@pytest.mark.parametrize("style", ["kaggle csv", "whitespace"])
def test_flat_layout_with_a_mapping_file(tmp_path, style):
    root = tmp_path / "val"
    expected = write_flat(root)
    order = [3, 1, 6, 2, 5, 4, 7]  # shuffled, and image 7 is not in the folder
    if style == "kaggle csv":
        lines = ["ImageId,PredictionString"] + [  # boxes: synset x0 y0 x1 y1, repeated
            f"ILSVRC2012_val_{i:08d},{SYNSETS[CLASSES[i % 4]]} 1 2 30 40 {SYNSETS[CLASSES[i % 4]]} 5 6 7 8"
            for i in order
        ]
    else:
        lines = [f"ILSVRC2012_val_{i:08d}.JPEG {SYNSETS[CLASSES[i % 4]]}" for i in order]
    mapping = tmp_path / "map.txt"
    mapping.write_text("\n".join(lines) + "\n")
    assert index_imagenet_val(root, mapping, require_all_classes=False).labels.tolist() == expected


def test_label_file_errors_are_clear(tmp_path):
    root = tmp_path / "val"
    expected = write_flat(root)
    labels = tmp_path / "labels.txt"

    def fails(text, message, culprit=labels):
        labels.write_text(text)
        with pytest.raises(DataFileError, match=message) as info:
            index_imagenet_val(root, labels, require_all_classes=False)
        assert str(culprit) in str(info.value)  # the file to fix is named

    synset_lines = [SYNSETS[c] for c in expected]
    fails("\n".join(synset_lines[:5]), "5 labels for 6 images")
    fails("\n".join([*synset_lines[:5], "n99999999"]), "not ImageNet-1k classes, e.g. n99999999")
    fails("\n".join(["1"] * 6), "need the devkit's meta.mat")
    fails("\n".join(f"ILSVRC2012_val_{i:08d},{SYNSETS[0]}" for i in range(1, 6)), "no label for 1 of the 6 images")
    fails("file,label\nILSVRC2012_val_00000001.JPEG,65\n", "integer labels are ambiguous")
    write_devkit_meta(tmp_path / "meta.mat", leaves=999)
    fails("\n".join(["1"] * 6), "ids 1..1000", culprit=tmp_path / "meta.mat")


def test_per_line_labels_need_the_official_names(tmp_path):
    root = tmp_path / "val"
    write_flat(root)
    (root / "ILSVRC2012_val_00000003.JPEG").rename(root / "extra.JPEG")
    labels = tmp_path / "synsets.txt"
    labels.write_text("\n".join([SYNSETS[0]] * 6))
    with pytest.raises(DataFileError, match="should be ILSVRC2012_val_00000003.*FILE,SYNSET"):
        index_imagenet_val(root, labels, require_all_classes=False)


def test_missing_folder_labels_or_images_are_named(tmp_path):
    with pytest.raises(DataFileError, match="ImageNet validation folder not found"):
        index_imagenet_val(tmp_path / "nope")
    root = tmp_path / "val"
    write_flat(root)
    with pytest.raises(DataFileError, match="give its label file"):
        index_imagenet_val(root)
    with pytest.raises(DataFileError, match="missing.txt: label file not found"):
        index_imagenet_val(root, tmp_path / "missing.txt")
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataFileError, match="broken.JPEG: not a readable image"):
        load_image(broken, 16)


def test_load_image_resizes_the_short_side_and_center_crops(tmp_path):
    # 60x20: green 20-pixel borders left and right of a red centre; the crop keeps the centre
    img = Image.new("RGB", (60, 20), (0, 255, 0))
    img.paste((255, 0, 0), (20, 0, 40, 20))
    img.save(tmp_path / "wide.png")
    x = load_image(tmp_path / "wide.png", 16)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert x[0].mean() > 0.95 and x[1].mean() < 0.05
    Image.new("L", (10, 30), 128).save(tmp_path / "gray.png")  # grey and upscaled
    y = load_image(tmp_path / "gray.png", 16)
    assert y.shape == (3, 16, 16) and torch.allclose(y, torch.full_like(y, 128 / 255))
