"""The report's diffusion-calibration section: a calibrated denoiser beside its base, from the
accuracy summary and the certified tables the workflow already wrote."""

import pandas as pd
import pytest

from dds.reporting.calibration import accuracy_comparison, calibration_section, certified_comparison

SPEC = {
    "steps": 60,
    "batch_size": 16,
    "draws": 4,
    "lr": 1e-4,
    "brier_weight": 1.0,
    "anti_weight": 0.5,
    "denoising_weight": 1.0,
}


def summary_rows():
    rows = []
    for denoiser, shift in (("ddpm", 0.0), ("ddpm-cal", 0.05)):
        for classifier in ("resnet", "vit"):
            for sigma in (0.25, 0.5):
                for eps in (0.0, 0.1):
                    acc = 0.9 - eps - sigma / 10 + (shift if classifier == "resnet" else -shift)
                    rows.append(
                        {"classifier": classifier, "attack": "pgd", "denoiser": denoiser, "sigma": sigma}
                        | {"epsilon": eps, "denoised_acc": acc}
                    )
    return pd.DataFrame(rows)


def certified_rows(acc):
    return pd.DataFrame(
        [
            {"source": s, "method": m, "radius": r, "certified_acc": acc - r / 2, "abstain_rate": 1 - acc}
            for s in ("clean", "adversarial")
            for m in ("sigma=0.25", "multi-scale")
            for r in (0.0, 0.5)
        ]
    )


def test_accuracy_comparison_pairs_the_same_cells():
    out = accuracy_comparison(summary_rows(), "ddpm", "ddpm-cal")
    assert len(out) == 2 * 2 * 2  # classifiers x sigmas x epsilons
    resnet = out[out["classifier"] == "resnet"]
    assert resnet["change"].to_numpy() == pytest.approx([0.05] * 4)
    vit = out[(out["classifier"] == "vit") & (out["sigma"] == 0.5) & (out["epsilon"] == 0.1)].iloc[0]
    assert (vit["before"], vit["after"]) == pytest.approx((0.75, 0.70))


def test_certified_comparison_on_the_clean_sample():
    out = certified_comparison(certified_rows(0.8), certified_rows(0.9))
    assert len(out) == 4 and set(out["method"]) == {"sigma=0.25", "multi-scale"}
    row = out[(out["method"] == "multi-scale") & (out["radius"] == 0.5)].iloc[0]
    assert (row["certified_acc_before"], row["certified_acc_after"]) == pytest.approx((0.55, 0.65))
    assert (row["abstain_rate_before"], row["abstain_rate_after"]) == pytest.approx((0.2, 0.1))


def test_section_states_before_and_after_and_the_settings():
    pairs = [("ddpm-cal", "ddpm", "resnet", certified_rows(0.8), certified_rows(0.9))]
    section = calibration_section(summary_rows(), pairs, {"ddpm-cal": SPEC})
    assert section["title"] == "Diffusion calibration"
    assert "60 steps of 16 images x 4 draws" in section["caption"] and "anti-consistency 0.5" in section["caption"]
    accuracy, certification = section["tables"]
    assert accuracy["columns"] == ["Classifier", "Attack", "Epsilon", "sigma=0.25", "sigma=0.5"]
    assert ["resnet", "pgd", "0.1", "0.775 → 0.825", "0.750 → 0.800"] in accuracy["rows"]
    assert certification["columns"] == ["Method", "r=0", "r=0.5", "abstain"]
    assert ["multi-scale", "0.800 → 0.900", "0.550 → 0.650", "0.200 → 0.100"] in certification["rows"]
    # without certification only the accuracy table
    section = calibration_section(summary_rows(), [("ddpm-cal", "ddpm", "resnet", None, None)], {"ddpm-cal": SPEC})
    assert len(section["tables"]) == 1
