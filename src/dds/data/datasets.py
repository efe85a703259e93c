"""The real datasets of the published setups, as ImageSets in [0,1] (float32, NCHW).

CIFAR-10 is read by torchvision's own class, so its md5 checks apply. ImageNet validation
images come from a directory the user names, in one of two layouts:

- class folders: `ROOT/n01440764/*.JPEG`, one folder per ImageNet-1k synset;
- flat, as the official archive unpacks: `ROOT/ILSVRC2012_val_00000001.JPEG, ...`, with a
  label file, one of
  * the devkit ground truth (`ILSVRC2012_validation_ground_truth.txt`): one 1-based
    ILSVRC2012 class id per line, line i for image i; the ids are mapped to synsets by the
    devkit's `meta.mat`, which must lie beside it (as in the devkit's `data/` folder);
  * one synset per line, line i for image i (e.g. `imagenet_2012_validation_synset_labels.txt`);
  * a mapping, one `FILE,SYNSET` or `FILE SYNSET` per line, FILE with or without its
    extension; extra tokens after the synset and a header line are ignored, so Kaggle's
    `LOC_val_solution.csv` works as it is. A mapping may list more files than there are.

Labels are class indices in the order of `imagenet_synsets()` (the sorted synset ids, the
order of timm's and torchvision's ImageNet-1k models), always derived from synset ids,
never assumed from a file or folder order.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import CIFAR10
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from dds.data.split import stratified_positions
from dds.io import DataFileError, ImageSet

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
SYNSET = re.compile(r"n\d{8}")
OFFICIAL_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")
NUM_CLASSES = 1000


CIFAR10_FILES = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]


def _cifar10_reader(md5: dict | None) -> type[CIFAR10]:
    """torchvision's reader, checking the files against `md5` (file name -> md5) instead of the
    official table when given: a copy of your own (a subset, the rehearsal's stand-ins) is read by
    the same code, and still checked."""
    if md5 is None:
        return CIFAR10
    return type(
        "CIFAR10Copy",
        (CIFAR10,),
        {
            "train_list": [[name, md5[name]] for name, _ in CIFAR10.train_list],
            "test_list": [[name, md5[name]] for name, _ in CIFAR10.test_list],
            "meta": {**CIFAR10.meta, "md5": md5[CIFAR10.meta["filename"]]},
        },
    )


def load_cifar10(root, train: bool = False, download: bool = False, md5: dict | None = None) -> ImageSet:
    """The CIFAR-10 test (or training) split from ROOT/cifar-10-batches-py, downloaded there
    first when `download` is true and the files are not already there; `md5` (file name ->
    md5) replaces the official checksums for a copy of your own."""
    root = Path(root)
    folder = root / CIFAR10.base_folder
    names = CIFAR10_FILES
    how = (
        f"download {CIFAR10.url} (md5 {CIFAR10.tgz_md5}) and extract it in {root}, so that {folder}/ holds "
        f"{', '.join(names)}; or set download: true on a machine that is online"
    )
    missing = [name for name in names if not (folder / name).is_file()]
    if missing and not download:
        raise DataFileError(f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}. To fix: {how}")
    try:
        dataset = _cifar10_reader(md5)(str(root), train=train, download=download)
    except OSError as err:  # offline or unreachable (URLError is an OSError)
        raise DataFileError(f"CIFAR-10 could not be downloaded to {root} ({err}). To fix: {how}") from None
    except RuntimeError as err:  # torchvision's md5 check failed
        raise DataFileError(
            f"{folder}: the CIFAR-10 files are corrupt or not the "
            f"{'ones dataset.md5 names' if md5 else 'official ones'} ({err}). To fix: delete {folder}, then {how}"
        ) from None
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).float() / 255
    return ImageSet(
        idx=torch.arange(len(images), dtype=torch.int64),
        labels=torch.tensor(dataset.targets, dtype=torch.int64),
        images=images.contiguous(),
    )


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k synset ids in class-index order, as timm ships them."""
    from timm.data import ImageNetInfo

    synsets = list(ImageNetInfo().label_names())
    if len(synsets) != NUM_CLASSES or synsets != sorted(synsets):
        raise RuntimeError("timm's ImageNet-1k synset list is no longer the 1000 sorted synset ids")
    return synsets


@dataclass
class ImageFiles:
    """Image files with their class indices, in a fixed order (the dataset index)."""

    paths: list[Path]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.paths)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _devkit_ids(meta_path: Path) -> dict[int, str]:
    """ILSVRC2012 class id (1..1000) -> synset, from the devkit's meta.mat (its 1000 leaf synsets)."""
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(meta_path), squeeze_me=True)["synsets"]
        leaves = synsets[synsets["num_children"] == 0]
        ids = {int(i): str(w) for i, w in zip(leaves["ILSVRC2012_ID"], leaves["WNID"], strict=True)}
    except (OSError, KeyError, ValueError, TypeError, NotImplementedError) as err:
        raise DataFileError(f"{meta_path}: not the ILSVRC2012 devkit's meta.mat ({err})") from None
    if sorted(ids) != list(range(1, NUM_CLASSES + 1)):
        raise DataFileError(
            f"{meta_path}: {len(ids)} leaf synsets with ids {min(ids, default=None)}.."
            f"{max(ids, default=None)}; the ILSVRC2012 devkit's meta.mat has ids 1..1000"
        )
    return ids


