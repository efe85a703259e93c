"""Tables of attack strength: the adaptive attack beside the unaware one, and the transfer
matrix of adversarial examples between classifiers."""

import pandas as pd

from dds.io import require_columns
from dds.smoothing.bounds import ABSTAIN

ADAPTIVE_KEYS = ["classifier", "denoiser", "attack_name", "sigma", "epsilon", "attack"]
# the attack kinds in table order (clean, the unaware PGD, then the adaptive targets) and their column labels
KINDS = {
    "clean": "clean",
    "unaware": "unaware PGD",
    "adaptive-single": "adaptive (single target)",
    "adaptive-smoothed": "adaptive (smoothed target)",
}


def _kind_order(kind: str) -> int:
    return list(KINDS).index(kind) if kind in KINDS else len(KINDS)


def adaptive_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (classifier, denoiser, attack, sigma, epsilon, kind): single-draw and smoothed
    (PREDICT) accuracy, the smoothed classifier's abstain rate, and the measured norms."""
    require_columns(
        rows, [*ADAPTIVE_KEYS, "correct_single", "correct_smoothed", "pred_smoothed", "linf", "l2"], "adaptive_table"
    )
    table = (
        rows.assign(abstain=rows["pred_smoothed"] == ABSTAIN)
        .groupby(ADAPTIVE_KEYS, sort=False)
        .agg(
            acc_single=("correct_single", "mean"),
            acc_smoothed=("correct_smoothed", "mean"),
            abstain_rate=("abstain", "mean"),
            n=("correct_single", "size"),
            linf_max=("linf", "max"),
            l2_mean=("l2", "mean"),
        )
        .reset_index()
    )
    order = table["attack"].map(_kind_order)
    return (
        table.assign(_order=order)
        .sort_values(["classifier", "denoiser", "attack_name", "sigma", "epsilon", "_order"])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def adaptive_wide(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (classifier, denoiser, attack, sigma, epsilon), one column per attack kind."""
    wide = table.pivot_table(index=ADAPTIVE_KEYS[:-1], columns="attack", values=metric, sort=False)
    kinds = sorted(wide.columns, key=_kind_order)
    return wide[kinds].reset_index()


def transfer_matrix(table: pd.DataFrame, epsilon: float, defence: str) -> pd.DataFrame:
    """Accuracy of each target classifier (columns) on the examples made on each source
    classifier (rows), at one epsilon and defence; the diagonal is the white-box attack."""
    require_columns(table, ["source", "target", "epsilon", "defence", "accuracy"], "transfer_matrix")
    rows = table[(table["epsilon"] == epsilon) & (table["defence"] == defence)]
    if rows.empty:
        raise ValueError(f"transfer_matrix: no rows at epsilon {epsilon:g} with defence {defence!r}")
    return rows.pivot_table(index="source", columns="target", values="accuracy", sort=True)


# the labels of a row of the attention stage (dds.evaluation.attention_maps.attention_under_attack)
ATTENTION_LABELS = ["classifier", "method", "condition", "epsilon", "sigma"]


def attention_shift_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per (classifier, method, condition, epsilon, sigma): images, mean and standard
    deviation of the rank correlation with the clean maps (over images whose maps are not
    constant; `constant_maps` counts the others) and the mean top-k IoU."""
    require_columns(per_image, [*ATTENTION_LABELS, "spearman", "topk_iou"], "attention_shift_table")
    grouped = per_image.groupby(ATTENTION_LABELS, dropna=False, sort=True)  # clean rows have no epsilon or sigma
    return grouped.agg(
        images=("spearman", "size"),
        spearman_mean=("spearman", "mean"),
        spearman_std=("spearman", "std"),
        topk_iou_mean=("topk_iou", "mean"),
        constant_maps=("spearman", lambda s: int(s.isna().sum())),
    ).reset_index()
