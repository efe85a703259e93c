import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dds.evaluation.blur import (
    PER_IMAGE_COLUMNS,
    add_noise,
    blur_predictions,
    blur_table,
    gaussian_blur,
    majority_vote,
)
from dds.io import DataFileError, ImageSet, read_table, write_images
from dds.models.classifiers import build_classifier, save_classifier
from dds.pipeline.blur import blur_adversarial, blur_noise
from dds.reporting.latex import blur_latex


def test_majority_vote_hand_made():
    #                      all agree, NS=SS, NS=DS, SS=DS, all differ
    p_ns = torch.tensor([3, 1, 2, 7, 0])
    p_ss = torch.tensor([3, 1, 5, 4, 1])
    p_ds = torch.tensor([3, 9, 2, 4, 2])
    assert majority_vote(p_ns, p_ss, p_ds).tolist() == [3, 1, 2, 4, -1]


def test_majority_vote_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        majority_vote(torch.tensor([1, 2]), torch.tensor([1]), torch.tensor([1, 2]))


@pytest.mark.parametrize("kernel_size, sigma", [(4, 1.0), (1, 1.0), (5, 0.0), (5, -1.0), (5, float("nan"))])
def test_gaussian_blur_rejects_bad_arguments(kernel_size, sigma):
    with pytest.raises(ValueError, match=repr(kernel_size) if kernel_size in (1, 4) else "sigma"):
        gaussian_blur(kernel_size, sigma)


def test_gaussian_blur_shape_and_constant():
    blur = gaussian_blur(5, 1.0)
    x = torch.rand(2, 3, 9, 11)
    assert blur(x).shape == x.shape
    constant = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(blur(constant), constant)  # reflect padding keeps the borders constant too


def test_gaussian_blur_kernel_is_the_normalised_2d_gaussian():
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1.0
    # Away from the border, blurring an impulse writes out the (symmetric) kernel itself.
    kernel = gaussian_blur(5, 1.0)(impulse)[0, 0].numpy()
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    x, y = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3))
    expected = np.exp(-(x**2 + y**2) / 2.0)
    expected /= expected.sum()
    np.testing.assert_allclose(kernel[5:10, 5:10], expected, atol=1e-6)
    assert np.abs(np.delete(np.delete(kernel, range(5, 10), 0), range(5, 10), 1)).max() == 0  # support is 5x5


def test_gaussian_blur_reduces_noise_variance():
    noise = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    # Independent noise: variance falls to sum(k^2) of the kernel, about 0.08 for 5x5, sigma 1.
    assert gaussian_blur(5, 1.0)(noise).var() < 0.2 * noise.var()


def grey_set(n=6, size=16, value=0.5, first_idx=0):
    return ImageSet(torch.arange(first_idx, first_idx + n), torch.arange(n) % 10, torch.full((n, 3, size, size), value))


def test_add_noise_does_not_depend_on_the_split():
    data = ImageSet(
        torch.arange(10, 16),
        torch.zeros(6, dtype=torch.long),
        torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)),
    )
    whole = add_noise(data, 0.25, seed=7).images
    parts = torch.cat([add_noise(data.subset(0, 2), 0.25, 7).images, add_noise(data.subset(2, 6), 0.25, 7).images])
    torch.testing.assert_close(parts, whole, rtol=0, atol=0)
    reversed_order = ImageSet(data.idx.flip(0), data.labels, data.images.flip(0))
    torch.testing.assert_close(add_noise(reversed_order, 0.25, 7).images.flip(0), whole, rtol=0, atol=0)
    assert not torch.equal(add_noise(data, 0.25, seed=8).images, whole)  # the seed matters
    assert not torch.equal(add_noise(data, 0.125, seed=7).images, whole)  # so does the level


def test_add_noise_differs_between_images():
    diff = add_noise(grey_set(n=2), 0.1, seed=0).images - 0.5
    assert not torch.allclose(diff[0], diff[1])


