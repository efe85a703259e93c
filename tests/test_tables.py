import numpy as np
import pandas as pd
import pytest
import torch

from dds.io import DataFileError, ImageSet, write_images, write_table
from dds.reporting.latex import accuracy_latex
from dds.reporting.tables import ACCURACY_COLUMNS, accuracy_table

LABELS = [3, 1, 4, 1]


def predictions(path, idx, correct, labels=None, precision="fp32"):
    """A prediction shard with the fixed format: idx, label, pred, correct, logits, precision."""
    labels = [LABELS[i] for i in idx] if labels is None else labels
    preds = [lab if ok else (lab + 1) % 10 for lab, ok in zip(labels, correct)]
    df = pd.DataFrame(
        {
            "idx": np.asarray(idx, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int64),
            "pred": np.asarray(preds, dtype=np.int64),
            "correct": np.asarray(correct, dtype=bool),
            "logits": [np.eye(10, dtype=np.float32)[p] for p in preds],
            "precision": precision,
        }
    )
    write_table(df, path)
    return path


def adversarial(path, idx, linf, l2):
    images = ImageSet(torch.tensor(idx), torch.tensor([LABELS[i] for i in idx]), torch.rand(len(idx), 1, 4, 4))
    norms = {"linf": np.asarray(linf, dtype=np.float64), "l2": np.asarray(l2, dtype=np.float64)}
    write_images(path, images, extra=norms)
    return path


def two_shards(tmp_path, name, correct):
    """Images 0..3 split over two shards, as the pipeline shards them."""
    return [
        predictions(tmp_path / f"{name}_0.parquet", [0, 1], correct[:2]),
        predictions(tmp_path / f"{name}_1.parquet", [2, 3], correct[2:]),
    ]


@pytest.fixture
def shards(tmp_path):
    undefended = {
        0.0: two_shards(tmp_path, "clean", [True, True, True, False]),
        0.1: two_shards(tmp_path, "pgd01", [False, True, False, False]),
    }
    denoised = {
        (0.5, 0.1): two_shards(tmp_path, "den05_01", [False, False, True, False]),
        (0.25, 0.1): two_shards(tmp_path, "den025_01", [True, True, False, True]),
        (0.25, 0.0): two_shards(tmp_path, "den025_00", [True, True, True, True]),
    }
    adv = {
        0.1: [
            adversarial(tmp_path / "adv01_0.parquet", [0, 1], [0.1, 0.09], [1.0, 2.0]),
            adversarial(tmp_path / "adv01_1.parquet", [2, 3], [0.1, 0.05], [3.0, 4.0]),
        ]
    }
    return undefended, denoised, adv


def test_accuracy_table_hand_computed(shards):
    undefended, denoised, adv = shards
    df = accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)
    assert list(df.columns) == ACCURACY_COLUMNS
    assert list(zip(df["sigma"], df["epsilon"])) == [(0.25, 0.0), (0.25, 0.1), (0.5, 0.1)]
    assert (df[["classifier", "attack", "denoiser"]] == ["resnet50", "pgd", "ddpm"]).all().all()
    assert df["clean_acc"].tolist() == [0.75, 0.75, 0.75]
    assert df["pgd_acc"].tolist() == [0.75, 0.25, 0.25]
    assert df["denoised_acc"].tolist() == [1.0, 0.75, 0.25]
    assert df["linf_max"].tolist() == [0.0, 0.1, 0.1]  # no attack at epsilon 0
    assert df["l2_mean"].tolist() == [0.0, 2.5, 2.5]
    assert df["l2_max"].tolist() == [0.0, 4.0, 4.0]
    assert df["n"].tolist() == [4, 4, 4]
    assert df["precision"].tolist() == ["fp32"] * 3


def test_accuracy_table_says_which_rows_mixed_precisions(shards, tmp_path):
    """A shard of the denoised set at (0.5, 0.1) redone in bf16: that row, and only that row, says so."""
    undefended, denoised, adv = shards
    denoised[(0.5, 0.1)][1] = predictions(tmp_path / "bf16.parquet", [2, 3], [True, False], precision="bf16")
    df = accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)
    assert df["precision"].tolist() == ["fp32", "fp32", "mixed: bf16, fp32"]
    assert "(precision: mixed: bf16, fp32)" in accuracy_latex(df, "c", "tab:x")


