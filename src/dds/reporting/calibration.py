"""Diffusion calibration measured: each calibrated denoiser beside its base, on the numbers the
workflow already computed for both (one-draw denoised accuracy under the attacks for every
classifier, and certification for the classifier it was calibrated for)."""

import pandas as pd

from dds import layout
from dds.reporting.blocks import make_section, make_table, table_files
from dds.reporting.cells import cell
from dds.smoothing import certified


def _change(before, after) -> str:
    return f"{cell(before)} → {cell(after)}"


def accuracy_comparison(summary: pd.DataFrame, base: str, calibrated: str) -> pd.DataFrame:
    """One row per (classifier, attack, epsilon, sigma): one-draw denoised accuracy through
    `base` and through `calibrated`, and the change."""
    keys = ["classifier", "attack", "epsilon", "sigma"]
    pick = {d: summary[summary["denoiser"] == d].set_index(keys)["denoised_acc"] for d in (base, calibrated)}
    both = pd.concat({"before": pick[base], "after": pick[calibrated]}, axis=1, join="inner").reset_index()
    return both.assign(change=both["after"] - both["before"])


def certified_comparison(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, radius) of the clean sample: certified accuracy and abstention with
    the base denoiser's certificates (`before`) and the calibrated one's (`after`)."""
    keys = ["method", "radius"]
    columns = ["certified_acc", "abstain_rate"]
    frames = {
        name: t[t["source"] == "clean"].set_index(keys)[columns] for name, t in (("before", before), ("after", after))
    }
    both = pd.concat(frames, axis=1, join="inner")
    both.columns = [f"{metric}_{when}" for when, metric in both.columns]
    return both.reset_index()


def calibration_section(summary: pd.DataFrame, pairs: list, specs: dict) -> dict:
    """The report section: per calibrated denoiser, `pairs` gives (name, base, classifier, base's
    certified table, its own certified table; None without certification) and `specs` its settings."""
    tables = []
    summary_file = table_files(layout.SUMMARY)
    for name, base, classifier, before, after in pairs:
        acc = accuracy_comparison(summary, base, name)
        sigmas = sorted(acc["sigma"].unique())
        grid = acc.pivot_table(index=["classifier", "attack", "epsilon"], columns="sigma", values=["before", "after"])
        rows = [
            [
                c,
                a,
                f"{e:g}",
                *(_change(grid.loc[(c, a, e), ("before", s)], grid.loc[(c, a, e), ("after", s)]) for s in sigmas),
            ]
            for c, a, e in grid.index
        ]
        tables.append(
            make_table(
                f"{name} (calibrated for {classifier}) against {base}: one-draw denoised accuracy, before → after",
                ["Classifier", "Attack", "Epsilon", *(f"sigma={s:g}" for s in sigmas)],
                rows,
                summary_file,
            )
        )
        if before is None:  # certification disabled
            continue
        cert = certified_comparison(before, after)
        radii = sorted(cert["radius"].unique())
        rows = []
        for method, g in cert.groupby("method", sort=False):
            g = g.set_index("radius")
            rows.append(
                [
                    method,
                    *(_change(g.loc[r, "certified_acc_before"], g.loc[r, "certified_acc_after"]) for r in radii),
                    _change(g["abstain_rate_before"].iloc[0], g["abstain_rate_after"].iloc[0]),
                ]
            )
        tables.append(
            make_table(
                f"{classifier}: certified accuracy on the clean sample, {base} → {name}",
                ["Method", *(f"r={r:g}" for r in radii), "abstain"],
                rows,
                [f for d in (base, name) for f in table_files(layout.CERTIFIED, classifier=classifier, denoiser=d)],
            )
        )
    settings = "; ".join(
        f"{n}: {s['steps']} steps of {s['batch_size']} images x {s['draws']} draws, lr {s['lr']:g}, weights "
        f"Brier {s['brier_weight']:g} / anti-consistency {s['anti_weight']:g} / denoising {s['denoising_weight']:g}"
        for n, s in specs.items()
    )
    return make_section(
        "calibration",
        "Diffusion calibration",
        "Each calibrated denoiser (Jeong and Shin's diffusion calibration: the base denoiser fine-tuned for a "
        "frozen classifier) beside its base on the same images and draws: one-draw denoised accuracy for every "
        f"classifier (calibrated for one: does it help the others?), and certification with its classifier "
        f"({certified.MULTISCALE}: the cascade). {settings}.",
        tables,
    )
