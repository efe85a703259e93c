"""One generated sentence per section of the report, stating its main number (from the headline,
dds.reporting.findings, or from the section's own table), each with the anchor of its section."""

import numpy as np
import pandas as pd

from dds.reporting.calibration import accuracy_comparison
from dds.reporting.cells import cell
from dds.reporting.findings import Headline, best, first_of, in_order
from dds.reporting.paper import NOISE_SE
from dds.reporting.purification import purification_sentence
from dds.reporting.tables import NO_DEFENCE


def _listed(parts: list) -> str:
    return ", ".join(parts)


def _at(sigma) -> str:
    return "" if pd.isna(sigma) else f" at σ={sigma:g}"


def accuracy_sentence(found: Headline) -> str:
    s = found.settings
    parts = [
        f"{cell(r.denoised)} of {cell(r.clean)} for {r.classifier}{_at(r.denoised_sigma)}"
        for r in found.table.itertuples()
    ]
    return (
        f"Against {s['attack']} at ε={s['epsilon']:g}, one-shot denoising with {s['denoiser']} recovers "
        f"{_listed(parts)}."
    )


def certified_sentence(found: Headline) -> str:
    s = found.settings
    parts = [
        f"{cell(r.certified)} for {r.classifier}{_at(r.certified_sigma)} (multi-scale {cell(r.multiscale)})"
        for r in found.table.itertuples()
    ]
    return (
        f"At L2 radius {s['radius']:g}, the certified accuracy of randomized smoothing through "
        f"{s['certified_denoiser']} is {_listed(parts)}."
    )


def blur_sentence(found: Headline) -> str:
    s = found.settings
    parts = [f"{cell(r.blur)} for {r.classifier} (denoising: {cell(r.denoised)})" for r in found.table.itertuples()]
    return f"Against {s['attack']} at ε={s['epsilon']:g}, the Gaussian-blur majority vote keeps {_listed(parts)}."


def adaptive_sentence(found: Headline, table: pd.DataFrame) -> str:
    s = found.settings
    unaware = table[
        (table["attack"] == "unaware")
        & (table["denoiser"] == s["adaptive_denoiser"])
        & (table["epsilon"] == s["adaptive_epsilon"])
    ].set_index(["classifier", "sigma"])["acc_draws"]
    parts = [
        f"{cell(r.adaptive)} for {r.classifier}{_at(r.adaptive_sigma)} "
        f"(unaware PGD {cell(unaware.get((r.classifier, r.adaptive_sigma)))})"
        for r in found.table.itertuples()
    ]
    return (
        f"The attack that knows the defence (the stronger of its targets, mean over the noise draws) takes "
        f"denoising with {s['adaptive_denoiser']} at ε={s['adaptive_epsilon']:g} to {_listed(parts)}."
    )


def iterations_sentence(table: pd.DataFrame, config: dict) -> str:
    """From the fewest to the most PGD steps, at the defence best at the most steps."""
    denoiser = first_of(config["denoisers"], table["denoiser"])
    rows = table[table["denoiser"] == denoiser]
    fewest, most = rows["steps"].min(), rows["steps"].max()
    parts = []
    for classifier in in_order(config["classifiers"], rows["classifier"]):
        mine = rows[(rows["classifier"] == classifier) & (rows["defence"] != NO_DEFENCE)]
        last = mine[mine["steps"] == most]
        defence = last.loc[last["accuracy"].idxmax(), "defence"]
        start = mine[(mine["steps"] == fewest) & (mine["defence"] == defence)]["accuracy"].iloc[0]
        parts.append(f"{cell(start)} → {cell(last['accuracy'].max())} for {classifier} ({defence})")
    return (
        f"From {fewest} to {most} PGD steps at ε={rows['epsilon'].iloc[0]:g}, accuracy denoised by {denoiser} "
        f"goes {_listed(parts)}."
    )


def transfer_sentence(table: pd.DataFrame, config: dict) -> str:
    """Undefended, at the largest epsilon: accuracy on the other classifiers' examples and on their own."""
    denoiser = first_of(config["denoisers"], table["denoiser"])
    rows = table[(table["denoiser"] == denoiser) & (table["defence"] == NO_DEFENCE)]
    rows = rows[rows["epsilon"] == rows["epsilon"].max()]
    own = rows[rows["source"] == rows["target"]]["accuracy"].mean()
    others = rows[rows["source"] != rows["target"]]["accuracy"]
    if others.empty:
        return f"With a single classifier there is nothing to transfer (white-box accuracy {cell(own)})."
    return (
        f"At ε={rows['epsilon'].iloc[0]:g}, undefended classifiers keep {cell(others.mean())} on average on the "
        f"other classifiers' adversarial examples, against {cell(own)} on their own."
    )


