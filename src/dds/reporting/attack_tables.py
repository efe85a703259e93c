"""Tables of attack strength: the adaptive attack beside the unaware one, and the transfer
matrix of adversarial examples between classifiers."""

import pandas as pd

from dds.smoothing.bounds import ABSTAIN
from dds.reporting.tables import latex_booktabs, latex_escape, require_columns

ADAPTIVE_KEYS = ["classifier", "denoiser", "attack_name", "sigma", "epsilon", "attack"]
# the order of the attack kinds in tables: clean, the unaware PGD, then the adaptive targets
KIND_ORDER = {"clean": 0, "unaware": 1, "adaptive-single": 2, "adaptive-smoothed": 3}


def adaptive_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (classifier, denoiser, attack, sigma, epsilon, kind): single-draw and smoothed
    (PREDICT) accuracy, the smoothed classifier's abstain rate, and the measured norms."""
    require_columns(rows, [*ADAPTIVE_KEYS, "correct_single", "correct_smoothed", "pred_smoothed", "linf", "l2"],
                    "adaptive_table")
    table = rows.assign(abstain=rows["pred_smoothed"] == ABSTAIN).groupby(ADAPTIVE_KEYS, sort=False).agg(
        acc_single=("correct_single", "mean"), acc_smoothed=("correct_smoothed", "mean"),
        abstain_rate=("abstain", "mean"), n=("correct_single", "size"), linf_max=("linf", "max"),
        l2_mean=("l2", "mean")).reset_index()
    order = table["attack"].map(lambda k: KIND_ORDER.get(k, len(KIND_ORDER)))
    return (table.assign(_order=order).sort_values(["classifier", "denoiser", "attack_name", "sigma", "epsilon",
                                                    "_order"])
            .drop(columns="_order").reset_index(drop=True))


def adaptive_wide(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (classifier, denoiser, attack, sigma, epsilon), one column per attack kind."""
    wide = table.pivot_table(index=ADAPTIVE_KEYS[:-1], columns="attack", values=metric, sort=False)
    kinds = sorted(wide.columns, key=lambda k: KIND_ORDER.get(k, len(KIND_ORDER)))
    return wide[kinds].reset_index()


def latex_adaptive(table: pd.DataFrame, caption: str, label: str) -> str:
    """Single-draw denoised accuracy under the unaware PGD and under the adaptive attack
    (each target), per classifier, sigma and epsilon."""
    attacked = table[table["attack"] != "clean"]
    wide = adaptive_wide(attacked, "acc_single")
    kinds = [c for c in wide.columns if c not in ADAPTIVE_KEYS]
    body, previous = [], None
    for row in wide.to_dict("records"):
        model = (row["classifier"], row["denoiser"])
        if previous is not None and model != previous:
            body.append(r"\addlinespace")
        previous = model
        cells = " & ".join("--" if pd.isna(row[k]) else f"{row[k]:.3f}" for k in kinds)
        body.append(f"{latex_escape(row['classifier'])} & {row['sigma']:g} & {row['epsilon']:g} & {cells} \\\\")
    header = "Classifier & Sigma & Epsilon & " + " & ".join(latex_escape(k) for k in kinds)
    return latex_booktabs(caption, label, "lrr" + "r" * len(kinds), header, body)


def transfer_matrix(table: pd.DataFrame, epsilon: float, defence: str) -> pd.DataFrame:
    """Accuracy of each target classifier (columns) on the examples made on each source
    classifier (rows), at one epsilon and defence; the diagonal is the white-box attack."""
    require_columns(table, ["source", "target", "epsilon", "defence", "accuracy"], "transfer_matrix")
    rows = table[(table["epsilon"] == epsilon) & (table["defence"] == defence)]
    if rows.empty:
        raise ValueError(f"transfer_matrix: no rows at epsilon {epsilon:g} with defence {defence!r}")
    return rows.pivot_table(index="source", columns="target", values="accuracy", sort=True)