def test_add_noise_clamps_and_level_zero_is_identity():
    data = grey_set()
    noisy = add_noise(data, 2.0, seed=0).images
    assert noisy.min() == 0 and noisy.max() == 1
    assert torch.equal(add_noise(data, 0.0, seed=0).images, data.images)
    with pytest.raises(ValueError, match="-0.1"):
        add_noise(data, -0.1, seed=0)


def test_add_noise_std_matches_level():
    data = grey_set(n=8, size=32)  # mid-grey: at level 0.125 clamping touches almost nothing (4 sigma)
    diff = add_noise(data, 0.125, seed=3).images - data.images
    assert diff.std().item() == pytest.approx(0.125, rel=0.03)
    assert abs(diff.mean().item()) < 0.005


def per_image(labels, ns, ss, ds, **keys):
    maj = majority_vote(torch.tensor(ns), torch.tensor(ss), torch.tensor(ds)).tolist()
    df = pd.DataFrame(
        {"idx": np.arange(len(labels)), "label": labels, "pred_ns": ns, "pred_ss": ss, "pred_ds": ds, "pred_maj": maj},
        dtype=np.int64,
    )
    for name, value in keys.items():
        df[name] = value
    return df


def test_blur_table_hand_computed():
    a = per_image(
        labels=[1, 2, 3, 4, 5],
        ns=[1, 2, 9, 8, 0],  # NS right on 2 of 5
        ss=[1, 7, 3, 4, 1],  # SS right on 3
        ds=[1, 7, 3, 6, 2],  # DS right on 2
        noise_level=0.25,
        classifier="m",
    )
    # majorities: 1 (right), 7 (wrong), 3 (right), reject, reject -> 2 right of 3 accepted
    b = per_image(labels=[0, 0], ns=[1, 0], ss=[2, 0], ds=[3, 5], noise_level=0.0, classifier="m")
    # majorities: reject, 0 (right)
    table = blur_table(pd.concat([a, b], ignore_index=True))
    assert list(table.columns) == [
        "noise_level",
        "classifier",
        "acc_ns",
        "acc_ss",
        "acc_ds",
        "acc_maj",
        "reject_rate",
        "n",
    ]
    assert table["noise_level"].tolist() == [0.0, 0.25]
    low, high = table.iloc[0], table.iloc[1]
    assert (low["acc_ns"], low["acc_ss"], low["acc_ds"]) == (0.5, 0.5, 0.0)
    assert (low["acc_maj"], low["reject_rate"], low["n"]) == (1.0, 0.5, 2)
    assert (high["acc_ns"], high["acc_ss"], high["acc_ds"]) == (0.4, 0.6, 0.4)
    assert high["acc_maj"] == pytest.approx(2 / 3)  # over accepted images; over all it would be 0.4
    assert high["reject_rate"] == pytest.approx(0.4)
    assert high["n"] == 5


def test_blur_table_all_rejected_group_has_nan_majority_accuracy():
    df = per_image(labels=[0, 1], ns=[0, 1], ss=[1, 2], ds=[2, 3], epsilon=0.1)
    row = blur_table(df).iloc[0]
    assert math.isnan(row["acc_maj"])
    assert row["reject_rate"] == 1.0
    assert row["acc_ns"] == 1.0


def test_blur_table_without_keys_and_with_errors():
    df = per_image(labels=[0, 1, 2], ns=[0, 1, 2], ss=[0, 2, 5], ds=[2, 3, 5])  # majorities 0, reject, 5
    table = blur_table(df)
    assert list(table.columns) == ["acc_ns", "acc_ss", "acc_ds", "acc_maj", "reject_rate", "n"]
    assert len(table) == 1 and table["acc_maj"].iloc[0] == 0.5
    assert table["reject_rate"].iloc[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="appears more than once"):
        blur_table(pd.concat([df.assign(source="x"), df.assign(source="x")]))
    with pytest.raises(ValueError, match="pred_maj"):
        blur_table(df.drop(columns="pred_maj"))


