"""Stand-ins for the published setups' data and checkpoints, made offline in the official
formats, so that the presets' own loaders read them: CIFAR-10's python pickles, an ImageNet
validation folder with the devkit's labels, an OpenAI diffusion state dict written with
`torch.save`, and timm weights in a safetensors file. Random content, seeded: they test the
path, not the accuracy."""

import hashlib
import pickle
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FOLDER = "cifar-10-batches-py"
# the devkit's file names (ILSVRC2012_devkit_t12/data/)
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META = "meta.mat"


def md5_file(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_cifar10(root, per_batch: int, test_size: int, seed: int = 0) -> dict:
    """ROOT/cifar-10-batches-py/ as the official archive unpacks: five data batches of
    `per_batch` images, the test batch, batches.meta; labels balanced over the 10 classes.
    Returns {file name: (data [N, 3072] uint8, labels)}."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test_size)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = [int(v) for v in rng.permutation(np.arange(n) % 10)]
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = (data, labels)
    meta = {"num_cases_per_batch": per_batch, "num_vis": 3072, "label_names": CIFAR10_CLASSES}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def cifar10_md5(root) -> dict:
    """The md5 table of a CIFAR-10 folder (config key dataset.md5)."""
    return {path.name: md5_file(path) for path in sorted((Path(root) / CIFAR10_FOLDER).iterdir())}


def write_devkit_meta(path, leaves: int = 1000) -> None:
    """A devkit meta.mat whose ILSVRC2012 ids run in reverse synset order (the synset of class
    index k has id 1000 - k; the real ids are not in sorted order either), plus two non-leaf
    synsets, as in the devkit."""
    import scipy.io

    from dds.data.datasets import imagenet_synsets

    synsets = imagenet_synsets()
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height"]
    fields.append("num_train_images")
    rows = [(1000 - k, synsets[k], 0) for k in range(leaves)] + [(1001, "n00001740", 2), (1002, "n00002137", 5)]
    table = np.zeros((len(rows), 1), dtype=[(f, "O") for f in fields])
    for r, (i, wnid, children) in enumerate(rows):
        table[r, 0] = (
            np.array([[i]], dtype=np.uint16),
            np.array([wnid]),
            np.array(["w"]),
            np.array(["g"]),
            np.array([[children]], dtype=np.uint8),
            np.zeros((1, 0)),
            np.array([[0]]),
            np.array([[1]]),
        )
    scipy.io.savemat(str(path), {"synsets": table})


def write_imagenet_val(root, devkit, classes: list[int], per_class: int, seed: int = 0) -> Path:
    """The flat official layout (ROOT/ILSVRC2012_val_00000001.JPEG, ...) of `per_class` random
    JPEGs of each class index in `classes`, in shuffled order and of varied sizes, and the
    devkit's ground truth (one ILSVRC2012 id per line) with its meta.mat in DEVKIT. Returns
    the ground-truth file."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root, devkit = Path(root), Path(devkit)
    root.mkdir(parents=True, exist_ok=True)
    devkit.mkdir(parents=True, exist_ok=True)
    labels = rng.permutation(np.repeat(classes, per_class))
    for number in range(1, len(labels) + 1):
        height, width = (int(v) for v in rng.integers(240, 400, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"ILSVRC2012_val_{number:08d}.JPEG", quality=90)
    write_devkit_meta(devkit / DEVKIT_META)
    truth = devkit / GROUND_TRUTH
    truth.write_text("".join(f"{1000 - int(k)}\n" for k in labels))
    return truth


def write_openai_checkpoint(path, spec, seed: int = 0) -> None:
    """An OpenAI UNet of `spec` (an OpenAICheckpoint) with seeded random weights, saved as the
    official checkpoints are: a plain state dict written with torch.save."""
    import torch

    from dds.diffusion.openai_unet import UNetModel

    torch.manual_seed(seed)
    torch.save(UNetModel(spec.unet).state_dict(), path)


def write_timm_weights(path, model: str, seed: int = 0) -> None:
    """timm model `model` with seeded random weights, as a safetensors file for a classifier's
    `weights:` key."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = timm.create_model(model, pretrained=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