def attention_sentence(table: pd.DataFrame, config: dict) -> str:
    """Grad-CAM under the largest epsilon mapped: rank correlation with the clean maps, attacked and denoised."""
    denoiser = first_of(config["denoisers"], table["denoiser"])
    rows = table[(table["denoiser"] == denoiser) & (table["method"] == "gradcam")]
    epsilon = rows.loc[rows["condition"] == "adversarial", "epsilon"].max()
    rows = rows[rows["epsilon"] == epsilon]
    parts = []
    for classifier in in_order(config["classifiers"], rows["classifier"]):
        mine = rows[rows["classifier"] == classifier]
        attacked = mine.loc[mine["condition"] == "adversarial", "spearman_mean"]
        denoised, sigma = best(mine[mine["condition"] == "denoised"], "spearman_mean")
        parts.append(
            f"{cell(attacked.iloc[0] if len(attacked) else np.nan)} for {classifier} ({cell(denoised)}{_at(sigma)})"
        )
    return (
        f"Under PGD at ε={epsilon:g}, the Grad-CAM map's rank correlation with the clean image's is "
        f"{_listed(parts)}; in parentheses after denoising with {denoiser}."
    )


def calibration_sentence(summary: pd.DataFrame, config: dict) -> str:
    """Per calibrated denoiser: the mean change of one-draw denoised accuracy, for its classifier and the others."""
    parts = []
    for name, spec in config["denoisers"].items():
        if spec["kind"] != "calibrated":
            continue
        change = accuracy_comparison(summary, spec["base"], name)
        own = change["classifier"] == spec["classifier"]
        others = change.loc[~own, "change"]
        parts.append(
            f"Calibrated for {spec['classifier']}, {name} changes its one-draw denoised accuracy against "
            f"{spec['base']} by {cell(change.loc[own, 'change'].mean(), sign=True)} on average over {int(own.sum())} "
            "(σ, ε) cells" + ("" if others.empty else f" (the other classifiers': {cell(others.mean(), sign=True)})")
        )
    return ". ".join(parts) + "."


def paper_sentence(compared: pd.DataFrame, source: str) -> str:
    """Denoised accuracy, ours against the paper's: mean and largest difference, how many beyond noise."""
    diff = compared["denoised_acc_diff"].dropna()
    if diff.empty:
        return f"None of the rows of {source} has a counterpart in this run."
    beyond = int(compared.loc[diff.index, "denoised_acc_noisy"].sum())
    return (
        f"Over the {len(diff)} rows compared with {source}, our denoised accuracy differs from the paper's by "
        f"{cell(diff.abs().mean())} on average (largest {cell(diff.abs().max())}); {beyond} of them by more than "
        f"{NOISE_SE:g} standard errors."
    )


def sentences(found: Headline, summary, config: dict, tables: dict, compared=None) -> list:
    """(section anchor, sentence) for each section with its table among `tables` (section ->
    its table: iterations, adaptive, transfer, attention, purification; certification and blur from the
    headline when it has their numbers), in the report's order; `compared`: the comparison with
    the paper (dds.reporting.paper.compare), when there is one."""
    out = []
    if compared is not None:
        out.append(("paper", paper_sentence(compared, config["report"]["reference"]["source"])))
    out.append(("accuracy", accuracy_sentence(found)))
    if any(spec["kind"] == "calibrated" for spec in config["denoisers"].values()):
        out.append(("calibration", calibration_sentence(summary, config)))
    if "certified" in found.labels:
        out.append(("certification", certified_sentence(found)))
    if "blur" in found.labels:
        out.append(("blur", blur_sentence(found)))
    if tables.get("iterations") is not None:
        out.append(("iterations", iterations_sentence(tables["iterations"], config)))
    if "adaptive" in found.labels:
        out.append(("adaptive", adaptive_sentence(found, tables["adaptive"])))
    if tables.get("transfer") is not None:
        out.append(("transfer", transfer_sentence(tables["transfer"], config)))
    if tables.get("attention") is not None:
        out.append(("attention", attention_sentence(tables["attention"], config)))
    if tables.get("purification") is not None:
        out.append(("purification", purification_sentence(tables["purification"])))
    return out
