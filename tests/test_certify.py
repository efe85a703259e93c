"""Monte Carlo certification (dds.smoothing.sampling), the certified-accuracy tables (dds.smoothing.certified),
the rows a certification shard covers (dds.layout.certify_rows) and the `certify` stage end
to end on tiny files (docs/science.md §1.2 and §1.3)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm
from torch import nn

from dds import layout
from dds.io import ImageSet
from dds.reporting.latex import certified_latex
from dds.smoothing import bounds
from dds.smoothing.certified import (
    CERTIFIED_COLUMNS,
    MULTISCALE,
    TSV_COLUMNS,
    best_over_sigmas,
    certified_accuracy,
    certified_table,
    multiscale_examples,
    write_tsv,
)
from dds.smoothing.sampling import BLOCK, certify_images, noise_draws, sample_counts

COLUMNS = [
    "idx",
    "label",
    "predict",
    "radius",
    "correct",
    "time",
    "nA",
    "n",
    "pA_lower",
    "smoothed_predict",
    "counts0",
    "counts",
]
LINEAR = {"num_train_timesteps": 1000, "beta_schedule": "linear"}
SHAPE = (1, 8, 8)


# --- helpers -----------------------------------------------------------------------------------


class Constant(nn.Module):
    """A classifier that ignores its input: fixed logits favouring `cls`."""

    def __init__(self, cls: int, classes: int = 10):
        super().__init__()
        logits = torch.zeros(classes)
        logits[cls] = 1.0
        self.register_buffer("logits", logits)
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return self.logits.expand(len(x), -1).clone()


class PixelVote(nn.Module):
    """A classifier whose answer depends on the noise: the logits are the first 10 pixels."""

    def forward(self, x):
        return x.flatten(1)[:, :10]


class AddNoise(nn.Module):
    """A stand-in denoiser: x + sigma * noise, counting the images it processed."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma
        self.images = 0
        self.calls = 0

    def noise_shape(self, shape):
        return tuple(shape)

    def forward(self, x, noise):
        self.images += len(x)
        self.calls += 1
        return x + self.sigma * noise


class Counting(nn.Module):
    """Wraps a denoiser, counting the images it processed."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser = denoiser
        self.sigma, self.noise_shape = denoiser.sigma, denoiser.noise_shape
        self.images = 0

    def forward(self, x, noise):
        self.images += len(x)
        return self.denoiser(x, noise)


def one_shot(unet, sigma):
    from dds.diffusion.ddpm import DiffusersEps, build_scheduler
    from dds.diffusion.one_shot import OneShotDenoiser

    return OneShotDenoiser(DiffusersEps(unet), build_scheduler(LINEAR).alphas_cumprod, sigma)


def two_classifiers():
    from dds.models.classifiers import build_classifier

    torch.manual_seed(1)
    first = build_classifier("resnet18", {}, 1, 10, [0.5], [0.5]).eval()
    second = build_classifier("resnet18", {}, 1, 10, [0.5], [0.5]).eval()
    return {"first": first, "second": second}


def compare(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Every column but `time` identical, the count arrays element by element."""
    assert list(left.columns) == list(right.columns) == COLUMNS
    scalar = [c for c in COLUMNS if c not in ("time", "counts0", "counts")]
    pd.testing.assert_frame_equal(
        left[scalar].reset_index(drop=True), right[scalar].reset_index(drop=True), check_exact=True
    )
    for column in ("counts0", "counts"):
        a, b = np.stack(left[column].to_list()), np.stack(right[column].to_list())
        assert a.dtype == b.dtype == np.int64
        np.testing.assert_array_equal(a, b)


# --- noise_draws -------------------------------------------------------------------------------


