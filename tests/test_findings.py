"""The report's summary (dds.reporting.findings, dds.reporting.sentences): every headline number
is picked back out of the table it comes from, independently of the code under test; disabled
sections have no column and no sentence; missing numbers show as a dash."""

import math

import numpy as np
import pandas as pd
import pytest

from dds.reporting.findings import headline, headline_table
from dds.reporting.sentences import sentences
from made_up_results import CLASSIFIERS, made_up_config, made_up_results

CONFIG = made_up_config()


@pytest.fixture(scope="module")
def results():
    return made_up_results()


@pytest.fixture(scope="module")
def found(results):
    return headline(results.summary, CONFIG, results.certified, results.adaptive, results.blur)


def best_of(rows: pd.DataFrame, value: str) -> tuple[float, float]:
    """The highest value and the smallest sigma holding it."""
    top = rows[value].max()
    return top, rows.loc[rows[value] == top, "sigma"].min()


def expected_row(results, classifier: str) -> dict:
    """The headline row of `classifier`, read straight from the made-up tables: first attack
    (pgd), first denoiser (ddpm), largest epsilon (0.1), radius 0.25 (report.headline_radius)."""
    s = results.summary
    mine = s[(s["classifier"] == classifier) & (s["attack"] == "pgd")]
    largest = mine[mine["epsilon"] == 0.1]
    row = {"clean": mine["clean_acc"].iloc[0], "pgd": largest["pgd_acc"].iloc[0]}
    row["denoised"], row["denoised_sigma"] = best_of(largest[largest["denoiser"] == "ddpm"], "denoised_acc")
    cert = results.certified[(classifier, "ddpm")]
    at = cert[(cert["source"] == "clean") & (cert["radius"] == 0.25)]
    row["certified"], row["certified_sigma"] = best_of(at[at["method"] != "multi-scale"], "certified_acc")
    row["multiscale"] = at.loc[at["method"] == "multi-scale", "certified_acc"].item()
    a = results.adaptive
    known = a[(a["classifier"] == classifier) & (a["epsilon"] == 0.1)]
    known = known[known["attack"].isin(["adaptive-single", "adaptive-smoothed"])]
    strongest = known.groupby("sigma", as_index=False)["acc_draws"].min()
    row["adaptive"], row["adaptive_sigma"] = best_of(strongest, "acc_draws")
    blur = results.blur[classifier]
    row["blur"] = blur.loc[(blur["source"] == "attack") & (blur["epsilon"] == 0.1), "acc_maj"].item()
    return row


def test_headline_numbers_are_the_tables_numbers(results, found):
    assert list(found.table["classifier"]) == CLASSIFIERS  # config order
    for row in found.table.to_dict("records"):
        assert row == {"classifier": row["classifier"], **expected_row(results, row["classifier"])}
    # the made-up numbers do make the best sigma differ
    assert found.table["denoised_sigma"].nunique() > 1 or found.table["certified_sigma"].nunique() > 1


def test_headline_columns_name_what_they_hold(found):
    assert found.labels == {
        "clean": "Clean",
        "pgd": "PGD ε=0.1",
        "denoised": "Denoised (ddpm) ε=0.1, best σ",
        "certified": "Certified (ddpm) r=0.25, best σ",
        "multiscale": "Multi-scale r=0.25",
        "adaptive": "Adaptive (ddpm) ε=0.1, best σ",
        "blur": "Blur majority ε=0.1",
    }
    assert found.files == [
        "tables/accuracy.parquet",
        "tables/certified/vit/ddpm.parquet",
        "tables/certified/resnet/ddpm.parquet",
        "tables/adaptive.parquet",
        "tables/blur/vit.parquet",
        "tables/blur/resnet.parquet",
    ]


def test_headline_table_shows_each_number_with_its_sigma(results, found):
    table = headline_table(found)
    assert table["columns"] == ["Classifier", *found.labels.values()]
    for cells in table["rows"]:
        want = expected_row(results, cells[0])
        assert cells[1:] == [
            f"{want['clean']:.3f}",
            f"{want['pgd']:.3f}",
            f"{want['denoised']:.3f} (σ={want['denoised_sigma']:g})",
            f"{want['certified']:.3f} (σ={want['certified_sigma']:g})",
            f"{want['multiscale']:.3f}",
            f"{want['adaptive']:.3f} (σ={want['adaptive_sigma']:g})",
            f"{want['blur']:.3f}",
        ]


def test_the_first_denoiser_in_config_order_is_the_headlines(results):
    # ddpm-cal first: the denoised numbers are ddpm-cal's; certification and the adaptive attack
    # take the first denoiser their tables have (ddpm-cal is certified for resnet only)
    config = made_up_config(denoisers=dict(reversed(list(CONFIG["denoisers"].items()))))
    found = headline(results.summary, config, results.certified, results.adaptive, results.blur)
    assert found.labels["denoised"] == "Denoised (ddpm-cal) ε=0.1, best σ"
    assert found.labels["certified"].startswith("Certified (ddpm-cal)")
    assert found.labels["adaptive"].startswith("Adaptive (ddpm)")
    s = results.summary
    vit = s[(s["classifier"] == "vit") & (s["denoiser"] == "ddpm-cal") & (s["epsilon"] == 0.1)]
    assert found.table.iloc[0]["denoised"] == vit["denoised_acc"].max()
    assert math.isnan(found.table.iloc[0]["certified"])  # vit has no ddpm-cal certificates
    assert headline_table(found)["rows"][0][4] == "—"