@pytest.fixture
def tiny_classifier(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("resnet18", {}, 1, 10, [0.5], [0.5])
    path = tmp_path / "classifier.safetensors"
    save_classifier(model, path, {"model": "resnet18", "kwargs": {}}, 1, 10)
    return path


def test_blur_stage_end_to_end(tmp_path, tiny_classifier):
    images = ImageSet(
        torch.arange(5, 10),
        torch.tensor([0, 1, 2, 3, 4]),
        torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0)),
    )
    write_images(tmp_path / "images.parquet", images)
    out = tmp_path / "out" / "blur.parquet"
    blur_noise(
        images=tmp_path / "images.parquet",
        classifier=tiny_classifier,
        predictions=[out],
        spec={"kernel_size": 5, "sigma": 1.0},
        noise_levels=[0.25],
        seed=0,
        batch_size=2,
        device="cpu",
    )
    table = read_table(out)
    assert list(table.columns) == PER_IMAGE_COLUMNS + ["noise_level", "precision"]
    assert (table["precision"] == "fp32").all()  # the CPU's default, resolved
    assert len(table) == 5
    assert table["idx"].tolist() == [5, 6, 7, 8, 9]
    assert all(table[c].dtype == np.int64 for c in PER_IMAGE_COLUMNS)
    assert (table["noise_level"] == 0.25).all()
    expected = majority_vote(*(torch.tensor(table[c].tolist()) for c in ("pred_ns", "pred_ss", "pred_ds")))
    assert table["pred_maj"].tolist() == expected.tolist()
    assert not list(tmp_path.glob("out/.*.tmp"))  # the atomic write left no temporary file


def test_blur_predictions_batching_does_not_change_predictions(tiny_classifier):
    from dds.models.classifiers import load_classifier

    model = load_classifier(tiny_classifier)
    data = ImageSet(
        torch.arange(4),
        torch.zeros(4, dtype=torch.long),
        torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(2)),
    )
    one = blur_predictions(model, data, 5, 1.0, 1, "cpu")
    four = blur_predictions(model, data, 5, 1.0, 4, "cpu")
    pd.testing.assert_frame_equal(one, four)
    assert not model.training