def test_noise_draws_shape_and_distribution():
    draws = noise_draws(SHAPE, 0, 0.5, 3, "estimation", 0, 200)
    assert draws.shape == (200, *SHAPE)
    assert draws.dtype == torch.float32
    assert abs(draws.mean().item()) < 0.05 and abs(draws.std().item() - 1) < 0.05
    # no two draws alike (in particular, the blocks are not copies of each other)
    flat = draws.flatten(1)
    assert len(torch.unique(flat[:, 0])) == 200
    assert not torch.equal(draws[:BLOCK], draws[BLOCK : 2 * BLOCK])


@pytest.mark.parametrize(
    "cuts",
    [[0, 5, 70, 200], [0, 64, 128, 192, 200], [0, 1, 63, 64, 65, 199, 200], [0, 200], list(range(0, 201, 7)) + [200]],
)
def test_noise_draws_consistent_across_splits(cuts):
    whole = noise_draws(SHAPE, 11, 0.25, 42, "selection", 0, 200)
    parts = [noise_draws(SHAPE, 11, 0.25, 42, "selection", a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    assert torch.equal(torch.cat(parts), whole)


def test_noise_draws_middle_window():
    whole = noise_draws(SHAPE, 0, 1.0, 7, "estimation", 0, 300)
    assert torch.equal(noise_draws(SHAPE, 0, 1.0, 7, "estimation", 100, 150), whole[100:150])
    assert torch.equal(noise_draws(SHAPE, 0, 1.0, 7, "estimation", 129, 130), whole[129:130])


def test_noise_draws_depend_on_every_key():
    base = dict(seed=0, sigma=0.5, idx=3, phase="estimation")

    def draws(**change):
        key = {**base, **change}
        return noise_draws(SHAPE, key["seed"], key["sigma"], key["idx"], key["phase"], 0, 10)

    reference = draws()
    assert torch.equal(reference, draws())  # deterministic
    for change in [dict(seed=1), dict(sigma=0.25), dict(idx=4), dict(phase="selection")]:
        other = draws(**change)
        assert not torch.equal(reference, other), change
        assert not torch.isclose(reference, other).any(), change


# --- sample_counts -----------------------------------------------------------------------------


def test_sample_counts_constant_classifiers():
    image = torch.full(SHAPE, 0.5)
    denoiser = AddNoise(0.5)
    classifiers = {"three": Constant(3), "seven": Constant(7)}
    counts = sample_counts(denoiser, classifiers, image, 0, 50, "estimation", 0, 16, "cpu")
    assert set(counts) == {"three", "seven"}
    want3, want7 = np.zeros(10, dtype=np.int64), np.zeros(10, dtype=np.int64)
    want3[3], want7[7] = 50, 50
    np.testing.assert_array_equal(counts["three"], want3)
    np.testing.assert_array_equal(counts["seven"], want7)


@pytest.mark.parametrize("batch_size", [1, 7, 16, 64, 1000])
def test_sample_counts_one_denoising_pass_for_all_classifiers(batch_size):
    image = torch.full(SHAPE, 0.5)
    denoiser = AddNoise(0.5)
    classifiers = {"a": Constant(3), "b": Constant(3), "c": Constant(1)}
    num = 70
    counts = sample_counts(denoiser, classifiers, image, 0, num, "selection", 0, batch_size, "cpu")
    assert denoiser.images == num  # not num * 3
    assert denoiser.calls == -(-num // batch_size)
    for name, model in classifiers.items():
        assert model.seen == num
        assert counts[name].sum() == num
    assert counts["a"][3] == counts["b"][3] == counts["c"][1] == num


def test_sample_counts_with_real_denoiser_counts_images(tiny_unet):
    denoiser = Counting(one_shot(tiny_unet, 0.5))
    classifiers = {"three": Constant(3), "five": Constant(5)}
    counts = sample_counts(denoiser, classifiers, torch.rand(SHAPE), 2, 40, "estimation", 0, 16, "cpu")
    assert denoiser.images == 40
    assert counts["three"][3] == 40 and counts["five"][5] == 40


def test_sample_counts_independent_of_batch_size():
    image = torch.full(SHAPE, 0.5)
    results = []
    for batch_size in [1, 7, 64, 500]:
        counts = sample_counts(AddNoise(1.0), {"p": PixelVote()}, image, 5, 300, "estimation", 0, batch_size, "cpu")
        results.append(counts["p"])
    assert results[0].sum() == 300
    assert (results[0] > 0).sum() >= 5  # the answer depends on the noise
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)
    # the counts follow the noise stream of the image: another idx draws other noise
    other = sample_counts(AddNoise(1.0), {"p": PixelVote()}, image, 6, 300, "estimation", 0, 64, "cpu")["p"]
    assert not np.array_equal(results[0], other)


def test_sample_counts_uses_noise_draws():
    image = torch.zeros(SHAPE)
    noise = noise_draws(SHAPE, 3, 1.0, 9, "selection", 0, 100)
    want = np.bincount(noise.flatten(1)[:, :10].argmax(1).numpy(), minlength=10)
    got = sample_counts(AddNoise(1.0), {"p": PixelVote()}, image, 9, 100, "selection", 3, 32, "cpu")["p"]
    np.testing.assert_array_equal(got, want)


# --- certify_images ----------------------------------------------------------------------------


@pytest.fixture
def certified_setup(tiny_unet, digits8):
    return one_shot(tiny_unet, 0.5), two_classifiers(), digits8.subset(0, 6)


def test_certify_images_columns_and_consistency(certified_setup):
    denoiser, classifiers, data = certified_setup
    n0, n, alpha = 8, 32, 0.01
    results = certify_images(denoiser, classifiers, data, n0, n, alpha, 0, 16, "cpu")
    assert set(results) == {"first", "second"}
    for table in results.values():
        assert list(table.columns) == COLUMNS
        assert len(table) == 6
        assert table["idx"].tolist() == data.idx.tolist()
        assert table["label"].tolist() == data.labels.tolist()
        assert set(table["correct"]) <= {0, 1}
        assert table["correct"].tolist() == [int(p == y) for p, y in zip(table["predict"], table["label"])]
        assert (table["n"] == n).all()
        for row in table.itertuples():
            assert row.counts0.sum() == n0 and row.counts.sum() == n and len(row.counts) == 10
            cert = bounds.certify(row.counts0, row.counts, 0.5, alpha)
            assert (row.predict, row.radius, row.nA, row.pA_lower) == (
                cert.predict,
                cert.radius,
                cert.nA,
                cert.pA_lower,
            )
            assert row.nA == row.counts[np.argmax(row.counts0)]
            assert row.smoothed_predict == bounds.predict(row.counts, alpha)
            assert row.time >= 0
    # the sampling time is per image, shared by the classifiers that share the draws
    np.testing.assert_array_equal(results["first"]["time"], results["second"]["time"])
    # the draws are not degenerate: some image has counts on more than one class
    assert any((row > 0).sum() > 1 for row in results["first"]["counts"])


def test_certify_images_correct_is_per_row_not_cumulative():
    data = ImageSet(torch.arange(5), torch.tensor([3, 3, 1, 3, 3]), torch.full((5, *SHAPE), 0.5))
    table = certify_images(AddNoise(0.25), {"c": Constant(3)}, data, 10, 100, 0.001, 0, 64, "cpu")["c"]
    assert table["predict"].tolist() == [3] * 5
    assert table["correct"].tolist() == [1, 1, 0, 1, 1]
    pl = 0.001 ** (1 / 100)
    np.testing.assert_allclose(table["pA_lower"], pl, rtol=1e-10)
    np.testing.assert_allclose(table["radius"], 0.25 * norm.ppf(pl), rtol=1e-10)


def test_certify_images_independent_of_batch_size(certified_setup):
    denoiser, classifiers, data = certified_setup
    small = certify_images(denoiser, classifiers, data, 8, 32, 0.01, 0, 7, "cpu")
    large = certify_images(denoiser, classifiers, data, 8, 32, 0.01, 0, 64, "cpu")
    for name in classifiers:
        compare(small[name], large[name])


def test_certify_images_independent_of_sharding(certified_setup):
    denoiser, classifiers, data = certified_setup
    whole = certify_images(denoiser, classifiers, data.subset(0, 6), 8, 32, 0.01, 0, 16, "cpu")
    first = certify_images(denoiser, classifiers, data.subset(0, 3), 8, 32, 0.01, 0, 16, "cpu")
    second = certify_images(denoiser, classifiers, data.subset(3, 6), 8, 32, 0.01, 0, 16, "cpu")
    for name in classifiers:
        compare(pd.concat([first[name], second[name]], ignore_index=True), whole[name])


def test_certify_images_phases_use_their_own_draws():
    data = ImageSet(torch.tensor([5, 9]), torch.tensor([0, 1]), torch.full((2, *SHAPE), 0.5))
    table = certify_images(AddNoise(1.0), {"p": PixelVote()}, data, 64, 64, 0.01, 3, 64, "cpu")["p"]
    for row, idx in zip(table.itertuples(), (5, 9)):
        selection = sample_counts(
            AddNoise(1.0), {"p": PixelVote()}, data.images[0], idx, 64, "selection", 3, 64, "cpu"
        )["p"]
        estimation = sample_counts(
            AddNoise(1.0), {"p": PixelVote()}, data.images[0], idx, 64, "estimation", 3, 64, "cpu"
        )["p"]
        np.testing.assert_array_equal(row.counts0, selection)
        np.testing.assert_array_equal(row.counts, estimation)
        # the n fresh draws are not the n0 selection draws again
        assert not np.array_equal(row.counts0, row.counts)


def test_certify_images_depends_on_seed(certified_setup):
    denoiser, classifiers, data = certified_setup
    a = certify_images(denoiser, {"p": PixelVote()}, data, 8, 64, 0.01, 0, 64, "cpu")["p"]
    b = certify_images(denoiser, {"p": PixelVote()}, data, 8, 64, 0.01, 1, 64, "cpu")["p"]
    assert not np.array_equal(np.stack(a["counts"]), np.stack(b["counts"]))


# --- certified.py ------------------------------------------------------------------------------


def hand_examples():
    return pd.DataFrame(
        {
            "idx": [0, 1, 2, 3, 4, 5],
            "label": [1, 2, 3, 4, 5, 6],
            "predict": [1, 2, -1, 4, 0, 6],
            "radius": [0.5, 0.0, 0.0, 1.25, 0.9, 0.3],
            "correct": [1, 1, 0, 1, 0, 1],
            "time": [0.1] * 6,
        }
    )


@pytest.mark.parametrize(
    "radius, want",
    [
        (0.0, 4 / 6),
        (0.1, 3 / 6),
        (0.3, 3 / 6),
        (0.31, 2 / 6),
        (0.5, 2 / 6),
        (0.9, 1 / 6),
        (1.25, 1 / 6),
        (1.26, 0.0),
        (5.0, 0.0),
    ],
)
def test_certified_accuracy_hand_made(radius, want):
    assert certified_accuracy(hand_examples(), radius) == pytest.approx(want)


def clean_frame(predicts, radii, labels=None):
    labels = labels or [0] * len(predicts)
    return pd.DataFrame(
        {
            "idx": list(range(len(predicts))),
            "label": labels,
            "predict": predicts,
            "radius": radii,
            "correct": [int(p == y) for p, y in zip(predicts, labels)],
            "time": 0.0,
            "smoothed_predict": predicts,
        }
    )


def small_table():
    clean = {
        0.25: clean_frame([0, 0, 0, 0, -1], [0.3, 0.2, 0.4, 0.1, 0.0]),  # acc 0.8 at r = 0
        0.5: clean_frame([0, 0, 1, -1, -1], [0.9, 0.6, 0.7, 0.0, 0.0]),  # acc 0.4 at r = 0
    }
    multiscale = pd.DataFrame(
        {
            "idx": range(5),
            "label": 0,
            "predict": [0, 0, 0, -1, 0],
            "radius": [0.8, 0.3, 0.1, 0.0, 0.0],
            "correct": [1, 1, 1, 0, 1],
            "stage": [1, 1, 2, 1, 3],
        }
    )
    adversarial = clean_frame([0, 0, 0, 2], [0.5, 0.2, 0.8, 0.9])
    adversarial["l2"] = [0.4, 0.4, 0.8, 0.1]  # covered: rows 0 and 2 (row 3 is wrong)
    return certified_table(
        "resnet18", "ddpm", clean, {("pgd", 0.5, 0.5): adversarial}, [0.0, 0.25, 0.5, 1.0], multiscale
    )


def test_certified_table_rows():
    table = small_table()
    assert list(table.columns) == CERTIFIED_COLUMNS
    assert len(table) == 4 * 4
    assert set(table["classifier"]) == {"resnet18"} and set(table["denoiser"]) == {"ddpm"}

    def acc(method, source="clean"):
        rows = table[(table["method"] == method) & (table["source"] == source)]
        return rows.set_index("radius")["certified_acc"].to_dict()

    assert acc("sigma=0.25") == pytest.approx({0.0: 0.8, 0.25: 0.4, 0.5: 0.0, 1.0: 0.0})
    assert acc("sigma=0.5") == pytest.approx({0.0: 0.4, 0.25: 0.4, 0.5: 0.4, 1.0: 0.0})
    assert acc(MULTISCALE) == pytest.approx({0.0: 0.8, 0.25: 0.4, 0.5: 0.2, 1.0: 0.0})
    assert acc("sigma=0.5", "adversarial") == pytest.approx({0.0: 0.75, 0.25: 0.5, 0.5: 0.5, 1.0: 0.0})

    s25 = table[table["method"] == "sigma=0.25"].iloc[0]
    assert s25["sigma"] == 0.25 and s25["source"] == "clean" and s25["attack"] == "" and s25["epsilon"] == 0.0
    assert s25["abstain_rate"] == pytest.approx(0.2) and s25["smoothed_acc"] == pytest.approx(0.8)
    assert s25["n"] == 5 and np.isnan(s25["covered"])
    ms = table[table["method"] == MULTISCALE].iloc[0]
    assert np.isnan(ms["sigma"]) and np.isnan(ms["smoothed_acc"]) and ms["abstain_rate"] == pytest.approx(0.2)
    adv = table[table["source"] == "adversarial"]
    assert len(adv) == 4
    assert set(adv["attack"]) == {"pgd"} and set(adv["epsilon"]) == {0.5} and set(adv["sigma"]) == {0.5}
    assert (adv["covered"] == 0.5).all()  # fraction correct with radius >= l2
    assert (adv["n"] == 4).all()


def test_best_over_sigmas():
    best = best_over_sigmas(small_table())
    assert list(best.columns) == ["radius", "sigma", "certified_acc", "clean_acc"]
    got = {row.radius: (row.sigma, row.certified_acc, row.clean_acc) for row in best.itertuples()}
    assert got[0.0] == pytest.approx((0.25, 0.8, 0.8))
    assert got[0.5] == pytest.approx((0.5, 0.4, 0.4))
    # a tie at radius 0.25 (0.4 both) and radius 1.0 (0 both): some sigma, with its own clean accuracy
    for r in (0.25, 1.0):
        sigma, acc, clean = got[r]
        assert sigma in (0.25, 0.5) and clean == pytest.approx({0.25: 0.8, 0.5: 0.4}[sigma])
    assert got[0.25][1] == pytest.approx(0.4) and got[1.0][1] == 0.0
    # the multi-scale and adversarial rows never win, even when higher
    table = small_table()
    table.loc[table["method"] == MULTISCALE, "certified_acc"] = 1.0
    table.loc[table["source"] == "adversarial", "certified_acc"] = 1.0
    assert best_over_sigmas(table)["certified_acc"].max() == pytest.approx(0.8)


def test_multiscale_examples_matches_cascade():
    even = np.full(10, 20, dtype=np.int64)  # 200 draws spread evenly: every class passes
    sure = np.array([0, 0, 190, 10, 0, 0, 0, 0, 0, 0])  # class 2 certifies
    split = np.array([100, 100, 0, 0, 0, 0, 0, 0, 0, 0])  # undecided: abstain
    plan = {  # idx -> counts at sigma 1.0, 0.5, 0.25 (the draws of both phases alike)
        1: (sure, even, even),  # certified at stage 1
        2: (even, sure, split),  # certified at stage 2, radius capped by stage 1
        4: (split, sure, sure),  # abstains at stage 1
        7: (even, even, even),  # no stage decides
    }
    labels = {1: 2, 2: 5, 4: 0, 7: 7}
    by_sigma = {}
    for k, sigma in enumerate((1.0, 0.5, 0.25)):
        rows = [
            {"idx": idx, "label": labels[idx], "counts0": plan[idx][k].copy(), "counts": plan[idx][k].copy()}
            for idx in (4, 1, 7, 2)
        ]
        by_sigma[sigma] = pd.DataFrame(rows).sample(frac=1, random_state=k)
    out = multiscale_examples(by_sigma, 0.01, 0.5)
    assert list(out.columns) == ["idx", "label", "predict", "radius", "correct", "stage"]
    assert out["idx"].tolist() == [1, 2, 4, 7]
    assert out["stage"].tolist() == [1, 2, 1, 0]
    assert out["predict"].tolist() == [2, 2, -1, -1]
    assert out["correct"].tolist() == [1, 0, 0, 0]
    assert out["label"].tolist() == [2, 5, 0, 7]
    for row in out.itertuples():
        pick = [by_sigma[s].set_index("idx").loc[row.idx] for s in (1.0, 0.25, 0.5)]
        cert = bounds.multiscale_certify(
            [1.0, 0.25, 0.5], [p["counts0"] for p in pick], [p["counts"] for p in pick], 0.01, 0.5
        )
        assert (row.predict, row.stage) == (cert.predict, cert.stage)
        assert row.radius == pytest.approx(cert.radius, rel=1e-12)
    assert out["radius"][0] > 0 and out["radius"][1] > 0 and out["radius"][2] == out["radius"][3] == 0


def test_multiscale_examples_rejects_different_images():
    def frame(ids):
        return pd.DataFrame(
            {
                "idx": ids,
                "label": 0,
                "counts0": [np.array([5, 0])] * len(ids),
                "counts": [np.array([100, 0])] * len(ids),
            }
        )

    with pytest.raises(ValueError):
        multiscale_examples({0.25: frame([0, 1, 2]), 0.5: frame([0, 1, 3])}, 0.01, 0.5)
    with pytest.raises(ValueError):
        multiscale_examples({0.25: frame([0, 1, 2]), 0.5: frame([0, 1])}, 0.01, 0.5)
    # the same images in another order are fine
    assert len(multiscale_examples({0.25: frame([0, 1, 2]), 0.5: frame([2, 0, 1])}, 0.01, 0.5)) == 3


def test_write_tsv(tmp_path):
    examples = hand_examples()
    examples["nA"] = 3
    path = tmp_path / "sub" / "sigma.tsv"
    write_tsv(examples, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    assert lines[0].split("\t") == TSV_COLUMNS
    assert len(lines) == 7
    back = pd.read_csv(path, sep="\t")
    assert back["correct"].tolist() == [1, 1, 0, 1, 0, 1]  # per row, never a running total
    assert back["predict"].tolist() == examples["predict"].tolist()
    np.testing.assert_allclose(back["radius"], examples["radius"])


def test_certified_latex_structure():
    tex = certified_latex(small_table().assign(precision="bf16"), "Certified accuracy & more", "tab:certified")
    assert r"\caption{Certified accuracy \& more (precision: bf16)}" in tex
    lines = tex.splitlines()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in lines
    assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule")
    assert r"\label{tab:certified}" in tex and r"\&" in tex
    rows = [line for line in lines if line.endswith(r"\\")]
    heads = [line.split(" & ")[0] for line in rows]
    assert heads == ["Method", "sigma=0.25", "sigma=0.5", MULTISCALE, r"best $\sigma$"]
    assert all(line.count(" & ") == 4 for line in rows)
    assert rows[1].split(" & ")[1] == "0.800"
    best = rows[-1].split(" & ")
    assert best[1] == "0.800 (0.800)" and best[3].startswith("0.400 (0.400)")


def test_certified_latex_compiles(compile_latex):
    table = small_table().assign(precision="fp32")
    compile_latex(certified_latex(table, "Certified accuracy, digits_8 & 50% noise", "tab:certified"))


# --- layout.certify_rows -----------------------------------------------------------------------


def test_certify_rows():
    assert layout.certify_rows(0, 20, 30, shard_file=False) == [0, 20]
    assert layout.certify_rows(1, 20, 30, shard_file=False) == [20, 30]
    assert layout.certify_rows(0, 20, 30, shard_file=True) == [0, 20]
    assert layout.certify_rows(1, 20, 30, shard_file=True) == [0, 10]
    assert layout.certify_rows(1, 20, 40, shard_file=False) == [20, 40]
    for shard_file in (False, True):
        with pytest.raises(ValueError):
            layout.certify_rows(2, 20, 30, shard_file)
        with pytest.raises(ValueError):
            layout.certify_rows(2, 20, 40, shard_file)


# --- certify ----------------------------------------------------------------------------


def test_stage_certify_end_to_end(tmp_path, tiny_unet, digits8, monkeypatch):
    from dds.diffusion.ddpm import build_scheduler, save_ddpm
    from dds.io import read_table, write_images
    from dds.models import classifiers as cls
    from dds.pipeline.certify import certify_clean

    monkeypatch.chdir(tmp_path)  # the stage learns each classifier's name from its path in the workflow's layout
    data = digits8.subset(100, 110)
    write_images("eval.parquet", data)
    save_ddpm(tiny_unet, build_scheduler(LINEAR), "ddpm.safetensors")
    models = two_classifiers()
    where = dict(dataset="digits", denoiser="ddpm", sigma=0.5, shard=0)
    paths = {name: layout.fill(layout.CLASSIFIER, classifier=name, **where) for name in models}
    for name, model in models.items():
        cls.save_classifier(model, paths[name], {"model": "resnet18"}, 1, 10)
    spec = {"n0": 8, "n": 32, "alpha": 0.01, "batch_size": 16}
    outs = {name: layout.fill(layout.CERTIFICATES_CLEAN, classifier=name, **where) for name in models}
    # in another order than the outputs: each file says which classifier it is for
    certify_clean(
        images="eval.parquet",
        denoiser="ddpm.safetensors",
        classifiers=list(paths.values())[::-1],
        certificates=list(outs.values()),
        spec=spec,
        rows=[2, 7],
        sigma=0.5,
        seed=0,
        device="cpu",
    )

    direct = certify_images(one_shot(tiny_unet, 0.5), models, data.subset(2, 7), 8, 32, 0.01, 0, 16, "cpu")
    for name in models:
        table = read_table(outs[name])
        assert (table.pop("precision") == "fp32").all()  # the CPU's default, resolved
        assert list(table.columns) == COLUMNS
        assert table["idx"].tolist() == list(range(102, 107))
        assert table["label"].tolist() == data.labels[2:7].tolist()
        assert (table["n"] == 32).all()
        compare(table, direct[name])
    folder = tmp_path / layout.fill(layout.CERTIFY_CLEAN_JOB, **where)
    assert sorted(p.name for p in folder.iterdir()) == ["first.parquet", "second.parquet"]


def test_certified_table_stage_learns_each_file_from_its_path(tmp_path, monkeypatch):
    from dds.io import read_table, write_table
    from dds.pipeline import certify as stages

    monkeypatch.chdir(tmp_path)  # the stage reads sigma, attack and epsilon from paths in the workflow's layout
    rng = np.random.default_rng(0)
    where = dict(dataset="digits", classifier="clf", denoiser="ddpm")

    def certificates(ids, precision="fp32"):
        counts = [rng.multinomial(50, [0.7, 0.2, 0.1]) for _ in ids]
        return pd.DataFrame(
            {
                "idx": ids,
                "label": 0,
                "predict": rng.integers(-1, 3, len(ids)),
                "radius": rng.uniform(0, 1, len(ids)),
                "correct": rng.integers(0, 2, len(ids)),
                "time": 0.1,
                "counts0": counts,
                "counts": counts,
                "precision": precision,
            }
        )

    def written(pattern, table, **values):
        path = layout.fill(pattern, **where, **values)
        write_table(table, path)
        return path

    clean, adversarial, norms, expected_clean, expected_adversarial = [], [], [], {}, {}
    for sigma in (0.25, 0.5):
        shards = [certificates([0, 1, 2]), certificates([3, 4])]
        clean += [written(layout.CERTIFICATES_CLEAN, t, sigma=sigma, shard=s) for s, t in enumerate(shards)]
        expected_clean[sigma] = pd.concat(shards, ignore_index=True)
    l2 = [pd.DataFrame({"idx": [0, 1, 2], "l2": [0.1, 0.2, 0.3]}), pd.DataFrame({"idx": [3, 4], "l2": [0.4, 0.5]})]
    norms += [written(layout.ADVERSARIAL, t, attack="pgd", epsilon=0.1, shard=s) for s, t in enumerate(l2)]
    for sigma in (0.25, 0.5):
        shards = [certificates([0, 1, 2]), certificates([3, 4], "bf16" if sigma == 0.5 else "fp32")]
        adversarial += [
            written(layout.CERTIFICATES_ADVERSARIAL, t, attack="pgd", epsilon=0.1, sigma=sigma, shard=s)
            for s, t in enumerate(shards)
        ]
        expected_adversarial[("pgd", 0.1, sigma)] = pd.concat(shards, ignore_index=True).merge(pd.concat(l2), on="idx")
    spec = {"alpha": 0.01, "p0": 0.5, "n": 50, "radii": [0.0, 0.5]}
    tsv = [layout.fill(layout.CERTIFICATES_TSV, sigma=s, **where) for s in (0.5, 0.25)]
    # every list in another order than it was written
    inputs = {"clean": clean[::-1], "adversarial": adversarial[::-1], "norms": norms[::-1]}
    outputs = {"table": "table.parquet", "tex": "table.tex", "png": "curve.png", "svg": "curve.svg"}
    stages.certified_table(**inputs, **outputs, tsv=tsv, multiscale="multiscale.parquet", spec=spec, **where)

    cascade = multiscale_examples(expected_clean, 0.01, 0.5)
    want = certified_table("clf", "ddpm", expected_clean, expected_adversarial, [0.0, 0.5], cascade)
    # one adversarial shard was certified in bf16: the table says so, the clean cascade does not
    pd.testing.assert_frame_equal(read_table("table.parquet"), want.assign(precision="mixed: bf16, fp32"))
    assert set(read_table("multiscale.parquet")["precision"]) == {"fp32"}
    assert "(precision: mixed: bf16, fp32)}" in Path("table.tex").read_text()
    assert set(want["source"]) == {"clean", "adversarial"} and want["covered"].notna().any()
    got_tsv = pd.read_csv(tsv[0], sep="\t")
    np.testing.assert_allclose(got_tsv["radius"], expected_clean[0.5]["radius"], rtol=1e-5)