def _per_line_synsets(labels_file: Path, lines: list[str], files: list[Path]) -> list[str]:
    """Synsets of a label file with one entry per image, in the official file order."""
    if len(lines) != len(files):
        raise DataFileError(
            f"{labels_file}: {len(lines)} labels for {len(files)} images in {files[0].parent}; a "
            "label file with one label per line needs exactly one line per image (for a subset of "
            "the images, use a FILE,SYNSET mapping instead)"
        )
    for number, path in enumerate(files, start=1):
        m = OFFICIAL_VAL_NAME.fullmatch(path.stem)
        if m is None or int(m[1]) != number:
            raise DataFileError(
                f"{path}: image #{number} should be ILSVRC2012_val_{number:08d}: a label file with one "
                "label per line follows the official file names and order; use a FILE,SYNSET "
                "mapping for other names"
            )
    if lines[0].isdigit():
        meta = labels_file.parent / "meta.mat"
        if not meta.is_file():
            raise DataFileError(
                f"{labels_file}: its labels are ILSVRC2012 class ids, which need the devkit's meta.mat "
                f"to name their synsets: put ILSVRC2012_devkit_t12/data/meta.mat at {meta}"
            )
        ids = _devkit_ids(meta)
        bad = next((n for n, line in enumerate(lines, 1) if int(line) not in ids), None)
        if bad is not None:
            raise DataFileError(f"{labels_file}:{bad}: class id {lines[bad - 1]} is outside 1..1000")
        return [ids[int(line)] for line in lines]
    return lines


def _mapped_synsets(labels_file: Path, lines: list[str], files: list[Path]) -> list[str]:
    """Synsets of a FILE,SYNSET (or FILE SYNSET) mapping, looked up by file name."""
    mapping = {}
    for number, line in enumerate(lines, start=1):
        parts = re.split(r"[,\s]+", line)
        synset = parts[1] if len(parts) > 1 else ""
        if not SYNSET.fullmatch(synset):
            if number == 1:
                continue  # a header
            hint = " (integer labels are ambiguous here: write synset ids)" if synset.isdigit() else ""
            raise DataFileError(
                f"{labels_file}:{number}: expected FILE,SYNSET with a synset like n01440764, got {line!r}{hint}"
            )
        stem = Path(parts[0]).stem
        if mapping.setdefault(stem, synset) != synset:
            raise DataFileError(f"{labels_file}:{number}: {stem} is mapped to both {mapping[stem]} and {synset}")
    missing = [p.name for p in files if p.stem not in mapping]
    if missing:
        raise DataFileError(
            f"{labels_file}: no label for {len(missing)} of the {len(files)} images in "
            f"{files[0].parent}, e.g. {', '.join(missing[:3])}"
        )
    return [mapping[p.stem] for p in files]