def test_missing_clean_set(shards):
    undefended, denoised, adv = shards
    del undefended[0.0]
    with pytest.raises(ValueError, match="epsilon 0.0"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def test_missing_undefended_epsilon(shards):
    undefended, denoised, adv = shards
    del undefended[0.1]
    with pytest.raises(ValueError, match="epsilon 0.1 missing"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def test_missing_adversarial_epsilon(shards):
    undefended, denoised, adv = shards
    with pytest.raises(ValueError, match="adversarial image shards at epsilon 0.1"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, {})


def test_count_mismatch(shards):
    undefended, denoised, adv = shards
    denoised[(0.5, 0.1)] = denoised[(0.5, 0.1)][:1]
    with pytest.raises(ValueError, match="2 images, but the clean predictions have 4"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def test_idx_mismatch(shards, tmp_path):
    undefended, denoised, adv = shards
    undefended[0.1] = [
        predictions(tmp_path / "other.parquet", [0, 1, 2], [True] * 3),
        predictions(tmp_path / "other2.parquet", [9], [True], labels=[5]),
    ]
    with pytest.raises(ValueError, match="idx set differs"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def test_duplicated_image(shards):
    undefended, denoised, adv = shards
    denoised[(0.5, 0.1)] = denoised[(0.5, 0.1)] + denoised[(0.5, 0.1)][:1]
    with pytest.raises(ValueError, match="idx 0 appears more than once"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def test_label_mismatch(shards, tmp_path):
    undefended, denoised, adv = shards
    denoised[(0.5, 0.1)] = [predictions(tmp_path / "relabelled.parquet", [0, 1, 2, 3], [True] * 4, labels=[0, 0, 0, 0])]
    with pytest.raises(ValueError, match="labels differ"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def test_shard_without_norms_names_file(shards, tmp_path):
    undefended, denoised, adv = shards
    bare = tmp_path / "bare.parquet"
    write_images(bare, ImageSet(torch.arange(4), torch.tensor(LABELS), torch.rand(4, 1, 4, 4)))
    with pytest.raises(DataFileError, match=r"bare\.parquet: missing column\(s\) \['linf', 'l2'\]"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, {0.1: [bare]})


def test_missing_shard_names_file(shards, tmp_path):
    undefended, denoised, adv = shards
    denoised[(0.5, 0.1)] = [tmp_path / "nowhere.parquet"]
    with pytest.raises(DataFileError, match=r"nowhere\.parquet: file not found"):
        accuracy_table("resnet50", "pgd", "ddpm", undefended, denoised, adv)


def small_table(classifier="resnet50"):
    return pd.DataFrame(
        {
            "classifier": classifier,
            "attack": "pgd",
            "denoiser": "ddpm",
            "sigma": [0.25, 0.25, 0.5],
            "epsilon": [0.005, 0.01, 0.005],
            "clean_acc": [0.851, 0.851, 0.851],
            "pgd_acc": [0.5454, 0.296, 0.5454],
            "denoised_acc": [0.7333, 0.722, 2 / 3],
            "precision": "fp32",
        }
    )


CAPTION = r"Clean & PGD: 100% of x_1 #2 $5 {a} ~b^c \d <e>"


def test_accuracy_latex_layout_and_escaping():
    tex = accuracy_latex(small_table(), CAPTION, "tab:imagenet")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert r"Sigma & Epsilon & Clean Acc. & PGD Acc. & Denoised Acc. \\" in tex
    assert r"0.25 & 0.005 & 0.851 & 0.545 & 0.733 \\" in tex
    assert r"0.5 & 0.005 & 0.851 & 0.545 & 0.667 \\" in tex
    assert (
        r"\caption{Clean \& PGD: 100\% of x\_1 \#2 \$5 \{a\} \textasciitilde{}b\textasciicircum{}c "
        r"\textbackslash{}d \textless{}e\textgreater{} (precision: fp32)}"
    ) in tex
    assert r"\label{tab:imagenet}" in tex
    assert tex.startswith(r"\begin{table}") and tex.rstrip().endswith(r"\end{table}")


def test_accuracy_latex_rejects_mixed_models_and_bad_label():
    with pytest.raises(ValueError, match="one \\(classifier, attack, denoiser\\) per table"):
        accuracy_latex(pd.concat([small_table("a"), small_table("b")]), "c", "tab:x")
    with pytest.raises(ValueError, match="label"):
        accuracy_latex(small_table(), "c", "tab x}")
    with pytest.raises(ValueError, match=r"accuracy_latex: missing column\(s\) \['precision'\]"):
        accuracy_latex(small_table().drop(columns="precision"), "c", "tab:x")


def test_accuracy_latex_compiles(compile_latex):
    compile_latex(accuracy_latex(small_table(), CAPTION, "tab:imagenet"))