class CentrePixelClass(torch.nn.Module):
    """Predicts class min(floor(50 * centre pixel), 9): a blur of an impulse visibly changes it."""

    def forward(self, x):
        centre = x[:, 0, x.shape[2] // 2, x.shape[3] // 2]
        cls = torch.clamp(torch.floor(50 * centre), max=9)
        return -(torch.arange(10.0) - cls[:, None]).abs()


def test_blur_predictions_blurs_once_and_twice():
    impulse = torch.zeros(1, 11, 11)
    impulse[0, 5, 5] = 1.0
    data = ImageSet(torch.tensor([3, 4]), torch.tensor([9, 2]), torch.stack([impulse, torch.full((1, 11, 11), 0.05)]))
    model = CentrePixelClass().train()
    table = blur_predictions(model, data, 5, 1.0, 2, "cpu")
    assert not model.training
    # impulse centre: 1 as is, 0.4026^2 = 0.162 blurred once, sum of squared kernel weights = 0.0825 twice
    assert table.iloc[0][["pred_ns", "pred_ss", "pred_ds", "pred_maj"]].tolist() == [9, 8, 4, -1]
    # a constant image is unchanged by the blur: all three agree
    assert table.iloc[1][["pred_ns", "pred_ss", "pred_ds", "pred_maj"]].tolist() == [2, 2, 2, 2]
    assert table["idx"].tolist() == [3, 4] and table["label"].tolist() == [9, 2]


def test_blur_stage_missing_classifier_names_the_file(tmp_path):
    write_images(tmp_path / "images.parquet", grey_set(n=2))
    missing = tmp_path / "no-such-classifier.safetensors"
    with pytest.raises(DataFileError, match="no-such-classifier.safetensors"):
        blur_adversarial(
            images=[tmp_path / "images.parquet"],
            classifier=missing,
            predictions=[tmp_path / "out.parquet"],
            spec={"kernel_size": 5, "sigma": 1.0},
            batch_size=2,
            device="cpu",
        )
    assert not (tmp_path / "out.parquet").exists()


def published_like_table():
    return pd.DataFrame(
        {
            "classifier": "resnet50",
            "noise_level": [0.125, 0.0],
            "acc_ns": [0.6523, 0.882],
            "acc_ss": [0.7148, 0.8605],
            "acc_ds": [0.6912, 0.8153],
            "acc_maj": [0.7541, math.nan],
            "reject_rate": [0.0656, 0.0153],
            "n": [975, 975],
            "precision": "fp32",
        }
    )


def test_blur_latex_layout():
    body = blur_latex(published_like_table(), "Blur & majority, 5x5", "tab:blur")
    assert r"Noise level & Acc\_NS & Acc\_SS & Acc\_DS & Acc\_Maj & Reject rate \\" in body
    assert r"0 & 0.8820 & 0.8605 & 0.8153 & -- & 0.0153 \\" in body  # sorted by noise level; NaN as --
    assert body.index(r"0 & 0.8820") < body.index(r"0.125 & 0.6523 & 0.7148 & 0.6912 & 0.7541 & 0.0656 \\")
    assert r"\caption{Blur \& majority, 5x5 (precision: fp32)}" in body
    two = pd.concat([published_like_table(), published_like_table().assign(classifier="other")])
    with pytest.raises(ValueError, match="one setup per table"):
        blur_latex(two, "c", "tab:blur")
    with pytest.raises(ValueError, match="label"):
        blur_latex(published_like_table(), "c", "tab blur")


def test_blur_latex_compiles(compile_latex):
    compile_latex(blur_latex(published_like_table(), "Gaussian blur majority, 5x5, sigma 1", "tab:blur"))


def test_blur_table_stage_learns_each_file_from_its_path(tmp_path, monkeypatch):
    from dds import layout
    from dds.io import write_table
    from dds.pipeline.blur import blur_table as blur_table_stage

    monkeypatch.chdir(tmp_path)  # the stage reads noise, attack and epsilon from paths in the workflow's layout
    where = dict(dataset="digits", classifier="clf")

    def shard(path, correct, noise_level=0.0, precision="fp32", first=0):
        # of 4 images of class 0, the first `correct` predicted right as is and blurred; the rest rejected
        right = [(0, 0, 0, 0)] * correct + [(1, 2, 3, -1)] * (4 - correct)
        write_table(
            pd.DataFrame(right, columns=["pred_ns", "pred_ss", "pred_ds", "pred_maj"]).assign(
                idx=range(first, first + 4), label=0, noise_level=noise_level, precision=precision
            ),
            path,
        )
        return path

    clean = [shard(layout.fill(layout.BLUR_CLEAN, noise=n, shard=0, **where), c, n) for n, c in ((0.0, 4), (0.5, 1))]
    # a second shard of noise 0.5 run in bf16: one row still, whose table says the precisions were mixed
    clean.append(shard(layout.fill(layout.BLUR_CLEAN, noise=0.5, shard=1, **where), 0, 0.5, "bf16", 4))
    adversarial = [
        shard(layout.fill(layout.BLUR_ADVERSARIAL, attack=a, epsilon=e, shard=0, **where), c)
        for a, e, c in (("pgd", 0.0, 3), ("pgd", 0.1, 2), ("fgsm", 0.1, 0))
    ]
    blur_table_stage(clean=clean[::-1], adversarial=adversarial[::-1], table="blur.parquet", tex="blur.tex", **where)
    table = read_table("blur.parquet")
    acc = {(r.source, r.attack, r.epsilon, r.noise_level): r.acc_ns for r in table.itertuples()}
    assert acc == {
        ("noise", "", 0.0, 0.0): 1.0,
        ("noise", "", 0.0, 0.5): 0.125,
        ("attack", "pgd", 0.0, 0.0): 0.75,
        ("attack", "pgd", 0.1, 0.0): 0.5,
        ("attack", "fgsm", 0.1, 0.0): 0.0,
    }
    assert (table["classifier"] == "clf").all()
    assert (table["precision"] == "mixed: bf16, fp32").all()
    assert "(precision: mixed: bf16, fp32)}" in Path("blur.tex").read_text()
