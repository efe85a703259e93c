"""The report's headline numbers, picked out of the tables the report shows (no number typed by
hand): per classifier, clean accuracy, PGD accuracy at the largest epsilon, denoised accuracy
there at the best sigma, certified accuracy at config key report.headline_radius (best sigma and
multi-scale), the adaptive attack's accuracy and the blur majority's. Each number comes from the
first attack and, per section, the first denoiser (config order) that section has."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dds import layout
from dds.reporting.blocks import make_table, table_files
from dds.reporting.cells import cell
from dds.smoothing.certified import MULTISCALE, best_over_sigmas

# headline columns and the column holding the sigma they were best at
SIGMA_OF = {"denoised": "denoised_sigma", "certified": "certified_sigma", "adaptive": "adaptive_sigma"}


@dataclass(frozen=True)
class Headline:
    """`table`: one row per classifier (config order), a column per number that applies (the
    sections disabled have none), NaN where a classifier has no such number; `labels`: each
    number's column header, naming its attack, epsilon, radius and denoiser; `settings`: what
    the numbers are taken at (attack, epsilon, denoisers, radius, adaptive epsilon); `files`:
    the tables they come from, relative to the report."""

    table: pd.DataFrame
    labels: dict
    settings: dict
    files: list


def in_order(names, present) -> list:
    """`names` (config order) that are among `present`."""
    present = set(present)
    return [name for name in names if name in present]


def first_of(names, present):
    """The first of `names` (config order) among `present`, or None."""
    return next(iter(in_order(names, present)), None)


def best(rows: pd.DataFrame, value: str) -> tuple[float, float]:
    """(the highest `value` over the rows' sigmas, that sigma), the smallest sigma on ties;
    (NaN, NaN) without rows."""
    rows = rows.dropna(subset=[value]).sort_values("sigma", ignore_index=True)
    if rows.empty:
        return np.nan, np.nan
    top = rows.loc[rows[value].idxmax()]
    return float(top[value]), float(top["sigma"])


def _only(rows: pd.DataFrame, value: str) -> float:
    """The value of the first row (rows that all hold the same number), NaN without rows."""
    return float(rows[value].iloc[0]) if len(rows) else np.nan


def _adaptive_targets(config: dict) -> list:
    """The attack kinds of the adaptive table that know the defence (not the diagnostics)."""
    return [f"adaptive-{target}" for target in config["adaptive"]["targets"]]


def headline(summary, config: dict, certified=None, adaptive=None, blur=None) -> Headline:
    """The headline numbers from the accuracy summary, the certified tables ((classifier,
    denoiser) -> table), the adaptive table and the blur tables (classifier -> table); a section's
    tables are None when it is disabled."""
    attack = next(iter(config["attacks"]))
    accuracy = summary[summary["attack"] == attack]
    denoiser = first_of(config["denoisers"], accuracy["denoiser"])
    epsilon = float(accuracy["epsilon"].max())
    settings = {"attack": attack, "epsilon": epsilon, "denoiser": denoiser}
    labels = {
        "clean": "Clean",
        "pgd": f"PGD ε={epsilon:g}",
        "denoised": f"Denoised ({denoiser}) ε={epsilon:g}, best σ",
    }
    files = table_files(layout.SUMMARY)
    if certified is not None:
        radius = float(config["report"]["headline_radius"])
        settings.update(radius=radius, certified_denoiser=first_of(config["denoisers"], [d for _, d in certified]))
        labels["certified"] = f"Certified ({settings['certified_denoiser']}) r={radius:g}, best σ"
        labels["multiscale"] = f"Multi-scale r={radius:g}"
        files += [
            table_files(layout.CERTIFIED, classifier=c, denoiser=settings["certified_denoiser"])[0]
            for c in config["classifiers"]
            if (c, settings["certified_denoiser"]) in certified
        ]
    if adaptive is not None:
        kinds = adaptive[adaptive["attack"].isin(_adaptive_targets(config))]
        settings.update(
            adaptive_denoiser=first_of(config["denoisers"], kinds["denoiser"]),
            adaptive_epsilon=float(kinds["epsilon"].max()),
        )
        labels["adaptive"] = f"Adaptive ({settings['adaptive_denoiser']}) ε={settings['adaptive_epsilon']:g}, best σ"
        files += table_files(layout.ADAPTIVE_TABLE)[:1]
    if blur is not None:
        labels["blur"] = f"Blur majority ε={epsilon:g}"
        files += [table_files(layout.BLUR_TABLE, classifier=c)[0] for c in config["classifiers"] if c in blur]
    rows = []
    for classifier in in_order(config["classifiers"], accuracy["classifier"]):
        mine = accuracy[accuracy["classifier"] == classifier]
        attacked = mine[mine["epsilon"] == epsilon]
        row = {"classifier": classifier, "clean": _only(mine, "clean_acc"), "pgd": _only(attacked, "pgd_acc")}
        row["denoised"], row["denoised_sigma"] = best(attacked[attacked["denoiser"] == denoiser], "denoised_acc")
        if certified is not None:
            row.update(_certified(certified.get((classifier, settings["certified_denoiser"])), settings["radius"]))
        if adaptive is not None:
            row["adaptive"], row["adaptive_sigma"] = best(
                _adaptive_rows(kinds, classifier, settings).groupby("sigma", as_index=False)["acc_draws"].min(),
                "acc_draws",
            )
        if blur is not None:
            row["blur"] = _blur(blur.get(classifier), attack, epsilon)
        rows.append(row)
    columns = ["classifier", *(column for key in labels for column in (key, SIGMA_OF.get(key)) if column)]
    return Headline(pd.DataFrame(rows, columns=columns), labels, settings, files)


def _certified(table, radius: float) -> dict:
    """Certified accuracy at `radius` on the clean sample: the best single sigma's and the
    multi-scale cascade's (NaN without the table or that radius)."""
    if table is None:
        return {"certified": np.nan, "certified_sigma": np.nan, "multiscale": np.nan}
    at = best_over_sigmas(table)
    at = at[np.isclose(at["radius"], radius)]
    cascade = table[(table["source"] == "clean") & (table["method"] == MULTISCALE)]
    return {
        "certified": _only(at, "certified_acc"),
        "certified_sigma": _only(at, "sigma"),
        "multiscale": _only(cascade[np.isclose(cascade["radius"], radius)], "certified_acc"),
    }


def _adaptive_rows(rows: pd.DataFrame, classifier: str, settings: dict) -> pd.DataFrame:
    """The rows of one classifier at the headline's adaptive denoiser and epsilon."""
    return rows[
        (rows["classifier"] == classifier)
        & (rows["denoiser"] == settings["adaptive_denoiser"])
        & (rows["epsilon"] == settings["adaptive_epsilon"])
    ]


def _blur(table, attack: str, epsilon: float) -> float:
    """The blur majority's accuracy under `attack` at `epsilon` (NaN without such a row)."""
    if table is None:
        return np.nan
    rows = table[(table["source"] == "attack") & (table["attack"] == attack)]
    return _only(rows[np.isclose(rows["epsilon"], epsilon)], "acc_maj")


def headline_table(found: Headline) -> dict:
    """The headline as a report table: a number per cell, with the sigma it was best at."""
    body = []
    for row in found.table.to_dict("records"):
        cells = [row["classifier"]]
        for key in found.labels:
            sigma = row.get(SIGMA_OF.get(key), np.nan)
            cells.append(cell(row[key]) + ("" if pd.isna(row[key]) or pd.isna(sigma) else f" (σ={sigma:g})"))
        body.append(cells)
    return make_table(
        "Best σ: the noise level with the highest accuracy there (in parentheses); adaptive: the stronger of the "
        "attack's targets, mean over the noise draws; blur majority: among the images it does not reject. "
        f"From these {len(found.files)} tables:",
        ["Classifier", *found.labels.values()],
        body,
        found.files,
    )
