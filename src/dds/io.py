"""File formats of dds, every write atomic (temporary name in the same directory, then
rename), every read checked.

Images travel as Parquet shards: one row per image with `idx`, `label`, the image as raw
little-endian float32 bytes (exact, never re-quantised), and the image shape [C, H, W] in
the file's metadata. Weights and tensors are safetensors; small records are JSON.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

SHAPE_KEY = b"dds.image_shape"
CHECKSUM_KEY = b"dds.sha256"
_UMASK = os.umask(0)
os.umask(_UMASK)


class DataFileError(ValueError):
    """A file that dds cannot use: missing, corrupt, or with the wrong content."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(text: str, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj, path) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DataFileError(f"{path}: not valid JSON ({err}); delete it and rerun the rule that makes it") from None


def write_table(df: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _read_parquet(path, columns=None) -> pa.Table:
    """A Parquet file as an Arrow table; a missing file, a corrupt file or an absent column
    is a DataFileError that names the file."""
    try:
        if columns is not None:
            names = pq.read_schema(path).names
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataFileError(f"{path}: missing column(s) {missing}; it has {names}")
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except (pa.ArrowException, OSError) as err:
        raise DataFileError(
            f"{path}: not a readable Parquet file ({err}); delete it and rerun the rule that makes it"
        ) from None


def read_table(path, columns=None) -> pd.DataFrame:
    return _read_parquet(path, columns).to_pandas()


def require_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")


def read_tables(paths, columns=None) -> pd.DataFrame:
    """Several Parquet tables (shards of one table, say) concatenated in order."""
    return pd.concat([read_table(p, columns) for p in paths], ignore_index=True)


def save_tensors(tensors: dict, path, metadata: dict | None = None) -> None:
    """Save tensors as safetensors; metadata values must be strings."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_tensors(path) -> tuple[dict, dict]:
    """Load a safetensors file: (tensors, metadata). No pickle is involved."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as err:
        raise DataFileError(f"{path}: not a readable safetensors file ({err})") from None


@dataclass
class ImageSet:
    """A set of images in [0,1] with their dataset indices and labels."""

    idx: torch.Tensor  # int64 [N]
    labels: torch.Tensor  # int64 [N]
    images: torch.Tensor  # float32 [N, C, H, W]

    def __len__(self) -> int:
        return len(self.idx)

    def subset(self, start: int, stop: int) -> "ImageSet":
        return ImageSet(self.idx[start:stop], self.labels[start:stop], self.images[start:stop])


def concat_images(parts: list) -> ImageSet:
    """Image sets (e.g. the shards of one set, in order) as one."""
    if not parts:
        raise ValueError("no image sets to concatenate")
    return ImageSet(
        torch.cat([p.idx for p in parts]), torch.cat([p.labels for p in parts]), torch.cat([p.images for p in parts])
    )


def read_image_shards(paths) -> ImageSet:
    """A sharded image set read whole (shard files in order)."""
    return concat_images([read_images(p) for p in paths])


def first_images(paths, count: int) -> ImageSet:
    """The first `count` images of a sharded image set (shard files in order)."""
    return read_image_shards(paths).subset(0, count)


def fingerprint(data: ImageSet) -> str:
    """sha256 of the indices, labels and exact float32 image bytes."""
    digest = hashlib.sha256()
    for t in (data.idx, data.labels, data.images):
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_images(path, images: ImageSet, extra: dict | None = None) -> None:
    """Write an image shard; `extra` adds per-image columns (e.g. perturbation norms). The
    shard's fingerprint goes into its metadata, so a reader detects any later change."""
    x = images.images.detach().cpu().to(torch.float32).contiguous()
    if x.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(x.shape)}")
    canonical = ImageSet(images.idx.detach().cpu().to(torch.int64), images.labels.detach().cpu().to(torch.int64), x)
    flat = x.numpy().astype("<f4", copy=False).reshape(len(x), int(np.prod(x.shape[1:])))
    columns = {
        "idx": pa.array(canonical.idx.numpy()),
        "label": pa.array(canonical.labels.numpy()),
        "image": pa.array([row.tobytes() for row in flat], type=pa.binary()),
    }
    for name, values in (extra or {}).items():
        columns[name] = pa.array(np.asarray(values))
    table = pa.table(columns).replace_schema_metadata(
        {SHAPE_KEY: json.dumps(list(x.shape[1:])).encode(), CHECKSUM_KEY: fingerprint(canonical).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_images(path) -> ImageSet:
    """Read an image shard, checking its fingerprint, shape, finiteness and range."""
    table = _read_parquet(path, ["idx", "label", "image"])
    meta = table.schema.metadata or {}
    if SHAPE_KEY not in meta or CHECKSUM_KEY not in meta:
        raise DataFileError(
            f"{path}: no image shape or sha256 in the file metadata; it was not written by "
            "dds.io.write_images (delete it and rerun the rule that makes it)"
        )
    shape = json.loads(meta[SHAPE_KEY])
    blobs = table.column("image").to_pylist()
    size = int(np.prod(shape)) * 4
    bad = [i for i, b in enumerate(blobs) if len(b) != size]
    if bad:
        raise DataFileError(f"{path}: row {bad[0]} holds {len(blobs[bad[0]])} bytes, expected {size} for shape {shape}")
    array = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), *shape)
    images = torch.from_numpy(array.copy())
    data = ImageSet(
        idx=torch.from_numpy(table.column("idx").to_numpy().astype(np.int64)),
        labels=torch.from_numpy(table.column("label").to_numpy().astype(np.int64)),
        images=images,
    )
    expected = meta[CHECKSUM_KEY].decode()
    if fingerprint(data) != expected:
        raise DataFileError(
            f"{path}: content does not match the sha256 recorded when it was written ({expected}): "
            "the file was changed or damaged; delete it and rerun the rule that makes it"
        )
    if not torch.isfinite(images).all():
        raise DataFileError(f"{path}: images contain NaN or Inf")
    if len(images) and (images.min() < 0 or images.max() > 1):
        raise DataFileError(f"{path}: image values outside [0, 1] (min {images.min():.4g}, max {images.max():.4g})")
    return data


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
