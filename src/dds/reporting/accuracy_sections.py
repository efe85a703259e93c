"""The report's accuracy section (one table per classifier, attack and denoiser) and its
perturbation norms (per classifier and attack), from the accuracy summary table."""

import pandas as pd

from dds import layout
from dds.precision import PRECISION, combined
from dds.reporting.blocks import make_section, make_table, table_files
from dds.reporting.cells import Flagged, cell
from dds.reporting.tables import MODEL_COLUMNS

# The attack projects onto the epsilon ball in float32; allow that rounding, no more.
_LINF_TOLERANCE = 1e-6


def accuracy_section(tables: pd.DataFrame, figures=()) -> dict:
    """One table per (classifier, attack, denoiser), rows sorted by sigma then epsilon, each
    captioned with the precision of its predictions; `figures`: the section's figures."""
    out = []
    for (classifier, attack, denoiser), rows in tables.groupby(MODEL_COLUMNS, sort=True):
        out.append(
            make_table(
                f"{classifier} — attack {attack}, denoiser {denoiser} ({combined(rows[PRECISION])})",
                ["Sigma", "Epsilon", "Clean Acc.", "PGD Acc.", "Denoised Acc.", "n"],
                [
                    [
                        f"{r.sigma:g}",
                        f"{r.epsilon:g}",
                        cell(r.clean_acc),
                        cell(r.pgd_acc),
                        cell(r.denoised_acc),
                        str(r.n),
                    ]
                    for r in rows.sort_values(["sigma", "epsilon"]).itertuples()
                ],
                table_files(layout.TABLE, classifier=classifier, attack=attack, denoiser=denoiser),
            )
        )
    return make_section(
        "accuracy",
        "Accuracy",
        "Clean accuracy, accuracy under attack without defence (PGD) and after diffusion denoising at noise "
        "level σ, one noise draw per image.",
        out,
        figures,
    )


def norms_section(tables: pd.DataFrame, attack_norms: dict) -> dict:
    """The measured norms depend on (classifier, attack, epsilon) only, not on the denoiser.
    `attack_norms`: attack name -> 'linf' or 'l2', the norm its epsilon bounds (default linf)."""
    out = []
    for (classifier, attack), rows in tables.groupby(["classifier", "attack"], sort=True):
        norm = attack_norms.get(attack, "linf")
        body = []
        for r in rows.drop_duplicates("epsilon").sort_values("epsilon").to_dict("records"):
            within = r[f"{norm}_max"] <= r["epsilon"] + _LINF_TOLERANCE
            body.append(
                [
                    f"{r['epsilon']:g}",
                    cell(r["linf_max"], 5),
                    cell(r["l2_max"], 4),
                    cell(r["l2_mean"], 4),
                    str(r["n"]),
                    "yes" if within else Flagged("no"),
                ]
            )
        out.append(
            make_table(
                f"{classifier} — attack {attack} ({'L∞' if norm == 'linf' else 'L2'})",
                ["Epsilon", "max L∞", "max L2", "mean L2", "n", "within ε"],
                body,
                table_files(layout.SUMMARY),
            )
        )
    return make_section(
        "norms",
        "Perturbation norms",
        "Nominal epsilon next to the measured perturbation of the adversarial images, ||x_adv − x||: the "
        "largest one is the effective epsilon, checked against the nominal one in the attack's norm.",
        out,
    )
