"""The comparison of our accuracies with the paper's tables (shipped with the presets), on
made-up results."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dds.io import DataFileError
from dds.reporting.html import render_report
from dds.reporting.paper import compare, comparison_section, read_reference
from dds.reporting.tables import ACCURACY_COLUMNS, RESOURCE_COLUMNS

TABLE = Path(__file__).resolve().parents[1] / "presets" / "reference" / "safeguarding-attention-tables.csv"


def made_up(classifier, rows, n=1000, attack="pgd", denoiser="improved-diffusion"):
    """Our accuracy table: rows of (sigma, epsilon, clean, pgd, denoised)."""
    frame = pd.DataFrame(rows, columns=["sigma", "epsilon", "clean_acc", "pgd_acc", "denoised_acc"])
    return frame.assign(
        classifier=classifier,
        attack=attack,
        denoiser=denoiser,
        linf_max=0.0,
        l2_max=0.0,
        l2_mean=0.0,
        n=n,
        precision="fp32",
    )[ACCURACY_COLUMNS]


@pytest.fixture(scope="module")
def reference():
    return read_reference(TABLE)


@pytest.fixture(scope="module")
def ours():
    # at sigma 0.25 the paper has clean 0.846, PGD 0.066 and 0.0, denoised 0.511 and 0.344
    rows = [(0.25, 0.005, 0.850, 0.070, 0.400), (0.25, 0.02, 0.850, 0.0, 0.350)]
    unrelated = made_up("resnet50", [(0.25, 0.005, 0.1, 0.1, 0.1)], denoiser="other")
    return pd.concat([made_up("resnet50", rows), unrelated, made_up("mine", rows)], ignore_index=True)


def test_our_rows_beside_the_papers_with_the_differences(ours, reference):
    table = compare(ours, reference, "cifar10", {"resnet50": "resnet50"}, "pgd", "improved-diffusion", 1000)
    assert len(table) == 30  # the paper's grid: 5 sigmas x 6 epsilons
    row = table[(table["sigma"] == 0.25) & (table["epsilon"] == 0.005)].iloc[0]
    assert (row["clean_acc_paper"], row["pgd_acc_paper"], row["denoised_acc_paper"]) == (0.846, 0.066, 0.511)
    assert row["denoised_acc_ours"] == 0.400  # not the other denoiser's 0.1
    assert row["denoised_acc_diff"] == pytest.approx(-0.111)
    # 0.111 is far beyond two standard errors (about 0.044); 0.004 and 0.004 are not
    assert row["denoised_acc_noisy"] and not row["clean_acc_noisy"] and not row["pgd_acc_noisy"]
    missing = table[table["sigma"] == 3.0]
    assert missing["denoised_acc_ours"].isna().all() and not missing["denoised_acc_noisy"].any()


def test_names_are_mapped_and_grids_matched_as_numbers(ours, reference):
    table = compare(ours, reference, "cifar10", {"mine": "resnet50-cbam"}, "pgd", "improved-diffusion", 1000)
    assert set(table["classifier"]) == {"mine"} and set(table["published"]) == {"resnet50-cbam"}
    # the CSV writes sigma 1 and epsilon 0; ours 1.0 and 0.0: the grid is matched by value
    assert 1.0 in set(table["sigma"]) and 0.0 in set(table["epsilon"])
    row = table[(table["sigma"] == 0.25) & (table["epsilon"] == 0.02)].iloc[0]
    assert row["denoised_acc_diff"] == pytest.approx(0.35 - 0.41)


def test_a_classifier_the_table_lacks_is_named(ours, reference):
    with pytest.raises(
        DataFileError,
        match=r"no rows for dataset 'imagenet' and classifier 'resnet50'.*"
        r"report\.reference\.classifiers\.mine",
    ):
        compare(ours, reference, "imagenet", {"mine": "resnet50"}, "pgd", "improved-diffusion", 1000)


def test_a_table_without_the_columns_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("dataset,classifier,sigma\ncifar10,a,0.25\n")
    with pytest.raises(DataFileError, match=r"missing column\(s\) \['epsilon', 'clean_acc'"):
        read_reference(tmp_path / "t.csv")
    with pytest.raises(DataFileError, match="not found"):
        read_reference(tmp_path / "absent.csv")


def test_report_section_shows_ours_the_paper_and_the_flags(ours, reference):
    table = compare(ours, reference, "cifar10", {"resnet50": "resnet50"}, "pgd", "improved-diffusion", 1000)
    section = comparison_section(table, "Nechanicky et al., Table 2", 1000)
    assert section["title"] == "Comparison with the paper"
    detail, summary = section["tables"]
    assert detail["columns"][:5] == ["Sigma", "Epsilon", "Clean ours", "Clean paper", "Clean Δ"]
    first = detail["rows"][1]  # sigma 0.25, epsilon 0.005 (after epsilon 0)
    assert first[:2] == ["0.25", "0.005"] and first[-3:] == ["0.400", "0.511", "-0.111 *"]
    assert detail["rows"][-1][-3:] == ["—", "0.107", "—"]  # sigma 3, epsilon 0.1: none of ours
    denoised = next(r for r in summary["rows"] if r[1] == "Denoised")
    assert denoised == ["resnet50", "Denoised", "2", "0.058", "0.111", "1"]  # (0.111 + 0.006) / 2
    html = render_report(ours.iloc[:2], [], pd.DataFrame([], columns=RESOURCE_COLUMNS), {}, {}, "t", sections=[section])
    assert "Comparison with the paper" in html and "-0.111 *" in html and "Nechanicky et al., Table 2" in html


def test_the_shipped_tables_match_the_presets_grids(reference):
    """The presets' sigmas and epsilons are the paper's (Tables 1 to 3)."""
    import yaml

    for preset, dataset in [("cifar10-paper", "cifar10"), ("imagenet-paper", "imagenet")]:
        config = yaml.safe_load((TABLE.parents[1] / f"{preset}.yaml").read_text())
        published = reference[reference["dataset"] == dataset]
        assert sorted(set(published["sigma"])) == sorted(config["sigmas"])
        ours = {0.0, *config["attacks"]["pgd"]["epsilons"]}
        assert set(published["epsilon"]) <= ours and ours - set(published["epsilon"]) <= {0.0}
        assert np.isclose(config["attacks"]["pgd"]["step_size"], 2 / 255)
