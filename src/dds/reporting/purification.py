"""The comparison of one-shot denoising with multi-step purification: its table (one row per
classifier, denoiser and sigma), LaTeX and figure (docs/science.md §1.7)."""

import pandas as pd
import seaborn as sns

from dds.evaluation.adaptive import BPDA
from dds.io import require_columns
from dds.precision import PRECISION, combined
from dds.reporting.cells import MISSING_LATEX, cell
from dds.reporting.latex import booktabs, escape
from dds.reporting.plotting import STYLE, classifier_sigma_panels, save_figure

KEYS = ["classifier", "denoiser", "sigma"]
# the defence's settings (one value per denoiser and sigma), then the attack's
DEFENCE = ["sampler", "reverse_steps", "eta", "t_star"]
ATTACK = ["epsilon", "steps", "eot_draws", "eval_draws"]
# the attack kinds of a purification job -> the table's accuracy columns
ACCURACY = {"clean": "clean", "unaware": "unaware", "adaptive-single": "adaptive", BPDA: "bpda"}
LABELS = {"clean": "clean", "unaware": "unaware PGD", "adaptive": "adaptive (exact)", "bpda": "BPDA"}


def purification_table(results: pd.DataFrame, certificates: pd.DataFrame, radii) -> pd.DataFrame:
    """Per (classifier, denoiser, sigma), in the order of `results`: the defence's settings, the
    accuracy (mean over the k evaluation draws) clean, under the unaware PGD, the adaptive attack
    with exact gradients and BPDA at the attack's epsilon, certified accuracy at each of `radii`
    (cert_r<r>: certified, right and radius >= r; abstain: the share not certified) and the attack's settings."""
    require_columns(results, [*KEYS, *DEFENCE, *ATTACK, "attack", "idx", "frac_correct"], "purification_table")
    kinds = results[results["attack"].isin(ACCURACY)].assign(measure=lambda d: d["attack"].map(ACCURACY))
    accuracy = kinds.pivot_table(index=KEYS, columns="measure", values="frac_correct", aggfunc="mean", sort=False)
    attacked = results[results["attack"] == "adaptive-single"].groupby(KEYS, sort=False)
    settings = attacked[[*DEFENCE, *ATTACK]].first().join(attacked["idx"].nunique().rename("n"))
    table = settings[DEFENCE].join(accuracy[[c for c in ACCURACY.values() if c in accuracy.columns]])
    table = table.join(settings[[*ATTACK, "n"]])
    if len(certificates):
        require_columns(certificates, [*KEYS, "predict", "radius", "correct"], "purification_table")
        certified = certificates.groupby(KEYS, sort=False)
        for r in radii:
            table[f"cert_r{r:g}"] = certified.apply(lambda g, r=r: ((g["correct"] == 1) & (g["radius"] >= r)).mean())
        table["abstain"] = certified.apply(lambda g: (g["predict"] == -1).mean())
    out = table.reset_index()
    if PRECISION in results.columns:
        out[PRECISION] = combined(results[PRECISION])
    return out


