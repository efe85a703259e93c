"""Published accuracies beside ours: a paper's table (CSV, one row per classifier, sigma and
epsilon) joined to our accuracy tables, with the differences, and whether each difference
is larger than the two samples' binomial noise could explain."""

import numpy as np
import pandas as pd

from dds import layout
from dds.io import DataFileError, require_columns
from dds.reporting.blocks import make_section, make_table, table_files
from dds.reporting.cells import cell
from dds.reporting.tables import ACCURACY_COLUMNS

REFERENCE_COLUMNS = ["dataset", "classifier", "sigma", "epsilon", "clean_acc", "pgd_acc", "denoised_acc"]
METRICS = {"clean_acc": "Clean", "pgd_acc": "PGD", "denoised_acc": "Denoised"}
# a difference beyond this many standard errors of (ours - paper) is flagged
NOISE_SE = 2.0


def read_reference(path) -> pd.DataFrame:
    """The published table, with its columns checked."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: reference table not found (config key report.reference.table)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: not a readable CSV ({err})") from None
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        raise DataFileError(f"{path}: missing column(s) {missing}; a reference table has {REFERENCE_COLUMNS}")
    return table


def _grid_key(df: pd.DataFrame) -> pd.DataFrame:
    """Sigma and epsilon rounded, so that 1 in a CSV meets 1.0 in ours."""
    return df.assign(sigma=df["sigma"].astype(float).round(9), epsilon=df["epsilon"].astype(float).round(9))


def compare(
    ours: pd.DataFrame,
    reference: pd.DataFrame,
    dataset: str,
    classifiers: dict,
    attack: str,
    denoiser: str,
    reference_n: int,
) -> pd.DataFrame:
    """The published rows of `dataset` for the mapped classifiers (`classifiers`: our name ->
    the table's name), each with our accuracy at the same sigma and epsilon (NaN where we have
    none), the difference ours - paper, and `<metric>_noisy`: the difference exceeds NOISE_SE
    standard errors of a difference of two binomial proportions (ours on `n` images, the
    paper's on `reference_n`)."""
    require_columns(ours, ACCURACY_COLUMNS, "our accuracy tables")
    mine = ours[(ours["attack"] == attack) & (ours["denoiser"] == denoiser)]
    frames = []
    for name, published in classifiers.items():
        theirs = reference[(reference["dataset"] == dataset) & (reference["classifier"] == published)]
        if theirs.empty:
            raise DataFileError(
                f"the reference table has no rows for dataset {dataset!r} and classifier "
                f"{published!r} (config key report.reference.classifiers.{name})"
            )
        rows = _grid_key(theirs[["sigma", "epsilon", *METRICS]]).merge(
            _grid_key(mine[mine["classifier"] == name][["sigma", "epsilon", *METRICS, "n"]]),
            on=["sigma", "epsilon"],
            how="left",
            suffixes=("_paper", "_ours"),
            validate="one_to_one",
        )
        frames.append(rows.assign(classifier=name, published=published))
    table = pd.concat(frames, ignore_index=True)
    for m in METRICS:
        ours_p, paper_p = table[f"{m}_ours"], table[f"{m}_paper"]
        table[f"{m}_diff"] = ours_p - paper_p
        se = np.sqrt(ours_p * (1 - ours_p) / table["n"] + paper_p * (1 - paper_p) / reference_n)
        # with both proportions 0 or 1 the standard error is 0: any difference is then beyond noise
        table[f"{m}_noisy"] = table[f"{m}_diff"].abs() > NOISE_SE * se
    return table.sort_values(["classifier", "sigma", "epsilon"], ignore_index=True)


def comparison_section(table: pd.DataFrame, source: str, reference_n: int, reference_file=None) -> dict:
    """The report section, shown first after the summary: per classifier, ours beside the paper's
    for every metric; then per classifier and metric, the mean and largest absolute difference and
    how many rows differ beyond the sampling noise. `reference_file`: the published table's path
    relative to the report, linked with ours."""
    files = [*table_files(layout.SUMMARY), *([reference_file] if reference_file else [])]
    tables = []
    for name, rows in table.groupby("classifier", sort=False):
        columns = ["Sigma", "Epsilon"]
        for label in METRICS.values():
            columns += [f"{label} ours", f"{label} paper", f"{label} Δ"]
        body = [
            [
                f"{r['sigma']:g}",
                f"{r['epsilon']:g}",
                *(
                    c
                    for m in METRICS
                    for c in (
                        cell(r[f"{m}_ours"]),
                        cell(r[f"{m}_paper"]),
                        # a missing difference is never noisy: NaN > x is False
                        cell(r[f"{m}_diff"], sign=True) + (" *" if r[f"{m}_noisy"] else ""),
                    )
                ),
            ]
            for r in rows.to_dict("records")
        ]
        tables.append(
            make_table(
                f"{name} (the paper's {rows['published'].iloc[0]}): ours beside {source}",
                columns,
                body,
                files,
            )
        )
    summary = []
    for name, rows in table.groupby("classifier", sort=False):
        for m, label in METRICS.items():
            diff = rows[f"{m}_diff"].dropna()
            summary.append(
                [
                    name,
                    label,
                    str(len(diff)),
                    cell(diff.abs().mean() if len(diff) else np.nan),
                    cell(diff.abs().max() if len(diff) else np.nan),
                    str(int(rows.loc[diff.index, f"{m}_noisy"].sum())),
                ]
            )
    tables.append(
        make_table(
            "Differences ours - paper, summarised",
            ["Classifier", "Accuracy", "rows compared", "mean |Δ|", "largest |Δ|", f"|Δ| > {NOISE_SE:g} SE"],
            summary,
            files,
        )
    )
    return make_section(
        "paper",
        "Comparison with the paper",
        f"Our accuracies beside {source}, at the paper's sigmas and epsilons; Δ = ours - paper, "
        f"— where we have no such row. * marks a difference beyond {NOISE_SE:g} standard errors of "
        f"the difference of two binomial proportions (ours on our n images, the paper's on "
        f"{reference_n}), i.e. larger than two independent samples of images would explain.",
        tables,
        nav="Paper comparison",
        first=True,
    )
