"""Tables of attack strength: the adaptive attack beside the unaware one, and the transfer
matrix of adversarial examples between classifiers."""

import numpy as np
import pandas as pd

from dds.evaluation.adaptive import FIXED_NOISE, MASKED, SETTINGS
from dds.io import require_columns

ADAPTIVE_KEYS = ["classifier", "denoiser", "attack_name", "sigma", "epsilon", "attack"]
# the attack kinds in table order (clean, the unaware PGD, the adaptive targets, then the
# comparison with masked gradients and the fixed-noise diagnostic) and their labels
KINDS = {
    "clean": "clean",
    "unaware": "unaware PGD",
    "adaptive-single": "adaptive (single target)",
    "adaptive-smoothed": "adaptive (smoothed target)",
    MASKED: "adaptive (single target, masked gradients)",
    FIXED_NOISE: "fixed-noise diagnostic (single target)",
}
# the accuracies of adaptive_table: one draw (the denoise stage's), the mean over the k
# evaluation draws and its spread over them, and the majority vote of the k draws
METRICS = {
    "acc_single": "one draw",
    "acc_draws": "mean over draws",
    "acc_draws_std": "std over draws",
    "acc_majority": "majority",
}


def _kind_order(kind: str) -> int:
    return list(KINDS).index(kind) if kind in KINDS else len(KINDS)


def _draw_spread(flags: pd.Series) -> float:
    """The sample standard deviation, over the draws, of the share of images the draw
    classifies right (`flags`: per image, one flag per draw); NaN with one draw."""
    per_draw = np.stack(flags.to_list()).mean(0)
    return float(per_draw.std(ddof=1)) if len(per_draw) > 1 else float("nan")


def adaptive_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (classifier, denoiser, attack, sigma, epsilon, kind): the accuracies of METRICS
    (the defence scored as a random one: acc_draws_std is the spread of the set's accuracy
    across the k draws, not a standard error), the measured norms and the settings (SETTINGS)."""
    require_columns(
        rows,
        [
            *ADAPTIVE_KEYS,
            "correct_single",
            "correct_draws",
            "frac_correct",
            "correct_majority",
            "linf",
            "l2",
            *SETTINGS,
        ],
        "adaptive_table",
    )
    table = (
        rows.groupby(ADAPTIVE_KEYS, sort=False)
        .agg(
            acc_single=("correct_single", "mean"),
            acc_draws=("frac_correct", "mean"),
            acc_draws_std=("correct_draws", _draw_spread),
            acc_majority=("correct_majority", "mean"),
            n=("correct_single", "size"),
            linf_max=("linf", "max"),
            l2_mean=("l2", "mean"),
            **{key: (key, "first") for key in SETTINGS},
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


def adaptive_settings(table: pd.DataFrame) -> str:
    """The defence's and the attack's settings of an adaptive table, in words (for captions)."""

    def listed(values: pd.Series) -> str:
        return ", ".join(f"{v:g}" for v in sorted(values.dropna().unique()))

    adaptive = table[table["attack"].str.startswith("adaptive-") & (table["attack"] != FIXED_NOISE)]
    through = set(adaptive["straight_through"].dropna())
    gradients = "straight through the defence's clamps" if True in through else "masked by the defence's clamps"
    if through == {True, False}:
        gradients += f" ({KINDS[MASKED]}: masked by them)"
    t_star = table.groupby("sigma")["t_star"].first()
    text = (
        f"Defence: noise sigma at diffusion timestep t* ({', '.join(f'{s:g}: {t}' for s, t in t_star.items())}), "
        f"scored over k = {listed(table['eval_draws'])} fresh noise draws per example (std over draws: the sample "
        "standard deviation of the accuracy across the k draws). "
        f"Attack: {listed(adaptive['steps'])} PGD steps with the unaware PGD's step size, "
        f"{listed(adaptive['eot_draws'])} EOT draws per step, gradients {gradients}."
    )
    if FIXED_NOISE in set(table["attack"]):
        text += (
            f" The {KINDS[FIXED_NOISE]}: one noise draw, the one-draw evaluation's, at every step; a deterministic "
            "defence, so it overstates the attack against the random one."
        )
    return text


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
ATTENTION_LABELS = ["classifier", "denoiser", "method", "condition", "epsilon", "sigma"]


def attention_shift_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per (classifier, denoiser, method, condition, epsilon, sigma): images, mean and standard
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