def defence_label(sampler: str, steps, eta) -> str:
    """The defence in words: one-shot, or the sampler with its K (and eta when not 0)."""
    if sampler == "one-shot":
        return "one-shot"
    noise = f", eta {eta:g}" if sampler == "ddim" and eta else ""
    return f"{sampler.upper()} K={steps}{noise}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The report's view of a purification table: the defence in words, the accuracies and the
    certified accuracy at each radius under readable names."""
    radii = [c for c in table.columns if c.startswith("cert_r")]
    scores = {c: LABELS[c] for c in LABELS if c in table.columns}
    view = table[["classifier", "sigma", "denoiser"]].assign(
        defence=[defence_label(*r) for r in table[["sampler", "reverse_steps", "eta"]].itertuples(index=False)],
        t_star=table["t_star"],
    )
    view = view.join(table[list(scores)].rename(columns=scores))
    return view.join(table[radii].rename(columns={c: f"certified r={c[6:]}" for c in radii}))


def purification_sentence(table: pd.DataFrame) -> str:
    """At the smallest sigma, per classifier: the accuracy under the adaptive attack with exact
    gradients for each defence, and what BPDA would report."""
    sigma = table["sigma"].min()
    rows = table[table["sigma"] == sigma]
    parts = []
    for classifier, mine in rows.groupby("classifier", sort=False):
        labels = [defence_label(*r) for r in mine[["sampler", "reverse_steps", "eta"]].itertuples(index=False)]
        exact = ", ".join(f"{cell(a)} {label}" for a, label in zip(mine["adaptive"], labels))
        bpda = f" (BPDA: {', '.join(cell(b) for b in mine['bpda'])})" if "bpda" in mine else ""
        parts.append(f"{classifier} {exact}{bpda}")
    return (
        f"Under the adaptive attack with exact gradients through the whole chain at ε={rows['epsilon'].iloc[0]:g} "
        f"and σ={sigma:g}, accuracy is {'; '.join(parts)}."
    )


def _latex_cell(value) -> str:
    return cell(value, 3, MISSING_LATEX)


def purification_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """One row per (classifier, denoiser, sigma): sampler and K, t*, the accuracies and the
    certified accuracy at each radius; the attack's settings close the caption."""
    scores = [c for c in LABELS if c in table.columns]
    radii = [c for c in table.columns if c.startswith("cert_r")]
    body = []
    for row in table.to_dict("records"):
        sampler = defence_label(row["sampler"], row["reverse_steps"], row["eta"])
        cells = " & ".join(_latex_cell(row[c]) for c in [*scores, *radii])
        body.append(
            f"{escape(row['classifier'])} & {escape(row['denoiser'])} & {escape(sampler)} & {row['sigma']:g} & "
            f"{row['t_star']} & {cells} \\\\"
        )
    header = "Classifier & Denoiser & Sampler & Sigma & $t^*$ & " + " & ".join(
        [*(escape(LABELS[c]) for c in scores), *(f"cert. $r={c[6:]}$" for c in radii)]
    )
    attack = table.iloc[0] if len(table) else None
    settings = (
        f". Attack at epsilon {attack['epsilon']:g}: {attack['steps']} PGD steps, {attack['eot_draws']} EOT draws of "
        "the chain's randomness per step, exact gradients through every reverse step (checkpointed); BPDA: the "
        f"chain's backward pass as the identity; accuracy: mean over {attack['eval_draws']} fresh draws"
        if attack is not None
        else ""
    )
    text = f"{caption}{settings} (precision: {combined(table[PRECISION])})"
    return booktabs(text, label, "lllrr" + "r" * (len(scores) + len(radii)), header, body)


def purification_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Accuracy per denoiser (x, in the table's order: one-shot and multi-step), one panel per
    (classifier, sigma), one line per measure: clean, unaware PGD, adaptive, BPDA, certified at r=0."""
    require_columns(table, ["classifier", "denoiser", "sigma"], "purification_figure")
    sns.set_theme(style=STYLE)
    measures = {c: LABELS[c] for c in LABELS if c in table.columns}
    if "cert_r0" in table.columns:
        measures["cert_r0"] = "certified (r=0)"
    fig, axes, panels = classifier_sigma_panels(table, list(dict.fromkeys(table["classifier"])), "accuracy", 3.8)
    palette = dict(zip(measures, sns.color_palette("tab10", n_colors=len(measures))))
    for _, ax, rows in panels:
        ticks = [
            f"{d}\n{defence_label(s, k, e)}"
            for d, s, k, e in rows[["denoiser", "sampler", "reverse_steps", "eta"]].itertuples(index=False)
        ]
        for column, label in measures.items():
            style = "--" if column in ("unaware", "bpda") else "-"
            ax.plot(range(len(rows)), rows[column], marker="o", label=label, color=palette[column], linestyle=style)
        ax.set_xticks(range(len(rows)), ticks, fontsize="small")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    fig.subplots_adjust(hspace=0.45)
    save_figure(fig, path_png, path_svg)