def _flat_layout(root: Path, labels_file: Path) -> tuple[list[Path], list[str]]:
    files = _images_in(root)
    if not files:
        raise DataFileError(
            f"{root}: no .JPEG/.jpg/.png images in this folder (flat layout, as the official "
            "ILSVRC2012_img_val.tar unpacks)"
        )
    try:
        lines = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise DataFileError(f"{labels_file}: label file not found") from None
    per_line = lines and (all(line.isdigit() for line in lines) or all(SYNSET.fullmatch(line) for line in lines))
    synsets = (_per_line_synsets if per_line else _mapped_synsets)(labels_file, lines, files)
    return files, synsets


def _class_folder_layout(root: Path) -> tuple[list[Path], list[str]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataFileError(
            f"{root}: no class folders (n01440764/, ...); for the flat official layout "
            "(ILSVRC2012_val_00000001.JPEG, ...) give its label file"
        )
    files, synsets = [], []
    for folder in folders:
        images = _images_in(folder)
        files += images
        synsets += [folder.name] * len(images)
    return files, synsets


def index_imagenet_val(root, labels_file=None, require_all_classes: bool = True) -> ImageFiles:
    """The validation images under ROOT with their class indices: the class-folder layout
    without `labels_file`, the flat layout with it (see the module docstring for the
    formats). Checks that every synset is one of the 1000 and, with `require_all_classes`,
    that all 1000 classes are present."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(
            f"{root}: ImageNet validation folder not found; point the config to the folder that "
            "holds the validation images (class folders, or the flat official layout with its "
            "label file)"
        )
    if labels_file is None:
        files, synsets = _class_folder_layout(root)
    else:
        files, synsets = _flat_layout(root, Path(labels_file))
    source = root if labels_file is None else labels_file
    index = {s: i for i, s in enumerate(imagenet_synsets())}
    unknown = sorted({s for s in synsets if s not in index})
    if unknown:
        raise DataFileError(
            f"{source}: {len(unknown)} synset(s) that are not ImageNet-1k classes, e.g. "
            f"{', '.join(unknown[:5])}; the labels must be the 1000 ILSVRC2012 synset ids"
        )
    if not files:
        raise DataFileError(f"{root}: no .JPEG/.jpg/.png images found")
    labels = torch.tensor([index[s] for s in synsets], dtype=torch.int64)
    found = len(torch.unique(labels))
    if require_all_classes and found != NUM_CLASSES:
        raise DataFileError(
            f"{source}: the images cover {found} classes, ImageNet-1k has {NUM_CLASSES}; the folder is "
            "incomplete (or, for a deliberate subset, turn off require_all_classes)"
        )
    return ImageFiles(files, labels)


def load_image(path, image_size: int) -> torch.Tensor:
    """An image file as float32 [3, S, S] in [0,1]: RGB, the shorter side resized to S
    (bilinear, antialiased), then center-cropped to S x S."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise DataFileError(f"{path}: not a readable image ({err})") from None
    img = TF.resize(img, image_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    img = TF.center_crop(img, [image_size, image_size])
    return TF.pil_to_tensor(img).float() / 255


def load_imagenet_val(
    root, size: int | None, seed: int, image_size: int = 256, labels_file=None, require_all_classes: bool = True
) -> ImageSet:
    """A seeded stratified sample of `size` validation images (all when None), decoded at
    image_size x image_size; `idx` is the image's position in the sorted file order (for
    the flat official layout, its number minus one)."""
    files = index_imagenet_val(root, labels_file, require_all_classes)
    positions = np.arange(len(files)) if size is None else stratified_positions(files.labels, size, seed)[1]
    images = []
    for n, pos in enumerate(positions, start=1):
        images.append(load_image(files.paths[pos], image_size))
        if n % 250 == 0 or n == len(positions):
            log.info("decoded %d/%d ImageNet images", n, len(positions))
    positions = torch.from_numpy(positions.astype(np.int64))
    return ImageSet(idx=positions, labels=files.labels[positions], images=torch.stack(images))
