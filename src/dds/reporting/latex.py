"""The LaTeX form of the tables: booktabs `table` floats in the layout of the papers' tables,
each caption ending with the precision its numbers were computed in."""

import re

import pandas as pd

from dds.evaluation.blur import SUMMARY_COLUMNS
from dds.io import require_columns
from dds.precision import PRECISION, combined
from dds.reporting.attack_tables import KINDS, METRICS, adaptive_settings
from dds.reporting.cells import MISSING_LATEX, cell
from dds.reporting.tables import MODEL_COLUMNS
from dds.smoothing.certified import best_over_sigmas

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _SPECIAL))


def escape(text: str) -> str:
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group()], str(text))


def _cell(value, digits: int = 3) -> str:
    return cell(value, digits, MISSING_LATEX)


def _caption(caption: str, table: pd.DataFrame, what: str) -> str:
    """`caption` with the precision of `table`'s rows (its `precision` column) combined."""
    require_columns(table, [PRECISION], what)
    return f"{caption} (precision: {combined(table[PRECISION])})"


def booktabs(caption: str, label: str, columns: str, header: str, body: list[str]) -> str:
    """A complete booktabs `table` float: escaped caption, checked label, the tabular with
    column spec `columns`, a `header` row and the `body` lines (rows, rules, spacing)."""
    if not re.fullmatch(r"[A-Za-z0-9:._/-]+", label):
        raise ValueError(f"LaTeX label {label!r} may use only letters, digits and : . _ / -")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        header + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def accuracy_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """An accuracy table in the layout of the Safeguarding Attention paper's appendix tables."""
    require_columns(df, ["sigma", "epsilon", "clean_acc", "pgd_acc", "denoised_acc"], "accuracy_latex")
    present = [c for c in MODEL_COLUMNS if c in df.columns]
    models = len(df.drop_duplicates(present)) if present else 1
    if models > 1:
        # The layout has no classifier column, so two models in one table would be ambiguous.
        raise ValueError(f"accuracy_latex: one (classifier, attack, denoiser) per table, got {models}")
    body, previous_sigma = [], None
    for row in df.sort_values(["sigma", "epsilon"]).itertuples(index=False):
        if previous_sigma is not None and row.sigma != previous_sigma:
            body.append(r"\addlinespace")  # visual break between sigma blocks
        previous_sigma = row.sigma
        cells = " & ".join(_cell(v) for v in (row.clean_acc, row.pgd_acc, row.denoised_acc))
        body.append(f"{row.sigma:g} & {row.epsilon:g} & {cells} \\\\")
    return booktabs(
        _caption(caption, df, "accuracy_latex"),
        label,
        "rrrrr",
        "Sigma & Epsilon & Clean Acc. & PGD Acc. & Denoised Acc.",
        body,
    )


def certified_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """Certified accuracy on the clean sample: one row per sigma (and multi-scale), one column
    per radius, then the best over sigmas with its clean accuracy in parentheses."""
    clean = table[table["source"] == "clean"]
    radii = sorted(clean["radius"].unique())
    body = []
    for method, rows in clean.groupby("method", sort=False):
        acc = rows.set_index("radius")["certified_acc"]
        body.append(escape(method) + " & " + " & ".join(_cell(acc[r]) for r in radii) + r" \\")
    best = best_over_sigmas(table).set_index("radius")
    if len(best):
        body += [
            r"\midrule",
            "best $\\sigma$ & "
            + " & ".join(f"{_cell(best.loc[r, 'certified_acc'])} ({_cell(best.loc[r, 'clean_acc'])})" for r in radii)
            + r" \\",
        ]
    header = "Method & " + " & ".join(f"$r={r:g}$" for r in radii)
    return booktabs(_caption(caption, table, "certified_latex"), label, "l" + "r" * len(radii), header, body)


def blur_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """A blur-majority table in the layout of the blog's table: one row per noise level."""
    columns = ["noise_level", *SUMMARY_COLUMNS[:-1]]
    require_columns(df, columns, "blur_latex")
    keys = [c for c in df.columns if c not in columns and c != "n"]
    setups = len(df.drop_duplicates(keys)) if keys else 1
    if setups > 1:
        # The layout has only a noise-level column, so two setups in one table would be ambiguous.
        raise ValueError(f"blur_latex: one setup per table, but {keys} take {setups} combinations")
    if df["noise_level"].duplicated().any():
        raise ValueError(
            f"blur_latex: noise level {df['noise_level'][df['noise_level'].duplicated()].iloc[0]:g} "
            "appears in more than one row"
        )
    body = [
        " & ".join([f"{row.noise_level:g}", *(_cell(getattr(row, c), 4) for c in columns[1:])]) + r" \\"
        for row in df.sort_values("noise_level").itertuples(index=False)
    ]
    header = r"Noise level & Acc\_NS & Acc\_SS & Acc\_DS & Acc\_Maj & Reject rate"
    return booktabs(_caption(caption, df, "blur_latex"), label, "rrrrrr", header, body)


def adaptive_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """Per classifier, sigma, epsilon and attack kind (an adaptive_table): accuracy with one
    draw, the mean over the k evaluation draws, its spread over them and the majority vote;
    the defence's and the attack's settings close the caption."""
    body, previous = [], None
    for row in table.to_dict("records"):
        block = (row["classifier"], row["denoiser"], row["sigma"])
        if previous is not None and block != previous:
            body.append(r"\addlinespace")
        previous = block
        kind = escape(KINDS.get(row["attack"], row["attack"]))
        cells = " & ".join(_cell(row[metric]) for metric in METRICS)
        body.append(f"{escape(row['classifier'])} & {row['sigma']:g} & {row['epsilon']:g} & {kind} & {cells} \\\\")
    header = "Classifier & Sigma & Epsilon & Attack & " + " & ".join(escape(m) for m in METRICS.values())
    text = _caption(f"{caption}. {adaptive_settings(table)}", table, "adaptive_latex")
    return booktabs(text, label, "lrrl" + "r" * len(METRICS), header, body)
