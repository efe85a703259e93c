"""File formats of dds.io: bit-exact image shards, checked reads, atomic writes."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from dds.evaluation.classify import predictions
from dds.io import (
    CHECKSUM_KEY,
    SHAPE_KEY,
    DataFileError,
    ImageSet,
    atomic_path,
    fingerprint,
    load_tensors,
    read_images,
    read_json,
    read_table,
    save_tensors,
    write_images,
    write_json,
    write_table,
)

AWKWARD = np.array(
    [
        0.0,
        -0.0,
        1.0,
        0.1,
        1e-38,
        1e-45,
        np.nextafter(np.float32(1), np.float32(0)),
        np.nextafter(np.float32(0), np.float32(1)),
        1 / 3,
        0.5,
        2 / 255,
        0.9999999,
    ],
    dtype=np.float32,
)


def image_set(n=6, shape=(1, 4, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand((n, *shape), generator=gen)
    flat = images.view(n, -1)
    flat[0, : len(AWKWARD)] = torch.from_numpy(AWKWARD)  # the awkward values, bit for bit
    return ImageSet(
        idx=torch.tensor([1796, 0, 5, 42, 7, 3][:n], dtype=torch.int64),
        labels=torch.tensor([9, 0, 5, 2, 7, 3][:n], dtype=torch.int64),
        images=images,
    )


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 5, 2)])
def test_image_round_trip_is_bit_exact(tmp_path, shape):
    data = image_set(shape=shape)
    path = tmp_path / "shard.parquet"
    write_images(path, data)
    back = read_images(path)
    assert torch.equal(back.images, data.images)
    assert same_bits(back.images, data.images)  # also -0.0 and subnormals
    assert back.images.dtype == torch.float32
    assert torch.equal(back.idx, data.idx) and back.idx.dtype == torch.int64
    assert torch.equal(back.labels, data.labels) and back.labels.dtype == torch.int64
    assert len(back) == len(data)


def test_round_trip_of_noncontiguous(tmp_path):
    data = image_set(shape=(1, 4, 6))
    view = ImageSet(data.idx, data.labels, data.images.transpose(2, 3))  # [N, 1, 6, 4], not contiguous
    write_images(tmp_path / "t.parquet", view)
    assert torch.equal(read_images(tmp_path / "t.parquet").images, view.images)


def test_extra_columns_are_kept(tmp_path):
    data = image_set()
    linf = np.array([0.1, 0.2, 0.0, 1e-300, 0.05, 0.3], dtype=np.float64)
    l2 = np.arange(6, dtype=np.float64) / 7
    path = tmp_path / "adv.parquet"
    write_images(path, data, {"linf": linf, "l2": l2})
    table = read_table(path)
    assert list(table.columns) == ["idx", "label", "image", "linf", "l2"]
    np.testing.assert_array_equal(table["linf"].to_numpy(), linf)
    np.testing.assert_array_equal(table["l2"].to_numpy(), l2)
    assert table["linf"].dtype == np.float64
    assert torch.equal(read_images(path).images, data.images)


def test_predictions_on_read_back_shard_equal_in_memory(tmp_path, model):
    data = image_set(shape=(1, 8, 8))
    path = tmp_path / "shard.parquet"
    write_images(path, data)
    a = predictions(model, data, 4, "cpu")
    b = predictions(model, read_images(path), 4, "cpu")
    for col in ["idx", "label", "pred", "correct"]:
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    np.testing.assert_array_equal(np.stack(a["logits"]), np.stack(b["logits"]))


def assert_names_file(info, path):
    assert str(path) in str(info.value)


def test_truncated_parquet(tmp_path):
    path = tmp_path / "shard.parquet"
    write_images(path, image_set())
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError) as info:
        read_images(path)
    assert_names_file(info, path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(DataFileError) as info:
        read_images(path)
    assert_names_file(info, path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "shard.parquet"
    with pytest.raises(DataFileError, match="not found") as info:
        read_images(path)
    assert_names_file(info, path)


@pytest.mark.parametrize(
    "value, message", [(float("nan"), "NaN"), (float("inf"), "Inf"), (1.0001, r"\[0, 1\]"), (-1e-7, r"\[0, 1\]")]
)
def test_bad_values(tmp_path, value, message):
    data = image_set()
    data.images[3, 0, 2, 1] = value
    path = tmp_path / "bad.parquet"
    write_images(path, data)
    with pytest.raises(DataFileError, match=message) as info:
        read_images(path)
    assert_names_file(info, path)


def shard_table(blobs, shape=(1, 2, 2)):
    """A shard written by hand, with the fingerprint write_images would record when every
    row is complete (and a wrong one otherwise)."""
    n = len(blobs)
    table = pa.table(
        {
            "idx": pa.array(np.arange(n, dtype=np.int64)),
            "label": pa.array(np.zeros(n, dtype=np.int64)),
            "image": pa.array(blobs, type=pa.binary()),
        }
    )
    size = int(np.prod(shape)) * 4
    checksum = "0" * 64
    if all(len(b) == size for b in blobs):
        images = torch.from_numpy(np.frombuffer(b"".join(blobs), dtype="<f4").reshape(n, *shape).copy())
        checksum = fingerprint(ImageSet(torch.arange(n), torch.zeros(n, dtype=torch.int64), images))
    return table.replace_schema_metadata({SHAPE_KEY: json.dumps(list(shape)).encode(), CHECKSUM_KEY: checksum.encode()})


@pytest.mark.parametrize("column", ["image", "label", "idx"])
def test_shard_changed_after_writing_fails_its_checksum(tmp_path, column):
    path = tmp_path / "shard.parquet"
    write_images(path, image_set())
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[1] = values[1][:-1] + bytes([values[1][-1] ^ 1]) if column == "image" else values[1] + 1
    pq.write_table(
        table.set_column(
            table.schema.get_field_index(column), column, pa.array(values, type=table.schema.field(column).type)
        ),
        path,
    )
    assert pq.read_table(path).schema.metadata[CHECKSUM_KEY]  # the recorded fingerprint is still there
    with pytest.raises(DataFileError, match="does not match the sha256") as info:
        read_images(path)
    assert_names_file(info, path)


def test_row_with_wrong_byte_length(tmp_path):
    good = np.full(4, 0.5, dtype="<f4").tobytes()
    path = tmp_path / "short.parquet"
    pq.write_table(shard_table([good, good, good[:-4]]), path)
    with pytest.raises(DataFileError, match="row 2") as info:
        read_images(path)
    assert_names_file(info, path)
    # the same file with every row complete reads fine: the check is about the length
    pq.write_table(shard_table([good, good, good]), path)
    assert read_images(path).images.shape == (3, 1, 2, 2)


def test_shard_without_shape_metadata(tmp_path):
    path = tmp_path / "plain.parquet"
    pq.write_table(shard_table([np.zeros(4, dtype="<f4").tobytes()]).replace_schema_metadata({}), path)
    with pytest.raises(DataFileError, match="shape") as info:
        read_images(path)
    assert_names_file(info, path)


def test_write_images_rejects_wrong_rank(tmp_path):
    with pytest.raises(ValueError, match="N, C, H, W"):
        write_images(tmp_path / "x.parquet", ImageSet(torch.arange(2), torch.arange(2), torch.rand(2, 4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_commits_on_success(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
        assert not path.exists()
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_atomic_path_leaves_nothing_when_block_raises(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(path) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_when_block_raises(tmp_path):
    path = tmp_path / "out.parquet"
    write_images(path, image_set())
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"half a file")
        raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert torch.equal(read_images(path).images, image_set().images)


def test_json_and_table_round_trip_and_errors(tmp_path):
    obj = {"b": [1, 2.5], "a": {"x": "y"}}
    write_json(obj, tmp_path / "r.json")
    assert read_json(tmp_path / "r.json") == obj
    df = pd.DataFrame({"a": [1, 2], "b": [0.1, 0.2]})
    write_table(df, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), df)
    (tmp_path / "bad.json").write_text('{"epochs": 8,')  # cut short
    for path, reader, message in [
        (tmp_path / "bad.json", read_json, "not valid JSON.*rerun the rule"),
        (tmp_path / "none.json", read_json, "not found"),
        (tmp_path / "bad.json", read_table, "not a readable Parquet file.*rerun the rule"),
        (tmp_path / "none.parquet", read_table, "not found"),
    ]:
        with pytest.raises(DataFileError, match=message) as info:
            reader(path)
        assert_names_file(info, path)


def test_tensors_round_trip_and_errors(tmp_path):
    tensors = {"w": torch.from_numpy(AWKWARD.copy()), "abar": torch.linspace(0, 1, 7, dtype=torch.float64)}
    path = tmp_path / "t.safetensors"
    save_tensors(tensors, path, {"k": "v"})
    back, meta = load_tensors(path)
    assert meta == {"k": "v"}
    assert set(back) == set(tensors) and all(same_bits(back[k], tensors[k]) for k in tensors)
    path.write_bytes(path.read_bytes()[:20])
    for bad in (path, tmp_path / "missing.safetensors"):
        with pytest.raises(DataFileError) as info:
            load_tensors(bad)
        assert_names_file(info, bad)


def test_an_empty_image_set_round_trips(tmp_path):
    empty = ImageSet(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 1, 4, 4))
    write_images(tmp_path / "empty.parquet", empty)
    back = read_images(tmp_path / "empty.parquet")
    assert len(back) == 0 and back.images.shape == (0, 1, 4, 4)
