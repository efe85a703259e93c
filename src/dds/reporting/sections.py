"""The report's sections beyond the accuracy tables (dds.reporting.blocks): their tables as cell
text, their captions."""

import logging

import pandas as pd

from dds import layout
from dds.reporting import attack_tables
from dds.reporting.blocks import make_section, make_table, table_files
from dds.reporting.cells import MISSING_HTML, cell
from dds.reporting.tables import NO_DEFENCE, defence_order
from dds.smoothing import certified

log = logging.getLogger(__name__)


def certified_section(tables: dict, spec: dict, figures=()) -> dict:
    """Per (classifier, denoiser) of `tables` (-> its certified table): certified accuracy per
    method and radius on the clean sample, the best single sigma per radius (its clean accuracy
    in parentheses), and the adversarial sets' coverage; `spec`: the certify settings."""
    out = []
    for (c, d), table in tables.items():
        clean = table[table["source"] == "clean"]
        radii = sorted(clean["radius"].unique())
        rows = [
            [
                method,
                *(cell(a) for a in g.sort_values("radius")["certified_acc"]),
                cell(g["smoothed_acc"].iloc[0]),
                cell(g["abstain_rate"].iloc[0]),
            ]
            for method, g in clean.groupby("method", sort=False)
        ]
        best = certified.best_over_sigmas(table)
        rows.append(
            [
                "best sigma",
                *(f"{cell(b.certified_acc)} ({cell(b.clean_acc)}, sigma={b.sigma:g})" for b in best.itertuples()),
                "",
                "",
            ]
        )
        files = table_files(layout.CERTIFIED, classifier=c, denoiser=d)
        out.append(
            make_table(
                f"{c}, denoiser {d}: certified accuracy on the clean sample",
                ["Method", *(f"r={r:g}" for r in radii), "PREDICT acc.", "abstain"],
                rows,
                files,
            )
        )
        attacked = table[(table["source"] == "adversarial") & (table["radius"] == radii[0])]
        if len(attacked):
            out.append(
                make_table(
                    f"{c}, denoiser {d}: certification of adversarial sets",
                    ["Attack", "Epsilon", "Method", "certified acc. (r=0)", "radius covers L2"],
                    [
                        [r.attack, f"{r.epsilon:g}", r.method, cell(r.certified_acc), cell(r.covered)]
                        for r in attacked.itertuples()
                    ],
                    files,
                )
            )
    return make_section(
        "certification",
        "Certification",
        f"CERTIFY of Cohen et al. through the one-shot denoiser: n0={spec['n0']}, n={spec['n']}, "
        f"alpha={spec['alpha']:g}, first {spec['num_images']} evaluation images; multi-scale: the "
        f"cascade of Jeong and Shin over all sigmas on the same draws (p0={spec['p0']:g}).",
        out,
        figures,
    )


def blur_section(tables: dict, spec: dict) -> dict:
    """The blur-majority tables of each classifier (`tables`: classifier -> its blur table): per
    noise level (the blog's table) and per attack epsilon; `spec`: the blur settings."""
    out = []
    for c, table in tables.items():
        out.append(
            make_table(
                f"{c}: blur majority under Gaussian noise and under attack",
                ["Source", "Noise level", "Epsilon", "Acc_NS", "Acc_SS", "Acc_DS", "Acc_Maj", "Reject rate"],
                [
                    [
                        f"{r.source} {r.attack}".strip(),
                        f"{r.noise_level:g}",
                        f"{r.epsilon:g}",
                        *(cell(v) for v in (r.acc_ns, r.acc_ss, r.acc_ds, r.acc_maj, r.reject_rate)),
                    ]
                    for r in table.itertuples()
                ],
                table_files(layout.BLUR_TABLE, classifier=c),
            )
        )
    return make_section(
        "blur",
        "Gaussian-blur majority",
        f"Predictions on the image (NS), blurred once (SS) and twice (DS) with a "
        f"{spec['kernel_size']}x{spec['kernel_size']} Gaussian kernel of sigma {spec['sigma']:g}; "
        "Acc_Maj is the accuracy of the majority vote among the images it does not reject. The summary's "
        "figure compares these defences with diffusion denoising.",
        out,
    )


def iterations_section(table: pd.DataFrame, spec: dict) -> dict:
    """Accuracy per classifier and PGD step count, undefended and denoised at each sigma
    (`table`: the iterations table; `spec`: the iterations settings)."""
    defences = defence_order(table["defence"].unique())
    out = []
    for (c, d), rows in table.groupby(["classifier", "denoiser"]):
        wide = rows.pivot_table(index="steps", columns="defence", values="accuracy")
        out.append(
            make_table(
                f"{c}, denoiser {d}: accuracy against PGD iterations",
                ["Steps", *(f"{x}" for x in defences)],
                [[str(steps), *(cell(wide.loc[steps].get(x)) for x in defences)] for steps in wide.index],
                table_files(layout.ITERATIONS_TABLE),
            )
        )
    return make_section(
        "iterations",
        "Accuracy against PGD iterations",
        f"The attack '{spec['attack']}' rerun with {', '.join(map(str, spec['steps']))} steps at "
        f"epsilon {spec['epsilon']:g} on the first {spec['num_images']} evaluation images: undefended "
        "(none) and denoised at each sigma with the noise draws of the main tables.",
        out,
        nav="PGD iterations",
    )