def test_disabled_sections_have_no_column_and_no_sentence(results):
    config = made_up_config(
        certify={"enabled": False},
        blur={"enabled": False},
        adaptive={"enabled": False},
        transfer={"enabled": False},
        iterations={"enabled": False},
        attention={"enabled": False},
        denoisers={"ddpm": {"kind": "ddpm"}},
    )
    found = headline(results.summary, config)
    assert list(found.labels) == ["clean", "pgd", "denoised"]
    assert list(found.table.columns) == ["classifier", "clean", "pgd", "denoised", "denoised_sigma"]
    assert [key for key, _ in sentences(found, results.summary, config, {})] == ["accuracy"]


def test_a_radius_not_certified_and_a_missing_table_show_a_dash(results):
    config = made_up_config(report={"headline_radius": 0.3})
    partial = {key: table for key, table in results.certified.items() if key[0] == "resnet"}
    found = headline(results.summary, config, partial, results.adaptive, {"resnet": results.blur["resnet"]})
    assert found.table[["certified", "multiscale"]].isna().all().all()
    vit = headline_table(found)["rows"][0]
    assert vit[0] == "vit" and vit[4:6] == ["—", "—"] and vit[-1] == "—"


def test_one_sentence_per_section_with_its_numbers(results, found):
    tables = {"iterations": results.iterations, "adaptive": results.adaptive}
    tables |= {"transfer": results.transfer, "attention": results.attention}
    said = dict(sentences(found, results.summary, CONFIG, tables))
    assert list(said) == [
        "accuracy",
        "calibration",
        "certification",
        "blur",
        "iterations",
        "adaptive",
        "transfer",
        "attention",
    ]
    for classifier in CLASSIFIERS:
        want = expected_row(results, classifier)
        assert (
            f"{want['denoised']:.3f} of {want['clean']:.3f} for {classifier} at σ={want['denoised_sigma']:g}"
            in said["accuracy"]
        )
        assert f"{want['certified']:.3f} for {classifier} at σ={want['certified_sigma']:g}" in said["certification"]
        assert f"{want['blur']:.3f} for {classifier} (denoising: {want['denoised']:.3f})" in said["blur"]
        a = results.adaptive
        unaware = a[
            (a["classifier"] == classifier)
            & (a["attack"] == "unaware")
            & (a["epsilon"] == 0.1)
            & (a["sigma"] == want["adaptive_sigma"])
        ]["acc_draws"].item()
        assert (
            f"{want['adaptive']:.3f} for {classifier} at σ={want['adaptive_sigma']:g} (unaware PGD {unaware:.3f})"
            in (said["adaptive"])
        )
    t = results.transfer
    undefended = t[(t["defence"] == "none") & (t["epsilon"] == 0.1)]
    own = undefended.loc[undefended["source"] == undefended["target"], "accuracy"].mean()
    others = undefended.loc[undefended["source"] != undefended["target"], "accuracy"].mean()
    assert f"keep {others:.3f} on average" in said["transfer"] and f"against {own:.3f} on their own" in said["transfer"]
    s = results.summary.set_index(["classifier", "attack", "epsilon", "sigma", "denoiser"])["denoised_acc"]
    change = (s.xs("ddpm-cal", level="denoiser") - s.xs("ddpm", level="denoiser")).xs("resnet", level="classifier")
    assert f"by {change.mean():+.3f} on average over {len(change)} (σ, ε) cells" in said["calibration"]


def test_iterations_and_attention_sentences(results):
    said = dict(
        sentences(
            headline(results.summary, CONFIG),
            results.summary,
            CONFIG,
            {"iterations": results.iterations, "attention": results.attention},
        )
    )
    it = results.iterations
    for classifier in CLASSIFIERS:
        mine = it[(it["classifier"] == classifier) & (it["defence"] != "none")]
        last = mine[mine["steps"] == 20].sort_values("defence")
        defence = last.loc[last["accuracy"] == last["accuracy"].max(), "defence"].iloc[0]
        start = mine[(mine["steps"] == 5) & (mine["defence"] == defence)]["accuracy"].item()
        assert f"{start:.3f} → {last['accuracy'].max():.3f} for {classifier} ({defence})" in said["iterations"]
        at = results.attention
        mine = at[(at["classifier"] == classifier) & (at["epsilon"] == 0.1)]
        attacked = mine.loc[mine["condition"] == "adversarial", "spearman_mean"].item()
        denoised, sigma = best_of(mine[mine["condition"] == "denoised"], "spearman_mean")
        assert f"{attacked:.3f} for {classifier} ({denoised:.3f} at σ={sigma:g})" in said["attention"]


def test_the_paper_sentence_counts_the_rows_compared():
    compared = pd.DataFrame(
        {
            "denoised_acc_diff": [0.1, -0.3, np.nan],
            "denoised_acc_noisy": [False, True, False],
        }
    )
    config = made_up_config(report={"reference": {"source": "the paper"}})
    found = headline(made_up_results().summary, config)
    said = dict(sentences(found, made_up_results().summary, config, {}, compared))
    assert list(said)[0] == "paper"
    assert said["paper"] == (
        "Over the 2 rows compared with the paper, our denoised accuracy differs from the paper's by 0.200 on "
        "average (largest 0.300); 1 of them by more than 2 standard errors."
    )