def adaptive_section(table: pd.DataFrame, spec: dict, eval_size: int) -> dict:
    """Per (classifier, denoiser): the accuracies of attack_tables.METRICS clean, under the
    unaware PGD and under each adaptive attack, per sigma and epsilon, beside the defence's
    and the attack's settings (`table`: the adaptive table; `spec`: the adaptive settings;
    `eval_size`: images in the evaluation sample)."""

    def setting(value, text=str) -> str:
        return MISSING_HTML if pd.isna(value) else text(value)

    out = []
    for (c, d), rows in table.groupby(["classifier", "denoiser"], sort=False):
        out.append(
            make_table(
                f"{c}, denoiser {d}",
                [
                    "Sigma",
                    "t*",
                    "Epsilon",
                    "Attack",
                    "Steps",
                    "Step size",
                    "EOT draws",
                    "Straight-through",
                    *attack_tables.METRICS.values(),
                ],
                [
                    [
                        f"{r['sigma']:g}",
                        setting(r["t_star"]),
                        f"{r['epsilon']:g}",
                        attack_tables.KINDS.get(r["attack"], r["attack"]),
                        setting(r["steps"]),
                        setting(r["step_size"], lambda v: f"{v:.4g}"),
                        setting(r["eot_draws"]),
                        setting(r["straight_through"], lambda v: "yes" if v else "no"),
                        *(cell(r[m]) for m in attack_tables.METRICS),
                    ]
                    for r in rows.to_dict("records")
                ],
                table_files(layout.ADAPTIVE_TABLE),
            )
        )
    return make_section(
        "adaptive",
        "Adaptive attack",
        f"PGD of attack '{spec['attack']}' (same epsilon, steps and step size as the unaware attack, "
        "which is made on the bare classifier) through the noise, the one-shot denoiser and the "
        "classifier with expectation over noise draws (EOT); target single: the one-draw defended "
        "classifier, smoothed: the soft smoothed classifier. Evaluated on the first "
        f"{min(spec['num_images'], eval_size)} evaluation images, the defence scored as a random one: "
        "with the main tables' noise draw (one draw), the mean over k fresh draws and its spread, and "
        f"the majority vote of the k draws (ties to the lowest class). {attack_tables.adaptive_settings(table)}",
        out,
    )


def transfer_section(table: pd.DataFrame) -> dict:
    """Per defence: accuracy of each target classifier on each source's adversarial examples."""
    targets = sorted(table["target"].unique())
    out = []
    for (attack, denoiser, defence), rows in table.groupby(["attack", "denoiser", "defence"], sort=False):
        body = []
        for (eps, source), cells in rows.groupby(["epsilon", "source"]):
            acc = cells.set_index("target")["accuracy"]
            body.append([f"{eps:g}", source, *(cell(acc.get(t)) for t in targets)])
        where = "no defence" if defence == NO_DEFENCE else f"denoised by {denoiser} at {defence}"
        out.append(
            make_table(
                f"{attack}, {where}: accuracy of each target (columns) on each source's examples",
                ["Epsilon", "Source", *targets],
                body,
                table_files(layout.TRANSFER_TABLE),
            )
        )
    return make_section(
        "transfer",
        "Transfer between classifiers",
        "Adversarial examples made on the source classifier, classified by every classifier, "
        "undefended and after denoising (the same denoised images as the main tables); "
        "source = target is the white-box attack.",
        out,
        nav="Transfer",
    )


def attention_section(table: pd.DataFrame, figures=()) -> dict:
    """Per classifier, denoiser and method: rank correlation and top-k overlap with the clean maps."""
    out = []
    for (c, d, method), rows in table.groupby(["classifier", "denoiser", "method"], sort=False):
        out.append(
            make_table(
                f"{c}, denoiser {d}: {'Grad-CAM' if method == 'gradcam' else 'CBAM spatial attention'} against the "
                "clean image's map",
                [
                    "Condition",
                    "Epsilon",
                    "Sigma",
                    "Spearman (mean)",
                    "Spearman (sd)",
                    "top-20% IoU",
                    "images",
                ],
                [
                    [
                        r.condition,
                        f"{r.epsilon:g}",
                        "" if pd.isna(r.sigma) else f"{r.sigma:g}",
                        cell(r.spearman_mean),
                        cell(r.spearman_std),
                        cell(r.topk_iou_mean),
                        str(r.images),
                    ]
                    for r in rows.sort_values(["condition", "epsilon", "sigma"]).itertuples()
                ],
                table_files(layout.ATTENTION_TABLE),
            )
        )
    return make_section(
        "attention",
        "Attention under attack and denoising",
        "Per image, Spearman's rank correlation and the overlap (IoU) of the 20% most attended pixels "
        "between the map of the clean image and the map of its attacked or denoised version (1: the "
        "classifier looks at the same places); Grad-CAM explains the true class. Denoised rows at "
        "epsilon 0 are the clean images denoised.",
        out,
        figures,
        nav="Attention",
    )
